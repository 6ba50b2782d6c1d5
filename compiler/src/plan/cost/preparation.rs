//! What the decode program's prepared layers cost to prepare, on silent OT, and the cost
//! model's choice between preparing a layer and running it online: by a decode step's bytes
//! *in total*, its preparation included, and its flights, weighed together as link time on
//! the LAN ([`Choice::prepare`]); and the prefill's GELUs prepared at the request
//! ([`prefill_gelu`]). The runtime makes the decode correlations in batches of decode steps
//! (`Executor::preprocess`); the costs here are per element, entry or score, as the runtime's
//! `prepare` functions make them (their module docs give the steps: `onehot::dpf`,
//! `gelu::prepare`, `softmax::prepare`, `layernorm::prepare`).

use super::he::{he_matmul_server_weights, svole_min_rows, svole_prepare, MAX_ROWS_PER_CT};
use super::layers::{gelu, gelu_layer, gelu_slice};
use super::primitives::{cot, product, square};
use super::{estimate, Bits, Cost, CostInput, Sizes};
use crate::fixed::convert::gelu_from_plan;
use crate::plan::link::LAN;
use crate::plan::{instruction::Op, Instruction, Linear, Plan};

/// The one-hot vector of a random point among `2^s` over Z_2^m (runtime `onehot::dpf`): the
/// levels' random OTs (no message on silent OT); the point's bit products over Z_2^s (one COT
/// of s bits per level, the client choosing); per level y (128 bits) and the shares of the
/// correction words (130 bits) each way; the output word's two Gilboa products with choosers of
/// s + 1 bits (or m, if fewer) and its opening. Flights: 2s + 6 (the levels pipelined one
/// flight each way, 2s + 1; the runtime's test counts 20 at s = 7 on IKNP).
pub fn onehot_prepare(m: u64, s: u64) -> Bits {
    if s == 0 {
        return Bits::ZERO;
    }
    let k = (s + 1).min(m);
    let gilboa: u64 = (0..k).map(|j| m - j).sum();
    let index = cot(s).times(s);
    let levels = 258 * s;
    let word = k + gilboa + m;
    Bits::new(
        index.server + levels + word,
        index.client + levels + word,
        2 * s + 6,
    )
}

/// Preparing one element of a GELU correlation over the spline's ring Z_2^m: the one-hot
/// vector of a random piece among `2^s` and one Beaver triple (a [`product`]), side by side.
pub fn gelu_prepare(m: u64, s: u64) -> Bits {
    onehot_prepare(m, s).alongside(product(m))
}

/// Preparing one softmax score: a one-hot vector per digit over the product's ring Z_2^w1,
/// a triple over Z_2^w1 and one over Z_2^w2 (runtime `softmax::prepare`).
pub fn softmax_prepare(hi: u64, lo: u64, w1: u64, w2: u64) -> Bits {
    onehot_prepare(w1, hi)
        .alongside(onehot_prepare(w1, lo))
        .alongside(product(w1))
        .alongside(product(w2))
}

/// Preparing one LayerNorm entry: a square pair (one cross term over 64 bits) and a triple
/// entry (a product over 64 bits).
pub fn layernorm_prepare() -> Bits {
    square(64).alongside(product(64))
}

/// A layer's two ways, per decode step: online alone, or its prepared online part plus its
/// share of the preparation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    pub online: Cost,
    pub prepared_online: Cost,
    pub preparation: Cost,
}

impl Choice {
    /// Bytes of a decode step prepared, the preparation included.
    pub fn prepared_total(&self) -> u64 {
        self.prepared_online
            .bytes()
            .saturating_add(self.preparation.bytes())
    }

    /// Link seconds on [`LAN`] of a decode step online alone.
    pub fn online_seconds(&self) -> f64 {
        LAN.estimate_seconds(self.online.bytes(), self.online.rounds)
    }

    /// Link seconds on [`LAN`] of a decode step's prepared online part alone.
    pub fn prepared_online_seconds(&self) -> f64 {
        LAN.estimate_seconds(self.prepared_online.bytes(), self.prepared_online.rounds)
    }

    /// Link seconds on [`LAN`] of a decode step prepared: its online part's, plus the
    /// transfer of its share of the preparation (whose flights the batch's steps share).
    pub fn prepared_seconds(&self) -> f64 {
        self.prepared_online_seconds() + LAN.transfer_seconds(self.preparation.bytes())
    }

