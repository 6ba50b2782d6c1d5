//! Faithful truncation and signed extension of shared values: `trunc` (arithmetic right shift by
//! s, exactly ⌊x / 2^s⌋ on the signed lift, the compiler's `trunc_floor`), `trunc_reduce`
//! (⌊x / 2^s⌋ reduced to ℓ − s bits) and `extend` (signed extension from Z_2^m to Z_2^n, n > m).
//! SIRNN §IV-B (Π_TR, truncate-and-reduce: TR(x, s) = u_0 + u_1 + wrap(v_0, v_1, 2^s), one wrap
//! on s bits; the arithmetic shift via the bias x + 2^(ℓ−1)) and §IV-A (Π_SExt, signed extension
//! by one wrap on m bits). Our arithmetic shift is TR followed by SExt instead of SIRNN's
//! Algorithm 2 (LRS with Wrap&All1s and an AND); both spend wraps on s and ℓ − s bits. Cheetah §2
//! defines the same faithful truncation; its MSB-known shortcut (§4.2.2) is
//! [`extend_nonnegative`] / [`trunc_nonnegative`] below, for values known to be non-negative.
//!
//! **Bias.** Every protocol first moves the signed value into the unsigned range: u = x + 2^(k−1)
//! (k the input width; the server adds the constant to its share). For a signed x ∈ [−2^(k−1),
//! 2^(k−1)), u ∈ [0, 2^k) as an integer, and ⌊u / 2^s⌋ = ⌊x / 2^s⌋ + 2^(k−1−s) exactly
//! (2^(k−1) is a multiple of 2^s when s ≤ k − 1), so unsigned operations on u are exact and the
//! bias is removed at the end, again by the server alone.
//!
//! **Truncate-and-reduce** ([`trunc_reduce`]). Write u_P = hi_P·2^s + lo_P (lo_P < 2^s). Then
//! ⌊u / 2^s⌋ ≡ hi_S + hi_C + c (mod 2^(ℓ−s)) with c = 1{lo_S + lo_C ≥ 2^s}: the wrap of the whole
//! sum is a multiple of 2^ℓ and vanishes mod 2^(ℓ−s). c = 1{lo_S > 2^s − 1 − lo_C} is one
//! millionaires' on s bits ([`cmp::millionaire`], server a = lo_S, client b = 2^s − 1 − lo_C),
//! its XOR shares turned into shares over Z_2^(ℓ−s) by [`b2a`].
//!
//! **Signed extension** ([`extend`]). For u = u_S + u_C mod 2^m (shares < 2^m), as integers
//! u = u_S + u_C − 2^m·w with w = 1{u_S + u_C ≥ 2^m} = 1{u_S > 2^m − 1 − u_C}: one millionaires' on
//! m bits and one B2A over Z_2^n; each party's share of u over Z_2^n is u_P − 2^m·w_P (the server
//! also subtracts the bias 2^(m−1)).
//!
//! **Arithmetic shift** ([`trunc`]). trunc_reduce by s, then extend from ℓ − s back to ℓ bits: the
//! reduced value is the (ℓ−s)-bit two's complement of ⌊x / 2^s⌋, which lies in
//! [−2^(ℓ−1−s), 2^(ℓ−1−s)), so its signed extension is ⌊x / 2^s⌋ in Z_2^ℓ exactly. The two
//! millionaires' cover s and ℓ − s bits: ℓ bits in all, the cost of a single wrap computation on
//! ℓ bits, for both the carry and the wrap.
//!
//! **Extension of a value known to be non-negative** ([`extend_nonnegative`]). If the caller
//! knows 0 ≤ x < 2^(m−1) (msb(x) = 0), the wrap w = 1{x_S + x_C ≥ 2^m} needs no comparison: with
//! p = msb(x_S), q = msb(x_C), w = p ∨ q (both msbs set: the sum is ≥ 2^m; exactly one set: the
//! sum is ≥ 2^(m−1) > x, so it cannot be x and must have wrapped; neither: the sum is < 2^m).
//! Over the integers w = p + q − p·q, and p·q is a product of two private bits: one COT over
//! Z_2^(n−m) with the server as sender, correlation p, the client choosing q, gives t (server)
//! and t + p·q (client). Each party's share of x over Z_2^n is x_P − 2^m·w_P with w_S = p + t,
//! w_C = q − (t + p·q) (only w mod 2^(n−m) matters, as it is multiplied by 2^m). Cheetah §4.2.2
//! (the wrap of an MSB-known value is msb(x_0) ∨ msb(x_1), one OT instead of a millionaires').
//! [`trunc_nonnegative`] is [`trunc_reduce`] followed by this extension from ℓ − s back to ℓ
//! bits (⌊x / 2^s⌋ < 2^(ℓ−1−s) has its msb known to be zero in Z_2^(ℓ−s)).
//!
//! **Cost** per element, with M(k) the millionaires' cost on k bits ([`cmp`]: q = ⌈k/4⌉ leaves of
//! 68 bytes on IKNP and the tree's node OTs) and B(k) = 16 + k/8 bytes the B2A over Z_2^k:
//! - trunc_reduce: M(s) + B(ℓ − s); flights: the millionaires' ([`cmp`]) + 2 (B2A);
//! - extend m → n: M(m) + B(n); same flight count with q = ⌈m/4⌉;
//! - trunc: M(s) + B(ℓ−s) + M(ℓ−s) + B(ℓ), the two sequentially;
//! - extend_nonnegative m → n: one COT over Z_2^(n−m), λ + n − m bits, 2 flights;
//! - trunc_nonnegative: M(s) + B(ℓ−s) + λ + s bits.
//!
//! At ℓ = 37, s = 12 on IKNP: M(12) = 3·68 + 84 = 288 (a tree of one node of three digits,
//! 5λ + 32 bits), B(25) = 19.125, M(25) = 7·68 + 332 = 808 (three pairs of 4λ + 32 bits, then
//! a node of four, 7λ + 128), B(37) = 20.625: 1,135.75 bytes per element (IKNP padding aside);
//! 14 flights (on silent OT at ℓ = 35 too, `ciphergpt bench protocols`). s = 0 is the identity,
//! free. trunc_nonnegative at ℓ = 37, s = 12: 288 + 19.125 + 16 + 1.5 = 324.625 bytes per
//! element (the extension's 17.5 bytes instead of 828.625).
//!
//! **Security** (semi-honest). Between the sub-protocols each party computes only locally on its
//! own shares, and every message exchanged belongs to a millionaires' or a B2A call whose views are
//! simulatable from that party's inputs and outputs ([`cmp`], [`b2a`]); the outputs of those calls
//! are fresh XOR or additive shares, uniform on their own. By sequential composition the whole
//! protocol reveals nothing beyond each party's output share, which is itself uniform (it contains
//! the B2A output share, masked by a fresh COT pad). [`extend_nonnegative`] adds one COT: the
//! client receives its correction, masked as in [`b2a`] (a pad it cannot compute when it chooses
//! 0, the fresh t when it chooses 1); the server receives only the IKNP message. Its output
//! shares are uniform given the input shares (t is fresh). If the caller's promise msb(x) = 0
//! is false the result is wrong by a multiple of 2^m, but the messages are the same, so nothing
//! more is revealed.

