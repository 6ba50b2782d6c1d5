//! IKNP OT extension (Ishai, Kilian, Nissim, Petrank, CRYPTO 2003, §3) in its correlated-OT form
//! (Asharov, Lindell, Schneider, Zohner, CCS 2013, §5): 128 base OTs, then any number of
//! correlated OTs with a global correlation Δ ∈ {0,1}^128.
//!
//! **Functionality (COT).** The sender gets random K_i, the receiver with choice bit b_i gets
//! M_i = K_i ⊕ b_i·Δ. Δ is the sender's, fixed for the lifetime of a [`CotSender`].
//!
//! **Protocol.** Setup: the COT *receiver* acts as base-OT sender with 128 random pairs
//! (k_j^0, k_j^1); the COT *sender* acts as base-OT receiver with choice bits Δ_j and gets
//! k_j^{Δ_j}. Extension of m OTs with choices r ∈ {0,1}^m: the receiver computes the columns
//! t_j = G(k_j^0) and sends u_j = t_j ⊕ G(k_j^1) ⊕ r (G = AES-CTR, streams continue across calls);
//! the sender computes q_j = G(k_j^{Δ_j}) ⊕ Δ_j·u_j = t_j ⊕ Δ_j·r. Transposing the 128 × m bit
//! matrices gives rows with Q_i = T_i ⊕ r_i·Δ: K_i = Q_i, M_i = T_i.
//!
//! **Cost.** 128 bits (16 bytes) per COT from receiver to sender, one flight; setup is 128 base
//! OTs (4 KiB). The receiver's choices are chosen for free. The work is 2 (receiver) or 1 (sender)
//! AES blocks per OT plus a bit-matrix transposition. Messages go in chunks of [`CHUNK`] OTs so
//! memory stays bounded and the two parties work in a pipeline.
//!
//! **Security.** Semi-honest, 128-bit computational (AES-CTR as PRG, Chou–Orlandi base OT); the
//! sender's view u_j ⊕ G(k_j^{Δ_j}) is masked by a PRG stream it cannot compute.
//!
//! Both parties can hold a sender and a receiver on the same channel ([`OtPair`]), which gives
//! OT in both directions.
//!
//! **Backends** ([`CotBackend`]). A [`CotSender`] / [`CotReceiver`] draws its COTs from IKNP
//! (above; [`CotSender::setup`], [`CotReceiver::setup`], [`OtPair::setup_iknp`]) or from silent OT
//! ([`super::silent`]: Ferret-style LPN batches bootstrapped from IKNP, well under one bit per
//! random COT and one bit per chosen one), which [`OtPair::setup`] uses by default. The public
//! methods are the same for both; under silent OT a call with chosen choices costs ⌈n/8⌉ + 1
//! bytes instead of 16n, and a batch (2 flights) runs inside the call that empties the pool.

use rand::{CryptoRng, RngCore};

use super::base_ot;
use super::block::{pack_bools, unpack_bools, xor_into, Block};
use super::prg::Prg;
use super::silent::{self, Pool, Schedule, SilentReceiver, SilentSender};
use super::transpose::transpose_128xn;
use crate::net::{Channel, NetError, Role};

/// Number of base OTs and width of the extension matrix (the computational security parameter).
pub const KAPPA: usize = 128;

/// OTs per extension message (a multiple of 128): 16 KiB-OT chunks = 256 KiB messages.
pub const CHUNK: usize = 1 << 14;

/// Which generator a [`CotSender`] / [`CotReceiver`] (and an [`OtPair`]) draws its COTs from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CotBackend {
    /// Silent OT from LPN ([`super::silent`], Ferret's parameters): well under one bit per
    /// random COT, one bit per COT with chosen choices. The default of [`OtPair::setup`].
    #[default]
    Silent,
    /// IKNP extension: 16 bytes per COT, no batch to prepare.
    Iknp,
    /// Silent OT with a tiny, **insecure** LPN parameter set ([`super::lpn::TEST_ONLY_TINY`]),
    /// so that tests can cross many batch boundaries quickly. Tests only.
    #[doc(hidden)]
    SilentTestOnly,
}

