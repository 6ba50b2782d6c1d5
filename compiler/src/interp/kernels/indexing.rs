//! Operations that pick elements by index: `Slice`, `Gather`, `GatherND`, `Trilu`.

use super::layout::reshape;
use super::{norm_axis, R};
use crate::tensor::Tensor;
use ndarray::{ArrayD, Axis, IxDyn};

pub(super) fn select(t: &Tensor, axis: usize, idx: &[usize]) -> Tensor {
    each_dtype!(t, a => a.select(Axis(axis), idx))
}

pub(super) fn slice(
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

pub(super) fn gather(data: &Tensor, indices: &Tensor, axis: i64) -> R<Tensor> {
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

pub(super) fn gather_nd(data: &Tensor, indices: &Tensor, batch_dims: i64) -> R<Tensor> {
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

/// `Trilu`'s diagonal offset `k`: the first value of input 1, 0 when it is absent or empty.
pub(super) fn diagonal(k: Option<&Tensor>) -> i64 {
    k.and_then(|t| t.to_i64_vec().first().copied()).unwrap_or(0)
}

pub(super) fn trilu(x: &Tensor, k: i64, upper: bool) -> R<Tensor> {
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

#[cfg(test)]
mod tests {
    use super::super::{causal_mask, f32_tensor as t};
    use super::*;
    use crate::ir::MaskKind;

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
    fn lower_trilu_of_ones_is_the_causal_mask() {
        let ones = Tensor::Bool(ArrayD::from_elem(IxDyn(&[3, 3]), true));
        let l = trilu(&ones, 0, false).unwrap();
        let mask = causal_mask(3, MaskKind::Allowed);
        assert_eq!(l, reshape(&mask, &[3, 3]).unwrap());
    }
}
