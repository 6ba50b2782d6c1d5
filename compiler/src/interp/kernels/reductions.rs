//! Operations along axes: `ReduceMean`, `ReduceSum`, `CumSum`, `Softmax`, and
//! `LayerNormalization` with the GPT `layer_norm`. Float sums accumulate in f64.

use super::{axes_of, f32_of, norm_axis, Inputs, R};
use crate::tensor::Tensor;
use ndarray::{ArrayD, Axis};

/// `CumSum`'s axis: the first value of input 1.
pub(super) fn cumsum_axis(axis: &Tensor) -> R<i64> {
    axis.to_i64_vec()
        .first()
        .copied()
        .ok_or_else(|| "CumSum needs an axis".into())
}

pub(super) fn cumsum(x: &Tensor, axis: i64, exclusive: bool, reverse: bool) -> R<Tensor> {
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

pub(super) fn reduce(x: &Tensor, axes: Option<Vec<i64>>, keepdims: bool, mean: bool) -> R<Tensor> {
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

/// `ReduceMean` of input 0 over `axes` (the attribute, or input 1; all axes when they are absent
/// or empty).
pub(super) fn reduce_mean(x: Inputs<'_, '_>, axes: &Option<Vec<i64>>, keepdims: bool) -> R<Tensor> {
    reduce(x.arg(0)?, axes_of(axes, x.opt(1)), keepdims, true)
}

/// `ReduceSum` of input 0 over `axes` (the attribute, or input 1); with `noop_with_empty_axes`
/// and no axes, input 0 as it is.
pub(super) fn reduce_sum(
    x: Inputs<'_, '_>,
    axes: &Option<Vec<i64>>,
    keepdims: bool,
    noop_with_empty_axes: bool,
) -> R<Tensor> {
    let ax = axes_of(axes, x.opt(1));
    if noop_with_empty_axes && ax.as_ref().is_none_or(|a| a.is_empty()) {
        return Ok(x.arg(0)?.clone());
    }
    reduce(x.arg(0)?, ax, keepdims, false)
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

pub(super) fn layer_norm(
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

#[cfg(test)]
mod tests {
    use super::super::f32_tensor as t;
    use super::*;

    #[test]
    fn cumsum_inclusive_and_exclusive_reversed() {
        let x = Tensor::vec_i64(vec![1, 1, 1]);
        let c = cumsum(&x, 0, false, false).unwrap();
        assert_eq!(c.to_i64_vec(), vec![1, 2, 3]);
        let e = cumsum(&x, 0, true, true).unwrap();
        assert_eq!(e.to_i64_vec(), vec![2, 1, 0]);
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
}
