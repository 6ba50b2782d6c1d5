//! The public local linear code of silent OT ([`super::silent`]): primal LPN with regular noise
//! over F_2, as in Ferret (Yang, Weng, Lan, Zhang, Wang, CCS 2020, §4 and its parameter table).
//!
//! **Code.** A k × n matrix A over F_2 whose column i has d = [`D`] = 10 ones, at the rows
//! idx_j(i) = ⌊w_{10i+j} · k / 2^32⌋ (j < 10), where w_0, w_1, … are the 32-bit words of the
//! AES-128 counter-mode stream under the parameter set's public key (little-endian words of
//! AES(0), AES(1), …). The keys are pairs of the 64-bit words of SHA-512's initial hash value
//! (fractional parts of √2, …, √19): nothing up the sleeve. Both parties derive the same A from the public key; it is fixed per
//! parameter set, as in Ferret (the secret and the noise are fresh per batch, the code is public).
//! Two equal rows of one column cancel (probability about 45/k per column); the analysis of
//! local codes allows it.
//!
//! **Expansion.** For a vector x ∈ (F_2^128)^k (the base COTs of one party), the encoding
//! x·A ∈ (F_2^128)^n is y_i = ⊕_j x[idx_j(i)]: d random reads per output, computed by
//! [`accumulate`] in parallel chunks (rayon), the indices generated on the fly (2.5 AES blocks
//! per output), never stored.
//!
//! **LPN assumption** (primal, regular noise, F_2): (A, s·A ⊕ e) is indistinguishable from
//! (A, uniform) for a uniform secret s ∈ F_2^k and a noise e ∈ F_2^n with exactly one 1 in each
//! of t blocks of n/t positions. The parameter sets and their source are on [`LpnParams`].

use aes::Aes128;
use rayon::prelude::*;

use super::block::Block;
use super::prg::{aes_encrypt_blocks, aes_from_block};

/// Ones per column of the code (Ferret's d).
pub const D: usize = 10;

/// One primal-LPN parameter set with regular noise: n outputs, secret length k, t noise
/// positions, one in each block of n/t = 2^`log_leaves` positions (a GGM tree of that depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpnParams {
    /// Outputs (COTs) per batch.
    pub n: usize,
    /// Secret length: the base COTs the code expands.
    pub k: usize,
    /// Noise weight: trees (single-point PPRFs) per batch.
    pub t: usize,
    /// log₂(n / t): depth of each tree, OTs per tree.
    pub log_leaves: u32,
    /// Which public code: the AES key that generates the column indices (two words of SHA-512's
    /// initial hash value).
    pub code_key: u128,
    /// Name in reports.
    pub name: &'static str,
}

/// Ferret's parameter set for its main iteration (primal LPN, regular noise, 128-bit
/// computational security): n = 10,805,248, k = 589,760, t = 1,319, blocks of 2^13.
pub const FERRET_MAIN: LpnParams = LpnParams {
    n: 10_805_248,
    k: 589_760,
    t: 1_319,
    log_leaves: 13,
    code_key: 0x510e_527f_ade6_82d1_9b05_688c_2b3e_6c1f,
    name: "ferret-main",
};

/// The bootstrapping set of Ferret's implementation (emp-ot, `ferret/constants.h`, primal LPN
/// with regular noise, 128-bit): n = 607,232, k = 69,454, t = 593, blocks of 2^10. Its n covers
/// the base of one [`FERRET_MAIN`] batch (606,907).
pub const FERRET_SETUP: LpnParams = LpnParams {
    n: 607_232,
    k: 69_454,
    t: 593,
    log_leaves: 10,
    code_key: 0x3c6e_f372_fe94_f82b_a54f_f53a_5f1d_36f1,
    name: "ferret-setup",
};

/// The first set of Ferret's implementation's bootstrapping chain (emp-ot, `ferret/constants.h`,
/// primal LPN with regular noise, 128-bit): n = 75,520, k = 8,911, t = 590, blocks of 2^7, from
/// 13,041 IKNP COTs. Its n covers the base of one [`FERRET_SETUP`] batch (75,384).
pub const FERRET_BOOT: LpnParams = LpnParams {
    n: 75_520,
    k: 8_911,
    t: 590,
    log_leaves: 7,
    code_key: 0x6a09_e667_f3bc_c908_bb67_ae85_84ca_a73b,
    name: "ferret-boot",
};

/// **Test only, not secure**: a tiny set so that tests can run many refills in little time.
/// Never used by default ([`super::iknp::CotBackend::SilentTestOnly`] selects it).
pub const TEST_ONLY_TINY: LpnParams = LpnParams {
    n: 16_384,
    k: 2_048,
    t: 64,
    log_leaves: 8,
    code_key: 0x1f83_d9ab_fb41_bd6b_5be0_cd19_137e_2179,
    name: "test-only-tiny",
};

impl LpnParams {
    /// Leaves per tree, n / t.
    pub const fn leaves(&self) -> usize {
        1 << self.log_leaves
    }

    /// OTs of the t PPRFs (one per tree level).
    pub const fn pprf_ots(&self) -> usize {
        self.t * self.log_leaves as usize
    }

    /// Base COTs one batch consumes: the PPRFs' OTs, then the k of the LPN secret.
    pub const fn base(&self) -> usize {
        self.pprf_ots() + self.k
    }

