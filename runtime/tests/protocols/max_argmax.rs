//! Row maximum and argmax: results against the plain maximum and the compiler's
//! `semantics::argmax` (ties, edges, ragged and causal rows, several widths), GPT-2's vocabulary
//! over TCP with its bytes and flights, views of both parties, invalid inputs.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{self, from_ring_u64, to_ring_u64};
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::Party;
use ciphergpt_runtime::protocols::ProtocolError;
use ciphergpt_runtime::protocols::{argmax, cmp, max};
use common::*;
use rand::Rng;

/// h = 2^(ℓ−2): the precondition range is [−h, h).
fn half_range(bits: u32) -> i64 {
    1i64 << (bits - 2)
}

/// A row of `len` signed values in [−h, h) of one of several shapes: random over the range,
/// a tiny alphabet (ties everywhere), all equal, the maximum first, the maximum last, the edges
/// only, a few large values repeated.
fn row(p: &mut Prg, bits: u32, len: usize, shape: usize) -> Vec<i64> {
    let h = half_range(bits);
    let edges = [h - 1, -(h - 1), -h, 0, 1, -1];
    let mut v: Vec<i64> = (0..len).map(|_| p.gen_range(-h..h)).collect();
    match shape % 7 {
        0 => {}
        1 => v.iter_mut().for_each(|x| *x = p.gen_range(-2..=2)),
        2 => {
            let c = if p.gen() {
                edges[p.gen_range(0..6)]
            } else {
                v[0]
            };
            v.iter_mut().for_each(|x| *x = c);
        }
        3 => v[0] = h - 1,
        4 => v[len - 1] = h - 1,
        5 => v.iter_mut().for_each(|x| *x = edges[p.gen_range(0..6)]),
        _ => {
            let big = [h - 1, h - 2, h / 2];
            v.iter_mut().for_each(|x| *x = big[p.gen_range(0..3)]);
        }
    }
    v
}

/// Ring elements of signed values (the compiler's encoding) and a split into server and client
/// shares; the client's shares include the edge values 0, 1, −1, 2^(ℓ−1), ….
fn split(p: &mut Prg, ring: Ring, v: &[i64]) -> (Vec<u64>, Vec<u64>) {
    let x: Vec<u64> = v
        .iter()
        .map(|&e| to_ring_u64(e, ring.bits).unwrap())
        .collect();
    let c = values_with_edges(p, x.len(), ring.bits);
    (ring.sub_vec(&x, &c), c)
}

/// Reconstructed signed values.
fn open(ring: Ring, s: &[u64], c: &[u64]) -> Vec<i64> {
    ring.add_vec(s, c)
        .iter()
        .map(|&u| from_ring_u64(u, ring.bits).unwrap())
        .collect()
}

/// An upper bound of the flights of one tournament level: the msb's (2 leaf OTs and 2 per tree
/// level of the millionaires' on ℓ − 1 bits with m-bit digits; its triples take no flight on
/// silent OT) and the selection's 3 (a multiplexer, or the row maximum's two 1-out-of-64 OTs).
/// The row maximum takes the cheapest digit width, argmax 4-bit digits. On IKNP the triples add 2.
fn flights_per_level(bits: u32, m: u32) -> u64 {
    5 + 2 * cmp::levels((bits - 1).div_ceil(m) as usize) as u64
}

/// The same on IKNP, where the AND triples' random OTs take 2 flights.
fn flights_per_level_iknp(bits: u32, m: u32) -> u64 {
    flights_per_level(bits, m) + 2
}

/// Levels of argmax's pairwise tournament over n entries: ⌈log₂ n⌉.
fn levels(n: usize) -> u64 {
    (n.max(1) as u64).next_power_of_two().trailing_zeros() as u64
}

/// Levels of the row maximum's tournament in groups of four: ⌈log₄ n⌉.
fn levels4(n: usize) -> u64 {
    levels(n).div_ceil(2)
}

/// Row maxima of `rows` over memory; returns the opened maxima and the client's flights.
fn run_row_max(ring: Ring, rows: &[Vec<i64>]) -> (Vec<i64>, u64) {
    run_row_max_from(Role::Server, ring, rows)
}

