//! Arithmetic secret shares over Z_2^ℓ (1 ≤ ℓ ≤ 64): the ring, sharing, revealing, local linear
//! operations and the ℓ-bit packed wire format.
//!
//! A value x ∈ Z_2^ℓ is held as x = x_S + x_C mod 2^ℓ (S = server, C = client). Values live in
//! `u64`, always reduced (bits ≥ ℓ are zero); the signed lift maps [2^(ℓ−1), 2^ℓ) to negatives,
//! matching `ciphergpt_compiler::fixed::semantics::{to_ring_u64, from_ring_u64}`.
//!
//! **Protocols** (the standard additive sharing, e.g. CrypTFlow2 §2.2 / SIRNN §II "notation"):
//!
//! - [`share`] / [`recv_share`]: the owner draws r uniformly from Z_2^ℓ with a fresh PRG, keeps
//!   x − r and sends r to the peer. Cost: ℓ bits per element, one flight (owner → peer).
//! - [`reveal_to_peer`] / [`recv_reveal`]: the party that does *not* learn sends its share; the
//!   learner adds it to its own. Cost: ℓ bits per element, one flight. Only the learner receives
//!   anything, so only it learns the value.
//! - [`Ring::add_vec`], [`Ring::sub_vec`], [`Ring::scale_vec`], [`add_public`]: local, free.
//!
//! **Security.** The peer of [`share`] receives r, uniform in Z_2^ℓ and independent of x (a fresh
//! PRG output: 128-bit computational). In [`reveal_to_peer`] the learner receives the other share,
//! which together with its own is exactly x — that is what revealing means; the non-learner
//! receives nothing.
//!
//! **Wire format.** Ring elements cross the wire bit-packed, ℓ bits each
//! ([`crate::crypto::pack`]); [`pack_widths`] / [`unpack_widths`] pack elements of per-element
//! widths (used by the multiplication protocol, whose OT messages shrink with the bit index).

use rand::RngCore;

use super::ProtocolError;
use crate::crypto::pack::mask;
pub use crate::crypto::pack::{pack_widths, packed_len_widths, unpack_widths};
use crate::net::{Channel, Role};

/// The ring Z_2^ℓ, 1 ≤ ℓ ≤ 64, on `u64` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ring {
    pub bits: u32,
}

impl Ring {
    /// Z_2^bits; an error unless 1 ≤ bits ≤ 64.
    pub fn new(bits: u32) -> Result<Ring, ProtocolError> {
        if (1..=64).contains(&bits) {
            Ok(Ring { bits })
        } else {
            Err(ProtocolError::Invalid(format!(
                "ring bit width {bits} is not in 1..=64"
            )))
        }
    }
    /// 2^ℓ − 1.
    #[inline]
    pub fn mask(self) -> u64 {
        mask(self.bits)
    }
    /// x mod 2^ℓ.
    #[inline]
    pub fn reduce(self, x: u64) -> u64 {
        x & self.mask()
    }
    #[inline]
    pub fn add(self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b) & self.mask()
    }
    #[inline]
    pub fn sub(self, a: u64, b: u64) -> u64 {
        a.wrapping_sub(b) & self.mask()
    }
    #[inline]
    pub fn neg(self, a: u64) -> u64 {
        a.wrapping_neg() & self.mask()
    }
    #[inline]
    pub fn mul(self, a: u64, b: u64) -> u64 {
        a.wrapping_mul(b) & self.mask()
    }
    /// The most significant bit (bit ℓ − 1).
    #[inline]
    pub fn msb(self, a: u64) -> bool {
        (a >> (self.bits - 1)) & 1 == 1
    }
    /// The ring element of a signed integer (two's complement mod 2^ℓ).
    #[inline]
    pub fn from_signed(self, v: i64) -> u64 {
        (v as u64) & self.mask()
    }
    /// The signed lift: [0, 2^(ℓ−1)) ↦ itself, [2^(ℓ−1), 2^ℓ) ↦ negatives.
    #[inline]
    pub fn to_signed(self, a: u64) -> i64 {
        let s = 64 - self.bits;
        ((a << s) as i64) >> s
    }
    /// Elementwise a + b.
    pub fn add_vec(self, a: &[u64], b: &[u64]) -> Vec<u64> {
        assert_eq!(a.len(), b.len(), "length mismatch");
        a.iter().zip(b).map(|(&x, &y)| self.add(x, y)).collect()
    }
    /// Elementwise a − b.
    pub fn sub_vec(self, a: &[u64], b: &[u64]) -> Vec<u64> {
        assert_eq!(a.len(), b.len(), "length mismatch");
        a.iter().zip(b).map(|(&x, &y)| self.sub(x, y)).collect()
    }
    /// Elementwise c · a for a public scalar c.
    pub fn scale_vec(self, c: u64, a: &[u64]) -> Vec<u64> {
        a.iter().map(|&x| self.mul(c, x)).collect()
    }
    /// Uniform random elements.
    pub fn random<R: RngCore + ?Sized>(self, rng: &mut R, n: usize) -> Vec<u64> {
        (0..n).map(|_| rng.next_u64() & self.mask()).collect()
    }
}

