//! GELU: `2^s`-piece linear spline on `[−α, α]` (CipherGPT Algorithm 1, bit-slice indexed).

use super::{decode, to_i64, SemResult, SemanticsError};
use serde::{Deserialize, Serialize};

/// Which GELU the spline approximates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GeluForm {
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` — GPT-2's `gelu_new`.
    Tanh,
    /// `0.5·x·(1 + erf(x/√2))` — the exact GELU.
    Erf,
}

/// The float GELU of the given form (reference and fitting only; uses `libm`).
pub fn gelu_float(x: f64, form: GeluForm) -> f64 {
    match form {
        GeluForm::Tanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + libm::tanh(k * (x + 0.044715 * x * x * x)))
        }
        GeluForm::Erf => 0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2)),
    }
}

/// Public tables of the GELU spline.
///
/// With `B = 2^(alpha_log2 + frac)` (α in fixed point) and `w = alpha_log2 + 1 + frac −
/// pieces_log2` (bits per interval), piece `i ∈ [0, 2^pieces_log2)` covers the integer inputs
/// `x ∈ [−B + i·2^w, −B + (i+1)·2^w)`, i.e. the real interval starting at
/// `x_i = −α + i·2α/2^pieces_log2` (for the defaults `x_i = −4 + i/8`, `w = 9`).
/// `slope[i] = A_i ≈ a_i·2^frac` and `intercept[i] = C_i ≈ (a_i·x_i + d_i)·2^(2·frac)` where
/// `a_i·x + d_i` is the piece's line; see [`gelu`] for the evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeluTables {
    /// Fractional bits of input and output (`f`, default 12).
    pub frac: u32,
    /// `α = 2^alpha_log2` (default 2 ⇒ α = 4).
    pub alpha_log2: u32,
    /// `s`: there are `2^s` pieces (default 6 ⇒ 64).
    pub pieces_log2: u32,
    /// The GELU the tables were fitted to.
    pub form: GeluForm,
    /// `A`, `2^s` entries.
    pub slope: Vec<i64>,
    /// `C`, `2^s` entries.
    pub intercept: Vec<i64>,
}

impl GeluTables {
    /// `B = 2^(alpha_log2 + frac)`: α in fixed point.
    pub fn bound(&self) -> i64 {
        1i64 << (self.alpha_log2 + self.frac)
    }

    /// `w = alpha_log2 + 1 + frac − pieces_log2`: bits of the offset within a piece.
    pub fn piece_bits(&self) -> u32 {
        self.alpha_log2 + 1 + self.frac - self.pieces_log2
    }

    /// The spline's intermediate `z = slope·r + intercept` over every piece and offset
    /// `r ∈ [0, 2^w)`: its range `[lo, hi]`, the bias β ≥ 0 (a multiple of 2^frac) that makes it
    /// non-negative, and the bits `m ≥ frac + 1` of `[0, 2·(hi + β)]` that the two-party GELU
    /// computes it in (`ℓ ≥ m` is needed). Assumes [`GeluTables::validate`] passed.
    pub fn spline_range(&self) -> (i128, i128, i128, u32) {
        let r_max = (1i128 << self.piece_bits()) - 1;
        let (mut lo, mut hi) = (i128::MAX, i128::MIN);
        for (&a, &c) in self.slope.iter().zip(&self.intercept) {
            // Linear in r: the extremes are at the ends.
            for r in [0, r_max] {
                let z = a as i128 * r + c as i128;
                lo = lo.min(z);
                hi = hi.max(z);
            }
        }
        let one = 1i128 << self.frac;
        let bias = if lo < 0 {
            (-lo + one - 1) / one * one
        } else {
            0
        };
        let m = (129 - (hi + bias).leading_zeros()).max(self.frac + 1);
        (lo, hi, bias, m)
    }

    /// The narrowest ring the two-party GELU takes for these tables: inputs in
    /// `[−2^(ℓ−2), 2^(ℓ−2))` must cover `±2^(alpha_log2+frac)`, and the spline needs `m` bits.
    pub fn min_ring_bits(&self) -> u32 {
        (self.alpha_log2 + self.frac + 2).max(self.spline_range().3)
    }

