//! Exact integer semantics ("the oracle") of the nonlinear fixed-point primitives.
//!
//! Every function here defines, bit for bit, what the corresponding two-party protocol must
//! compute. The cleartext simulator calls these functions, and every protocol test compares its
//! reconstructed output against them.
//!
//! Rules of this module:
//! - Evaluation is pure integer code (`i64`, with `i128` for intermediates): deterministic, no
//!   floating point. Floating point is used only when *fitting* the public tables (at compile
//!   time, with `libm` so the fitted integers do not depend on the platform's math library), in
//!   the float references, and in the error-measurement helpers.
//! - Nothing overflows, wraps or panics: when a value leaves its documented bound the function
//!   returns a [`SemanticsError`] naming the function and the value.
//!
//! Conventions: a fixed-point value with `f` fractional bits is an `i64` holding `round(x·2^f)`
//! (or `floor`, as each primitive states); ring width `ℓ ≤ 64`, ring values are the signed
//! representatives in `[−2^(ℓ−1), 2^(ℓ−1))` (see [`check_ring`]); `>>` is the arithmetic shift
//! (floor division by a power of two). The default activation scale is `f = 12`.
//!
//! The public tables ([`GeluTables`], [`ExpTables`], [`LayerNormParams`]) are plain integers that
//! go into the plan, so bit-exactness never depends on a math library at run time.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub mod inverse;
pub use inverse::{inv_pow, inv_tables, InvPower, InvTables};

/// Default number of fractional bits of activations.
pub const DEFAULT_FRAC: u32 = 12;

/// A value left its documented bound, or the parameters are malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{func}: {msg}")]
pub struct SemanticsError {
    /// The primitive (or helper) that refused.
    pub func: &'static str,
    /// What was out of bounds, with the value.
    pub msg: String,
}

impl SemanticsError {
    pub fn new(func: &'static str, msg: impl Into<String>) -> Self {
        SemanticsError {
            func,
            msg: msg.into(),
        }
    }
}

/// Result of this module.
pub type SemResult<T> = std::result::Result<T, SemanticsError>;

fn to_i64(func: &'static str, what: &str, v: i128) -> SemResult<i64> {
    i64::try_from(v)
        .map_err(|_| SemanticsError::new(func, format!("{what} = {v} does not fit in i64")))
}

// ---------------------------------------------------------------------------------------------
// 1. Ring and encoding helpers
// ---------------------------------------------------------------------------------------------

/// `v` if it is a signed representative of `Z_2^ring_bits`, i.e. `−2^(ℓ−1) ≤ v < 2^(ℓ−1)`;
/// an error otherwise (also when `ring_bits` is not in `1..=64`).
pub fn check_ring(v: i64, ring_bits: u32) -> SemResult<i64> {
    if ring_bits == 0 || ring_bits > 64 {
        return Err(SemanticsError::new(
            "check_ring",
            format!("ring width {ring_bits} is not in 1..=64"),
        ));
    }
    if ring_bits == 64 {
        return Ok(v);
    }
    let half = 1i64 << (ring_bits - 1);
    if v < -half || v >= half {
        return Err(SemanticsError::new(
            "check_ring",
            format!(
                "value {v} is outside the ring [-2^{0}, 2^{0})",
                ring_bits - 1
            ),
        ));
    }
    Ok(v)
}

/// The ring element (in `[0, 2^ℓ)`) of a signed representative; errors as [`check_ring`].
pub fn to_ring_u64(v: i64, ring_bits: u32) -> SemResult<u64> {
    check_ring(v, ring_bits)?;
    let mask = if ring_bits == 64 {
        u64::MAX
    } else {
        (1u64 << ring_bits) - 1
    };
    Ok((v as u64) & mask)
}

/// The signed representative of a ring element `u ∈ [0, 2^ℓ)` (errors when `u ≥ 2^ℓ`).
pub fn from_ring_u64(u: u64, ring_bits: u32) -> SemResult<i64> {
    if ring_bits == 0 || ring_bits > 64 {
        return Err(SemanticsError::new(
            "from_ring_u64",
            format!("ring width {ring_bits} is not in 1..=64"),
        ));
    }
    if ring_bits == 64 {
        return Ok(u as i64);
    }
    if u >> ring_bits != 0 {
        return Err(SemanticsError::new(
            "from_ring_u64",
            format!("ring element {u} is not below 2^{ring_bits}"),
        ));
    }
    let shift = 64 - ring_bits;
    Ok(((u << shift) as i64) >> shift)
}

/// `round(x·2^frac)`, half away from zero. Saturates at the `i64` range; NaN encodes as 0.
/// (Compile-time only: fitting tables and encoding weights and test inputs.)
pub fn encode(x: f64, frac: u32) -> i64 {
    libm::ldexp(x, frac.min(1000) as i32).round() as i64
}

/// `v / 2^frac` (exact when `|v| < 2^53`).
pub fn decode(v: i64, frac: u32) -> f64 {
    libm::ldexp(v as f64, -(frac.min(1000) as i32))
}

/// `floor(x / 2^s)` (the arithmetic shift; `s ≥ 64` gives 0 or −1).
pub fn trunc_floor(x: i64, s: u32) -> i64 {
    if s >= 64 {
        if x < 0 {
            -1
        } else {
            0
        }
    } else {
        x >> s
    }
}

/// `floor((x + 2^(s−1)) / 2^s)`: division by `2^s` rounding half up; `s = 0` is the identity.
/// Computed in `i128`, so it never overflows; the result always fits in `i64`.
pub fn round_shift(x: i64, s: u32) -> i64 {
    round_shift_i128(x as i128, s) as i64
}

