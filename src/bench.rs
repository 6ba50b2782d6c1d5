//! `ciphergpt bench …`: measurements between two processes on loopback.

use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("no benchmark is implemented yet")
}
