//! Silent OT: random correlated OT over GF(2^128) with a global Δ from primal LPN with regular
//! noise, as Ferret (Yang, Weng, Lan, Zhang, Wang, CCS 2020, §4, semi-honest variant), with
//! bootstrapping: each batch reserves the base COTs of the next. It is the default backend of
//! [`CotSender`] / [`CotReceiver`] ([`super::iknp::CotBackend::Silent`]); CipherGPT (§II, §VI)
//! runs its non-linear layers on it.
//!
//! **Functionality.** Random COT: the sender (holding Δ, lsb(Δ) = 1) gets v_i, the receiver gets
//! a random bit u_i and w_i = v_i ⊕ u_i·Δ, for as many i as asked; the choice u_i is lsb(w_i)
//! (every v_i has lsb 0, the trick of Ferret's implementation, which keeps the choices free).
//!
//! **One batch** with parameters (n, k, t), n = t·2^h ([`super::lpn::LpnParams`]), from
//! k + t·h base COTs (v_b, w_b = v_b ⊕ u_b·Δ) held by the two parties:
//! 1. *Noise* (t single-point PPRFs, [`super::pprf`]): the receiver picks one random position
//!    α_j in each block j of 2^h leaves (regular noise e with e_{j·2^h + α_j} = 1); the sender
//!    expands t GGM trees from random roots, clears the lsb of every leaf and gets s ∈ F^n;
//!    the level sums travel by one chosen-message OT per level, taken from the first t·h base
//!    COTs (the receiver sends its 1-bit choice corrections, the sender two 128-bit pads per
//!    level); the receiver gets every leaf but α_j's. The sender then sends, per tree,
//!    c_j = Δ ⊕ ⊕_{i in tree j} s_i, from which the receiver gets s_{α_j} ⊕ Δ: it holds
//!    r = s ⊕ e·Δ.
//! 2. *Expansion* by the public local code A ([`super::lpn`], d = 10 ones per column) of the
//!    other k base COTs: the sender's outputs are v = v_b·A ⊕ s, the receiver's
//!    w = w_b·A ⊕ r = v ⊕ (u_b·A ⊕ e)·Δ, so u = u_b·A ⊕ e (an LPN sample, pseudorandom).
//! 3. The last k' + t'·h' outputs become the base of the next batch (parameters (n', k', t')),
//!    the others go to the pool.
//!
//! **Schedule** ([`Schedule::DEFAULT`]). The chain of Ferret's implementation bootstraps each
//! direction at setup: [`lpn::FERRET_BOOT`] (75,520 COTs from 13,041 IKNP COTs; 136 left after
//! reserving the next base), then [`lpn::FERRET_SETUP`] (607,232 COTs; 531,848 left). When
//! those run out, a second setup batch (325 left: its output is the next base) and then
//! Ferret's main set [`lpn::FERRET_MAIN`] (10,805,248 COTs from 606,907; 10,198,341 left) for
//! every later batch. The bootstrap takes about 0.1 s and 551 KB per direction; a session that
//! needs up to 531,984 COTs per direction never waits for a big batch, and no protocol call below
//! that sees a batch's flights.
//!
//! **Chosen choices** ([`CotReceiver::recv_cot`]). Take random COTs (u_i, w_i) and send
//! d_i = b_i ⊕ u_i; the sender sets v'_i = v_i ⊕ d_i·Δ, so that w_i = v'_i ⊕ b_i·Δ. Each chunk of
//! at most [`super::iknp::SILENT_CHUNK`] COTs opens with a marker byte (1) from the receiver
//! before its n bits of d, so that calls that do not pair fail. **Random choices**
//! ([`CotReceiver::recv_cot_random`], paired with
//! [`super::iknp::CotSender::send_cot_random_into`]): the receiver keeps u_i = lsb(w_i) and
//! nothing is sent at all.
//!
//! **Cost.** A batch (n, k, t = n / 2^h): t·h chosen-message OTs (t·h bits and one marker byte
//! receiver → sender, 256·t·h bits sender → receiver) and 128·t bits of sums c, in 2 flights.
//! Main set: 17,147 OTs, 4,575,619 bits (572 KB) for 10,198,341 new COTs, **0.449 bits per
//! COT**; setup set: 5,930 OTs, 1,599,922 bits (200 KB) for 531,848 (3.0 bits per COT); boot
//! set: 4,130 OTs, 1,136,938 bits (142 KB). The first batch also pays 13,041 IKNP COTs (13,056 × 16 bytes = 209 KB,
//! one flight). Bootstrapping a direction thus costs 209 KB + 142 KB + 200 KB ≈ 551 KB at
//! setup, and the second setup batch 200 KB more at the first refill. On top, per call: nothing
//! for random choices, n bits + 1 byte per chunk for chosen ones (receiver → sender, one
//! flight, as IKNP). Work per
//! batch and party: about 2n AES for the GGM trees (n for the receiver's punctured trees too),
//! 2.5n AES and 10n random 16-byte reads for the code. Memory: the pool of one direction holds
//! at most one main batch, 173 MB, once that direction has used more than 532 k COTs.
//! Measured (`ciphergpt bench protocols`, row `silent-cot`, two processes on the 2-core machine):
//! 31,127,007 random COTs (bootstrap + 3 main batches) in 2.2–2.6 s, 11.9–14.2 M COTs/s, and
//! 3,026,146 bytes in all, 0.78 bits per COT with the setup of both directions included.
//!
//! **Security** (semi-honest, 128-bit computational under primal LPN with regular noise for the
//! parameters above, and AES as PRG / random permutation). The sender receives only the
//! corrections b ⊕ u of base COTs, whose u are uniform (IKNP) or LPN-pseudorandom (earlier
//! batches) and never used otherwise: they are one-time pads on the receiver's choices (tree
//! paths, chosen choices). The receiver receives the OT pads (hidden unless chosen, by the
//! correlation-robust hash) and c_j = Δ ⊕ s_{α_j} ⊕ (leaves it knows): s_{α_j} is the punctured
//! leaf, pseudorandom given its view (GGM), so c_j is uniform; the receiver's outputs are the
//! COT's definition, and the receiver's choices u are uniform to the sender by LPN (the secret
//! u_b is the receiver's, the noise e is at its positions). No consistency check is needed:
//! Ferret's checks (§5) protect against a malicious party sending wrong sums or corrections,
//! which a semi-honest party does not. The lsb of every v_i is 0: Δ has 127 random bits, and
//! the protocols use v_i only through the tweakable correlation-robust hash.

