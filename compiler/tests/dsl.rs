//! The DSL front end: examples/gpt2.cgpt at small sizes, seeded and safetensors weights, and
//! located errors.

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

// ----- the example

#[test]
fn example_small_has_the_gpt2_op_structure() {
    let g = load(&example(), &WeightSource::Seed(1), &sets(SMALL)).unwrap();
    let ops = op_sequence(&g);
    let count = |prefix: &str| ops.iter().filter(|o| o.starts_with(prefix)).count();
    let l = 2;
    assert_eq!(count("embedding"), 1);
    assert_eq!(count("layer_norm"), 2 * l + 1);
    assert_eq!(count("linear"), 4 * l);
    assert_eq!(count("attention"), l);
    assert_eq!(count("gelu"), l);
    assert_eq!(count("residual_add"), 2 * l);
    assert_eq!(count("logits"), 1);
    assert_eq!(ops.len(), 10 * l + 3);
    // One block, in order, with attributes and types (head size 8: scale 1/√8).
    let scale = 1.0f32 / (8.0f32).sqrt();
    let block = [
        "layer_norm {eps=1e-5} : f32[1,T,24]".to_string(),
        "linear : f32[1,T,72]".to_string(),
        format!("attention {{heads=3 scale={scale}}} : f32[1,T,24]"),
        "linear : f32[1,T,24]".to_string(),
        "residual_add : f32[1,T,24]".to_string(),
        "layer_norm {eps=1e-5} : f32[1,T,24]".to_string(),
        "linear : f32[1,T,96]".to_string(),
        "gelu {form=tanh} : f32[1,T,96]".to_string(),
        "linear : f32[1,T,24]".to_string(),
        "residual_add : f32[1,T,24]".to_string(),
    ];
    assert_eq!(ops[0], "embedding : f32[1,T,24]");
    assert_eq!(&ops[1..11], &block);
    assert_eq!(&ops[11..21], &block);
    assert_eq!(ops[21], "layer_norm {eps=1e-5} : f32[1,T,24]");
    assert_eq!(ops[22], "logits : f32[1,T,40]");

    assert_eq!(g.outputs.len(), 1);
    assert_eq!(g.outputs[0].0, "logits");
    assert_eq!(g.ty(g.outputs[0].1).unwrap().to_string(), "f32[1,T,40]");
    assert_eq!(g.parameter_count(), gpt2_params(40, 16, 24, 2));
    assert_eq!(g.input_nodes().len(), 1);
    assert_eq!(
        g.ty(g.input_nodes()[0].into()).unwrap().to_string(),
        "i64[1,T]"
    );
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

#[test]
fn parameter_counts_match_hugging_face() {
    // Independent facts: Hugging Face's parameter count of GPT-2 small, and of each committed
    // test model (models/manifest.json, n_params, counted by transformers).
    assert_eq!(gpt2_params(50257, 1024, 768, 12), 124_439_808);
    for (model, set, n) in manifest_models() {
        let g = load(&example(), &WeightSource::Seed(3), &sets(&set)).unwrap();
        assert_eq!(g.parameter_count(), n, "{model}: {set}");
    }
}

#[test]
fn logits_are_tied_to_the_token_table() {
    let g = load(&example(), &WeightSource::Seed(1), &sets(SMALL)).unwrap();
    let logits = g.outputs[0].1.node;
    let embedding =
        g.g.node_indices()
            .find(|&n| g.g[n].op == Op::Embedding)
            .unwrap();
    let wte_of = |id| g.input(id, 1).unwrap().node;
    assert_eq!(wte_of(logits), wte_of(embedding));
    assert_eq!(g.g[wte_of(logits)].name, "transformer.wte.weight");
}

#[test]
fn gelu_form_follows_the_config() {
    let g = load(
        &example(),
        &WeightSource::Seed(1),
        &sets(&format!("{SMALL},gelu=erf")),
    )
    .unwrap();
    let ops = op_sequence(&g);
    assert_eq!(
        ops.iter()
            .filter(|o| o.starts_with("gelu {form=erf}"))
            .count(),
        2
    );
    assert!(!ops.iter().any(|o| o.contains("form=tanh")));
}

#[test]
fn layers_zero_is_embedding_then_logits() {
    let g = load(
        &example(),
        &WeightSource::Seed(1),
        &sets("vocab=10,positions=4,width=8,heads=2,layers=0"),
    )
    .unwrap();
    assert_eq!(
        op_sequence(&g),
        [
            "embedding : f32[1,T,8]",
            "layer_norm {eps=1e-5} : f32[1,T,8]",
            "logits : f32[1,T,10]"
        ]
    );
}

// ----- seeded weights

#[test]
fn seeded_weights_are_deterministic() {
    let a = load(&example(), &WeightSource::Seed(1), &sets(SMALL)).unwrap();
    let b = load(&example(), &WeightSource::Seed(1), &sets(SMALL)).unwrap();
    let c = load(&example(), &WeightSource::Seed(2), &sets(SMALL)).unwrap();
    for name in [
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.h.1.mlp.c_fc.weight",
    ] {
        assert_eq!(weight(&a, name), weight(&b, name), "{name}");
        assert_ne!(weight(&a, name), weight(&c, name), "{name}");
    }
    // Different tensors of the same shape differ.
    assert_ne!(
        weight(&a, "transformer.h.0.attn.c_proj.weight"),
        weight(&a, "transformer.h.1.attn.c_proj.weight")
    );
    // Changing the model size does not change the values of a tensor whose shape is unchanged.
    let d = load(
        &example(),
        &WeightSource::Seed(1),
        &sets("vocab=40,positions=16,width=24,heads=3,layers=3"),
    )
    .unwrap();
    assert_eq!(
        weight(&a, "transformer.h.1.mlp.c_fc.weight"),
        weight(&d, "transformer.h.1.mlp.c_fc.weight")
    );
}

fn stats(v: &[f32]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt();
    let within = v
        .iter()
        .filter(|&&x| ((x as f64) - mean).abs() <= std)
        .count() as f64
        / n;
    (mean, std, within)
}

#[test]
fn seeded_init_is_gpt2_like() {
    let g = load(
        &example(),
        &WeightSource::Seed(5),
        &sets("vocab=500,positions=64,width=128,heads=4,layers=1"),
    )
    .unwrap();
    // Matrices N(0, 0.02): 64000 samples, so the mean is within 4 standard errors of 0.
    for name in [
        "transformer.wte.weight",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.0.attn.c_attn.weight",
    ] {
        let v: Vec<f32> = weight(&g, name).iter().copied().collect();
        let (mean, std, within) = stats(&v);
        let se = 0.02 / (v.len() as f64).sqrt();
        assert!(mean.abs() < 4.0 * se, "{name}: mean {mean}");
        assert!((std - 0.02).abs() < 0.0004, "{name}: std {std}");
        // A normal distribution has 68.3% of its mass within one standard deviation.
        assert!((within - 0.6827).abs() < 0.01, "{name}: {within}");
    }
    let (_, std, _) = stats(weight(&g, "transformer.wpe.weight").as_slice().unwrap());
    assert!((std - 0.01).abs() < 0.0005, "wpe std {std}");
    for (name, value) in [
        ("transformer.h.0.ln_1.weight", 1.0),
        ("transformer.h.0.ln_1.bias", 0.0),
        ("transformer.h.0.attn.c_attn.bias", 0.0),
        ("transformer.ln_f.weight", 1.0),
        ("transformer.ln_f.bias", 0.0),
    ] {
        assert!(weight(&g, name).iter().all(|&x| x == value), "{name}");
    }
}

// ----- safetensors

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

#[test]
fn safetensors_round_trip() {
    let tensors = hf_tensors(40, 16, 24, 2);
    let path = temp_path("roundtrip");
    write_safetensors(&path, &tensors, Dtype::F32);
    let g = load(
        &example(),
        &WeightSource::Safetensors(path.clone()),
        &sets(SMALL),
    );
    std::fs::remove_file(&path).ok();
    let g = g.unwrap();
    let mut consts = 0;
    for (name, shape, vals) in &tensors {
        if name.ends_with(".attn.bias") {
            // A buffer the DSL does not declare: ignored.
            assert!(!g.g.node_weights().any(|n| &n.name == name));
            continue;
        }
        let w = weight(&g, name);
        assert_eq!(w.shape(), shape.as_slice(), "{name}");
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), *vals, "{name}");
        consts += 1;
    }
    let all_consts =
        g.g.node_weights()
            .filter(|n| matches!(n.op, Op::Const(_)))
            .count();
    assert_eq!(all_consts, consts);
    assert_eq!(g.parameter_count(), gpt2_params(40, 16, 24, 2));
}

