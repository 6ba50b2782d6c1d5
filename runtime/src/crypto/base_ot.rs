//! Base OT: the "simplest OT" of Chou and Orlandi (LATINCRYPT 2015, §3) on the Ristretto group
//! of Curve25519 (≈128-bit security), random-OT flavour.
//!
//! Sender: a ← Z_q, sends A = a·G. Receiver, for each i with choice c_i: b_i ← Z_q, sends
//! B_i = b_i·G + c_i·A and outputs k_i = H(i, A, B_i, b_i·A). Sender outputs
//! k_i^0 = H(i, A, B_i, a·B_i) and k_i^1 = H(i, A, B_i, a·B_i − a·A). So k_i = k_i^{c_i}; the
//! sender sees only B_i, which is uniform whatever c_i; the receiver cannot compute
//! a·(B_i − (1−c_i)·A) (CDH). H is BLAKE3 with a domain separator, truncated to 128 bits.
//!
//! Cost: 32 + 32·n bytes, 2 rounds; sender n variable-base scalar multiplications, receiver n
//! fixed-base and n variable-base ones (run in parallel with rayon).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand::{CryptoRng, RngCore};
use rayon::prelude::*;

use super::block::Block;
use crate::net::{Channel, NetError};

fn kdf(i: usize, a: &[u8; 32], b: &[u8; 32], p: &RistrettoPoint) -> Block {
    let mut h = blake3::Hasher::new();
    h.update(b"ciphergpt base OT v1");
    h.update(&(i as u64).to_le_bytes());
    h.update(a);
    h.update(b);
    h.update(p.compress().as_bytes());
    let out = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&out.as_bytes()[..16]);
    Block::from_bytes(k)
}

fn decode_point(bytes: &[u8], what: &str) -> Result<RistrettoPoint, NetError> {
    let c = CompressedRistretto::from_slice(bytes)
        .map_err(|_| NetError::Malformed(format!("{what}: not 32 bytes")))?;
    let p = c
        .decompress()
        .ok_or_else(|| NetError::Malformed(format!("{what}: not a Ristretto point")))?;
    if p.is_identity() {
        return Err(NetError::Malformed(format!("{what}: the identity point")));
    }
    Ok(p)
}

/// Base-OT sender for `n` random OTs: returns the pairs (k_i^0, k_i^1).
pub fn send<C: Channel + ?Sized, R: RngCore + CryptoRng>(
    ch: &mut C,
    n: usize,
    rng: &mut R,
) -> Result<Vec<[Block; 2]>, NetError> {
    let a = Scalar::random(rng);
    let big_a = RistrettoPoint::mul_base(&a);
    let a_bytes = big_a.compress().to_bytes();
    ch.send(&a_bytes)?;
    let bs = ch.recv_vec(32 * n)?;
    let a_a = a * big_a;
    bs.par_chunks(32)
        .enumerate()
        .map(|(i, bb)| {
            let b = decode_point(bb, &format!("base OT message {i}"))?;
            let b_bytes: [u8; 32] = bb.try_into().expect("32-byte chunk");
            let ab = a * b;
            Ok([
                kdf(i, &a_bytes, &b_bytes, &ab),
                kdf(i, &a_bytes, &b_bytes, &(ab - a_a)),
            ])
        })
        .collect()
}

/// Base-OT receiver with the given choice bits: returns k_i^{c_i}.
pub fn recv<C: Channel + ?Sized, R: RngCore + CryptoRng>(
    ch: &mut C,
    choices: &[bool],
    rng: &mut R,
) -> Result<Vec<Block>, NetError> {
    let mut ab = [0u8; 32];
    ch.recv(&mut ab)?;
    let big_a = decode_point(&ab, "base OT sender's point")?;
    let scalars: Vec<Scalar> = choices.iter().map(|_| Scalar::random(rng)).collect();
    let pts: Vec<([u8; 32], Block)> = scalars
        .par_iter()
        .zip(choices.par_iter())
        .enumerate()
        .map(|(i, (b, &c))| {
            let bg = RistrettoPoint::mul_base(b);
            let big_b = if c { bg + big_a } else { bg };
            let b_bytes = big_b.compress().to_bytes();
            (b_bytes, kdf(i, &ab, &b_bytes, &(b * big_a)))
        })
        .collect();
    let mut msg = Vec::with_capacity(32 * pts.len());
    for (b, _) in &pts {
        msg.extend_from_slice(b);
    }
    ch.send(&msg)?;
    ch.flush()?;
    Ok(pts.into_iter().map(|(_, k)| k).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;
    use crate::testing::on_mem_pair;

    #[test]
    fn base_ot_matches_definition() {
        let choices = Prg::new(Block(3)).bools(128);
        let c2 = choices.clone();
        let ((pairs, a), got) = on_mem_pair(
            |mut a| (send(&mut a, 128, &mut Prg::new(Block(4))).unwrap(), a),
            move |mut b| recv(&mut b, &c2, &mut Prg::new(Block(5))).unwrap(),
        );
        for i in 0..128 {
            assert_eq!(got[i], pairs[i][choices[i] as usize]);
            assert_ne!(got[i], pairs[i][!choices[i] as usize]);
        }
        let mut all: Vec<Block> = pairs.iter().flatten().copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256, "keys are distinct");
        assert_eq!(a.stats().total.bytes_received, 32 * 128);
    }

    #[test]
    fn bad_point_is_refused() {
        let (e, ()) = on_mem_pair(
            |mut a| send(&mut a, 2, &mut Prg::new(Block(4))).unwrap_err(),
            |mut b| {
                let mut pa = [0u8; 32];
                b.recv(&mut pa).unwrap();
                b.send(&[0xffu8; 64]).unwrap();
                b.flush().unwrap();
            },
        );
        assert!(matches!(e, NetError::Malformed(_)), "{e}");
    }
}