use super::b2a::{b2a, bit_products, bit_products_each};
use super::cmp;
use super::shares::Ring;
use super::{Party, ProtocolError};
use crate::crypto::pack::mask;
use crate::net::{Channel, Role};

/// The server's share of 2^(k−1) (the bias), the client's 0.
fn bias(role: Role, k: u32) -> u64 {
    match role {
        Role::Server => 1u64 << (k - 1),
        Role::Client => 0,
    }
}

/// Shares over Z_2^(ℓ−s) of ⌊x / 2^s⌋ (signed lift of the shared x ∈ Z_2^ℓ), 1 ≤ s ≤ ℓ − 1.
pub fn trunc_reduce<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    s: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let shifts = vec![s; x.len()];
    trunc_reduce_each(party, ring, &shifts, cmp::DEFAULT_DIGIT_BITS, x)
}

/// [`trunc_reduce`] with a shift per element: shares of ⌊x_i / 2^(s_i)⌋ reduced mod 2^(ℓ−s_i),
/// 1 ≤ s_i ≤ ℓ − 1. The carries of all elements come from one millionaires' batch on max s_i
/// bits (each s_i-bit low part shifted up to that width, which keeps its carry) and one B2A over
/// Z_2^(ℓ − min s_i), so the flights are those of the widest shift alone; with equal shifts and
/// `digits` = 4 the bytes are [`trunc_reduce`]'s. `digits` is the millionaires' digit width
/// (wider digits: fewer tree levels, more bytes; see `cmp::cheapest_digit_bits`).
pub fn trunc_reduce_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    shifts: &[u32],
    digits: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if let Some(&s) = shifts.iter().find(|&&s| s == 0 || s >= ring.bits) {
        return Err(ProtocolError::Invalid(format!(
            "trunc_reduce: shift {s} is not in 1..={} for a {}-bit ring",
            ring.bits.saturating_sub(1),
            ring.bits
        )));
    }
    if shifts.len() != x.len() {
        return Err(ProtocolError::Invalid(format!(
            "trunc_reduce: {} shifts for {} values",
            shifts.len(),
            x.len()
        )));
    }
    let Some(&least) = shifts.iter().min() else {
        return Ok(Vec::new());
    };
    let u: Vec<u64> = x
        .iter()
        .map(|&v| ring.add(v, bias(party.role, ring.bits)))
        .collect();
    let c = cmp::carry_each(party, shifts, digits, &u)?;
    let c = b2a(party, Ring::new(ring.bits - least)?, &c)?;
    Ok(u.iter()
        .zip(c)
        .zip(shifts)
        .map(|((&v, c), &s)| {
            let out = ring.bits - s;
            (v >> s).wrapping_add(c).wrapping_sub(bias(party.role, out)) & mask(out)
        })
        .collect())
}

