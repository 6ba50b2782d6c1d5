//! Shared helpers for the compiler's integration tests: the committed models and their
//! onnxruntime reference outputs (written by models/export.py).

#![allow(dead_code)]

use std::path::PathBuf;

pub mod cells;

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Every committed ONNX export: (model name, exporter, path).
pub fn onnx_models() -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(models_dir()).expect("models/ exists") {
        let p = entry.expect("dir entry").path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".onnx") {
            if let Some((model, exporter)) = stem.rsplit_once('.') {
                out.push((model.to_string(), exporter.to_string(), p.clone()));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no committed ONNX models found");
    out
}

/// A reference case: token ids and the onnxruntime logits, `[T][V]`.
pub struct RefCase {
    pub tokens: Vec<i64>,
    pub logits: Vec<Vec<f32>>,
}

/// The reference cases stored beside an ONNX file (`X.onnx` → `X.ref.safetensors`).
pub fn reference(onnx: &std::path::Path) -> Vec<RefCase> {
    let p = onnx.with_extension("ref.safetensors");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("reference file parses");
    let mut cases = Vec::new();
    for i in 0.. {
        let (Ok(tok), Ok(log)) = (
            st.tensor(&format!("tokens_{i}")),
            st.tensor(&format!("logits_{i}")),
        ) else {
            break;
        };
        let tokens: Vec<i64> = tok
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let v = log.shape()[1];
        let flat: Vec<f32> = log
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        cases.push(RefCase {
            tokens,
            logits: flat.chunks(v).map(|r| r.to_vec()).collect(),
        });
    }
    assert!(!cases.is_empty(), "{}: no cases", p.display());
    cases
}

/// Max absolute difference between interpreter logits `[1, T, V]` and the reference rows.
pub fn max_abs_diff(got: &ciphergpt_compiler::tensor::Tensor, want: &[Vec<f32>]) -> f32 {
    let a = got.as_f32().expect("f32 logits");
    let v = want[0].len();
    assert_eq!(a.len(), want.len() * v, "logits shape {:?}", a.shape());
    let flat: Vec<f32> = a.iter().copied().collect();
    flat.chunks(v)
        .zip(want)
        .flat_map(|(g, w)| g.iter().zip(w).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

/// Largest accepted difference from onnxruntime's logits.
pub const TOLERANCE: f32 = 1e-4;

/// Run `graph` on every reference case of `onnx` and require onnxruntime's logits to [`TOLERANCE`].
pub fn assert_matches_reference(
    graph: &ciphergpt_compiler::ir::Graph,
    onnx: &std::path::Path,
    label: &str,
) {
    for case in reference(onnx) {
        let out = ciphergpt_compiler::interp::float::run(graph, &case.tokens)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let d = max_abs_diff(&out[0].1, &case.logits);
        assert!(
            d <= TOLERANCE,
            "{label} T={}: max abs diff {d}",
            case.tokens.len()
        );
    }
}

/// The held-out prompts of the trained model (5 lines of `models/eval-prompts.txt`), as byte
/// token ids.
pub fn eval_prompts() -> Vec<Vec<i64>> {
    include_str!("../../../models/eval-prompts.txt")
        .lines()
        .map(|l| l.bytes().map(i64::from).collect())
        .collect()
}

/// The plan's greedy continuations of the held-out prompts (32 tokens each) against the float
/// model's: all 160 tokens compared, at least 99% equal.
pub fn assert_greedy_agrees(
    graph: &ciphergpt_compiler::ir::Graph,
    compiled: &ciphergpt_compiler::fixed::Compiled,
    what: &str,
) -> ciphergpt_compiler::fixed::accuracy::AccuracyReport {
    let prompts = eval_prompts();
    let r = ciphergpt_compiler::fixed::accuracy::accuracy(graph, compiled, &prompts, 32)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.greedy_tokens, 160, "{what}");
    assert!(
        r.greedy_rate() >= 0.99,
        "{what}: greedy agreement {}/{} at ring {} bits",
        r.greedy_agree,
        r.greedy_tokens,
        r.ring_bits
    );
    r
}

/// The DSL GPT-2 (`examples/gpt2.cgpt`, seed 1) at a small configuration (2 layers of width 48,
/// 3 heads, 300 tokens, 32 positions), fused: what the snapshot and round-trip tests read.
pub fn dsl_gpt2_small_config() -> ciphergpt_compiler::ir::Graph {
    use ciphergpt_compiler::model::{self, ModelSpec};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let spec = ModelSpec {
        path: root.join("examples/gpt2.cgpt"),
        weights: None,
        seed: Some(1),
        overrides: model::parse_overrides(&[
            "vocab=300,positions=32,width=48,heads=3,layers=2".into()
        ])
        .unwrap(),
    };
    model::load(&spec).unwrap_or_else(|e| panic!("{e}"))
}
