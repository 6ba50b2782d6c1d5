//! The float semantics of every IR operation on concrete tensors.
//!
//! ONNX-level operations follow the ONNX specification (opset 14–23) for the cases GPT exports
//! use; the high-level operations compute what their doc comments in `ir::op` say. Arithmetic is
//! in f32 as ONNX Runtime does it; reductions (means, variances, softmax sums) accumulate in f64.
//! Errors are plain strings; the caller adds the node's name.

use crate::ir::{GeluForm, MaskKind, Op};
use crate::tensor::{DType, Tensor};
use ndarray::{concatenate, s, Array2, ArrayD, ArrayView2, Axis, IxDyn, Zip};

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

/// Evaluate one operation. `inputs` are by slot; absent optional inputs are `None`.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> R<Vec<Tensor>> {
    let arg = |i: usize| -> R<&Tensor> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let opt = |i: usize| -> Option<&Tensor> { inputs.get(i).copied().flatten() };
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Input { name } => Err(format!("graph input '{name}' has no value")),
        Op::Const(t) => one(t.clone()),
        Op::Identity => one(arg(0)?.clone()),
        Op::Add | Op::ResidualAdd => one(arith(
            arg(0)?,
            arg(1)?,
            |a, b| a + b,
            |a, b| a.wrapping_add(b),
        )?),
        Op::Sub => one(arith(
            arg(0)?,
            arg(1)?,
            |a, b| a - b,
            |a, b| a.wrapping_sub(b),
        )?),
        Op::Mul => one(arith(
            arg(0)?,
            arg(1)?,
            |a, b| a * b,
            |a, b| a.wrapping_mul(b),
        )?),
        Op::Div => one(arith(
            arg(0)?,
            arg(1)?,
            |a, b| a / b,
            |a, b| if b == 0 { 0 } else { a / b },
        )?),
        Op::Pow => {
            let b = cast(arg(1)?, DType::F32);
            one(arith(arg(0)?, &b, pow_f32, |a, b| a.pow(b.max(0) as u32))?)
        }
        Op::Max => one(arith(arg(0)?, arg(1)?, f32::max, i64::max)?),
        Op::Min => one(arith(arg(0)?, arg(1)?, f32::min, i64::min)?),
        Op::Sqrt => one(unary_f32(arg(0)?, f32::sqrt)?),
        Op::Tanh => one(unary_f32(arg(0)?, f32::tanh)?),
        Op::Erf => one(unary_f32(arg(0)?, libm::erff)?),
        Op::Exp => one(unary_f32(arg(0)?, f32::exp)?),
        Op::Reciprocal => one(unary_f32(arg(0)?, |v| 1.0 / v)?),
        Op::Neg => match arg(0)? {
            Tensor::I64(a) => one(Tensor::I64(a.mapv(|v| v.wrapping_neg()))),
            t => one(unary_f32(t, |v| -v)?),
        },
        Op::Equal => one(compare(arg(0)?, arg(1)?, |o| {
            o == std::cmp::Ordering::Equal
        })?),
        Op::Less => one(compare(arg(0)?, arg(1)?, |o| o.is_lt())?),
        Op::LessOrEqual => one(compare(arg(0)?, arg(1)?, |o| o.is_le())?),
        Op::Greater => one(compare(arg(0)?, arg(1)?, |o| o.is_gt())?),
        Op::GreaterOrEqual => one(compare(arg(0)?, arg(1)?, |o| o.is_ge())?),
        Op::And => one(logic(arg(0)?, arg(1)?, |a, b| a && b)?),
        Op::Or => one(logic(arg(0)?, arg(1)?, |a, b| a || b)?),
        Op::Not => match arg(0)? {
            Tensor::Bool(a) => one(Tensor::Bool(a.mapv(|v| !v))),
            t => Err(format!("Not expects bool, got {}", t.dtype())),
        },
        Op::IsNaN => one(Tensor::Bool(f32_of(arg(0)?)?.mapv(f32::is_nan))),
        Op::Where => one(where_(arg(0)?, arg(1)?, arg(2)?)?),
        Op::Cast { to } => one(cast(arg(0)?, *to)),
        Op::MatMul => one(Tensor::F32(matmul(f32_of(arg(0)?)?, f32_of(arg(1)?)?)?)),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => one(gemm(
            arg(0)?,
            arg(1)?,
            opt(2),
            *alpha,
            *beta,
            *trans_a,
            *trans_b,
        )?),
        Op::Transpose { perm } => one(transpose(arg(0)?, perm.as_deref())?),
        Op::Reshape { allowzero } => {
            let shape = arg(1)?.to_i64_vec();
            let x = arg(0)?;
            let target = reshape_target(x.shape(), &shape, *allowzero)?;
            one(reshape(x, &target)?)
        }
        Op::Unsqueeze { axes } => {
            let axes = axes_of(axes, opt(1)).ok_or("Unsqueeze needs axes")?;
            let x = arg(0)?;
            let rank = x.shape().len() + axes.len();
            let mut axes: Vec<usize> =
                axes.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?;
            axes.sort_unstable();
            let mut shape: Vec<usize> = x.shape().to_vec();
            for a in axes {
                if a > shape.len() {
                    return Err(format!("Unsqueeze axis {a} out of range"));
                }
                shape.insert(a, 1);
            }
            one(reshape(x, &shape)?)
        }
        Op::Squeeze { axes } => {
            let x = arg(0)?;
            let rank = x.shape().len();
            let axes: Vec<usize> = match axes_of(axes, opt(1)) {
                Some(a) => a.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?,
                None => (0..rank).filter(|&i| x.shape()[i] == 1).collect(),
            };
            let mut shape = Vec::new();
            for (i, &d) in x.shape().iter().enumerate() {
                if axes.contains(&i) {
                    if d != 1 {
                        return Err(format!("Squeeze of axis {i} with size {d}"));
                    }
                } else {
                    shape.push(d);
                }
            }
            one(reshape(x, &shape)?)
        }
        Op::Concat { axis } => {
            let parts: Vec<&Tensor> = (0..inputs.len()).filter_map(opt).collect();
            one(concat(&parts, *axis)?)
        }
        Op::Split {
            axis,
            split,
            outputs,
        } => {
            let x = arg(0)?;
            let ax = norm_axis(*axis, x.shape().len())?;
            let n = x.shape()[ax];
            let sizes: Vec<usize> = match axes_of(split, opt(1)) {
                Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
                None => {
                    let k = *outputs;
                    let chunk = n.div_ceil(k.max(1));
                    (0..k)
                        .map(|i| chunk.min(n.saturating_sub(i * chunk)))
                        .collect()
                }
            };
            if sizes.iter().sum::<usize>() != n || sizes.len() != *outputs {
                return Err(format!(
                    "Split sizes {sizes:?} do not cover axis of size {n}"
                ));
            }
            let mut out = Vec::new();
            let mut start = 0;
            for sz in sizes {
                let idx: Vec<usize> = (start..start + sz).collect();
                out.push(select(x, ax, &idx));
                start += sz;
            }
            Ok(out)
        }
        Op::Slice => one(slice(arg(0)?, arg(1)?, arg(2)?, opt(3), opt(4))?),
        Op::Gather { axis } => one(gather(arg(0)?, arg(1)?, *axis)?),
        Op::GatherND { batch_dims } => one(gather_nd(arg(0)?, arg(1)?, *batch_dims)?),
        Op::Shape { start, end } => {
            let shape = arg(0)?.shape();
            let r = shape.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (a, b) = (clamp(*start), clamp(end.unwrap_or(r)));
            one(Tensor::vec_i64(
                shape[a..b.max(a)].iter().map(|&d| d as i64).collect(),
            ))
        }
        Op::ConstantOfShape { value } => {
            let shape: Vec<usize> = arg(0)?
                .to_i64_vec()
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect();
            bounded("ConstantOfShape", &shape)?;
            one(fill(value, &shape))
        }
        Op::Expand => {
            let x = arg(0)?;
            let want: Vec<usize> = arg(1)?
                .to_i64_vec()
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect();
            let shape = broadcast_shape(x.shape(), &want)?;
            bounded("Expand", &shape)?;
            one(broadcast_to(x, &shape)?)
        }
        Op::Range => one(range(arg(0)?, arg(1)?, arg(2)?)?),
        Op::CumSum { exclusive, reverse } => {
            let axis = arg(1)?
                .to_i64_vec()
                .first()
                .copied()
                .ok_or("CumSum needs an axis")?;
            one(cumsum(arg(0)?, axis, *exclusive, *reverse)?)
        }
        Op::Trilu { upper } => {
            let k = opt(1)
                .and_then(|t| t.to_i64_vec().first().copied())
                .unwrap_or(0);
            one(trilu(arg(0)?, k, *upper)?)
        }
        Op::ReduceMean { axes, keepdims } => {
            one(reduce(arg(0)?, axes_of(axes, opt(1)), *keepdims, true)?)
        }
        Op::ReduceSum {
            axes,
            keepdims,
            noop_with_empty_axes,
        } => {
            let ax = axes_of(axes, opt(1));
            if *noop_with_empty_axes && ax.as_ref().is_none_or(|a| a.is_empty()) {
                return one(arg(0)?.clone());
            }
            one(reduce(arg(0)?, ax, *keepdims, false)?)
        }
        Op::Softmax { axis } => one(Tensor::F32(softmax(f32_of(arg(0)?)?, *axis)?)),
        Op::LayerNormalization { axis, epsilon } => one(layer_norm(
            f32_of(arg(0)?)?,
            arg(1)?,
            opt(2),
            *axis,
            *epsilon,
        )?),
        Op::OnnxAttention {
            is_causal,
            scale,
            q_heads,
            kv_heads,
        } => {
            let attrs = super::onnx_attention::Attrs {
                is_causal: *is_causal,
                scale: *scale,
                q_heads: *q_heads,
                kv_heads: *kv_heads,
            };
            one(super::onnx_attention::eval(
                arg(0)?,
                arg(1)?,
                arg(2)?,
                opt(3),
                attrs,
            )?)
        }
        Op::SymShape { dims, scalar } => {
            let t = seq_len(arg(0)?)? as i64;
            let v: Vec<i64> = dims.iter().map(|d| d.at(t)).collect();
            if *scalar {
                one(Tensor::scalar_i64(v.first().copied().unwrap_or(0)))
            } else {
                one(Tensor::vec_i64(v))
            }
        }
        Op::Positions => {
            let t = seq_len(arg(0)?)?;
            let v: Vec<i64> = (0..t as i64).collect();
            one(Tensor::I64(
                ArrayD::from_shape_vec(IxDyn(&[1, t]), v).map_err(|e| e.to_string())?,
            ))
        }
        Op::CausalMask { kind } => one(causal_mask(seq_len(arg(0)?)?, *kind)),
        Op::Embedding => one(embedding(arg(0)?, f32_of(arg(1)?)?, f32_of(arg(2)?)?)?),
        Op::LayerNorm { eps } => one(layer_norm(
            f32_of(arg(0)?)?,
            arg(1)?,
            Some(arg(2)?),
            -1,
            *eps,
        )?),
        Op::Linear => {
            let y = matmul(f32_of(arg(0)?)?, f32_of(arg(1)?)?)?;
            match opt(2) {
                Some(b) => one(arith(&Tensor::F32(y), b, |a, b| a + b, |a, b| a + b)?),
                None => one(Tensor::F32(y)),
            }
        }
        Op::Gelu { form } => one(unary_f32(arg(0)?, |x| gelu(x, *form))?),
        Op::Attention { heads, scale } => {
            one(Tensor::F32(attention(f32_of(arg(0)?)?, *heads, *scale)?))
        }
        Op::Logits => {
            let w = f32_of(arg(1)?)?;
            let wt = w.t().to_owned().into_dyn();
            one(Tensor::F32(matmul(f32_of(arg(0)?)?, &wt)?))
        }
    }
}

