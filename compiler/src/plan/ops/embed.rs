//! `Embed`: the private embedding lookup, row r = wte[token_r] + wpe[position_r] (plan message
//! [`plan::Embed`]). Two-party execution: `runtime/src/exec/ops/embed.rs`.

use super::{weight_label, InstructionKind};
use crate::error::{CompileError, Result};
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{part, weight_product, CostInput, OpClass, Part};
use crate::plan::{self, prepared_name, Linear, Plan};
use std::fmt::Write;

pub struct Embed<'a>(pub &'a plan::Embed);

impl InstructionKind for Embed<'_> {
    fn name(&self) -> &'static str {
        "Embed"
    }

    fn class(&self) -> OpClass {
        OpClass::Embedding
    }

    fn attributes(&self, plan: &Plan) -> String {
        let e = self.0;
        let mut s = format!(
            "tokens={} positions={}",
            weight_label(plan, e.token_table),
            weight_label(plan, e.position_table)
        );
        if e.prepared != Linear::ONLINE {
            let _ = write!(s, " {}", prepared_name(e.prepared));
        }
        s
    }

    /// The client's one-hot rows [rows × V], encrypted, times the table [V × C] (Iron §3); the
    /// public position rows are added by the server to its share.
    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let e = self.0;
        let (l, rows) = (at.ring_bits(), at.sizes.rows);
        let (v, c) = at.weight_shape(e.token_table);
        let mm = weight_product(e.prepared, rows, v, c, l);
        vec![part(OpClass::Embedding, mm)]
    }

    /// The token table's rows of the tokens plus the position table's rows.
    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let e = self.0;
        let c = sim.cols(s.output()?);
        let vocab = sim.plan.model.as_ref().map_or(0, |m| m.vocab);
        let past = sim.positions;
        let (te, pe) = (
            &sim.weights[e.token_table as usize],
            &sim.weights[e.position_table as usize],
        );
        let mut out = Vec::with_capacity(s.t() * c);
        for (r, &tok) in s.tokens.iter().enumerate() {
            if tok < 0 || tok as u64 >= vocab {
                return Err(CompileError::Input(format!(
                    "token id {tok} outside the vocabulary of {vocab}"
                )));
            }
            let (tr, pr) = (tok as usize * c, (past + r) * c);
            for j in 0..c {
                out.push(s.check(te[tr + j] as i128 + pe[pr + j] as i128)?);
            }
        }
        s.put(out)?;
        Ok(None)
    }

    fn reads_client_tokens(&self) -> bool {
        true
    }
}