use std::sync::Mutex;

use rand::{CryptoRng, RngCore};

use super::block::Block;
use super::iknp::{
    scope_name, CotReceiver, CotSender, IknpReceiver, IknpSender, ReceiverBackend, SenderBackend,
};
use super::lpn::{self, LpnParams};
use super::pprf::{self, TreeGroup};
use super::prg::Prg;
use crate::net::{Channel, NetError};

/// Leaves per tree group handed to one rayon job of the GGM expansion.
const GROUP_LEAVES: usize = 1 << 16;

/// Hash tweaks of the PPRF OTs of batch b start at 2^63 + b·2^32, apart from the COTs handed
/// out (counted from 0).
const TWEAK_BASE: u64 = 1 << 63;

/// Which LPN parameters each batch uses: `first[b]` for batch b while there is one (batch 0
/// from IKNP), `main` for every later batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub first: &'static [LpnParams],
    pub main: LpnParams,
    /// Batches run at setup (the bootstrap), the others when the pool runs dry.
    pub at_setup: u64,
}

impl Schedule {
    /// The bootstrapping chain of Ferret's implementation (its two small sets), then Ferret's
    /// main set.
    pub const DEFAULT: Schedule = Schedule {
        first: &[lpn::FERRET_BOOT, lpn::FERRET_SETUP, lpn::FERRET_SETUP],
        main: lpn::FERRET_MAIN,
        at_setup: 2,
    };