/// GELU in the given form, evaluated in f32 as exporters' decompositions do.
pub fn gelu(x: f32, form: GeluForm) -> f32 {
    match form {
        GeluForm::Tanh => {
            let c = (2.0f32 / std::f32::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
        GeluForm::Erf => 0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2)),
    }
}

fn pow_f32(a: f32, b: f32) -> f32 {
    if b == 2.0 {
        a * a
    } else if b == 3.0 {
        a * a * a
    } else if b == 0.5 {
        a.sqrt()
    } else {
        a.powf(b)
    }
}

fn seq_len(ids: &Tensor) -> R<usize> {
    ids.shape()
        .last()
        .copied()
        .ok_or_else(|| "token ids must have a sequence axis".to_string())
}

pub fn causal_mask(t: usize, kind: MaskKind) -> Tensor {
    let shape = IxDyn(&[1, 1, t, t]);
    match kind {
        MaskKind::Allowed => Tensor::Bool(ArrayD::from_shape_fn(shape, |i| i[3] <= i[2])),
        MaskKind::Blocked => Tensor::Bool(ArrayD::from_shape_fn(shape, |i| i[3] > i[2])),
        MaskKind::Additive(v) => Tensor::F32(ArrayD::from_shape_fn(shape, |i| {
            if i[3] <= i[2] {
                0.0
            } else {
                v
            }
        })),
    }
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

/// Numpy broadcasting of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(format!("shapes {a:?} and {b:?} do not broadcast"));
        };
    }
    bounded(&format!("broadcast of {a:?} and {b:?}"), &out)?;
    Ok(out)
}

