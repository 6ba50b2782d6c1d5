//! `ciphergpt fuzz`: the parsers under mutated inputs (see docs/fuzzing.md).

use anyhow::Context;
use ciphergpt_compiler::fuzz::{self, targets, Kind, Target};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Every target: the compiler's parsers, then the session messages and the peer's RLWE keys.
const ALL: &[&str] = &[
    "onnx",
    "dsl",
    "ir",
    "plan",
    "weights",
    "safetensors",
    "wire",
    "rlwe",
];

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// The parser: onnx, dsl, ir, plan, weights, safetensors, wire, rlwe, or all.
    pub target: String,
    /// Inputs to run (per target).
    #[arg(long, default_value_t = 100_000)]
    pub iterations: u64,
    /// The run's seed: with an input's index, it fixes the input.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The first input's index (`--start I --iterations 1` makes input I again).
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Threads.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// An input slower than this many milliseconds is a finding.
    #[arg(long, default_value_t = 2_000)]
    pub slow_ms: u64,
    /// Write inputs that break the property to this folder.
    #[arg(long, value_name = "DIR", default_value = "fuzz-findings")]
    pub save: PathBuf,
    /// The repository whose fixtures are the seeds (models/, examples/, compiler/tests/passes/).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,
    /// Run one saved input, without catching a panic (its message and backtrace print).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Address space of the process, in MiB: an allocation beyond it aborts the run, which
    /// then prints the inputs in flight (0: no limit).
    #[arg(long, value_name = "MIB", default_value_t = 8192)]
    pub max_memory: u64,
}

/// The run's seed, for the abort message.
static SEED: AtomicU64 = AtomicU64::new(0);

/// `v` in decimal, at the end of `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// On SIGABRT (a failed allocation aborts the process): the indices of the inputs in flight
/// and the seed, on stderr. Only what a signal handler may do: no allocation, one write(2).
extern "C" fn on_abort(_: libc::c_int) {
    let mut out = [0u8; 1024];
    let mut n = 0;
    let mut put = |b: &[u8]| {
        for &c in b {
            if n < out.len() {
                out[n] = c;
                n += 1;
            }
        }
    };
    let mut digits = [0u8; 20];
    put(b"fuzz: the process aborted; inputs in flight:");
    for slot in &fuzz::IN_FLIGHT {
        let v = slot.load(Ordering::Relaxed);
        if v != 0 {
            put(b" ");
            put(decimal(v - 1, &mut digits));
        }
    }
    put(b" of seed ");
    put(decimal(SEED.load(Ordering::Relaxed), &mut digits));
    put(b" (make it again with --start INDEX --iterations 1)\n");
    // SAFETY: write(2) is async-signal-safe; the buffer is ours and `n` bytes long.
    unsafe {
        libc::write(2, out.as_ptr().cast(), n);
    }
}

/// Cap the address space and report the inputs in flight on an abort.
fn guard_memory(mib: u64, seed: u64) -> anyhow::Result<()> {
    SEED.store(seed, Ordering::Relaxed);
    // SAFETY: installs a handler that only reads atomics and calls write(2).
    unsafe {
        libc::signal(
            libc::SIGABRT,
            on_abort as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    if mib == 0 {
        return Ok(());
    }
    let bytes = mib.saturating_mul(1 << 20) as libc::rlim_t;
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: a valid rlimit for this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        anyhow::bail!("--max-memory {mib}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Inputs between two progress lines.
const CHUNK: u64 = 10_000;

/// [`fuzz::run`] in chunks of [`CHUNK`] inputs, with a progress line on stderr after each (a
/// long run stopped early still tells how far it went).
fn run_in_chunks(t: &Target, options: &fuzz::Options) -> fuzz::Report {
    let mut total = fuzz::Report::default();
    while total.inputs < options.iterations {
        let part = fuzz::Options {
            start: options.start + total.inputs,
            iterations: CHUNK.min(options.iterations - total.inputs),
            ..options.clone()
        };
        total.absorb(fuzz::run(t, &part));
        eprintln!(
            "{}: {} of {} inputs (indices {}..{}), {} accepted, {} findings, {:.0?}",
            t.name,
            total.inputs,
            options.iterations,
            options.start,
            options.start + total.inputs,
            total.accepted,
            total.failures,
            total.elapsed
        );
    }
    total
}

fn target(name: &str, args: &FuzzArgs) -> anyhow::Result<Target> {
    if name == "wire" {
        return Ok(ciphergpt_runtime::net::wire::fuzz::target());
    }
    if name == "rlwe" {
        return Ok(ciphergpt_runtime::crypto::rlwe::fuzz::target());
    }
    std::fs::create_dir_all(&args.save)
        .with_context(|| format!("{}: cannot create the folder", args.save.display()))?;
    Ok(targets::by_name(name, &args.root, &args.save)?)
}

pub fn run(args: FuzzArgs) -> anyhow::Result<()> {
    let names: Vec<&str> = match args.target.as_str() {
        "all" => ALL.to_vec(),
        t if ALL.contains(&t) => vec![t],
        t => anyhow::bail!(
            "no fuzz target {t}; hint: one of {}, or all",
            ALL.join(", ")
        ),
    };
    if let Some(file) = &args.replay {
        let t = target(names[0], &args)?;
        let input = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
        return match (t.check)(&input) {
            Ok(v) => {
                println!("{}: {v:?}", file.display());
                Ok(())
            }
            Err(broken) => anyhow::bail!("{}: {broken}", file.display()),
        };
    }
    guard_memory(args.max_memory, args.seed)?;
    let options = fuzz::Options {
        seed: args.seed,
        start: args.start,
        iterations: args.iterations,
        jobs: args.jobs,
        slow: Duration::from_millis(args.slow_ms),
        save: Some(args.save.clone()),
        ..Default::default()
    };
    let mut failures = 0;
    for name in names {
        let t = target(name, &args)?;
        let r = run_in_chunks(&t, &options);
        println!(
            "{name:<12} {:>10} inputs  {:>5.1}% accepted  {:>9.0} inputs/s  slowest {:>7.1?} (input {})  {} findings",
            r.inputs,
            100.0 * r.accepted as f64 / r.inputs.max(1) as f64,
            r.inputs as f64 / r.elapsed.as_secs_f64(),
            r.slowest,
            r.slowest_index,
            r.failures,
        );
        for f in &r.findings {
            let kind = match f.kind {
                Kind::Panic => "panic",
                Kind::Broken => "broken",
                Kind::Slow => "slow",
            };
            let saved = f
                .saved
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string());
            println!(
                "  input {} ({} bytes, {saved}): {kind}: {}",
                f.index, f.len, f.message
            );
        }
        failures += r.failures;
    }
    anyhow::ensure!(
        failures == 0,
        "{failures} inputs broke the parsers' property"
    );
    Ok(())
}
