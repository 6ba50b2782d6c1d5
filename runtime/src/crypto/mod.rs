//! Cryptographic building blocks: 128-bit blocks, AES-CTR PRG, fixed-key-AES hashes, base OT,
//! IKNP OT extension and silent OT from LPN ([`silent`], the default; correlated, random and
//! chosen-message OT, both directions), 1-out-of-N OT,
//! Beaver bit triples, the quasi-cyclic dual-LPN code of the subfield VOLE ([`qc_code`]) and RLWE linear homomorphic encryption ([`rlwe`]). Security: 128-bit
//! computational, 40-bit statistical.

pub mod base_ot;
pub mod block;
pub mod hash;
pub mod iknp;
pub mod lpn;
pub mod one_of_n;
pub mod ot;
pub mod pack;
pub mod pprf;
pub mod prg;
pub mod qc_code;
pub mod rlwe;
pub mod silent;
pub mod transpose;
pub mod triples;

pub use block::Block;
pub use iknp::{CotBackend, CotReceiver, CotSender, OtPair};
pub use prg::Prg;
