//! Inverse powers of shared positive values in a fixed number of flights: shares of
//! `semantics::inv_pow(v)`, the plan's approximation of ⌊c / v⌋ (softmax's
//! reciprocal) or ⌊√(c / v)⌋ (LayerNorm's inverse square root), exactly as the recipe of
//! `fixed::semantics::inverse` defines it. SIRNN §V-D and CipherGPT §VII-B/C normalise to a
//! mantissa and an exponent and seed from a table; the recipe's spline is fine enough to need no
//! Newton step. The exact floors it replaces ([`super::div`], [`super::sqrt`]) spent one
//! comparison and one multiplexer per result bit, about 11 flights each: 1,160 flights per
//! LayerNorm and 233 per softmax; this protocol takes the same ~45 flights for both.
//!
//! **Protocol**, all inputs of one call in the same steps, over W = Z_2^64 (v < 2^B, B ≤ 62):
//! 1. Leading bit. c_j = 1{v ≥ 2^j} for j = 1, …, B − 1 by one batch of DReLUs of v − 2^j in
//!    Z_2^(B+1) ([`cmp::drelu_with`]; the difference lies in
//!    (−2^B, 2^B)). With c_0 = 1 and c_B = 0,
//!    e_j = c_j ⊕ c_(j+1) is one-hot at k = ⌊log₂ v⌋, locally, as XOR shares.
//! 2. Mantissa. M = Σ_j e_j·(v·2^(B−1−j)) by one multiplexer call on all (j, v) ([`mux`]):
//!    M = v·2^(B−1−k) ∈ [2^(B−1), 2^B).
//! 3. Segment and position. With M_P = h_P·2^R + l_P (R = B − 1 − T) and f_P the D bits of M_P
//!    from bit R₂ = R − D, the carries c₁ = 1{l_S + l_C ≥ 2^R} and c₂ = 1{(M_S mod 2^R₂) +
//!    (M_C mod 2^R₂) ≥ 2^R₂} come from one millionaires' batch on R bits ([`cmp::carry_each`]:
//!    the R₂-bit parts are shifted up to R bits, which leaves their carry unchanged), in
//!    arithmetic shares over W from its last level ([`cmp::carry_arith_each`]: a 1-out-of-8 OT
//!    in place of the last AND and a B2A). Then the segment i = ⌊M/2^R⌋ mod 2^T has shares
//!    h_P + c₁_P mod 2^T, and the position r = ⌊M/2^R₂⌋ mod 2^D = f_S + f_C + c₂ − 2^D·c₁
//!    exactly (the wraps of the whole sum, 2^(64−R) and 2^(64−R₂) times the same bit, cancel in
//!    ⌊M/2^R₂⌋ − 2^D·⌊M/2^R⌋).
//! 4. Spline. C[i] and S[i] by one lookup of both tables ([`lut`]); y = C[i]·2^D − S[i]·r by
//!    one product ([`mul::mul`]) and local arithmetic.
//! 5. Scale. F[k]·y = Σ_j e_j·(F_j·y) by one multiplexer call on the step-1 bits, and
//!    out = ⌊F[k]·y / 2^G⌋ ([`trunc::trunc_headroom_each`], one value per row:
//!    0 ≤ F[k]·y < 2^62, below its bound 2^63 − 2^G).
//!
//! **Digits.** Each of the three comparison batches (steps 1, 3, 5) runs once per row, so with
//! few rows its bytes are small and its tree levels are what costs: it takes the digit width
//! of [`cmp::row_digit_bits`] for its count, the fewest levels that digits of up to 8 bits
//! reach within 2^20 leaf messages (LayerNorm's B = 62 at one row: 8-bit digits for the leading
//! bit, 7-bit for its 53-bit carries, one level fewer each; softmax's 26-bit carries 7-bit),
//! else the width with the fewest bytes.
//!
//! **Cost** per input, with D(k) the DReLU on k bits, M(k) the millionaires' and COT_k = λ + k
//! bits: (B − 1)·D(B + 1) + 2B·COT_64 (the two multiplexers, B each) + 2·(M(R) less one AND,
//! plus a 1-out-of-8 OT of 64-bit messages) + L(2^T, 64, 2 tables) + the product over W + one
//! truncation over W. Flights: the steps are sequential and each is one batch, so
//! F_DReLU + 3 + F_carry + 2 + 3 + 3 + F_trunc (F_carry with the OT in place of its last
//! level), from a state where the client last received: the client's flights are 34 for
//! LayerNorm's B = 62 on one row (36 on 128 rows, where the digits are the cheapest again) and
//! 32 for softmax's B = 35 on silent OT (41 and 33 with the cheapest digits everywhere), equal
//! to the cost model's `inverse_root` (test `protocols_inverse.rs`). Measured figures are in
//! `docs/protocols.md`.
//!
//! **Security** (semi-honest). Every intermediate (the comparison bits, e, M, the carries, i, r,
//! the table values, y and the output) stays shared; each step is a sub-protocol that reveals
//! nothing beyond fresh output shares (comparison, multiplexer, B2A, lookup, product,
//! truncation; see their modules) or local arithmetic on shares and public constants. Reusing the
//! XOR shares of e in two multiplexer calls is safe: each call masks them with fresh COTs. By
//! sequential composition neither party learns anything about v, its exponent or its mantissa.

