//! Millionaires' comparison and DReLU / MSB: results against the cleartext definition (the sign
//! of the signed lift), edge values, several widths, digit sizes and lengths, TCP, and views.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{from_ring_u64, to_ring_u64};
use ciphergpt_runtime::crypto::pack::mask;
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::cmp;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::Party;
use common::*;

/// The XOR of the two parties' shares of a millionaires' begun by `first`, and each party's
/// flights (its scope's, which counts its first flight).
fn run_mill_from(
    first: Role,
    bits: u32,
    m: u32,
    a: Vec<u64>,
    b: Vec<u64>,
) -> (Vec<bool>, [u64; 2]) {
    let run = move |p: &mut Peer, x: Vec<u64>| {
        let o = p.party().scoped("m", |party| {
            cmp::millionaire_from(party, first, bits, m, &x).unwrap()
        });
        (o, p.ch.stats().scope("m").rounds)
    };
    let ((s, rs), (c, rc)) = two_party(move |p| run(p, a), move |p| run(p, b));
    (s.iter().zip(&c).map(|(x, y)| x ^ y).collect(), [rs, rc])
}

fn run_mill(bits: u32, m: u32, a: Vec<u64>, b: Vec<u64>) -> Vec<bool> {
    run_mill_from(Role::Server, bits, m, a, b).0
}

/// Begun by either party: the same results, the same flights, and the last flight the one
/// `last_sender_from` names (its flights begin with `first` sending).
#[test]
fn millionaire_begun_by_either_party_matches_definition() {
    for (bits, m) in [(1u32, 4u32), (5, 4), (15, 4), (36, 6), (64, 8)] {
        let n = 600;
        let mut p = Prg::from_entropy();
        let a = values_with_edges(&mut p, n, bits);
        let mut b = values_with_edges(&mut p, n, bits);
        b[..n / 3].copy_from_slice(&a[..n / 3]);
        let want: Vec<bool> = a.iter().zip(&b).map(|(x, y)| x > y).collect();
        let mut flights = Vec::new();
        for first in [Role::Server, Role::Client] {
            let (got, f) = run_mill_from(first, bits, m, a.clone(), b.clone());
            assert_eq!(got, want, "bits {bits} m {m} first {first:?}");
            assert_eq!(f[0], f[1]);
            flights.push(f[0]);
            // The last sender of one begun by `first` is the other's when begun by the peer.
            let last = cmp::last_sender_from(first, bits, m, 1);
            assert_eq!(
                last,
                cmp::last_sender_from(first.other(), bits, m, 1).other()
            );
            let depth = cmp::levels(bits.div_ceil(m) as usize) as u64;
            assert_eq!(f[0], 2 + depth);
            // Flights alternate from `first`: the last is first's for an odd count.
            assert_eq!(last == first, f[0] % 2 == 1, "bits {bits} m {m}");
        }
        assert_eq!(flights[0], flights[1]);
    }
}

#[test]
fn millionaire_matches_definition() {
    for bits in [1u32, 4, 5, 16, 36, 37, 63, 64] {
        for m in [1u32, 2, 4, 8] {
            let n = 1000;
            let mut p = Prg::from_entropy();
            let a = values_with_edges(&mut p, n, bits);
            let mut b = values_with_edges(&mut p, n, bits);
            // Equal values, neighbours and shared prefixes, where the tree matters most.
            for i in 0..n / 4 {
                b[n / 2 + i] = match i % 3 {
                    0 => a[n / 2 + i],
                    1 => a[n / 2 + i].wrapping_add(1) & mask(bits),
                    _ => a[n / 2 + i] ^ (1u64 << (i as u32 % bits)),
                };
            }
            let want: Vec<bool> = a.iter().zip(&b).map(|(x, y)| x > y).collect();
            assert_eq!(run_mill(bits, m, a, b), want, "bits {bits} m {m}");
        }
    }
    assert!(run_mill(0, 4, vec![0; 3], vec![0; 3]).iter().all(|&x| !x));
}