    /// **Insecure, tests only**: the tiny set throughout.
    pub const TEST_ONLY: Schedule = Schedule {
        first: &[],
        main: lpn::TEST_ONLY_TINY,
        at_setup: 1,
    };

    /// Parameters of batch `b` (0-based).
    pub fn params(&self, b: u64) -> LpnParams {
        usize::try_from(b)
            .ok()
            .and_then(|b| self.first.get(b))
            .copied()
            .unwrap_or(self.main)
    }
}

/// Random COTs ready to hand out, consumed from the front.
pub(crate) struct Pool {
    items: Vec<Block>,
    pos: usize,
}

impl Pool {
    pub(crate) fn new(items: Vec<Block>) -> Pool {
        Pool { items, pos: 0 }
    }

    fn avail(&self) -> usize {
        self.items.len() - self.pos
    }

    /// Move up to `out.len()` COTs into `out`; returns how many.
    fn take_into(&mut self, out: &mut [Block]) -> usize {
        let m = out.len().min(self.avail());
        out[..m].copy_from_slice(&self.items[self.pos..self.pos + m]);
        self.pos += m;
        m
    }

    /// The spent pool's buffer as `n` zero blocks for the next batch: no second buffer of a
    /// batch's size, and no fresh pages to fault in.
    fn recycle(&mut self, n: usize) -> Vec<Block> {
        let mut v = std::mem::take(&mut self.items);
        self.pos = 0;
        v.clear();
        v.resize(n, Block::ZERO);
        v
    }

    /// Fill `out` or fail (a fixed pool never refills).
    pub(crate) fn take_all(&mut self, out: &mut [Block]) -> Result<(), NetError> {
        if self.avail() < out.len() {
            return Err(NetError::InvalidArgument(format!(
                "silent OT: {} base COTs left, {} asked",
                self.avail(),
                out.len()
            )));
        }
        self.take_into(out);
        Ok(())
    }
}

/// The channel scope of the batches the pools run (under the caller's scope).
pub const SCOPE: &str = "silent-ot";

/// The sender's generator: its pool, the reserved base of the next batch, its IKNP bootstrap.
pub(crate) struct SilentSender {
    iknp: IknpSender,
    schedule: Schedule,
    pool: Pool,
    reserve: Vec<Block>,
    batches: u64,
    rng: Prg,
}

/// The receiver's generator.
pub(crate) struct SilentReceiver {
    iknp: IknpReceiver,
    schedule: Schedule,
    pool: Pool,
    reserve: Vec<Block>,
    batches: u64,
    rng: Prg,
}

/// The tree groups of a batch: about [`GROUP_LEAVES`] leaves each.
fn groups(p: &LpnParams) -> Vec<TreeGroup> {
    let per = (GROUP_LEAVES >> p.log_leaves).max(1);
    let mut g = Vec::new();
    let mut left = p.t;
    while left > 0 {
        let trees = per.min(left);
        g.push(TreeGroup {
            trees,
            leaves: p.leaves(),
        });
        left -= trees;
    }
    g
}

/// Output slots of the groups (one lock each, taken once by the job of that group).
fn slots<'a>(out: &'a mut [Block], gs: &[TreeGroup]) -> Vec<Mutex<&'a mut [Block]>> {
    let mut v = Vec::with_capacity(gs.len());
    let mut rest = out;
    for g in gs {
        let (a, b) = rest.split_at_mut(g.trees * g.leaves);
        v.push(Mutex::new(a));
        rest = b;
    }
    v
}

/// Batch b's output must cover batch b + 1's base.
fn check_chain(s: &Schedule, b: u64) -> Result<(), NetError> {
    let (p, next) = (s.params(b), s.params(b + 1));
    if p.check() && next.base() <= p.n {
        Ok(())
    } else {
        Err(NetError::InvalidArgument(format!(
            "silent OT: batch {b} ({}) cannot hold the base of the next ({})",
            p.name, next.name
        )))
    }
}

