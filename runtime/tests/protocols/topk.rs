//! Top-K selection (`protocols::topk`): the K selected (value, index) pairs against the plaintext
//! order (larger value first, smaller index first) for many lengths, K, rings and value shapes
//! (ties everywhere, all equal, the edges of the range); K = 1 against `semantics::argmax`;
//! K = n and K above the number of distinct values; the bound on rounds; GPT-2's vocabulary over
//! TCP; the revealed positions uniform whatever the logits; fresh output shares; invalid inputs.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{self, from_ring_u64, to_ring_u64};
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::Channel;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::shuffle::{Network, ShuffleParams};
use ciphergpt_runtime::protocols::topk::{self, reference, topk, TopK, TopKParams};
use ciphergpt_runtime::protocols::Party;
use ciphergpt_runtime::protocols::ProtocolError;
use common::*;
use rand::Rng;

/// h = 2^(ℓ−2): the precondition range is [−h, h).
fn half_range(bits: u32) -> i64 {
    1i64 << (bits - 2)
}

/// A vector of `len` signed values in [−h, h) of one of several shapes: random over the range,
/// a tiny alphabet (ties everywhere), all equal, the edges only, a few large values repeated,
/// increasing, decreasing.
fn logits(p: &mut Prg, bits: u32, len: usize, shape: usize) -> Vec<i64> {
    let h = half_range(bits);
    let edges = [h - 1, -(h - 1), -h, 0, 1, -1];
    match shape % 7 {
        0 => (0..len).map(|_| p.gen_range(-h..h)).collect(),
        1 => (0..len).map(|_| p.gen_range(-2..=2)).collect(),
        2 => vec![edges[p.gen_range(0..6)]; len],
        3 => (0..len).map(|_| edges[p.gen_range(0..6)]).collect(),
        4 => {
            let big = [h - 1, h - 2, h / 2];
            (0..len).map(|_| big[p.gen_range(0..3)]).collect()
        }
        5 => (0..len as i64).map(|i| (i - h).min(h - 1)).collect(),
        _ => (0..len as i64).map(|i| (h - 1 - i).max(-h)).collect(),
    }
}

/// One case: the ring, the logits, K and the parameters.
type Case = (Ring, Vec<i64>, usize, TopKParams);

/// Run every case in one session, the client's shares including 0, ±1 and 2^(ℓ−1); returns both
/// parties' outputs per case.
fn run_all(cases: Vec<Case>) -> Vec<(TopK, TopK)> {
    let mut p = Prg::from_entropy();
    let shares: Vec<(Vec<u64>, Vec<u64>)> = cases
        .iter()
        .map(|(ring, z, _, _)| {
            let x: Vec<u64> = z
                .iter()
                .map(|&v| to_ring_u64(v, ring.bits).unwrap())
                .collect();
            let c = values_with_edges(&mut p, x.len(), ring.bits);
            (ring.sub_vec(&x, &c), c)
        })
        .collect();
    let sc: Vec<(Ring, Vec<u64>, usize, TopKParams)> = cases
        .iter()
        .zip(&shares)
        .map(|((r, _, k, pa), (s, _))| (*r, s.clone(), *k, *pa))
        .collect();
    let cc: Vec<(Ring, Vec<u64>, usize, TopKParams)> = cases
        .iter()
        .zip(&shares)
        .map(|((r, _, k, pa), (_, c))| (*r, c.clone(), *k, *pa))
        .collect();
    let (s, c) = two_party(
        move |s| {
            sc.iter()
                .map(|(ring, x, k, pa)| topk(&mut s.party(), *ring, x, *k, pa).unwrap())
                .collect::<Vec<_>>()
        },
        move |c| {
            cc.iter()
                .map(|(ring, x, k, pa)| topk(&mut c.party(), *ring, x, *k, pa).unwrap())
                .collect::<Vec<_>>()
        },
    );
    s.into_iter().zip(c).collect()
}

/// The reconstructed (index, value) pairs, sorted by index.
fn open(ring: Ring, s: &TopK, c: &TopK) -> Vec<(usize, i64)> {
    let idx = ring.add_vec(&s.indices, &c.indices);
    let val = ring.add_vec(&s.values, &c.values);
    let mut v: Vec<(usize, i64)> = idx
        .iter()
        .zip(&val)
        .map(|(&i, &x)| (i as usize, from_ring_u64(x, ring.bits).unwrap()))
        .collect();
    v.sort();
    v
}

