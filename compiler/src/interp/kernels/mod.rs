//! The float semantics of every IR operation on concrete tensors.
//!
//! ONNX-level operations follow the ONNX specification (opset 14–23) for the cases GPT exports
//! use; the high-level operations compute what their doc comments in `ir::op` say. Arithmetic is
//! in f32 as ONNX Runtime does it; reductions (means, variances, softmax sums) accumulate in f64.
//! Errors are plain strings; the caller adds the node's name.
//!
//! [`eval`] dispatches each operation to its family:
//! - `elementwise`: arithmetic, comparisons, logic, `Where`, `Cast`, the unary functions, GELU;
//! - `matmul`: `MatMul`, `Gemm`, and the GPT `linear` and `logits`;
//! - `layout`: what moves elements without computing them: `Reshape`, `Transpose`,
//!   `Squeeze`, `Unsqueeze`, `Concat`, `Split`, `Expand`;
//! - `indexing`: what picks elements by index: `Slice`, `Gather`, `GatherND`, `Trilu`;
//! - `reductions`: what works along an axis: `ReduceMean`, `ReduceSum`, `CumSum`, `Softmax`,
//!   `LayerNormalization` and the GPT `layer_norm`;
//! - `shape_values`: values made from shapes and lengths, not from elements: `Shape`,
//!   `ConstantOfShape`, `Range`, and the shape-only `sym_shape`, `positions`, `causal_mask`;
//! - `gpt`: the GPT `embedding` and causal multi-head `attention` (the standard ONNX `Attention`
//!   operator is in `interp::onnx_attention`).

use super::onnx_attention;
use crate::ir::Op;
use crate::tensor::Tensor;
use ndarray::ArrayD;
use std::cmp::Ordering;

/// Rebuilds a tensor of any element type: `$body` computes the new array from the array `$a`.
macro_rules! each_dtype {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => Tensor::F32($body),
            Tensor::I64($a) => Tensor::I64($body),
            Tensor::Bool($a) => Tensor::Bool($body),
        }
    };
}

mod elementwise;
mod gpt;
mod indexing;
mod layout;
mod matmul;
mod reductions;
mod shape_values;

pub use elementwise::{broadcast_shape, cast, gelu};
pub use layout::reshape_target;
pub use matmul::matmul;
pub use reductions::softmax;
pub use shape_values::causal_mask;

use elementwise::{compare, logic, unary_f32, where_};

type R<T> = std::result::Result<T, String>;

/// The most elements a kernel makes from a shape or a range given as values (ConstantOfShape,
/// Expand, Range), or by broadcasting or a matrix product (an outer product of two vectors
/// squares their length): 2^30, 4 GiB of f32, far beyond any tensor a GPT export computes. A
/// file's values are not sizes to trust: without the bound, a 100-byte model asked for
/// terabytes and the failed allocation aborted the process.
pub const MAX_MADE_ELEMENTS: usize = 1 << 30;

/// `Err` when a tensor of `shape` would hold more than [`MAX_MADE_ELEMENTS`].
fn bounded(what: &str, shape: &[usize]) -> R<()> {
    match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_MADE_ELEMENTS => Ok(()),
        n => Err(format!(
            "{what}: shape {shape:?} of {} elements, more than 2^30",
            n.map_or("over 2^64".into(), |n| n.to_string())
        )),
    }
}

/// An operation's inputs by slot; an absent optional input is `None`.
#[derive(Clone, Copy)]
struct Inputs<'a, 't>(&'a [Option<&'t Tensor>]);

impl<'t> Inputs<'_, 't> {
    /// Input `i`, which the operation needs.
    fn arg(self, i: usize) -> R<&'t Tensor> {
        self.opt(i).ok_or_else(|| format!("input {i} is missing"))
    }

    /// Input `i` if it is present.
    fn opt(self, i: usize) -> Option<&'t Tensor> {
        self.0.get(i).copied().flatten()
    }

    /// Input `i` as f32 values.
    fn f32(self, i: usize) -> R<&'t ArrayD<f32>> {
        f32_of(self.arg(i)?)
    }

    /// The inputs that are present, in slot order.
    fn present(self) -> Vec<&'t Tensor> {
        (0..self.0.len()).filter_map(|i| self.opt(i)).collect()
    }
}

