//! The cleartext simulator: a plan's exact integer semantics, run in the clear.
//!
//! This is the function the two-party runtime must compute (the oracle of every protocol test
//! and of the end-to-end tests). Values are `i64` in `[−2^(ℓ−1), 2^(ℓ−1))`; every accumulator is
//! computed exactly (i128) and checked against the ring before it is truncated, so a plan whose
//! ring is too narrow fails here with the instruction's name instead of wrapping silently. The
//! largest magnitude each instruction produced is recorded, which is how the compiler picks ℓ.

use super::{convert, semantics};
use crate::error::{CompileError, Result};
use crate::plan::{instruction::Op, Plan, Program, WeightsFile};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// A two-party session's state, in the clear: the weights and the KV cache.
pub struct Simulator<'p> {
    plan: &'p Plan,
    weights: Vec<Vec<i64>>,
    /// Persistent registers (KV cache), row-major, `cols` wide.
    cache: HashMap<u32, Vec<i64>>,
    /// Positions processed so far.
    pub positions: usize,
    /// Largest |value| (before truncation) seen per instruction name, over all runs.
    pub peaks: HashMap<String, u128>,
    /// Compute the logits of every row, not only the last (for per-position comparisons).
    pub all_rows: bool,
    /// Logits of the last program run, one vector per row computed.
    pub last_logits: Vec<Vec<i64>>,
    /// Per weight: the largest column sum of |w| (decides when i64 accumulation is exact).
    col_abs_max: Vec<i128>,
    /// The uniform values of top-K draws (seeded, see [`Simulator::seed_sampling`]).
    sampling: ChaCha8Rng,
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

impl<'p> Simulator<'p> {
    pub fn new(plan: &'p Plan, weights: &WeightsFile) -> Result<Self> {
        if weights.tensors.len() != plan.weights.len() {
            return Err(CompileError::Input(
                "the weights file does not match the plan".into(),
            ));
        }
        let values: Vec<Vec<i64>> = weights.tensors.iter().map(|t| t.values()).collect();
        let col_abs_max = values
            .iter()
            .zip(&plan.weights)
            .map(|(v, info)| {
                let n = info.shape.last().copied().unwrap_or(1).max(1) as usize;
                let mut sums = vec![0i128; n];
                for (i, &x) in v.iter().enumerate() {
                    sums[i % n] += x.unsigned_abs() as i128;
                }
                sums.into_iter().max().unwrap_or(0)
            })
            .collect();
        Ok(Simulator {
            plan,
            col_abs_max,
            weights: values,
            cache: HashMap::new(),
            positions: 0,
            peaks: HashMap::new(),
            all_rows: false,
            last_logits: Vec::new(),
            sampling: ChaCha8Rng::seed_from_u64(0),
        })
    }

    /// Seed the draws of top-K sampling (greedy plans draw nothing).
    pub fn seed_sampling(&mut self, seed: u64) {
        self.sampling = ChaCha8Rng::seed_from_u64(seed);
    }

    /// The token the plan's `Sample` picks from the logits `z`: the argmax for K = 1, else a draw
    /// from the top K in the order of [`semantics::top_k`] (the two-party protocol draws from the
    /// same distribution over a shuffled order, so single tokens agree only in distribution).
    fn sample(&mut self, sp: &crate::plan::Sample, z: &[i64]) -> semantics::SemResult<usize> {
        let k = sp.top_k.max(1) as usize;
        if k == 1 {
            return semantics::argmax(z);
        }
        let tables = sp
            .softmax
            .as_ref()
            .map(convert::softmax_from_plan)
            .ok_or_else(|| semantics::SemanticsError::new("sample", "no softmax tables"))?;
        let idx = semantics::top_k(z, k);
        let values: Vec<i64> = idx.iter().map(|&i| z[i]).collect();
        let w = semantics::sample_bits(tables.frac_out);
        let u = self.sampling.next_u64() >> (64 - w);
        let pos =
            semantics::sample_top_k(&values, u64::from(sp.inv_temperature), sp.shift, &tables, u)?;
        Ok(idx[pos])
    }

    /// Run the prefill program on the prompt; returns the next token.
    pub fn prefill(&mut self, tokens: &[i64]) -> Result<usize> {
        let p = self
            .plan
            .prefill
            .as_ref()
            .ok_or_else(|| CompileError::Input("plan has no prefill program".into()))?;
        self.run(p, tokens)
    }

