//! The compressing map of dual LPN over Z_2^ℓ: a quasi-cyclic code with two blocks, as in
//! Boyle, Couteau, Gilboa, Ishai, Kohl, Rindal, Scholl (CCS 2019, §5 and §6.2, "quasi-cyclic
//! syndrome decoding"). It turns a sparse noise vector e ∈ Z_2^ℓ^(2L′) into a pseudorandom vector
//! u ∈ Z_2^ℓ^L, and, being linear, turns shares of e ⊗ Δ into shares of u ⊗ Δ: the expansion step
//! of the subfield VOLE in [`crate::protocols::svole_matmul`].
//!
//! **Map.** With L′ a prime, a ∈ Z_2^ℓ^(L′) expanded from a public seed, and v = (v₁, v₂) split
//! into two halves of length L′:
//!
//!   H·v = (v₁ + a ⋆ v₂)[0..L),   (a ⋆ v₂)[r] = Σ_j a[j]·v₂[(r − j) mod L′],
//!
//! the cyclic convolution modulo X^(L′) − 1, truncated to the first L < L′ coordinates. The
//! syndrome of a regular noise vector of weight t (one nonzero entry in each of t equal blocks of
//! [0, 2L′)) is the mask; the code is applied to the dense vectors of a PPRF's leaves too, so it
//! must be fast on dense inputs: one exact integer convolution per column by the negacyclic NTT
//! of length n ≥ 2L′ − 1 modulo two 62-bit primes, recombined by CRT (exact while
//! L′·2^(2ℓ) < p₀p₁ ≈ 2^123), then reduced mod 2^ℓ.
//!
//! **Parameters.** L′ is the least prime above L for which 2 is a primitive root, so X^(L′) − 1 =
//! (X − 1)·Φ_(L′) with Φ_(L′) irreducible over F₂ (a reducible modulus with small factors would
//! give the attacker small subproblems). The factor X − 1 yields one dense linear test, the sum
//! of all L′ coordinates, whose bias comes from the noise values' parity; outputting only L < L′
//! coordinates leaves a uniform unknown in that sum. The noise weight t comes from the bound
//! against linear tests used for these codes (libOTe's estimate for quasi-cyclic codes of rate
//! 1/2, pseudo-minimum distance ratio δ ≥ 0.2): a test z succeeds with advantage at most
//! (1 − 2δ)^t, so t ≥ 128 / −log₂(1 − 2δ) = 174 at δ = 0.2 ([`noise_weight`]). CipherGPT uses
//! t = 144 with this code rate (its Table II). Over Z_2^ℓ the noise values are odd (units), so
//! the projection mod 2 keeps the full weight t — the reduction of Liu, Wang, Yang, Yu
//! (EUROCRYPT 2024) from LPN over Z_2^ℓ to LPN over F₂ then applies at the same weight.
//!
//! **Security.** 128-bit computational under dual LPN with this code (the assumption of
//! BCGIKRS19 and CipherGPT §III), with the parameters above.

use rayon::prelude::*;

use super::pack::mask;
use super::rlwe::ntt::{is_prime, ntt_prime_below, NttPlan};
use super::{Block, Prg};
use crate::net::NetError;

/// Computational security the noise weight targets.
pub const SECURITY_BITS: f64 = 128.0;
/// Pseudo-minimum-distance ratio assumed for the quasi-cyclic code of rate 1/2.
pub const MIN_DISTANCE_RATIO: f64 = 0.2;

/// The least noise weight t with (1 − 2δ)^t ≤ 2^−128 at δ = [`MIN_DISTANCE_RATIO`] (174).
pub fn noise_weight() -> usize {
    (SECURITY_BITS / -(1.0 - 2.0 * MIN_DISTANCE_RATIO).log2()).ceil() as usize
}

/// Whether 2 generates the multiplicative group mod the prime p.
fn two_is_primitive(p: u64) -> bool {
    let n = p - 1;
    let mut m = n;
    let mut f = 2;
    let mut factors = Vec::new();
    while f * f <= m {
        if m.is_multiple_of(f) {
            factors.push(f);
            while m.is_multiple_of(f) {
                m /= f;
            }
        }
        f += 1;
    }
    if m > 1 {
        factors.push(m);
    }
    let pow = |e: u64| {
        let (mut r, mut b, mut e) = (1u128, 2u128, e);
        while e > 0 {
            if e & 1 == 1 {
                r = r * b % p as u128;
            }
            b = b * b % p as u128;
            e >>= 1;
        }
        r
    };
    factors.iter().all(|&q| pow(n / q) != 1)
}

/// The least prime L′ > `l` with 2 primitive mod L′.
pub fn block_length(l: usize) -> usize {
    let mut p = l as u64 + 1;
    while !(p > 2 && is_prime(p) && two_is_primitive(p)) {
        p += 1;
    }
    p as usize
}

