//! Which weight products of the decode program are prepared ahead of the tokens, and how: the
//! cost model's choice, recorded in each `Linear`/`Logits`/`Embed` instruction's `prepared`
//! field (for `Embed`, the product of the client's one-hot row with the token table).
//!
//! A prepared product (CipherGPT §III's online phase) costs, per decode step, only the client's
//! masked input (m·ℓ bits, one flight) instead of the RLWE product; its correlation — the
//! client's random mask U for the next rows and shares of U·W — is made before the rows exist,
//! in a batch of `batch` decode steps, by one of two methods:
//! - **RLWE**: the linear protocol on U, up to 16 rows packed per ciphertext (the weight
//!   encoded on the way for that packing): per row a fraction of the online product's
//!   bytes, moved before the prompt;
//! - **sVOLE** (CipherGPT's subfield VOLE, dual LPN): cheaper per row for large batches, and only
//!   allowed from its security floor (noise blocks of 256 positions: about 22,400 rows for a
//!   768-column weight).
//!
//! A decode step multiplies each weight by one row, so a batch of `batch` steps has `batch` rows:
//! below the floor for every model whose context fits in 22,400 positions, GPT-2 small's 1,024
//! included — the RLWE method is chosen there. The prefill program is never prepared (its rows
//! are the prompt's, unknown in number until it arrives). `batch = 0` prepares nothing.
//!
//! The decode program's GELUs are marked prepared (`Gelu.prepared`) too when that lowers their
//! online cost, which it does for every table: their two lookups and the product become
//! openings on one-hot vectors and Beaver triples made in the same batches
//! (`cost::gelu_prepared_spline`, `cost::gelu_prepare`). So are its LayerNorms
//! (`LayerNorm.prepared`): their square and normalising product become openings on square
//! pairs and row triples (`cost::opening`, `cost::layernorm_prepare`); and its softmaxes
//! (`Softmax.prepared`): their two exponential-table lookups become the opening of the digits'
//! offsets from random indices with one-hot vectors, and their two products openings on
//! triples.

use crate::plan::{cost, Linear, Plan};

/// What the choice of the prepared layers minimises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrepareBy {
    /// A decode step's link time on the LAN with its share of the preparation: the session's
    /// traffic in all (the default).
    #[default]
    Total,
    /// A decode step's online link time alone: the latency of each new token, whatever the
    /// preparation costs.
    Online,
}

/// Mark each decode instruction that can be prepared as prepared when that lowers what `by`
/// says ([`cost::choice`]), for batches of `batch` steps (`batch = 0` prepares nothing), and
/// choose a prepared weight product's method (the cheaper preparation per row,
/// [`cost::weight_prepare`]).
pub fn choose(plan: &mut Plan, batch: u32, by: PrepareBy) {
    let Some(mut decode) = plan.decode.take() else {
        return;
    };
    let sizes = cost::Sizes::decode(1);
    let l = u64::from(plan.ring_bits);
    for ins in decode.instructions.iter_mut() {
        let Some(c) = cost::choice(plan, ins, sizes, u64::from(batch)) else {
            continue;
        };
        let on = batch > 0
            && match by {
                PrepareBy::Total => c.prepare(),
                PrepareBy::Online => c.prepared_online_seconds() < c.online_seconds(),
            };
        if let Some(op) = ins.op.as_mut() {
            let product = cost::product_weight(op).map_or(Linear::ONLINE, |w| {
                method(plan_shape(plan, w), l, batch, on)
            });
            cost::set_prepared(op, product, on);
        }
    }
    plan.decode = Some(decode);
}

fn plan_shape(plan: &Plan, w: u32) -> (u64, u64) {
    match plan.weights.get(w as usize).map(|w| w.shape.as_slice()) {
        Some([m, k]) => (*m, *k),
        _ => (0, 0),
    }
}

