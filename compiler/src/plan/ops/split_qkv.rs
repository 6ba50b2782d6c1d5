//! `SplitQkv`: a `[rows, 3C]` register split into q, k and v, the three column blocks of each
//! row; local (plan message [`crate::plan::SplitQkv`]). Two-party execution:
//! `runtime/src/exec/ops/split_qkv.rs`.

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{part, Bits, CostInput, OpClass, Part};
use crate::plan::Plan;

pub struct SplitQkv;

impl InstructionKind for SplitQkv {
    fn name(&self) -> &'static str {
        "SplitQkv"
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
        let x = sim.input(s, 0)?;
        let c3 = sim.cols(s.input_reg(0)?);
        let c = c3 / 3;
        for (part, &o) in s.ins.outputs.iter().enumerate() {
            let v: Vec<i64> = x
                .chunks(c3)
                .flat_map(|row| row[part * c..(part + 1) * c].to_vec())
                .collect();
            s.regs.insert(o, v);
        }
        Ok(None)
    }
}