fn zip2<A: Clone, B: Clone, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> C,
) -> R<ArrayD<C>> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let av = a.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    let bv = b.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    Ok(Zip::from(&av)
        .and(&bv)
        .map_collect(|x, y| f(x.clone(), y.clone())))
}

fn arith(
    a: &Tensor,
    b: &Tensor,
    ff: impl Fn(f32, f32) -> f32,
    fi: impl Fn(i64, i64) -> i64,
) -> R<Tensor> {
    match (a, b) {
        (Tensor::F32(x), Tensor::F32(y)) => Ok(Tensor::F32(zip2(x, y, ff)?)),
        (Tensor::I64(x), Tensor::I64(y)) => Ok(Tensor::I64(zip2(x, y, fi)?)),
        _ => Err(format!(
            "arithmetic on {} and {} (ONNX requires equal types)",
            a.dtype(),
            b.dtype()
        )),
    }
}

fn unary_f32(a: &Tensor, f: impl Fn(f32) -> f32) -> R<Tensor> {
    Ok(Tensor::F32(f32_of(a)?.mapv(f)))
}

fn compare(a: &Tensor, b: &Tensor, f: impl Fn(std::cmp::Ordering) -> bool) -> R<Tensor> {
    let ord_f = |x: f32, y: f32| x.partial_cmp(&y).map(&f).unwrap_or(false);
    match (a, b) {
        (Tensor::F32(x), Tensor::F32(y)) => Ok(Tensor::Bool(zip2(x, y, ord_f)?)),
        (Tensor::I64(x), Tensor::I64(y)) => Ok(Tensor::Bool(zip2(x, y, |x, y| f(x.cmp(&y)))?)),
        (Tensor::Bool(x), Tensor::Bool(y)) => Ok(Tensor::Bool(zip2(x, y, |x, y| f(x.cmp(&y)))?)),
        _ => Err(format!("comparison of {} and {}", a.dtype(), b.dtype())),
    }
}

fn logic(a: &Tensor, b: &Tensor, f: impl Fn(bool, bool) -> bool) -> R<Tensor> {
    match (a, b) {
        (Tensor::Bool(x), Tensor::Bool(y)) => Ok(Tensor::Bool(zip2(x, y, f)?)),
        _ => Err(format!("logic op on {} and {}", a.dtype(), b.dtype())),
    }
}

