//! Multiplexer: shares of b·x for a bit b in XOR shares and x ∈ Z_2^ℓ in additive shares, with
//! two correlated OTs over Z_2^ℓ, one in each direction. CrypTFlow2 §4.1 (the ReLU's
//! multiplexer, there with two 1-out-of-2 OTs) in the COT form of SIRNN §III-C ("Π_MUX" with
//! 2 COT_ℓ); Cheetah §2.3 lists the same cost.
//!
//! **Protocol.** b·x = (b_S ⊕ b_C)·x_S + (b_S ⊕ b_C)·x_C, and (b_S ⊕ b_C)·v = b_S·v + b_C·(1 − 2b_S)·v.
//! For the first term the server is the COT sender with correlation Δ = (1 − 2b_S)·x_S; the client
//! chooses b_C and gets y = t + b_C·Δ; the server's part is b_S·x_S − t, the client's is y. The
//! second term is the same with the roles swapped. Each party adds its two parts.
//!
//! **Cost** per element: 2 COT_ℓ = 2(λ + ℓ) bits, 3 flights (C→S u; S→C d and u'; C→S d');
//! [`mux_by`] with the server first mirrors them, so after a step the server sent last the
//! first flight continues that step's and the multiplexer adds 2.
//! At ℓ = 37: 41.25 bytes.
//!
//! **Security** (semi-honest). Each party is the COT receiver once and sender once. As receiver
//! it gets d = t + Δ − H(K ⊕ Δ) and outputs y = t + c·Δ: with choice 0 the pad H(K ⊕ Δ) is
//! pseudorandom to it, with choice 1 it learns t + Δ, masked by t = H(K), which it cannot compute
//! (tweakable correlation-robust hash, 128-bit). So y is uniform and independent of the peer's
//! Δ (which carries the peer's b and x shares). As sender it receives only IKNP's PRG-masked
//! message u. The output shares are uniform on their own, because t is fresh per OT.

use super::shares::Ring;
use super::{Party, ProtocolError};
use crate::net::{Channel, Role};

/// This party's share of b·x (`b`: XOR shares of the bits, `x`: additive shares in Z_2^ℓ).
pub fn mux<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    b: &[bool],
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    mux_by(party, Role::Client, ring, b, x)
}

/// [`mux`] whose first COT is chosen by `first` (the client in [`mux`]): the party that sent
/// the step before it, so that its choices leave in that flight and the multiplexer takes 2
/// flights after it instead of 3.
pub fn mux_by<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    ring: Ring,
    b: &[bool],
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if b.len() != x.len() {
        return Err(ProtocolError::Invalid(format!(
            "mux: {} selector bits for {} values",
            b.len(),
            x.len()
        )));
    }
    if b.is_empty() {
        return Ok(Vec::new());
    }
    // Δ = (1 − 2b)·x: x if b = 0, −x if b = 1.
    let deltas: Vec<u64> = b
        .iter()
        .zip(x)
        .map(|(&c, &v)| if c { ring.neg(v) } else { ring.reduce(v) })
        .collect();
    let own = |t: Vec<u64>| -> Vec<u64> {
        b.iter()
            .zip(x)
            .zip(t)
            .map(|((&c, &v), t)| ring.sub(if c { v } else { 0 }, t))
            .collect()
    };
    let (mine, theirs) = if party.role == first {
        let y = party.ot.receiver.recv_cot_ring(party.ch, b, ring.bits)?;
        let t = party
            .ot
            .sender
            .send_cot_ring(party.ch, &deltas, ring.bits)?;
        (own(t), y)
    } else {
        let t = party
            .ot
            .sender
            .send_cot_ring(party.ch, &deltas, ring.bits)?;
        let y = party.ot.receiver.recv_cot_ring(party.ch, b, ring.bits)?;
        (own(t), y)
    };
    Ok(ring.add_vec(&mine, &theirs))
}
