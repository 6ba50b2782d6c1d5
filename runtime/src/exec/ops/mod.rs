//! The instructions' two-party execution: one file per kind, dispatched by
//! [`Executor::step`]. Each reads its input registers, runs its protocol on lane 0 or across
//! the lanes, and writes its outputs. A kind's name, op class, integer semantics (the
//! simulator's oracle), cost estimate and `inspect` line are in its home in the compiler,
//! `compiler/src/plan/ops/<kind>.rs`, which names the file here; `docs/plan.md` gives the
//! semantics. This module holds what the kinds share: the [`Step`], register access, the
//! truncation on the lanes, the prepared correlations' lookup and the weight products.

use std::collections::HashMap;
use std::time::Instant;

use ciphergpt_compiler::plan::{instruction::Op, Instruction};

use super::lanes::elementwise;
use super::stock::Nonlinear;
use super::{Executor, Lane};
use crate::net::{Channel, Role};
use crate::protocols::attention_he::DuplexHe;
use crate::protocols::shares::Ring;
use crate::protocols::{masked_matmul, trunc};
use crate::protocols::{Party, ProtocolError};

mod add;
mod cache_append;
mod embed;
mod gelu;
mod head_product;
mod layernorm;
mod linear;
mod sample;
mod softmax;
mod split_qkv;

/// What one instruction runs with: this party's lane 0 (OT, RLWE, channel), the further lanes,
/// the program's registers and tokens, and where its truncations' time adds up.
pub(super) struct Step<'a, C: Channel + ?Sized> {
    /// Lane 0: its OT, its channel, this party's role.
    pub party: Party<'a, C>,
    pub ring: Ring,
    pub he: &'a DuplexHe,
    pub lanes: &'a mut [Lane],
    pub regs: &'a mut HashMap<u32, Vec<u64>>,
    pub ins: &'a Instruction,
    /// Tokens of the program (rows of its registers).
    pub t: usize,
    /// The client's tokens.
    pub tokens: Option<&'a [i64]>,
    pub trunc_secs: &'a mut f64,
}

impl<C: Channel + ?Sized> Step<'_, C> {
    /// The instruction's output register `i`.
    fn output(&self, i: usize) -> Result<u32, ProtocolError> {
        self.ins
            .outputs
            .get(i)
            .copied()
            .ok_or_else(|| ProtocolError::Invalid(format!("output {i} missing")))
    }

    /// The instruction's input register `i`.
    fn input_reg(&self, i: usize) -> Result<u32, ProtocolError> {
        self.ins
            .inputs
            .get(i)
            .copied()
            .ok_or_else(|| ProtocolError::Invalid(format!("input {i} missing")))
    }

    /// Lanes in all, lane 0 included.
    fn lane_count(&self) -> usize {
        self.lanes.len() + 1
    }

    /// [`trunc::trunc_within_margin_from`] by `s` bits in the instruction's `…/trunc` scope, on
    /// the lanes, its time added to the step's; `first`, the party that sent the product's last
    /// flight, begins it (the cost model's `Bits::begun_after`).
    fn truncate(&mut self, first: Role, s: u32, v: &[u64]) -> Result<Vec<u64>, ProtocolError> {
        let ring = self.ring;
        let scope = format!("{}/trunc", self.ins.name);
        let t0 = Instant::now();
        let lanes = &mut *self.lanes;
        let r = self.party.scoped(&scope, |party| {
            elementwise(party, lanes, v, |p, part| {
                trunc::trunc_within_margin_from(p, first, ring, s, part)
            })
        });
        *self.trunc_secs += t0.elapsed().as_secs_f64();
        r
    }
}