/// COTs per silent-OT message (a multiple of 128): the receiver's choice corrections of one
/// chunk travel together.
pub const SILENT_CHUNK: usize = 1 << 20;

/// The COT sender's state of IKNP extension.
pub(crate) struct IknpSender {
    prgs: Vec<Prg>,
    q: Vec<Block>,
    u: Vec<Block>,
    rows: Vec<Block>,
}

/// The COT receiver's state of IKNP extension.
pub(crate) struct IknpReceiver {
    prgs: Vec<[Prg; 2]>,
    t: Vec<Block>,
    u: Vec<Block>,
    rows: Vec<Block>,
}

pub(crate) enum SenderBackend {
    Iknp(IknpSender),
    Silent(Box<SilentSender>),
    /// A fixed list of random COTs, no refill (the PPRF OTs inside a silent batch).
    Fixed(Pool),
}

pub(crate) enum ReceiverBackend {
    Iknp(IknpReceiver),
    Silent(Box<SilentReceiver>),
    Fixed(Pool),
}

/// The sender's side of COT extension (holds Δ).
pub struct CotSender {
    pub(crate) delta: Block,
    /// COTs handed out so far; both sides keep it in step and use it as the hash tweak base.
    pub(crate) counter: u64,
    pub(crate) backend: SenderBackend,
}

/// The receiver's side of COT extension (holds the choice bits).
pub struct CotReceiver {
    pub(crate) counter: u64,
    /// Source of random choice bits for [`CotReceiver::recv_cot_random`] under IKNP.
    pub(crate) rng: Prg,
    pub(crate) backend: ReceiverBackend,
}

impl IknpSender {
    fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        delta: Block,
        rng: &mut R,
    ) -> Result<IknpSender, NetError> {
        let choices: Vec<bool> = (0..KAPPA).map(|j| delta.bit(j)).collect();
        let keys = crate::net::scoped(ch, &scope_name(ch, "base-ot"), |ch| {
            base_ot::recv(ch, &choices, rng)
        })?;
        Ok(IknpSender {
            prgs: keys.into_iter().map(Prg::new).collect(),
            q: Vec::new(),
            u: Vec::new(),
            rows: Vec::new(),
        })
    }

    /// One IKNP extension into `out` (K_i, for the receiver's choices).
    pub(crate) fn extend_into<C: Channel + ?Sized>(
        &mut self,
        delta: Block,
        ch: &mut C,
        out: &mut [Block],
    ) -> Result<(), NetError> {
        for chunk in out.chunks_mut(CHUNK) {
            let m = chunk.len();
            let nb = m.div_ceil(128);
            self.q.resize(KAPPA * nb, Block::ZERO);
            self.u.resize(KAPPA * nb, Block::ZERO);
            let (q, u) = (&mut self.q[..KAPPA * nb], &mut self.u[..KAPPA * nb]);
            for (col, prg) in q.chunks_exact_mut(nb).zip(self.prgs.iter_mut()) {
                prg.fill_blocks(col);
            }
            ch.recv_blocks(u)?;
            for (j, (qc, uc)) in q.chunks_exact_mut(nb).zip(u.chunks_exact(nb)).enumerate() {
                if delta.bit(j) {
                    xor_into(qc, uc);
                }
            }
            if m == 128 * nb {
                transpose_128xn(q, nb, chunk);
            } else {
                self.rows.resize(128 * nb, Block::ZERO);
                transpose_128xn(q, nb, &mut self.rows);
                chunk.copy_from_slice(&self.rows[..m]);
            }
        }
        Ok(())
    }
}

