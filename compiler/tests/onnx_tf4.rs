//! The transformers-4 cells of the import matrix written by models/export.py (torch 2.7.1,
//! transformers 4.49): a random `tiny-tf4` (vocab 256, 2 layers × 64 wide, 4 heads) with eager
//! attention from both exporters (TorchScript at opsets 14 and 17, dynamo at 18; asked for 20 or
//! 23, this exporter writes opset 18, so those cells are not committed), with sdpa from dynamo at
//! 18 with the exporter's external data; and DistilGPT2's
//! depth and head count and an untied head, each from both exporters with sdpa. Each file is what
//! it claims to be, fuses to the GPT operations, and its float model equals onnxruntime's logits
//! and argmax (the per-cell checks are shared with `onnx_tf5.rs`). That each compiles to a
//! fixed-point plan whose simulator agrees with the float top-1 is checked, for every committed
//! file, by `fixed_point.rs` (compiling takes seconds per model, so it is not repeated here).

mod common;

use ciphergpt_compiler::ir::op_sequence;
use common::cells::{
    assert_external_as_named, assert_head_is_untied, attention_ops, float_equals_onnxruntime,
    fused, opset_and_ops, path,
};

/// (file, attention implementation, opset) of `tiny-tf4`.
const CELLS: &[(&str, &str, i64)] = &[
    ("tiny-tf4.torchscript14-eager.onnx", "eager", 14),
    ("tiny-tf4.torchscript17-eager.onnx", "eager", 17),
    ("tiny-tf4.dynamo18-eager.onnx", "eager", 18),
    // Initializers in `.onnx.data`, as the exporter writes them.
    ("tiny-tf4.dynamo18-sdpa-external.onnx", "sdpa", 18),
];

/// DistilGPT2's depth and head count (6 layers, 12 heads of width 4), and an untied head.
const SHAPES: &[(&str, i64)] = &[
    ("tiny-distil.tf4-torchscript17-sdpa.onnx", 17),
    ("tiny-distil.tf4-dynamo18-sdpa.onnx", 18),
    ("tiny-untied.tf4-torchscript17-sdpa.onnx", 17),
    ("tiny-untied.tf4-dynamo18-sdpa.onnx", 18),
];

#[test]
fn every_cell_is_committed_with_its_opset() {
    let cells = CELLS.iter().map(|&(f, _, o)| (f, o));
    for (file, opset) in cells.chain(SHAPES.iter().copied()) {
        let (got, has) = opset_and_ops(file, &["CumSum", "LayerNormalization"]);
        assert_eq!(got, Some(opset), "{file}");
        assert!(!has[0], "{file}: transformers 4 builds no mask from CumSum");
        // Below opset 17 the TorchScript exporter decomposes LayerNorm.
        assert_eq!(has[1], opset >= 17, "{file}");
        assert_external_as_named(file);
    }
}

#[test]
fn every_cell_fuses_to_the_same_gpt_and_equals_onnxruntime() {
    let first = fused(&path(CELLS[0].0));
    assert_eq!(attention_ops(&first).len(), 2);
    let first = op_sequence(&first);
    for &(file, _, _) in CELLS {
        let graph = fused(&path(file));
        assert_eq!(op_sequence(&graph), first, "{file}");
        float_equals_onnxruntime(file, &graph);
    }
}

#[test]
fn distilgpt2_shape_and_untied_head_equal_onnxruntime() {
    for &(file, _) in SHAPES {
        let graph = fused(&path(file));
        let attn = attention_ops(&graph);
        let (layers, heads) = if file.starts_with("tiny-distil") {
            (6, "heads=12")
        } else {
            (2, "heads=4")
        };
        assert_eq!(attn.len(), layers, "{file}: {attn:?}");
        assert!(attn.iter().all(|a| a.contains(heads)), "{file}: {attn:?}");
        if file.starts_with("tiny-untied") {
            // The fused `logits` reads the file's own projection, not the token table.
            assert_head_is_untied(file, &graph);
        }
        float_equals_onnxruntime(file, &graph);
    }
}
