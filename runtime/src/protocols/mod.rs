//! Two-party protocols over Z_2^ℓ (ℓ ≤ 64), one per module. Semi-honest security, two parties, no
//! dealer: every correlation (OT, bit triple) is produced by the parties themselves from the OT
//! extension in [`crate::crypto`]. Each module states its cost (bits and flights), its security
//! argument and the paper section it follows; `docs/protocols.md` collects them with measured
//! figures.
//!
//! Conventions shared by all modules: arithmetic shares x = x_S + x_C mod 2^ℓ, boolean shares
//! b = b_S ⊕ b_C; both parties call the same function with their own [`Role`](crate::net::Role)
//! and their own [`OtPair`](crate::crypto::OtPair) on the same channel, in the same order.

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
