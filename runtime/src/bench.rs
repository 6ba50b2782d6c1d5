//! Library side of `ciphergpt bench …`: the report shape every bench shares, machine facts, and
//! the OT benchmark both parties run.
//!
//! Every bench prints a [`BenchReport`]: `{"machine": {...}, "results": [{"name", "count",
//! "seconds", "bytes_sent", "bytes_received", "rounds", "bytes_per_op", "ops_per_second"}]}`.
//! Bytes and rounds are the channel's counts for the reporting party (the server), per scope.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::crypto::block::{unpack_bools, Block};
use crate::crypto::iknp::{CotReceiver, CotSender};
use crate::crypto::pack::mask;
use crate::crypto::prg::Prg;
use crate::crypto::triples::bit_triples;
use crate::crypto::OtPair;
use crate::net::{scoped, Channel, NetError, Role};
use crate::protocols::ProtocolError;

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

/// Settings of the OT bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct OtBenchOptions {
    /// Number of random correlated OTs; the other flavours run a fraction of it.
    pub n: usize,
    /// After each flavour, reveal the last batch to the server and check it against the
    /// definition (outside the measured scopes).
    pub verify: bool,
}

/// Largest batch one call extends; keeps memory bounded for any `n`.
const BATCH: usize = 1 << 20;

/// Per-flavour state of the last batch, revealed for verification.
enum Last {
    None,
    Blocks(Vec<Block>),
    Pairs(Vec<[Block; 2]>),
    Values(Vec<u64>),
}

/// Run the OT bench as `role` on `ch`; returns the results as this party counts them.
pub fn ot_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &OtBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    let mut rng = Prg::from_entropy();
    let mut results = Vec::new();
    let n = opts.n.max(128);
    let server = role == Role::Server;

    // Base OT: the server is the COT sender, i.e. the base-OT receiver.
    let t = start(ch, role)?;
    let (mut sender, mut receiver) = scoped(ch, "base-ot", |ch| -> Result<_, NetError> {
        Ok(if server {
            (Some(CotSender::setup(ch, &mut rng)?), None)
        } else {
            (None, Some(CotReceiver::setup(ch, &mut rng)?))
        })
    })?;
    results.push(finish(ch, role, t, "base-ot", base_ot_count())?);
    // The reverse direction, not measured.
    scoped(ch, "setup", |ch| -> Result<(), NetError> {
        if server {
            receiver = Some(CotReceiver::setup(ch, &mut rng)?);
        } else {
            sender = Some(CotSender::setup(ch, &mut rng)?);
        }
        Ok(())
    })?;
    let mut pair = OtPair {
        sender: sender.expect("set up above"),
        receiver: receiver.expect("set up above"),
    };

    // Random correlated OT, both directions.
    for (name, server_sends) in [("cot", true), ("cot-reverse", false)] {
        let t = start(ch, role)?;
        let last = scoped(ch, name, |ch| -> Result<Last, NetError> {
            let mut buf = vec![Block::ZERO; BATCH.min(n)];
            let mut choices = Vec::new();
            let mut left = n;
            while left > 0 {
                let m = left.min(BATCH);
                if server == server_sends {
                    pair.sender.send_cot_into(ch, &mut buf[..m])?;
                } else {
                    choices = rng.blocks(m.div_ceil(128));
                    pair.receiver
                        .recv_cot_packed_into(ch, &choices, &mut buf[..m])?;
                }
                left -= m;
            }
            let m = (n - 1) % BATCH + 1;
            buf.truncate(m);
            if server != server_sends {
                let mut v = unpack_bools(&choices, m)
                    .into_iter()
                    .map(|b| Block(b as u128))
                    .collect::<Vec<_>>();
                v.extend(buf);
                return Ok(Last::Blocks(v));
            }
            Ok(Last::Blocks(buf))
        })?;
        results.push(finish(ch, role, t, name, n as u64)?);
        if opts.verify {
            // The flavour's sender checks, with its own Δ.
            verify_cot(ch, server == server_sends, pair.sender.delta(), last)?;
        }
    }

    // Random OT with 128-bit messages.
    let n_rot = n / 2;
    let t = start(ch, role)?;
    let last = scoped(ch, "rot", |ch| -> Result<Last, NetError> {
        let mut last = Last::None;
        let mut left = n_rot;
        while left > 0 {
            let m = left.min(BATCH);
            last = if server {
                Last::Pairs(pair.sender.send_rot_random(ch, m)?)
            } else {
                let (b, v) = pair.receiver.recv_rot_random(ch, m)?;
                Last::Pairs(
                    b.into_iter()
                        .zip(v)
                        .map(|(b, v)| [Block(b as u128), v])
                        .collect(),
                )
            };
            left -= m;
        }
        Ok(last)
    })?;
    results.push(finish(ch, role, t, "rot", n_rot as u64)?);
    if opts.verify {
        verify_pairs(ch, server, last, "rot")?;
    }

    // Correlated OT over Z_2^37 (CrypTFlow2's COT_ℓ), chosen-message OT, 1-of-16 OT.
    let n_ring = n / 4;
    let bits = 37;
    let t = start(ch, role)?;
    let last = scoped(ch, "cot-ring-l37", |ch| -> Result<Last, NetError> {
        let mut last = Last::None;
        let mut left = n_ring;
        while left > 0 {
            let m = left.min(BATCH);
            last = if server {
                let deltas = rng.values(m, bits);
                let xs = pair.sender.send_cot_ring(ch, &deltas, bits)?;
                Last::Values(deltas.into_iter().chain(xs).collect())
            } else {
                let choices = rng.bools(m);
                let ys = pair.receiver.recv_cot_ring(ch, &choices, bits)?;
                Last::Values(choices.iter().map(|&b| b as u64).chain(ys).collect())
            };
            left -= m;
        }
        Ok(last)
    })?;
    results.push(finish(ch, role, t, "cot-ring-l37", n_ring as u64)?);
    if opts.verify {
        verify_ring(ch, server, last, bits)?;
    }

    let n_ot = n / 4;
    let t = start(ch, role)?;
    let last = scoped(ch, "ot-chosen-128", |ch| -> Result<Last, NetError> {
        let mut last = Last::None;
        let mut left = n_ot;
        while left > 0 {
            let m = left.min(BATCH);
            last = if server {
                let msgs: Vec<[Block; 2]> = (0..m).map(|_| [rng.block(), rng.block()]).collect();
                pair.sender.send_ot(ch, &msgs)?;
                Last::Pairs(msgs)
            } else {
                let choices = rng.bools(m);
                let got = pair.receiver.recv_ot(ch, &choices)?;
                Last::Pairs(
                    choices
                        .into_iter()
                        .zip(got)
                        .map(|(b, v)| [Block(b as u128), v])
                        .collect(),
                )
            };
            left -= m;
        }
        Ok(last)
    })?;
    results.push(finish(ch, role, t, "ot-chosen-128", n_ot as u64)?);
    if opts.verify {
        verify_pairs(ch, server, last, "ot-chosen-128")?;
    }

    let n16 = n / 16;
    let (nm, lbits) = (16usize, 2u32);
    let t = start(ch, role)?;
    let last = scoped(ch, "ot-1of16-l2", |ch| -> Result<Last, NetError> {
        let mut last = Last::None;
        let mut left = n16;
        let batch = BATCH / 4;
        while left > 0 {
            let m = left.min(batch);
            last = if server {
                let msgs = rng.values(m * nm, lbits);
                pair.sender.send_1_of_n(ch, &msgs, nm, lbits)?;
                Last::Values(msgs)
            } else {
                let choices: Vec<u32> = rng.values(m, 4).into_iter().map(|c| c as u32).collect();
                let got = pair.receiver.recv_1_of_n(ch, &choices, nm, lbits)?;
                Last::Values(choices.iter().map(|&c| c as u64).chain(got).collect())
            };
            left -= m;
        }
        Ok(last)
    })?;
    results.push(finish(ch, role, t, "ot-1of16-l2", n16 as u64)?);
    if opts.verify {
        verify_1_of_n(ch, server, last, nm)?;
    }

    let n_tr = n / 4;
    let t = start(ch, role)?;
    let triples = scoped(ch, "bit-triples", |ch| {
        bit_triples(&mut pair, ch, role, n_tr)
    })?;
    results.push(finish(ch, role, t, "bit-triples", n_tr as u64)?);
    if opts.verify {
        scoped(ch, "verify", |ch| -> Result<(), BenchError> {
            let words = triples.a.len();
            if server {
                let mut theirs = vec![0u64; 3 * words];
                for v in theirs.iter_mut() {
                    *v = ch.recv_u64()?;
                }
                for i in 0..words {
                    let a = triples.a[i] ^ theirs[i];
                    let b = triples.b[i] ^ theirs[words + i];
                    let c = triples.c[i] ^ theirs[2 * words + i];
                    if c != a & b {
                        return Err(BenchError::Verify(format!("bit triple word {i}")));
                    }
                }
            } else {
                for v in triples.a.iter().chain(&triples.b).chain(&triples.c) {
                    ch.send_u64(*v)?;
                }
                ch.flush()?;
            }
            Ok(())
        })?;
    }
    Ok(results)
}

