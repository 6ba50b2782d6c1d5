//! What the command-line tests share: the binary, compiling a model for a test, a process reaped
//! when the test ends, a `serve` started on a free loopback port, and the simulator's greedy
//! tokens (the oracle).
#![allow(dead_code)]

use ciphergpt_compiler::fixed::simulate::Simulator;
use ciphergpt_compiler::plan::file;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

/// The `ciphergpt` binary, run from the workspace root.
pub fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ciphergpt"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Compile the bundled trained model (byte-level, 128 positions) into the test's directory
/// `name` under the target's temporary directory.
pub fn trained(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let out = exe()
        .args(["compile", "models/tiny-trained.torchscript.onnx", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// `serve --plan DIR --listen 127.0.0.1:0` with `args`: the process, its log, its address.
pub fn serve(dir: &Path, args: &[&str]) -> (Reap, BufReader<ChildStderr>, String) {
    let mut server = exe()
        .args(["serve", "--plan"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(server.stderr.take().unwrap());
    let server = Reap(server);
    let mut line = String::new();
    while !line.starts_with("serving") {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "serve exited early");
    }
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    (server, log, addr)
}

/// Greedy tokens of the plan's exact semantics for a byte-level prompt (the oracle).
pub fn simulated(dir: &Path, prompt: &str, new: usize) -> Vec<usize> {
    let plan = file::read_plan(&dir.join("plan.cgp")).unwrap();
    let weights = file::read_weights(&dir.join("weights.cgw"), &plan).unwrap();
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    let ids: Vec<i64> = prompt.bytes().map(i64::from).collect();
    let mut out = vec![sim.prefill(&ids).unwrap()];
    while out.len() < new {
        out.push(sim.decode(*out.last().unwrap() as i64).unwrap());
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
