//! The fixed-point compile driver: calibrate, lower, measure, choose the ring, seal.

use super::{calibrate, lower, simulate};
use crate::error::{CompileError, Result};
use crate::ir::Graph;
use crate::plan::{self, Plan, Tokenizer, WeightsFile};

/// Compiler options for the fixed-point stage.
#[derive(Clone, Debug)]
pub struct Options {
    /// Ring width ℓ; chosen from calibration when `None`.
    pub ring_bits: Option<u32>,
    /// Fractional bits of activations (CipherGPT: 12; we default to 15, see docs/plan.md).
    pub frac_bits: u32,
    /// Fractional bits of weights.
    pub weight_frac_bits: u32,
    /// Calibration prompts as token ids; the defaults when `None`.
    pub prompts: Option<Vec<Vec<i64>>>,
    /// The plan's default decoding (greedy unless told).
    pub decoding: lower::Decoding,
    /// Decode steps a preparation batch covers, for the cost model's choice of how the decode
    /// program's weight products run ([`super::prepare`]); 0 runs them all online.
    pub preprocess_tokens: u32,
    /// What the cost model minimises when it chooses which decode layers to prepare.
    pub prepare_by: super::prepare::PrepareBy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ring_bits: None,
            frac_bits: 15,
            weight_frac_bits: 15,
            prompts: None,
            decoding: lower::Decoding::default(),
            preprocess_tokens: DEFAULT_PREPROCESS_TOKENS,
            prepare_by: super::prepare::PrepareBy::Total,
        }
    }
}

/// The default preparation batch the compiler plans for (the runtime's default too).
pub const DEFAULT_PREPROCESS_TOKENS: u32 = 256;

/// Bits of safety above the largest magnitude calibration saw.
pub const RING_MARGIN_BITS: u32 = 2;
/// The widest ring a plan may use.
pub const MAX_RING_BITS: u32 = 64;

/// A compiled model: the public plan (sealed) and the server's weights (bound to it).
pub struct Compiled {
    pub plan: Plan,
    pub weights: WeightsFile,
    /// Largest magnitude per instruction during calibration, in bits (for reports).
    pub peak_bits: u32,
}

/// The tokenizer a model's vocabulary implies.
pub fn tokenizer_for(vocab: u64) -> Tokenizer {
    match vocab {
        256 => Tokenizer::Byte,
        50257 => Tokenizer::Gpt2,
        _ => Tokenizer::Ids,
    }
}

/// The default calibration prompts for a model of `vocab` tokens: the bundled English prompts as
/// bytes for a byte-level model, otherwise token ids drawn from them deterministically.
pub fn default_prompts(vocab: u64) -> Vec<Vec<i64>> {
    calibrate::DEFAULT_PROMPTS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.bytes()
                .enumerate()
                .map(|(i, b)| {
                    if vocab == 256 {
                        b as i64
                    } else {
                        ((b as u64 * 2_654_435_761 + i as u64 * 40_503) % vocab) as i64
                    }
                })
                .collect()
        })
        .collect()
}

/// The narrowest ring the plan's two-party protocols take, and the instruction that needs it:
/// GELU's input range and spline ([`semantics::GeluTables::min_ring_bits`]) and softmax's
/// clipped distances and their comparison (`hi_bits + lo_bits + 2`).
pub fn protocol_min_ring(plan: &Plan) -> (u32, String) {
    let softmax_bits = |s: &plan::Softmax| s.hi_bits + s.lo_bits + 2;
    let mut best = (0u32, String::new());
    for ins in plan.prefill.iter().flat_map(|p| p.instructions.iter()) {
        let need = match &ins.op {
            Some(plan::instruction::Op::Gelu(g)) => {
                let t = super::convert::gelu_from_plan(g);
                if t.validate().is_err() {
                    continue;
                }
                t.min_ring_bits()
            }
            Some(plan::instruction::Op::Softmax(s)) => softmax_bits(s),
            Some(plan::instruction::Op::Sample(s)) => s.softmax.as_ref().map_or(0, softmax_bits),
            _ => continue,
        };
        if need > best.0 {
            best = (need, ins.name.clone());
        }
    }
    best
}

/// Compile a fused graph to a plan and weights.
pub fn compile(graph: &Graph, options: &Options) -> Result<Compiled> {
    let vocab = graph
        .outputs
        .first()
        .and_then(|(_, v)| graph.ty(*v))
        .and_then(|t| t.last())
        .and_then(|d| d.as_known())
        .unwrap_or(0) as u64;
    let prompts = options
        .prompts
        .clone()
        .unwrap_or_else(|| default_prompts(vocab));
    let ranges = calibrate::calibrate(graph, &prompts)?;
    let scales = lower::Scales {
        ring_bits: MAX_RING_BITS,
        frac: options.frac_bits,
        weight_frac: options.weight_frac_bits,
    };
    let mut lowered = lower::lower(graph, &ranges, scales, options.decoding)?;
    lowered.plan.tokenizer = tokenizer_for(vocab) as i32;
    // Measure every instruction's largest value in the exact semantics, on the calibration
    // prompts: prefill on the first half, then decode steps over the rest.
    let provisional = WeightsFile {
        plan_hash: Vec::new(),
        tensors: lowered.weights.clone(),
    };
    let mut peak: u128 = 0;
    for p in &prompts {
        let mut sim = simulate::Simulator::new(&lowered.plan, &provisional)?;
        let split = p.len().div_ceil(2);
        sim.prefill(&p[..split])?;
        for &tok in &p[split..] {
            sim.decode(tok)?;
        }
        peak = peak.max(sim.peaks.values().copied().max().unwrap_or(0));
    }
    let peak_bits = 128 - peak.leading_zeros();
    let chosen = peak_bits + 1 + RING_MARGIN_BITS;
    let (need, needed_by) = protocol_min_ring(&lowered.plan);
    let ring_bits = match options.ring_bits {
        Some(b) if !(8..=MAX_RING_BITS).contains(&b) => {
            return Err(CompileError::Input(format!("--ring-bits {b}: choose between 8 and {MAX_RING_BITS}")))
        }
        Some(b) if b < need => {
            return Err(CompileError::Input(format!(
                "--ring-bits {b}: instruction '{needed_by}' needs a ring of at least {need} bits for its two-party protocol"
            )))
        }
        Some(b) => b,
        None if chosen.max(need) > MAX_RING_BITS => {
            return Err(CompileError::Input(format!(
                "calibration needs a {chosen}-bit ring, wider than {MAX_RING_BITS}; hint: lower --frac-bits"
            )))
        }
        None => chosen.max(need),
    };
    let mut plan = lowered.plan;
    plan.ring_bits = ring_bits;
    plan.calibration = format!(
        "{} prompts, {} tokens; largest value {} bits; ring {} bits ({})",
        ranges.prompts,
        ranges.tokens,
        peak_bits,
        ring_bits,
        if options.ring_bits.is_some() {
            "given".to_string()
        } else if need > chosen {
            format!("chosen: '{needed_by}' needs {need}")
        } else {
            "chosen".to_string()
        }
    );
    super::prepare::choose(&mut plan, options.preprocess_tokens, options.prepare_by);
    plan::file::seal(&mut plan);
    let weights = WeightsFile {
        plan_hash: plan.hash.clone(),
        tensors: lowered.weights,
    };
    Ok(Compiled {
        plan,
        weights,
        peak_bits,
    })
}
