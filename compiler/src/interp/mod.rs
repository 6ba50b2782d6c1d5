//! Interpreters of the IR: the float reference.

pub mod float;
pub mod kernels;
pub mod onnx_attention;