/// The expected pairs: the reference's indices with their values, sorted by index.
fn expected(z: &[i64], k: usize) -> Vec<(usize, i64)> {
    let mut v: Vec<(usize, i64)> = reference(z, k).into_iter().map(|i| (i, z[i])).collect();
    v.sort();
    v
}

fn check(cases: &[Case], out: &[(TopK, TopK)]) {
    for ((ring, z, k, params), (s, c)) in cases.iter().zip(out) {
        let what = format!(
            "ℓ {}, n {}, K {k}, z[..4] {:?}",
            ring.bits,
            z.len(),
            &z[..z.len().min(4)]
        );
        assert_eq!(open(*ring, s, c), expected(z, *k), "{what}");
        assert_eq!(s.positions, c.positions, "{what}");
        assert_eq!((s.comparisons, s.rounds), (c.comparisons, c.rounds));
        assert!(s.rounds <= params.max_rounds, "{what}: {} rounds", s.rounds);
        if *k == 1 {
            let i = ring.add(s.indices[0], c.indices[0]) as usize;
            assert_eq!(i, semantics::argmax(z).unwrap(), "{what}");
        }
    }
}

/// Lengths 1–9, 16, 17, 100 and 1,000 with K from 1 to n, seven shapes of values (random, a
/// tiny alphabet, all equal, edges only, a few large values, increasing, decreasing) at
/// ℓ ∈ {16, 37, 38}, against the plaintext order; K = 1 against `semantics::argmax`.
#[test]
fn selects_the_top_k_of_every_shape() {
    let mut p = Prg::from_entropy();
    let mut cases: Vec<Case> = Vec::new();
    for bits in [16u32, 37, 38] {
        let ring = Ring::new(bits).unwrap();
        for n in [1usize, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 100, 1000] {
            let ks: Vec<usize> = if n <= 9 {
                (1..=n).collect()
            } else {
                vec![1, 2, n / 3, n - 1, n]
            };
            for (t, &k) in ks.iter().enumerate() {
                let shape = if n <= 9 { (n + t) % 7 } else { t + n };
                let z = logits(&mut p, bits, n, shape);
                cases.push((ring, z, k, TopKParams::default()));
            }
        }
    }
    let out = run_all(cases.clone());
    check(&cases, &out);
}

/// All logits equal (every K selects the K smallest indices), two distinct values with K above
/// that count, K = n on a vector with ties, and the round bound: with at most 1, 2, 3 and 5 rounds
/// the result is the same and the rounds stay within the bound.
#[test]
fn ties_all_equal_and_round_bounds() {
    let ring = Ring::new(38).unwrap();
    let mut p = Prg::from_entropy();
    let mut cases: Vec<Case> = Vec::new();
    let n = 300;
    for v in [0i64, -1, half_range(38) - 1, -half_range(38)] {
        for k in [1usize, 2, 17, 150, 299, 300] {
            cases.push((ring, vec![v; n], k, TopKParams::default()));
        }
    }
    let two: Vec<i64> = (0..n)
        .map(|_| if p.gen_bool(0.1) { 5 } else { -5 })
        .collect();
    for k in [50usize, 100, 250] {
        cases.push((ring, two.clone(), k, TopKParams::default()));
    }
    let mut tight = TopKParams::default();
    for max_rounds in [1usize, 2, 3, 5] {
        tight.max_rounds = max_rounds;
        for k in [1usize, 7, 30] {
            cases.push((ring, logits(&mut p, 38, 40, 1), k, tight));
        }
    }
    let out = run_all(cases.clone());
    check(&cases, &out);
    for ((_, z, k, _), (s, _)) in cases.iter().zip(&out).take(24) {
        // All equal: the K smallest indices, in far fewer comparisons than all pairs.
        assert_eq!(
            expected(z, *k).iter().map(|e| e.0).collect::<Vec<_>>(),
            (0..*k).collect::<Vec<_>>()
        );
        assert!(s.comparisons < n * n / 8, "{} comparisons", s.comparisons);
    }
}

