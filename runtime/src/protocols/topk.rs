//! Top-K selection on a shared vector: shares of the K largest entries and of their indices,
//! always exactly K, by comparisons whose results are revealed after a secret-shared shuffle.
//! CipherGPT §V (Algorithm 2: shuffle, then a quickselect whose comparison bits are revealed,
//! recursing only into the part that holds the top K, O(n) comparisons), with the index tags of
//! its §V ("appending an index to each element", so that all are distinct) and a sampled pivot
//! in the manner of Floyd and Rivest (CACM 1975, "Algorithm 489: SELECT"); the shuffle is
//! [`super::shuffle`] (Chase–Ghosh–Poburinnaya 2020).
//!
//! **Semantics.** For z ∈ Z_2^ℓ (read signed) of length n and 1 ≤ K ≤ n: the K entries that come
//! first in the order "larger value first, smaller index first among equal values" — the top K of
//! `sort_by(|a, b| z[b].cmp(&z[a]).then(a.cmp(b)))`, [`reference`]. K = 1 is exactly
//! `semantics::argmax` (ties to the smallest index). The output lists the K (value, index) pairs
//! in an order that depends only on the shuffle (a uniformly random order of the set).
//!
//! **Protocol.**
//! 1. *Tags.* b = ⌈log₂n⌉ index bits (at least 1), L = ℓ + b ≤ 64. Each party forms
//!    P_i = z_i·2^b + t_i in Z_2^L with the tag t_i = 2^b − 1 − i added by the server (the client
//!    adds 0): multiplying a share by 2^b lifts it from Z_2^ℓ to Z_2^L exactly, since the wrap
//!    2^ℓ·2^b vanishes mod 2^L. Read signed, P_i = z_i·2^b + t_i: all distinct, ordered by value and
//!    then by smaller index (larger tag). Under the precondition |z_i| < 2^(ℓ−2),
//!    |P_a − P_b| < 2^(L−1), so msb(P_a − P_b) is exactly 1{P_a < P_b}.
//! 2. *Shuffle* the P_i ([`super::shuffle::shuffle`], in Z_2^L).
//! 3. *Selection* ([`select`]): rounds of comparisons between positions of the shuffled vector,
//!    each a batch of msb(P_a − P_b) ([`cmp::msb_with`], the cheapest digit width for L − 1 bits)
//!    whose XOR shares are then exchanged, so both parties learn the bits. A step either compares
//!    all pairs of the candidates (and takes the K best by their number of wins), or picks a pivot
//!    and partitions the candidates against it: candidates above the pivot (and the pivot) form
//!    the upper part U, |U| = R; R = K is done, R > K continues in U without the pivot, R < K
//!    takes U and continues in the rest for K − R. The pivot is the last candidate (Algorithm 2)
//!    or, from a sample of the first s candidates ranked by all their pairs in one round, the
//!    sample's r-th largest. The planner picks the step (all pairs, the last candidate, or a
//!    sample s ∈ {8, …, 64} and rank r) with the least expected cost: the step's comparisons and
//!    rounds (a round counted as `round_cost` comparisons) plus an estimate of what remains
//!    (1.25 comparisons per remaining candidate and 1.5·ln of them rounds, or all their pairs if
//!    cheaper), the rank of the pivot among the m candidates following the negative
//!    hypergeometric law of the r-th largest of a uniform sample of s. For GPT-2's 50,257 logits
//!    (simulated over 200 random orders) this is on average n + 2.4K, n + 3.9K and n + 4.5K
//!    comparisons for K = 1, 50, 100, in 5.9, 10.4 and 11.4 rounds (at most 10, 16, 19),
//!    against about 2n for Algorithm 2's last element. The number of rounds never exceeds
//!    `max_rounds`: with one round left the step is the all-pairs comparison of the remaining
//!    candidates, which always ends (so a tight bound costs comparisons, not correctness).
//! 4. *Output.* For each of the K selected positions: v = ⌊P / 2^b⌋ and t = P mod 2^b from the
//!    carry c = 1{(P_S mod 2^b) + (P_C mod 2^b) ≥ 2^b} ([`cmp::carry`] on b bits and [`b2a`] to
//!    Z_2^ℓ): v = (P_S >> b) + (P_C >> b) + c and t = (P_S mod 2^b) + (P_C mod 2^b) − 2^b·c, both
//!    mod 2^ℓ (the wrap of P vanishes mod 2^ℓ, SIRNN's truncate-and-reduce); the index is
//!    2^b − 1 − t.
//!
//! **Sampling** ([`sample`], CipherGPT §VI, Algorithm 3, and §VII-E): temperature, softmax over
//! the K survivors, prefix sums, a jointly random value compared against the K − 1 inner prefix
//! sums, one-hot by XOR of neighbours, the index selected by MUX and revealed to the client only;
//! exactly [`sample_reference`] on the joint random value (see [`sample`] for the steps, cost and
//! security). Since the top K carry their original indices, CipherGPT's detour through
//! π_S^(−1) of the revealed positions is not needed.
//!
//! **Termination and exactness.** The tags make all P_i distinct, so every comparison has one
//! answer and every partition step removes at least the pivot: many or all equal logits change
//! nothing. The result has exactly K elements by construction, also if the revealed bits were
//! inconsistent (the all-pairs step ranks by wins, ties by position).
//!
//! **Cost.** Shuffle of n elements of L bits (see [`super::shuffle`]), C comparisons of M(L − 1)
//! bits (the millionaires' at the cheapest digit width, [`cmp`]) plus 2 bits each for the reveal,
//! and K·(M(b) + λ + ℓ) for the output; C ≈ n + O(sample² + K) depends on the revealed ranks
//! (not on the data). At ℓ = 38, L = 54: M(53) = 11,184 bits (1,398 bytes) per comparison.
//! Flights: 3 for the shuffle, per round the msb's (2 triples + 2 leaf OTs + tree levels) and the
//! exchange, and 4 more for the output. `docs/protocols.md` has the measured figures.
//!
//! **Security** (semi-honest). Up to the reveals, every step is a sub-protocol on shares whose
//! view is simulatable ([`super::shuffle`], [`cmp`]). The revealed bits compare entries of the
//! shuffled vector: since the tagged entries are distinct, the bits are a function of the ranks of
//! the positions, and the shuffle's permutation is uniform and unknown to each party (π_S is
//! uniform to the client whatever π_C is, and conversely), so the ranks at the positions form a
//! uniformly random permutation independent of z. Which pairs are compared is decided from the
//! bits already revealed only, so the whole transcript of bits (and the selected positions) can
//! be simulated by drawing a random ranking. The values, the indices and which index holds which
//! rank stay shared; the output shares come from the mux-free carry computation and B2A, fresh on
//! both sides. What is public: n, K, ℓ and the number of rounds and comparisons.