fn where_(c: &Tensor, x: &Tensor, y: &Tensor) -> R<Tensor> {
    let c = c.as_bool().ok_or("Where condition must be bool")?;
    fn pick<T: Clone>(c: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> R<ArrayD<T>> {
        let shape = broadcast_shape(&broadcast_shape(c.shape(), x.shape())?, y.shape())?;
        let sh = IxDyn(&shape);
        let (cv, xv, yv) = (
            c.broadcast(sh.clone()).ok_or("broadcast failed")?,
            x.broadcast(sh.clone()).ok_or("broadcast failed")?,
            y.broadcast(sh).ok_or("broadcast failed")?,
        );
        Ok(Zip::from(&cv)
            .and(&xv)
            .and(&yv)
            .map_collect(|&c, a, b| if c { a.clone() } else { b.clone() }))
    }
    match (x, y) {
        (Tensor::F32(a), Tensor::F32(b)) => Ok(Tensor::F32(pick(c, a, b)?)),
        (Tensor::I64(a), Tensor::I64(b)) => Ok(Tensor::I64(pick(c, a, b)?)),
        (Tensor::Bool(a), Tensor::Bool(b)) => Ok(Tensor::Bool(pick(c, a, b)?)),
        _ => Err(format!("Where on {} and {}", x.dtype(), y.dtype())),
    }
}

/// Convert element types as ONNX Cast does (float to int truncates toward zero).
pub fn cast(t: &Tensor, to: DType) -> Tensor {
    match (t, to) {
        (t, to) if t.dtype() == to => t.clone(),
        (Tensor::F32(a), DType::I64) => Tensor::I64(a.mapv(|v| v as i64)),
        (Tensor::F32(a), DType::Bool) => Tensor::Bool(a.mapv(|v| v != 0.0)),
        (Tensor::I64(a), DType::F32) => Tensor::F32(a.mapv(|v| v as f32)),
        (Tensor::I64(a), DType::Bool) => Tensor::Bool(a.mapv(|v| v != 0)),
        (Tensor::Bool(a), DType::F32) => Tensor::F32(a.mapv(|v| v as i64 as f32)),
        (Tensor::Bool(a), DType::I64) => Tensor::I64(a.mapv(|v| v as i64)),
        (t, _) => t.clone(),
    }
}

fn as_2d(a: &ArrayD<f32>) -> ArrayView2<'_, f32> {
    let s = a.shape();
    a.view()
        .into_shape_with_order((s[0], s[1]))
        .expect("rank-2 view of a rank-2 array")
}

/// Numpy `matmul` of f32 tensors of rank ≥ 1, with batch broadcasting.
pub fn matmul(a: &ArrayD<f32>, b: &ArrayD<f32>) -> R<ArrayD<f32>> {
    let (mut a, mut b) = (a.clone(), b.clone());
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err(format!(
            "MatMul of {:?} by {:?}: a scalar operand (MatMul takes vectors and matrices)",
            a.shape(),
            b.shape()
        ));
    }
    let (a1, b1) = (a.ndim() == 1, b.ndim() == 1);
    if a1 {
        a = a.insert_axis(Axis(0));
    }
    if b1 {
        b = b.insert_axis(Axis(1));
    }
    let (ra, rb) = (a.ndim(), b.ndim());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(format!(
            "MatMul of {:?} by {:?}: inner dimensions {k} and {k2} differ",
            a.shape(),
            b.shape()
        ));
    }
    let batch = broadcast_shape(&a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
    let mut out = batch.clone();
    out.extend([m, n]);
    bounded(
        &format!("MatMul of {:?} by {:?}", a.shape(), b.shape()),
        &out,
    )?;
    let mut full_a = batch.clone();
    full_a.extend([m, k]);
    let mut full_b = batch.clone();
    full_b.extend([k, n]);
    let av = a.broadcast(IxDyn(&full_a)).ok_or("broadcast failed")?;
    let bv = b.broadcast(IxDyn(&full_b)).ok_or("broadcast failed")?;
    let nb: usize = batch.iter().product();
    let av = av
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((nb, m, k))
        .map_err(|e| e.to_string())?;
    let bv = bv
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((nb, k, n))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(nb * m * n);
    for i in 0..nb {
        let c: Array2<f32> = av.slice(s![i, .., ..]).dot(&bv.slice(s![i, .., ..]));
        out.extend(c.iter().copied());
    }
    let mut shape = batch;
    if !a1 {
        shape.push(m);
    }
    if !b1 {
        shape.push(n);
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

fn gemm(
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
    alpha: f32,
    beta: f32,
    ta: bool,
    tb: bool,
) -> R<Tensor> {
    let (a, b) = (f32_of(a)?, f32_of(b)?);
    if a.ndim() != 2 || b.ndim() != 2 {
        return Err("Gemm takes rank-2 inputs".into());
    }
    let av = as_2d(a);
    let bv = as_2d(b);
    let av = if ta { av.t() } else { av };
    let bv = if tb { bv.t() } else { bv };
    if av.shape()[1] != bv.shape()[0] {
        return Err(format!(
            "Gemm inner dimensions {} and {} differ",
            av.shape()[1],
            bv.shape()[0]
        ));
    }
    let mut y = av.dot(&bv).into_dyn();
    if alpha != 1.0 {
        y.mapv_inplace(|v| v * alpha);
    }
    let y = Tensor::F32(y);
    match c {
        Some(c) if beta != 0.0 => {
            let c = unary_f32(c, |v| v * beta)?;
            arith(&y, &c, |a, b| a + b, |a, b| a + b)
        }
        _ => Ok(y),
    }
}

macro_rules! each_dtype {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => Tensor::F32($body),
            Tensor::I64($a) => Tensor::I64($body),
            Tensor::Bool($a) => Tensor::Bool($body),
        }
    };
}

fn transpose(t: &Tensor, perm: Option<&[usize]>) -> R<Tensor> {
    let rank = t.shape().len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.to_vec(),
        None => (0..rank).rev().collect(),
    };
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        return Err(format!("Transpose perm {perm:?} for rank {rank}"));
    }
    Ok(each_dtype!(t, a => a.view().permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned()))
}

