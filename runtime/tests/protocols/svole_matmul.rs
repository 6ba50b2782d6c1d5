//! CipherGPT's subfield-VOLE matrix product: the prepared correlation meets its definition
//! S − T = U·Y, the online products are exact x·Y mod 2^ℓ, the server's online view is uniform
//! and independent of the input, and the bytes follow the cost formula.

use crate::common;

use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::Channel;
use ciphergpt_runtime::protocols::masked_matmul;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::svole_matmul::{self, SvoleParams};
use ciphergpt_runtime::protocols::ProtocolError;
use common::*;
use rand::Rng;

/// Signed weights of `bits` bits.
fn weights(p: &mut Prg, n: usize, bits: u32) -> Vec<i64> {
    let half = 1i64 << (bits - 1);
    (0..n).map(|_| p.gen_range(-half..half)).collect()
}

/// Prepare, then run the products of `batches` rows each; returns (the server's S, the
/// client's U and −T, the products' shares, the inputs).
#[allow(clippy::type_complexity)]
fn run(
    tcp: bool,
    bits: u32,
    params: SvoleParams,
    w: Vec<i64>,
    batches: Vec<usize>,
) -> (
    Vec<u64>,
    Vec<u64>,
    Vec<u64>,
    Vec<Vec<u64>>,
    Vec<Vec<u64>>,
    Vec<Vec<u64>>,
) {
    let ring = Ring::new(bits).unwrap();
    let (m, k) = (params.inner, params.cols);
    let b2 = batches.clone();
    let server = move |p: &mut Peer| {
        let mut corr = svole_matmul::prepare(&mut p.party(), ring, params, Some(&w), None).unwrap();
        let s = corr.shares().to_vec();
        let outs: Vec<Vec<u64>> = batches
            .iter()
            .map(|&n| {
                masked_matmul::multiply(&mut p.ch, p.role, ring, &mut corr, None, Some(&w), n)
                    .unwrap()
            })
            .collect();
        (s, outs)
    };
    let client = move |p: &mut Peer| {
        let mut corr = svole_matmul::prepare(&mut p.party(), ring, params, None, None).unwrap();
        let (u, t) = (corr.masks().to_vec(), corr.shares().to_vec());
        let mut xs = Vec::new();
        let mut outs = Vec::new();
        for &n in &b2 {
            let x = values_with_edges(&mut p.rng, n * m, bits);
            let before = p.ch.stats().total;
            outs.push(
                masked_matmul::multiply(
                    &mut p.ch,
                    p.role,
                    ring,
                    &mut corr,
                    Some(&x),
                    None::<&[i64]>,
                    n,
                )
                .unwrap(),
            );
            let after = p.ch.stats().total;
            // Online: exactly the masked input, one way.
            assert_eq!(
                after.bytes_sent - before.bytes_sent,
                (n * m * bits as usize).div_ceil(8) as u64
            );
            assert_eq!(after.bytes_received, before.bytes_received);
            xs.push(x);
        }
        let _ = k;
        (u, t, outs, xs)
    };
    let ((s, souts), (u, t, couts, xs)) = if tcp {
        two_party_tcp(server, client)
    } else {
        two_party(server, client)
    };
    (s, u, t, souts, couts, xs)
}

fn check(tcp: bool, bits: u32, rows: usize, m: usize, k: usize, wbits: u32, batches: Vec<usize>) {
    let ring = Ring::new(bits).unwrap();
    let params = if rows >= 20_000 {
        SvoleParams::new(ring, rows, m, k).unwrap()
    } else {
        SvoleParams::new_test_only(ring, rows, m, k).unwrap()
    };
    let mut rng = Prg::from_entropy();
    let w = weights(&mut rng, m * k, wbits);
    let (s, u, neg_t, souts, couts, xs) = run(tcp, bits, params, w.clone(), batches);
    // The definition: S − T = U·Y.
    let uy = plain_product(ring, &u, &w, m, k);
    assert_eq!(
        ring.add_vec(&s, &neg_t),
        uy,
        "S − T = U·Y ({rows} × {m} · {m} × {k})"
    );
    // The products.
    for ((x, ys), yc) in xs.iter().zip(&souts).zip(&couts) {
        assert_eq!(ring.add_vec(ys, yc), plain_product(ring, x, &w, m, k));
    }
    // The server's online view, x − U, is uniform and independent of x (with secure
    // parameters: small test-only ones have nearly dense noise, whose parity shows).
    if params.secure {
        let used: usize = xs.iter().map(|x| x.len()).sum();
        let x_all: Vec<u64> = xs.concat();
        let view = ring.sub_vec(&x_all, &u[..used]);
        assert_uniform_and_independent(&view, &x_all, bits, "masked inputs");
    }
}

