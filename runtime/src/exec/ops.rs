//! The instructions: one method per kind, dispatched by [`Executor::step`]. Each reads its
//! input registers, runs its protocol on lane 0 or across the lanes, and writes its outputs
//! (docs/plan.md gives the semantics, `ciphergpt_compiler::fixed::simulate` the oracle).

use std::collections::HashMap;
use std::time::Instant;

use ciphergpt_compiler::fixed::convert;
use ciphergpt_compiler::plan::{self, instruction::Op, Instruction};

use super::lanes::{balanced_cuts, elementwise, elementwise_at, even_cuts, on_lanes, parts_for};
use super::stock::Nonlinear;
use super::{Executor, Lane};
use crate::net::{Channel, Role};
use crate::protocols::attention_he::{self, AttnLayout, DuplexHe, Operand, SharedCache};
use crate::protocols::shares::Ring;
use crate::protocols::{gelu, layernorm, linear, masked_matmul, softmax, trunc};
use crate::protocols::{Party, ProtocolError};

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
            Op::CacheAppend(_) => {
                let x = self.input(s, 0)?;
                self.cache.entry(s.output(0)?).or_default().extend(x);
            }
            Op::QkT(h) => self.qk_t(s, h)?,
            Op::Softmax(sm) => self.softmax(s, sm)?,
            Op::Pv(h) => self.pv(s, h)?,
            Op::LayerNorm(l) => self.layernorm(s, l)?,
            Op::Gelu(g) => self.gelu(s, g)?,
            Op::Add(_) => {
                let (a, b) = (self.input(s, 0)?, self.input(s, 1)?);
                s.regs.insert(s.output(0)?, self.ring.add_vec(&a, &b));
            }
            Op::Sample(sp) => {
                let z = self.input(s, 0)?;
                return self.sample(&mut s.party, sp, &z);
            }
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

    /// `Embed`: the client's share is the one-hot rows of its tokens, the server's zero; their
    /// product with the token table is the table's rows. The server adds the position rows.
    fn embed<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        e: &plan::Embed,
    ) -> Result<(), ProtocolError> {
        let (t, ring, past) = (s.t, self.ring, self.positions);
        let out0 = s.output(0)?;
        let c = self.cols(out0);
        let vocab = self.plan.model.as_ref().map_or(0, |m| m.vocab as usize);
        let mut onehot = vec![0u64; t * vocab];
        if let Some(tk) = s.tokens.filter(|_| self.role == Role::Client) {
            for (r, &x) in tk.iter().enumerate() {
                if x < 0 || x as usize >= vocab {
                    return Err(ProtocolError::Invalid(format!(
                        "token id {x} outside the vocabulary of {vocab}"
                    )));
                }
                onehot[r * vocab + x as usize] = 1;
            }
        }
        let mut x = if self.decoding && self.stock.product_has(e.token_table, t) {
            let own = (self.role == Role::Client).then_some(&onehot[..]);
            self.masked_product(s.party.ch, e.token_table, own, t, None)?
        } else {
            self.product(s.he, s.party.ch, e.token_table, &onehot, t, None)?
        };
        if let Some(pe) = self.model.signed(e.position_table) {
            for (r, row) in x.chunks_mut(c).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = ring.add(*v, ring.from_signed(pe[(past + r) * c + j]));
                }
            }
        }
        s.regs.insert(out0, x);
        Ok(())
    }

    /// `Linear` and `Logits` (the last row only): x·W + b, by the prepared correlation in a
    /// decode step while it lasts, else under RLWE; then the shift.
    fn linear<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        l: &plan::Linear,
        last_row: bool,
    ) -> Result<(), ProtocolError> {
        let t = s.t;
        let x = self.input(s, 0)?;
        let k = self.cols(s.input_reg(0)?);
        let (x, rows) = match last_row {
            true => (x[(t - 1) * k..t * k].to_vec(), 1),
            false => (x, t),
        };
        // The client sends a prepared product's last flight (its masked input), the server an
        // encrypted-input product's (the results).
        let (y, last) = if self.decoding && self.stock.product_has(l.weight, rows) {
            let y = self.masked_product(s.party.ch, l.weight, Some(&x), rows, l.bias)?;
            (y, Role::Client)
        } else {
            let y = self.product(s.he, s.party.ch, l.weight, &x, rows, l.bias)?;
            (y, Role::Server)
        };
        let y = s.truncate(last, l.shift, &y)?;
        s.regs.insert(s.output(0)?, y);
        Ok(())
    }

    /// `SplitQkv`: the three column blocks of each row.
    fn split_qkv<C: Channel + ?Sized>(&self, s: &mut Step<'_, C>) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let c3 = self.cols(s.input_reg(0)?);
        let c = c3 / 3;
        for (part, &o) in s.ins.outputs.iter().enumerate() {
            let v: Vec<u64> = x
                .chunks(c3)
                .flat_map(|row| row[part * c..(part + 1) * c].to_vec())
                .collect();
            s.regs.insert(o, v);
        }
        Ok(())
    }

    /// `QkT`: the queries times the cached keys under RLWE, the causal entries truncated.
    fn qk_t<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        h: &plan::HeadProduct,
    ) -> Result<(), ProtocolError> {
        let (q, kc) = (self.input(s, 0)?, self.input(s, 1)?);
        let c = self.cols(s.input_reg(0)?);
        let (t, past, heads) = (s.t, self.positions, h.heads as usize);
        let (role, ring) = (self.role, self.ring);
        let reg = s.input_reg(1)?;
        let cache =
            self.attention_cache(s.he, s.party.ch, reg, Operand::Keys, heads, c, past + t)?;
        let out = attention_he::qk_t(s.he, s.party.ch, role, ring, cache, &q, &kc, t, true)?;
        let causal = causal_entries(heads, t, past);
        let kept: Vec<u64> = causal.iter().map(|&i| out[i]).collect();
        // The client sends the attention product's last flight (its results).
        let kept = s.truncate(Role::Client, h.shift, &kept)?;
        let mut res = vec![0u64; out.len()];
        for (&i, v) in causal.iter().zip(kept) {
            res[i] = v;
        }
        s.regs.insert(s.output(0)?, res);
        Ok(())
    }

    /// `Pv`: the probabilities times the cached values under RLWE, truncated.
    fn pv<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        h: &plan::HeadProduct,
    ) -> Result<(), ProtocolError> {
        let (p, vc) = (self.input(s, 0)?, self.input(s, 1)?);
        let reg = s.input_reg(1)?;
        let c = self.cols(reg);
        let (t, past, heads) = (s.t, self.positions, h.heads as usize);
        let (role, ring) = (self.role, self.ring);
        let cache =
            self.attention_cache(s.he, s.party.ch, reg, Operand::Values, heads, c, past + t)?;
        let out = attention_he::pv(s.he, s.party.ch, role, ring, cache, &p, &vc, t, true)?;
        let out = s.truncate(Role::Client, h.shift, &out)?;
        s.regs.insert(s.output(0)?, out);
        Ok(())
    }

    /// `Softmax` over the causal entries of each head's rows, the rows in contiguous groups of
    /// about equal elements, one per lane; a prepared softmax of the decode program runs on its
    /// correlation while it lasts, each lane from its first score's place.
    fn softmax<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        sm: &plan::Softmax,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let tables = convert::softmax_from_plan(sm);
        let (t, past, heads) = (s.t, self.positions, sm.heads as usize);
        let ring = self.ring;
        let causal = causal_entries(heads, t, past);
        let row: Vec<u64> = causal.iter().map(|&i| x[i]).collect();
        let lens: Vec<usize> = (0..heads)
            .flat_map(|_| (0..t).map(|r| past + r + 1))
            .collect();
        let parts = parts_for(s.lane_count(), row.len(), lens.len());
        let cuts = balanced_cuts(&lens, parts);
        let mut starts = vec![0usize];
        for w in cuts.windows(2) {
            let last = starts[starts.len() - 1];
            starts.push(last + lens[w[0]..w[1]].iter().sum::<usize>());
        }
        let stock = self.nonlinear(&s.ins.name, sm.prepared, row.len(), Nonlinear::softmax);
        let p = on_lanes(&mut s.party, s.lanes, parts, |p, i| {
            let (a, b) = (cuts[i], cuts[i + 1]);
            let v = &row[starts[i]..starts[i + 1]];
            match stock {
                Some((prep, used)) => softmax::softmax_prepared(
                    p,
                    ring,
                    &tables,
                    v,
                    &lens[a..b],
                    prep,
                    used + starts[i],
                ),
                None => softmax::softmax(p, ring, &tables, v, &lens[a..b]),
            }
        })?
        .concat();
        if stock.is_some() {
            self.stock.consume(&s.ins.name, row.len());
        }
        let mut out = vec![0u64; x.len()];
        for (&i, v) in causal.iter().zip(p) {
            out[i] = v;
        }
        s.regs.insert(s.output(0)?, out);
        Ok(())
    }

    /// `LayerNorm` by whole rows, in contiguous groups, one per lane; a prepared LayerNorm of
    /// the decode program runs on its correlation while it lasts, each lane from its first
    /// row's place.
    fn layernorm<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        l: &plan::LayerNorm,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let p = convert::layernorm_from_plan(l);
        let ring = self.ring;
        let n = p.n.max(1);
        let rows = x.len() / n;
        let parts = match x.len() % n {
            0 => parts_for(s.lane_count(), x.len(), rows),
            _ => 1,
        };
        let cuts = even_cuts(rows, parts);
        let stock = self.nonlinear(&s.ins.name, l.prepared, rows, Nonlinear::layernorm);
        let y = if parts == 1 {
            // Unsplit (and the protocol checks the shape).
            match stock {
                Some((prep, used)) => {
                    layernorm::layernorm_prepared(&mut s.party, ring, &p, &x, prep, used)
                }
                None => layernorm::layernorm(&mut s.party, ring, &p, &x),
            }?
        } else {
            on_lanes(&mut s.party, s.lanes, parts, |party, i| {
                let v = &x[cuts[i] * n..cuts[i + 1] * n];
                match stock {
                    Some((prep, used)) => {
                        layernorm::layernorm_prepared(party, ring, &p, v, prep, used + cuts[i])
                    }
                    None => layernorm::layernorm(party, ring, &p, v),
                }
            })?
            .concat()
        };
        if stock.is_some() {
            self.stock.consume(&s.ins.name, rows);
        }
        s.regs.insert(s.output(0)?, y);
        Ok(())
    }

    /// `Gelu` elementwise, in slices that bound the lookups' memory (2·n·N words per call,
    /// `cost::GELU_CALL_WORDS`), each cut across the lanes; every call costs its ~16 flights,
    /// so a GPT-2-small prefill of up to 42 tokens makes one per layer. A prepared GELU of the
    /// decode program runs on its correlation while it lasts.
    fn gelu<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        g: &plan::Gelu,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let tables = convert::gelu_from_plan(g);
        let ring = self.ring;
        let stock = self.nonlinear(&s.ins.name, g.prepared, x.len(), Nonlinear::gelu);
        let mut out = Vec::with_capacity(x.len());
        let slice = plan::cost::gelu_slice(g.pieces_log2) as usize;
        for (k, chunk) in x.chunks(slice).enumerate() {
            out.extend(elementwise_at(
                &mut s.party,
                s.lanes,
                chunk,
                |p, at, part| match stock {
                    Some((prep, used)) => {
                        let at = used + k * slice + at;
                        gelu::gelu_prepared(p, ring, &tables, part, prep, at)
                    }
                    None => gelu::gelu(p, ring, &tables, part),
                },
            )?);
        }
        if stock.is_some() {
            self.stock.consume(&s.ins.name, x.len());
        }
        s.regs.insert(s.output(0)?, out);
        Ok(())
    }

    /// The RLWE state of cache register `reg`, created at first use for the session's
    /// positions, with encryptions prepared for its first `rows` rows (a no-op once they are).
    #[allow(clippy::too_many_arguments)]
    fn attention_cache<C: Channel + ?Sized>(
        &mut self,
        he: &DuplexHe,
        ch: &mut C,
        reg: u32,
        operand: Operand,
        heads: usize,
        c: usize,
        rows: usize,
    ) -> Result<&mut SharedCache, ProtocolError> {
        if !self.attention.contains_key(&reg) {
            if heads == 0 || !c.is_multiple_of(heads) {
                return Err(ProtocolError::Invalid(format!(
                    "{c} columns do not split into {heads} heads"
                )));
            }
            let layout = AttnLayout::new(self.ring, operand, heads, c / heads, self.context)?;
            self.attention.insert(reg, SharedCache::new(layout));
        }
        let (role, ring) = (self.role, self.ring);
        let cache = self
            .attention
            .get_mut(&reg)
            .ok_or_else(|| ProtocolError::Invalid(format!("no cache state for {reg}")))?;
        attention_he::prepare(he, ch, role, ring, cache, rows)?;
        Ok(cache)
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
        linear::linear_with(
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
