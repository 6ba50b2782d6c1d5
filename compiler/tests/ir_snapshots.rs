//! Snapshots of the fused IR of every committed model (and of the DSL GPT-2 at a small size).

mod common;

use ciphergpt_compiler::ir::render;
use ciphergpt_compiler::model::{self, ModelSpec};

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
    let graph = common::dsl_gpt2_small_config();
    insta::assert_snapshot!("dsl-gpt2-small-config", render(&graph));
}
