//! The `ciphergpt` command line: parse, call into the compiler or the runtime, print.

mod bench;
mod cli;
mod fuzz;
mod generate;
mod inspect;
mod relay;
mod report;
mod serve;
mod tls;
mod tokenizer;

use clap::Parser;

fn main() {
    // A closed pipe (`ciphergpt inspect … | head`) ends the process quietly, as it does for
    // other Unix tools, instead of a panic in `println!`.
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        // One line, with the chain of causes, and a non-zero exit; never a panic.
        eprintln!("error: {}", one_line(&err));
        std::process::exit(1);
    }
}

/// The error and its causes, `: `-separated, each cause once: errors whose message already ends
/// with their cause's (e.g. the executor's, which names the instruction) do not repeat it.
fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if out.is_empty() {
            out = s;
        } else if !out.ends_with(&s) {
            out += ": ";
            out += &s;
        }
    }
    out
}