/// The target shape of an ONNX Reshape (0 copies the input dimension unless `allowzero`, -1 is
/// inferred).
pub fn reshape_target(input: &[usize], shape: &[i64], allowzero: bool) -> R<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or("Reshape: 0 beyond input rank")?),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("Reshape: bad target shape {shape:?}")),
        }
    }
    if let Some(i) = infer {
        let rest: usize = out.iter().product();
        if rest == 0 || !total.is_multiple_of(rest) {
            return Err(format!("Reshape of {input:?} to {shape:?}"));
        }
        out[i] = total / rest;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!("Reshape of {input:?} to {shape:?}: sizes differ"));
    }
    Ok(out)
}

fn reshape(t: &Tensor, shape: &[usize]) -> R<Tensor> {
    let sh = IxDyn(shape);
    let r = match t {
        Tensor::F32(a) => a
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(sh)
            .map(Tensor::F32),
        Tensor::I64(a) => a
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(sh)
            .map(Tensor::I64),
        Tensor::Bool(a) => a
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(sh)
            .map(Tensor::Bool),
    };
    r.map_err(|e| format!("reshape of {:?} to {shape:?}: {e}", t.shape()))
}

fn concat(parts: &[&Tensor], axis: i64) -> R<Tensor> {
    let first = parts.first().ok_or("Concat of nothing")?;
    let rank = first.shape().len();
    if let Some(p) = parts.iter().find(|p| p.shape().len() != rank) {
        return Err(format!(
            "Concat of tensors of ranks {rank} and {} (shapes {:?} and {:?})",
            p.shape().len(),
            first.shape(),
            p.shape()
        ));
    }
    let ax = Axis(norm_axis(axis, rank)?);
    macro_rules! cat {
        ($v:ident, $get:ident) => {{
            let views: Vec<_> = parts
                .iter()
                .map(|t| {
                    t.$get()
                        .map(|a| a.view())
                        .ok_or_else(|| "Concat of mixed types".to_string())
                })
                .collect::<R<_>>()?;
            Tensor::$v(concatenate(ax, &views).map_err(|e| e.to_string())?)
        }};
    }
    Ok(match first {
        Tensor::F32(_) => cat!(F32, as_f32),
        Tensor::I64(_) => cat!(I64, as_i64),
        Tensor::Bool(_) => cat!(Bool, as_bool),
    })
}

fn select(t: &Tensor, axis: usize, idx: &[usize]) -> Tensor {
    each_dtype!(t, a => a.select(Axis(axis), idx))
}

fn slice(
    x: &Tensor,
    starts: &Tensor,
    ends: &Tensor,
    axes: Option<&Tensor>,
    steps: Option<&Tensor>,
) -> R<Tensor> {
    let (starts, ends) = (starts.to_i64_vec(), ends.to_i64_vec());
    let rank = x.shape().len();
    let axes: Vec<i64> = axes
        .map(|t| t.to_i64_vec())
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps: Vec<i64> = steps
        .map(|t| t.to_i64_vec())
        .unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("Slice: starts, ends, axes and steps differ in length".into());
    }
    let mut out = x.clone();
    for i in 0..starts.len() {
        let ax = norm_axis(axes[i], rank)?;
        let n = out.shape()[ax] as i64;
        let step = steps[i];
        if step == 0 {
            return Err("Slice: step 0".into());
        }
        let fix = |v: i64| if v < 0 { v + n } else { v };
        let idx: Vec<usize> = if step > 0 {
            let a = fix(starts[i]).clamp(0, n);
            let b = fix(ends[i]).clamp(0, n);
            (a..b).step_by(step as usize).map(|v| v as usize).collect()
        } else {
            let a = fix(starts[i]).clamp(-1, n - 1);
            let b = fix(ends[i]).clamp(-1, n - 1);
            let mut v = Vec::new();
            let mut j = a;
            while j > b {
                v.push(j as usize);
                j += step;
            }
            v
        };
        out = select(&out, ax, &idx);
    }
    Ok(out)
}

fn gather(data: &Tensor, indices: &Tensor, axis: i64) -> R<Tensor> {
    let rank = data.shape().len();
    let ax = norm_axis(axis, rank)?;
    let n = data.shape()[ax] as i64;
    let idx: Vec<usize> = indices
        .to_i64_vec()
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            if j < 0 || j >= n {
                Err(format!(
                    "Gather index {i} out of range for axis of size {n}"
                ))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<R<_>>()?;
    let picked = select(data, ax, &idx);
    let mut shape: Vec<usize> = data.shape()[..ax].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&data.shape()[ax + 1..]);
    reshape(&picked, &shape)
}

fn gather_nd(data: &Tensor, indices: &Tensor, batch_dims: i64) -> R<Tensor> {
    if batch_dims != 0 {
        return Err("GatherND with batch_dims ≠ 0".into());
    }
    let ish = indices.shape();
    let k = *ish.last().ok_or("GatherND indices of rank 0")?;
    let dsh = data.shape();
    if k > dsh.len() {
        return Err("GatherND index tuple longer than data rank".into());
    }
    let inner: usize = dsh[k..].iter().product();
    let strides: Vec<usize> = (0..k).map(|i| dsh[i + 1..].iter().product()).collect();
    let iv = indices.to_i64_vec();
    let mut flat_rows = Vec::new();
    for tuple in iv.chunks(k.max(1)) {
        let mut off = 0usize;
        for (j, &v) in tuple.iter().enumerate().take(k) {
            let n = dsh[j] as i64;
            let v = if v < 0 { v + n } else { v };
            if v < 0 || v >= n {
                return Err(format!("GatherND index {v} out of range"));
            }
            off += v as usize * strides[j];
        }
        flat_rows.push(off);
    }
    let mut shape: Vec<usize> = ish[..ish.len() - 1].to_vec();
    shape.extend_from_slice(&dsh[k..]);
    let flat = reshape(data, &[data.len()])?;
    let idx: Vec<usize> = flat_rows.iter().flat_map(|&o| o..o + inner).collect();
    reshape(&select(&flat, 0, &idx), &shape)
}