/// A quasi-cyclic compressing map Z_2^ℓ^(2L′) → Z_2^ℓ^L (the module docs).
pub struct QcCode {
    /// Output length L.
    pub rows: usize,
    /// The prime block length L′ > L; the input has 2L′ coordinates.
    pub block: usize,
    bits: u32,
    /// The public vector a, reduced mod 2^ℓ.
    a: Vec<u64>,
    /// NTT length n ≥ 2L′ − 1 and the two plans.
    plans: [NttPlan; 2],
    /// â modulo each prime.
    a_hat: [Vec<u64>; 2],
}

impl QcCode {
    /// The code for L = `rows` outputs over Z_2^`bits`, its vector a from the public `seed`.
    pub fn new(rows: usize, bits: u32, seed: Block) -> Result<QcCode, NetError> {
        if rows == 0 || rows > 1 << 22 || !(1..=44).contains(&bits) {
            return Err(NetError::InvalidArgument(format!(
                "qc code: {rows} rows over Z_2^{bits} (needs 1..=2^22 rows, ℓ ≤ 44)"
            )));
        }
        let block = block_length(rows);
        let n = (2 * block - 1).next_power_of_two().max(2);
        // Exactness of the integer convolution: block·2^(2ℓ) < p0·p1.
        let p0 = ntt_prime_below(1 << 62, n, &[]);
        let p1 = ntt_prime_below(1 << 62, n, &[p0]);
        let bound = (block as f64).log2() + 2.0 * bits as f64;
        if bound >= (p0 as f64).log2() + (p1 as f64).log2() - 1.0 {
            return Err(NetError::InvalidArgument(format!(
                "qc code: a convolution of {block} terms of {bits} bits exceeds the CRT range"
            )));
        }
        let mask = mask(bits);
        let a: Vec<u64> = Prg::new(seed)
            .values(block, 64)
            .into_iter()
            .map(|x| x & mask)
            .collect();
        let plans = [NttPlan::new(n, p0), NttPlan::new(n, p1)];
        let a_hat = [0, 1].map(|i| {
            let pl = &plans[i];
            let mut v = vec![0u64; n];
            for (d, &x) in v.iter_mut().zip(&a) {
                *d = x % pl.m.p;
            }
            pl.forward(&mut v);
            v
        });
        Ok(QcCode {
            rows,
            block,
            bits,
            a,
            plans,
            a_hat,
        })
    }

    /// Input length 2L′.
    pub fn noise_len(&self) -> usize {
        2 * self.block
    }

    /// H·v for a dense `v` (2L′ values mod 2^ℓ): L values.
    pub fn compress(&self, v: &[u64]) -> Result<Vec<u64>, NetError> {
        if v.len() != self.noise_len() {
            return Err(NetError::InvalidArgument(format!(
                "qc code: {} inputs, expected {}",
                v.len(),
                self.noise_len()
            )));
        }
        let conv = self.convolve(&v[self.block..]);
        let m = mask(self.bits);
        Ok((0..self.rows)
            .map(|r| v[r].wrapping_add(conv[r]) & m)
            .collect())
    }

    /// H applied to every column of a row-major matrix with 2L′ rows and `cols` columns: the L ×
    /// `cols` result, row-major. Columns in parallel.
    pub fn compress_columns(&self, v: &[u64], cols: usize) -> Result<Vec<u64>, NetError> {
        let n_in = self.noise_len();
        if cols == 0 || v.len() != n_in * cols {
            return Err(NetError::InvalidArgument(format!(
                "qc code: a matrix of {} values is not {n_in} × {cols}",
                v.len()
            )));
        }
        let m = mask(self.bits);
        // Transpose in tiles of 64 × 64 (cache-friendly), then convolve each column's second
        // half and add its first.
        const TILE: usize = 64;
        let mut by_col = vec![0u64; n_in * cols];
        by_col
            .par_chunks_mut(TILE * n_in)
            .enumerate()
            .for_each(|(ct, dst)| {
                let c0 = ct * TILE;
                let w = dst.len() / n_in;
                for r0 in (0..n_in).step_by(TILE) {
                    for r in r0..(r0 + TILE).min(n_in) {
                        let src = &v[r * cols + c0..r * cols + c0 + w];
                        for (c, &x) in src.iter().enumerate() {
                            dst[c * n_in + r] = x;
                        }
                    }
                }
            });
        let columns: Vec<Vec<u64>> = by_col
            .par_chunks(n_in)
            .map(|col| {
                let conv = self.convolve(&col[self.block..]);
                (0..self.rows)
                    .map(|r| col[r].wrapping_add(conv[r]) & m)
                    .collect()
            })
            .collect();
        drop(by_col);
        let mut out = vec![0u64; self.rows * cols];
        out.par_chunks_mut(TILE * cols)
            .enumerate()
            .for_each(|(rt, dst)| {
                let r0 = rt * TILE;
                let h = dst.len() / cols;
                for (c, col) in columns.iter().enumerate() {
                    for r in 0..h {
                        dst[r * cols + c] = col[r0 + r];
                    }
                }
            });
        Ok(out)
    }

