//! Subcommands and their dispatch.

use anyhow::Context;
use ciphergpt_compiler::interp::float;
use ciphergpt_compiler::ir;
use ciphergpt_compiler::model::{self, ModelSpec};
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
    /// Measure protocols between two processes on loopback.
    Bench(crate::bench::BenchArgs),
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
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to print.
    #[arg(long, value_enum, default_value = "ir")]
    pub emit: Emit,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
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
        Command::Bench(args) => crate::bench::run(args),
    }
}

fn compile(args: CompileArgs) -> anyhow::Result<()> {
    let graph = model::load(&args.model.spec()?)?;
    match args.emit {
        Emit::Ir => print!("{}", ir::render(&graph)),
    }
    Ok(())
}

fn eval(args: EvalArgs) -> anyhow::Result<()> {
    if args.tokens.is_empty() {
        anyhow::bail!("--tokens: give at least one token id");
    }
    let graph = model::load(&args.model.spec()?)?;
    let outputs = float::run(&graph, &args.tokens)?;
    let (_, logits) = outputs.first().context("the model has no output")?;
    let logits = logits
        .as_f32()
        .context("the model's output is not f32 logits")?;
    let v = *logits
        .shape()
        .last()
        .context("logits have no vocabulary axis")?;
    let flat: Vec<f32> = logits.iter().copied().collect();
    let rows: Vec<&[f32]> = flat.chunks(v).collect();
    let argmax: Vec<usize> = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                    if x > best.1 {
                        (i, x)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect();
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
