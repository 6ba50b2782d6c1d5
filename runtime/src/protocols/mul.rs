//! Elementwise products over Z_2^ℓ by correlated OT (Gilboa, CRYPTO 1999, in the COT form of
//! CrypTFlow2 §2.2 / SIRNN §II-B "multiplication via COT"; Cheetah §2.3 uses the same COT_ℓ).
//!
//! **Cross term.** Party A holds a, party B holds b, both in Z_2^ℓ; they want additive shares of
//! a·b. For each bit j of a (j = 0..ℓ−1) they run one correlated OT over Z_2^(ℓ−j): A is the
//! receiver with choice a_j, B the sender with correlation Δ_j = b mod 2^(ℓ−j). B gets a random
//! t_j, A gets t_j + a_j·b mod 2^(ℓ−j). Then Σ_j 2^j·(t_j + a_j·b) − Σ_j 2^j·t_j = a·b mod 2^ℓ
//! (bits ≥ ℓ − j of t_j vanish once multiplied by 2^j, which is why the j-th OT needs only ℓ − j
//! bits). A's share is Σ_j 2^j·(t_j + a_j b), B's is −Σ_j 2^j·t_j.
//!
//! **Product of two shared vectors** ([`mul`]): x·y = x_S·y_S + x_C·y_C + x_S·y_C + x_C·y_S, the
//! first two local, the two cross terms by the above, one in each direction.
//! **Product by a private vector** ([`mul_by_private`]): x·y with y held by one party: x_owner·y
//! local and one cross term x_other·y.
//!
//! **Rows by a scalar** ([`mul_rows`]): x_{r,k}·a_r for a shared scalar a_r per row (LayerNorm's
//! 1/σ, softmax's reciprocal). The cross term a_S·x_C takes one OT per bit j of the chooser's
//! scalar (not per entry): a random OT whose two 128-bit pads p₀, p₁ seed PRG streams of `len`
//! values mod 2^(ℓ−j); the holder keeps t = G(p₀) and sends d = G(p₀) + x_r − G(p₁), the chooser
//! with bit c gets G(p_c) + c·d = t + c·x_r. This is Gilboa's product with the correlation widened
//! from one value to a row (IKNP's "long messages" from short seeds, §3 there).
//!
//! **Cost** per element (IKNP COTs, λ = 128): a cross term is ℓ COTs, i.e. ℓ·λ bits from the
//! chooser plus Σ_{j<ℓ}(ℓ−j) = ℓ(ℓ+1)/2 bits from the holder. [`mul`]: 2ℓλ + ℓ(ℓ+1) bits
//! (= ℓ² + O(ℓ)), 3 flights (S→C u, C→S d and u, S→C d). At ℓ = 37: 2·37·16 + 1406/8
//! ≈ 1,360 bytes. [`mul_by_private`]: ℓλ + ℓ(ℓ+1)/2 bits, 2 flights. [`mul_rows`]: per row
//! 2ℓλ bits plus ℓ(ℓ+1) bits per entry, 3 flights (at ℓ = 64 and rows of 768: 520 bytes per
//! entry against 2,568 for [`mul`]).
//!
//! **Security** (semi-honest). The chooser receives, per OT, the IKNP matrix messages (nothing:
//! it is the OT receiver and sends u) and d_j = t_j + Δ_j − H(K_j ⊕ Δ) mod 2^(ℓ−j); it can
//! compute only H(K_j ⊕ a_j·Δ), so when a_j = 0 the value d_j is masked by H(K_j ⊕ Δ), which is
//! pseudorandom to it (correlation robustness of the tweakable hash, 128-bit), and when a_j = 1
//! it learns t_j + Δ_j, masked by t_j = H(K_j) which it cannot compute. So its outputs are
//! uniform and independent of b. The holder receives only the IKNP column messages
//! u = G(k⁰) ⊕ G(k¹) ⊕ a-bits, one-time padded by a PRG stream it cannot compute (IKNP §3), so it
//! learns nothing of a. The output shares are each uniform given the other party's view, since t
//! is fresh for every OT. In [`mul_rows`] the chooser sees d = G(p₀) + x_r − G(p₁): with c = 0
//! the stream G(p₁) is pseudorandom to it (it never learns p₁; AES-CTR PRG, 128-bit), with c = 1
//! it learns t + x_r masked by G(p₀), which it cannot compute; the holder sees only IKNP's
//! message u.

use rayon::prelude::*;

