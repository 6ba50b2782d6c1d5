//! One-hot shares of a random index and the lookups through them: the reconstructed vectors are
//! one-hot at ρ_S + ρ_C mod N, public tables read at shared indices give T[i] exactly, the
//! online bytes are log₂N bits each way, the opened offsets are uniform whatever the index, and
//! the refusals.

use crate::common;

use ciphergpt_runtime::crypto::CotBackend;
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::onehot::{self, OneHot};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::Party;
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

fn iknp(c: u64) -> u64 {
    c.div_ceil(128) * 128 * 16
}

/// The preparation's bytes on IKNP, both directions, for one slice of `n` vectors of 2^s entries
/// over Z_2^m (the module doc of `onehot::dpf`): the levels' random OTs both ways, the index's
/// bit products over Z_2^s, per level the exchange of y (16 bytes) and of the correction word's
/// shares (16 bytes and 2 bits), the output word's two Gilboa products with (s + 1)-bit
/// choosers, and its opening.
fn prepare_bytes(n: u64, s: u32, m: u32) -> u64 {
    let s64 = s as u64;
    let k = (s + 1).min(m);
    let gilboa: u64 = (0..k).map(|j| (m - j) as u64).sum();
    let rots = 2 * iknp(s64 * n);
    let index = iknp(s64 * n) + (s64 * n * s64).div_ceil(8);
    let levels = s64 * 2 * (32 * n + (2 * n).div_ceil(8));
    let word = 2 * (iknp(k as u64 * n) + (n * gilboa).div_ceil(8)) + 2 * (n * m as u64).div_ceil(8);
    rots + index + levels + word
}

/// The preparation costs O(log N) blocks per vector, not N² bits: its bytes on IKNP equal the
/// formula, its flights stay within 2s + 12 (one each way per level), and on silent OT a vector of 128 entries over
/// Z_2^34 costs under 700 bytes (the 1-out-of-N OT of rotations it replaced: about 2.6 KB).
#[test]
fn preparation_bytes_follow_the_point_function_formula() {
    for (s, m) in [(1u32, 8u32), (7, 34), (8, 30), (3, 2)] {
        let ring = Ring::new(m).unwrap();
        let n = 1000;
        let f = move |p: &mut Peer| {
            let before = p.ch.stats().total;
            let oh = onehot::prepare(&mut p.party(), ring, 1 << s, n).unwrap();
            let after = p.ch.stats().total;
            (
                oh,
                after.bytes() - before.bytes(),
                after.rounds - before.rounds,
            )
        };
        let ((os, bytes, rounds), (oc, _, _)) = two_party_iknp(f, f);
        let (rho, e) = reconstruct(&os, &oc);
        for (k, &r) in rho.iter().enumerate() {
            assert_eq!(
                &e[k << s..(k + 1) << s],
                &unit(1 << s, r)[..],
                "s = {s}, element {k}"
            );
        }
        assert_eq!(bytes, prepare_bytes(n as u64, s, m), "s = {s}, m = {m}");
        eprintln!("one-hot preparation, N = 2^{s} over Z_2^{m}, IKNP: {rounds} flights");
        assert!(rounds <= 2 * s as u64 + 12, "s = {s}: {rounds} flights");
    }
    let ring = Ring::new(34).unwrap();
    let n = 4096;
    let f = move |p: &mut Peer| {
        // A first call fills the silent pool, so that the second is measured without refills.
        onehot::prepare(&mut p.party(), ring, 128, 64).unwrap();
        let before = p.ch.stats().total.bytes();
        onehot::prepare(&mut p.party(), ring, 128, n).unwrap();
        p.ch.stats().total.bytes() - before
    };
    let (bytes, _) = two_party(f, f);
    let per = bytes as f64 / n as f64;
    eprintln!("one-hot preparation, N = 128 over Z_2^34, silent OT: {per:.1} bytes per vector");
    assert!(per < 700.0, "{per:.1} bytes per vector");
}

fn unit(size: usize, at: usize) -> Vec<u64> {
    (0..size).map(|j| (j == at) as u64).collect()
}

/// What the server receives while the vectors are made (IKNP, so that the messages' places are
/// known): per level the client's y and its share of the correction word, every bit a fair coin
/// and independent of the level's bit of the point ρ; the whole view fair in each of 32 slices.
#[test]
fn the_servers_view_of_the_preparation_is_independent_of_the_point() {
    let (s, m, n) = (7u32, 34u32, 1024usize);
    let ring = Ring::new(m).unwrap();
    let size = 1usize << s;
    let ((os, view), oc) = tapped_two_party(
        Role::Server,
        CotBackend::Iknp,
        move |ot, tap| {
            let start = tap.received.len();
            let oh = onehot::prepare(&mut Party::new(ot, tap, Role::Server), ring, size, n);
            (oh.unwrap(), tap.received[start..].to_vec())
        },
        move |ot, ch| {
            onehot::prepare(&mut Party::new(ot, ch, Role::Client), ring, size, n).unwrap()
        },
    );
    let (rho, _) = reconstruct(&os, &oc);
    let slice = view.len().div_ceil(32);
    for part in view.chunks(slice) {
        let ones: u32 = part.iter().map(|v| v.count_ones()).sum();
        let z = z_fair(ones as usize, 8 * part.len());
        assert!(z.abs() < 6.0, "view bits z = {z:.2}");
    }
    // The client's IKNP messages of the levels' OTs and of the index's bit products come first.
    let mut at = 2 * iknp((s as usize * n) as u64) as usize;
    let word = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    for j in 0..s as usize {
        let bit: Vec<u64> = rho
            .iter()
            .map(|&r| {
                if (r >> (s as usize - 1 - j)) & 1 == 1 {
                    u64::MAX
                } else {
                    0
                }
            })
            .collect();
        for (what, off) in [("y", 0), ("correction word share", 16 * n)] {
            for half in 0..2 {
                let v: Vec<u64> = (0..n)
                    .map(|e| word(&view[at + off + 16 * e + 8 * half..]))
                    .collect();
                assert_uniform_and_independent(&v, &bit, 64, &format!("level {j}, {what}"));
            }
        }
        let tbits: Vec<u64> = (0..2 * n)
            .map(|i| ((view[at + 32 * n + i / 8] >> (i % 8)) & 1) as u64)
            .collect();
        let twice: Vec<u64> = (0..2 * n).map(|i| bit[i / 2] & 1).collect();
        assert_uniform_and_independent(&tbits, &twice, 1, &format!("level {j}, control bits"));
        at += 32 * n + (2 * n).div_ceil(8);
    }
}
