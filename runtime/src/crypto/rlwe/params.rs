//! The parameter set: the ring R_q = Z_q[X]/(X^N + 1) with N = 8192 and q = p0·p1·p2, the secret
//! and error distributions, and the plaintext ring Z_2^ℓ[X]/(X^N + 1) with its encoding.
//!
//! | item | value |
//! |---|---|
//! | N | 8192 |
//! | p0, p1, p2 | 2^55 − 311,295, 2^55 − 1,392,639 and 2^55 − 1,507,327 (the three largest 55-bit primes ≡ 1 mod 2N) |
//! | q | p0·p1·p2, log₂ q = 164.9999999999 < 165 |
//! | secret | uniform ternary {−1, 0, 1}^N |
//! | error | centred binomial, η = 21: Σ_{i<21} (a_i − b_i), σ = √(η/2) ≈ 3.24, \|e\| ≤ 21 |
//! | plaintext | t = 2^ℓ, 16 ≤ ℓ ≤ 43; m ↦ ⌊q·m/t⌉ (so Δ = q/t is not rounded first) |
//!
//! **Security.** 128-bit classical by the HomomorphicEncryption.org standard (v1.1, Table 1: for
//! N = 8192 and a ternary secret, log₂ q ≤ 218 at σ ≈ 3.2; SEAL's default for N = 8192 is also
//! 218 bits). The standard assumes a discrete Gaussian of σ = 3.2; the centred binomial of the
//! same variance is our assumption (as in Kyber and in the `fhe` crate).
//!
//! **Why N = 8192 and 165 bits** (Cheetah §6.1 uses N = 4096, q ≈ 2^109). The flooding that
//! hides the weights from the key owner must cover every coefficient returned in a session,
//! 2^36 of them at most ([`super::noise`]): 2^(41+36) times the weight-dependent noise, about
//! 2^105 for a GPT-2 product with 16-bit weights, must stay below Δ/2 = q/2^(ℓ+1). At N = 4096 q
//! cannot pass 2^109 (2^71 at ℓ = 37); at N = 8192 and 165 bits it is 2^127. Returned results
//! are switched down to 2^(ℓ+D), so the wider q costs on the way in (165 bits per coefficient
//! instead of 109) and in the server's work, and each result's `a` has N coefficients for
//! windows that hold twice the values: a GPT-2 decode step's weight products take 1.74× the
//! bytes of N = 4096 (√(2·165/109); [`crate::protocols::linear`]).

use std::sync::OnceLock;

use super::ntt::{shoup, Modulus, NttPlan};
use crate::net::NetError;

/// Ring degree N.
pub const N: usize = 8192;
/// The RNS primes of q, largest first (the modulus switch divides by the last ones first).
pub const PRIMES: usize = 3;
/// The largest RNS prime (55 bits): the one the switch to 2^k starts from.
pub const P0: u64 = 36_028_797_018_652_673;
/// The second RNS prime (55 bits).
pub const P1: u64 = 36_028_797_017_571_329;
/// The third RNS prime (55 bits); the modulus switch divides by it first.
pub const P2: u64 = 36_028_797_017_456_641;
/// q's primes p_0 > p_1 > … .
pub const MODULI: [u64; PRIMES] = [P0, P1, P2];
/// Centred binomial parameter η of the error distribution.
pub const ETA: u32 = 21;
/// Smallest supported plaintext width ℓ.
pub const MIN_PLAIN_BITS: u32 = 16;
/// Largest supported plaintext width ℓ: outputs are switched to 2^(ℓ+D) with D ≥ 10 guard bits
/// (11 from ℓ = 42) and ℓ + D must stay at most 54, below log₂ p0 (see [`super::noise`]).
pub const MAX_PLAIN_BITS: u32 = 43;

/// The auxiliary prime (the largest below 2^62 that is ≡ 1 mod 2N) in which the key owner
/// computes a·s exactly when a result is switched to 2^k with k ≤ [`AUX_MAX_SWITCH_BITS`].
pub const P_AUX: u64 = 4_611_686_018_427_322_369;
/// |a·s| ≤ N·2^(k−1) < P_AUX/2 for k up to this.
pub const AUX_MAX_SWITCH_BITS: u32 = 48;

