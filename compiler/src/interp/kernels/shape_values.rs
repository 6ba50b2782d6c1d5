//! Values made from shapes and lengths, not from elements: `Shape`, `ConstantOfShape`, `Range`,
//! and the shape-only values of constant folding, `sym_shape`, `positions` and `causal_mask`,
//! which read their one input (the token ids) for its length only.

use super::{bounded, MAX_MADE_ELEMENTS, R};
use crate::ir::{Dim, MaskKind};
use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};

/// The sequence length T: the last dimension of the token ids.
pub(super) fn seq_len(ids: &Tensor) -> R<usize> {
    ids.shape()
        .last()
        .copied()
        .ok_or_else(|| "token ids must have a sequence axis".to_string())
}

/// `Shape`: the dimensions `start..end` of `x` (negative counts from the end, clamped to the rank).
pub(super) fn shape(x: &Tensor, start: i64, end: Option<i64>) -> Tensor {
    let shape = x.shape();
    let r = shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (a, b) = (clamp(start), clamp(end.unwrap_or(r)));
    Tensor::vec_i64(shape[a..b.max(a)].iter().map(|&d| d as i64).collect())
}

/// `ConstantOfShape`: the shape given as values, filled with `value`'s first element.
pub(super) fn constant_of_shape(shape: &Tensor, value: &Tensor) -> R<Tensor> {
    let shape: Vec<usize> = shape
        .to_i64_vec()
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect();
    bounded("ConstantOfShape", &shape)?;
    Ok(fill(value, &shape))
}

/// `sym_shape`: the dimensions at the sequence length of `ids`, as a vector or a `scalar`.
pub(super) fn sym_shape(ids: &Tensor, dims: &[Dim], scalar: bool) -> R<Tensor> {
    let t = seq_len(ids)? as i64;
    let v: Vec<i64> = dims.iter().map(|d| d.at(t)).collect();
    Ok(if scalar {
        Tensor::scalar_i64(v.first().copied().unwrap_or(0))
    } else {
        Tensor::vec_i64(v)
    })
}

/// `positions`: `[0..T)` shaped `[1, T]` for the sequence length T of `ids`.
pub(super) fn positions(ids: &Tensor) -> R<Tensor> {
    let t = seq_len(ids)?;
    let v: Vec<i64> = (0..t as i64).collect();
    Ok(Tensor::I64(
        ArrayD::from_shape_vec(IxDyn(&[1, t]), v).map_err(|e| e.to_string())?,
    ))
}

/// The causal mask `[1, 1, T, T]` for `t` tokens: key `j` is allowed for query `i` when `j ≤ i`.
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

pub(super) fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> R<Tensor> {
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