/// The opened row maxima of `rows` begun by `first`, and the client's flights.
fn run_row_max_from(first: Role, ring: Ring, rows: &[Vec<i64>]) -> (Vec<i64>, u64) {
    let mut p = Prg::from_entropy();
    let lens: Vec<usize> = rows.iter().map(|r| r.len()).collect();
    let flat: Vec<i64> = rows.concat();
    let (xs, xc) = split(&mut p, ring, &flat);
    let l2 = lens.clone();
    let (s, (c, flights)) = two_party(
        move |p| max::row_max_from(&mut p.party(), first, ring, &xs, &lens).unwrap(),
        move |p| {
            let r0 = p.ch.stats().total.rounds;
            let c = max::row_max_from(&mut p.party(), first, ring, &xc, &l2).unwrap();
            (c, p.ch.stats().total.rounds - r0)
        },
    );
    (open(ring, &s, &c), flights)
}

/// Begun by the client (as softmax begins it), the row maxima are the plain maxima, with ties
/// and the range's ends, in as many flights as begun by the server (within the one flight the
/// first may continue).
#[test]
fn row_max_begun_by_the_client_matches_plain_max() {
    for bits in [16u32, 35, 64] {
        let ring = Ring::new(bits).unwrap();
        let mut p = Prg::from_entropy();
        let mut rows: Vec<Vec<i64>> = (1..=40).map(|l| row(&mut p, bits, l, l)).collect();
        rows.push(vec![5; 7]);
        let (got, flights) = run_row_max_from(Role::Client, ring, &rows);
        let want: Vec<i64> = rows.iter().map(|r| *r.iter().max().unwrap()).collect();
        assert_eq!(got, want, "bits {bits}");
        let (_, server_first) = run_row_max_from(Role::Server, ring, &rows);
        assert!(
            flights.abs_diff(server_first) <= 1,
            "{flights} vs {server_first}"
        );
    }
}

#[test]
fn row_max_matches_plain_max_on_ragged_and_causal_rows() {
    for bits in [16u32, 38, 64] {
        let ring = Ring::new(bits).unwrap();
        let mut p = Prg::from_entropy();
        // Ragged: random lengths 1..=300 with the edge lengths, every shape.
        let mut lens: Vec<usize> = vec![1, 2, 3, 4, 5, 255, 256, 257, 300];
        lens.extend((0..40).map(|_| p.gen_range(1..=300)));
        let ragged: Vec<Vec<i64>> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| row(&mut p, bits, l, i))
            .collect();
        // Causal attention: rows 1, 2, …, T.
        let causal: Vec<Vec<i64>> = (1..=96).map(|l| row(&mut p, bits, l, l)).collect();
        for rows in [ragged, causal] {
            let (got, flights) = run_row_max(ring, &rows);
            let want: Vec<i64> = rows.iter().map(|r| *r.iter().max().unwrap()).collect();
            assert_eq!(got, want, "bits {bits}");
            let maxlen = rows.iter().map(|r| r.len()).max().unwrap();
            assert!(
                flights
                    <= levels4(maxlen)
                        * flights_per_level(bits, cmp::cheapest_digit_bits(bits - 1)),
                "bits {bits}: {flights} flights for {} levels",
                levels4(maxlen)
            );
        }
    }
}

/// One long row, rows of one entry (no communication at all) and no rows.
#[test]
fn row_max_long_row_single_entries_and_no_rows() {
    let bits = 38;
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    for shape in [0, 1, 4] {
        let rows = vec![row(&mut p, bits, 20_001, shape)];
        let (got, _) = run_row_max(ring, &rows);
        assert_eq!(got, vec![*rows[0].iter().max().unwrap()]);
    }
    let rows: Vec<Vec<i64>> = (0..100).map(|i| row(&mut p, bits, 1, i)).collect();
    let (got, flights) = run_row_max(ring, &rows);
    assert_eq!(got, rows.concat());
    assert_eq!(flights, 0);
    assert!(run_row_max(ring, &[]).0.is_empty());
}

/// Argmax of every vector, one session; the server's results must all be `None`.
fn run_argmax(ring: Ring, vs: &[Vec<i64>]) -> Vec<usize> {
    let mut p = Prg::from_entropy();
    let (ss, cs): (Vec<_>, Vec<_>) = vs.iter().map(|v| split(&mut p, ring, v)).unzip();
    let (s, c) = two_party(
        move |p| {
            ss.iter()
                .map(|z| argmax::argmax(&mut p.party(), ring, z).unwrap())
                .collect::<Vec<_>>()
        },
        move |p| {
            cs.iter()
                .map(|z| argmax::argmax(&mut p.party(), ring, z).unwrap())
                .collect::<Vec<_>>()
        },
    );
    assert!(s.iter().all(|r| r.is_none()), "the server learned {s:?}");
    c.into_iter().map(|r| r.expect("client's index")).collect()
}

