//! `ciphergpt bench …`: measurements between two processes on loopback.
//!
//! By default a bench runs both roles: this process is the server, and it starts a copy of itself
//! as the client (`--role client --connect ADDR`). `--role server|client` runs one side only, for
//! two terminals or two hosts. Every bench prints a table, or with `--json` the shared
//! [`BenchReport`] JSON (to stdout, or to the file given).

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use ciphergpt_runtime::bench::{
    linear_bench, machine_info, ot_bench, protocols_bench, svole_bench, BenchReport,
    LinearBenchOptions, OtBenchOptions, ProtocolBenchOptions, SvoleBenchOptions,
};
use ciphergpt_runtime::net::{tcp, Role, SessionConfig};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Oblivious transfer: base OT, correlated/random/chosen-message OT, 1-of-16 OT, bit triples.
    Ot(OtArgs),
    /// Two-party protocols on shares: product, comparison (DReLU), truncation, B2A, MUX, and per
    /// GPT-2 row LayerNorm (768), argmax and top-K sampling (K = 1, 50, 100) over 50,257.
    Protocols(ProtocolsArgs),
    /// Weight × activation under RLWE for the GPT-2-small shapes (decode step, logits, prefill),
    /// with the one-time weight encoding and the decode step's weight products in total.
    Linear(LinearArgs),
    /// CipherGPT's subfield-VOLE matrix product: the preparation of t iterations of an
    /// n×m·m×k product (before the inputs exist), then the t online products, amortised.
    Svole(SvoleArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum RoleArg {
    Server,
    Client,
}

/// Options every two-party bench shares.
#[derive(Args, Debug, Clone)]
pub struct PartyArgs {
    /// Run one side only (default: both, as two processes on loopback).
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// Address the server listens on (with --role server).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Address of the server (with --role client).
    #[arg(long)]
    pub connect: Option<String>,
    /// Seconds a party waits for its peer (connect, each receive or send) before giving up
    /// [default: 60; for `svole`, 60 plus 16 per 10^9 multiply-adds of its preparation, which
    /// one party computes while the other waits: 678 at its defaults].
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Print the JSON report instead of the table: to stdout, or to the given file.
    #[arg(long, num_args = 0..=1, default_missing_value = "-", value_name = "FILE")]
    pub json: Option<String>,
    /// Plan hash to announce in the handshake (64 hex digits; for testing the handshake).
    #[arg(long, hide = true)]
    pub plan_hash: Option<String>,
}

#[derive(Args, Debug)]
pub struct OtArgs {
    /// Number of random correlated OTs (the other flavours run a fraction: ROT 1/2,
    /// ring COT, chosen OT and triples 1/4, 1-of-16 OT 1/16).
    #[arg(long, default_value_t = 1 << 23)]
    pub n: usize,
    /// Check each flavour's last batch against its definition (outside the timings).
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub party: PartyArgs,
}

#[derive(Args, Debug)]
pub struct ProtocolsArgs {
    /// Elements per protocol.
    #[arg(long, default_value_t = 1 << 16)]
    pub n: usize,
    /// Ring width ℓ.
    #[arg(long, default_value_t = 37)]
    pub ring_bits: u32,
    /// Fractional bits of GELU, softmax and LayerNorm (CipherGPT's 12; our plans use 15 at ℓ = 38).
    #[arg(long, default_value_t = 12)]
    pub frac_bits: u32,
    #[command(flatten)]
    pub party: PartyArgs,
}

#[derive(Args, Debug)]
pub struct LinearArgs {
    /// Ring width ℓ (16..=44).
    #[arg(long, default_value_t = 37)]
    pub ring_bits: u32,
    /// Weights uniform in ±2^(bits − 1).
    #[arg(long, default_value_t = 16)]
    pub weight_bits: u32,
    /// Skip the vocabulary projection 1×768·768×50,257 (its encoded weights take 620 MB).
    #[arg(long)]
    pub no_logits: bool,
    /// Rows of the prefill product T×768·768×768 (0 skips it).
    #[arg(long, default_value_t = 256)]
    pub prefill_rows: usize,
    /// Reveal each product to the server and check it against x·W + b (outside the timings).
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub party: PartyArgs,
}

#[derive(Args, Debug)]
pub struct SvoleArgs {
    /// Ring width ℓ (16..=44).
    #[arg(long, default_value_t = 37)]
    pub ring_bits: u32,
    /// Weights uniform in ±2^(bits − 1).
    #[arg(long, default_value_t = 16)]
    pub weight_bits: u32,
    /// Input rows per iteration (n).
    #[arg(long, default_value_t = 256)]
    pub rows: usize,
    /// The weight's rows (m).
    #[arg(long, default_value_t = 768)]
    pub inner: usize,
    /// The weight's columns (k).
    #[arg(long, default_value_t = 768)]
    pub cols: usize,
    /// Iterations prepared together (t); the correlation covers t·n rows (at least about
    /// 22,400 for the security floor).
    #[arg(long, default_value_t = 256)]
    pub iterations: usize,
    /// Reveal the first product to the server and check it against x·Y (outside the timings).
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub party: PartyArgs,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchWhat::Ot(a) => run_ot(a),
        BenchWhat::Protocols(a) => run_protocols(a),
        BenchWhat::Linear(a) => run_linear(a),
        BenchWhat::Svole(a) => run_svole(a),
    }
}

