//! `serve` and `generate` on several lanes, as processes on loopback: a client with `--threads 2`
//! against a server with `--threads 3` runs on 2 lanes (the smaller), two such clients at once
//! (`--max-clients 2`) each on their own lanes, and a `--threads 1` client on one; every run's
//! greedy tokens are the simulator's, and the JSON report says how many lanes and threads ran.

use ciphergpt_compiler::fixed::simulate::Simulator;
use ciphergpt_compiler::plan::file;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ciphergpt"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// The bundled trained model (byte-level, 128 positions), compiled for this test.
fn trained() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-lanes-trained");
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
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(dir: &Path, addr: &str, prompt: &str, new: usize, threads: usize) -> Child {
    exe()
        .args(["generate", "--plan"])
        .arg(dir)
        .args(["--connect", addr, "--prompt", prompt, "--json"])
        .args(["--max-new-tokens", &new.to_string()])
        .args(["--threads", &threads.to_string(), "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The tokens and the report of a successful `generate --json`.
fn tokens_of(out: Output) -> (Vec<usize>, serde_json::Value) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens = doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect();
    (tokens, doc["report"].clone())
}

/// Greedy tokens of the plan's exact semantics (the oracle).
fn simulated(dir: &Path, prompt: &str, new: usize) -> Vec<usize> {
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

#[test]
fn two_lanes_against_a_three_thread_server_give_the_simulators_tokens() {
    let dir = trained();
    let mut server = exe()
        .args(["serve", "--plan"])
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--threads", "3"])
        .args(["--sessions", "3", "--max-clients", "2", "--timeout", "60"])
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

    // Long enough prompts that the prefill's LayerNorm, Softmax, GELU and truncations split.
    let prompts = [
        ("And God said, Let there ", 2),
        ("In the beginning God cre", 2),
    ];
    // Two clients of 2 threads at once, each on its own 2 lanes.
    let running: Vec<Child> = prompts
        .iter()
        .map(|&(p, n)| client(&dir, &addr, p, n, 2))
        .collect();
    for (c, &(prompt, new)) in running.into_iter().zip(&prompts) {
        let (tokens, report) = tokens_of(c.wait_with_output().unwrap());
        assert_eq!(tokens, simulated(&dir, prompt, new), "{prompt}");
        assert_eq!(report["lanes"], 2, "{prompt}");
        assert_eq!(report["threads"], 2, "{prompt}");
        assert_eq!(report["programs"].as_array().unwrap().len(), new);
    }
    // One lane: the same tokens.
    let (prompt, new) = prompts[0];
    let (tokens, report) = tokens_of(
        client(&dir, &addr, prompt, new, 1)
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(tokens, simulated(&dir, prompt, new));
    assert_eq!(
        (&report["lanes"], &report["threads"]),
        (&1.into(), &1.into())
    );

    let mut server = server;
    let status = server.0.wait().unwrap();
    // Its three session lines: two on 2 lanes, the last on one.
    let lines: Vec<String> = log.lines().map_while(Result::ok).collect();
    assert!(status.success(), "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(", 2 lanes")).count(),
        2,
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("session 3 ") && lines[2].ends_with(", 1 lane"),
        "{lines:?}"
    );
}