use ciphergpt_compiler::fixed::semantics::InvTables;

use super::shares::Ring;
use super::{cmp, lut::lut, mul, mux::mux_by, trunc};
use super::{Party, ProtocolError};
use crate::net::{Channel, Role};

/// Ring of the protocol's values.
const WIDE: u32 = 64;

/// XOR shares of the one-hot e_j = 1{⌊log₂ v⌋ = j}, j ∈ [0, B), element-major (step 1), and
/// the party that sent its last flight.
fn leading_bit<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    b: u32,
    v: &[u64],
) -> Result<(Vec<bool>, Role), ProtocolError> {
    let small = Ring::new(b + 1)?;
    let server = party.role == Role::Server;
    let diffs: Vec<u64> = v
        .iter()
        .flat_map(|&x| {
            (1..b).map(move |j| small.sub(small.reduce(x), if server { 1u64 << j } else { 0 }))
        })
        .collect();
    let digits = cmp::row_digit_bits(b, diffs.len() as u64);
    let c = cmp::drelu_with(party, small, digits, &diffs)?;
    let per = (b - 1) as usize;
    let mut e = Vec::with_capacity(v.len() * b as usize);
    for row in c.chunks(per.max(1)).take(v.len()) {
        // c_0 = 1 (the server's share), c_B = 0.
        let at = |j: usize| match j {
            0 => server,
            j if j <= per => row[j - 1],
            _ => false,
        };
        e.extend((0..b as usize).map(|j| at(j) ^ at(j + 1)));
    }
    Ok((e, cmp::last_sender(b, digits, 1)))
}

/// Σ_j e_j·x_(i,j) per input i, by one multiplexer call over W begun by `first` (the party
/// that sent the step before it).
fn select<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    e: &[bool],
    x: &[u64],
    b: usize,
) -> Result<Vec<u64>, ProtocolError> {
    let w = Ring::new(WIDE)?;
    let got = mux_by(party, first, w, e, x)?;
    Ok(got
        .chunks(b)
        .map(|c| c.iter().fold(0, |a, &t| w.add(a, t)))
        .collect())
}