/// Batch `b` gets exactly its `base` COTs and its output holds the next batch's base.
fn check_batch(s: &Schedule, b: u64, base: usize) -> Result<(), NetError> {
    let need = s.params(b).base();
    if base != need {
        return Err(NetError::InvalidArgument(format!(
            "silent OT: {base} base COTs for a batch that needs {need}"
        )));
    }
    check_chain(s, b)
}

fn poisoned() -> NetError {
    NetError::InvalidArgument("silent OT: a worker thread panicked".to_string())
}

impl SilentSender {
    pub(crate) fn new<R: RngCore + CryptoRng>(
        iknp: IknpSender,
        schedule: Schedule,
        rng: &mut R,
    ) -> SilentSender {
        SilentSender {
            iknp,
            schedule,
            pool: Pool::new(Vec::new()),
            reserve: Vec::new(),
            batches: 0,
            rng: Prg::from_rng(rng),
        }
    }

    pub(crate) fn is_test_only(&self) -> bool {
        self.schedule == Schedule::TEST_ONLY
    }

    /// Run the schedule's setup batches (the peer's receiver does the same at its setup).
    pub(crate) fn prime<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        delta: Block,
    ) -> Result<(), NetError> {
        let name = scope_name(ch, SCOPE);
        for _ in 0..self.schedule.at_setup {
            crate::net::scoped(ch, &name, |ch| self.refill(ch, delta))?;
        }
        Ok(())
    }

    /// Fill `out` with random COTs (v), running batches as the pool runs dry.
    pub(crate) fn take<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        delta: Block,
        out: &mut [Block],
    ) -> Result<(), NetError> {
        let mut done = 0;
        while done < out.len() {
            if self.pool.avail() == 0 {
                let name = scope_name(ch, SCOPE);
                crate::net::scoped(ch, &name, |ch| self.refill(ch, delta))?;
            }
            done += self.pool.take_into(&mut out[done..]);
        }
        Ok(())
    }

    fn refill<C: Channel + ?Sized>(&mut self, ch: &mut C, delta: Block) -> Result<(), NetError> {
        let p = self.schedule.params(self.batches);
        let mut base = if self.batches == 0 {
            let mut b = vec![Block::ZERO; p.base()];
            self.iknp.extend_into(delta, ch, &mut b)?;
            // lsb(v) = 0 for every COT: the receiver's lsb(w) is then its choice.
            for x in b.iter_mut() {
                x.0 &= !1;
            }
            b
        } else {
            std::mem::take(&mut self.reserve)
        };
        check_batch(&self.schedule, self.batches, base.len())?;
        let secret = base.split_off(p.pprf_ots());
        let mut ots = CotSender {
            delta,
            counter: TWEAK_BASE + (self.batches << 32),
            backend: SenderBackend::Fixed(Pool::new(base)),
        };
        let gs = groups(&p);
        let roots = self.rng.blocks(p.t);
        let mut out = self.pool.recycle(p.n);
        let (tree_sums, level_sums) = {
            let slots = slots(&mut out, &gs);
            pprf::expand_map(&gs, &roots, |gi, leaves| {
                let mut slot = slots[gi].lock().map_err(|_| poisoned())?;
                let mut sums = Vec::new();
                for (o, l) in slot.chunks_mut(p.leaves()).zip(leaves.chunks(p.leaves())) {
                    let mut s = Block::ZERO;
                    for (y, &x) in o.iter_mut().zip(l) {
                        *y = Block(x.0 & !1);
                        s ^= *y;
                    }
                    sums.push(s ^ delta);
                }
                Ok::<_, NetError>(sums)
            })?
        };
        pprf::send_sums(&mut ots, ch, &level_sums)?;
        let c: Vec<Block> = tree_sums
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        ch.send_blocks(&c)?;
        ch.flush()?;
        // The code's part, while the receiver expands its trees.
        lpn::accumulate(&p, &secret, 0, &mut out);
        self.batches += 1;
        let next = self.schedule.params(self.batches).base();
        self.reserve = out.split_off(out.len().saturating_sub(next));
        self.pool = Pool::new(out);
        Ok(())
    }
}