fn fill(value: &Tensor, shape: &[usize]) -> Tensor {
    let sh = IxDyn(shape);
    match value {
        Tensor::F32(a) => Tensor::F32(ArrayD::from_elem(
            sh,
            a.iter().next().copied().unwrap_or(0.0),
        )),
        Tensor::I64(a) => Tensor::I64(ArrayD::from_elem(sh, a.iter().next().copied().unwrap_or(0))),
        Tensor::Bool(a) => Tensor::Bool(ArrayD::from_elem(
            sh,
            a.iter().next().copied().unwrap_or(false),
        )),
    }
}

fn broadcast_to(t: &Tensor, shape: &[usize]) -> R<Tensor> {
    let sh = IxDyn(shape);
    Ok(each_dtype!(t, a => a.broadcast(sh.clone()).ok_or("Expand: cannot broadcast")?.to_owned()))
}

fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> R<Tensor> {
    match (start, limit, delta) {
        (Tensor::I64(a), Tensor::I64(b), Tensor::I64(d)) => {
            let (a, b, d) = (first(a)?, first(b)?, first(d)?);
            if d == 0 {
                return Err("Range with delta 0".into());
            }
            let n = ((b as f64 - a as f64) / d as f64).ceil().max(0.0);
            range_len(n, &format!("Range from {a} to {b} by {d}"))?;
            Ok(Tensor::vec_i64((0..n as i64).map(|i| a + i * d).collect()))
        }
        (Tensor::F32(a), Tensor::F32(b), Tensor::F32(d)) => {
            let (a, b, d) = (first(a)?, first(b)?, first(d)?);
            let n = range_len(
                f64::from(((b - a) / d).ceil()).max(0.0),
                &format!("Range from {a} to {b} by {d}"),
            )?;
            let v: Vec<f32> = (0..n).map(|i| a + i as f32 * d).collect();
            Tensor::f32_from(&[n], v).ok_or_else(|| "Range".into())
        }
        _ => Err("Range on mixed types".into()),
    }
}

/// A range's length from its float count (NaN counts as 0), bounded by [`MAX_MADE_ELEMENTS`].
fn range_len(n: f64, what: &str) -> R<usize> {
    if n > MAX_MADE_ELEMENTS as f64 {
        return Err(format!("{what}: {n:.0} elements, more than 2^30"));
    }
    Ok(if n.is_nan() { 0 } else { n as usize })
}

fn first<T: Copy>(a: &ArrayD<T>) -> R<T> {
    a.iter()
        .next()
        .copied()
        .ok_or_else(|| "empty scalar".into())
}

fn cumsum(x: &Tensor, axis: i64, exclusive: bool, reverse: bool) -> R<Tensor> {
    let ax = Axis(norm_axis(axis, x.shape().len())?);
    macro_rules! scan {
        ($a:expr, $zero:expr) => {{
            let mut out = $a.clone();
            for (mut lane_out, lane_in) in out.lanes_mut(ax).into_iter().zip($a.lanes(ax)) {
                let n = lane_in.len();
                let mut acc = $zero;
                for j in 0..n {
                    let i = if reverse { n - 1 - j } else { j };
                    if exclusive {
                        lane_out[i] = acc;
                        acc += lane_in[i];
                    } else {
                        acc += lane_in[i];
                        lane_out[i] = acc;
                    }
                }
            }
            out
        }};
    }
    match x {
        Tensor::F32(a) => Ok(Tensor::F32(scan!(a, 0.0f32))),
        Tensor::I64(a) => Ok(Tensor::I64(scan!(a, 0i64))),
        Tensor::Bool(_) => Err("CumSum of bool".into()),
    }
}

fn trilu(x: &Tensor, k: i64, upper: bool) -> R<Tensor> {
    let r = x.shape().len();
    if r < 2 {
        return Err("Trilu needs rank ≥ 2".into());
    }
    let keep = |idx: &IxDyn| {
        let (i, j) = (idx[r - 2] as i64, idx[r - 1] as i64);
        if upper {
            j - i >= k
        } else {
            j - i <= k
        }
    };
    Ok(match x {
        Tensor::F32(a) => Tensor::F32(ArrayD::from_shape_fn(a.raw_dim(), |i| {
            if keep(&i) {
                a[&i]
            } else {
                0.0
            }
        })),
        Tensor::I64(a) => Tensor::I64(ArrayD::from_shape_fn(a.raw_dim(), |i| {
            if keep(&i) {
                a[&i]
            } else {
                0
            }
        })),
        Tensor::Bool(a) => Tensor::Bool(ArrayD::from_shape_fn(a.raw_dim(), |i| keep(&i) && a[&i])),
    })
}