#[test]
fn safetensors_other_float_types_are_converted() {
    let tensors = hf_tensors(12, 4, 8, 1);
    for (tag, dtype) in [("f64", Dtype::F64), ("bf16", Dtype::BF16)] {
        let path = temp_path(tag);
        write_safetensors(&path, &tensors, dtype);
        let g = load(
            &example(),
            &WeightSource::Safetensors(path.clone()),
            &sets("vocab=12,positions=4,width=8,heads=2,layers=1"),
        );
        std::fs::remove_file(&path).ok();
        let g = g.unwrap();
        let (name, _, vals) = &tensors[4]; // transformer.h.0.attn.c_attn.weight
        let got = weight(&g, name);
        for (a, b) in got.iter().zip(vals) {
            let tol = if dtype == Dtype::BF16 {
                b.abs() / 128.0
            } else {
                0.0
            };
            assert!((a - b).abs() <= tol, "{tag}: {a} vs {b}");
        }
    }
}

// ----- the committed trained model (models/tiny-trained.safetensors, HF GPT-2 names)

const TRAINED: &str = "vocab=256,positions=128,width=128,heads=4,layers=2";

fn trained() -> PathBuf {
    common::models_dir().join("tiny-trained.safetensors")
}

#[test]
fn trained_model_loads_with_overrides() {
    let g = load(
        &example(),
        &WeightSource::Safetensors(trained()),
        &sets(TRAINED),
    )
    .unwrap();
    // The file's own count: every tensor it holds is a GPT-2 parameter.
    let bytes = std::fs::read(trained()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let in_file: usize = st
        .tensors()
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>())
        .sum();
    assert_eq!(g.parameter_count(), in_file);
    assert_eq!(g.parameter_count(), gpt2_params(256, 128, 128, 2));
    let (_, wte) = st
        .iter()
        .find(|(n, _)| *n == "transformer.wte.weight")
        .unwrap();
    let first: Vec<f32> = wte.data()[..16]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let got = weight(&g, "transformer.wte.weight");
    assert_eq!(got.iter().take(4).copied().collect::<Vec<_>>(), first);
}