/// Add a public vector to a shared one: only the server adds it, so the shares still sum right.
pub fn add_public(ring: Ring, role: Role, share: &[u64], public: &[u64]) -> Vec<u64> {
    match role {
        Role::Server => ring.add_vec(share, public),
        Role::Client => share.iter().map(|&x| ring.reduce(x)).collect(),
    }
}

/// Send ring elements, ℓ bits each.
pub fn send_ring<C: Channel + ?Sized>(
    ch: &mut C,
    ring: Ring,
    v: &[u64],
) -> Result<(), ProtocolError> {
    if v.is_empty() {
        return Ok(());
    }
    Ok(ch.send_packed(v, ring.bits)?)
}

/// Receive `n` ring elements, ℓ bits each.
pub fn recv_ring<C: Channel + ?Sized>(
    ch: &mut C,
    ring: Ring,
    n: usize,
) -> Result<Vec<u64>, ProtocolError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    Ok(ch.recv_packed(n, ring.bits)?)
}

/// The owner's side of sharing `values`: sends a fresh random share to the peer, returns its own.
pub fn share<C: Channel + ?Sized, R: RngCore + ?Sized>(
    ch: &mut C,
    ring: Ring,
    rng: &mut R,
    values: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let r = ring.random(rng, values.len());
    send_ring(ch, ring, &r)?;
    ch.flush()?;
    Ok(values
        .iter()
        .zip(&r)
        .map(|(&x, &r)| ring.sub(x, r))
        .collect())
}

/// The peer's side of [`share`]: receives its share of `n` values.
pub fn recv_share<C: Channel + ?Sized>(
    ch: &mut C,
    ring: Ring,
    n: usize,
) -> Result<Vec<u64>, ProtocolError> {
    recv_ring(ch, ring, n)
}

/// Reveal shared values to the peer only: sends this party's share.
pub fn reveal_to_peer<C: Channel + ?Sized>(
    ch: &mut C,
    ring: Ring,
    share: &[u64],
) -> Result<(), ProtocolError> {
    send_ring(ch, ring, share)?;
    Ok(ch.flush()?)
}

/// Learn shared values: receives the peer's share and adds it to `share`.
pub fn recv_reveal<C: Channel + ?Sized>(
    ch: &mut C,
    ring: Ring,
    share: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let other = recv_ring(ch, ring, share.len())?;
    Ok(ring.add_vec(share, &other))
}

/// Reveal to `learner`; both parties call this, and the learner gets `Some(values)`.
pub fn reveal<C: Channel + ?Sized>(
    ch: &mut C,
    ring: Ring,
    role: Role,
    learner: Role,
    share: &[u64],
) -> Result<Option<Vec<u64>>, ProtocolError> {
    if role == learner {
        recv_reveal(ch, ring, share).map(Some)
    } else {
        reveal_to_peer(ch, ring, share).map(|_| None)
    }
}

