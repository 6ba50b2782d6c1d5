//! Activation × activation under RLWE: additive shares over Z_2^ℓ of attention's two products of
//! shared matrices, for all heads of a layer in one call — q·Kᵀ (a fresh query q against the
//! key cache) and P·V (fresh probabilities P against the value cache). The cache operand is
//! persistent (it grows by t rows per program), the other fresh. Iron §3.2 (the product of two
//! shared matrices as two HE products plus two local ones) with Cheetah §3.1's HomFC packing
//! (the encrypted side is the matrix) and its re-masking; the HE layer is
//! [`crate::crypto::rlwe`].
//!
//! **Shapes** (c = heads·d, npos cache rows, t fresh rows; the executor's layouts):
//! - [`qk_t`]: q [t × c], K [npos × c] → scores [heads × t × npos],
//!   `s[h][r][j] = Σ_{e<d} q[r][h·d + e]·K[j][h·d + e]`;
//! - [`pv`]: P [heads × t × npos], V [npos × c] → out [t × c],
//!   `o[r][h·d + e] = Σ_j P[h][r][j]·V[j][h·d + e]`.
//!
//! With `causal` only j ≤ npos − t + r is used for row r (the other scores are 0 in both shares,
//! the other entries of P are ignored), as the plan's `QkT` and `Pv` do.
//!
//! **Protocol.** Write M for the cache operand and x for the fresh one; x·M = x_S·M + x_C·M.
//! 1. *Keys* (once per session, [`DuplexHe`]): both parties hold an RLWE key pair — the
//!    client's is the [`HeSession`] one, the server adds its own and sends its public key.
//! 2. *Pre-chosen cache shares* ([`prepare`], offline, ahead of the rows). Each party P draws a
//!    uniform r_P for every future cache row of a block and sends the encryptions under its own
//!    key of 2^(s·l)·r_P (l < L, s the limb width) packed as HomFC matrix polynomials (below).
//!    The peer keeps them, expanded.
//! 3. *Re-sharing* (online, once per new cache row, inside the call that first uses the row):
//!    each party sends M_P − r_P for the new rows (its cache share minus its pre-chosen share);
//!    the peer adds its own share and keeps M − r_P. So the server holds M − r_C, the client
//!    M − r_S, and x·M = x_S·(M − r_C) + x_S·r_C + x_C·(M − r_S) + x_C·r_S.
//! 4. *Products* (online): each party E as evaluator computes x_E·r_P for its peer P under P's
//!    key: it splits its fresh share x_E (centred) into L balanced limbs of s = ⌈ℓ/L⌉ bits,
//!    x_E = Σ_l 2^(s·l)·x_l mod 2^ℓ with |x_l| ≤ 2^(s−1), encodes each limb as a HomFC vector
//!    polynomial, and multiply-accumulates Σ_{α,l} v̂(x_l)_α · Enc_P(2^(s·l)·r_P)_{α,β}, which
//!    encrypts Σ_l 2^(s·l)·x_l·r_P = x_E·r_P mod 2^ℓ. Each result is returned through
//!    [`crate::crypto::rlwe::finalize`] (+ Enc_pk(0) under P's key, flooding of the returned
//!    coefficients, switch to 2^k, − R·2^(k−ℓ) for E's fresh uniform R, only the wanted `b`
//!    coefficients). The server sends its results and re-shared rows first, then the client
//!    (one flight each way; the two computations overlap).
//! 5. *Outputs*: E's share is its masks R plus what it decrypts of P's results (x_P·r_E − R_P)
//!    plus the local x_E·(M − r_P). The sum is x·M mod 2^ℓ exactly: R is subtracted after the
//!    switch, where 2^(k−ℓ) is an integer, and decryption is exact except with probability
//!    ≤ 2^−41 per session and key.
//!
//! **Packing** ([`AttnLayout`], HomFC with the encrypted side the matrix). A product x·W with
//! W [I × J] in windows n_i × n_o (n_i·n_o ≤ N = 8192): matrix polynomial (α, β)
//! `ŵ[c·n_i + n_i − 1 − j] = W[α·n_i + j][β·n_o + c]`, vector polynomial `v̂_α[j] = x[α·n_i + j]`;
//! Σ_α v̂_α·ŵ_{α,β} holds (x·W)[β·n_o + c] at coefficient c·n_i + n_i − 1. Keys: W = K_hᵀ
//! (I = d, J = positions), n_i = min(d, ⌊N/P⌋) for the public maximum of positions P, so one
//! result holds all scores of a row and a head (n_i = 32, n_o = 256 for GPT-2's d = 64, P = 256);
//! the blocks of n_o cache rows are the units of [`prepare`]. Values: W = V_h (I = positions,
//! J = d), n_o = d, n_i = ⌊N/d⌋ (128 rows per block for d = 64). L is chosen by the bytes of
//! a decode step at P plus the offline bytes per cache row, among the limb counts whose flooding
//! (40 bits per session) fits: for GPT-2's caches (12 × 64, P = 256) L = 1 up to ℓ = 38 (a
//! 37-bit multiplier: flood 2^121.2 at ℓ = 37 under Δ/2 = 2^127, switch to 2^(ℓ+10), 2^(ℓ+11) at
//! ℓ = 38), 2 from ℓ = 39 or 40; the trained model's value cache (4 × 32) takes L = 2 from
//! ℓ = 38 on.
//!
//! **Cost** per call and direction (both parties send the same amounts), with O the output
//! ciphertexts — Keys Σ_{h,r} ⌈n_r/n_o⌉, Values heads·t·⌈d/n_o⌉, n_r the positions row r uses —
//! and V the returned values — Keys heads·Σ_r n_r, Values t·c:
//! new·c·ℓ bits of re-shared rows + O·8192·k bits (`a`, k = ℓ + D) + V·b_bits bits, 2 flights
//! (server → client, client → server); a call that outgrows the prepared blocks first runs
//! [`prepare`] (one more flight, client first). Offline ([`prepare`]) per block of rows:
//! heads·⌈d/n_i⌉·L (Keys) or heads·⌈d/n_o⌉·L (Values) ciphertexts of 168,976 bytes each way.
//! Work per call and party: heads·t·A·L plaintext encodings (2 short transforms each) and
//! products (A = ⌈d/n_i⌉ resp. ⌈n_r/n_i⌉ blocks, times the output blocks), O returns and O
//! decryptions. Memory per party: the peer's expanded ciphertexts, 384 KiB each (9.4 MB per
//! cache and layer for GPT-2 at P = 256). The OT product this replaces
//! (`protocols::matmul::matmul_shared`, one call per head) costs 2·t·k·ℓλ + 2·t·k·n·ℓ(ℓ+1)/2
//! bits and 3 flights per head.
//!
//! *Measured* (`ciphergpt bench linear`: GPT-2 small, 12 heads of 64, a 256-row cache, one
//! layer, decode step, ℓ = 37, TCP loopback; bytes equal the formula, see the tests): q·Kᵀ
//! 597,216 bytes and P·V 585,216 bytes per party (results 593,664 and 581,664, the new row
//! 3,552), 2 flights each; the layer 2,364,864 bytes both ways, where the OT product needs
//! 73.7 MB and 36 flights per product. Offline: 8,110,848 bytes per party for 256 rows of both
//! caches, i.e. ≈ 0.76 MB per generated token over 12 layers for both parties. At N = 4096 with
//! flooding per returned coefficient (and two limbs) the layer was 1,206,720 bytes and the
//! offline part 10,718,208 per party: each result's `a` is twice as long at N = 8192, and one
//! limb now suffices. Prefill is where this packing is weak: one result per head and row.
//!
//! **Security** (semi-honest).
//! - What a party receives as the *key owner*: its own ciphertexts multiplied by the peer's
//!   limbs, re-randomised by a fresh Enc_pk(0) under its own key (so `a` is pseudorandom by RLWE
//!   with the fresh ternary u, independent of the peer's limbs), flooded on every returned
//!   coefficient by a uniform value of 2^77·E_max (E_max: the public bound on Σ e·x_l + ε·x_l +
//!   e₀ from ℓ, the limb width and the number of terms; statistical distance ≤ 2^−41 over the
//!   at most 2^36 coefficients a party is sent back in a session), and masked by the peer's
//!   fresh uniform R: it learns only x_peer·r_own − R, uniform. The coefficients of `b` that carry other partial sums are never sent.
//! - What a party receives as the *evaluator*: the peer's ciphertexts of 2^(s·l)·r_peer (RLWE
//!   under the peer's ternary secret, N = 8192, log₂ q < 165: 128-bit by the HE standard, `a`
//!   from public seeds by the AES PRG) and the re-shared rows M_peer − r_peer, one-time padded
//!   by r_peer, which is used nowhere else except inside those ciphertexts: by RLWE the pair is
//!   indistinguishable from (uniform, Enc(0)). So the fresh and cache shares of the peer stay
//!   hidden. Each party's output is its own uniform R plus values it computes; the other
//!   party's output is uniform given it.
//! - Each party counts what it sends back under the peer's keys (2·heads·(npos + d) per decode
//!   step and layer, both directions: 7,680 ≈ 2^13 for GPT-2 small at 256 rows) against the
//!   session's 2^36 ([`DuplexHe::returns`], shared with the sVOLE batches), as in
//!   [`crate::protocols::linear`].

