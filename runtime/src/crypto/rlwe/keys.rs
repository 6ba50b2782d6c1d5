//! Keys, seeded symmetric encryption and decryption (the key owner's side).
//!
//! - Secret key: s uniform ternary, kept in coefficient form and in transform form mod each prime.
//! - Public key (for re-randomisation only): (b_pk = −a_pk·s + e, a_pk from a seed), an
//!   encryption of zero; on the wire the seed and b_pk.
//! - Encryption of m ∈ Z_2^ℓ[X]/(X^N+1): (b = −a·s + e + ⌊q·m/2^ℓ⌉, a from a fresh seed by
//!   [`uniform_ntt_from_seed`]); on the wire the seed and b (coefficient form). Symmetric: only the
//!   key owner encrypts, which saves the public-key encryption's extra error and work.
//! - Decryption of a switched ciphertext (a, b) mod 2^k: m = ⌊(b + a·s mod 2^k)/2^(k−ℓ)⌉. The
//!   product a·s is computed exactly over the integers (|a·s| ≤ N·2^(k−1)) and reduced mod 2^k:
//!   in the 62-bit prime [`P_AUX`] when k ≤ [`AUX_MAX_SWITCH_BITS`], else mod p0 and p1 and
//!   lifted by the CRT (|a·s| < p0·p1/2).
//!
//! **Wire sizes.** A seed is 16 bytes; b is N residues mod each prime at the prime's bit width:
//! 3 · 8192 · 55 bits + 16 = 168,976 bytes for a ciphertext or a public key.

use rand::RngCore;

use super::eval::{NttCiphertext, Switch, SwitchedCiphertext};
use super::ntt::Fixed;
use super::params::{ring, Plain, AUX_MAX_SWITCH_BITS, N, PRIMES, P_AUX};
use super::sample::{cbd, ternary, uniform_ntt_from_seed};
use crate::crypto::pack::{pack, packed_len, unpack};
use crate::crypto::Block;
use crate::net::NetError;

/// A seeded ciphertext or public key as it crosses the wire: the seed of `a` and `b` in
/// coefficient form mod each prime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seeded {
    pub seed: Block,
    pub b: [Vec<u64>; PRIMES],
}

impl Seeded {
    /// Bytes on the wire.
    pub fn wire_len() -> usize {
        let r = ring();
        16 + (0..PRIMES)
            .map(|i| packed_len(N, r.modulus(i).bits()))
            .sum::<usize>()
    }

    /// Append the wire form to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let r = ring();
        out.extend_from_slice(&self.seed.to_bytes());
        for i in 0..PRIMES {
            out.extend_from_slice(&pack(&self.b[i], r.modulus(i).bits()));
        }
    }

    /// Parse the wire form (exactly [`Seeded::wire_len`] bytes); `Malformed` if a residue is not
    /// reduced.
    pub fn read(bytes: &[u8]) -> Result<Seeded, NetError> {
        if bytes.len() != Self::wire_len() {
            return Err(NetError::Malformed(format!(
                "RLWE ciphertext of {} bytes, expected {}",
                bytes.len(),
                Self::wire_len()
            )));
        }
        let r = ring();
        let seed = Block::from_bytes(bytes[..16].try_into().expect("16 bytes"));
        let mut pos = 16;
        let mut b: [Vec<u64>; PRIMES] = std::array::from_fn(|_| Vec::new());
        for (i, bi) in b.iter_mut().enumerate() {
            let m = r.modulus(i);
            let len = packed_len(N, m.bits());
            *bi = unpack(&bytes[pos..pos + len], N, m.bits());
            pos += len;
            if bi.iter().any(|&x| x >= m.p) {
                return Err(NetError::Malformed(
                    "RLWE ciphertext coefficient not reduced modulo its prime".into(),
                ));
            }
        }
        Ok(Seeded { seed, b })
    }
}

/// The client's secret key.
pub struct SecretKey {
    /// Ternary coefficients.
    s: Vec<i64>,
    /// s in transform form mod each prime, and mod P_AUX.
    s_ntt: [Fixed; PRIMES],
    s_aux: Fixed,
}

impl SecretKey {
    /// A fresh key.
    pub fn generate<R: RngCore + ?Sized>(rng: &mut R) -> SecretKey {
        let s = ternary(rng, N);
        let r = ring();
        let transform = |pl: &super::ntt::NttPlan| {
            let mut v: Vec<u64> = s.iter().map(|&x| pl.m.from_i64(x)).collect();
            pl.forward(&mut v);
            Fixed::new(v, pl.m.p)
        };
        let s_ntt = std::array::from_fn(|i| transform(&r.plans[i]));
        let s_aux = transform(&r.aux);
        SecretKey { s, s_ntt, s_aux }
    }

    /// The secret's coefficients (for tests).
    pub fn coefficients(&self) -> &[i64] {
        &self.s
    }

    /// b = −a·s + e + encoded, with a = uniform_ntt_from_seed(seed).
    fn encrypt_encoded<R: RngCore + ?Sized>(
        &self,
        seed: Block,
        encoded: &[[u64; PRIMES]],
        rng: &mut R,
    ) -> Seeded {
        let r = ring();
        let e = cbd(rng, N);
        let a = uniform_ntt_from_seed(seed);
        let b = std::array::from_fn(|i| {
            let pl = &r.plans[i];
            let m = &pl.m;
            let mut as_ = a[i].clone();
            self.s_ntt[i].mul_into(&mut as_, m.p);
            pl.inverse(&mut as_);
            (0..N)
                .map(|j| {
                    let enc = encoded.get(j).map_or(0, |v| v[i]);
                    m.sub(m.add(enc, m.from_i64(e[j])), as_[j])
                })
                .collect()
        });
        Seeded { seed, b }
    }