#[test]
fn trained_model_at_the_default_size_points_to_set() {
    let msg = dsl_error(load(&example(), &WeightSource::Safetensors(trained()), &[]));
    assert!(
        msg.contains("tiny-trained.safetensors has shape f32[256,128], declared f32[50257,768]"),
        "{msg}"
    );
    assert!(msg.contains("try --set vocab=256,width=128"), "{msg}");
}

#[test]
fn trained_model_matches_its_onnx_export() {
    use ciphergpt_compiler::{frontend::onnx, interp::float, passes};
    let dsl = load(
        &example(),
        &WeightSource::Safetensors(trained()),
        &sets(TRAINED),
    )
    .unwrap();
    for exporter in ["torchscript", "dynamo"] {
        let path = common::models_dir().join(format!("tiny-trained.{exporter}.onnx"));
        let mut fused = onnx::load(&path).unwrap_or_else(|e| panic!("{e}"));
        passes::run_default(&mut fused).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(op_sequence(&dsl), op_sequence(&fused), "{exporter}");
        for case in common::reference(&path) {
            let out = float::run(&dsl, &case.tokens).unwrap_or_else(|e| panic!("{e}"));
            let d = common::max_abs_diff(&out[0].1, &case.logits);
            assert!(
                d <= 1e-4,
                "{exporter} T={}: max abs diff {d}",
                case.tokens.len()
            );
        }
    }
}

