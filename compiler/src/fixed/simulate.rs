//! The cleartext simulator: a plan's exact integer semantics, run in the clear.
//!
//! This is the function the two-party runtime must compute (the oracle of every protocol test
//! and of the end-to-end tests). Values are `i64` in `[−2^(ℓ−1), 2^(ℓ−1))`; every accumulator is
//! computed exactly (i128) and checked against the ring before it is truncated, so a plan whose
//! ring is too narrow fails here with the instruction's name instead of wrapping silently. The
//! largest magnitude each instruction produced is recorded, which is how the compiler picks ℓ.

use super::{convert, semantics};
use crate::error::{CompileError, Result};
use crate::plan::{self, instruction::Op, Instruction, Plan, Program, WeightsFile};
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
        let plan = self.plan;
        let mut regs: HashMap<u32, Vec<i64>> = HashMap::new();
        let mut next = None;
        for ins in &program.instructions {
            let mut s = Step {
                ins,
                regs: &mut regs,
                tokens,
                source: &plan.source,
                ring_bits: plan.ring_bits,
                peak: 0,
            };
            let op = ins.op.as_ref().ok_or_else(|| s.fail("no operation"))?;
            if let Some(token) = self.step(&mut s, op)? {
                next = Some(token);
            }
            let peak = s.peak;
            let e = self.peaks.entry(ins.name.clone()).or_default();
            *e = (*e).max(peak);
        }
        self.positions += t;
        next.ok_or_else(|| {
            CompileError::Input("the program does not end in a sampling instruction".into())
        })
    }
}

/// One instruction's run: its registers, the program's tokens, and the ring check.
struct Step<'a> {
    ins: &'a Instruction,
    regs: &'a mut HashMap<u32, Vec<i64>>,
    /// The program's tokens (its rows).
    tokens: &'a [i64],
    /// The plan's source, for errors.
    source: &'a str,
    ring_bits: u32,
    /// Largest |value| the instruction produced (before truncation).
    peak: u128,
}

impl Step<'_> {
    /// An error of this instruction.
    fn fail(&self, reason: impl Into<String>) -> CompileError {
        CompileError::Eval {
            source_file: self.source.to_string(),
            node: format!("plan instruction '{}'", self.ins.name),
            reason: reason.into(),
        }
    }

    /// `v` as a ring element, recorded in the peak; an error if it leaves the ring.
    fn check(&mut self, v: i128) -> Result<i64> {
        self.peak = self.peak.max(v.unsigned_abs());
        let half = 1i128 << (self.ring_bits - 1);
        if v < -half || v >= half {
            return Err(self.fail(format!(
                "value {v} leaves the {}-bit ring; hint: compile with a larger --ring-bits",
                self.ring_bits
            )));
        }
        Ok(v as i64)
    }

    /// The instruction's input register `i`.
    fn input_reg(&self, i: usize) -> Result<u32> {
        self.ins
            .inputs
            .get(i)
            .copied()
            .ok_or_else(|| self.fail(format!("input {i} missing")))
    }

    /// The instruction's first output register.
    fn output(&self) -> Result<u32> {
        self.ins
            .outputs
            .first()
            .copied()
            .ok_or_else(|| self.fail("no output"))
    }

    /// Write the instruction's first output.
    fn put(&mut self, v: Vec<i64>) -> Result<()> {
        let o = self.output()?;
        self.regs.insert(o, v);
        Ok(())
    }

    /// Tokens of the program.
    fn t(&self) -> usize {
        self.tokens.len()
    }
}

