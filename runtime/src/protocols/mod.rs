//! Two-party protocols over Z_2^ℓ (ℓ ≤ 64), one per module. Semi-honest security, two parties, no
//! dealer: every correlation (OT, bit triple) is produced by the parties themselves from the OT
//! extension in [`crate::crypto`]. Each module states its cost (bits and flights), its security
//! argument and the paper section it follows; `docs/protocols.md` collects them with measured
//! figures.
//!
//! Conventions shared by all modules: arithmetic shares x = x_S + x_C mod 2^ℓ, boolean shares
//! b = b_S ⊕ b_C; both parties call the same function with their own [`Party`] (role, OT
//! extension, end of the channel), in the same order. The RLWE products ([`linear`],
//! [`attention_he`], [`masked_matmul::prepare_rlwe`]) take the session's RLWE keys, the channel
//! and the role instead.

pub mod argmax;
pub mod attention_he;
pub mod b2a;
pub mod cmp;
pub mod div;
pub mod gelu;
pub mod inverse;
pub mod layernorm;
pub mod linear;
pub mod lut;
pub mod masked_matmul;
pub mod matmul;
pub mod max;
pub mod mul;
pub mod mux;
pub mod onehot;
pub mod shares;
pub mod shuffle;
pub mod softmax;
pub mod sqrt;
pub mod svole_matmul;
pub mod topk;
pub mod trunc;

use crate::crypto::OtPair;
use crate::net::{scoped, Channel, NetError, Role};

/// A correlation made in the preparation for one protocol's online calls: a stock of units
/// (rows of a weight product or a LayerNorm, elements of a GELU, scores of a softmax) that the
/// online calls use in order, each unit once. It counts what it has used itself; both parties'
/// counts are equal (they are public). The calls on several lanes read it at offsets from
/// [`used`](PreparedCorrelation::used) and the caller then [`consume`](PreparedCorrelation::consume)s
/// what they took; a weight product consumes its rows itself.
pub trait PreparedCorrelation {
    /// Units it was made for.
    fn units(&self) -> usize;
    /// Units used so far.
    fn used(&self) -> usize;
    /// The count of units used, which only [`consume`](PreparedCorrelation::consume) changes.
    fn used_mut(&mut self) -> &mut usize;
    /// Bytes this party holds for it.
    fn footprint(&self) -> usize;
    /// Units not yet used.
    fn remaining(&self) -> usize {
        self.units() - self.used()
    }
    /// Marks `n` more units used (at most the remaining ones).
    fn consume(&mut self, n: usize) {
        let n = n.min(self.remaining());
        *self.used_mut() += n;
    }
}

/// One party's end of a two-party protocol: its role, its channel to the peer and its OT
/// correlations (the sender and receiver of [`OtPair`], extended on that channel). Every protocol
/// built on OT takes one; both parties call the same protocol with their own, in the same order.
/// A protocol that needs another ring, or another party first, takes those as arguments of its
/// own: they are the protocol's, not the party's.
pub struct Party<'a, C: Channel + ?Sized> {
    pub ot: &'a mut OtPair,
    pub ch: &'a mut C,
    pub role: Role,
}

impl<'a, C: Channel + ?Sized> Party<'a, C> {
    pub fn new(ot: &'a mut OtPair, ch: &'a mut C, role: Role) -> Party<'a, C> {
        Party { ot, ch, role }
    }

    /// `f` on this party with its channel's traffic counted under `name` ([`scoped`]).
    pub fn scoped<R>(&mut self, name: &str, f: impl FnOnce(&mut Party<'_, C>) -> R) -> R {
        let (ot, role) = (&mut *self.ot, self.role);
        scoped(&mut *self.ch, name, |ch| f(&mut Party::new(ot, ch, role)))
    }
}

/// A protocol's error: the network's (a timeout, a vanished or malformed peer), or a call that
/// breaks the protocol's preconditions (shapes, widths, parameters): the caller's fault, found
/// before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Net(NetError),
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// The channel's and the OT and RLWE layers' errors; their own broken preconditions
/// (`NetError::InvalidArgument`: a width, a count, a parameter) stay preconditions.
impl From<NetError> for ProtocolError {
    fn from(e: NetError) -> ProtocolError {
        match e {
            NetError::InvalidArgument(m) => ProtocolError::Invalid(m),
            other => ProtocolError::Net(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_precondition_below_stays_a_precondition_and_the_network_stays_the_network() {
        let e = ProtocolError::from(NetError::InvalidArgument("ring of 45 bits".into()));
        assert!(
            matches!(&e, ProtocolError::Invalid(m) if m == "ring of 45 bits"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "invalid argument: ring of 45 bits");
        let e = ProtocolError::from(NetError::Disconnected {
            what: "receiving".into(),
        });
        assert!(
            matches!(e, ProtocolError::Net(NetError::Disconnected { .. })),
            "{e:?}"
        );
        assert!(e
            .to_string()
            .starts_with("the peer disconnected while receiving"));
    }
}