/// The fixed ring: the NTT plans of q's primes and of the auxiliary prime, and the constants of
/// the modulus switch.
#[derive(Debug)]
pub struct RingContext {
    /// One plan per prime of q, p0 first.
    pub plans: [NttPlan; PRIMES],
    /// The plan of [`P_AUX`].
    pub aux: NttPlan,
    /// log₂ q.
    pub log2_q: f64,
    /// `rescale[j][i]` = p_j^(−1) mod p_i for i < j (the switch's division by p_j).
    pub rescale: [[u64; PRIMES]; PRIMES],
    /// The Shoup quotients of `rescale` (each multiplies every switched coefficient).
    pub rescale_shoup: [[u64; PRIMES]; PRIMES],
}

impl RingContext {
    fn new() -> RingContext {
        let mut rescale = [[0u64; PRIMES]; PRIMES];
        let mut rescale_shoup = [[0u64; PRIMES]; PRIMES];
        for j in 0..PRIMES {
            for i in 0..j {
                rescale[j][i] = Modulus::new(MODULI[i]).inv(MODULI[j] % MODULI[i]);
                rescale_shoup[j][i] = shoup(rescale[j][i], MODULI[i]);
            }
        }
        RingContext {
            plans: MODULI.map(|p| NttPlan::new(N, p)),
            aux: NttPlan::new(N, P_AUX),
            log2_q: MODULI.iter().map(|&p| (p as f64).log2()).sum(),
            rescale,
            rescale_shoup,
        }
    }

    /// The modulus of prime `i`.
    #[inline]
    pub fn modulus(&self, i: usize) -> &Modulus {
        &self.plans[i].m
    }

    /// q as a float (for noise budgets).
    pub fn q_f64(&self) -> f64 {
        MODULI.iter().map(|&p| p as f64).product()
    }

    /// The signed integer in (−p0·p1/2, p0·p1/2] with residues x0 mod p0 and x1 mod p1: the
    /// value of any integer of that range from its first two residues.
    #[inline]
    pub fn lift_small(&self, x0: u64, x1: u64) -> i128 {
        let m0 = self.modulus(0);
        let h = m0.mul(m0.sub(x0, x1 % P0), self.rescale[1][0]);
        let pp = P0 as u128 * P1 as u128;
        let x = x1 as u128 + P1 as u128 * h as u128;
        if x > pp / 2 {
            x as i128 - pp as i128
        } else {
            x as i128
        }
    }
}

/// The ring every session uses (built once: the twiddle tables of every prime).
pub fn ring() -> &'static RingContext {
    static RING: OnceLock<RingContext> = OnceLock::new();
    RING.get_or_init(RingContext::new)
}

/// The plaintext ring Z_2^ℓ and its encoding into R_q.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plain {
    /// ℓ.
    pub bits: u32,
    /// ⌊q / 2^ℓ⌋ mod each prime.
    delta: [u64; PRIMES],
    /// q mod 2^ℓ.
    q_mod_t: u64,
}

impl Plain {
    /// Z_2^ℓ; `InvalidArgument` unless 16 ≤ ℓ ≤ 43.
    pub fn new(bits: u32) -> Result<Plain, NetError> {
        if !(MIN_PLAIN_BITS..=MAX_PLAIN_BITS).contains(&bits) {
            return Err(NetError::InvalidArgument(format!(
                "RLWE plaintext width {bits} is not in {MIN_PLAIN_BITS}..={MAX_PLAIN_BITS}"
            )));
        }
        let mask = (1u64 << bits) - 1;
        let q_mod_t = MODULI.iter().fold(1u64, |acc, &p| acc.wrapping_mul(p)) & mask;
        // ⌊q/t⌋ = (q − (q mod t))/t ≡ −(q mod t)·t^(−1) mod p_i, since p_i divides q.
        let delta = MODULI.map(|p| {
            let m = Modulus::new(p);
            m.mul(m.sub(0, q_mod_t % p), m.inv((1u64 << bits) % p))
        });
        Ok(Plain {
            bits,
            delta,
            q_mod_t,
        })
    }

