//! What the command-line tests share: the binary, compiling a model for a test, a process reaped
//! when the test ends, a `serve` started on a free loopback port, its `generate` client, and the
//! simulator's greedy tokens (the oracle).
#![allow(dead_code)]

use ciphergpt_compiler::fixed::simulate::Simulator;
use ciphergpt_compiler::plan::file;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};

/// The `ciphergpt` binary, run from the workspace root.
pub fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ciphergpt"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `compile MODEL -o DIR` with `extra` flags; panics with the compiler's message on failure.
pub fn compile(model: &str, dir: &Path, extra: &[&str]) {
    let out = exe()
        .args(["compile", model, "-o"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compile the bundled trained model (byte-level, 128 positions) into the test's directory
/// `name` under the target's temporary directory.
pub fn trained(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    compile("models/tiny-trained.torchscript.onnx", &dir, &[]);
    dir
}

/// Kills a process when the test ends, whether it passed or panicked.
pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `serve` on a free port with `extra` arguments; returns the process, its address (from
/// its "serving … on ADDR" line) and the rest of its log.
pub fn serve(dir: &Path, extra: &[&str]) -> (Reap, String, BufReader<ChildStderr>) {
    let mut child = exe()
        .args(["serve", "--plan"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    // "encoded the weights …", then "serving … on ADDR".
    let mut line = String::new();
    while !line.starts_with("serving") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "serve exited early");
    }
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    (Reap(child), addr, err)
}

/// The client side of the command's two-party runs: `generate --plan DIR --connect ADDR
/// --prompt PROMPT --max-new-tokens NEW --timeout TIMEOUT`, stdout and stderr piped; each test
/// adds its flags (`--json`, `--threads`, `--ot`, TLS, …) and spawns or runs it.
pub fn generate(dir: &Path, addr: &str, prompt: &str, new: usize, timeout: f64) -> Command {
    let mut c = exe();
    c.args(["generate", "--plan"])
        .arg(dir)
        .args(["--connect", addr, "--prompt", prompt])
        .args(["--max-new-tokens", &new.to_string()])
        .args(["--timeout", &timeout.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// The document of a successful `generate --json`; a failure shows `what` and its stderr.
pub fn json_doc(out: &Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The token ids of a byte-level prompt.
pub fn bytes(prompt: &str) -> Vec<i64> {
    prompt.bytes().map(i64::from).collect()
}

/// Greedy tokens of the plan's exact semantics for the prompt's token ids (the oracle).
pub fn simulated(dir: &Path, prompt: &[i64], new: usize) -> Vec<usize> {
    let plan = file::read_plan(&dir.join("plan.cgp")).unwrap();
    let weights = file::read_weights(&dir.join("weights.cgw"), &plan).unwrap();
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    let mut out = vec![sim.prefill(prompt).unwrap()];
    while out.len() < new {
        let t = *out.last().unwrap() as i64;
        out.push(sim.decode(t).unwrap());
    }
    out
}

/// The token ids of a `generate --json` document.
pub fn json_tokens(doc: &serde_json::Value) -> Vec<usize> {
    doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect()
}
