//! Comparison: the millionaires' protocol on private ℓ-bit inputs and DReLU / MSB of a shared
//! value, with boolean (XOR) output shares. CrypTFlow2 §3 (Algorithm 1, "Π_MILL") and its use for
//! DReLU in §4.1; Cheetah §2.3 / §4 takes both unchanged (with silent OT underneath).
//!
//! **Millionaires** ([`millionaire`]). The server holds a, the client holds b, both < 2^k; the
//! output is XOR shares of 1{a > b}. Split both into q = ⌈k/m⌉ digits of m bits (m = 4 by
//! default). For every digit i the server draws random bits (g_i, e_i) and offers, in a 1-of-2^m
//! OT indexed by the client's digit v, the 2-bit message (g_i ⊕ 1{a_i > v}, e_i ⊕ 1{a_i = v}); the
//! client chooses v = b_i, so the two hold XOR shares of gt_i = 1{a_i > b_i} and eq_i = 1{a_i = b_i}.
//! The digits are then combined pairwise in a log-depth tree, (hi, lo) ↦ (gt_hi ⊕ eq_hi∧gt_lo,
//! eq_hi∧eq_lo) — the two terms of the XOR are never both 1 — with each AND done with a Beaver
//! bit triple (both parties open d = x ⊕ a, e = y ⊕ b; z = c ⊕ d∧b ⊕ e∧a ⊕ d∧e, the last term by
//! the server only). The eq of the lowest node is never used, so it is not computed.
//!
//! **DReLU / MSB** ([`msb`], [`drelu`]). For x = x_S + x_C mod 2^ℓ, msb(x) = msb(x_S) ⊕ msb(x_C) ⊕
//! carry, with carry = 1{x_S mod 2^(ℓ−1) + x_C mod 2^(ℓ−1) ≥ 2^(ℓ−1)} = 1{a > b} for the server's
//! a = x_S mod 2^(ℓ−1) and the client's b = 2^(ℓ−1) − 1 − x_C mod 2^(ℓ−1): one millionaires' on
//! ℓ − 1 bits. DReLU(x) = 1{x ≥ 0 as a signed value} = 1 ⊕ msb(x).
//!
//! **Cost** per comparison of k-bit inputs, with q = ⌈k/m⌉ digits, A = Σ_levels (2·pairs − 1)
//! ANDs (A = 2q − 2 − ⌈log₂ q⌉ roughly; 12 for q = 9), λ = 128:
//! - leaves: q 1-of-2^m OTs of 2-bit messages (Naor–Pinkas, [`crate::crypto::one_of_n`]):
//!   q·(m·λ + 2^m·2) bits;
//! - triples: A·2λ bits on IKNP (two random OTs each, [`crate::crypto::triples`]); nothing on
//!   silent OT, where random OTs are drawn from the pools without a message;
//! - openings: 2 bits per AND per party, one exchange per tree level.
//!
//! DReLU at ℓ = 37 (k = 36, q = 9, A = 12): 9·68 + 12·32 + 12·4/8 = 1,002 bytes per element.
//! Flights: 2 (leaf OTs) + one exchange per tree level, ⌈log₂ q⌉ levels (4 for
//! q = 9). An exchange of at most 32 KiB is simultaneous (one one-way latency), a longer one is
//! sequential, server first (one round trip) — see [`exchange`]. The channel counts 2 flights
//! per party for either kind. On IKNP the triples add 2 flights.
//!
//! **Security** (semi-honest). The client's view of the leaves is its 1-of-N OT output
//! (g_i ⊕ …, e_i ⊕ …), one-time padded by the server's fresh random bits g_i, e_i, and the OT's
//! other ciphertexts, hidden by the OT (128-bit). The server receives only the OT receiver's IKNP
//! messages (PRG-masked). In the tree each party receives the peer's d = x ⊕ a and e = y ⊕ b,
//! masked by the peer's triple shares a, b, which are uniform and used once. The triples
//! themselves come from random OTs in both directions. So every message is masked by fresh
//! randomness or hidden by OT, and each party's output share is uniform on its own.

use rand::RngCore;

use super::b2a::b2a;
use super::shares::{exchange, Ring};
use crate::crypto::iknp::OtPair;
use crate::crypto::pack::{mask, pack, unpack};
use crate::crypto::triples::{bit_triples, BitTriples};
use crate::crypto::Prg;
use crate::net::{Channel, NetError, Role};

// The digit width, the tree's shape and the bytes that choose the width are the cost model's
// (`plan::cost`), so that its estimates and these protocols agree.
pub use ciphergpt_compiler::plan::cost::{
    and_count, cheapest_digit_bits, levels, millionaire_bits, row_digit_bits, DEFAULT_DIGIT_BITS,
    MAX_DIGIT_BITS,
};

