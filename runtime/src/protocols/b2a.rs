//! Boolean to arithmetic conversion: XOR shares of a bit b = b_S ⊕ b_C become additive shares of
//! b ∈ {0, 1} ⊂ Z_2^ℓ, with one correlated OT over Z_2^ℓ. CrypTFlow2 §4.1 (the B2A step of its
//! ReLU/truncation, "one call to (2 1)-COT_ℓ") and SIRNN §III-A (Π_B2A); Cheetah §2.3 uses it too.
//!
//! **Protocol.** b = b_S + b_C − 2·b_S·b_C over the integers. The server is the COT sender with
//! correlation Δ = b_S; the client chooses b_C and gets y = t + b_C·b_S, the server keeps t. Then
//! the server's share is b_S + 2t and the client's is b_C − 2y; they sum to b_S + b_C − 2·b_S·b_C.
//!
//! **Cost** per bit: one COT_ℓ = λ + ℓ bits (16 bytes client → server, ℓ bits server → client,
//! plus IKNP's padding to 128), 2 flights. At ℓ = 37: 20.6 bytes. [`b2a_by`] lets either party
//! choose (the product b_S·b_C is symmetric): after a comparison its last sender does, and the
//! conversion adds one flight.
//!
//! **Security** (semi-honest). The server receives only the IKNP message u (PRG-masked, IKNP §3),
//! independent of b_C. The client receives d = t + b_S − H(K ⊕ Δ) mod 2^ℓ: if b_C = 0 the pad
//! H(K ⊕ Δ) is pseudorandom to it (tweakable correlation-robust hash, 128-bit); if b_C = 1 it
//! learns t + b_S, masked by t = H(K), which it cannot compute. Its output y is therefore uniform
//! and independent of b_S; the server's t is uniform on its own.

use super::shares::Ring;
use super::{Party, ProtocolError};
use crate::crypto::pack::mask;
use crate::net::{Channel, Role};

/// Arithmetic shares in Z_2^ℓ of the bits whose XOR shares are `b` (this party's shares).
pub fn b2a<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    b: &[bool],
) -> Result<Vec<u64>, ProtocolError> {
    b2a_by(party, Role::Client, ring, b)
}

/// [`b2a`] with `chooser` as the COT's receiver: the party that sent the step before it, so
/// that its choices leave in that flight.
pub fn b2a_by<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    chooser: Role,
    ring: Ring,
    b: &[bool],
) -> Result<Vec<u64>, ProtocolError> {
    let t = bit_products_by(party, chooser, ring, b)?;
    Ok(b.iter()
        .zip(t)
        .map(|(&x, t)| ring.sub(x as u64, t.wrapping_mul(2)))
        .collect())
}

/// Additive shares in Z_2^ℓ of b_S·b_C for the server's bits b_S and the client's b_C (each
/// party passes its own): one COT over Z_2^ℓ per bit, the server as sender with correlation b_S,
/// the client choosing b_C. The server's share is −t, the client's t + b_S·b_C. [`b2a`] and the
/// wrap of an MSB-known extension (`trunc::extend_nonnegative`) are both built on it.
pub fn bit_products<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    b: &[bool],
) -> Result<Vec<u64>, ProtocolError> {
    bit_products_by(party, Role::Client, ring, b)
}

/// [`bit_products`] with `chooser` as the COT's receiver (the product is symmetric: the
/// sender's share is −t, the chooser's t + b_S·b_C).
pub fn bit_products_by<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    chooser: Role,
    ring: Ring,
    b: &[bool],
) -> Result<Vec<u64>, ProtocolError> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    if party.role == chooser {
        Ok(party.ot.receiver.recv_cot_ring(party.ch, b, ring.bits)?)
    } else {
        let deltas: Vec<u64> = b.iter().map(|&x| x as u64).collect();
        let t = party
            .ot
            .sender
            .send_cot_ring(party.ch, &deltas, ring.bits)?;
        Ok(t.into_iter().map(|t| ring.neg(t)).collect())
    }
}

/// [`bit_products_by`] with a ring Z_2^(widths\[i\]) per bit, in one call: independent B2As
/// and extensions share its 2 flights, each paying its own width.
pub fn bit_products_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    chooser: Role,
    widths: &[u32],
    b: &[bool],
) -> Result<Vec<u64>, ProtocolError> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    if party.role == chooser {
        Ok(party.ot.receiver.recv_cot_ring_each(party.ch, b, widths)?)
    } else {
        let deltas: Vec<u64> = b.iter().map(|&x| x as u64).collect();
        let t = party
            .ot
            .sender
            .send_cot_ring_each(party.ch, &deltas, widths)?;
        Ok(t.into_iter()
            .zip(widths)
            .map(|(t, &w)| t.wrapping_neg() & mask(w))
            .collect())
    }
}
