//! Crafted plans and weights, re-sealed so that their hash matches: every command that loads
//! them refuses them with one line naming the instruction (or tensor), and none panics. And a
//! truncated ONNX file says it is truncated.

use crate::common;

use ciphergpt_compiler::plan::{file, instruction::Op, Plan};
use common::exe;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The bundled trained model, compiled once for this file's tests.
fn trained() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| common::trained("cli-validate-trained"))
}

/// A copy of the trained plan (with its weights) changed by `edit` and re-sealed, in `name`.
fn crafted(name: &str, edit: impl FnOnce(&mut Plan)) -> PathBuf {
    let src = trained();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut plan = file::read_plan(&src.join("plan.cgp")).unwrap();
    edit(&mut plan);
    file::seal(&mut plan);
    file::write_plan(&plan, &dir.join("plan.cgp")).unwrap();
    std::fs::copy(src.join("weights.cgw"), dir.join("weights.cgw")).unwrap();
    dir
}

/// The index and name of the first prefill instruction that `pick` accepts.
fn find(plan: &Plan, pick: impl Fn(&Op) -> bool) -> (usize, String) {
    let prog = plan.prefill.as_ref().unwrap();
    let (i, ins) = prog
        .instructions
        .iter()
        .enumerate()
        .find(|(_, ins)| ins.op.as_ref().is_some_and(&pick))
        .unwrap();
    (i, ins.name.clone())
}

/// Failed, with one line of stderr holding every needle, and no panic.
fn refused(what: &str, out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: succeeded; {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: {n:?} not in {err}");
    }
}

/// Every command that loads a plan directory refuses `dir` with `needles`.
fn every_command_refuses(dir: &Path, needles: &[&str]) {
    let d = dir.to_str().unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let runs: [(&str, Vec<&str>); 4] = [
        (
            "eval --fixed",
            vec!["eval", d, "--fixed", "--tokens", "1,2,3"],
        ),
        ("inspect", vec!["inspect", d]),
        (
            "generate",
            vec![
                "generate",
                "--plan",
                d,
                "--connect",
                &dead,
                "--prompt",
                "x",
                "--timeout",
                "2",
            ],
        ),
        (
            "serve",
            vec![
                "serve",
                "--plan",
                d,
                "--listen",
                "127.0.0.1:0",
                "--timeout",
                "2",
            ],
        ),
    ];
    for (what, args) in runs {
        refused(what, &exe().args(&args).output().unwrap(), needles);
    }
}

#[test]
fn a_plan_reading_a_register_it_does_not_have_is_refused() {
    let mut at = (0, String::new());
    let mut regs = 0;
    let dir = crafted("crafted-register", |p| {
        at = find(p, |op| matches!(op, Op::Softmax(_)));
        regs = p.registers.len();
        p.prefill.as_mut().unwrap().instructions[at.0].inputs[0] = 9999;
    });
    let head = format!("prefill instruction {} (Softmax, {}): ", at.0, at.1);
    let what = format!("reads register r9999, the plan has {regs} registers");
    every_command_refuses(&dir, &["plan.cgp: ", &head, &what]);
}

#[test]
fn a_plan_with_a_wrong_weight_shape_or_table_size_is_refused() {
    // A linear layer's weight one column wider than its output register.
    let mut at = (0, String::new());
    let mut shape = vec![];
    let dir = crafted("crafted-shape", |p| {
        at = find(p, |op| matches!(op, Op::Linear(_)));
        let Some(Op::Linear(l)) = &p.prefill.as_ref().unwrap().instructions[at.0].op else {
            unreachable!()
        };
        let w = &mut p.weights[l.weight as usize];
        shape = w.shape.clone();
        w.shape[1] += 1;
    });
    let head = format!("prefill instruction {} (Linear, {}): ", at.0, at.1);
    let what = format!(
        "has shape [{}, {}], its registers need {shape:?}",
        shape[0],
        shape[1] + 1
    );
    every_command_refuses(&dir, &["plan.cgp: ", &head, &what]);

    // A GELU spline with one slope too few.
    let dir = crafted("crafted-table", |p| {
        at = find(p, |op| matches!(op, Op::Gelu(_)));
        let ins = &mut p.prefill.as_mut().unwrap().instructions[at.0];
        let Some(Op::Gelu(g)) = &mut ins.op else {
            unreachable!()
        };
        g.slope.pop();
    });
    let head = format!("prefill instruction {} (Gelu, {}): ", at.0, at.1);
    every_command_refuses(&dir, &["plan.cgp: ", &head, "slopes and", "expected"]);
}

