//! The GGM puncturable PRF punctured by OT (`crypto::pprf`): against the definition (the receiver
//! holds every leaf of the sender's trees but the punctured one), single trees and batches of
//! mixed sizes in both directions, in memory and over TCP; its bytes and flights; what each
//! party sees; invalid arguments.

use crate::common;

use ciphergpt_runtime::crypto::pprf::{self, TreeGroup};
use ciphergpt_runtime::crypto::{Block, OtPair, Prg};
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{scoped, Channel, NetError, Role};
use common::*;
use rand::Rng;

/// The sender's leaves on [0, n) from its root by the definition: the GGM tree of depth ⌈log₂n⌉,
/// one PRG call per node, cut to its first n leaves.
fn tree(root: Block, n: usize) -> Vec<Block> {
    let mut level = vec![root];
    for _ in 0..pprf::depth_of(n) {
        level = level.iter().flat_map(|&s| pprf::prg(s)).collect();
    }
    level.truncate(n);
    level
}

/// The receiver's leaves must equal the sender's everywhere but at the point, where they are zero.
fn check(size: usize, sent: &[Block], got: &[Block], points: &[usize]) {
    assert_eq!(sent.len(), points.len() * size);
    assert_eq!(got.len(), sent.len());
    for (t, &a) in points.iter().enumerate() {
        for i in 0..size {
            let (s, g) = (sent[t * size + i], got[t * size + i]);
            if i == a {
                assert_eq!(
                    g,
                    Block::ZERO,
                    "tree {t}: the punctured leaf {a} is not zero"
                );
                assert_ne!(s, Block::ZERO);
            } else {
                assert_eq!(g, s, "tree {t} (point {a}), leaf {i}");
            }
        }
    }
}

type Cases = Vec<(usize, Vec<usize>, Vec<Block>)>;

fn run_send(pt: &mut Peer, cases: &Cases) -> Vec<Vec<Block>> {
    cases
        .iter()
        .map(|(n, _, roots)| pprf::send(&mut pt.ot.sender, &mut pt.ch, *n, roots).unwrap())
        .collect()
}

fn run_recv(pt: &mut Peer, cases: &Cases) -> Vec<Vec<Block>> {
    cases
        .iter()
        .map(|(n, pts, _)| pprf::recv(&mut pt.ot.receiver, &mut pt.ch, *n, pts).unwrap())
        .collect()
}

/// Single trees on domains of 1 to 4,097 leaves (powers of two, their neighbours, odd sizes) with
/// every point, or the edges and random points, the server sending in one run and the client in
/// another; the sender's leaves are the definition's.
#[test]
fn receiver_holds_every_leaf_but_the_punctured_one() {
    for sender in [Role::Server, Role::Client] {
        let mut p = Prg::from_entropy();
        let mut cases: Cases = Vec::new();
        for size in [
            1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 100, 786, 1024, 4095, 4096, 4097,
        ] {
            let points: Vec<usize> = if size <= 17 {
                (0..size).collect()
            } else {
                let mut v = vec![0, size - 1, size / 2 - 1, size / 2];
                v.extend((0..4).map(|_| p.gen_range(0..size)));
                v
            };
            let roots = p.blocks(points.len());
            cases.push((size, points, roots));
        }
        let c2 = cases.clone();
        let (sent, got) = if sender == Role::Server {
            two_party(|s| run_send(s, &cases), move |c| run_recv(c, &c2))
        } else {
            let (g, s) = two_party(|s| run_recv(s, &cases), move |c| run_send(c, &c2));
            (s, g)
        };
        for (k, (size, points, roots)) in cases.iter().enumerate() {
            let def: Vec<Block> = roots.iter().flat_map(|&r| tree(r, *size)).collect();
            assert_eq!(sent[k], def, "sender {sender:?}, size {size}");
            check(*size, &sent[k], &got[k], points);
        }
    }
}