use ciphergpt_compiler::fixed::semantics::{self, ExpTables};
use ciphergpt_compiler::plan::Sample;

use super::shares::{exchange, recv_reveal, reveal_to_peer, Ring};
use super::shuffle::{random_permutation, shuffle_with, ShuffleParams};
use super::{b2a::b2a, cmp, mul, mux, softmax, trunc};
use super::{Party, ProtocolError};
use crate::crypto::pack::{mask, pack, unpack};
use crate::net::{Channel, Role};

fn bad(msg: String) -> ProtocolError {
    ProtocolError::Invalid(format!("top-K: {msg}"))
}

/// Parameters of the top-K selection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopKParams {
    /// Most comparison rounds (≥ 1). The last one compares all remaining pairs.
    pub max_rounds: usize,
    /// What a comparison round is worth in comparisons, for the planner: about 100 on a LAN
    /// (a round is ~9 flights, a comparison ~1.4 KB); raise it when the latency is higher.
    pub round_cost: f64,
    /// The shuffle's network.
    pub shuffle: ShuffleParams,
}

impl Default for TopKParams {
    fn default() -> Self {
        TopKParams {
            max_rounds: 32,
            round_cost: 100.0,
            shuffle: ShuffleParams::default(),
        }
    }
}

/// This party's shares of the K selected entries and of their indices, both over Z_2^ℓ, and what
/// both parties know: the positions of the selected entries in the shuffled vector, the number of
/// comparisons and of comparison rounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopK {
    pub values: Vec<u64>,
    pub indices: Vec<u64>,
    pub positions: Vec<u32>,
    pub comparisons: usize,
    pub rounds: usize,
}

/// Index bits b of a vector of n entries: ⌈log₂n⌉, at least 1.
pub fn index_bits(n: usize) -> u32 {
    crate::crypto::pprf::depth_of(n).max(1)
}

/// The plaintext top K (indices, in order: larger value first, smaller index first among equal
/// values): the function the protocol computes, as a set ([`semantics::top_k`]).
pub fn reference(z: &[i64], k: usize) -> Vec<usize> {
    semantics::top_k(z, k)
}