fn run_svole(a: SvoleArgs) -> anyhow::Result<()> {
    if !(16..=44).contains(&a.ring_bits) || !(2..=32).contains(&a.weight_bits) {
        bail!("--ring-bits must be between 16 and 44 and --weight-bits between 2 and 32");
    }
    if a.rows == 0 || a.inner == 0 || a.cols == 0 || a.iterations == 0 {
        bail!("--rows, --inner, --cols and --iterations must be positive");
    }
    let mut child_args = vec!["bench".to_string(), "svole".into()];
    for (flag, v) in [
        ("--ring-bits", a.ring_bits as usize),
        ("--weight-bits", a.weight_bits as usize),
        ("--rows", a.rows),
        ("--inner", a.inner),
        ("--cols", a.cols),
        ("--iterations", a.iterations),
    ] {
        child_args.extend([flag.to_string(), v.to_string()]);
    }
    if a.verify {
        child_args.push("--verify".into());
    }
    let opts = SvoleBenchOptions {
        ring_bits: a.ring_bits,
        weight_bits: a.weight_bits,
        rows: a.rows,
        inner: a.inner,
        cols: a.cols,
        iterations: a.iterations,
        verify: a.verify,
    };
    let wait = svole_default_timeout(&a);
    two_party(&a.party, wait, child_args, "sVOLE", |ch, role| {
        Ok(svole_bench(ch, role, &opts)?)
    })
}

fn run_linear(a: LinearArgs) -> anyhow::Result<()> {
    if !(16..=44).contains(&a.ring_bits) || !(2..=32).contains(&a.weight_bits) {
        bail!("--ring-bits must be between 16 and 44 and --weight-bits between 2 and 32");
    }
    let mut child_args = vec![
        "bench".to_string(),
        "linear".into(),
        "--ring-bits".into(),
        a.ring_bits.to_string(),
        "--weight-bits".into(),
        a.weight_bits.to_string(),
        "--prefill-rows".into(),
        a.prefill_rows.to_string(),
    ];
    if a.no_logits {
        child_args.push("--no-logits".into());
    }
    if a.verify {
        child_args.push("--verify".into());
    }
    let opts = LinearBenchOptions {
        ring_bits: a.ring_bits,
        weight_bits: a.weight_bits,
        logits: !a.no_logits,
        prefill_rows: a.prefill_rows,
        verify: a.verify,
    };
    two_party(
        &a.party,
        DEFAULT_TIMEOUT_SECS,
        child_args,
        "linear",
        |ch, role| Ok(linear_bench(ch, role, &opts)?),
    )
}

