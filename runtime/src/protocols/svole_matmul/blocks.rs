//! The block passes of both parties: each tree's leaves expanded into the rows of its noise
//! block, summed over the block.

use crate::crypto::pack::mask;
use crate::crypto::{Block, Prg};

/// The rows of each noise block in a (2L′ × k) matrix, as disjoint slices.
pub(super) fn block_rows<'a>(
    acc: &'a mut [u64],
    blocks: &[(usize, usize)],
    k: usize,
) -> Vec<&'a mut [u64]> {
    let mut parts = Vec::with_capacity(blocks.len());
    let mut rest = acc;
    for &(_, len) in blocks {
        let (head, tail) = rest.split_at_mut(len * k);
        parts.push(head);
        rest = tail;
    }
    parts
}

/// The per-thread buffers of the block passes: each leaf expands by the AES PRG into k values of
/// ℓ bits (three per AES block when ℓ ≤ 42, else two).
pub(super) struct BlockScratch {
    blocks: Vec<Block>,
    vals: Vec<u64>,
    sum: Vec<u64>,
}

impl BlockScratch {
    pub(super) fn new(k: usize) -> BlockScratch {
        BlockScratch {
            blocks: Vec::new(),
            vals: Vec::new(),
            sum: vec![0; k],
        }
    }

    /// Add the expansion of every leaf of one tree's block (but the punctured one, `skip`) to its
    /// row of `acc` (one row of k values per leaf) and return their sum over the block.
    pub(super) fn add_block(
        &mut self,
        leaves: &[Block],
        skip: Option<usize>,
        bits: u32,
        acc: &mut [u64],
    ) -> &[u64] {
        let k = self.sum.len();
        let m = mask(bits);
        let per = if bits <= 42 { 3 } else { 2 };
        self.sum.iter_mut().for_each(|x| *x = 0);
        for (q, &leaf) in leaves.iter().enumerate() {
            if skip == Some(q) {
                continue;
            }
            self.blocks.resize(k.div_ceil(per), Block::ZERO);
            Prg::new(leaf).fill_blocks(&mut self.blocks);
            self.vals.clear();
            for b in &self.blocks {
                if per == 3 {
                    let x = b.0;
                    self.vals.extend_from_slice(&[
                        x as u64 & m,
                        (x >> 42) as u64 & m,
                        (x >> 84) as u64 & m,
                    ]);
                } else {
                    self.vals.extend_from_slice(&[b.low() & m, b.high() & m]);
                }
            }
            for (a, &v) in acc[q * k..(q + 1) * k].iter_mut().zip(&self.vals) {
                *a = a.wrapping_add(v);
            }
            for (s, &v) in self.sum.iter_mut().zip(&self.vals) {
                *s = s.wrapping_add(v);
            }
        }
        &self.sum
    }
}