use super::shares::{pack_widths, packed_len_widths, unpack_widths, Ring};
use crate::crypto::hash::tccr_many;
use crate::crypto::iknp::{CotReceiver, CotSender, OtPair};
use crate::crypto::ot::hash_many;
use crate::crypto::pack::mask;
use crate::crypto::{Block, Prg};
use crate::net::{Channel, NetError, Role};

const PAR_CHUNK: usize = 1 << 12;

fn mask_w(w: u32) -> u64 {
    if w == 0 {
        0
    } else {
        mask(w)
    }
}

/// Correlated OT over Z_2^(w_i), one per entry: returns the sender's random t_i; the receiver
/// gets t_i + b_i·Δ_i mod 2^(w_i). The sender reads the receiver's whole IKNP message before it
/// sends anything, so the two never write at the same time.
pub(crate) fn send_cot_widths<C: Channel + ?Sized>(
    s: &mut CotSender,
    ch: &mut C,
    deltas: &[u64],
    widths: &[u32],
) -> Result<Vec<u64>, NetError> {
    assert_eq!(deltas.len(), widths.len(), "length mismatch");
    let n = deltas.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let tweak = s.counter;
    let k = s.send_cot(ch, n)?;
    let delta = s.delta();
    let mut t = vec![0u64; n];
    let mut d = vec![0u64; n];
    k.par_chunks(PAR_CHUNK)
        .zip(t.par_chunks_mut(PAR_CHUNK))
        .zip(d.par_chunks_mut(PAR_CHUNK))
        .enumerate()
        .for_each(|(c, ((kc, tc), dc))| {
            let base = c * PAR_CHUNK;
            let mut p0: Vec<Block> = kc.to_vec();
            let mut p1: Vec<Block> = kc.iter().map(|&x| x ^ delta).collect();
            tccr_many(&mut p0, tweak + base as u64);
            tccr_many(&mut p1, tweak + base as u64);
            for j in 0..kc.len() {
                let m = mask_w(widths[base + j]);
                let x = p0[j].low() & m;
                tc[j] = x;
                dc[j] = x.wrapping_add(deltas[base + j]).wrapping_sub(p1[j].low()) & m;
            }
        });
    ch.send(&pack_widths(&d, widths))?;
    ch.flush()?;
    Ok(t)
}

/// The receiver's side of [`send_cot_widths`].
pub(crate) fn recv_cot_widths<C: Channel + ?Sized>(
    r: &mut CotReceiver,
    ch: &mut C,
    choices: &[bool],
    widths: &[u32],
) -> Result<Vec<u64>, NetError> {
    assert_eq!(choices.len(), widths.len(), "length mismatch");
    if choices.is_empty() {
        return Ok(Vec::new());
    }
    let tweak = r.counter;
    let mut pads = r.recv_cot(ch, choices)?;
    hash_many(&mut pads, tweak);
    let d = unpack_widths(&ch.recv_vec(packed_len_widths(widths))?, widths);
    Ok(pads
        .iter()
        .zip(choices)
        .zip(d.iter().zip(widths))
        .map(|((p, &c), (&d, &w))| p.low().wrapping_add(if c { d } else { 0 }) & mask_w(w))
        .collect())
}

/// Widths ℓ, ℓ−1, …, 1 for each of `n` elements (element-major).
fn gilboa_widths(ring: Ring, n: usize) -> Vec<u32> {
    let l = ring.bits;
    (0..n).flat_map(|_| (0..l).map(move |j| l - j)).collect()
}

/// Cross term, chooser side: shares of a·b where this party holds `a` (bits as OT choices).
fn cross_choose<C: Channel + ?Sized>(
    r: &mut CotReceiver,
    ch: &mut C,
    ring: Ring,
    a: &[u64],
) -> Result<Vec<u64>, NetError> {
    let l = ring.bits as usize;
    let choices: Vec<bool> = a
        .iter()
        .flat_map(|&v| (0..l).map(move |j| (v >> j) & 1 == 1))
        .collect();
    let got = recv_cot_widths(r, ch, &choices, &gilboa_widths(ring, a.len()))?;
    Ok(fold_shifted(ring, &got, false))
}

/// Cross term, holder side: shares of a·b where this party holds `b` (the correlation).
fn cross_hold<C: Channel + ?Sized>(
    s: &mut CotSender,
    ch: &mut C,
    ring: Ring,
    b: &[u64],
) -> Result<Vec<u64>, NetError> {
    let l = ring.bits;
    let deltas: Vec<u64> = b
        .iter()
        .flat_map(|&v| (0..l).map(move |j| v & mask(l - j)))
        .collect();
    let t = send_cot_widths(s, ch, &deltas, &gilboa_widths(ring, b.len()))?;
    Ok(fold_shifted(ring, &t, true))
}

