//! Attention's products against the KV cache, per head: `QkT`, `scores = (q·Kᵀ) >> shift`
//! (output `[heads·rows, positions]`), and `Pv`, `out = (P·V) >> shift` (output `[rows, C]`)
//! (both plan message [`plan::HeadProduct`]). Two-party execution:
//! `runtime/src/exec/ops/head_product.rs`.

use super::InstructionKind;
use crate::error::Result;
use crate::fixed::simulate::{Simulator, Step};
use crate::plan::cost::{he_attention, part, truncation, CostInput, OpClass, Part};
use crate::plan::{self, Instruction, Plan};

pub struct QkT<'a>(pub &'a plan::HeadProduct);

pub struct Pv<'a>(pub &'a plan::HeadProduct);

fn attributes(h: &plan::HeadProduct) -> String {
    format!("heads={} >>{}", h.heads, h.shift)
}

impl InstructionKind for QkT<'_> {
    fn name(&self) -> &'static str {
        "QkT"
    }

    fn class(&self) -> OpClass {
        OpClass::MatMul
    }

    fn attributes(&self, _plan: &Plan) -> String {
        attributes(self.0)
    }

    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let (h, l, sizes) = (self.0, at.ring_bits(), at.sizes);
        let heads = u64::from(h.heads.max(1));
        let d = at.input_cols() / heads;
        let mm = he_attention(heads, d, true, sizes, sizes.context, l);
        let tr = truncation(l, u64::from(h.shift))
            .times(heads.saturating_mul(sizes.visible()))
            .begun_after(mm);
        vec![part(OpClass::MatMul, mm), part(OpClass::Truncation, tr)]
    }

    /// Per head, each row's causal scores (q·kⱼ) >> shift against the cache.
    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let h = self.0;
        let (q, kc) = (sim.input(s, 0)?, sim.input(s, 1)?);
        let c = sim.cols(s.input_reg(0)?);
        let (heads, d) = (h.heads as usize, c / h.heads as usize);
        let (t, past) = (s.t(), sim.positions);
        let npos = past + t;
        let mut out = vec![0i64; heads * t * npos];
        for hh in 0..heads {
            for r in 0..t {
                for j in 0..=past + r {
                    let mut acc = 0i128;
                    for dd in 0..d {
                        acc += q[r * c + hh * d + dd] as i128 * kc[j * c + hh * d + dd] as i128;
                    }
                    out[(hh * t + r) * npos + j] = s.check(acc)? >> h.shift;
                }
            }
        }
        s.put(out)?;
        Ok(None)
    }

    /// Its outputs.
    fn score_registers(&self, ins: &Instruction) -> Vec<(u32, u32)> {
        ins.outputs.iter().map(|&o| (o, self.0.heads)).collect()
    }
}

impl InstructionKind for Pv<'_> {
    fn name(&self) -> &'static str {
        "Pv"
    }

    fn class(&self) -> OpClass {
        OpClass::MatMul
    }

    fn attributes(&self, _plan: &Plan) -> String {
        attributes(self.0)
    }

    fn estimate(&self, at: &CostInput<'_>) -> Vec<Part> {
        let (h, l, sizes) = (self.0, at.ring_bits(), at.sizes);
        let heads = u64::from(h.heads.max(1));
        let c = at.output_cols();
        let mm = he_attention(heads, c / heads, false, sizes, sizes.context, l);
        let tr = truncation(l, u64::from(h.shift))
            .times(sizes.rows.saturating_mul(c))
            .begun_after(mm);
        vec![part(OpClass::MatMul, mm), part(OpClass::Truncation, tr)]
    }

    /// Per head, (P·V) >> shift against the cached values.
    fn simulate(&self, sim: &mut Simulator<'_>, s: &mut Step<'_>) -> Result<Option<usize>> {
        let h = self.0;
        let (p, vc) = (sim.input(s, 0)?, sim.input(s, 1)?);
        let c = sim.cols(s.input_reg(1)?);
        let (heads, d) = (h.heads as usize, c / h.heads as usize);
        let (t, past) = (s.t(), sim.positions);
        let npos = past + t;
        let mut out = vec![0i64; t * c];
        for hh in 0..heads {
            for r in 0..t {
                for dd in 0..d {
                    let mut acc = 0i128;
                    for j in 0..=past + r {
                        acc += p[(hh * t + r) * npos + j] as i128 * vc[j * c + hh * d + dd] as i128;
                    }
                    out[r * c + hh * d + dd] = s.check(acc)? >> h.shift;
                }
            }
        }
        s.put(out)?;
        Ok(None)
    }

    /// Its first input (the probabilities).
    fn score_registers(&self, ins: &Instruction) -> Vec<(u32, u32)> {
        ins.inputs
            .first()
            .map(|&r| (r, self.0.heads))
            .into_iter()
            .collect()
    }
}
