//! Secure argmax: the smallest index of the maximum of a shared vector, revealed to the client
//! only. The row-maximum tournament of [`super::max`] carrying each candidate's index beside its
//! value, then one reveal. CrypTFlow2 §4 (the maximum by DReLU and MUX, as for Maxpool), here
//! with the index selected by the same MUX bits, and CipherGPT §VII-E (the output layer reveals
//! only the chosen token, to the client; its top-k sampling is the general case, argmax is greedy
//! decoding).
//!
//! **Protocol.** Leaves: the values z_i and their indices i as arithmetic shares, the server
//! holding i (public) and the client 0. The tournament of [`super::max`]: at each level pairs
//! (0, 1), (2, 3), … (an odd last candidate passes up), gt = 1{b > a} = msb(a − b) by one
//! [`super::cmp::msb`] call, and value and index of the winner by ONE [`super::mux::mux`] call on
//! 2 × pairs elements (b − a and i_b − i_a under the same bit gt). This is exactly the tree of
//! `ciphergpt_compiler::fixed::semantics::argmax`: the left candidate stays unless the right
//! one is strictly greater, and since left subtrees hold smaller indices, ties go to the
//! smallest index. At the end the server sends its share of the winning index
//! ([`super::shares::reveal_to_peer`]) and the client adds it to its own
//! ([`super::shares::recv_reveal`]). The maximum's value is never revealed.
//!
//! **Precondition** (as [`super::max`], not checkable on shares): every z_i, read signed, lies in
//! [−2^(ℓ−2), 2^(ℓ−2)); then no comparison's difference wraps and the result is exact. Index
//! differences may wrap; they are selected, never compared, so only n ≤ 2^ℓ (every index fits
//! the ring) is needed, and checked.
//!
//! **Cost.** n − 1 comparisons (M(ℓ − 1), see [`super::cmp`]) and 2(n − 1) multiplexed
//! elements (2(λ + ℓ) bits each), plus ℓ bits for the reveal: (n − 1)·(M(ℓ − 1) + 4(λ + ℓ)) + ℓ
//! bits, plus IKNP's padding to 128 OTs per call. At ℓ = 38: 1,135 + 83 = 1,218 bytes per
//! comparison; for n = 50,257 (GPT-2's vocabulary) the formula gives 61,211,812 bytes and we
//! measured 61,308,129 (the padding of the small top levels: 0.16%), 1,219.9 per comparison.
//! Flights: ⌈log₂ n⌉ × (msb flights + mux flights) + 1 (the reveal, server → client); for
//! n = 50,257, 16 levels: measured 193 flights from the server, 223 from the client.
//!
//! **Security** (semi-honest). Up to the reveal, the argument of [`super::max`]: each level is one
//! msb and one mux call on shares, whose views are simulatable and whose outputs are fresh
//! uniform shares; the server's public leaf indices are a constant. The reveal sends the server's
//! share of the index to the client: together with its own share it gives the index, which is the
//! client's output; since the client's share is a fresh mux output, the server's share is the
//! index minus a uniform value, so it tells the client nothing more. The server receives nothing
//! at the reveal and its output is `None`: it learns neither the index nor the maximum.

use super::cmp::DEFAULT_DIGIT_BITS;
use super::max::tournament;
use super::shares::{recv_reveal, reveal_to_peer, Ring};
use crate::crypto::iknp::OtPair;
use crate::net::{Channel, NetError, Role};

/// The smallest index of the maximum of the shared vector z, revealed to the client only:
/// `Some(index)` at the client, `None` at the server. Precondition: every entry, read signed,
/// lies in [−2^(ℓ−2), 2^(ℓ−2)) (see the module doc).
pub fn argmax<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    z: &[u64],
) -> Result<Option<usize>, NetError> {
    let n = z.len();
    if n == 0 {
        return Err(NetError::InvalidArgument(
            "argmax: the input vector is empty".to_string(),
        ));
    }
    if (n - 1) as u64 > ring.mask() {
        return Err(NetError::InvalidArgument(format!(
            "argmax: {n} indices do not fit the {}-bit ring",
            ring.bits
        )));
    }
    // The indices as shares: the server holds them (public), the client 0.
    let index: Vec<u64> = match role {
        Role::Server => (0..n as u64).collect(),
        Role::Client => vec![0; n],
    };
    // 4-bit digits: over 50,257 logits the fewest bytes on silent OT (wider digits would save
    // one exchange per level for about 60 bytes more per comparison).
    let (_, idx) = tournament(
        ot,
        ch,
        role,
        ring,
        DEFAULT_DIGIT_BITS,
        z,
        &[n],
        Some(&index),
    )?;
    // One row: one winner.
    let share = idx[0];
    match role {
        Role::Server => {
            reveal_to_peer(ch, ring, &[share])?;
            Ok(None)
        }
        Role::Client => {
            let i = recv_reveal(ch, ring, &[share])?[0];
            if i >= n as u64 {
                return Err(NetError::Malformed(format!(
                    "argmax: revealed index {i} is out of range for {n} entries"
                )));
            }
            Ok(Some(i as usize))
        }
    }
}