    /// 2^ℓ − 1.
    #[inline]
    pub fn mask(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// log₂ Δ = log₂ q − ℓ.
    pub fn log2_delta(&self) -> f64 {
        ring().log2_q - self.bits as f64
    }

    /// The residues of ⌊q·m / 2^ℓ⌉ ∈ [0, q] modulo each prime, for m ∈ [0, 2^ℓ) (higher bits of
    /// m are ignored).
    #[inline]
    pub fn encode_rns(&self, m: u64) -> [u64; PRIMES] {
        let m = m & self.mask();
        // q·m/t = ⌊q/t⌋·m + (q mod t)·m/t, and (q mod t)·m < 2^(2ℓ) ≤ 2^88.
        let round =
            ((self.q_mod_t as u128 * m as u128 + (1u128 << (self.bits - 1))) >> self.bits) as u64;
        let r = ring();
        std::array::from_fn(|i| {
            let md = r.modulus(i);
            md.add(md.mul(self.delta[i], m % md.p), round % md.p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ntt::{is_prime, ntt_prime_below};
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn primes_and_modulus() {
        let mut skip = Vec::new();
        for (i, &p) in MODULI.iter().enumerate() {
            assert!(is_prime(p));
            assert_eq!((p - 1) % (2 * N as u64), 0);
            // Each is the largest NTT prime below its power of two that is not taken.
            assert_eq!(ntt_prime_below(1 << (64 - p.leading_zeros()), N, &skip), p);
            skip.push(p);
            if i > 0 {
                assert!(p < MODULI[i - 1]);
            }
            for j in i + 1..PRIMES {
                let m = Modulus::new(p);
                assert_eq!(m.mul(ring().rescale[j][i], MODULI[j] % p), 1);
            }
        }
        assert_eq!(ntt_prime_below(1 << 62, N, &[]), P_AUX);
        assert!((N as u128) << (AUX_MAX_SWITCH_BITS - 1) < P_AUX as u128 / 2);
        let log2_q = ring().log2_q;
        assert!(log2_q < 165.0 && log2_q > 164.0);
        assert!((N as u128) << AUX_MAX_SWITCH_BITS >= P_AUX as u128 / 2);
        const { assert!(P2 < P1 && P1 < P0 && P0 > 1 << 54) };
    }

    #[test]
    fn small_integers_lift_from_two_residues() {
        let r = ring();
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(3);
        let half = (P0 as u128 * P1 as u128 / 2) as i128;
        for _ in 0..10_000 {
            let x: i128 = rng.gen_range(-half + 1..=half);
            let (x0, x1) = (x.rem_euclid(P0 as i128), x.rem_euclid(P1 as i128));
            assert_eq!(r.lift_small(x0 as u64, x1 as u64), x);
        }
        assert_eq!(r.lift_small(P0 - 1, P1 - 1), -1);
    }

    /// E = encode(m) is ⌊q·m/t⌉ exactly: d = E·t − q·m is, modulo every prime, E_i·t (q ≡ 0),
    /// and the same integer |d| ≤ t/2 with d ≡ −q·m mod t pins E down by the CRT.
    #[test]
    fn encode_is_the_rounded_scaled_message() {
        let r = ring();
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(4);
        for bits in [16u32, 37, 38, 43] {
            let p = Plain::new(bits).unwrap();
            let t = 1u64 << bits;
            for i in 0..2000 {
                let m = match i {
                    0 => 0,
                    1 => p.mask(),
                    _ => rng.gen::<u64>() & p.mask(),
                };
                let e = p.encode_rns(m);
                let d: Vec<i128> = (0..PRIMES)
                    .map(|i| {
                        let md = r.modulus(i);
                        let v = md.mul(e[i], t % md.p);
                        if v > md.p / 2 {
                            v as i128 - md.p as i128
                        } else {
                            v as i128
                        }
                    })
                    .collect();
                assert!(d.iter().all(|&x| x == d[0]), "ℓ = {bits}, m = {m}: {d:?}");
                assert!(d[0].unsigned_abs() <= t as u128 / 2);
                let want = (p.q_mod_t as u128 * m as u128) % t as u128;
                assert_eq!(
                    d[0].rem_euclid(t as i128) as u128,
                    (t as u128 - want) % t as u128
                );
            }
        }
        assert!(Plain::new(15).is_err() && Plain::new(44).is_err());
    }
}