/// One batch of groups of mixed sizes (a multi-point PPRF: several trees, one point each), with
/// the closures' results in group order and the bytes of the formula: 48 per level per tree plus
/// IKNP's padding to 128 OTs, in 2 flights.
#[test]
fn batches_of_mixed_sizes_in_two_flights() {
    let g = |trees, leaves| TreeGroup { trees, leaves };
    let groups = vec![
        g(3, 1),
        g(5, 128),
        g(0, 512),
        g(64, 16),
        g(1, 1 << 14),
        g(200, 2),
        g(7, 786),
        g(2, 3),
    ];
    let mut p = Prg::from_entropy();
    let points: Vec<usize> = groups
        .iter()
        .flat_map(|g| {
            (0..g.trees)
                .map(|_| p.gen_range(0..g.leaves))
                .collect::<Vec<_>>()
        })
        .collect();
    let roots = p.blocks(points.len());
    let (g2, g3, p2, r2) = (
        groups.clone(),
        groups.clone(),
        points.clone(),
        roots.clone(),
    );
    let ((sent, s_stats), (got, c_stats)) = two_party_iknp(
        move |s| {
            let v = scoped(&mut s.ch, "pprf", |ch| {
                pprf::send_map(&mut s.ot.sender, ch, &g2, &r2, |gi, l| (gi, l.to_vec()))
            })
            .unwrap();
            let c = s.ch.stats().scope("pprf");
            (v, (c.bytes_sent, c.rounds))
        },
        move |c| {
            let v = scoped(&mut c.ch, "pprf", |ch| {
                pprf::recv_map(&mut c.ot.receiver, ch, &g3, &p2, |gi, l| (gi, l.to_vec()))
            })
            .unwrap();
            let st = c.ch.stats().scope("pprf");
            (v, (st.bytes_sent, st.rounds))
        },
    );
    let (mut t, mut levels) = (0, 0u64);
    for (gi, g) in groups.iter().enumerate() {
        assert_eq!((sent[gi].0, got[gi].0), (gi, gi));
        let def: Vec<Block> = roots[t..t + g.trees]
            .iter()
            .flat_map(|&r| tree(r, g.leaves))
            .collect();
        assert_eq!(sent[gi].1, def);
        check(g.leaves, &sent[gi].1, &got[gi].1, &points[t..t + g.trees]);
        t += g.trees;
        levels += (g.trees as u64) * g.depth() as u64;
    }
    assert_eq!(levels as usize, pprf::ot_count(&groups));
    // Receiver: 16 bytes per OT (padded to 128 OTs); sender: 32 bytes per OT.
    assert_eq!(c_stats.0, 16 * levels.div_ceil(128) * 128);
    assert_eq!(s_stats.0, 32 * levels);
    assert_eq!((s_stats.1, c_stats.1), (2, 2), "flights (server, client)");
}

#[test]
fn over_tcp() {
    let mut p = Prg::from_entropy();
    let points: Vec<usize> = (0..300).map(|_| p.gen_range(0..1000)).collect();
    let roots = p.blocks(300);
    let (r2, p2) = (roots.clone(), points.clone());
    let (sent, got) = two_party_tcp(
        move |s| pprf::send(&mut s.ot.sender, &mut s.ch, 1000, &r2).unwrap(),
        move |c| pprf::recv(&mut c.ot.receiver, &mut c.ch, 1000, &p2).unwrap(),
    );
    check(1000, &sent, &got, &points);
}

/// The receiver's run with its points, the sender's roots given: (every byte the receiver received
/// after the base OTs, its leaves, the sender's leaves).
fn receiver_view(
    size: usize,
    roots: Vec<Block>,
    points: Vec<usize>,
) -> (Vec<u8>, Vec<Block>, Vec<Block>) {
    let ((view, got), sent) = on_mem_pair(
        |a| {
            let mut tap = Tap::new(a);
            let mut ot = OtPair::setup(&mut tap, Role::Client, &mut Prg::from_entropy()).unwrap();
            let start = tap.received.len();
            let got = pprf::recv(&mut ot.receiver, &mut tap, size, &points).unwrap();
            (tap.received[start..].to_vec(), got)
        },
        move |mut b| {
            let mut ot = OtPair::setup(&mut b, Role::Server, &mut Prg::from_entropy()).unwrap();
            pprf::send(&mut ot.sender, &mut b, size, &roots).unwrap()
        },
    );
    (view, got, sent)
}

