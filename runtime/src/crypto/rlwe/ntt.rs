//! Arithmetic modulo a word-size prime p ≡ 1 (mod 2N), p < 2^62, and the negacyclic number
//! theoretic transform over Z_p[X]/(X^N + 1).
//!
//! **Transform.** With ψ a primitive 2N-th root of unity mod p, the forward transform maps
//! a(X) to its values a(ψ^(2·brv(i)+1)) at the N roots of X^N + 1, in bit-reversed order
//! (Cooley–Tukey butterflies, natural order in); the inverse is Gentleman–Sande, bit-reversed in,
//! natural out, scaled by N^(−1). A product in Z_p[X]/(X^N + 1) is then a pointwise product.
//! ψ = g^((p−1)/2N) for the smallest integer g ≥ 2 that makes ψ^N = −1. This order is part of the
//! wire protocol: the `a` of a ciphertext is expanded from its seed directly in the transform
//! domain (see [`super::sample`]), so both parties must use this transform (tested below against
//! direct evaluation).
//!
//! **Arithmetic.** Twiddles carry Shoup's precomputed quotients ⌊w·2^64/p⌋, and the butterflies
//! reduce lazily (Harvey, "Faster arithmetic for number-theoretic transforms", 2014): values stay
//! in [0, 4p) inside the transform (p < 2^62 keeps 4p below 2^64) and are brought to [0, p) once
//! at the end. Products of two residues are reduced with a 128-bit Barrett reduction, which also
//! reduces the unreduced sums of products of [`super::eval`]'s accumulators.

/// A prime modulus p < 2^62 with a Barrett constant for 128-bit reductions.
#[derive(Clone, Copy, Debug)]
pub struct Modulus {
    /// The prime.
    pub p: u64,
    /// ⌊(2^128 − 1)/p⌋ as (low, high) 64-bit words.
    ratio: (u64, u64),
}

impl Modulus {
    /// The modulus p; `p` must be an odd prime below 2^62 (checked by the caller's tests).
    pub const fn new(p: u64) -> Modulus {
        let r = u128::MAX / p as u128;
        Modulus {
            p,
            ratio: (r as u64, (r >> 64) as u64),
        }
    }

    /// Bits of p.
    pub fn bits(&self) -> u32 {
        64 - self.p.leading_zeros()
    }

    /// a + b mod p for a, b < p.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        s.min(s.wrapping_sub(self.p))
    }

    /// a − b mod p for a, b < p.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        let d = a.wrapping_sub(b);
        d.min(d.wrapping_add(self.p))
    }

    /// x mod p for any 128-bit x (Barrett: the quotient estimate is off by at most 2).
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let (lo, hi) = (x as u64, (x >> 64) as u64);
        let (r0, r1) = self.ratio;
        // The high 128 bits of the 256-bit product x · ratio, of which only the low word of
        // ⌊x·ratio / 2^128⌋ is needed.
        let lo_r0_hi = ((lo as u128 * r0 as u128) >> 64) as u64;
        let lo_r1 = lo as u128 * r1 as u128;
        let hi_r0 = hi as u128 * r0 as u128;
        let mid = lo_r0_hi as u128 + (lo_r1 as u64) as u128 + (hi_r0 as u64) as u128;
        let q = hi
            .wrapping_mul(r1)
            .wrapping_add((lo_r1 >> 64) as u64)
            .wrapping_add((hi_r0 >> 64) as u64)
            .wrapping_add((mid >> 64) as u64);
        let r = lo.wrapping_sub(q.wrapping_mul(self.p));
        let r = r.min(r.wrapping_sub(self.p));
        r.min(r.wrapping_sub(self.p))
    }

    /// a · b mod p.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// b^e mod p.
    pub fn pow(&self, mut b: u64, mut e: u64) -> u64 {
        let mut r = 1u64;
        b %= self.p;
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, b);
            }
            b = self.mul(b, b);
            e >>= 1;
        }
        r
    }

    /// a^(−1) mod p (p prime, a ≠ 0 mod p).
    pub fn inv(&self, a: u64) -> u64 {
        self.pow(a, self.p - 2)
    }

    /// The residue of a signed integer.
    #[inline(always)]
    pub fn from_i64(&self, v: i64) -> u64 {
        if v.unsigned_abs() < self.p {
            (v as u64).wrapping_add(self.p & ((v >> 63) as u64))
        } else {
            v.rem_euclid(self.p as i64) as u64
        }
    }

    /// The residue of a signed 128-bit integer.
    #[inline(always)]
    pub fn from_i128(&self, v: i128) -> u64 {
        v.rem_euclid(self.p as i128) as u64
    }
}

