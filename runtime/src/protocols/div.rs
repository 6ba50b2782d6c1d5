//! Exact division of a public numerator by a shared divisor: shares of q = ⌊N / d⌋ for a public
//! N < 2^127 and a shared d ≥ 1, by the schoolbook (restoring) long division, one quotient bit per
//! step, each bit a secure comparison. This is the exact reciprocal the plan's softmax
//! (R = ⌊2^K / Z⌋) and LayerNorm (⌊N / V⌋ before the square root) define: the semantics fixes the
//! floor exactly, so an approximation (Newton from a lookup-table start, as SIRNN §V-D and
//! CipherGPT §VII do) would need a final exact correction anyway; the digit recurrence gives the
//! floor directly. The comparison and multiplexer are CrypTFlow2 §3 / §4.1 (see [`cmp`], [`mux`]).
//!
//! **Protocol.** The caller guarantees d < 2^b (`den_bits`) and q < 2^t (`q_bits`). Then
//! ρ₀ = ⌊N / 2^t⌋ < d (else q ≥ 2^t) is public. For j = t − 1, …, 0 the parties hold shares of
//! the running remainder ρ < d and compute, locally, ρ' = 2ρ + bit_j(N) (the server adds the bit);
//! c_j = 1{ρ' ≥ d} = DReLU(ρ' − d) as XOR shares; ρ ← ρ' − c_j·d by one multiplexer. Then
//! q = Σ_j 2^j·c_j, each c_j converted by one B2A at the end (all t bits in one batch). The
//! invariant ρ < d gives ρ' < 2d < 2^(b+1) and ρ' − d ∈ (−2^b, 2^(b+1)), so every step works in the
//! small ring Z_2^k with k = b + 2: the parties reduce their shares of d mod 2^k (exact, since
//! 2^k divides 2^ℓ) and never leave it; the comparison's signed range holds the difference.
//!
//! **Cost** per division, with D(k) the DReLU on k bits ([`cmp`]: a millionaires' on k − 1 bits)
//! and COT_k = λ + k bits: t·(D(k) + 2·COT_k) + t·COT_ℓ bits. Flights: t·(F_DReLU + 3) + 2, with
//! F_DReLU = 4 + ⌈log₂⌈(k−1)/4⌉⌉. All the divisions of one call run in the same steps, so the
//! flights do not grow with the number of rows. Measured figures are in `docs/protocols.md`.
//!
//! **Security** (semi-honest). The remainder, the comparison bits and the quotient bits stay
//! shared throughout: each step is a DReLU ([`cmp`]), a MUX ([`mux`]) and local arithmetic, and
//! the final conversion is a B2A ([`b2a`]); each of those reveals nothing beyond its fresh output
//! shares, so by sequential composition neither party learns anything about d or q. The public
//! N and the bounds b, t are part of the plan.

use super::shares::Ring;
use super::{b2a::b2a, cmp, mux::mux};
use super::{Party, ProtocolError};
use crate::net::{Channel, Role};

/// This party's shares over `ring` of ⌊num / d_i⌋ for each shared divisor d_i (`den`, shares over
/// `ring`). Preconditions, which the caller guarantees (they are not checkable on shares):
/// 1 ≤ d_i < 2^den_bits and ⌊num / d_i⌋ < 2^q_bits. Requires den_bits + 2 ≤ ℓ, q_bits < ℓ and
/// ⌊num / 2^q_bits⌋ < 2^den_bits (else no divisor could meet the preconditions).
pub fn div_public<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    num: u128,
    den: &[u64],
    den_bits: u32,
    q_bits: u32,
) -> Result<Vec<u64>, ProtocolError> {
    if den_bits == 0 || den_bits + 2 > ring.bits || q_bits >= ring.bits || num >> 127 != 0 {
        return Err(ProtocolError::Invalid(format!(
            "div_public: divisor width {den_bits} needs 1 <= width <= l - 2 and quotient width \
             {q_bits} < l = {} (numerator below 2^127)",
            ring.bits
        )));
    }
    let start = num >> q_bits;
    if start >> den_bits != 0 {
        return Err(ProtocolError::Invalid(format!(
            "div_public: {num} / 2^{q_bits} is not below 2^{den_bits}: the quotient bound \
             {q_bits} bits is too small for any divisor below 2^{den_bits}"
        )));
    }
    let n = den.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let small = Ring::new(den_bits + 2)?;
    let d: Vec<u64> = den.iter().map(|&v| small.reduce(v)).collect();
    let role = party.role;
    let public = |v: u64| match role {
        Role::Server => small.reduce(v),
        Role::Client => 0,
    };
    let mut rem = vec![public(start as u64); n];
    let mut bits = Vec::with_capacity(q_bits as usize * n);
    for j in (0..q_bits).rev() {
        let bit = ((num >> j) & 1) as u64;
        for r in rem.iter_mut() {
            *r = small.add(small.add(*r, *r), public(bit));
        }
        let diff = small.sub_vec(&rem, &d);
        let c = cmp::drelu(party, small, &diff)?;
        let take = mux(party, small, &c, &d)?;
        rem = small.sub_vec(&rem, &take);
        bits.extend(c);
    }
    // bits[(t − 1 − j)·n + i] is c_j of element i.
    let arith = b2a(party, ring, &bits)?;
    let mut q = vec![0u64; n];
    for (step, chunk) in arith.chunks(n).enumerate() {
        let weight = 1u64 << (q_bits - 1 - step as u32);
        for (qi, &c) in q.iter_mut().zip(chunk) {
            *qi = ring.add(*qi, ring.mul(weight, c));
        }
    }
    Ok(q)
}