impl SilentReceiver {
    pub(crate) fn new<R: RngCore + CryptoRng + ?Sized>(
        iknp: IknpReceiver,
        schedule: Schedule,
        rng: &mut R,
    ) -> SilentReceiver {
        SilentReceiver {
            iknp,
            schedule,
            pool: Pool::new(Vec::new()),
            reserve: Vec::new(),
            batches: 0,
            rng: Prg::from_rng(rng),
        }
    }

    pub(crate) fn is_test_only(&self) -> bool {
        self.schedule == Schedule::TEST_ONLY
    }

    /// Run the schedule's setup batches.
    pub(crate) fn prime<C: Channel + ?Sized>(&mut self, ch: &mut C) -> Result<(), NetError> {
        let name = scope_name(ch, SCOPE);
        for _ in 0..self.schedule.at_setup {
            crate::net::scoped(ch, &name, |ch| self.refill(ch))?;
        }
        Ok(())
    }

    /// Fill `out` with random COTs (w, the choice in its lsb), running batches as needed.
    pub(crate) fn take<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        out: &mut [Block],
    ) -> Result<(), NetError> {
        let mut done = 0;
        while done < out.len() {
            if self.pool.avail() == 0 {
                let name = scope_name(ch, SCOPE);
                crate::net::scoped(ch, &name, |ch| self.refill(ch))?;
            }
            done += self.pool.take_into(&mut out[done..]);
        }
        Ok(())
    }

    fn refill<C: Channel + ?Sized>(&mut self, ch: &mut C) -> Result<(), NetError> {
        let p = self.schedule.params(self.batches);
        let mut base = if self.batches == 0 {
            let choices = self.rng.blocks(p.base().div_ceil(128));
            let mut b = vec![Block::ZERO; p.base()];
            self.iknp.extend_into(ch, &choices, &mut b)?;
            // The sender clears lsb(v): lsb(w) becomes the choice bit.
            for (i, x) in b.iter_mut().enumerate() {
                let u = choices[i / 128].bit(i % 128) as u128;
                x.0 = (x.0 & !1) | u;
            }
            b
        } else {
            std::mem::take(&mut self.reserve)
        };
        check_batch(&self.schedule, self.batches, base.len())?;
        let secret = base.split_off(p.pprf_ots());
        let mut ots = CotReceiver {
            counter: TWEAK_BASE + (self.batches << 32),
            rng: Prg::new(Block::ZERO),
            backend: ReceiverBackend::Fixed(Pool::new(base)),
        };
        let gs = groups(&p);
        let mask = p.leaves() - 1;
        let points: Vec<usize> = (0..p.t)
            .map(|_| self.rng.next_u64() as usize & mask)
            .collect();
        // The code's part first, while the sender expands its trees.
        let mut out = self.pool.recycle(p.n);
        lpn::accumulate(&p, &secret, 0, &mut out);
        let siblings = pprf::recv_siblings(&mut ots, ch, &gs, &points)?;
        let mut c = vec![Block::ZERO; p.t];
        ch.recv_blocks(&mut c)?;
        let per = gs.first().map_or(0, |g| g.trees);
        {
            let slots = slots(&mut out, &gs);
            let done = pprf::expand_punctured_map(&gs, &points, &siblings, |gi, leaves| {
                let mut slot = slots[gi].lock().map_err(|_| poisoned())?;
                for (j, (o, l)) in slot
                    .chunks_mut(p.leaves())
                    .zip(leaves.chunks(p.leaves()))
                    .enumerate()
                {
                    let tree = gi * per + j;
                    // The punctured leaf is zero here; it gets c ⊕ (the other leaves).
                    let mut s = Block::ZERO;
                    for (y, &x) in o.iter_mut().zip(l) {
                        let x = Block(x.0 & !1);
                        *y ^= x;
                        s ^= x;
                    }
                    o[points[tree]] ^= c[tree] ^ s;
                }
                Ok::<(), NetError>(())
            })?;
            done.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
        self.batches += 1;
        let next = self.schedule.params(self.batches).base();
        self.reserve = out.split_off(out.len().saturating_sub(next));
        self.pool = Pool::new(out);
        Ok(())
    }
}