    /// Run one decode step on the last generated token; returns the next token.
    pub fn decode(&mut self, token: i64) -> Result<usize> {
        let p = self
            .plan
            .decode
            .as_ref()
            .ok_or_else(|| CompileError::Input("plan has no decode program".into()))?;
        self.run(p, &[token])
    }

    fn run(&mut self, program: &Program, tokens: &[i64]) -> Result<usize> {
        let model = self.plan.model.clone().unwrap_or_default();
        let t = tokens.len();
        let past = self.positions;
        if t == 0 {
            return Err(CompileError::Input("no tokens to process".into()));
        }
        if past + t > model.positions as usize {
            return Err(CompileError::Input(format!(
                "{} positions exceed the model's {}",
                past + t,
                model.positions
            )));
        }
        let ring_bits = self.plan.ring_bits;
        let half = 1i128 << (ring_bits - 1);
        let source = self.plan.source.clone();
        let plan = self.plan;
        let mut regs: HashMap<u32, Vec<i64>> = HashMap::new();
        let mut next = None;
        for ins in &program.instructions {
            let name = ins.name.as_str();
            let fail = |reason: String| CompileError::Eval {
                source_file: source.clone(),
                node: format!("plan instruction '{name}'"),
                reason,
            };
            let op = ins.op.as_ref().ok_or_else(|| fail("no operation".into()))?;
            let get = |regs: &HashMap<u32, Vec<i64>>,
                       cache: &HashMap<u32, Vec<i64>>,
                       i: usize|
             -> Result<Vec<i64>> {
                let r = *ins
                    .inputs
                    .get(i)
                    .ok_or_else(|| fail(format!("input {i} missing")))?;
                regs.get(&r)
                    .or_else(|| cache.get(&r))
                    .cloned()
                    .ok_or_else(|| fail(format!("register {r} read before written")))
            };
            let cols = |r: u32| plan.registers[r as usize].cols as usize;
            let mut peak = 0u128;
            let mut check = |v: i128| -> Result<i64> {
                peak = peak.max(v.unsigned_abs());
                if v < -half || v >= half {
                    return Err(fail(format!(
                        "value {v} leaves the {ring_bits}-bit ring; hint: compile with a larger --ring-bits"
                    )));
                }
                Ok(v as i64)
            };
            let out0 = *ins
                .outputs
                .first()
                .ok_or_else(|| fail("no output".into()))?;
            match op {
                Op::Embed(e) => {
                    let c = cols(out0);
                    let (te, pe) = (
                        &self.weights[e.token_table as usize],
                        &self.weights[e.position_table as usize],
                    );
                    let mut out = Vec::with_capacity(t * c);
                    for (r, &tok) in tokens.iter().enumerate() {
                        if tok < 0 || tok as u64 >= model.vocab {
                            return Err(CompileError::Input(format!(
                                "token id {tok} outside the vocabulary of {}",
                                model.vocab
                            )));
                        }
                        let (tr, pr) = (tok as usize * c, (past + r) * c);
                        for j in 0..c {
                            out.push(check(te[tr + j] as i128 + pe[pr + j] as i128)?);
                        }
                    }
                    regs.insert(out0, out);
                }
                Op::Linear(l) | Op::Logits(l) => {
                    let x = get(&regs, &self.cache, 0)?;
                    let k = cols(ins.inputs[0]);
                    let w = &self.weights[l.weight as usize];
                    let n = w.len() / k.max(1);
                    let b = l.bias.map(|b| &self.weights[b as usize]);
                    let rows: Vec<usize> = match op {
                        Op::Logits(_) if !self.all_rows => vec![t - 1],
                        _ => (0..t).collect(),
                    };
                    let bound = self.col_abs_max[l.weight as usize];
                    let mut out = Vec::with_capacity(rows.len() * n);
                    for &r in &rows {
                        let xr = &x[r * k..(r + 1) * k];
                        let acc = matvec(xr, w, n, b.map(|b| b.as_slice()), bound);
                        for a in acc {
                            out.push(check(a)? >> l.shift);
                        }
                    }
                    if let Op::Logits(_) = op {
                        self.last_logits = out.chunks(n).map(|c| c.to_vec()).collect();
                    }
                    regs.insert(out0, out);
                }
                Op::SplitQkv(_) => {
                    let x = get(&regs, &self.cache, 0)?;
                    let c3 = cols(ins.inputs[0]);
                    let c = c3 / 3;
                    for (part, &o) in ins.outputs.iter().enumerate() {
                        let v: Vec<i64> = x
                            .chunks(c3)
                            .flat_map(|row| row[part * c..(part + 1) * c].to_vec())
                            .collect();
                        regs.insert(o, v);
                    }
                }
                Op::CacheAppend(_) => {
                    let x = get(&regs, &self.cache, 0)?;
                    self.cache.entry(out0).or_default().extend(x);
                }
                Op::QkT(h) => {
                    let (q, kc) = (get(&regs, &self.cache, 0)?, get(&regs, &self.cache, 1)?);
                    let c = cols(ins.inputs[0]);
                    let (heads, d) = (h.heads as usize, c / h.heads as usize);
                    let npos = past + t;
                    let mut out = vec![0i64; heads * t * npos];
                    for hh in 0..heads {
                        for r in 0..t {
                            for j in 0..=past + r {
                                let mut acc = 0i128;
                                for dd in 0..d {
                                    acc += q[r * c + hh * d + dd] as i128
                                        * kc[j * c + hh * d + dd] as i128;
                                }
                                out[(hh * t + r) * npos + j] = check(acc)? >> h.shift;
                            }
                        }
                    }
                    regs.insert(out0, out);
                }
                Op::Softmax(s) => {
                    let x = get(&regs, &self.cache, 0)?;
                    let tables = convert::softmax_from_plan(s);
                    let npos = past + t;
                    let mut out = vec![0i64; x.len()];
                    for hh in 0..s.heads as usize {
                        for r in 0..t {
                            let base = (hh * t + r) * npos;
                            let row = &x[base..base + past + r + 1];
                            let p = semantics::softmax_row(row, &tables)
                                .map_err(|e| fail(e.to_string()))?;
                            for (j, v) in p.into_iter().enumerate() {
                                out[base + j] = check(v as i128)?;
                            }
                        }
                    }
                    regs.insert(out0, out);
                }
                Op::Pv(h) => {
                    let (p, vc) = (get(&regs, &self.cache, 0)?, get(&regs, &self.cache, 1)?);
                    let c = cols(ins.inputs[1]);
                    let (heads, d) = (h.heads as usize, c / h.heads as usize);
                    let npos = past + t;
                    let mut out = vec![0i64; t * c];
                    for hh in 0..heads {
                        for r in 0..t {
                            for dd in 0..d {
                                let mut acc = 0i128;
                                for j in 0..=past + r {
                                    acc += p[(hh * t + r) * npos + j] as i128
                                        * vc[j * c + hh * d + dd] as i128;
                                }
                                out[r * c + hh * d + dd] = check(acc)? >> h.shift;
                            }
                        }
                    }
                    regs.insert(out0, out);
                }
                Op::LayerNorm(l) => {
                    let x = get(&regs, &self.cache, 0)?;
                    let p = convert::layernorm_from_plan(l);
                    let n = l.n as usize;
                    let mut out = Vec::with_capacity(x.len());
                    for row in x.chunks(n) {
                        let y =
                            semantics::layernorm_row(row, &p).map_err(|e| fail(e.to_string()))?;
                        for v in y {
                            out.push(check(v as i128)?);
                        }
                    }
                    regs.insert(out0, out);
                }
                Op::Gelu(gp) => {
                    let x = get(&regs, &self.cache, 0)?;
                    let tables = convert::gelu_from_plan(gp);
                    let out = x
                        .iter()
                        .map(|&v| {
                            let y = semantics::gelu(v, &tables).map_err(|e| fail(e.to_string()))?;
                            check(y as i128)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    regs.insert(out0, out);
                }
                Op::Add(_) => {
                    let (a, b) = (get(&regs, &self.cache, 0)?, get(&regs, &self.cache, 1)?);
                    let out = a
                        .iter()
                        .zip(&b)
                        .map(|(&x, &y)| check(x as i128 + y as i128))
                        .collect::<Result<Vec<_>>>()?;
                    regs.insert(out0, out);
                }
                Op::Sample(sp) => {
                    let z = self.last_logits.last().cloned().unwrap_or_default();
                    next = Some(self.sample(sp, &z).map_err(|e| fail(e.to_string()))?);
                }
            }
            let e = self.peaks.entry(ins.name.clone()).or_default();
            *e = (*e).max(peak);
        }
        self.positions += t;
        next.ok_or_else(|| {
            CompileError::Input("the program does not end in a sampling instruction".into())
        })
    }
}