use rayon::prelude::*;

use super::shares::Ring;
use super::ProtocolError;
use crate::crypto::pack::{pack, packed_len, unpack};
use crate::crypto::rlwe::eval::{
    expand, finalize, Accumulator, NttCiphertext, PublicKeyNtt, SwitchedCiphertext,
};
use crate::crypto::rlwe::noise::{output_params, OutputParams};
use crate::crypto::rlwe::params::ring as rlwe_ring;
use crate::crypto::rlwe::{HeSession, Plain, ReturnCount, SecretKey, Seeded, N as DEG, PRIMES};
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Role};

/// Most limbs the fresh operand is split into.
pub const MAX_LIMBS: u32 = 8;
/// Largest supported number of cache positions.
pub const MAX_POSITIONS: usize = 1 << 16;
/// Largest supported heads·d.
pub const MAX_WIDTH: usize = 1 << 16;

fn invalid(msg: String) -> ProtocolError {
    ProtocolError::Invalid(format!("attention_he: {msg}"))
}

/// The session's two RLWE key pairs: the client's (from an [`HeSession`]) and the server's.
pub struct DuplexHe {
    base: HeSession,
    /// The server's secret key (server only).
    server_sk: Option<SecretKey>,
    /// The server's public key in transform form (client only).
    server_pk: Option<PublicKeyNtt>,
}

impl DuplexHe {
    /// Set up both key pairs from scratch: the client's public key (client → server), then the
    /// server's (server → client); 168,976 bytes and one flight each way.
    pub fn setup<C: Channel + ?Sized>(ch: &mut C, role: Role) -> Result<DuplexHe, ProtocolError> {
        let base = HeSession::setup(ch, role)?;
        DuplexHe::extend(base, ch)
    }