/// Σ_j 2^j·v[i·ℓ + j] mod 2^ℓ per element, negated if `negate`.
fn fold_shifted(ring: Ring, v: &[u64], negate: bool) -> Vec<u64> {
    let l = ring.bits as usize;
    v.chunks_exact(l)
        .map(|c| {
            let s = c
                .iter()
                .enumerate()
                .fold(0u64, |acc, (j, &x)| acc.wrapping_add(x << j));
            if negate {
                ring.neg(s)
            } else {
                ring.reduce(s)
            }
        })
        .collect()
}

fn check_inputs(ring: Ring, xs: &[&[u64]]) -> Result<(), NetError> {
    let n = xs[0].len();
    for x in xs {
        if x.len() != n {
            return Err(NetError::InvalidArgument(format!(
                "operands of different lengths ({} and {})",
                n,
                x.len()
            )));
        }
        if x.iter().any(|&v| v & !ring.mask() != 0) {
            return Err(NetError::InvalidArgument(format!(
                "an operand is not reduced mod 2^{}",
                ring.bits
            )));
        }
    }
    Ok(())
}

/// Shares of a·b for one cross term: `chooser` holds a (this party passes it if it is the
/// chooser), the other party holds b. Both pass their own value as `mine`.
pub fn cross_term<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    chooser: Role,
    mine: &[u64],
) -> Result<Vec<u64>, NetError> {
    check_inputs(ring, &[mine])?;
    if role == chooser {
        cross_choose(&mut ot.receiver, ch, ring, mine)
    } else {
        cross_hold(&mut ot.sender, ch, ring, mine)
    }
}

/// Elementwise product of two shared vectors: `x`, `y` are this party's shares; returns its share
/// of x·y mod 2^ℓ. Both parties call it with their own role.
pub fn mul<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    x: &[u64],
    y: &[u64],
) -> Result<Vec<u64>, NetError> {
    check_inputs(ring, &[x, y])?;
    // Term A = x_S·y_C (server chooses), then term B = x_C·y_S (client chooses).
    let (a, b) = match role {
        Role::Server => {
            let a = cross_choose(&mut ot.receiver, ch, ring, x)?;
            (a, cross_hold(&mut ot.sender, ch, ring, y)?)
        }
        Role::Client => {
            let a = cross_hold(&mut ot.sender, ch, ring, y)?;
            (a, cross_choose(&mut ot.receiver, ch, ring, x)?)
        }
    };
    Ok((0..x.len())
        .map(|i| ring.add(ring.add(ring.mul(x[i], y[i]), a[i]), b[i]))
        .collect())
}

/// Product of a shared vector by a vector private to `owner`: `x` is this party's share, `y` is
/// `Some` at the owner (ignored elsewhere). Returns this party's share of x·y mod 2^ℓ.
pub fn mul_by_private<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    owner: Role,
    x: &[u64],
    y: Option<&[u64]>,
) -> Result<Vec<u64>, NetError> {
    if role == owner {
        let y = y.ok_or_else(|| {
            NetError::InvalidArgument("the owner of the private operand must pass it".into())
        })?;
        check_inputs(ring, &[x, y])?;
        let c = cross_hold(&mut ot.sender, ch, ring, y)?;
        Ok((0..x.len())
            .map(|i| ring.add(ring.mul(x[i], y[i]), c[i]))
            .collect())
    } else {
        check_inputs(ring, &[x])?;
        cross_choose(&mut ot.receiver, ch, ring, x)
    }
}

/// Widths ℓ − j of the OT for bit j of each row's scalar, repeated over the row's `len` entries
/// (row-major, then bit, then entry).
fn row_widths(ring: Ring, rows: usize, len: usize) -> Vec<u32> {
    let l = ring.bits;
    (0..rows)
        .flat_map(|_| (0..l).flat_map(move |j| std::iter::repeat_n(l - j, len)))
        .collect()
}

