//! `Softmax`: the causal softmax of every score row, per head (plan message
//! [`plan::Softmax`]). Two-party execution: `runtime/src/exec/ops/softmax.rs`.

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::convert;
use crate::fixed::semantics;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{part, softmax, CostInput, OpClass, Part};
use crate::plan::{self, Instruction, Plan};

pub struct Softmax<'a>(pub &'a plan::Softmax);

impl InstructionKind for Softmax<'_> {
    fn name(&self) -> &'static str {
        "Softmax"
    }

    fn class(&self) -> OpClass {
        OpClass::Softmax
    }

    fn attributes(&self, _plan: &Plan) -> String {
        let s = self.0;
        format!(
            "heads={} exp {}×{} @{} → @{}{}",
            s.heads,
            s.exp_hi.len(),
            s.exp_lo.len(),
            s.frac_exp,
            s.frac_out,
            if s.prepared { " prepared" } else { "" }
        )
    }

    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        vec![part(
            OpClass::Softmax,
            softmax(at.ring_bits(), self.0, at.sizes),
        )]
    }

    /// Each head's causal score rows.
    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let sm = self.0;
        let x = sim.input(s, 0)?;
        let tables = convert::softmax_from_plan(sm);
        let (t, past) = (s.t(), sim.positions);
        let npos = past + t;
        let mut out = vec![0i64; x.len()];
        for hh in 0..sm.heads as usize {
            for r in 0..t {
                let base = (hh * t + r) * npos;
                let row = &x[base..base + past + r + 1];
                let p = semantics::softmax_row(row, &tables).map_err(|e| s.fail(e.to_string()))?;
                for (j, v) in p.into_iter().enumerate() {
                    out[base + j] = s.check(v as i128)?;
                }
            }
        }
        s.put(out)?;
        Ok(None)
    }

    /// Its inputs and outputs.
    fn score_registers(&self, ins: &Instruction) -> Vec<(u32, u32)> {
        ins.inputs
            .iter()
            .chain(&ins.outputs)
            .map(|&r| (r, self.0.heads))
            .collect()
    }
}