/// XOR shares of the carry 1{v_S + v_C ≥ 2^k} for this party's `v` (< 2^k, higher bits ignored):
/// one millionaires' on k bits with m-bit digits (server a = v_S, client b = 2^k − 1 − v_C).
pub fn carry<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    k: u32,
    m: u32,
    v: &[u64],
) -> Result<Vec<bool>, NetError> {
    let mk = if k == 0 { 0 } else { mask(k) };
    let input: Vec<u64> = v
        .iter()
        .map(|&x| match role {
            Role::Server => x & mk,
            Role::Client => mk - (x & mk),
        })
        .collect();
    millionaire(ot, ch, role, k, m, &input)
}

/// [`carry`] with a width per element: 1{v_S + v_C ≥ 2^(k_i)} for every element, by one
/// millionaires' on the widest k with each element's k_i low bits shifted up to it (which keeps
/// its carry), so in the flights of that one comparison.
pub fn carry_each<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    widths: &[u32],
    m: u32,
    v: &[u64],
) -> Result<Vec<bool>, NetError> {
    let Some((k, input)) = carry_inputs(role, widths, m, v)? else {
        return Ok(Vec::new());
    };
    millionaire(ot, ch, role, k, m, &input)
}

/// [`carry_each`] with additive output shares over `out` ([`millionaire_arith`]: the last tree
/// level and the conversion in one 1-out-of-8 OT, 2 flights fewer than a B2A after it).
pub fn carry_arith_each<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    widths: &[u32],
    m: u32,
    out: Ring,
    v: &[u64],
) -> Result<Vec<u64>, NetError> {
    let Some((k, input)) = carry_inputs(role, widths, m, v)? else {
        return Ok(Vec::new());
    };
    millionaire_arith(ot, ch, role, k, m, out, &input)
}

/// The millionaires' width and inputs of [`carry_each`] (None for no elements): each element's
/// k_i low bits shifted up to the widest k, the client's complemented (b = 2^k − 1 − v_C).
fn carry_inputs(
    role: Role,
    widths: &[u32],
    m: u32,
    v: &[u64],
) -> Result<Option<(u32, Vec<u64>)>, NetError> {
    if widths.len() != v.len() {
        return Err(NetError::InvalidArgument(format!(
            "carry: {} widths for {} values",
            widths.len(),
            v.len()
        )));
    }
    let Some(&k) = widths.iter().max() else {
        return Ok(None);
    };
    check_digits(k, m)?;
    let mk = if k == 0 { 0 } else { mask(k) };
    let input = v
        .iter()
        .zip(widths)
        .map(|(&x, &w)| {
            let up = if w == 0 { 0 } else { (x & mask(w)) << (k - w) };
            match role {
                Role::Server => up,
                Role::Client => mk - up,
            }
        })
        .collect();
    Ok(Some((k, input)))
}

/// ANDs of x[i] ∧ y[i] on XOR shares, with triples `t` from index `off`. One exchange.
fn and_shared<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    t: &BitTriples,
    off: usize,
    x: &[bool],
    y: &[bool],
) -> Result<Vec<bool>, NetError> {
    let n = x.len();
    let mut de = Vec::with_capacity(2 * n);
    de.extend(
        x.iter()
            .enumerate()
            .map(|(i, &v)| (v ^ t.get(off + i).0) as u64),
    );
    de.extend(
        y.iter()
            .enumerate()
            .map(|(i, &v)| (v ^ t.get(off + i).1) as u64),
    );
    let theirs = if n == 0 {
        Vec::new()
    } else {
        unpack(&exchange(ch, role, &pack(&de, 1))?, 2 * n, 1)
    };
    Ok((0..n)
        .map(|i| {
            let (a, b, c) = t.get(off + i);
            let d = (de[i] ^ theirs[i]) == 1;
            let e = (de[n + i] ^ theirs[n + i]) == 1;
            c ^ (d & b) ^ (e & a) ^ (role == Role::Server && d && e)
        })
        .collect())
}

fn check_digits(bits: u32, m: u32) -> Result<(), NetError> {
    if bits > 64 {
        return Err(NetError::InvalidArgument(format!(
            "comparison width {bits} is over 64 bits"
        )));
    }
    if !(1..=MAX_DIGIT_BITS).contains(&m) {
        return Err(NetError::InvalidArgument(format!(
            "digit width {m} is not in 1..={MAX_DIGIT_BITS}"
        )));
    }
    Ok(())
}