/// Cross term with a scalar per row, chooser side: shares of a_r·b_{r,k} where this party holds
/// the scalars `a` (one per row) and the peer the rows b (`len` entries each).
fn rows_choose<C: Channel + ?Sized>(
    r: &mut CotReceiver,
    ch: &mut C,
    ring: Ring,
    a: &[u64],
    len: usize,
) -> Result<Vec<u64>, NetError> {
    let l = ring.bits as usize;
    let choices: Vec<bool> = a
        .iter()
        .flat_map(|&v| (0..l).map(move |j| (v >> j) & 1 == 1))
        .collect();
    let mut out = vec![0u64; a.len() * len];
    if out.is_empty() {
        return Ok(out);
    }
    let tweak = r.counter;
    let mut pads = r.recv_cot(ch, &choices)?;
    hash_many(&mut pads, tweak);
    let widths = row_widths(ring, a.len(), len);
    let d = unpack_widths(&ch.recv_vec(packed_len_widths(&widths))?, &widths);
    out.par_chunks_mut(len)
        .zip(d.par_chunks(l * len))
        .enumerate()
        .for_each(|(row, (o, dr))| {
            for j in 0..l {
                let (pad, c) = (pads[row * l + j], choices[row * l + j]);
                let w = ring.bits - j as u32;
                let stream = Prg::new(pad).values(len, w);
                for ((ok, &s), &dk) in o.iter_mut().zip(&stream).zip(&dr[j * len..(j + 1) * len]) {
                    let y = s.wrapping_add(if c { dk } else { 0 }) & mask_w(w);
                    *ok = ok.wrapping_add(y << j);
                }
            }
            o.iter_mut().for_each(|v| *v = ring.reduce(*v));
        });
    Ok(out)
}

/// Cross term with a scalar per row, holder side: this party holds the rows `b` (`len` entries
/// each); returns its shares of a_r·b_{r,k}.
fn rows_hold<C: Channel + ?Sized>(
    s: &mut CotSender,
    ch: &mut C,
    ring: Ring,
    b: &[u64],
    len: usize,
) -> Result<Vec<u64>, NetError> {
    let l = ring.bits as usize;
    let rows = b.len() / len.max(1);
    let mut out = vec![0u64; b.len()];
    if out.is_empty() {
        return Ok(out);
    }
    let tweak = s.counter;
    let k = s.send_cot(ch, rows * l)?;
    let mut p0 = k.clone();
    let mut p1: Vec<Block> = k.iter().map(|&x| x ^ s.delta()).collect();
    tccr_many(&mut p0, tweak);
    tccr_many(&mut p1, tweak);
    let mut d = vec![0u64; rows * l * len];
    out.par_chunks_mut(len)
        .zip(d.par_chunks_mut(l * len))
        .zip(b.par_chunks(len))
        .enumerate()
        .for_each(|(row, ((o, dr), br))| {
            for j in 0..l {
                let w = ring.bits - j as u32;
                let m = mask_w(w);
                let t = Prg::new(p0[row * l + j]).values(len, w);
                let u = Prg::new(p1[row * l + j]).values(len, w);
                for k in 0..len {
                    dr[j * len + k] = t[k].wrapping_add(br[k]).wrapping_sub(u[k]) & m;
                    o[k] = o[k].wrapping_sub(t[k] << j);
                }
            }
            o.iter_mut().for_each(|v| *v = ring.reduce(*v));
        });
    ch.send(&pack_widths(&d, &row_widths(ring, rows, len)))?;
    ch.flush()?;
    Ok(out)
}

/// Product of shared rows by a shared scalar per row: `x` holds this party's shares of the rows
/// (`len` entries each, concatenated), `a` its shares of one scalar per row; returns its shares of
/// a_r·x_{r,k} mod 2^ℓ. The two cross terms a_S·x_C and a_C·x_S use one random OT per bit of the
/// scalar, whose pads seed PRG streams of `len` corrections: per row ℓλ + len·ℓ(ℓ+1)/2 bits in
/// each direction instead of len·(ℓλ + ℓ(ℓ+1)/2) for [`mul`] on the repeated scalar.
pub fn mul_rows<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    x: &[u64],
    a: &[u64],
    len: usize,
) -> Result<Vec<u64>, NetError> {
    check_inputs(ring, &[x])?;
    check_inputs(ring, &[a])?;
    if len == 0 || x.len() != a.len() * len {
        return Err(NetError::InvalidArgument(format!(
            "mul_rows: {} values are not {} rows of {len}",
            x.len(),
            a.len()
        )));
    }
    // Term A = a_S·x_C (server chooses), then term B = a_C·x_S (client chooses).
    let (ta, tb) = match role {
        Role::Server => {
            let ta = rows_choose(&mut ot.receiver, ch, ring, a, len)?;
            (ta, rows_hold(&mut ot.sender, ch, ring, x, len)?)
        }
        Role::Client => {
            let ta = rows_hold(&mut ot.sender, ch, ring, x, len)?;
            (ta, rows_choose(&mut ot.receiver, ch, ring, a, len)?)
        }
    };
    Ok((0..x.len())
        .map(|i| ring.add(ring.add(ring.mul(x[i], a[i / len]), ta[i]), tb[i]))
        .collect())
}