/// Future comparisons per remaining candidate in the planner's cost model.
const ALPHA: f64 = 1.25;
/// Future rounds per natural log of the remaining candidates in the planner's cost model.
const RHO: f64 = 1.5;
/// Sample sizes the planner considers.
const SAMPLES: [usize; 6] = [8, 16, 24, 32, 48, 64];
/// Largest number of rank points the planner sums over per (sample, rank).
const GRID: usize = 2048;

/// One step of the selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Compare every pair of candidates and finish.
    AllPairs,
    /// Pivot: the `rank`-th largest of the first `sample` candidates (sample 0: the last one).
    Pivot { sample: usize, rank: usize },
}

/// ln k! for k ≤ n.
fn ln_factorials(n: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(n + 1);
    let mut acc = 0.0;
    v.push(0.0);
    for k in 1..=n {
        acc += (k as f64).ln();
        v.push(acc);
    }
    v
}

/// The planner's estimate of the cost (comparisons, a round counting `rc`) of selecting the top
/// k' of x candidates: nothing if k' = x, else the cheaper of comparing all pairs and about
/// α·x comparisons in ρ·ln x rounds.
fn future(x: usize, k: usize, rc: f64) -> f64 {
    if k == x || k == 0 {
        return 0.0;
    }
    let xf = x as f64;
    let all = xf * (xf - 1.0) / 2.0 + rc;
    all.min(ALPHA * xf + RHO * (1.0 + xf).ln() * rc)
}

/// The future cost after a pivot of rank R (R candidates at or above it) among m, target k.
fn after(m: usize, k: usize, r: usize, rc: f64) -> f64 {
    use std::cmp::Ordering::*;
    match r.cmp(&k) {
        Equal => 0.0,
        Greater => future(r - 1, k, rc),
        Less => future(m - r, k - r, rc),
    }
}

/// Expected future cost when the pivot is the r-th largest of a uniform sample of s of m
/// candidates: P(R = j) = C(j−1, r−1)·C(m−j, s−r) / C(m, s), summed on at most GRID points.
fn expected_after(lf: &[f64], m: usize, k: usize, s: usize, r: usize, rc: f64) -> f64 {
    let ln_c = |a: usize, b: usize| lf[a] - lf[b] - lf[a - b];
    let total = ln_c(m, s);
    let (lo, hi) = (r, m - s + r);
    let stride = (hi - lo + 1).div_ceil(GRID).max(1);
    let mut e = 0.0;
    let mut j = lo;
    while j <= hi {
        let p = (ln_c(j - 1, r - 1) + ln_c(m - j, s - r) - total).exp();
        e += p * after(m, k, j, rc) * stride as f64;
        j += stride;
    }
    e
}

/// The planner: the step with the least expected cost (comparisons, and `rc` per round) that fits
/// the rounds left, for m candidates and target k (0 < k < m).
fn plan(lf: &[f64], m: usize, k: usize, rounds_left: usize, rc: f64) -> Step {
    let all_pairs = (m * (m - 1) / 2) as f64 + rc;
    let mut best = (all_pairs, Step::AllPairs);
    if rounds_left < 2 {
        return best.1;
    }
    // The last candidate as pivot: R uniform on 1..=m.
    let unif: f64 = (1..=m).map(|r| after(m, k, r, rc)).sum::<f64>() / m as f64;
    let c = (m - 1) as f64 + unif + rc;
    if c < best.0 {
        best = (c, Step::Pivot { sample: 0, rank: 1 });
    }
    if rounds_left >= 3 {
        for &s in SAMPLES.iter().filter(|&&s| s + 1 < m) {
            let fixed = (s * (s - 1) / 2 + (m - s)) as f64 + 2.0 * rc;
            if fixed >= best.0 {
                continue;
            }
            // Ranks near the target's expected sample rank, on both sides of it.
            let centre = (k as f64 * (s + 1) as f64 / (m + 1) as f64).round() as usize;
            let lo = centre.saturating_sub(8).max(1);
            let hi = (centre + 8).min(s);
            for r in lo..=hi {
                let c = fixed + expected_after(lf, m, k, s, r, rc);
                if c < best.0 {
                    best = (c, Step::Pivot { sample: s, rank: r });
                }
            }
        }
    }
    best.1
}

