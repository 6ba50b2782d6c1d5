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
//!    client's is the [`HeSession`](crate::crypto::rlwe::HeSession) one, the server adds its own and sends its public key.
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

mod cache;
mod keys;
mod layout;
mod product;

pub use cache::{prepare, SharedCache};
pub use keys::DuplexHe;
pub use layout::{AttnCost, AttnLayout, Operand};
pub use product::{pv, qk_t};

use super::shares::Ring;
use super::ProtocolError;
use crate::net::Role;

/// Most limbs the fresh operand is split into.
pub const MAX_LIMBS: u32 = 8;
/// Largest supported number of cache positions.
pub const MAX_POSITIONS: usize = 1 << 16;
/// Largest supported heads·d.
pub const MAX_WIDTH: usize = 1 << 16;

fn invalid(msg: String) -> ProtocolError {
    ProtocolError::Invalid(format!("attention_he: {msg}"))
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