/// [`round_shift`] on an `i128` (the caller bounds the input to `|x| < 2^126`).
fn round_shift_i128(x: i128, s: u32) -> i128 {
    match s {
        0 => x,
        1..=126 => (x + (1i128 << (s - 1))) >> s,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. GELU: 2^s-piece linear spline on [−α, α] (CipherGPT Algorithm 1, bit-slice indexed)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 3. Softmax over one row
// ---------------------------------------------------------------------------------------------

/// Public tables and constants of softmax.
///
/// Exponential: the distance to the row maximum `u = min(m − s_j, clip − 1)` (scale
/// `2^frac_in`, `clip = 2^(hi_bits + lo_bits)`) is split into digits `u = h·2^lo_bits + l`, and
/// `E = (hi[h]·lo[l]) >> frac_e ≈ e^(−u/2^frac_in)·2^frac_e` with
/// `hi[h] = round(e^(−h·2^lo_bits/2^frac_in)·2^frac_e)` and `lo[l] = round(e^(−l/2^frac_in)·2^frac_e)`.
/// For the defaults (`frac_in = 12`, `frac_e = 14`, split 8+8) `hi[h] = round(e^(−h/16)·2^14)`,
/// `lo[l] = round(e^(−l/4096)·2^14)`, clip at 16.0. The digit split is part of the semantics.
///
/// Reciprocal: `R = 2^K / Z` (exact floor division, once per row), `p_j = (E_j·R) >> S` with
/// `S = frac_e + recip_guard` and `K = frac_e + frac_out + recip_guard` (defaults 22 and 34).
/// `recip_guard` bits bound the error of flooring `R` by `2^−recip_guard` output ULPs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpTables {
    /// Fractional bits of the scores (default 12).
    pub frac_in: u32,
    /// Fractional bits of `E` and of the table entries (default 14).
    pub frac_e: u32,
    /// Fractional bits of the probabilities (default 12).
    pub frac_out: u32,
    /// Bits of the high digit `h` (default 8); `hi` has `2^hi_bits` entries.
    pub hi_bits: u32,
    /// Bits of the low digit `l` (default 8); `lo` has `2^lo_bits` entries.
    pub lo_bits: u32,
    /// Guard bits of the reciprocal (default 8).
    pub recip_guard: u32,
    /// Distances are clipped to `clip − 1` (scale `2^frac_in`; default `16 << frac_in`).
    pub clip: i64,
    /// `T1`.
    pub hi: Vec<i64>,
    /// `T0`.
    pub lo: Vec<i64>,
}

impl ExpTables {
    /// `S = frac_e + recip_guard`: the final shift.
    pub fn recip_shift(&self) -> u32 {
        self.frac_e + self.recip_guard
    }

    /// `K = frac_e + frac_out + recip_guard`: `R = 2^K / Z`.
    pub fn recip_num_log2(&self) -> u32 {
        self.frac_e + self.frac_out + self.recip_guard
    }

    /// Longest row: `2^(frac_out + recip_guard)` (so `Z ≤ n·2^frac_e ≤ 2^K` and `R ≥ 1`).
    pub fn max_row_len(&self) -> usize {
        1usize << (self.frac_out + self.recip_guard)
    }

    /// The tables of `R ≈ ⌊2^K / Z⌋` for `2^frac_e ≤ Z ≤ 2^K` ([`inverse`]).
    pub fn recip_tables(&self) -> SemResult<InvTables> {
        inv_tables(
            InvPower::Reciprocal,
            1u128 << self.recip_num_log2(),
            1u64 << self.frac_e,
            self.recip_num_log2() + 1,
        )
        .map_err(|e| SemanticsError::new("softmax", e.msg))
    }

    /// Checks: `1 ≤ frac_e ≤ 30`, `frac_in, frac_out ≤ 30`, `recip_guard ≤ 16`, `K ≤ 62`,
    /// digits of at most 16 bits each, `1 ≤ clip ≤ 2^(hi_bits+lo_bits)`, tables of the right
    /// lengths with entries in `[0, 2^frac_e]` and `hi[0] = lo[0] = 2^frac_e` (so the maximum
    /// entry gives exactly `E = 2^frac_e` and `Z ≥ 2^frac_e > 0`).
    pub fn validate(&self) -> SemResult<()> {
        self.validate_layout()?;
        let bad = |m: String| Err(SemanticsError::new("softmax", m));
        let one = 1i64 << self.frac_e;
        if let Some(v) = self
            .hi
            .iter()
            .chain(self.lo.iter())
            .find(|&&v| !(0..=one).contains(&v))
        {
            return bad(format!("table entry {v} is not in [0, 2^{}]", self.frac_e));
        }
        if self.hi[0] != one || self.lo[0] != one {
            return bad(format!(
                "T1[0] = {} and T0[0] = {} must both be 2^{}",
                self.hi[0], self.lo[0], self.frac_e
            ));
        }
        Ok(())
    }

    /// The checks of [`ExpTables::validate`] on scales, digits, clip and table lengths, not on
    /// the entries: what indexing the tables relies on.
    pub fn validate_layout(&self) -> SemResult<()> {
        let f = "softmax";
        let bad = |m: String| Err(SemanticsError::new(f, m));
        if self.frac_e == 0 || self.frac_e > 30 || self.frac_in > 30 || self.frac_out > 30 {
            return bad(format!(
                "scales frac_in {}, frac_e {}, frac_out {} out of range (frac_e in 1..=30, others <= 30)",
                self.frac_in, self.frac_e, self.frac_out
            ));
        }
        if self.recip_guard > 16 || self.recip_num_log2() > 62 {
            return bad(format!(
                "recip_guard {} (<= 16) or K = {} (<= 62) out of range",
                self.recip_guard,
                self.recip_num_log2()
            ));
        }
        if self.hi_bits > 16 || self.lo_bits > 16 {
            return bad(format!(
                "digit split ({}, {}) has a digit wider than 16 bits",
                self.hi_bits, self.lo_bits
            ));
        }
        let full = 1i64 << (self.hi_bits + self.lo_bits);
        if self.clip < 1 || self.clip > full {
            return bad(format!("clip {} is not in [1, {full}]", self.clip));
        }
        if self.hi.len() != 1 << self.hi_bits || self.lo.len() != 1 << self.lo_bits {
            return bad(format!(
                "tables have {} and {} entries, expected {} and {}",
                self.hi.len(),
                self.lo.len(),
                1u64 << self.hi_bits,
                1u64 << self.lo_bits
            ));
        }
        Ok(())
    }

    /// `E(u) = (T1[u' >> lo_bits]·T0[u' & (2^lo_bits − 1)]) >> frac_e` with
    /// `u' = min(u, clip − 1)`; `u ≥ 0` is the distance to the row maximum. Assumes
    /// [`ExpTables::validate`] passed (then `0 ≤ E ≤ 2^frac_e`).
    pub fn exp_neg(&self, u: i128) -> i64 {
        let u = u.clamp(0, self.clip as i128 - 1) as usize;
        let h = u >> self.lo_bits;
        let l = u & ((1usize << self.lo_bits) - 1);
        (self.hi[h] * self.lo[l]) >> self.frac_e
    }
}

/// Tables for softmax with the default digit layout: clip at 16.0, i.e. `frac_in + 4` distance
/// bits split as `hi_bits = ⌊(frac_in+4)/2⌋`, `lo_bits = ⌈(frac_in+4)/2⌉` (8+8 for
/// `frac_in = 12`), and 8 guard bits for the reciprocal.
pub fn fit_exp_tables(frac_in: u32, frac_e: u32, frac_out: u32) -> SemResult<ExpTables> {
    let bits = frac_in + 4;
    fit_exp_tables_with(frac_in, frac_e, frac_out, bits / 2, bits - bits / 2, 8)
}

/// Tables for softmax with an explicit digit split and reciprocal guard; `clip` is
/// `2^(hi_bits + lo_bits)`.
pub fn fit_exp_tables_with(
    frac_in: u32,
    frac_e: u32,
    frac_out: u32,
    hi_bits: u32,
    lo_bits: u32,
    recip_guard: u32,
) -> SemResult<ExpTables> {
    let fail = |e: SemanticsError| SemanticsError::new("fit_exp_tables", e.msg);
    if hi_bits > 16 || lo_bits > 16 || frac_in > 30 || frac_e == 0 || frac_e > 30 {
        return Err(SemanticsError::new(
            "fit_exp_tables",
            format!(
                "digits ({hi_bits}, {lo_bits}) must be <= 16 bits; frac_in {frac_in} <= 30; frac_e {frac_e} in 1..=30"
            ),
        ));
    }
    let entry = |k: u64, digit_weight_log2: i32| -> i64 {
        // e^(−k·2^digit_weight_log2 / 2^frac_in) · 2^frac_e
        let u = libm::ldexp(k as f64, digit_weight_log2 - frac_in as i32);
        libm::ldexp(libm::exp(-u), frac_e as i32).round() as i64
    };
    let t = ExpTables {
        frac_in,
        frac_e,
        frac_out,
        hi_bits,
        lo_bits,
        recip_guard,
        clip: 1i64 << (hi_bits + lo_bits),
        hi: (0..1u64 << hi_bits)
            .map(|h| entry(h, lo_bits as i32))
            .collect(),
        lo: (0..1u64 << lo_bits).map(|l| entry(l, 0)).collect(),
    };
    t.validate().map_err(fail)?;
    Ok(t)
}

/// Softmax of one row of scores (scale `2^frac_in`) to probabilities (scale `2^frac_out`).
/// Causal masking is the caller's: pass only the allowed entries `j ≤ i`.
/// ```text
/// m = max_j s_j (exact);  u_j = min(m − s_j, clip − 1)          (m − s_j in i128)
/// E_j = (T1[u_j >> lo_bits] · T0[u_j & (2^lo_bits − 1)]) >> frac_e     (0 ≤ E_j ≤ 2^frac_e)
/// Z = Σ E_j                                          (2^frac_e ≤ Z ≤ n·2^frac_e ≤ 2^K)
/// R = inv_pow(Z) ≈ ⌊2^K / Z⌋  (K = frac_e + frac_out + recip_guard = 34)
/// p_j = (E_j · R) >> (frac_e + recip_guard = 22)     (E_j·R ≤ Z·R ≤ 2^K)
/// ```
/// `inv_pow` is the inverse-power recipe of [`inverse`] with the tables
/// [`ExpTables::recip_tables`]: at most 2 below `⌊2^K/Z⌋` and at most 2^−16.9 of it above, exact
/// when Z is a power of two (a row of one entry gives exactly `2^frac_out`), in a fixed few dozen
/// flights where the exact floor division took one comparison per quotient bit.
/// Row sums: `2^frac_out − n − 3·n·2^−recip_guard < Σ p_j ≤ 2^frac_out` (each floor loses < 1,
/// `R` falls short of `2^K/Z` by less than 3 units; above, `Σ p_j ≤ ⌊Z·R/2^S⌋ ≤
/// ⌊2^frac_out·(1 + 2^−16.9)⌋ = 2^frac_out` for `frac_out ≤ 16`).
/// Accuracy against the float softmax `p*_j = 2^fo·e^(−u_j)/Σ e^(−u_k)` of the same scores:
/// `E_j = e*_j + δ_j` with `e*_j = 2^fe·e^(−u_j/2^fi)` and `δ_j ∈ (−2.01, 1.01]` (two table
/// roundings of ≤ ½ each, one floor; clipping adds < `2^fe·e^−16` ≈ 0.002), so
/// `|p_j − p*_j| ≤ 1 + 2^−recip_guard + 2.01·(2^fo + n·p*_j)/Z` — at most
/// `≈ 1 + ½(1 + n·p*_j/2^fo)` ULPs since `Z ≥ 2^fe`. Measured on random rows of length
/// ≤ 256: ≤ 2.4 ULPs, mean ≤ 0.5.
/// Errors: empty row, row longer than [`ExpTables::max_row_len`], malformed tables.
pub fn softmax_row(s: &[i64], t: &ExpTables) -> SemResult<Vec<i64>> {
    t.validate()?;
    let Some(&m) = s.iter().max() else {
        return Err(SemanticsError::new("softmax", "empty row"));
    };
    if s.len() > t.max_row_len() {
        return Err(SemanticsError::new(
            "softmax",
            format!(
                "row of length {} exceeds the maximum {}",
                s.len(),
                t.max_row_len()
            ),
        ));
    }
    let e: Vec<i64> = s
        .iter()
        .map(|&sj| t.exp_neg(m as i128 - sj as i128))
        .collect();
    let z: i128 = e.iter().map(|&v| v as i128).sum();
    let r = inv_pow(z as u64, &t.recip_tables()?)? as i128;
    let shift = t.recip_shift();
    Ok(e.iter()
        .map(|&ej| ((ej as i128 * r) >> shift) as i64)
        .collect())
}

/// Float softmax of the decoded scores, in output ULPs (`2^frac_out · softmax`).
pub fn softmax_float(s: &[i64], frac_in: u32, frac_out: u32) -> Vec<f64> {
    let Some(&m) = s.iter().max() else {
        return Vec::new();
    };
    let w: Vec<f64> = s
        .iter()
        .map(|&v| libm::exp(decode(v, frac_in) - decode(m, frac_in)))
        .collect();
    let z: f64 = w.iter().sum();
    w.iter()
        .map(|v| libm::ldexp(v / z, frac_out as i32))
        .collect()
}

/// Measured error of [`softmax_row`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxErrorStats {
    /// Largest `|p_j − 2^frac_out·softmax_j|` (output ULPs) over all entries.
    pub max_ulp: f64,
    /// Mean of the same over all entries.
    pub mean_ulp: f64,
    /// Largest `2^frac_out − Σ_j p_j` over the rows.
    pub max_sum_deficit: i64,
    /// Rows and entries checked.
    pub rows: usize,
    pub entries: usize,
}

