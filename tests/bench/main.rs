//! `ciphergpt bench`: its rows against the cost formulas.
//! One test binary for the group (one link instead of one per file).

mod errors;
mod linear;
mod protocols;