    /// Add the server's key pair to an existing session (the one of
    /// [`crate::protocols::linear`]): the server sends its public key, 168,976 bytes, one flight.
    pub fn extend<C: Channel + ?Sized>(
        base: HeSession,
        ch: &mut C,
    ) -> Result<DuplexHe, ProtocolError> {
        match base.role {
            Role::Server => {
                let mut rng = Prg::from_entropy();
                let sk = SecretKey::generate(&mut rng);
                let mut bytes = Vec::with_capacity(Seeded::wire_len());
                sk.public_key(&mut rng).write(&mut bytes);
                ch.send(&bytes)?;
                ch.flush()?;
                Ok(DuplexHe {
                    base,
                    server_sk: Some(sk),
                    server_pk: None,
                })
            }
            Role::Client => {
                let pk = Seeded::read(&ch.recv_vec(Seeded::wire_len())?)?;
                Ok(DuplexHe {
                    base,
                    server_sk: None,
                    server_pk: Some(PublicKeyNtt::new(&pk)),
                })
            }
        }
    }

    /// This party's role.
    pub fn role(&self) -> Role {
        self.base.role
    }

    /// The client-keyed session (for [`crate::protocols::linear`]).
    pub fn session(&self) -> &HeSession {
        &self.base
    }

    /// The count of coefficients this party returns in the session (under the peer's keys),
    /// which its other keys from the peer (an sVOLE batch's) share.
    pub fn returns(&self) -> Result<&ReturnCount, ProtocolError> {
        Ok(self.peer_key()?.count())
    }

    /// This party's own secret key.
    fn own_key(&self) -> Result<&SecretKey, ProtocolError> {
        match self.base.role {
            Role::Client => Ok(self.base.secret_key()?),
            Role::Server => self
                .server_sk
                .as_ref()
                .ok_or_else(|| invalid("the server's key pair is missing".into())),
        }
    }

    /// The peer's public key.
    fn peer_key(&self) -> Result<&PublicKeyNtt, ProtocolError> {
        match self.base.role {
            Role::Server => Ok(self.base.public_key()?),
            Role::Client => self
                .server_pk
                .as_ref()
                .ok_or_else(|| invalid("the server's public key is missing".into())),
        }
    }
}

/// Which cache a [`SharedCache`] holds, i.e. which product it feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The key cache, for [`qk_t`].
    Keys,
    /// The value cache, for [`pv`].
    Values,
}

/// The public description of one cache's products: shapes, window, limbs. Both parties build it
/// with [`AttnLayout::new`] from public values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnLayout {
    /// ℓ.
    pub ring_bits: u32,
    pub operand: Operand,
    pub heads: usize,
    /// Head width d (c = heads·d columns per cache row).
    pub d: usize,
    /// The most cache rows a call may use (the plan's context length).
    pub max_positions: usize,
    /// HomFC window: inner entries n_i and output columns n_o per block.
    pub n_i: usize,
    pub n_o: usize,
    /// Limbs L of the fresh operand and their width s = ⌈ℓ/L⌉.
    pub limbs: u32,
    pub limb_bits: u32,
}

/// Messages, products and bytes of one call, per party (both send the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnCost {
    /// Result ciphertexts each party returns.
    pub cts: usize,
    /// Returned `b` coefficients each party sends.
    pub values: usize,
    /// Plaintext × ciphertext products each party computes.
    pub products: usize,
    /// Bytes each party sends (re-shared rows, results).
    pub bytes: usize,
}

/// The plaintext ring of a layout; `ProtocolError::Invalid` for empty or too large shapes.
fn check_shape(
    ring: Ring,
    heads: usize,
    d: usize,
    max_positions: usize,
) -> Result<Plain, ProtocolError> {
    let plain = Plain::new(ring.bits)?;
    if heads == 0 || d == 0 || max_positions == 0 {
        return Err(invalid(format!(
            "empty shape: {heads} heads of {d}, {max_positions} positions"
        )));
    }
    if heads.checked_mul(d).is_none_or(|c| c > MAX_WIDTH) || max_positions > MAX_POSITIONS {
        return Err(invalid(format!(
            "shape too large: {heads} heads of {d} (at most {MAX_WIDTH} columns), \
             {max_positions} positions (at most {MAX_POSITIONS})"
        )));
    }
    Ok(plain)
}

impl AttnLayout {
    /// The layout for a cache of `heads` heads of width `d` and at most `max_positions` rows at
    /// ℓ = `ring.bits`, with the limb count chosen by bytes (see the module docs).
    /// `ProtocolError::Invalid` for empty or too large shapes, ℓ outside 16..=43, or when no limb count
    /// up to [`MAX_LIMBS`] fits the noise budget.
    pub fn new(
        ring: Ring,
        operand: Operand,
        heads: usize,
        d: usize,
        max_positions: usize,
    ) -> Result<AttnLayout, ProtocolError> {
        check_shape(ring, heads, d, max_positions)?;
        let mut best: Option<(usize, AttnLayout)> = None;
        for limbs in 1..=MAX_LIMBS.min(ring.bits) {
            let Ok(l) = Self::with_limbs(ring, operand, heads, d, max_positions, limbs) else {
                continue;
            };
            let p = max_positions;
            let per_token = l.cost(1, p, 1, true).bytes + l.offline_bytes_per_row();
            if best.as_ref().is_none_or(|(b, _)| per_token < *b) {
                best = Some((per_token, l));
            }
        }
        best.map(|(_, l)| l).ok_or_else(|| {
            invalid(format!(
                "{heads} heads of {d} over {max_positions} positions do not fit the noise budget \
                 at ℓ = {} even in {MAX_LIMBS} limbs",
                ring.bits
            ))
        })
    }