/// The selection of the top `k` of `n` distinct elements in a uniformly random order, by rounds of
/// revealed comparisons: `round(pairs)` must return, for every pair (a, b) of positions, whether
/// element a is greater than element b. Returns the positions of the top k (in the order they
/// were found). At most `max_rounds` calls of `round`. No randomness: both parties run it on the
/// same revealed bits and stay in step.
pub fn select<E, F>(
    n: usize,
    k: usize,
    max_rounds: usize,
    round_cost: f64,
    mut round: F,
) -> Result<Vec<u32>, E>
where
    F: FnMut(&[(u32, u32)]) -> Result<Vec<bool>, E>,
{
    let lf = ln_factorials(n);
    let mut cands: Vec<u32> = (0..n as u32).collect();
    let mut chosen: Vec<u32> = Vec::with_capacity(k);
    let mut k = k.min(n);
    let mut left = max_rounds.max(1);
    loop {
        let m = cands.len();
        if k == 0 {
            break;
        }
        if k == m {
            chosen.extend_from_slice(&cands);
            break;
        }
        match plan(&lf, m, k, left, round_cost) {
            Step::AllPairs => {
                let mut pairs = Vec::with_capacity(m * (m - 1) / 2);
                for i in 0..m {
                    for j in i + 1..m {
                        pairs.push((cands[i], cands[j]));
                    }
                }
                let bits = round(&pairs)?;
                let mut wins = vec![0usize; m];
                let mut t = 0;
                for i in 0..m {
                    for j in i + 1..m {
                        if bits.get(t).copied().unwrap_or(false) {
                            wins[i] += 1;
                        } else {
                            wins[j] += 1;
                        }
                        t += 1;
                    }
                }
                let mut order: Vec<usize> = (0..m).collect();
                order.sort_by(|&a, &b| wins[b].cmp(&wins[a]).then(a.cmp(&b)));
                chosen.extend(order[..k].iter().map(|&i| cands[i]));
                break;
            }
            Step::Pivot { sample, rank } => {
                // above[i]: candidate i is above the pivot (the pivot itself counts as above).
                let mut above = vec![false; m];
                let (pivot, known) = if sample > 0 {
                    let mut pairs = Vec::with_capacity(sample * (sample - 1) / 2);
                    for i in 0..sample {
                        for j in i + 1..sample {
                            pairs.push((cands[i], cands[j]));
                        }
                    }
                    let bits = round(&pairs)?;
                    left -= 1;
                    let mut wins = vec![0usize; sample];
                    let mut beats = vec![vec![false; sample]; sample];
                    let mut t = 0;
                    for i in 0..sample {
                        for j in i + 1..sample {
                            let g = bits.get(t).copied().unwrap_or(false);
                            beats[i][j] = g;
                            beats[j][i] = !g;
                            wins[if g { i } else { j }] += 1;
                            t += 1;
                        }
                    }
                    let mut order: Vec<usize> = (0..sample).collect();
                    order.sort_by(|&a, &b| wins[b].cmp(&wins[a]).then(a.cmp(&b)));
                    let p = order[rank - 1];
                    for i in 0..sample {
                        above[i] = i == p || beats[i][p];
                    }
                    (p, sample)
                } else {
                    above[m - 1] = true;
                    (m - 1, 0)
                };
                // Partition the rest against the pivot: one round.
                let rest: Vec<usize> = (0..m).filter(|&i| i >= known && i != pivot).collect();
                let pairs: Vec<(u32, u32)> =
                    rest.iter().map(|&i| (cands[i], cands[pivot])).collect();
                let bits = round(&pairs)?;
                left -= 1;
                for (t, &i) in rest.iter().enumerate() {
                    above[i] = bits.get(t).copied().unwrap_or(false);
                }
                // Keep the unsampled candidates first: the next sample is then uniform again.
                let order: Vec<usize> = (known..m).chain(0..known).collect();
                let r = above.iter().filter(|&&a| a).count();
                if r == k {
                    chosen.extend(order.iter().filter(|&&i| above[i]).map(|&i| cands[i]));
                    break;
                } else if r > k {
                    // The pivot is the smallest of the upper part: not among its top k.
                    cands = order
                        .iter()
                        .filter(|&&i| above[i] && i != pivot)
                        .map(|&i| cands[i])
                        .collect();
                } else {
                    chosen.extend(order.iter().filter(|&&i| above[i]).map(|&i| cands[i]));
                    k -= r;
                    cands = order
                        .iter()
                        .filter(|&&i| !above[i])
                        .map(|&i| cands[i])
                        .collect();
                }
            }
        }
    }
    Ok(chosen)
}