#[test]
fn op_sequences_match_every_onnx_export() {
    // The op sequence does not depend on the weights: a seeded DSL model of each committed
    // export's size fuses to the same sequence as the export after the passes.
    use ciphergpt_compiler::{frontend::onnx, passes};
    let sizes: HashMap<String, String> = manifest_models()
        .into_iter()
        .map(|(m, set, _)| (m, set))
        .collect();
    for (model, exporter, path) in common::onnx_models() {
        let set = &sizes[&model];
        let dsl = load(&example(), &WeightSource::Seed(1), &sets(set)).unwrap();
        let mut fused = onnx::load(&path).unwrap_or_else(|e| panic!("{e}"));
        passes::run_default(&mut fused).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(op_sequence(&dsl), op_sequence(&fused), "{model}.{exporter}");
    }
}

// ----- located errors

const TINY: &str = r#"# a tiny model
model tiny {
  config { vocab = 10  width = 8  heads = 2 }
  input ids : i64[1, T]
  weight wte : [vocab, width] = "wte"
  weight wpe : [4, width] = "wpe"
  weight w : [width, 2 * width] = "w"
  weight b : [2 * width] = "b"
  h = embedding(ids, wte, wpe)
  output out = logits(linear(h, w, b), wte)
}
"#;

#[test]
fn tiny_source_type_checks() {
    // `linear` widens to 16 but the token table is 8 wide: the logits call is the error.
    let msg = dsl_error(load_str(TINY, "tiny.cgpt", &WeightSource::Seed(1), &[]));
    let (line, col) = line_col_of(TINY, "wte)\n}");
    assert!(
        msg.starts_with(&format!("tiny.cgpt:{line}:{col}: ")),
        "{msg}"
    );
    assert!(
        msg.contains("logits: the token table f32[10,8] is 8 wide"),
        "{msg}"
    );
    assert!(msg.ends_with("(at `wte`)"), "{msg}");
    // Fixed, it builds.
    let fixed = TINY.replace("2 * width", "width");
    let g = load_str(&fixed, "tiny.cgpt", &WeightSource::Seed(1), &[]).unwrap();
    assert_eq!(
        op_sequence(&g),
        [
            "embedding : f32[1,T,8]",
            "linear : f32[1,T,8]",
            "logits : f32[1,T,10]"
        ]
    );
}

#[test]
fn syntax_error_is_located() {
    let text = example_text().replace(
        "weight wpe : [positions, width] = \"transformer.wpe.weight\"",
        "weight wpe : [positions, width] \"transformer.wpe.weight\"",
    );
    let msg = dsl_error(load_str(&text, "gpt2.cgpt", &WeightSource::Seed(1), &[]));
    let (line, col) = line_col_of(&text, "\"transformer.wpe.weight\"");
    assert!(
        msg.starts_with(&format!("gpt2.cgpt:{line}:{col}: expected")),
        "{msg}"
    );
    assert!(msg.contains("`=`"), "{msg}");
    assert!(msg.contains("(at `\"transformer.wpe.weight\""), "{msg}");
}

#[test]
fn syntax_error_missing_brace_at_end() {
    let text = TINY.trim_end().trim_end_matches('}');
    let msg = dsl_error(load_str(text, "t.cgpt", &WeightSource::Seed(1), &[]));
    assert!(msg.contains("`}`"), "{msg}");
    assert!(msg.ends_with("(at `end of file`)"), "{msg}");
}

#[test]
fn unknown_name_is_located_with_a_suggestion() {
    let text = example_text().replace(
        "h = embedding(input_ids, wte, wpe)",
        "h = embedding(input_ids, wte, wep)",
    );
    let msg = dsl_error(load_str(
        &text,
        "gpt2.cgpt",
        &WeightSource::Seed(1),
        &sets(SMALL),
    ));
    let (line, col) = line_col_of(&text, "wep)");
    assert!(
        msg.starts_with(&format!("gpt2.cgpt:{line}:{col}: unknown name `wep`")),
        "{msg}"
    );
    assert!(msg.contains("did you mean `wpe`?"), "{msg}");
    assert!(msg.ends_with("(at `wep`)"), "{msg}");
}