fn base_ot_count() -> u64 {
    crate::crypto::iknp::KAPPA as u64
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

fn send_last<C: Channel + ?Sized>(ch: &mut C, last: &Last) -> Result<(), NetError> {
    match last {
        Last::None => ch.send_u64(0)?,
        Last::Blocks(v) => {
            ch.send_u64(v.len() as u64)?;
            ch.send_blocks(v)?;
        }
        Last::Pairs(v) => {
            ch.send_u64(v.len() as u64)?;
            for p in v {
                ch.send_blocks(p)?;
            }
        }
        Last::Values(v) => {
            ch.send_u64(v.len() as u64)?;
            ch.send_packed(v, 64)?;
        }
    }
    ch.flush()
}

fn recv_len<C: Channel + ?Sized>(ch: &mut C, want: usize) -> Result<(), BenchError> {
    let got = ch.recv_u64()? as usize;
    if got != want {
        return Err(BenchError::Verify(format!(
            "the client revealed {got} items, expected {want}"
        )));
    }
    Ok(())
}

/// Receiver side reveals (b_i, M_i); the sender checks M_i = K_i ⊕ b_i·Δ.
fn verify_cot<C: Channel + ?Sized>(
    ch: &mut C,
    i_am_sender: bool,
    delta: Block,
    last: Last,
) -> Result<(), BenchError> {
    let Last::Blocks(mine) = last else {
        return Err(BenchError::Verify("no COT output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !i_am_sender {
            // Our Δ is the peer's: reveal choices and outputs; the peer checks.
            return Ok(send_last(ch, &Last::Blocks(mine))?);
        }
        let m = mine.len();
        recv_len(ch, 2 * m)?;
        let mut theirs = vec![Block::ZERO; 2 * m];
        ch.recv_blocks(&mut theirs)?;
        for i in 0..m {
            let b = theirs[i].0 == 1;
            if theirs[m + i] != mine[i] ^ delta.and_bit(b) {
                return Err(BenchError::Verify(format!("COT {i} of the last batch")));
            }
        }
        Ok(())
    })
}

/// Pairs flavours: the server holds (m_0, m_1), the client ([b], m_b).
fn verify_pairs<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    last: Last,
    what: &str,
) -> Result<(), BenchError> {
    let Last::Pairs(mine) = last else {
        return Err(BenchError::Verify("no output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            return Ok(send_last(ch, &Last::Pairs(mine))?);
        }
        recv_len(ch, mine.len())?;
        for (i, p) in mine.iter().enumerate() {
            let mut t = [Block::ZERO; 2];
            ch.recv_blocks(&mut t)?;
            if t[0].0 > 1 || t[1] != p[t[0].0 as usize] {
                return Err(BenchError::Verify(format!("{what} {i} of the last batch")));
            }
        }
        Ok(())
    })
}

