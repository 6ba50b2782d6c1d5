//! LayerNorm on shared rows equals the compiler's `layernorm_row` exactly: the trained model's
//! width and scale (n = 128, f = 15, ℓ = 38), GPT-2 small's width (n = 768), CipherGPT's scale
//! (f = 12, ℓ = 37); Gaussian rows with offsets and outliers, constant rows, rows at the
//! calibrated deviation bound and beyond it; over mem and TCP.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{
    encode, layernorm_params, layernorm_row, to_ring_u64, LayerNormParams,
};
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::protocols::layernorm::{self, layernorm};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::PreparedCorrelation;
use common::*;
use rand::Rng;

/// A row X_j = offset + σ·N(0, 1) (Box–Muller), with about one entry in 50 pushed to ±`outlier`·σ.
fn gaussian_row(
    p: &mut Prg,
    n: usize,
    frac: u32,
    sigma: f64,
    offset: f64,
    outlier: f64,
) -> Vec<i64> {
    (0..n)
        .map(|_| {
            let u1: f64 = p.gen_range(f64::EPSILON..1.0);
            let u2: f64 = p.gen_range(0.0..1.0);
            let mut z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            if p.gen_range(0..50) == 0 {
                z = z.signum() * outlier;
            }
            encode(offset + sigma * z, frac)
        })
        .collect()
}

/// Runs the protocol on `rows` and compares every output with `layernorm_row`.
fn check(bits: u32, params: &LayerNormParams, rows: &[Vec<i64>], tcp: bool) {
    let net = if tcp { Net::Tcp } else { Net::Mem };
    check_with(bits, params, rows, net, false);
}

/// Where a check runs: in memory or over TCP on silent OT, or in memory on IKNP (whose bytes
/// have no silent-OT refills in them).
#[derive(Clone, Copy)]
enum Net {
    Mem,
    Tcp,
    Iknp,
}

/// [`check`], on a prepared correlation when `prepared` (made for one more row than needed and
/// consumed from row 1); returns each party's bytes of the protocol run (the preparation not
/// counted).
fn check_with(
    bits: u32,
    params: &LayerNormParams,
    rows: &[Vec<i64>],
    net: Net,
    prepared: bool,
) -> u64 {
    let ring = Ring::new(bits).unwrap();
    let want: Vec<i64> = rows
        .iter()
        .flat_map(|r| layernorm_row(r, params).unwrap())
        .collect();
    let x: Vec<u64> = rows
        .iter()
        .flatten()
        .map(|&v| to_ring_u64(v, bits).unwrap())
        .collect();
    let mut p = Prg::from_entropy();
    let r = p.values(x.len(), bits);
    let xs = ring.sub_vec(&x, &r);
    let (ps, pc) = (params.clone(), params.clone());
    let f = move |p: &mut Peer, x: Vec<u64>, prm: LayerNormParams| {
        if prepared {
            let rows = x.len() / prm.n;
            let prep = layernorm::prepare(&mut p.party(), &prm, rows + 1).unwrap();
            assert_eq!(
                prep.footprint(),
                (rows + 1) * layernorm::Correlation::footprint_per_row(&prm)
            );
            assert_eq!((prep.units(), prep.remaining()), (rows + 1, rows + 1));
            let before = p.ch.stats().total.bytes();
            let y =
                layernorm::layernorm_prepared(&mut p.party(), ring, &prm, &x, &prep, 1).unwrap();
            (y, p.ch.stats().total.bytes() - before)
        } else {
            let before = p.ch.stats().total.bytes();
            let y = layernorm(&mut p.party(), ring, &prm, &x).unwrap();
            (y, p.ch.stats().total.bytes() - before)
        }
    };
    let ((a, bytes), (b, _)) = match net {
        Net::Tcp => two_party_tcp(move |p| f(p, xs, ps), move |p| f(p, r, pc)),
        Net::Mem => two_party(move |p| f(p, xs, ps), move |p| f(p, r, pc)),
        Net::Iknp => two_party_iknp(move |p| f(p, xs, ps), move |p| f(p, r, pc)),
    };
    let got = ring.add_vec(&a, &b);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            ring.to_signed(g),
            w,
            "row {}, entry {} (n = {}, l = {bits})",
            i / params.n,
            i % params.n,
            params.n
        );
    }
    bytes
}

#[test]
fn trained_model_shape() {
    let mut p = Prg::from_entropy();
    let (n, f) = (128, 15);
    let params = layernorm_params(n, 1e-5, f, 30.0).unwrap();
    let mut rows = Vec::new();
    for (sigma, offset) in [(1.0, 0.0), (0.05, 3.0), (4.0, -10.0), (0.001, 0.5)] {
        rows.push(gaussian_row(&mut p, n, f, sigma, offset, 6.0));
    }
    // A constant row (V = v_eps, output 0), a row of one spike, a row at the calibrated bound.
    rows.push(vec![encode(2.5, f); n]);
    let mut spike = vec![0i64; n];
    spike[17] = encode(29.0, f);
    rows.push(spike);
    rows.push(
        (0..n)
            .map(|j| encode(if j % 2 == 0 { 30.0 } else { -30.0 }, f))
            .collect(),
    );
    check(38, &params, &rows, false);
}

