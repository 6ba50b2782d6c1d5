//! The distributions of the scheme: ternary secrets, centred binomial errors, uniform ring
//! elements expanded from a public 128-bit seed, and the uniform flooding noise.
//!
//! Randomness comes from the project's AES-CTR generator [`Prg`]. The `a` part of a ciphertext or
//! public key is `uniform_ntt_from_seed(seed)`: the blocks of `Prg::new(seed)`, each read as two
//! 64-bit words (low word first), masked to the bit width of p0 and rejected unless below p0
//! until N values are accepted, then the same for p1 and every further prime. The values are
//! taken as `a` **in the transform domain** of [`super::ntt`], whose order is pinned there
//! (value i is a(ψ^(2·brv(i)+1)), ψ fixed by the prime): this saves one transform per prime on
//! both sides, and both parties run the same code. Uniform values in the transform domain are a
//! uniform polynomial (the transform is a bijection), and uniform residues mod every prime a
//! uniform element of Z_q by the CRT.

use rand::RngCore;

use super::params::{ring, ETA, N, PRIMES};
use crate::crypto::{Block, Prg};

/// Uniform ternary coefficients in {−1, 0, 1}: two bits per draw, the value 3 rejected.
pub fn ternary<R: RngCore + ?Sized>(rng: &mut R, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut x = rng.next_u64();
        for _ in 0..32 {
            let v = x & 3;
            x >>= 2;
            if v < 3 && out.len() < n {
                out.push(v as i64 - 1);
            }
        }
    }
    out
}

/// Centred binomial errors with η = 21: popcount of 21 bits minus popcount of 21 others
/// (variance η/2 = 10.5, |e| ≤ 21).
pub fn cbd<R: RngCore + ?Sized>(rng: &mut R, n: usize) -> Vec<i64> {
    let mask = (1u64 << ETA) - 1;
    (0..n)
        .map(|_| {
            let x = rng.next_u64();
            (x & mask).count_ones() as i64 - ((x >> ETA) & mask).count_ones() as i64
        })
        .collect()
}

/// The uniform ring element of `seed`, in the transform domain, as residues mod each prime.
pub fn uniform_ntt_from_seed(seed: Block) -> [Vec<u64>; PRIMES] {
    let mut prg = Prg::new(seed);
    let r = ring();
    let mut out: [Vec<u64>; PRIMES] = std::array::from_fn(|_| Vec::with_capacity(N));
    let mut buf = [Block::ZERO; 64];
    let mut words = std::iter::from_fn(move || {
        prg.fill_blocks(&mut buf);
        Some(buf)
    })
    .flatten()
    .flat_map(|b| [b.low(), b.high()]);
    for (i, v) in out.iter_mut().enumerate() {
        let m = r.modulus(i);
        let mask = (1u64 << m.bits()) - 1;
        while v.len() < N {
            let x = words.next().unwrap_or(u64::MAX) & mask;
            if x < m.p {
                v.push(x);
            }
        }
    }
    out
}

/// A uniform integer in [−bound, bound] (bound < 2^126), by rejection on 128-bit draws.
pub fn flood<R: RngCore + ?Sized>(rng: &mut R, bound: u128) -> i128 {
    let range = 2 * bound + 1;
    let bits = 128 - (range - 1).leading_zeros();
    let mask = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    loop {
        let x = (((rng.next_u64() as u128) << 64) | rng.next_u64() as u128) & mask;
        if x < range {
            return x as i128 - bound as i128;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_their_moments() {
        let mut rng = Prg::new(Block(5));
        let n = 1 << 18;
        let t = ternary(&mut rng, n);
        assert!(t.iter().all(|&v| (-1..=1).contains(&v)));
        for v in -1..=1 {
            let c = t.iter().filter(|&&x| x == v).count() as f64 / n as f64;
            assert!((c - 1.0 / 3.0).abs() < 0.005, "ternary {v}: {c}");
        }
        let e = cbd(&mut rng, n);
        assert!(e.iter().all(|&v| v.abs() <= ETA as i64));
        let mean = e.iter().sum::<i64>() as f64 / n as f64;
        let var = e.iter().map(|&v| (v * v) as f64).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 10.5).abs() < 0.15, "variance {var}");
        for bound in [0u128, 1, 5, (1 << 69) + 12345] {
            let f: Vec<i128> = (0..20_000).map(|_| flood(&mut rng, bound)).collect();
            assert!(f.iter().all(|&v| v.unsigned_abs() <= bound));
            if bound > 0 {
                let lo = f.iter().filter(|&&v| v < 0).count() as f64 / f.len() as f64;
                assert!((lo - 0.5 * (bound as f64 / (bound as f64 + 0.5))).abs() < 0.02);
            }
        }
    }

    #[test]
    fn seeded_elements_are_reproducible_and_reduced() {
        let a = uniform_ntt_from_seed(Block(9));
        assert_eq!(a, uniform_ntt_from_seed(Block(9)));
        assert_ne!(a, uniform_ntt_from_seed(Block(10)));
        let r = ring();
        for i in 0..PRIMES {
            assert_eq!(a[i].len(), N);
            assert!(a[i].iter().all(|&x| x < r.modulus(i).p));
            // The top bit of each prime's values is used about half the time.
            let top = a[i]
                .iter()
                .filter(|&&x| x >> (r.modulus(i).bits() - 1) == 1)
                .count();
            assert!((top as f64 / N as f64 - 0.5).abs() < 0.05);
        }
    }
}