/// ⌊w·2^64/p⌋, Shoup's quotient for multiplying by the fixed operand w < p.
pub fn shoup(w: u64, p: u64) -> u64 {
    (((w as u128) << 64) / p as u128) as u64
}

/// a·w mod p in [0, 2p), for any a < 2^64 and w < p with w_sh = shoup(w, p).
#[inline(always)]
fn mul_shoup_lazy(a: u64, w: u64, w_sh: u64, p: u64) -> u64 {
    let q = ((a as u128 * w_sh as u128) >> 64) as u64;
    a.wrapping_mul(w).wrapping_sub(q.wrapping_mul(p))
}

/// a·w mod p in [0, p), for any a < 2^64 and w < p with w_sh = shoup(w, p).
#[inline(always)]
pub fn mul_shoup(a: u64, w: u64, w_sh: u64, p: u64) -> u64 {
    let r = mul_shoup_lazy(a, w, w_sh, p);
    r.min(r.wrapping_sub(p))
}

/// A fixed multiplicand: residues in [0, p) with their Shoup quotients.
#[derive(Clone, Debug)]
pub struct Fixed {
    pub w: Vec<u64>,
    pub sh: Vec<u64>,
}

impl Fixed {
    pub fn new(w: Vec<u64>, p: u64) -> Fixed {
        let sh = w.iter().map(|&x| shoup(x, p)).collect();
        Fixed { w, sh }
    }

    /// dst[i] ← dst[i]·w[i] mod p.
    #[inline]
    pub fn mul_into(&self, dst: &mut [u64], p: u64) {
        for ((d, &w), &sh) in dst.iter_mut().zip(&self.w).zip(&self.sh) {
            *d = mul_shoup(*d, w, sh, p);
        }
    }

    /// dst[i] ← dst[i] + x[i]·w[i] mod p (dst and x reduced).
    #[inline]
    pub fn mul_add_into(&self, dst: &mut [u64], x: &[u64], p: u64) {
        for (((d, &x), &w), &sh) in dst.iter_mut().zip(x).zip(&self.w).zip(&self.sh) {
            let s = *d + mul_shoup(x, w, sh, p);
            *d = s.min(s.wrapping_sub(p));
        }
    }
}

/// Deterministic Miller–Rabin for 64-bit integers (these bases suffice below 3.3·10^24).
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for b in BASES {
        if n.is_multiple_of(b) {
            return n == b;
        }
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, b);
            }
            b = mulmod(b, b);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'bases: for a in BASES {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// The largest prime p < `below` with p ≡ 1 (mod 2n) that is not in `skip`.
pub fn ntt_prime_below(below: u64, n: usize, skip: &[u64]) -> u64 {
    let m = 2 * n as u64;
    let mut c = (below - 2) / m * m + 1;
    while !is_prime(c) || skip.contains(&c) {
        c -= m;
    }
    c
}

