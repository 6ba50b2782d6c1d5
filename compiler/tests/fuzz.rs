//! The compiler's parsers under 10,000 mutated inputs each (`ciphergpt_compiler::fuzz`): no
//! panic, no input slower than the limit, every error one line. The long runs (10^6 inputs per
//! parser) are `ciphergpt fuzz`, recorded in docs/fuzzing.md.

use ciphergpt_compiler::fuzz::{self, targets};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run `name` for `iterations` inputs; no finding, and both outcomes seen.
fn fuzz_clean(name: &str, iterations: u64) {
    let scratch = std::env::temp_dir().join(format!("cgp-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let target = targets::by_name(name, &root(), &scratch).unwrap_or_else(|e| panic!("{e}"));
    let options = fuzz::Options {
        seed: 2024,
        iterations,
        save: Some(scratch.clone()),
        ..Default::default()
    };
    let r = fuzz::run(&target, &options);
    eprintln!(
        "{name}: {} inputs, {} accepted, in {:.2?} (slowest {:.1?}, input {})",
        r.inputs, r.accepted, r.elapsed, r.slowest, r.slowest_index
    );
    assert_eq!(r.failures, 0, "{name}: {:#?}", r.findings);
    assert_eq!(r.inputs, iterations);
    // The unmutated seeds (every 16th input) parse; most mutants are refused.
    assert!(
        r.accepted >= iterations / 16,
        "{name}: {} accepted",
        r.accepted
    );
    assert!(r.accepted < iterations, "{name}: everything accepted");
}

#[test]
fn onnx_import_survives_mutation() {
    fuzz_clean("onnx", 10_000);
}

#[test]
fn dsl_survives_mutation() {
    fuzz_clean("dsl", 10_000);
}

#[test]
fn ir_text_survives_mutation() {
    fuzz_clean("ir", 10_000);
}

#[test]
fn plan_file_survives_mutation() {
    fuzz_clean("plan", 10_000);
}

#[test]
fn weights_file_survives_mutation() {
    fuzz_clean("weights", 10_000);
}

#[test]
fn safetensors_survive_mutation() {
    fuzz_clean("safetensors", 10_000);
}