#[test]
fn argmax_matches_semantics_with_ties() {
    for bits in [16u32, 38, 64] {
        let ring = Ring::new(bits).unwrap();
        let mut p = Prg::from_entropy();
        let mut vs: Vec<Vec<i64>> = Vec::new();
        let mut lens = vec![1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33];
        lens.extend((0..20).map(|_| p.gen_range(1..=300)));
        for (i, len) in lens.into_iter().enumerate() {
            for shape in 0..7 {
                if len > 20 && (shape + i) % 2 == 1 {
                    continue;
                }
                vs.push(row(&mut p, bits, len, shape));
            }
        }
        let got = run_argmax(ring, &vs);
        for (v, g) in vs.iter().zip(got) {
            assert_eq!(Ok(g), semantics::argmax(v), "bits {bits} z {v:?}");
        }
    }
}

/// Every vector of lengths 1, 2, 3, 4, 5 over the alphabet {−(h−1), 0, h−1} (all tie
/// patterns), at ℓ = 38; and every vector of {−1, 0} (the whole range) of lengths 1..=4 at ℓ = 2,
/// where 4 indices just fit the ring.
#[test]
fn argmax_short_vectors_exhaustive() {
    let all = |alphabet: &[i64], lens: &[usize]| -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        for &n in lens {
            let k = alphabet.len();
            for code in 0..k.pow(n as u32) {
                out.push(
                    (0..n)
                        .map(|j| alphabet[code / k.pow(j as u32) % k])
                        .collect(),
                );
            }
        }
        out
    };
    let h = half_range(38);
    for (bits, vs) in [
        (38, all(&[-(h - 1), 0, h - 1], &[1, 2, 3, 4, 5])),
        (2, all(&[-1, 0], &[1, 2, 3, 4])),
    ] {
        let ring = Ring::new(bits).unwrap();
        let got = run_argmax(ring, &vs);
        for (v, g) in vs.iter().zip(got) {
            assert_eq!(Ok(g), semantics::argmax(v), "bits {bits} z {v:?}");
        }
        let rows: Vec<Vec<i64>> = vs.iter().filter(|v| v.len() == 4).cloned().collect();
        let want: Vec<i64> = rows.iter().map(|r| *r.iter().max().unwrap()).collect();
        assert_eq!(run_row_max(ring, &rows).0, want, "bits {bits}");
    }
}

/// GPT-2's vocabulary (50,257 logits) at ℓ = 38 over TCP, with many ties of the maximum: the
/// result is the smallest index, the server gets `None`, and the bytes and flights are those of
/// n − 1 comparisons and 2(n − 1) multiplexed elements over 16 levels.
#[test]
fn argmax_gpt2_vocabulary_over_tcp() {
    let bits = 38;
    let n = 50_257;
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let h = half_range(bits);
    // Logits on a coarse grid (ties everywhere) plus the top value at a few random places.
    let mut z: Vec<i64> = (0..n).map(|_| p.gen_range(-500..500) << 20).collect();
    for _ in 0..5 {
        z[p.gen_range(0..n)] = h - 1;
    }
    let want = semantics::argmax(&z).unwrap();
    let (zs, zc) = split(&mut p, ring, &z);
    let run = move |p: &mut Peer, z: Vec<u64>| {
        let before = p.ch.stats().total;
        let r = argmax::argmax(&mut p.party(), ring, &z).unwrap();
        let after = p.ch.stats().total;
        (
            r,
            after.bytes() - before.bytes(),
            after.rounds - before.rounds,
        )
    };
    let ((s, bytes, s_flights), (c, _, c_flights)) =
        two_party_tcp_iknp(move |p| run(p, zs), move |p| run(p, zc));
    assert_eq!(s, None);
    assert_eq!(c, Some(want));
    // Pairwise levels down to QUAD_FROM candidates: per pair a millionaires' on 37 bits (10
    // leaves of 4λ + 32 bits, a tree of 4 node OTs of 64 two-bit messages, the level's widest
    // node being a group of three, then the root's 128 one-bit messages) and 4 COT_38 of λ + 38
    // bits; then groups
    // of four: per group 6 comparisons and 2 × 2 1-out-of-64 OTs (6λ + 64·38 bits); the
    // reveal; plus IKNP's padding to 128 OTs per call (under 12 KiB per level).
    assert_eq!(cmp::tree_groups(10, 1), vec![vec![3, 3, 2, 2], vec![4]]);
    let tree = 4 * (6 * 128 + 64 * 2) + (7 * 128 + 128);
    let mill = 10 * (4 * 128 + 32) + tree;
    let (mut left, mut bits_total, mut lv) = (n, 38, 0u64);
    while left > 1 {
        if left > argmax::QUAD_FROM {
            bits_total += (left / 2) * (mill + 4 * (128 + 38));
            left = left.div_ceil(2);
        } else {
            let (full, rest) = (left / 4, left % 4);
            let comps = 6 * full + if rest >= 2 { rest * (rest - 1) / 2 } else { 0 };
            let groups = full + usize::from(rest >= 2);
            bits_total += comps * mill + groups * 4 * (6 * 128 + 64 * 38);
            left = left.div_ceil(4);
        }
        lv += 1;
    }
    let exact = (bits_total / 8) as u64;
    assert!(
        bytes >= exact && bytes <= exact + 16 * 12 * 1024,
        "{bytes} bytes, formula {exact}"
    );
    assert_eq!(lv, 11);
    assert!(s_flights.max(c_flights) <= lv * flights_per_level_iknp(bits, 4) + 1);
    eprintln!(
        "argmax n = {n}, l = {bits}: {bytes} bytes ({:.2} per comparison), flights {s_flights}/{c_flights}",
        bytes as f64 / (n - 1) as f64
    );
}

