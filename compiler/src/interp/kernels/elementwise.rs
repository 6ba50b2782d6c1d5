//! Elementwise operations: arithmetic and comparisons with numpy broadcasting, logic, `Where`,
//! `Cast`, and the unary functions, GELU among them.

use super::{bounded, f32_of, R};
use crate::ir::GeluForm;
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn, Zip};

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

/// `Add` (and the GPT `residual_add`): i64 wraps.
pub(super) fn add(a: &Tensor, b: &Tensor) -> R<Tensor> {
    arith(a, b, |a, b| a + b, |a, b| a.wrapping_add(b))
}

/// `Sub`: i64 wraps.
pub(super) fn sub(a: &Tensor, b: &Tensor) -> R<Tensor> {
    arith(a, b, |a, b| a - b, |a, b| a.wrapping_sub(b))
}

/// `Mul`: i64 wraps.
pub(super) fn mul(a: &Tensor, b: &Tensor) -> R<Tensor> {
    arith(a, b, |a, b| a * b, |a, b| a.wrapping_mul(b))
}

/// `Div`: i64 truncates toward zero, and a division by 0 gives 0.
pub(super) fn div(a: &Tensor, b: &Tensor) -> R<Tensor> {
    arith(a, b, |a, b| a / b, |a, b| if b == 0 { 0 } else { a / b })
}

/// `Pow`: the exponent is taken as f32.
pub(super) fn pow(base: &Tensor, exponent: &Tensor) -> R<Tensor> {
    let b = cast(exponent, DType::F32);
    arith(base, &b, pow_f32, |a, b| a.pow(b.max(0) as u32))
}

/// `Max`.
pub(super) fn max(a: &Tensor, b: &Tensor) -> R<Tensor> {
    arith(a, b, f32::max, i64::max)
}

/// `Min`.
pub(super) fn min(a: &Tensor, b: &Tensor) -> R<Tensor> {
    arith(a, b, f32::min, i64::min)
}

/// `Neg`: i64 wraps; other types must be f32.
pub(super) fn neg(a: &Tensor) -> R<Tensor> {
    match a {
        Tensor::I64(a) => Ok(Tensor::I64(a.mapv(|v| v.wrapping_neg()))),
        t => unary_f32(t, |v| -v),
    }
}

/// `Not` of a bool tensor.
pub(super) fn not(a: &Tensor) -> R<Tensor> {
    match a {
        Tensor::Bool(a) => Ok(Tensor::Bool(a.mapv(|v| !v))),
        t => Err(format!("Not expects bool, got {}", t.dtype())),
    }
}

pub(super) fn arith(
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

pub(super) fn unary_f32(a: &Tensor, f: impl Fn(f32) -> f32) -> R<Tensor> {
    Ok(Tensor::F32(f32_of(a)?.mapv(f)))
}

pub(super) fn compare(a: &Tensor, b: &Tensor, f: impl Fn(std::cmp::Ordering) -> bool) -> R<Tensor> {
    let ord_f = |x: f32, y: f32| x.partial_cmp(&y).map(&f).unwrap_or(false);
    match (a, b) {
        (Tensor::F32(x), Tensor::F32(y)) => Ok(Tensor::Bool(zip2(x, y, ord_f)?)),
        (Tensor::I64(x), Tensor::I64(y)) => Ok(Tensor::Bool(zip2(x, y, |x, y| f(x.cmp(&y)))?)),
        (Tensor::Bool(x), Tensor::Bool(y)) => Ok(Tensor::Bool(zip2(x, y, |x, y| f(x.cmp(&y)))?)),
        _ => Err(format!("comparison of {} and {}", a.dtype(), b.dtype())),
    }
}

pub(super) fn logic(a: &Tensor, b: &Tensor, f: impl Fn(bool, bool) -> bool) -> R<Tensor> {
    match (a, b) {
        (Tensor::Bool(x), Tensor::Bool(y)) => Ok(Tensor::Bool(zip2(x, y, f)?)),
        _ => Err(format!("logic op on {} and {}", a.dtype(), b.dtype())),
    }
}

pub(super) fn where_(c: &Tensor, x: &Tensor, y: &Tensor) -> R<Tensor> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_forms_agree_roughly() {
        for &x in &[-3.0f32, -1.0, 0.0, 0.5, 2.0] {
            let (a, b) = (gelu(x, GeluForm::Tanh), gelu(x, GeluForm::Erf));
            assert!((a - b).abs() < 2e-3, "{x}: {a} vs {b}");
        }
        assert_eq!(gelu(0.0, GeluForm::Erf), 0.0);
        assert!((gelu(1.0, GeluForm::Erf) - 0.841_344_7).abs() < 1e-6);
    }
}