    /// Whether preparing pays: a decode step, its preparation included, takes less link time
    /// on the LAN, which weighs bytes and flights together (a flight, 0.5 ms, is worth 62.5 kB
    /// there); a tie goes to fewer bytes in total.
    pub fn prepare(&self) -> bool {
        let (a, b) = (self.prepared_seconds(), self.online_seconds());
        a < b || (a == b && self.prepared_total() < self.online.bytes())
    }
}

/// The preparation of one row of a `[k × n]` weight product in batches of `batch` rows, by
/// the cheaper method per row: RLWE with up to 16 rows per ciphertext, or sVOLE from its floor.
/// Returns the cost per row and whether sVOLE is the method.
pub fn weight_prepare(k: u64, n: u64, l: u64, batch: u64) -> (Bits, bool) {
    let chunk = batch.clamp(1, MAX_ROWS_PER_CT);
    let per_row = |b: Bits, rows: u64| Bits::new(b.server / rows, b.client / rows, b.rounds);
    let rlwe = per_row(he_matmul_server_weights(chunk, k, n, l), chunk);
    if batch >= svole_min_rows(n) {
        let svole = per_row(svole_prepare(batch, k, n, l), batch);
        if svole.total() < rlwe.total() {
            return (svole, true);
        }
    }
    (rlwe, false)
}

/// The weight of a weight product (`Linear`'s, `Logits`'s, `Embed`'s token table); `None` for
/// the other kinds.
pub fn product_weight(op: &Op) -> Option<u32> {
    match op {
        Op::Linear(x) | Op::Logits(x) => Some(x.weight),
        Op::Embed(e) => Some(e.token_table),
        _ => None,
    }
}

/// Sets the prepared mark of a kind that can be prepared: `product` (a `Linear::*` method) for
/// a weight product, `layer` for a GELU, LayerNorm or softmax. Returns false, changing nothing,
/// for a kind that is never prepared.
pub fn set_prepared(op: &mut Op, product: u32, layer: bool) -> bool {
    match op {
        Op::Linear(x) | Op::Logits(x) => x.prepared = product,
        Op::Embed(e) => e.prepared = product,
        Op::Gelu(g) => g.prepared = layer,
        Op::LayerNorm(n) => n.prepared = layer,
        Op::Softmax(s) => s.prepared = layer,
        _ => return false,
    }
    true
}

/// Whether the instruction's kind is marked prepared.
pub fn is_prepared(op: &Op) -> bool {
    match op {
        Op::Linear(x) | Op::Logits(x) => x.prepared != Linear::ONLINE,
        Op::Embed(e) => e.prepared != Linear::ONLINE,
        Op::Gelu(g) => g.prepared,
        Op::LayerNorm(n) => n.prepared,
        Op::Softmax(s) => s.prepared,
        _ => false,
    }
}

/// The instruction with its prepared mark set to `on` (a weight product: by RLWE), or `None`
/// for a kind that is never prepared.
fn marked(ins: &Instruction, on: bool) -> Option<Instruction> {
    let mut x = ins.clone();
    let product = if on {
        Linear::PREPARED_RLWE
    } else {
        Linear::ONLINE
    };
    set_prepared(x.op.as_mut()?, product, on).then_some(x)
}

/// The preparation one decode step of `ins` consumes, at `sizes`, in batches of `batch` steps.
fn preparation(plan: &Plan, ins: &Instruction, sizes: Sizes, batch: u64) -> Bits {
    let input = CostInput { plan, ins, sizes };
    let l = input.ring_bits();
    let weight = |id: u32| {
        let (k, n) = input.weight_shape(id);
        weight_prepare(k, n, l, batch).0
    };
    if let Some(w) = ins.op.as_ref().and_then(product_weight) {
        return weight(w);
    }
    match ins.op.as_ref() {
        Some(Op::Gelu(g)) => {
            let m = u64::from(gelu_from_plan(g).spline_range().3);
            gelu_prepare(m, u64::from(g.pieces_log2)).times(input.input_cols())
        }
        Some(Op::LayerNorm(n)) => layernorm_prepare().times(n.n),
        Some(Op::Softmax(s)) => {
            let (fe, hi, lo) = (s.frac_exp, s.hi_bits, s.lo_bits);
            let k = u64::from(fe + s.frac_out + s.recip_guard);
            let scores = u64::from(s.heads.max(1)) * sizes.visible();
            softmax_prepare(u64::from(hi), u64::from(lo), 2 * u64::from(fe) + 2, k + 2)
                .times(scores)
        }
        _ => Bits::ZERO,
    }
}

fn summed(plan: &Plan, ins: &Instruction, sizes: Sizes) -> Cost {
    estimate(plan, ins, sizes)
        .iter()
        .fold(Cost::default(), |acc, p| acc.add(&p.cost))
}