/// Millionaires' protocol: the server's `mine` is a, the client's is b (each value < 2^bits,
/// 0 ≤ bits ≤ 64); returns this party's XOR share of 1{a > b} per element. `m` is the digit
/// width (see [`DEFAULT_DIGIT_BITS`]).
pub fn millionaire<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    bits: u32,
    m: u32,
    mine: &[u64],
) -> Result<Vec<bool>, NetError> {
    check_inputs(bits, m, mine)?;
    let n = mine.len();
    if bits == 0 || n == 0 {
        return Ok(vec![false; n]);
    }
    let q = bits.div_ceil(m) as usize;
    let triples = bit_triples(ot, ch, role, n * and_count(q))?;
    let (gt, eq) = leaves(ot, ch, role, bits, m, mine)?;
    Ok(combine(ch, role, &triples, n, q, 1, gt, eq)?.0)
}

/// Additive shares over `out` of 1{a > b} for the server's a and the client's b (as
/// [`millionaire`]): the tree stops at its last pair (gt_hi, eq_hi, gt_lo), and one
/// 1-out-of-8 OT turns gt = gt_hi ⊕ eq_hi·gt_lo into arithmetic shares directly — the two terms
/// are never both 1, so gt = gt_hi + eq_hi·gt_lo as integers. The server offers, for each of the
/// client's 3 bits c′, (its bits ⊕ c′ put in that formula) − r with r fresh, and keeps r. That
/// replaces the last level's exchange and a B2A's COT: 2 flights fewer, for 8·|out| − |out|
/// bits more per comparison. One digit (no tree): [`b2a`] of the leaf.
pub fn millionaire_arith<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    bits: u32,
    m: u32,
    out: Ring,
    mine: &[u64],
) -> Result<Vec<u64>, NetError> {
    check_inputs(bits, m, mine)?;
    let n = mine.len();
    if bits == 0 || n == 0 {
        return Ok(vec![0; n]);
    }
    let q = bits.div_ceil(m) as usize;
    if q == 1 {
        let gt = millionaire(ot, ch, role, bits, m, mine)?;
        return b2a(ot, ch, role, out, &gt);
    }
    // Every level but the last (one AND per element there).
    let triples = bit_triples(ot, ch, role, n * (and_count(q) - 1))?;
    let (gt, eq) = leaves(ot, ch, role, bits, m, mine)?;
    let (gt, eq) = combine(ch, role, &triples, n, q, 2, gt, eq)?;
    // Per element: (gt_lo, gt_hi) = gt[2i..2i + 2], eq_hi = eq[2i + 1].
    let own =
        |i: usize| gt[2 * i + 1] as u32 | (eq[2 * i + 1] as u32) << 1 | (gt[2 * i] as u32) << 2;
    const N: usize = 8;
    match role {
        Role::Server => {
            let pads = out.random(&mut Prg::from_entropy(), n);
            let mut msgs = Vec::with_capacity(n * N);
            for (i, &r) in pads.iter().enumerate() {
                let s = own(i);
                msgs.extend((0..N as u32).map(|c| {
                    let x = s ^ c;
                    let val = (x & 1) + ((x >> 1) & (x >> 2) & 1);
                    out.sub(val as u64, r)
                }));
            }
            ot.sender.send_1_of_n(ch, &msgs, N, out.bits)?;
            Ok(pads)
        }
        Role::Client => {
            let choices: Vec<u32> = (0..n).map(own).collect();
            ot.receiver.recv_1_of_n(ch, &choices, N, out.bits)
        }
    }
}

fn check_inputs(bits: u32, m: u32, mine: &[u64]) -> Result<(), NetError> {
    check_digits(bits, m)?;
    if bits > 0 && mine.iter().any(|&v| v & !mask(bits) != 0) {
        return Err(NetError::InvalidArgument(format!(
            "a comparison input is not below 2^{bits}"
        )));
    }
    Ok(())
}

/// The leaves of a millionaires' on `bits`-bit inputs with m-bit digits: XOR shares of
/// gt[i·q + k] = 1{a_k > b_k} and eq[i·q + k] = 1{a_k = b_k} for digit k (k = 0 lowest), by one
/// 1-out-of-2^m OT per digit.
fn leaves<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    bits: u32,
    m: u32,
    mine: &[u64],
) -> Result<(Vec<bool>, Vec<bool>), NetError> {
    let n = mine.len();
    let q = bits.div_ceil(m) as usize;
    let nmsg = 1usize << m;
    let dmask = (1u64 << m) - 1;
    let mut gt = vec![false; n * q];
    let mut eq = vec![false; n * q];
    match role {
        Role::Server => {
            let mut rng = Prg::from_entropy();
            let mut msgs = vec![0u64; n * q * nmsg];
            for i in 0..n {
                for k in 0..q {
                    let r = rng.next_u32();
                    let (g, e) = (r & 1 == 1, r & 2 == 2);
                    gt[i * q + k] = g;
                    eq[i * q + k] = e;
                    let a = (mine[i] >> (k as u32 * m)) & dmask;
                    let base = (i * q + k) * nmsg;
                    for v in 0..nmsg as u64 {
                        msgs[base + v as usize] =
                            (g ^ (a > v)) as u64 | (((e ^ (a == v)) as u64) << 1);
                    }
                }
            }
            ot.sender.send_1_of_n(ch, &msgs, nmsg, 2)?;
        }
        Role::Client => {
            let choices: Vec<u32> = mine
                .iter()
                .flat_map(|&b| (0..q).map(move |k| ((b >> (k as u32 * m)) & dmask) as u32))
                .collect();
            let got = ot.receiver.recv_1_of_n(ch, &choices, nmsg, 2)?;
            for (j, v) in got.into_iter().enumerate() {
                gt[j] = v & 1 == 1;
                eq[j] = v & 2 == 2;
            }
        }
    }
    Ok((gt, eq))
}

