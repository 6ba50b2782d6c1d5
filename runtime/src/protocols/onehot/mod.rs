//! Shares of the one-hot vector of a random index, made before the index they serve exists, and
//! the lookup of public tables through them: online, only the index's offset from the random one
//! crosses the wire (log₂N bits each way), and every table entry at the shared index follows
//! locally. The preprocessed table lookup of the "one-hot" / "rotated truth table" family
//! (Ishai et al., "On the power of correlated randomness in secure computation", TCC 2013, §3's
//! one-time truth tables; Dessouky et al.'s "OP-LUT", NDSS 2017, §4.2, with the dealer replaced
//! by the two parties' joint generation of a point function's keys).
//!
//! **Preparation** ([`prepare`], [`dpf`]; per element, N = 2^s entries, shares over a ring
//! Z_2^m). The two parties generate the keys of a distributed point function at a random point
//! ρ whose bits are XOR-shared between them, level by level with one random OT each way per
//! level (Doerner–shelat's distributed key generation of a Boyle–Gilboa–Ishai point function).
//! Each party expands its key over the whole domain: E_S + E_C = e_ρ over Z_2^m, and each holds
//! an additive share ρ_P of ρ mod N. Neither learns ρ.
//!
//! **Lookup** ([`open_offsets`], [`OneHot::dot`]). For an index i shared additively mod N, each
//! party sends d_P = i_P − ρ_P mod N; both learn δ = i − ρ mod N, and for any public table T,
//! Σ_j T\[(j + δ) mod N\]·E_P\[j\] are shares of
//! Σ_j T\[(j + δ) mod N\]·e_ρ\[j\] = T\[ρ + δ\] = T\[i\].
//!
//! **Cost** per element, λ = 128: preparation 2s random OTs, s bit products over Z_2^s,
//! 2s(2λ + 1) bits of the levels' exchanges, two Gilboa products with (s + 1)-bit choosers
//! and 2m bits to open the output word ([`dpf`]): about 580 bytes at N = 128, m = 34 on silent
//! OT, against about 2.6 KB for the 1-out-of-N OT of N-bit rotations it replaced; at most
//! 2s + 12 flights per slice of [`slice_len`] elements (one each way per level). Online: s
//! bits each way, one simultaneous flight. Memory: N + 1 words per element.
//!
//! **Security** (semi-honest). The preparation's view of each party is its own key of the
//! point function and the public correction words, which hide ρ ([`dpf`]'s argument, 128-bit);
//! its output shares are pseudorandom. Online, each party receives the peer's
//! d_P = i_P − ρ_P, uniform in [0, N) because ρ_P is uniform, unknown to the receiver and used
//! once; what it learns is δ = i − ρ_S − ρ_C, uniform and independent of i from either side. An
//! element's correlation must serve one lookup only (two offsets would reveal the difference of
//! two indices): [`OneHot`]'s users consume elements in order and never return to one.

mod dpf;

use super::shares::{open, Ring};
use super::{Party, ProtocolError};
use crate::crypto::Prg;
use crate::net::{Channel, Role};

/// Largest N: a vector's shares are N words per element.
pub const MAX_SIZE: usize = 256;

/// Tree nodes per slice of the preparation: bounds its memory (16 bytes of seed and a control
/// bit per node, 2^21 nodes: about 36 MiB with the output).
const SLICE_NODES: usize = ciphergpt_compiler::plan::cost::ONEHOT_SLICE_NODES as usize;

/// Elements per slice of the preparation for vectors of `size` entries: each slice runs the
/// levels' exchanges once.
pub fn slice_len(size: usize) -> usize {
    (SLICE_NODES / size.max(1)).max(1)
}

/// This party's shares of the one-hot vectors of `len()` random indices, one per element.
#[derive(Clone, Debug)]
pub struct OneHot {
    /// N, the vectors' length (a power of two).
    pub size: usize,
    /// Z_2^m, the ring of the vectors' shares.
    pub ring: Ring,
    /// This party's additive share of each element's random index ρ mod N.
    pub rho: Vec<u64>,
    /// This party's shares of e_ρ over Z_2^m, N per element (element-major).
    pub entries: Vec<u64>,
}

