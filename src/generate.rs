//! `serve`, `generate` and `demo`: two-party generation between a server holding the weights and
//! a client holding the prompt (runtime::session), and the cost report.

use anyhow::{bail, Context};
use ciphergpt_compiler::fixed;
use ciphergpt_compiler::model::{self, ModelSpec};
use ciphergpt_compiler::plan::{self, Plan};
use ciphergpt_runtime::crypto::CotBackend;
use ciphergpt_runtime::exec::EncodedModel;
use ciphergpt_runtime::net::tls::Tls;
use ciphergpt_runtime::net::wire::Request;
use ciphergpt_runtime::net::{tcp, Channel, NetError, Role, SessionConfig};
use ciphergpt_runtime::session::{self, ClientOptions, Decoding, SessionReport};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::tokenizer::{TextStream, TextTokenizer};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The compiled plan's directory (plan.cgp).
    #[arg(long)]
    pub plan: PathBuf,
    /// The weights file (default: PLAN/weights.cgw).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// Serve this many sessions, then exit (default: serve until killed).
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Seconds to wait for the peer at each step before giving up on the session.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Serve up to this many sessions at once, a thread each (further clients wait).
    #[arg(long, default_value_t = 1)]
    pub max_clients: usize,
    /// Hold at most this many connections that have no session slot yet (their hello unread,
    /// or waiting for a slot); more wait in the listen queue. Silent or slow peers take these,
    /// never a session slot, each for at most --timeout.
    #[arg(long, default_value_t = crate::serve::DEFAULT_MAX_PENDING)]
    pub max_pending: usize,
    /// Worker threads for the protocols' local work, and the most lanes (connections, each with
    /// its own OT) granted a session: a client asking for more gets this many (default: all
    /// cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed of the server's sampling randomness, the same for every session: for reproducible
    /// top-k runs with a seeded client (tests, benchmarks), not for production (it warns unless
    /// --sessions is 1). Default: fresh.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub tls: crate::tls::ServeTls,
}

/// The decoding flags of `generate` and `demo`.
#[derive(Args, Debug)]
pub struct DecodingArgs {
    /// Sample from the K largest logits (secure top-k); 1 is greedy (the secure argmax).
    /// Default: the plan's mode (greedy unless compiled with --top-k).
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Temperature of top-k sampling (default: the plan's, 1.0 unless compiled otherwise).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Seed of this client's sampling randomness (its shuffle and its part of each draw); with a
    /// server started with --seed too, a run is reproducible. Default: fresh randomness.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl DecodingArgs {
    /// The plan's default decoding with these flags applied.
    fn decoding(&self, plan: &Plan) -> anyhow::Result<Decoding> {
        let mut d = Decoding::of_plan(plan);
        if let Some(k) = self.top_k {
            d.top_k = k;
        }
        if let Some(t) = self.temperature {
            if d.top_k <= 1 {
                bail!(
                    "--temperature {t} needs --top-k above 1 (greedy decoding has no temperature)"
                );
            }
            d.inv_temperature = plan::Sample::inv_temperature_of(t).map_err(anyhow::Error::msg)?;
        }
        let vocab = plan.model.as_ref().map_or(0, |m| m.vocab);
        // The message starts with the flag's name: `--top-k 0 is not in 1..=256 …`.
        plan::Sample::check_decoding(d.top_k, d.inv_temperature, vocab)
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
        d.seed = self.seed;
        Ok(d)
    }
}

/// How a client runs its session besides the decoding: the preparation of the weight products
/// and the OT extension.
#[derive(Args, Debug)]
pub struct SessionArgs {
    /// Decode steps each preparation batch covers: the weight products the plan marks prepared
    /// get their correlations for that many steps before the prompt (and again when they run
    /// out), so a decode step sends only masked inputs for them; 0 runs every product online.
    #[arg(long, default_value_t = session::DEFAULT_PREPROCESS_TOKENS)]
    pub preprocess_tokens: u32,
    /// The OT extension of the session: silent OT (Ferret-style, LPN) or IKNP.
    #[arg(long, value_enum, default_value_t = OtArg::Silent)]
    pub ot: OtArg,
}

/// The OT extension a session runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OtArg {
    Silent,
    Iknp,
}