/// The instructions, one method per kind: the same homes as the runtime's `exec/ops.rs`.
impl Simulator<'_> {
    /// Run one instruction; the token, for `Sample`.
    fn step(&mut self, s: &mut Step<'_>, op: &Op) -> Result<Option<usize>> {
        match op {
            Op::Embed(e) => self.embed(s, e)?,
            Op::Linear(l) => self.linear(s, l, false)?,
            Op::Logits(l) => self.linear(s, l, true)?,
            Op::SplitQkv(_) => {
                let x = self.input(s, 0)?;
                let c3 = self.cols(s.input_reg(0)?);
                let c = c3 / 3;
                for (part, &o) in s.ins.outputs.iter().enumerate() {
                    let v: Vec<i64> = x
                        .chunks(c3)
                        .flat_map(|row| row[part * c..(part + 1) * c].to_vec())
                        .collect();
                    s.regs.insert(o, v);
                }
            }
            Op::CacheAppend(_) => {
                let x = self.input(s, 0)?;
                self.cache.entry(s.output()?).or_default().extend(x);
            }
            Op::QkT(h) => self.qk_t(s, h)?,
            Op::Softmax(sm) => self.softmax(s, sm)?,
            Op::Pv(h) => self.pv(s, h)?,
            Op::LayerNorm(l) => {
                let x = self.input(s, 0)?;
                let p = convert::layernorm_from_plan(l);
                let mut out = Vec::with_capacity(x.len());
                for row in x.chunks(l.n.max(1) as usize) {
                    let y = semantics::layernorm_row(row, &p).map_err(|e| s.fail(e.to_string()))?;
                    for v in y {
                        out.push(s.check(v as i128)?);
                    }
                }
                s.put(out)?;
            }
            Op::Gelu(g) => {
                let x = self.input(s, 0)?;
                let tables = convert::gelu_from_plan(g);
                let mut out = Vec::with_capacity(x.len());
                for &v in &x {
                    let y = semantics::gelu(v, &tables).map_err(|e| s.fail(e.to_string()))?;
                    out.push(s.check(y as i128)?);
                }
                s.put(out)?;
            }
            Op::Add(_) => {
                let (a, b) = (self.input(s, 0)?, self.input(s, 1)?);
                let mut out = Vec::with_capacity(a.len());
                for (&x, &y) in a.iter().zip(&b) {
                    out.push(s.check(x as i128 + y as i128)?);
                }
                s.put(out)?;
            }
            Op::Sample(sp) => {
                let z = self.last_logits.last().cloned().unwrap_or_default();
                return Ok(Some(
                    self.sample(sp, &z).map_err(|e| s.fail(e.to_string()))?,
                ));
            }
        }
        Ok(None)
    }

    /// The instruction's input `i`: a register of the program or of the cache.
    fn input(&self, s: &Step<'_>, i: usize) -> Result<Vec<i64>> {
        let r = s.input_reg(i)?;
        s.regs
            .get(&r)
            .or_else(|| self.cache.get(&r))
            .cloned()
            .ok_or_else(|| s.fail(format!("register {r} read before written")))
    }

    /// Columns of register `r`.
    fn cols(&self, r: u32) -> usize {
        self.plan.registers[r as usize].cols as usize
    }

    /// `Embed`: the token table's rows of the tokens plus the position table's rows.
    fn embed(&mut self, s: &mut Step<'_>, e: &plan::Embed) -> Result<()> {
        let c = self.cols(s.output()?);
        let vocab = self.plan.model.as_ref().map_or(0, |m| m.vocab);
        let past = self.positions;
        let (te, pe) = (
            &self.weights[e.token_table as usize],
            &self.weights[e.position_table as usize],
        );
        let mut out = Vec::with_capacity(s.t() * c);
        for (r, &tok) in s.tokens.iter().enumerate() {
            if tok < 0 || tok as u64 >= vocab {
                return Err(CompileError::Input(format!(
                    "token id {tok} outside the vocabulary of {vocab}"
                )));
            }
            let (tr, pr) = (tok as usize * c, (past + r) * c);
            for j in 0..c {
                out.push(s.check(te[tr + j] as i128 + pe[pr + j] as i128)?);
            }
        }
        s.put(out)
    }

    /// `Linear` and `Logits` (the last row only, unless `all_rows`): (x·W + b) >> shift.
    fn linear(&mut self, s: &mut Step<'_>, l: &plan::Linear, logits: bool) -> Result<()> {
        let x = self.input(s, 0)?;
        let k = self.cols(s.input_reg(0)?);
        let w = &self.weights[l.weight as usize];
        let n = w.len() / k.max(1);
        let b = l.bias.map(|b| &self.weights[b as usize]);
        let t = s.t();
        let rows: Vec<usize> = match logits && !self.all_rows {
            true => vec![t - 1],
            false => (0..t).collect(),
        };
        let bound = self.col_abs_max[l.weight as usize];
        let mut out = Vec::with_capacity(rows.len() * n);
        for &r in &rows {
            let xr = &x[r * k..(r + 1) * k];
            let acc = matvec(xr, w, n, b.map(|b| b.as_slice()), bound);
            for a in acc {
                out.push(s.check(a)? >> l.shift);
            }
        }
        if logits {
            self.last_logits = out.chunks(n).map(|c| c.to_vec()).collect();
        }
        s.put(out)
    }

    /// `QkT`: per head, each row's causal scores (q·kⱼ) >> shift against the cache.
    fn qk_t(&mut self, s: &mut Step<'_>, h: &plan::HeadProduct) -> Result<()> {
        let (q, kc) = (self.input(s, 0)?, self.input(s, 1)?);
        let c = self.cols(s.input_reg(0)?);
        let (heads, d) = (h.heads as usize, c / h.heads as usize);
        let (t, past) = (s.t(), self.positions);
        let npos = past + t;
        let mut out = vec![0i64; heads * t * npos];
        for hh in 0..heads {
            for r in 0..t {
                for j in 0..=past + r {
                    let mut acc = 0i128;
                    for dd in 0..d {
                        acc += q[r * c + hh * d + dd] as i128 * kc[j * c + hh * d + dd] as i128;
                    }
                    out[(hh * t + r) * npos + j] = s.check(acc)? >> h.shift;
                }
            }
        }
        s.put(out)
    }

    /// `Softmax` of each head's causal score rows.
    fn softmax(&mut self, s: &mut Step<'_>, sm: &plan::Softmax) -> Result<()> {
        let x = self.input(s, 0)?;
        let tables = convert::softmax_from_plan(sm);
        let (t, past) = (s.t(), self.positions);
        let npos = past + t;
        let mut out = vec![0i64; x.len()];
        for hh in 0..sm.heads as usize {
            for r in 0..t {
                let base = (hh * t + r) * npos;
                let row = &x[base..base + past + r + 1];
                let p = semantics::softmax_row(row, &tables).map_err(|e| s.fail(e.to_string()))?;
                for (j, v) in p.into_iter().enumerate() {
                    out[base + j] = s.check(v as i128)?;
                }
            }
        }
        s.put(out)
    }

    /// `Pv`: per head, (P·V) >> shift against the cached values.
    fn pv(&mut self, s: &mut Step<'_>, h: &plan::HeadProduct) -> Result<()> {
        let (p, vc) = (self.input(s, 0)?, self.input(s, 1)?);
        let c = self.cols(s.input_reg(1)?);
        let (heads, d) = (h.heads as usize, c / h.heads as usize);
        let (t, past) = (s.t(), self.positions);
        let npos = past + t;
        let mut out = vec![0i64; t * c];
        for hh in 0..heads {
            for r in 0..t {
                for dd in 0..d {
                    let mut acc = 0i128;
                    for j in 0..=past + r {
                        acc += p[(hh * t + r) * npos + j] as i128 * vc[j * c + hh * d + dd] as i128;
                    }
                    out[r * c + hh * d + dd] = s.check(acc)? >> h.shift;
                }
            }
        }
        s.put(out)
    }
}
