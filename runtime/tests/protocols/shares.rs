//! Arithmetic shares over Z_2^ℓ: sharing, revealing, local operations, both roles as threads.

use crate::common;

use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::Role;
use ciphergpt_runtime::protocols::shares::{self, Ring};
use common::*;

#[test]
fn share_and_reveal_roundtrip() {
    for bits in [1u32, 16, 37, 64] {
        for n in [0usize, 1, 1000, 1001] {
            let ring = Ring::new(bits).unwrap();
            let mut p = Prg::from_entropy();
            let x = values_with_edges(&mut p, n, bits);
            let y = values_with_edges(&mut p, n, bits);
            let (x2, y2) = (x.clone(), y.clone());
            let ((xs, ys, got_y), (xc, yc, got_x)) = two_party(
                move |p| {
                    // Server owns x, client owns y.
                    let xs = shares::share(&mut p.ch, ring, &mut p.rng, &x2).unwrap();
                    let ys = shares::recv_share(&mut p.ch, ring, n).unwrap();
                    let got_y = shares::reveal(&mut p.ch, ring, p.role, Role::Server, &ys)
                        .unwrap()
                        .unwrap();
                    let none = shares::reveal(&mut p.ch, ring, p.role, Role::Client, &xs).unwrap();
                    assert!(none.is_none());
                    (xs, ys, got_y)
                },
                move |p| {
                    let xc = shares::recv_share(&mut p.ch, ring, n).unwrap();
                    let yc = shares::share(&mut p.ch, ring, &mut p.rng, &y2).unwrap();
                    let none = shares::reveal(&mut p.ch, ring, p.role, Role::Server, &yc).unwrap();
                    assert!(none.is_none());
                    let got_x = shares::reveal(&mut p.ch, ring, p.role, Role::Client, &xc)
                        .unwrap()
                        .unwrap();
                    (xc, yc, got_x)
                },
            );
            assert_eq!(ring.add_vec(&xs, &xc), x);
            assert_eq!(ring.add_vec(&ys, &yc), y);
            assert_eq!(got_y, y, "bits {bits} n {n}");
            assert_eq!(got_x, x);
            // Local operations on shares match the cleartext.
            let sum = ring.add_vec(&ring.add_vec(&xs, &ys), &ring.add_vec(&xc, &yc));
            assert_eq!(sum, ring.add_vec(&x, &y));
            let dif = ring.add_vec(&ring.sub_vec(&xs, &ys), &ring.sub_vec(&xc, &yc));
            assert_eq!(dif, ring.sub_vec(&x, &y));
            let c = ring.from_signed(-3);
            let sc = ring.add_vec(&ring.scale_vec(c, &xs), &ring.scale_vec(c, &xc));
            assert_eq!(sc, ring.scale_vec(c, &x));
            let ap = ring.add_vec(
                &shares::add_public(ring, Role::Server, &xs, &y),
                &shares::add_public(ring, Role::Client, &xc, &y),
            );
            assert_eq!(ap, ring.add_vec(&x, &y));
        }
    }
}

/// The peer's share (its whole view of `share`: the bytes it receives decode to exactly this) is
/// uniform and independent of the owner's input: for constant inputs 0, all-ones and 2^(ℓ−1) and
/// for random inputs, every bit position is a fair coin (|z| < 6 over 2^15 samples) and agrees
/// with the input's bit half the time (|z| < 6).
#[test]
fn received_share_is_uniform_and_independent() {
    let n = 1 << 15;
    for bits in [16u32, 37, 64] {
        let ring = Ring::new(bits).unwrap();
        let inputs = [
            vec![0u64; n],
            vec![ring.mask(); n],
            vec![1u64 << (bits - 1); n],
            Prg::from_entropy().values(n, bits),
        ];
        for x in inputs {
            let x2 = x.clone();
            let (_, view) = two_party(
                move |p| shares::share(&mut p.ch, ring, &mut p.rng, &x2).unwrap(),
                move |p| {
                    let before = p.ch.stats().total.bytes_received;
                    let v = shares::recv_share(&mut p.ch, ring, n).unwrap();
                    let got = p.ch.stats().total.bytes_received - before;
                    assert_eq!(got as usize, (n * bits as usize).div_ceil(8));
                    v
                },
            );
            assert_uniform_and_independent(&view, &x, bits, "peer's share");
        }
    }
}

#[test]
fn share_over_tcp() {
    let ring = Ring::new(37).unwrap();
    let x = values_with_edges(&mut Prg::from_entropy(), 3000, 37);
    let x2 = x.clone();
    let (got, _) = two_party_tcp(
        move |p| {
            let s = shares::recv_share(&mut p.ch, ring, 3000).unwrap();
            shares::recv_reveal(&mut p.ch, ring, &s).unwrap()
        },
        move |p| {
            let s = shares::share(&mut p.ch, ring, &mut p.rng, &x2).unwrap();
            shares::reveal_to_peer(&mut p.ch, ring, &s).unwrap();
        },
    );
    assert_eq!(got, x);
}