impl IknpReceiver {
    fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        rng: &mut R,
    ) -> Result<IknpReceiver, NetError> {
        let pairs = crate::net::scoped(ch, &scope_name(ch, "base-ot"), |ch| {
            base_ot::send(ch, KAPPA, rng)
        })?;
        Ok(IknpReceiver {
            prgs: pairs
                .into_iter()
                .map(|[k0, k1]| [Prg::new(k0), Prg::new(k1)])
                .collect(),
            t: Vec::new(),
            u: Vec::new(),
            rows: Vec::new(),
        })
    }

    /// One IKNP extension with packed choices (checked by the caller), M_i into `out`.
    pub(crate) fn extend_into<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[Block],
        out: &mut [Block],
    ) -> Result<(), NetError> {
        for (ci, chunk) in out.chunks_mut(CHUNK).enumerate() {
            let m = chunk.len();
            let nb = m.div_ceil(128);
            let r = &choices[ci * (CHUNK / 128)..ci * (CHUNK / 128) + nb];
            self.t.resize(KAPPA * nb, Block::ZERO);
            self.u.resize(KAPPA * nb, Block::ZERO);
            let (t, u) = (&mut self.t[..KAPPA * nb], &mut self.u[..KAPPA * nb]);
            for ((tc, uc), prg) in t
                .chunks_exact_mut(nb)
                .zip(u.chunks_exact_mut(nb))
                .zip(self.prgs.iter_mut())
            {
                prg[0].fill_blocks(tc);
                prg[1].fill_blocks(uc);
                for ((uk, tk), rk) in uc.iter_mut().zip(tc.iter()).zip(r) {
                    *uk ^= *tk ^ *rk;
                }
            }
            // Choice bits past m (padding to a multiple of 128) are whatever the caller's
            // packed blocks hold: those OTs are dropped, and u stays masked by G(k_j^1).
            ch.send_blocks(u)?;
            if m == 128 * nb {
                transpose_128xn(t, nb, chunk);
            } else {
                self.rows.resize(128 * nb, Block::ZERO);
                transpose_128xn(t, nb, &mut self.rows);
                chunk.copy_from_slice(&self.rows[..m]);
            }
        }
        ch.flush()
    }
}

impl CotSender {
    /// IKNP: run the base OTs (as their receiver) with a fresh random Δ.
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        rng: &mut R,
    ) -> Result<CotSender, NetError> {
        let mut d = [0u8; 16];
        rng.fill_bytes(&mut d);
        Self::setup_with_delta(ch, Block::from_bytes(d), rng)
    }

    /// IKNP with a chosen Δ (e.g. with its least significant bit set, as point-and-permute
    /// protocols want).
    pub fn setup_with_delta<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        delta: Block,
        rng: &mut R,
    ) -> Result<CotSender, NetError> {
        Ok(CotSender {
            delta,
            counter: 0,
            backend: SenderBackend::Iknp(IknpSender::setup(ch, delta, rng)?),
        })
    }

    /// Set up with the given backend: the base OTs of IKNP, then for a silent backend its
    /// bootstrapping batches ([`super::silent::Schedule`]). Under a silent backend Δ has its
    /// least significant bit set.
    pub fn setup_backend<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        backend: CotBackend,
        rng: &mut R,
    ) -> Result<CotSender, NetError> {
        let schedule = match backend {
            CotBackend::Iknp => return Self::setup(ch, rng),
            CotBackend::Silent => Schedule::DEFAULT,
            CotBackend::SilentTestOnly => Schedule::TEST_ONLY,
        };
        let mut d = [0u8; 16];
        rng.fill_bytes(&mut d);
        let delta = Block(u128::from_le_bytes(d) | 1);
        let iknp = IknpSender::setup(ch, delta, rng)?;
        let mut s = SilentSender::new(iknp, schedule, rng);
        s.prime(ch, delta)?;
        Ok(CotSender {
            delta,
            counter: 0,
            backend: SenderBackend::Silent(Box::new(s)),
        })
    }

    /// The global correlation Δ.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// Number of OTs extended so far.
    pub fn extended(&self) -> u64 {
        self.counter
    }

    /// Which backend this sender draws from.
    pub fn backend(&self) -> CotBackend {
        match &self.backend {
            SenderBackend::Iknp(_) => CotBackend::Iknp,
            SenderBackend::Silent(s) if s.is_test_only() => CotBackend::SilentTestOnly,
            _ => CotBackend::Silent,
        }
    }

    /// `n` correlated OTs: returns K_i (the receiver gets K_i ⊕ b_i·Δ).
    pub fn send_cot<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
    ) -> Result<Vec<Block>, NetError> {
        let mut out = vec![Block::ZERO; n];
        self.send_cot_into(ch, &mut out)?;
        Ok(out)
    }

    /// Correlated OTs into `out` (one per element).
    pub fn send_cot_into<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        out: &mut [Block],
    ) -> Result<(), NetError> {
        self.send_cot_chunks(ch, out, true)
    }

    /// Correlated OTs into `out` whose receiver takes random choices
    /// ([`CotReceiver::recv_cot_random`]). Under IKNP this is [`Self::send_cot_into`]; under a
    /// silent backend the COTs come from the pool as they are, with no message at all (but a
    /// batch when the pool runs dry): the receiver's choices are the generator's own.
    pub fn send_cot_random_into<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        out: &mut [Block],
    ) -> Result<(), NetError> {
        self.send_cot_chunks(ch, out, false)
    }

    /// Both of the above: under a silent backend, `chosen` receives the receiver's corrections
    /// after each chunk taken from the pool.
    fn send_cot_chunks<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        out: &mut [Block],
        chosen: bool,
    ) -> Result<(), NetError> {
        let delta = self.delta;
        match &mut self.backend {
            SenderBackend::Iknp(s) => s.extend_into(delta, ch, out)?,
            SenderBackend::Silent(s) => {
                for chunk in out.chunks_mut(SILENT_CHUNK) {
                    s.take(ch, delta, chunk)?;
                    if chosen {
                        silent::derandomize_send(ch, delta, chunk)?;
                    }
                }
            }
            SenderBackend::Fixed(p) => {
                p.take_all(out)?;
                if chosen {
                    silent::derandomize_send(ch, delta, out)?;
                }
            }
        }
        self.counter += out.len() as u64;
        Ok(())
    }
}