#[test]
fn secure_size_masks_are_uniform_and_independent_of_the_input() {
    // 22,500 rows: noise blocks of 257 positions, the smallest secure size.
    check(false, 37, 22_500, 4, 8, 16, vec![1, 22_499]);
}

#[test]
fn small_product_meets_its_definition_and_is_exact() {
    check(false, 37, 200, 12, 10, 16, vec![1, 7, 150]);
}

#[test]
fn wide_product_at_cipher_gpt_shape_in_small() {
    // k = 768: ten noise values per returned ciphertext, t = 180.
    check(false, 37, 300, 16, 768, 16, vec![1, 2, 125]);
}

#[test]
fn more_columns_than_a_ciphertext_over_tcp() {
    // k > 8192: two column chunks, one noise value per ciphertext.
    check(true, 43, 100, 3, 8200, 8, vec![100]);
}

#[test]
fn small_ring_and_narrow_weights() {
    check(false, 16, 120, 20, 33, 6, vec![120]);
}

#[test]
fn asking_past_the_prepared_rows_is_a_clear_error() {
    let ring = Ring::new(37).unwrap();
    let params = SvoleParams::new_test_only(ring, 100, 4, 5).unwrap();
    let mut rng = Prg::from_entropy();
    let w = weights(&mut rng, 20, 12);
    let w2 = w.clone();
    let (se, ce) = two_party(
        move |p| {
            let mut c =
                svole_matmul::prepare(&mut p.party(), ring, params, Some(&w2), None).unwrap();
            masked_matmul::multiply(&mut p.ch, p.role, ring, &mut c, None, Some(&w2), 100).unwrap();
            masked_matmul::multiply(&mut p.ch, p.role, ring, &mut c, None, Some(&w2), 1)
                .unwrap_err()
        },
        move |p| {
            let mut c = svole_matmul::prepare(&mut p.party(), ring, params, None, None).unwrap();
            let x = vec![1u64; 400];
            masked_matmul::multiply(
                &mut p.ch,
                p.role,
                ring,
                &mut c,
                Some(&x),
                None::<&[i64]>,
                100,
            )
            .unwrap();
            masked_matmul::multiply(
                &mut p.ch,
                p.role,
                ring,
                &mut c,
                Some(&x[..4]),
                None::<&[i64]>,
                1,
            )
            .unwrap_err()
        },
    );
    for e in [se, ce] {
        assert!(
            matches!(&e, ProtocolError::Invalid(m) if m.contains("prepared rows left")),
            "{e}"
        );
    }
    // Too few rows for the noise weight, and a weight of the wrong size.
    let tiny = SvoleParams::new_test_only(ring, 10, 4, 5).unwrap();
    let floor = SvoleParams::new(ring, 1000, 4, 5).unwrap();
    assert_eq!(floor.min_rows(), 174 * 128);
    let (se, _) = two_party(
        move |p| svole_matmul::prepare(&mut p.party(), ring, tiny, Some(&w), None).err(),
        move |p| svole_matmul::prepare(&mut p.party(), ring, tiny, None, None).err(),
    );
    assert!(matches!(se, Some(ProtocolError::Invalid(_))));
    let (se, _) = two_party(
        move |p| svole_matmul::prepare(&mut p.party(), ring, floor, None, None).err(),
        move |p| svole_matmul::prepare(&mut p.party(), ring, floor, None, None).err(),
    );
    assert!(
        matches!(&se, Some(ProtocolError::Invalid(m)) if m.contains("security floor")),
        "{se:?}"
    );
}

#[test]
fn preparation_bytes_follow_the_formula() {
    let ring = Ring::new(37).unwrap();
    let params = SvoleParams::new_test_only(ring, 200, 8, 768).unwrap();
    assert_eq!((params.limbs, params.per_ct, params.noise), (2, 10, 180));
    let cost = params.cost(ring).unwrap();
    let mut rng = Prg::from_entropy();
    let w = weights(&mut rng, 8 * 768, 16);
    let ((sent_s, recv_s), _) = two_party_iknp(
        move |p| {
            let before = p.ch.stats().total;
            svole_matmul::prepare(&mut p.party(), ring, params, Some(&w), None).unwrap();
            let a = p.ch.stats().total;
            (
                a.bytes_sent - before.bytes_sent,
                a.bytes_received - before.bytes_received,
            )
        },
        move |p| {
            svole_matmul::prepare(&mut p.party(), ring, params, None, None).unwrap();
        },
    );
    // IKNP chosen-message OTs: the receiver sends 16 bytes per OT (padded to 128 OTs), the
    // sender 32.
    let ots = cost.tree_ots.div_ceil(128) * 128;
    assert_eq!(
        sent_s as usize,
        cost.keys_down + cost.corrections_down + 32 * cost.tree_ots
    );
    assert_eq!(recv_s as usize, cost.products_up + 16 * ots);
}