fn run_protocols(a: ProtocolsArgs) -> anyhow::Result<()> {
    if a.n == 0 || !(20..=63).contains(&a.ring_bits) || !(1..=20).contains(&a.frac_bits) {
        bail!(
            "--n must be positive, --ring-bits between 20 and 63 and --frac-bits between 1 and 20"
        );
    }
    let child_args = vec![
        "bench".to_string(),
        "protocols".into(),
        "--n".into(),
        a.n.to_string(),
        "--ring-bits".into(),
        a.ring_bits.to_string(),
        "--frac-bits".into(),
        a.frac_bits.to_string(),
    ];
    let opts = ProtocolBenchOptions {
        n: a.n,
        ring_bits: a.ring_bits,
        frac_bits: a.frac_bits,
    };
    two_party(
        &a.party,
        DEFAULT_TIMEOUT_SECS,
        child_args,
        "protocols",
        |ch, role| Ok(protocols_bench(ch, role, &opts)?),
    )
}

fn plan_hash(p: &PartyArgs) -> anyhow::Result<[u8; 32]> {
    let Some(hex) = &p.plan_hash else {
        return Ok(*b"ciphergpt bench: no plan, OT...\0");
    };
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("--plan-hash must be 64 hex digits");
    }
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(h)
}

fn run_ot(a: OtArgs) -> anyhow::Result<()> {
    let mut child_args = vec![
        "bench".to_string(),
        "ot".into(),
        "--n".into(),
        a.n.to_string(),
    ];
    if a.verify {
        child_args.push("--verify".into());
    }
    let opts = OtBenchOptions {
        n: a.n,
        verify: a.verify,
    };
    two_party(
        &a.party,
        DEFAULT_TIMEOUT_SECS,
        child_args,
        "OT",
        |ch, role| Ok(ot_bench(ch, role, &opts)?),
    )
}

/// Seconds a party waits for its peer unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT_SECS: f64 = 60.0;

/// The sVOLE bench's default wait: [`DEFAULT_TIMEOUT_SECS`] plus 16 s per 10^9 multiply-adds of
/// the preparation (t·n rows of an m × k product), which one party computes while the other
/// waits. At the defaults (3.9·10^10) that is 678 s; the whole preparation took 443 s on a
/// 2-core machine at load average 5 (`docs/protocols.md` §29).
fn svole_default_timeout(a: &SvoleArgs) -> f64 {
    let work = (a.iterations as f64) * (a.rows as f64) * (a.inner as f64) * (a.cols as f64);
    DEFAULT_TIMEOUT_SECS + 16.0 * work / 1e9
}

