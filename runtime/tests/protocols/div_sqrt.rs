//! Exact division of a public numerator by a shared divisor and exact integer square root: the
//! reconstructed outputs equal ⌊N / d⌋ (u128 arithmetic) and the compiler's `isqrt_u128`, for
//! random inputs over the whole allowed range and the edges (d = 1, d at its bound, exact
//! multiples and their neighbours, perfect squares and their neighbours), over mem and TCP.

use crate::common;

use ciphergpt_compiler::fixed::semantics::isqrt_u128;
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::{div, sqrt};
use common::*;
use rand::Rng;

fn split(ring: Ring, p: &mut Prg, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let r = p.values(x.len(), ring.bits);
    (ring.sub_vec(x, &r), r)
}

/// Runs `div_public` on the shared divisors `d` and checks every quotient.
fn check_div(bits: u32, num: u128, d: Vec<u64>, den_bits: u32, q_bits: u32, tcp: bool) {
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let (ds, dc) = split(ring, &mut p, &d);
    let f = move |p: &mut Peer, d: Vec<u64>| {
        div::div_public(&mut p.party(), ring, num, &d, den_bits, q_bits).unwrap()
    };
    let (a, b) = if tcp {
        two_party_tcp(move |p| f(p, ds), move |p| f(p, dc))
    } else {
        two_party(move |p| f(p, ds), move |p| f(p, dc))
    };
    let q = ring.add_vec(&a, &b);
    for (i, &di) in d.iter().enumerate() {
        let want = num / di as u128;
        assert_eq!(q[i] as u128, want, "{num} / {di} (l = {bits})");
    }
}

/// Divisors: the edges of [lo, 2^den_bits), divisors of `num` and their neighbours, then uniform.
fn divisors(p: &mut Prg, n: usize, lo: u64, den_bits: u32, num: u128) -> Vec<u64> {
    let hi = (1u64 << den_bits) - 1;
    let mut d = vec![lo, lo + 1, hi, hi - 1, (lo + hi) / 2];
    for k in [1u128, 2, 3, 7, 1 << 10] {
        let v = num / k;
        if v >= lo as u128 && v <= hi as u128 {
            d.extend([v as u64, v as u64 - 1, (v as u64 + 1).min(hi)]);
        }
    }
    while d.len() < n {
        // Log-uniform, so small and large divisors both appear.
        let w = p.gen_range(lo.ilog2()..=den_bits - 1);
        d.push(p.gen_range(lo.max(1u64 << w)..=hi.min((2u64 << w) - 1)));
    }
    d
}

/// Softmax's shape: R = ⌊2^40 / Z⌋ with Z ∈ [2^17, 2^27) (rows up to 1,024 entries of at most
/// 2^17), 24 quotient bits, in the plan's 38-bit ring.
#[test]
fn division_softmax_shape() {
    let mut p = Prg::from_entropy();
    let num = 1u128 << 40;
    let d = divisors(&mut p, 600, 1 << 17, 27, num);
    check_div(38, num, d, 27, 24, false);
}

/// LayerNorm's shape: ⌊N / V⌋ with N = 768·2^54 (< 2^64), V from v_eps = 18 up to 2^62, 54
/// quotient bits, in Z_2^64.
#[test]
fn division_layernorm_shape_over_tcp() {
    let mut p = Prg::from_entropy();
    let num = 768u128 << 44;
    let d = divisors(&mut p, 300, 18, 62, num);
    check_div(64, num, d, 62, 54, true);
}

/// Small widths, exhaustively: every divisor of 6 bits and every quotient width that fits.
#[test]
fn division_exhaustive_small() {
    // q = ⌊500 / d⌋ < 2^9 for every d ≥ 1; the ring is as narrow as allowed.
    check_div(10, 500, (1..64).collect(), 6, 9, false);
    check_div(16, 1000, (1..64).collect(), 6, 10, false);
}

#[test]
fn division_rejects_bad_bounds() {
    let (a, b) = two_party(
        |p| {
            let ring = Ring::new(16).unwrap();
            let e1 = div::div_public(&mut p.party(), ring, 100, &[1], 15, 8);
            let e2 = div::div_public(&mut p.party(), ring, 1 << 20, &[1], 4, 8);
            let e3 = div::div_public(&mut p.party(), ring, 100, &[1], 4, 16);
            [e1.is_err(), e2.is_err(), e3.is_err()]
        },
        |p| {
            let ring = Ring::new(16).unwrap();
            let e = div::div_public(&mut p.party(), ring, 100, &[], 4, 8);
            e.unwrap().is_empty()
        },
    );
    assert_eq!(a, [true, true, true]);
    assert!(b);
}

fn check_sqrt(bits: u32, x: Vec<u64>, x_bits: u32, tcp: bool) {
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let (xs, xc) = split(ring, &mut p, &x);
    let f = move |p: &mut Peer, x: Vec<u64>| sqrt::isqrt(&mut p.party(), ring, &x, x_bits).unwrap();
    let (a, b) = if tcp {
        two_party_tcp(move |p| f(p, xs), move |p| f(p, xc))
    } else {
        two_party(move |p| f(p, xs), move |p| f(p, xc))
    };
    let r = ring.add_vec(&a, &b);
    for (i, &xi) in x.iter().enumerate() {
        assert_eq!(
            r[i] as u128,
            isqrt_u128(xi as u128),
            "isqrt({xi}), l = {bits}"
        );
    }
}

/// Values below 2^x_bits: 0, 1, the top, perfect squares and their neighbours, then log-uniform.
fn radicands(p: &mut Prg, n: usize, x_bits: u32) -> Vec<u64> {
    let top = (1u64 << x_bits) - 1;
    let mut x = vec![0, 1, 2, 3, top, top - 1];
    for _ in 0..40 {
        let r = p.gen_range(1..=isqrt_u128(top as u128) as u64);
        for v in [r * r - 1, r * r, r * r + 1] {
            if v <= top {
                x.push(v);
            }
        }
    }
    while x.len() < n {
        let w = p.gen_range(0..x_bits);
        x.push(p.gen_range(0..=(2u64 << w) - 1).min(top));
    }
    x
}

/// LayerNorm's shape: ⌊√Q⌋ for Q < 2^54 in Z_2^64, and over TCP.
#[test]
fn isqrt_layernorm_shape() {
    let mut p = Prg::from_entropy();
    let x = radicands(&mut p, 500, 54);
    check_sqrt(64, x.clone(), 54, false);
    check_sqrt(64, x[..100].to_vec(), 54, true);
}

/// Every value of up to 10 bits, and odd and even widths.
#[test]
fn isqrt_exhaustive_small() {
    check_sqrt(16, (0..1024).collect(), 10, false);
    check_sqrt(16, (0..512).collect(), 9, false);
    check_sqrt(8, (0..2).collect(), 1, false);
}

#[test]
fn isqrt_rejects_bad_width() {
    let (a, b) = two_party(
        |p| {
            let ring = Ring::new(16).unwrap();
            sqrt::isqrt(&mut p.party(), ring, &[1], 15).is_err()
        },
        |p| {
            let ring = Ring::new(16).unwrap();
            sqrt::isqrt(&mut p.party(), ring, &[1], 0).is_err()
        },
    );
    assert!(a && b);
}
