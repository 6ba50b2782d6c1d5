//! Shares of the one-hot vector of a random index, made before the index they serve exists, and
//! the lookup of public tables through them: online, only the index's offset from the random one
//! crosses the wire (log₂N bits each way), and every table entry at the shared index follows
//! locally. The preprocessed table lookup of the "one-hot" / "rotated truth table" family
//! (Ishai et al., "On the power of correlated randomness in secure computation", TCC 2013, §3's
//! one-time truth tables; Dessouky et al.'s "OP-LUT", NDSS 2017, §4.2, with the dealer replaced
//! by an OT between the two parties).
//!
//! **Preparation** ([`prepare`]; per element, N = 2^s entries, shares over a ring Z_2^m). The
//! server draws ρ_S ∈ [0, N) and R ∈ {0, 1}^N, the client ρ_C ∈ [0, N); the index
//! ρ = ρ_S + ρ_C mod N is known to neither. In one 1-out-of-N OT ([`crate::crypto::one_of_n`])
//! the server offers M_c = e_((ρ_S + c) mod N) ⊕ R for c ∈ [0, N) (N-bit messages, cut into
//! ⌈N/64⌉ instances of at most 64 bits that the client opens with the same choice) and the client
//! chooses c = ρ_C: the server's R and the client's e_ρ ⊕ R are XOR shares of the one-hot vector
//! e_ρ. B2A ([`super::b2a`]) makes them additive: E_S + E_C = e_ρ over Z_2^m.
//!
//! **Lookup** ([`open_offsets`], [`OneHot::dot`]). For an index i shared additively mod N, each
//! party sends d_P = i_P − ρ_P mod N; both learn δ = i − ρ mod N, and for any public table T,
//! Σ_j T\[(j + δ) mod N\]·E_P\[j\] are shares of
//! Σ_j T\[(j + δ) mod N\]·e_ρ\[j\] = T\[ρ + δ\] = T\[i\].
//!
//! **Cost** per element, λ = 128 (IKNP; silent OT sends about one bit per COT instead):
//! preparation ⌈N/64⌉·s·λ bits from the client (the random OTs of each instance) + N² bits
//! from the server (the ciphertexts) + N·(λ + m) bits (B2A), four flights; at N = 128, m = 34 on
//! silent OT about 2.6 KB. Online: s bits each way, one simultaneous flight. Memory: N + 1 words.
//!
//! **Security** (semi-honest). The server receives the OT receiver's messages only (the COTs'
//! choice corrections, independent of ρ_C). The client receives M_ρC = e_ρ ⊕ R, uniform because
//! R is fresh, and N − 1 ciphertexts under keys it did not choose (1-out-of-N OT, 128-bit). B2A's
//! outputs are uniform given each party's view. Online, each party receives the peer's
//! d_P = i_P − ρ_P, uniform in [0, N) because ρ_P is uniform, unknown to the receiver and used
//! once; what it learns is δ = i − ρ_S − ρ_C, uniform and independent of i from either side. An
//! element's correlation must serve one lookup only (two offsets would reveal the difference of
//! two indices): [`OneHot`]'s users consume elements in order and never return to one.

use rand::RngCore;

use super::b2a::b2a;
use super::shares::{open, Ring};
use super::{Party, ProtocolError};
use crate::crypto::pack::mask;
use crate::crypto::Prg;
use crate::net::{Channel, Role};

/// Largest N: the preparation's messages grow as N².
pub const MAX_SIZE: usize = 256;

/// Elements per OT call of the preparation: bounds the server's messages (N·⌈N/64⌉ words per
/// element, 16 MiB per slice at N = 128).
const SLICE: usize = 1 << 13;

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
    let groups = size.div_ceil(64);
    let width = size.min(64);
    let mut rng = Prg::from_entropy();
    let rho: Vec<u64> = (0..n).map(|_| rng.next_u64() & (size as u64 - 1)).collect();
    let mut entries = Vec::with_capacity(n * size);
    for start in (0..n).step_by(SLICE) {
        let part = &rho[start..(start + SLICE).min(n)];
        // This party's XOR shares of e_ρ, `groups` words of `width` bits per element.
        let xor: Vec<u64> = match party.role {
            Role::Server => {
                let pads: Vec<u64> = (0..part.len() * groups)
                    .map(|_| rng.next_u64() & mask(width as u32))
                    .collect();
                let mut msgs = vec![0u64; part.len() * groups * size];
                for (e, &rs) in part.iter().enumerate() {
                    for c in 0..size {
                        // M_c = e_(ρ_S + c) ⊕ R: one bit set, in word `hot / 64`.
                        let hot = (rs as usize + c) & (size - 1);
                        for g in 0..groups {
                            let bit = if hot / 64 == g { 1u64 << (hot % 64) } else { 0 };
                            let k = e * groups + g;
                            msgs[k * size + c] = bit ^ pads[k];
                        }
                    }
                }
                party
                    .ot
                    .sender
                    .send_1_of_n(party.ch, &msgs, size, width as u32)?;
                pads
            }
            Role::Client => {
                let choices: Vec<u32> = part
                    .iter()
                    .flat_map(|&c| std::iter::repeat_n(c as u32, groups))
                    .collect();
                party
                    .ot
                    .receiver
                    .recv_1_of_n(party.ch, &choices, size, width as u32)?
            }
        };
        let bits: Vec<bool> = (0..part.len() * size)
            .map(|k| (xor[k / width] >> (k % width)) & 1 == 1)
            .collect();
        entries.extend(b2a(party, ring, &bits)?);
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
