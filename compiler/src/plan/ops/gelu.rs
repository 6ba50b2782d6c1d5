//! `Gelu`: GELU as a linear spline with public tables, elementwise (plan message
//! [`plan::Gelu`]). Two-party execution: `runtime/src/exec/ops/gelu.rs`.

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::convert;
use crate::fixed::semantics;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{gelu_layer, part, prefill_gelu, CostInput, OpClass, Part};
use crate::plan::{self, Plan};

pub struct Gelu<'a>(pub &'a plan::Gelu);

impl InstructionKind for Gelu<'_> {
    fn name(&self) -> &'static str {
        "Gelu"
    }

    fn class(&self) -> OpClass {
        OpClass::Gelu
    }

    fn attributes(&self, _plan: &Plan) -> String {
        let g = self.0;
        format!(
            "{} pieces on ±{} @{}{}",
            1u64 << g.pieces_log2.min(63),
            1u64 << g.alpha_log2.min(63),
            g.frac,
            if g.prepared { " prepared" } else { "" }
        )
    }

    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let elements = at.sizes.rows.saturating_mul(at.input_cols());
        // The prefill (no past positions) prepares its GELUs at the request where that pays.
        let b = if at.sizes.past == 0 {
            prefill_gelu(at.ring_bits(), self.0, elements).0
        } else {
            gelu_layer(at.ring_bits(), self.0, elements)
        };
        vec![part(OpClass::Gelu, b)]
    }

    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let x = sim.input(s, 0)?;
        let tables = convert::gelu_from_plan(self.0);
        let mut out = Vec::with_capacity(x.len());
        for &v in &x {
            let y = semantics::gelu(v, &tables).map_err(|e| s.fail(e.to_string()))?;
            out.push(s.check(y as i128)?);
        }
        s.put(out)?;
        Ok(None)
    }
}