    /// Shape checks: `frac ≤ 30`, `alpha_log2 ≤ 16`, `pieces_log2 ≤ min(16, alpha_log2+frac+1)`,
    /// both tables of length `2^pieces_log2`. (Table *values* are not restricted: [`gelu`]
    /// evaluates in `i128` and errors if the result leaves `i64`.)
    pub fn validate(&self) -> SemResult<()> {
        let f = "gelu";
        if self.frac > 30 {
            return Err(SemanticsError::new(f, format!("frac {} > 30", self.frac)));
        }
        if self.alpha_log2 > 16 {
            return Err(SemanticsError::new(
                f,
                format!("alpha_log2 {} > 16", self.alpha_log2),
            ));
        }
        if self.pieces_log2 > 16 || self.pieces_log2 > self.alpha_log2 + self.frac + 1 {
            return Err(SemanticsError::new(
                f,
                format!(
                    "pieces_log2 {} exceeds min(16, alpha_log2 + frac + 1 = {})",
                    self.pieces_log2,
                    self.alpha_log2 + self.frac + 1
                ),
            ));
        }
        let n = 1usize << self.pieces_log2;
        if self.slope.len() != n || self.intercept.len() != n {
            return Err(SemanticsError::new(
                f,
                format!(
                    "tables have {} slopes and {} intercepts, expected {n} of each",
                    self.slope.len(),
                    self.intercept.len()
                ),
            ));
        }
        Ok(())
    }
}

/// GELU of one fixed-point value (scale `2^frac` in and out):
/// ```text
/// B = 1 << (alpha_log2 + frac);  xp = x + B            (in i128: no overflow for any x)
/// if xp < 0   → 0                                        (x < −α)
/// if xp ≥ 2B  → x                                        (x ≥ α)
/// w = alpha_log2 + 1 + frac − pieces_log2;  i = xp >> w;  r = xp & (2^w − 1)
/// return (A[i]·r + C[i]) >> frac                         (floor)
/// ```
/// Errors only on malformed tables (shape, or a result outside `i64`).
pub fn gelu(x: i64, t: &GeluTables) -> SemResult<i64> {
    t.validate()?;
    let b = t.bound() as i128;
    let xp = x as i128 + b;
    if xp < 0 {
        return Ok(0);
    }
    if xp >= 2 * b {
        return Ok(x);
    }
    let w = t.piece_bits();
    let i = (xp >> w) as usize;
    let r = xp & ((1i128 << w) - 1);
    let y = (t.slope[i] as i128 * r + t.intercept[i] as i128) >> t.frac;
    to_i64("gelu", &format!("output for x = {x}"), y)
}

/// How far from `A0` (the secant slope) the fit searches for the best slope, in units.
const GELU_SLOPE_SEARCH: i64 = 16;
/// Intercepts tried per slope within the feasible range of the discrete minimax error.
const GELU_INTERCEPT_SAMPLES: i128 = 16;