    /// The layout with `limbs` limbs; `ProtocolError::Invalid` also when they do not fit the budget.
    pub fn with_limbs(
        ring: Ring,
        operand: Operand,
        heads: usize,
        d: usize,
        max_positions: usize,
        limbs: u32,
    ) -> Result<AttnLayout, ProtocolError> {
        let plain = check_shape(ring, heads, d, max_positions)?;
        if !(1..=MAX_LIMBS.min(ring.bits)).contains(&limbs) {
            return Err(invalid(format!(
                "{limbs} limbs is not in 1..={}",
                MAX_LIMBS.min(ring.bits)
            )));
        }
        let (n_i, n_o) = match operand {
            Operand::Keys => {
                let n_i = d.min((DEG / max_positions).max(1));
                (n_i, DEG / n_i)
            }
            Operand::Values => {
                let n_o = d.min(DEG);
                (DEG / n_o, n_o)
            }
        };
        let l = AttnLayout {
            ring_bits: ring.bits,
            operand,
            heads,
            d,
            max_positions,
            n_i,
            n_o,
            limbs,
            limb_bits: ring.bits.div_ceil(limbs),
        };
        l.out_params(plain, max_positions)?;
        Ok(l)
    }

    /// Columns of a cache row, c = heads·d.
    pub fn width(&self) -> usize {
        self.heads * self.d
    }

    /// Cache rows per prepared block: n_o (Keys) or n_i (Values).
    pub fn block_rows(&self) -> usize {
        match self.operand {
            Operand::Keys => self.n_o,
            Operand::Values => self.n_i,
        }
    }

    /// Ciphertexts per head, block and limb: the inner blocks ⌈d/n_i⌉ (Keys) or the output
    /// blocks ⌈d/n_o⌉ (Values).
    fn subs(&self) -> usize {
        match self.operand {
            Operand::Keys => self.d.div_ceil(self.n_i),
            Operand::Values => self.d.div_ceil(self.n_o),
        }
    }

    /// Ciphertexts each party sends per prepared block.
    pub fn cts_per_block(&self) -> usize {
        self.heads * self.subs() * self.limbs as usize
    }

    /// Offline bytes each party sends per cache row (a block's ciphertexts over its rows).
    pub fn offline_bytes_per_row(&self) -> usize {
        (self.cts_per_block() * Seeded::wire_len()).div_ceil(self.block_rows())
    }

    /// Blocks that cover `rows` cache rows.
    pub fn blocks(&self, rows: usize) -> usize {
        rows.div_ceil(self.block_rows())
    }

    /// Inner blocks of a row that uses `used` positions.
    fn in_blocks(&self, used: usize) -> usize {
        match self.operand {
            Operand::Keys => self.d.div_ceil(self.n_i),
            Operand::Values => used.div_ceil(self.n_i),
        }
    }

    /// Output blocks of a row that uses `used` positions.
    fn out_blocks(&self, used: usize) -> usize {
        match self.operand {
            Operand::Keys => used.div_ceil(self.n_o),
            Operand::Values => self.d.div_ceil(self.n_o),
        }
    }

    /// Positions row `r` of `t` uses against `npos` cache rows.
    fn used(t: usize, npos: usize, r: usize, causal: bool) -> usize {
        if causal {
            npos - t + r + 1
        } else {
            npos
        }
    }

    /// Flooding and switching for products against `npos` rows: every returned coefficient sums
    /// A·L·n_i terms e·x_l and as many ε·x_l with |ε| ≤ 1/2 (|x_l| ≤ 2^(s−1)).
    fn out_params(&self, plain: Plain, npos: usize) -> Result<OutputParams, ProtocolError> {
        let terms = self.in_blocks(npos) * self.limbs as usize * self.n_i;
        Ok(output_params(
            plain,
            1u64 << (self.limb_bits - 1),
            terms,
            terms.div_ceil(2),
        )?)
    }

    /// The output parameters for a call against `npos` rows (both parties derive the same).
    pub fn output_params(&self, npos: usize) -> Result<OutputParams, ProtocolError> {
        self.out_params(Plain::new(self.ring_bits)?, npos)
    }

    /// Ciphertexts, values, products and bytes each party sends in a call on `t` fresh rows
    /// against `npos` cache rows of which `new` are re-shared in this call.
    pub fn cost(&self, t: usize, npos: usize, new: usize, causal: bool) -> AttnCost {
        let (mut cts, mut values, mut products) = (0, 0, 0);
        let l = self.limbs as usize;
        for r in 0..t {
            let u = Self::used(t, npos, r, causal);
            cts += self.heads * self.out_blocks(u);
            values += self.heads
                * match self.operand {
                    Operand::Keys => u,
                    Operand::Values => self.d,
                };
            products += self.heads * self.out_blocks(u) * self.in_blocks(u) * l;
        }
        let k = self
            .output_params(npos)
            .map(|o| (o.k, o.b_bits))
            .unwrap_or((64, 64));
        AttnCost {
            cts,
            values,
            products,
            bytes: packed_len(new * self.width(), self.ring_bits)
                + cts * packed_len(DEG, k.0)
                + packed_len(values, k.1),
        }
    }

