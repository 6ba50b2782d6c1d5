//! Top-K sampling: the temperature, the plaintext reference and the two-party draw from the
//! K selected logits ([`sample_with`]).

use ciphergpt_compiler::fixed::semantics::{self, ExpTables};
use ciphergpt_compiler::plan::Sample;

use super::{bad, TopK};
use crate::net::{Channel, Role};
use crate::protocols::shares::{recv_reveal, reveal_to_peer, Ring};
use crate::protocols::{b2a::b2a, cmp, mul, mux, softmax, trunc};
use crate::protocols::{Party, ProtocolError};

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
