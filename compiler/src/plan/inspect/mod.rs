//! `inspect`: a plan as a listing, JSON or a DOT graph, with the cost model's estimate per
//! instruction, and a summary by op class (as CipherGPT's Table V).
//!
//! The estimate is for a chosen prompt length `T`: the prefill program at `T` rows, and one
//! decode step for the token at position `T` (the cache then holds `T + 1` positions).
//! Register shapes are shown symbolically: `r12[T,768]@12` is register 12 with `T` rows (one per
//! token of the program: `T` in prefill, `1` in a decode step), 768 columns and 12 fractional
//! bits; `P` is the number of cached positions; a score block is `[heads×T,P]`.
//!
//! Each instruction's attributes are its kind's (`plan::ops`); the JSON and DOT renderers are
//! in `json.rs` and `dot.rs`.

use super::cost::{self, OpClass, Part, Sizes, Summary};
use super::link::{LinkEstimate, LAN, WAN};
use super::ops::kind;
use super::{file::short_hash, Instruction, Plan, Program, Rows};
use crate::error::{CompileError, Result};
use std::collections::HashMap;
use std::fmt::Write;

mod dot;
mod json;
mod preparation;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Dot,
}

/// What to render.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub format: Format,
    /// Only the per-class summary (text and JSON).
    pub summary: bool,
    /// Prompt length T of the estimate.
    pub tokens: u64,
    /// Tokens the session generates (N): its context of T + N − 1 positions sets the
    /// attention products' layout.
    pub new_tokens: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Text,
            summary: false,
            tokens: 32,
            new_tokens: 16,
        }
    }
}

/// Render a plan. Errors on a plan that is not sound ([`super::validate::validate`]; a plan read
/// by [`super::file::read_plan`] has passed it already) and on a prompt length the model cannot
/// take.
pub fn render(plan: &Plan, opts: &Options) -> Result<String> {
    super::validate::validate(plan).map_err(CompileError::Input)?;
    if opts.tokens == 0 {
        return Err(CompileError::Input(
            "--tokens: the prompt needs at least one token".into(),
        ));
    }
    let positions = plan.model.as_ref().map_or(0, |m| m.positions);
    if positions > 0 && opts.tokens >= positions {
        return Err(CompileError::Input(format!(
            "--tokens {}: the model has {positions} positions, so a prompt of {} tokens leaves no room for a decode step; hint: at most {}",
            opts.tokens,
            opts.tokens,
            positions - 1
        )));
    }
    // The session's context, T + N − 1 positions, at most the model's.
    let wanted = opts.tokens.saturating_add(opts.new_tokens.max(1) - 1);
    let context = if positions > 0 {
        wanted.min(positions)
    } else {
        wanted
    };
    let report = Report::new(plan, opts.tokens, context);
    Ok(match (opts.format, opts.summary) {
        (Format::Text, false) => report.text(),
        (Format::Text, true) => report.summary_text(),
        (Format::Json, summary) => report.json(summary),
        (Format::Dot, _) => report.dot(),
    })
}

/// One program's estimate.
struct ProgramReport<'p> {
    key: &'static str,
    title: String,
    sizes: Sizes,
    instructions: &'p [Instruction],
    parts: Vec<Vec<Part>>,
    summary: Summary,
}

struct Report<'p> {
    plan: &'p Plan,
    tokens: u64,
    programs: Vec<ProgramReport<'p>>,
    /// Registers holding per-head score blocks, with their head count.
    score_heads: HashMap<u32, u32>,
}

const EMPTY: &[Instruction] = &[];