/// `millionaire_arith`: additive shares over Z_2^out of 1{a > b}, against the definition, for
/// one digit (a B2A of the leaf), two (the 1-out-of-8 OT alone) and many (the tree, then the
/// OT), equal values and neighbours included; and `carry_arith_each` against `carry_each` on
/// mixed widths.
#[test]
fn millionaire_with_arithmetic_output_matches_definition() {
    for (bits, m) in [(4u32, 4u32), (8, 4), (15, 4), (18, 6), (36, 6), (64, 4)] {
        for out_bits in [1u32, 8, 35, 64] {
            let out = Ring::new(out_bits).unwrap();
            let n = 600;
            let mut p = Prg::from_entropy();
            let a = values_with_edges(&mut p, n, bits);
            let mut b = values_with_edges(&mut p, n, bits);
            for i in 0..n / 3 {
                b[i] = if i % 2 == 0 {
                    a[i]
                } else {
                    a[i].wrapping_sub(1) & mask(bits)
                };
            }
            let want: Vec<u64> = a.iter().zip(&b).map(|(x, y)| (x > y) as u64).collect();
            let (s, c) = two_party(
                move |p| cmp::millionaire_arith(&mut p.party(), bits, m, out, &a).unwrap(),
                move |p| cmp::millionaire_arith(&mut p.party(), bits, m, out, &b).unwrap(),
            );
            assert_eq!(
                out.add_vec(&s, &c),
                want,
                "bits {bits}, m {m}, out {out_bits}"
            );
        }
    }
    let widths: Vec<u32> = (0..900).map(|i| [3u32, 17, 53][i % 3]).collect();
    let mut p = Prg::from_entropy();
    let (vs, vc) = (p.values(900, 64), p.values(900, 64));
    let want: Vec<u64> = (0..900)
        .map(|i| {
            let k = widths[i];
            (((vs[i] & mask(k)) as u128 + (vc[i] & mask(k)) as u128) >> k) as u64
        })
        .collect();
    let w64 = Ring::new(64).unwrap();
    let (ws, wc) = (widths.clone(), widths);
    let (s, c) = two_party(
        move |p| cmp::carry_arith_each(&mut p.party(), &ws, 6, w64, &vs).unwrap(),
        move |p| cmp::carry_arith_each(&mut p.party(), &wc, 6, w64, &vc).unwrap(),
    );
    assert_eq!(w64.add_vec(&s, &c), want);
}

fn run_drelu(ring: Ring, x: &[u64], split: Vec<u64>) -> (Vec<bool>, Vec<bool>) {
    let xs: Vec<u64> = x
        .iter()
        .zip(&split)
        .map(|(&v, &r)| ring.sub(v, r))
        .collect();
    let xc = split;
    let (s, c) = two_party(
        move |p| {
            let a = cmp::drelu(&mut p.party(), ring, &xs).unwrap();
            (a, cmp::msb(&mut p.party(), ring, &xs).unwrap())
        },
        move |p| {
            let a = cmp::drelu(&mut p.party(), ring, &xc).unwrap();
            (a, cmp::msb(&mut p.party(), ring, &xc).unwrap())
        },
    );
    let d = s.0.iter().zip(&c.0).map(|(x, y)| x ^ y).collect();
    let m = s.1.iter().zip(&c.1).map(|(x, y)| x ^ y).collect();
    (d, m)
}

#[test]
fn drelu_and_msb_match_sign() {
    for bits in [1u32, 2, 16, 37, 64] {
        for n in [0usize, 1, 1000, 1001] {
            let ring = Ring::new(bits).unwrap();
            let mut p = Prg::from_entropy();
            let x = values_with_edges(&mut p, n, bits);
            // Shares that are themselves edge values: 0, 2^(ℓ−1), max, random.
            let mut split = values_with_edges(&mut p, n, bits);
            split.rotate_left(n.min(3));
            let (d, m) = run_drelu(ring, &x, split);
            for i in 0..n {
                // The oracle: the compiler's signed lift of the ring element.
                let v = from_ring_u64(x[i], bits).unwrap();
                assert_eq!(v, ring.to_signed(x[i]));
                assert_eq!(d[i], v >= 0, "bits {bits} n {n} x {}", x[i]);
                assert_eq!(m[i], v < 0);
            }
        }
    }
}

#[test]
fn drelu_at_range_boundaries() {
    for bits in [16u32, 37, 64] {
        let ring = Ring::new(bits).unwrap();
        let h = 1i64 << (bits - 2);
        let mut signed = vec![0i64, 1, -1, h, -h];
        let top = if bits == 64 {
            i64::MAX
        } else {
            (1i64 << (bits - 1)) - 1
        };
        signed.extend([top, top - 1, -top, -top - 1, -top + 1]);
        let x: Vec<u64> = signed
            .iter()
            .map(|&v| to_ring_u64(v, bits).unwrap())
            .collect();
        for split in [
            vec![0u64; x.len()],
            vec![ring.mask(); x.len()],
            vec![1u64 << (bits - 1); x.len()],
        ] {
            let (d, _) = run_drelu(ring, &x, split);
            for (i, &v) in signed.iter().enumerate() {
                assert_eq!(d[i], v >= 0, "bits {bits} value {v}");
            }
        }
    }
}

