//! Accuracy of a compiled plan against the float model it came from.
//!
//! For each prompt: the per-position top-1 of the plan's exact integer semantics against the
//! float interpreter's, the logit error at every position, and a greedy continuation of
//! `new_tokens` tokens by each (the plan's through its prefill and decode programs, with the KV
//! cache, as the two-party runtime will run it), compared token by token.

use super::simulate::Simulator;
use super::Compiled;
use crate::error::{CompileError, Result};
use crate::interp::float;
use crate::ir::Graph;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PromptAccuracy {
    pub prompt: Vec<i64>,
    pub top1_agree: usize,
    pub positions: usize,
    pub float_continuation: Vec<i64>,
    pub fixed_continuation: Vec<i64>,
    pub greedy_agree: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct AccuracyReport {
    pub ring_bits: u32,
    pub frac_bits: u32,
    pub positions: usize,
    pub top1_agree: usize,
    pub greedy_tokens: usize,
    pub greedy_agree: usize,
    pub max_logit_error: f64,
    pub mean_logit_error: f64,
    pub prompts: Vec<PromptAccuracy>,
}

impl AccuracyReport {
    pub fn top1_rate(&self) -> f64 {
        self.top1_agree as f64 / self.positions.max(1) as f64
    }
    pub fn greedy_rate(&self) -> f64 {
        self.greedy_agree as f64 / self.greedy_tokens.max(1) as f64
    }
}

/// Compare the plan with the float graph on `prompts`.
pub fn accuracy(
    graph: &Graph,
    compiled: &Compiled,
    prompts: &[Vec<i64>],
    new_tokens: usize,
) -> Result<AccuracyReport> {
    let plan = &compiled.plan;
    let logit_frac = logits_frac(plan);
    let scale = (1u64 << logit_frac) as f64;
    let mut report = AccuracyReport {
        ring_bits: plan.ring_bits,
        frac_bits: plan.frac_bits,
        positions: 0,
        top1_agree: 0,
        greedy_tokens: 0,
        greedy_agree: 0,
        max_logit_error: 0.0,
        mean_logit_error: 0.0,
        prompts: Vec::new(),
    };
    let (mut err_sum, mut err_n) = (0.0f64, 0usize);
    for prompt in prompts.iter().filter(|p| !p.is_empty()) {
        // Per position.
        let fl = float::logit_rows(graph, prompt)?;
        let mut sim = Simulator::new(plan, &compiled.weights)?;
        sim.all_rows = true;
        sim.prefill(prompt)?;
        let fx = std::mem::take(&mut sim.last_logits);
        let mut agree = 0;
        for (f, x) in fl.iter().zip(&fx) {
            let xa = super::semantics::argmax(x).map_err(|e| CompileError::Input(e.to_string()))?;
            agree += usize::from(float::argmax(f) == xa);
            for (a, &b) in f.iter().zip(x) {
                let e = (*a as f64 - b as f64 / scale).abs();
                report.max_logit_error = report.max_logit_error.max(e);
                err_sum += e;
                err_n += 1;
            }
        }
        // Greedy continuations.
        let limit = plan
            .model
            .as_ref()
            .map_or(usize::MAX, |m| m.positions as usize);
        let n = new_tokens.min(limit.saturating_sub(prompt.len()));
        let mut seq = prompt.clone();
        let mut float_cont = Vec::with_capacity(n);
        for _ in 0..n {
            let rows = float::logit_rows(graph, &seq)?;
            let t = float::argmax(rows.last().expect("one row per token")) as i64;
            float_cont.push(t);
            seq.push(t);
        }
        let mut sim = Simulator::new(plan, &compiled.weights)?;
        let mut fixed_cont = Vec::with_capacity(n);
        if n > 0 {
            let mut t = sim.prefill(prompt)? as i64;
            fixed_cont.push(t);
            while fixed_cont.len() < n {
                t = sim.decode(t)? as i64;
                fixed_cont.push(t);
            }
        }
        let greedy_agree = float_cont
            .iter()
            .zip(&fixed_cont)
            .filter(|(a, b)| a == b)
            .count();
        report.positions += prompt.len();
        report.top1_agree += agree;
        report.greedy_tokens += n;
        report.greedy_agree += greedy_agree;
        report.prompts.push(PromptAccuracy {
            prompt: prompt.clone(),
            top1_agree: agree,
            positions: prompt.len(),
            float_continuation: float_cont,
            fixed_continuation: fixed_cont,
            greedy_agree,
        });
    }
    report.mean_logit_error = err_sum / err_n.max(1) as f64;
    Ok(report)
}

/// Fractional bits of the plan's logits (the output register of its `Logits` instruction).
pub fn logits_frac(plan: &crate::plan::Plan) -> u32 {
    plan.prefill
        .iter()
        .flat_map(|p| &p.instructions)
        .find(|i| matches!(i.op, Some(crate::plan::instruction::Op::Logits(_))))
        .and_then(|i| i.outputs.first())
        .map_or(0, |&r| plan.registers[r as usize].frac_bits)
}
