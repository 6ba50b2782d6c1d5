//! Ring-LWE linear homomorphic encryption for products of a client-encrypted operand with a
//! server-held plaintext: the BFV-style scheme of Cheetah §2.2/§5.2 with coefficient encoding, in
//! its minimal form (no relinearisation, no rotations, no SIMD).
//!
//! - [`params`]: N = 8192, q = p0·p1·p2 (three 55-bit primes, 2^165 − …), ternary secret,
//!   centred binomial error (σ ≈ 3.24), plaintext Z_2^ℓ for 16 ≤ ℓ ≤ 43; 128-bit security.
//! - [`ntt`]: word-size modular arithmetic and the negacyclic transform modulo each prime.
//! - [`sample`]: ternary, centred binomial, seeded uniform (AES-CTR [`crate::crypto::Prg`]),
//!   flooding.
//! - [`keys`]: the client's key, public key, seeded encryption and decryption.
//! - [`eval`]: the server's side: expansion, plaintext × ciphertext multiply-accumulate with
//!   pre-encoded plaintexts, and the return path (re-randomisation by Enc_pk(0), flooding,
//!   modulus switch to 2^k, masking, sending only the needed `b` coefficients).
//! - [`noise`]: the flooding bound (40-bit statistical per session, over the 2^36 coefficients
//!   a session may return) and the switch target, from public quantities only.
//! - [`session`]: the per-session setup (the client's public key, sent once).
//!
//! **Why our own.** The `fhe` crate (0.1.1) decrypts garbage at t = 2^37 unless every RNS prime
//! exceeds t, lifts the plaintext operand of ct × pt from [0, t) instead of centring it (signed
//! weights then cost 2^22 times more noise), and has no flooding, no extraction of single
//! coefficients, no switch below its last prime and no access to the secret key's coefficients
//! for decrypting a compressed result. Our core is ~1,100 lines besides tests, checked against
//! cleartext products (tests below and `runtime/tests/protocols/linear.rs`); no dependency is
//! added. The transform is scalar (Harvey's lazy butterflies, ≈ 40–55 µs per 4096-point
//! transform on the bench machine, about twice that at 8192); an AVX-512 backend such as `tfhe-ntt` (≈ 20 µs in the
//! research prototype) is a possible optional speed-up, not taken.
//!
//! Security: 128-bit computational (RLWE at the parameters above; the AES-CTR expansion of the
//! public `a` from a seed), 40-bit statistical per session for what the key owner learns beyond
//! the result (see [`noise`]; the evaluator refuses to return more than the 2^36 coefficients
//! the flooding covers); decryption fails with probability ≤ 2^−41 per session.

pub mod eval;
pub mod fuzz;
pub mod keys;
pub mod noise;
pub mod ntt;
pub mod params;
pub mod sample;
pub mod session;

pub use eval::{
    encode_plain, expand, finalize, Accumulator, NttCiphertext, ReturnCount, SwitchedCiphertext,
};
pub use keys::{SecretKey, Seeded};
pub use noise::{output_params, OutputParams};
pub use params::{Plain, N, PRIMES};
pub use session::HeSession;

#[cfg(test)]
mod tests {
    use super::eval::PublicKeyNtt;
    use super::*;
    use crate::crypto::{Block, Prg};
    use rand::{Rng, RngCore};

    fn with_edges(rng: &mut Prg, plain: Plain, n: usize) -> Vec<u64> {
        let m = plain.mask();
        let mut v: Vec<u64> = (0..n).map(|_| rng.next_u64() & m).collect();
        for (x, e) in v.iter_mut().zip([0, 1, m, m >> 1, (m >> 1) + 1, m - 1]) {
            *x = e;
        }
        v
    }

    /// x·w in Z_2^ℓ[X]/(X^N + 1), by the schoolbook product on signed lifts.
    fn negacyclic(plain: Plain, x: &[u64], w: &[i64]) -> Vec<u64> {
        let mut c = vec![0i128; N];
        for (i, &xi) in x.iter().enumerate() {
            if xi == 0 {
                continue;
            }
            for (j, &wj) in w.iter().enumerate() {
                let t = xi as i128 * wj as i128;
                if i + j < N {
                    c[i + j] += t;
                } else {
                    c[i + j - N] -= t;
                }
            }
        }
        c.into_iter().map(|v| (v as u64) & plain.mask()).collect()
    }

