//! ciphergpt compiler: front ends (ONNX, DSL) into one graph IR, passes, and the float
//! reference interpreter. See `docs/architecture.md`.

pub mod error;
pub mod fixed;
pub mod frontend;
pub mod fuzz;
pub mod interp;
pub mod ir;
pub mod model;
pub mod passes;
pub mod plan;
pub mod tensor;

pub use error::{CompileError, Result};
