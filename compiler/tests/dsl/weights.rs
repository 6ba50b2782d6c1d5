//! Weights from safetensors (HF GPT-2 names, other float types) and the committed trained
//! model against its ONNX exports.

use super::*;

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
