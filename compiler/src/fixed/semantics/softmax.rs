//! Softmax over one row: the two-digit exponential tables and the per-row reciprocal.

use super::inverse::{inv_pow, inv_tables, InvPower, InvTables};
use super::{decode, encode, SemResult, SemanticsError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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

    /// The tables of `R ≈ ⌊2^K / Z⌋` for `2^frac_e ≤ Z ≤ 2^K` ([`inverse`](super::inverse)).
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
/// `inv_pow` is the inverse-power recipe of [`inverse`](super::inverse) with the tables
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
