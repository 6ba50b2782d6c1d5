//! `inspect`: a plan as a listing, JSON or a DOT graph, with the cost model's estimate per
//! instruction, and a summary by op class (as CipherGPT's Table V).
//!
//! The estimate is for a chosen prompt length `T`: the prefill program at `T` rows, and one
//! decode step for the token at position `T` (the cache then holds `T + 1` positions).
//! Register shapes are shown symbolically: `r12[T,768]@12` is register 12 with `T` rows (one per
//! token of the program: `T` in prefill, `1` in a decode step), 768 columns and 12 fractional
//! bits; `P` is the number of cached positions; a score block is `[heads×T,P]`.

use super::cost::{self, OpClass, Part, Sizes, Summary};
use super::link::{LinkEstimate, LAN, WAN};
use super::{
    self as plan, file::short_hash, instruction::Op, prepared_name, Instruction, Plan, Program,
    Rows,
};
use crate::error::{CompileError, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;

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
                match &ins.op {
                    Some(Op::QkT(h)) => {
                        for &o in &ins.outputs {
                            score_heads.insert(o, h.heads);
                        }
                    }
                    Some(Op::Softmax(s)) => {
                        for &r in ins.inputs.iter().chain(&ins.outputs) {
                            score_heads.insert(r, s.heads);
                        }
                    }
                    Some(Op::Pv(h)) => {
                        if let Some(&r) = ins.inputs.first() {
                            score_heads.insert(r, h.heads);
                        }
                    }
                    _ => {}
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

    fn weight(&self, w: u32) -> String {
        let info = &self.plan.weights[w as usize];
        let dims: Vec<String> = info.shape.iter().map(u64::to_string).collect();
        format!("w{w}[{}]@{}", dims.join(","), info.frac_bits)
    }

    fn attributes(&self, ins: &Instruction) -> String {
        match &ins.op {
            Some(Op::Embed(e)) => {
                let mut s = format!(
                    "tokens={} positions={}",
                    self.weight(e.token_table),
                    self.weight(e.position_table)
                );
                if e.prepared != plan::Linear::ONLINE {
                    let _ = write!(s, " {}", prepared_name(e.prepared));
                }
                s
            }
            Some(Op::Linear(l)) | Some(Op::Logits(l)) => {
                let mut s = format!("W={}", self.weight(l.weight));
                if let Some(b) = l.bias {
                    let _ = write!(s, " b={}", self.weight(b));
                }
                if l.shift > 0 {
                    let _ = write!(s, " >>{}", l.shift);
                }
                if l.prepared != plan::Linear::ONLINE {
                    let _ = write!(s, " {}", l.prepared_name());
                }
                s
            }
            Some(Op::QkT(h)) | Some(Op::Pv(h)) => format!("heads={} >>{}", h.heads, h.shift),
            Some(Op::Softmax(s)) => format!(
                "heads={} exp {}×{} @{} → @{}{}",
                s.heads,
                s.exp_hi.len(),
                s.exp_lo.len(),
                s.frac_exp,
                s.frac_out,
                if s.prepared { " prepared" } else { "" }
            ),
            Some(Op::LayerNorm(n)) => format!(
                "n={} r1={} r2={} f_rho={}{}",
                n.n,
                n.r1,
                n.r2,
                n.f_rho,
                if n.prepared { " prepared" } else { "" }
            ),
            Some(Op::Gelu(g)) => format!(
                "{} pieces on ±{} @{}{}",
                1u64 << g.pieces_log2.min(63),
                1u64 << g.alpha_log2.min(63),
                g.frac,
                if g.prepared { " prepared" } else { "" }
            ),
            Some(Op::Sample(sp)) => match sp.top_k {
                0 | 1 => "greedy; revealed to the client".into(),
                k => format!("top-{k}, T {:.3}; revealed to the client", sp.temperature()),
            },
            Some(Op::SplitQkv(_)) | Some(Op::CacheAppend(_)) | Some(Op::Add(_)) => "local".into(),
            None => String::new(),
        }
    }

    fn io(&self, ins: &Instruction, one_row: bool) -> String {
        let side = |regs: &[u32]| -> String {
            regs.iter()
                .map(|&r| self.reg(r, one_row))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let inputs = if matches!(ins.op, Some(Op::Embed(_))) && ins.inputs.is_empty() {
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
        out
    }

    // -----------------------------------------------------------------------------------------
    // JSON.
    // -----------------------------------------------------------------------------------------

    fn json(&self, summary_only: bool) -> String {
        let p = self.plan;
        let plan = JsonPlan {
            source: p.source.clone(),
            format_version: p.format_version,
            ring_bits: p.ring_bits,
            frac_bits: p.frac_bits,
            hash: p.hash.iter().map(|b| format!("{b:02x}")).collect(),
            model: p.model.as_ref().map(|m| JsonModel {
                vocab: m.vocab,
                positions: m.positions,
                width: m.width,
                heads: m.heads,
                layers: m.layers,
            }),
        };
        let program = |pr: &ProgramReport| -> Option<Vec<JsonInstruction>> {
            if summary_only {
                return None;
            }
            let one_row = pr.sizes.rows == 1 && pr.sizes.past > 0;
            Some(
                pr.instructions
                    .iter()
                    .zip(&pr.parts)
                    .enumerate()
                    .map(|(i, (ins, parts))| {
                        let regs = |rs: &[u32]| -> Vec<JsonRegister> {
                            rs.iter()
                                .map(|&r| {
                                    let reg = &p.registers[r as usize];
                                    JsonRegister {
                                        id: r,
                                        name: reg.name.clone(),
                                        shape: self.shape(r, one_row),
                                        frac_bits: reg.frac_bits,
                                        persistent: reg.persistent,
                                    }
                                })
                                .collect()
                        };
                        JsonInstruction {
                            index: i,
                            op: cost::op_name(&ins.op),
                            name: ins.name.clone(),
                            inputs: regs(&ins.inputs),
                            outputs: regs(&ins.outputs),
                            attributes: self.attributes(ins),
                            cost: cost::total(parts),
                            parts: parts
                                .iter()
                                .filter(|x| x.class != OpClass::Local)
                                .copied()
                                .collect(),
                        }
                    })
                    .collect(),
            )
        };
        let summary = |pr: &ProgramReport| JsonSummary {
            rows: pr.sizes.rows,
            past: pr.sizes.past,
            classes: pr
                .summary
                .classes
                .iter()
                .map(|(class, c)| JsonClass {
                    class: *class,
                    cost: *c,
                    bytes: c.bytes(),
                    bytes_share: round2(pr.summary.bytes_share(c)),
                    rounds_share: round2(pr.summary.rounds_share(c)),
                    estimate: LinkEstimate::of(c.bytes(), c.rounds),
                })
                .collect(),
            total: JsonTotal {
                cost: pr.summary.total,
                estimate: LinkEstimate::of(pr.summary.total.bytes(), pr.summary.total.rounds),
            },
        };
        let doc = JsonReport {
            plan,
            tokens: self.tokens,
            prefill: program(&self.programs[0]),
            decode: program(&self.programs[1]),
            summary: JsonSummaries {
                prefill: summary(&self.programs[0]),
                decode: summary(&self.programs[1]),
            },
        };
        let mut s = serde_json::to_string_pretty(&doc).expect("the report serialises");
        s.push('\n');
        s
    }

    // -----------------------------------------------------------------------------------------
    // DOT.
    // -----------------------------------------------------------------------------------------

    fn dot(&self) -> String {
        let mut out = String::from(
            "digraph plan {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
        );
        let _ = writeln!(
            out,
            "  label=\"{}\";\n  labelloc=t;",
            escape(&format!(
                "{}: ring Z_2^{}, estimate at T = {} (prefill) and one decode step at position {}",
                self.plan.source, self.plan.ring_bits, self.tokens, self.tokens
            ))
        );
        let (prefill, decode) = (&self.programs[0], &self.programs[1]);
        let same = prefill.instructions.len() == decode.instructions.len()
            && prefill
                .instructions
                .iter()
                .zip(decode.instructions)
                .all(|(a, b)| a.inputs == b.inputs && a.outputs == b.outputs && a.op == b.op);
        // Registers used by either program.
        let mut used: Vec<u32> = self
            .programs
            .iter()
            .flat_map(|p| p.instructions.iter())
            .flat_map(|i| i.inputs.iter().chain(&i.outputs).copied())
            .collect();
        used.sort_unstable();
        used.dedup();
        for r in used {
            let reg = &self.plan.registers[r as usize];
            let [rows, cols] = self.shape(r, false);
            let shape = if reg.persistent {
                "cylinder"
            } else {
                "ellipse"
            };
            let _ = writeln!(
                out,
                "  r{r} [shape={shape}, label=\"{}\"];",
                escape(&format!(
                    "r{r} {}\n[{rows},{cols}]@{}",
                    reg.name, reg.frac_bits
                ))
            );
        }
        let mut tokens_node = false;
        let programs: Vec<(&ProgramReport, Option<&ProgramReport>)> = if same {
            vec![(prefill, Some(decode))]
        } else {
            vec![(prefill, None), (decode, None)]
        };
        for (p, also) in programs {
            let prefix = if same { "i" } else { &p.key[..1] };
            for (i, (ins, parts)) in p.instructions.iter().zip(&p.parts).enumerate() {
                let c = cost::total(parts);
                let mut label = format!("{i} {}\n{}", cost::op_name(&ins.op), ins.name);
                if c.bytes() > 0 || c.rounds > 0 {
                    let _ = write!(
                        label,
                        "\n{}: {}, {} rounds",
                        p.key,
                        bytes(c.bytes()),
                        c.rounds
                    );
                    if let Some(d) = also {
                        let dc = cost::total(&d.parts[i]);
                        let _ = write!(
                            label,
                            "\ndecode: {}, {} rounds",
                            bytes(dc.bytes()),
                            dc.rounds
                        );
                    }
                }
                let color = match cost::class_of(&ins.op) {
                    OpClass::MatMul => "lightblue",
                    OpClass::Gelu => "orange",
                    OpClass::Softmax => "gold",
                    OpClass::LayerNorm => "palegreen",
                    OpClass::Truncation => "lightpink",
                    OpClass::Embedding => "plum",
                    OpClass::Sampling => "salmon",
                    OpClass::Local => "white",
                };
                let id = format!("{prefix}{i}");
                let _ = writeln!(
                    out,
                    "  {id} [shape=box, style=filled, fillcolor={color}, label=\"{}\"];",
                    escape(&label)
                );
                if matches!(ins.op, Some(Op::Embed(_))) && ins.inputs.is_empty() {
                    if !tokens_node {
                        out.push_str("  tokens [shape=plaintext, label=\"client's tokens\"];\n");
                        tokens_node = true;
                    }
                    let _ = writeln!(out, "  tokens -> {id};");
                }
                for &r in &ins.inputs {
                    let _ = writeln!(out, "  r{r} -> {id};");
                }
                for &r in &ins.outputs {
                    let _ = writeln!(out, "  {id} -> r{r};");
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

#[derive(Serialize)]
struct JsonReport {
    plan: JsonPlan,
    tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefill: Option<Vec<JsonInstruction>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decode: Option<Vec<JsonInstruction>>,
    summary: JsonSummaries,
}

#[derive(Serialize)]
struct JsonPlan {
    source: String,
    format_version: u32,
    ring_bits: u32,
    frac_bits: u32,
    hash: String,
    model: Option<JsonModel>,
}

#[derive(Serialize)]
struct JsonModel {
    vocab: u64,
    positions: u64,
    width: u64,
    heads: u64,
    layers: u64,
}

#[derive(Serialize)]
struct JsonRegister {
    id: u32,
    name: String,
    shape: [String; 2],
    frac_bits: u32,
    persistent: bool,
}

#[derive(Serialize)]
struct JsonInstruction {
    index: usize,
    op: &'static str,
    name: String,
    inputs: Vec<JsonRegister>,
    outputs: Vec<JsonRegister>,
    attributes: String,
    cost: cost::Cost,
    parts: Vec<Part>,
}

#[derive(Serialize)]
struct JsonSummaries {
    prefill: JsonSummary,
    decode: JsonSummary,
}

#[derive(Serialize)]
struct JsonSummary {
    rows: u64,
    past: u64,
    classes: Vec<JsonClass>,
    total: JsonTotal,
}

/// The summary's total: its cost and the link time it takes.
#[derive(Serialize)]
struct JsonTotal {
    #[serde(flatten)]
    cost: cost::Cost,
    estimate: LinkEstimate,
}

#[derive(Serialize)]
struct JsonClass {
    class: OpClass,
    #[serde(flatten)]
    cost: cost::Cost,
    bytes: u64,
    bytes_share: f64,
    rounds_share: f64,
    /// Link time of the bytes (both directions) and rounds on lan and wan.
    estimate: LinkEstimate,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