    /// An encryption of the polynomial with coefficients `m` (values mod 2^ℓ, at most N of them;
    /// the rest are zero).
    pub fn encrypt<R: RngCore + ?Sized>(
        &self,
        plain: Plain,
        m: &[u64],
        rng: &mut R,
    ) -> Result<Seeded, NetError> {
        if m.len() > N {
            return Err(NetError::InvalidArgument(format!(
                "{} plaintext coefficients, more than N = {N}",
                m.len()
            )));
        }
        let seed = Block(((rng.next_u64() as u128) << 64) | rng.next_u64() as u128);
        let enc: Vec<[u64; PRIMES]> = m.iter().map(|&x| plain.encode_rns(x)).collect();
        Ok(self.encrypt_encoded(seed, &enc, rng))
    }

    /// The public key: an encryption of zero under a fresh seed.
    pub fn public_key<R: RngCore + ?Sized>(&self, rng: &mut R) -> Seeded {
        let seed = Block(((rng.next_u64() as u128) << 64) | rng.next_u64() as u128);
        self.encrypt_encoded(seed, &[], rng)
    }

    /// The phase b + a·s of a ciphertext in transform form, coefficient j as its residues.
    fn phase_rns(&self, ct: &NttCiphertext) -> Vec<[u64; PRIMES]> {
        let r = ring();
        let ph: [Vec<u64>; PRIMES] = std::array::from_fn(|i| {
            let pl = &r.plans[i];
            let mut v: Vec<u64> = (0..N)
                .map(|j| {
                    pl.m.add(ct.b[i][j], pl.m.mul(ct.a[i][j], self.s_ntt[i].w[j]))
                })
                .collect();
            pl.inverse(&mut v);
            v
        });
        (0..N).map(|j| std::array::from_fn(|i| ph[i][j])).collect()
    }

    /// The noise phase − ⌊q·m/2^ℓ⌉ of every coefficient of a ciphertext in transform form that
    /// encrypts `m` (zero past `m.len()`); exact while it is below p0·p1/2 in magnitude.
    pub fn noise(&self, plain: Plain, ct: &NttCiphertext, m: &[u64]) -> Vec<i128> {
        let r = ring();
        self.phase_rns(ct)
            .into_iter()
            .enumerate()
            .map(|(j, ph)| {
                let e = plain.encode_rns(m.get(j).copied().unwrap_or(0));
                let (m0, m1) = (r.modulus(0), r.modulus(1));
                r.lift_small(m0.sub(ph[0], e[0]), m1.sub(ph[1], e[1]))
            })
            .collect()
    }

    /// Decrypt a ciphertext in transform form: all N coefficients mod 2^ℓ (the phase switched
    /// to 2^(ℓ+10), then rounded; exact while the noise is below Δ/2 − q/2^(ℓ+11) − 1).
    pub fn decrypt(&self, plain: Plain, ct: &NttCiphertext) -> Vec<u64> {
        let sw = Switch::new(plain.bits + 10);
        self.phase_rns(ct)
            .into_iter()
            .map(|x| ((sw.apply(x) + (1 << 9)) >> 10) & plain.mask())
            .collect()
    }

    /// a·s mod 2^k at `positions`, for a switched `a` (k-bit values, read as centred).
    fn a_times_s(&self, a: &[u64], k: u32, positions: &[usize]) -> Vec<u64> {
        let r = ring();
        let half = 1u64 << (k - 1);
        let centred = |x: u64| {
            if x >= half {
                x as i64 - (1i64 << k)
            } else {
                x as i64
            }
        };
        let product = |pl: &super::ntt::NttPlan, s: &Fixed| {
            let mut v: Vec<u64> = a.iter().map(|&x| pl.m.from_i64(centred(x))).collect();
            pl.forward(&mut v);
            s.mul_into(&mut v, pl.m.p);
            pl.inverse(&mut v);
            v
        };
        let kmask = (1u64 << k) - 1;
        if k <= AUX_MAX_SWITCH_BITS {
            let v = product(&r.aux, &self.s_aux);
            return positions
                .iter()
                .map(|&j| {
                    let x = v[j];
                    let c = if x > P_AUX / 2 {
                        x.wrapping_sub(P_AUX)
                    } else {
                        x
                    };
                    c & kmask
                })
                .collect();
        }
        let prod = [
            product(&r.plans[0], &self.s_ntt[0]),
            product(&r.plans[1], &self.s_ntt[1]),
        ];
        positions
            .iter()
            .map(|&j| (r.lift_small(prod[0][j], prod[1][j]) as u64) & kmask)
            .collect()
    }

    /// The phases b + a·s mod 2^k of a switched ciphertext's returned coefficients (`b` holds
    /// them at `b_bits` bits, for the coefficient positions `positions`).
    pub fn switched_phases(&self, ct: &SwitchedCiphertext, positions: &[usize]) -> Vec<u64> {
        let k = ct.k;
        let kmask = (1u64 << k) - 1;
        let as_ = self.a_times_s(&ct.a, k, positions);
        ct.b.iter()
            .zip(as_)
            .map(|(&b, s)| ((b << (k - ct.b_bits)).wrapping_add(s)) & kmask)
            .collect()
    }

    /// Decrypt the returned coefficients of a switched ciphertext.
    pub fn decrypt_switched(
        &self,
        plain: Plain,
        ct: &SwitchedCiphertext,
        positions: &[usize],
    ) -> Vec<u64> {
        let sh = ct.k - plain.bits;
        self.switched_phases(ct, positions)
            .into_iter()
            .map(|ph| ((ph + (1u64 << (sh - 1))) >> sh) & plain.mask())
            .collect()
    }
}
