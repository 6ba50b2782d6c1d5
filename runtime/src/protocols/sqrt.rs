//! Exact integer square root of a shared value: shares of ⌊√x⌋ for a shared x ∈ [0, 2^b), by the
//! digit-by-digit (binary restoring) method, one root bit per step, each bit a secure comparison.
//! The plan's LayerNorm defines ρ = ⌊√⌊N / V⌋⌋ exactly ([`super::div`] gives ⌊N / V⌋); SIRNN §V-D
//! and CipherGPT §VII-B approximate 1/√x by a lookup-table start and Newton steps instead, which
//! would need an exact correction afterwards to meet our semantics. Comparison and multiplexer are
//! CrypTFlow2 §3 / §4.1 ([`cmp`], [`mux`]).
//!
//! **Protocol.** Let h = ⌈b/2⌉, so ⌊√x⌋ < 2^h. The parties hold shares of the root so far r (bits
//! above j decided, the rest zero) and of the remainder D = x − r² ≥ 0. For j = h − 1, …, 0:
//! setting bit j gives (r + 2^j)² = r² + 2^(j+1)·r + 2^(2j), so with v = 2^(j+1)·r + 2^(2j) (local:
//! a public multiple of a share, the server adds the constant) the bit is c_j = 1{D − v ≥ 0}
//! (DReLU), and then D ← D − c_j·v, r ← r + 2^j·c_j. Both updates come from one multiplexer call
//! on the pair (v, 1): c_j·1 is the B2A of c_j. Ranges: D < 2^b, v < 2^(2h) ≤ 2^(b+1), so D − v
//! lies in (−2^(b+1), 2^b) and the comparison works in Z_2^k, k = b + 2, on shares reduced mod 2^k
//! (exact, 2^k divides 2^ℓ); D and r are kept over Z_2^ℓ.
//!
//! **Cost**, with D(k) the DReLU on k bits ([`cmp`]): h·(D(k) + 4·COT_ℓ) bits, where COT_ℓ = λ + ℓ
//! bits; flights h·(F_DReLU + 3). All the square roots of one call share the steps.
//!
//! **Security** (semi-honest). D, r and every c_j stay shared; each step is a DReLU and a MUX on
//! shares and local arithmetic, each revealing nothing beyond fresh output shares ([`cmp`],
//! [`mux`]); by sequential composition the protocol reveals nothing about x or its root.

use super::shares::Ring;
use super::{cmp, mux::mux};
use super::{Party, ProtocolError};
use crate::net::{Channel, Role};

/// This party's shares over `ring` of ⌊√x_i⌋ for each shared x_i (shares over `ring`). The caller
/// guarantees 0 ≤ x_i < 2^x_bits (signed lift), with 1 ≤ x_bits ≤ ℓ − 2.
pub fn isqrt<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
    x_bits: u32,
) -> Result<Vec<u64>, ProtocolError> {
    if x_bits == 0 || x_bits + 2 > ring.bits {
        return Err(ProtocolError::Invalid(format!(
            "isqrt: input width {x_bits} needs 1 <= width <= l - 2 = {}",
            ring.bits.saturating_sub(2)
        )));
    }
    let n = x.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let small = Ring::new(x_bits + 2)?;
    let h = x_bits.div_ceil(2);
    let server = party.role == Role::Server;
    let mut rem: Vec<u64> = x.iter().map(|&v| ring.reduce(v)).collect();
    let mut root = vec![0u64; n];
    for j in (0..h).rev() {
        let square = if server { 1u64 << (2 * j) } else { 0 };
        let v: Vec<u64> = root
            .iter()
            .map(|&r| ring.add(ring.mul(1u64 << (j + 1), r), square))
            .collect();
        let diff: Vec<u64> = rem
            .iter()
            .zip(&v)
            .map(|(&d, &v)| small.reduce(ring.sub(d, v)))
            .collect();
        let c = cmp::drelu(party, small, &diff)?;
        let mut sel = v;
        sel.extend(std::iter::repeat_n(server as u64, n));
        let bits: Vec<bool> = c.iter().chain(c.iter()).copied().collect();
        let got = mux(party, ring, &bits, &sel)?;
        let (take, c_arith) = got.split_at(n);
        rem = ring.sub_vec(&rem, take);
        for (r, &c) in root.iter_mut().zip(c_arith) {
            *r = ring.add(*r, ring.mul(1u64 << j, c));
        }
    }
    Ok(root)
}
