//! The float semantics of the standard ONNX `Attention` operator (opset 23), which the dynamo
//! exporter writes for `scaled_dot_product_attention` from opset 23 on.
//!
//! `Y = softmax(scale·Q·Kᵀ + bias)·V` per batch and head, where `bias` is the attention mask
//! (boolean: `false` blocks; or additive) plus, with `is_causal`, the upper-left causal mask
//! (key `j` blocked for query `i` when `j > i`). Q, K, V are `[B, H, S, D]`, or `[B, S, H·D]`
//! with the head counts given as attributes; K and V may have fewer heads than Q (grouped-query
//! attention, each K/V head serving `Hq/Hkv` consecutive query heads). Past key/value inputs and
//! softcap are refused by the importer. Softmax sums accumulate in f64, as in [`super::kernels`].

use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};

type R<T> = std::result::Result<T, String>;

/// The operator's attributes.
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    pub is_causal: bool,
    pub scale: Option<f32>,
    pub q_heads: Option<usize>,
    pub kv_heads: Option<usize>,
}

/// A `[B, H, S, D]` array in standard layout.
struct Heads {
    data: Vec<f32>,
    b: usize,
    h: usize,
    s: usize,
    d: usize,
}

impl Heads {
    /// `x` as `[B, H, S, D]`: rank 4 as it is, rank 3 `[B, S, H·D]` split into `heads`.
    fn new(x: &Tensor, heads: Option<usize>, what: &str) -> R<Heads> {
        let a = x
            .as_f32()
            .ok_or_else(|| format!("{what} must be f32, got {}", x.dtype()))?;
        match *a.shape() {
            [b, h, s, d] => Ok(Heads {
                data: a.as_standard_layout().iter().copied().collect(),
                b,
                h,
                s,
                d,
            }),
            [b, s, hd] => {
                let h = heads.ok_or_else(|| {
                    format!("{what} is rank 3 [B, S, H·D]: its head count attribute is required")
                })?;
                if hd % h != 0 {
                    return Err(format!("{what} width {hd} is not divisible by {h} heads"));
                }
                let d = hd / h;
                let packed = a.as_standard_layout();
                let p = packed
                    .view()
                    .into_shape_with_order(IxDyn(&[b, s, h, d]))
                    .map_err(|e| e.to_string())?
                    .permuted_axes(IxDyn(&[0, 2, 1, 3]));
                Ok(Heads {
                    data: p.as_standard_layout().iter().copied().collect(),
                    b,
                    h,
                    s,
                    d,
                })
            }
            _ => Err(format!(
                "{what} has shape {:?}; [B, H, S, D] or [B, S, H·D] expected",
                a.shape()
            )),
        }
    }

    fn row(&self, b: usize, h: usize, i: usize) -> &[f32] {
        let at = ((b * self.h + h) * self.s + i) * self.d;
        &self.data[at..at + self.d]
    }
}

/// The mask's bias for `[b, h, i, j]`, broadcast from any rank ≤ 4 (right-aligned).
struct Mask<'a> {
    t: &'a Tensor,
    shape: [usize; 4],
}

