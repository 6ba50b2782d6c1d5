//! Inverse powers in few flights: `⌊c / v⌋` (softmax's reciprocal) and `⌊√(c / v)⌋`
//! (LayerNorm's inverse square root) approximated by a fixed recipe, exact in integers.
//! SIRNN §V-D and CipherGPT §VII normalise the input to a mantissa and an exponent, seed from a
//! table and refine; here the table is a piecewise-linear spline fine enough to need no Newton
//! step, so the two-party protocol is a fixed, short sequence of batched steps.
//!
//! ```text
//! k = ⌊log₂ v⌋                                  (1 ≤ v_min ≤ v < 2^B)
//! M = v · 2^(B−1−k)                              (the mantissa: 2^(B−1) ≤ M < 2^B)
//! R = B − 1 − T;  R₂ = R − D
//! i = ⌊M / 2^R⌋ − 2^T                            (the segment, T bits)
//! r = ⌊M / 2^R₂⌋ mod 2^D                         (the position in it, D bits)
//! y = C[i]·2^D − S[i]·r                          (≈ 2^F_y · m^(−p), m = M / 2^(B−1) ∈ [1, 2))
//! out = ⌊F[k]·y / 2^G⌋                           (≈ c·v^(−p))
//! ```
//! with p = 1 or ½. The tables are fitted by integer arithmetic only, so they are a function of
//! (p, c, v_min, B) and need not travel in the plan:
//! - `G = 61 − bits(⌊c·v_min^(−p)⌋)`, so `F[k]·y < 2^62` for every valid v, and `F_y = G − 2`
//!   (at least 20 is required), so the floor of F costs at most ¼ of a unit of the output;
//! - `T = min(8, B − 1)` segments bits and `D = min(14, ⌊(F_y − 1 − T)/2⌋, B − 1 − T)` position
//!   bits, which balances the mantissa bits dropped below r against the nodes' precision;
//! - `C[i] = ⌊2^(F_y−D) · (1 + i/2^T)^(−p)⌋` for `i ∈ [0, 2^T]` (exact: a floor division, and
//!   for p = ½ the integer square root of one), the spline's nodes, and `S[i] = C[i] − C[i+1]`;
//! - `F[k] = ⌊c·2^(−pk)·2^(G−F_y)⌋` (for p = ½: `⌊√(c·2^(2(G−F_y)−k))⌋`), 0 below `v_min`'s
//!   octave.
//!
//! Error. m^(−p) is convex, so the chord lies above it, by at most `E_c = 2^F_y·2^(−2T)·max f''/8`
//! (max f'' = 2 for p = 1, ¾ for p = ½), and the mantissa bits below r raise y by at most
//! `E_t = 2^F_y·max|f'|·2^(−T−D)` (1 and ½); the floors of the nodes lower it by less than
//! `2^D`. So `2^F_y·m^(−p) − 2^D < y ≤ 2^F_y·m^(−p) + E_c + E_t`, and out lies within
//! `(E_c + E_t)/2^(F_y−1)` above and `2^D/2^(F_y−1)` below `c·v^(−p)`, plus the floors (2 units):
//! for LayerNorm (p = ½, F_y = 32, D = 11) 2^−18.4 above and 2^−20 below, for softmax (p = 1,
//! F_y = 38, D = 14) 2^−16.9 above and 2^−23 below. At a power of two the spline is at a node: a
//! reciprocal of a power-of-two numerator is then exact (a softmax row of one entry is exactly 1).
//! Measured in the tests below.

use super::{isqrt_u128, SemResult, SemanticsError};
use serde::{Deserialize, Serialize};

/// Fewest fractional bits of the spline's value `y`.
pub const INV_MIN_Y_FRAC: u32 = 20;
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
    /// `F_y`: fractional bits of y.
    pub y_frac: u32,
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
}

/// `⌊c·v^(−p)⌋` exactly.
pub fn target(power: InvPower, num: u128, v: u128) -> u128 {
    match power {
        InvPower::Reciprocal => num / v,
        InvPower::RecipSqrt => isqrt_u128(num / v),
    }
}

/// `⌊2^frac·(1 + i/2^T)^(−p)⌋`.
fn node(power: InvPower, i: u64, t: u32, frac: u32) -> i64 {
    let den = (1u128 << t) + i as u128;
    let y = match power {
        InvPower::Reciprocal => (1u128 << (frac + t)) / den,
        InvPower::RecipSqrt => isqrt_u128((1u128 << (2 * frac + t)) / den),
    };
    y as i64
}

/// The tables of `⌊c·v^(−p)⌋` for inputs `v_min ≤ v < 2^in_bits` (see the module doc).
/// Errors: `v_min` not in `[1, 2^in_bits)`, `in_bits` not in `2..=62`, `c ≥ 2^100`, or an
/// output range too wide for the 61-bit product (`G < 22`).
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
    let top = target(power, num, v_min as u128);
    let g = 61i64 - (128 - top.leading_zeros()) as i64;
    if g < (INV_MIN_Y_FRAC + 2) as i64 {
        return bad(format!(
            "outputs up to {top} leave {g} bits of output shift, below {}",
            INV_MIN_Y_FRAC + 2
        ));
    }
    let g = g as u32;
    let fy = g - 2;
    let d = INV_POS_BITS.min((fy - 1 - t) / 2).min(in_bits - 1 - t);
    let nodes: Vec<i64> = (0..=1u64 << t).map(|i| node(power, i, t, fy - d)).collect();
    let intercept = nodes[..1 << t].to_vec();
    let slope = nodes.windows(2).map(|w| w[0] - w[1]).collect();
    let k_min = 63 - v_min.leading_zeros();
    let scale = (0..in_bits)
        .map(|k| {
            if k < k_min {
                return 0;
            }
            let up = g - fy;
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
        y_frac: fy,
        out_shift: g,
        intercept,
        slope,
        scale,
    })
}