/// GPT-2's vocabulary over TCP at ℓ = 38: K = 100 of 50,257 random logits with many ties of the
/// maximum, exact; the bytes and flights are reported.
#[test]
fn gpt2_vocabulary_over_tcp() {
    let ring = Ring::new(38).unwrap();
    let n = 50_257;
    let mut p = Prg::from_entropy();
    let h = half_range(38);
    let mut z: Vec<i64> = (0..n).map(|_| p.gen_range(-h..h / 2)).collect();
    for _ in 0..60 {
        let i = p.gen_range(0..n);
        z[i] = h - 1;
    }
    let x: Vec<u64> = z.iter().map(|&v| to_ring_u64(v, 38).unwrap()).collect();
    let xc = p.values(n, 38);
    let xs = ring.sub_vec(&x, &xc);
    let params = TopKParams::default();
    let ((s, s_stats, secs), (c, c_stats)) = two_party_tcp(
        move |s| {
            let t0 = std::time::Instant::now();
            let r = s
                .party()
                .scoped("topk", |party| topk(party, ring, &xs, 100, &params))
                .unwrap();
            (r, s.ch.stats().scope("topk"), t0.elapsed().as_secs_f64())
        },
        move |c| {
            let r = c
                .party()
                .scoped("topk", |party| topk(party, ring, &xc, 100, &params))
                .unwrap();
            (r, c.ch.stats().scope("topk"))
        },
    );
    assert_eq!(open(ring, &s, &c), expected(&z, 100));
    assert_eq!(s_stats.bytes_sent, c_stats.bytes_received);
    let total = s_stats.bytes_sent + c_stats.bytes_sent;
    println!(
        "top-100 of {n} at ℓ = 38: {secs:.3} s, {total} bytes, {} comparisons in {} rounds, \
         {} / {} flights",
        s.comparisons, s.rounds, s_stats.rounds, c_stats.rounds
    );
}

/// The revealed positions are uniform whatever the logits: over 160 runs on 16 equal logits (where
/// an unshuffled vector would always put the winner, index 0, at position 0) and 160 runs on 16
/// increasing logits, the position of the selected entry (K = 1) passes a chi-square test of
/// uniformity on 16 cells (15 degrees of freedom, rejected at p < 10^-4).
#[test]
fn revealed_positions_are_uniform() {
    let ring = Ring::new(38).unwrap();
    let n = 16;
    let runs = 160;
    for shape in 0..2 {
        let z: Vec<i64> = if shape == 0 {
            vec![7; n]
        } else {
            (0..n as i64).collect()
        };
        let cases: Vec<Case> = (0..runs)
            .map(|_| (ring, z.clone(), 1, TopKParams::default()))
            .collect();
        let out = run_all(cases.clone());
        check(&cases, &out);
        let mut cells = vec![0usize; n];
        for (s, _) in &out {
            cells[s.positions[0] as usize] += 1;
        }
        let e = runs as f64 / n as f64;
        let chi2: f64 = cells.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
        assert!(
            chi2 < 42.6,
            "shape {shape}: chi-square {chi2:.1}, cells {cells:?}"
        );
    }
}

/// The output shares are fresh: for K = n = 4,096 random logits, each party's value and index
/// shares are bit-wise fair coins independent of the values and indices (|z| < 6).
#[test]
fn output_shares_are_fresh() {
    let ring = Ring::new(38).unwrap();
    let mut p = Prg::from_entropy();
    let n = 4096;
    let z = logits(&mut p, 38, n, 0);
    let cases: Vec<Case> = vec![(ring, z.clone(), n, TopKParams::default())];
    let out = run_all(cases.clone());
    check(&cases, &out);
    let (s, c) = &out[0];
    let values = ring.add_vec(&s.values, &c.values);
    let indices = ring.add_vec(&s.indices, &c.indices);
    for (share, what) in [(&s.values, "server values"), (&c.values, "client values")] {
        assert_uniform_and_independent(share, &values, 38, what);
    }
    for (share, what) in [
        (&s.indices, "server indices"),
        (&c.indices, "client indices"),
    ] {
        assert_uniform_and_independent(share, &indices, 38, what);
    }
}