/// Evaluate one operation. `inputs` are by slot; absent optional inputs are `None`.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> R<Vec<Tensor>> {
    let x = Inputs(inputs);
    let out = match op {
        Op::Input { name } => return Err(format!("graph input '{name}' has no value")),
        Op::Const(t) => t.clone(),
        Op::Identity => x.arg(0)?.clone(),
        Op::Add | Op::ResidualAdd => elementwise::add(x.arg(0)?, x.arg(1)?)?,
        Op::Sub => elementwise::sub(x.arg(0)?, x.arg(1)?)?,
        Op::Mul => elementwise::mul(x.arg(0)?, x.arg(1)?)?,
        Op::Div => elementwise::div(x.arg(0)?, x.arg(1)?)?,
        Op::Pow => {
            let exponent = x.arg(1)?;
            elementwise::pow(x.arg(0)?, exponent)?
        }
        Op::Max => elementwise::max(x.arg(0)?, x.arg(1)?)?,
        Op::Min => elementwise::min(x.arg(0)?, x.arg(1)?)?,
        Op::Sqrt => unary_f32(x.arg(0)?, f32::sqrt)?,
        Op::Tanh => unary_f32(x.arg(0)?, f32::tanh)?,
        Op::Erf => unary_f32(x.arg(0)?, libm::erff)?,
        Op::Exp => unary_f32(x.arg(0)?, f32::exp)?,
        Op::Reciprocal => unary_f32(x.arg(0)?, |v| 1.0 / v)?,
        Op::Neg => elementwise::neg(x.arg(0)?)?,
        Op::Equal => compare(x.arg(0)?, x.arg(1)?, Ordering::is_eq)?,
        Op::Less => compare(x.arg(0)?, x.arg(1)?, Ordering::is_lt)?,
        Op::LessOrEqual => compare(x.arg(0)?, x.arg(1)?, Ordering::is_le)?,
        Op::Greater => compare(x.arg(0)?, x.arg(1)?, Ordering::is_gt)?,
        Op::GreaterOrEqual => compare(x.arg(0)?, x.arg(1)?, Ordering::is_ge)?,
        Op::And => logic(x.arg(0)?, x.arg(1)?, |a, b| a && b)?,
        Op::Or => logic(x.arg(0)?, x.arg(1)?, |a, b| a || b)?,
        Op::Not => elementwise::not(x.arg(0)?)?,
        Op::IsNaN => Tensor::Bool(x.f32(0)?.mapv(f32::is_nan)),
        Op::Where => where_(x.arg(0)?, x.arg(1)?, x.arg(2)?)?,
        Op::Cast { to } => cast(x.arg(0)?, *to),
        Op::MatMul => Tensor::F32(matmul(x.f32(0)?, x.f32(1)?)?),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let (a, b, c) = (x.arg(0)?, x.arg(1)?, x.opt(2));
            matmul::gemm(a, b, c, *alpha, *beta, *trans_a, *trans_b)?
        }
        Op::Transpose { perm } => layout::transpose(x.arg(0)?, perm.as_deref())?,
        Op::Reshape { allowzero } => {
            let shape = x.arg(1)?.to_i64_vec();
            let data = x.arg(0)?;
            let target = reshape_target(data.shape(), &shape, *allowzero)?;
            layout::reshape(data, &target)?
        }
        Op::Unsqueeze { axes } => layout::unsqueeze(x, axes)?,
        Op::Squeeze { axes } => layout::squeeze(x, axes)?,
        Op::Concat { axis } => layout::concat(&x.present(), *axis)?,
        Op::Split {
            axis,
            split,
            outputs,
        } => return layout::split(x, *axis, split, *outputs),
        Op::Expand => layout::expand(x.arg(0)?, x.arg(1)?)?,
        Op::Slice => indexing::slice(x.arg(0)?, x.arg(1)?, x.arg(2)?, x.opt(3), x.opt(4))?,
        Op::Gather { axis } => indexing::gather(x.arg(0)?, x.arg(1)?, *axis)?,
        Op::GatherND { batch_dims } => indexing::gather_nd(x.arg(0)?, x.arg(1)?, *batch_dims)?,
        Op::Trilu { upper } => {
            let k = indexing::diagonal(x.opt(1));
            indexing::trilu(x.arg(0)?, k, *upper)?
        }
        Op::Shape { start, end } => shape_values::shape(x.arg(0)?, *start, *end),
        Op::ConstantOfShape { value } => shape_values::constant_of_shape(x.arg(0)?, value)?,
        Op::Range => shape_values::range(x.arg(0)?, x.arg(1)?, x.arg(2)?)?,
        Op::SymShape { dims, scalar } => shape_values::sym_shape(x.arg(0)?, dims, *scalar)?,
        Op::Positions => shape_values::positions(x.arg(0)?)?,
        Op::CausalMask { kind } => causal_mask(shape_values::seq_len(x.arg(0)?)?, *kind),
        Op::CumSum { exclusive, reverse } => {
            let axis = reductions::cumsum_axis(x.arg(1)?)?;
            reductions::cumsum(x.arg(0)?, axis, *exclusive, *reverse)?
        }
        Op::ReduceMean { axes, keepdims } => reductions::reduce_mean(x, axes, *keepdims)?,
        Op::ReduceSum {
            axes,
            keepdims,
            noop_with_empty_axes,
        } => reductions::reduce_sum(x, axes, *keepdims, *noop_with_empty_axes)?,
        Op::Softmax { axis } => Tensor::F32(softmax(x.f32(0)?, *axis)?),
        Op::LayerNormalization { axis, epsilon } => {
            reductions::layer_norm(x.f32(0)?, x.arg(1)?, x.opt(2), *axis, *epsilon)?
        }
        Op::LayerNorm { eps } => {
            reductions::layer_norm(x.f32(0)?, x.arg(1)?, Some(x.arg(2)?), -1, *eps)?
        }
        Op::OnnxAttention {
            is_causal,
            scale,
            q_heads,
            kv_heads,
        } => {
            let attrs = onnx_attention::Attrs {
                is_causal: *is_causal,
                scale: *scale,
                q_heads: *q_heads,
                kv_heads: *kv_heads,
            };
            let (q, k, v) = (x.arg(0)?, x.arg(1)?, x.arg(2)?);
            onnx_attention::eval(q, k, v, x.opt(3), attrs)?
        }
        Op::Embedding => gpt::embedding(x.arg(0)?, x.f32(1)?, x.f32(2)?)?,
        Op::Linear => matmul::linear(x.f32(0)?, x.f32(1)?, x.opt(2))?,
        Op::Gelu { form } => unary_f32(x.arg(0)?, |v| gelu(v, *form))?,
        Op::Attention { heads, scale } => Tensor::F32(gpt::attention(x.f32(0)?, *heads, *scale)?),
        Op::Logits => {
            let table = x.f32(1)?;
            Tensor::F32(matmul::logits(x.f32(0)?, table)?)
        }
    };
    Ok(vec![out])
}

fn f32_of(t: &Tensor) -> R<&ArrayD<f32>> {
    t.as_f32()
        .ok_or_else(|| format!("expected f32, got {}", t.dtype()))
}

fn norm_axis(axis: i64, rank: usize) -> R<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank.max(1) as i64 && !(rank == 0 && a == 0) {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(a as usize)
}

fn axes_of(attr: &Option<Vec<i64>>, input: Option<&Tensor>) -> Option<Vec<i64>> {
    match attr {
        Some(a) => Some(a.clone()),
        None => input.map(|t| t.to_i64_vec()),
    }
}

/// An f32 tensor of `shape` with the values `v`, for the kernels' tests.
#[cfg(test)]
fn f32_tensor(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::f32_from(shape, v.to_vec()).unwrap()
}
