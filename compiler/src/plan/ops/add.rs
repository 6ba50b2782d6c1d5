//! `Add`: the elementwise sum of two registers (the residual connections); local (plan
//! message [`crate::plan::Add`]). Two-party execution: `runtime/src/exec/ops/add.rs`.

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{part, Bits, CostInput, OpClass, Part};
use crate::plan::Plan;

pub struct Add;

impl InstructionKind for Add {
    fn name(&self) -> &'static str {
        "Add"
    }

    fn class(&self) -> OpClass {
        OpClass::Local
    }

    fn attributes(&self, _plan: &Plan) -> String {
        "local".into()
    }

    fn estimate(&self, _at: &CostInput<'_>) -> Vec<Part> {
        vec![part(OpClass::Local, Bits::ZERO)]
    }

    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let (a, b) = (sim.input(s, 0)?, sim.input(s, 1)?);
        let mut out = Vec::with_capacity(a.len());
        for (&x, &y) in a.iter().zip(&b) {
            out.push(s.check(x as i128 + y as i128)?);
        }
        s.put(out)?;
        Ok(None)
    }
}