/// All bits of `view` together are a fair coin (|z| < 6).
fn assert_fair(view: &[u8], what: &str) {
    let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
    let z = z_fair(ones as usize, 8 * view.len());
    assert!(z.abs() < 6.0, "{what}: z = {z:.2}");
}

/// A party's view (everything it receives after the base OTs) and output of one argmax and one
/// row max; `mine` are its shares, the peer runs on `theirs`.
#[allow(clippy::type_complexity)]
fn view_of(
    role: Role,
    ring: Ring,
    mine: (Vec<u64>, Vec<u64>),
    theirs: (Vec<u64>, Vec<u64>),
    lens: Vec<usize>,
) -> (Vec<u8>, Option<usize>, Vec<u64>, Option<usize>, Vec<u64>) {
    let l2 = lens.clone();
    let ((view, a, m), (pa, pm)) = tapped_two_party(
        role,
        CotBackend::Silent,
        |ot, tap| {
            let start = tap.received.len();
            let a = argmax::argmax(&mut Party::new(ot, tap, role), ring, &mine.0).unwrap();
            let m = max::row_max(&mut Party::new(ot, tap, role), ring, &mine.1, &lens).unwrap();
            (tap.received[start..].to_vec(), a, m)
        },
        move |ot, ch| {
            let peer = role.other();
            let a = argmax::argmax(&mut Party::new(ot, ch, peer), ring, &theirs.0).unwrap();
            let m = max::row_max(&mut Party::new(ot, ch, peer), ring, &theirs.1, &l2).unwrap();
            (a, m)
        },
    );
    (view, a, m, pa, pm)
}

/// Inputs of the view tests: an argmax vector and rows of 3, from a shape of the values:
/// zero, the top of the range, random, increasing (the maximum last).
fn view_inputs(bits: u32, shape: usize, p: &mut Prg) -> (Vec<i64>, Vec<i64>) {
    let h = half_range(bits);
    let gen = |p: &mut Prg, n: usize| -> Vec<i64> {
        match shape {
            0 => vec![0; n],
            1 => vec![h - 1; n],
            2 => (0..n).map(|_| p.gen_range(-h..h)).collect(),
            _ => (0..n as i64).map(|i| i - h).collect(),
        }
    };
    (gen(p, 4097), gen(p, 3 * 2048))
}

