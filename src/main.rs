//! The `ciphergpt` command line: parse, call into the compiler or the runtime, print.

mod bench;
mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        // One line, with the chain of causes, and a non-zero exit; never a panic.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
