//! The `ciphergpt` command, run as processes: front end, plans, `serve`/`generate`, reports,
//! `fuzz`.
//! One test binary for the group (one link instead of one per file).

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod front_end;
mod fuzz;
mod generate;
mod lanes;
mod plan;
mod prepared;
mod relay;
mod report;
mod sampling;
mod tls;
mod validate;