#[test]
fn unknown_function_is_located() {
    let text = example_text().replace("gelu(linear(", "gleu(linear(");
    let msg = dsl_error(load_str(
        &text,
        "gpt2.cgpt",
        &WeightSource::Seed(1),
        &sets(SMALL),
    ));
    let (line, col) = line_col_of(&text, "gleu(");
    assert!(
        msg.starts_with(&format!("gpt2.cgpt:{line}:{col}: unknown function `gleu`")),
        "{msg}"
    );
    assert!(msg.contains("did you mean `gelu`?"), "{msg}");
}

#[test]
fn shape_mismatch_in_a_call_is_located() {
    // The MLP's output projection applied to the wrong activation: 24 wide, weight has 96 rows.
    let text = example_text().replace(
        "h = h + linear(up, out_w, out_b)",
        "h = h + linear(h, out_w, out_b)",
    );
    let msg = dsl_error(load_str(
        &text,
        "gpt2.cgpt",
        &WeightSource::Seed(1),
        &sets(SMALL),
    ));
    let (line, col) = line_col_of(&text, "out_w, out_b)");
    assert!(msg.starts_with(&format!("gpt2.cgpt:{line}:{col}: linear: the weight f32[96,24] has 96 rows but the input f32[1,T,24] is 24 wide")), "{msg}");
    assert!(msg.ends_with("(at `out_w`)"), "{msg}");
}

#[test]
fn heads_that_do_not_divide_the_width() {
    let msg = dsl_error(load(
        &example(),
        &WeightSource::Seed(1),
        &sets("vocab=40,positions=16,width=24,heads=5,layers=1"),
    ));
    let text = example_text();
    let (line, col) = line_col_of(&text, "heads), proj_w");
    assert!(
        msg.contains(&format!(
            "gpt2.cgpt:{line}:{col}: attention: 5 heads do not divide the width 24"
        )),
        "{msg}"
    );
    assert!(msg.ends_with("(at `heads`)"), "{msg}");
}

#[test]
fn residual_of_different_shapes() {
    let text = example_text().replace("h = h + linear(up, out_w, out_b)", "h = h + up");
    let msg = dsl_error(load_str(
        &text,
        "gpt2.cgpt",
        &WeightSource::Seed(1),
        &sets(SMALL),
    ));
    let (line, col) = line_col_of(&text, "h + up");
    assert!(msg.starts_with(&format!("gpt2.cgpt:{line}:{col}: `+` needs two tensors of the same shape, found f32[1,T,24] and f32[1,T,96]")), "{msg}");
    assert!(msg.ends_with("(at `h + up`)"), "{msg}");
}

#[test]
fn weight_of_wrong_shape_in_safetensors() {
    // The file holds a model 32 wide; the DSL is told 24.
    let tensors = hf_tensors(40, 16, 32, 2);
    let path = temp_path("wrongshape");
    write_safetensors(&path, &tensors, Dtype::F32);
    let r = load(
        &example(),
        &WeightSource::Safetensors(path.clone()),
        &sets(SMALL),
    );
    std::fs::remove_file(&path).ok();
    let msg = dsl_error(r);
    let (line, col) = line_col_of(&example_text(), "weight wte");
    assert!(
        msg.contains(&format!(
            "gpt2.cgpt:{line}:{col}: tensor \"transformer.wte.weight\""
        )),
        "{msg}"
    );
    assert!(
        msg.contains("has shape f32[40,32], declared f32[40,24]"),
        "{msg}"
    );
    assert!(msg.contains("--set width=32"), "{msg}");
    assert!(
        msg.contains("(at `weight wte : [vocab, width] = \"transformer.wte.weight\"`)"),
        "{msg}"
    );
    // Hints solve shape arithmetic for the config parameter: 3·width = 96 → width = 32.
    let src = "model m {\n  config { width = 24 }\n  weight b : [3 * width] = \"transformer.h.0.attn.c_attn.bias\"\n}";
    let path = temp_path("wrongshape2");
    write_safetensors(&path, &tensors, Dtype::F32);
    let r = load_str(src, "m.cgpt", &WeightSource::Safetensors(path.clone()), &[]);
    std::fs::remove_file(&path).ok();
    let msg = dsl_error(r);
    assert!(
        msg.starts_with("m.cgpt:3:3: tensor \"transformer.h.0.attn.c_attn.bias\""),
        "{msg}"
    );
    assert!(msg.contains("has shape f32[96], declared f32[72]; hint: the file holds a model of another size; try --set width=32"), "{msg}");
}

