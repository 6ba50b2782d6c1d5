//! The IR text form is a faithful serialization: for every committed ONNX model (as imported,
//! and fused), and for the DSL GPT-2 of the snapshot tests, render → parse (with the real
//! constants) → render gives the same text, and the parsed graph computes the same logits; the
//! passes fuse a parsed import to the same operations as the original.

mod common;

use ciphergpt_compiler::frontend::onnx;
use ciphergpt_compiler::interp::float;
use ciphergpt_compiler::ir::{op_sequence, parse, parse_with, render, Graph};
use ciphergpt_compiler::model::{self, ModelSpec};
use ciphergpt_compiler::passes;

/// Token ids the graphs are run on (every model's vocabulary holds them).
const TOKENS: [i64; 4] = [5, 71, 0, 200];

/// Render, parse back with `graph`'s constants, render again; require the same text and the
/// same outputs. Returns the parsed graph.
fn round_trip(label: &str, graph: &Graph) -> Graph {
    let text = render(graph);
    let constants = parse::named_constants(graph);
    let back = parse_with(&text, &|name| constants.get(name).cloned())
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let again = render(&back);
    if again != text {
        let (i, (a, b)) = text
            .lines()
            .zip(again.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, ("(lengths differ)", "")));
        panic!(
            "{label}: line {} differs after parsing:\n  {a}\n  {b}",
            i + 1
        );
    }
    let want = float::run(graph, &TOKENS).unwrap_or_else(|e| panic!("{label}: {e}"));
    let got = float::run(&back, &TOKENS).unwrap_or_else(|e| panic!("{label} (parsed): {e}"));
    assert_eq!(got.len(), want.len(), "{label}: number of outputs");
    for ((gn, g), (wn, w)) in got.iter().zip(&want) {
        assert_eq!(gn, wn, "{label}: output names");
        // The same operations on the same values, in the same order: bit for bit equal.
        assert_eq!(g, w, "{label}: output {gn} differs after parsing");
    }
    back
}

#[test]
fn onnx_models_round_trip_as_imported_and_fused() {
    for (model, exporter, path) in common::onnx_models() {
        let label = format!("{model}.{exporter}");
        let mut graph = onnx::load(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
        let mut parsed = round_trip(&format!("{label} (imported)"), &graph);
        passes::run_default(&mut graph).unwrap_or_else(|e| panic!("{label}: {e}"));
        round_trip(&format!("{label} (fused)"), &graph);
        // The passes see the parsed import as they see the original: the same fused ops
        // (names of folded constants aside, which come from the unprinted op names).
        passes::run_default(&mut parsed).unwrap_or_else(|e| panic!("{label} (parsed): {e}"));
        assert_eq!(
            op_sequence(&parsed),
            op_sequence(&graph),
            "{label}: the passes fuse the parsed import differently"
        );
        assert_eq!(
            float::run(&parsed, &TOKENS).unwrap(),
            float::run(&graph, &TOKENS).unwrap(),
            "{label}: the fused parsed import computes other logits"
        );
    }
}

#[test]
fn dsl_gpt2_round_trips() {
    let graph = common::dsl_gpt2_small_config();
    round_trip("examples/gpt2.cgpt", &graph);
}

/// Without the constants, the text still parses (placeholders stand in for the weights) into a
/// graph of the same text that runs.
#[test]
fn placeholders_stand_in_for_missing_weights() {
    let (_, _, path) = common::onnx_models().remove(0);
    let graph = model::load(&ModelSpec {
        path,
        ..Default::default()
    })
    .unwrap();
    let text = render(&graph);
    let back = parse(&text).unwrap();
    assert_eq!(render(&back), text);
    let out = float::run(&back, &TOKENS).unwrap();
    let want = float::run(&graph, &TOKENS).unwrap();
    assert_eq!(out[0].1.shape(), want[0].1.shape());
    assert_ne!(out[0].1, want[0].1, "placeholders are not the real weights");
}
