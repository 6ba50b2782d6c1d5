//! Fixed-point compilation: calibration, scale selection, lowering to a plan, and the plan's
//! cleartext integer semantics.

pub mod accuracy;
pub mod calibrate;
mod compile;
pub mod convert;
pub mod lower;
pub mod prepare;
pub mod semantics;
pub mod simulate;

pub use compile::{
    compile, default_prompts, tokenizer_for, Compiled, Options, DEFAULT_PREPROCESS_TOKENS,
    MAX_RING_BITS, RING_MARGIN_BITS,
};