/// Over TCP, with a small batch (simultaneous openings) and a large one (openings over 32 KiB go
/// one after the other; two simultaneous large writes would block both parties).
#[test]
fn drelu_over_tcp() {
    for n in [5000, (1 << 16) + 3] {
        drelu_over_tcp_n(n);
    }
}

fn drelu_over_tcp_n(n: usize) {
    let bits = 37;
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let x = values_with_edges(&mut p, n, bits);
    let r = p.values(n, bits);
    let xs: Vec<u64> = x.iter().zip(&r).map(|(&v, &r)| ring.sub(v, r)).collect();
    let (s, c) = two_party_tcp(
        move |p| cmp::drelu(&mut p.party(), ring, &xs).unwrap(),
        move |p| cmp::drelu(&mut p.party(), ring, &r).unwrap(),
    );
    for i in 0..n {
        assert_eq!(s[i] ^ c[i], ring.to_signed(x[i]) >= 0);
    }
}

/// One party's view of a millionaires' run (every byte it receives after the base OTs: leaf
/// and node OT ciphertexts, the peer's choice corrections) and its output share do not depend
/// on the other party's input. For the peer's inputs all-zero, all-ones and random against one
/// random input of the tapped party: the view's bits are fair coins in aggregate (|z| < 6), the
/// view has the same length, and the tapped party's output share is a fair coin agreeing with
/// the true result half the time (|z| < 6 over 2^13 comparisons). The tree's levels alternate
/// their chooser, so each party both chooses and offers tables; `first` chooses the leaves.
fn view_is_independent_of_peer_input(tapped: Role, first: Role) {
    let bits = 36;
    let n = 1 << 13;
    let mine = Prg::from_entropy().values(n, bits);
    let mut lens = Vec::new();
    for theirs in [
        vec![0u64; n],
        vec![mask(bits); n],
        Prg::from_entropy().values(n, bits),
    ] {
        let peer = tapped.other();
        let theirs2 = theirs.clone();
        let ((own, view), other) = tapped_two_party(
            tapped,
            CotBackend::Silent,
            |ot, tap| {
                let start = tap.received.len();
                let own =
                    cmp::millionaire_from(&mut Party::new(ot, tap, tapped), first, bits, 4, &mine)
                        .unwrap();
                (own, tap.received[start..].to_vec())
            },
            move |ot, ch| {
                cmp::millionaire_from(&mut Party::new(ot, ch, peer), first, bits, 4, &theirs2)
                    .unwrap()
            },
        );
        let (a, b) = match tapped {
            Role::Server => (&mine, &theirs),
            Role::Client => (&theirs, &mine),
        };
        let truth: Vec<bool> = a.iter().zip(b).map(|(x, y)| x > y).collect();
        assert!((0..n).all(|i| own[i] ^ other[i] == truth[i]));
        lens.push(view.len());
        let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
        let z = z_fair(ones as usize, 8 * view.len());
        assert!(z.abs() < 6.0, "{tapped:?} view bits: z = {z:.2}");
        let o_ones = own.iter().filter(|&&x| x).count();
        let agree = (0..n).filter(|&i| own[i] == truth[i]).count();
        assert!(z_fair(o_ones, n).abs() < 6.0 && z_fair(agree, n).abs() < 6.0);
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn client_view_is_independent_of_server_input() {
    view_is_independent_of_peer_input(Role::Client, Role::Server);
}

#[test]
fn server_view_is_independent_of_client_input() {
    view_is_independent_of_peer_input(Role::Server, Role::Server);
}

/// The same with the client beginning (choosing the leaves, the server offering them).
#[test]
fn views_are_independent_of_peer_input_when_the_client_begins() {
    view_is_independent_of_peer_input(Role::Client, Role::Client);
    view_is_independent_of_peer_input(Role::Server, Role::Client);
}

#[test]
fn trees_take_the_fewest_levels_of_up_to_four() {
    assert_eq!(cmp::tree_groups(1, 1), Vec::<Vec<usize>>::new());
    assert_eq!(cmp::tree_groups(4, 1), vec![vec![4]]);
    assert_eq!(cmp::tree_groups(5, 1), vec![vec![2, 2, 1], vec![3]]);
    assert_eq!(cmp::tree_groups(9, 1), vec![vec![3, 2, 2, 2], vec![4]]);
    assert_eq!(cmp::tree_groups(8, 2), vec![vec![4, 4]]);
    assert_eq!(cmp::levels(9), 2);
    assert_eq!(cmp::levels(16), 2);
    assert_eq!(cmp::levels(17), 3);
    // The lowest group of 4 takes 7 choice bits and gives gt alone; with a second group both.
    assert_eq!(cmp::tree_level(&[4]), (1, 128, 1));
    assert_eq!(cmp::tree_level(&[2, 2, 1]), (2, 16, 2));
}
