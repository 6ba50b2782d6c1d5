//! Located errors: syntax, names, shapes, overrides, weights files; corrupt inputs never panic.

use super::*;

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