/// XOR shares of 1{P_a > P_b} for every pair, revealed to both parties (P in Z_2^L, distinct).
fn compare_and_reveal<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    digit: u32,
    p: &[u64],
    pairs: &[(u32, u32)],
) -> Result<Vec<bool>, ProtocolError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    // msb(P_b − P_a) = 1{P_b < P_a} = 1{P_a > P_b}: no wrap under the precondition.
    let d: Vec<u64> = pairs
        .iter()
        .map(|&(a, b)| ring.sub(p[b as usize], p[a as usize]))
        .collect();
    let mine = cmp::msb_with(party, ring, digit, &d)?;
    let bits: Vec<u64> = mine.iter().map(|&b| b as u64).collect();
    let theirs = unpack(
        &exchange(party.ch, party.role, &pack(&bits, 1))?,
        pairs.len(),
        1,
    );
    Ok(mine
        .iter()
        .zip(theirs)
        .map(|(&m, t)| m ^ (t == 1))
        .collect())
}

/// This party's shares of the top `k` entries of the shared z (this party's shares, Z_2^ℓ) and of
/// their indices, both over Z_2^ℓ. Precondition (not checkable on shares): every entry, read
/// signed, lies in [−2^(ℓ−2), 2^(ℓ−2)). Errors: k not in 1..=n, n > 2^ℓ, ℓ + index bits > 64,
/// max_rounds = 0.
pub fn topk<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    z: &[u64],
    k: usize,
    params: &TopKParams,
) -> Result<TopK, ProtocolError> {
    let perm = random_permutation(z.len());
    topk_with(party, ring, z, k, params, &perm)
}

/// [`topk`] with this party's shuffle permutation `perm` of 0..n given (it must be uniformly
/// random and secret to this party: from a fresh or a secret seeded generator).
pub fn topk_with<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    z: &[u64],
    k: usize,
    params: &TopKParams,
    perm: &[usize],
) -> Result<TopK, ProtocolError> {
    let n = z.len();
    if n == 0 || k == 0 || k > n {
        return Err(bad(format!("K = {k} is not in 1..={n}")));
    }
    if (n - 1) as u64 > ring.mask() {
        return Err(bad(format!(
            "{n} indices do not fit the {}-bit ring",
            ring.bits
        )));
    }
    let b = index_bits(n);
    if ring.bits + b > 64 {
        return Err(bad(format!(
            "a {}-bit ring and {b} index bits exceed 64 bits",
            ring.bits
        )));
    }
    if params.max_rounds == 0 {
        return Err(bad("max_rounds is 0".to_string()));
    }
    let wide = Ring::new(ring.bits + b)?;
    // 1. Tags: P_i = z_i·2^b + (2^b − 1 − i), the tag added by the server.
    let packed: Vec<u64> = z
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let tag = match party.role {
                Role::Server => mask(b) - i as u64,
                Role::Client => 0,
            };
            wide.add(wide.reduce(ring.reduce(v) << b), tag)
        })
        .collect();
    // 2. Shuffle.
    let p = shuffle_with(party, wide, perm, &packed, &params.shuffle)?;
    // 3. Selection.
    let digit = cmp::cheapest_digit_bits(wide.bits - 1);
    let (mut comparisons, mut rounds) = (0, 0);
    let chosen = select(n, k, params.max_rounds, params.round_cost, |pairs| {
        comparisons += pairs.len();
        rounds += 1;
        compare_and_reveal(party, wide, digit, &p, pairs)
    })?;
    // 4. Output: v = ⌊P / 2^b⌋, t = P mod 2^b, index = 2^b − 1 − t.
    let sel: Vec<u64> = chosen.iter().map(|&i| p[i as usize]).collect();
    let lo: Vec<u64> = sel.iter().map(|&v| v & mask(b)).collect();
    let c = cmp::carry(party, b, cmp::cheapest_digit_bits(b), &lo)?;
    let c = b2a(party, ring, &c)?;
    let two_b = ring.reduce(1u64 << b);
    let values = sel
        .iter()
        .zip(&c)
        .map(|(&v, &c)| ring.add(ring.reduce(v >> b), c))
        .collect();
    let indices = lo
        .iter()
        .zip(&c)
        .map(|(&l, &c)| {
            let t = ring.sub(ring.reduce(l), ring.mul(two_b, c));
            match party.role {
                Role::Server => ring.sub(ring.reduce(mask(b)), t),
                Role::Client => ring.neg(t),
            }
        })
        .collect();
    Ok(TopK {
        values,
        indices,
        positions: chosen,
        comparisons,
        rounds,
    })
}

