//! The evaluator's side (the party that does not hold the key): ciphertexts in transform form,
//! plaintext × ciphertext multiply-accumulate against pre-encoded plaintexts, and the return
//! path — re-randomise, flood, switch, mask, compress.
//!
//! **Multiply-accumulate.** A plaintext polynomial with small signed coefficients (a weight
//! block) is encoded once: its residues mod each prime in transform form ([`encode_plain`]).
//! Σ_α ct_α ⊙ w_α is accumulated per coefficient in u128 without reduction (each product is
//! below p0² < 2^110, so 2^17 of them fit; the accumulator folds itself every 2^17 terms) and
//! reduced once by Barrett at the end. Since encode(x) = q·x/2^ℓ + ε (|ε| ≤ 1/2 per share) and
//! the product is taken mod q, a product of an encrypted x with centred weights w encrypts
//! x·w mod 2^ℓ with the extra noise ε·w, whatever the wrap of x·w (q·c ≡ 0 mod q).
//!
//! **Return** ([`finalize`]). For a result ciphertext (b, a) and the returned coefficient
//! positions J:
//! 1. add Enc_pk(0) = (u·b_pk + e₁, u·a_pk + e₂) with fresh ternary u and errors e₁, e₂
//!    (without it a = Σ a_α·w_α, with the a_α known to the key owner, would reveal the weights);
//! 2. add a fresh flood F_j, uniform in [−B_F, B_F], to b_j for j ∈ J (the key counts the
//!    returned coefficients and refuses more than the flooding covers in a session);
//! 3. switch every a_i and the b_j, j ∈ J, from q to 2^k: RNS rescales by the last primes,
//!    y = ⌊x/p_j⌉ for j = PRIMES − 1, …, 1 (ending mod p0), then ⌊y·2^k/p0⌉ by a 64-bit
//!    fixed-point multiply (error < 2^−9);
//! 4. subtract R_j·2^(k−ℓ) from b_j (R_j the evaluator's output share; exact since 2^(k−ℓ) is an
//!    integer, so the key owner decrypts x·w − R exactly) and drop the low k − b_bits bits of b_j
//!    with rounding.
//!
//! Flooding happens before the switch and masking after it (flooding after the switch would leave
//! a rounding that depends on the weights). Only a (N values of k bits) and the b_j (b_bits each)
//! are sent; the other coefficients of b, which carry partial sums of the product, never leave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::RngCore;

use super::keys::Seeded;
use super::noise::{OutputParams, SESSION_COEFF_BITS};
use super::ntt::{mul_shoup, Fixed};
use super::params::{ring, Plain, ETA, MODULI, N, P0, PRIMES};
use super::sample::{cbd, flood, ternary, uniform_ntt_from_seed};
use crate::net::NetError;

/// A ciphertext (b, a) in transform form mod each prime.
#[derive(Clone, Debug)]
pub struct NttCiphertext {
    pub b: [Vec<u64>; PRIMES],
    pub a: [Vec<u64>; PRIMES],
}

/// How many coefficients of `b` an evaluator has returned in a session, under any of the peer's
/// keys (shared by the keys' [`PublicKeyNtt`]s): the flooding covers 2^[`SESSION_COEFF_BITS`].
#[derive(Clone, Debug, Default)]
pub struct ReturnCount(Arc<AtomicU64>);

impl ReturnCount {
    /// Coefficients returned so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The key owner's public key, expanded to transform form (with Shoup quotients: it is a fixed
/// multiplicand of every re-randomisation), and the session's count of coefficients returned.
pub struct PublicKeyNtt {
    b: [Fixed; PRIMES],
    a: [Fixed; PRIMES],
    /// Coefficients of `b` returned so far (by [`finalize`]), under this key and the others
    /// that share the count.
    returned: ReturnCount,
    /// The most that may be returned: 2^[`SESSION_COEFF_BITS`], which the flooding covers.
    limit: u64,
}

impl PublicKeyNtt {
    /// Expand the wire form.
    pub fn new(pk: &Seeded) -> PublicKeyNtt {
        let NttCiphertext { b, a } = expand(pk, None, None);
        let fixed = |v: [Vec<u64>; PRIMES]| {
            let mut i = 0;
            v.map(|x| {
                i += 1;
                Fixed::new(x, MODULI[i - 1])
            })
        };
        PublicKeyNtt {
            b: fixed(b),
            a: fixed(a),
            returned: ReturnCount::default(),
            limit: 1 << SESSION_COEFF_BITS,
        }
    }

    /// The same key counting its returns in `count` (another key's of the same session).
    pub fn counting_in(mut self, count: &ReturnCount) -> PublicKeyNtt {
        self.returned = count.clone();
        self
    }

    /// The count this key's returns go to.
    pub fn count(&self) -> &ReturnCount {
        &self.returned
    }

