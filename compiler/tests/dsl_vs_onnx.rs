//! The DSL description of GPT-2 loaded with the trained model's safetensors computes the same
//! logits as the model's ONNX exports (checked against onnxruntime's), and after the passes both
//! front ends give the same fused op sequence.

mod common;

use ciphergpt_compiler::ir::op_sequence;
use ciphergpt_compiler::model::{self, ModelSpec};
use std::path::PathBuf;

fn trained_dsl() -> ciphergpt_compiler::ir::Graph {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let spec = ModelSpec {
        path: root.join("examples/gpt2.cgpt"),
        weights: Some(root.join("models/tiny-trained.safetensors")),
        seed: None,
        overrides: model::parse_overrides(&[
            "vocab=256,positions=128,width=128,heads=4,layers=2".into()
        ])
        .unwrap(),
    };
    model::load(&spec).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn dsl_logits_match_onnxruntime() {
    let graph = trained_dsl();
    let onnx = common::models_dir().join("tiny-trained.torchscript.onnx");
    common::assert_matches_reference(&graph, &onnx, "DSL gpt2.cgpt with tiny-trained weights");
}

#[test]
fn dsl_and_onnx_give_the_same_op_sequence() {
    let dsl = op_sequence(&trained_dsl());
    assert!(dsl.len() > 10, "{dsl:?}");
    for (model, exporter, path) in common::onnx_models() {
        if model != "tiny-trained" {
            continue;
        }
        let onnx = model::load(&ModelSpec {
            path,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(op_sequence(&onnx), dsl, "{model}.{exporter}");
    }
}
