//! Operations of the IR.
//!
//! Two levels share one enum. The ONNX-level operations follow ONNX semantics (opset 14–23) as
//! far as GPT-2 exports need them; optional ONNX inputs keep their slot numbers. The high-level
//! operations are what fusion produces, what the DSL writes, and what lowering consumes.

use crate::tensor::{DType, Tensor};
use std::fmt;

/// Which formula a GELU uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeluForm {
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (GPT-2's `gelu_new`).
    Tanh,
    /// `0.5·x·(1 + erf(x/√2))`.
    Erf,
}

/// How a causal mask is encoded where a shape-only subgraph produced it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaskKind {
    /// `true` where position `j ≤ i` may be attended.
    Allowed,
    /// `true` where position `j > i` is masked.
    Blocked,
    /// `0` where allowed, the given (very negative) value where masked.
    Additive(f32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // ----- sources
    /// A graph input (token ids).
    Input {
        name: String,
    },
    /// A constant: a weight, or a small public value.
    Const(Tensor),

    // ----- ONNX-level operations
    Identity,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Sqrt,
    Tanh,
    Erf,
    Neg,
    Exp,
    Reciprocal,
    Max,
    Min,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Not,
    IsNaN,
    Where,
    Cast {
        to: DType,
    },
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    Transpose {
        perm: Option<Vec<usize>>,
    },
    /// Inputs: data, shape.
    Reshape {
        allowzero: bool,
    },
    /// Inputs: data, axes (opset 13+); or `axes` from the attribute (older opsets).
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
    },
    /// Inputs: data, split sizes (optional). Outputs: `outputs` pieces.
    Split {
        axis: i64,
        split: Option<Vec<i64>>,
        outputs: usize,
    },
    /// Inputs: data, starts, ends, axes (optional), steps (optional).
    Slice,
    Gather {
        axis: i64,
    },
    GatherND {
        batch_dims: i64,
    },
    Shape {
        start: i64,
        end: Option<i64>,
    },
    ConstantOfShape {
        value: Tensor,
    },
    /// Inputs: data, shape.
    Expand,
    /// Inputs: start, limit, delta.
    Range,
    /// Inputs: data, axis.
    CumSum {
        exclusive: bool,
        reverse: bool,
    },
    /// Inputs: data, k (optional).
    Trilu {
        upper: bool,
    },
    /// Inputs: data, axes (optional, opset 18). `axes` is the attribute of older opsets.
    ReduceMean {
        axes: Option<Vec<i64>>,
        keepdims: bool,
    },
    ReduceSum {
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    Softmax {
        axis: i64,
    },
    /// Inputs: x, scale, bias (optional).
    LayerNormalization {
        axis: i64,
        epsilon: f32,
    },
    /// The standard ONNX `Attention` (opset 23). Inputs: Q, K, V (`[B, H, S, D]`, or
    /// `[B, S, H·D]` with the head counts given), attention mask (optional: boolean, `true`
    /// where allowed, or additive). Output: `Y` in the layout of Q. `scale` defaults to `1/√D`.
    OnnxAttention {
        is_causal: bool,
        scale: Option<f32>,
        q_heads: Option<usize>,
        kv_heads: Option<usize>,
    },

    // ----- shape-only values recognised by constant folding (input: the token ids, read for
    //       their length only)
    /// An i64 vector (or scalar, when `scalar`) whose entries are affine in `T`: folded shape
    /// arithmetic such as `[1, T, 12, 64]`.
    SymShape {
        dims: Vec<crate::ir::Dim>,
        scalar: bool,
    },
    /// `[0, 1, …, T−1]`, shaped `[1, T]`: the position index of each token.
    Positions,
    /// The causal mask `[1, 1, T, T]` of a sequence of length `T`, in the encoding `kind`.
    CausalMask {
        kind: MaskKind,
    },

    // ----- high-level operations (fused; what lowering consumes)
    /// Inputs: token ids `[1, T]`, token table `[V, C]`, position table `[P, C]`.
    /// Output: `wte[ids] + wpe[0..T]`, `[1, T, C]`.
    Embedding,
    /// LayerNorm over the last axis. Inputs: x, gamma, beta.
    LayerNorm {
        eps: f32,
    },
    /// `x·W + b` over the last axis with a server-held weight. Inputs: x `[…, K]`, W `[K, N]`, b `[N]`.
    Linear,
    Gelu {
        form: GeluForm,
    },
    /// Causal multi-head self-attention on the packed projection `qkv` `[1, T, 3C]`:
    /// `softmax(scale·q·kᵀ + causal mask)·v` per head, heads merged back to `[1, T, C]`.
    Attention {
        heads: usize,
        scale: f32,
    },
    /// Residual connection: sum of two activations.
    ResidualAdd,
    /// Vocabulary projection `x·Wᵀ` with the token table `W` `[V, C]`. Output `[1, T, V]`.
    Logits,
}

