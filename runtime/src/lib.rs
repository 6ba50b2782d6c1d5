//! ciphergpt runtime: the channel between the two parties, the cryptographic building blocks
//! (PRG, hashing, base OT, OT extension) and, later, the two-party protocols and the plan executor.
//!
//! Only little-endian targets are supported: blocks and packed values cross the wire in their
//! in-memory (little-endian) byte order.

// Tests index several parallel vectors by OT number; that reads best as an index loop.
#![cfg_attr(test, allow(clippy::needless_range_loop))]

#[cfg(not(target_endian = "little"))]
compile_error!("ciphergpt-runtime supports little-endian targets only");

pub mod bench;
pub mod crypto;
pub mod exec;
pub mod net;
pub mod protocols;
pub mod session;
#[doc(hidden)]
pub mod testing;

pub use crypto::block::Block;
pub use net::{Channel, Counters, NetError, Role, Stats};
