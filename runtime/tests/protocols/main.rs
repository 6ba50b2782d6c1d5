//! Two-party protocols, each against the integer semantics of `fixed::semantics` or a plain
//! computation, with their bytes and flights against the formulas.
//! One test binary for the group (one link instead of one per file).

#[path = "../common/mod.rs"]
mod common;

mod attention_he;
mod b2a_mux;
mod cmp;
mod div_sqrt;
mod gelu;
mod inverse;
mod layernorm;
mod linear;
mod lut;
mod masked_matmul;
mod matmul;
mod max_argmax;
mod mul;
mod onehot;
mod shares;
mod shuffle;
mod softmax;
mod svole_matmul;
mod topk;
mod trunc;
