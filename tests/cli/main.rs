//! The `ciphergpt` command, run as processes: front end, plans, `serve`/`generate` (and their
//! end-to-end matrix), OT between two `bench ot` processes, reports, `fuzz`.
//! One test binary for the group (one link instead of one per file).

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod front_end;
mod fuzz;
mod generate;
mod matrix;
mod ot_two_process;
mod plan;
mod relay;
mod report;
mod sampling;
mod tls;
mod validate;