    #[test]
    fn decrypt_of_encrypt_is_exact() {
        let mut rng = Prg::from_entropy();
        let sk = SecretKey::generate(&mut rng);
        for bits in [16u32, 37, 38, 43] {
            let plain = Plain::new(bits).unwrap();
            let x_b = with_edges(&mut rng, plain, N);
            let ct = sk.encrypt(plain, &x_b, &mut rng).unwrap();
            // Through the wire format.
            let mut bytes = Vec::new();
            ct.write(&mut bytes);
            assert_eq!(bytes.len(), Seeded::wire_len());
            assert_eq!(bytes.len(), 16 + 3 * 8192 * 55 / 8);
            let ct = Seeded::read(&bytes).unwrap();
            assert_eq!(
                sk.decrypt(plain, &expand(&ct, None, None)),
                x_b,
                "ℓ = {bits}"
            );
            // With the evaluator's share added: the sum mod 2^ℓ.
            let x_a = with_edges(&mut rng, plain, N / 2);
            let got = sk.decrypt(plain, &expand(&ct, Some(plain), Some(&x_a)));
            for j in 0..N {
                let want = if j < N / 2 {
                    x_b[j].wrapping_add(x_a[j]) & plain.mask()
                } else {
                    x_b[j]
                };
                assert_eq!(got[j], want, "ℓ = {bits}, coefficient {j}");
            }
            // Fresh noise is the encryption error: |phase − encode(m)| ≤ 21.
            for d in sk.noise(plain, &expand(&ct, None, None), &x_b) {
                assert!(d.abs() <= 21, "fresh noise {d}");
            }
        }
        // A short plaintext is zero-padded; more than N coefficients is refused.
        let plain = Plain::new(37).unwrap();
        let ct = sk.encrypt(plain, &[5, 6], &mut rng).unwrap();
        let d = sk.decrypt(plain, &expand(&ct, None, None));
        assert_eq!(&d[..3], &[5, 6, 0]);
        assert!(sk.encrypt(plain, &vec![0; N + 1], &mut rng).is_err());
    }

    #[test]
    fn malformed_wire_input_is_an_error() {
        let mut rng = Prg::from_entropy();
        let sk = SecretKey::generate(&mut rng);
        let ct = sk.public_key(&mut rng);
        let mut bytes = Vec::new();
        ct.write(&mut bytes);
        assert!(Seeded::read(&bytes[1..]).is_err());
        // The first residue mod p0 set to all ones (2^55 − 1 ≥ p0).
        let mut bad = bytes.clone();
        for b in &mut bad[16..22] {
            *b = 0xff;
        }
        bad[22] |= 0x7f;
        assert!(matches!(
            Seeded::read(&bad),
            Err(crate::net::NetError::Malformed(_))
        ));
    }