/// Run a two-party bench body as the role(s) `p` asks for (waiting `default_wait` seconds for
/// the peer unless `--timeout` is given), and print the server's report.
fn two_party(
    p: &PartyArgs,
    default_wait: f64,
    mut child_args: Vec<String>,
    what: &str,
    body: impl FnOnce(
        &mut tcp::TcpChannel,
        Role,
    ) -> anyhow::Result<Vec<ciphergpt_runtime::bench::BenchResult>>,
) -> anyhow::Result<()> {
    let wait = p.timeout.unwrap_or(default_wait);
    let timeout = crate::generate::timeout(wait)?;
    let hash = plan_hash(p)?;
    match p.role {
        Some(RoleArg::Client) => {
            let addr = p
                .connect
                .as_deref()
                .context("--role client needs --connect HOST:PORT")?;
            let cfg = SessionConfig::new(Role::Client, hash).with_timeout(timeout);
            let mut ch = tcp::connect(addr, &cfg)
                .with_context(|| format!("client of the {what} bench"))?
                .remove(0);
            body(&mut ch, Role::Client).with_context(|| format!("client of the {what} bench"))?;
            Ok(())
        }
        Some(RoleArg::Server) => {
            let l = tcp::Listener::bind(&p.listen)?;
            eprintln!("listening on {}", l.local_addr());
            let cfg = SessionConfig::new(Role::Server, hash).with_timeout(timeout);
            let mut ch = l.accept(&cfg)?.remove(0);
            let results = body(&mut ch, Role::Server)
                .with_context(|| format!("server of the {what} bench"))?;
            print_report(p, results, "TCP, two processes")
        }
        None => {
            let l = tcp::Listener::bind("127.0.0.1:0")?;
            let addr = l.local_addr().to_string();
            let exe = std::env::current_exe().context("finding the ciphergpt executable")?;
            child_args.extend([
                "--role".into(),
                "client".into(),
                "--connect".into(),
                addr,
                "--timeout".into(),
                wait.to_string(),
            ]);
            if let Some(h) = &p.plan_hash {
                child_args.extend(["--plan-hash".into(), h.clone()]);
            }
            let mut child = Command::new(exe)
                .args(&child_args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting the client process")?;
            let stderr = child.stderr.take();
            let relay = std::thread::spawn(move || {
                let mut lines = Vec::new();
                if let Some(s) = stderr {
                    for line in std::io::BufReader::new(s).lines().map_while(Result::ok) {
                        lines.push(line);
                    }
                }
                lines
            });
            let cfg = SessionConfig::new(Role::Server, hash).with_timeout(timeout);
            let outcome = l
                .accept(&cfg)
                .map_err(anyhow::Error::from)
                .and_then(|mut v| body(&mut v[0], Role::Server));
            if outcome.is_err() {
                // The client usually fails too, often first and with the cause: let it report
                // before it is stopped.
                wait_a_little(&mut child, CLIENT_GRACE);
                let _ = child.kill();
            }
            let status = child.wait().context("waiting for the client process")?;
            let client_err = relay.join().unwrap_or_default();
            let client = || format!("the client process ({status}): {}", client_err.join(" | "));
            let results = match outcome {
                Ok(r) => r,
                Err(e) if status.success() => {
                    return Err(e.context(format!("server of the {what} bench")))
                }
                Err(e) => bail!("server of the {what} bench: {e:#}; {}", client()),
            };
            if !status.success() {
                bail!("{}", client());
            }
            print_report(p, results, "TCP loopback, two processes")
        }
    }
}

/// How long a failed server waits for its client process to end on its own.
const CLIENT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Wait up to `most` for `child` to exit.
fn wait_a_little(child: &mut std::process::Child, most: std::time::Duration) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < most {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn print_report(
    p: &PartyArgs,
    results: Vec<ciphergpt_runtime::bench::BenchResult>,
    transport: &str,
) -> anyhow::Result<()> {
    let report = BenchReport {
        machine: machine_info(transport),
        results,
    };
    match p.json.as_deref() {
        None => print!("{}", report.table()),
        Some("-") => {
            eprint!("{}", report.table());
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Some(path) => {
            print!("{}", report.table());
            let mut f = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
            writeln!(f, "{}", serde_json::to_string_pretty(&report)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Svole {
        #[command(flatten)]
        args: SvoleArgs,
    }

    fn svole(args: &[&str]) -> SvoleArgs {
        Svole::parse_from(std::iter::once("svole").chain(args.iter().copied())).args
    }

    #[test]
    fn the_svole_wait_grows_with_its_preparation() {
        // Defaults: t·n = 256 · 256 rows of a 768 × 768 product, 3.87·10^10 multiply-adds.
        let d = svole_default_timeout(&svole(&[]));
        assert!((d - (60.0 + 16.0 * 38.654705664)).abs() < 1e-6, "{d}");
        let small = svole(&[
            "--rows",
            "16",
            "--inner",
            "64",
            "--cols",
            "64",
            "--iterations",
            "10",
        ]);
        assert!((svole_default_timeout(&small) - 60.0).abs() < 0.1);
        // --timeout wins over the default.
        assert_eq!(svole(&["--timeout", "7"]).party.timeout, Some(7.0));
    }
}