/// Test helper: compare [`softmax_row`] with the float softmax of the same (decoded) scores on
/// `rows` random rows; row lengths are uniform in `1..=max_len` and scores uniform in
/// `[−spread, spread]` (real units), from a ChaCha8 stream seeded with `seed`.
pub fn softmax_max_error(
    t: &ExpTables,
    rows: usize,
    max_len: usize,
    spread: f64,
    seed: u64,
) -> SemResult<SoftmaxErrorStats> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows_vec = Vec::with_capacity(rows);
    for _ in 0..rows {
        let len = rng.gen_range(1..=max_len.max(1));
        let row: Vec<i64> = (0..len)
            .map(|_| encode(rng.gen_range(-spread..=spread), t.frac_in))
            .collect();
        rows_vec.push(row);
    }
    softmax_error_on(t, &rows_vec)
}

/// [`softmax_max_error`] on given rows.
pub fn softmax_error_on(t: &ExpTables, rows: &[Vec<i64>]) -> SemResult<SoftmaxErrorStats> {
    let mut st = SoftmaxErrorStats {
        max_ulp: 0.0,
        mean_ulp: 0.0,
        max_sum_deficit: i64::MIN,
        rows: rows.len(),
        entries: 0,
    };
    let mut sum = 0f64;
    for row in rows {
        let p = softmax_row(row, t)?;
        let q = softmax_float(row, t.frac_in, t.frac_out);
        for (a, b) in p.iter().zip(&q) {
            let e = (*a as f64 - b).abs();
            st.max_ulp = st.max_ulp.max(e);
            sum += e;
        }
        st.entries += p.len();
        st.max_sum_deficit = st
            .max_sum_deficit
            .max((1i64 << t.frac_out) - p.iter().sum::<i64>());
    }
    st.mean_ulp = sum / st.entries.max(1) as f64;
    Ok(st)
}

// ---------------------------------------------------------------------------------------------
// 4. LayerNorm normalisation (γ, β folded into the next linear layer)
// ---------------------------------------------------------------------------------------------

/// `V` stays below `2^LN_V_BITS` for every row within the calibrated bound (see
/// [`layernorm_params`]).
pub const LN_V_BITS: u32 = 50;
/// `ρ` stays below `2^LN_RHO_BITS` (its maximum is at `V = v_eps`).
pub const LN_RHO_BITS: u32 = 27;
/// Default fractional bits of `ρ`.
pub const LN_F_RHO: u32 = 18;
/// Longest row.
pub const LN_MAX_N: usize = 1 << 20;

/// Public constants of the LayerNorm normalisation `(x − μ)/√(var + ε)` at scale `2^frac`.
///
/// Derivation (`X` real, `x = X·2^f`, `T = r1 + r2`, biased variance `var = (1/n)Σ(X−μ)²` as
/// PyTorch): `d = n·x − S = n(X−μ)·2^f` exactly; `e ≈ d/2^r1`; `v ≈ n(X−μ)·2^(f−T)`
/// (`= 48(X−μ)` for `n = 768, f = 12, T = 16`); hence `Σv² ≈ n³·2^(2f−2T)·var` and
/// `V = Σv² + v_eps ≈ n³·2^(2f−2T)·(var + ε)` with `v_eps = round(ε·n³·2^(2f−2T))` (= 18 for
/// GPT-2 small, ε = 1e−5). Then `ρ = ⌊√(N/V)⌋` with `N = n·2^(2(f − r2 + f_ρ))` gives
/// `ρ ≈ 2^(r1+f_ρ)/(n·√(var+ε))`, and `y = (e·ρ) >> f_ρ ≈ (X−μ)/√(var+ε)·2^f`.
///
/// Bounds (all hold for any input for which [`layernorm_row`] succeeds): `ρ ≤ √(N/v_eps)`
/// (`2^26.7` for GPT-2 small), `|e·ρ| ≤ √n·2^(f+f_ρ)·(1 + 1/(2√v_eps))` (since
/// `|e| ≤ 2^r2(|v| + ½)`, `|v| ≤ √V`, `ρ ≤ √(N/V)`), so `|y| ≲ √n·2^f`. `|d| ≤ n·D·2^f` for
/// `|X − μ| ≤ D` must fit the ring (`< 2^36` for n = 768, D = 21 800); see
/// [`LayerNormParams::bounds`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerNormParams {
    /// Row length.
    pub n: usize,
    /// Fractional bits of input and output (default 12).
    pub frac: u32,
    /// Rounding shift from `d` to `e`.
    pub r1: u32,
    /// Rounding shift from `e` to `v`.
    pub r2: u32,
    /// ε in the units of `V`: `round(ε·n³·2^(2f − 2(r1+r2)))`, at least 1.
    pub v_eps: i64,
    /// Fractional bits of `ρ` (default 18).
    pub f_rho: u32,
}

/// Bit widths (signed: a value `v` needs `ℓ` bits when `−2^(ℓ−1) ≤ v < 2^(ℓ−1)`) of the
/// LayerNorm intermediates for rows with `|X − μ| ≤ D`; the compiler picks ring widths from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerNormBounds {
    /// `max |d| = n·⌈D·2^f⌉`.
    pub d_max: i128,
    pub d_bits: u32,
    pub e_bits: u32,
    pub v_bits: u32,
    /// `V ≤ n·v_max² + v_eps`.
    pub big_v_max: i128,
    pub big_v_bits: u32,
    /// `ρ ≤ ⌊√(N/v_eps)⌋·(1 + 2^−18) + 1` (the recipe's excess, [`inverse`]).
    pub rho_max: i128,
    pub rho_bits: u32,
    /// `|e·ρ|` bound `2^r2·(⌊√(N)⌋+1)·(1 + 1/(2√v_eps))·(1 + 2^−18)`, rounded up.
    pub e_rho_bits: u32,
    pub y_bits: u32,
}