impl Op {
    /// The operation's name as printed in the IR.
    pub fn kind(&self) -> &'static str {
        use Op::*;
        match self {
            Input { .. } => "input",
            Const(_) => "const",
            Identity => "Identity",
            Add => "Add",
            Sub => "Sub",
            Mul => "Mul",
            Div => "Div",
            Pow => "Pow",
            Sqrt => "Sqrt",
            Tanh => "Tanh",
            Erf => "Erf",
            Neg => "Neg",
            Exp => "Exp",
            Reciprocal => "Reciprocal",
            Max => "Max",
            Min => "Min",
            Equal => "Equal",
            Less => "Less",
            LessOrEqual => "LessOrEqual",
            Greater => "Greater",
            GreaterOrEqual => "GreaterOrEqual",
            And => "And",
            Or => "Or",
            Not => "Not",
            IsNaN => "IsNaN",
            Where => "Where",
            Cast { .. } => "Cast",
            MatMul => "MatMul",
            Gemm { .. } => "Gemm",
            Transpose { .. } => "Transpose",
            Reshape { .. } => "Reshape",
            Unsqueeze { .. } => "Unsqueeze",
            Squeeze { .. } => "Squeeze",
            Concat { .. } => "Concat",
            Split { .. } => "Split",
            Slice => "Slice",
            Gather { .. } => "Gather",
            GatherND { .. } => "GatherND",
            Shape { .. } => "Shape",
            ConstantOfShape { .. } => "ConstantOfShape",
            Expand => "Expand",
            Range => "Range",
            CumSum { .. } => "CumSum",
            Trilu { .. } => "Trilu",
            ReduceMean { .. } => "ReduceMean",
            ReduceSum { .. } => "ReduceSum",
            Softmax { .. } => "Softmax",
            LayerNormalization { .. } => "LayerNormalization",
            OnnxAttention { .. } => "Attention",
            SymShape { .. } => "sym_shape",
            Positions => "positions",
            CausalMask { .. } => "causal_mask",
            Embedding => "embedding",
            LayerNorm { .. } => "layer_norm",
            Linear => "linear",
            Gelu { .. } => "gelu",
            Attention { .. } => "attention",
            ResidualAdd => "residual_add",
            Logits => "logits",
        }
    }

    pub fn num_outputs(&self) -> usize {
        match self {
            Op::Split { outputs, .. } => *outputs,
            _ => 1,
        }
    }

    /// Whether this is one of the high-level operations that lowering accepts.
    pub fn is_high_level(&self) -> bool {
        matches!(
            self,
            Op::Input { .. }
                | Op::Const(_)
                | Op::Embedding
                | Op::LayerNorm { .. }
                | Op::Linear
                | Op::Gelu { .. }
                | Op::Attention { .. }
                | Op::ResidualAdd
                | Op::Logits
        )
    }

    /// Whether the operation's output depends only on the shapes of its inputs, never on
    /// their values.
    pub fn reads_only_shape(&self) -> bool {
        matches!(
            self,
            Op::Shape { .. } | Op::SymShape { .. } | Op::Positions | Op::CausalMask { .. }
        )
    }

    /// Attributes, printed after the operation name (empty when there are none).
    pub fn attrs(&self) -> String {
        use Op::*;
        let list = |v: &Option<Vec<i64>>| match v {
            Some(v) => format!("{v:?}"),
            None => "input".to_string(),
        };
        match self {
            Cast { to } => format!("to={to}"),
            Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => format!("alpha={alpha} beta={beta} trans_a={trans_a} trans_b={trans_b}"),
            Transpose { perm } => match perm {
                Some(p) => format!("perm={p:?}"),
                None => "perm=reverse".into(),
            },
            Reshape { allowzero } if *allowzero => "allowzero".into(),
            Unsqueeze { axes } | Squeeze { axes } => format!("axes={}", list(axes)),
            Concat { axis } | Gather { axis } | Softmax { axis } => format!("axis={axis}"),
            Split {
                axis,
                split,
                outputs,
            } => format!("axis={axis} split={} outputs={outputs}", list(split)),
            GatherND { batch_dims } => format!("batch_dims={batch_dims}"),
            Shape { start, end } => format!("start={start} end={end:?}"),
            ConstantOfShape { value } => format!(
                "value={}:{}",
                super::print::literal(value),
                super::TensorType::known(value.dtype(), value.shape())
            ),
            CumSum { exclusive, reverse } => format!("exclusive={exclusive} reverse={reverse}"),
            Trilu { upper } => format!("upper={upper}"),
            ReduceMean { axes, keepdims } => format!("axes={} keepdims={keepdims}", list(axes)),
            ReduceSum {
                axes,
                keepdims,
                noop_with_empty_axes,
            } => format!(
                "axes={} keepdims={keepdims} noop_with_empty_axes={noop_with_empty_axes}",
                list(axes)
            ),
            LayerNormalization { axis, epsilon } => format!("axis={axis} epsilon={epsilon:e}"),
            OnnxAttention {
                is_causal,
                scale,
                q_heads,
                kv_heads,
            } => format!(
                "is_causal={is_causal} scale={scale:?} q_heads={q_heads:?} kv_heads={kv_heads:?}"
            ),
            SymShape { dims, scalar } => {
                let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
                if *scalar {
                    format!("value={}", d.join(","))
                } else {
                    format!("value=[{}]", d.join(","))
                }
            }
            CausalMask { kind } => match kind {
                MaskKind::Allowed => "allowed".into(),
                MaskKind::Blocked => "blocked".into(),
                MaskKind::Additive(v) => format!("additive={v:e}"),
            },
            LayerNorm { eps } => format!("eps={eps:e}"),
            Gelu { form } => match form {
                GeluForm::Tanh => "form=tanh".into(),
                GeluForm::Erf => "form=erf".into(),
            },
            Attention { heads, scale } => format!("heads={heads} scale={scale}"),
            _ => String::new(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.attrs();
        if a.is_empty() {
            f.write_str(self.kind())
        } else {
            write!(f, "{} {{{a}}}", self.kind())
        }
    }
}