#[test]
fn weights_that_do_not_fit_their_plan_are_refused() {
    // The plan is sound; one tensor of its weights file loses its last entry.
    let src = trained();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crafted-weights");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("plan.cgp"), dir.join("plan.cgp")).unwrap();
    let plan = file::read_plan(&src.join("plan.cgp")).unwrap();
    let mut w = file::read_weights(&src.join("weights.cgw"), &plan).unwrap();
    let t = &mut w.tensors[2];
    let width = t.width as usize;
    t.data.truncate(t.data.len() - width);
    let (name, bytes) = (t.name.clone(), t.data.len());
    file::write_weights(&w, &dir.join("weights.cgw")).unwrap();
    let needle = format!("weights.cgw: tensor 2 ('{name}'): {bytes} bytes, shape");
    let d = dir.to_str().unwrap();
    let out = exe()
        .args(["eval", d, "--fixed", "--tokens", "1,2,3"])
        .output()
        .unwrap();
    refused("eval --fixed", &out, &[&needle]);
    let out = exe()
        .args(["serve", "--plan", d, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    refused("serve", &out, &[&needle]);
}

#[test]
fn a_truncated_onnx_file_says_so() {
    // Cut just before the last field (opset_import): still a well-formed protobuf.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-trained.torchscript.onnx");
    let bytes = std::fs::read(&model).unwrap();
    let cut = bytes.len()
        - bytes
            .iter()
            .rev()
            .position(|&b| b == 0x42) // field 8, length-delimited
            .unwrap()
        - 1;
    assert!(cut + 8 > bytes.len(), "opset_import is not the last field");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("truncated-onnx");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.onnx");
    std::fs::write(&path, &bytes[..cut]).unwrap();
    let out = exe()
        .args(["compile", path.to_str().unwrap(), "-o"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    refused(
        "compile",
        &out,
        &[
            "cut.onnx: ",
            "the file is truncated or not an ONNX protobuf",
            "no opset_import",
        ],
    );
    // An empty file likewise.
    std::fs::write(&path, b"").unwrap();
    let out = exe()
        .args(["compile", path.to_str().unwrap(), "-o"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    refused("compile (empty)", &out, &["cut.onnx: ", "truncated"]);
}

#[test]
fn counts_from_flags_that_overflow_are_one_line_errors() {
    let d = trained().to_str().unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    // A timeout too large for a Duration panicked; one too large for the clock hung.
    for t in ["1e300", "1e15", "nan"] {
        let out = exe()
            .args(["generate", "--plan", d, "--connect", &dead, "--prompt", "x"])
            .args(["--timeout", t])
            .output()
            .unwrap();
        refused("generate --timeout", &out, &["--timeout", "at most 604800"]);
    }
    let out = exe()
        .args([
            "serve",
            "--plan",
            d,
            "--listen",
            "127.0.0.1:0",
            "--timeout",
            "1e300",
        ])
        .output()
        .unwrap();
    refused("serve --timeout", &out, &["--timeout", "at most 604800"]);
    let out = exe()
        .args(["generate", "--plan", d, "--connect", &dead, "--prompt", "x"])
        .args(["--threads", "18446744073709551615"])
        .output()
        .unwrap();
    refused("generate --threads", &out, &["--threads", "at most 1024"]);
}