/// [`trunc_reduce_each`] reduced further, to `out` (|out| ≤ ℓ − max s_i): shares of
/// ⌊x_i / 2^(s_i)⌋ mod 2^|out|, for a caller that needs no more bits (LayerNorm's last shift,
/// whose result lives in the plan's ring). The carries come in arithmetic shares over `out`
/// from [`cmp::carry_arith_each`], whose last tree level is also the B2A: 2 flights fewer.
pub fn trunc_reduce_to_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    shifts: &[u32],
    digits: u32,
    out: Ring,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if let Some(&s) = shifts
        .iter()
        .find(|&&s| s == 0 || s >= ring.bits || out.bits + s > ring.bits)
    {
        return Err(ProtocolError::Invalid(format!(
            "trunc_reduce_to: shift {s} does not leave {} bits of a {}-bit ring",
            out.bits, ring.bits
        )));
    }
    if shifts.len() != x.len() {
        return Err(ProtocolError::Invalid(format!(
            "trunc_reduce_to: {} shifts for {} values",
            shifts.len(),
            x.len()
        )));
    }
    let u: Vec<u64> = x
        .iter()
        .map(|&v| ring.add(v, bias(party.role, ring.bits)))
        .collect();
    let c = cmp::carry_arith_each(party, shifts, digits, out, &u)?;
    Ok(u.iter()
        .zip(c)
        .zip(shifts)
        .map(|((&v, c), &s)| {
            let unbias = bias(party.role, ring.bits - s);
            out.reduce((v >> s).wrapping_add(c).wrapping_sub(unbias))
        })
        .collect())
}

/// Signed extension: shares over `to` (Z_2^n) of the signed lift of x ∈ `from` (Z_2^m), n > m.
pub fn extend<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    from: Ring,
    to: Ring,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if to.bits <= from.bits {
        return Err(ProtocolError::Invalid(format!(
            "extend: target width {} is not above the source width {}",
            to.bits, from.bits
        )));
    }
    let m = from.bits;
    let u: Vec<u64> = x
        .iter()
        .map(|&v| from.add(v, bias(party.role, m)))
        .collect();
    let w = cmp::carry(party, m, cmp::DEFAULT_DIGIT_BITS, &u)?;
    let w = b2a(party, to, &w)?;
    let unbias = bias(party.role, m);
    Ok(u.iter()
        .zip(w)
        .map(|(&v, w)| to.sub(to.sub(v, to.mul(1u64 << m, w)), unbias))
        .collect())
}