    /// The shape constraints: n = t · 2^log_leaves, an even n/t (the index stream is cut at even
    /// outputs), a base smaller than the output.
    pub fn check(&self) -> bool {
        self.log_leaves >= 1
            && self.log_leaves <= super::pprf::MAX_DEPTH
            && self.t.checked_mul(self.leaves()) == Some(self.n)
            && self.k >= 1
            && self.k < (1 << 32)
            && self.base() < self.n
    }

    /// The d rows of column i (for tests and documentation; [`accumulate`] is the fast path).
    pub fn column(&self, i: usize) -> [usize; D] {
        let first = D * i;
        let (b0, b1) = (first / 4, (first + D - 1) / 4);
        let mut blocks: Vec<Block> = (b0..=b1).map(|b| Block(b as u128)).collect();
        let aes = aes_from_block(Block(self.code_key));
        aes_encrypt_blocks(&aes, &mut blocks);
        let mut out = [0usize; D];
        for (j, o) in out.iter_mut().enumerate() {
            let q = first + j - 4 * b0;
            let w = (blocks[q / 4].0 >> (32 * (q % 4))) as u32;
            *o = row(w, self.k);
        }
        out
    }
}

#[inline(always)]
fn row(w: u32, k: usize) -> usize {
    ((w as u64 * k as u64) >> 32) as usize
}

/// Outputs per rayon job.
const JOB: usize = 1 << 13;
/// Outputs per AES batch inside a job (even).
const INNER: usize = 256;

/// `out[i] ^= ⊕_j base[idx_j(first + i)]` for every i: adds the encoding of `base` (length k)
/// at the outputs [first, first + out.len()). `first` must be even.
pub fn accumulate(p: &LpnParams, base: &[Block], first: usize, out: &mut [Block]) {
    debug_assert_eq!(base.len(), p.k);
    debug_assert_eq!(first % 2, 0);
    // The key schedule costs less than one AES batch.
    let aes = aes_from_block(Block(p.code_key));
    out.par_chunks_mut(JOB).enumerate().for_each(|(c, o)| {
        accumulate_job(&aes, p.k, base, first + c * JOB, o);
    });
}

fn accumulate_job(aes: &Aes128, k: usize, base: &[Block], first: usize, out: &mut [Block]) {
    let mut blocks = [Block::ZERO; INNER * D / 4 + 1];
    let mut rows = [0u32; INNER * D];
    for (c, o) in out.chunks_mut(INNER).enumerate() {
        let s = first + c * INNER;
        let b0 = s * D / 4; // s even: 10s/4 is whole
        let nb = (o.len() * D).div_ceil(4);
        for (j, b) in blocks[..nb].iter_mut().enumerate() {
            *b = Block((b0 + j) as u128);
        }
        aes_encrypt_blocks(aes, &mut blocks[..nb]);
        // Words in little-endian order: word q of the batch is lane q % 4 of block q / 4.
        for (q, r) in rows[..o.len() * D].iter_mut().enumerate() {
            *r = row((blocks[q / 4].0 >> (32 * (q % 4))) as u32, k) as u32;
        }
        // The reads are random over k blocks (9.4 MB for the main set, past L2): prefetch the
        // rows of the output PREFETCH ahead so that many reads are in flight.
        let m = o.len();
        for (i, y) in o.iter_mut().enumerate() {
            if i + PREFETCH < m {
                for &r in &rows[(i + PREFETCH) * D..(i + PREFETCH + 1) * D] {
                    prefetch(&base[r as usize]);
                }
            }
            let mut acc = Block::ZERO;
            for &r in &rows[i * D..(i + 1) * D] {
                acc ^= base[r as usize];
            }
            *y ^= acc;
        }
    }
}

/// Outputs between a prefetch and its use.
const PREFETCH: usize = 8;

#[inline(always)]
fn prefetch(x: &Block) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and the pointer comes from a reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(x as *const Block as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;

    #[test]
    fn parameter_sets_have_their_shape() {
        for p in [FERRET_MAIN, FERRET_SETUP, FERRET_BOOT, TEST_ONLY_TINY] {
            assert!(p.check(), "{}", p.name);
        }
        // The setup batch yields the base of a main batch.
        assert!(FERRET_SETUP.n >= FERRET_MAIN.base());
        assert!(FERRET_BOOT.n >= FERRET_SETUP.base());
        assert_eq!(FERRET_BOOT.base(), 13_041);
        assert_eq!(FERRET_MAIN.base(), 606_907);
        assert_eq!(FERRET_SETUP.base(), 75_384);
    }

    #[test]
    fn accumulate_matches_the_columns() {
        let p = TEST_ONLY_TINY;
        let base = Prg::new(Block(3)).blocks(p.k);
        let first = 1000;
        let mut out = Prg::new(Block(4)).blocks(3001);
        let before = out.clone();
        accumulate(&p, &base, first, &mut out);
        for (i, (&y, &x)) in out.iter().zip(&before).enumerate() {
            let mut want = x;
            for r in p.column(first + i) {
                assert!(r < p.k);
                want ^= base[r];
            }
            assert_eq!(y, want, "output {i}");
        }
        // The rows are spread over [0, k).
        let mut hits = vec![0u32; p.k];
        for i in 0..p.n {
            for r in p.column(i) {
                hits[r] += 1;
            }
        }
        let mean = (p.n * D / p.k) as f64;
        assert!(hits
            .iter()
            .all(|&h| (h as f64 - mean).abs() < 8.0 * mean.sqrt()));
    }
}
