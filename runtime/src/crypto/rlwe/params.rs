//! The parameter set: the ring R_q = Z_q[X]/(X^N + 1) with N = 4096 and q = p0·p1, the secret and
//! error distributions, and the plaintext ring Z_2^ℓ[X]/(X^N + 1) with its encoding.
//!
//! | item | value |
//! |---|---|
//! | N | 4096 |
//! | p0, p1 | 2^55 − 311,295 and 2^54 − 172,031 (55 and 54 bits), both ≡ 1 mod 2N |
//! | q | p0·p1, log₂ q = 108.99999999997 < 109 |
//! | secret | uniform ternary {−1, 0, 1}^N |
//! | error | centred binomial, η = 21: Σ_{i<21} (a_i − b_i), σ = √(η/2) ≈ 3.24, \|e\| ≤ 21 |
//! | plaintext | t = 2^ℓ, 16 ≤ ℓ ≤ 44; m ↦ ⌊q·m/t⌉ (so Δ = q/t is not rounded first) |
//!
//! **Security.** 128-bit classical by the HomomorphicEncryption.org standard (v1.1, Table 1: for
//! N = 4096 and a ternary secret, log₂ q ≤ 109 at σ ≈ 3.2), the same bound as SEAL's default
//! table and Cheetah's parameters (N = 4096, q ≈ 2^105, §6.1). The standard assumes a discrete
//! Gaussian of σ = 3.2; the centred binomial of the same variance is our assumption (as in Kyber
//! and in the `fhe` crate).

use std::sync::OnceLock;

use super::ntt::{Modulus, NttPlan};
use crate::net::NetError;

/// Ring degree N.
pub const N: usize = 4096;
/// The larger RNS prime (55 bits).
pub const P0: u64 = 36_028_797_018_652_673;
/// The smaller RNS prime (54 bits); the modulus switch divides by it first, so P1 < P0.
pub const P1: u64 = 18_014_398_509_309_953;
/// Centred binomial parameter η of the error distribution.
pub const ETA: u32 = 21;
/// Smallest supported plaintext width ℓ.
pub const MIN_PLAIN_BITS: u32 = 16;
/// Largest supported plaintext width ℓ: outputs are switched to 2^(ℓ+D) with D ≥ 10 guard bits
/// and ℓ + D must stay below log₂ p0 (see [`super::noise`]).
pub const MAX_PLAIN_BITS: u32 = 44;

/// The auxiliary prime (the largest below 2^62 that is ≡ 1 mod 2N) in which the key owner
/// computes a·s exactly when a result is switched to 2^k with k ≤ [`AUX_MAX_SWITCH_BITS`].
pub const P_AUX: u64 = 4_611_686_018_427_322_369;
/// |a·s| ≤ N·2^(k−1) < P_AUX/2 for k up to this.
pub const AUX_MAX_SWITCH_BITS: u32 = 49;

/// The fixed ring: the two NTT plans and the constants of CRT and modulus switching.
#[derive(Debug)]
pub struct RingContext {
    /// One plan per prime, p0 first.
    pub plans: [NttPlan; 2],
    /// The plan of [`P_AUX`].
    pub aux: NttPlan,
    /// q = p0·p1.
    pub q: u128,
    /// p1^(−1) mod p0.
    pub p1_inv_mod_p0: u64,
}

impl RingContext {
    fn new() -> RingContext {
        let m0 = Modulus::new(P0);
        RingContext {
            plans: [NttPlan::new(N, P0), NttPlan::new(N, P1)],
            aux: NttPlan::new(N, P_AUX),
            q: P0 as u128 * P1 as u128,
            p1_inv_mod_p0: m0.inv(P1 % P0),
        }
    }

    /// The modulus of prime `i`.
    #[inline]
    pub fn modulus(&self, i: usize) -> &Modulus {
        &self.plans[i].m
    }

    /// The integer in [0, q) with residues (x0 mod p0, x1 mod p1).
    #[inline]
    pub fn crt(&self, x0: u64, x1: u64) -> u128 {
        let m0 = self.modulus(0);
        let h = m0.mul(m0.sub(x0, x1 % P0), self.p1_inv_mod_p0);
        x1 as u128 + P1 as u128 * h as u128
    }

    /// The signed representative in (−q/2, q/2] of the residues (x0, x1).
    #[inline]
    pub fn crt_centred(&self, x0: u64, x1: u64) -> i128 {
        let x = self.crt(x0, x1);
        if x > self.q / 2 {
            x as i128 - self.q as i128
        } else {
            x as i128
        }
    }
}

/// The ring every session uses (built once: the twiddle tables of both primes).
pub fn ring() -> &'static RingContext {
    static RING: OnceLock<RingContext> = OnceLock::new();
    RING.get_or_init(RingContext::new)
}

/// The plaintext ring Z_2^ℓ and its encoding into R_q.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plain {
    /// ℓ.
    pub bits: u32,
    /// ⌊q / 2^ℓ⌋.
    delta_floor: u128,
    /// q mod 2^ℓ.
    q_mod_t: u128,
}

