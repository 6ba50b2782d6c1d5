//! The command line's front end: `compile --emit ir` and `eval`, and the one-line located errors
//! for bad input (truncated ONNX, unsupported operator, DSL syntax error, shape mismatch).

use onnx_protobuf::{
    tensor_shape_proto, type_proto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ciphergpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ciphergpt"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run ciphergpt")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ciphergpt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The command failed with exactly one line on stderr, containing every `needle`.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn eval_prints_json_logits_and_argmax() {
    let out = ciphergpt(&[
        "eval",
        "models/tiny-trained.torchscript.onnx",
        "--tokens",
        "65,110,100",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let argmax = v["argmax"].as_array().unwrap();
    let logits = v["logits"].as_array().unwrap();
    assert_eq!(argmax.len(), 3);
    assert_eq!(logits.len(), 3);
    for (a, row) in argmax.iter().zip(logits) {
        let row: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(row.len(), 256);
        let best = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
        assert_eq!(a.as_u64().unwrap() as usize, best);
    }
}

#[test]
fn compile_emits_fused_ir() {
    let out = ciphergpt(&["compile", "models/tiny-trained.dynamo.onnx", "--emit", "ir"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ir = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ir.matches("attention {heads=4").count(), 2, "{ir}");
    assert!(
        ir.contains("logits(") && ir.contains(": f32[1,T,256]"),
        "{ir}"
    );
}

#[test]
fn compile_emits_the_fusion_trace() {
    // The trained model has 2 layers (models/tiny-trained.json): per layer 4 linear layers, 2
    // LayerNorms, one GELU, one attention, two residual adds; then the final LayerNorm, the
    // token embedding and the logits. The TorchScript export writes Gemm for the linear layers.
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/tiny-trained.json")).unwrap(),
    )
    .unwrap();
    let layers = config["config"]["n_layer"].as_u64().unwrap() as usize;
    let out = ciphergpt(&[
        "compile",
        "models/tiny-trained.torchscript.onnx",
        "--emit",
        "fusion",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let fired = |rule: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{rule} fired on '")))
            .count()
    };
    let want = [
        ("linear-gemm", 4 * layers),
        ("layer-norm", 2 * layers + 1),
        ("gelu", layers),
        ("attention", layers),
        ("residual-add", 2 * layers),
        ("embedding", 1),
        ("logits", 1),
    ];
    for (rule, n) in want {
        assert_eq!(fired(rule), n, "{rule}:\n{text}");
        assert!(
            text.contains(&format!("\n{rule}: {n}\n")),
            "{rule}:\n{text}"
        );
    }
    let total: usize = want.iter().map(|&(_, n)| n).sum();
    assert_eq!(
        text.lines().filter(|l| l.contains(" fired on '")).count(),
        total,
        "{text}"
    );
}

#[test]
fn truncated_onnx_is_a_located_error() {
    let bytes = std::fs::read(root().join("models/tiny-trained.torchscript.onnx")).unwrap();
    let p = tmp("truncated.onnx");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    let out = ciphergpt(&["compile", p.to_str().unwrap()]);
    assert_one_line_error(&out, &["truncated.onnx", "not a valid ONNX model"]);
}

#[test]
fn deeply_nested_onnx_is_refused_not_a_crash() {
    let p = tmp("nested.onnx");
    std::fs::write(&p, vec![0x0bu8; 200_000]).unwrap();
    let out = ciphergpt(&["compile", p.to_str().unwrap()]);
    assert_one_line_error(&out, &["nested.onnx", "RUSTSEC-2024-0437"]);
}

fn token_input() -> ValueInfoProto {
    let dim = |v: tensor_shape_proto::dimension::Value| tensor_shape_proto::Dimension {
        value: Some(v),
        ..Default::default()
    };
    let mut shape = TensorShapeProto::new();
    shape.dim = vec![
        dim(tensor_shape_proto::dimension::Value::DimValue(1)),
        dim(tensor_shape_proto::dimension::Value::DimParam("seq".into())),
    ];
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = 7;
    tt.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = "input_ids".into();
    vi.type_ = Some(ty).into();
    vi
}

#[test]
fn unsupported_operator_is_named() {
    let mut node = NodeProto::new();
    node.op_type = "Conv".into();
    node.name = "my_conv".into();
    node.input = vec!["input_ids".into()];
    node.output = vec!["y".into()];
    let mut graph = GraphProto::new();
    graph.input = vec![token_input()];
    graph.node = vec![node];
    let mut out_vi = ValueInfoProto::new();
    out_vi.name = "y".into();
    graph.output = vec![out_vi];
    let mut opset = OperatorSetIdProto::new();
    opset.version = 17;
    let mut model = ModelProto::new();
    model.ir_version = 8;
    model.opset_import = vec![opset];
    model.graph = Some(graph).into();
    let p = tmp("conv.onnx");
    std::fs::write(&p, model.write_to_bytes().unwrap()).unwrap();
    let out = ciphergpt(&["compile", p.to_str().unwrap()]);
    assert_one_line_error(&out, &["conv.onnx", "'my_conv'", "Conv", "hint:"]);
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

#[test]
fn dsl_syntax_error_is_located() {
    let src = std::fs::read_to_string(root().join("examples/gpt2.cgpt")).unwrap();
    // A stray `$` after the call that builds the embedding.
    let line = src.lines().position(|l| l.contains("embedding(")).unwrap() + 1;
    let col = src.lines().nth(line - 1).unwrap().find(')').unwrap() + 3;
    let broken = src.replacen(
        "embedding(input_ids, wte, wpe)",
        "embedding(input_ids, wte, wpe) $",
        1,
    );
    let p = tmp("broken.cgpt");
    write(&p, &broken);
    let out = ciphergpt(&[
        "compile",
        p.to_str().unwrap(),
        "--seed",
        "1",
        "--set",
        "layers=1,width=8,heads=2,vocab=10,positions=8",
    ]);
    assert_one_line_error(&out, &[&format!("broken.cgpt:{line}:{col}:"), "(at `$"]);
}

#[test]
fn shape_mismatch_is_located() {
    // The trained weights are 128 wide; declaring 64 must name the weight and its declaration.
    let out = ciphergpt(&[
        "compile",
        "examples/gpt2.cgpt",
        "--weights",
        "models/tiny-trained.safetensors",
        "--set",
        "vocab=256,positions=128,width=64,heads=4,layers=2",
    ]);
    assert_one_line_error(
        &out,
        &["examples/gpt2.cgpt:", "transformer.wte.weight", "128"],
    );
}