impl<'a> Mask<'a> {
    fn new(t: &'a Tensor, full: [usize; 4]) -> R<Mask<'a>> {
        let sh = t.shape();
        if sh.len() > 4 {
            return Err(format!(
                "attention mask of rank {} (at most 4 expected)",
                sh.len()
            ));
        }
        let mut shape = [1; 4];
        shape[4 - sh.len()..].copy_from_slice(sh);
        for (k, (&m, &f)) in shape.iter().zip(&full).enumerate() {
            if m != 1 && m != f {
                return Err(format!(
                    "attention mask shape {sh:?} does not broadcast to {full:?} (axis {k})"
                ));
            }
        }
        if t.as_f32().is_none() && !matches!(t, Tensor::Bool(_)) {
            return Err(format!(
                "attention mask must be bool or f32, got {}",
                t.dtype()
            ));
        }
        Ok(Mask { t, shape })
    }

    fn bias(&self, ix: [usize; 4]) -> f32 {
        let mut at = [0usize; 4];
        for k in 0..4 {
            at[k] = if self.shape[k] == 1 { 0 } else { ix[k] };
        }
        let sh = self.t.shape();
        let at = IxDyn(&at[4 - sh.len()..]);
        match self.t {
            Tensor::Bool(m) if m[&at] => 0.0,
            Tensor::Bool(_) => f32::NEG_INFINITY,
            other => other.as_f32().map_or(0.0, |a| a[&at]),
        }
    }
}

/// Evaluate `Attention(q, k, v, mask)`; the output has the layout (rank) of `q`.
pub fn eval(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, a: Attrs) -> R<Tensor> {
    let (qh, kh, vh) = (
        Heads::new(q, a.q_heads, "Q")?,
        Heads::new(k, a.kv_heads, "K")?,
        Heads::new(v, a.kv_heads, "V")?,
    );
    if kh.b != qh.b || vh.b != qh.b || kh.d != qh.d || vh.h != kh.h || vh.s != kh.s {
        return Err(format!(
            "Q [{}, {}, {}, {}], K [{}, {}, {}, {}], V [{}, {}, {}, {}] do not fit together",
            qh.b, qh.h, qh.s, qh.d, kh.b, kh.h, kh.s, kh.d, vh.b, vh.h, vh.s, vh.d
        ));
    }
    if kh.h == 0 || qh.h % kh.h != 0 {
        return Err(format!(
            "{} query heads cannot share {} key/value heads",
            qh.h, kh.h
        ));
    }
    let group = qh.h / kh.h;
    let scale = a.scale.unwrap_or(1.0 / (qh.d as f32).sqrt());
    let mask = mask
        .map(|m| Mask::new(m, [qh.b, qh.h, qh.s, kh.s]))
        .transpose()?;
    let mut out = vec![0f32; qh.b * qh.h * qh.s * vh.d];
    let mut scores = vec![0f32; kh.s];
    for b in 0..qh.b {
        for h in 0..qh.h {
            for i in 0..qh.s {
                let qi = qh.row(b, h, i);
                for (j, sc) in scores.iter_mut().enumerate() {
                    let kj = kh.row(b, h / group, j);
                    let dot: f32 = qi.iter().zip(kj).map(|(x, y)| x * y).sum();
                    let mut s = dot * scale;
                    if let Some(m) = &mask {
                        s += m.bias([b, h, i, j]);
                    }
                    if a.is_causal && j > i {
                        s = f32::NEG_INFINITY;
                    }
                    *sc = s;
                }
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f64> = scores.iter().map(|&s| ((s - max) as f64).exp()).collect();
                let sum: f64 = e.iter().sum();
                let at = ((b * qh.h + h) * qh.s + i) * vh.d;
                for (j, &ej) in e.iter().enumerate() {
                    let p = (ej / sum) as f32;
                    for (o, &x) in out[at..at + vh.d].iter_mut().zip(vh.row(b, h / group, j)) {
                        *o += p * x;
                    }
                }
            }
        }
    }
    let y =
        ArrayD::from_shape_vec(IxDyn(&[qh.b, qh.h, qh.s, vh.d]), out).map_err(|e| e.to_string())?;
    if q.shape().len() == 4 {
        return Ok(Tensor::F32(y));
    }
    let y = y.permuted_axes(IxDyn(&[0, 2, 1, 3]));
    let flat: Vec<f32> = y.as_standard_layout().iter().copied().collect();
    Tensor::f32_from(&[qh.b, qh.s, qh.h * vh.d], flat)
        .ok_or_else(|| "attention output shape".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::kernels;
    use crate::ir::{MaskKind, Op};

    fn ramp(shape: &[usize], seed: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v = (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        Tensor::f32_from(shape, v).unwrap()
    }

    fn attrs(is_causal: bool) -> Attrs {
        Attrs {
            is_causal,
            scale: None,
            q_heads: None,
            kv_heads: None,
        }
    }

    /// The packed `[1, T, 3C]` high-level attention, split into 4-D heads, gives the same result
    /// through `Attention` with a boolean causal mask, with `is_causal`, and with an additive mask.
    #[test]
    fn agrees_with_high_level_attention() {
        let (t, heads, d) = (5, 2, 3);
        let c = heads * d;
        let qkv = ramp(&[1, t, 3 * c], 0.5);
        let want = kernels::eval(
            &Op::Attention {
                heads,
                scale: 1.0 / (d as f32).sqrt(),
            },
            &[Some(&qkv)],
        )
        .unwrap()
        .remove(0);
        let parts = kernels::eval(
            &Op::Split {
                axis: 2,
                split: None,
                outputs: 3,
            },
            &[Some(&qkv)],
        )
        .unwrap();
        let to_heads = |x: &Tensor| {
            let a = x
                .as_f32()
                .unwrap()
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(&[1, t, heads, d]))
                .unwrap();
            Tensor::F32(
                a.permuted_axes(IxDyn(&[0, 2, 1, 3]))
                    .as_standard_layout()
                    .to_owned(),
            )
        };
        let (q, k, v) = (
            to_heads(&parts[0]),
            to_heads(&parts[1]),
            to_heads(&parts[2]),
        );
        let back = |y: Tensor| {
            let a = y
                .as_f32()
                .unwrap()
                .clone()
                .permuted_axes(IxDyn(&[0, 2, 1, 3]));
            Tensor::f32_from(&[1, t, c], a.as_standard_layout().iter().copied().collect()).unwrap()
        };
        let allowed = kernels::causal_mask(t, MaskKind::Allowed);
        let additive = kernels::causal_mask(t, MaskKind::Additive(f32::MIN));
        for (mask, causal) in [
            (Some(&allowed), false),
            (None, true),
            (Some(&additive), false),
        ] {
            let got = back(eval(&q, &k, &v, mask, attrs(causal)).unwrap());
            let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
            let diff = g
                .iter()
                .zip(&w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                diff < 1e-6,
                "mask {:?} causal {causal}: diff {diff}",
                mask.map(Tensor::dtype)
            );
        }
        // Without any mask the result differs (row 0 then sees every key).
        let open = back(eval(&q, &k, &v, None, attrs(false)).unwrap());
        assert_ne!(open, want);
    }

    /// Rank-3 inputs with two query heads sharing one key/value head equal the 4-D form with
    /// the key/value head repeated.
    #[test]
    fn rank3_and_grouped_heads() {
        let (t, d) = (4, 2);
        let q = ramp(&[1, t, 2 * d], 0.1);
        let k = ramp(&[1, t, d], 0.2);
        let v = ramp(&[1, t, d], 0.3);
        let a = Attrs {
            is_causal: true,
            scale: Some(0.5),
            q_heads: Some(2),
            kv_heads: Some(1),
        };
        let y = eval(&q, &k, &v, None, a).unwrap();
        assert_eq!(y.shape(), [1, t, 2 * d]);
        let q4 = Heads::new(&q, Some(2), "Q").unwrap();
        let q4 = Tensor::f32_from(&[1, 2, t, d], q4.data).unwrap();
        let rep = |x: &Tensor| {
            let v: Vec<f32> = x.to_f64_vec().iter().map(|&f| f as f32).collect();
            Tensor::f32_from(&[1, 2, t, d], [v.clone(), v].concat()).unwrap()
        };
        let y4 = eval(
            &q4,
            &rep(&k),
            &rep(&v),
            None,
            Attrs {
                q_heads: None,
                kv_heads: None,
                ..a
            },
        )
        .unwrap();
        let y4 = Heads::new(&y4, None, "Y").unwrap();
        let y3 = Heads::new(&y, Some(2), "Y").unwrap();
        assert_eq!(y3.data, y4.data);
        let bad = eval(&q, &k, &v, None, Attrs { q_heads: None, ..a }).unwrap_err();
        assert!(bad.contains("head count attribute is required"), "{bad}");
    }
}