/// The receiver's view does not depend on its points and tells nothing of the punctured leaf: for
/// 8,192 trees of 64 leaves punctured all at 0, all at the last leaf, or at random points, the view
/// has the same length and fair bits in aggregate, and every bit of the punctured leaf (which the
/// test reads from the sender) is a fair coin uncorrelated with the same bit of the receiver's
/// nearest leaf (the punctured leaf's sibling) and of the XOR of all its leaves of that tree
/// (|z| < 6). The same roots serve every pattern, so the punctured leaves differ only by the point.
#[test]
fn receiver_view_is_independent_of_the_punctured_leaf() {
    let (size, trees) = (64usize, 8192usize);
    let mut p = Prg::from_entropy();
    let roots = p.blocks(trees);
    let patterns: Vec<Vec<usize>> = vec![
        vec![0; trees],
        vec![size - 1; trees],
        (0..trees).map(|_| p.gen_range(0..size)).collect(),
    ];
    let mut lens = Vec::new();
    for (k, points) in patterns.into_iter().enumerate() {
        let (view, got, sent) = receiver_view(size, roots.clone(), points.clone());
        check(size, &sent, &got, &points);
        lens.push(view.len());
        let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
        let z = z_fair(ones as usize, 8 * view.len());
        assert!(z.abs() < 6.0, "pattern {k}: view z = {z:.2}");
        let leaf = |v: &[Block], t: usize, i: usize| v[t * size + i];
        for half in [0, 1] {
            let pick = |b: Block| if half == 0 { b.low() } else { b.high() };
            let punct: Vec<u64> = (0..trees)
                .map(|t| pick(leaf(&sent, t, points[t])))
                .collect();
            let sib: Vec<u64> = (0..trees)
                .map(|t| pick(leaf(&got, t, points[t] ^ 1)))
                .collect();
            let all: Vec<u64> = (0..trees)
                .map(|t| {
                    let x = got[t * size..(t + 1) * size]
                        .iter()
                        .fold(Block::ZERO, |a, &b| a ^ b);
                    pick(x)
                })
                .collect();
            assert_uniform_and_independent(&punct, &sib, 64, &format!("pattern {k}, sibling"));
            assert_uniform_and_independent(&punct, &all, 64, &format!("pattern {k}, xor"));
        }
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]), "{lens:?}");
}

/// The sender receives only the IKNP message: same length and fair bits whatever the points.
#[test]
fn sender_view_is_independent_of_the_points() {
    let (size, trees) = (32usize, 4096usize);
    let mut lens = Vec::new();
    for k in 0..3 {
        let mut p = Prg::from_entropy();
        let points: Vec<usize> = match k {
            0 => vec![0; trees],
            1 => vec![size - 1; trees],
            _ => (0..trees).map(|_| p.gen_range(0..size)).collect(),
        };
        let roots = p.blocks(trees);
        let (view, ()) = on_mem_pair(
            |a| {
                let mut tap = Tap::new(a);
                let mut ot =
                    OtPair::setup(&mut tap, Role::Server, &mut Prg::from_entropy()).unwrap();
                let start = tap.received.len();
                pprf::send(&mut ot.sender, &mut tap, size, &roots).unwrap();
                tap.received[start..].to_vec()
            },
            move |mut b| {
                let mut ot = OtPair::setup(&mut b, Role::Client, &mut Prg::from_entropy()).unwrap();
                pprf::recv(&mut ot.receiver, &mut b, size, &points).unwrap();
            },
        );
        lens.push(view.len());
        let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
        let z = z_fair(ones as usize, 8 * view.len());
        assert!(z.abs() < 6.0, "pattern {k}: z = {z:.2}");
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]), "{lens:?}");
}

/// Points outside their tree, empty domains or domains over 2^20 leaves, group sizes that do not
/// match and a wrong number of sibling sums are `InvalidArgument`, before anything is sent.
#[test]
fn invalid_arguments() {
    let ((errs, sent), setup) = two_party(
        |s| {
            let setup = s.ch.stats().total.bytes_sent;
            let g = [TreeGroup {
                trees: 2,
                leaves: 8,
            }];
            let (ot, ch) = (&mut s.ot, &mut s.ch);
            let e = vec![
                pprf::recv(&mut ot.receiver, ch, 8, &[8]).unwrap_err(),
                pprf::recv(&mut ot.receiver, ch, (1 << 20) + 1, &[0]).unwrap_err(),
                pprf::send(&mut ot.sender, ch, 0, &[Block(1)]).unwrap_err(),
                pprf::recv_map(&mut ot.receiver, ch, &g, &[1], |_, _| ()).unwrap_err(),
                pprf::send_map(&mut ot.sender, ch, &g, &[Block(1); 3], |_, _| ()).unwrap_err(),
                pprf::expand_punctured_map(&g, &[1, 2], &[Block(0); 5], |_, _| ()).unwrap_err(),
            ];
            ((e, s.ch.stats().total.bytes_sent), setup)
        },
        |_| (),
    )
    .0;
    for e in &errs {
        assert!(matches!(e, NetError::InvalidArgument(_)), "{e}");
    }
    assert_eq!(sent, setup, "only the OT setup was sent");
}