/// Precomputed tables of the negacyclic transform of length N modulo one prime.
#[derive(Clone, Debug)]
pub struct NttPlan {
    /// Length N (a power of two).
    pub n: usize,
    /// The prime.
    pub m: Modulus,
    /// ψ^brv(i) and their Shoup quotients (forward), ψ^(−brv(i)) (inverse).
    fwd: Vec<u64>,
    fwd_sh: Vec<u64>,
    inv: Vec<u64>,
    inv_sh: Vec<u64>,
    n_inv: u64,
    n_inv_sh: u64,
}

fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

impl NttPlan {
    /// The plan for length `n` (a power of two ≥ 2) modulo the prime `p` ≡ 1 (mod 2n), p < 2^62.
    pub fn new(n: usize, p: u64) -> NttPlan {
        assert!(
            n.is_power_of_two() && n >= 2,
            "NTT length must be a power of two"
        );
        assert!(
            p < 1 << 62 && (p - 1).is_multiple_of(2 * n as u64),
            "p ≢ 1 mod 2N"
        );
        let m = Modulus::new(p);
        // ψ = g^((p−1)/2n) for the smallest g that makes it a primitive 2n-th root (ψ^n = −1).
        let psi = (2u64..)
            .map(|g| m.pow(g, (p - 1) / (2 * n as u64)))
            .find(|&c| m.pow(c, n as u64) == p - 1)
            .expect("a primitive root exists mod a prime");
        let psi_inv = m.inv(psi);
        let bits = n.trailing_zeros();
        let (mut fwd, mut inv) = (vec![0u64; n], vec![0u64; n]);
        let (mut a, mut b) = (1u64, 1u64);
        for i in 0..n {
            fwd[bit_reverse(i, bits)] = a;
            inv[bit_reverse(i, bits)] = b;
            a = m.mul(a, psi);
            b = m.mul(b, psi_inv);
        }
        let n_inv = m.inv(n as u64);
        NttPlan {
            n,
            m,
            fwd_sh: fwd.iter().map(|&w| shoup(w, p)).collect(),
            inv_sh: inv.iter().map(|&w| shoup(w, p)).collect(),
            fwd,
            inv,
            n_inv,
            n_inv_sh: shoup(n_inv, p),
        }
    }