fn verify_ring<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    last: Last,
    bits: u32,
) -> Result<(), BenchError> {
    let Last::Values(mine) = last else {
        return Err(BenchError::Verify("no output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            return Ok(send_last(ch, &Last::Values(mine))?);
        }
        recv_len(ch, mine.len())?;
        let theirs = ch.recv_packed(mine.len(), 64)?;
        let m = mine.len() / 2;
        let (deltas, xs) = mine.split_at(m);
        for i in 0..m {
            let want = xs[i].wrapping_add(deltas[i].wrapping_mul(theirs[i])) & mask(bits);
            if theirs[m + i] != want {
                return Err(BenchError::Verify(format!(
                    "ring COT {i} of the last batch"
                )));
            }
        }
        Ok(())
    })
}

fn verify_1_of_n<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    last: Last,
    nm: usize,
) -> Result<(), BenchError> {
    let Last::Values(mine) = last else {
        return Err(BenchError::Verify("no output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            return Ok(send_last(ch, &Last::Values(mine))?);
        }
        let m = mine.len() / nm;
        recv_len(ch, 2 * m)?;
        let theirs = ch.recv_packed(2 * m, 64)?;
        for i in 0..m {
            let c = theirs[i] as usize;
            if c >= nm || theirs[m + i] != mine[i * nm + c] {
                return Err(BenchError::Verify(format!(
                    "1-of-{nm} OT {i} of the last batch"
                )));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mem;
    use std::time::Duration;

    #[test]
    fn ot_bench_runs_and_verifies_in_memory() {
        let (mut a, mut b) = mem::pair(Duration::from_secs(30));
        let opts = OtBenchOptions {
            n: 5000,
            verify: true,
        };
        let o2 = opts.clone();
        let h = std::thread::spawn(move || ot_bench(&mut b, Role::Client, &o2).unwrap());
        let res = ot_bench(&mut a, Role::Server, &opts).unwrap();
        h.join().unwrap();
        let names: Vec<&str> = res.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "base-ot",
                "cot",
                "cot-reverse",
                "rot",
                "cot-ring-l37",
                "ot-chosen-128",
                "ot-1of16-l2",
                "bit-triples"
            ]
        );
        let cot = &res[1];
        assert_eq!(cot.count, 5000);
        // 5000 OTs pad to 5120: 16 bytes each from the client.
        assert_eq!(cot.bytes_received, 16 * 5120);
        assert_eq!(cot.bytes_sent, 0);
        assert_eq!(res[0].bytes_sent, 32 * 128);
        let report = BenchReport {
            machine: machine_info("in-memory"),
            results: res,
        };
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "name",
            "count",
            "seconds",
            "bytes_sent",
            "bytes_received",
            "rounds",
            "bytes_per_op",
            "ops_per_second",
        ] {
            assert!(json["results"][0].get(key).is_some(), "{key}");
        }
        assert!(report.table().contains("ot-1of16-l2"));
    }
}

/// Settings of the protocols bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct ProtocolBenchOptions {
    /// Elements per protocol.
    pub n: usize,
    /// Ring width ℓ.
    pub ring_bits: u32,
    /// Fractional bits f of the fixed-point protocols (GELU, softmax, LayerNorm), as in a plan.
    pub frac_bits: u32,
}

/// Entries of a softmax row in the bench (GPT-2 small's context in CipherGPT's evaluation).
pub const SOFTMAX_ROW: usize = 256;
/// Entries of a LayerNorm row in the bench (GPT-2 small's width).
pub const LAYERNORM_ROW: usize = 768;
/// Entries of the argmax in the bench (GPT-2's vocabulary).
pub const ARGMAX_LEN: usize = 50_257;
/// The K of the top-K sampling rows (over [`ARGMAX_LEN`] logits).
pub const TOPK_KS: [usize; 3] = [1, 50, 100];