/// Shares of the segment i (mod 2^T) and the position r (over W) of the mantissas `m` (step 3).
fn segment_position<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    t: &InvTables,
    m: &[u64],
) -> Result<(Vec<u64>, Vec<u64>), ProtocolError> {
    let w = Ring::new(WIDE)?;
    let (r1, r2, d) = (t.index_shift(), t.pos_shift(), t.pos_bits);
    let n = m.len();
    let low = |x: u64, s: u32| if s == 0 { 0 } else { x & ((1u64 << s) - 1) };
    // The carries of the R and the R₂ low bits, in one batch.
    let mut widths = vec![r1; n];
    let mut parts = m.to_vec();
    if r2 > 0 {
        widths.extend(std::iter::repeat_n(r2, n));
        parts.extend_from_slice(m);
    }
    // Arithmetic shares over W straight from the comparison's last level (no B2A after it).
    let arith = if r1 == 0 {
        vec![0; widths.len()]
    } else {
        cmp::carry_arith_each(
            party,
            &widths,
            cmp::row_digit_bits(r1, widths.len() as u64),
            w,
            &parts,
        )?
    };
    let c1 = &arith[..n];
    let c2 = if r2 > 0 { &arith[n..] } else { &[][..] };
    let seg = m
        .iter()
        .zip(c1)
        .map(|(&x, &c)| low((x >> r1).wrapping_add(c), t.index_bits))
        .collect();
    let pos = (0..n)
        .map(|q| {
            let f = low(m[q] >> r2, d);
            let mut r = w.sub(f, w.mul(1u64 << d, c1[q]));
            if r2 > 0 {
                r = w.add(r, c2[q]);
            }
            r
        })
        .collect();
    Ok((seg, pos))
}

/// This party's shares over Z_2^64 of `semantics::inv_pow(v_q, t)` for every shared v_q (shares
/// over Z_2^64). Precondition, which the caller guarantees (it cannot be checked on shares):
/// t.v_min ≤ v_q < 2^B. Outside it the output is unspecified, and nothing more is revealed.
pub fn inv_pow<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    t: &InvTables,
    v: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let b = t.in_bits;
    let size = 1usize << t.index_bits;
    if !(2..=62).contains(&b)
        || t.scale.len() != b as usize
        || t.intercept.len() != size
        || t.slope.len() != size
        || t.index_bits + t.pos_bits >= b
        || t.out_shift >= WIDE
    {
        return Err(ProtocolError::Invalid(format!(
            "inv_pow: malformed tables (B = {b}, T = {}, D = {}, {} scales)",
            t.index_bits,
            t.pos_bits,
            t.scale.len()
        )));
    }
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let w = Ring::new(WIDE)?;
    let bs = b as usize;
    let (e, leading_last) = leading_bit(party, b, v)?;
    let shifted: Vec<u64> = v
        .iter()
        .flat_map(|&x| (0..b).map(move |j| w.mul(x, 1u64 << (b - 1 - j))))
        .collect();
    let m = select(party, leading_last, &e, &shifted, bs)?;
    let (seg, pos) = segment_position(party, t, &m)?;
    let as_ring = |tab: &[i64]| tab.iter().map(|&x| x as u64).collect::<Vec<u64>>();
    let (c, s) = (as_ring(&t.intercept), as_ring(&t.slope));
    let looked = lut(party, w, &[&c, &s], &seg)?;
    let prod = mul::mul(party, w, &looked[1], &pos)?;
    let y: Vec<u64> = looked[0]
        .iter()
        .zip(&prod)
        .map(|(&c, &p)| w.sub(w.mul(c, 1u64 << t.pos_bits), p))
        .collect();
    let scaled: Vec<u64> = y
        .iter()
        .flat_map(|&yq| t.scale.iter().map(move |&f| w.mul(f as u64, yq)))
        .collect();
    // The product's last flight is the server's.
    let q = select(party, Role::Server, &e, &scaled, bs)?;
    // Per row: the digit width with the fewest levels (`cmp::row_digit_bits`).
    let shifts = vec![t.out_shift; q.len()];
    let digits = cmp::row_digit_bits(t.out_shift, q.len() as u64);
    // 0 ≤ F[k]·y < 2^62 leaves the headroom 2^63 − 2^G: the carry's B2A and the extension in
    // one call.
    trunc::trunc_headroom_each(party, Role::Server, w, &shifts, digits, &q)
}
