//! Pass tests written as IR text, in the manner of cranelift's filetests: each file in
//! `tests/passes/` holds an IR text, the passes to run on it, and the IR text expected out.
//!
//! ```text
//! ; What the test shows (comments are free).
//! ; run: fusion:gelu                 one line per pass, run in order: a pass by name
//! ;                                  (shape-inference, constant-folding, dead-nodes, fusion)
//! ;                                  or fusion:RULE for one fusion rule alone
//! ; fired: gelu %9                   optional: the fusion rewrites expected, in order, each
//! ;                                  `rule node` (parsed nodes are named after their first
//! ;                                  value), comma-separated; `none` for no rewrite
//! %0 = input "ids" : i64[1,T]
//! …
//! ; expect:
//! %0 = input "ids" : i64[1,T]        the text `ir::render` gives after the passes
//! …
//! ```
//!
//! Instead of `; expect:` and a text, `; expect-error: MESSAGE` expects the passes to fail
//! with exactly that message. Blank lines and comments in the expected text are ignored.
//! Constants printed by name get `ir::parse`'s placeholder values.
//!
//! `CIPHERGPT_BLESS=1 cargo test -p ciphergpt-compiler --test passes` rewrites the expected
//! part of every file with what the passes produce; review the diff before committing.

mod common;

use ciphergpt_compiler::frontend::onnx;
use ciphergpt_compiler::ir::{parse, render, Graph};
use ciphergpt_compiler::passes::{self, fusion, Pass, DEFAULT_PASSES};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const EXPECT: &str = "; expect:";
const EXPECT_ERROR: &str = "; expect-error:";

/// Run one pass by name on `graph`, appending fusion rewrites to `fired` as `rule node`.
fn run_pass(name: &str, graph: &mut Graph, fired: &mut Vec<String>) -> Result<(), String> {
    let rewrites = if name == "fusion" {
        fusion::run_traced(graph)
    } else if let Some(rule) = name.strip_prefix("fusion:") {
        let rule = fusion::Rule::from_name(rule).ok_or(format!("no fusion rule `{rule}`"))?;
        fusion::run_rules(graph, &[rule])
    } else {
        let pass = Pass::from_name(name).ok_or(format!("no pass `{name}`"))?;
        return pass.run(graph).map_err(|e| e.to_string());
    };
    fired.extend(rewrites.iter().map(|f| format!("{} {}", f.rule, f.node)));
    Ok(())
}

/// Parse `input`, run the passes named in `runs`, and render the result. Returns the text
/// and the fusion rewrites.
fn run_passes(runs: &[String], input: &str) -> Result<(String, Vec<String>), String> {
    let mut graph = parse(input).map_err(|e| format!("input: {e}"))?;
    let mut fired = Vec::new();
    for r in runs {
        run_pass(r, &mut graph, &mut fired)?;
    }
    Ok((render(&graph), fired))
}

/// One test file, split into its parts.
struct Case {
    runs: Vec<String>,
    fired: Option<Vec<String>>,
    input: String,
    /// `Ok(text)` or `Err(message)`.
    expect: Result<String, String>,
    /// The file up to (not including) the expectation, for blessing.
    head: String,
}

fn read_case(text: &str) -> Result<Case, String> {
    let mut case = Case {
        runs: Vec::new(),
        fired: None,
        input: String::new(),
        expect: Ok(String::new()),
        head: String::new(),
    };
    let mut lines = text.lines();
    let mut found = false;
    for line in lines.by_ref() {
        if line.trim() == EXPECT {
            found = true;
            break;
        }
        if let Some(msg) = line.strip_prefix(EXPECT_ERROR) {
            case.expect = Err(msg.trim().to_string());
            found = true;
            break;
        }
        case.head.push_str(line);
        case.head.push('\n');
        if let Some(r) = line.strip_prefix("; run:") {
            case.runs.push(r.trim().to_string());
        } else if let Some(f) = line.strip_prefix("; fired:") {
            let f = f.trim();
            case.fired = Some(if f == "none" {
                Vec::new()
            } else {
                f.split(',').map(|s| s.trim().to_string()).collect()
            });
        } else {
            case.input.push_str(line);
            case.input.push('\n');
        }
    }
    if !found {
        return Err(format!("no `{EXPECT}` or `{EXPECT_ERROR}` line"));
    }
    if case.runs.is_empty() {
        return Err("no `; run:` line".into());
    }
    if case.expect.is_ok() {
        case.expect = Ok(lines.collect::<Vec<_>>().join("\n"));
    }
    Ok(case)
}

/// The lines that matter: no blank lines, no comments, no trailing spaces.
fn normal(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with(';'))
        .collect()
}

/// Check one case; `Err` describes the mismatch. With `bless`, returns the corrected file.
fn check(case: &Case, bless: bool) -> Result<Option<String>, String> {
    let got = run_passes(&case.runs, &case.input);
    if bless {
        return Ok(Some(match &got {
            Ok((text, _)) => format!("{}{EXPECT}\n{text}", case.head),
            Err(e) => format!("{}{EXPECT_ERROR} {e}\n", case.head),
        }));
    }
    match (&case.expect, got) {
        (Ok(want), Ok((text, fired))) => {
            let (w, g) = (normal(want), normal(&text));
            if w != g {
                let at = w.iter().zip(&g).position(|(a, b)| a != b);
                let at = at.unwrap_or(w.len().min(g.len()));
                return Err(format!(
                    "output differs at expected line {}:\n  want: {}\n  got:  {}\nwhole output:\n{text}",
                    at + 1,
                    w.get(at).unwrap_or(&"(end)"),
                    g.get(at).unwrap_or(&"(end)")
                ));
            }
            match &case.fired {
                Some(f) if *f != fired => Err(format!("fired {fired:?}, expected {f:?}")),
                _ => Ok(None),
            }
        }
        (Err(want), Err(e)) if *want == e => Ok(None),
        (Err(want), Err(e)) => Err(format!("failed with `{e}`, expected `{want}`")),
        (Err(want), Ok((text, _))) => Err(format!("expected error `{want}`, got:\n{text}")),
        (Ok(_), Err(e)) => Err(format!("failed: {e}")),
    }
}

