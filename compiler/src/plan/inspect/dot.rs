//! `inspect --format dot`: the plan as a Graphviz graph, registers as nodes between the
//! instructions, coloured by op class.

use super::{bytes, cost, reads_client_tokens, OpClass, ProgramReport, Report};
use std::fmt::Write;

impl Report<'_> {
    pub(super) fn dot(&self) -> String {
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
                if reads_client_tokens(ins) {
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

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