#[test]
fn a_shape_no_set_can_fix_is_not_blamed_on_the_config() {
    // The file's c_attn weight is [32, 96]; declared [width, 4 * width] with width = 32: only
    // the second dimension differs, and width = 24 would break the first.
    let tensors = hf_tensors(40, 16, 32, 1);
    let src = "model m {\n  config { width = 32 }\n  weight w : [width, 4 * width] = \"transformer.h.0.attn.c_attn.weight\"\n}";
    let path = temp_path("wrongshape3");
    write_safetensors(&path, &tensors, Dtype::F32);
    let r = load_str(src, "m.cgpt", &WeightSource::Safetensors(path.clone()), &[]);
    std::fs::remove_file(&path).ok();
    let msg = dsl_error(r);
    assert!(
        msg.contains("has shape f32[32,96], declared f32[32,128]; hint: dimension 1 is 96 in the file, `4 * width` = 128 here; no --set makes every dimension match"),
        "{msg}"
    );
    assert!(!msg.contains("try --set"), "{msg}");
}

#[test]
fn missing_tensor_in_safetensors() {
    // The file has 1 layer; the DSL asks for 2.
    let tensors = hf_tensors(40, 16, 24, 1);
    let path = temp_path("missing");
    write_safetensors(&path, &tensors, Dtype::F32);
    let r = load(
        &example(),
        &WeightSource::Safetensors(path.clone()),
        &sets(SMALL),
    );
    std::fs::remove_file(&path).ok();
    let msg = dsl_error(r);
    let (line, col) = line_col_of(&example_text(), "weight ln1_g");
    assert!(
        msg.contains(&format!(
            "gpt2.cgpt:{line}:{col}: tensor \"transformer.h.1.ln_1.weight\""
        )),
        "{msg}"
    );
    assert!(msg.contains("is not in"), "{msg}");
    assert!(msg.contains("l = 1"), "{msg}");
    assert!(msg.contains("--set layers="), "{msg}");
}

#[test]
fn unknown_override_is_named() {
    let msg = dsl_error(load(
        &example(),
        &WeightSource::Seed(1),
        &sets("layers=2,depth=3"),
    ));
    assert!(msg.contains("--set depth=3"), "{msg}");
    assert!(msg.contains("no config parameter `depth`"), "{msg}");
    assert!(
        msg.contains("vocab, positions, width, heads, layers, eps, gelu"),
        "{msg}"
    );
    let msg = dsl_error(load(&example(), &WeightSource::Seed(1), &sets("widht=3")));
    assert!(msg.contains("did you mean `width`?"), "{msg}");
}

#[test]
fn override_of_the_wrong_kind() {
    let msg = dsl_error(load(
        &example(),
        &WeightSource::Seed(1),
        &sets("layers=2.5"),
    ));
    assert!(
        msg.contains("--set layers=2.5: layers is an integer"),
        "{msg}"
    );
    let msg = dsl_error(load(
        &example(),
        &WeightSource::Seed(1),
        &sets(&format!("{SMALL},gelu=relu")),
    ));
    assert!(
        msg.contains("gelu: the form must be `tanh` or `erf`, found the word `relu`"),
        "{msg}"
    );
}