/// K outside 1..=n, an empty vector, more indices than the ring holds, ℓ plus the index bits over
/// 64 and a zero round bound are `ProtocolError::Invalid`, before anything is sent; so are, for the
/// sampling, values and indices of different lengths or none, a draw's value not below 2^w, a ring
/// too narrow for the probabilities, a temperature multiplier too wide for the ring, and
/// temperatures that are not positive.
#[test]
fn invalid_arguments() {
    let ((errs, sent), setup) = two_party(
        |s| {
            let setup = s.ch.stats().total.bytes_sent;
            let p = TopKParams::default();
            let r38 = Ring::new(38).unwrap();
            let party = &mut s.party();
            let zero = TopKParams { max_rounds: 0, ..p };
            let e = vec![
                topk(party, r38, &[1, 2, 3], 0, &p).unwrap_err(),
                topk(party, r38, &[1, 2, 3], 4, &p).unwrap_err(),
                topk(party, r38, &[], 1, &p).unwrap_err(),
                topk(party, Ring::new(4).unwrap(), &[0; 17], 1, &p).unwrap_err(),
                topk(party, Ring::new(60).unwrap(), &[0; 50_257], 1, &p).unwrap_err(),
                topk(party, r38, &[1, 2, 3], 1, &zero).unwrap_err(),
            ];
            let tables = semantics::fit_exp_tables(12, 14, 12).unwrap();
            let one = topk::Temperature::ONE;
            let w = topk::sample_bits(12);
            let top = |n: usize, m: usize| TopK {
                values: vec![0; n],
                indices: vec![0; m],
                positions: Vec::new(),
                comparisons: 0,
                rounds: 0,
            };
            let mut e = e;
            e.extend([
                topk::sample_with(party, r38, &top(2, 1), one, &tables, &[0]).unwrap_err(),
                topk::sample_with(party, r38, &top(0, 0), one, &tables, &[0]).unwrap_err(),
                topk::sample_with(party, r38, &top(2, 2), one, &tables, &[1 << w]).unwrap_err(),
                topk::sample_with(
                    party,
                    Ring::new(13).unwrap(),
                    &top(2, 2),
                    one,
                    &tables,
                    &[0],
                )
                .unwrap_err(),
                topk::sample_with(
                    party,
                    r38,
                    &top(2, 2),
                    topk::Temperature {
                        mul: 1 << 30,
                        shift: 16,
                    },
                    &tables,
                    &[0],
                )
                .unwrap_err(),
                topk::Temperature::from_f64(0.0).unwrap_err(),
                topk::Temperature::from_f64(-1.0).unwrap_err(),
                topk::Temperature::from_f64(f64::NAN).unwrap_err(),
            ]);
            ((e, s.ch.stats().total.bytes_sent), setup)
        },
        |_| (),
    )
    .0;
    for e in &errs {
        assert!(matches!(e, ProtocolError::Invalid(_)), "{e}");
    }
    assert_eq!(sent, setup, "only the OT setup was sent");
    assert_eq!(topk::index_bits(50_257), 16);
    assert_eq!(topk::index_bits(1), 1);
}

/// ln Γ(k/2) for an integer k ≥ 1, exactly from the recurrences (Γ(1) = 1, Γ(1/2) = √π).
fn ln_gamma_half(k: usize) -> f64 {
    if k & 1 == 0 {
        (1..k / 2).map(|i| (i as f64).ln()).sum()
    } else {
        0.5 * std::f64::consts::PI.ln() + (0..k / 2).map(|i| (i as f64 + 0.5).ln()).sum::<f64>()
    }
}

/// P(χ²_dof ≥ x): 1 − P(dof/2, x/2), the regularised lower incomplete gamma function by its
/// power series e^(−y)·y^a / Γ(a+1) · Σ_n y^n / ((a+1)…(a+n)).
fn chi2_sf(x: f64, dof: usize) -> f64 {
    let (a, y) = (dof as f64 / 2.0, x / 2.0);
    let ln_gamma_a1 = ln_gamma_half(dof) + a.ln();
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 1..10_000 {
        term *= y / (a + n as f64);
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
    }
    1.0 - (-y + a * y.ln() - ln_gamma_a1).exp() * sum
}

#[test]
fn chi2_survival_function() {
    // Known quantiles: χ²_1 at 3.841 and χ²_10 at 18.307 (p = 0.05), χ²_15 at 37.697 (p = 0.001);
    // χ²_15 crosses 10^-4 at 44.26.
    assert!((chi2_sf(3.841_458_8, 1) - 0.05).abs() < 1e-6);
    assert!((chi2_sf(18.307_038, 10) - 0.05).abs() < 1e-6);
    assert!((chi2_sf(4.0, 2) - (-2.0f64).exp()).abs() < 1e-12);
    assert!((chi2_sf(37.697_3, 15) - 0.001).abs() < 1e-6);
    assert!(chi2_sf(44.2, 15) > 1e-4 && chi2_sf(44.3, 15) < 1e-4);
}