/// The recipe's exponent k and spline value y for one input (see the module doc).
fn exponent_and_spline(v: u64, t: &InvTables) -> SemResult<(u32, i64)> {
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
    let y = (t.intercept[i] << t.pos_bits) - t.slope[i] * r as i64;
    Ok((k, y))
}

/// `out = ⌊F[k]·y / 2^G⌋`, the recipe's approximation of `⌊c·v^(−p)⌋`. Errors when
/// `v` is outside `[v_min, 2^B)`.
pub fn inv_pow(v: u64, t: &InvTables) -> SemResult<i64> {
    let (k, y) = exponent_and_spline(v, t)?;
    Ok(((t.scale[k as usize] as i128 * y as i128) >> t.out_shift) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The module doc's bounds in units of `2^−F_y`: above `E_c + E_t`, below `2^D`.
    fn spline_bounds(t: &InvTables) -> (f64, f64) {
        let (f2, f1) = match t.power {
            InvPower::Reciprocal => (2.0, 1.0),
            InvPower::RecipSqrt => (0.75, 0.5),
        };
        let fy = 2f64.powi(t.y_frac as i32);
        let over = fy
            * (f2 / 8.0 * 0.25f64.powi(t.index_bits as i32)
                + f1 * 0.5f64.powi((t.index_bits + t.pos_bits) as i32));
        (over, 2f64.powi(t.pos_bits as i32))
    }

    /// Checks `exact·(1 − below) − 2 ≤ out ≤ exact·(1 + above) + 1` (relative bounds from
    /// [`spline_bounds`] over `2^(F_y−1)`) on random inputs and the edges of every octave;
    /// returns the largest relative excess and shortfall beyond the floors.
    fn deviation(t: &InvTables, seed: u64, randoms: usize) -> (f64, f64) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut inputs: Vec<u64> = vec![t.v_min, (1u64 << t.in_bits) - 1];
        for k in 0..t.in_bits {
            inputs.extend([1u64 << k, (1u64 << k) + 1, (2u64 << k) - 1]);
        }
        inputs.extend((0..randoms).map(|_| {
            let k = rng.gen_range(0..t.in_bits);
            (1u64 << k) | (rng.gen::<u64>() & ((1u64 << k) - 1))
        }));
        let (above, below) = spline_bounds(t);
        let unit = 2f64.powi(t.y_frac as i32 - 1);
        let (mut over, mut under) = (0f64, 0f64);
        for v in inputs
            .into_iter()
            .filter(|&v| v >= t.v_min && v >> t.in_bits == 0)
        {
            let exact = target(t.power, t.num, v as u128) as f64;
            let out = inv_pow(v, t).unwrap();
            assert!(out >= 0, "v = {v}: {out}");
            let out = out as f64;
            assert!(
                out <= exact * (1.0 + above / unit) + 1.0,
                "v = {v}: {out} over {exact}"
            );
            assert!(
                out >= exact * (1.0 - below / unit) - 2.0,
                "v = {v}: {out} under {exact}"
            );
            over = over.max((out - exact - 1.0).max(0.0) / exact.max(1.0));
            under = under.max((exact - out - 2.0).max(0.0) / exact.max(1.0));
        }
        (over, under)
    }

    #[test]
    fn reciprocal_of_softmax_sums_is_close_and_exact_at_powers_of_two() {
        // Softmax's 2^34 / Z, Z ∈ [2^14, 2^34].
        let t = inv_tables(InvPower::Reciprocal, 1 << 34, 1 << 14, 35).unwrap();
        assert_eq!(
            (t.index_bits, t.pos_bits, t.y_frac, t.out_shift),
            (8, 14, 38, 40)
        );
        let (over, under) = deviation(&t, 1, 20_000);
        assert!(over < 2f64.powf(-16.9), "relative excess {over:e}");
        assert!(under < 2f64.powf(-23.0), "relative shortfall {under:e}");
        for k in 14..=34 {
            assert_eq!(inv_pow(1 << k, &t), Ok(1 << (34 - k)));
        }
    }

    #[test]
    fn inverse_square_root_of_layernorm_variances_is_close() {
        // GPT-2 small's N = 768·2^48 and v_eps = 18.
        let t = inv_tables(InvPower::RecipSqrt, 768u128 << 48, 18, 62).unwrap();
        assert_eq!((t.pos_bits, t.y_frac, t.out_shift), (11, 32, 34));
        let (over, under) = deviation(&t, 2, 20_000);
        assert!(over < 2f64.powf(-18.4), "relative excess {over:e}");
        assert!(under < 2f64.powf(-20.0), "relative shortfall {under:e}");
    }

    #[test]
    fn narrow_inputs_clip_the_segment_and_position_bits() {
        for b in 2..=12u32 {
            for power in [InvPower::Reciprocal, InvPower::RecipSqrt] {
                let t = inv_tables(power, 1 << 20, 1, b).unwrap();
                assert!(t.index_bits < b && t.index_bits + t.pos_bits < b);
                // Every input of the range, checked against the bounds.
                deviation(&t, 3, 1 << b);
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
        // Outputs of 2^39 leave no room for 20 fractional bits of y in the 61-bit product.
        assert!(inv_tables(InvPower::Reciprocal, 1 << 39, 1, 35).is_err());
        assert!(inv_tables(InvPower::Reciprocal, 1 << 38, 1, 35).is_ok());
    }
}