/// The client's received bytes (everything after its base OTs: triples, leaf OTs, openings, COT
/// corrections, the IKNP messages of the server's receiver side, the revealed index share) and
/// its row-max output shares do not depend on the server's share: with the client's shares
/// fixed and the server's chosen so that the values are zero, the top of the range, random or
/// increasing, the view has the same length, its bits are fair coins in aggregate, and the
/// client's output shares are bit-wise fair coins independent of the maxima (|z| < 6 over
/// 2,048 rows). The client's index is right and the server's result is `None`.
#[test]
fn client_view_is_independent_of_server_share() {
    let bits = 38;
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let zc = p.values(4097, bits);
    let xc = p.values(3 * 2048, bits);
    let lens = vec![3usize; 2048];
    let mut view_lens = Vec::new();
    for shape in 0..4 {
        let (z, x) = view_inputs(bits, shape, &mut p);
        let enc =
            |v: &[i64]| -> Vec<u64> { v.iter().map(|&e| to_ring_u64(e, bits).unwrap()).collect() };
        let (zv, xv) = (enc(&z), enc(&x));
        let theirs = (ring.sub_vec(&zv, &zc), ring.sub_vec(&xv, &xc));
        let (view, a, m, pa, pm) = view_of(
            Role::Client,
            ring,
            (zc.clone(), xc.clone()),
            theirs,
            lens.clone(),
        );
        assert_eq!(a, Some(semantics::argmax(&z).unwrap()));
        assert_eq!(pa, None);
        let maxima: Vec<u64> = x
            .chunks(3)
            .map(|r| to_ring_u64(*r.iter().max().unwrap(), bits).unwrap())
            .collect();
        assert_eq!(ring.add_vec(&m, &pm), maxima);
        view_lens.push(view.len());
        assert_fair(&view, &format!("client view, shape {shape}"));
        assert_uniform_and_independent(&m, &maxima, bits, "client's row-max share");
    }
    assert!(view_lens.windows(2).all(|w| w[0] == w[1]), "{view_lens:?}");
}

/// The server's received bytes (everything after its base OTs) and its row-max output shares do
/// not depend on the client's input: the server's shares fixed, the client's chosen so that the
/// values are zero, the top of the range, random or increasing; the view has the same length and
/// fair bits in aggregate, the server's result is `None` and its shares are fair coins.
#[test]
fn server_view_is_independent_of_client_input() {
    let bits = 38;
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let zs = p.values(4097, bits);
    let xs = p.values(3 * 2048, bits);
    let lens = vec![3usize; 2048];
    let mut view_lens = Vec::new();
    for shape in 0..4 {
        let (z, x) = view_inputs(bits, shape, &mut p);
        let enc =
            |v: &[i64]| -> Vec<u64> { v.iter().map(|&e| to_ring_u64(e, bits).unwrap()).collect() };
        let (zv, xv) = (enc(&z), enc(&x));
        let theirs = (ring.sub_vec(&zv, &zs), ring.sub_vec(&xv, &xs));
        let (view, a, m, pa, pm) = view_of(
            Role::Server,
            ring,
            (zs.clone(), xs.clone()),
            theirs,
            lens.clone(),
        );
        assert_eq!(a, None);
        assert_eq!(pa, Some(semantics::argmax(&z).unwrap()));
        let maxima: Vec<u64> = x
            .chunks(3)
            .map(|r| to_ring_u64(*r.iter().max().unwrap(), bits).unwrap())
            .collect();
        assert_eq!(ring.add_vec(&m, &pm), maxima);
        view_lens.push(view.len());
        assert_fair(&view, &format!("server view, shape {shape}"));
        assert_uniform_and_independent(&m, &maxima, bits, "server's row-max share");
    }
    assert!(view_lens.windows(2).all(|w| w[0] == w[1]), "{view_lens:?}");
}

#[test]
fn invalid_inputs_are_rejected() {
    fn bad(r: Result<impl std::fmt::Debug, ProtocolError>, what: &str) {
        match r {
            Err(ProtocolError::Invalid(m)) => assert!(!m.is_empty()),
            other => panic!("{what}: expected ProtocolError::Invalid, got {other:?}"),
        }
    }
    let calls = |p: &mut Peer| {
        let r38 = Ring::new(38).unwrap();
        let r2 = Ring::new(2).unwrap();
        let party = &mut p.party();
        let x = vec![1u64; 10];
        bad(max::row_max(party, r38, &x, &[3, 3]), "short lens");
        bad(max::row_max(party, r38, &x, &[6, 5]), "long lens");
        bad(max::row_max(party, r38, &x, &[5, 0, 5]), "zero len");
        bad(max::row_max(party, r38, &[], &[0]), "zero len, no data");
        bad(max::row_max(party, r38, &x, &[usize::MAX, 11]), "overflow");
        bad(max::row_max(party, r38, &[], &[1]), "no data");
        bad(argmax::argmax(party, r38, &[]), "empty argmax");
        bad(argmax::argmax(party, r2, &[0; 5]), "5 indices in Z_4");
        // Nothing was sent: the channel is still in step for a valid call.
        argmax::argmax(party, r2, &[0; 4]).unwrap()
    };
    let (s, c) = two_party(calls, calls);
    assert_eq!((s, c), (None, Some(0)));
}