    /// The encrypted matrix polynomial of head `h`, block `cb`, sub-block `sub`, limb `l`, from
    /// the pre-chosen shares `r` ([rows × c], covering the block).
    fn matrix_poly(&self, r: &[u64], cb: usize, h: usize, sub: usize, l: u32) -> Vec<u64> {
        let (c, d, n_i, n_o) = (self.width(), self.d, self.n_i, self.n_o);
        let mask = (1u64 << self.ring_bits) - 1;
        let sh = self.limb_bits * l;
        let scale = |v: u64| if sh >= 64 { 0 } else { (v << sh) & mask };
        let mut poly = vec![0u64; DEG];
        for col in 0..n_o {
            for j in 0..n_i {
                let (pos, dim) = match self.operand {
                    // W = K_hᵀ: inner = dimension α·n_i + j, column = position β·n_o + col.
                    Operand::Keys => (cb * n_o + col, sub * n_i + j),
                    // W = V_h: inner = position α·n_i + j, column = dimension β·n_o + col.
                    Operand::Values => (cb * n_i + j, sub * n_o + col),
                };
                if dim < d {
                    poly[col * n_i + n_i - 1 - j] = scale(r[pos * c + h * d + dim]);
                }
            }
        }
        poly
    }

    /// Index of a stored ciphertext.
    fn ct_index(&self, cb: usize, h: usize, sub: usize, l: usize) -> usize {
        ((cb * self.heads + h) * self.subs() + sub) * self.limbs as usize + l
    }

    /// The L balanced limbs of a centred value (the top limb takes the rest).
    fn limbs_of(&self, v: i64, out: &mut [i64]) {
        let s = self.limb_bits;
        let mut v = v as i128;
        let n = self.limbs as usize;
        for (i, o) in out.iter_mut().enumerate().take(n) {
            if i + 1 == n {
                *o = v as i64;
                break;
            }
            let half = 1i128 << (s - 1);
            let d = (v + half).rem_euclid(1i128 << s) - half;
            *o = d as i64;
            v = (v - d) >> s;
        }
    }
}

/// One party's state of a persistent cache operand: its pre-chosen shares r_own, the rows it
/// holds as M − r_peer, and the peer's encryptions of 2^(s·l)·r_peer.
pub struct SharedCache {
    layout: AttnLayout,
    /// r_own, [blocks·block_rows × c].
    own_r: Vec<u64>,
    /// M − r_peer for the rows re-shared so far, [rows × c].
    local: Vec<u64>,
    /// Rows re-shared so far.
    rows: usize,
    /// Blocks prepared (both parties' encryptions exchanged).
    blocks: usize,
    /// The peer's ciphertexts, indexed by [`AttnLayout::ct_index`].
    peer: Vec<NttCiphertext>,
    rng: Prg,
}

impl SharedCache {
    /// An empty cache (nothing prepared, no rows).
    pub fn new(layout: AttnLayout) -> SharedCache {
        SharedCache {
            layout,
            own_r: Vec::new(),
            local: Vec::new(),
            rows: 0,
            blocks: 0,
            peer: Vec::new(),
            rng: Prg::from_entropy(),
        }
    }

    pub fn layout(&self) -> &AttnLayout {
        &self.layout
    }

    /// Cache rows re-shared so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Cache rows covered by prepared encryptions.
    pub fn capacity(&self) -> usize {
        (self.blocks * self.layout.block_rows()).min(self.layout.max_positions)
    }

    /// Bytes held (the peer's expanded ciphertexts dominate: 128 KiB each).
    pub fn memory_bytes(&self) -> usize {
        (self.own_r.len() + self.local.len()) * 8 + self.peer.len() * 4 * DEG * 8
    }
}

fn check_session(
    he: &DuplexHe,
    role: Role,
    ring: Ring,
    l: &AttnLayout,
) -> Result<(), ProtocolError> {
    if he.role() != role {
        return Err(invalid("the HE session belongs to the other role".into()));
    }
    if l.ring_bits != ring.bits {
        return Err(invalid(format!(
            "layout for ℓ = {} used in a ring of {} bits",
            l.ring_bits, ring.bits
        )));
    }
    Ok(())
}

/// Prepare the encryptions for the first `rows` cache rows (a no-op for rows already covered):
/// both parties draw their pre-chosen shares for the new blocks and exchange their encryptions,
/// the client's first. Both parties call it with the same `rows`.
pub fn prepare<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    rows: usize,
) -> Result<(), ProtocolError> {
    let l = cache.layout;
    check_session(he, role, ring, &l)?;
    if rows > l.max_positions {
        return Err(invalid(format!(
            "{rows} rows exceed the layout's {} positions",
            l.max_positions
        )));
    }
    let (from, to) = (cache.blocks, l.blocks(rows));
    if to <= from {
        return Ok(());
    }
    let sk = he.own_key()?;
    let plain = Plain::new(ring.bits)?;
    let c = l.width();
    let new_r = ring.random(&mut cache.rng, (to - from) * l.block_rows() * c);
    cache.own_r.extend_from_slice(&new_r);
    let per_block = l.cts_per_block();
    let count = (to - from) * per_block;
    let wire = Seeded::wire_len();
    let seeds: Vec<Block> = (0..count).map(|_| cache.rng.block()).collect();
    let own_r = &cache.own_r;
    let mut mine = vec![0u8; count * wire];
    mine.par_chunks_mut(wire)
        .zip(seeds.par_iter())
        .enumerate()
        .try_for_each(|(idx, (dst, &seed))| -> Result<(), ProtocolError> {
            let (cb, rest) = (from + idx / per_block, idx % per_block);
            let li = rest % l.limbs as usize;
            let sub = (rest / l.limbs as usize) % l.subs();
            let h = rest / (l.limbs as usize * l.subs());
            let poly = l.matrix_poly(own_r, cb, h, sub, li as u32);
            let ct = sk.encrypt(plain, &poly, &mut Prg::new(seed))?;
            let mut bytes = Vec::with_capacity(wire);
            ct.write(&mut bytes);
            dst.copy_from_slice(&bytes);
            Ok(())
        })?;
    let theirs = match role {
        Role::Client => {
            ch.send(&mine)?;
            ch.flush()?;
            ch.recv_vec(mine.len())?
        }
        Role::Server => {
            let theirs = ch.recv_vec(mine.len())?;
            ch.send(&mine)?;
            ch.flush()?;
            theirs
        }
    };
    drop(mine);
    let expanded = theirs
        .par_chunks(wire)
        .map(|b| Ok(expand(&Seeded::read(b)?, None, None)))
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    // Received in index order: block, head, sub-block, limb.
    debug_assert_eq!(cache.peer.len(), l.ct_index(from, 0, 0, 0));
    cache.peer.extend(expanded);
    cache.blocks = to;
    Ok(())
}

