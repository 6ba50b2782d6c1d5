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

use crate::plan::{cost, instruction::Op, Gelu, LayerNorm, Linear, Plan, Softmax};

/// Mark the decode program's weight products as prepared when that lowers their online cost,
/// choosing the method with the cheaper preparation per row for batches of `batch` rows.
pub fn choose(plan: &mut Plan, batch: u32) {
    let l = plan.ring_bits as u64;
    let shapes: Vec<Option<(u64, u64)>> = plan
        .weights
        .iter()
        .map(|w| match w.shape.as_slice() {
            [m, k] => Some((*m, *k)),
            _ => None,
        })
        .collect();
    let Some(decode) = plan.decode.as_mut() else {
        return;
    };
    for ins in decode.instructions.iter_mut() {
        let shape = |w: u32| shapes.get(w as usize).copied().flatten();
        match ins.op.as_mut() {
            Some(Op::Linear(x)) | Some(Op::Logits(x)) => {
                x.prepared = method(shape(x.weight), l, batch);
            }
            // The token embedding: the client's one-hot row times the token table.
            Some(Op::Embed(e)) => e.prepared = method(shape(e.token_table), l, batch),
            Some(Op::Softmax(s)) => {
                s.prepared = false;
                let sizes = cost::Sizes::decode(1);
                let online = cost::softmax(l, s, sizes).total();
                let ahead = Softmax {
                    prepared: true,
                    ..s.clone()
                };
                s.prepared = batch > 0 && cost::softmax(l, &ahead, sizes).total() < online;
            }
            Some(Op::LayerNorm(n)) => {
                n.prepared = false;
                let width = n.n.max(1);
                let online = cost::layernorm(l, n, 1, width).total();
                let ahead = LayerNorm {
                    prepared: true,
                    ..n.clone()
                };
                n.prepared = batch > 0 && cost::layernorm(l, &ahead, 1, width).total() < online;
            }
            Some(Op::Gelu(g)) => {
                g.prepared = false;
                let online = cost::gelu(l, g).total();
                g.prepared = batch > 0
                    && cost::gelu(
                        l,
                        &Gelu {
                            prepared: true,
                            ..g.clone()
                        },
                    )
                    .total()
                        < online;
            }
            _ => {}
        }
    }
}

/// The method for one `[m×k]` weight.
fn method(shape: Option<(u64, u64)>, l: u64, batch: u32) -> u32 {
    let Some((m, k)) = shape else {
        return Linear::ONLINE;
    };
    let rlwe = cost::he_matmul_server_weights(1, m, k, l).total();
    if batch == 0 || cost::prepared_online(m, l).total() >= rlwe {
        return Linear::ONLINE;
    }
    // The RLWE preparation packs up to 16 rows per ciphertext.
    let rows = batch as u64;
    let chunk = rows.min(cost::MAX_ROWS_PER_CT);
    let rlwe_prepare = cost::he_matmul_server_weights(chunk, m, k, l).total() / chunk;
    if rows >= cost::svole_min_rows(k)
        && cost::svole_prepare(rows, m, k, l).total() / rows < rlwe_prepare
    {
        Linear::PREPARED_SVOLE
    } else {
        Linear::PREPARED_RLWE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_batches_below_the_floor_prepare_by_rlwe_and_large_batches_by_svole() {
        // GPT-2's attention output 768×768 at ℓ = 37.
        let w = Some((768, 768));
        assert_eq!(method(w, 37, 0), Linear::ONLINE);
        assert_eq!(method(w, 37, 256), Linear::PREPARED_RLWE);
        assert_eq!(cost::svole_min_rows(768), 23_040);
        // CipherGPT's batch, 256 rows × 256 iterations: sVOLE is cheaper per row.
        assert_eq!(method(w, 37, 65_536), Linear::PREPARED_SVOLE);
        // The estimate of the bench shape: about 8 MB per 256 rows.
        let per_256 = cost::svole_prepare(65_536, 768, 768, 37).total() / 256 / 8;
        assert!((5_000_000..9_000_000).contains(&per_256), "{per_256}");
    }

    #[test]
    fn prepared_gelu_is_cheaper_online_and_costs_its_preparation() {
        let g = Gelu {
            frac: 12,
            alpha_log2: 2,
            pieces_log2: 7,
            ..Gelu::default()
        };
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
        // The preparation: 128² bits of rotations, 128 B2A and one product.
        let prep = cost::gelu_prepare(37, 7).total();
        assert!((20_000..30_000).contains(&prep), "{prep}");
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