impl<'p> Report<'p> {
    fn new(plan: &'p Plan, tokens: u64, context: u64) -> Report<'p> {
        let mut programs = Vec::new();
        let specs = [
            (
                "prefill",
                &plan.prefill,
                Sizes::prefill(tokens).within(context),
                format!("prefill: T = {tokens} tokens, P = {tokens} positions"),
            ),
            (
                "decode",
                &plan.decode,
                Sizes::decode(tokens).within(context),
                format!(
                    "decode step at position {tokens}: T = 1 token, P = {} positions",
                    tokens + 1
                ),
            ),
        ];
        for (key, prog, sizes, title) in specs {
            let instructions: &[Instruction] =
                prog.as_ref().map_or(EMPTY, |p: &Program| &p.instructions);
            let parts: Vec<Vec<Part>> = prog
                .as_ref()
                .map_or_else(Vec::new, |p| cost::program(plan, p, sizes));
            let summary = Summary::of(&parts);
            programs.push(ProgramReport {
                key,
                title,
                sizes,
                instructions,
                parts,
                summary,
            });
        }
        let mut score_heads = HashMap::new();
        for p in &programs {
            for ins in p.instructions {
                if let Some(op) = &ins.op {
                    score_heads.extend(kind(op).score_registers(ins));
                }
            }
        }
        Report {
            plan,
            tokens,
            programs,
            score_heads,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Pieces shared by the formats.
    // -----------------------------------------------------------------------------------------

    /// Symbolic shape of a register in a program with `one_row` (a decode step) or `T` rows.
    fn shape(&self, r: u32, one_row: bool) -> [String; 2] {
        let reg = &self.plan.registers[r as usize];
        let t = if one_row { "1" } else { "T" };
        if let Some(&h) = self.score_heads.get(&r) {
            return [format!("{h}×{t}"), "P".into()];
        }
        let rows = match Rows::try_from(reg.rows) {
            Ok(Rows::Positions) => "P".to_string(),
            Ok(Rows::One) => "1".to_string(),
            _ => t.to_string(),
        };
        [rows, reg.cols.to_string()]
    }

    fn reg(&self, r: u32, one_row: bool) -> String {
        let [rows, cols] = self.shape(r, one_row);
        let f = self.plan.registers[r as usize].frac_bits;
        format!("r{r}[{rows},{cols}]@{f}")
    }

    /// The instruction's attributes: its kind's ([`crate::plan::ops::InstructionKind::attributes`]).
    fn attributes(&self, ins: &Instruction) -> String {
        ins.op
            .as_ref()
            .map_or_else(String::new, |op| kind(op).attributes(self.plan))
    }

    fn io(&self, ins: &Instruction, one_row: bool) -> String {
        let side = |regs: &[u32]| -> String {
            regs.iter()
                .map(|&r| self.reg(r, one_row))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let inputs = if reads_client_tokens(ins) {
            "(client's tokens)".to_string()
        } else {
            side(&ins.inputs)
        };
        format!("{inputs} → {}", side(&ins.outputs))
    }

    fn header(&self) -> String {
        let p = self.plan;
        let mut s = format!(
            "plan {} ({}), format {}, ring Z_2^{}, {} fractional bits\n",
            p.source,
            short_hash(&p.hash),
            p.format_version,
            p.ring_bits,
            p.frac_bits
        );
        if let Some(m) = &p.model {
            let _ = writeln!(
                s,
                "model: vocab {}, positions {}, width {}, heads {}, layers {}",
                m.vocab, m.positions, m.width, m.heads, m.layers
            );
        }
        let _ = writeln!(
            s,
            "estimate for T = {} prompt tokens (cost model: docs/cost-model.md; S→C = bytes the server sends, C→S = bytes the client sends)",
            self.tokens
        );
        let _ = writeln!(
            s,
            "link time (LAN s, WAN s) = rounds · RTT/2 + bytes · 8 / bandwidth on lan ({LAN}) and wan ({WAN})"
        );
        s
    }

    // -----------------------------------------------------------------------------------------
    // Text.
    // -----------------------------------------------------------------------------------------

    fn text(&self) -> String {
        let mut out = self.header();
        for p in &self.programs {
            let one_row = p.sizes.rows == 1 && p.sizes.past > 0;
            let _ = writeln!(out, "\n{}", p.title);
            let mut rows = vec![[
                "#",
                "op",
                "name",
                "inputs → outputs",
                "attributes",
                "class",
                "S→C",
                "C→S",
                "rounds",
            ]
            .map(String::from)];
            for (i, (ins, parts)) in p.instructions.iter().zip(&p.parts).enumerate() {
                let c = cost::total(parts);
                let class = parts
                    .iter()
                    .filter(|x| x.class != OpClass::Local)
                    .map(|x| x.class.name())
                    .collect::<Vec<_>>()
                    .join("+");
                rows.push([
                    i.to_string(),
                    cost::op_name(&ins.op).to_string(),
                    ins.name.clone(),
                    self.io(ins, one_row),
                    self.attributes(ins),
                    if class.is_empty() { "-".into() } else { class },
                    bytes(c.server_bytes),
                    bytes(c.client_bytes),
                    c.rounds.to_string(),
                ]);
            }
            let t = p.summary.total;
            rows.push([
                String::new(),
                "total".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                bytes(t.server_bytes),
                bytes(t.client_bytes),
                t.rounds.to_string(),
            ]);
            out.push_str(&table(
                &rows,
                &[true, false, false, false, false, false, true, true, true],
            ));
        }
        out.push('\n');
        out.push_str(&self.summary_tables());
        out
    }

    fn summary_text(&self) -> String {
        let mut out = self.header();
        out.push('\n');
        out.push_str(&self.summary_tables());
        out
    }

    fn summary_tables(&self) -> String {
        let mut out = String::new();
        for (n, p) in self.programs.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "{}", p.title);
            let mut rows = vec![[
                "op class", "bytes", "share", "rounds", "share", "S→C", "C→S", "LAN s", "WAN s",
            ]
            .map(String::from)];
            let line = |name: &str, c: &cost::Cost| {
                let e = LinkEstimate::of(c.bytes(), c.rounds);
                [
                    name.to_string(),
                    bytes(c.bytes()),
                    percent(p.summary.bytes_share(c)),
                    c.rounds.to_string(),
                    percent(p.summary.rounds_share(c)),
                    bytes(c.server_bytes),
                    bytes(c.client_bytes),
                    format!("{:.3}", e.lan_s),
                    format!("{:.3}", e.wan_s),
                ]
            };
            for (class, c) in &p.summary.classes {
                rows.push(line(class.name(), c));
            }
            rows.push(line("total", &p.summary.total));
            let right = [false, true, true, true, true, true, true, true, true];
            out.push_str(&table(&rows, &right));
        }
        out.push_str(&self.choices_text());
        out
    }
}

/// Whether the instruction reads the client's tokens: a kind that does, with no inputs.
fn reads_client_tokens(ins: &Instruction) -> bool {
    ins.inputs.is_empty()
        && ins
            .op
            .as_ref()
            .is_some_and(|op| kind(op).reads_client_tokens())
}

/// Bytes in decimal units: `512 B`, `12.3 kB`, `4.56 MB`, `1.23 GB`.
pub fn bytes(b: u64) -> String {
    let x = b as f64;
    if b < 1000 {
        format!("{b} B")
    } else if x < 1e6 {
        format!("{:.1} kB", x / 1e3)
    } else if x < 1e9 {
        format!("{:.2} MB", x / 1e6)
    } else {
        format!("{:.2} GB", x / 1e9)
    }
}

fn percent(x: f64) -> String {
    format!("{x:.1}%")
}

/// Columns padded to their widest cell; `right[i]` right-aligns column i. Trailing spaces are
/// trimmed.
fn table<const N: usize>(rows: &[[String; N]], right: &[bool; N]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
