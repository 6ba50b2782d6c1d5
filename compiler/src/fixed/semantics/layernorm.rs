//! LayerNorm normalisation (γ, β folded into the next linear layer).

use super::inverse::{self, inv_pow, inv_tables, InvPower, InvTables};
use super::{decode, encode, round_shift_i128, to_i64, SemResult, SemanticsError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
