//! Bit-matrix transposition for OT extension: 128 columns of n bits each become n rows of 128 bits.
//!
//! Built from an in-register 64×64 transposition (recursive block swap: swap the off-diagonal
//! 32×32 quadrants, then the 16×16 ones inside each quadrant, …), about 6·32 word operations per
//! 4096 bits.

use super::block::Block;

/// Transpose a 64×64 bit matrix in place: afterwards bit `r` of `a[c]` is the former bit `c` of
/// `a[r]`.
#[inline]
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Four 64×64 transpositions at once, lane by lane (bit `r` of `a[c][l]` becomes bit `c` of
/// `a[r][l]`); the lane loops compile to 256-bit vector operations with AVX2.
#[inline]
fn transpose64x4(a: &mut [[u64; 4]; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            let (lo, hi) = a.split_at_mut(k + j);
            let (x, y) = (&mut lo[k], &mut hi[0]);
            for l in 0..4 {
                let t = ((x[l] >> j) ^ y[l]) & m;
                x[l] ^= t << j;
                y[l] ^= t;
            }
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// `cols` holds 128 columns of `nb` blocks each (column `j` is `cols[j*nb..(j+1)*nb]`, bit `i` of
/// a column is bit `i % 128` of its block `i / 128`). Writes the `128·nb` rows into `out`: bit `j`
/// of `out[i]` is bit `i` of column `j`.
///
/// Per block of 128 OTs, four 64×64 transpositions run side by side: lanes (columns 0–63,
/// columns 64–127) × (OTs 0–63, OTs 64–127) of the block, so each transposed lane pair is directly
/// an output row.
pub fn transpose_128xn(cols: &[Block], nb: usize, out: &mut [Block]) {
    assert_eq!(cols.len(), 128 * nb, "need 128 columns of nb blocks");
    assert_eq!(out.len(), 128 * nb, "need 128·nb output rows");
    let mut a = [[0u64; 4]; 64];
    for b in 0..nb {
        for (r, ar) in a.iter_mut().enumerate() {
            let x = cols[r * nb + b];
            let y = cols[(64 + r) * nb + b];
            *ar = [x.low(), y.low(), x.high(), y.high()];
        }
        transpose64x4(&mut a);
        let rows = &mut out[128 * b..128 * b + 128];
        for (k, ak) in a.iter().enumerate() {
            rows[k] = Block::from_halves(ak[1], ak[0]);
            rows[64 + k] = Block::from_halves(ak[3], ak[2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;

    #[test]
    fn transpose64_matches_definition() {
        let mut p = Prg::new(Block(7));
        let mut a = [0u64; 64];
        for x in a.iter_mut() {
            *x = p.block().low();
        }
        let orig = a;
        transpose64(&mut a);
        for r in 0..64 {
            for c in 0..64 {
                assert_eq!((a[c] >> r) & 1, (orig[r] >> c) & 1);
            }
        }
    }

    #[test]
    fn transpose_128xn_matches_definition() {
        for nb in [1usize, 2, 5] {
            let cols = Prg::new(Block(nb as u128)).blocks(128 * nb);
            let mut out = vec![Block::ZERO; 128 * nb];
            transpose_128xn(&cols, nb, &mut out);
            for i in 0..128 * nb {
                for j in 0..128 {
                    assert_eq!(out[i].bit(j), cols[j * nb + i / 128].bit(i % 128));
                }
            }
        }
    }
}