/// Fit the GELU spline tables by a discrete minimax search.
///
/// For each piece `i` with integer start `X_i = −B + i·2^w` the target is
/// `y(r) = round(2^f·GELU((X_i + r)/2^f))`, `r ∈ [0, 2^w)`. For each slope `A` within
/// ±16 units of the secant slope `A0 = round(2^f·(g(2^w) − g(0))/2^w)` (`g = 2^f·GELU`), the
/// smallest integer error `M = max_r |((A·r + C) >> f) − y(r)|` over all intercepts `C` is found
/// exactly: with `k_r = y(r)·2^f − A·r`, `L = max k_r`, `U = min k_r`, error `≤ M` holds iff
/// `L − M·2^f ≤ C ≤ U + (M+1)·2^f − 1`, so `M = max(0, ⌈(L − U − 2^f + 1)/2^(f+1)⌉)`.
/// Among the `(A, C)` reaching the smallest `M` (C sampled over its feasible range, including
/// the centre, the "mid-deviation intercept"), the one with the smallest max error against the
/// unrounded `g(r)`, then the smallest total error, wins. Deterministic (`libm` floats).
pub fn fit_gelu(
    frac: u32,
    alpha_log2: u32,
    pieces_log2: u32,
    form: GeluForm,
) -> SemResult<GeluTables> {
    let pieces = 1usize.checked_shl(pieces_log2).unwrap_or(0);
    let mut t = GeluTables {
        frac,
        alpha_log2,
        pieces_log2,
        form,
        slope: vec![0; pieces.min(1 << 16)],
        intercept: vec![0; pieces.min(1 << 16)],
    };
    t.validate()
        .map_err(|e| SemanticsError::new("fit_gelu", e.msg))?;
    let w = t.piece_bits();
    let width = 1i64 << w;
    let b = t.bound();
    let one = 1i128 << frac;
    for i in 0..pieces {
        let x0 = -b + i as i64 * width;
        let g: Vec<f64> = (0..=width)
            .map(|r| libm::ldexp(gelu_float(decode(x0 + r, frac), form), frac as i32))
            .collect();
        let y: Vec<i128> = g[..width as usize]
            .iter()
            .map(|v| v.round() as i128)
            .collect();
        let a0 = ((g[width as usize] - g[0]) / width as f64 * one as f64).round() as i64;
        // (M, float max error, float total error, A, C)
        let mut best: Option<(i128, f64, f64, i64, i64)> = None;
        for a in a0 - GELU_SLOPE_SEARCH..=a0 + GELU_SLOPE_SEARCH {
            let (mut lo_k, mut hi_k) = (i128::MAX, i128::MIN);
            for (r, &yr) in y.iter().enumerate() {
                let k = yr * one - a as i128 * r as i128;
                lo_k = lo_k.min(k);
                hi_k = hi_k.max(k);
            }
            let num = hi_k - lo_k - one + 1;
            let m = if num <= 0 {
                0
            } else {
                (num + 2 * one - 1) / (2 * one)
            };
            if let Some((bm, ..)) = best {
                if m > bm {
                    continue;
                }
            }
            let c_lo = hi_k - m * one;
            let c_hi = lo_k + (m + 1) * one - 1;
            let mut cands: Vec<i128> = (0..=GELU_INTERCEPT_SAMPLES)
                .map(|k| c_lo + (c_hi - c_lo) * k / GELU_INTERCEPT_SAMPLES)
                .collect();
            cands.push(c_lo + (c_hi - c_lo) / 2);
            for c in cands {
                let (mut emax, mut esum) = (0f64, 0f64);
                for (r, gr) in g[..width as usize].iter().enumerate() {
                    let out = (a as i128 * r as i128 + c) >> frac;
                    let e = (out as f64 - gr).abs();
                    emax = emax.max(e);
                    esum += e;
                }
                let better = match best {
                    None => true,
                    Some((bm, bmax, bsum, ..)) => {
                        m < bm || (m == bm && (emax < bmax || (emax == bmax && esum < bsum)))
                    }
                };
                if better {
                    let c = i64::try_from(c).map_err(|_| {
                        SemanticsError::new("fit_gelu", format!("intercept {c} overflows"))
                    })?;
                    best = Some((m, emax, esum, a, c));
                }
            }
        }
        let (_, _, _, a, c) = best.expect("the slope search range is never empty");
        t.slope[i] = a;
        t.intercept[i] = c;
    }
    Ok(t)
}