impl SessionArgs {
    fn options(&self, decoding: Decoding) -> ClientOptions {
        ClientOptions {
            decoding,
            preprocess_tokens: self.preprocess_tokens,
            ot: match self.ot {
                OtArg::Silent => CotBackend::Silent,
                OtArg::Iknp => CotBackend::Iknp,
            },
        }
    }
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The compiled plan's directory (plan.cgp; the client never reads the weights).
    #[arg(long)]
    pub plan: PathBuf,
    /// The server's address.
    #[arg(long)]
    pub connect: String,
    /// The prompt as text, through the plan's tokenizer (byte-level or GPT-2 BPE).
    #[arg(long, conflicts_with = "tokens")]
    pub prompt: Option<String>,
    /// The prompt as token ids.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub tokens: Vec<i64>,
    /// Tokens to generate.
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    #[command(flatten)]
    pub session: SessionArgs,
    /// Print {"tokens", "text", "report"} as JSON instead of the text and the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Seconds to wait for the server at each step.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Worker threads for the protocols' local work, and the lanes asked of the server: as many
    /// connections, each with its own OT, running independent rows and elements at once (the
    /// server grants at most its own --threads; default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub tls: crate::tls::ClientTls,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The prompt.
    #[arg(long, default_value = "In the beginning God created")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    #[command(flatten)]
    pub session: SessionArgs,
    /// Worker threads and lanes of the parties (see `generate --threads`; default: all cores'
    /// worker threads, shared by both parties in this process, and half the cores as lanes).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Size the global worker pool (the report says how many threads ran); returns the lanes this
/// party runs a session on at most: `n`, or all cores.
/// The most `--threads` (and so lanes) a party takes.
const MAX_THREADS: usize = 1024;

fn threads(n: Option<usize>) -> anyhow::Result<usize> {
    if let Some(n) = n {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        if n > MAX_THREADS {
            bail!("--threads {n}: at most {MAX_THREADS}");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up the worker threads")?;
        return Ok(n);
    }
    Ok(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The longest `--timeout`, in seconds (a week): larger values overflow a `Duration` or the
/// clock's deadlines.
pub const MAX_TIMEOUT_SECS: f64 = 604_800.0;

/// `--timeout` in seconds: positive and at most [`MAX_TIMEOUT_SECS`].
pub fn timeout(secs: f64) -> anyhow::Result<Duration> {
    if !(secs > 0.0 && secs <= MAX_TIMEOUT_SECS) {
        bail!("--timeout {secs}: give a positive number of seconds, at most {MAX_TIMEOUT_SECS} (a week)");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn hash_of(plan: &Plan) -> anyhow::Result<[u8; 32]> {
    plan.hash
        .as_slice()
        .try_into()
        .context("the plan has no hash: recompile it")
}

pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let lanes = threads(a.threads)?;
    if a.max_clients == 0 {
        bail!("--max-clients must be at least 1");
    }
    if a.max_pending == 0 {
        bail!("--max-pending must be at least 1");
    }
    let wait = timeout(a.timeout)?;
    let plan = plan::file::read_plan(&a.plan.join("plan.cgp"))?;
    let cfg = SessionConfig::new(Role::Server, hash_of(&plan)?)
        .with_timeout(wait)
        .with_channels(lanes)
        .with_tls(a.tls.config()?);
    let tls = if cfg.tls.is_some() { " over TLS" } else { "" };
    let wpath = a.weights.unwrap_or_else(|| a.plan.join("weights.cgw"));
    let weights = plan::file::read_weights(&wpath, &plan)?;
    let t0 = std::time::Instant::now();
    let prepared = EncodedModel::new(&plan, Some(&weights))?;
    drop(weights);
    eprintln!(
        "encoded the weights for RLWE products in {:.1} s ({:.0} MB: pre-encoded and integers)",
        t0.elapsed().as_secs_f64(),
        prepared.encoded_bytes() as f64 / 1e6
    );
    let l = std::net::TcpListener::bind(&a.listen)
        .with_context(|| format!("binding {} (is the port in use?)", a.listen))?;
    let addr = l.local_addr().context("reading the bound address")?;
    eprintln!(
        "serving {} ({}){tls} on {addr}",
        plan.source,
        plan::file::short_hash(&plan.hash),
    );
    if a.seed.is_some() && a.sessions != Some(1) {
        eprintln!(
            "warning: --seed gives every session the same server randomness for sampling \
             (its shuffle and its part of each draw): use it for one reproducible session, \
             not to serve clients"
        );
    }
    crate::serve::run(
        &l,
        crate::serve::Server {
            plan: Arc::new(plan),
            prepared: Arc::new(prepared),
            cfg,
            max_clients: a.max_clients,
            max_pending: a.max_pending,
            sessions: a.sessions,
            seed: a.seed,
        },
    )
}

/// The prompt's token ids: text through the plan's tokenizer, or ids.
fn prompt_tokens(plan: &Plan, text: Option<&str>, ids: &[i64]) -> anyhow::Result<Vec<i64>> {
    match text {
        Some(t) => match TextTokenizer::for_plan(plan)? {
            Some(tok) => Ok(tok.encode(t)),
            None => bail!("this plan has no tokenizer for text: give the prompt as --tokens"),
        },
        None if ids.is_empty() => bail!("give a prompt: --prompt TEXT or --tokens 1,2,3"),
        None => Ok(ids.to_vec()),
    }
}

/// Refuse, before connecting, a prompt the session would refuse: empty, with ids outside the
/// vocabulary, or longer than the model's context with the new tokens.
fn check_prompt(plan: &Plan, prompt: &[i64], new: usize) -> anyhow::Result<()> {
    let vocab = plan.model.as_ref().map_or(0, |m| m.vocab);
    if prompt.is_empty() {
        bail!("the prompt is empty: give at least one token");
    }
    if new == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    if let Some(bad) = prompt.iter().find(|&&t| t < 0 || t as u64 >= vocab) {
        bail!("prompt token {bad} is outside the model's vocabulary of {vocab}");
    }
    // Overflow-checked (`--max-new-tokens` may be any u64), and before any connection.
    if let Err(e) = session::context_positions(plan, prompt.len(), new) {
        bail!("the prompt is too long: {e}; shorten the prompt or lower --max-new-tokens");
    }
    // The request carries both counts as u32 (whatever the model's positions).
    if let Err(e) = Request::counts(prompt.len(), new) {
        bail!("the request cannot carry these counts: {e}; lower --max-new-tokens");
    }
    Ok(())
}

/// The text of generated tokens (plans with a text tokenizer), invalid UTF-8 as U+FFFD.
fn detokenize(plan: &Plan, tokens: &[usize]) -> Option<String> {
    TextTokenizer::for_plan(plan)
        .ok()
        .flatten()
        .and_then(|t| t.decode(tokens).ok())
}

/// Run the client side with the server at `connect`, asking for `lanes` lanes; streams text to
/// stderr as tokens arrive.
#[allow(clippy::too_many_arguments)]
fn client(
    plan: &Plan,
    connect: &str,
    lanes: usize,
    prompt: &[i64],
    new: usize,
    options: &ClientOptions,
    wait: Duration,
    stream: bool,
    echo_prompt: Option<&str>,
    tls: Option<Tls>,
) -> anyhow::Result<(Vec<usize>, SessionReport)> {
    let cfg = SessionConfig::new(Role::Client, hash_of(plan)?)
        .with_timeout(wait)
        .with_channels(lanes)
        .with_tls(tls);
    let prepared = EncodedModel::new(plan, None)?;
    let (mut ch, more) = match tcp::connect(connect, &cfg) {
        Ok(chans) => {
            let mut it = chans.into_iter();
            let first = it.next().context("the session opened no connection")?;
            let more: Vec<Box<dyn Channel>> = it.map(|c| Box::new(c) as Box<dyn Channel>).collect();
            (first, more)
        }
        // The server answers the handshake only when one of its --max-clients slots is free.
        Err(e @ NetError::Timeout { .. }) => {
            bail!("{e}; the server may be busy with as many clients as its --max-clients")
        }
        Err(e) => return Err(e.into()),
    };
    let total = new;
    let mut n = 0usize;
    let tokenizer = TextTokenizer::for_plan(plan)?;
    let mut text = TextStream::default();
    let progress: Option<ciphergpt_runtime::exec::Progress> = if stream {
        Some(Box::new(|i: usize, n: usize, name: &str| {
            eprint!("\r\x1b[K[prefill {:>3}/{n}: {name}]", i + 1);
        }))
    } else {
        None
    };
    let (tokens, report) = session::generate(
        &mut ch,
        more,
        plan,
        &prepared,
        prompt,
        new,
        options,
        progress,
        |tok, cost| {
            n += 1;
            if stream {
                if cost.program == "prefill" {
                    eprintln!(
                        "\r\x1b[K[prefill of {} tokens: {:.1} s, {:.1} MB]",
                        cost.tokens,
                        cost.total.seconds,
                        (cost.total.bytes_sent + cost.total.bytes_received) as f64 / 1e6
                    );
                    if let Some(p) = echo_prompt {
                        print!("{p}");
                    }
                }
                // The text goes to stdout as it arrives, whole characters only; progress and the
                // report to stderr.
                match tokenizer.as_ref().map(|t| t.token_bytes(tok)) {
                    Some(Ok(bytes)) => print!("{}", text.push(&bytes)),
                    _ => print!("{tok} "),
                }
                if n == total {
                    println!("{}", text.finish());
                }
                let _ = std::io::stdout().flush();
            }
            true
        },
    )
    .inspect_err(|_| {
        // The error goes on a line of its own, not after a progress mark.
        if stream {
            eprint!("\r\x1b[K");
        }
    })?;
    Ok((tokens, report))
}

pub fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let lanes = threads(a.threads)?;
    let plan = plan::file::read_plan(&a.plan.join("plan.cgp"))?;
    let prompt = prompt_tokens(&plan, a.prompt.as_deref(), &a.tokens)?;
    let options = a.session.options(a.decoding.decoding(&plan)?);
    check_prompt(&plan, &prompt, a.max_new_tokens)?;
    let tls = a.tls.config(&a.connect)?;
    let (tokens, report) = client(
        &plan,
        &a.connect,
        lanes,
        &prompt,
        a.max_new_tokens,
        &options,
        timeout(a.timeout)?,
        !a.json,
        None,
        tls,
    )?;
    output(
        &plan,
        &tokens,
        &report,
        &options,
        a.json,
        a.report.as_deref(),
    )
}

fn output(
    plan: &Plan,
    tokens: &[usize],
    report: &SessionReport,
    options: &ClientOptions,
    json: bool,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let text = detokenize(plan, tokens);
    let decoding = &options.decoding;
    let doc = serde_json::json!({
        "tokens": tokens,
        "text": text,
        "decoding": {
            "top_k": decoding.top_k,
            "temperature": f64::from(1u32 << plan::Sample::TEMPERATURE_FRAC)
                / f64::from(decoding.inv_temperature),
        },
        "preprocess_tokens": options.preprocess_tokens,
        "ot": format!("{:?}", options.ot).to_lowercase(),
        "report": report,
    });
    if let Some(f) = file {
        std::fs::write(f, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("{}: cannot write the report", f.display()))?;
    }
    if json {
        println!("{doc}");
    } else {
        // The text was streamed to stdout as it arrived.
        eprint!("{}", crate::report::table(report));
    }
    Ok(())
}

/// "greedy" or "top-K at temperature T".
fn describe(d: &Decoding) -> String {
    if d.top_k <= 1 {
        "greedy".into()
    } else {
        format!(
            "top-{} sampling at temperature {:.3}",
            d.top_k,
            f64::from(1u32 << plan::Sample::TEMPERATURE_FRAC) / f64::from(d.inv_temperature)
        )
    }
}

/// Compile the bundled trained model into a temporary directory, start the server on a
/// loopback port in a thread, and generate from the prompt as the client.
pub fn demo(a: DemoArgs) -> anyhow::Result<()> {
    // Both parties share this process and its worker pool (all cores); by default each runs
    // on half the cores' worth of lanes.
    let lanes = match a.threads {
        Some(_) => threads(a.threads)?,
        None => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
    };
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-trained.torchscript.onnx");
    // Compiled afresh each time (a few seconds), so the plan always matches this build.
    let dir = std::env::temp_dir().join(format!("ciphergpt-demo-{}", std::process::id()));
    eprintln!("compiling {} into {}", model.display(), dir.display());
    let graph = model::load(&ModelSpec {
        path: model.clone(),
        ..Default::default()
    })?;
    let c = fixed::compile(&graph, &fixed::Options::default())?;
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    plan::file::write_plan(&c.plan, &dir.join("plan.cgp"))?;
    plan::file::write_weights(&c.weights, &dir.join("weights.cgw"))?;
    let plan = plan::file::read_plan(&dir.join("plan.cgp"))?;
    let weights = plan::file::read_weights(&dir.join("weights.cgw"), &plan)?;
    let prompt: Vec<i64> = a.prompt.bytes().map(i64::from).collect();
    check_prompt(&plan, &prompt, a.max_new_tokens)?;
    let l = tcp::Listener::bind("127.0.0.1:0")?;
    let addr = l.local_addr().to_string();
    let wait = Duration::from_secs(120);
    let scfg = SessionConfig::new(Role::Server, hash_of(&plan)?)
        .with_timeout(wait)
        .with_channels(lanes);
    let splan = plan.clone();
    let server = std::thread::spawn(move || -> anyhow::Result<SessionReport> {
        let prepared = EncodedModel::new(&splan, Some(&weights))?;
        let mut chans = l.accept(&scfg)?.into_iter();
        let mut ch = chans.next().context("the session opened no connection")?;
        let more: Vec<Box<dyn Channel>> = chans.map(|c| Box::new(c) as Box<dyn Channel>).collect();
        Ok(session::serve(&mut ch, more, &splan, &prepared, None)?)
    });
    let options = a.session.options(a.decoding.decoding(&plan)?);
    eprintln!(
        "server and client on {addr}; prompt {:?}, {} new tokens, {}",
        a.prompt,
        a.max_new_tokens,
        describe(&options.decoding)
    );
    let result = client(
        &plan,
        &addr,
        lanes,
        &prompt,
        a.max_new_tokens,
        &options,
        wait,
        true,
        Some(&a.prompt),
        None,
    );
    let server_report = server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))?;
    let _ = std::fs::remove_dir_all(&dir);
    // The server's error first: the client's is then only its consequence.
    server_report.context("the server side failed")?;
    let (tokens, report) = result?;
    output(&plan, &tokens, &report, &options, false, None)
}
