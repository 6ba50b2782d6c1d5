//! Each plan instruction kind in one home.
//!
//! One module per kind holds everything the compiler knows of it: its name and op class, its
//! integer semantics as the cleartext simulator runs it (`fixed::simulate`, the oracle, on the
//! primitives of `fixed::semantics`), its cost estimate (on the formulas of `plan::cost`) and
//! its `inspect` attributes. Each module's doc names its two-party execution in the runtime
//! (`runtime/src/exec/ops/<kind>.rs`), whose doc names it back.
//!
//! The readers dispatch through [`kind`]: the simulator ([`InstructionKind::simulate`]), the
//! cost model ([`InstructionKind::estimate`]), `inspect` ([`InstructionKind::attributes`]), and
//! [`Op::name`] and [`Op::class`], which the listing, validation, the runtime's executor and its
//! session report read. A new kind is a module here, its arm in [`kind`], and its file in the
//! runtime's `exec/ops/`.

use super::cost::{CostInput, OpClass, Part};
use super::{instruction::Op, Instruction, Plan};
use crate::error::Result;
use crate::fixed::simulate::{Simulator, Step};

mod add;
mod cache_append;
mod embed;
mod gelu;
mod head_product;
mod layernorm;
mod linear;
mod sample;
mod softmax;
mod split_qkv;

/// What every instruction kind provides.
pub trait InstructionKind {
    /// The operation's name, as listings and reports show it.
    fn name(&self) -> &'static str;

    /// The op class its main part belongs to (its truncation, if any, is
    /// [`OpClass::Truncation`]).
    fn class(&self) -> OpClass;

    /// Its attributes as the `inspect` listing shows them (weights, shifts, tables).
    fn attributes(&self, plan: &Plan) -> String;

    /// The cost model's estimate at the given sizes, as parts by op class (each part's bits
    /// rounded up to bytes). Never panics: a malformed reference costs nothing.
    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part>;

    /// Run the instruction in the clear on its integer semantics; the token, for `Sample`.
    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>>;

    /// The registers of the instruction that hold per-head score blocks, with their head
    /// count (`inspect` shows their shapes as `[heads×T,P]`).
    fn score_registers(&self, _ins: &Instruction) -> Vec<(u32, u32)> {
        Vec::new()
    }

    /// Whether it reads the client's tokens (rather than a register) when it has no inputs.
    fn reads_client_tokens(&self) -> bool {
        false
    }
}

/// The home of an operation's kind.
pub fn kind(op: &Op) -> Box<dyn InstructionKind + '_> {
    match op {
        Op::Embed(e) => Box::new(embed::Embed(e)),
        Op::Linear(l) => Box::new(linear::Linear(l)),
        Op::Logits(l) => Box::new(linear::Logits(l)),
        Op::SplitQkv(_) => Box::new(split_qkv::SplitQkv),
        Op::CacheAppend(_) => Box::new(cache_append::CacheAppend),
        Op::QkT(h) => Box::new(head_product::QkT(h)),
        Op::Softmax(s) => Box::new(softmax::Softmax(s)),
        Op::Pv(h) => Box::new(head_product::Pv(h)),
        Op::LayerNorm(n) => Box::new(layernorm::LayerNorm(n)),
        Op::Gelu(g) => Box::new(gelu::Gelu(g)),
        Op::Add(_) => Box::new(add::Add),
        Op::Sample(s) => Box::new(sample::Sample(s)),
    }
}

/// Weight `w` as `inspect` shows it: `w3[768,2304]@12` (id, shape, fractional bits).
fn weight_label(plan: &Plan, w: u32) -> String {
    let info = &plan.weights[w as usize];
    let dims: Vec<String> = info.shape.iter().map(u64::to_string).collect();
    format!("w{w}[{}]@{}", dims.join(","), info.frac_bits)
}