    /// H·e for a sparse `e` given as (position in [0, 2L′), value) pairs: L values.
    pub fn compress_sparse(&self, noise: &[(usize, u64)]) -> Result<Vec<u64>, NetError> {
        let (l, b) = (self.rows, self.block);
        let m = mask(self.bits);
        let mut out = vec![0u64; l];
        for &(p, val) in noise {
            if p >= 2 * b {
                return Err(NetError::InvalidArgument(format!(
                    "qc code: noise position {p} outside [0, {})",
                    2 * b
                )));
            }
            if p < b {
                if p < l {
                    out[p] = out[p].wrapping_add(val);
                }
                continue;
            }
            // (a ⋆ val·X^s)[r] = val·a[(r − s) mod L′].
            let s = p - b;
            for (r, o) in out.iter_mut().enumerate() {
                let j = if r >= s { r - s } else { r + b - s };
                *o = o.wrapping_add(val.wrapping_mul(self.a[j]));
            }
        }
        out.iter_mut().for_each(|x| *x &= m);
        Ok(out)
    }

    /// (a ⋆ w)[0..L) mod 2^64 for w of length L′ (exact integer cyclic convolution).
    fn convolve(&self, w: &[u64]) -> Vec<u64> {
        let b = self.block;
        let m = mask(self.bits);
        let prod = [0, 1].map(|i| {
            let pl = &self.plans[i];
            let mut x = vec![0u64; pl.n];
            for (d, &y) in x.iter_mut().zip(w) {
                *d = (y & m) % pl.m.p;
            }
            pl.forward(&mut x);
            for (d, &ah) in x.iter_mut().zip(&self.a_hat[i]) {
                *d = pl.m.mul(*d, ah);
            }
            pl.inverse(&mut x);
            x
        });
        let (p0, p1) = (self.plans[0].m.p, self.plans[1].m.p);
        let m1 = &self.plans[1].m;
        let p0_inv = m1.inv(p0 % p1);
        let crt = |j: usize| -> u64 {
            let (x0, x1) = (prod[0][j], prod[1][j]);
            // x = x0 + p0·((x1 − x0)·p0⁻¹ mod p1), exact in [0, p0·p1).
            let t = m1.mul(m1.sub(x1, x0 % p1), p0_inv);
            (x0 as u128 + p0 as u128 * t as u128) as u64
        };
        // Fold the linear product (degree ≤ 2L′ − 2) modulo X^L′ − 1.
        (0..self.rows)
            .map(|r| {
                let hi = if r + b < 2 * b - 1 { crt(r + b) } else { 0 };
                crt(r).wrapping_add(hi)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn naive(code: &QcCode, v: &[u64]) -> Vec<u64> {
        let b = code.block;
        (0..code.rows)
            .map(|r| {
                let mut s = v[r];
                for j in 0..b {
                    let idx = (r + b - j) % b;
                    s = s.wrapping_add(code.a[j].wrapping_mul(v[b + idx]));
                }
                s & mask(code.bits)
            })
            .collect()
    }

    #[test]
    fn block_length_is_a_prime_with_two_primitive() {
        assert_eq!(block_length(10), 11);
        assert_eq!(block_length(11), 13);
        // 65537 is prime but 2 has order 32 modulo it.
        let b = block_length(65536);
        assert!(b > 65537 && is_prime(b as u64) && two_is_primitive(b as u64));
        assert_eq!(noise_weight(), 174);
    }

    #[test]
    fn dense_sparse_and_columns_agree_with_the_definition() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (rows, bits) in [(1, 37), (20, 37), (300, 44), (129, 13)] {
            let code = QcCode::new(rows, bits, Block(rng.gen())).unwrap();
            let m = mask(bits);
            let v: Vec<u64> = (0..code.noise_len())
                .map(|_| rng.gen::<u64>() & m)
                .collect();
            let want = naive(&code, &v);
            assert_eq!(code.compress(&v).unwrap(), want, "rows {rows}");
            // Sparse: the same as the dense map on the scattered vector.
            let noise: Vec<(usize, u64)> = (0..7)
                .map(|_| (rng.gen_range(0..code.noise_len()), rng.gen::<u64>() & m))
                .collect();
            let mut dense = vec![0u64; code.noise_len()];
            for &(p, x) in &noise {
                dense[p] = dense[p].wrapping_add(x) & m;
            }
            assert_eq!(code.compress_sparse(&noise).unwrap(), naive(&code, &dense));
            // Columns: three columns, each the dense map.
            let cols = 3;
            let mat: Vec<u64> = (0..code.noise_len() * cols)
                .map(|_| rng.gen::<u64>() & m)
                .collect();
            let out = code.compress_columns(&mat, cols).unwrap();
            for c in 0..cols {
                let col: Vec<u64> = (0..code.noise_len()).map(|r| mat[r * cols + c]).collect();
                let want = naive(&code, &col);
                for r in 0..rows {
                    assert_eq!(out[r * cols + c], want[r]);
                }
            }
        }
        assert!(QcCode::new(0, 37, Block(1)).is_err());
        let code = QcCode::new(4, 37, Block(1)).unwrap();
        assert!(code.compress(&[0; 3]).is_err());
        assert!(code.compress_sparse(&[(code.noise_len(), 1)]).is_err());
    }
}