/// Shares of a TopK for the given values and indices (client shares random), as the sampling
/// takes them.
fn share_top(p: &mut Prg, ring: Ring, values: &[i64], indices: &[usize]) -> (TopK, TopK) {
    let v: Vec<u64> = values
        .iter()
        .map(|&x| to_ring_u64(x, ring.bits).unwrap())
        .collect();
    let i: Vec<u64> = indices.iter().map(|&x| x as u64).collect();
    let (vc, ic) = (p.values(v.len(), ring.bits), p.values(i.len(), ring.bits));
    let mk = |values, indices| TopK {
        values,
        indices,
        positions: Vec::new(),
        comparisons: 0,
        rounds: 0,
    };
    (mk(ring.sub_vec(&v, &vc), ring.sub_vec(&i, &ic)), mk(vc, ic))
}

/// The sampled index is exactly the reference's on the joint value u = u_S + u_C mod 2^w: K from
/// 1 to 100, temperatures 1, 0.8, 1.5 and 0.5, logits random over ±8 or with ties or all equal,
/// the joint values random and at the edges 0 and 2^w − 1; ℓ = 38, scores at 12 bits.
#[test]
fn sampling_matches_the_reference_on_the_joint_value() {
    let ring = Ring::new(38).unwrap();
    let tables = semantics::fit_exp_tables(12, 14, 12).unwrap();
    let w = topk::sample_bits(tables.frac_out);
    let mut p = Prg::from_entropy();
    let mut cases = Vec::new();
    for (c, k) in [1usize, 2, 3, 10, 33, 100].into_iter().enumerate() {
        for (t, temp) in [1.0, 0.8, 1.5, 0.5].into_iter().enumerate() {
            let values: Vec<i64> = match (c + t) % 3 {
                0 => (0..k).map(|_| p.gen_range(-8 << 12..8 << 12)).collect(),
                1 => (0..k).map(|_| p.gen_range(-2..=2) << 11).collect(),
                _ => vec![3 << 12; k],
            };
            let indices: Vec<usize> = (0..k).map(|_| p.gen_range(0..50_257)).collect();
            let temp = topk::Temperature::from_f64(temp).unwrap();
            let draws = 24;
            let us = p.values(draws, w);
            let uc: Vec<u64> = match c % 2 {
                0 => p.values(draws, w),
                _ => us
                    .iter()
                    .map(|&x| x.wrapping_neg() & ((1 << w) - 1))
                    .collect(),
            };
            let (ts, tc) = share_top(&mut p, ring, &values, &indices);
            cases.push((values, indices, temp, us, uc, ts, tc));
        }
    }
    let (c2, t2) = (cases.clone(), tables.clone());
    let t3 = tables.clone();
    let (_, got) = two_party(
        move |s| {
            for (_, _, temp, us, _, ts, _) in &c2 {
                let r = topk::sample_with(&mut s.party(), ring, ts, *temp, &t2, us);
                assert_eq!(r.unwrap(), None);
            }
        },
        move |cl| {
            cases
                .iter()
                .map(|(values, indices, temp, us, uc, _, tc)| {
                    let r = topk::sample_with(&mut cl.party(), ring, tc, *temp, &t3, uc)
                        .unwrap()
                        .unwrap();
                    let want: Vec<usize> = us
                        .iter()
                        .zip(uc)
                        .map(|(&a, &b)| {
                            let u = (a + b) & ((1 << w) - 1);
                            indices[topk::sample_reference(values, *temp, &t3, u).unwrap()]
                        })
                        .collect();
                    (r, want)
                })
                .collect::<Vec<_>>()
        },
    );
    for (k, (r, want)) in got.into_iter().enumerate() {
        assert_eq!(r, want, "case {k}");
    }
    // The edges of u: 0 picks the first position with p > 0, 2^w − 1 the last.
    let v = [5i64 << 12, -20 << 12, 4 << 12];
    assert_eq!(
        topk::sample_reference(&v, topk::Temperature::ONE, &tables, 0).unwrap(),
        0
    );
    let last = topk::sample_reference(&v, topk::Temperature::ONE, &tables, (1 << w) - 1);
    assert_eq!(last.unwrap(), 2);
}

