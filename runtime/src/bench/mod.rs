//! Library side of `ciphergpt bench …`: the report shape every bench shares, machine facts, the
//! parties' synchronisation around each measured row, and one module per bench: [`ot`] (the OT
//! flavours), [`protocols`] (the non-linear protocols), [`linear`] (GPT-2's weight products
//! under RLWE, attention's products), [`svole`] (CipherGPT's subfield-VOLE product).
//!
//! Every bench prints a [`BenchReport`]: `{"machine": {...}, "results": [{"name", "count",
//! "seconds", "bytes_sent", "bytes_received", "rounds", "bytes_per_op", "ops_per_second"}]}`.
//! Bytes and rounds are the channel's counts for the reporting party (the server), per scope.

mod linear;
mod ot;
mod protocols;
mod svole;

pub use linear::{linear_bench, LinearBenchOptions, GPT2_DECODE_PRODUCTS, GPT2_LAYERS, GPT2_VOCAB};
pub use ot::{ot_bench, OtBenchOptions};
pub use protocols::{
    protocols_bench, ProtocolBenchOptions, ARGMAX_LEN, LAYERNORM_ROW, SOFTMAX_ROW, TOPK_KS,
};
pub use svole::{svole_bench, SvoleBenchOptions};

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::crypto::block::{unpack_bools, Block};
use crate::crypto::iknp::{CotReceiver, CotSender};
use crate::crypto::pack::mask;
use crate::crypto::prg::Prg;
use crate::crypto::triples::bit_triples;
use crate::crypto::OtPair;
use crate::net::{scoped, Channel, NetError, Role};
use crate::protocols::{Party, ProtocolError};

/// Facts about the machine a bench ran on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MachineInfo {
    pub cpu: String,
    pub cores: usize,
    pub os: String,
    pub arch: String,
    pub aes_ni: bool,
    pub avx2: bool,
    /// How the two parties were connected.
    pub transport: String,
}

/// One measured operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchResult {
    pub name: String,
    pub count: u64,
    pub seconds: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub rounds: u64,
    pub bytes_per_op: f64,
    pub ops_per_second: f64,
    /// A published figure to compare with (from ANCHORS.md), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl BenchResult {
    /// The same result with a published figure beside it.
    pub fn with_reference(mut self, reference: &str) -> BenchResult {
        self.reference = Some(reference.to_string());
        self
    }

    /// A result from a count, a time and the channel's counters for the operation's scope.
    pub fn new(name: &str, count: u64, seconds: f64, c: crate::net::Counters) -> BenchResult {
        BenchResult {
            name: name.to_string(),
            count,
            seconds,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            rounds: c.rounds,
            bytes_per_op: if count == 0 {
                0.0
            } else {
                c.bytes() as f64 / count as f64
            },
            ops_per_second: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
            reference: None,
        }
    }
}

/// What every `ciphergpt bench …` prints (as JSON with `--json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchReport {
    pub machine: MachineInfo,
    pub results: Vec<BenchResult>,
}

impl BenchReport {
    /// A fixed-width table, one line per result.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut s = format!(
            "machine: {} ({} cores, {}/{}, AES-NI {}), {}\n",
            m.cpu,
            m.cores,
            m.os,
            m.arch,
            if m.aes_ni { "yes" } else { "no" },
            m.transport
        );
        s += &format!(
            "{:<22} {:>10} {:>9} {:>14} {:>12} {:>12} {:>8}\n",
            "name", "count", "seconds", "ops/s", "bytes/op", "bytes", "rounds"
        );
        for r in &self.results {
            s += &format!(
                "{:<22} {:>10} {:>9.3} {:>14} {:>12.2} {:>12} {:>8}",
                r.name,
                r.count,
                r.seconds,
                human(r.ops_per_second),
                r.bytes_per_op,
                r.bytes_sent + r.bytes_received,
                r.rounds
            );
            if let Some(reference) = &r.reference {
                s += &format!("   published: {reference}");
            }
            s += "\n";
        }
        s
    }
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.1}")
    }
}

/// Facts about this machine.
pub fn machine_info(transport: &str) -> MachineInfo {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    #[cfg(target_arch = "x86_64")]
    let (aes_ni, avx2) = (
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("avx2"),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (aes_ni, avx2) = (false, false);
    MachineInfo {
        cpu,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        aes_ni,
        avx2,
        transport: transport.into(),
    }
}

/// Largest batch one call extends; keeps memory bounded for any `n`.
const BATCH: usize = 1 << 20;

/// A bench failure: the network, or a result that does not match its definition.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Protocol(#[from] crate::protocols::ProtocolError),
    #[error("verification failed: {0}")]
    Verify(String),
}

/// Synchronise the parties, then start the clock.
fn start<C: Channel + ?Sized>(ch: &mut C, role: Role) -> Result<Instant, NetError> {
    scoped(ch, "sync", |ch| -> Result<(), NetError> {
        if role == Role::Server {
            ch.send(&[1])?;
            ch.flush()
        } else {
            ch.recv_vec(1).map(|_| ())
        }
    })?;
    Ok(Instant::now())
}

/// Wait for the client to finish, stop the clock, and read the scope's counters.
fn finish<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    t: Instant,
    name: &str,
    count: u64,
) -> Result<BenchResult, NetError> {
    scoped(ch, "sync", |ch| -> Result<(), NetError> {
        if role == Role::Server {
            ch.recv_vec(1).map(|_| ())
        } else {
            ch.send(&[2])?;
            ch.flush()
        }
    })?;
    let secs = t.elapsed().as_secs_f64();
    Ok(BenchResult::new(
        name,
        count,
        secs,
        ch.stats().scope_inclusive(name),
    ))
}

/// A protocol's row without the silent-OT batches that ran inside it (whichever row a pool
/// happens to run dry in; the `silent-cot` row has their cost), so that the row is the
/// protocol's own bytes; its seconds stay.
fn without_batches<C: Channel + ?Sized>(ch: &C, r: BenchResult) -> BenchResult {
    let all = crate::net::Counters {
        bytes_sent: r.bytes_sent,
        bytes_received: r.bytes_received,
        rounds: r.rounds,
    };
    let batches = ch
        .stats()
        .nested_leaf(&r.name, crate::crypto::silent::SCOPE);
    BenchResult {
        reference: r.reference.clone(),
        ..BenchResult::new(&r.name, r.count, r.seconds, all.without(&batches))
    }
}
