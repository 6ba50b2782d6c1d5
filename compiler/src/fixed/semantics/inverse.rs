//! Inverse powers in few flights: `⌊c / v⌋` (softmax's reciprocal) and `⌊√(c / v)⌋`
//! (LayerNorm's inverse square root) approximated from below by a fixed recipe, exact in
//! integers. SIRNN §V-D and CipherGPT §VII normalise the input to a mantissa and an exponent,
//! seed from a table and refine; here the table is a piecewise-linear spline fine enough to need
//! no Newton step, so the two-party protocol is a fixed, short sequence of batched steps.
//!
//! ```text
//! k = ⌊log₂ v⌋                                  (1 ≤ v_min ≤ v < 2^B)
//! M = v · 2^(B−1−k)                              (the mantissa: 2^(B−1) ≤ M < 2^B)
//! R = B − 1 − T;  R₂ = R − D
//! i = ⌊M / 2^R⌋ − 2^T                            (the segment, T bits)
//! r = ⌊M / 2^R₂⌋ mod 2^D                         (the position in it, D bits)
//! y = C[i] − ⌊S[i]·r / 2^D⌋                      (≈ 2^F_y · m^(−p), m = M / 2^(B−1) ∈ [1, 2))
//! out = ⌊F[k]·y / 2^G⌋                           (≈ c·v^(−p))
//! ```
//! with p = 1 or ½, T = min(8, B − 1) and D = min(14, R). The tables are fitted by integer
//! arithmetic only, so they are a function of (p, c, v_min, B) and need not travel in the plan:
//! - `C[i] = ⌊2^F_y · (1 + i/2^T)^(−p)⌋` for `i ∈ [0, 2^T]` (exact: a floor division, and for
//!   p = ½ the integer square root of one), the spline's nodes;
//! - `S[i] = C[i] − C[i+1] ≥ 0`, the chord's drop over segment i;
//! - `F[k] = ⌊c·2^(−pk)·2^(G−F_y)⌋` (for p = ½: `⌊√(c·2^(2(G−F_y)−k))⌋`), 0 below `v_min`'s
//!   octave;
//! - `G = 61 − bits(⌊c·v_min^(−p)⌋)`, so `F[k]·y < 2^61` for every valid v, and `G ≥ F_y + 2`
//!   is required (the floor of F then costs at most `2^(F_y−G) ≤ ¼` of a unit of the output).
//!
//! Error. m^(−p) is convex, so the chord lies above it, by at most `E_c = 2^F_y·2^(−2T)·max f''/8`
//! (max f'' = 2 for p = 1, ¾ for p = ½); the mantissa bits below r raise y by at most
//! `E_t = 2^F_y·max|f'|·2^(−T−D)` (1 and ½), the floor of `S·r` by less than 1; the floors of the
//! nodes lower it by less than 1. So `2^F_y·m^(−p) − 1 ≤ y ≤ 2^F_y·m^(−p) + E` with
//! `E = E_c + E_t + 1`, and `⌊c·v^(−p)⌋ − 2 ≤ out ≤ c·v^(−p)·(1 + E/2^(F_y−1))`: at most
//! 2^−16.9 above for p = 1 and 2^−18.8 for p = ½ (F_y = 30, T = 8, D = 14). At a power of two
//! the spline is at a node: a reciprocal of a power-of-two numerator is then exact (a softmax
//! row of one entry gives exactly 1). Measured in the tests below.

use super::{isqrt_u128, SemResult, SemanticsError};
use serde::{Deserialize, Serialize};

/// Fractional bits of the spline's value `y`.
pub const INV_Y_FRAC: u32 = 30;
/// Segment index bits (at most; fewer when the input is narrower).
pub const INV_INDEX_BITS: u32 = 8;
/// Position bits within a segment (at most).
pub const INV_POS_BITS: u32 = 14;
/// Widest input: `v < 2^62`.
pub const INV_MAX_IN_BITS: u32 = 62;

/// Which inverse power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvPower {
    /// `⌊c / v⌋`.
    Reciprocal,
    /// `⌊√(c / v)⌋`.
    RecipSqrt,
}

/// The public constants of one inverse power (see the module doc for the recipe).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvTables {
    pub power: InvPower,
    /// `c`.
    pub num: u128,
    /// Smallest valid input.
    pub v_min: u64,
    /// `B`: inputs are below `2^B`.
    pub in_bits: u32,
    /// `T`.
    pub index_bits: u32,
    /// `D`.
    pub pos_bits: u32,
    /// `G`.
    pub out_shift: u32,
    /// `C[i]`, `2^T` entries.
    pub intercept: Vec<i64>,
    /// `S[i] ≥ 0`, `2^T` entries.
    pub slope: Vec<i64>,
    /// `F[k]`, `B` entries.
    pub scale: Vec<i64>,
}