impl CotReceiver {
    /// IKNP: run the base OTs (as their sender).
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        rng: &mut R,
    ) -> Result<CotReceiver, NetError> {
        Self::setup_backend(ch, CotBackend::Iknp, rng)
    }

    /// Set up with the given backend (the peer's [`CotSender::setup_backend`] must name the same).
    pub fn setup_backend<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        backend: CotBackend,
        rng: &mut R,
    ) -> Result<CotReceiver, NetError> {
        let iknp = IknpReceiver::setup(ch, rng)?;
        let rng_in = rng;
        let rng = Prg::from_rng(rng_in);
        let backend = match backend {
            CotBackend::Iknp => ReceiverBackend::Iknp(iknp),
            CotBackend::Silent | CotBackend::SilentTestOnly => {
                let schedule = if backend == CotBackend::Silent {
                    Schedule::DEFAULT
                } else {
                    Schedule::TEST_ONLY
                };
                let mut r = SilentReceiver::new(iknp, schedule, rng_in);
                r.prime(ch)?;
                ReceiverBackend::Silent(Box::new(r))
            }
        };
        Ok(CotReceiver {
            counter: 0,
            rng,
            backend,
        })
    }

    /// Number of OTs extended so far.
    pub fn extended(&self) -> u64 {
        self.counter
    }

    /// Which backend this receiver draws from.
    pub fn backend(&self) -> CotBackend {
        match &self.backend {
            ReceiverBackend::Iknp(_) => CotBackend::Iknp,
            ReceiverBackend::Silent(s) if s.is_test_only() => CotBackend::SilentTestOnly,
            _ => CotBackend::Silent,
        }
    }

    /// Correlated OTs with the given choice bits: returns M_i = K_i ⊕ b_i·Δ.
    pub fn recv_cot<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
    ) -> Result<Vec<Block>, NetError> {
        let packed = pack_bools(choices);
        let mut out = vec![Block::ZERO; choices.len()];
        self.recv_cot_packed_into(ch, &packed, &mut out)?;
        Ok(out)
    }

    /// `n` correlated OTs with random choice bits: returns (b, M). The sender's side is
    /// [`CotSender::send_cot_random_into`]. Under a silent backend the choices are the
    /// generator's own and nothing is sent (but a batch when the pool runs dry): no flight.
    pub fn recv_cot_random<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
    ) -> Result<(Vec<bool>, Vec<Block>), NetError> {
        let mut out = vec![Block::ZERO; n];
        match &mut self.backend {
            ReceiverBackend::Iknp(r) => {
                let packed = self.rng.blocks(n.div_ceil(128));
                r.extend_into(ch, &packed, &mut out)?;
                self.counter += n as u64;
                return Ok((unpack_bools(&packed, n), out));
            }
            ReceiverBackend::Silent(r) => {
                for chunk in out.chunks_mut(SILENT_CHUNK) {
                    r.take(ch, chunk)?;
                }
            }
            ReceiverBackend::Fixed(p) => p.take_all(&mut out)?,
        }
        self.counter += n as u64;
        // The choice bit of a silent COT is the least significant bit of M.
        Ok((out.iter().map(|m| m.lsb()).collect(), out))
    }

    /// Correlated OTs with packed choice bits (bit i is bit `i % 128` of `choices[i / 128]`; bits
    /// past `out.len()` are ignored), writing M_i into `out`.
    pub fn recv_cot_packed_into<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[Block],
        out: &mut [Block],
    ) -> Result<(), NetError> {
        if choices.len() * 128 < out.len() {
            return Err(NetError::InvalidArgument(format!(
                "{} packed choice blocks cannot cover {} OTs",
                choices.len(),
                out.len()
            )));
        }
        match &mut self.backend {
            ReceiverBackend::Iknp(r) => r.extend_into(ch, choices, out)?,
            ReceiverBackend::Silent(r) => {
                for (ci, chunk) in out.chunks_mut(SILENT_CHUNK).enumerate() {
                    r.take(ch, chunk)?;
                    let c = &choices[ci * (SILENT_CHUNK / 128)..];
                    silent::derandomize_recv(ch, c, chunk)?;
                }
                ch.flush()?;
            }
            ReceiverBackend::Fixed(p) => {
                p.take_all(out)?;
                silent::derandomize_recv(ch, choices, out)?;
                ch.flush()?;
            }
        }
        self.counter += out.len() as u64;
        Ok(())
    }
}

