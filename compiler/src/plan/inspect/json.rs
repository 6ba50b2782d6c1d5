//! `inspect --format json`: the report as one JSON document.

use super::{cost, OpClass, Part, ProgramReport, Report};
use crate::plan::link::LinkEstimate;
use serde::Serialize;

impl Report<'_> {
    pub(super) fn json(&self, summary_only: bool) -> String {
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
            choices: self.choices(),
        };
        let mut s = serde_json::to_string_pretty(&doc).expect("the report serialises");
        s.push('\n');
        s
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
    /// The decode program's kinds that can be prepared: online alone, prepared, the choice.
    choices: Vec<super::preparation::ChoiceRow>,
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
