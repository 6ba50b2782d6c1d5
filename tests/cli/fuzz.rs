//! `ciphergpt fuzz`: a short run of a target, a replay, and a target that does not exist.

use std::path::PathBuf;
use std::process::{Command, Output};

fn ciphergpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ciphergpt"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run ciphergpt")
}

fn tmp() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ciphergpt-cli-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_short_run_reports_and_a_file_replays() {
    let dir = tmp();
    let save = dir.to_str().unwrap();
    let out = ciphergpt(&["fuzz", "ir", "--iterations", "12000", "--save", save]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("ir ")
            && stdout.contains(" 12000 inputs")
            && stdout.contains(" 0 findings"),
        "{stdout}"
    );
    // A progress line per 10,000 inputs, the last one partial.
    assert!(
        stderr.contains("ir: 10000 of 12000 inputs (indices 0..10000)"),
        "{stderr}"
    );
    assert!(stderr.contains("ir: 12000 of 12000 inputs"), "{stderr}");

    let file = dir.join("one.ir");
    std::fs::write(&file, "%0 = input \"ids\" : i64[1,T]\noutput \"y\" = %0\n").unwrap();
    let out = ciphergpt(&["fuzz", "ir", "--replay", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": Accepted\n"));
    std::fs::write(&file, "%0 = nonsense\n").unwrap();
    let out = ciphergpt(&["fuzz", "ir", "--replay", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": Refused\n"));
}

#[test]
fn an_unknown_target_is_named() {
    let out = ciphergpt(&["fuzz", "pdf", "--iterations", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no fuzz target pdf; hint: one of onnx, dsl"),
        "{err}"
    );
}
