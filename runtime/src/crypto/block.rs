//! The 128-bit block: the unit of AES, of OT keys and of correlations.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitXor, BitXorAssign, Not};

/// 128 bits, stored as a `u128`; on the wire and under AES its bytes are little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Block(pub u128);

impl Block {
    pub const ZERO: Block = Block(0);
    pub const ONES: Block = Block(u128::MAX);

    pub fn from_bytes(b: [u8; 16]) -> Block {
        Block(u128::from_le_bytes(b))
    }
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
    /// Least significant bit.
    #[inline]
    pub fn lsb(self) -> bool {
        self.0 & 1 == 1
    }
    /// Bit `i` (0 = least significant).
    #[inline]
    pub fn bit(self, i: usize) -> bool {
        (self.0 >> i) & 1 == 1
    }
    /// The low 64 bits.
    #[inline]
    pub fn low(self) -> u64 {
        self.0 as u64
    }
    /// The high 64 bits.
    #[inline]
    pub fn high(self) -> u64 {
        (self.0 >> 64) as u64
    }
    #[inline]
    pub fn from_halves(high: u64, low: u64) -> Block {
        Block(((high as u128) << 64) | low as u128)
    }
    /// `self` if `b`, zero otherwise (branch-free).
    #[inline]
    pub fn and_bit(self, b: bool) -> Block {
        Block(self.0 & (b as u128).wrapping_neg())
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({:032x})", self.0)
    }
}

impl From<u128> for Block {
    fn from(v: u128) -> Block {
        Block(v)
    }
}

impl BitXor for Block {
    type Output = Block;
    #[inline]
    fn bitxor(self, o: Block) -> Block {
        Block(self.0 ^ o.0)
    }
}
impl BitXorAssign for Block {
    #[inline]
    fn bitxor_assign(&mut self, o: Block) {
        self.0 ^= o.0
    }
}
impl BitAnd for Block {
    type Output = Block;
    #[inline]
    fn bitand(self, o: Block) -> Block {
        Block(self.0 & o.0)
    }
}
impl BitAndAssign for Block {
    #[inline]
    fn bitand_assign(&mut self, o: Block) {
        self.0 &= o.0
    }
}
impl Not for Block {
    type Output = Block;
    #[inline]
    fn not(self) -> Block {
        Block(!self.0)
    }
}

/// View blocks as bytes (little-endian targets only, see the crate root).
pub fn as_bytes(blocks: &[Block]) -> &[u8] {
    // SAFETY: Block is repr(transparent) over u128: 16 bytes, no padding, every byte initialised.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, blocks.len() * 16) }
}

/// View blocks as mutable bytes; every byte pattern is a valid block.
pub fn as_bytes_mut(blocks: &mut [Block]) -> &mut [u8] {
    // SAFETY: as above, and any bytes form a valid u128.
    unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr() as *mut u8, blocks.len() * 16) }
}

/// XOR `src` into `dst` element-wise.
#[inline]
pub fn xor_into(dst: &mut [Block], src: &[Block]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= *s;
    }
}

/// Pack bools into blocks: bit `i` goes to bit `i % 128` of block `i / 128`.
pub fn pack_bools(bits: &[bool]) -> Vec<Block> {
    let mut out = vec![Block::ZERO; bits.len().div_ceil(128)];
    for (i, &b) in bits.iter().enumerate() {
        out[i / 128].0 |= (b as u128) << (i % 128);
    }
    out
}

/// Unpack the first `n` bits of `blocks` (inverse of [`pack_bools`]).
pub fn unpack_bools(blocks: &[Block], n: usize) -> Vec<bool> {
    (0..n).map(|i| blocks[i / 128].bit(i % 128)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_and_bytes() {
        let a = Block::from_halves(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        assert_eq!(a.high(), 0x0123_4567_89ab_cdef);
        assert_eq!(a.low(), 0xfedc_ba98_7654_3210);
        assert_eq!(Block::from_bytes(a.to_bytes()), a);
        assert_eq!(a ^ a, Block::ZERO);
        assert_eq!(a & Block::ONES, a);
        assert_eq!(!Block::ZERO, Block::ONES);
        assert_eq!(a.and_bit(false), Block::ZERO);
        assert_eq!(a.and_bit(true), a);
        assert_eq!(as_bytes(&[a])[0], 0x10);
        assert!(!a.lsb());
        let bits: Vec<bool> = (0..300).map(|i| i % 3 == 0 || i % 7 == 1).collect();
        assert_eq!(unpack_bools(&pack_bools(&bits), 300), bits);
    }
}