    /// In-place forward transform of a polynomial with coefficients in [0, p); output in [0, p).
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "polynomial length");
        let p = self.m.p;
        let two_p = 2 * p;
        let mut t = self.n;
        let mut m = 1;
        while m < self.n {
            t >>= 1;
            let tw = self.fwd[m..2 * m].iter().zip(&self.fwd_sh[m..2 * m]);
            for (block, (&w, &w_sh)) in a.chunks_exact_mut(2 * t).zip(tw) {
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    // x, y ∈ [0, 4p) on entry, and again on exit.
                    let u = (*x).min(x.wrapping_sub(two_p));
                    let v = mul_shoup_lazy(*y, w, w_sh, p);
                    *x = u + v;
                    *y = u + two_p - v;
                }
            }
            m <<= 1;
        }
        for x in a.iter_mut() {
            let v = (*x).min(x.wrapping_sub(two_p));
            *x = v.min(v.wrapping_sub(p));
        }
    }

    /// [`NttPlan::forward`] of a polynomial whose coefficients from `len` on are zero (`len` ≤ n),
    /// with the same result. While a stage's half-blocks are at least w = 2^⌈log₂ len⌉ long,
    /// every butterfly has a zero upper input and only copies its lower one, so those
    /// log₂(n/w) stages are replaced by n/w copies of the first w coefficients: log₂ w stages
    /// instead of log₂ n (4 of 12 for a 16-entry HomFC vector block at n = 4096).
    pub fn forward_low(&self, a: &mut [u64], len: usize) {
        assert_eq!(a.len(), self.n, "polynomial length");
        let w = len.max(1).next_power_of_two().min(self.n);
        debug_assert!(a[w..].iter().all(|&x| x == 0));
        for c in 1..self.n / w {
            a.copy_within(0..w, c * w);
        }
        let p = self.m.p;
        let two_p = 2 * p;
        let mut t = w;
        let mut m = self.n / w;
        while m < self.n {
            t >>= 1;
            let tw = self.fwd[m..2 * m].iter().zip(&self.fwd_sh[m..2 * m]);
            for (block, (&w, &w_sh)) in a.chunks_exact_mut(2 * t).zip(tw) {
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let u = (*x).min(x.wrapping_sub(two_p));
                    let v = mul_shoup_lazy(*y, w, w_sh, p);
                    *x = u + v;
                    *y = u + two_p - v;
                }
            }
            m <<= 1;
        }
        for x in a.iter_mut() {
            let v = (*x).min(x.wrapping_sub(two_p));
            *x = v.min(v.wrapping_sub(p));
        }
    }

    /// In-place inverse transform (input in [0, p), output the coefficients in [0, p)).
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "polynomial length");
        let p = self.m.p;
        let two_p = 2 * p;
        let mut t = 1;
        let mut m = self.n;
        while m > 1 {
            let h = m >> 1;
            let tw = self.inv[h..m].iter().zip(&self.inv_sh[h..m]);
            for (block, (&w, &w_sh)) in a.chunks_exact_mut(2 * t).zip(tw) {
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    // x, y ∈ [0, 2p) on entry and exit.
                    let (u, v) = (*x, *y);
                    let s = u + v;
                    *x = s.min(s.wrapping_sub(two_p));
                    *y = mul_shoup_lazy(u + two_p - v, w, w_sh, p);
                }
            }
            t <<= 1;
            m = h;
        }
        for x in a.iter_mut() {
            let v = mul_shoup_lazy(*x, self.n_inv, self.n_inv_sh, p);
            *x = v.min(v.wrapping_sub(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn schoolbook(m: &Modulus, a: &[u64], b: &[u64]) -> Vec<u64> {
        let n = a.len();
        let mut c = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let t = m.mul(a[i], b[j]);
                if i + j < n {
                    c[i + j] = m.add(c[i + j], t);
                } else {
                    c[i + j - n] = m.sub(c[i + j - n], t);
                }
            }
        }
        c
    }

    #[test]
    fn transform_products_equal_schoolbook_negacyclic_products() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(1);
        for (n, bits) in [(2usize, 55u64), (16, 40), (256, 55), (1024, 54), (4096, 62)] {
            let p = ntt_prime_below(1 << bits, n, &[]);
            let plan = NttPlan::new(n, p);
            let m = plan.m;
            let mut a: Vec<u64> = (0..n).map(|_| rng.gen_range(0..p)).collect();
            let b: Vec<u64> = (0..n).map(|_| rng.gen_range(0..p)).collect();
            // Edge coefficients: 0, 1, p − 1.
            a[0] = p - 1;
            a[n - 1] = 1;
            let want = if n <= 1024 {
                Some(schoolbook(&m, &a, &b))
            } else {
                None
            };
            let (mut fa, mut fb) = (a.clone(), b.clone());
            plan.forward(&mut fa);
            plan.forward(&mut fb);
            assert!(fa.iter().all(|&x| x < p));
            let mut c: Vec<u64> = fa.iter().zip(&fb).map(|(&x, &y)| m.mul(x, y)).collect();
            plan.inverse(&mut c);
            if let Some(w) = want {
                assert_eq!(c, w, "n {n}");
            }
            // The inverse undoes the forward transform.
            plan.inverse(&mut fa);
            assert_eq!(fa, a, "n {n}");
        }
    }

    /// The pinned order: output i is a(ψ^(2·brv(i)+1)) with ψ = g^((p−1)/2N), g the smallest
    /// integer ≥ 2 that makes ψ a primitive 2N-th root.
    #[test]
    fn transform_order_is_evaluation_at_bit_reversed_odd_powers() {
        for n in [4usize, 16, 4096] {
            let p = ntt_prime_below(1 << 55, n, &[]);
            let plan = NttPlan::new(n, p);
            let m = plan.m;
            let g = (2u64..)
                .find(|&g| m.pow(m.pow(g, (p - 1) / (2 * n as u64)), n as u64) == p - 1)
                .unwrap();
            let psi = m.pow(g, (p - 1) / (2 * n as u64));
            let a: Vec<u64> = (0..n as u64).map(|i| (i * i * 7 + 3) % p).collect();
            let mut f = a.clone();
            plan.forward(&mut f);
            let bits = n.trailing_zeros();
            for i in (0..n).step_by((n / 16).max(1)) {
                let x = m.pow(psi, 2 * bit_reverse(i, bits) as u64 + 1);
                let v = a.iter().rev().fold(0u64, |acc, &c| m.add(m.mul(acc, x), c));
                assert_eq!(f[i], v, "n {n}, i {i}");
            }
        }
    }

    #[test]
    fn forward_low_equals_forward_on_short_polynomials() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(11);
        for (n, p) in [
            (4096usize, 36_028_797_018_652_673u64),
            (4096, 18_014_398_509_309_953),
            (16, 97),
        ] {
            let plan = NttPlan::new(n, p);
            for len in [0usize, 1, 2, 3, 16, 17, 64, n / 2, n - 1, n] {
                let len = len.min(n);
                let mut a = vec![0u64; n];
                for x in a.iter_mut().take(len) {
                    *x = rng.gen_range(0..p);
                }
                if len > 0 {
                    a[len - 1] = p - 1;
                }
                let mut want = a.clone();
                plan.forward(&mut want);
                plan.forward_low(&mut a, len);
                assert_eq!(a, want, "n = {n}, len = {len}");
            }
        }
    }

    #[test]
    fn x_times_x_to_the_n_minus_1_is_minus_one() {
        let n = 4096;
        let p = ntt_prime_below(1 << 55, n, &[]);
        let plan = NttPlan::new(n, p);
        let mut a = vec![0u64; n];
        let mut b = vec![0u64; n];
        a[1] = 1;
        b[n - 1] = 1;
        plan.forward(&mut a);
        plan.forward(&mut b);
        let mut c: Vec<u64> = a.iter().zip(&b).map(|(&x, &y)| plan.m.mul(x, y)).collect();
        plan.inverse(&mut c);
        let mut want = vec![0u64; n];
        want[0] = p - 1;
        assert_eq!(c, want);
    }

    #[test]
    fn barrett_reduction_of_128_bit_values() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(2);
        for bits in [17u64, 54, 55, 62] {
            let m = Modulus::new(ntt_prime_below(1 << bits, 4096, &[]));
            let p = m.p as u128;
            let mut xs = vec![
                0u128,
                1,
                p - 1,
                p,
                p * p - 1,
                p * p,
                u128::MAX,
                u128::MAX - 1,
            ];
            xs.extend((0..10_000).map(|_| rng.gen::<u128>()));
            xs.extend((0..10_000).map(|_| rng.gen::<u128>() >> rng.gen_range(0..128)));
            for x in xs {
                assert_eq!(m.reduce_u128(x) as u128, x % p, "x = {x}, p = {p}");
            }
            for v in [i64::MIN, -1, 0, 1, i64::MAX, -(m.p as i64), m.p as i64] {
                assert_eq!(m.from_i64(v) as i128, (v as i128).rem_euclid(p as i128));
            }
        }
    }

    #[test]
    fn primes() {
        assert!(is_prime(2) && is_prime(3) && is_prime(36028797018652673));
        assert!(!is_prime(1) && !is_prime(4) && !is_prime(3215031751));
        let p = ntt_prime_below(1 << 55, 4096, &[]);
        assert_eq!(p, 36028797018652673);
        assert_eq!(ntt_prime_below(1 << 54, 4096, &[p]), 18014398509309953);
    }
}