/// Run the non-linear protocols bench as `role` on `ch`: each protocol on `n` random shared
/// elements in its own channel scope, after one OT setup in both directions (reported apart).
pub fn protocols_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &ProtocolBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    use crate::protocols::{
        argmax::argmax,
        b2a::b2a,
        cmp::drelu,
        gelu::{self, gelu},
        layernorm::layernorm,
        mul::mul,
        mux::mux,
        shares::Ring,
        softmax::softmax,
        topk::{sample, topk, Temperature, TopKParams},
        trunc::trunc,
    };
    use ciphergpt_compiler::fixed::lower::{GELU_PIECES_LOG2, SCORE_FRAC_MAX};
    use ciphergpt_compiler::fixed::semantics;
    use ciphergpt_compiler::plan::Sample;
    let mut rng = Prg::from_entropy();
    let ring = Ring::new(opts.ring_bits)?;
    let n = opts.n as u64;
    let mut results = Vec::new();
    let t = start(ch, role)?;
    let mut ot = scoped(ch, "ot-setup", |ch| OtPair::setup(ch, role, &mut rng))?;
    results.push(finish(ch, role, t, "ot-setup", 1)?);
    // Silent random COT, server → client, on a pair of its own from scratch (base OTs and
    // bootstrapping batches included): the 531,984 COTs of the small batches, then whole main
    // batches of 10,198,341 (1 at n < 2^15, up to 3 at n ≥ 2^15), amortised.
    let main_batches = (opts.n >> 14).clamp(1, 3);
    let n_cot = 531_984 + main_batches * 10_198_341;
    let t = start(ch, role)?;
    scoped(ch, "silent-cot", |ch| -> Result<(), NetError> {
        let mut p = OtPair::setup(ch, role, &mut rng)?;
        let mut buf = vec![Block::ZERO; BATCH];
        let mut left = n_cot;
        while left > 0 {
            let m = left.min(BATCH);
            if role == Role::Server {
                p.sender.send_cot_random_into(ch, &mut buf[..m])?;
            } else {
                p.receiver.recv_cot_random(ch, m)?;
            }
            left -= m;
        }
        Ok(())
    })?;
    let r = finish(ch, role, t, "silent-cot", n_cot as u64)?;
    results.push(r.with_reference("Ferret: 0.44 bit/COT, 2 flights per batch; IKNP 128 bit/COT"));
    let x = ring.random(&mut rng, opts.n);
    let y = ring.random(&mut rng, opts.n);
    let bits: Vec<bool> = rng.bools(opts.n);
    let l = opts.ring_bits;
    // Each protocol runs in a scope of its own name; `finish` reads that scope's counters.
    let mut measure = |ch: &mut C,
                       name: String,
                       reference: Option<&str>,
                       count: u64,
                       body: &mut dyn FnMut(&mut C, &mut OtPair) -> Result<(), ProtocolError>|
     -> Result<(), BenchError> {
        let t = start(ch, role)?;
        scoped(ch, &name, |ch| body(ch, &mut ot))?;
        let r = finish(ch, role, t, &name, count)?;
        let r = without_batches(ch, r);
        results.push(match reference {
            Some(text) => r.with_reference(text),
            None => r,
        });
        Ok(())
    };
    measure(ch, format!("product-l{l}"), None, n, &mut |ch, ot| {
        mul(ot, ch, role, ring, &x, &y).map(drop)
    })?;
    measure(
        ch,
        format!("comparison-l{l}"),
        Some("Cheetah ≈51 B (ℓ=37); CrypTFlow2 ≈657 B; SPU 127 B (FM64)"),
        n,
        &mut |ch, ot| drelu(ot, ch, role, ring, &x).map(drop),
    )?;
    // Truncation by 12 bits (CipherGPT's scale), exact: floor(x / 2^12).
    if l > 12 {
        measure(
            ch,
            format!("truncation-l{l}-s12"),
            Some("Cheetah faithful 724 bit ≈ 91 B (ℓ=37, s=12); CrypTFlow2 ≈ 7.4 kbit"),
            n,
            &mut |ch, ot| trunc(ot, ch, role, ring, 12, &x).map(drop),
        )?;
    }
    measure(ch, format!("b2a-l{l}"), None, n, &mut |ch, ot| {
        b2a(ot, ch, role, ring, &bits).map(drop)
    })?;
    measure(ch, format!("mux-l{l}"), None, n, &mut |ch, ot| {
        mux(ot, ch, role, ring, &bits, &x).map(drop)
    })?;

    // Per-row protocols: the count is rows, so bytes/op is per row. Inputs are small random
    // fixed-point values (the costs do not depend on them).
    let f = opts.frac_bits;
    let small = |rng: &mut Prg, len: usize| -> Vec<u64> {
        use rand::RngCore;
        let k = (f + 4).min(ring.bits - 3);
        (0..len)
            .map(|_| ring.from_signed((rng.next_u64() >> (63 - k)) as i64 - (1i64 << k)))
            .collect()
    };
    let gelu_t = semantics::fit_gelu(f, 2, GELU_PIECES_LOG2, semantics::GeluForm::Tanh)
        .map_err(|e| NetError::InvalidArgument(format!("bench gelu: {e}")))?;
    let gx = small(&mut rng, opts.n);
    measure(
        ch,
        format!("gelu-l{l}-f{f}"),
        Some("CipherGPT ≈730 B (2^20 in 30.6 s, 765 MB; ℓ=37, f=12, 64 pieces); SPU 2,840 B"),
        n,
        &mut |ch, ot| gelu(ot, ch, role, ring, &gelu_t, &gx).map(drop),
    )?;
    // The same GELU on a correlation prepared ahead (one-hot vectors and triples): the
    // preparation and the online part apart.
    let mut prepared = None;
    measure(
        ch,
        format!("gelu-prepare-l{l}-f{f}"),
        None,
        n,
        &mut |ch, ot| {
            prepared = Some(gelu::prepare(ot, ch, role, ring, &gelu_t, opts.n)?);
            Ok(())
        },
    )?;
    let prepared = prepared.ok_or_else(|| NetError::InvalidArgument("bench gelu".into()))?;
    measure(
        ch,
        format!("gelu-prepared-l{l}-f{f}"),
        Some("online part only; CipherGPT ≈730 B"),
        n,
        &mut |ch, ot| gelu::gelu_prepared(ot, ch, role, ring, &gelu_t, &gx, &prepared, 0).map(drop),
    )?;
    // Softmax over rows of 256 with the plan's tables: scores at min(f, 12) fractional bits,
    // exponentials at f + 2, probabilities at f.
    let sm_rows = (opts.n / SOFTMAX_ROW).max(1);
    let sm_t = semantics::fit_exp_tables(f.min(SCORE_FRAC_MAX), f + 2, f)
        .map_err(|e| NetError::InvalidArgument(format!("bench softmax: {e}")))?;
    let scores = small(&mut rng, sm_rows * SOFTMAX_ROW);
    let lens = vec![SOFTMAX_ROW; sm_rows];
    measure(
        ch,
        format!("softmax-row{SOFTMAX_ROW}-l{l}"),
        Some("CipherGPT ≈353 B/entry (3,332 MB / 144 rows·256²); SPU 4,150 B/entry"),
        sm_rows as u64,
        &mut |ch, ot| softmax(ot, ch, role, ring, &sm_t, &scores, &lens).map(drop),
    )?;
    let ln_rows = (opts.n / LAYERNORM_ROW).max(1);
    let ln = semantics::layernorm_params(LAYERNORM_ROW, 1e-5, f, 50.0)
        .map_err(|e| NetError::InvalidArgument(format!("bench layernorm: {e}")))?;
    let xs = small(&mut rng, ln_rows * LAYERNORM_ROW);
    measure(
        ch,
        format!("layernorm-row{LAYERNORM_ROW}-l{l}"),
        Some("CipherGPT ≈330 B/entry (1,625 MB / 25·256 rows of 768)"),
        ln_rows as u64,
        &mut |ch, ot| layernorm(ot, ch, role, ring, &ln, &xs).map(drop),
    )?;
    let z = small(&mut rng, ARGMAX_LEN);
    measure(
        ch,
        format!("argmax-{ARGMAX_LEN}-l{l}"),
        Some("CipherGPT top-100 of 50,257: 136 MB, 3.3 s (top-k, not argmax)"),
        1,
        &mut |ch, ot| argmax(ot, ch, role, ring, &z).map(drop),
    )?;
    // Top-K sampling over the vocabulary (CipherGPT §V–VI): shuffle, selection, one draw at
    // T = 0.8 from the softmax of the K survivors (tables at the plan's scales).
    let fs = f.min(SCORE_FRAC_MAX);
    let sample_t = semantics::fit_exp_tables(fs, f + 2, f)
        .map_err(|e| NetError::InvalidArgument(format!("bench top-k: {e}")))?;
    let temp = Temperature {
        mul: Temperature::from_f64(0.8)?.mul,
        shift: Sample::TEMPERATURE_FRAC + f - fs,
    };
    for k in TOPK_KS {
        measure(
            ch,
            format!("topk{k}-{ARGMAX_LEN}-l{l}"),
            (k == 100).then_some("CipherGPT top-100 of 50,257: 3,281 ms, 136 MB"),
            1,
            &mut |ch, ot| {
                let top = topk(ot, ch, role, ring, &z, k, &TopKParams::default())?;
                sample(ot, ch, role, ring, &top, temp, &sample_t, 1).map(drop)
            },
        )?;
    }
    Ok(results)
}