impl Plain {
    /// Z_2^ℓ; `InvalidArgument` unless 16 ≤ ℓ ≤ 44.
    pub fn new(bits: u32) -> Result<Plain, NetError> {
        if !(MIN_PLAIN_BITS..=MAX_PLAIN_BITS).contains(&bits) {
            return Err(NetError::InvalidArgument(format!(
                "RLWE plaintext width {bits} is not in {MIN_PLAIN_BITS}..={MAX_PLAIN_BITS}"
            )));
        }
        let q = ring().q;
        Ok(Plain {
            bits,
            delta_floor: q >> bits,
            q_mod_t: q & ((1u128 << bits) - 1),
        })
    }

    /// 2^ℓ − 1.
    #[inline]
    pub fn mask(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// log₂ Δ = log₂ q − ℓ.
    pub fn log2_delta(&self) -> f64 {
        (ring().q as f64).log2() - self.bits as f64
    }

    /// ⌊q·m / 2^ℓ⌉ ∈ [0, q] for m ∈ [0, 2^ℓ) (higher bits of m are ignored).
    #[inline]
    pub fn encode(&self, m: u64) -> u128 {
        let m = (m & self.mask()) as u128;
        // q·m/t = ⌊q/t⌋·m + (q mod t)·m/t, and (q mod t)·m < 2^(2ℓ) ≤ 2^88.
        self.delta_floor * m + ((self.q_mod_t * m + (1u128 << (self.bits - 1))) >> self.bits)
    }

    /// The residues of `encode(m)` modulo both primes.
    #[inline]
    pub fn encode_rns(&self, m: u64) -> [u64; 2] {
        let r = ring();
        let v = self.encode(m);
        [r.modulus(0).reduce_u128(v), r.modulus(1).reduce_u128(v)]
    }

    /// ⌊2^ℓ·x / q⌉ mod 2^ℓ for x ∈ [0, q): the decoding of a phase.
    pub fn decode(&self, x: u128) -> u64 {
        // 2^ℓ·x < 2^153 does not fit: divide in two steps, x = hi·2^64 + lo.
        let q = ring().q;
        let t = 1u128 << self.bits;
        // ⌊t·x/q⌉ = ⌊(t·x + q/2)/q⌋, computed by long division on 64-bit halves of t·x.
        let (hi, lo) = (x >> 64, x & u64::MAX as u128);
        let num_hi = hi * t; // < 2^(45+44)
        let r1 = num_hi % q;
        let q1 = num_hi / q;
        // (r1·2^64 + lo·t + q/2) / q with r1 < q < 2^109: long division, 16 bits at a time so
        // that the shifted remainder stays below 2^125.
        let mut rem = r1;
        let mut quo = q1;
        for _ in 0..4 {
            rem <<= 16;
            quo <<= 16;
            quo += rem / q;
            rem %= q;
        }
        let tail = lo * t + q / 2 + rem; // < 2^108 + 2^108 + 2^109
        quo += tail / q;
        (quo as u64) & self.mask()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ntt::{is_prime, ntt_prime_below};
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn primes_and_modulus() {
        assert!(is_prime(P0) && is_prime(P1));
        assert_eq!((P0 - 1) % (2 * N as u64), 0);
        assert_eq!((P1 - 1) % (2 * N as u64), 0);
        assert_eq!(ntt_prime_below(1 << 55, N, &[]), P0);
        assert_eq!(ntt_prime_below(1 << 54, N, &[P0]), P1);
        assert_eq!(ntt_prime_below(1 << 62, N, &[]), P_AUX);
        assert!((N as u128) << (AUX_MAX_SWITCH_BITS - 1) < P_AUX as u128 / 2);
        let q = ring().q;
        assert!(q < 1u128 << 109 && q > 1u128 << 108);
        const { assert!(P1 < P0 && P0 > 1 << 54) };
    }

    #[test]
    fn crt_roundtrip() {
        let r = ring();
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(3);
        for _ in 0..10_000 {
            let x: u128 = rng.gen::<u128>() % r.q;
            let (x0, x1) = ((x % P0 as u128) as u64, (x % P1 as u128) as u64);
            assert_eq!(r.crt(x0, x1), x);
        }
        assert_eq!(r.crt_centred(P0 - 1, P1 - 1), -1);
    }

    #[test]
    fn encode_then_decode_is_the_identity() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(4);
        let q = ring().q;
        for bits in [16u32, 37, 38, 44] {
            let p = Plain::new(bits).unwrap();
            for _ in 0..2000 {
                let m = rng.gen::<u64>() & p.mask();
                let e = p.encode(m);
                // Exact rational rounding: |e − q·m/t| ≤ 1/2.
                let exact = q as f64 * m as f64 / (1u128 << bits) as f64;
                assert!((e as f64 - exact).abs() <= 0.5 + exact * 1e-15);
                assert_eq!(p.decode(e % q), m);
                // Noise below Δ/2 − 1 is rounded away.
                let d = (q >> bits) / 2 - 1;
                assert_eq!(p.decode((e + d) % q), m);
                assert_eq!(p.decode((e + q - d) % q), m);
            }
        }
        assert!(Plain::new(15).is_err() && Plain::new(45).is_err());
    }
}
