//! The cleartext simulator: a plan's exact integer semantics, run in the clear.
//!
//! This is the function the two-party runtime must compute (the oracle of every protocol test
//! and of the end-to-end tests). Values are `i64` in `[−2^(ℓ−1), 2^(ℓ−1))`; every accumulator is
//! computed exactly (i128) and checked against the ring before it is truncated, so a plan whose
//! ring is too narrow fails here with the instruction's name instead of wrapping silently. The
//! largest magnitude each instruction produced is recorded, which is how the compiler picks ℓ.
//!
//! Each instruction's step is its kind's ([`crate::plan::ops::InstructionKind::simulate`]), in
//! the kind's home beside its cost and `inspect` line; this module runs the programs.

use crate::error::{CompileError, Result};
use crate::plan::{ops::kind, Instruction, Plan, Program, WeightsFile};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// A two-party session's state, in the clear: the weights and the KV cache.
pub struct Simulator<'p> {
    pub(crate) plan: &'p Plan,
    pub(crate) weights: Vec<Vec<i64>>,
    /// Persistent registers (KV cache), row-major, `cols` wide.
    pub(crate) cache: HashMap<u32, Vec<i64>>,
    /// Positions processed so far.
    pub positions: usize,
    /// Largest |value| (before truncation) seen per instruction name, over all runs.
    pub peaks: HashMap<String, u128>,
    /// Compute the logits of every row, not only the last (for per-position comparisons).
    pub all_rows: bool,
    /// Logits of the last program run, one vector per row computed.
    pub last_logits: Vec<Vec<i64>>,
    /// Per weight: the largest column sum of |w| (decides when i64 accumulation is exact).
    pub(crate) col_abs_max: Vec<i128>,
    /// The uniform values of top-K draws (seeded, see [`Simulator::seed_sampling`]).
    pub(crate) sampling: ChaCha8Rng,
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
            if let Some(token) = kind(op).simulate(self, &mut s)? {
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
pub struct Step<'a> {
    pub(crate) ins: &'a Instruction,
    pub(crate) regs: &'a mut HashMap<u32, Vec<i64>>,
    /// The program's tokens (its rows).
    pub(crate) tokens: &'a [i64],
    /// The plan's source, for errors.
    source: &'a str,
    ring_bits: u32,
    /// Largest |value| the instruction produced (before truncation).
    peak: u128,
}

impl Step<'_> {
    /// An error of this instruction.
    pub(crate) fn fail(&self, reason: impl Into<String>) -> CompileError {
        CompileError::Eval {
            source_file: self.source.to_string(),
            node: format!("plan instruction '{}'", self.ins.name),
            reason: reason.into(),
        }
    }

    /// `v` as a ring element, recorded in the peak; an error if it leaves the ring.
    pub(crate) fn check(&mut self, v: i128) -> Result<i64> {
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
    pub(crate) fn input_reg(&self, i: usize) -> Result<u32> {
        self.ins
            .inputs
            .get(i)
            .copied()
            .ok_or_else(|| self.fail(format!("input {i} missing")))
    }

    /// The instruction's first output register.
    pub(crate) fn output(&self) -> Result<u32> {
        self.ins
            .outputs
            .first()
            .copied()
            .ok_or_else(|| self.fail("no output"))
    }

    /// Write the instruction's first output.
    pub(crate) fn put(&mut self, v: Vec<i64>) -> Result<()> {
        let o = self.output()?;
        self.regs.insert(o, v);
        Ok(())
    }

    /// Tokens of the program.
    pub(crate) fn t(&self) -> usize {
        self.tokens.len()
    }
}

/// What every kind's step reads of the session.
impl Simulator<'_> {
    /// The instruction's input `i`: a register of the program or of the cache.
    pub(crate) fn input(&self, s: &Step<'_>, i: usize) -> Result<Vec<i64>> {
        let r = s.input_reg(i)?;
        s.regs
            .get(&r)
            .or_else(|| self.cache.get(&r))
            .cloned()
            .ok_or_else(|| s.fail(format!("register {r} read before written")))
    }

    /// Columns of register `r`.
    pub(crate) fn cols(&self, r: u32) -> usize {
        self.plan.registers[r as usize].cols as usize
    }
}