fn reduce(x: &Tensor, axes: Option<Vec<i64>>, keepdims: bool, mean: bool) -> R<Tensor> {
    let rank = x.shape().len();
    let mut axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&v| norm_axis(v, rank)).collect::<R<_>>()?,
        _ => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    match x {
        Tensor::F32(a) => {
            let mut acc = a.mapv(|v| v as f64);
            let mut count = 1usize;
            for &ax in axes.iter().rev() {
                count *= acc.shape()[ax];
                acc = acc.sum_axis(Axis(ax));
                if keepdims {
                    acc = acc.insert_axis(Axis(ax));
                }
            }
            let div = if mean { count.max(1) as f64 } else { 1.0 };
            Ok(Tensor::F32(acc.mapv(|v| (v / div) as f32)))
        }
        Tensor::I64(a) => {
            let mut acc = a.clone();
            let mut count = 1i64;
            for &ax in axes.iter().rev() {
                count *= acc.shape()[ax] as i64;
                acc = acc.sum_axis(Axis(ax));
                if keepdims {
                    acc = acc.insert_axis(Axis(ax));
                }
            }
            Ok(Tensor::I64(if mean {
                acc.mapv(|v| v / count.max(1))
            } else {
                acc
            }))
        }
        Tensor::Bool(_) => Err("reduction of bool".into()),
    }
}

/// Softmax along `axis`, with f64 sums.
pub fn softmax(x: &ArrayD<f32>, axis: i64) -> R<ArrayD<f32>> {
    let ax = Axis(norm_axis(axis, x.ndim())?);
    let mut out = x.clone();
    for mut lane in out.lanes_mut(ax) {
        let m = lane.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if m == f32::NEG_INFINITY {
            lane.fill(f32::NAN);
            continue;
        }
        let mut sum = 0.0f64;
        for v in lane.iter_mut() {
            let e = ((*v - m) as f64).exp();
            sum += e;
            *v = e as f32;
        }
        for v in lane.iter_mut() {
            *v = (*v as f64 / sum) as f32;
        }
    }
    Ok(out)
}

fn layer_norm(
    x: &ArrayD<f32>,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: i64,
    eps: f32,
) -> R<Tensor> {
    let rank = x.ndim();
    let ax = norm_axis(axis, rank)?;
    let inner: usize = x.shape()[ax..].iter().product();
    let outer = x.len() / inner.max(1);
    let g = f32_of(scale)?;
    let b = bias.map(f32_of).transpose()?;
    if g.len() != inner || b.is_some_and(|b| b.len() != inner) {
        return Err(format!(
            "LayerNorm over {inner} elements with scale of {} elements",
            g.len()
        ));
    }
    let g: Vec<f32> = g.iter().copied().collect();
    let b: Vec<f32> = b.map_or(vec![0.0; inner], |b| b.iter().copied().collect());
    let src = x.as_standard_layout();
    let src = src.as_slice().ok_or("LayerNorm: layout")?;
    let mut out = Vec::with_capacity(x.len());
    for r in 0..outer {
        let row = &src[r * inner..(r + 1) * inner];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / inner as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (i, &v) in row.iter().enumerate() {
            out.push((((v as f64 - mean) * inv) as f32) * g[i] + b[i]);
        }
    }
    Tensor::f32_from(x.shape(), out).ok_or_else(|| "LayerNorm shape".into())
}

fn embedding(ids: &Tensor, wte: &ArrayD<f32>, wpe: &ArrayD<f32>) -> R<Tensor> {
    let ids = ids.to_i64_vec();
    let t = ids.len();
    if wte.ndim() != 2 || wpe.ndim() != 2 || wte.shape()[1] != wpe.shape()[1] {
        return Err("embedding tables must be [V, C] and [P, C]".into());
    }
    let (v, c, p) = (wte.shape()[0], wte.shape()[1], wpe.shape()[0]);
    if t > p {
        return Err(format!("{t} tokens exceed the {p} positions of the model"));
    }
    let mut out = Vec::with_capacity(t * c);
    for (pos, &id) in ids.iter().enumerate() {
        if id < 0 || id as usize >= v {
            return Err(format!(
                "token id {id} out of range for a vocabulary of {v}"
            ));
        }
        let (tr, pr) = (wte.row(id as usize), wpe.row(pos));
        out.extend(tr.iter().zip(pr.iter()).map(|(a, b)| a + b));
    }
    Tensor::f32_from(&[1, t, c], out).ok_or_else(|| "embedding shape".into())
}

trait Row {
    fn row(&self, i: usize) -> ndarray::ArrayView1<'_, f32>;
}
impl Row for ArrayD<f32> {
    fn row(&self, i: usize) -> ndarray::ArrayView1<'_, f32> {
        self.index_axis(Axis(0), i)
            .into_dimensionality()
            .expect("row of a rank-2 table")
    }
}