#[test]
fn missing_weights_file_is_an_io_error() {
    let msg = dsl_error(load(
        &example(),
        &WeightSource::Safetensors(PathBuf::from("/nonexistent/model.safetensors")),
        &[],
    ));
    assert!(msg.contains("/nonexistent/model.safetensors"), "{msg}");
}

#[test]
fn corrupt_inputs_never_panic() {
    // Every prefix of the example (cut at line and token boundaries), and a few mutations,
    // either build or give a located error.
    let text = example_text();
    let small = sets(SMALL);
    let mut cuts: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| matches!(c, ' ' | '\n' | '(' | ',' | '[' | '"' | '{'))
        .map(|(i, _)| i)
        .collect();
    cuts.dedup();
    for &cut in cuts.iter().step_by(3) {
        let r = load_str(&text[..cut], "p.cgpt", &WeightSource::Seed(1), &small);
        if let Err(e) = r {
            assert!(!e.to_string().contains('\n'));
        }
    }
    for (from, to) in [
        ("3 * width", "3 * width / 0"),
        ("3 * width", "width / 7"),
        ("3 * width", "(-9223372036854775807 - 1) / -1"),
        ("3 * width", "(-9223372036854775807 - 1) * -1"),
        ("eps)", "1e-60)"),
        ("heads)", "heads, 1e300 * 1e300)"),
        ("0..layers", "5..2"),
        ("0..layers", "0..9999999999"),
        ("[vocab, width]", "[vocab, -width]"),
        ("[vocab, width]", "[vocab, 99999999999, 99999999999]"),
        ("{l}", "{heads_}"),
        ("{l}", "{eps}"),
        ("{l}", "{l"),
        ("1e-5", "1e400"),
        ("50257", "99999999999999999999999"),
        ("eps)", "-eps)"),
        ("eps)", "wte)"),
        ("heads)", "heads, 0.5, 1)"),
        ("i64[1, T]", "f32[1, T]"),
        ("i64[1, T]", "[1, T]"),
        ("[positions, width]", "[T, width]"),
        ("init ones", "init normal(-1)"),
        ("init ones", "init uniform"),
        ("output logits", "output h"),
        ("h = embedding", "wte = embedding"),
        ("h = embedding", "h = 1 + embedding"),
        (
            "h = embedding(input_ids, wte, wpe)",
            "h = embedding(input_ids, wte, wte)",
        ),
        (
            "h = embedding(input_ids, wte, wpe)",
            "h = embedding(wte, wte, wpe)",
        ),
        ("qkv_w, qkv_b", "qkv_b, qkv_w"),
        ("model gpt2", "model gpt2 model"),
        ("é", "ü"),
    ] {
        let bad = text.replacen(from, to, 1);
        let r = load_str(&bad, "p.cgpt", &WeightSource::Seed(1), &small);
        if let Err(e) = r {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{s}");
            assert!(s.starts_with("p.cgpt:"), "{from} -> {to}: {s}");
        }
    }
    let deep = format!(
        "model m {{ x = {}1{} }}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let msg = dsl_error(load_str(&deep, "d.cgpt", &WeightSource::Seed(1), &[]));
    assert!(msg.contains("nested"), "{msg}");
    let long = format!("model m {{ config {{ x = 1{} }} }}", " + 1".repeat(5000));
    let msg = dsl_error(load_str(&long, "d.cgpt", &WeightSource::Seed(1), &[]));
    assert!(msg.contains("nested"), "{msg}");
    let negs = format!("model m {{ config {{ x = {}1 }} }}", "-".repeat(5000));
    let msg = dsl_error(load_str(&negs, "d.cgpt", &WeightSource::Seed(1), &[]));
    assert!(msg.contains("nested"), "{msg}");
    for junk in [
        "",
        "model",
        "model m {",
        "\u{0}\u{1}",
        "model m { output o = 1 }",
    ] {
        let _ = dsl_error(load_str(junk, "j.cgpt", &WeightSource::Seed(1), &[]));
    }
}
