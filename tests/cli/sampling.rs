//! `generate --top-k K --temperature T` between two processes (`serve`, `generate`): every sampled
//! token is among the K largest logits of the plan's exact semantics (the simulator) along the
//! continuation actually generated, the report has a Sampling row, seeding both parties makes a
//! run reproducible, and bad decoding flags give one line and a non-zero exit.

use crate::common;

use ciphergpt_compiler::fixed::{semantics, simulate::Simulator};
use ciphergpt_compiler::plan::file;
use common::*;
use std::path::Path;
use std::process::Output;

fn generate(dir: &Path, addr: &str, extra: &[&str]) -> Output {
    let mut c = common::generate(dir, addr, "And God said", 6, 60.0);
    c.arg("--json").args(extra).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    json_doc(out, "generate")
}

#[test]
fn top_k_generation_between_two_processes() {
    let dir = std::env::temp_dir().join(format!("ciphergpt-topk-{}", std::process::id()));
    let out = exe()
        .args(["compile", "models/tiny-trained.torchscript.onnx", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (_reap, addr, mut log) =
        serve(&dir, &["--sessions", "2", "--seed", "5", "--timeout", "60"]);
    // One seed for two sessions: the server says that their samples share its randomness.
    let mut warning = String::new();
    std::io::BufRead::read_line(&mut log, &mut warning).unwrap();
    assert!(
        warning.starts_with("warning: --seed gives every session"),
        "{warning}"
    );

    // Refused before any connection: one line, non-zero exit.
    for (flags, says) in [
        (&["--top-k", "0"][..], "--top-k 0"),
        (&["--top-k", "300"][..], "--top-k 300"),
        (
            &["--top-k", "40", "--temperature", "0"][..],
            "temperature 0",
        ),
        (&["--temperature", "0.8"][..], "needs --top-k"),
    ] {
        let out = generate(&dir, &addr, flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} accepted");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }

    let flags = ["--top-k", "40", "--temperature", "0.8", "--seed", "3"];
    let first = json(&generate(&dir, &addr, &flags));
    let got = json_tokens(&first);
    assert_eq!(got.len(), 6);
    assert_eq!(first["decoding"]["top_k"], 40);
    for p in first["report"]["programs"].as_array().unwrap() {
        let sampling = p["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Sampling")
            .unwrap();
        assert!(sampling["bytes_sent"].as_u64().unwrap() > 0, "{p}");
    }
    // The oracle: the simulator's logits along the sampled continuation.
    let plan = file::read_plan(&dir.join("plan.cgp")).unwrap();
    let weights = file::read_weights(&dir.join("weights.cgw"), &plan).unwrap();
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    let prompt: Vec<i64> = "And God said".bytes().map(i64::from).collect();
    sim.prefill(&prompt).unwrap();
    for (i, &tok) in got.iter().enumerate() {
        let top = semantics::top_k(sim.last_logits.last().unwrap(), 40);
        assert!(top.contains(&tok), "token {i} = {tok} is not in the top 40");
        sim.decode(tok as i64).unwrap();
    }

    // Both parties seeded alike: the same tokens.
    let again = json(&generate(&dir, &addr, &flags));
    assert_eq!(json_tokens(&again), got);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A seed for one session is what it is for (a reproducible run): no warning.
#[test]
fn a_seeded_server_of_one_session_does_not_warn() {
    let dir = trained("cli-sampling-one-seeded-session");
    let (mut reap, _addr, log) = serve(&dir, &["--sessions", "1", "--seed", "5"]);
    // The warning would follow the "serving" line at once; give it time to be written.
    std::thread::sleep(std::time::Duration::from_millis(300));
    reap.0.kill().unwrap();
    let rest: String = std::io::BufRead::lines(log).map_while(Result::ok).collect();
    assert!(!rest.contains("warning"), "{rest}");
}
