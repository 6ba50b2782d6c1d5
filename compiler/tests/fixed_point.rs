//! The fixed-point plan against the float model: greedy continuations and per-position top-1 on
//! the committed models, and the plan's secrecy (no weight in `plan.cgp`).

mod common;

use ciphergpt_compiler::fixed::{self, simulate::Simulator};
use ciphergpt_compiler::interp::float;
use ciphergpt_compiler::ir::Op;
use ciphergpt_compiler::model::{self, ModelSpec};
use ciphergpt_compiler::plan::file;
use prost::Message;

fn load(path: std::path::PathBuf) -> ciphergpt_compiler::ir::Graph {
    model::load(&ModelSpec {
        path,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn trained_model_greedy_continuations_agree_with_float() {
    let graph = load(common::models_dir().join("tiny-trained.torchscript.onnx"));
    let compiled =
        fixed::compile(&graph, &fixed::Options::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(common::eval_prompts().len(), 5);
    let r = common::assert_greedy_agrees(&graph, &compiled, "tiny-trained.torchscript");
    assert!(r.ring_bits <= 40, "ring {}", r.ring_bits);
}

/// The top-1 agreement of every reference row of one committed model (fixed point against the
/// float interpreter), as (agreeing, total).
fn top1_agreement(model: &str, exporter: &str, path: &std::path::Path) -> (usize, usize) {
    let graph = load(path.to_path_buf());
    let compiled =
        fixed::compile(&graph, &fixed::Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let (mut agree, mut total) = (0, 0);
    for case in common::reference(path) {
        let mut sim = Simulator::new(&compiled.plan, &compiled.weights).unwrap();
        sim.all_rows = true;
        sim.prefill(&case.tokens)
            .unwrap_or_else(|e| panic!("{model}.{exporter}: {e}"));
        let fl = float::run(&graph, &case.tokens).unwrap();
        let fl = fl[0].1.as_f32().unwrap();
        let v = *fl.shape().last().unwrap();
        let flat: Vec<f32> = fl.iter().copied().collect();
        for (row, fx) in flat.chunks(v).zip(&sim.last_logits) {
            let fa = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
            agree += usize::from(fa == fixed::semantics::argmax(fx).unwrap());
            total += 1;
        }
    }
    (agree, total)
}

/// Every committed model, two at a time (the machine's two cores).
#[test]
fn per_position_top1_agrees_on_every_committed_model() {
    let models = common::onnx_models();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((model, exporter, path)) = models.get(i) else {
                    break;
                };
                let (agree, total) = top1_agreement(model, exporter, path);
                if total == 0 || (agree as f64) < 0.99 * total as f64 {
                    let line = format!("{model}.{exporter}: top-1 agreement {agree}/{total}");
                    failures.lock().unwrap().push(line);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every 16-byte window of a weight's encodings that is not near-constant must be absent from
/// the plan's bytes: fixed-point values (as stored in the weights file) and the float originals.
#[test]
fn plan_holds_no_weight() {
    let graph = load(common::models_dir().join("tiny-trained.torchscript.onnx"));
    let compiled = fixed::compile(&graph, &fixed::Options::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("cgp-secrecy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan_path = dir.join("plan.cgp");
    file::write_plan(&compiled.plan, &plan_path).unwrap();
    let plan_bytes = std::fs::read(&plan_path).unwrap();
    assert_eq!(plan_bytes[12..], compiled.plan.encode_to_vec()[..]);
    let found = |needle: &[u8]| plan_bytes.windows(needle.len()).any(|w| w == needle);
    let mut checked = 0;
    for t in &compiled.weights.tensors {
        let w = t.width as usize;
        for win in t.data.chunks_exact(4 * w) {
            let vals: Vec<i64> = win
                .chunks_exact(w)
                .map(|c| {
                    if w == 8 {
                        i64::from_le_bytes(c.try_into().unwrap())
                    } else {
                        i32::from_le_bytes(c.try_into().unwrap()) as i64
                    }
                })
                .collect();
            if vals.iter().all(|v| v.abs() < 256) {
                continue; // low-entropy window: could occur anywhere by chance
            }
            assert!(
                !found(win),
                "weight '{}' fixed-point bytes found in plan.cgp",
                t.name
            );
            checked += 1;
        }
    }
    for id in graph.g.node_indices() {
        if let Op::Const(c) = &graph.node(id).op {
            if let Some(a) = c.as_f32() {
                let bytes: Vec<u8> = a.iter().flat_map(|x| x.to_le_bytes()).collect();
                for win in bytes.chunks_exact(16) {
                    if win.iter().filter(|&&b| b == 0).count() > 8 {
                        continue;
                    }
                    assert!(
                        !found(win),
                        "float weight '{}' found in plan.cgp",
                        graph.node(id).name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000, "checked only {checked} windows");
}