/// Shares of the scores q·Kᵀ of every head, [heads × t × npos], for this party's shares of the
/// fresh queries `q` ([t × c]) and of the key cache `keys` ([npos × c], the cache as it stands
/// after this program's rows were appended; rows re-shared by earlier calls must be unchanged).
/// `cache` is this party's state of the key cache (an [`Operand::Keys`] layout).
#[allow(clippy::too_many_arguments)]
pub fn qk_t<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    q: &[u64],
    keys: &[u64],
    t: usize,
    causal: bool,
) -> Result<Vec<u64>, ProtocolError> {
    product(he, ch, role, ring, cache, Operand::Keys, q, keys, t, causal)
}

/// Shares of P·V for every head, [t × c], for this party's shares of the fresh probabilities
/// `p` ([heads × t × npos]) and of the value cache `values` ([npos × c], as for [`qk_t`]).
/// `cache` is this party's state of the value cache (an [`Operand::Values`] layout).
#[allow(clippy::too_many_arguments)]
pub fn pv<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    p: &[u64],
    values: &[u64],
    t: usize,
    causal: bool,
) -> Result<Vec<u64>, ProtocolError> {
    product(
        he,
        ch,
        role,
        ring,
        cache,
        Operand::Values,
        p,
        values,
        t,
        causal,
    )
}

/// The transform form mod each prime (PRIMES·N words) of the plaintext polynomial with the signed
/// coefficients `coeffs` (n_i of them, the rest zero), by [`NttPlan::forward_low`]: a HomFC
/// vector block has only n_i ≤ 64 nonzero coefficients, so the first stages are copies.
///
/// [`NttPlan::forward_low`]: crate::crypto::rlwe::ntt::NttPlan::forward_low
fn encode_short(coeffs: &[i64], out: &mut [u64]) {
    let r = rlwe_ring();
    for (i, dst) in out.chunks_exact_mut(DEG).enumerate() {
        let pl = &r.plans[i];
        dst.fill(0);
        for (d, &c) in dst.iter_mut().zip(coeffs) {
            *d = pl.m.from_i64(c);
        }
        pl.forward_low(dst, coeffs.len());
    }
}

/// One output ciphertext: head, fresh row, output block, the positions it uses.
#[derive(Clone, Copy)]
struct Job {
    h: usize,
    r: usize,
    beta: usize,
    used: usize,
}