/// The sender's side of a chunk of COTs with chosen choices: the receiver's marker byte (1,
/// which tells a receiver that took random choices from one that corrects them: a call that does
/// not pair fails here instead of misreading the stream), its corrections d, and
/// v_i ← v_i ⊕ d_i·Δ. Random choices need no message ([`super::iknp::CotSender::send_cot_random_into`]).
pub(crate) fn derandomize_send<C: Channel + ?Sized>(
    ch: &mut C,
    delta: Block,
    v: &mut [Block],
) -> Result<(), NetError> {
    let mut marker = [0u8; 1];
    ch.recv(&mut marker)?;
    if marker[0] != 1 {
        return Err(NetError::InvalidArgument(format!(
            "silent OT: the peer sent marker {}, not 1 (the two parties' OT calls do not pair)",
            marker[0]
        )));
    }
    let d = ch.recv_vec(v.len().div_ceil(8))?;
    for (i, x) in v.iter_mut().enumerate() {
        *x ^= delta.and_bit((d[i / 8] >> (i % 8)) & 1 == 1);
    }
    Ok(())
}

/// The receiver's side: the marker byte 1 and d_i = b_i ⊕ lsb(w_i) for the packed choices b
/// (bit i of `choices[i / 128]`).
pub(crate) fn derandomize_recv<C: Channel + ?Sized>(
    ch: &mut C,
    b: &[Block],
    w: &[Block],
) -> Result<(), NetError> {
    let mut msg = vec![0u8; 1 + w.len().div_ceil(8)];
    msg[0] = 1;
    for (i, x) in w.iter().enumerate() {
        let bit = b[i / 128].bit(i % 128) ^ x.lsb();
        msg[1 + i / 8] |= (bit as u8) << (i % 8);
    }
    ch.send(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::iknp::{CotBackend, OtPair};
    use crate::net::Role;
    use crate::testing::on_mem_pair;

    #[test]
    fn schedules_chain_their_bases() {
        for s in [Schedule::DEFAULT, Schedule::TEST_ONLY] {
            for b in 0..6 {
                assert!(s.params(b + 1).base() <= s.params(b).n, "batch {b}");
            }
        }
        assert_eq!(groups(&lpn::FERRET_MAIN).len(), 1319usize.div_ceil(8));
    }

    #[test]
    fn random_cots_over_several_batches() {
        let n = 3 * lpn::TEST_ONLY_TINY.n + 123;
        let ((p, v), (u, w)) = on_mem_pair(
            |mut a| {
                let mut p = OtPair::setup_with(
                    &mut a,
                    Role::Server,
                    CotBackend::SilentTestOnly,
                    &mut Prg::from_entropy(),
                )
                .unwrap();
                let mut v = vec![Block::ZERO; n];
                p.sender.send_cot_random_into(&mut a, &mut v).unwrap();
                (p, v)
            },
            move |mut b| {
                let mut p = OtPair::setup_with(
                    &mut b,
                    Role::Client,
                    CotBackend::SilentTestOnly,
                    &mut Prg::from_entropy(),
                )
                .unwrap();
                p.receiver.recv_cot_random(&mut b, n).unwrap()
            },
        );
        let delta = p.sender.delta();
        for i in 0..n {
            assert_eq!(w[i], v[i] ^ delta.and_bit(u[i]), "COT {i}");
        }
    }
}
