//! `serve` and `generate` on several lanes, as processes on loopback: a client with `--threads 2`
//! against a server with `--threads 3` runs on 2 lanes (the smaller), two such clients at once
//! (`--max-clients 2`) each on their own lanes, and a `--threads 1` client on one; every run's
//! greedy tokens are the simulator's, and the JSON report says how many lanes and threads ran.

use crate::common;

use common::*;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Output, Stdio};

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

#[test]
fn two_lanes_against_a_three_thread_server_give_the_simulators_tokens() {
    let dir = trained("cli-lanes-trained");
    let (server, addr, log) = serve(
        &dir,
        &[
            "--threads",
            "3",
            "--sessions",
            "3",
            "--max-clients",
            "2",
            "--timeout",
            "60",
        ],
    );

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
        assert_eq!(tokens, simulated(&dir, &bytes(prompt), new), "{prompt}");
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
    assert_eq!(tokens, simulated(&dir, &bytes(prompt), new));
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
