//! Truncation, truncate-and-reduce and signed extension: exact equality with the compiler's
//! `trunc_floor` on the signed lift, for random values over the whole range and edge values
//! (0, ±1, the ±2^(ℓ−1) boundaries, multiples of 2^s and their neighbours), over mem and TCP.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{from_ring_u64, to_ring_u64, trunc_floor};
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::trunc;
use common::*;

/// Random ℓ-bit values: the common edges, then multiples of 2^s (small and near ±2^(ℓ−1)) and their
/// neighbours ±1, then uniform values.
fn inputs(p: &mut Prg, n: usize, bits: u32, s: u32) -> Vec<u64> {
    let ring = Ring::new(bits).unwrap();
    let mut v = values_with_edges(p, n, bits);
    let half = 1i128 << (bits - 1);
    let step = 1i128 << s;
    let mut extra = Vec::new();
    for k in [-3i128, -2, -1, 0, 1, 2, 3] {
        for base in [0, half, -half] {
            let m = base + k * step;
            for d in [-1i128, 0, 1] {
                extra.push(ring.reduce((m + d) as u64));
            }
        }
    }
    for (i, e) in extra.into_iter().enumerate() {
        v[9 + i] = e;
    }
    v
}

fn split(ring: Ring, p: &mut Prg, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let r = p.values(x.len(), ring.bits);
    (ring.sub_vec(x, &r), r)
}

fn want_trunc(x: u64, bits: u32, s: u32) -> u64 {
    let v = from_ring_u64(x, bits).unwrap();
    to_ring_u64(trunc_floor(v, s), bits).unwrap()
}

fn run_trunc(bits: u32, s: u32, n: usize, tcp: bool) {
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let x = inputs(&mut p, n, bits, s);
    let (xs, xc) = split(ring, &mut p, &x);
    let f = move |p: &mut Peer, x: Vec<u64>| trunc::trunc(&mut p.party(), ring, s, &x).unwrap();
    let (a, b) = if tcp {
        two_party_tcp(move |p| f(p, xs), move |p| f(p, xc))
    } else {
        two_party(move |p| f(p, xs), move |p| f(p, xc))
    };
    let v = ring.add_vec(&a, &b);
    for i in 0..n {
        assert_eq!(
            v[i],
            want_trunc(x[i], bits, s),
            "bits {bits} s {s} x {}",
            ring.to_signed(x[i])
        );
    }
}

#[test]
fn trunc_equals_trunc_floor() {
    for bits in [16u32, 37, 64] {
        for s in [1u32, 12, 15, bits - 1] {
            run_trunc(bits, s, 2000, false);
        }
    }
}

#[test]
fn trunc_over_tcp() {
    run_trunc(37, 12, 5001, true);
}

#[test]
fn trunc_small_lengths_and_zero_shift() {
    for n in [0usize, 1, 2] {
        let ring = Ring::new(37).unwrap();
        let mut p = Prg::from_entropy();
        let x = p.values(n, 37);
        let (xs, xc) = split(ring, &mut p, &x);
        for s in [0u32, 5] {
            let (xs, xc) = (xs.clone(), xc.clone());
            let (a, b) = two_party(
                move |p| trunc::trunc(&mut p.party(), ring, s, &xs).unwrap(),
                move |p| trunc::trunc(&mut p.party(), ring, s, &xc).unwrap(),
            );
            let v = ring.add_vec(&a, &b);
            for i in 0..n {
                assert_eq!(v[i], want_trunc(x[i], 37, s));
            }
        }
    }
}

#[test]
fn trunc_reduce_is_floor_mod_2_to_the_l_minus_s() {
    for (bits, s) in [(16u32, 1u32), (16, 15), (37, 12), (64, 12), (64, 63)] {
        let ring = Ring::new(bits).unwrap();
        let out = Ring::new(bits - s).unwrap();
        let n = 2000;
        let mut p = Prg::from_entropy();
        let x = inputs(&mut p, n, bits, s);
        let (xs, xc) = split(ring, &mut p, &x);
        let (a, b) = two_party(
            move |p| trunc::trunc_reduce(&mut p.party(), ring, s, &xs).unwrap(),
            move |p| trunc::trunc_reduce(&mut p.party(), ring, s, &xc).unwrap(),
        );
        let v = out.add_vec(&a, &b);
        for i in 0..n {
            let want = out.from_signed(trunc_floor(ring.to_signed(x[i]), s));
            assert_eq!(v[i], want, "bits {bits} s {s} x {}", ring.to_signed(x[i]));
        }
    }
}

