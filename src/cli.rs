//! Subcommands and their dispatch.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "ciphergpt", version, about = "Secure two-party GPT inference (CipherGPT)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Measure protocols between two processes on loopback.
    Bench(crate::bench::BenchArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(args) => crate::bench::run(args),
    }
}