/// Settings of the linear-layer bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct LinearBenchOptions {
    /// Ring width ℓ.
    pub ring_bits: u32,
    /// Weights are uniform in ±2^(weight_bits − 1).
    pub weight_bits: u32,
    /// Include the vocabulary projection 1×768·768×50,257 (620 MB of encoded weights).
    pub logits: bool,
    /// Rows of the prefill product T×768·768×768 (0: skip it).
    pub prefill_rows: usize,
    /// After each product, the client reveals its shares and the server checks x·W + b
    /// (outside the measured scopes).
    pub verify: bool,
}

/// GPT-2 small's weight products in each layer of a decode step: (name, K, N).
pub const GPT2_DECODE_PRODUCTS: [(&str, usize, usize); 4] = [
    ("qkv", 768, 2304),
    ("attn-out", 768, 768),
    ("fc1", 768, 3072),
    ("fc2", 3072, 768),
];
/// GPT-2 small's layers and vocabulary.
pub const GPT2_LAYERS: usize = 12;
pub const GPT2_VOCAB: usize = 50_257;

/// Run the linear-layer bench as `role` on `ch`: the HE setup, then for each GPT-2-small shape
/// the server's one-time weight encoding (its own row) and one product on random shares with
/// random weights; then the decode step's weight products in total (12 layers of the four
/// products, plus the logits when measured), summed from the rows.
pub fn linear_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &LinearBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    use crate::crypto::rlwe::HeSession;
    use crate::protocols::linear::{linear, EncodedWeights, Packing};
    use crate::protocols::shares::Ring;
    use rand::Rng;
    let ring = Ring::new(opts.ring_bits)?;
    let l = opts.ring_bits;
    let server = role == Role::Server;
    let mut rng = Prg::from_entropy();
    let mut results = Vec::new();
    let t = start(ch, role)?;
    let he = scoped(ch, "he-setup", |ch| HeSession::setup(ch, role))?;
    results.push(
        finish(ch, role, t, "he-setup", 1)?
            .with_reference("the client's public key, once per session"),
    );
    let cheetah = "Cheetah FC 2048→1001: 111 ms, 1.83 MB (Table 5)";
    let svole = "CipherGPT sVOLE, 48 products × 256 rows: 1,091 MB, 211.9 s per token";
    // (short name, row name, T, K, N, published figures)
    let mut shapes: Vec<(String, String, usize, usize, usize, String)> = GPT2_DECODE_PRODUCTS
        .iter()
        .map(|&(name, k, n)| {
            (
                name.to_string(),
                format!("{name}-1x{k}x{n}-l{l}"),
                1,
                k,
                n,
                format!("{svole}; {cheetah}"),
            )
        })
        .collect();
    if opts.logits {
        shapes.push((
            "logits".into(),
            format!("logits-1x768x{GPT2_VOCAB}-l{l}"),
            1,
            768,
            GPT2_VOCAB,
            "CipherGPT HE (QKᵀ, SV, vocabulary): 490 MB, 194.2 s per token in all".into(),
        ));
    }
    if opts.logits {
        shapes.push((
            "embedding".into(),
            format!("embedding-1x{GPT2_VOCAB}x768-l{l}"),
            1,
            GPT2_VOCAB,
            768,
            "the client's one-hot token row times the table; CipherGPT: the server's \
             encrypted table, sent once"
                .into(),
        ));
    }
    if opts.prefill_rows > 0 {
        shapes.push((
            format!("prefill{}", opts.prefill_rows),
            format!("prefill{}-768x768-l{l}", opts.prefill_rows),
            opts.prefill_rows,
            768,
            768,
            "CipherGPT sVOLE 256×768·768×768: 1,462 ms, 8.2 MB amortised over 256 tokens \
             (Fig. 3); Iron 2.3× and 3.7× that"
                .into(),
        ));
    }
    let wb = 1i64 << (opts.weight_bits - 1);
    let mut measured: Vec<(String, BenchResult)> = Vec::new();
    for (short, name, t_rows, k, n, reference) in shapes {
        let packing = Packing::new(ring, k, n, opts.weight_bits, t_rows)?;
        // The server's one-time encoding of the weights.
        let enc_name = format!("encode-{short}");
        let w: Vec<i64> = if server {
            (0..k * n).map(|_| rng.gen_range(-wb..=wb)).collect()
        } else {
            Vec::new()
        };
        let t = start(ch, role)?;
        let enc = if server {
            Some(EncodedWeights::new(&packing, &w)?)
        } else {
            None
        };
        let r = finish(ch, role, t, &enc_name, 1)?;
        let mem = enc.as_ref().map_or(0, |e| e.bytes());
        results.push(r.with_reference(&format!(
            "server, once per model: {} polynomials, {:.1} MB \
             (n_i {}, n_o {}, {} rows/ct, {} limb(s), k = {})",
            mem / (2 * 4096 * 8),
            mem as f64 / 1e6,
            packing.n_i,
            packing.n_o,
            packing.rows_per_ct,
            packing.limbs,
            packing.out.k
        )));
        let x = ring.random(&mut rng, t_rows * k);
        let bias: Vec<i64> = (0..n).map(|_| rng.gen_range(-wb..=wb)).collect();
        let lname = name.clone();
        let t = start(ch, role)?;
        let y = scoped(ch, &lname, |ch| {
            linear(
                &he,
                ch,
                role,
                ring,
                &packing,
                &x,
                t_rows,
                enc.as_ref().map(|e| (e, &bias[..])),
            )
        })?;
        let r = finish(ch, role, t, &lname, 1)?;
        let c = packing.cost(t_rows);
        results.push(r.clone().with_reference(&format!(
            "{} cts up, {} down, {} pt×ct; {reference}",
            c.cts_up, c.cts_down, c.products
        )));
        measured.push((short, r));
        drop(enc);
        if opts.verify {
            verify_linear(ch, server, ring, &x, &y, &w, &bias, t_rows, k, n)?;
        }
    }
    // One decode step's weight products: 12 layers of the four, plus the logits if measured.
    let sum = |short: &str, times: u64| -> (f64, crate::net::Counters) {
        let mut s = (0.0, crate::net::Counters::default());
        for (name, r) in &measured {
            if name == short {
                s.0 += r.seconds * times as f64;
                s.1.bytes_sent += r.bytes_sent * times;
                s.1.bytes_received += r.bytes_received * times;
                s.1.rounds += r.rounds * times;
            }
        }
        s
    };
    let mut total = (0.0, crate::net::Counters::default());
    for (name, _, _) in GPT2_DECODE_PRODUCTS {
        let (s, c) = sum(name, GPT2_LAYERS as u64);
        total.0 += s;
        total.1.add(&c);
    }
    let (s, c) = sum("logits", 1);
    total.0 += s;
    total.1.add(&c);
    results.push(
        BenchResult::new("decode-step-weights", 1, total.0, total.1).with_reference(&format!(
            "sum of the rows: {GPT2_LAYERS} × (qkv, attn-out, fc1, fc2){}",
            if opts.logits { " + logits" } else { "" }
        )),
    );

    // Attention of one layer against a 256-row cache (12 heads of 64), in steady state: the
    // caches' encryptions are prepared (offline), the first 255 rows re-shared by an earlier
    // step, and the measured step adds row 256.
    use crate::protocols::attention_he::{self, AttnLayout, DuplexHe, Operand, SharedCache};
    let he = scoped(ch, "he-duplex", |ch| DuplexHe::extend(he, ch))?;
    let (heads, d, rows) = (12usize, 64usize, 256usize);
    let c = heads * d;
    let mut kc = SharedCache::new(AttnLayout::new(ring, Operand::Keys, heads, d, rows)?);
    let mut vc = SharedCache::new(AttnLayout::new(ring, Operand::Values, heads, d, rows)?);
    let t = start(ch, role)?;
    scoped(ch, "attention-prepare", |ch| -> Result<(), ProtocolError> {
        attention_he::prepare(&he, ch, role, ring, &mut kc, rows)?;
        attention_he::prepare(&he, ch, role, ring, &mut vc, rows)
    })?;
    results.push(
        finish(ch, role, t, "attention-prepare", 1)?.with_reference(&format!(
            "offline, one layer's key and value caches for {rows} rows (ahead of the tokens)"
        )),
    );
    let keys = ring.random(&mut rng, rows * c);
    let values = ring.random(&mut rng, rows * c);
    let q = ring.random(&mut rng, c);
    let p_earlier = ring.random(&mut rng, heads * (rows - 1));
    let p = ring.random(&mut rng, heads * rows);
    scoped(ch, "attention-warmup", |ch| -> Result<(), ProtocolError> {
        attention_he::qk_t(
            &he,
            ch,
            role,
            ring,
            &mut kc,
            &q,
            &keys[..(rows - 1) * c],
            1,
            true,
        )?;
        attention_he::pv(
            &he,
            ch,
            role,
            ring,
            &mut vc,
            &p_earlier,
            &values[..(rows - 1) * c],
            1,
            true,
        )
        .map(drop)
    })?;
    let mut att = (0.0, crate::net::Counters::default());
    for (name, is_keys) in [("qkt", true), ("pv", false)] {
        let row = format!("attention-{name}-12x64-{rows}rows-l{l}");
        let t = start(ch, role)?;
        scoped(ch, &row, |ch| -> Result<(), ProtocolError> {
            if is_keys {
                attention_he::qk_t(&he, ch, role, ring, &mut kc, &q, &keys, 1, true).map(drop)
            } else {
                attention_he::pv(&he, ch, role, ring, &mut vc, &p, &values, 1, true).map(drop)
            }
        })?;
        let r = finish(ch, role, t, &row, 1)?;
        att.0 += r.seconds * GPT2_LAYERS as f64;
        att.1.bytes_sent += r.bytes_sent * GPT2_LAYERS as u64;
        att.1.bytes_received += r.bytes_received * GPT2_LAYERS as u64;
        att.1.rounds += r.rounds * GPT2_LAYERS as u64;
        results.push(r.with_reference(
            "one layer, one decode step; research projection 1.19 MB per layer for both",
        ));
    }
    let (es, ec) = sum("embedding", 1);
    total.0 += att.0 + es;
    total.1.add(&att.1);
    total.1.add(&ec);
    results.push(
        BenchResult::new("decode-step-total", 1, total.0, total.1).with_reference(&format!(
            "decode-step-weights + {GPT2_LAYERS} × attention (q·Kᵀ, P·V){}; issue 6's target: \
             < 5 s and < 100 MB",
            if opts.logits { " + embedding" } else { "" }
        )),
    );
    Ok(results)
}