/// The cost model's two ways for one decode instruction at `sizes`, in batches of `batch`
/// steps: `None` for a kind that is never prepared.
pub fn choice(plan: &Plan, ins: &Instruction, sizes: Sizes, batch: u64) -> Option<Choice> {
    let (off, on) = (marked(ins, false)?, marked(ins, true)?);
    Some(Choice {
        online: summed(plan, &off, sizes),
        prepared_online: summed(plan, &on, sizes),
        preparation: Cost::from_bits(preparation(plan, &on, sizes, batch)),
    })
}

/// Tree nodes per slice of the one-hot vectors' preparation (runtime `onehot::SLICE_NODES`):
/// each slice of 2^21 / N vectors runs the levels' exchanges once.
pub const ONEHOT_SLICE_NODES: u64 = 1 << 21;

/// A prefill GELU layer of `elements` on correlations made just before it, at the request (the
/// prompt's length is known then): per call of [`gelu_slice`] elements, its one-hot vectors in
/// slices of `2^21 / N` one after the other, then its triples, then the prepared GELU.
pub fn gelu_layer_prepared_here(l: u64, g: &crate::plan::Gelu, elements: u64) -> Bits {
    let ahead = crate::plan::Gelu {
        prepared: true,
        ..g.clone()
    };
    let m = u64::from(gelu_from_plan(g).spline_range().3);
    let s = u64::from(g.pieces_log2);
    let call = gelu_slice(g.pieces_log2).min(elements.max(1));
    let calls = elements.div_ceil(call).max(1);
    let vectors = call.div_ceil((ONEHOT_SLICE_NODES >> s.min(21)).max(1));
    let one = onehot_prepare(m, s);
    let triple = product(m);
    let prep_rounds = one.rounds.saturating_mul(vectors) + triple.rounds;
    let online = gelu(l, &ahead);
    let per = |a: u64, b: u64, c: u64| a.saturating_add(b).saturating_add(c);
    Bits {
        server: per(one.server, triple.server, online.server).saturating_mul(elements),
        client: per(one.client, triple.client, online.client).saturating_mul(elements),
        rounds: prep_rounds
            .saturating_add(online.rounds)
            .saturating_mul(calls),
        ..Bits::ZERO
    }
}

/// The prefill's GELU layer of `elements`: online, or on correlations made just before it
/// ([`gelu_layer_prepared_here`]) when that takes less link time on the LAN. Returns its cost
/// and whether it is prepared; the runtime's executor asks the same question with the same
/// numbers (`exec/ops/gelu.rs`).
pub fn prefill_gelu(l: u64, g: &crate::plan::Gelu, elements: u64) -> (Bits, bool) {
    let online = gelu_layer(l, g, elements);
    let here = gelu_layer_prepared_here(l, g, elements);
    let secs = |b: Bits| LAN.estimate_seconds(b.total().div_ceil(8), b.rounds);
    if elements > 0 && secs(here) < secs(online) {
        (here, true)
    } else {
        (online, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Gelu;

    /// GPT-2 small's GELU as `compile examples/gpt2.cgpt` fits it: 128 pieces on ±4, f = 15.
    fn gpt2_gelu() -> Gelu {
        use crate::fixed::semantics::{fit_gelu, GeluForm};
        crate::fixed::convert::gelu_to_plan(&fit_gelu(15, 2, 7, GeluForm::Tanh).unwrap())
    }

    /// A prompt's GELUs are prepared at the request when there are enough of them that the
    /// bytes saved outweigh the preparation's flights: a GPT-2 layer of 32 tokens is, a handful
    /// of elements is not.
    #[test]
    fn the_prefill_prepares_its_gelus_where_that_pays() {
        let g = gpt2_gelu();
        let (n, l) = (32 * 3072, 35);
        let (here, prepared) = prefill_gelu(l, &g, n);
        assert!(prepared);
        let online = gelu_layer(l, &g, n);
        assert!(
            here.total() * 10 < online.total() * 8,
            "{here:?} against {online:?}"
        );
        assert!(here.rounds > online.rounds);
        let (small, prepared) = prefill_gelu(l, &g, 16);
        assert!(!prepared);
        assert_eq!(small, gelu_layer(l, &g, 16));
        // The bytes per element: the one-hot vector, the triple and the prepared online part.
        let m = u64::from(gelu_from_plan(&g).spline_range().3);
        let per = gelu_prepare(m, 7).total()
            + gelu(
                l,
                &Gelu {
                    prepared: true,
                    ..g.clone()
                },
            )
            .total();
        assert_eq!(here.total(), per * n);
    }
}
