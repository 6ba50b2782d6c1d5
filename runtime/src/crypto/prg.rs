//! AES-128 in counter mode as a pseudo-random generator: the seed is the AES key, the output is
//! the encryption of 0, 1, 2, … With the crate built for AES-NI (see `.cargo/config.toml`) the
//! `aes` crate encrypts eight blocks in parallel.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use rand::{CryptoRng, RngCore};

use super::block::Block;

/// Encrypt blocks in place under `aes`.
#[inline]
pub fn aes_encrypt_blocks(aes: &Aes128, blocks: &mut [Block]) {
    // SAFETY: Block is 16 plain bytes; GenericArray<u8, U16> is 16 bytes with alignment 1.
    let ga = unsafe {
        std::slice::from_raw_parts_mut(
            blocks.as_mut_ptr() as *mut GenericArray<u8, aes::cipher::consts::U16>,
            blocks.len(),
        )
    };
    aes.encrypt_blocks(ga);
}

/// Build an AES-128 instance keyed by a block.
pub fn aes_from_block(key: Block) -> Aes128 {
    Aes128::new(&GenericArray::from(key.to_bytes()))
}

/// AES-CTR pseudo-random generator.
#[derive(Clone)]
pub struct Prg {
    aes: Aes128,
    counter: u128,
    buf: [Block; 8],
    pos: usize,
}

impl Prg {
    /// A generator from a 128-bit seed.
    pub fn new(seed: Block) -> Prg {
        Prg {
            aes: aes_from_block(seed),
            counter: 0,
            buf: [Block::ZERO; 8],
            pos: 8,
        }
    }

    /// A generator seeded from an RNG (e.g. the operating system's).
    pub fn from_rng<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Prg {
        let mut seed = [0u8; 16];
        rng.fill_bytes(&mut seed);
        Prg::new(Block::from_bytes(seed))
    }

    /// Seeded from the operating system.
    pub fn from_entropy() -> Prg {
        Prg::new(Block(rand::random()))
    }

    /// Fill `out` with the next `out.len()` blocks of the stream.
    pub fn fill_blocks(&mut self, out: &mut [Block]) {
        let mut c = self.counter;
        for b in out.iter_mut() {
            *b = Block(c);
            c = c.wrapping_add(1);
        }
        self.counter = c;
        aes_encrypt_blocks(&self.aes, out);
    }

    /// `n` pseudo-random blocks.
    pub fn blocks(&mut self, n: usize) -> Vec<Block> {
        let mut v = vec![Block::ZERO; n];
        self.fill_blocks(&mut v);
        v
    }

    /// One pseudo-random block.
    pub fn block(&mut self) -> Block {
        if self.pos == 8 {
            let mut buf = [Block::ZERO; 8];
            self.fill_blocks(&mut buf);
            self.buf = buf;
            self.pos = 0;
        }
        self.pos += 1;
        self.buf[self.pos - 1]
    }

    /// `n` pseudo-random bits.
    pub fn bools(&mut self, n: usize) -> Vec<bool> {
        let blocks = self.blocks(n.div_ceil(128));
        super::block::unpack_bools(&blocks, n)
    }

    /// `n` pseudo-random values of `bits` bits each.
    pub fn values(&mut self, n: usize, bits: u32) -> Vec<u64> {
        let m = super::pack::mask(bits);
        let blocks = self.blocks(n.div_ceil(2));
        (0..n)
            .map(|i| {
                let b = blocks[i / 2];
                (if i % 2 == 0 { b.low() } else { b.high() }) & m
            })
            .collect()
    }
}

impl RngCore for Prg {
    fn next_u32(&mut self) -> u32 {
        self.block().0 as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.block().low()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(16) {
            let b = self.block().to_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Prg {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = Prg::new(Block(1)).blocks(100);
        let b = Prg::new(Block(1)).blocks(100);
        let c = Prg::new(Block(2)).blocks(100);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // The stream is the same however it is consumed.
        let mut p = Prg::new(Block(1));
        let mut v = p.blocks(37);
        v.extend(p.blocks(63));
        assert_eq!(v, a);
    }

    #[test]
    fn matches_aes_ctr_definition() {
        // AES-128 with the all-zero key on the all-zero block (FIPS-197 style known answer).
        let out = Prg::new(Block::ZERO).blocks(1)[0];
        assert_eq!(
            out.to_bytes(),
            [
                0x66, 0xe9, 0x4b, 0xd4, 0xef, 0x8a, 0x2c, 0x3b, 0x88, 0x4c, 0xfa, 0x59, 0xca, 0x34,
                0x2b, 0x2e
            ]
        );
    }

    #[test]
    fn output_bits_are_balanced() {
        let blocks = Prg::new(Block(99)).blocks(1 << 14);
        let ones: u64 = blocks.iter().map(|b| b.0.count_ones() as u64).sum();
        let n = (1u64 << 14) * 128;
        // Mean n/2, standard deviation sqrt(n)/2 ≈ 724: allow 6 sigma.
        assert!((ones as f64 - n as f64 / 2.0).abs() < 6.0 * (n as f64).sqrt() / 2.0);
        // Every one of the 128 bit positions is balanced too.
        for pos in 0..128 {
            let c = blocks.iter().filter(|b| b.bit(pos)).count() as f64;
            assert!((c - 8192.0).abs() < 6.0 * 64.0, "position {pos}: {c}");
        }
    }
}

/// Common randomness: both parties contribute a random 128-bit seed and use the XOR of the two as
/// the seed of a shared [`Prg`] (secure against a semi-honest peer: each contribution is uniform
/// and independent of the other). Both call this at the same point of the protocol; the server
/// sends first. Cost: 16 bytes each way, 2 rounds.
pub fn common_prg<C, R>(
    ch: &mut C,
    role: crate::net::Role,
    rng: &mut R,
) -> Result<Prg, crate::net::NetError>
where
    C: crate::net::Channel + ?Sized,
    R: RngCore + CryptoRng + ?Sized,
{
    let mut mine = [0u8; 16];
    rng.fill_bytes(&mut mine);
    let mut theirs = [0u8; 16];
    if role == crate::net::Role::Server {
        ch.send(&mine)?;
        ch.recv(&mut theirs)?;
    } else {
        ch.recv(&mut theirs)?;
        ch.send(&mine)?;
        ch.flush()?;
    }
    Ok(Prg::new(
        Block::from_bytes(mine) ^ Block::from_bytes(theirs),
    ))
}

#[cfg(test)]
mod common_tests {
    use super::*;
    use crate::net::Role;
    use crate::testing::on_mem_pair;

    #[test]
    fn both_parties_get_the_same_stream() {
        let ((mine, mut a), theirs) = on_mem_pair(
            |mut a| {
                let mine = common_prg(&mut a, Role::Server, &mut Prg::from_entropy())
                    .unwrap()
                    .blocks(10);
                (mine, a)
            },
            |mut b| {
                common_prg(&mut b, Role::Client, &mut Prg::from_entropy())
                    .unwrap()
                    .blocks(10)
            },
        );
        assert_eq!(mine, theirs);
        let again = common_prg(&mut a, Role::Server, &mut Prg::from_entropy());
        assert!(again.is_err(), "the peer is gone");
    }
}