/// Shares over Z_2^ℓ of ⌊x / 2^s⌋ = `trunc_floor(x, s)` (signed lift of the shared x),
/// 0 ≤ s ≤ ℓ − 1 (s = 0: the shares themselves, no communication).
pub fn trunc<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    s: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if s == 0 {
        return Ok(x.iter().map(|&v| ring.reduce(v)).collect());
    }
    let r = trunc_reduce(party, ring, s, x)?;
    extend(party, Ring::new(ring.bits - s)?, ring, &r)
}

/// Extension of a value known to be non-negative: shares over `to` (Z_2^n) of x ∈ `from`
/// (Z_2^m), n > m, for x with 0 ≤ x < 2^(m−1) (the caller guarantees it; it is not checkable on
/// shares). One COT over Z_2^(n−m) instead of [`extend`]'s millionaires'.
pub fn extend_nonnegative<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    from: Ring,
    to: Ring,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if to.bits <= from.bits {
        return Err(ProtocolError::Invalid(format!(
            "extend_nonnegative: target width {} is not above the source width {}",
            to.bits, from.bits
        )));
    }
    extend_nonnegative_each(party, &vec![from.bits; x.len()], to, x)
}

/// [`extend_nonnegative`] with a source width m_i < n per element (x_i's shares are read mod
/// 2^(m_i)): one COT over Z_2^(n − min m_i) for all, so the flights of one extension.
pub fn extend_nonnegative_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    from: &[u32],
    to: Ring,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if from.len() != x.len() || from.iter().any(|&m| m == 0 || m >= to.bits) {
        return Err(ProtocolError::Invalid(format!(
            "extend_nonnegative: {} source widths for {} values, each must be in 1..{}",
            from.len(),
            x.len(),
            to.bits
        )));
    }
    let Some(&least) = from.iter().min() else {
        return Ok(Vec::new());
    };
    let k = to.bits - least;
    let wide = Ring::new(k)?;
    let msb: Vec<bool> = x
        .iter()
        .zip(from)
        .map(|(&v, &m)| (v >> (m - 1)) & 1 == 1)
        .collect();
    // w = p + q − p·q mod 2^(n−m): w_P = msb(x_P) − (P's share of p·q).
    let pq = bit_products(party, wide, &msb)?;
    let w: Vec<u64> = msb
        .iter()
        .zip(pq)
        .map(|(&b, t)| wide.sub(b as u64, t))
        .collect();
    Ok(x.iter()
        .zip(w)
        .zip(from)
        .map(|((&v, w), &m)| to.sub(v & mask(m), to.mul(1u64 << m, w)))
        .collect())
}

/// Shares over Z_2^ℓ of ⌊x / 2^s⌋ for a shared x known to lie in [0, 2^(ℓ−1)) (the caller
/// guarantees it), 0 ≤ s ≤ ℓ − 1: [`trunc_reduce`] then [`extend_nonnegative`]. Equal to
/// [`trunc`] on such inputs, for M(s) + B(ℓ − s) + λ + s bits instead of a second millionaires'.
pub fn trunc_nonnegative<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    s: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if s == 0 {
        return Ok(x.iter().map(|&v| ring.reduce(v)).collect());
    }
    let shifts = vec![s; x.len()];
    trunc_nonnegative_each(party, ring, &shifts, cmp::DEFAULT_DIGIT_BITS, x)
}

/// [`trunc_nonnegative`] with a shift per element, 1 ≤ s_i ≤ ℓ − 1, and the millionaires' digit
/// width: [`trunc_reduce_each`] then [`extend_nonnegative_each`], in the flights of the widest
/// shift alone.
pub fn trunc_nonnegative_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    shifts: &[u32],
    digits: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let r = trunc_reduce_each(party, ring, shifts, digits, x)?;
    let widths: Vec<u32> = shifts.iter().map(|&s| ring.bits - s).collect();
    extend_nonnegative_each(party, &widths, ring, &r)
}

