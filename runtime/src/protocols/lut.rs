//! Lookup of public tables at a shared index: the index i = i_S + i_C mod N (N a power of two,
//! 2 ≤ N ≤ 256) is additively shared, the tables T_1, …, T_t (N entries of ℓ bits each) are
//! public; the output is additive shares over Z_2^ℓ of T_k[i] for every table k. SIRNN §III-E
//! (F_LUT by a single 1-out-of-M OT; the server rotates the table by its index share) and
//! CipherGPT's GELU spline (slope and intercept from two tables at the same index).
//!
//! **Protocol.** The server, with index share i_S, draws r_k uniform in Z_2^ℓ per element and table
//! and offers, in one 1-out-of-N OT ([`crate::crypto::one_of_n`]), the messages
//! m_j = (T_k[(j + i_S) mod N] − r_k)_k for j ∈ [0, N); the client chooses j = i_C and receives
//! m_{i_C} = (T_k[i] − r_k)_k, its output shares; the server's are r_k. Several tables travel in
//! one OT message, concatenated, as long as they fit in 64 bits (t·ℓ ≤ 64, the OT's message
//! width); beyond that the tables are split into groups of ⌊64/ℓ⌋ and each group takes its own
//! 1-out-of-N OT (for ℓ = 37: one table per OT).
//!
//! **Cost** per element and OT group of t' tables, with k = log₂N: k·λ bits (the random OTs,
//! client → server) + N·t'·ℓ bits (the ciphertexts, server → client); all groups go in one OT
//! call, one flight each way (a narrower last group is padded to the full group's width).
//! Measured at ℓ = 37 over 2^16 elements: N = 256, one table: 128 + 1,184 = 1,312 bytes;
//! N = 256, two tables (two groups): 2,624 bytes; N = 64, two tables: 2·96 + 2·296 = 784 bytes;
//! N = 16, one table: 138 bytes. N = 1 is local (the server's share is T[0]).
//!
//! **Security** (semi-honest). The client receives the OT's ciphertexts: the chosen one decrypts
//! to T_k[i] − r_k, which is uniform in Z_2^ℓ whatever the tables and the index because r_k is fresh
//! and used once; every other ciphertext is padded with a key the client did not choose (OT
//! security, 128-bit). The server receives only the OT receiver's IKNP message, independent of i_C
//! (PRG-masked). Its output r_k is independent of everything. So neither party learns anything
//! about the peer's index share or the result.

use rand::RngCore;

use super::shares::Ring;
use super::{Party, ProtocolError};
use crate::crypto::pack::mask;
use crate::crypto::Prg;
use crate::net::{Channel, Role};

/// Largest table size.
pub const MAX_ENTRIES: usize = 256;

/// How many ℓ-bit tables share one OT message (at least one).
pub fn tables_per_ot(ring: Ring) -> usize {
    (64 / ring.bits as usize).max(1)
}

/// Shares of `T_k[i]` for each table k (outer) and element (inner). `tables` are public and the
/// same for both parties (N entries each, N a power of two ≤ 256, entries reduced mod 2^ℓ);
/// `index` is this party's additive share of i mod N (higher bits ignored).
pub fn lut<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    tables: &[&[u64]],
    index: &[u64],
) -> Result<Vec<Vec<u64>>, ProtocolError> {
    let nt = tables.len();
    let size = tables.first().map_or(0, |t| t.len());
    if nt == 0 {
        return Ok(Vec::new());
    }
    if !size.is_power_of_two() || size > MAX_ENTRIES || tables.iter().any(|t| t.len() != size) {
        return Err(ProtocolError::Invalid(format!(
            "lut: tables must all have the same power-of-two size ≤ {MAX_ENTRIES} (sizes {:?})",
            tables.iter().map(|t| t.len()).collect::<Vec<_>>()
        )));
    }
    let n = index.len();
    let imask = size as u64 - 1;
    if size == 1 {
        return Ok(tables
            .iter()
            .map(|t| match party.role {
                Role::Server => vec![ring.reduce(t[0]); n],
                Role::Client => vec![0; n],
            })
            .collect());
    }
    let mut out = vec![vec![0u64; n]; nt];
    if n == 0 {
        return Ok(out);
    }
    let per = tables_per_ot(ring);
    let lmask = ring.mask();
    let groups = nt.div_ceil(per);
    // Widest group (all but possibly the last): its width is the OT message width of the call.
    let bits = per.min(nt) as u32 * ring.bits;
    // One 1-of-N OT per element and group, all in one call: OT g·n + i is element i of group g.
    match party.role {
        Role::Server => {
            let mut rng = Prg::from_entropy();
            let mut msgs = vec![0u64; groups * n * size];
            for (g, group) in tables.chunks(per).enumerate() {
                let first = g * per;
                for (i, &is) in index.iter().enumerate() {
                    let is = (is & imask) as usize;
                    let mut rs = [0u64; 64];
                    for (k, r) in rs.iter_mut().take(group.len()).enumerate() {
                        *r = rng.next_u64() & lmask;
                        out[first + k][i] = *r;
                    }
                    let base = (g * n + i) * size;
                    for (j, m) in msgs[base..base + size].iter_mut().enumerate() {
                        let e = (j + is) & imask as usize;
                        *m = group.iter().enumerate().fold(0u64, |acc, (k, t)| {
                            acc | (ring.sub(t[e], rs[k]) << (k as u32 * ring.bits))
                        });
                    }
                }
            }
            party.ot.sender.send_1_of_n(party.ch, &msgs, size, bits)?;
        }
        Role::Client => {
            let choices: Vec<u32> = (0..groups)
                .flat_map(|_| index.iter().map(|&v| (v & imask) as u32))
                .collect();
            let got = party
                .ot
                .receiver
                .recv_1_of_n(party.ch, &choices, size, bits)?;
            for (g, group) in tables.chunks(per).enumerate() {
                for i in 0..n {
                    let v = got[g * n + i];
                    for k in 0..group.len() {
                        out[g * per + k][i] = (v >> (k as u32 * ring.bits)) & mask(ring.bits);
                    }
                }
            }
        }
    }
    Ok(out)
}
