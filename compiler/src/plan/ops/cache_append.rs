//! `CacheAppend`: the input rows appended to a persistent cache register (the KV cache); local
//! (plan message [`crate::plan::CacheAppend`]). Two-party execution:
//! `runtime/src/exec/ops/cache_append.rs`.

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{part, Bits, CostInput, OpClass, Part};
use crate::plan::Plan;

pub struct CacheAppend;

impl InstructionKind for CacheAppend {
    fn name(&self) -> &'static str {
        "CacheAppend"
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
        sim.cache.entry(s.output()?).or_default().extend(x);
        Ok(None)
    }
}
