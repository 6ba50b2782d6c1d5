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
//! **Beaver triples** ([`triples`]): shares of random a, b and of c = a·b by [`mul`], made in a
//! preparation phase; a later product then costs only two openings (see [`Triples`]).
//!
//! **Rows by a narrow scalar** ([`mul_rows`]): x_r·y_{r,i} for a shared scalar x_r per row known
//! to lie in [0, 2^(m−1)) (shares over Z_2^m) and shared rows y_r of any lengths (softmax's
//! E·R, LayerNorm's e·ρ, the exponential's table product). With p = msb(x_S), q = msb(x_C) and
//! x′_P = x_P − 2^m·msb(x_P), x = x′_S + x′_C + 2^m·p·q over the integers (because msb(x) = 0),
//! so x·y = x′_S·y_S + x′_C·y_C (local) plus two cross terms x′_P·y_H + 2^m·p·q·y_H, one each
//! way. A cross term is Gilboa's over the m bits of x_P: COT j over Z_2^(ℓ−j) with weight 2^j;
//! the top bit, of weight −2^(m−1) in x′_P, carries the correlation (2q − 1)·y_H instead, which
//! adds exactly 2^m·p·q·y_H, so no wrap is computed. The COT of bit j serves the whole row: its
//! two 128-bit pads p₀, p₁ seed PRG streams G(p) of one value per entry mod 2^(ℓ−j); the holder
//! keeps t = G(p₀) and sends d = G(p₀) + c_j − G(p₁) (c_j its correlation per entry), the
//! chooser with bit b takes G(p_b) + b·d = t + b·c_j — Gilboa's product with the correlation
//! widened from one value to a row, as IKNP §3 sends long messages from short seeds.
//!
//! **Cost** per element (IKNP COTs, λ = 128): a cross term is ℓ COTs, i.e. ℓ·λ bits from the
//! chooser plus Σ_{j<ℓ}(ℓ−j) = ℓ(ℓ+1)/2 bits from the holder. [`mul`]: 2ℓλ + ℓ(ℓ+1) bits
//! (= ℓ² + O(ℓ)), 3 flights (S→C u, C→S d and u, S→C d). At ℓ = 37: 2·37·16 + 1406/8
//! ≈ 1,360 bytes. [`mul_by_private`]: ℓλ + ℓ(ℓ+1)/2 bits, 2 flights. [`mul_rows`]: per row
//! 2mλ bits plus 2Σ_{j<m}(ℓ − j) bits per entry, 3 flights (LayerNorm's ρ at ℓ = 64, m = 28,
//! rows of 768: 354 bytes per entry against 2,568 for [`mul`] on the repeated scalar).
//!
//! **Security** (semi-honest). The chooser receives, per OT, the IKNP matrix messages (nothing:
//! it is the OT receiver and sends u) and d_j = t_j + Δ_j − H(K_j ⊕ Δ) mod 2^(ℓ−j); it can
//! compute only H(K_j ⊕ a_j·Δ), so when a_j = 0 the value d_j is masked by H(K_j ⊕ Δ), which is
//! pseudorandom to it (correlation robustness of the tweakable hash, 128-bit), and when a_j = 1
//! it learns t_j + Δ_j, masked by t_j = H(K_j) which it cannot compute. So its outputs are
//! uniform and independent of b. The holder receives only the IKNP column messages
//! u = G(k⁰) ⊕ G(k¹) ⊕ a-bits, one-time padded by a PRG stream it cannot compute (IKNP §3), so it
//! learns nothing of a. The output shares are each uniform given the other party's view, since t
//! is fresh for every OT. In [`mul_rows`] the chooser sees d = G(p₀) + c_j − G(p₁): with b = 0
//! the stream G(p₁) is pseudorandom to it (it never learns p₁; AES-CTR PRG, 128-bit), with b = 1
//! it learns t + c_j masked by G(p₀), which it cannot compute; the holder sees only IKNP's
//! message u.

use rayon::prelude::*;