    /// Plaintext × ciphertext products, accumulated, decrypt to the cleartext negacyclic product
    /// mod 2^ℓ, for weights of 16 signed bits including ±2^15; and the whole return path
    /// (re-randomise, flood, switch, mask, drop bits) decrypts to product − mask exactly, with
    /// the noise within the bounds of [`noise`].
    #[test]
    fn products_and_the_return_path_are_exact_with_noise_in_bounds() {
        let mut rng = Prg::from_entropy();
        let sk = SecretKey::generate(&mut rng);
        let pk = PublicKeyNtt::new(&sk.public_key(&mut rng));
        for (bits, wbits, count) in [(37u32, 16u32, 3usize), (38, 16, 1), (16, 16, 2), (43, 8, 2)] {
            let plain = Plain::new(bits).unwrap();
            let wb = 1i64 << (wbits - 1);
            let mut acc = Accumulator::new();
            let mut want = vec![0u64; N];
            for c in 0..count {
                let x_b = with_edges(&mut rng, plain, N);
                let x_a = with_edges(&mut rng, plain, N);
                let mut w: Vec<i64> = (0..N).map(|_| rng.gen_range(-wb..=wb)).collect();
                w[0] = wb;
                w[1] = -wb;
                w[N - 1] = if c % 2 == 0 { -wb } else { wb };
                let x: Vec<u64> = (0..N).map(|j| (x_a[j] + x_b[j]) & plain.mask()).collect();
                let prod = negacyclic(plain, &x, &w);
                want = want
                    .iter()
                    .zip(&prod)
                    .map(|(&a, &b)| (a + b) & plain.mask())
                    .collect();
                let ct = expand(
                    &sk.encrypt(plain, &x_b, &mut rng).unwrap(),
                    Some(plain),
                    Some(&x_a),
                );
                let mut wn = vec![0u64; params::PRIMES * N];
                encode_plain(&w, &mut wn);
                acc.mac(&ct, &wn);
            }
            let ct = acc.finish();
            assert_eq!(sk.decrypt(plain, &ct), want, "ℓ = {bits}");
            // Noise at q: within E_max (every coefficient sums N·count error terms).
            let out = output_params(plain, wb as u64, N * count, N * count).unwrap();
            let worst = sk
                .noise(plain, &ct, &want)
                .into_iter()
                .map(i128::unsigned_abs)
                .max()
                .unwrap();
            assert!((worst as f64) < out.e_max, "noise {worst} ≥ {}", out.e_max);
            // Return 300 coefficients (edges and random positions) under random masks.
            let mut positions: Vec<usize> = vec![0, 1, N - 1, N - 2];
            positions.extend((0..296).map(|_| rng.gen_range(0..N)));
            let masks: Vec<u64> = positions
                .iter()
                .map(|_| rng.next_u64() & plain.mask())
                .collect();
            let sw = finalize(ct, &pk, plain, &out, &positions, &masks, &mut rng).unwrap();
            assert_eq!(sw.a.len(), N);
            assert!(sw.a.iter().all(|&v| v < 1 << out.k));
            assert!(sw.b.iter().all(|&v| v < 1 << out.b_bits));
            let got = sk.decrypt_switched(plain, &sw, &positions);
            let phases = sk.switched_phases(&sw, &positions);
            let shift = out.k - plain.bits;
            for (i, &j) in positions.iter().enumerate() {
                let m = want[j].wrapping_sub(masks[i]) & plain.mask();
                assert_eq!(got[i], m, "ℓ = {bits}, coefficient {j}");
                let d = phases[i].wrapping_sub(m << shift) & ((1u64 << out.k) - 1);
                let d = if d >= 1 << (out.k - 1) {
                    d as i64 - (1i64 << out.k)
                } else {
                    d as i64
                };
                assert!(
                    (d.unsigned_abs() as f64) < out.switched_bound,
                    "switched noise {d} ≥ {}",
                    out.switched_bound
                );
            }
        }
    }

    /// A session refuses to return more coefficients than its limit (2^36 by default, what the
    /// flooding covers), counting across calls and across the keys that share its count.
    #[test]
    fn returns_past_the_session_limit_are_refused() {
        let mut rng = Prg::from_entropy();
        let sk = SecretKey::generate(&mut rng);
        let pk = PublicKeyNtt::new(&sk.public_key(&mut rng)).with_return_limit(500);
        let plain = Plain::new(37).unwrap();
        let out = output_params(plain, 1 << 15, N, N).unwrap();
        let ct = expand(&sk.encrypt(plain, &[7; 10], &mut rng).unwrap(), None, None);
        let positions: Vec<usize> = (0..300).collect();
        let masks = vec![0u64; 300];
        let ret = |pk: &PublicKeyNtt, rng: &mut Prg| {
            finalize(ct.clone(), pk, plain, &out, &positions, &masks, rng)
        };
        let sw = ret(&pk, &mut rng).unwrap();
        assert_eq!(
            sk.decrypt_switched(plain, &sw, &positions[..10]),
            vec![7; 10]
        );
        assert_eq!(pk.returned(), 300);
        // Another key of the same session (an sVOLE batch's) shares the count: 600 > 500.
        let sk2 = SecretKey::generate(&mut rng);
        let other = PublicKeyNtt::new(&sk2.public_key(&mut rng))
            .with_return_limit(500)
            .counting_in(pk.count());
        let err = ret(&other, &mut rng)
            .expect_err("past the limit")
            .to_string();
        assert!(
            err.contains("more than the 500 the flooding covers"),
            "{err}"
        );
        assert!(ret(&pk, &mut rng).is_err());
        // A fresh count (the next session) starts again.
        let fresh = PublicKeyNtt::new(&sk.public_key(&mut rng));
        assert!(ret(&fresh, &mut rng).is_ok());
        assert_eq!(fresh.returned(), 300);
    }

    /// The same encryption seed gives the same `a` on both sides; distinct encryptions use
    /// distinct seeds.
    #[test]
    fn seeds_are_fresh() {
        let mut rng = Prg::new(Block(1));
        let sk = SecretKey::generate(&mut rng);
        let plain = Plain::new(37).unwrap();
        let c1 = sk.encrypt(plain, &[1], &mut rng).unwrap();
        let c2 = sk.encrypt(plain, &[1], &mut rng).unwrap();
        assert_ne!(c1.seed, c2.seed);
        assert_ne!(c1.b, c2.b);
    }
}
