//! The plan executor: two-party runs against the cleartext simulator.
//! One test binary for the group (one link instead of one per file).

#[path = "../common/mod.rs"]
mod common;

mod lanes;
mod trained;
mod trunc_margin;
