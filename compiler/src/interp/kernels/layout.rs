//! Operations that move elements without computing them: `Reshape`, `Transpose`, `Squeeze`,
//! `Unsqueeze`, `Concat`, `Split`, `Expand`.

use super::elementwise::broadcast_shape;
use super::indexing::select;
use super::{axes_of, bounded, norm_axis, Inputs, R};
use crate::tensor::Tensor;
use ndarray::{concatenate, Axis, IxDyn};

pub(super) fn transpose(t: &Tensor, perm: Option<&[usize]>) -> R<Tensor> {
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

pub(super) fn reshape(t: &Tensor, shape: &[usize]) -> R<Tensor> {
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

pub(super) fn concat(parts: &[&Tensor], axis: i64) -> R<Tensor> {
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

/// `Unsqueeze`: `x` (input 0) with size-1 axes inserted at `axes` (the attribute, or input 1).
pub(super) fn unsqueeze(x: Inputs<'_, '_>, axes: &Option<Vec<i64>>) -> R<Tensor> {
    let axes = axes_of(axes, x.opt(1)).ok_or("Unsqueeze needs axes")?;
    let x = x.arg(0)?;
    let rank = x.shape().len() + axes.len();
    let mut axes: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?;
    axes.sort_unstable();
    let mut shape: Vec<usize> = x.shape().to_vec();
    for a in axes {
        if a > shape.len() {
            return Err(format!("Unsqueeze axis {a} out of range"));
        }
        shape.insert(a, 1);
    }
    reshape(x, &shape)
}

/// `Squeeze`: `x` (input 0) without the size-1 axes `axes` (the attribute, or input 1; all its
/// size-1 axes when neither is given).
pub(super) fn squeeze(x: Inputs<'_, '_>, axes: &Option<Vec<i64>>) -> R<Tensor> {
    let (axes, x) = (axes_of(axes, x.opt(1)), x.arg(0)?);
    let rank = x.shape().len();
    let axes: Vec<usize> = match axes {
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
    reshape(x, &shape)
}

/// `Split`: `x` (input 0) cut along `axis` into `outputs` parts, of the sizes `split` (the
/// attribute, or input 1), or equal but for a smaller last one.
pub(super) fn split(
    x: Inputs<'_, '_>,
    axis: i64,
    split: &Option<Vec<i64>>,
    outputs: usize,
) -> R<Vec<Tensor>> {
    let data = x.arg(0)?;
    let ax = norm_axis(axis, data.shape().len())?;
    let n = data.shape()[ax];
    let sizes: Vec<usize> = match axes_of(split, x.opt(1)) {
        Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
        None => {
            let chunk = n.div_ceil(outputs.max(1));
            (0..outputs)
                .map(|i| chunk.min(n.saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != n || sizes.len() != outputs {
        return Err(format!(
            "Split sizes {sizes:?} do not cover axis of size {n}"
        ));
    }
    let mut out = Vec::new();
    let mut start = 0;
    for sz in sizes {
        let idx: Vec<usize> = (start..start + sz).collect();
        out.push(select(data, ax, &idx));
        start += sz;
    }
    Ok(out)
}

/// `Expand`: `x` broadcast with the shape given as values.
pub(super) fn expand(x: &Tensor, shape: &Tensor) -> R<Tensor> {
    let want: Vec<usize> = shape
        .to_i64_vec()
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect();
    let shape = broadcast_shape(x.shape(), &want)?;
    bounded("Expand", &shape)?;
    broadcast_to(x, &shape)
}

fn broadcast_to(t: &Tensor, shape: &[usize]) -> R<Tensor> {
    let sh = IxDyn(shape);
    Ok(each_dtype!(t, a => a.broadcast(sh.clone()).ok_or("Expand: cannot broadcast")?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::f32_tensor as t;
    use super::*;

    /// Found by `ciphergpt fuzz onnx`: a Concat of a matrix and a vector on axis 1 reached
    /// ndarray's assertion on the vector's axes.
    #[test]
    fn concat_of_different_ranks_is_an_error() {
        let (m, v) = (t(&[1, 2], &[1., 2.]), t(&[2], &[3., 4.]));
        let e = concat(&[&m, &v], 1).unwrap_err();
        assert!(e.contains("Concat of tensors of ranks 2 and 1"), "{e}");
        assert_eq!(concat(&[&m, &m], 1).unwrap().shape(), &[1, 4]);
    }

    #[test]
    fn reshape_infers_and_copies() {
        assert_eq!(
            reshape_target(&[1, 6, 4], &[0, -1, 2], false).unwrap(),
            vec![1, 12, 2]
        );
        assert!(reshape_target(&[5], &[2, -1], false).is_err());
    }
}