/// `trunc_reduce_to_each`: the floor mod 2^|out| for |out| ≤ ℓ − s (LayerNorm's last shift at
/// ℓ = 64, s = 18 into the plan's 35 bits, and the other edges), with the carry's arithmetic
/// shares from the comparison's last level; a width that does not fit is an error.
#[test]
fn trunc_reduce_to_is_floor_mod_2_to_the_out() {
    for (bits, s, out_bits, digits) in [
        (64u32, 18u32, 35u32, 6u32),
        (64, 18, 46, 4),
        (16, 1, 15, 4),
        (37, 12, 8, 5),
        (64, 63, 1, 6),
    ] {
        let ring = Ring::new(bits).unwrap();
        let out = Ring::new(out_bits).unwrap();
        let n = 2000;
        let mut p = Prg::from_entropy();
        let x = inputs(&mut p, n, bits, s);
        let (xs, xc) = split(ring, &mut p, &x);
        let shifts = vec![s; n];
        let sh2 = shifts.clone();
        let (a, b) = two_party(
            move |p| {
                trunc::trunc_reduce_to_each(&mut p.party(), ring, &shifts, digits, out, &xs)
                    .unwrap()
            },
            move |p| {
                trunc::trunc_reduce_to_each(&mut p.party(), ring, &sh2, digits, out, &xc).unwrap()
            },
        );
        let v = out.add_vec(&a, &b);
        for i in 0..n {
            let want = out.from_signed(trunc_floor(ring.to_signed(x[i]), s));
            assert_eq!(v[i], want, "bits {bits} s {s} out {out_bits}");
        }
    }
    let (ring, out) = (Ring::new(16).unwrap(), Ring::new(12).unwrap());
    let (e1, e2) = two_party(
        move |p| trunc::trunc_reduce_to_each(&mut p.party(), ring, &[5], 4, out, &[1]).is_err(),
        move |p| trunc::trunc_reduce_to_each(&mut p.party(), ring, &[5], 4, out, &[1]).is_err(),
    );
    assert!(e1 && e2);
}

#[test]
fn extend_preserves_the_signed_value() {
    for (m, nb) in [
        (1u32, 2u32),
        (16, 37),
        (25, 37),
        (37, 64),
        (63, 64),
        (12, 13),
    ] {
        let from = Ring::new(m).unwrap();
        let to = Ring::new(nb).unwrap();
        let n = 2000;
        let mut p = Prg::from_entropy();
        let x = inputs(&mut p, n, m, 0);
        let (xs, xc) = split(from, &mut p, &x);
        let (a, b) = two_party(
            move |p| trunc::extend(&mut p.party(), from, to, &xs).unwrap(),
            move |p| trunc::extend(&mut p.party(), from, to, &xc).unwrap(),
        );
        let v = to.add_vec(&a, &b);
        for i in 0..n {
            assert_eq!(
                v[i],
                to.from_signed(from.to_signed(x[i])),
                "{m} -> {nb}: x {}",
                from.to_signed(x[i])
            );
        }
    }
}

#[test]
fn bad_shifts_and_widths_are_errors() {
    let ring = Ring::new(16).unwrap();
    let (a, b) = two_party(
        move |p| {
            let e1 = trunc::trunc(&mut p.party(), ring, 16, &[1]).is_err();
            let e2 = trunc::trunc_reduce(&mut p.party(), ring, 0, &[1]).is_err();
            let e3 = trunc::extend(&mut p.party(), ring, ring, &[1]).is_err();
            e1 && e2 && e3
        },
        move |_| true,
    );
    assert!(a && b);
}

/// Values in [0, 2^(k−1)) (msb known to be zero): the edges 0, 1, 2, 2^(k−1) − 1, 2^(k−1) − 2,
/// multiples of 2^s (s ≥ 1) near 0 and near 2^(k−1) with their neighbours ±1, then uniform.
fn nonnegative_inputs(p: &mut Prg, n: usize, k: u32, s: u32) -> Vec<u64> {
    let top = 1u64 << (k - 1);
    let mut v: Vec<u64> = vec![0, 1 % top, 2 % top, top - 1, top.saturating_sub(2)];
    if s >= 1 && s < k - 1 {
        let step = 1u64 << s;
        for j in [1u64, 2, 3] {
            for base in [j * step, top - j * step] {
                for d in [base - 1, base, base + 1] {
                    v.push(d % top);
                }
            }
        }
    }
    let rest = n.saturating_sub(v.len());
    if k == 1 {
        v.extend(std::iter::repeat_n(0, rest));
    } else {
        v.extend(p.values(rest, k - 1));
    }
    v.truncate(n);
    v
}

