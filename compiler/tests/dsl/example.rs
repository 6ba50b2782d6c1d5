//! The example at small sizes: GPT-2's op structure, parameter counts, tied logits, the GELU
//! form, zero layers, and the seeded weights.

use super::*;

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