fn signed_bits(max_abs: i128) -> u32 {
    // smallest ℓ with max_abs < 2^(ℓ−1)
    128 - (max_abs.max(0) as u128).leading_zeros() + 1
}

impl LayerNormParams {
    /// Checks: `1 ≤ n ≤ 2^20`, `frac ≤ 24`, `f_rho ≤ 40`, `r1 + r2 ≤ 60`,
    /// `0 ≤ f − r2 + f_ρ`, `v_eps ≥ 1` (so `V ≥ 1`: no division by zero).
    pub fn validate(&self) -> SemResult<()> {
        let bad = |m: String| Err(SemanticsError::new("layernorm", m));
        if self.n == 0 || self.n > LN_MAX_N {
            return bad(format!("row length {} is not in 1..=2^20", self.n));
        }
        if self.frac > 24 || self.f_rho > 40 || self.r1 + self.r2 > 60 {
            return bad(format!(
                "frac {} (<= 24), f_rho {} (<= 40), r1 + r2 = {} + {} (<= 60) out of range",
                self.frac, self.f_rho, self.r1, self.r2
            ));
        }
        if self.r2 > self.frac + self.f_rho {
            return bad(format!(
                "r2 {} exceeds frac + f_rho = {}",
                self.r2,
                self.frac + self.f_rho
            ));
        }
        if self.v_eps < 1 {
            return bad(format!("v_eps {} must be at least 1", self.v_eps));
        }
        Ok(())
    }

    /// `N = n << 2(f − r2 + f_ρ)` (`< 2^81`), the numerator of the reciprocal square root.
    pub fn rsqrt_numerator(&self) -> u128 {
        (self.n as u128) << (2 * (self.frac + self.f_rho - self.r2))
    }

    /// The tables of `ρ ≈ ⌊√(N / V)⌋` for `v_eps ≤ V < 2^62` ([`inverse`]).
    pub fn rsqrt_tables(&self) -> SemResult<InvTables> {
        inv_tables(
            InvPower::RecipSqrt,
            self.rsqrt_numerator(),
            self.v_eps as u64,
            inverse::INV_MAX_IN_BITS,
        )
        .map_err(|e| SemanticsError::new("layernorm", e.msg))
    }

    /// Bit widths of the intermediates for `|X − μ| ≤ max_abs_dev` (real units).
    pub fn bounds(&self, max_abs_dev: f64) -> SemResult<LayerNormBounds> {
        self.validate()?;
        if !(0.0..1e12).contains(&max_abs_dev) {
            return Err(SemanticsError::new(
                "layernorm_bounds",
                format!("deviation bound {max_abs_dev} is not finite, non-negative and < 1e12"),
            ));
        }
        let d_max = self.n as i128 * libm::ldexp(max_abs_dev, self.frac as i32).ceil() as i128;
        let e_max = round_shift_i128(d_max, self.r1);
        let v_max = round_shift_i128(e_max, self.r2);
        let big_v_max = self.n as i128 * v_max * v_max + self.v_eps as i128;
        let n_num = self.rsqrt_numerator();
        // ρ is at most 2^−18.8 of √(N/V) above it ([`inverse`]): 2^−18 of slack, plus one.
        let slack = |x: i128| x + (x >> 18) + 1;
        let rho_max = slack(isqrt_u128(n_num / self.v_eps as u128) as i128);
        // 2^r2·√N·(1 + 1/(2√v_eps)) ≤ 2^r2·(isqrt(N)+1)·(2·isqrt(v_eps)+1)/(2·isqrt(v_eps))
        let sv = isqrt_u128(self.v_eps as u128) as i128;
        let e_rho = slack(((isqrt_u128(n_num) as i128 + 1) << self.r2) * (2 * sv + 1) / (2 * sv));
        let y_max = (e_rho >> self.f_rho) + 1;
        Ok(LayerNormBounds {
            d_max,
            d_bits: signed_bits(d_max),
            e_bits: signed_bits(e_max),
            v_bits: signed_bits(v_max),
            big_v_max,
            big_v_bits: signed_bits(big_v_max),
            rho_max,
            rho_bits: signed_bits(rho_max),
            e_rho_bits: signed_bits(e_rho),
            y_bits: signed_bits(y_max),
        })
    }
}

/// `v_eps = max(1, round(ε·n³·2^(2f − 2T)))`.
fn ln_v_eps(n: usize, eps: f64, frac: u32, t: u32) -> i64 {
    let n = n as f64;
    let v = libm::ldexp(eps * n * n * n, 2 * frac as i32 - 2 * t as i32).round();
    (v as i64).max(1)
}

/// Choose LayerNorm constants for rows of length `n` whose deviations from the row mean are
/// calibrated to `|X − μ| ≤ D = max_abs_dev` (real units), with `f_ρ = 18`:
/// 1. `T_min` is the smallest total shift `r1 + r2` (the most precise `v`) with
///    `n·v_max² + v_eps < 2^50` where `v_max = ⌈n·⌈D·2^f⌉/2^T⌉ + 1`: `V` fits in `i64` with 13
///    bits of margin.
/// 2. `r1` trades the rounding of `e` (error `≈ 2^(r1−1)/(nσ)` ULPs, amplified by `ρ`) against
///    the flooring of `ρ` (error `≈ 3nσ·2^(f−r1−f_ρ)` ULPs for a typical `|X−μ| = 3σ`); they
///    balance at `2^r1 = nσ·√(6·2^(f−f_ρ))`, evaluated at `σ = D/8`. `r1` is that value, lowered
///    until `ρ_max = ⌊√(N/v_eps)⌋ < 2^27` (`ρ`'s range at `V = v_eps`), or 0.
/// 3. `T = max(T_min, r1)`, `r2 = T − r1`, `v_eps = max(1, round(ε·n³·2^(2f−2T)))`.
///
/// For GPT-2 small (`n = 768`, ε = 1e−5, f = 12, D = 21 800 — the largest deviation with
/// `|d| < 2^36`, i.e. a 37-bit ring) this gives `r1 = 10` (capped by `ρ < 2^27`; `ρ_max =
/// 2^26.7`), `r2 = 6`, `v_eps = 18`. Any `D` in about `[12 700, 25 200)` gives the same.
/// `|d| < 2^(ℓ−1)` depends only on `D` (not on `r1`, `r2`): check it, and the other widths,
/// with [`LayerNormParams::bounds`]. A row beyond the calibrated `D` still evaluates exactly
/// (with less precision) until `|d|` or `V` leaves `i64`, which is an error.
pub fn layernorm_params(
    n: usize,
    eps: f64,
    frac: u32,
    max_abs_dev: f64,
) -> SemResult<LayerNormParams> {
    let fail = |m: String| Err(SemanticsError::new("layernorm_params", m));
    if n == 0 || n > LN_MAX_N || frac > 24 {
        return fail(format!(
            "row length {n} (1..=2^20) or frac {frac} (<= 24) out of range"
        ));
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return fail(format!("eps {eps} is not finite and non-negative"));
    }
    if !(0.0..1e12).contains(&max_abs_dev) {
        return fail(format!(
            "deviation bound {max_abs_dev} is not finite, non-negative and < 1e12"
        ));
    }
    let f_rho = LN_F_RHO;
    let d_max = n as i128 * libm::ldexp(max_abs_dev, frac as i32).ceil() as i128;
    let mut total = None;
    for t in 0..=(frac + f_rho) {
        let v_max = ((d_max + (1i128 << t) - 1) >> t) + 1;
        let big_v = n as i128 * v_max * v_max + ln_v_eps(n, eps, frac, t) as i128;
        if big_v < 1i128 << LN_V_BITS {
            total = Some(t);
            break;
        }
    }
    let Some(t) = total else {
        return fail(format!(
            "no shift keeps V below 2^{LN_V_BITS} for n = {n}, |x - mu| <= {max_abs_dev}"
        ));
    };
    // r1 balancing the e-rounding error 2^(r1−1)/(nσ) against the ρ-flooring error
    // 3nσ·2^(f−r1−f_ρ) at σ = D/8: 2^r1 = nσ·√(6·2^(f−f_ρ)).
    let sigma = max_abs_dev / 8.0;
    let bal = libm::log2(
        n as f64 * sigma * libm::sqrt(6.0 * libm::ldexp(1.0, frac as i32 - f_rho as i32)),
    );
    let r1_target = if bal.is_finite() && bal > 0.0 {
        (bal.round() as u32).min(frac + f_rho)
    } else {
        0
    };
    let with = |r1: u32| {
        let total = t.max(r1);
        LayerNormParams {
            n,
            frac,
            r1,
            r2: total - r1,
            v_eps: ln_v_eps(n, eps, frac, total),
            f_rho,
        }
    };
    let mut chosen = with(0);
    for r1 in (0..=r1_target).rev() {
        let p = with(r1);
        if isqrt_u128(p.rsqrt_numerator() / p.v_eps as u128) < 1u128 << LN_RHO_BITS {
            chosen = p;
            break;
        }
    }
    chosen
        .validate()
        .map_err(|e| SemanticsError::new("layernorm_params", e.msg))?;
    Ok(chosen)
}

