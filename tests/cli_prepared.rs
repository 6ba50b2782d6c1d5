//! `generate --preprocess-tokens` and `--ot` between two processes on loopback: the prepared
//! weight products are made in batches before the prompt and when they run out, the tokens are
//! the simulator's with and without them (and on IKNP), the JSON report lists the batches apart
//! from the programs, and the decode steps' weight products send far fewer bytes online.

use ciphergpt_compiler::fixed::simulate::Simulator;
use ciphergpt_compiler::plan::file;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ciphergpt"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn trained() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-prepared-trained");
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

struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn generate(dir: &Path, addr: &str, prompt: &str, new: usize, flags: &[&str]) -> serde_json::Value {
    let out = exe()
        .args(["generate", "--plan"])
        .arg(dir)
        .args([
            "--connect",
            addr,
            "--prompt",
            prompt,
            "--json",
            "--threads",
            "1",
        ])
        .args(["--max-new-tokens", &new.to_string(), "--timeout", "60"])
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tokens(doc: &serde_json::Value) -> Vec<usize> {
    doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect()
}

/// The decode steps' bytes in the classes of the weight products (MatMul holds attention too;
/// Embedding is the token table's product), summed.
fn decode_bytes(doc: &serde_json::Value, class: &str) -> u64 {
    doc["report"]["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["program"].as_str().unwrap().starts_with("decode"))
        .flat_map(|p| p["classes"].as_array().unwrap().iter())
        .filter(|c| c["name"] == class)
        .map(|c| c["bytes_sent"].as_u64().unwrap() + c["bytes_received"].as_u64().unwrap())
        .sum()
}

#[test]
fn prepared_products_in_batches_give_the_simulators_tokens_with_fewer_online_bytes() {
    let dir = trained();
    let mut server = exe()
        .args(["serve", "--plan"])
        .arg(&dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--sessions",
            "3",
            "--timeout",
            "60",
        ])
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
    let (prompt, new) = ("And God said", 6);
    let plan = file::read_plan(&dir.join("plan.cgp")).unwrap();
    let weights = file::read_weights(&dir.join("weights.cgw"), &plan).unwrap();
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    let mut want = vec![sim
        .prefill(&prompt.bytes().map(i64::from).collect::<Vec<_>>())
        .unwrap()];
    while want.len() < new {
        want.push(sim.decode(*want.last().unwrap() as i64).unwrap());
    }

    // Batches of 2 decode steps: before the prompt, then twice more (5 steps: 2 + 2 + 1).
    let prepared = generate(&dir, &addr, prompt, new, &["--preprocess-tokens", "2"]);
    assert_eq!(tokens(&prepared), want);
    assert_eq!(prepared["preprocess_tokens"], 2);
    assert_eq!(prepared["ot"], "silent");
    let batches: Vec<u64> = prepared["report"]["preprocess"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, vec![2, 2, 1]);
    assert_eq!(
        prepared["report"]["programs"].as_array().unwrap().len(),
        new
    );

    // Online products, on IKNP: the same tokens, no batches, more bytes per step.
    let online = generate(
        &dir,
        &addr,
        prompt,
        new,
        &["--preprocess-tokens", "0", "--ot", "iknp"],
    );
    assert_eq!(tokens(&online), want);
    assert_eq!(online["ot"], "iknp");
    assert!(online["report"]["preprocess"]
        .as_array()
        .unwrap()
        .is_empty());
    for class in ["MatMul", "Embedding"] {
        let (with, without) = (decode_bytes(&prepared, class), decode_bytes(&online, class));
        assert!(2 * with < without, "{class}: {with} vs {without}");
    }
    // A third client with a flag the command does not know: a one-line error, no session.
    let out = exe()
        .args(["generate", "--plan"])
        .arg(&dir)
        .args(["--connect", &addr, "--prompt", prompt, "--ot", "dealer"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dealer"));
    // The last session: online on silent OT.
    let plain = generate(&dir, &addr, prompt, 2, &["--preprocess-tokens", "0"]);
    assert_eq!(tokens(&plain), want[..2]);
    let mut server = server;
    assert!(server.0.wait().unwrap().success());
    let lines: Vec<String> = log.lines().map_while(Result::ok).collect();
    assert!(lines[0].contains("and 3 preparation batches"), "{lines:?}");
}