/// A public temperature T as a fixed-point multiplier: y = ⌊v·mul / 2^shift⌋ with
/// mul = round(2^16 / T) ([`semantics::temperature`]); the shift may also carry a rescaling of
/// the logits to the softmax's input scale (the plan's `Sample::shift`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Temperature {
    pub mul: u64,
    pub shift: u32,
}

impl Temperature {
    /// T = 1: the logits unchanged.
    pub const ONE: Temperature = Temperature { mul: 1, shift: 0 };

    /// mul = round(2^16 / T) with shift 16 (`plan::Sample::inv_temperature_of`).
    pub fn from_f64(t: f64) -> Result<Temperature, ProtocolError> {
        let mul = Sample::inv_temperature_of(t).map_err(bad)?;
        Ok(Temperature {
            mul: mul.into(),
            shift: Sample::TEMPERATURE_FRAC,
        })
    }

    /// ⌊v·mul / 2^shift⌋.
    pub fn apply(&self, v: i64) -> i64 {
        semantics::temperature(v, self.mul, self.shift)
    }

    fn is_one(&self) -> bool {
        self.mul == 1u64 << self.shift.min(63)
    }
}

/// Bits w of the uniform value u of a draw ([`semantics::sample_bits`]).
pub fn sample_bits(frac_out: u32) -> u32 {
    semantics::sample_bits(frac_out)
}

/// The plaintext sampling ([`semantics::sample_top_k`]): the position in `values` (the K selected
/// logits, in the protocol's order) that the uniform w-bit value u picks.
pub fn sample_reference(
    values: &[i64],
    temp: Temperature,
    tables: &ExpTables,
    u: u64,
) -> Result<usize, ProtocolError> {
    semantics::sample_top_k(values, temp.mul, temp.shift, tables, u).map_err(|e| bad(e.to_string()))
}

/// Sampling with temperature from the top K, the index revealed to the client only: `draws`
/// independent samples from the same K logits (`Some(indices)` at the client, `None` at the
/// server). CipherGPT §VI (Algorithm 3) and §VII-E: temperature, softmax over the K, prefix
/// sums, one comparison of a jointly random value against each of the K − 1 inner prefix sums,
/// one-hot by XOR of neighbours, selection of the index by MUX, reveal to the client.
///
/// **Protocol.** (1) y = ⌊v·mul / 2^shift⌋: v extended to Z_2^(ℓ + bits(mul)) ([`trunc::extend`]),
/// multiplied by the public mul, arithmetic shift ([`trunc::trunc`]), reduced to Z_2^ℓ (skipped
/// for T = 1). (2) p = [`softmax::softmax`] over the K entries with `tables` (its frac_in must be
/// the logits' scale); Σ p ≤ 2^frac_out. (3) p extended to Z_2^64 ([`trunc::extend_nonnegative`]),
/// prefix sums S_i (local). (4) Per draw, each party contributes a uniform u_P < 2^w (w =
/// [`sample_bits`]); u = (u_S + u_C) mod 2^w = u_S + u_C − 2^w·c with the carry c ([`cmp::carry`] on
/// w bits, [`b2a`]): uniform if either party's contribution is. (5) u·S_K ([`mul::mul`]) and
/// b_i = 1{u·S_K ≥ 2^w·S_i} for i < K ([`cmp::drelu`] in Z_2^64; |u·S_K − 2^w·S_i| < 2^62).
/// (6) b_0 = 1, b_K = 0, b′_i = b_(i−1) ⊕ b_i (local, one-hot at the first i with u·S_K < 2^w·S_i);
/// j = Σ_i MUX(b′_i, index_i) ([`mux::mux`]); the server sends its share of j to the client.
/// Position i is drawn with probability #{u : 2^w·S_(i−1) ≤ u·S_K < 2^w·S_i} / 2^w, which is
/// p_i / S_K up to 2^−w: exactly [`sample_reference`] on the joint u.
///
/// **Cost** (K entries, R draws): the softmax of one row of K (see [`softmax`]), K extensions
/// (λ + 64 − ℓ bits each), the temperature's K·(M(ℓ) + …) unless T = 1, and per draw
/// M(w) + λ + 64 (carry, B2A), one product in Z_2^64, (K − 1) DReLUs in Z_2^64 and K MUXes
/// over Z_2^ℓ, and ℓ bits of reveal.
///
/// **Security.** Every step is a sub-protocol on shares with fresh outputs; the only value
/// revealed is j, to the client, which is its output (the sampled token). The server receives
/// nothing at the end. Neither party can bias u alone: it is uniform as long as one of the
/// contributions is.
pub fn sample<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    top: &TopK,
    temp: Temperature,
    tables: &ExpTables,
    draws: usize,
) -> Result<Option<Vec<usize>>, ProtocolError> {
    let w = sample_bits(tables.frac_out);
    let mine = crate::crypto::Prg::from_entropy().values(draws, w);
    sample_with(party, ring, top, temp, tables, &mine)
}

