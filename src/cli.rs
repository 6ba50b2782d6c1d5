//! Subcommands and their dispatch.

use anyhow::Context;
use ciphergpt_compiler::fixed;
use ciphergpt_compiler::interp::float;
use ciphergpt_compiler::ir;
use ciphergpt_compiler::model::{self, ModelSpec};
use ciphergpt_compiler::passes;
use ciphergpt_compiler::plan;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ciphergpt",
    version,
    about = "Secure two-party GPT inference (CipherGPT)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compile a model (.onnx, or .cgpt with --weights/--seed) and print its IR.
    Compile(CompileArgs),
    /// Run the float reference interpreter on token ids and print the per-position argmax.
    Eval(EvalArgs),
    /// Compare a model's fixed-point plan with its float semantics.
    Accuracy(AccuracyArgs),
    /// List a plan's instructions with estimated bytes and rounds per party, or a summary by op
    /// class (with its link time on lan and wan).
    Inspect(crate::inspect::InspectArgs),
    /// Measure protocols between two processes on loopback.
    Bench(crate::bench::BenchArgs),
    /// Serve a compiled plan with its weights to clients (the server's side of generation).
    Serve(crate::generate::ServeArgs),
    /// Generate text from a prompt with a server (the client's side; the prompt stays secret).
    Generate(crate::generate::GenerateArgs),
    /// Compile the bundled trained model, run server and client on loopback, print the cost.
    Demo(crate::generate::DemoArgs),
    /// Forward connections to a server through an emulated link (delay and bandwidth).
    Relay(crate::relay::RelayArgs),
    /// Run a parser (ONNX, DSL, IR text, plan, weights, safetensors, session messages) on
    /// mutated fixtures: any panic, multi-line error or slow input is a finding.
    Fuzz(crate::fuzz::FuzzArgs),
}

/// Which model, and for a DSL model its weights and size.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// The model: an ONNX file or a .cgpt DSL file.
    pub model: PathBuf,
    /// Weights of a .cgpt model: a safetensors file with Hugging Face GPT-2 names.
    #[arg(long, conflicts_with = "seed")]
    pub weights: Option<PathBuf>,
    /// Random weights for a .cgpt model, drawn from this seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Set .cgpt configuration parameters, e.g. --set layers=2,width=128.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