/// Causal multi-head attention on a packed `[1, T, 3C]` projection.
fn attention(qkv: &ArrayD<f32>, heads: usize, scale: f32) -> R<ArrayD<f32>> {
    let sh = qkv.shape();
    if sh.len() != 3 || sh[0] != 1 || !sh[2].is_multiple_of(3) {
        return Err(format!("attention expects [1, T, 3C], got {sh:?}"));
    }
    let (t, c) = (sh[1], sh[2] / 3);
    if heads == 0 || c % heads != 0 {
        return Err(format!("width {c} is not divisible by {heads} heads"));
    }
    let d = c / heads;
    let x = qkv
        .view()
        .into_shape_with_order((t, 3 * c))
        .map_err(|e| e.to_string())?;
    let mut out = Array2::<f32>::zeros((t, c));
    for h in 0..heads {
        let q = x.slice(s![.., h * d..(h + 1) * d]);
        let k = x.slice(s![.., c + h * d..c + (h + 1) * d]);
        let v = x.slice(s![.., 2 * c + h * d..2 * c + (h + 1) * d]);
        let scores = q.dot(&k.t());
        for i in 0..t {
            let row: Vec<f32> = (0..=i).map(|j| scores[[i, j]] * scale).collect();
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = row.iter().map(|&s| ((s - m) as f64).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (j, &ej) in e.iter().enumerate() {
                let p = (ej / sum) as f32;
                for dd in 0..d {
                    out[[i, h * d + dd]] += p * v[[j, dd]];
                }
            }
        }
    }
    out.into_shape_with_order(IxDyn(&[1, t, c]))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::f32_from(shape, v.to_vec()).unwrap()
    }

    /// Found by `ciphergpt fuzz onnx`: a Concat of a matrix and a vector on axis 1 reached
    /// ndarray's assertion on the vector's axes.
    #[test]
    fn concat_of_different_ranks_is_an_error() {
        let (m, v) = (t(&[1, 2], &[1., 2.]), t(&[2], &[3., 4.]));
        let e = concat(&[&m, &v], 1).unwrap_err();
        assert!(e.contains("Concat of tensors of ranks 2 and 1"), "{e}");
        assert_eq!(concat(&[&m, &m], 1).unwrap().shape(), &[1, 4]);
    }

    /// Found by `ciphergpt fuzz onnx` (seed 1, input 552,011): a MatMul of a scalar indexed
    /// its shape at rank − 2, out of bounds.
    #[test]
    fn matmul_of_a_scalar_is_an_error() {
        let (x, m) = (t(&[], &[2.]), t(&[1, 2], &[1., 2.]));
        for (a, b) in [(&x, &m), (&m, &x), (&x, &x)] {
            let e = eval(&Op::MatMul, &[Some(a), Some(b)]).unwrap_err();
            assert!(e.contains("a scalar operand"), "{e}");
        }
    }

    #[test]
    fn matmul_broadcasts_batches() {
        let a = t(&[2, 1, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 1], &[10., 100.]);
        let y = eval(&Op::MatMul, &[Some(&a), Some(&b)]).unwrap();
        assert_eq!(y[0], t(&[2, 1, 1], &[210., 430.]));
    }

    #[test]
    fn reshape_infers_and_copies() {
        assert_eq!(
            reshape_target(&[1, 6, 4], &[0, -1, 2], false).unwrap(),
            vec![1, 12, 2]
        );
        assert!(reshape_target(&[5], &[2, -1], false).is_err());
    }

    #[test]
    fn slice_negative_step_and_clamping() {
        let x = Tensor::vec_i64(vec![0, 1, 2, 3, 4]);
        let s = |a, b, st| {
            slice(
                &x,
                &Tensor::vec_i64(vec![a]),
                &Tensor::vec_i64(vec![b]),
                None,
                Some(&Tensor::vec_i64(vec![st])),
            )
            .unwrap()
            .to_i64_vec()
        };
        assert_eq!(s(1, i64::MAX, 1), vec![1, 2, 3, 4]);
        assert_eq!(s(-1, i64::MIN, -1), vec![4, 3, 2, 1, 0]);
        assert_eq!(s(0, 5, 2), vec![0, 2, 4]);
    }

    #[test]
    fn gather_keeps_index_shape() {
        let d = t(&[3, 2], &[0., 1., 2., 3., 4., 5.]);
        let i = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![2, -3]).unwrap());
        let y = gather(&d, &i, 0).unwrap();
        assert_eq!(y, t(&[1, 2, 2], &[4., 5., 0., 1.]));
        let s = gather(&d, &Tensor::scalar_i64(1), 1).unwrap();
        assert_eq!(s, t(&[3], &[1., 3., 5.]));
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let x = t(&[2, 3], &[1., 2., 3., -1., 0., 1000.]);
        let y = softmax(x.as_f32().unwrap(), -1).unwrap();
        for r in 0..2 {
            let s: f32 = (0..3).map(|c| y[[r, c]]).sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        assert!((y[[1, 2]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn gelu_forms_agree_roughly() {
        for &x in &[-3.0f32, -1.0, 0.0, 0.5, 2.0] {
            let (a, b) = (gelu(x, GeluForm::Tanh), gelu(x, GeluForm::Erf));
            assert!((a - b).abs() < 2e-3, "{x}: {a} vs {b}");
        }
        assert_eq!(gelu(0.0, GeluForm::Erf), 0.0);
        assert!((gelu(1.0, GeluForm::Erf) - 0.841_344_7).abs() < 1e-6);
    }

    #[test]
    fn cumsum_and_trilu() {
        let x = Tensor::vec_i64(vec![1, 1, 1]);
        let c = cumsum(&x, 0, false, false).unwrap();
        assert_eq!(c.to_i64_vec(), vec![1, 2, 3]);
        let e = cumsum(&x, 0, true, true).unwrap();
        assert_eq!(e.to_i64_vec(), vec![2, 1, 0]);
        let ones = Tensor::Bool(ArrayD::from_elem(IxDyn(&[3, 3]), true));
        let l = trilu(&ones, 0, false).unwrap();
        assert_eq!(l, causal_mask(3, MaskKind::Allowed).clone_reshaped(&[3, 3]));
    }

    impl Tensor {
        fn clone_reshaped(&self, s: &[usize]) -> Tensor {
            reshape(self, s).unwrap()
        }
    }
}
