//! `plan::validate` on a compiled plan and on edits of it: the compiler's plans pass, and each
//! structural fault is refused with the message that names it.

mod common;

use ciphergpt_compiler::fixed;
use ciphergpt_compiler::model::{self, ModelSpec};
use ciphergpt_compiler::plan::{instruction::Op, validate, Plan, WeightsFile};
use std::sync::OnceLock;

/// The trained model's plan and weights, compiled once.
fn compiled() -> &'static (Plan, WeightsFile) {
    static C: OnceLock<(Plan, WeightsFile)> = OnceLock::new();
    C.get_or_init(|| {
        let graph = model::load(&ModelSpec {
            path: common::models_dir().join("tiny-trained.torchscript.onnx"),
            ..Default::default()
        })
        .unwrap();
        let c = fixed::compile(&graph, &fixed::Options::default()).unwrap();
        (c.plan, c.weights)
    })
}

/// The index of the first prefill instruction of this op.
fn first(plan: &Plan, op: &str) -> usize {
    plan.prefill
        .as_ref()
        .unwrap()
        .instructions
        .iter()
        .position(|i| ciphergpt_compiler::plan::cost::op_name(&i.op) == op)
        .unwrap()
}

/// The plan after `edit`, refused with a message holding every needle.
fn refused(edit: impl FnOnce(&mut Plan), needles: &[&str]) {
    let mut plan = compiled().0.clone();
    edit(&mut plan);
    let err = validate::validate(&plan).unwrap_err();
    assert!(!err.contains('\n'), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

#[test]
fn compiled_plans_and_weights_pass() {
    let (plan, weights) = compiled();
    validate::validate(plan).unwrap();
    validate::validate_weights(plan, weights).unwrap();
}

#[test]
fn structural_faults_are_named() {
    let plan = &compiled().0;
    let prog = |p: &mut Plan| p.prefill.as_mut().unwrap().instructions.clone();

    // Reading a register before any instruction writes it (the attention's output, at the
    // attention's first instruction).
    let split = first(plan, "SplitQkv");
    let pv = first(plan, "Pv");
    let late = plan.prefill.as_ref().unwrap().instructions[pv].outputs[0];
    refused(
        |p| p.prefill.as_mut().unwrap().instructions[split].inputs[0] = late,
        &[
            &format!("prefill instruction {split} (SplitQkv, "),
            &format!("reads register r{late} before any instruction writes it"),
        ],
    );

    // A Pv whose heads differ from its Softmax's.
    refused(
        |p| {
            let ins = &mut p.prefill.as_mut().unwrap().instructions[pv];
            let Some(Op::Pv(h)) = &mut ins.op else {
                unreachable!()
            };
            h.heads *= 2;
        },
        &[
            &format!("prefill instruction {pv} (Pv, "),
            "heads, the Softmax that writes",
        ],
    );

    // An instruction with one input too many.
    let add = first(plan, "Add");
    refused(
        |p| {
            let ins = &mut p.prefill.as_mut().unwrap().instructions[add];
            ins.inputs.push(ins.inputs[0]);
        },
        &[
            &format!("prefill instruction {add} (Add, "),
            "3 inputs and 1 outputs, the operation takes 2 and 1",
        ],
    );

    // A program that does not end with its Sample.
    refused(
        |p| {
            let mut ins = prog(p);
            ins.pop();
            p.prefill.as_mut().unwrap().instructions = ins;
        },
        &["(Logits, ", "the program does not end with a Sample"],
    );

    // A ring narrower than a register's scale.
    refused(
        |p| p.ring_bits = 16,
        &["register r", "fractional bits in a 16-bit ring"],
    );

    // Header bounds.
    refused(
        |p| p.model.as_mut().unwrap().positions = u64::MAX,
        &["18446744073709551615 positions"],
    );
}

#[test]
fn weights_that_do_not_match_the_plan_are_named() {
    let (plan, weights) = compiled();
    let mut w = weights.clone();
    w.tensors.pop();
    let err = validate::validate_weights(plan, &w).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{} tensors, the plan has {} weights",
            plan.weights.len() - 1,
            plan.weights.len()
        )
    );

    let mut w = weights.clone();
    w.tensors[1].name = "other".into();
    let err = validate::validate_weights(plan, &w).unwrap_err();
    assert_eq!(
        err,
        format!(
            "tensor 1 ('other'): the plan's weight w1 is '{}'",
            plan.weights[1].name
        )
    );

    // A value outside the declared bound.
    let mut w = weights.clone();
    let bits = plan.weights[0].bits;
    let big = 1i64 << bits;
    let t = &mut w.tensors[0];
    let mut values = t.values();
    values[0] = big;
    *t = ciphergpt_compiler::plan::WeightTensor::from_values(t.name.clone(), &values);
    let err = validate::validate_weights(plan, &w).unwrap_err();
    assert!(
        err.ends_with(&format!("value {big} outside the plan's {bits}-bit bound")),
        "{err}"
    );
}