/// The full pipeline, top-K then sampling with temperature, against the plaintext top-k softmax
/// distribution: for fixed logits, R draws of the protocol give counts per token whose chi-square
/// statistic against R·p_i/Σp (p = `semantics::softmax_row` of the tempered top-K logits, the
/// top K by the plaintext order) must have a p-value above 10^-4 (the test's significance: a false
/// alarm once in 10,000 runs per case). The integer probabilities are also within 0.002 of the
/// float softmax of the same logits. Cases: random logits (n = 300, K = 8, T = 0.8), all equal
/// logits (K = 6: uniform over indices 0..5), 3 distinct values with K = 10 above them (ties at
/// the boundary go to the smallest indices), and K = n = 64 (the whole vocabulary, T = 1.5).
#[test]
fn sampled_distribution_matches_top_k_softmax() {
    let ring = Ring::new(38).unwrap();
    let tables = semantics::fit_exp_tables(12, 14, 12).unwrap();
    let mut p = Prg::from_entropy();
    let f = |x: f64| (x * 4096.0).round() as i64;
    let cases: Vec<(Vec<i64>, usize, f64, usize)> = vec![
        (
            (0..300).map(|_| f(p.gen_range(-4.0..2.0))).collect(),
            8,
            0.8,
            3000,
        ),
        (vec![f(1.25); 40], 6, 1.0, 1800),
        (
            (0..50).map(|i| f([0.5, 0.0, -0.5][i % 3])).collect(),
            10,
            1.0,
            2000,
        ),
        (
            (0..64).map(|_| f(p.gen_range(-1.0..1.0))).collect(),
            64,
            1.5,
            2000,
        ),
    ];
    for (z, k, t, draws) in cases {
        let temp = topk::Temperature::from_f64(t).unwrap();
        let top = reference(&z, k);
        let y: Vec<i64> = top.iter().map(|&i| temp.apply(z[i])).collect();
        let probs = semantics::softmax_row(&y, &tables).unwrap();
        let total: i64 = probs.iter().sum();
        // Closeness to the float top-k softmax of the same (tempered) logits.
        let m = y.iter().copied().max().unwrap() as f64 / 4096.0;
        let e: Vec<f64> = y.iter().map(|&v| (v as f64 / 4096.0 - m).exp()).collect();
        let es: f64 = e.iter().sum();
        for (pi, ei) in probs.iter().zip(&e) {
            assert!((*pi as f64 / total as f64 - ei / es).abs() < 2e-3);
        }
        let x: Vec<u64> = z.iter().map(|&v| to_ring_u64(v, 38).unwrap()).collect();
        let xc = p.values(x.len(), 38);
        let xs = ring.sub_vec(&x, &xc);
        let (t2, t3) = (tables.clone(), tables.clone());
        let params = TopKParams::default();
        let (_, got) = two_party(
            move |s| {
                let top = topk(&mut s.party(), ring, &xs, k, &params).unwrap();
                topk::sample(&mut s.party(), ring, &top, temp, &t2, draws).unwrap()
            },
            move |c| {
                let top = topk(&mut c.party(), ring, &xc, k, &params).unwrap();
                topk::sample(&mut c.party(), ring, &top, temp, &t3, draws).unwrap()
            },
        );
        let got = got.unwrap();
        let mut counts = vec![0usize; k];
        for j in got {
            let pos = top.iter().position(|&i| i == j);
            counts[pos.unwrap_or_else(|| panic!("index {j} is not in the top {k}"))] += 1;
        }
        let mut chi2 = 0.0;
        for (c, &pi) in counts.iter().zip(&probs) {
            let want = draws as f64 * pi as f64 / total as f64;
            assert!(
                want >= 5.0,
                "expected count {want:.1} is too small for the test"
            );
            chi2 += (*c as f64 - want).powi(2) / want;
        }
        let pv = chi2_sf(chi2, k - 1);
        assert!(
            pv > 1e-4,
            "n {}, K {k}, T {t}: chi-square {chi2:.1} on {} dof, p = {pv:.2e}, counts {counts:?}",
            z.len(),
            k - 1
        );
    }
}

