//! Hashing from fixed-key AES (Guo, Katz, Wang, Yu, "Efficient and secure multiparty computation
//! from fixed-key block ciphers", S&P 2020): π is AES-128 under a public fixed key, modelled as a
//! random permutation; σ(x_L ‖ x_R) = (x_L ⊕ x_R) ‖ x_L is a linear orthomorphism.
//!
//! - `ccr(x)   = π(σ(x)) ⊕ σ(x)`: circular correlation-robust hash (one AES call).
//! - `tccr(x, i) = π(π(σ(x)) ⊕ i) ⊕ π(σ(x))`: tweakable circular correlation-robust hash (two AES
//!   calls). OT extension hashes the i-th OT's keys with tweak i, so that every hash input is
//!   used under a distinct tweak.

use std::sync::OnceLock;

use aes::Aes128;

use super::block::Block;
use super::prg::{aes_encrypt_blocks, aes_from_block};

/// The public fixed key (the first 128 bits of π's binary expansion, as nothing-up-my-sleeve).
const FIXED_KEY: u128 = 0x243f_6a88_85a3_08d3_1319_8a2e_0370_7344;

/// Blocks processed per batch in the batch hashes (keeps temporaries on the stack).
const BATCH: usize = 64;

/// The fixed-key AES permutation π.
pub fn fixed_aes() -> &'static Aes128 {
    static AES: OnceLock<Aes128> = OnceLock::new();
    AES.get_or_init(|| aes_from_block(Block(FIXED_KEY)))
}

/// σ(x_L ‖ x_R) = (x_L ⊕ x_R) ‖ x_L, where x_L is the high half.
#[inline]
pub fn sigma(x: Block) -> Block {
    let (h, l) = (x.high(), x.low());
    Block::from_halves(h ^ l, h)
}

/// π applied to blocks in place.
#[inline]
pub fn permute(blocks: &mut [Block]) {
    aes_encrypt_blocks(fixed_aes(), blocks);
}

/// Circular correlation-robust hash of one block.
pub fn ccr(x: Block) -> Block {
    let mut b = [sigma(x)];
    permute(&mut b);
    b[0] ^ sigma(x)
}

/// Tweakable circular correlation-robust hash of one block.
pub fn tccr(x: Block, tweak: u64) -> Block {
    let mut v = [x];
    tccr_many(&mut v, tweak);
    v[0]
}

/// `xs[k] ← tccr(xs[k], first_tweak + k)`, in batches.
pub fn tccr_many(xs: &mut [Block], first_tweak: u64) {
    let mut a = [Block::ZERO; BATCH];
    let mut t = first_tweak;
    for chunk in xs.chunks_mut(BATCH) {
        let n = chunk.len();
        for (ai, x) in a.iter_mut().zip(chunk.iter()) {
            *ai = sigma(*x);
        }
        permute(&mut a[..n]);
        for (k, (x, ai)) in chunk.iter_mut().zip(a.iter()).enumerate() {
            *x = *ai ^ Block(t.wrapping_add(k as u64) as u128);
        }
        permute(chunk);
        for (x, ai) in chunk.iter_mut().zip(a.iter()) {
            *x ^= *ai;
        }
        t = t.wrapping_add(n as u64);
    }
}

/// `xs[k] ← ccr(xs[k])`, in batches.
pub fn ccr_many(xs: &mut [Block]) {
    for x in xs.iter_mut() {
        *x = sigma(*x);
    }
    let mut a = [Block::ZERO; BATCH];
    for chunk in xs.chunks_mut(BATCH) {
        let n = chunk.len();
        a[..n].copy_from_slice(chunk);
        permute(chunk);
        for (x, ai) in chunk.iter_mut().zip(a.iter()) {
            *x ^= *ai;
        }
    }
}

/// A keyed pseudo-random function from a secret block key and a public 64-bit input, built from
/// the same construction: `prf(k, x) = tccr(k, x)`. [`PrfKey::new`] does the key-only AES call
/// once, so each evaluation costs one AES call.
#[derive(Clone, Copy)]
pub struct PrfKey(Block);

impl PrfKey {
    pub fn new(k: Block) -> PrfKey {
        let mut b = [sigma(k)];
        permute(&mut b);
        PrfKey(b[0])
    }
    /// Evaluate on `inputs`, writing one block per input into `out`.
    pub fn eval_many(&self, inputs: impl Iterator<Item = u64>, out: &mut [Block]) {
        for (o, x) in out.iter_mut().zip(inputs) {
            *o = self.0 ^ Block(x as u128);
        }
        permute(out);
        for o in out.iter_mut() {
            *o ^= self.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_equals_single() {
        let xs: Vec<Block> = (0..200u128)
            .map(|i| Block(i * 0x1234_5678_9abc_def1))
            .collect();
        let mut b = xs.clone();
        tccr_many(&mut b, 1000);
        for (i, x) in xs.iter().enumerate() {
            assert_eq!(b[i], tccr(*x, 1000 + i as u64));
        }
        let mut c = xs.clone();
        ccr_many(&mut c);
        for (i, x) in xs.iter().enumerate() {
            assert_eq!(c[i], ccr(*x));
        }
        let k = PrfKey::new(xs[5]);
        let mut out = vec![Block::ZERO; 10];
        k.eval_many(0..10, &mut out);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(*o, tccr(xs[5], i as u64));
        }
    }

    #[test]
    fn tweaks_and_inputs_separate_outputs() {
        let x = Block(42);
        assert_ne!(tccr(x, 0), tccr(x, 1));
        assert_ne!(tccr(x, 0), tccr(Block(43), 0));
        assert_ne!(ccr(x), ccr(Block(43)));
        assert_ne!(ccr(x), x);
        assert_eq!(sigma(Block::from_halves(1, 2)), Block::from_halves(3, 1));
    }
}
