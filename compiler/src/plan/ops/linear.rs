//! `Linear`, `y = (x·W + b) >> shift` with a server-held W and b, and `Logits`, the vocabulary
//! projection of the last row, `x·W + b` (both plan message [`plan::Linear`]). Two-party
//! execution: `runtime/src/exec/ops/linear.rs`.

use super::{weight_label, InstructionKind};
use crate::error::Result;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{part, truncation, weight_product, CostInput, OpClass, Part};
use crate::plan::{self, Plan};
use std::fmt::Write;

pub struct Linear<'a>(pub &'a plan::Linear);

/// `Logits`: a [`Linear`] of the last row only (of every row in the simulator's `all_rows`).
pub struct Logits<'a>(pub &'a plan::Linear);

impl InstructionKind for Linear<'_> {
    fn name(&self) -> &'static str {
        "Linear"
    }

    fn class(&self) -> OpClass {
        OpClass::MatMul
    }

    fn attributes(&self, plan: &Plan) -> String {
        attributes(self.0, plan)
    }

    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let lin = self.0;
        let (l, rows) = (at.ring_bits(), at.sizes.rows);
        let (k, n) = at.weight_shape(lin.weight);
        let k = if at.input_cols() > 0 {
            at.input_cols()
        } else {
            k
        };
        let mm = weight_product(lin.prepared, rows, k, n, l);
        let tr = truncation(l, u64::from(lin.shift))
            .times(rows.saturating_mul(n))
            .begun_after(mm);
        vec![part(OpClass::MatMul, mm), part(OpClass::Truncation, tr)]
    }

    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        simulate(sim, s, self.0, false)?;
        Ok(None)
    }
}

impl InstructionKind for Logits<'_> {
    fn name(&self) -> &'static str {
        "Logits"
    }

    fn class(&self) -> OpClass {
        OpClass::MatMul
    }

    fn attributes(&self, plan: &Plan) -> String {
        attributes(self.0, plan)
    }

    /// One row; a truncation only when the plan shifts the logits.
    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let lin = self.0;
        let l = at.ring_bits();
        let (k, n) = at.weight_shape(lin.weight);
        let k = if at.input_cols() > 0 {
            at.input_cols()
        } else {
            k
        };
        let mm = weight_product(lin.prepared, 1, k, n, l);
        let tr = truncation(l, u64::from(lin.shift)).times(n).begun_after(mm);
        let mut parts = vec![part(OpClass::MatMul, mm)];
        if lin.shift > 0 {
            parts.push(part(OpClass::Truncation, tr));
        }
        parts
    }

    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        simulate(sim, s, self.0, true)?;
        Ok(None)
    }
}

fn attributes(l: &plan::Linear, plan: &Plan) -> String {
    let mut s = format!("W={}", weight_label(plan, l.weight));
    if let Some(b) = l.bias {
        let _ = write!(s, " b={}", weight_label(plan, b));
    }
    if l.shift > 0 {
        let _ = write!(s, " >>{}", l.shift);
    }
    if l.prepared != plan::Linear::ONLINE {
        let _ = write!(s, " {}", l.prepared_name());
    }
    s
}

/// `Linear` and `Logits` (the last row only, unless `all_rows`): (x·W + b) >> shift.
fn simulate(
    sim: &mut Simulator<'_>,
    s: &mut Step<'_>,
    l: &plan::Linear,
    logits: bool,
) -> Result<()> {
    let x = sim.input(s, 0)?;
    let k = sim.cols(s.input_reg(0)?);
    let w = &sim.weights[l.weight as usize];
    let n = w.len() / k.max(1);
    let b = l.bias.map(|b| &sim.weights[b as usize]);
    let t = s.t();
    let rows: Vec<usize> = match logits && !sim.all_rows {
        true => vec![t - 1],
        false => (0..t).collect(),
    };
    let bound = sim.col_abs_max[l.weight as usize];
    let mut out = Vec::with_capacity(rows.len() * n);
    for &r in &rows {
        let xr = &x[r * k..(r + 1) * k];
        let acc = matvec(xr, w, n, b.map(|b| b.as_slice()), bound);
        for a in acc {
            out.push(s.check(a)? >> l.shift);
        }
    }
    if logits {
        sim.last_logits = out.chunks(n).map(|c| c.to_vec()).collect();
    }
    s.put(out)
}

/// `x·W + b` for one row, exactly. Accumulates in i64 when `max|x|·bound < 2^62` (no overflow
/// possible), else in i128; columns in parallel.
fn matvec(x: &[i64], w: &[i64], n: usize, b: Option<&[i64]>, bound: i128) -> Vec<i128> {
    use rayon::prelude::*;
    let xmax = x
        .iter()
        .map(|v| v.unsigned_abs() as i128)
        .max()
        .unwrap_or(0);
    let fast = xmax.saturating_mul(bound) < (1i128 << 62)
        && b.is_none_or(|b| b.iter().all(|v| v.unsigned_abs() < 1 << 61));
    const CHUNK: usize = 256;
    let mut out = vec![0i128; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, dst)| {
        let c0 = ci * CHUNK;
        let width = dst.len();
        if fast {
            let mut acc: Vec<i64> = b.map_or(vec![0; width], |b| b[c0..c0 + width].to_vec());
            for (i, &xi) in x.iter().enumerate() {
                if xi != 0 {
                    for (a, &wv) in acc.iter_mut().zip(&w[i * n + c0..i * n + c0 + width]) {
                        *a += xi * wv;
                    }
                }
            }
            for (d, a) in dst.iter_mut().zip(acc) {
                *d = a as i128;
            }
        } else {
            let mut acc: Vec<i128> = b.map_or(vec![0; width], |b| {
                b[c0..c0 + width].iter().map(|&v| v as i128).collect()
            });
            for (i, &xi) in x.iter().enumerate() {
                if xi != 0 {
                    for (a, &wv) in acc.iter_mut().zip(&w[i * n + c0..i * n + c0 + width]) {
                        *a += xi as i128 * wv as i128;
                    }
                }
            }
            dst.copy_from_slice(&acc);
        }
    });
    out
}
