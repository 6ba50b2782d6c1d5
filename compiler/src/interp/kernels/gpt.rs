//! The GPT operations with no ONNX counterpart: `embedding` (token plus position tables) and
//! causal multi-head `attention` on the packed projection. `linear` and `logits` are in
//! `matmul`, `layer_norm` in `reductions`, `gelu` in `elementwise`.

use super::R;
use crate::tensor::Tensor;
use ndarray::{s, Array2, ArrayD, Axis, IxDyn};

/// The GPT `embedding`: row `ids[p]` of the token table plus row `p` of the position table.
pub(super) fn embedding(ids: &Tensor, wte: &ArrayD<f32>, wpe: &ArrayD<f32>) -> R<Tensor> {
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
pub(super) fn attention(qkv: &ArrayD<f32>, heads: usize, scale: f32) -> R<ArrayD<f32>> {
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