pub(crate) fn scope_name<C: Channel + ?Sized>(ch: &C, what: &str) -> String {
    let s = ch.scope();
    if s.is_empty() {
        what.to_string()
    } else {
        format!("{s}/{what}")
    }
}

/// A sender and a receiver on one channel: OT extension in both directions.
pub struct OtPair {
    /// This party as COT sender.
    pub sender: CotSender,
    /// This party as COT receiver.
    pub receiver: CotReceiver,
}

impl OtPair {
    /// Set up both directions with the default backend, silent OT ([`CotBackend::Silent`]).
    /// Both parties call this with their own role; the server's sender is set up first, pairing
    /// with the client's receiver. The 2 × 128 base OTs and each direction's bootstrapping
    /// batches run here (about 0.1 s and 551 KB per direction).
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        role: Role,
        rng: &mut R,
    ) -> Result<OtPair, NetError> {
        Self::setup_with(ch, role, CotBackend::Silent, rng)
    }

    /// Set up both directions with IKNP extension (16 bytes per COT).
    pub fn setup_iknp<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        role: Role,
        rng: &mut R,
    ) -> Result<OtPair, NetError> {
        Self::setup_with(ch, role, CotBackend::Iknp, rng)
    }

    /// Set up both directions with the given backend (both parties must name the same).
    pub fn setup_with<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        role: Role,
        backend: CotBackend,
        rng: &mut R,
    ) -> Result<OtPair, NetError> {
        Ok(match role {
            Role::Server => {
                let sender = CotSender::setup_backend(ch, backend, rng)?;
                let receiver = CotReceiver::setup_backend(ch, backend, rng)?;
                OtPair { sender, receiver }
            }
            Role::Client => {
                let receiver = CotReceiver::setup_backend(ch, backend, rng)?;
                let sender = CotSender::setup_backend(ch, backend, rng)?;
                OtPair { sender, receiver }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_mem_pair;

    fn run_cot(n: usize, seed: u128) -> (Block, Vec<Block>, Vec<bool>, Vec<Block>) {
        let choices = Prg::new(Block(seed)).bools(n);
        let c2 = choices.clone();
        let ((delta, k), m) = on_mem_pair(
            |mut a| {
                let mut s = CotSender::setup(&mut a, &mut Prg::new(Block(seed + 2))).unwrap();
                let mut k = s.send_cot(&mut a, n / 3).unwrap();
                k.extend(s.send_cot(&mut a, n - n / 3).unwrap());
                assert_eq!(s.extended(), n as u64);
                (s.delta(), k)
            },
            move |mut b| {
                let mut r = CotReceiver::setup(&mut b, &mut Prg::new(Block(seed + 1))).unwrap();
                // Two calls, to check that the streams continue correctly.
                let mut m = r.recv_cot(&mut b, &c2[..n / 3]).unwrap();
                m.extend(r.recv_cot(&mut b, &c2[n / 3..]).unwrap());
                m
            },
        );
        (delta, k, choices, m)
    }

    #[test]
    fn cot_matches_definition() {
        for n in [0usize, 1, 127, 128, 129, 1000, CHUNK + 77, 3 * CHUNK] {
            let (delta, k, b, m) = run_cot(n, n as u128 * 10 + 1);
            assert_eq!(m.len(), n);
            for i in 0..n {
                assert_eq!(m[i], k[i] ^ delta.and_bit(b[i]), "n {n}, OT {i}");
            }
        }
    }

    #[test]
    fn cot_costs_16_bytes_per_ot() {
        let n = 1 << 16;
        let (a, (bytes, rounds)) = on_mem_pair(
            |mut a| {
                let mut s = CotSender::setup(&mut a, &mut Prg::new(Block(2))).unwrap();
                s.send_cot(&mut a, n).unwrap();
                a
            },
            move |mut b| {
                let mut r = CotReceiver::setup(&mut b, &mut Prg::new(Block(1))).unwrap();
                let before = b.stats().total;
                r.recv_cot_random(&mut b, n).unwrap();
                let after = b.stats().total;
                (
                    after.bytes_sent - before.bytes_sent,
                    after.rounds - before.rounds,
                )
            },
        );
        assert_eq!(bytes, 16 * n as u64);
        assert_eq!(rounds, 1);
        assert_eq!(a.stats().scope("base-ot").bytes_sent, 32 * 128);
    }

    #[test]
    fn both_directions_on_one_channel() {
        let choices = Prg::new(Block(1)).bools(300);
        let ((p, k, m2), (bits, m, k2, d2)) = on_mem_pair(
            |mut a| {
                let mut p = OtPair::setup(&mut a, Role::Server, &mut Prg::new(Block(8))).unwrap();
                let mut k = vec![Block::ZERO; 500];
                p.sender.send_cot_random_into(&mut a, &mut k).unwrap();
                let m2 = p.receiver.recv_cot(&mut a, &choices).unwrap();
                (p, k, m2)
            },
            |mut b| {
                let mut p = OtPair::setup(&mut b, Role::Client, &mut Prg::new(Block(9))).unwrap();
                let (bits, m) = p.receiver.recv_cot_random(&mut b, 500).unwrap();
                let k = p.sender.send_cot(&mut b, 300).unwrap();
                (bits, m, k, p.sender.delta())
            },
        );
        for i in 0..500 {
            assert_eq!(m[i], k[i] ^ p.sender.delta().and_bit(bits[i]));
        }
        for i in 0..300 {
            assert_eq!(m2[i], k2[i] ^ d2.and_bit(choices[i]));
        }
        assert_ne!(d2, p.sender.delta());
    }

    #[test]
    fn outputs_are_uniform() {
        let n = 1 << 14;
        let (delta, k, b, _) = run_cot(n, 77);
        // Δ and every bit position of K are balanced; the random choices too.
        let ones = b.iter().filter(|&&x| x).count() as f64;
        assert!((ones - n as f64 / 2.0).abs() < 6.0 * (n as f64).sqrt() / 2.0);
        for pos in 0..128 {
            let c = k.iter().filter(|x| x.bit(pos)).count() as f64;
            assert!((c - n as f64 / 2.0).abs() < 6.0 * 64.0, "bit {pos}");
        }
        assert!(delta.0.count_ones() > 30 && delta.0.count_ones() < 98);
    }
}
