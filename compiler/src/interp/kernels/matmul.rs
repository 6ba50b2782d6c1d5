//! Matrix products: `MatMul` (numpy's, with batch broadcasting), `Gemm`, and the GPT `linear`
//! and `logits`.

use super::elementwise::{arith, broadcast_shape, unary_f32};
use super::{bounded, f32_of, R};
use crate::tensor::Tensor;
use ndarray::{s, Array2, ArrayD, ArrayView2, Axis, IxDyn};

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

pub(super) fn gemm(
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

/// The GPT `linear`: `x·W`, plus the bias `b` if given.
pub(super) fn linear(x: &ArrayD<f32>, w: &ArrayD<f32>, b: Option<&Tensor>) -> R<Tensor> {
    let y = matmul(x, w)?;
    match b {
        Some(b) => arith(&Tensor::F32(y), b, |a, b| a + b, |a, b| a + b),
        None => Ok(Tensor::F32(y)),
    }
}

/// The GPT `logits`: `x·tableᵀ` with the token table `[V, C]`.
pub(super) fn logits(x: &ArrayD<f32>, table: &ArrayD<f32>) -> R<ArrayD<f32>> {
    let wt = table.t().to_owned().into_dyn();
    matmul(x, &wt)
}

#[cfg(test)]
mod tests {
    use super::super::{eval, f32_tensor as t};
    use crate::ir::Op;

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
}
