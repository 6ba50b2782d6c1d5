//! `serve` and `generate` as two processes on loopback: the secure greedy tokens equal the plan's
//! cleartext semantics (the simulator) token for token; the server survives a client that
//! vanishes mid-session and serves the next one; a client whose server is down fails with one
//! line.

use ciphergpt_compiler::fixed::simulate::Simulator;
use ciphergpt_compiler::plan::file;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ciphergpt"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn compile(dir: &Path) {
    let out = exe()
        .args(["compile", "models/tiny-trained.torchscript.onnx", "-o"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the server when a test ends, whether it passed or panicked.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `serve` on a free port; returns the process and its address (from its first line).
fn serve(dir: &Path, sessions: usize) -> (Reap, String, BufReader<std::process::ChildStderr>) {
    let mut child = exe()
        .args(["serve", "--plan"])
        .arg(dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sessions",
            &sessions.to_string(),
        ])
        .args(["--timeout", "60"])
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

fn generate(dir: &Path, addr: &str, prompt: &str, new: usize) -> Output {
    exe()
        .args(["generate", "--plan"])
        .arg(dir)
        .args(["--connect", addr, "--prompt", prompt, "--json"])
        .args(["--max-new-tokens", &new.to_string(), "--timeout", "60"])
        .output()
        .unwrap()
}

/// Greedy tokens of the plan's exact semantics.
fn simulated(dir: &Path, prompt: &str, new: usize) -> Vec<usize> {
    let plan = file::read_plan(&dir.join("plan.cgp")).unwrap();
    let weights = file::read_weights(&dir.join("weights.cgw"), &plan).unwrap();
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    let tokens: Vec<i64> = prompt.bytes().map(i64::from).collect();
    let mut out = vec![sim.prefill(&tokens).unwrap()];
    while out.len() < new {
        let t = *out.last().unwrap() as i64;
        out.push(sim.decode(t).unwrap());
    }
    out
}

#[test]
fn secure_generation_equals_the_simulator_and_the_server_survives_a_vanished_client() {
    let dir = std::env::temp_dir().join(format!("ciphergpt-gen-{}", std::process::id()));
    compile(&dir);
    let (mut server, addr, err) = serve(&dir, 2);

    // A client that vanishes mid-session (100 tokens take far longer than the wait).
    let mut quitter = exe()
        .args(["generate", "--plan"])
        .arg(&dir)
        .args([
            "--connect",
            &addr,
            "--prompt",
            "Let there be light",
            "--max-new-tokens",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    quitter.kill().unwrap();
    quitter.wait().unwrap();

    // The next client is served, and its tokens are the simulator's.
    let (prompt, new) = ("And God said", 4);
    let out = generate(&dir, &addr, prompt, new);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens: Vec<usize> = doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(tokens, simulated(&dir, prompt, new));
    let text: String = tokens.iter().map(|&t| t as u8 as char).collect();
    assert_eq!(doc["text"], text);
    // The report: a prefill and new − 1 decode steps, each with bytes in the MatMul class.
    let programs = doc["report"]["programs"].as_array().unwrap();
    assert_eq!(programs.len(), new);
    assert_eq!(programs[0]["program"], "prefill");
    assert_eq!(programs[0]["tokens"], prompt.len());
    for p in programs {
        let matmul = &p["classes"][0];
        assert_eq!(matmul["name"], "MatMul");
        assert!(matmul["bytes_received"].as_u64().unwrap() > 0);
    }

    let status = server.0.wait().unwrap();
    let log: Vec<String> = err.lines().map_while(Result::ok).collect();
    assert!(status.success(), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("session 1") && l.contains("failed")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("session 2") && l.contains("programs")),
        "{log:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_that_is_down_is_one_line_and_a_non_zero_exit() {
    let dir = std::env::temp_dir().join(format!("ciphergpt-down-{}", std::process::id()));
    compile(&dir);
    // A port nobody listens on: bind, read the port, drop the listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = exe()
        .args(["generate", "--plan"])
        .arg(&dir)
        .args([
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--prompt",
            "x",
            "--timeout",
            "2",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("could not connect"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