#[test]
fn gpt2_width_over_tcp() {
    let mut p = Prg::from_entropy();
    let (n, f) = (768, 15);
    let params = layernorm_params(n, 1e-5, f, 60.0).unwrap();
    let rows = vec![
        gaussian_row(&mut p, n, f, 0.8, 0.1, 8.0),
        gaussian_row(&mut p, n, f, 7.0, -2.0, 8.0),
    ];
    check(38, &params, &rows, true);
}

/// CipherGPT's scale: f = 12 in a 37-bit ring, the row beyond the calibrated bound included.
#[test]
fn ciphergpt_scale_and_beyond_the_bound() {
    let mut p = Prg::from_entropy();
    let (n, f) = (64, 12);
    let params = layernorm_params(n, 1e-5, f, 8.0).unwrap();
    let rows = vec![
        gaussian_row(&mut p, n, f, 1.0, 0.0, 6.0),
        gaussian_row(&mut p, n, f, 6.0, 1.0, 3.0),
        gaussian_row(&mut p, n, f, 0.01, 100.0, 6.0),
    ];
    check(37, &params, &rows, false);
}

#[test]
fn rejects_partial_rows_and_returns_nothing_for_no_rows() {
    let params = layernorm_params(16, 1e-5, 12, 8.0).unwrap();
    let (ps, pc) = (params.clone(), params);
    let (a, b) = two_party(
        move |p| {
            let ring = Ring::new(37).unwrap();
            layernorm(&mut p.party(), ring, &ps, &[0; 17]).is_err()
        },
        move |p| {
            let ring = Ring::new(37).unwrap();
            layernorm(&mut p.party(), ring, &pc, &[])
                .unwrap()
                .is_empty()
        },
    );
    assert!(a && b);
}

/// On a prepared correlation (square pairs and row triples) the output is the same, exactly,
/// at the trained model's and GPT-2's widths; online the two products become openings of
/// 16 bytes per entry each, so two rows of 768 send at least the square's cross term less per
/// entry (on IKNP, whose counts are exact: silent OT's pool refills land in whichever call
/// drains the pool).
#[test]
fn prepared_products_are_exact_and_cheaper() {
    let mut p = Prg::from_entropy();
    let (n, f) = (128, 15);
    let params = layernorm_params(n, 1e-5, f, 30.0).unwrap();
    let mut rows: Vec<Vec<i64>> = [(1.0, 0.0), (0.05, 3.0), (4.0, -10.0)]
        .iter()
        .map(|&(s, o)| gaussian_row(&mut p, n, f, s, o, 6.0))
        .collect();
    rows.push(vec![encode(2.5, f); n]);
    check_with(38, &params, &rows, Net::Mem, true);
    let (n, f) = (768, 15);
    let params = layernorm_params(n, 1e-5, f, 60.0).unwrap();
    let rows = vec![
        gaussian_row(&mut p, n, f, 0.8, 0.1, 8.0),
        gaussian_row(&mut p, n, f, 7.0, -2.0, 8.0),
    ];
    let prepared = check_with(35, &params, &rows, Net::Iknp, true);
    let online = check_with(35, &params, &rows, Net::Iknp, false);
    eprintln!(
        "layernorm n = 768, ℓ = 35, IKNP: {:.1} bytes per entry prepared against {:.1} online",
        prepared as f64 / 1536.0,
        online as f64 / 1536.0
    );
    // The square's cross term alone (64 IKNP COTs of 16 bytes and Σ_{j<64}(64 − j) bits of
    // corrections per entry) gives way to a 16-byte opening; the row product's saving comes
    // on top.
    let entries = 2 * 768;
    assert!(
        online - prepared >= (64 * 16 + 260 - 16) * entries,
        "{prepared} against {online}"
    );
}

/// A correlation for other rows, or too few rows from the offset, is refused before any
/// communication.
#[test]
fn prepared_correlation_misuse_is_refused() {
    let params = layernorm_params(16, 1e-5, 12, 8.0).unwrap();
    let other = layernorm_params(32, 1e-5, 12, 8.0).unwrap();
    let f = move |p: &mut Peer| {
        let ring = Ring::new(37).unwrap();
        let prep = layernorm::prepare(&mut p.party(), &params, 2).unwrap();
        let x = vec![0u64; 32];
        let bad = |r: Result<Vec<u64>, _>| r.is_err();
        [
            bad(layernorm::layernorm_prepared(
                &mut p.party(),
                ring,
                &params,
                &x,
                &prep,
                1,
            )),
            bad(layernorm::layernorm_prepared(
                &mut p.party(),
                ring,
                &other,
                &x,
                &prep,
                0,
            )),
        ]
    };
    let g = f.clone();
    let (a, b) = two_party(f, g);
    assert_eq!((a, b), ([true; 2], [true; 2]));
}
