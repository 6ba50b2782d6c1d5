//! Between the plan's messages and the semantics' parameter structs.

use super::semantics::{ExpTables, GeluForm, GeluTables, LayerNormParams};
use crate::plan;

pub fn gelu_to_plan(t: &GeluTables) -> plan::Gelu {
    plan::Gelu {
        frac: t.frac,
        alpha_log2: t.alpha_log2,
        pieces_log2: t.pieces_log2,
        slope: t.slope.clone(),
        intercept: t.intercept.clone(),
        form: match t.form {
            GeluForm::Tanh => 0,
            GeluForm::Erf => 1,
        },
        prepared: false,
    }
}

pub fn gelu_from_plan(p: &plan::Gelu) -> GeluTables {
    GeluTables {
        frac: p.frac,
        alpha_log2: p.alpha_log2,
        pieces_log2: p.pieces_log2,
        form: if p.form == 1 {
            GeluForm::Erf
        } else {
            GeluForm::Tanh
        },
        slope: p.slope.clone(),
        intercept: p.intercept.clone(),
    }
}

pub fn softmax_to_plan(t: &ExpTables, heads: u32) -> plan::Softmax {
    plan::Softmax {
        heads,
        frac_in: t.frac_in,
        frac_exp: t.frac_e,
        frac_out: t.frac_out,
        exp_hi: t.hi.clone(),
        exp_lo: t.lo.clone(),
        hi_bits: t.hi_bits,
        lo_bits: t.lo_bits,
        recip_guard: t.recip_guard,
        clip: t.clip,
        prepared: false,
    }
}

pub fn softmax_from_plan(p: &plan::Softmax) -> ExpTables {
    ExpTables {
        frac_in: p.frac_in,
        frac_e: p.frac_exp,
        frac_out: p.frac_out,
        hi_bits: p.hi_bits,
        lo_bits: p.lo_bits,
        recip_guard: p.recip_guard,
        clip: p.clip,
        hi: p.exp_hi.clone(),
        lo: p.exp_lo.clone(),
    }
}

pub fn layernorm_to_plan(p: &LayerNormParams) -> plan::LayerNorm {
    plan::LayerNorm {
        n: p.n as u64,
        frac: p.frac,
        r1: p.r1,
        r2: p.r2,
        v_eps: p.v_eps,
        f_rho: p.f_rho,
        prepared: false,
    }
}

pub fn layernorm_from_plan(p: &plan::LayerNorm) -> LayerNormParams {
    LayerNormParams {
        n: p.n as usize,
        frac: p.frac,
        r1: p.r1,
        r2: p.r2,
        v_eps: p.v_eps,
        f_rho: p.f_rho,
    }
}
