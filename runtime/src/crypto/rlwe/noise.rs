//! The noise budget of a returned ciphertext: how much flooding hides the weights, which modulus
//! 2^k the result is switched to, and how many low bits of `b` can be dropped — all from public
//! quantities (ℓ, the weight bound, the number of terms), so both parties derive the same values.
//!
//! **The session's bound.** Key pairs live for one session, and an evaluator returns at most
//! M = 2^[`SESSION_COEFF_BITS`] coefficients in a session, under all of the peer's keys together
//! (counted by the keys' shared [`super::eval::ReturnCount`] and enforced by
//! [`super::eval::finalize`]). Every per-coefficient probability below is 2^−(42+36), so that
//! over what a party receives in a session the bound on the weight-dependent noise fails with
//! probability ≤ 2^−42 and the flooding's statistical distance is ≤ 2^−42: **2^−41 < 2^−40 per
//! session** in all, by a union bound over the M coefficients (a hybrid over them for the
//! distance).
//!
//! **Before the switch** (modulus q, Δ = q/2^ℓ) a returned coefficient carries
//! - E = Σ e_j·w_j over the `terms` products of the client's encryption error e (centred binomial,
//!   sub-Gaussian with variance proxy η/2 = 10.5) with weights |w| ≤ B: sub-Gaussian with proxy
//!   10.5·terms·B², so |E| ≤ [`TAIL`]·√(10.5·terms)·B except with probability 2^−(42+36);
//! - ε·w: the encodings ⌊q·x/2^ℓ⌉ of the two shares are each off by ≤ 1/2, so every one of the
//!   `eps_terms` products of a share with a weight adds at most B;
//! - the re-randomisation e₀ = e₂·s + u·e_pk + e₁ of Enc_pk(0): |e₀| ≤ (2N + 1)·η;
//! - the flood F, uniform in [−B_F, B_F] with B_F = ⌈2^(41+36)·E_max⌉, E_max the sum of the
//!   three bounds above. B_F must stay below 2^[`MAX_FLOOD_BITS`] (it is drawn as a 128-bit
//!   integer): a wider one is refused like a budget overrun, and the limb searches take
//!   narrower limbs.
//!
//! Statistical distance of what the key owner sees from a weight-independent simulation, per
//! returned coefficient: Pr[|E| > E_max] + E_max/(2B_F + 1) ≤ 2^−(42+36) + 2^−(42+36); times M.
//!
//! **After the switch** to 2^k, k = ℓ + D (Δ′ = 2^D): the noise is (B_F + E_max)·2^k/q, plus the
//! switch's rounding of `b` (≤ c = 1/2 + 2^(k−1)/p0·(1 + 1/p1 + …) + 2^−9: RNS rescales by the
//! last primes, then the rounded p0 → 2^k step), plus Σ_j τ_j·s_j for the rounding errors τ_j of
//! `a` (|τ_j| ≤ c, taken as independent: ≤ TAIL·√N·c except with probability 2^−(42+36)), plus
//! 2^(d−1) from dropping d low bits of `b`. Decryption is exact when the sum is below Δ′/2. D is
//! the smallest that fits (it sets the size of `a`, N·k bits, which dominates the response),
//! then d the largest. k ≤ 54 keeps 2^k below p0, which the switch needs, and bounds ℓ by 43.

use super::params::{Plain, MODULI, N, P0, PRIMES};
use crate::net::NetError;

/// log₂ of the most coefficients a party returns in one session, under all of the peer's keys.
pub const SESSION_COEFF_BITS: u32 = 36;
/// Statistical security of the flooding, in bits, per session.
pub const STAT_BITS: u32 = 40;
/// √(2·ln 2^(1+42+36)): a sub-Gaussian variable exceeds TAIL standard proxies with probability
/// ≤ 2^−(42+36) (two tails).
pub const TAIL: f64 = 10.4651;
/// Largest switch target: 2^k < p0.
pub const MAX_SWITCH_BITS: u32 = 54;
/// Floods are below 2^MAX_FLOOD_BITS (the sampler draws them as 128-bit integers).
pub const MAX_FLOOD_BITS: u32 = 125;

/// How one returned ciphertext is flooded, switched and compressed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputParams {
    /// The switch target 2^k (k = ℓ + D).
    pub k: u32,
    /// Bits of each returned `b` coefficient (k minus the dropped low bits).
    pub b_bits: u32,
    /// Flooding bound B_F: each returned `b` gets a uniform integer in [−B_F, B_F].
    pub flood: u128,
    /// E_max, the bound on the weight-dependent noise that the flood hides.
    pub e_max: f64,
    /// The bound on the noise after the switch, in units of 2^k (exact decryption needs < 2^(D−1)).
    pub switched_bound: f64,
}

impl OutputParams {
    /// Bytes of one returned ciphertext with `coeffs` coefficients of `b`.
    pub fn response_bytes(&self, coeffs: usize) -> usize {
        (N * self.k as usize).div_ceil(8) + (coeffs * self.b_bits as usize).div_ceil(8)
    }
}