fn case_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/passes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ir"))
        .collect();
    files.sort();
    files
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into()
}

#[test]
fn pass_files() {
    let bless = std::env::var_os("CIPHERGPT_BLESS").is_some();
    let files = case_files();
    assert!(files.len() >= 10, "pass tests missing: {files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let result = read_case(&text).and_then(|case| check(&case, bless));
        match result {
            Ok(Some(new)) => std::fs::write(path, new).unwrap(),
            Ok(None) => {}
            Err(e) => failures.push(format!("{}: {e}", name(path))),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Every pass and every fusion rule has at least one file that runs it alone.
#[test]
fn every_pass_and_rule_has_a_file() {
    let runs: Vec<String> = case_files()
        .iter()
        .filter_map(|p| read_case(&std::fs::read_to_string(p).unwrap()).ok())
        .filter(|c| c.runs.len() == 1)
        .map(|c| c.runs[0].clone())
        .collect();
    let wanted = Pass::ALL
        .iter()
        .map(|p| p.name().to_string())
        .chain(fusion::Rule::ALL.iter().map(|r| format!("fusion:{r}")));
    for w in wanted {
        assert!(runs.contains(&w), "no pass test runs `{w}` alone");
    }
}

/// The harness reports a wrong expectation, a wrong trace and a wrong error.
#[test]
fn harness_catches_mismatches() {
    let input = "%0 = input \"ids\" : i64[1,T]\n%1 = Neg(%0) : ?\noutput \"y\" = %0\n";
    let case = |expect: &str| read_case(&format!("; run: dead-nodes\n{input}{expect}")).unwrap();
    let right = "; expect:\n%0 = input \"ids\" : i64[1,T]\noutput \"y\" = %0\n";
    assert_eq!(check(&case(right), false), Ok(None));
    let wrong = "; expect:\n%0 = input \"ids\" : i64[1,T]\n%1 = Neg(%0) : ?\noutput \"y\" = %0\n";
    assert!(check(&case(wrong), false)
        .unwrap_err()
        .contains("want: %1 = Neg(%0) : ?"));
    let mut traced = case(right);
    traced.fired = Some(vec!["gelu %1".into()]);
    assert!(check(&traced, false).unwrap_err().starts_with("fired []"));
    let err = check(&case("; expect-error: boom\n"), false).unwrap_err();
    assert!(err.starts_with("expected error `boom`"), "{err}");
}

/// The op a fusion rule produces.
fn fused_kind(rule: fusion::Rule) -> &'static str {
    use fusion::Rule::*;
    match rule {
        LinearGemm | LinearMatmulAdd => "linear",
        LayerNorm | LayerNormDecomposed => "layer_norm",
        Gelu => "gelu",
        Attention => "attention",
        Embedding => "embedding",
        ResidualAdd => "residual_add",
        Logits => "logits",
    }
}

/// On committed fixtures the fusion trace names the rules one expects of a 2-layer GPT-2:
/// per layer four linear, two layer norms, one gelu, one attention, two residual adds; then
/// the final layer norm, the embedding and the logits. An opset-14 export spells LayerNorm out.
#[test]
fn fusion_trace_on_fixtures() {
    let cases = [
        ("tiny-trained.torchscript.onnx", "layer-norm"),
        ("tiny-trained.opset14.onnx", "layer-norm-decomposed"),
        ("tiny-tf5.dynamo23-sdpa.onnx", "layer-norm"),
    ];
    for (file, ln) in cases {
        let mut graph = onnx::load(&common::models_dir().join(file)).unwrap();
        let trace = passes::run_traced(&mut graph, DEFAULT_PASSES).unwrap();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &trace {
            *counts.entry(f.rule.name()).or_default() += 1;
        }
        let want: BTreeMap<&str, usize> = [
            ("linear-gemm", 8),
            (ln, 5),
            ("gelu", 2),
            ("attention", 2),
            ("residual-add", 4),
            ("embedding", 1),
            ("logits", 1),
        ]
        .into();
        assert_eq!(counts, want, "{file}");
        // Each rewrite names a node that the fused graph holds, with the rule's op.
        for f in &trace {
            let kind = fused_kind(f.rule);
            assert!(
                graph
                    .g
                    .node_weights()
                    .any(|n| n.name == f.node && n.op.kind() == kind),
                "{file}: {f}: no {kind} node of that name"
            );
        }
    }
    // The TorchScript export names its nodes after the module path.
    let mut graph =
        onnx::load(&common::models_dir().join("tiny-trained.torchscript.onnx")).unwrap();
    let first = passes::run_traced(&mut graph, DEFAULT_PASSES)
        .unwrap()
        .remove(0);
    assert_eq!(
        first.to_string(),
        "linear-gemm fired on '/transformer/h.0/attn/c_attn/Reshape_1'"
    );
}