/// The tree over `cnt` nodes per element: combine (lo = 2p, hi = 2p + 1) level by level, with
/// the `triples` in order, until `stop` nodes are left (1: the comparison; 2: its last pair).
/// The eq of the lowest node is never used, so it is not computed.
#[allow(clippy::too_many_arguments)]
fn combine<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    triples: &BitTriples,
    n: usize,
    mut cnt: usize,
    stop: usize,
    mut gt: Vec<bool>,
    mut eq: Vec<bool>,
) -> Result<(Vec<bool>, Vec<bool>), NetError> {
    let mut off = 0;
    while cnt > stop {
        let pairs = cnt / 2;
        let next = pairs + cnt % 2;
        // AND operands, element-major: for each pair p, eq_hi ∧ gt_lo, then (p > 0) eq_hi ∧ eq_lo.
        let per = 2 * pairs - 1;
        let mut xs = Vec::with_capacity(n * per);
        let mut ys = Vec::with_capacity(n * per);
        for i in 0..n {
            for p in 0..pairs {
                let (lo, hi) = (i * cnt + 2 * p, i * cnt + 2 * p + 1);
                xs.push(eq[hi]);
                ys.push(gt[lo]);
                if p > 0 {
                    xs.push(eq[hi]);
                    ys.push(eq[lo]);
                }
            }
        }
        let z = and_shared(ch, role, triples, off, &xs, &ys)?;
        off += n * per;
        let mut ngt = vec![false; n * next];
        let mut neq = vec![false; n * next];
        for i in 0..n {
            let mut zi = i * per;
            for p in 0..pairs {
                let hi = i * cnt + 2 * p + 1;
                ngt[i * next + p] = gt[hi] ^ z[zi];
                zi += 1;
                if p > 0 {
                    neq[i * next + p] = z[zi];
                    zi += 1;
                }
            }
            if cnt % 2 == 1 {
                ngt[i * next + pairs] = gt[i * cnt + cnt - 1];
                neq[i * next + pairs] = eq[i * cnt + cnt - 1];
            }
        }
        gt = ngt;
        eq = neq;
        cnt = next;
    }
    Ok((gt, eq))
}

/// XOR shares of msb(x) for shared x ∈ Z_2^ℓ (`x` is this party's share).
pub fn msb<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    x: &[u64],
) -> Result<Vec<bool>, NetError> {
    msb_with(ot, ch, role, ring, DEFAULT_DIGIT_BITS, x)
}

/// [`msb`] with digit width `m`.
pub fn msb_with<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    m: u32,
    x: &[u64],
) -> Result<Vec<bool>, NetError> {
    let k = ring.bits - 1;
    let low = mask(k.max(1)) * (k > 0) as u64;
    let input: Vec<u64> = x
        .iter()
        .map(|&v| match role {
            Role::Server => v & low,
            Role::Client => low - (v & low),
        })
        .collect();
    let carry = millionaire(ot, ch, role, k, m, &input)?;
    Ok(x.iter().zip(carry).map(|(&v, c)| ring.msb(v) ^ c).collect())
}

/// XOR shares of DReLU(x) = 1{x ≥ 0} (signed lift of x ∈ Z_2^ℓ).
pub fn drelu<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    x: &[u64],
) -> Result<Vec<bool>, NetError> {
    drelu_with(ot, ch, role, ring, DEFAULT_DIGIT_BITS, x)
}

/// [`drelu`] with digit width `m`.
pub fn drelu_with<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    m: u32,
    x: &[u64],
) -> Result<Vec<bool>, NetError> {
    let mut s = msb_with(ot, ch, role, ring, m, x)?;
    if role == Role::Server {
        s.iter_mut().for_each(|b| *b = !*b);
    }
    Ok(s)
}
