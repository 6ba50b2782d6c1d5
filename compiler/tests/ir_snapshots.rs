//! Snapshots of the fused IR of every committed model (and of the DSL GPT-2 at a small size).

mod common;

use ciphergpt_compiler::ir::render;
use ciphergpt_compiler::model::{self, ModelSpec};
use std::path::PathBuf;

#[test]
fn fused_ir_of_committed_models() {
    for (model, exporter, path) in common::onnx_models() {
        let graph = model::load(&ModelSpec {
            path,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(format!("{model}.{exporter}"), render(&graph));
    }
}

#[test]
fn fused_ir_of_dsl_gpt2() {
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
    let graph = model::load(&spec).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!("dsl-gpt2-small-config", render(&graph));
}
