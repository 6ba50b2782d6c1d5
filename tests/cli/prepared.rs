//! `generate --preprocess-tokens` and `--ot` between two processes on loopback: the prepared
//! weight products are made in batches before the prompt and when they run out, the tokens are
//! the simulator's with and without them (and on IKNP), the JSON report lists the batches apart
//! from the programs, and the decode steps' weight products send far fewer bytes online.

use crate::common;

use common::*;
use std::io::BufRead;
use std::path::Path;

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
    let dir = trained("cli-prepared-trained");
    let (server, addr, log) = serve(
        &dir,
        &["--threads", "1", "--sessions", "3", "--timeout", "60"],
    );
    let (prompt, new) = ("And God said", 6);
    let want = simulated(&dir, &bytes(prompt), new);

    // Batches of 2 decode steps: before the prompt, then twice more (5 steps: 2 + 2 + 1).
    let prepared = generate(&dir, &addr, prompt, new, &["--preprocess-tokens", "2"]);
    assert_eq!(json_tokens(&prepared), want);
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
    assert_eq!(json_tokens(&online), want);
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
    assert_eq!(json_tokens(&plain), want[..2]);
    let mut server = server;
    assert!(server.0.wait().unwrap().success());
    let lines: Vec<String> = log.lines().map_while(Result::ok).collect();
    assert!(lines[0].contains("and 3 preparation batches"), "{lines:?}");
}
