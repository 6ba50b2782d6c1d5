//! Per-cell checks of the import matrix, shared by the transformers-4 and transformers-5 tests
//! (`onnx_tf4.rs`, `onnx_tf5.rs`): a committed file, fused; its float model against
//! onnxruntime's references; its fixed-point plan against the float model.

use ciphergpt_compiler::fixed::{self, simulate::Simulator};
use ciphergpt_compiler::interp::float;
use ciphergpt_compiler::ir::{Graph, Op};
use ciphergpt_compiler::model::{self, ModelSpec};
use onnx_protobuf::{Message, ModelProto};
use std::path::{Path, PathBuf};

pub fn path(file: &str) -> PathBuf {
    super::models_dir().join(file)
}

pub fn proto(p: &Path) -> ModelProto {
    ModelProto::parse_from_bytes(&std::fs::read(p).unwrap()).unwrap()
}

/// The file's default-domain opset and whether it has a node of each op type asked about.
pub fn opset_and_ops(file: &str, ops: &[&str]) -> (Option<i64>, Vec<bool>) {
    let m = proto(&path(file));
    let opset = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty())
        .map(|o| o.version);
    let g = m.graph.as_ref().unwrap();
    let has = |op: &str| g.node.iter().any(|n| n.op_type == op);
    (opset, ops.iter().map(|op| has(op)).collect())
}

/// How many of the file's initializers are stored in external data.
pub fn external_initializers(file: &str) -> usize {
    let m = proto(&path(file));
    let g = m.graph.as_ref().unwrap();
    g.initializer
        .iter()
        .filter(|t| t.data_location.value() == 1)
        .count()
}

/// A cell keeps initializers in an external data file exactly when its name says `external`.
pub fn assert_external_as_named(file: &str) {
    let external = external_initializers(file);
    assert_eq!(
        external > 0,
        file.contains("external"),
        "{file}: {external} external"
    );
}

pub fn fused(p: &Path) -> Graph {
    model::load(&ModelSpec {
        path: p.to_path_buf(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Require the fused float model of `file` to equal onnxruntime's logits (≤ the tolerance) and
/// argmax on every reference row; returns the largest difference.
pub fn float_equals_onnxruntime(file: &str, graph: &Graph) -> f32 {
    let mut worst = 0.0f32;
    for case in super::reference(&path(file)) {
        let got = float::logit_rows(graph, &case.tokens).unwrap();
        assert_eq!(got.len(), case.tokens.len(), "{file}");
        for (i, (g, w)) in got.iter().zip(&case.logits).enumerate() {
            let d = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            worst = worst.max(d);
            let t = got.len();
            assert!(d <= super::TOLERANCE, "{file} T={t} row {i}: diff {d}");
            assert_eq!(float::argmax(g), float::argmax(w), "{file} T={t} row {i}");
        }
    }
    eprintln!("{file}: max abs logit diff vs onnxruntime {worst:e}");
    worst
}

/// Compile `graph` to a fixed-point plan and require its simulator's top-1 to equal the float
/// top-1 at every position of the reference cases.
pub fn plan_agrees_with_float(file: &str, graph: &Graph) {
    let compiled =
        fixed::compile(graph, &fixed::Options::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let (mut agree, mut total) = (0, 0);
    for case in super::reference(&path(file)) {
        let mut sim = Simulator::new(&compiled.plan, &compiled.weights).unwrap();
        sim.all_rows = true;
        sim.prefill(&case.tokens).unwrap();
        let fl = float::logit_rows(graph, &case.tokens).unwrap();
        assert_eq!(sim.last_logits.len(), fl.len(), "{file}");
        for (row, fx) in fl.iter().zip(&sim.last_logits) {
            agree += usize::from(float::argmax(row) == fixed::semantics::argmax(fx).unwrap());
            total += 1;
        }
    }
    eprintln!("{file}: fixed-point top-1 = float top-1 at {agree}/{total} positions");
    assert_eq!(agree, total, "{file}: top-1 agreement {agree}/{total}");
}

pub fn attention_ops(graph: &Graph) -> Vec<String> {
    ciphergpt_compiler::ir::op_sequence(graph)
        .into_iter()
        .filter(|o| o.starts_with("attention"))
        .collect()
}

/// Require the fused `logits` to read its own projection, not the token table: an untied head.
pub fn assert_head_is_untied(file: &str, graph: &Graph) {
    let table = |op: fn(&Op) -> bool| {
        let id = graph
            .g
            .node_indices()
            .find(|&i| op(&graph.node(i).op))
            .unwrap_or_else(|| panic!("{file}: no such operation"));
        graph
            .const_value(graph.input(id, 1).unwrap())
            .unwrap()
            .clone()
    };
    let wte = table(|o| matches!(o, Op::Embedding));
    let head = table(|o| matches!(o, Op::Logits));
    assert_eq!(wte.shape(), head.shape(), "{file}");
    assert_ne!(wte, head, "{file}");
}
