//! `Sample`: the next token from the logits, greedy or top-K sampling, revealed to the client
//! only (plan message [`plan::Sample`]). Two-party execution: `runtime/src/exec/ops/sample.rs`
//! (the token choice itself in `runtime/src/exec/sampling.rs`).

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::convert;
use crate::fixed::semantics;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{part, sample, CostInput, OpClass, Part};
use crate::plan::{self, Plan};
use rand::RngCore;

pub struct Sample<'a>(pub &'a plan::Sample);

impl InstructionKind for Sample<'_> {
    fn name(&self) -> &'static str {
        "Sample"
    }

    fn class(&self) -> OpClass {
        OpClass::Sampling
    }

    fn attributes(&self, _plan: &Plan) -> String {
        match self.0.top_k {
            0 | 1 => "greedy; revealed to the client".into(),
            k => format!(
                "top-{k}, T {:.3}; revealed to the client",
                self.0.temperature()
            ),
        }
    }

    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let b = sample(at.ring_bits(), at.input_cols(), self.0);
        vec![part(OpClass::Sampling, b)]
    }

    /// The token, from the last logits the program computed.
    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let z = sim.last_logits.last().cloned().unwrap_or_default();
        let token = pick(sim, self.0, &z).map_err(|e| s.fail(e.to_string()))?;
        Ok(Some(token))
    }
}

/// The token `Sample` picks from the logits `z`: the argmax for K = 1, else a draw from the top
/// K in the order of [`semantics::top_k`] (the two-party protocol draws from the same
/// distribution over a shuffled order, so single tokens agree only in distribution).
fn pick(sim: &mut Simulator<'_>, sp: &plan::Sample, z: &[i64]) -> semantics::SemResult<usize> {
    let k = sp.top_k.max(1) as usize;
    if k == 1 {
        return semantics::argmax(z);
    }
    let tables = sp
        .softmax
        .as_ref()
        .map(convert::softmax_from_plan)
        .ok_or_else(|| semantics::SemanticsError::new("sample", "no softmax tables"))?;
    let idx = semantics::top_k(z, k);
    let values: Vec<i64> = idx.iter().map(|&i| z[i]).collect();
    let w = semantics::sample_bits(tables.frac_out);
    let u = sim.sampling.next_u64() >> (64 - w);
    let pos =
        semantics::sample_top_k(&values, u64::from(sp.inv_temperature), sp.shift, &tables, u)?;
    Ok(idx[pos])
}
