//! The DSL front end: examples/gpt2.cgpt at small sizes, seeded and safetensors weights, and
//! located errors.
//! One test binary, a file per concern: the example and its seeded weights (`example`),
//! safetensors and the committed trained model (`weights`), located errors (`errors`).

#[path = "../common/mod.rs"]
mod common;

use ciphergpt_compiler::frontend::dsl::{load, load_str, WeightSource};
use ciphergpt_compiler::ir::{op_sequence, Graph, Op};
use ciphergpt_compiler::CompileError;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/gpt2.cgpt")
}

fn example_text() -> String {
    std::fs::read_to_string(example()).expect("examples/gpt2.cgpt exists")
}

fn sets(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("name=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A small size used by most tests: V=40, P=16, C=24, H=3, L=2.
const SMALL: &str = "vocab=40,positions=16,width=24,heads=3,layers=2";

/// GPT-2's parameter count with the output projection tied to the token table.
fn gpt2_params(v: usize, p: usize, c: usize, l: usize) -> usize {
    v * c + p * c + l * (12 * c * c + 13 * c) + 2 * c
}

/// The constant node of a tensor name.
fn weight<'g>(g: &'g Graph, name: &str) -> &'g ndarray::ArrayD<f32> {
    let id =
        g.g.node_indices()
            .find(|&n| g.g[n].name == name && matches!(g.g[n].op, Op::Const(_)))
            .unwrap_or_else(|| panic!("no const node {name}"));
    match &g.g[id].op {
        Op::Const(t) => t.as_f32().expect("f32 weight"),
        _ => unreachable!(),
    }
}

fn dsl_error(r: Result<Graph, CompileError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "error is not one line: {s}");
            s
        }
    }
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn line_col_of(text: &str, needle: &str) -> (usize, usize) {
    let pos = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let col = pos - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// HF GPT-2 tensors for the given size, each filled with distinct values derived from its
/// index, plus the attention-mask buffers that some checkpoints hold.
fn hf_tensors(v: usize, p: usize, c: usize, l: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut specs: Vec<(String, Vec<usize>)> = vec![
        ("transformer.wte.weight".into(), vec![v, c]),
        ("transformer.wpe.weight".into(), vec![p, c]),
    ];
    for i in 0..l {
        let h = |s: &str| format!("transformer.h.{i}.{s}");
        specs.extend([
            (h("ln_1.weight"), vec![c]),
            (h("ln_1.bias"), vec![c]),
            (h("attn.c_attn.weight"), vec![c, 3 * c]),
            (h("attn.c_attn.bias"), vec![3 * c]),
            (h("attn.c_proj.weight"), vec![c, c]),
            (h("attn.c_proj.bias"), vec![c]),
            (h("ln_2.weight"), vec![c]),
            (h("ln_2.bias"), vec![c]),
            (h("mlp.c_fc.weight"), vec![c, 4 * c]),
            (h("mlp.c_fc.bias"), vec![4 * c]),
            (h("mlp.c_proj.weight"), vec![4 * c, c]),
            (h("mlp.c_proj.bias"), vec![c]),
            (h("attn.bias"), vec![1, 1, p, p]),
        ]);
    }
    specs.extend([
        ("transformer.ln_f.weight".into(), vec![c]),
        ("transformer.ln_f.bias".into(), vec![c]),
    ]);
    specs
        .into_iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let vals = (0..n)
                .map(|j| t as f32 + (j as f32) * 1e-3 - 0.25)
                .collect();
            (name, shape, vals)
        })
        .collect()
}

fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| match dtype {
            Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::F64 => v.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
                .collect(),
            _ => panic!("unsupported in test"),
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.clone(),
                TensorView::new(dtype, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let data = safetensors::serialize(views, &None).unwrap();
    std::fs::write(path, data).unwrap();
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ciphergpt-dsl-{}-{tag}.safetensors",
        std::process::id()
    ))
}

/// The `--set` list for a model of models/manifest.json (Hugging Face config names).
fn manifest_sets(config: &serde_json::Value) -> String {
    let n = |k: &str| {
        config[k]
            .as_u64()
            .unwrap_or_else(|| panic!("manifest: {k}"))
    };
    let gelu = match config["activation_function"].as_str() {
        Some("gelu") => "erf",
        _ => "tanh",
    };
    format!(
        "vocab={},positions={},width={},heads={},layers={},gelu={gelu}",
        n("vocab_size"),
        n("n_positions"),
        n("n_embd"),
        n("n_head"),
        n("n_layer")
    )
}

fn manifest_models() -> Vec<(String, String, usize)> {
    let text = std::fs::read_to_string(common::models_dir().join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let models = m["models"].as_object().expect("manifest has models");
    assert!(!models.is_empty());
    models
        .iter()
        .map(|(name, v)| {
            let mut n = v["n_params"].as_u64().expect("n_params") as usize;
            let c = &v["config"];
            if c["tie_word_embeddings"] == false {
                // The DSL ties the projection to the token table; an untied model's head is
                // one more vocab × width table.
                n -= (c["vocab_size"].as_u64().unwrap() * c["n_embd"].as_u64().unwrap()) as usize;
            }
            (name.clone(), manifest_sets(c), n)
        })
        .collect()
}

mod errors;
mod example;
mod weights;
