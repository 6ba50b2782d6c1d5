//! Secure argmax: the smallest index of the maximum of a shared vector, revealed to the client
//! only. The row-maximum tournament of [`super::max`] carrying each candidate's index beside its
//! value, then one reveal. CrypTFlow2 §4 (the maximum by DReLU and MUX, as for Maxpool), here
//! with the index selected by the same MUX bits, and CipherGPT §VII-E (the output layer reveals
//! only the chosen token, to the client; its top-k sampling is the general case, argmax is greedy
//! decoding).
//!
//! **Protocol.** Leaves: the values z_i and their indices i as arithmetic shares, the server
//! holding i (public) and the client 0. The tournament of [`super::max`]: while more than
//! [`QUAD_FROM`] candidates remain, pairwise levels — pairs (0, 1), (2, 3), … (an odd last
//! candidate passes up), gt = 1{b > a} = msb(a − b) by one [`super::cmp::msb`] call, and value
//! and index of the winner by ONE [`super::mux::mux`] call on 2 × pairs elements (b − a and
//! i_b − i_a under the same bit gt); then levels in groups of four, whose winner (value and
//! index) two 1-out-of-64 OTs select from the six comparison bits of the group (see
//! [`super::max`]). Both keep the leftmost maximum of a pair or group, and a pair or group
//! covers consecutive index ranges in order, so this is exactly
//! `ciphergpt_compiler::fixed::semantics::argmax`: the smallest index of the maximum. At the
//! end the server sends its share of the winning index ([`super::shares::reveal_to_peer`]) and
//! the client adds it to its own ([`super::shares::recv_reveal`]). The maximum's value is never
//! revealed.
//!
//! **Precondition** (as [`super::max`], not checkable on shares): every z_i, read signed, lies in
//! [−2^(ℓ−2), 2^(ℓ−2)); then no comparison's difference wraps and the result is exact. Index
//! differences may wrap; they are selected, never compared, so only n ≤ 2^ℓ (every index fits
//! the ring) is needed, and checked.
//!
//! **Cost.** Pairwise levels: one comparison (M(ℓ − 1), see [`super::cmp`]) and 2 multiplexed
//! elements (2(λ + ℓ) bits each) per pair; levels in groups of four: per group 6 comparisons
//! and 2 × 2 1-out-of-64 OTs of ℓ-bit messages (6λ + 64ℓ bits each); plus ℓ bits for the
//! reveal and IKNP's padding to 128 OTs per call. All pairwise, that is
//! (n − 1)·(M(ℓ − 1) + 4(λ + ℓ)) + ℓ bits: at ℓ = 38, 1,218 bytes per comparison on IKNP. For
//! n = 50,257 (GPT-2's vocabulary) 6 pairwise levels down to 786 candidates, then 5 in groups:
//! 11 levels instead of 16, about 0.3 MB more on silent OT. Flights: per level the msb's and 3
//! (the mux or the two OTs), and 1 for the reveal (server → client).
//!
//! **Security** (semi-honest). Up to the reveal, the argument of [`super::max`]: each level is one
//! msb call and one selection (a mux call or two 1-out-of-64 OTs) on shares, whose views are simulatable and whose outputs are fresh
//! uniform shares; the server's public leaf indices are a constant. The reveal sends the server's
//! share of the index to the client: together with its own share it gives the index, which is the
//! client's output; since the client's share is a fresh mux output, the server's share is the
//! index minus a uniform value, so it tells the client nothing more. The server receives nothing
//! at the reveal and its output is `None`: it learns neither the index nor the maximum.

use super::cmp::DEFAULT_DIGIT_BITS;
use super::max::{tournament, Shape};
use super::shares::{recv_reveal, reveal_to_peer, Ring};
use super::{Party, ProtocolError};
use crate::net::{Channel, NetError, Role};

/// The number of candidates from which on the tournament takes groups of four: each group
/// sends 2 × 2 × 64 messages of ℓ bits (value and index, each way), so the long first levels
/// stay pairwise. For GPT-2's 50,257 logits: 6 pairwise levels down to 786, then 5 in groups
/// (11 levels instead of 16) for about 0.3 MB more. The cost model's constant, which its
/// estimate follows.
pub const QUAD_FROM: usize = ciphergpt_compiler::plan::cost::ARGMAX_QUAD_FROM as usize;

/// The smallest index of the maximum of the shared vector z, revealed to the client only:
/// `Some(index)` at the client, `None` at the server. Precondition: every entry, read signed,
/// lies in [−2^(ℓ−2), 2^(ℓ−2)) (see the module doc).
pub fn argmax<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    z: &[u64],
) -> Result<Option<usize>, ProtocolError> {
    let n = z.len();
    if n == 0 {
        return Err(ProtocolError::Invalid(
            "argmax: the input vector is empty".to_string(),
        ));
    }
    if (n - 1) as u64 > ring.mask() {
        return Err(ProtocolError::Invalid(format!(
            "argmax: {n} indices do not fit the {}-bit ring",
            ring.bits
        )));
    }
    // The indices as shares: the server holds them (public), the client 0.
    let index: Vec<u64> = match party.role {
        Role::Server => (0..n as u64).collect(),
        Role::Client => vec![0; n],
    };
    // 4-bit digits: over 50,257 logits the fewest bytes on silent OT (wider digits would save
    // one exchange per level for about 60 bytes more per comparison). Pairs down to
    // QUAD_FROM candidates, then groups of four.
    let shape = Shape {
        digits: DEFAULT_DIGIT_BITS,
        quad_from: QUAD_FROM,
        first: Role::Server,
    };
    let (_, idx) = tournament(party, ring, shape, z, &[n], Some(&index))?;
    // One row: one winner.
    let share = idx[0];
    match party.role {
        Role::Server => {
            reveal_to_peer(party.ch, ring, &[share])?;
            Ok(None)
        }
        Role::Client => {
            let i = recv_reveal(party.ch, ring, &[share])?[0];
            if i >= n as u64 {
                return Err(NetError::Malformed(format!(
                    "argmax: revealed index {i} is out of range for {n} entries"
                ))
                .into());
            }
            Ok(Some(i as usize))
        }
    }
}