/// Names come from the file: a newline in one is escaped, and the error stays one line (found
/// by `ciphergpt fuzz weights`: a weights file whose tensor name held a newline byte).
#[test]
fn names_with_control_characters_stay_on_one_line() {
    let (plan, weights) = compiled();
    let mut w = weights.clone();
    w.tensors[1].name = "linear\n44:11".into();
    let err = validate::validate_weights(plan, &w).unwrap_err();
    assert!(err.starts_with("tensor 1 ('linear\\n44:11'): "), "{err}");
    assert!(!err.contains('\n'), "{err}");

    // An instruction of a crafted plan: its fault named, its name escaped.
    let split = first(&compiled().0, "SplitQkv");
    refused(
        |p| {
            let ins = &mut p.prefill.as_mut().unwrap().instructions[split];
            ins.name = "h.0\r\nattn".into();
            ins.inputs[0] = u32::MAX;
        },
        &[&format!(
            "prefill instruction {split} (SplitQkv, h.0\\r\\nattn): "
        )],
    );
}

/// Every single edit of a register id, a register's width or a head count that passes
/// `validate` (and the weights' check) runs in the simulator without a panic: what the
/// simulator indexes by, the validator checks.
#[test]
fn edits_that_pass_run_without_a_panic() {
    use ciphergpt_compiler::fixed::simulate::Simulator;
    let (base, weights) = compiled();
    let mut edits: Vec<Plan> = Vec::new();
    let n = base.prefill.as_ref().unwrap().instructions.len();
    let nregs = base.registers.len() as u32;
    for i in 0..n {
        let ins = &base.prefill.as_ref().unwrap().instructions[i];
        for j in 0..ins.inputs.len() + ins.outputs.len() {
            for r in 0..nregs {
                let mut p = base.clone();
                let ins = &mut p.prefill.as_mut().unwrap().instructions[i];
                if j < ins.inputs.len() {
                    ins.inputs[j] = r;
                } else {
                    ins.outputs[j - ins.inputs.len()] = r;
                }
                edits.push(p);
            }
        }
        for heads in [1, 2, 3, 8] {
            let mut p = base.clone();
            match &mut p.prefill.as_mut().unwrap().instructions[i].op {
                Some(Op::QkT(h) | Op::Pv(h)) => h.heads = heads,
                Some(Op::Softmax(s)) => s.heads = heads,
                _ => continue,
            }
            edits.push(p);
        }
    }
    for r in 0..base.registers.len() {
        for cols in [0, 1, 3, 127, 129, 256, 384] {
            let mut p = base.clone();
            p.registers[r].cols = cols;
            edits.push(p);
        }
    }
    let mut passed = 0;
    for p in &edits {
        if validate::validate(p).is_err() || validate::validate_weights(p, weights).is_err() {
            continue;
        }
        passed += 1;
        let run = std::panic::catch_unwind(|| {
            let mut sim = Simulator::new(p, weights).unwrap();
            if let Ok(t) = sim.prefill(&[1, 2, 3]) {
                let _ = sim.decode(t as i64);
            }
        });
        assert!(
            run.is_ok(),
            "an edit that passes validate panics the simulator"
        );
    }
    // Some edits are harmless (a register id swapped for an equal one): they pass and run.
    assert!(
        passed > 0 && passed < edits.len(),
        "{passed} of {}",
        edits.len()
    );
}