/// The client reveals x_C and y_C; the server checks y_S + y_C = x·W + b mod 2^ℓ.
#[allow(clippy::too_many_arguments)]
fn verify_linear<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    ring: crate::protocols::shares::Ring,
    x: &[u64],
    y: &[u64],
    w: &[i64],
    bias: &[i64],
    t: usize,
    k: usize,
    n: usize,
) -> Result<(), BenchError> {
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            ch.send_packed(x, ring.bits)?;
            ch.send_packed(y, ring.bits)?;
            return Ok(ch.flush()?);
        }
        let xc = ch.recv_packed(x.len(), ring.bits)?;
        let yc = ch.recv_packed(y.len(), ring.bits)?;
        let x = ring.add_vec(x, &xc);
        let y = ring.add_vec(y, &yc);
        for r in 0..t {
            let mut acc: Vec<i128> = bias.iter().map(|&b| b as i128).collect();
            for i in 0..k {
                let xi = ring.to_signed(x[r * k + i]) as i128;
                for (a, &wv) in acc.iter_mut().zip(&w[i * n..(i + 1) * n]) {
                    *a += xi * wv as i128;
                }
            }
            for (c, a) in acc.into_iter().enumerate() {
                if y[r * n + c] != (a as u64) & ring.mask() {
                    return Err(BenchError::Verify(format!(
                        "linear {t}×{k}·{k}×{n}: output ({r}, {c})"
                    )));
                }
            }
        }
        Ok(())
    })
}

