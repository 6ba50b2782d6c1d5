//! Errors of the compiler. Each names the place (file:line:col, ONNX node, IR node) and, where
//! there is one, a hint.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CompileError {
    #[error("{path}: cannot read or write")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A malformed or hostile ONNX file.
    #[error("{path}: not a valid ONNX model: {reason}")]
    OnnxFormat { path: String, reason: String },
    /// An operation the importer does not take.
    #[error("{path}: ONNX node '{node}' uses operator {op_type} (domain '{domain}'), which ciphergpt does not support; hint: {hint}")]
    UnsupportedOp {
        path: String,
        node: String,
        op_type: String,
        domain: String,
        hint: String,
    },
    /// Anything else wrong with one ONNX node (attributes, inputs).
    #[error("{path}: ONNX node '{node}' ({op_type}): {reason}")]
    OnnxNode {
        path: String,
        node: String,
        op_type: String,
        reason: String,
    },
    /// A DSL syntax or type error, located.
    #[error("{path}:{line}:{col}: {message} (at `{snippet}`)")]
    Dsl {
        path: String,
        line: usize,
        col: usize,
        message: String,
        snippet: String,
    },
    /// A shape or type error found by shape inference, naming the IR node.
    #[error("{source_file}: {node}: {reason}")]
    Shape {
        source_file: String,
        node: String,
        reason: String,
    },
    /// A graph the passes could not bring into the high-level form.
    #[error("{source_file}: {node}: {reason}; hint: {hint}")]
    Unfused {
        source_file: String,
        node: String,
        reason: String,
        hint: String,
    },
    /// Evaluation failed at a node (float interpreter).
    #[error("{source_file}: {node}: {reason}")]
    Eval {
        source_file: String,
        node: String,
        reason: String,
    },
    /// Weights file problems (safetensors).
    #[error("{path}: {reason}")]
    Weights { path: String, reason: String },
    /// A plan or weights file that cannot be used (version, hash, damage).
    #[error("{path}: {reason}")]
    Plan { path: String, reason: String },
    /// Bad user input to a command (token ids, options).
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = CompileError> = std::result::Result<T, E>;