#[allow(clippy::too_many_arguments)]
fn product<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    operand: Operand,
    x: &[u64],
    share: &[u64],
    t: usize,
    causal: bool,
) -> Result<Vec<u64>, ProtocolError> {
    let l = cache.layout;
    check_session(he, role, ring, &l)?;
    if l.operand != operand {
        return Err(invalid(format!(
            "a cache of {:?} used for the product with {operand:?}",
            l.operand
        )));
    }
    let (c, heads, d) = (l.width(), l.heads, l.d);
    if !share.len().is_multiple_of(c) {
        return Err(invalid(format!(
            "cache share of {} values is not a whole number of rows of {c}",
            share.len()
        )));
    }
    let npos = share.len() / c;
    if npos > l.max_positions {
        return Err(invalid(format!(
            "{npos} cache rows exceed the layout's {} positions",
            l.max_positions
        )));
    }
    if npos < cache.rows {
        return Err(invalid(format!(
            "the cache has {npos} rows, fewer than the {} already re-shared",
            cache.rows
        )));
    }
    if causal && npos < t {
        return Err(invalid(format!(
            "causal use of {t} fresh rows against {npos} cache rows"
        )));
    }
    let want_x = match operand {
        Operand::Keys => t * c,
        Operand::Values => heads * t * npos,
    };
    if x.len() != want_x {
        return Err(invalid(format!(
            "fresh operand of {} values, expected {want_x} ({t} rows, {heads} heads, {npos} \
             positions)",
            x.len()
        )));
    }
    if x.iter().chain(share).any(|&v| v > ring.mask()) {
        return Err(invalid(format!("share not reduced mod 2^{}", ring.bits)));
    }
    let out_len = match operand {
        Operand::Keys => heads * t * npos,
        Operand::Values => t * c,
    };
    if t == 0 || npos == 0 {
        return Ok(vec![0; out_len]);
    }
    prepare(he, ch, role, ring, cache, npos)?;
    let plain = Plain::new(ring.bits)?;
    let out = l.out_params(plain, npos)?;
    let sk = he.own_key()?;
    let pk = he.peer_key()?;

    // Output ciphertexts in message order: head, row, block.
    let jobs: Vec<Job> = (0..heads)
        .flat_map(|h| (0..t).map(move |r| (h, r)))
        .flat_map(|(h, r)| {
            let used = AttnLayout::used(t, npos, r, causal);
            (0..l.out_blocks(used)).map(move |beta| Job { h, r, beta, used })
        })
        .collect();
    // (coefficient, output index) of a job.
    let outputs = |j: &Job| -> Vec<(usize, usize)> {
        let mut v = Vec::with_capacity(l.n_o);
        for col in 0..l.n_o {
            let cc = j.beta * l.n_o + col;
            let coeff = col * l.n_i + l.n_i - 1;
            match operand {
                Operand::Keys if cc < j.used => v.push((coeff, (j.h * t + j.r) * npos + cc)),
                Operand::Values if cc < d => v.push((coeff, j.r * c + j.h * d + cc)),
                _ => break,
            }
        }
        v
    };
    // The fresh value of head h, row r, inner index i (0 beyond the used positions).
    let fresh = |h: usize, r: usize, i: usize, used: usize| -> u64 {
        match operand {
            Operand::Keys => x[r * c + h * d + i],
            Operand::Values if i < used => x[(h * t + r) * npos + i],
            Operand::Values => 0,
        }
    };
    let inner_len = |used: usize| match operand {
        Operand::Keys => d,
        Operand::Values => used,
    };

    // 4. This party's products with the peer's encryptions, under the peer's key.
    let seeds: Vec<Block> = jobs.iter().map(|_| cache.rng.block()).collect();
    let peer = &cache.peer;
    let results = jobs
        .par_iter()
        .zip(seeds.par_iter())
        .map(|(j, &seed)| {
            let mut acc = Accumulator::new();
            let nl = l.limbs as usize;
            let mut limbs = vec![[0i64; MAX_LIMBS as usize]; l.n_i];
            let mut coeffs = vec![0i64; l.n_i];
            let mut wn = vec![0u64; PRIMES * DEG];
            for alpha in 0..l.in_blocks(j.used) {
                for (jj, lv) in limbs.iter_mut().enumerate() {
                    let i = alpha * l.n_i + jj;
                    let v = if i < inner_len(j.used) {
                        ring.to_signed(fresh(j.h, j.r, i, j.used))
                    } else {
                        0
                    };
                    l.limbs_of(v, lv);
                }
                for li in 0..nl {
                    for (cf, lv) in coeffs.iter_mut().zip(&limbs) {
                        *cf = lv[li];
                    }
                    if coeffs.iter().all(|&v| v == 0) {
                        continue;
                    }
                    encode_short(&coeffs, &mut wn);
                    // Keys: block β of positions, sub-block α of dimensions; Values: the
                    // reverse.
                    let idx = match operand {
                        Operand::Keys => l.ct_index(j.beta, j.h, alpha, li),
                        Operand::Values => l.ct_index(alpha, j.h, j.beta, li),
                    };
                    acc.mac(&peer[idx], &wn);
                }
            }
            let outs = outputs(j);
            let positions: Vec<usize> = outs.iter().map(|o| o.0).collect();
            let mut prg = Prg::new(seed);
            let masks = ring.random(&mut prg, outs.len());
            let sw = finalize(acc.finish(), pk, plain, &out, &positions, &masks, &mut prg)?;
            Ok((sw, masks))
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;

    // 3. + 4. The message: re-shared rows, then every result's `a`, then the `b` values.
    let (old, new) = (cache.rows, npos - cache.rows);
    let reshare: Vec<u64> = (old * c..npos * c)
        .map(|i| ring.sub(share[i], cache.own_r[i]))
        .collect();
    let a_len = packed_len(DEG, out.k);
    let cost = l.cost(t, npos, new, causal);
    debug_assert_eq!(cost.cts, jobs.len());
    let mut mine = pack(&reshare, ring.bits);
    mine.reserve(cost.bytes.saturating_sub(mine.len()));
    for (sw, _) in &results {
        mine.extend_from_slice(&pack(&sw.a, out.k));
    }
    let b_flat: Vec<u64> = results.iter().flat_map(|(sw, _)| sw.b.clone()).collect();
    mine.extend_from_slice(&pack(&b_flat, out.b_bits));
    debug_assert_eq!(mine.len(), cost.bytes);
    let theirs = match role {
        Role::Server => {
            ch.send(&mine)?;
            ch.flush()?;
            ch.recv_vec(mine.len())?
        }
        Role::Client => {
            let theirs = ch.recv_vec(mine.len())?;
            ch.send(&mine)?;
            ch.flush()?;
            theirs
        }
    };
    drop(mine);

    // 5. This party's output: its masks, what it decrypts of the peer's results, the local term.
    let mut y = vec![0u64; out_len];
    for (j, (_, masks)) in jobs.iter().zip(&results) {
        for ((_, o), &m) in outputs(j).iter().zip(masks) {
            y[*o] = ring.add(y[*o], m);
        }
    }
    drop(results);
    let re_len = packed_len(new * c, ring.bits);
    let peer_reshare = unpack(&theirs[..re_len], new * c, ring.bits);
    let a_bytes = &theirs[re_len..re_len + jobs.len() * a_len];
    let b_all = unpack(
        &theirs[re_len + jobs.len() * a_len..],
        cost.values,
        out.b_bits,
    );
    let mut offsets = Vec::with_capacity(jobs.len());
    let mut off = 0;
    for j in &jobs {
        offsets.push(off);
        off += outputs(j).len();
    }
    let decrypted: Vec<Vec<u64>> = jobs
        .par_iter()
        .enumerate()
        .map(|(idx, j)| {
            let outs = outputs(j);
            let positions: Vec<usize> = outs.iter().map(|o| o.0).collect();
            let ct = SwitchedCiphertext {
                k: out.k,
                b_bits: out.b_bits,
                a: unpack(&a_bytes[idx * a_len..(idx + 1) * a_len], DEG, out.k),
                b: b_all[offsets[idx]..offsets[idx] + outs.len()].to_vec(),
            };
            sk.decrypt_switched(plain, &ct, &positions)
        })
        .collect();
    for (j, vals) in jobs.iter().zip(decrypted) {
        for ((_, o), v) in outputs(j).iter().zip(vals) {
            y[*o] = ring.add(y[*o], v);
        }
    }
    // 3. The new rows as M − r_peer: this party's share plus the peer's M_peer − r_peer.
    cache
        .local
        .extend((0..new * c).map(|i| ring.add(share[old * c + i], peer_reshare[i])));
    cache.rows = npos;
    // The local term x_own·(M − r_peer).
    let local = &cache.local;
    match operand {
        Operand::Keys => {
            y.par_chunks_mut(npos).enumerate().for_each(|(hr, row)| {
                let (h, r) = (hr / t, hr % t);
                let qv = &x[r * c + h * d..r * c + (h + 1) * d];
                for (jpos, cell) in row
                    .iter_mut()
                    .enumerate()
                    .take(AttnLayout::used(t, npos, r, causal))
                {
                    let kv = &local[jpos * c + h * d..jpos * c + (h + 1) * d];
                    let s = qv
                        .iter()
                        .zip(kv)
                        .fold(0u64, |a, (&u, &v)| a.wrapping_add(u.wrapping_mul(v)));
                    *cell = ring.add(*cell, s);
                }
            });
        }
        Operand::Values => {
            y.par_chunks_mut(c).enumerate().for_each(|(r, row)| {
                let used = AttnLayout::used(t, npos, r, causal);
                for h in 0..heads {
                    let pr = &x[(h * t + r) * npos..(h * t + r) * npos + used];
                    let cells = &mut row[h * d..(h + 1) * d];
                    for (jpos, &pv) in pr.iter().enumerate() {
                        if pv == 0 {
                            continue;
                        }
                        let vv = &local[jpos * c + h * d..jpos * c + (h + 1) * d];
                        for (cell, &v) in cells.iter_mut().zip(vv) {
                            *cell = cell.wrapping_add(pv.wrapping_mul(v));
                        }
                    }
                    for cell in cells.iter_mut() {
                        *cell &= ring.mask();
                    }
                }
            });
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Balanced limbs recombine to the centred value mod 2^ℓ and stay within ±2^(s−1), the
    /// bound the noise budget assumes, for every limb count, at the ends of the range.
    #[test]
    fn limbs_recombine_within_their_bound() {
        for bits in [16u32, 35, 37, 38, 44] {
            let ring = Ring::new(bits).unwrap();
            for limbs in 1..=MAX_LIMBS {
                let l = AttnLayout {
                    ring_bits: bits,
                    operand: Operand::Keys,
                    heads: 1,
                    d: 1,
                    max_positions: 1,
                    n_i: 1,
                    n_o: 1,
                    limbs,
                    limb_bits: bits.div_ceil(limbs),
                };
                let half = 1i64 << (bits - 1);
                let b = 1i64 << (l.limb_bits - 1);
                let mut rng = Prg::new(Block(bits as u128));
                let mut vals = vec![-half, half - 1, 0, -1, 1, -b, b, b - 1, -b - 1];
                vals.extend((0..2000).map(|_| ring.to_signed(ring.random(&mut rng, 1)[0])));
                for v in vals {
                    let v = ring.to_signed(ring.from_signed(v));
                    let mut out = [0i64; MAX_LIMBS as usize];
                    l.limbs_of(v, &mut out);
                    let mut sum = 0i128;
                    for (i, &x) in out.iter().take(limbs as usize).enumerate() {
                        assert!(x.abs() <= b, "ℓ {bits}, {limbs} limbs, v {v}: limb {x}");
                        sum += (x as i128) << (l.limb_bits as usize * i);
                    }
                    assert_eq!(ring.from_signed(sum as i64), ring.from_signed(v));
                }
            }
        }
    }

    /// The report's windows for GPT-2 (d = 64, 256 positions) and the trained model (d = 32).
    #[test]
    fn windows_and_limbs() {
        let ring = Ring::new(37).unwrap();
        let k = AttnLayout::new(ring, Operand::Keys, 12, 64, 256).unwrap();
        assert_eq!((k.n_i, k.n_o, k.limbs), (32, 256, 1));
        let v = AttnLayout::new(ring, Operand::Values, 12, 64, 256).unwrap();
        assert_eq!((v.n_i, v.n_o, v.limbs), (128, 64, 1));
        let k = AttnLayout::new(ring, Operand::Keys, 4, 32, 7).unwrap();
        assert_eq!((k.n_i, k.n_o), (32, 256));
        let v = AttnLayout::new(ring, Operand::Values, 4, 32, 7).unwrap();
        assert_eq!((v.n_i, v.n_o), (256, 32));
        // A 37-bit multiplier fits in one limb at ℓ = 37; a 43-bit one does not, and ℓ = 43
        // takes narrower limbs.
        let ring43 = Ring::new(43).unwrap();
        assert!(AttnLayout::with_limbs(ring43, Operand::Keys, 12, 64, 256, 1).is_err());
        let w = AttnLayout::new(ring43, Operand::Keys, 12, 64, 256).unwrap();
        assert!(w.limbs >= 2, "{w:?}");
    }
}
