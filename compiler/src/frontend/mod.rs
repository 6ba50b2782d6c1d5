//! Front ends: each turns a model description into an IR graph.

pub mod dsl;
pub mod onnx;
pub mod weights;
pub mod wire_guard;
