//! `LayerNorm`: the normalisation of each row, γ and β folded into the next linear layer (plan
//! message [`plan::LayerNorm`]). Two-party execution: `runtime/src/exec/ops/layernorm.rs`.

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::convert;
use crate::fixed::semantics;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{layernorm, part, CostInput, OpClass, Part};
use crate::plan::{self, Plan};

pub struct LayerNorm<'a>(pub &'a plan::LayerNorm);

impl InstructionKind for LayerNorm<'_> {
    fn name(&self) -> &'static str {
        "LayerNorm"
    }

    fn class(&self) -> OpClass {
        OpClass::LayerNorm
    }

    fn attributes(&self, _plan: &Plan) -> String {
        let n = self.0;
        format!(
            "n={} r1={} r2={} f_rho={}{}",
            n.n,
            n.r1,
            n.r2,
            n.f_rho,
            if n.prepared { " prepared" } else { "" }
        )
    }

    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let n = self.0;
        let width = if n.n > 0 { n.n } else { at.input_cols() };
        let b = layernorm(at.ring_bits(), n, at.sizes.rows, width);
        vec![part(OpClass::LayerNorm, b)]
    }

    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let l = self.0;
        let x = sim.input(s, 0)?;
        let p = convert::layernorm_from_plan(l);
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks(l.n.max(1) as usize) {
            let y = semantics::layernorm_row(row, &p).map_err(|e| s.fail(e.to_string()))?;
            for v in y {
                out.push(s.check(v as i128)?);
            }
        }
        s.put(out)?;
        Ok(None)
    }
}
