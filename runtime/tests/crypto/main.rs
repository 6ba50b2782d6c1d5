//! Cryptographic building blocks: the PPRF, silent OT, and the OT extensions' views.
//! One test binary for the group (one link instead of one per file).

#[path = "../common/mod.rs"]
mod common;

mod ot_views;
mod pprf;
mod silent_ot;