    /// The same key with a smaller limit on returned coefficients (to test the limit).
    pub fn with_return_limit(mut self, limit: u64) -> PublicKeyNtt {
        self.limit = limit.min(1 << SESSION_COEFF_BITS);
        self
    }

    /// Coefficients returned so far in this key's count.
    pub fn returned(&self) -> u64 {
        self.returned.get()
    }

    /// Count `n` more returned coefficients; `InvalidArgument` past the session's limit.
    fn count_returned(&self, n: usize) -> Result<(), NetError> {
        let before = self.returned.0.fetch_add(n as u64, Ordering::Relaxed);
        if before.saturating_add(n as u64) > self.limit {
            return Err(NetError::InvalidArgument(format!(
                "{} RLWE coefficients would be returned in this session, more than the {} the \
                 flooding covers (2^{SESSION_COEFF_BITS} per session): start a new session",
                before.saturating_add(n as u64),
                self.limit
            )));
        }
        Ok(())
    }
}

/// A received seeded ciphertext in transform form. With `own = Some((plain, x))` the evaluator
/// first adds its own plaintext x (values mod 2^ℓ, coefficient j for j < x.len()), so the result
/// encrypts the sum of the two parties' polynomials.
pub fn expand(ct: &Seeded, plain: Option<Plain>, own: Option<&[u64]>) -> NttCiphertext {
    let r = ring();
    let a = uniform_ntt_from_seed(ct.seed);
    let mut b = ct.b.clone();
    if let (Some(p), Some(x)) = (plain, own) {
        for (j, &xj) in x.iter().enumerate().take(N) {
            if xj != 0 {
                let e = p.encode_rns(xj);
                for (i, bi) in b.iter_mut().enumerate() {
                    bi[j] = r.modulus(i).add(bi[j], e[i]);
                }
            }
        }
    }
    for (bi, pl) in b.iter_mut().zip(&r.plans) {
        pl.forward(bi);
    }
    NttCiphertext { b, a }
}

/// The transform form mod each prime of a polynomial with signed coefficients (the rest zero),
/// written into `out` (PRIMES·N words: p0's residues, then p1's, …).
pub fn encode_plain(coeffs: &[i64], out: &mut [u64]) {
    assert!(
        coeffs.len() <= N && out.len() == PRIMES * N,
        "plaintext size"
    );
    let r = ring();
    for (i, dst) in out.chunks_exact_mut(N).enumerate() {
        let pl = &r.plans[i];
        for (d, &c) in dst
            .iter_mut()
            .zip(coeffs.iter().chain(std::iter::repeat(&0)))
        {
            *d = pl.m.from_i64(c);
        }
        pl.forward(dst);
    }
}

/// Terms a u128 accumulator takes before it folds (products < 2^110).
const FOLD_EVERY: u32 = 1 << 17;

/// Σ ct ⊙ w, unreduced.
pub struct Accumulator {
    b: [Vec<u128>; PRIMES],
    a: [Vec<u128>; PRIMES],
    since_fold: u32,
}

impl Default for Accumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Accumulator {
    pub fn new() -> Accumulator {
        Accumulator {
            b: std::array::from_fn(|_| vec![0; N]),
            a: std::array::from_fn(|_| vec![0; N]),
            since_fold: 0,
        }
    }

    /// Add ct ⊙ w for a plaintext `w` from [`encode_plain`] (PRIMES·N words).
    #[inline]
    pub fn mac(&mut self, ct: &NttCiphertext, w: &[u64]) {
        debug_assert_eq!(w.len(), PRIMES * N);
        for (i, wi) in w.chunks_exact(N).enumerate() {
            for ((acc, &x), &y) in self.b[i].iter_mut().zip(&ct.b[i]).zip(wi) {
                *acc += x as u128 * y as u128;
            }
            for ((acc, &x), &y) in self.a[i].iter_mut().zip(&ct.a[i]).zip(wi) {
                *acc += x as u128 * y as u128;
            }
        }
        self.since_fold += 1;
        if self.since_fold == FOLD_EVERY {
            let r = ring();
            for i in 0..PRIMES {
                let m = r.modulus(i);
                for v in self.b[i].iter_mut().chain(self.a[i].iter_mut()) {
                    *v = m.reduce_u128(*v) as u128;
                }
            }
            self.since_fold = 0;
        }
    }

    /// The accumulated ciphertext, reduced.
    pub fn finish(self) -> NttCiphertext {
        let r = ring();
        let red = |v: [Vec<u128>; PRIMES]| {
            let mut i = 0;
            v.map(|vi| {
                let m = r.modulus(i);
                i += 1;
                vi.into_iter().map(|x| m.reduce_u128(x)).collect()
            })
        };
        NttCiphertext {
            b: red(self.b),
            a: red(self.a),
        }
    }
}

/// What the evaluator returns: a switched to 2^k (N values of k bits) and the returned
/// coefficients of b (b_bits each, the low k − b_bits bits dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchedCiphertext {
    pub k: u32,
    pub b_bits: u32,
    pub a: Vec<u64>,
    pub b: Vec<u64>,
}