impl OneHot {
    /// How many elements the correlation holds.
    pub fn len(&self) -> usize {
        self.rho.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rho.is_empty()
    }

    /// Bytes held: N + 1 words per element.
    pub fn footprint(&self) -> usize {
        (self.rho.len() + self.entries.len()) * 8
    }

    /// Bytes held per element for vectors of `size` entries.
    pub const fn footprint_per_element(size: usize) -> usize {
        (size + 1) * 8
    }

    /// This party's share of T\[i\] for element `e`, where δ = i − ρ_e mod N is the opened offset
    /// ([`open_offsets`]) and `table` holds N public entries, reduced mod 2^m.
    pub fn dot(&self, e: usize, delta: usize, table: &[u64]) -> u64 {
        let n = self.size;
        let row = &self.entries[e * n..(e + 1) * n];
        let m = n - 1;
        let acc = row.iter().enumerate().fold(0u64, |acc, (j, &v)| {
            acc.wrapping_add(table[(j + delta) & m].wrapping_mul(v))
        });
        self.ring.reduce(acc)
    }
}

/// Prepares one-hot shares of N = `size` entries over `ring` for `n` elements (both parties
/// call it with the same arguments). N = 1 needs no communication (the server's share is 1).
/// Errors (`ProtocolError::Invalid`): N not a power of two at most [`MAX_SIZE`].
pub fn prepare<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    size: usize,
    n: usize,
) -> Result<OneHot, ProtocolError> {
    if !size.is_power_of_two() || size > MAX_SIZE {
        return Err(ProtocolError::Invalid(format!(
            "one-hot: a vector of {size} entries (a power of two up to {MAX_SIZE})"
        )));
    }
    if size == 1 {
        return Ok(OneHot {
            size,
            ring,
            rho: vec![0; n],
            entries: vec![(party.role == Role::Server) as u64; n],
        });
    }
    let s = size.trailing_zeros();
    let mut rng = Prg::from_entropy();
    let (mut rho, mut entries) = (Vec::with_capacity(n), Vec::with_capacity(n * size));
    let slice = slice_len(size);
    for start in (0..n).step_by(slice) {
        let len = slice.min(n - start);
        let (r, e) = dpf::one_hot_slice(party, ring, s, len, &mut rng)?;
        rho.extend(r);
        entries.extend(e);
    }
    Ok(OneHot {
        size,
        ring,
        rho,
        entries,
    })
}

/// Opens the offsets δ_e = i_e − ρ_e mod N of the shared indices `index` (this party's shares;
/// bits above log₂N ignored) from the correlation's elements `at..at + index.len()`, together
/// with `extra` (values of `extra_bits` bits each, added mod 2^extra_bits to the peer's: another
/// opening that rides in the same flight). Returns (δ per element, the opened extras). One
/// simultaneous flight each way. Errors: the correlation has too few elements left.
pub fn open_offsets<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    oh: &OneHot,
    at: usize,
    index: &[u64],
    extra: &[u64],
    extra_bits: u32,
) -> Result<(Vec<usize>, Vec<u64>), ProtocolError> {
    let n = index.len();
    if at + n > oh.len() {
        return Err(ProtocolError::Invalid(format!(
            "one-hot: {n} lookups from element {at} of a correlation of {}",
            oh.len()
        )));
    }
    let s = oh.size.trailing_zeros();
    let imask = oh.size as u64 - 1;
    let mut mine: Vec<u64> = (0..n)
        .map(|e| index[e].wrapping_sub(oh.rho[at + e]) & imask)
        .collect();
    mine.extend_from_slice(extra);
    let widths: Vec<u32> = std::iter::repeat_n(s, n)
        .chain(std::iter::repeat_n(extra_bits, extra.len()))
        .collect();
    let mut opened = open(ch, role, &widths, &mine)?;
    let extras = opened.split_off(n);
    Ok((opened.into_iter().map(|d| d as usize).collect(), extras))
}
