//! `ciphergpt inspect DIR/plan.cgp`: the plan's instructions with the cost model's estimate,
//! or its summary by op class (see `docs/cost-model.md`).

use anyhow::Context;
use ciphergpt_compiler::plan::{file, inspect};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InspectFormat {
    /// One instruction per line, then the summary.
    Text,
    /// {"plan", "prefill", "decode", "summary"}.
    Json,
    /// A Graphviz graph of registers and instructions.
    Dot,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The plan: DIR/plan.cgp, or the folder DIR that holds it.
    pub plan: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = InspectFormat::Text)]
    pub format: InspectFormat,
    /// Only the estimate grouped by op class, for prefill and one decode step.
    #[arg(long)]
    pub summary: bool,
    /// Prompt length T of the estimate: prefill of T tokens, then the decode step at position T.
    #[arg(long, default_value_t = 32)]
    pub tokens: u64,
    /// Tokens the session generates, as `generate --max-new-tokens`: the context of T + N − 1
    /// positions sets the attention products' layout.
    #[arg(long, default_value_t = 16)]
    pub new_tokens: u64,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let path = if args.plan.is_dir() {
        args.plan.join("plan.cgp")
    } else {
        args.plan.clone()
    };
    let plan = file::read_plan(&path)?;
    let options = inspect::Options {
        format: match args.format {
            InspectFormat::Text => inspect::Format::Text,
            InspectFormat::Json => inspect::Format::Json,
            InspectFormat::Dot => inspect::Format::Dot,
        },
        summary: args.summary,
        tokens: args.tokens,
        new_tokens: args.new_tokens,
    };
    let out = inspect::render(&plan, &options).with_context(|| path.display().to_string())?;
    print!("{out}");
    Ok(())
}