#[test]
fn extend_nonnegative_preserves_the_value() {
    for (m, nb) in [
        (1u32, 2u32),
        (2, 3),
        (12, 13),
        (19, 36),
        (19, 42),
        (17, 38),
        (25, 37),
        (37, 64),
        (63, 64),
    ] {
        let from = Ring::new(m).unwrap();
        let to = Ring::new(nb).unwrap();
        let n = 2000;
        let mut p = Prg::from_entropy();
        let x = nonnegative_inputs(&mut p, n, m, m / 2);
        let (xs, xc) = split(from, &mut p, &x);
        let (a, b) = two_party(
            move |p| trunc::extend_nonnegative(&mut p.party(), from, to, &xs).unwrap(),
            move |p| trunc::extend_nonnegative(&mut p.party(), from, to, &xc).unwrap(),
        );
        let v = to.add_vec(&a, &b);
        for i in 0..x.len() {
            assert_eq!(v[i], x[i], "{m} -> {nb}: x {}", x[i]);
        }
    }
}

/// trunc_nonnegative equals trunc_floor on [0, 2^(ℓ−1)), and costs one COT beyond
/// trunc_reduce: λ + s bits per element (measured on the client's channel).
#[test]
fn trunc_nonnegative_equals_trunc_floor() {
    for bits in [16u32, 37, 64] {
        for s in [1u32, 12, 15, 17, bits - 1]
            .into_iter()
            .filter(|&s| s < bits)
        {
            let ring = Ring::new(bits).unwrap();
            let n = 1024;
            let mut p = Prg::from_entropy();
            let x = nonnegative_inputs(&mut p, n, bits, s);
            let (xs, xc) = split(ring, &mut p, &x);
            let f = move |p: &mut Peer, x: Vec<u64>| {
                let bytes = |p: &Peer| p.ch.stats().total.bytes();
                let b0 = bytes(p);
                trunc::trunc_reduce(&mut p.party(), ring, s, &x).unwrap();
                let b1 = bytes(p);
                let o = trunc::trunc_nonnegative(&mut p.party(), ring, s, &x);
                (o.unwrap(), (b1 - b0, bytes(p) - b1))
            };
            let ((a, (reduce, whole)), (b, _)) =
                two_party_iknp(move |p| f(p, xs), move |p| f(p, xc));
            let v = ring.add_vec(&a, &b);
            for i in 0..n {
                assert_eq!(
                    v[i],
                    want_trunc(x[i], bits, s),
                    "bits {bits} s {s} x {}",
                    x[i]
                );
            }
            let ext = 16 * n as u64 + (n as u64 * s as u64).div_ceil(8);
            assert_eq!(whole - reduce, ext, "bits {bits} s {s}: extension bytes");
        }
    }
}

#[test]
fn nonnegative_bad_widths_are_errors_and_empty_is_free() {
    let ring = Ring::new(16).unwrap();
    let small = Ring::new(8).unwrap();
    let (a, b) = two_party(
        move |p| {
            let e1 = trunc::extend_nonnegative(&mut p.party(), ring, ring, &[1]).is_err();
            let e2 = trunc::extend_nonnegative(&mut p.party(), ring, small, &[1]).is_err();
            let e3 = trunc::trunc_nonnegative(&mut p.party(), ring, 16, &[1]).is_err();
            let empty = trunc::extend_nonnegative(&mut p.party(), small, ring, &[])
                .unwrap()
                .is_empty();
            let id = trunc::trunc_nonnegative(&mut p.party(), ring, 0, &[5]).unwrap();
            e1 && e2 && e3 && empty && id == vec![5]
        },
        move |_| true,
    );
    assert!(a && b);
}

