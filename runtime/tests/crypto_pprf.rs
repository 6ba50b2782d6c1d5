//! The GGM puncturable PRF punctured by OT (`crypto::pprf`): against the definition (the receiver
//! holds every leaf of the sender's trees but the punctured one), single trees and batches of
//! mixed depths in both directions, in memory and over TCP; its bytes and flights; what each
//! party sees; invalid arguments.

mod common;

use std::time::Duration;

use ciphergpt_runtime::crypto::pprf::{self, TreeGroup};
use ciphergpt_runtime::crypto::{Block, OtPair, Prg};
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{mem, scoped, Channel, NetError, Role};
use common::*;
use rand::Rng;

/// The sender's leaves from its roots by the definition (one PRG call per node).
fn tree(root: Block, depth: u32) -> Vec<Block> {
    let mut level = vec![root];
    for _ in 0..depth {
        level = level.iter().flat_map(|&s| pprf::prg(s)).collect();
    }
    level
}

/// The receiver's leaves must equal the sender's everywhere but at the point, where they are zero.
fn check(depth: u32, sent: &[Block], got: &[Block], points: &[usize]) {
    let size = 1usize << depth;
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

/// Single trees of every depth 0..=12 with every point or random ones, the server sending in one
/// run and the client in another; the sender's leaves are the definition's.
#[test]
fn receiver_holds_every_leaf_but_the_punctured_one() {
    for sender in [Role::Server, Role::Client] {
        let mut p = Prg::from_entropy();
        let mut cases: Vec<(u32, Vec<usize>, Vec<Block>)> = Vec::new();
        for depth in 0..=12u32 {
            let size = 1usize << depth;
            let points: Vec<usize> = if depth <= 4 {
                (0..size).collect()
            } else {
                let mut v = vec![0, size - 1, size / 2 - 1, size / 2];
                v.extend((0..4).map(|_| p.gen_range(0..size)));
                v
            };
            let roots = p.blocks(points.len());
            cases.push((depth, points, roots));
        }
        let c2 = cases.clone();
        let run_send = move |pt: &mut Party, cases: &[(u32, Vec<usize>, Vec<Block>)]| {
            cases
                .iter()
                .map(|(d, _, roots)| pprf::send(&mut pt.ot.sender, &mut pt.ch, *d, roots).unwrap())
                .collect::<Vec<_>>()
        };
        let run_recv = move |pt: &mut Party, cases: &[(u32, Vec<usize>, Vec<Block>)]| {
            cases
                .iter()
                .map(|(d, pts, _)| pprf::recv(&mut pt.ot.receiver, &mut pt.ch, *d, pts).unwrap())
                .collect::<Vec<_>>()
        };
        let (sent, got) = if sender == Role::Server {
            two_party(|s| run_send(s, &cases), move |c| run_recv(c, &c2))
        } else {
            let (g, s) = two_party(|s| run_recv(s, &cases), move |c| run_send(c, &c2));
            (s, g)
        };
        for (k, (depth, points, roots)) in cases.iter().enumerate() {
            let def: Vec<Block> = roots.iter().flat_map(|&r| tree(r, *depth)).collect();
            assert_eq!(sent[k], def, "sender {sender:?}, depth {depth}");
            check(*depth, &sent[k], &got[k], points);
        }
    }
}

/// One batch of groups of mixed depths (a multi-point PPRF: several trees, one point each), with
/// the closures' results in group order and the bytes of the formula: 48 per level per tree plus
/// IKNP's padding to 128 OTs, in 2 flights.
#[test]
fn batches_of_mixed_depths_in_two_flights() {
    let groups = vec![
        TreeGroup { trees: 3, depth: 0 },
        TreeGroup { trees: 5, depth: 7 },
        TreeGroup { trees: 0, depth: 9 },
        TreeGroup {
            trees: 64,
            depth: 4,
        },
        TreeGroup {
            trees: 1,
            depth: 14,
        },
        TreeGroup {
            trees: 200,
            depth: 1,
        },
    ];
    let mut p = Prg::from_entropy();
    let points: Vec<usize> = groups
        .iter()
        .flat_map(|g| {
            (0..g.trees)
                .map(|_| p.gen_range(0..1usize << g.depth))
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
    let ((sent, s_stats), (got, c_stats)) = two_party(
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
        assert_eq!(sent[gi].0, gi);
        assert_eq!(got[gi].0, gi);
        let size = 1usize << g.depth;
        let def: Vec<Block> = roots[t..t + g.trees]
            .iter()
            .flat_map(|&r| tree(r, g.depth))
            .collect();
        assert_eq!(sent[gi].1, def);
        let pts = &points[t..t + g.trees];
        if g.trees > 0 {
            check(g.depth, &sent[gi].1, &got[gi].1, pts);
        } else {
            assert!(got[gi].1.is_empty() && size > 0);
        }
        t += g.trees;
        levels += (g.trees as u64) * g.depth as u64;
    }
    // Receiver: 16 bytes per OT (padded to 128 OTs); sender: 32 bytes per OT.
    assert_eq!(c_stats.0, 16 * levels.div_ceil(128) * 128);
    assert_eq!(s_stats.0, 32 * levels);
    assert_eq!((s_stats.1, c_stats.1), (2, 2), "flights (server, client)");
}

#[test]
fn over_tcp() {
    let mut p = Prg::from_entropy();
    let points: Vec<usize> = (0..300).map(|_| p.gen_range(0..1024)).collect();
    let roots = p.blocks(300);
    let (r2, p2) = (roots.clone(), points.clone());
    let (sent, got) = two_party_tcp(
        move |s| pprf::send(&mut s.ot.sender, &mut s.ch, 10, &r2).unwrap(),
        move |c| pprf::recv(&mut c.ot.receiver, &mut c.ch, 10, &p2).unwrap(),
    );
    check(10, &sent, &got, &points);
}

/// The receiver's run with its points, the sender's roots given: (every byte the receiver received
/// after the base OTs, its leaves, the sender's leaves).
fn receiver_view(
    depth: u32,
    roots: Vec<Block>,
    points: Vec<usize>,
) -> (Vec<u8>, Vec<Block>, Vec<Block>) {
    let (a, mut b) = mem::pair(Duration::from_secs(60));
    let h = std::thread::spawn(move || {
        let mut ot = OtPair::setup(&mut b, Role::Server, &mut Prg::from_entropy()).unwrap();
        pprf::send(&mut ot.sender, &mut b, depth, &roots).unwrap()
    });
    let mut tap = Tap::new(a);
    let mut ot = OtPair::setup(&mut tap, Role::Client, &mut Prg::from_entropy()).unwrap();
    let start = tap.received.len();
    let got = pprf::recv(&mut ot.receiver, &mut tap, depth, &points).unwrap();
    let sent = h.join().unwrap();
    (tap.received[start..].to_vec(), got, sent)
}

/// The receiver's view does not depend on its points and tells nothing of the punctured leaf: for
/// 8,192 trees of depth 6 punctured all at 0, all at the last leaf, or at random points, the view
/// has the same length and fair bits in aggregate, and every bit of the punctured leaf (which the
/// test reads from the sender) is a fair coin uncorrelated with the same bit of the receiver's
/// nearest leaf (the punctured leaf's sibling) and of the XOR of all its leaves of that tree
/// (|z| < 6). The same roots serve every pattern, so the punctured leaves differ only by the point.
#[test]
fn receiver_view_is_independent_of_the_punctured_leaf() {
    let (depth, trees) = (6u32, 8192usize);
    let size = 1usize << depth;
    let mut p = Prg::from_entropy();
    let roots = p.blocks(trees);
    let patterns: Vec<Vec<usize>> = vec![
        vec![0; trees],
        vec![size - 1; trees],
        (0..trees).map(|_| p.gen_range(0..size)).collect(),
    ];
    let mut lens = Vec::new();
    for (k, points) in patterns.into_iter().enumerate() {
        let (view, got, sent) = receiver_view(depth, roots.clone(), points.clone());
        check(depth, &sent, &got, &points);
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
                    pick(
                        got[t * size..(t + 1) * size]
                            .iter()
                            .fold(Block::ZERO, |a, &b| a ^ b),
                    )
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
    let (depth, trees) = (5u32, 4096usize);
    let mut lens = Vec::new();
    for k in 0..3 {
        let mut p = Prg::from_entropy();
        let points: Vec<usize> = match k {
            0 => vec![0; trees],
            1 => vec![31; trees],
            _ => (0..trees).map(|_| p.gen_range(0..32)).collect(),
        };
        let roots = p.blocks(trees);
        let (a, mut b) = mem::pair(Duration::from_secs(60));
        let h = std::thread::spawn(move || {
            let mut ot = OtPair::setup(&mut b, Role::Client, &mut Prg::from_entropy()).unwrap();
            pprf::recv(&mut ot.receiver, &mut b, depth, &points).unwrap();
        });
        let mut tap = Tap::new(a);
        let mut ot = OtPair::setup(&mut tap, Role::Server, &mut Prg::from_entropy()).unwrap();
        let start = tap.received.len();
        pprf::send(&mut ot.sender, &mut tap, depth, &roots).unwrap();
        h.join().unwrap();
        let view = &tap.received[start..];
        lens.push(view.len());
        let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
        let z = z_fair(ones as usize, 8 * view.len());
        assert!(z.abs() < 6.0, "pattern {k}: z = {z:.2}");
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]), "{lens:?}");
}

/// Points outside their tree, depths over the maximum and group sizes that do not match are
/// `InvalidArgument`, before anything is sent.
#[test]
fn invalid_arguments() {
    let (errs, _) = two_party(
        |s| {
            let mut e = Vec::new();
            let g = [TreeGroup { trees: 2, depth: 3 }];
            e.push(pprf::recv(&mut s.ot.receiver, &mut s.ch, 3, &[8]).unwrap_err());
            e.push(pprf::recv(&mut s.ot.receiver, &mut s.ch, 21, &[0]).unwrap_err());
            e.push(pprf::send(&mut s.ot.sender, &mut s.ch, 21, &[Block(1)]).unwrap_err());
            e.push(pprf::recv_map(&mut s.ot.receiver, &mut s.ch, &g, &[1], |_, _| ()).unwrap_err());
            e.push(
                pprf::send_map(&mut s.ot.sender, &mut s.ch, &g, &[Block(1); 3], |_, _| ())
                    .unwrap_err(),
            );
            (e, s.ch.stats().total.bytes_sent)
        },
        |c| c.ch.stats().total.bytes_sent,
    );
    let (errs, sent) = errs;
    for e in &errs {
        assert!(matches!(e, NetError::InvalidArgument(_)), "{e}");
    }
    // Only the OT setup was sent.
    let (a, _) = two_party(|s| s.ch.stats().total.bytes_sent, |_| ());
    assert_eq!(sent, a);
}