impl ModelArgs {
    fn spec(&self) -> anyhow::Result<ModelSpec> {
        Ok(ModelSpec {
            path: self.model.clone(),
            weights: self.weights.clone(),
            seed: self.seed,
            overrides: model::parse_overrides(&self.set)?,
        })
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Emit {
    /// The graph IR after the passes, one op per line.
    Ir,
    /// The fusion rewrites that brought the import to GPT operations: one line per rewrite
    /// (rule and node), then the count per rule.
    Fusion,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Write DIR/plan.cgp (public) and DIR/weights.cgw (server only).
    #[arg(short = 'o', long = "out", value_name = "DIR", conflicts_with = "emit")]
    pub out: Option<PathBuf>,
    /// Print the graph IR after the passes, or the fusion rules that fired, instead of writing
    /// a plan.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    #[command(flatten)]
    pub fixed: FixedArgs,
}

/// Fixed-point choices, shared by `compile` and `accuracy`.
#[derive(Args, Debug)]
pub struct FixedArgs {
    /// Ring width ℓ (default: chosen from calibration).
    #[arg(long)]
    pub ring_bits: Option<u32>,
    /// Fractional bits of activations.
    #[arg(long, default_value_t = 15)]
    pub frac_bits: u32,
    /// Fractional bits of weights.
    #[arg(long, default_value_t = 15)]
    pub weight_frac_bits: u32,
    /// Calibration prompts: one per line, as text for byte-level models or comma-separated ids.
    #[arg(long, value_name = "FILE")]
    pub calibrate: Option<PathBuf>,
    /// The plan's default decoding: sample from the K largest logits (1 = greedy, the default;
    /// a client may ask for another per session).
    #[arg(long, default_value_t = 1)]
    pub top_k: u32,
    /// The plan's default sampling temperature (with --top-k above 1).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Decode steps a preparation batch covers: the cost model then records, per decode
    /// weight product and non-linear layer, whether it runs online or is prepared ahead
    /// (weight products by RLWE, or by sVOLE for batches above its security floor); 0 runs
    /// every layer online.
    #[arg(long, default_value_t = fixed::DEFAULT_PREPROCESS_TOKENS)]
    pub preprocess_tokens: u32,
    /// What the cost model minimises when it chooses the prepared layers: `total`, a decode
    /// step's link time with its share of the preparation (the session's traffic in all), or
    /// `online`, the step's online link time alone (each token's latency); `inspect` prints
    /// both per layer kind.
    #[arg(long, value_enum, default_value_t = PrepareBy::Total)]
    pub prepare_by: PrepareBy,
}

/// `--prepare-by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrepareBy {
    Total,
    Online,
}

impl FixedArgs {
    fn options(&self) -> anyhow::Result<fixed::Options> {
        let inv_temperature =
            plan::Sample::inv_temperature_of(self.temperature).map_err(anyhow::Error::msg)?;
        Ok(fixed::Options {
            ring_bits: self.ring_bits,
            frac_bits: self.frac_bits,
            weight_frac_bits: self.weight_frac_bits,
            prompts: self.calibrate.as_deref().map(read_prompts).transpose()?,
            decoding: fixed::lower::Decoding {
                top_k: self.top_k,
                inv_temperature,
            },
            preprocess_tokens: self.preprocess_tokens,
            prepare_by: match self.prepare_by {
                PrepareBy::Total => fixed::prepare::PrepareBy::Total,
                PrepareBy::Online => fixed::prepare::PrepareBy::Online,
            },
        })
    }
}

#[derive(Args, Debug)]
pub struct AccuracyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub fixed: FixedArgs,
    /// Prompts to compare on, one per line (default: models/eval-prompts.txt, held out from calibration).
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Tokens of greedy continuation per prompt.
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Run a compiled plan's exact integer semantics (MODEL is the plan's folder).
    #[arg(long)]
    pub fixed: bool,
    /// Token ids, comma-separated, e.g. 464,2068,7586.
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<i64>,
    /// Print {"argmax": [...], "logits": [[...], ...]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Compile(args) => compile(args),
        Command::Eval(args) => eval(args),
        Command::Accuracy(args) => accuracy(args),
        Command::Inspect(args) => crate::inspect::run(args),
        Command::Bench(args) => crate::bench::run(args),
        Command::Serve(args) => crate::generate::serve(args),
        Command::Generate(args) => crate::generate::generate(args),
        Command::Demo(args) => crate::generate::demo(args),
        Command::Relay(args) => crate::relay::run(args),
        Command::Fuzz(args) => crate::fuzz::run(args),
    }
}

fn compile(args: CompileArgs) -> anyhow::Result<()> {
    let (graph, trace) = model::load_traced(&args.model.spec()?)?;
    let Some(dir) = args.out else {
        match args.emit.unwrap_or(Emit::Ir) {
            Emit::Ir => print!("{}", ir::render(&graph)),
            Emit::Fusion => print_fusion_trace(&trace),
        }
        return Ok(());
    };
    let compiled = fixed::compile(&graph, &args.fixed.options()?)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let (plan_path, weights_path) = (dir.join("plan.cgp"), dir.join("weights.cgw"));
    plan::file::write_plan(&compiled.plan, &plan_path)?;
    plan::file::write_weights(&compiled.weights, &weights_path)?;
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let instructions = compiled
        .plan
        .prefill
        .as_ref()
        .map_or(0, |p| p.instructions.len());
    println!(
        "{}: {} instructions, ring {} bits, {} fractional bits ({})",
        plan_path.display(),
        instructions,
        compiled.plan.ring_bits,
        compiled.plan.frac_bits,
        compiled.plan.calibration
    );
    println!(
        "{}: {} bytes (public)",
        plan_path.display(),
        size(&plan_path)
    );
    println!(
        "{}: {} bytes (server only)",
        weights_path.display(),
        size(&weights_path)
    );
    Ok(())
}

/// The fusion rewrites, one per line, then how many times each rule fired (in the rules' order).
fn print_fusion_trace(trace: &[passes::fusion::Fired]) {
    for f in trace {
        println!("{f}");
    }
    for rule in passes::fusion::Rule::ALL {
        let n = trace.iter().filter(|f| f.rule == rule).count();
        if n > 0 {
            println!("{rule}: {n}");
        }
    }
}