/// Shares of ⌊x/2^s⌋ (the plan's shift of a product's accumulator) for shares of x with
/// −2^(ℓ−2) ≤ x < 2^(ℓ−2) − 2^s.
///
/// The compiler chooses ℓ with two bits of margin over the largest accumulator it measures
/// (`RING_MARGIN_BITS`, docs/plan.md): calibration saw |x| < 2^(ℓ−3), well inside that range,
/// the precondition the GELU protocol already relies on. It cannot be checked on shares. Then
/// y = x + 2^(ℓ−2) lies in [0, 2^(ℓ−1) − 2^s), and ⌊x/2^s⌋ = ⌊y/2^s⌋ − 2^(ℓ−2−s) exactly,
/// because 2^(ℓ−2) is a multiple of 2^s. So [`trunc_headroom_each`] gives the plan's value (for
/// s = ℓ − 2, [`trunc_nonnegative`], whose range is x < 2^(ℓ−2)). It is Cheetah's MSB-known
/// extension: one COT instead of a millionaires' on ℓ − s bits. The server adds and removes the
/// offset. The messages (a millionaires' and COTs) have the same form whatever x is, so nothing
/// more is revealed if the precondition fails, but then the result is wrong. For s = 0 or s > ℓ − 2,
/// [`trunc`], which has no precondition. At ℓ = 35, s = 15 on silent OT: 41.4 bytes per
/// element and 6 flights (the client's), against 78.1 and 14 for [`trunc`] (2^12 elements,
/// test `exec::trunc_margin`). The executor shifts every product with it.
pub fn trunc_within_margin<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    s: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    trunc_within_margin_from(party, Role::Server, ring, s, x)
}

/// [`trunc_within_margin`] whose comparison `first` begins ([`cmp::millionaire_from`]): the
/// executor passes the party that sent the product's last flight, so the truncation continues
/// it (the client after a prepared or an attention product, the server after a product on
/// encrypted input).
pub fn trunc_within_margin_from<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    ring: Ring,
    s: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if s == 0 || s + 2 > ring.bits {
        return trunc(party, ring, s, x);
    }
    trunc_within_margin_each(party, first, ring, &vec![s; x.len()], x)
}

/// [`trunc_within_margin_from`] with a shift per element, 1 ≤ s_i ≤ ℓ − 2, in the flights of the
/// widest shift alone ([`trunc_headroom_each`], or [`trunc_nonnegative_each`], begun by the
/// server whatever `first` is, if some s_i is ℓ − 2).
pub fn trunc_within_margin_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    ring: Ring,
    shifts: &[u32],
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if let Some(&s) = shifts.iter().find(|&&s| s == 0 || s + 2 > ring.bits) {
        return Err(ProtocolError::Invalid(format!(
            "trunc_within_margin: shift {s} is not in 1..={} for a {}-bit ring",
            ring.bits.saturating_sub(2),
            ring.bits
        )));
    }
    let server = party.role == Role::Server;
    let offset = 1u64 << (ring.bits - 2);
    let y: Vec<u64> = if server {
        x.iter().map(|&v| ring.add(v, offset)).collect()
    } else {
        x.to_vec()
    };
    let digits = cmp::DEFAULT_DIGIT_BITS;
    let mut z = if shifts.iter().all(|&s| s + 3 <= ring.bits) {
        trunc_headroom_each(party, first, ring, shifts, digits, &y)?
    } else {
        trunc_nonnegative_each(party, ring, shifts, digits, &y)?
    };
    if server {
        for (v, &s) in z.iter_mut().zip(shifts) {
            *v = ring.sub(*v, offset >> s);
        }
    }
    Ok(z)
}