/// Largest message that [`exchange`] sends simultaneously with the peer. Both parties writing at
/// once is only safe while the message fits in the transport's buffers (TCP: 256 KiB of user
/// buffer plus the kernel's), or both would block writing.
pub const EXCHANGE_SIMULTANEOUS_MAX: usize = 32 << 10;

/// Both parties send `mine` and receive the peer's message of the same length. Up to
/// [`EXCHANGE_SIMULTANEOUS_MAX`] bytes both send at once (one flight each way, overlapping: one
/// one-way latency); longer messages go one after the other, server first (two flights, one
/// round trip), so that the two never write large messages at the same time.
pub fn exchange<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    mine: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    let mut theirs = vec![0u8; mine.len()];
    if mine.is_empty() {
        return Ok(theirs);
    }
    if mine.len() <= EXCHANGE_SIMULTANEOUS_MAX || role == Role::Server {
        ch.send(mine)?;
        ch.flush()?;
        ch.recv(&mut theirs)?;
    } else {
        ch.recv(&mut theirs)?;
        ch.send(mine)?;
        ch.flush()?;
    }
    Ok(theirs)
}

/// Opens values to both parties: each sends its `mine` (value k of `widths[k]` bits, packed) in
/// one [`exchange`], and both get the sums mine + theirs mod 2^widths\[k\]. The caller sends
/// only values masked by randomness the peer does not know (a Beaver opening, an offset from a
/// random index), so that the sum is all the peer learns.
pub fn open<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    widths: &[u32],
    mine: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let theirs = unpack_widths(&exchange(ch, role, &pack_widths(mine, widths))?, widths);
    Ok(mine
        .iter()
        .zip(theirs)
        .zip(widths)
        .map(|((&a, b), &w)| a.wrapping_add(b) & mask(w))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn ring_arithmetic_and_signed_lift() {
        for bits in [1u32, 16, 37, 63, 64] {
            let r = Ring::new(bits).unwrap();
            let half = 1u64 << (bits - 1);
            assert_eq!(r.to_signed(0), 0);
            assert_eq!(r.to_signed(half), -(half as i128) as i64);
            assert_eq!(r.to_signed(half - 1), (half - 1) as i64);
            assert_eq!(r.to_signed(r.mask()), -1);
            assert_eq!(r.from_signed(-1), r.mask());
            assert_eq!(r.add(r.mask(), 1), 0);
            assert_eq!(r.sub(0, 1), r.mask());
            assert_eq!(r.neg(1), r.mask());
            assert!(r.msb(half) && !r.msb(half - 1));
            let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(bits as u64);
            for _ in 0..1000 {
                let a: i64 = rng.gen::<i64>() >> (64 - bits);
                let b: i64 = rng.gen::<i64>() >> (64 - bits);
                let (ua, ub) = (r.from_signed(a), r.from_signed(b));
                assert_eq!(r.to_signed(ua), a);
                let m = |x: i128| (x as u64) & r.mask();
                assert_eq!(r.add(ua, ub), m(a as i128 + b as i128));
                assert_eq!(r.mul(ua, ub), m(a as i128 * b as i128));
            }
        }
        assert!(Ring::new(0).is_err() && Ring::new(65).is_err());
    }

    #[test]
    fn width_packing_roundtrips() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(7);
        for n in [0usize, 1, 5, 64, 1000] {
            let widths: Vec<u32> = (0..n).map(|_| rng.gen_range(0..=64)).collect();
            let v: Vec<u64> = widths
                .iter()
                .map(|&w| {
                    if w == 0 {
                        0
                    } else {
                        rng.gen::<u64>() & mask(w)
                    }
                })
                .collect();
            let p = pack_widths(&v, &widths);
            assert_eq!(p.len(), packed_len_widths(&widths));
            assert_eq!(unpack_widths(&p, &widths), v);
        }
    }
}
