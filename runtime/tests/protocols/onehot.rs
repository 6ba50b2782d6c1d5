//! One-hot shares of a random index and the lookups through them: the reconstructed vectors are
//! one-hot at ρ_S + ρ_C mod N, public tables read at shared indices give T[i] exactly, the
//! online bytes are log₂N bits each way, the opened offsets are uniform whatever the index, and
//! the refusals.

use crate::common;

use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::Channel;
use ciphergpt_runtime::protocols::onehot::{self, OneHot};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::ProtocolError;
use common::*;

fn reconstruct(s: &OneHot, c: &OneHot) -> (Vec<usize>, Vec<u64>) {
    let n = s.size;
    let rho = (0..s.len())
        .map(|e| ((s.rho[e] + c.rho[e]) as usize) & (n - 1))
        .collect();
    (rho, s.ring.add_vec(&s.entries, &c.entries))
}

#[test]
fn vectors_are_one_hot_at_the_shared_index() {
    for (size, bits) in [(2usize, 8u32), (64, 34), (128, 34), (256, 64)] {
        let ring = Ring::new(bits).unwrap();
        let n = 300;
        let f = move |p: &mut Peer| onehot::prepare(&mut p.party(), ring, size, n);
        let (s, c) = two_party(move |p| f(p).unwrap(), move |p| f(p).unwrap());
        assert_eq!((s.len(), c.len()), (n, n));
        let (rho, e) = reconstruct(&s, &c);
        for (k, &r) in rho.iter().enumerate() {
            for j in 0..size {
                assert_eq!(
                    e[k * size + j],
                    (j == r) as u64,
                    "N = {size}, element {k}, entry {j}"
                );
            }
        }
        // The index is random: with 300 draws, more than one value appears.
        assert!(rho.iter().any(|&r| r != rho[0]), "N = {size}");
        // Neither party's shares are the vector itself.
        assert!(s.entries.iter().any(|&v| v > 1) && c.entries.iter().any(|&v| v > 1));
    }
}

/// Lookups of two public tables at shared indices (random, and every value of [0, N)), in two
/// calls from two offsets of one correlation: shares of T[i] exactly; per call one exchange of
/// log₂N bits per element each way.
#[test]
fn lookups_read_the_tables_at_the_shared_index() {
    let (size, bits) = (128usize, 34u32);
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let tables = [ring.random(&mut p, size), ring.random(&mut p, size)];
    let mut idx: Vec<u64> = (0..size as u64).collect();
    idx.extend(p.values(400, 7));
    let n = idx.len();
    let is: Vec<u64> = p.values(n, 7);
    let ic: Vec<u64> = (0..n).map(|e| idx[e].wrapping_sub(is[e]) & 127).collect();
    let t2 = tables.clone();
    let f = move |p: &mut Peer, mine: Vec<u64>| {
        let oh = onehot::prepare(&mut p.party(), ring, size, n + 5).unwrap();
        let before = p.ch.stats().total;
        let half = n / 2;
        let mut out = vec![Vec::new(), Vec::new()];
        for (at, part) in [(5, &mine[..half]), (5 + half, &mine[half..])] {
            let (delta, none) =
                onehot::open_offsets(&mut p.ch, p.role, &oh, at, part, &[], 0).unwrap();
            assert!(none.is_empty());
            for (k, t) in t2.iter().enumerate() {
                out[k].extend((0..part.len()).map(|e| oh.dot(at + e, delta[e], t)));
            }
        }
        let after = p.ch.stats().total;
        (
            out,
            after.bytes() - before.bytes(),
            after.rounds - before.rounds,
        )
    };
    let g = f.clone();
    let ((os, bytes, rounds), (oc, _, _)) = two_party(move |p| f(p, is), move |p| g(p, ic));
    for k in 0..2 {
        let got = ring.add_vec(&os[k], &oc[k]);
        for e in 0..n {
            assert_eq!(got[e], tables[k][idx[e] as usize], "table {k}, element {e}");
        }
    }
    let half = (n / 2) as u64;
    let rest = n as u64 - half;
    assert_eq!(bytes, 2 * ((half * 7).div_ceil(8) + (rest * 7).div_ceil(8)));
    // Two calls, one simultaneous exchange each.
    assert!(rounds <= 4, "{rounds} flights");
}

/// The offsets the server receives are uniform and independent of the index: with the index 0
/// everywhere and with every index distinct, δ's values are spread evenly over [0, N) (χ² with
/// 63 degrees of freedom under 130, about 10⁻⁶ of the time above by chance).
#[test]
fn opened_offsets_are_uniform_whatever_the_index() {
    let (size, n) = (64usize, 1 << 13);
    let ring = Ring::new(20).unwrap();
    for what in ["zero", "counting"] {
        let idx: Vec<u64> = match what {
            "zero" => vec![0; n],
            _ => (0..n as u64).map(|e| e & 63).collect(),
        };
        let is = Prg::from_entropy().values(n, 6);
        let ic: Vec<u64> = (0..n).map(|e| idx[e].wrapping_sub(is[e]) & 63).collect();
        let f = move |p: &mut Peer, mine: Vec<u64>| {
            let oh = onehot::prepare(&mut p.party(), ring, size, n).unwrap();
            onehot::open_offsets(&mut p.ch, p.role, &oh, 0, &mine, &[], 0)
                .unwrap()
                .0
        };
        let (delta, dc) = two_party(move |p| f(p, is), move |p| f(p, ic));
        assert_eq!(delta, dc);
        let mut counts = vec![0f64; size];
        for &d in &delta {
            counts[d] += 1.0;
        }
        let expect = n as f64 / size as f64;
        let chi2: f64 = counts.iter().map(|c| (c - expect).powi(2) / expect).sum();
        assert!(chi2 < 130.0, "{what}: χ² = {chi2:.1}");
    }
}

/// Sizes that are not powers of two, or too large, and lookups past the end are refused; one
/// entry is the constant 1, made without communication.
#[test]
fn bad_sizes_and_exhausted_correlations_are_refused() {
    let ring = Ring::new(16).unwrap();
    let f = move |p: &mut Peer| {
        let bad = |r: Result<OneHot, ProtocolError>| matches!(r, Err(ProtocolError::Invalid(_)));
        let sizes = [
            bad(onehot::prepare(&mut p.party(), ring, 3, 4)),
            bad(onehot::prepare(&mut p.party(), ring, 512, 4)),
            bad(onehot::prepare(&mut p.party(), ring, 0, 4)),
        ];
        // One entry: the vector is 1 everywhere, with no communication.
        let before = p.ch.stats().total.bytes();
        let one = onehot::prepare(&mut p.party(), ring, 1, 4).unwrap();
        assert_eq!(p.ch.stats().total.bytes(), before);
        let oh = onehot::prepare(&mut p.party(), ring, 4, 4).unwrap();
        let over = onehot::open_offsets(&mut p.ch, p.role, &oh, 2, &[0, 0, 0], &[], 0);
        (
            sizes,
            matches!(over, Err(ProtocolError::Invalid(_))),
            one.entries,
        )
    };
    let g = f;
    let (a, b) = two_party(f, g);
    assert_eq!(a.0, [true; 3]);
    assert_eq!(b.0, [true; 3]);
    assert!(a.1 && b.1);
    assert_eq!(ring.add_vec(&a.2, &b.2), vec![1; 4]);
}
