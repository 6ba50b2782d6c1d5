//! The transformers-5 cells of the import matrix (models/export_tf5.py: torch 2.15 dynamo,
//! transformers 5.25, attention eager and sdpa at opsets 18, 20 and 23, and sdpa at 20 with the
//! exporter's external data): each file is what it
//! claims to be, imports and fuses, equals onnxruntime's logits and argmax, and compiles to a
//! fixed-point plan whose simulator agrees with the float top-1. The reference lengths (1, 7, 16)
//! are not among the lengths folding probes (2, 3, 4, 6), so the folded mask and positions are
//! checked at lengths they were not derived from. The trained byte-level model exported the same
//! way is checked against onnxruntime and for greedy agreement, and random models of DistilGPT2's
//! depth and head count and with an untied head against onnxruntime and their plans. Also: the one-line errors of the standard
//! `Attention` operator's refused forms, and of a secret value at an operator the plan cannot run.

mod common;

use ciphergpt_compiler::fixed;
use ciphergpt_compiler::frontend::onnx;
use ciphergpt_compiler::interp::float;
use ciphergpt_compiler::ir::{Dim, Graph, Op, TensorType};
use ciphergpt_compiler::passes;
use ciphergpt_compiler::tensor::DType;
use common::cells::{
    assert_external_as_named, assert_head_is_untied, attention_ops, float_equals_onnxruntime,
    fused, opset_and_ops, path, plan_agrees_with_float, proto,
};
use onnx_protobuf::Message;

/// (file, attention implementation, opset).
const CELLS: &[(&str, &str, i64)] = &[
    ("tiny-tf5.dynamo18-eager.onnx", "eager", 18),
    ("tiny-tf5.dynamo20-eager.onnx", "eager", 20),
    ("tiny-tf5.dynamo23-eager.onnx", "eager", 23),
    ("tiny-tf5.dynamo18-sdpa.onnx", "sdpa", 18),
    ("tiny-tf5.dynamo20-sdpa.onnx", "sdpa", 20),
    ("tiny-tf5.dynamo23-sdpa.onnx", "sdpa", 23),
    // Initializers in `.onnx.data`, as the exporter writes them.
    ("tiny-tf5.dynamo20-sdpa-external.onnx", "sdpa", 20),
];

#[test]
fn every_cell_is_committed_with_its_opset_and_attention_form() {
    for &(file, attn, opset) in CELLS {
        let (got, has) = opset_and_ops(file, &["Attention", "IsNaN", "GatherND", "CumSum"]);
        assert_eq!(got, Some(opset), "{file}");
        // sdpa at opset 23 is the standard operator; below it, a decomposition with a NaN guard.
        assert_eq!(has[0], attn == "sdpa" && opset == 23, "{file}");
        assert_eq!(has[1], attn == "sdpa" && opset < 23, "{file}");
        assert!(has[2] && has[3], "{file}: the transformers-5 mask");
        assert_external_as_named(file);
    }
}

#[test]
fn float_logits_and_argmax_equal_onnxruntime() {
    for &(file, _, _) in CELLS {
        float_equals_onnxruntime(file, &fused(&path(file)));
    }
}

#[test]
fn every_cell_fuses_to_the_same_gpt_and_compiles_to_a_plan_that_agrees() {
    let first = fused(&path(CELLS[0].0));
    assert_eq!(attention_ops(&first).len(), 2);
    let first = ciphergpt_compiler::ir::op_sequence(&first);
    for &(file, _, _) in CELLS {
        let graph = fused(&path(file));
        assert_eq!(ciphergpt_compiler::ir::op_sequence(&graph), first, "{file}");
        plan_agrees_with_float(file, &graph);
    }
}

/// DistilGPT2's depth and head count (6 layers, 12 heads of width 4), sdpa at opset 20.
#[test]
fn distilgpt2_shaped_model_matches_and_compiles() {
    let file = "tiny-distil.tf5-dynamo20-sdpa.onnx";
    let graph = fused(&path(file));
    let attn = attention_ops(&graph);
    assert_eq!(attn.len(), 6, "{attn:?}");
    assert!(attn.iter().all(|a| a.contains("heads=12")), "{attn:?}");
    float_equals_onnxruntime(file, &graph);
    plan_agrees_with_float(file, &graph);
}

/// An untied head: the fused `logits` reads the file's own projection, not the token table.
#[test]
fn untied_head_is_its_own_table() {
    let file = "tiny-untied.tf5-dynamo20-sdpa.onnx";
    let graph = fused(&path(file));
    assert_head_is_untied(file, &graph);
    float_equals_onnxruntime(file, &graph);
    plan_agrees_with_float(file, &graph);
}

