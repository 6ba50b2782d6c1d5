//! Weight products prepared ahead by RLWE: the correlation meets S − T = U·Y, the online products
//! of shared inputs are exact x·W mod 2^ℓ, the server's online view is uniform and independent of
//! the client's share, and an exhausted correlation is a clear error.

use crate::common;

use ciphergpt_runtime::crypto::rlwe::HeSession;
use ciphergpt_runtime::net::Channel;
use ciphergpt_runtime::protocols::linear::Packing;
use ciphergpt_runtime::protocols::masked_matmul;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::ProtocolError;
use common::*;
use rand::Rng;

#[test]
fn rlwe_prepared_products_are_exact_and_the_online_view_is_masked() {
    let ring = Ring::new(37).unwrap();
    let (m, k, rows, wbits) = (96, 40, 37, 12);
    let mut rng = ciphergpt_runtime::crypto::Prg::from_entropy();
    let half = 1i64 << (wbits - 1);
    let w: Vec<i64> = (0..m * k).map(|_| rng.gen_range(-half..half)).collect();
    let x: Vec<u64> = ring.random(&mut rng, rows * m);
    let xs: Vec<u64> = ring.random(&mut rng, rows * m);
    let xc = ring.sub_vec(&x, &xs);
    let (w2, xc2) = (w.clone(), xc.clone());
    let ((s, ys), (u, neg_t, yc, masked)) = two_party(
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            let packing = Packing::new(ring, m, k, wbits, 1).unwrap();
            let w32: Vec<i32> = w2.iter().map(|&v| v as i32).collect();
            let mut c = masked_matmul::prepare_rlwe(
                &he,
                &mut p.ch,
                p.role,
                ring,
                &packing,
                rows,
                Some(&w32),
            )
            .unwrap();
            let s = c.shares().to_vec();
            let mut ys = Vec::new();
            for r in 0..rows {
                let mine = &xs[r * m..(r + 1) * m];
                ys.extend(
                    masked_matmul::multiply(
                        &mut p.ch,
                        p.role,
                        ring,
                        &mut c,
                        Some(mine),
                        Some(&w2),
                        1,
                    )
                    .unwrap(),
                );
            }
            let err = masked_matmul::multiply(&mut p.ch, p.role, ring, &mut c, None, Some(&w2), 1)
                .unwrap_err();
            assert!(matches!(&err, ProtocolError::Invalid(e) if e.contains("prepared rows left")));
            (s, ys)
        },
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            let packing = Packing::new(ring, m, k, wbits, 1).unwrap();
            let start = p.ch.stats().total;
            let mut c =
                masked_matmul::prepare_rlwe(&he, &mut p.ch, p.role, ring, &packing, rows, None)
                    .unwrap();
            // The preparation: one call for the 37 rows (far below `MAX_CALL_BYTES`), packed
            // several per ciphertext in the packing for 37 rows, at exactly its bytes.
            let prep = p.ch.stats().total;
            let call = Packing::new(ring, m, k, wbits, rows).unwrap();
            assert!(call.rows_per_ct > 1, "{call:?}");
            let cost = call.cost(rows);
            assert_eq!(prep.bytes_sent - start.bytes_sent, cost.bytes_up as u64);
            assert_eq!(
                prep.bytes_received - start.bytes_received,
                cost.bytes_down as u64
            );
            let (u, neg_t) = (c.masks().to_vec(), c.shares().to_vec());
            let mut yc = Vec::new();
            let before = p.ch.stats().total;
            for r in 0..rows {
                let mine = &xc2[r * m..(r + 1) * m];
                yc.extend(
                    masked_matmul::multiply(
                        &mut p.ch,
                        p.role,
                        ring,
                        &mut c,
                        Some(mine),
                        None::<&[i64]>,
                        1,
                    )
                    .unwrap(),
                );
            }
            let after = p.ch.stats().total;
            // Online: the masked input only, one flight per row, nothing back.
            assert_eq!(
                after.bytes_sent - before.bytes_sent,
                (rows * ((m * 37).div_ceil(8))) as u64
            );
            assert_eq!(after.bytes_received, before.bytes_received);
            let masked = ring.sub_vec(&xc2, &u);
            (u, neg_t, yc, masked)
        },
    );
    // The correlation's definition, then the products.
    assert_eq!(ring.add_vec(&s, &neg_t), plain_product(ring, &u, &w, m, k));
    assert_eq!(ring.add_vec(&ys, &yc), plain_product(ring, &x, &w, m, k));
    // What the server received online: uniform, independent of the client's share.
    assert_uniform_and_independent(&masked, &xc, 37, "masked inputs");
}

/// A preparation's calls: whole row groups up to `MAX_CALL_BYTES` each, at least one group; the
/// calls cover the rows. GPT-2 small's shapes at ℓ = 35: a layer's weights in one call for a
/// batch of 256 decode steps, the vocabulary projection in calls of 64 rows.
#[test]
fn preparation_calls_are_whole_groups_within_the_byte_bound() {
    let ring = Ring::new(35).unwrap();
    for (k, n, rows, calls) in [
        (768, 2304, 256, 1),
        (3072, 768, 256, 1),
        (768, 50257, 256, 4),
    ] {
        let decode = Packing::new(ring, k, n, 16, 1).unwrap();
        let (mut left, mut made) = (rows, 0);
        while left > 0 {
            let (r, p) = masked_matmul::call_rows(ring, &decode, left).unwrap();
            assert!(r > 0 && r <= left, "{k}×{n}: {r} of {left}");
            assert!(
                r == left || r % p.rows_per_ct == 0,
                "{k}×{n}: {r} rows, {p:?}"
            );
            let c = p.cost(r);
            assert!(
                c.bytes_up + c.bytes_down <= masked_matmul::MAX_CALL_BYTES || r == p.rows_per_ct,
                "{k}×{n}: {r} rows move {} bytes",
                c.bytes_up + c.bytes_down
            );
            (left, made) = (left - r, made + 1);
        }
        assert_eq!(made, calls, "{k}×{n}");
    }
}