/// The method of a `[m×k]` weight product that the choice prepares (`on`).
fn method((m, k): (u64, u64), l: u64, batch: u32, on: bool) -> u32 {
    if !on {
        return Linear::ONLINE;
    }
    if cost::weight_prepare(m, k, l, u64::from(batch)).1 {
        Linear::PREPARED_SVOLE
    } else {
        Linear::PREPARED_RLWE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Gelu, LayerNorm};

    #[test]
    fn decode_batches_below_the_floor_prepare_by_rlwe_and_large_batches_by_svole() {
        // GPT-2's attention output 768×768 at ℓ = 37.
        let w = (768, 768);
        assert_eq!(method(w, 37, 256, false), Linear::ONLINE);
        assert_eq!(method(w, 37, 256, true), Linear::PREPARED_RLWE);
        assert_eq!(cost::svole_min_rows(768), 23_040);
        // CipherGPT's batch, 256 rows × 256 iterations: sVOLE is cheaper per row.
        assert_eq!(method(w, 37, 65_536, true), Linear::PREPARED_SVOLE);
        // The estimate of the bench shape: about 8 MB per 256 rows.
        let per_256 = cost::svole_prepare(65_536, 768, 768, 37).total() / 256 / 8;
        assert!((5_000_000..9_000_000).contains(&per_256), "{per_256}");
    }

    #[test]
    fn prepared_gelu_is_cheaper_online_and_costs_its_preparation() {
        let g = crate::fixed::convert::gelu_to_plan(
            &crate::fixed::semantics::fit_gelu(12, 2, 7, crate::fixed::semantics::GeluForm::Tanh)
                .unwrap(),
        );
        let prepared = Gelu {
            prepared: true,
            ..g.clone()
        };
        let (online, ahead) = (
            cost::gelu(37, &g).total(),
            cost::gelu(37, &prepared).total(),
        );
        // The lookup of 128 pairs of 37-bit values (9,472 bits) becomes 2·(7 + 74) bits and a
        // 7-bit comparison.
        assert!(ahead * 3 < online, "{ahead} against {online}");
        // The one-hot vector of 128 entries over Z_2^34 by the point function's joint key
        // generation: s² + 258s + (s + 1) + Σ_(j ≤ s)(m − j) + m bits from the server, s +
        // 258s + Σ(m − j) + (s + 1) + m from the client: 4,240 bits, the 530.0 bytes the
        // runtime's test measures (`onehot::preparation_bytes_follow_…`).
        assert_eq!(
            cost::onehot_prepare(34, 7).server,
            49 + 1_806 + 8 + 244 + 34
        );
        assert_eq!(cost::onehot_prepare(34, 7).total(), 4_240);
        // Prepared, a GELU costs fewer bytes in total too, its preparation included.
        let m = u64::from(crate::fixed::convert::gelu_from_plan(&g).spline_range().3);
        let prep = cost::gelu_prepare(m, 7).total();
        assert!(ahead + prep < online, "{ahead} + {prep} against {online}");
    }

    #[test]
    fn prepared_layernorm_trades_its_products_for_openings() {
        let n = LayerNorm {
            n: 768,
            frac: 15,
            r1: 6,
            r2: 8,
            v_eps: 1,
            f_rho: 18,
            prepared: false,
        };
        let ahead = LayerNorm {
            prepared: true,
            ..n.clone()
        };
        let (online, prepared) = (
            cost::layernorm(35, &n, 1, 768).total(),
            cost::layernorm(35, &ahead, 1, 768).total(),
        );
        // Per entry the square over Z_2^64 (a cross term: 64·65/2 + 64 = 2,144 bits) and the
        // row-scalar product (two cross terms with a 30-bit chooser: 2·(Σ_{j<30}(64 − j) + 30)
        // = 3,030 bits) become two openings of 64 bits each way.
        let saved = (online - prepared) / 768;
        assert_eq!(saved, 2_144 + 3_030 - 256);
    }
}