/// The client's view (every byte it receives after the base OTs: the shuffle's OT messages and
/// masked sums, the comparisons' triples, leaf OTs and openings, the server's shares of the
/// revealed bits, the output's carry and B2A) does not depend on the server's share: with the
/// client's shares fixed and the server's chosen so that the logits are all zero, all at the top of
/// the range, random or increasing, the view's bits are fair coins in aggregate (|z| < 6), its
/// length beyond the shuffle's is one affine function of the number of comparisons across the
/// four shapes (fixed bytes for the output plus bytes per comparison; each length within 1% of
/// the fitted line: IKNP's padding per round is the rest) — the number of comparisons follows the
/// ranks of the shuffled positions, random in every case — and the client's output shares are
/// bit-wise fair coins independent of the selected values and indices (K = 1,000 of 2,048).
#[test]
fn client_view_is_independent_of_server_share() {
    use ciphergpt_runtime::net::Role;
    let ring = Ring::new(38).unwrap();
    let (n, k) = (2048usize, 1000usize);
    let mut p = Prg::from_entropy();
    let mine = p.values(n, 38);
    let h = half_range(38);
    let mut lengths: Vec<(f64, f64)> = Vec::new();
    for shape in 0..4 {
        let z: Vec<i64> = match shape {
            0 => vec![0; n],
            1 => vec![h - 1; n],
            2 => (0..n).map(|_| p.gen_range(-h..h)).collect(),
            _ => (0..n as i64).map(|i| i - h).collect(),
        };
        let x: Vec<u64> = z.iter().map(|&v| to_ring_u64(v, 38).unwrap()).collect();
        let theirs = ring.sub_vec(&x, &mine);
        let ((c, view), s) = tapped_two_party(
            Role::Client,
            CotBackend::Iknp,
            |ot, tap| {
                let start = tap.received.len();
                let c = topk(
                    &mut Party::new(ot, tap, Role::Client),
                    ring,
                    &mine,
                    k,
                    &TopKParams::default(),
                )
                .unwrap();
                (c, tap.received[start..].to_vec())
            },
            move |ot, ch| {
                let params = TopKParams::default();
                topk(
                    &mut Party::new(ot, ch, Role::Server),
                    ring,
                    &theirs,
                    k,
                    &params,
                )
                .unwrap()
            },
        );
        assert_eq!(open(ring, &s, &c), expected(&z, k));
        let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
        let zf = z_fair(ones as usize, 8 * view.len());
        assert!(zf.abs() < 6.0, "shape {shape}: view z = {zf:.2}");
        // Beyond the shuffle's bytes (Network::bytes: the OT messages and m_k of π_C, the IKNP
        // message of π_S), a fixed number of bytes per comparison, up to the IKNP padding of
        // each round and the output.
        let net = Network::new(n, 38 + topk::index_bits(n), &ShuffleParams::default()).unwrap();
        let extra = view.len() as f64 - net.bytes(38 + topk::index_bits(n)) as f64;
        println!(
            "shape {shape}: {} comparisons, {} rounds, {extra} bytes",
            c.comparisons, c.rounds
        );
        lengths.push((c.comparisons as f64, extra));
        let values = ring.add_vec(&s.values, &c.values);
        let indices = ring.add_vec(&s.indices, &c.indices);
        assert_uniform_and_independent(&c.values, &values, 38, &format!("shape {shape}: values"));
        assert_uniform_and_independent(
            &c.indices,
            &indices,
            38,
            &format!("shape {shape}: indices"),
        );
    }
    // Least squares: extra = per_comparison * comparisons + fixed.
    let m = lengths.len() as f64;
    let (mx, my) = lengths
        .iter()
        .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x / m, b + y / m));
    let sxy: f64 = lengths.iter().map(|&(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = lengths.iter().map(|&(x, _)| (x - mx) * (x - mx)).sum();
    let per_comparison = sxy / sxx;
    let fixed = my - per_comparison * mx;
    // At least the comparison's messages: on 48 bits, 8 leaves of 64 two-bit messages (128
    // bytes) and its tree's (four pairs of 16 two-bit messages, a root of 128 bits: 32 bytes).
    assert!(
        per_comparison > 160.0,
        "{per_comparison:.1} bytes per comparison, {fixed:.0} fixed: {lengths:?}"
    );
    for &(x, y) in &lengths {
        let off = (y - (per_comparison * x + fixed)) / y;
        assert!(
            off.abs() < 0.01,
            "{x} comparisons: {y} bytes, {:.2}% off the line \
             {per_comparison:.1} per comparison + {fixed:.0}",
            100.0 * off
        );
    }
}
