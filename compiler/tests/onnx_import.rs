//! ONNX import: every committed export, run by the float interpreter straight after import
//! (ONNX-level graph) and after the passes (fused graph), matches onnxruntime's logits.

mod common;

use ciphergpt_compiler::frontend::onnx;

#[test]
fn imported_graphs_match_onnxruntime() {
    for (model, exporter, path) in common::onnx_models() {
        let graph = onnx::load(&path).unwrap_or_else(|e| panic!("{e}"));
        common::assert_matches_reference(&graph, &path, &format!("{model}.{exporter}"));
    }
}

#[test]
fn fused_graphs_match_onnxruntime_and_are_high_level() {
    for (model, exporter, path) in common::onnx_models() {
        let mut graph = onnx::load(&path).unwrap_or_else(|e| panic!("{e}"));
        ciphergpt_compiler::passes::run(&mut graph, ciphergpt_compiler::passes::DEFAULT_PASSES)
            .unwrap_or_else(|e| panic!("{e}"));
        let ir = ciphergpt_compiler::ir::render(&graph);
        if let Err(e) = ciphergpt_compiler::passes::require_high_level(&graph) {
            panic!("{model}.{exporter}: {e}\n{ir}");
        }
        common::assert_matches_reference(&graph, &path, &format!("{model}.{exporter}"));
    }
}