/// The bound on each rounding error of the switch q → p0 → 2^k.
pub fn switch_rounding(k: u32) -> f64 {
    // Each rescale's rounding (≤ 1/2 of the modulus left) reaches p0 divided by the primes
    // dropped after it: 1 + 1/p1 + 1/(p1·p2) + … halves, then scaled by 2^k/p0.
    let (mut carried, mut scale) = (1.0, 1.0);
    for &p in &MODULI[1..PRIMES - 1] {
        scale /= p as f64;
        carried += scale;
    }
    0.5 + (1u64 << (k - 1)) as f64 / P0 as f64 * carried + 1.0 / 512.0
}

/// The parameters for returning products whose every output coefficient sums `terms` products
/// e_j·w_j (|w| ≤ `weight_bound`) and `eps_terms` products of an encoded share with a weight.
/// `InvalidArgument` when no switch target fits the budget (ℓ too large for these weights).
pub fn output_params(
    plain: Plain,
    weight_bound: u64,
    terms: usize,
    eps_terms: usize,
) -> Result<OutputParams, NetError> {
    let b = weight_bound as f64;
    let eta = super::params::ETA as f64;
    let e_max = TAIL * (eta / 2.0 * terms as f64).sqrt() * b
        + eps_terms as f64 * b
        + (2 * N + 1) as f64 * eta;
    let flood_f = (e_max * 2f64.powi((STAT_BITS + 1 + SESSION_COEFF_BITS) as i32)).ceil();
    let l = plain.bits;
    let exceeded = || {
        NetError::InvalidArgument(format!(
            "RLWE noise budget exceeded at ℓ = {l}: flooding weights up to {weight_bound} over \
             {terms} terms needs 2^{:.1} of Δ = 2^{:.1}; use narrower weights (more limbs) or a \
             smaller ring",
            flood_f.log2(),
            plain.log2_delta()
        ))
    };
    // The flood is drawn as a u128 (`sample::flood`), and no budget holds a wider one.
    if flood_f >= 2f64.powi(MAX_FLOOD_BITS as i32) {
        return Err(exceeded());
    }
    let flood = flood_f as u128 + 1;
    let q = super::params::ring().q_f64();
    for d in 1..=MAX_SWITCH_BITS.saturating_sub(l) {
        let k = l + d;
        let c = switch_rounding(k);
        let base = (flood as f64 + e_max) * 2f64.powi(k as i32) / q * (1.0 + 1e-9)
            + c
            + TAIL * (N as f64).sqrt() * c;
        let half = 2f64.powi(d as i32 - 1);
        if base >= half {
            continue;
        }
        let drop = (0..=d)
            .rev()
            .find(|&j| base + if j == 0 { 0.0 } else { 2f64.powi(j as i32 - 1) } < half)
            .unwrap_or(0);
        return Ok(OutputParams {
            k,
            b_bits: k - drop,
            flood,
            e_max,
            switched_bound: base
                + if drop == 0 {
                    0.0
                } else {
                    2f64.powi(drop as i32 - 1)
                },
        });
    }
    Err(exceeded())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_matches_the_report_at_l37_and_fails_when_it_must() {
        // QKV decode window: K = 768, n_i = n_o = 64 terms per coefficient, 16-bit weights.
        let p = Plain::new(37).unwrap();
        let o = output_params(p, 1 << 15, 768 * 64, 768).unwrap();
        assert_eq!((o.k, o.b_bits), (47, 41), "{o:?}");
        let flood = (o.flood as f64).log2();
        assert!(flood > 104.5 && flood < 105.5, "flood 2^{flood}");
        // The flood is 2^(41+36) times E_max and leaves Δ/2 = q/2^38 at least 2^20 of room.
        assert!((flood - (o.e_max.log2() + 77.0)).abs() < 0.01);
        assert!(flood < p.log2_delta() - 1.0 - 20.0);
        assert!(o.switched_bound < 512.0);
        // ℓ = 43 still fits 16-bit weights (k = 54, the widest switch); 32-bit weights over 2^20
        // terms do not fit the budget.
        let p = Plain::new(43).unwrap();
        assert_eq!(output_params(p, 1 << 15, 768 * 64, 768).unwrap().k, 54);
        assert!(matches!(
            output_params(p, 1 << 31, 1 << 20, 1 << 10),
            Err(NetError::InvalidArgument(_))
        ));
        // At ℓ = 16 the rounding of `a` sets D = 10.
        let p = Plain::new(16).unwrap();
        let o = output_params(p, 1 << 15, 4096, 128).unwrap();
        assert_eq!(o.k, 26);
        // Wide weights over many terms: a flood past 2^125 (which Δ = 2^149 would still hold at
        // ℓ = 16) is refused, not wrapped around.
        let wide = output_params(p, 1 << 31, 1 << 37, 1 << 24);
        assert!(
            matches!(wide, Err(NetError::InvalidArgument(_))),
            "{wide:?}"
        );
        let o = output_params(p, 1 << 31, 1 << 20, 1 << 10).unwrap();
        assert!(o.flood > 1 << 120 && o.flood < 1 << MAX_FLOOD_BITS, "{o:?}");
    }
}