/// A shift per element: trunc_within_margin_each equals trunc_floor for every element's own
/// shift on signed values within the margin, in no more flights than its widest shift alone (IKNP:
/// no pool refills; both after the same call), and with equal shifts it is trunc_within_margin,
/// bytes included.
#[test]
fn per_element_shifts_equal_trunc_floor_in_the_widest_shifts_flights() {
    let bits = 64u32;
    let ring = Ring::new(bits).unwrap();
    let n = 512;
    let mut p = Prg::from_entropy();
    let half = 1u64 << (bits - 2);
    let mut x: Vec<u64> = p.values(n, bits - 1);
    for (i, v) in x.iter_mut().enumerate() {
        // Signed values in [−2^62, 2^62), the edges first.
        *v = match i {
            0 => ring.from_signed(-(half as i64)),
            1 => half - 1,
            2 => 0,
            3 => ring.from_signed(-1),
            _ => ring.sub(*v, half),
        };
    }
    let shifts: Vec<u32> = (0..n).map(|i| [1u32, 10, 16, 37, 62][i % 5]).collect();
    let (xs, xc) = split(ring, &mut p, &x);
    let sh = shifts.clone();
    let f = move |p: &mut Peer, x: Vec<u64>| {
        let stats = |p: &Peer| p.ch.stats().total;
        // The calls compared below each follow a truncation by 62, so that their first flight
        // continues (or not) the same last one.
        trunc::trunc_within_margin(&mut p.party(), ring, 62, &x).unwrap();
        let s0 = stats(p);
        let each = trunc::trunc_within_margin_each(&mut p.party(), Role::Server, ring, &sh, &x);
        let s1 = stats(p);
        let same = vec![62u32; x.len()];
        let uni = trunc::trunc_within_margin_each(&mut p.party(), Role::Server, ring, &same, &x);
        let s2 = stats(p);
        let one = trunc::trunc_within_margin(&mut p.party(), ring, 62, &x);
        let s3 = stats(p);
        let flights = (s1.rounds - s0.rounds, s3.rounds - s2.rounds);
        let bytes = (s2.bytes() - s1.bytes(), s3.bytes() - s2.bytes());
        (each.unwrap(), uni.unwrap(), one.unwrap(), flights, bytes)
    };
    let g = f.clone();
    let ((a, ua, oa, flights, bytes), (b, ub, ob, _, _)) =
        two_party_iknp(move |p| f(p, xs), move |p| g(p, xc));
    let v = ring.add_vec(&a, &b);
    for i in 0..n {
        let want = to_ring_u64(trunc_floor(ring.to_signed(x[i]), shifts[i]), bits).unwrap();
        assert_eq!(v[i], want, "x {} s {}", ring.to_signed(x[i]), shifts[i]);
    }
    assert_eq!(ring.add_vec(&ua, &ub), ring.add_vec(&oa, &ob));
    // (An exchange over 32 KiB goes one way at a time: its flights depend on the bytes too.)
    assert!(
        flights.0 <= flights.1,
        "flights: mixed {} > widest alone {}",
        flights.0,
        flights.1
    );
    assert_eq!(
        bytes.0, bytes.1,
        "equal shifts cost trunc_within_margin's bytes"
    );
}

/// Begun by the client (after a product whose last flight was the client's) or by the server,
/// the truncation within the margin equals trunc_floor on signed values at its edges, in the
/// same flights and bytes, each direction's the other's; the client's first flight is a send
/// when it begins, a receive when the server does.
#[test]
fn truncation_begun_by_either_party_equals_trunc_floor() {
    let (bits, s) = (35u32, 15u32);
    let ring = Ring::new(bits).unwrap();
    let n = 3000;
    let mut p = Prg::from_entropy();
    let half = 1i64 << (bits - 2);
    let mut x: Vec<u64> = p.values(n, bits - 2);
    x[..4].copy_from_slice(&[
        ring.from_signed(-half),
        ring.from_signed(half - (1 << s) - 1),
        0,
        ring.from_signed(-1),
    ]);
    for v in x.iter_mut().skip(4) {
        *v = ring.sub(*v, 1u64 << (bits - 3));
    }
    let want: Vec<u64> = x.iter().map(|&v| want_trunc(v, bits, s)).collect();
    let mut costs = Vec::new();
    for first in [Role::Server, Role::Client] {
        let (xs, xc) = split(ring, &mut p, &x);
        let f = move |p: &mut Peer, x: Vec<u64>| {
            let out = p.party().scoped("t", |party| {
                trunc::trunc_within_margin_from(party, first, ring, s, &x).unwrap()
            });
            (out, p.ch.stats().scope("t"))
        };
        let ((a, cs), (b, cc)) = two_party(move |p| f(p, xs), move |p| f(p, xc));
        let got: Vec<u64> = a.iter().zip(&b).map(|(&u, &v)| ring.add(u, v)).collect();
        assert_eq!(got, want, "begun by {first:?}");
        assert_eq!(cs.rounds, cc.rounds);
        costs.push((cc.bytes_sent, cc.bytes_received, cc.rounds));
    }
    let ((s_sent, s_recv, s_rounds), (c_sent, c_recv, c_rounds)) = (costs[0], costs[1]);
    assert_eq!(s_rounds, c_rounds);
    assert_eq!((s_sent, s_recv), (c_recv, c_sent));
}
