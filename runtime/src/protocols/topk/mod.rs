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

mod sample;
mod selection;

pub use sample::{sample, sample_bits, sample_reference, sample_with, Temperature};
pub use selection::select;

use ciphergpt_compiler::fixed::semantics;

use super::shares::{exchange, Ring};
use super::shuffle::{random_permutation, shuffle_with, ShuffleParams};
use super::{b2a::b2a, cmp};
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