/// [`sample`] with this party's contributions to the draws' uniform values given (one per draw,
/// each below 2^w, w = [`sample_bits`]); the joint value of a draw is the sum of the two
/// parties' contributions mod 2^w.
pub fn sample_with<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    top: &TopK,
    temp: Temperature,
    tables: &ExpTables,
    mine: &[u64],
) -> Result<Option<Vec<usize>>, ProtocolError> {
    let k = top.values.len();
    if k == 0 || top.indices.len() != k {
        return Err(bad(format!(
            "sampling from {k} values and {} indices",
            top.indices.len()
        )));
    }
    let w = sample_bits(tables.frac_out);
    if let Some(u) = mine.iter().find(|&&u| u >> w != 0) {
        return Err(bad(format!("a draw's value {u} is not below 2^{w}")));
    }
    if tables.frac_out + 2 > ring.bits {
        return Err(bad(format!(
            "probabilities with {} fractional bits do not fit the {}-bit ring",
            tables.frac_out, ring.bits
        )));
    }
    let mul_bits = 64 - temp.mul.leading_zeros();
    if temp.mul == 0 || (!temp.is_one() && ring.bits + mul_bits > 64) {
        return Err(bad(format!(
            "temperature multiplier {} does not fit beside the {}-bit ring",
            temp.mul, ring.bits
        )));
    }
    tables.validate().map_err(|e| bad(e.to_string()))?;
    let wide = Ring::new(64)?;
    // (1) Temperature.
    let y = if temp.is_one() {
        top.values.iter().map(|&v| ring.reduce(v)).collect()
    } else {
        let t = Ring::new(ring.bits + mul_bits)?;
        let ext = trunc::extend(party, ring, t, &top.values)?;
        let prod: Vec<u64> = ext.iter().map(|&v| t.mul(v, temp.mul)).collect();
        let shifted = trunc::trunc(party, t, temp.shift, &prod)?;
        shifted
            .iter()
            .map(|&v| ring.reduce(v))
            .collect::<Vec<u64>>()
    };
    // (2) Softmax over the K, (3) prefix sums in Z_2^64.
    let p = softmax::softmax(party, ring, tables, &y, &[k])?;
    let p = trunc::extend_nonnegative(party, ring, wide, &p)?;
    let mut prefix = Vec::with_capacity(k);
    let mut acc = 0u64;
    for &x in &p {
        acc = wide.add(acc, x);
        prefix.push(acc);
    }
    let total = acc;
    let draws = mine.len();
    if draws == 0 {
        return Ok((party.role == Role::Client).then(Vec::new));
    }
    // (4) The joint u = u_S + u_C − 2^w·carry.
    let c = cmp::carry(party, w, cmp::cheapest_digit_bits(w), mine)?;
    let c = b2a(party, wide, &c)?;
    let u: Vec<u64> = mine
        .iter()
        .zip(&c)
        .map(|(&m, &c)| wide.sub(m, wide.mul(1u64 << w, c)))
        .collect();
    // (5) b_i = 1{u·S_K ≥ 2^w·S_i}, i = 1..K−1.
    let us = mul::mul(party, wide, &u, &vec![total; draws])?;
    let mut d = Vec::with_capacity(draws * (k - 1));
    for &x in &us {
        d.extend(prefix[..k - 1].iter().map(|&s| wide.sub(x, s << w)));
    }
    let b = cmp::drelu(party, wide, &d)?;
    // (6) One-hot and selection.
    let one = party.role == Role::Server;
    let mut onehot = Vec::with_capacity(draws * k);
    let mut idx = Vec::with_capacity(draws * k);
    for r in 0..draws {
        let bits = &b[r * (k - 1)..(r + 1) * (k - 1)];
        for i in 0..k {
            let prev = if i == 0 { one } else { bits[i - 1] };
            let cur = if i == k - 1 { false } else { bits[i] };
            onehot.push(prev ^ cur);
            idx.push(top.indices[i]);
        }
    }
    let sel = mux::mux(party, ring, &onehot, &idx)?;
    let j: Vec<u64> = sel
        .chunks_exact(k)
        .map(|c| c.iter().fold(0u64, |a, &x| ring.add(a, x)))
        .collect();
    match party.role {
        Role::Server => {
            reveal_to_peer(party.ch, ring, &j)?;
            Ok(None)
        }
        Role::Client => {
            let v = recv_reveal(party.ch, ring, &j)?;
            Ok(Some(v.into_iter().map(|x| x as usize).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Block, Prg};
    use rand::seq::SliceRandom;

    /// Run the selection on ranks in a random order; returns (positions, comparisons, rounds).
    fn simulate(rank: &[usize], k: usize, max_rounds: usize) -> (Vec<u32>, usize, usize) {
        let (mut cmps, mut rounds) = (0, 0);
        let got = select::<(), _>(
            rank.len(),
            k,
            max_rounds,
            TopKParams::default().round_cost,
            |pairs| {
                cmps += pairs.len();
                rounds += 1;
                Ok(pairs
                    .iter()
                    .map(|&(a, b)| rank[a as usize] < rank[b as usize])
                    .collect())
            },
        )
        .unwrap();
        (got, cmps, rounds)
    }

    fn check(rank: &[usize], k: usize, got: &[u32]) {
        let mut g: Vec<usize> = got.iter().map(|&i| rank[i as usize]).collect();
        g.sort();
        assert_eq!(g, (0..k).collect::<Vec<_>>(), "n {} k {k}", rank.len());
    }

    #[test]
    fn selects_exactly_the_top_k_within_the_round_bound() {
        let mut p = Prg::new(Block(11));
        for n in 1..=40usize {
            for k in 1..=n {
                for max_rounds in [1usize, 2, 3, 5, 32] {
                    let mut rank: Vec<usize> = (0..n).collect();
                    rank.shuffle(&mut p);
                    let (got, _, rounds) = simulate(&rank, k, max_rounds);
                    check(&rank, k, &got);
                    assert!(rounds <= max_rounds, "n {n} k {k} rounds {rounds}");
                }
            }
        }
        for (n, k) in [
            (1000usize, 1usize),
            (1000, 999),
            (5000, 100),
            (5000, 2500),
            (300, 300),
        ] {
            for max_rounds in [2usize, 4, 32] {
                let mut rank: Vec<usize> = (0..n).collect();
                rank.shuffle(&mut p);
                let (got, _, rounds) = simulate(&rank, k, max_rounds);
                check(&rank, k, &got);
                assert!(rounds <= max_rounds);
            }
        }
    }

    #[test]
    fn inconsistent_answers_still_give_k() {
        for n in [2usize, 10, 100, 1000] {
            for k in [1, n / 2, n] {
                let k = k.max(1);
                let mut flip = false;
                let got = select::<(), _>(n, k, 8, 100.0, |pairs| {
                    Ok(pairs
                        .iter()
                        .map(|_| {
                            flip = !flip;
                            flip
                        })
                        .collect())
                })
                .unwrap();
                assert_eq!(got.len(), k);
                let mut s = got.clone();
                s.sort();
                s.dedup();
                assert_eq!(s.len(), k, "distinct positions");
            }
        }
    }

    /// The comparisons and rounds for GPT-2's vocabulary over 200 random orders each (a fixed
    /// seed): on average n + 2.4K, n + 3.9K and n + 4.5K comparisons for K = 1, 50 and 100, in 5.9,
    /// 10.4 and 11.4 rounds (at most 10, 16 and 19).
    #[test]
    fn comparisons_and_rounds_for_the_vocabulary() {
        let n = 50_257;
        let mut p = Prg::new(Block(12));
        for (k, max_mean_cmp, max_rounds_seen) in [
            (1usize, 53_000.0, 10),
            (50, 54_500.0, 16),
            (100, 55_000.0, 19),
        ] {
            let (mut total, mut worst, mut rsum) = (0usize, 0usize, 0usize);
            let trials = 200;
            let mut rank: Vec<usize> = (0..n).collect();
            for _ in 0..trials {
                rank.shuffle(&mut p);
                let (got, cmps, rounds) = simulate(&rank, k, 32);
                check(&rank, k, &got);
                total += cmps;
                worst = worst.max(rounds);
                rsum += rounds;
            }
            let mean = total as f64 / trials as f64;
            let mean_rounds = rsum as f64 / trials as f64;
            println!("K = {k}: {mean:.0} comparisons and {mean_rounds:.2} rounds on average, at most {worst} rounds");
            assert!(mean < max_mean_cmp, "K = {k}: {mean}");
            assert!(worst <= max_rounds_seen, "K = {k}: {worst} rounds");
        }
    }
}