impl<'p> Executor<'p> {
    /// Execute one instruction; returns the sampled token (client, `Sample`).
    pub(super) fn step<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        op: &Op,
    ) -> Result<Option<usize>, ProtocolError> {
        match op {
            Op::Embed(e) => self.embed(s, e)?,
            Op::Linear(l) => self.linear(s, l, false)?,
            Op::Logits(l) => self.linear(s, l, true)?,
            Op::SplitQkv(_) => self.split_qkv(s)?,
            Op::CacheAppend(_) => self.cache_append(s)?,
            Op::QkT(h) => self.qk_t(s, h)?,
            Op::Softmax(sm) => self.softmax(s, sm)?,
            Op::Pv(h) => self.pv(s, h)?,
            Op::LayerNorm(l) => self.layernorm(s, l)?,
            Op::Gelu(g) => self.gelu(s, g)?,
            Op::Add(_) => self.add(s)?,
            Op::Sample(sp) => return self.sample_step(s, sp),
        }
        Ok(None)
    }

    /// This party's shares of the instruction's input `i`: a register of the program or of the
    /// cache.
    fn input<C: Channel + ?Sized>(
        &self,
        s: &Step<'_, C>,
        i: usize,
    ) -> Result<Vec<u64>, ProtocolError> {
        let r = s.input_reg(i)?;
        s.regs
            .get(&r)
            .or_else(|| self.cache.get(&r))
            .cloned()
            .ok_or_else(|| ProtocolError::Invalid(format!("register {r} read before written")))
    }

    /// Columns of register `r`.
    fn cols(&self, r: u32) -> usize {
        self.plan.registers[r as usize].cols as usize
    }

    /// The correlation of a non-linear instruction as `pick` reads it, and where its unused
    /// part starts, when the decode program runs, the plan marks the instruction `prepared` and
    /// at least `need` of it is left; else `None`, and the instruction runs online.
    fn nonlinear<'s, T>(
        &'s self,
        name: &str,
        prepared: bool,
        need: usize,
        pick: impl Fn(&'s Nonlinear) -> Option<&'s T>,
    ) -> Option<(&'s T, usize)> {
        if !(self.decoding && prepared) {
            return None;
        }
        self.stock.take(name, need, pick)
    }

    /// Shares of x·W + b by the prepared correlation of weight `w` (the server adds the bias).
    fn masked_product<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        w: u32,
        x: Option<&[u64]>,
        rows: usize,
        b: Option<u32>,
    ) -> Result<Vec<u64>, ProtocolError> {
        let (role, ring) = (self.role, self.ring);
        // The encoded model outlives the executor's borrow: no copy per step.
        let model: &'p super::EncodedModel = self.model;
        let weights = match role {
            Role::Server => Some(model.plain_weights(w)?),
            Role::Client => None,
        };
        let corr = self.stock.product_mut(w)?;
        let mut y = masked_matmul::multiply(ch, role, ring, corr, x, weights, rows)?;
        if let (Role::Server, Some(b)) = (role, b) {
            let bias = model.signed(b).unwrap_or(&[]);
            let n = y.len() / rows.max(1);
            for (i, v) in y.iter_mut().enumerate() {
                *v = ring.add(*v, ring.from_signed(bias.get(i % n).copied().unwrap_or(0)));
            }
        }
        Ok(y)
    }

    /// Shares of x·W + b under RLWE for the weight `w` ([K × N]) and optional bias `b` (ids in
    /// the plan), x of `rows` rows: in the decode packing for one row, else several rows per
    /// ciphertext ([`super::EncodedModel::packing_for`]).
    fn product<C: Channel + ?Sized>(
        &self,
        he: &DuplexHe,
        ch: &mut C,
        w: u32,
        x: &[u64],
        rows: usize,
        b: Option<u32>,
    ) -> Result<Vec<u64>, ProtocolError> {
        let p = self.model.packing_for(w, rows)?;
        let server = match self.role {
            Role::Server => {
                let weights = self.model.server_weights(w, &p)?;
                let bias = match b {
                    Some(b) => self
                        .model
                        .signed(b)
                        .map(<[i64]>::to_vec)
                        .unwrap_or_default(),
                    None => vec![0; p.n],
                };
                Some((weights, bias))
            }
            Role::Client => None,
        };
        crate::protocols::linear::linear_with(
            he.session(),
            ch,
            self.role,
            self.ring,
            &p,
            x,
            rows,
            server.as_ref().map(|(w, b)| (*w, &b[..])),
        )
    }
}

/// Flat indices of the causal entries (j ≤ past + r) of a [heads × t × (past + t)] score block,
/// in head, row, position order.
fn causal_entries(heads: usize, t: usize, past: usize) -> Vec<usize> {
    let npos = past + t;
    (0..heads)
        .flat_map(|h| (0..t).flat_map(move |r| (0..=past + r).map(move |j| (h * t + r) * npos + j)))
        .collect()
}