/// The trained byte-level model exported today (transformers 5, sdpa, the exporter's default
/// opset 20): the float model equals onnxruntime, and the fixed-point plan's greedy
/// continuations of the held-out prompts agree with the float model's.
#[test]
fn trained_model_exported_today_matches_and_its_plan_agrees() {
    let p = path("tiny-trained.tf5-dynamo20-sdpa.onnx");
    let graph = fused(&p);
    float_equals_onnxruntime("tiny-trained.tf5-dynamo20-sdpa.onnx", &graph);
    let compiled =
        fixed::compile(&graph, &fixed::Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let r = common::assert_greedy_agrees(&graph, &compiled, "tiny-trained.tf5-dynamo20-sdpa");
    eprintln!(
        "tiny-trained.tf5-dynamo20-sdpa: greedy {}/{}, ring {} bits",
        r.greedy_agree, r.greedy_tokens, r.ring_bits
    );
}

/// The opset-23 file with its `Attention` node edited by `edit`, loaded and fused.
fn edited_attention(edit: impl Fn(&mut onnx_protobuf::NodeProto)) -> Result<Graph, String> {
    let p = path("tiny-tf5.dynamo23-sdpa.onnx");
    let mut m = proto(&p);
    let g = m.graph.as_mut().unwrap();
    for n in g.node.iter_mut().filter(|n| n.op_type == "Attention") {
        edit(n);
    }
    let bytes = m.write_to_bytes().unwrap();
    let mut graph =
        onnx::load_bytes(&bytes, "edited.onnx", p.parent().unwrap()).map_err(|e| e.to_string())?;
    passes::run_default(&mut graph).map_err(|e| e.to_string())?;
    Ok(graph)
}

fn one_line(e: &str, parts: &[&str]) {
    assert!(!e.contains('\n'), "{e}");
    for p in parts {
        assert!(e.contains(p), "'{p}' missing from: {e}");
    }
}

#[test]
fn attention_operator_flags_and_refused_forms() {
    // is_causal instead of the boolean mask input: the same attention.
    let causal = edited_attention(|n| {
        n.input.truncate(3);
        for a in n.attribute.iter_mut().filter(|a| a.name == "is_causal") {
            a.i = 1;
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let want = fused(&path("tiny-tf5.dynamo23-sdpa.onnx"));
    let toks = [84, 104, 101, 32, 76, 79, 82, 68];
    assert_eq!(
        float::logit_rows(&causal, &toks).unwrap(),
        float::logit_rows(&want, &toks).unwrap()
    );
    // Neither mask nor is_causal: not causal, so not a GPT's attention; named in one line.
    let e = edited_attention(|n| n.input.truncate(3)).unwrap_err();
    one_line(
        &e,
        &[
            "edited.onnx",
            "'node_scaled_dot_product_attention' (Attention)",
            "secret value",
            "expected it inside",
            "attention",
            "hint:",
        ],
    );
    let e = edited_attention(|n| {
        for a in n.attribute.iter_mut().filter(|a| a.name == "softcap") {
            a.f = 30.0;
        }
    })
    .unwrap_err();
    one_line(
        &e,
        &[
            "'node_scaled_dot_product_attention'",
            "Attention",
            "softcap 30",
        ],
    );
    // The onnxruntime contrib operator of the same name is a fusion, the standard one is not.
    let e = edited_attention(|n| n.domain = "com.microsoft".into()).unwrap_err();
    one_line(&e, &["Attention", "com.microsoft", "onnxruntime fusion"]);
}

#[test]
fn secret_value_at_an_operator_the_plan_cannot_run_is_named() {
    let mut g = Graph::new("hand.onnx");
    let ids = g.add_input(
        "ids",
        TensorType::new(DType::I64, vec![Dim::known(1), Dim::SEQ]),
    );
    let x = g.add("as_float", Op::Cast { to: DType::F32 }, &[ids.into()]);
    let nan = g.add("guard", Op::IsNaN, &[x.into()]);
    g.outputs.push(("y".into(), nan.into()));
    let e = passes::run_default(&mut g).unwrap_err().to_string();
    one_line(
        &e,
        &[
            "hand.onnx",
            "node 'as_float' (Cast)",
            "reads a secret value (input 0, from node 'ids' (input)",
            "expected it inside embedding",
        ],
    );
}
