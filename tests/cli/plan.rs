//! `compile -o`, `eval --fixed` and `inspect` from the command line, and the refusals: a plan of
//! another format version, and weights of another plan.

use std::process::{Command, Output};

fn ciphergpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ciphergpt"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run ciphergpt")
}

fn compile(model: &str, dir: &std::path::Path) {
    let out = ciphergpt(&["compile", model, "-o", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn one_line_failure(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[test]
fn fixed_eval_matches_float_and_plans_are_checked() {
    let base = std::env::temp_dir().join(format!("cgp-cli-plan-{}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    compile("models/tiny-trained.torchscript.onnx", &a);
    compile("models/tiny-erf.torchscript.onnx", &b);

    // The plan's integer semantics and the float model agree on "And God" (bytes).
    let toks = "65,110,100,32,71,111,100";
    let fixed = ciphergpt(&[
        "eval",
        a.to_str().unwrap(),
        "--fixed",
        "--tokens",
        toks,
        "--json",
    ]);
    let float = ciphergpt(&[
        "eval",
        "models/tiny-trained.torchscript.onnx",
        "--tokens",
        toks,
        "--json",
    ]);
    let argmax = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["argmax"].clone()
    };
    assert_eq!(argmax(&fixed), argmax(&float));

    // inspect reads the plan.
    let out = ciphergpt(&["inspect", a.join("plan.cgp").to_str().unwrap(), "--summary"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("MatMul"));

    // Weights of another plan.
    std::fs::copy(b.join("weights.cgw"), a.join("weights.cgw")).unwrap();
    let out = ciphergpt(&["eval", a.to_str().unwrap(), "--fixed", "--tokens", toks]);
    one_line_failure(&out, "belong to plan");

    // A plan of another format version.
    let p = b.join("plan.cgp");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[8] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    let out = ciphergpt(&["eval", b.to_str().unwrap(), "--fixed", "--tokens", toks]);
    one_line_failure(&out, "format version");
    let _ = std::fs::remove_dir_all(&base);
}

/// The ring is at least what the plan's protocols take: calibration alone would give the tiny
/// GPT-2-vocabulary model 32 bits, its GELU spline needs 34; a narrower ring given is refused.
#[test]
fn the_ring_fits_the_protocols() {
    let dir = std::env::temp_dir().join(format!("cgp-cli-ring-{}", std::process::id()));
    let out = ciphergpt(&[
        "compile",
        "models/tiny-gpt2vocab.torchscript.onnx",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ring 34 bits (chosen: '"), "{said}");
    let out = ciphergpt(&[
        "compile",
        "models/tiny-trained.torchscript.onnx",
        "--ring-bits",
        "30",
        "-o",
        dir.to_str().unwrap(),
    ]);
    one_line_failure(&out, "needs a ring of at least 34 bits");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `compile --prepare-by`: by default the cost model weighs the preparation in and runs the
/// trained model's final LayerNorm online; `online` prepares every LayerNorm (each token's
/// latency first). `inspect --format json` reports both ways per layer kind, and the plan's
/// marks under the default are the cost model's verdict. A value it does not know is refused,
/// named.
#[test]
fn prepare_by_chooses_what_the_cost_model_weighs() {
    let base = std::env::temp_dir().join(format!("cgp-cli-prepare-by-{}", std::process::id()));
    let layernorms = |by: &str| -> serde_json::Value {
        let dir = base.join(by);
        let out = ciphergpt(&[
            "compile",
            "models/tiny-trained.torchscript.onnx",
            "-o",
            dir.to_str().unwrap(),
            "--prepare-by",
            by,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = dir.join("plan.cgp");
        let out = ciphergpt(&[
            "inspect",
            plan.to_str().unwrap(),
            "--format",
            "json",
            "--summary",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["choices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "LayerNorm")
            .cloned()
            .expect("a LayerNorm row")
    };
    let total = layernorms("total");
    let online = layernorms("online");
    let count = total["count"].as_u64().unwrap();
    assert_eq!(count, 5);
    assert_eq!(online["prepared"], count);
    let prepared = total["prepared"].as_u64().unwrap();
    assert!(prepared < count, "{total}");
    assert_eq!(total["model_prepares"], prepared);
    // Prepared, each of them would cost fewer bytes online but more in all.
    let bytes = |c: &serde_json::Value, k: &str| {
        c[k]["server_bytes"].as_u64().unwrap() + c[k]["client_bytes"].as_u64().unwrap()
    };
    assert!(bytes(&total, "prepared_online") < bytes(&total, "online"));
    let out = ciphergpt(&[
        "compile",
        "models/tiny-trained.torchscript.onnx",
        "-o",
        base.join("bad").to_str().unwrap(),
        "--prepare-by",
        "never",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("never"));
    std::fs::remove_dir_all(&base).ok();
}