/// The switch q → 2^k of one coefficient given by its residues (see the module docs, step 3).
pub(super) struct Switch {
    k: u32,
    /// ⌊2^(64+k)/p0⌉ (< 2^64 because k ≤ 54 < log₂ p0).
    c: u64,
}

impl Switch {
    pub(super) fn new(k: u32) -> Switch {
        assert!(k <= super::noise::MAX_SWITCH_BITS);
        Switch {
            k,
            c: (((1u128 << (64 + k)) + P0 as u128 / 2) / P0 as u128) as u64,
        }
    }

    /// ⌊x·2^k/q⌉ mod 2^k for x given by its residues.
    #[inline]
    pub(super) fn apply(&self, mut x: [u64; PRIMES]) -> u64 {
        let r = ring();
        // Divide by the last prime p_j with rounding, while more than one is left:
        // y = ⌊x/p_j⌉ = (x + h − ((x_j + h) mod p_j))·p_j^(−1) mod p_i, h = ⌊p_j/2⌋. The primes
        // decrease, so h and (x_j + h) mod p_j are already reduced mod every p_i, i < j.
        for j in (1..PRIMES).rev() {
            let pj = MODULI[j];
            let h = pj / 2;
            let v = x[j] + h;
            let v = v.min(v.wrapping_sub(pj));
            for (i, xi) in x.iter_mut().enumerate().take(j) {
                let m = r.modulus(i);
                *xi = mul_shoup(
                    m.sub(m.add(*xi, h), v),
                    r.rescale[j][i],
                    r.rescale_shoup[j][i],
                    m.p,
                );
            }
        }
        let z = ((x[0] as u128 * self.c as u128 + (1u128 << 63)) >> 64) as u64;
        z & ((1u64 << self.k) - 1)
    }
}

/// Re-randomise, flood, switch, mask and compress a result ciphertext for return. `positions`
/// are the returned coefficients, `masks` the evaluator's output shares R_j (mod 2^ℓ) for them.
pub fn finalize<R: RngCore + ?Sized>(
    ct: NttCiphertext,
    pk: &PublicKeyNtt,
    plain: Plain,
    out: &OutputParams,
    positions: &[usize],
    masks: &[u64],
    rng: &mut R,
) -> Result<SwitchedCiphertext, NetError> {
    if positions.len() != masks.len() || positions.iter().any(|&j| j >= N) {
        return Err(NetError::InvalidArgument(
            "returned positions and masks do not match".into(),
        ));
    }
    pk.count_returned(positions.len())?;
    let r = ring();
    let NttCiphertext { mut b, mut a } = ct;
    // 1. + Enc_pk(0).
    let u = ternary(rng, N);
    for i in 0..PRIMES {
        let pl = &r.plans[i];
        let m = &pl.m;
        let mut un: Vec<u64> = u.iter().map(|&x| m.from_i64(x)).collect();
        pl.forward(&mut un);
        pk.b[i].mul_add_into(&mut b[i], &un, m.p);
        pk.a[i].mul_add_into(&mut a[i], &un, m.p);
        pl.inverse(&mut b[i]);
        pl.inverse(&mut a[i]);
    }
    let e1 = cbd(rng, N);
    let e2 = cbd(rng, N);
    debug_assert!(e1.iter().all(|e| e.unsigned_abs() <= ETA as u64));
    let sw = Switch::new(out.k);
    // 3. (a) switch a.
    let a_sw: Vec<u64> = (0..N)
        .map(|j| {
            sw.apply(std::array::from_fn(|i| {
                let m = r.modulus(i);
                m.add(a[i][j], m.from_i64(e2[j]))
            }))
        })
        .collect();
    // 2–4. b at the returned positions: + e₁ + flood, switch, − R·2^(k−ℓ), drop low bits.
    let kmask = (1u64 << out.k) - 1;
    let shift = out.k - plain.bits;
    let drop = out.k - out.b_bits;
    let b_sw: Vec<u64> = positions
        .iter()
        .zip(masks)
        .map(|(&j, &rj)| {
            let noise = flood(rng, out.flood) + e1[j] as i128;
            let x = std::array::from_fn(|i| {
                let m = r.modulus(i);
                m.add(b[i][j], m.from_i128(noise))
            });
            let v = sw.apply(x).wrapping_sub((rj & plain.mask()) << shift) & kmask;
            if drop == 0 {
                v
            } else {
                ((v + (1u64 << (drop - 1))) >> drop) & ((1u64 << out.b_bits) - 1)
            }
        })
        .collect();
    Ok(SwitchedCiphertext {
        k: out.k,
        b_bits: out.b_bits,
        a: a_sw,
        b: b_sw,
    })
}