/// Error of the spline against the float GELU of the same form, in output ULPs (`2^−frac`),
/// checked exhaustively over every integer `x ∈ [−2B, 2B]` (so the tails outside `[−α, α)` are
/// included): `(max, mean)` of `|gelu(x) − 2^f·GELU(x/2^f)|`.
pub fn gelu_max_ulp_error(t: &GeluTables) -> SemResult<(f64, f64)> {
    t.validate()?;
    let b = t.bound();
    let (mut max, mut sum, mut count) = (0f64, 0f64, 0u64);
    for x in -2 * b..=2 * b {
        let y = gelu(x, t)?;
        let reference = libm::ldexp(gelu_float(decode(x, t.frac), t.form), t.frac as i32);
        let e = (y as f64 - reference).abs();
        max = max.max(e);
        sum += e;
        count += 1;
    }
    Ok((max, sum / count as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::semantics::encode;

    fn tables(form: GeluForm, s: u32) -> GeluTables {
        fit_gelu(12, 2, s, form).unwrap()
    }

    fn check_gelu_error(form: GeluForm, s: u32, bound: f64) -> (f64, f64) {
        let t = tables(form, s);
        let (max, mean) = gelu_max_ulp_error(&t).unwrap();
        eprintln!("GELU {form:?} s={s}: max {max:.3} ULP, mean {mean:.3} ULP");
        assert!(max <= bound, "{form:?} s={s}: max error {max} > {bound}");
        (max, mean)
    }

    #[test]
    fn gelu_tanh_s6_exhaustive() {
        check_gelu_error(GeluForm::Tanh, 6, 5.0);
    }

    #[test]
    fn gelu_erf_s6_exhaustive() {
        check_gelu_error(GeluForm::Erf, 6, 5.0);
    }

    #[test]
    fn gelu_s7_exhaustive() {
        check_gelu_error(GeluForm::Tanh, 7, 2.5);
        check_gelu_error(GeluForm::Erf, 7, 2.5);
    }

    #[test]
    fn gelu_independent_float_check_at_sample_points() {
        // Independent of the tables' own error routine: the std (not libm) tanh and a
        // hand-written erf series at a few points.
        let t = tables(GeluForm::Tanh, 6);
        for x in [-3.9, -2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.7, 3.99] {
            let k = (2.0f64 / std::f64::consts::PI).sqrt();
            let g = 0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh());
            let y = gelu(encode(x, 12), &t).unwrap();
            assert!(
                (y as f64 - g * 4096.0).abs() <= 5.0,
                "x={x}: {y} vs {}",
                g * 4096.0
            );
        }
        let t = tables(GeluForm::Erf, 6);
        let erf = |z: f64| {
            // Maclaurin series, converges fast for |z| < 3
            let (mut term, mut sum, mut k) = (z, z, 0.0);
            while term.abs() > 1e-17 {
                k += 1.0;
                term *= -z * z / k;
                sum += term / (2.0 * k + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        for x in [-3.9, -2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.7, 3.99] {
            let g = 0.5 * x * (1.0 + erf(x / 2f64.sqrt()));
            let y = gelu(encode(x, 12), &t).unwrap();
            assert!(
                (y as f64 - g * 4096.0).abs() <= 5.0,
                "x={x}: {y} vs {}",
                g * 4096.0
            );
        }
    }

    #[test]
    fn gelu_tables_shape_and_determinism() {
        let t = tables(GeluForm::Tanh, 6);
        assert_eq!(t.bound(), 1 << 14);
        assert_eq!(t.piece_bits(), 9);
        assert_eq!(t.slope.len(), 64);
        // a_i within GELU's slope range [−0.17, 1.13]; C_i/2^24 ≈ GELU(x_i)
        for (i, (&a, &c)) in t.slope.iter().zip(&t.intercept).enumerate() {
            assert!(
                (-0.2 * 4096.0..1.2 * 4096.0).contains(&(a as f64)),
                "A[{i}] = {a}"
            );
            let xi = -4.0 + i as f64 / 8.0;
            let g = gelu_float(xi, GeluForm::Tanh);
            assert!(
                (c as f64 / (1u64 << 24) as f64 - g).abs() < 2e-3,
                "C[{i}] = {c}"
            );
        }
        assert_eq!(t, tables(GeluForm::Tanh, 6));
        let json = serde_json::to_string(&t).unwrap();
        let back: GeluTables = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn gelu_edges() {
        let t = tables(GeluForm::Tanh, 6);
        let b = t.bound();
        assert_eq!(gelu(-b - 1, &t), Ok(0));
        assert_eq!(gelu(-b, &t), Ok(t.intercept[0] >> 12));
        assert!(gelu(-b, &t).unwrap().abs() <= 1);
        let last = gelu(b - 1, &t).unwrap();
        assert_eq!(last, (t.slope[63] * 511 + t.intercept[63]) >> 12);
        assert!((last - (b - 1)).abs() <= 2, "GELU(4 − ulp) ≈ 4: {last}");
        assert_eq!(gelu(b, &t), Ok(b));
        assert!(
            gelu(0, &t).unwrap().abs() <= 4,
            "GELU(0) = 0 within the spline error"
        );
        for (x, expect) in [
            (-(1i64 << 36), 0),
            ((1 << 36) - 1, (1 << 36) - 1),
            (i64::MIN, 0),
            (i64::MAX, i64::MAX),
        ] {
            assert_eq!(gelu(x, &t), Ok(expect), "x = {x}");
        }
        // Monotone on [0, α): GELU is increasing there, so the spline should not dip by more
        // than an ULP at piece boundaries.
        let mut prev = gelu(0, &t).unwrap();
        for x in 1..b {
            let y = gelu(x, &t).unwrap();
            assert!(y >= prev - 1, "x = {x}: {y} < {prev}");
            prev = prev.max(y);
        }
    }

    #[test]
    fn gelu_malformed_tables_error() {
        let mut t = tables(GeluForm::Erf, 6);
        t.slope.pop();
        assert!(gelu(0, &t).unwrap_err().to_string().starts_with("gelu:"));
        // With frac = 0 and one piece, r < 2^17: A·r + C can leave i64.
        let t = GeluTables {
            frac: 0,
            alpha_log2: 16,
            pieces_log2: 0,
            form: GeluForm::Tanh,
            slope: vec![i64::MAX],
            intercept: vec![i64::MAX],
        };
        let err = gelu(100, &t).unwrap_err();
        assert!(err.to_string().contains("x = 100"), "{err}");
        assert_eq!(gelu(-(1 << 16), &t), Ok(i64::MAX)); // r = 0 still fits
        assert!(fit_gelu(12, 2, 20, GeluForm::Tanh).is_err());
        assert!(fit_gelu(40, 2, 6, GeluForm::Tanh).is_err());
    }
}