use super::shares::{open, pack_widths, packed_len_widths, unpack_widths, Ring};
use super::{Party, ProtocolError};
use crate::crypto::hash::tccr_many;
use crate::crypto::iknp::{CotReceiver, CotSender};
use crate::crypto::ot::hash_many;
use crate::crypto::pack::mask;
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Role};

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
) -> Result<Vec<u64>, ProtocolError> {
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
) -> Result<Vec<u64>, ProtocolError> {
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

/// Widths ℓ, ℓ−1, …, ℓ−k+1 for each of `n` elements (element-major): the COTs of a cross term
/// whose chooser has k bits.
fn gilboa_widths(ring: Ring, k: u32, n: usize) -> Vec<u32> {
    let l = ring.bits;
    (0..n).flat_map(|_| (0..k).map(move |j| l - j)).collect()
}

/// Cross term, chooser side: shares of a·b where this party holds `a` (its low `k` bits as OT
/// choices; `k` ≤ ℓ).
fn cross_choose<C: Channel + ?Sized>(
    r: &mut CotReceiver,
    ch: &mut C,
    ring: Ring,
    k: u32,
    a: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let choices: Vec<bool> = a
        .iter()
        .flat_map(|&v| (0..k).map(move |j| (v >> j) & 1 == 1))
        .collect();
    let got = recv_cot_widths(r, ch, &choices, &gilboa_widths(ring, k, a.len()))?;
    Ok(fold_shifted(ring, k, &got, false))
}

/// Cross term, holder side: shares of a·b where this party holds `b` (the correlation) and the
/// chooser's a has `k` bits.
fn cross_hold<C: Channel + ?Sized>(
    s: &mut CotSender,
    ch: &mut C,
    ring: Ring,
    k: u32,
    b: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let l = ring.bits;
    let deltas: Vec<u64> = b
        .iter()
        .flat_map(|&v| (0..k).map(move |j| v & mask(l - j)))
        .collect();
    let t = send_cot_widths(s, ch, &deltas, &gilboa_widths(ring, k, b.len()))?;
    Ok(fold_shifted(ring, k, &t, true))
}

/// Σ_j 2^j·v[i·k + j] mod 2^ℓ per element, negated if `negate`.
fn fold_shifted(ring: Ring, k: u32, v: &[u64], negate: bool) -> Vec<u64> {
    v.chunks_exact(k as usize)
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

fn check_inputs(ring: Ring, xs: &[&[u64]]) -> Result<(), ProtocolError> {
    let n = xs[0].len();
    for x in xs {
        if x.len() != n {
            return Err(ProtocolError::Invalid(format!(
                "operands of different lengths ({} and {})",
                n,
                x.len()
            )));
        }
        if x.iter().any(|&v| v & !ring.mask() != 0) {
            return Err(ProtocolError::Invalid(format!(
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
    party: &mut Party<'_, C>,
    ring: Ring,
    chooser: Role,
    mine: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    cross_term_bits(party, ring, chooser, ring.bits, mine)
}

/// [`cross_term`] for a chooser's value of `bits` bits (at most ℓ; wider ones are refused):
/// one COT per chooser bit, so a narrow chooser costs `bits` COTs, not ℓ.
pub fn cross_term_bits<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    chooser: Role,
    bits: u32,
    mine: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    check_inputs(ring, &[mine])?;
    let k = bits.min(ring.bits);
    if party.role == chooser {
        if k < 64 && mine.iter().any(|&v| v >> k != 0) {
            return Err(ProtocolError::Invalid(format!(
                "a cross term's chooser value is wider than {k} bits"
            )));
        }
        cross_choose(&mut party.ot.receiver, party.ch, ring, k, mine)
    } else {
        cross_hold(&mut party.ot.sender, party.ch, ring, k, mine)
    }
}

/// Elementwise product of two shared vectors: `x`, `y` are this party's shares; returns its share
/// of x·y mod 2^ℓ. Both parties call it with their own role.
pub fn mul<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
    y: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    check_inputs(ring, &[x, y])?;
    // Term A = x_S·y_C (server chooses), then term B = x_C·y_S (client chooses).
    let (a, b) = match party.role {
        Role::Server => {
            let a = cross_choose(&mut party.ot.receiver, party.ch, ring, ring.bits, x)?;
            (
                a,
                cross_hold(&mut party.ot.sender, party.ch, ring, ring.bits, y)?,
            )
        }
        Role::Client => {
            let a = cross_hold(&mut party.ot.sender, party.ch, ring, ring.bits, y)?;
            (
                a,
                cross_choose(&mut party.ot.receiver, party.ch, ring, ring.bits, x)?,
            )
        }
    };
    Ok((0..x.len())
        .map(|i| ring.add(ring.add(ring.mul(x[i], y[i]), a[i]), b[i]))
        .collect())
}

/// Beaver multiplication triples over Z_2^ℓ (Beaver, CRYPTO 1991), this party's shares: a and b
/// uniform, c = a·b, made by [`triples`] before the values they multiply exist.
#[derive(Clone, Debug)]
pub struct Triples {
    /// The ring the triples are over.
    pub ring: Ring,
    pub a: Vec<u64>,
    pub b: Vec<u64>,
    pub c: Vec<u64>,
}

impl Triples {
    /// How many triples are held.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// Bytes held: three words per triple.
    pub fn footprint(&self) -> usize {
        (self.a.len() + self.b.len() + self.c.len()) * 8
    }

    /// Bytes held per triple.
    pub const FOOTPRINT_PER_TRIPLE: usize = 3 * 8;

    /// Shares of x·y over the triples' ring from this party's shares `x`, `y`, on the triples
    /// `at..at + x.len()`: x − a and y − b opened in one flight ([`open`]), then
    /// c + (x − a)·b + (y − b)·a + (x − a)(y − b) (the last by the server). Each triple must
    /// serve one product only.
    pub fn multiply<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        role: Role,
        at: usize,
        x: &[u64],
        y: &[u64],
    ) -> Result<Vec<u64>, ProtocolError> {
        let (ring, n) = (self.ring, x.len());
        let mut mine: Vec<u64> = (0..n).map(|k| ring.sub(x[k], self.a[at + k])).collect();
        mine.extend((0..n).map(|k| ring.sub(y[k], self.b[at + k])));
        let opened = open(ch, role, &vec![ring.bits; 2 * n], &mine)?;
        let (d, e) = opened.split_at(n);
        Ok((0..n)
            .map(|k| {
                let mut v = ring.add(
                    self.c[at + k],
                    ring.add(
                        ring.mul(d[k], self.b[at + k]),
                        ring.mul(e[k], self.a[at + k]),
                    ),
                );
                if role == Role::Server {
                    v = ring.add(v, ring.mul(d[k], e[k]));
                }
                v
            })
            .collect())
    }
}

/// `n` Beaver triples over `ring`: each party draws its shares of a and b, and [`mul`] gives
/// shares of c = a·b. Cost: [`mul`]'s on n elements. A triple turns a later product x·y into
/// the opening of x − a and y − b (2ℓ bits each way) and local work ([`Triples::multiply`]).
/// The openings are uniform because a and b are, so a triple must serve one product only.
pub fn triples<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    n: usize,
) -> Result<Triples, ProtocolError> {
    let mut rng = Prg::from_entropy();
    let a = ring.random(&mut rng, n);
    let b = ring.random(&mut rng, n);
    let c = mul(party, ring, &a, &b)?;
    Ok(Triples { ring, a, b, c })
}

/// Product of a shared vector by a vector private to `owner`: `x` is this party's share, `y` is
/// `Some` at the owner (ignored elsewhere). Returns this party's share of x·y mod 2^ℓ.
pub fn mul_by_private<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    owner: Role,
    x: &[u64],
    y: Option<&[u64]>,
) -> Result<Vec<u64>, ProtocolError> {
    if party.role == owner {
        let y = y.ok_or_else(|| {
            ProtocolError::Invalid("the owner of the private operand must pass it".into())
        })?;
        check_inputs(ring, &[x, y])?;
        let c = cross_hold(&mut party.ot.sender, party.ch, ring, ring.bits, y)?;
        Ok((0..x.len())
            .map(|i| ring.add(ring.mul(x[i], y[i]), c[i]))
            .collect())
    } else {
        check_inputs(ring, &[x])?;
        cross_choose(&mut party.ot.receiver, party.ch, ring, ring.bits, x)
    }
}

/// Rows times a narrow scalar per row: shares over `out` of x_r·y_{r,i}, where x (one value per
/// row, shares over Z_2^m, 1 ≤ m ≤ out, m < 64) is known to lie in [0, 2^(m−1)) and y (one value
/// per element, shares over `out`) is anything; row r has `lens[r]` elements. Two cross terms
/// (see the module doc), one each way: m COTs per row each way, whose pads are expanded to the
/// row (a single element per row uses plain COTs over Z_2^(out − j)).
pub fn mul_rows<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    out: Ring,
    m: u32,
    x: &[u64],
    y: &[u64],
    lens: &[usize],
) -> Result<Vec<u64>, ProtocolError> {
    if m == 0 || m > out.bits || m >= 64 {
        return Err(ProtocolError::Invalid(format!(
            "mul_rows: scalar width {m} is not in 1..={}",
            out.bits.min(63)
        )));
    }
    if x.len() != lens.len()
        || lens.iter().try_fold(0usize, |a, &l| a.checked_add(l)) != Some(y.len())
    {
        return Err(ProtocolError::Invalid(format!(
            "mul_rows: {} scalars and {} values for {} rows of {} entries in all",
            x.len(),
            y.len(),
            lens.len(),
            lens.iter().sum::<usize>()
        )));
    }
    let x: Vec<u64> = x.iter().map(|&v| v & mask(m)).collect();
    let msb: Vec<bool> = x.iter().map(|&v| (v >> (m - 1)) & 1 == 1).collect();
    let a = cross_rows(party, out, Role::Server, m, &x, &msb, y, lens)?;
    let b = cross_rows(party, out, Role::Client, m, &x, &msb, y, lens)?;
    // Local term x′_P·y_P with x′_P = x_P − 2^m·msb(x_P).
    let mut res = Vec::with_capacity(y.len());
    let mut start = 0;
    for (r, &len) in lens.iter().enumerate() {
        let xs = out.reduce(x[r].wrapping_sub((msb[r] as u64) << m));
        for i in start..start + len {
            res.push(out.add(out.add(out.mul(xs, y[i]), a[i]), b[i]));
        }
        start += len;
    }
    Ok(res)
}

/// [`mul_rows`] with y private to `owner` (`Some` at the owner, ignored elsewhere): x·y =
/// x′_O·y (local to the owner) + the one cross term with the other party choosing, so half of
/// [`mul_rows`]'s traffic: m COTs per row and Σ_{j<m}(ℓ − j) bits per entry, one direction.
pub fn mul_rows_private<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    out: Ring,
    m: u32,
    x: &[u64],
    y: Option<&[u64]>,
    lens: &[usize],
    owner: Role,
) -> Result<Vec<u64>, ProtocolError> {
    let total = lens.iter().try_fold(0usize, |a, &l| a.checked_add(l));
    if m == 0 || m > out.bits || m >= 64 || x.len() != lens.len() || total.is_none() {
        return Err(ProtocolError::Invalid(format!(
            "mul_rows_private: scalar width {m} (1..={}) or {} scalars for {} rows",
            out.bits.min(63),
            x.len(),
            lens.len()
        )));
    }
    let total = total.unwrap_or(0);
    let zeros;
    let y = match (party.role == owner, y) {
        (true, Some(y)) if y.len() == total => y,
        (true, _) => {
            return Err(ProtocolError::Invalid(format!(
                "mul_rows_private: the owner must pass {total} values"
            )))
        }
        (false, _) => {
            zeros = vec![0u64; total];
            &zeros[..]
        }
    };
    let x: Vec<u64> = x.iter().map(|&v| v & mask(m)).collect();
    let msb: Vec<bool> = x.iter().map(|&v| (v >> (m - 1)) & 1 == 1).collect();
    let other = match owner {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let c = cross_rows(party, out, other, m, &x, &msb, y, lens)?;
    if party.role != owner {
        return Ok(c);
    }
    let mut res = Vec::with_capacity(total);
    let mut start = 0;
    for (r, &len) in lens.iter().enumerate() {
        let xs = out.reduce(x[r].wrapping_sub((msb[r] as u64) << m));
        for i in start..start + len {
            res.push(out.add(out.mul(xs, y[i]), c[i]));
        }
        start += len;
    }
    Ok(res)
}

/// One cross term x′_P·Y_H + 2^m·msb(x_P)·msb(x_H)·Y_H, P = `chooser`, H the other party. Every
/// party passes its own x (per row), the msbs of its own x and its own y (per element).
#[allow(clippy::too_many_arguments)]
fn cross_rows<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    out: Ring,
    chooser: Role,
    m: u32,
    x: &[u64],
    msb: &[bool],
    y: &[u64],
    lens: &[usize],
) -> Result<Vec<u64>, ProtocolError> {
    let mu = m as usize;
    // Correlation of bit j for the holder's value v: v, and (2q − 1)·v for the top bit.
    let corr = |r: usize, j: u32, v: u64| -> u64 {
        if j + 1 < m || msb[r] {
            v
        } else {
            v.wrapping_neg()
        }
    };
    let weight_sum = |vals: &mut dyn Iterator<Item = (u32, u64)>| -> u64 {
        vals.fold(0u64, |acc, (j, v)| acc.wrapping_add(v << j))
    };
    if lens.iter().all(|&l| l == 1) {
        // One element per row: plain COTs over Z_2^(out − j), m per element.
        let n = x.len();
        let widths: Vec<u32> = (0..n).flat_map(|_| (0..m).map(|j| out.bits - j)).collect();
        return if party.role == chooser {
            let choices: Vec<bool> = x
                .iter()
                .flat_map(|&v| (0..m).map(move |j| (v >> j) & 1 == 1))
                .collect();
            let got = recv_cot_widths(&mut party.ot.receiver, party.ch, &choices, &widths)?;
            Ok(got
                .chunks_exact(mu)
                .map(|c| out.reduce(weight_sum(&mut (0..m).zip(c.iter().copied()))))
                .collect())
        } else {
            let deltas: Vec<u64> = (0..n)
                .flat_map(|r| (0..m).map(move |j| (r, j)))
                .map(|(r, j)| corr(r, j, y[r]) & mask(out.bits - j))
                .collect();
            let t = send_cot_widths(&mut party.ot.sender, party.ch, &deltas, &widths)?;
            Ok(t.chunks_exact(mu)
                .map(|c| out.neg(weight_sum(&mut (0..m).zip(c.iter().copied()))))
                .collect())
        };
    }
    // Whole rows: one COT per bit of x per row, its pads expanded to one per element.
    let starts: Vec<usize> = lens
        .iter()
        .scan(0usize, |s, &l| {
            let v = *s;
            *s += l;
            Some(v)
        })
        .collect();
    let widths: Vec<u32> = lens
        .iter()
        .flat_map(|&len| (0..m).flat_map(move |j| std::iter::repeat_n(out.bits - j, len)))
        .collect();
    let expand = |seed: Block, len: usize, j: u32| Prg::new(seed).values(len, out.bits - j);
    let rows = lens.len();
    if party.role == chooser {
        let choices: Vec<bool> = x
            .iter()
            .flat_map(|&v| (0..m).map(move |j| (v >> j) & 1 == 1))
            .collect();
        let tweak = party.ot.receiver.counter;
        let mut pads = party.ot.receiver.recv_cot(party.ch, &choices)?;
        hash_many(&mut pads, tweak);
        let d = unpack_widths(&party.ch.recv_vec(packed_len_widths(&widths))?, &widths);
        let parts: Vec<Vec<u64>> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let len = lens[r];
                let mut acc = vec![0u64; len];
                let base = starts[r] * mu;
                for j in 0..m {
                    let k = r * mu + j as usize;
                    let v = expand(pads[k], len, j);
                    let dj = &d[base + j as usize * len..base + (j as usize + 1) * len];
                    for i in 0..len {
                        let got = if choices[k] {
                            v[i].wrapping_add(dj[i])
                        } else {
                            v[i]
                        };
                        acc[i] = acc[i].wrapping_add(got << j);
                    }
                }
                acc.into_iter().map(|a| out.reduce(a)).collect()
            })
            .collect();
        Ok(parts.concat())
    } else {
        let tweak = party.ot.sender.counter;
        let k = party.ot.sender.send_cot(party.ch, rows * mu)?;
        let delta = party.ot.sender.delta();
        let mut p0 = k.clone();
        tccr_many(&mut p0, tweak);
        let mut p1: Vec<Block> = k.iter().map(|&b| b ^ delta).collect();
        tccr_many(&mut p1, tweak);
        let parts: Vec<(Vec<u64>, Vec<u64>)> = (0..rows)
            .into_par_iter()
            .map(|r| {
                let len = lens[r];
                let ys = &y[starts[r]..starts[r] + len];
                let mut d = Vec::with_capacity(len * mu);
                let mut acc = vec![0u64; len];
                for j in 0..m {
                    let k = r * mu + j as usize;
                    let wm = mask(out.bits - j);
                    let a = expand(p0[k], len, j);
                    let b = expand(p1[k], len, j);
                    for i in 0..len {
                        d.push(a[i].wrapping_add(corr(r, j, ys[i])).wrapping_sub(b[i]) & wm);
                        acc[i] = acc[i].wrapping_add(a[i] << j);
                    }
                }
                (d, acc.into_iter().map(|a| out.neg(a)).collect())
            })
            .collect();
        let d: Vec<u64> = parts.iter().flat_map(|p| p.0.iter().copied()).collect();
        party.ch.send(&pack_widths(&d, &widths))?;
        party.ch.flush()?;
        Ok(parts.into_iter().flat_map(|p| p.1).collect())
    }
}