/// Settings of the subfield-VOLE product bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct SvoleBenchOptions {
    /// Ring width ℓ.
    pub ring_bits: u32,
    /// Weights are uniform in ±2^(weight_bits − 1).
    pub weight_bits: u32,
    /// Input rows per iteration (n), the weight's rows (m) and columns (k).
    pub rows: usize,
    pub inner: usize,
    pub cols: usize,
    /// Iterations prepared together (t): the correlation covers t·n rows.
    pub iterations: usize,
    /// After the online products, the client reveals its shares of the first iteration and the
    /// server checks them against x·Y (outside the measured scopes).
    pub verify: bool,
}

/// Run the sVOLE product bench as `role` on `ch`: silent-OT setup, the preparation of t·n rows
/// for one m × k weight (with its phases' bytes), then t online products of n rows, and the
/// amortised cost per iteration beside CipherGPT's.
pub fn svole_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &SvoleBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    use crate::protocols::masked_matmul;
    use crate::protocols::shares::Ring;
    use crate::protocols::svole_matmul::{self, SvoleParams};
    use rand::Rng;
    let ring = Ring::new(opts.ring_bits)?;
    let (n, m, k, t) = (opts.rows, opts.inner, opts.cols, opts.iterations);
    let server = role == Role::Server;
    let mut rng = Prg::from_entropy();
    let mut results = Vec::new();
    let params = SvoleParams::new(ring, n * t, m, k)?;
    let cost = params.cost(ring)?;
    let t0 = start(ch, role)?;
    let mut ot = scoped(ch, "ot-setup", |ch| OtPair::setup(ch, role, &mut rng))?;
    results.push(finish(ch, role, t0, "ot-setup", 1)?);
    let wb = 1i64 << (opts.weight_bits - 1);
    let w: Vec<i64> = if server {
        (0..m * k).map(|_| rng.gen_range(-wb..wb)).collect()
    } else {
        Vec::new()
    };
    let shape = format!("{n}x{m}x{k}-t{t}-l{}", opts.ring_bits);
    let prep = format!("svole-prepare-{shape}");
    let t0 = start(ch, role)?;
    let mut corr = scoped(ch, &prep, |ch| {
        svole_matmul::prepare(&mut ot, ch, role, ring, params, server.then_some(&w[..]))
    })?;
    let prepared = finish(ch, role, t0, &prep, 1)?;
    results.push(prepared.clone().with_reference(&format!(
        "{} rows, noise weight {}, {} limbs, {} noise values per ciphertext",
        n * t,
        params.noise,
        params.limbs,
        params.per_ct
    )));
    for (phase, formula) in [
        ("keys", cost.keys_down),
        ("products", cost.products_up),
        ("trees", 0),
        ("corrections", cost.corrections_down),
    ] {
        let c = ch.stats().scope_inclusive(&format!("{prep}/{phase}"));
        let note = if phase == "trees" {
            format!("{} chosen-message OTs (silent)", cost.tree_ots)
        } else {
            format!("formula {formula} bytes")
        };
        results.push(
            BenchResult::new(&format!("  {phase}"), 1, 0.0, c)
                .with_reference(&format!("part of the preparation: {note}")),
        );
    }
    let online = format!("svole-online-{n}x{m}x{k}");
    let mut first: Option<(Vec<u64>, Vec<u64>)> = None;
    let t0 = start(ch, role)?;
    for _ in 0..t {
        let x = if server {
            Vec::new()
        } else {
            ring.random(&mut rng, n * m)
        };
        let y = scoped(ch, &online, |ch| {
            masked_matmul::multiply(
                ch,
                role,
                ring,
                &mut corr,
                (!server).then_some(&x[..]),
                server.then_some(&w[..]),
                n,
            )
        })?;
        if first.is_none() {
            first = Some((x, y));
        }
    }
    let on = finish(ch, role, t0, &online, t as u64)?;
    results.push(on.clone().with_reference(&format!(
        "per iteration: the client's masked input, {} bytes",
        cost.online_per_row * n
    )));
    let mut total = prepared.clone();
    total.seconds += on.seconds;
    total.bytes_sent += on.bytes_sent;
    total.bytes_received += on.bytes_received;
    total.rounds += on.rounds;
    let c = crate::net::Counters {
        bytes_sent: total.bytes_sent,
        bytes_received: total.bytes_received,
        rounds: total.rounds,
    };
    results.push(
        BenchResult::new(
            &format!("svole-per-iteration-{shape}"),
            t as u64,
            total.seconds,
            c,
        )
        .with_reference(
            "amortised (preparation + online) / t; CipherGPT 256×768·768×768 at t = 256: \
                 1,462 ms, 8.2 MB (Fig. 3)",
        ),
    );
    if opts.verify {
        if let Some((x, y)) = first {
            scoped(ch, "verify", |ch| -> Result<(), BenchError> {
                if !server {
                    ch.send_packed(&x, ring.bits)?;
                    ch.send_packed(&y, ring.bits)?;
                    return Ok(ch.flush()?);
                }
                let x = ch.recv_packed(n * m, ring.bits)?;
                let yc = ch.recv_packed(n * k, ring.bits)?;
                for r in 0..n {
                    for c in 0..k {
                        let mut acc = 0u64;
                        for i in 0..m {
                            acc = acc.wrapping_add(x[r * m + i].wrapping_mul(w[i * k + c] as u64));
                        }
                        if ring.add(y[r * k + c], yc[r * k + c]) != ring.reduce(acc) {
                            return Err(BenchError::Verify(format!(
                                "svole {n}×{m}·{m}×{k}: output ({r}, {c})"
                            )));
                        }
                    }
                }
                Ok(())
            })?;
        }
    }
    Ok(results)
}