/// `⌊√x⌋`, exactly: Newton's iteration from above (`2^⌈bits/2⌉ ≥ √x`), which decreases
/// monotonically to the floor square root, followed by a correction step.
pub fn isqrt_u128(x: u128) -> u128 {
    if x < 2 {
        return x;
    }
    let bits = 128 - x.leading_zeros();
    let mut g: u128 = 1u128 << bits.div_ceil(2);
    loop {
        let next = (g + x / g) >> 1;
        if next >= g {
            break;
        }
        g = next;
    }
    while g.checked_mul(g).is_none_or(|sq| sq > x) {
        g -= 1;
    }
    while (g + 1).checked_mul(g + 1).is_some_and(|sq| sq <= x) {
        g += 1;
    }
    g
}

/// `ρ = max { r ≥ 0 : r²·V ≤ N }` for `V ≥ 1`, computed as `⌊√⌊N/V⌋⌋` (equal: for integer `r`,
/// `r²V ≤ N ⇔ r² ≤ N/V ⇔ r² ≤ ⌊N/V⌋`). Errors when `V = 0` (unbounded) or `ρ ≥ 2^63`.
pub fn rsqrt_floor(n_num: u128, v: u128) -> SemResult<i64> {
    if v == 0 {
        return Err(SemanticsError::new(
            "rsqrt_floor",
            "V = 0: the reciprocal square root is unbounded",
        ));
    }
    let r = isqrt_u128(n_num / v);
    i64::try_from(r).map_err(|_| {
        SemanticsError::new(
            "rsqrt_floor",
            format!("rho = {r} for N = {n_num}, V = {v} does not fit in i64"),
        )
    })
}

/// LayerNorm normalisation of one row (scale `2^frac` in and out), exactly:
/// ```text
/// S = Σ x;  d_j = n·x_j − S                                   (exact; |d_j| < 2^61 required)
/// e_j = (d_j + 2^(r1−1)) >> r1;  v_j = (e_j + 2^(r2−1)) >> r2   (identity when the shift is 0)
/// V = Σ v_j² + v_eps                                          (V < 2^62 required)
/// ρ = inv_pow(V) ≈ ⌊√(N / V)⌋, N = n << 2(f − r2 + f_ρ)        (see below)
/// y_j = (e_j·ρ) >> f_ρ                                        (floor; must fit in i64)
/// ```
/// `inv_pow` is the inverse-power recipe of [`inverse`] with the tables
/// [`LayerNormParams::rsqrt_tables`]: a leading-bit normalisation, a 256-segment spline and one
/// product; ρ is at most 2 below the floor and at most 2^−18.8 of it above (the exact floor took
/// a division and a square root bit by bit, about 1,160 flights per LayerNorm; the recipe takes
/// a fixed few dozen).
/// A constant row gives `V = v_eps`, `e = 0`, `y = 0`. Errors name the bound that failed.
pub fn layernorm_row(x: &[i64], p: &LayerNormParams) -> SemResult<Vec<i64>> {
    p.validate()?;
    let f = "layernorm";
    if x.len() != p.n {
        return Err(SemanticsError::new(
            f,
            format!(
                "row has {} entries, the parameters are for {}",
                x.len(),
                p.n
            ),
        ));
    }
    let n = p.n as i128;
    let s: i128 = x.iter().map(|&v| v as i128).sum();
    let mut e = Vec::with_capacity(p.n);
    let mut big_v: i128 = p.v_eps as i128;
    for (j, &xj) in x.iter().enumerate() {
        let d = n * xj as i128 - s;
        if d.unsigned_abs() >= 1 << 61 {
            return Err(SemanticsError::new(
                f,
                format!("d[{j}] = n*x - S = {d} is not within +-2^61 (x[{j}] = {xj})"),
            ));
        }
        let ej = round_shift_i128(d, p.r1);
        let vj = round_shift_i128(ej, p.r2);
        big_v += vj * vj; // |v| < 2^61 ⇒ v² < 2^122; checked below before it can grow further
        if big_v >> inverse::INV_MAX_IN_BITS != 0 {
            return Err(SemanticsError::new(
                f,
                format!("V = sum of v^2 + v_eps exceeds 2^62 - 1 (at entry {j}, V >= {big_v})"),
            ));
        }
        e.push(ej);
    }
    let tables = p.rsqrt_tables()?;
    let rho =
        inv_pow(big_v as u64, &tables).map_err(|err| SemanticsError::new(f, err.msg))? as i128;
    e.iter()
        .enumerate()
        .map(|(j, &ej)| to_i64(f, &format!("y[{j}]"), (ej * rho) >> p.f_rho))
        .collect()
}

/// Float reference: `(X − μ)/√(var + ε)·2^frac` on the decoded row (biased variance).
pub fn layernorm_float(x: &[i64], frac: u32, eps: f64) -> Vec<f64> {
    if x.is_empty() {
        return Vec::new();
    }
    let xs: Vec<f64> = x.iter().map(|&v| decode(v, frac)).collect();
    let n = xs.len() as f64;
    let mu = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    xs.iter()
        .map(|v| libm::ldexp((v - mu) * inv, frac as i32))
        .collect()
}

/// Test helper: `(max, mean)` of `|layernorm_row − layernorm_float|` in output ULPs over `rows`
/// random rows `X_j = offset + σ·N(0,1)` (ChaCha8, `seed`), with a few outliers of ±6σ.
pub fn layernorm_max_error(
    p: &LayerNormParams,
    eps: f64,
    rows: usize,
    sigma: f64,
    offset: f64,
    seed: u64,
) -> SemResult<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut max, mut sum, mut count) = (0f64, 0f64, 0usize);
    for _ in 0..rows {
        let row: Vec<i64> = (0..p.n)
            .map(|_| {
                // Box–Muller
                let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
                let u2: f64 = rng.gen_range(0.0..1.0);
                let mut z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                if rng.gen_range(0..100) == 0 {
                    z = if z < 0.0 { -6.0 } else { 6.0 };
                }
                encode(offset + sigma * z, p.frac)
            })
            .collect();
        let y = layernorm_row(&row, p)?;
        let r = layernorm_float(&row, p.frac, eps);
        for (a, b) in y.iter().zip(&r) {
            let e = (*a as f64 - b).abs();
            max = max.max(e);
            sum += e;
            count += 1;
        }
    }
    Ok((max, sum / count.max(1) as f64))
}

// ---------------------------------------------------------------------------------------------
// 5. Argmax
// ---------------------------------------------------------------------------------------------

/// Smallest index of the maximum (torch.argmax), computed by the protocol's pairwise tree:
/// each level pairs `(0,1), (2,3), …` (an odd last element passes up unchanged) and keeps the
/// left candidate unless the right one is strictly greater. Left subtrees hold smaller
/// indices, so ties resolve to the smallest index. Errors on an empty input.
pub fn argmax(z: &[i64]) -> SemResult<usize> {
    if z.is_empty() {
        return Err(SemanticsError::new("argmax", "empty input"));
    }
    let mut cur: Vec<usize> = (0..z.len()).collect();
    while cur.len() > 1 {
        cur = cur
            .chunks(2)
            .map(|c| match *c {
                [l, r] if z[r] > z[l] => r,
                [l, ..] => l,
                [] => unreachable!("chunks are never empty"),
            })
            .collect();
    }
    Ok(cur[0])
}