impl InvTables {
    /// `R = B − 1 − T`: the shift from the mantissa to the segment index.
    pub fn index_shift(&self) -> u32 {
        self.in_bits - 1 - self.index_bits
    }

    /// `R₂ = R − D`: the shift from the mantissa to the segment index and position.
    pub fn pos_shift(&self) -> u32 {
        self.index_shift() - self.pos_bits
    }

    /// Bits of the largest output, `⌊c·v_min^(−p)⌋`.
    pub fn out_bits(&self) -> u32 {
        128 - target(self.power, self.num, self.v_min as u128).leading_zeros()
    }
}

/// `⌊c·v^(−p)⌋` exactly.
pub fn target(power: InvPower, num: u128, v: u128) -> u128 {
    match power {
        InvPower::Reciprocal => num / v,
        InvPower::RecipSqrt => isqrt_u128(num / v),
    }
}

/// `⌊2^F_y·(1 + i/2^T)^(−p)⌋`.
fn y_ref(power: InvPower, i: u64, t: u32) -> i64 {
    let den = (1u128 << t) + i as u128;
    let y = match power {
        InvPower::Reciprocal => (1u128 << (INV_Y_FRAC + t)) / den,
        InvPower::RecipSqrt => isqrt_u128((1u128 << (2 * INV_Y_FRAC + t)) / den),
    };
    y as i64
}

/// The tables of `⌊c·v^(−p)⌋` for inputs `v_min ≤ v < 2^in_bits` (see the module doc).
/// Errors: `v_min` not in `[1, 2^in_bits)`, `in_bits` not in `2..=62`, `c ≥ 2^100`, or an
/// output range too wide for the 61-bit product (`G < F_y + 2`).
pub fn inv_tables(power: InvPower, num: u128, v_min: u64, in_bits: u32) -> SemResult<InvTables> {
    let bad = |m: String| Err(SemanticsError::new("inv_tables", m));
    if !(2..=INV_MAX_IN_BITS).contains(&in_bits) || v_min == 0 || v_min >> in_bits != 0 {
        return bad(format!(
            "input range [{v_min}, 2^{in_bits}) is not within [1, 2^{INV_MAX_IN_BITS})"
        ));
    }
    if num >> 100 != 0 || num == 0 {
        return bad(format!("numerator {num} is not in [1, 2^100)"));
    }
    let t = INV_INDEX_BITS.min(in_bits - 1);
    let d = INV_POS_BITS.min(in_bits - 1 - t);
    let top = target(power, num, v_min as u128);
    let g = 61i64 - (128 - top.leading_zeros()) as i64;
    if g < (INV_Y_FRAC + 2) as i64 {
        return bad(format!(
            "outputs up to {top} leave {g} bits of output shift, below {}",
            INV_Y_FRAC + 2
        ));
    }
    let g = g as u32;
    let nodes: Vec<i64> = (0..=1u64 << t).map(|i| y_ref(power, i, t)).collect();
    let intercept = nodes[..1 << t].to_vec();
    let slope = nodes.windows(2).map(|w| w[0] - w[1]).collect();
    let k_min = 63 - v_min.leading_zeros();
    let scale = (0..in_bits)
        .map(|k| {
            if k < k_min {
                return 0;
            }
            let up = g - INV_Y_FRAC;
            let f = match power {
                InvPower::Reciprocal => (num << up) >> k,
                InvPower::RecipSqrt => isqrt_u128((num << (2 * up)) >> k),
            };
            f as i64
        })
        .collect();
    Ok(InvTables {
        power,
        num,
        v_min,
        in_bits,
        index_bits: t,
        pos_bits: d,
        out_shift: g,
        intercept,
        slope,
        scale,
    })
}

/// The recipe's parts for one input: `(k, i, r, y)` (see the module doc); the protocol's tests
/// check its intermediate values against these.
pub fn inv_parts(v: u64, t: &InvTables) -> SemResult<(u32, usize, u64, i64)> {
    if v < t.v_min || v >> t.in_bits != 0 {
        return Err(SemanticsError::new(
            "inv_pow",
            format!("input {v} is not in [{}, 2^{})", t.v_min, t.in_bits),
        ));
    }
    let k = 63 - v.leading_zeros();
    let m = v << (t.in_bits - 1 - k);
    let i = ((m >> t.index_shift()) - (1u64 << t.index_bits)) as usize;
    let r = (m >> t.pos_shift()) & ((1u64 << t.pos_bits) - 1);
    let y = t.intercept[i] - ((t.slope[i] as i128 * r as i128) >> t.pos_bits) as i64;
    Ok((k, i, r, y))
}