/// Shares over Z_2^ℓ of ⌊y_i / 2^(s_i)⌋ for a shared y_i known to lie in [0, 2^(ℓ−1) − 2^(s_i))
/// (the caller guarantees it), 1 ≤ s_i ≤ ℓ − 2: [`trunc_nonnegative_each`]'s result with its B2A
/// and its extension in one call of [`bit_products_each`], so 2 flights fewer.
///
/// The server adds 2^(s_i), so u = y + 2^(s_i) lies in [2^(s_i), 2^(ℓ−1)). With u_P =
/// hi_P·2^s + lo_P and c = 1{lo_S + lo_C ≥ 2^s} (one millionaires' batch, [`cmp::carry_each`]),
/// hi_S + hi_C ≡ r (mod 2^(ℓ−s)) for r = ⌊u/2^s⌋ − c, which lies in [0, 2^(ℓ−1−s)) because
/// ⌊u/2^s⌋ ≥ 1: its msb is known to be zero before c is converted, so r's extension to Z_2^ℓ
/// (the wrap p ∨ q of the msbs p, q of hi_S, hi_C; Cheetah §4.2.2) does not wait for c's B2A.
/// Both need a product of a server bit and a client bit (p·q over Z_2^s, which the extension
/// multiplies by 2^(ℓ−s), and c_S·c_C over Z_2^ℓ for the B2A), so one [`bit_products_each`]
/// serves the 2n of them. Then ⌊y/2^s⌋ = r + c − 1.
///
/// Cost: the millionaires' on max s_i bits plus 2n COTs, 2λ + ℓ + s bits per element (the B2A
/// now spans Z_2^ℓ, not Z_2^(ℓ−s): s bits more than [`trunc_nonnegative_each`]); flights: the
/// millionaires' and 2, against its millionaires' and 4.
///
/// Security (semi-honest): the millionaires' and the COT call of [`trunc_nonnegative_each`],
/// batched, whose views are simulatable from each party's inputs and outputs; the outputs are
/// fresh shares. If the caller's range promise fails the result is wrong (by a multiple of
/// 2^(ℓ−s)), but the messages have the same form, so nothing more is revealed.
///
/// `first` begins the millionaires' ([`cmp::millionaire_from`]); the COTs are chosen by its last
/// sender either way.
pub fn trunc_headroom_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    ring: Ring,
    shifts: &[u32],
    digits: u32,
    y: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if shifts.len() != y.len() {
        return Err(ProtocolError::Invalid(format!(
            "trunc_headroom: {} shifts for {} values",
            shifts.len(),
            y.len()
        )));
    }
    if let Some(&s) = shifts.iter().find(|&&s| s == 0 || s + 2 > ring.bits) {
        return Err(ProtocolError::Invalid(format!(
            "trunc_headroom: shift {s} is not in 1..={} for a {}-bit ring",
            ring.bits.saturating_sub(2),
            ring.bits
        )));
    }
    let server = party.role == Role::Server;
    let u: Vec<u64> = y
        .iter()
        .zip(shifts)
        .map(|(&v, &s)| {
            if server {
                ring.add(v, 1u64 << s)
            } else {
                ring.reduce(v)
            }
        })
        .collect();
    let c = cmp::carry_each_from(party, first, shifts, digits, &u)?;
    let hi: Vec<u64> = u.iter().zip(shifts).map(|(&v, &s)| v >> s).collect();
    let mut bits: Vec<bool> = hi
        .iter()
        .zip(shifts)
        .map(|(&h, &s)| (h >> (ring.bits - s - 1)) & 1 == 1)
        .collect();
    bits.extend_from_slice(&c);
    let mut widths = shifts.to_vec();
    widths.extend(std::iter::repeat_n(ring.bits, c.len()));
    let k = shifts.iter().copied().max().unwrap_or(0);
    let chooser = cmp::last_sender_from(first, k, digits, 1);
    let t = bit_products_each(party, chooser, &widths, &bits)?;
    let n = y.len();
    Ok((0..n)
        .map(|i| {
            let m = ring.bits - shifts[i];
            let wrap = ring.sub(bits[i] as u64, t[i]);
            let r = ring.sub(hi[i], ring.mul(1u64 << m, wrap));
            let carry = ring.sub(c[i] as u64, t[n + i].wrapping_mul(2));
            let v = ring.add(r, carry);
            if server {
                ring.sub(v, 1)
            } else {
                v
            }
        })
        .collect())
}
