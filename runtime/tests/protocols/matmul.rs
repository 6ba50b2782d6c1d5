//! OT-based matrix products: x·W with W private to one party and x·Y with both shared, exact mod
//! 2^ℓ against the cleartext product (i128), for several shapes (vectors, non-square, one row,
//! one column), ℓ = 16, 38, 63, inputs at the edges of |x| < 2^(ℓ−2), signed 16-bit weights with
//! ±2^15, over mem and TCP; the bytes of x·W equal the formula.

use crate::common;

use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::Role;
use ciphergpt_runtime::protocols::matmul::{matmul_private, matmul_shared};
use ciphergpt_runtime::protocols::shares::Ring;
use common::*;
use rand::Rng;

fn split(ring: Ring, p: &mut Prg, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let r = p.values(x.len(), ring.bits);
    (ring.sub_vec(x, &r), r)
}

/// Left operands with |x| < 2^(ℓ−2): the extremes first, then uniform.
fn left(ring: Ring, p: &mut Prg, len: usize) -> Vec<u64> {
    let top = (1i64 << (ring.bits - 2)) - 1;
    let mut v: Vec<i64> = vec![top, -top - 1, 0, 1, -1];
    while v.len() < len {
        v.push(p.gen_range(-top - 1..=top));
    }
    v.truncate(len);
    v.into_iter().map(|x| ring.from_signed(x)).collect()
}

fn weights(ring: Ring, p: &mut Prg, len: usize) -> Vec<u64> {
    let mut v: Vec<i64> = vec![-(1 << 15), (1 << 15) - 1];
    while v.len() < len {
        v.push(p.gen_range(-(1i64 << 15)..1 << 15));
    }
    v.truncate(len);
    v.into_iter().map(|x| ring.from_signed(x)).collect()
}

fn product(ring: Ring, x: &[u64], y: &[u64], (t, k, n): (usize, usize, usize)) -> Vec<u64> {
    let mut out = vec![0u64; t * n];
    for ti in 0..t {
        for ni in 0..n {
            let mut acc = 0i128;
            for ki in 0..k {
                acc +=
                    ring.to_signed(x[ti * k + ki]) as i128 * ring.to_signed(y[ki * n + ni]) as i128;
            }
            out[ti * n + ni] = (acc as u128 as u64) & ring.mask();
        }
    }
    out
}

fn run_private(bits: u32, dims: (usize, usize, usize), owner: Role, tcp: bool) -> u64 {
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let (t, k, n) = dims;
    let x = left(ring, &mut p, t * k);
    let w = weights(ring, &mut p, k * n);
    let (xs, xc) = split(ring, &mut p, &x);
    let (ws, wc) = (w.clone(), w.clone());
    let f = move |p: &mut Peer, x: Vec<u64>, w: Vec<u64>| {
        let b0 = p.ch.stats().total.bytes();
        let mine = (p.role == owner).then_some(&w[..]);
        let z = matmul_private(&mut p.party(), ring, &x, dims, mine, owner).unwrap();
        (z, p.ch.stats().total.bytes() - b0)
    };
    let ((a, bytes), (b, _)) = if tcp {
        two_party_tcp_iknp(move |p| f(p, xs, ws), move |p| f(p, xc, wc))
    } else {
        two_party_iknp(move |p| f(p, xs, ws), move |p| f(p, xc, wc))
    };
    assert_eq!(
        ring.add_vec(&a, &b),
        product(ring, &x, &w, dims),
        "l = {bits}, {dims:?}"
    );
    bytes
}

#[test]
fn private_weight_products_are_exact() {
    for (bits, dims) in [
        (38, (1, 7, 5)),
        (38, (3, 100, 33)),
        (38, (1, 128, 384)),
        (16, (2, 9, 4)),
        (63, (2, 5, 3)),
        (38, (1, 1, 1)),
    ] {
        run_private(bits, dims, Role::Server, false);
    }
    run_private(38, (2, 6, 4), Role::Client, false);
}

/// One direction: t·k·ℓ COTs (16 bytes, padded to 128 per call) and ℓ(ℓ+1)/2 bits per product.
#[test]
fn private_product_over_tcp_costs_the_formula() {
    let (t, k, n) = (2usize, 64usize, 96usize);
    let bytes = run_private(38, (t, k, n), Role::Server, true);
    let l = 38u64;
    let cots = ((t * k) as u64 * l).div_ceil(128) * 128 * 16;
    let corr = ((t * k * n) as u64 * l * (l + 1) / 2).div_ceil(8);
    assert_eq!(bytes, cots + corr);
}

#[test]
fn shared_products_are_exact() {
    for (bits, dims, tcp) in [
        (38, (1, 32, 40), false),
        (38, (4, 32, 4), true),
        (16, (3, 5, 7), false),
        (63, (1, 3, 2), false),
    ] {
        let ring = Ring::new(bits).unwrap();
        let mut p = Prg::from_entropy();
        let (t, k, n) = dims;
        let x = left(ring, &mut p, t * k);
        let y = left(ring, &mut p, k * n);
        let (xs, xc) = split(ring, &mut p, &x);
        let (ys, yc) = split(ring, &mut p, &y);
        let f = move |p: &mut Peer, x: Vec<u64>, y: Vec<u64>| {
            matmul_shared(&mut p.party(), ring, &x, &y, dims).unwrap()
        };
        let (a, b) = if tcp {
            two_party_tcp(move |p| f(p, xs, ys), move |p| f(p, xc, yc))
        } else {
            two_party(move |p| f(p, xs, ys), move |p| f(p, xc, yc))
        };
        assert_eq!(
            ring.add_vec(&a, &b),
            product(ring, &x, &y, dims),
            "l = {bits}, {dims:?}"
        );
    }
}

#[test]
fn invalid_shapes_are_refused() {
    let (a, b) = two_party(
        |p| {
            let ring = Ring::new(38).unwrap();
            let e1 = matmul_private(
                &mut p.party(),
                ring,
                &[0; 5],
                (2, 3, 1),
                Some(&[0; 3]),
                Role::Server,
            );
            let e2 = matmul_private(
                &mut p.party(),
                ring,
                &[0; 6],
                (2, 3, 2),
                Some(&[0; 5]),
                Role::Server,
            );
            let e3 = matmul_shared(&mut p.party(), ring, &[0; 6], &[0; 5], (2, 3, 2));
            [e1.is_err(), e2.is_err(), e3.is_err()]
        },
        |p| {
            let ring = Ring::new(64).unwrap();
            matmul_shared(&mut p.party(), ring, &[0; 1], &[0; 1], (1, 1, 1)).is_err()
        },
    );
    assert_eq!(a, [true, true, true]);
    assert!(b);
}