/// `out = ⌊F[k]·y / 2^G⌋`, the recipe's approximation of `⌊c·v^(−p)⌋`. Errors when
/// `v` is outside `[v_min, 2^B)`.
pub fn inv_pow(v: u64, t: &InvTables) -> SemResult<i64> {
    let (k, _, _, y) = inv_parts(v, t)?;
    Ok(((t.scale[k as usize] as i128 * y as i128) >> t.out_shift) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The error bound's `E = E_c + E_t + 1` of the module doc, in units of `2^−F_y`.
    fn spline_bound(t: &InvTables) -> f64 {
        let (f2, f1) = match t.power {
            InvPower::Reciprocal => (2.0, 1.0),
            InvPower::RecipSqrt => (0.75, 0.5),
        };
        let fy = (1u64 << INV_Y_FRAC) as f64;
        fy * (f2 / 8.0 * 0.25f64.powi(t.index_bits as i32)
            + f1 * 0.5f64.powi((t.index_bits + t.pos_bits) as i32))
            + 1.0
    }

    /// Checks `exact − 2 ≤ out ≤ exact·(1 + E/2^(F_y−1)) + 1` on random inputs and the edges of
    /// every octave; returns the largest relative excess and the largest shortfall.
    fn deviation(t: &InvTables, seed: u64, randoms: usize) -> (f64, u128) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut inputs: Vec<u64> = vec![t.v_min, (1u64 << t.in_bits) - 1];
        for k in 0..t.in_bits {
            inputs.extend([1u64 << k, (1u64 << k) + 1, (2u64 << k) - 1]);
        }
        inputs.extend((0..randoms).map(|_| {
            let k = rng.gen_range(0..t.in_bits);
            (1u64 << k) | (rng.gen::<u64>() & ((1u64 << k) - 1))
        }));
        let rel_bound = spline_bound(t) / (1u64 << (INV_Y_FRAC - 1)) as f64;
        let (mut over, mut under) = (0f64, 0u128);
        for v in inputs
            .into_iter()
            .filter(|&v| v >= t.v_min && v >> t.in_bits == 0)
        {
            let exact = target(t.power, t.num, v as u128);
            let out = inv_pow(v, t).unwrap();
            assert!(out >= 0, "v = {v}: {out}");
            let out = out as u128;
            assert!(out + 2 >= exact, "v = {v}: {out} below {exact} - 2");
            let excess = out.saturating_sub(exact) as f64;
            assert!(
                excess <= exact as f64 * rel_bound + 1.0,
                "v = {v}: {out} above {exact} by more than the bound"
            );
            over = over.max((excess - 1.0).max(0.0) / exact.max(1) as f64);
            under = under.max(exact.saturating_sub(out));
        }
        (over, under)
    }

    #[test]
    fn reciprocal_of_softmax_sums_is_close_and_exact_at_powers_of_two() {
        // Softmax's 2^34 / Z, Z ∈ [2^14, 2^34].
        let t = inv_tables(InvPower::Reciprocal, 1 << 34, 1 << 14, 35).unwrap();
        assert_eq!((t.index_bits, t.pos_bits, t.out_shift), (8, 14, 40));
        let (over, under) = deviation(&t, 1, 20_000);
        assert!(over < 2f64.powf(-16.9), "relative excess {over:e}");
        assert!(under <= 2, "shortfall {under}");
        for k in 14..=34 {
            assert_eq!(inv_pow(1 << k, &t), Ok(1 << (34 - k)));
        }
    }

    #[test]
    fn inverse_square_root_of_layernorm_variances_is_close() {
        // GPT-2 small's N = 768·2^48 and v_eps = 18.
        let t = inv_tables(InvPower::RecipSqrt, 768u128 << 48, 18, 62).unwrap();
        assert_eq!(t.out_shift, 34);
        let (over, under) = deviation(&t, 2, 20_000);
        assert!(over < 2f64.powf(-18.8), "relative excess {over:e}");
        assert!(under <= 2, "shortfall {under}");
    }

    #[test]
    fn narrow_inputs_clip_the_segment_and_position_bits() {
        for b in 2..=12u32 {
            for power in [InvPower::Reciprocal, InvPower::RecipSqrt] {
                let t = inv_tables(power, 1 << 20, 1, b).unwrap();
                assert!(t.index_bits < b && t.index_bits + t.pos_bits < b);
                // Every input of the range, checked against the bound.
                let (_, under) = deviation(&t, 3, 1 << b);
                assert!(under <= 2, "{power:?}, B = {b}: shortfall {under}");
            }
        }
    }

    #[test]
    fn refusals_name_the_range() {
        let t = inv_tables(InvPower::Reciprocal, 1 << 34, 1 << 14, 35).unwrap();
        assert!(inv_pow((1 << 14) - 1, &t)
            .unwrap_err()
            .msg
            .contains("not in"));
        assert!(inv_pow(1 << 35, &t).is_err());
        assert!(inv_tables(InvPower::Reciprocal, 1 << 34, 0, 35).is_err());
        assert!(inv_tables(InvPower::Reciprocal, 1 << 34, 1, 63).is_err());
        // Outputs of 2^40 leave no room for the 61-bit product.
        assert!(inv_tables(InvPower::Reciprocal, 1 << 40, 1, 35).is_err());
    }
}