/// Calibration prompts from a file: text lines (byte-level models) or comma-separated ids.
fn read_prompts(path: &std::path::Path) -> anyhow::Result<Vec<Vec<i64>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let ids: Result<Vec<i64>, _> = line.split(',').map(|t| t.trim().parse::<i64>()).collect();
        out.push(match ids {
            Ok(ids) => ids,
            Err(_) if line.is_ascii() => line.bytes().map(i64::from).collect(),
            Err(e) => anyhow::bail!(
                "{}:{}: not token ids nor ASCII text: {e}",
                path.display(),
                i + 1
            ),
        });
    }
    Ok(out)
}

fn eval(args: EvalArgs) -> anyhow::Result<()> {
    if args.tokens.is_empty() {
        anyhow::bail!("--tokens: give at least one token id");
    }
    let rows: Vec<Vec<f64>> = if args.fixed {
        fixed_logits(&args)?
    } else {
        let graph = model::load(&args.model.spec()?)?;
        float::logit_rows(&graph, &args.tokens)?
            .into_iter()
            .map(|r| r.into_iter().map(f64::from).collect())
            .collect()
    };
    let argmax: Vec<usize> = rows.iter().map(|r| float::argmax(r)).collect();
    if args.json {
        let out = serde_json::json!({ "argmax": argmax, "logits": rows });
        println!("{out}");
    } else {
        println!("position  token  argmax");
        for (i, (t, a)) in args.tokens.iter().zip(&argmax).enumerate() {
            println!("{i:>8}  {t:>5}  {a:>6}");
        }
    }
    Ok(())
}

/// Per-position logits of a compiled plan, by its cleartext integer semantics (decoded to reals).
fn fixed_logits(args: &EvalArgs) -> anyhow::Result<Vec<Vec<f64>>> {
    let dir = &args.model.model;
    let plan = plan::file::read_plan(&dir.join("plan.cgp"))?;
    let weights = plan::file::read_weights(&dir.join("weights.cgw"), &plan)?;
    let mut sim = fixed::simulate::Simulator::new(&plan, &weights)?;
    sim.all_rows = true;
    sim.prefill(&args.tokens)?;
    let logits = std::mem::take(&mut sim.last_logits);
    let frac = fixed::accuracy::logits_frac(&plan);
    Ok(logits
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| v as f64 / (1u64 << frac) as f64)
                .collect()
        })
        .collect())
}

/// Prompts held out from calibration, for `accuracy`.
const EVAL_PROMPTS: &str = include_str!("../models/eval-prompts.txt");

fn accuracy(args: AccuracyArgs) -> anyhow::Result<()> {
    let graph = model::load(&args.model.spec()?)?;
    let compiled = fixed::compile(&graph, &args.fixed.options()?)?;
    let vocab = compiled.plan.model.as_ref().map_or(0, |m| m.vocab);
    let prompts = match &args.prompts {
        Some(p) => read_prompts(p)?,
        None => EVAL_PROMPTS
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.bytes()
                    .map(|b| {
                        if vocab == 256 {
                            b as i64
                        } else {
                            b as i64 % vocab.max(1) as i64
                        }
                    })
                    .collect()
            })
            .collect(),
    };
    if let Some(bad) = prompts
        .iter()
        .flatten()
        .find(|&&t| t < 0 || t as u64 >= vocab)
    {
        anyhow::bail!("prompt token {bad} is outside the vocabulary of {vocab}");
    }
    let r = fixed::accuracy::accuracy(&graph, &compiled, &prompts, args.new_tokens)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "ring {} bits, {} fractional bits; {} prompts",
        r.ring_bits,
        r.frac_bits,
        r.prompts.len()
    );
    println!("{:<34} {:>10} {:>10}", "measure", "agree", "rate");
    println!(
        "{:<34} {:>10} {:>9.2}%",
        "per-position top-1 (prompts)",
        format!("{}/{}", r.top1_agree, r.positions),
        100.0 * r.top1_rate()
    );
    println!(
        "{:<34} {:>10} {:>9.2}%",
        format!("greedy continuation ({} tokens)", args.new_tokens),
        format!("{}/{}", r.greedy_agree, r.greedy_tokens),
        100.0 * r.greedy_rate()
    );
    println!(
        "max |logit error| {:.5}, mean {:.5}",
        r.max_logit_error, r.mean_logit_error
    );
    Ok(())
}
