//! Calibration: the range of every value of the fused graph over a set of prompts.
//!
//! The float interpreter runs each prompt; for every value the largest magnitude seen is kept.
//! Scale selection reads these ranges to pick integer and fractional bits.

use crate::error::{CompileError, Result};
use crate::interp::float;
use crate::ir::{Graph, ValueRef};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// The default calibration prompts, for models with a byte-level tokenizer.
pub const DEFAULT_PROMPTS: &str = include_str!("../../../models/prompts.txt");

/// Largest magnitude of every value over the calibration prompts.
#[derive(Clone, Debug, Default)]
pub struct Ranges {
    pub max_abs: HashMap<ValueRef, f32>,
    /// Number of prompts and tokens run.
    pub prompts: usize,
    pub tokens: usize,
}

impl Ranges {
    /// The recorded magnitude of `v` (0 when never seen).
    pub fn of(&self, v: ValueRef) -> f32 {
        self.max_abs.get(&v).copied().unwrap_or(0.0)
    }
}

/// Run every prompt (token ids) through the graph and record ranges.
pub fn calibrate(graph: &Graph, prompts: &[Vec<i64>]) -> Result<Ranges> {
    if prompts.is_empty() || prompts.iter().any(|p| p.is_empty()) {
        return Err(CompileError::Input(
            "calibration needs at least one non-empty prompt".into(),
        ));
    }
    let mut ranges = Ranges::default();
    for p in prompts {
        let feeds = float::token_feed(graph, p)?;
        let mut observe = |v: ValueRef, t: &Tensor| {
            if let Some(a) = t.as_f32() {
                let m = a.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
                let e = ranges.max_abs.entry(v).or_insert(0.0);
                *e = e.max(m);
            }
        };
        float::run_observed(graph, feeds, &mut observe)?;
        ranges.prompts += 1;
        ranges.tokens += p.len();
    }
    Ok(ranges)
}