// ---------------------------------------------------------------------------------------------
// 6. Top-K sampling
// ---------------------------------------------------------------------------------------------

/// The top `k` indices of `z`: larger value first, smaller index first among equal values (so
/// `top_k(z, 1) = [argmax(z)]`). The protocol returns this set, in an order of its own.
pub fn top_k(z: &[i64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..z.len()).collect();
    idx.sort_by(|&a, &b| z[b].cmp(&z[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The temperature step: `⌊v·mul / 2^shift⌋` for the fixed-point reciprocal `mul` of T.
pub fn temperature(v: i64, mul: u64, shift: u32) -> i64 {
    ((v as i128 * mul as i128) >> shift.min(127)) as i64
}

/// Bits `w` of the uniform value of a draw for probabilities with `frac_out` fractional bits:
/// `w = 62 − frac_out`, so that `u·S_K` and `2^w·S_i` stay below 2^62.
pub fn sample_bits(frac_out: u32) -> u32 {
    62 - frac_out.min(60)
}

/// One draw from the K `values` (logits, in a given order): `y_i = temperature(v_i)`,
/// `p = softmax_row(y)`, prefix sums `S_i = p_1 + … + p_i`, and the first position i with
/// `u·S_K < 2^w·S_i` for the uniform `w`-bit `u` (`w` = [`sample_bits`]). Over a uniform u,
/// position i comes out with probability `p_i / S_K` up to 2^−w.
pub fn sample_top_k(
    values: &[i64],
    mul: u64,
    shift: u32,
    tables: &ExpTables,
    u: u64,
) -> SemResult<usize> {
    let y: Vec<i64> = values.iter().map(|&v| temperature(v, mul, shift)).collect();
    let p = softmax_row(&y, tables)?;
    let w = sample_bits(tables.frac_out);
    let total: i128 = p.iter().map(|&x| x as i128).sum();
    let target = u as i128 * total;
    let mut s = 0i128;
    for (i, &x) in p.iter().enumerate() {
        s += x as i128;
        if target < s << w {
            return Ok(i);
        }
    }
    Ok(p.len() - 1)
}

// ---------------------------------------------------------------------------------------------
// 7. Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(form: GeluForm, s: u32) -> GeluTables {
        fit_gelu(12, 2, s, form).unwrap()
    }

    // ----- helpers -----

    #[test]
    fn ring_and_encoding() {
        assert_eq!(check_ring((1 << 36) - 1, 37), Ok((1 << 36) - 1));
        assert_eq!(check_ring(-(1 << 36), 37), Ok(-(1 << 36)));
        assert!(check_ring(1 << 36, 37).is_err());
        assert!(check_ring(-(1 << 36) - 1, 37).is_err());
        assert!(check_ring(0, 0).is_err());
        assert!(check_ring(0, 65).is_err());
        assert_eq!(check_ring(i64::MIN, 64), Ok(i64::MIN));
        for v in [-(1i64 << 36), -1, 0, 5, (1 << 36) - 1] {
            assert_eq!(from_ring_u64(to_ring_u64(v, 37).unwrap(), 37), Ok(v));
        }
        assert_eq!(to_ring_u64(-1, 37), Ok((1 << 37) - 1));
        assert!(from_ring_u64(1 << 37, 37).is_err());
        assert_eq!(from_ring_u64(u64::MAX, 64), Ok(-1));
        assert_eq!(encode(0.5 / 4096.0, 12), 1);
        assert_eq!(encode(-0.5 / 4096.0, 12), -1);
        assert_eq!(encode(1.25, 12), 5120);
        assert_eq!(encode(f64::NAN, 12), 0);
        assert_eq!(encode(1e300, 12), i64::MAX);
        assert_eq!(decode(-5120, 12), -1.25);
        assert_eq!(trunc_floor(-1, 3), -1);
        assert_eq!(trunc_floor(-9, 3), -2);
        assert_eq!(trunc_floor(9, 3), 1);
        assert_eq!(trunc_floor(i64::MIN, 64), -1);
        assert_eq!(trunc_floor(i64::MAX, 100), 0);
        assert_eq!(round_shift(5, 1), 3);
        assert_eq!(round_shift(-5, 1), -2);
        assert_eq!(round_shift(7, 0), 7);
        assert_eq!(round_shift(i64::MAX, 1), 1 << 62);
        assert_eq!(round_shift(i64::MIN, 64), 0);
        assert_eq!(round_shift(i64::MAX, 200), 0);
    }

    // ----- GELU -----

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

    // ----- softmax -----

    fn exp_tables() -> ExpTables {
        fit_exp_tables(12, 14, 12).unwrap()
    }

    #[test]
    fn softmax_tables_and_constants() {
        let t = exp_tables();
        assert_eq!((t.hi_bits, t.lo_bits, t.recip_guard), (8, 8, 8));
        assert_eq!(t.clip, 16 << 12);
        assert_eq!((t.recip_shift(), t.recip_num_log2()), (22, 34));
        assert_eq!((t.hi[0], t.lo[0]), (1 << 14, 1 << 14));
        for h in 0..256 {
            let want = ((-(h as f64) / 16.0).exp() * 16384.0).round() as i64;
            assert_eq!(t.hi[h], want, "T1[{h}]");
        }
        for l in 0..256 {
            let want = ((-(l as f64) / 4096.0).exp() * 16384.0).round() as i64;
            assert_eq!(t.lo[l], want, "T0[{l}]");
        }
        // Other scales generalise the split.
        let t10 = fit_exp_tables(10, 14, 12).unwrap();
        assert_eq!((t10.hi_bits, t10.lo_bits, t10.clip), (7, 7, 16 << 10));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<ExpTables>(&json).unwrap(), t);
    }

    /// Measured bound on random rows of length 1..=256 (uniform scores, several spreads):
    /// |p − 2^12·softmax| ≤ 3 output ULPs (the model bound below is the guarantee).
    const SOFTMAX_ULP_BOUND: f64 = 3.0;

    /// Per-entry guarantee (derivation in [`softmax_row`]'s test notes): with
    /// `E_j = e*_j + δ_j`, `δ_j ∈ (−2.01, 1.01]` (two table roundings, one floor),
    /// `|p_j − p*_j| ≤ 1 + 2^−guard + 2.01·(2^fo + n·p*_j)/Z`.
    fn softmax_entry_bound(t: &ExpTables, row: &[i64], p_star: f64) -> f64 {
        let m = *row.iter().max().unwrap();
        let z: i64 = row.iter().map(|&v| t.exp_neg(m as i128 - v as i128)).sum();
        let fo = libm::ldexp(1.0, t.frac_out as i32);
        1.0 + libm::ldexp(1.0, -(t.recip_guard as i32))
            + 2.01 * (fo + row.len() as f64 * p_star) / z as f64
    }

    #[test]
    fn softmax_random_rows_match_float() {
        let t = exp_tables();
        for (spread, seed) in [(0.5, 11u64), (1.0, 1), (4.0, 2), (12.0, 3), (40.0, 4)] {
            let st = softmax_max_error(&t, 300, 256, spread, seed).unwrap();
            eprintln!("softmax spread {spread}: {st:?}");
            assert!(st.max_ulp <= SOFTMAX_ULP_BOUND, "spread {spread}: {st:?}");
            assert!(st.max_sum_deficit >= 0);
            // the per-entry guarantee, on fresh rows
            let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
            for _ in 0..100 {
                let len = rng.gen_range(1..=256);
                let row: Vec<i64> = (0..len)
                    .map(|_| encode(rng.gen_range(-spread..=spread), 12))
                    .collect();
                let p = softmax_row(&row, &t).unwrap();
                let q = softmax_float(&row, 12, 12);
                for (a, b) in p.iter().zip(&q) {
                    let bound = softmax_entry_bound(&t, &row, *b);
                    assert!((*a as f64 - b).abs() <= bound, "{a} vs {b} (bound {bound})");
                }
            }
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let t = exp_tables();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for len in 1..=256usize {
            let row: Vec<i64> = (0..len).map(|_| rng.gen_range(-40000..40000)).collect();
            let p = softmax_row(&row, &t).unwrap();
            let sum: i64 = p.iter().sum();
            assert!(
                sum <= 4096 && sum > 4096 - len as i64 - 1,
                "len {len}: sum {sum}"
            );
            assert!(p.iter().all(|&v| (0..=4096).contains(&v)));
        }
    }

    #[test]
    fn softmax_special_rows() {
        let t = exp_tables();
        // single entry: exactly one
        assert_eq!(softmax_row(&[123], &t), Ok(vec![4096]));
        // all equal: floor(2^12/n) each (R = ⌊2^20/n⌋, p = ⌊R/2^8⌋)
        for n in [1usize, 2, 3, 7, 100, 256] {
            let p = softmax_row(&vec![-777; n], &t).unwrap();
            let want = ((1i64 << 20) / n as i64) >> 8;
            assert!(p.iter().all(|&v| v == want), "n = {n}: {p:?}");
            assert!((4096 / n as i64 - want).abs() <= 1);
        }
        // one huge value dominates; the rest is clipped to E(clip−1) = 0
        let mut row = vec![0i64; 50];
        row[17] = 1 << 40;
        let p = softmax_row(&row, &t).unwrap();
        assert_eq!(p[17], 4096);
        assert!(p.iter().enumerate().all(|(j, &v)| j == 17 || v == 0));
        // clipped entries: distances 15.9, 16, 17, 1000 (real) are all below E resolution
        let row = vec![
            0,
            -encode(15.9, 12),
            -encode(16.0, 12),
            -encode(17.0, 12),
            -1000 << 12,
        ];
        let st = softmax_error_on(&t, &[row]).unwrap();
        assert!(st.max_ulp <= SOFTMAX_ULP_BOUND, "{st:?}");
        assert_eq!(t.exp_neg(1 << 16), t.exp_neg((1 << 16) - 1));
        assert_eq!(t.exp_neg(i128::MAX), t.exp_neg((1 << 16) - 1));
        // extreme scores: differences beyond i64 are fine
        let p = softmax_row(&[i64::MIN, i64::MAX, i64::MAX], &t).unwrap();
        assert_eq!(p, vec![0, 2048, 2048]);
        // two entries with a known split
        let p = softmax_row(&[0, -encode(std::f64::consts::LN_2, 12)], &t).unwrap();
        assert!(
            (p[0] - 2731).abs() <= 1 && (p[1] - 1365).abs() <= 1,
            "{p:?}"
        );
    }

    #[test]
    fn softmax_errors_not_panics() {
        let t = exp_tables();
        assert!(softmax_row(&[], &t)
            .unwrap_err()
            .to_string()
            .contains("softmax"));
        let mut bad = t.clone();
        bad.hi[0] = 0; // would make Z = 0
        assert!(softmax_row(&[1, 2], &bad).is_err());
        let mut bad = t.clone();
        bad.lo[3] = 1 << 20;
        assert!(softmax_row(&[1, 2], &bad).is_err());
        let mut bad = t.clone();
        bad.recip_guard = 40;
        assert!(softmax_row(&[1, 2], &bad).is_err());
    }

    // ----- LayerNorm -----

    #[test]
    fn layernorm_params_gpt2_small() {
        let p = layernorm_params(768, 1e-5, 12, 21_800.0).unwrap();
        assert_eq!((p.r1, p.r2, p.v_eps, p.f_rho), (10, 6, 18, 18));
        let b = p.bounds(21_800.0).unwrap();
        eprintln!("LayerNorm n=768 bounds: {b:?}");
        assert_eq!(b.d_bits, 37);
        assert!(b.rho_max < 1 << 27 && b.rho_max > 1 << 26);
        assert!(b.big_v_max < 1 << LN_V_BITS);
        // |e·ρ| ≤ √n·2^30·(1 + 1/(2√18)) < 2^35
        assert!(b.e_rho_bits <= 36, "{b:?}");
        for d in [13_000.0, 25_100.0] {
            let q = layernorm_params(768, 1e-5, 12, d).unwrap();
            assert_eq!((q.r1, q.r2), (10, 6), "D = {d}");
        }
        let q = layernorm_params(128, 1e-5, 12, 21_800.0).unwrap();
        eprintln!("LayerNorm n=128 params: {q:?}");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<LayerNormParams>(&json).unwrap(), p);
    }

    #[test]
    fn isqrt_and_rsqrt_exact() {
        for x in 0u128..20_000 {
            let r = isqrt_u128(x);
            assert!(r * r <= x && (r + 1) * (r + 1) > x, "x = {x}");
        }
        for x in [
            u128::MAX,
            u128::MAX - 1,
            1u128 << 126,
            (1u128 << 64) - 1,
            1u128 << 64,
        ] {
            let r = isqrt_u128(x);
            assert!(r * r <= x && (r + 1).checked_mul(r + 1).is_none_or(|s| s > x));
        }
        // ρ maximal: brute force over small V and N
        for v in 1u128..300 {
            for n_num in (0u128..5000).step_by(7) {
                let rho = rsqrt_floor(n_num, v).unwrap() as u128;
                let brute = (0u128..).take_while(|r| r * r * v <= n_num).last().unwrap();
                assert_eq!(rho, brute, "N = {n_num}, V = {v}");
            }
        }
        // and with the real numerator for small V
        let p = layernorm_params(768, 1e-5, 12, 21_800.0).unwrap();
        let n_num = p.rsqrt_numerator();
        for v in 1u128..2000 {
            let rho = rsqrt_floor(n_num, v).unwrap() as u128;
            assert!(rho * rho * v <= n_num && (rho + 1) * (rho + 1) * v > n_num);
        }
        assert!(rsqrt_floor(5, 0).is_err());
        assert!(rsqrt_floor(u128::MAX, 1).is_err());
    }

    /// Error model of [`layernorm_row`] in output ULPs for a row with standard deviation σ
    /// (real) and `|X − μ| ≤ 6σ` (rows of [`layernorm_max_error`]), twice the sum of:
    /// - final floor and double rounding: 1;
    /// - rounding `e` (±½) amplified by `ρ/2^f_ρ ≈ 2^r1/(nσ)`: `2^(r1−1)/(nσ)`;
    /// - flooring `ρ` (−1) times `|e|/2^f_ρ = n|X−μ|·2^(f−r1−f_ρ)`: `6nσ·2^(f−r1−f_ρ)`;
    /// - quantising `v` (resolution 1 at `v_rms = nσ·2^(f−T)`) perturbs `V` by a relative
    ///   `≈ 0.58/(√n·v_rms) (1 s.d.) + 1/(12·v_rms²) (bias)`, and `y ≤ 6·2^f` by half of that
    ///   (3 s.d. allowed).
    fn layernorm_model_bound(p: &LayerNormParams, sigma: f64) -> f64 {
        let n = p.n as f64;
        let f = p.frac as i32;
        let t = (p.r1 + p.r2) as i32;
        let v_rms = n * sigma * libm::ldexp(1.0, f - t);
        let e_term = libm::ldexp(1.0, p.r1 as i32 - 1) / (n * sigma);
        let rho_term = 6.0 * n * sigma * libm::ldexp(1.0, f - (p.r1 + p.f_rho) as i32);
        let v_rel = 3.0 * 0.58 / (n.sqrt() * v_rms) + 1.0 / (12.0 * v_rms * v_rms);
        let v_term = 6.0 * libm::ldexp(1.0, f) * v_rel / 2.0;
        2.0 * (1.0 + e_term + rho_term + v_term)
    }

    /// Random rows, parameters calibrated to the data (D = 8σ): the regime the compiler
    /// produces, one parameter set per LayerNorm instance.
    #[test]
    fn layernorm_random_rows_calibrated_params() {
        let eps = 1e-5;
        for n in [768usize, 128] {
            for (sigma, offset, seed) in [
                (0.05, 1.0, 1u64),
                (0.2, 0.0, 2),
                (1.0, 3.0, 3),
                (5.0, -20.0, 4),
                (30.0, 100.0, 5),
            ] {
                let p = layernorm_params(n, eps, 12, 8.0 * sigma).unwrap();
                let (max, mean) = layernorm_max_error(&p, eps, 20, sigma, offset, seed).unwrap();
                let bound = layernorm_model_bound(&p, sigma);
                eprintln!(
                    "LayerNorm n={n} D=8σ r1={} r2={} sigma={sigma}: max {max:.3} mean {mean:.3} (model bound {bound:.2})",
                    p.r1, p.r2
                );
                assert!(max <= bound, "n={n} sigma={sigma}: {max} > {bound}");
                assert!(max <= 4.0, "n={n} sigma={sigma}: {max} > 4 ULP");
            }
        }
    }

    /// Random rows with the GPT-2 small parameters (D = 21 800): precision degrades as σ/D
    /// shrinks (v quantisation), following the model bound.
    #[test]
    fn layernorm_random_rows_wide_params() {
        let eps = 1e-5;
        for n in [768usize, 128] {
            let p = layernorm_params(n, eps, 12, 21_800.0).unwrap();
            for (sigma, offset, seed) in [
                (0.05, 1.0, 1u64),
                (0.5, 0.0, 2),
                (1.0, 3.0, 3),
                (5.0, -20.0, 4),
                (30.0, 100.0, 5),
                (300.0, 0.0, 6),
            ] {
                let (max, mean) = layernorm_max_error(&p, eps, 20, sigma, offset, seed).unwrap();
                let bound = layernorm_model_bound(&p, sigma);
                eprintln!(
                    "LayerNorm n={n} D=21800 r1={} r2={} sigma={sigma}: max {max:.3} mean {mean:.3} (model bound {bound:.2})",
                    p.r1, p.r2
                );
                assert!(max <= bound, "n={n} sigma={sigma}: {max} > {bound}");
            }
        }
    }

    #[test]
    fn layernorm_constant_and_special_rows() {
        let p = layernorm_params(768, 1e-5, 12, 21_800.0).unwrap();
        for c in [0i64, 4096, -123_456, (1 << 36) / 768 - 1] {
            assert_eq!(layernorm_row(&vec![c; 768], &p), Ok(vec![0; 768]));
        }
        // One entry off by one ULP: var ≈ 2^-24/768, far below ε — y ≈ (x−μ)/√ε.
        let mut row = vec![0i64; 768];
        row[5] = 1;
        let y = layernorm_row(&row, &p).unwrap();
        let r = layernorm_float(&row, 12, 1e-5);
        // e = round(767/2^10) = 1 is amplified by ρ/2^f_ρ ≈ 418: the documented e-rounding
        // error ½·ρ/2^f_ρ (the input's own ULP is worth 316 output ULPs here).
        let rho = rsqrt_floor(p.rsqrt_numerator(), p.v_eps as u128).unwrap();
        assert_eq!(y[5], rho >> p.f_rho);
        let bound = 0.5 * rho as f64 / (1u64 << p.f_rho) as f64 + 2.0;
        assert!((y[5] as f64 - r[5]).abs() <= bound, "{} vs {}", y[5], r[5]);
        // A single outlier at the calibrated bound.
        let mut row = vec![0i64; 768];
        row[0] = encode(21_000.0, 12);
        let y = layernorm_row(&row, &p).unwrap();
        let r = layernorm_float(&row, 12, 1e-5);
        for (a, b) in y.iter().zip(&r) {
            assert!((*a as f64 - b).abs() <= 0.002 * b.abs() + 2.0, "{a} vs {b}");
        }
    }

    #[test]
    fn layernorm_errors_not_panics() {
        let p = layernorm_params(768, 1e-5, 12, 21_800.0).unwrap();
        assert!(layernorm_row(&[0; 10], &p).is_err());
        let mut row = vec![0i64; 768];
        row[0] = i64::MAX;
        let err = layernorm_row(&row, &p).unwrap_err();
        assert!(err.to_string().starts_with("layernorm: d[0]"), "{err}");
        let mut row = vec![0i64; 768];
        row[0] = i64::MIN / 768;
        row[1] = i64::MAX / 768;
        assert!(layernorm_row(&row, &p).is_err());
        let mut bad = p.clone();
        bad.v_eps = 0;
        assert!(layernorm_row(&[0; 768], &bad).is_err());
        let mut bad = p.clone();
        bad.r2 = 50;
        assert!(layernorm_row(&[0; 768], &bad).is_err());
        assert!(layernorm_params(0, 1e-5, 12, 1.0).is_err());
        assert!(layernorm_params(768, f64::NAN, 12, 1.0).is_err());
        assert!(layernorm_params(768, 1e-5, 12, f64::INFINITY).is_err());
        // V overflow with shifts of zero
        let p0 = LayerNormParams {
            n: 4,
            frac: 12,
            r1: 0,
            r2: 0,
            v_eps: 1,
            f_rho: 18,
        };
        let err = layernorm_row(&[1 << 58, 0, 0, 0], &p0).unwrap_err();
        assert!(err.to_string().contains("V"), "{err}");
        // d beyond ±2^61
        let err = layernorm_row(&[1 << 60, 0, 0, 0], &p0).unwrap_err();
        assert!(err.to_string().contains("2^61"), "{err}");
    }

    // ----- argmax -----

    #[test]
    fn argmax_ties_and_tree() {
        assert_eq!(argmax(&[3]), Ok(0));
        assert_eq!(argmax(&[1, 5, 5, 2]), Ok(1));
        assert_eq!(argmax(&[5, 5, 5]), Ok(0));
        assert_eq!(argmax(&[0, 1, 2, 7, 7]), Ok(3));
        assert_eq!(argmax(&[i64::MIN, i64::MAX, i64::MAX]), Ok(1));
        assert!(argmax(&[]).is_err());
        // against the linear scan on random data with many ties
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for len in 1..200 {
            let z: Vec<i64> = (0..len).map(|_| rng.gen_range(-3..3)).collect();
            let m = *z.iter().max().unwrap();
            let first = z.iter().position(|&v| v == m).unwrap();
            assert_eq!(argmax(&z), Ok(first), "{z:?}");
        }
    }

    // ----- top-K sampling -----

    #[test]
    fn top_k_order_and_ties() {
        assert_eq!(top_k(&[1, 5, 5, 2], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[4, 4, 4, 4], 2), vec![0, 1]);
        assert_eq!(top_k(&[1, 2], 5), vec![1, 0]);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for len in 1..100 {
            let z: Vec<i64> = (0..len).map(|_| rng.gen_range(-4..4)).collect();
            assert_eq!(top_k(&z, 1), vec![argmax(&z).unwrap()]);
            let t = top_k(&z, len);
            // Every kept value is at least every dropped one, for each K.
            for k in 1..len {
                let least_kept = t[..k].iter().map(|&i| z[i]).min().unwrap();
                assert!(t[k..].iter().all(|&i| z[i] <= least_kept));
            }
        }
    }

    #[test]
    fn sample_top_k_follows_the_prefix_sums() {
        let t = fit_exp_tables(12, 14, 12).unwrap();
        // T = 1 at the tables' scale: mul 2^16, shift 16.
        let (mul, shift) = (1u64 << 16, 16);
        let values = [3 << 12, 1 << 12, 0, 3 << 12];
        let p = softmax_row(&values, &t).unwrap();
        let w = sample_bits(12);
        let total: i128 = p.iter().map(|&x| x as i128).sum();
        // u at each prefix boundary picks the next position; u = 0 the first, the top the last.
        assert_eq!(sample_top_k(&values, mul, shift, &t, 0), Ok(0));
        assert_eq!(
            sample_top_k(&values, mul, shift, &t, (1u64 << w) - 1),
            Ok(3)
        );
        let mut s = 0i128;
        for (i, &x) in p.iter().enumerate().take(3) {
            s += x as i128;
            // The smallest u with u·S_K ≥ 2^w·S_i is the first that picks i + 1.
            let u = ((s << w) + total - 1) / total;
            assert_eq!(sample_top_k(&values, mul, shift, &t, u as u64), Ok(i + 1));
            assert_eq!(sample_top_k(&values, mul, shift, &t, u as u64 - 1), Ok(i));
        }
        // A low temperature (T = 1/16) makes the largest values take all the mass.
        let cold = (16u64 << 16, 16);
        for u in [0u64, 1 << (w - 1), (1 << w) - 1] {
            let i = sample_top_k(&values, cold.0, cold.1, &t, u).unwrap();
            assert!(i == 0 || i == 3, "u {u}: {i}");
        }
        assert_eq!(temperature(-5, 1 << 15, 16), -3);
    }
}
