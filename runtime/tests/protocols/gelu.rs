//! GELU: exact equality with the compiler's `semantics::gelu` (CipherGPT's spline) for the default
//! tables (f = 15, α = 4, 128 pieces) at ℓ = 38, CipherGPT's setting (f = 12, 64 pieces) at ℓ = 37,
//! Erf tables, unusual shapes in the narrowest rings they fit; random inputs over the whole
//! allowed range and around the spline, every piece boundary and the range edges; TCP; errors;
//! the exact byte count; and the client's view.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{self, fit_gelu, GeluForm, GeluTables};
use ciphergpt_runtime::crypto::{silent, Prg};
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::ProtocolError;
use ciphergpt_runtime::protocols::{cmp, gelu};
use ciphergpt_runtime::protocols::{Party, PreparedCorrelation};
use common::*;

fn tables(frac: u32, alpha_log2: u32, pieces_log2: u32, form: GeluForm) -> GeluTables {
    fit_gelu(frac, alpha_log2, pieces_log2, form).unwrap()
}

/// The precondition's range: x ∈ [−2^(ℓ−2), 2^(ℓ−2)).
fn quarter(bits: u32) -> i64 {
    1i64 << (bits - 2)
}

/// Edge values: 0, ±1, ±B and neighbours, ±2B and neighbours, every piece boundary −B + k·2^w
/// (k = 0..=N) and its neighbours, ±(2^(ℓ−2) − 1), −2^(ℓ−2); then `n` uniform values over
/// [−2^(ℓ−2), 2^(ℓ−2)) and `n` uniform values in [−8, 8)·2^f.
fn inputs(p: &mut Prg, t: &GeluTables, bits: u32, n: usize) -> Vec<i64> {
    let b = t.bound();
    let q = quarter(bits);
    let mut v = vec![0, 1, -1, q - 1, -(q - 1), -q];
    for e in [b, 2 * b] {
        for d in [-1, 0, 1] {
            v.extend([e + d, -e + d]);
        }
    }
    for k in 0..=(1i64 << t.pieces_log2) {
        let m = -b + k * (1i64 << t.piece_bits());
        v.extend([m - 1, m, m + 1]);
    }
    v.retain(|&x| (-q..q).contains(&x));
    v.extend(p.values(n, bits - 1).into_iter().map(|u| u as i64 - q));
    let span = 8i64 << t.frac;
    v.extend(
        p.values(n, t.frac + 4)
            .into_iter()
            .map(|u| (u as i64 - span).clamp(-q, q - 1)),
    );
    v
}

/// Shares of x: the client's share is random, with the common edge values (0, ±1, 2^(ℓ−1), …)
/// first.
fn split(ring: Ring, p: &mut Prg, x: &[i64]) -> (Vec<u64>, Vec<u64>) {
    let x: Vec<u64> = x.iter().map(|&v| ring.from_signed(v)).collect();
    let r = values_with_edges(p, x.len(), ring.bits);
    (ring.sub_vec(&x, &r), r)
}

/// Runs the protocol on shares of `x` and returns the reconstructed outputs.
fn run(bits: u32, t: &GeluTables, x: &[i64], tcp: bool) -> Vec<u64> {
    let ring = Ring::new(bits).unwrap();
    let (xs, xc) = split(ring, &mut Prg::from_entropy(), x);
    let (ts, tc) = (t.clone(), t.clone());
    let f = move |p: &mut Peer, t: GeluTables, x: Vec<u64>| {
        gelu::gelu(&mut p.party(), ring, &t, &x).unwrap()
    };
    let (a, b) = if tcp {
        two_party_tcp(move |p| f(p, ts, xs), move |p| f(p, tc, xc))
    } else {
        two_party(move |p| f(p, ts, xs), move |p| f(p, tc, xc))
    };
    ring.add_vec(&a, &b)
}

fn check(bits: u32, t: &GeluTables, x: &[i64], got: &[u64]) {
    assert_eq!(got.len(), x.len());
    for (&x, &y) in x.iter().zip(got) {
        let want = semantics::to_ring_u64(semantics::gelu(x, t).unwrap(), bits).unwrap();
        assert_eq!(
            y, want,
            "ℓ = {bits}, f = {}, s = {}, {:?}: x = {x}",
            t.frac, t.pieces_log2, t.form
        );
    }
}

fn run_and_check(bits: u32, t: &GeluTables, n: usize) {
    let x = inputs(&mut Prg::from_entropy(), t, bits, n);
    let got = run(bits, t, &x, false);
    check(bits, t, &x, &got);
}

#[test]
fn default_tables_at_38_bits() {
    run_and_check(38, &tables(15, 2, 7, GeluForm::Tanh), 4000);
}

#[test]
fn ciphergpt_setting_at_37_bits() {
    run_and_check(37, &tables(12, 2, 6, GeluForm::Tanh), 4000);
}

#[test]
fn erf_tables() {
    run_and_check(37, &tables(12, 2, 6, GeluForm::Erf), 2000);
    run_and_check(38, &tables(15, 2, 7, GeluForm::Erf), 2000);
}

/// Shapes away from the defaults (one piece, 256 pieces, w = 0, small f, wide α), each in the
/// narrowest ring that `params` accepts and in a 64-bit ring: the bias, the spline ring width m
/// and the comparison ring ℓ − K all reach their limits.
#[test]
fn unusual_shapes_in_tight_and_wide_rings() {
    for (frac, alpha, s, form) in [
        (6, 1, 0, GeluForm::Tanh),
        (4, 1, 6, GeluForm::Erf),
        (8, 2, 8, GeluForm::Tanh),
        (12, 3, 5, GeluForm::Erf),
        (10, 0, 3, GeluForm::Tanh),
    ] {
        let t = tables(frac, alpha, s, form);
        let tight = (2..=64)
            .find(|&b| gelu::params(Ring::new(b).unwrap(), &t).is_ok())
            .unwrap();
        for bits in [tight, 64] {
            run_and_check(bits, &t, 500);
        }
    }
}

/// The protocol is exact on the whole range it needs, [−2^(ℓ−1) + B, 2^(ℓ−1) − B), wider than the
/// precondition: its two ends and uniform values over it, for the default tables at ℓ = 38 and in
/// the narrowest ring of CipherGPT's setting.
#[test]
fn exact_on_the_whole_supported_range() {
    for (bits, t) in [
        (38, tables(15, 2, 7, GeluForm::Tanh)),
        (28, tables(12, 2, 6, GeluForm::Tanh)),
    ] {
        assert!(gelu::params(Ring::new(bits).unwrap(), &t).is_ok());
        let (lo, hi) = (
            -(1i64 << (bits - 1)) + t.bound(),
            (1i64 << (bits - 1)) - t.bound(),
        );
        let mut x = vec![lo, lo + 1, hi - 1, hi - 2, 0];
        let mut p = Prg::from_entropy();
        x.extend(
            p.values(2000, bits)
                .into_iter()
                .map(|u| lo + (u % (hi - lo) as u64) as i64),
        );
        let got = run(bits, &t, &x, false);
        check(bits, &t, &x, &got);
    }
}

#[test]
fn default_tables_over_tcp() {
    let t = tables(15, 2, 7, GeluForm::Tanh);
    let x = inputs(&mut Prg::from_entropy(), &t, 38, 5000);
    let got = run(38, &t, &x, true);
    check(38, &t, &x, &got);
}

#[test]
fn empty_input_and_invalid_arguments() {
    let t = tables(15, 2, 7, GeluForm::Tanh);
    assert!(run(38, &t, &[], false).is_empty());
    let is_invalid =
        |r: Result<gelu::Params, ProtocolError>| matches!(r, Err(ProtocolError::Invalid(_)));
    let ring = |b| Ring::new(b).unwrap();
    // Wrong table shape.
    let mut short = t.clone();
    short.intercept.pop();
    assert!(is_invalid(gelu::params(ring(38), &short)));
    // Too many pieces for one lookup (2^9 > 256).
    assert!(is_invalid(gelu::params(
        ring(64),
        &tables(15, 2, 9, GeluForm::Tanh)
    )));
    // Ring too narrow for the spline (m = 34 bits here) and for the input range (ℓ ≥ K + 1 = 19).
    assert_eq!(gelu::params(ring(38), &t).unwrap().spline_bits, 34);
    assert!(gelu::params(ring(34), &t).is_ok());
    assert!(is_invalid(gelu::params(ring(33), &t)));
    // Zero tables need only m = f + 1 bits, so the input range decides: ℓ ≥ K + 1 = 16.
    let flat = GeluTables {
        slope: vec![0; 64],
        intercept: vec![0; 64],
        ..tables(12, 2, 6, GeluForm::Tanh)
    };
    assert!(gelu::params(ring(16), &flat).is_ok());
    assert!(is_invalid(gelu::params(ring(15), &flat)));
    // An intercept of 2^61 needs m = 63 (the most, with the lookup's carry bit on top): a 63-bit
    // ring; 2^62 and a slope of 2^60 (·r up to 2^9 − 1) fit no ring.
    let mut steep = flat.clone();
    steep.intercept[1] = 1 << 61;
    assert!(gelu::params(ring(63), &steep).is_ok());
    assert!(is_invalid(gelu::params(ring(62), &steep)));
    steep.intercept[1] = 1 << 62;
    assert!(is_invalid(gelu::params(ring(64), &steep)));
    steep.slope[2] = 1 << 60;
    assert!(is_invalid(gelu::params(ring(64), &steep)));
    // The protocol refuses the same arguments, and unreduced shares, before any communication.
    let (a, b) = two_party(
        move |p| {
            let mut errs = 0;
            for (bits, tab) in [(38, &short), (33, &t)] {
                let r = gelu::gelu(&mut p.party(), ring(bits), tab, &[1]);
                errs += matches!(r, Err(ProtocolError::Invalid(_))) as u32;
            }
            let r = gelu::gelu(&mut p.party(), ring(38), &t, &[1 << 38]);
            errs += matches!(r, Err(ProtocolError::Invalid(_))) as u32;
            errs
        },
        |_| 3,
    );
    assert_eq!((a, b), (3, 3));
}

fn iknp(c: u64) -> u64 {
    c.div_ceil(128) * 128 * 16
}

/// Bytes of one millionaires' call on `n` k-bit comparisons with m-bit digits: triples (two
/// IKNP batches), leaf 1-of-2^m OTs (k·m random OTs + 2-bit ciphertexts), one exchange of 2 bits
/// per AND and party per tree level.
fn millionaire_bytes(n: u64, k: u32, m: u32) -> u64 {
    if k == 0 || n == 0 {
        return 0;
    }
    let q = k.div_ceil(m) as u64;
    let leaves = iknp(n * q * m as u64) + (n * q * (2u64 << m)).div_ceil(8);
    let tree: u64 = cmp::tree_groups(q as usize, 1)
        .iter()
        .map(|g| {
            let (ots, msgs, out) = cmp::tree_level(g);
            iknp(n * ots * u64::from(msgs.trailing_zeros())) + (n * ots * msgs * out).div_ceil(8)
        })
        .sum();
    leaves + tree
}

/// The cost formula of the module doc, with IKNP's padding to 128 OTs per batch.
fn gelu_bytes(p: &gelu::Params, n: u64) -> u64 {
    let (l, f, w, s, m) = (
        p.ring.bits,
        p.frac,
        p.piece_bits,
        p.pieces_log2,
        p.spline_bits,
    );
    let k = w + s;
    let mill = |n: u64, k: u32| millionaire_bytes(n, k, cmp::cheapest_digit_bits(k));
    let carry_w = mill(n, w) + iknp(n) + (n * m.max(l - w) as u64).div_ceil(8);
    // The server's lookup carries the index carry c_s: one more bit per message.
    let luts = if s > 0 { luts_of(p, n) } else { 0 };
    let carries = mill(n, f);
    let cots = iknp(3 * n) + (n * (l + (l - m + f) + (l - k)) as u64).div_ceil(8);
    let signs = mill(2 * n, l - k - 1);
    let muxes = 2 * (iknp(2 * n) + (2 * n * l as u64).div_ceil(8));
    carry_w + luts + carries + cots + signs + muxes
}

/// Bytes and flights at ℓ = 38 with the default tables, against the cost formula; the output is
/// checked too. (At 2^16 elements the same formula gives the per-element figure in the docs.)
#[test]
fn default_tables_cost_and_flights() {
    let bits = 38;
    let t = tables(15, 2, 7, GeluForm::Tanh);
    let ring = Ring::new(bits).unwrap();
    let p = gelu::params(ring, &t).unwrap();
    let mut x = inputs(&mut Prg::from_entropy(), &t, bits, 2000);
    x.truncate(4099);
    let n = x.len() as u64;
    let (xs, xc) = split(ring, &mut Prg::from_entropy(), &x);
    let (ts, tc) = (t.clone(), t.clone());
    let f = move |p: &mut Peer, t: GeluTables, x: Vec<u64>| {
        let before = p.ch.stats().total;
        let y = gelu::gelu(&mut p.party(), ring, &t, &x).unwrap();
        let after = p.ch.stats().total;
        (
            y,
            after.bytes() - before.bytes(),
            after.rounds - before.rounds,
        )
    };
    let ((ys, bytes, rs), (yc, bytes_c, rc)) =
        two_party_iknp(move |p| f(p, ts, xs), move |p| f(p, tc, xc));
    check(bits, &t, &x, &ring.add_vec(&ys, &yc));
    assert_eq!(bytes, bytes_c);
    assert_eq!(
        bytes,
        gelu_bytes(&p, n),
        "{} bytes per element",
        bytes as f64 / n as f64
    );
    eprintln!(
        "gelu ℓ = {bits}, n = {n}: {:.2} bytes/element, flights {rs} (server) / {rc} (client)",
        bytes as f64 / n as f64
    );
    assert!(rs <= 40 && rc <= 40, "flights {rs} / {rc}");
}

/// The client's view — every byte it receives after the base OTs — and its output share do not
/// depend on the input: with the client's share fixed and the server's share set so that x is 0,
/// deep in the tails (±3B), around the spline, or uniform over the whole range, the view has the
/// same length, its bits are fair coins overall and in each of 32 consecutive slices (|z| < 6),
/// and every bit of the client's output share is a fair coin that agrees with y's bit half the
/// time (|z| < 6 over 2^12 elements).
#[test]
fn client_view_is_independent_of_the_input() {
    let t = tables(15, 2, 7, GeluForm::Tanh);
    let (xc, cases) = view_cases(&t, 38, 1 << 12);
    client_view_check(&t, 38, &xc, cases, false);
}

/// The client's shares and the inputs of the view tests: 0, deep in the tails (±3B), around the
/// spline and uniform over the whole range.
fn view_cases(t: &GeluTables, bits: u32, n: usize) -> (Vec<u64>, Vec<(&'static str, Vec<i64>)>) {
    let mut p = Prg::from_entropy();
    let xc = p.values(n, bits);
    let b = t.bound();
    let q = quarter(bits);
    let span = 8i64 << t.frac;
    let cases = vec![
        ("zero", vec![0; n]),
        ("above α", vec![3 * b; n]),
        ("below −α", vec![-3 * b; n]),
        (
            "spline",
            p.values(n, t.frac + 4)
                .iter()
                .map(|&u| u as i64 - span)
                .collect(),
        ),
        (
            "uniform",
            p.values(n, bits - 1)
                .iter()
                .map(|&u| u as i64 - q)
                .collect(),
        ),
    ];
    (xc, cases)
}

/// Runs the prepared protocol: one correlation of `x.len() + 3` elements, consumed in two calls
/// (the first three elements left unused, so the second call starts at an offset), and returns
/// the reconstructed outputs with each party's online bytes and flights.
fn run_prepared(bits: u32, t: &GeluTables, x: &[i64], iknp: bool) -> (Vec<u64>, u64, u64) {
    let ring = Ring::new(bits).unwrap();
    let (xs, xc) = split(ring, &mut Prg::from_entropy(), x);
    let (ts, tc) = (t.clone(), t.clone());
    let f = move |p: &mut Peer, t: GeluTables, x: Vec<u64>| {
        let n = x.len();
        let mut prep = gelu::prepare(&mut p.party(), ring, &t, n + 3).unwrap();
        assert_eq!(prep.len(), n + 3);
        // What the preparation batch is sized by is what it holds.
        assert_eq!(
            prep.footprint(),
            (n + 3) * gelu::Correlation::footprint_per_element(&t)
        );
        prep.consume(3);
        assert_eq!((prep.used(), prep.remaining()), (3, n));
        let (before, b0) = (p.ch.stats().total, own_bytes(&*p.ch));
        let half = n / 2;
        let mut y = gelu::gelu_prepared(&mut p.party(), ring, &t, &x[..half], &prep, 3).unwrap();
        y.extend(
            gelu::gelu_prepared(&mut p.party(), ring, &t, &x[half..], &prep, 3 + half).unwrap(),
        );
        let after = p.ch.stats().total;
        (y, own_bytes(&*p.ch) - b0, after.rounds - before.rounds)
    };
    let ((ys, bs, rs), (yc, bc, _)) = if iknp {
        two_party_iknp(move |p| f(p, ts, xs), move |p| f(p, tc, xc))
    } else {
        two_party(move |p| f(p, ts, xs), move |p| f(p, tc, xc))
    };
    assert_eq!(bs, bc);
    (ring.add_vec(&ys, &yc), bs, rs)
}

/// Bytes on the channel but the silent-OT refills': a refill serves whichever call finds the pool
/// empty, so it is left out of a comparison between calls (IKNP has none).
fn own_bytes(ch: &dyn Channel) -> u64 {
    let st = ch.stats();
    st.total.bytes() - st.scope(silent::SCOPE).bytes()
}

/// The prepared lookups give `semantics::gelu` exactly, as the online ones do: the default
/// tables at ℓ = 38, CipherGPT's setting at ℓ = 37, one piece and 256 pieces in their narrowest
/// rings, on the edge values and random inputs.
#[test]
fn prepared_lookups_are_exact() {
    for (bits, t) in [
        (38, tables(15, 2, 7, GeluForm::Tanh)),
        (37, tables(12, 2, 6, GeluForm::Erf)),
    ] {
        let x = inputs(&mut Prg::from_entropy(), &t, bits, 1500);
        check(bits, &t, &x, &run_prepared(bits, &t, &x, false).0);
    }
    for (frac, alpha, s) in [(6, 1, 0), (8, 2, 8)] {
        let t = tables(frac, alpha, s, GeluForm::Tanh);
        let tight = (2..=64)
            .find(|&b| gelu::params(Ring::new(b).unwrap(), &t).is_ok())
            .unwrap();
        let x = inputs(&mut Prg::from_entropy(), &t, tight, 300);
        check(tight, &t, &x, &run_prepared(tight, &t, &x, false).0);
    }
}

/// The two private lookups' bytes of the online protocol on n elements (IKNP).
fn luts_of(p: &gelu::Params, n: u64) -> u64 {
    let (s, m) = (p.pieces_log2, p.spline_bits);
    2 * iknp(n * s as u64)
        + ((n * m as u64) << s).div_ceil(8)
        + ((n * (m + 1) as u64) << s).div_ceil(8)
}

/// Online bytes of the prepared protocol on IKNP against the module doc's formula: the online
/// protocol's with the two lookups replaced by the openings of δ and r − b (s + m bits each way),
/// of A_i − a (m bits each way) and the index carry's millionaires' on s bits; a fraction of the
/// online protocol's bytes.
#[test]
fn prepared_online_cost() {
    let bits = 38;
    let t = tables(15, 2, 7, GeluForm::Tanh);
    let p = gelu::params(Ring::new(bits).unwrap(), &t).unwrap();
    let x = inputs(&mut Prg::from_entropy(), &t, bits, 2000);
    let (y, bytes, rounds) = run_prepared(bits, &t, &x, true);
    check(bits, &t, &x, &y);
    let (s, m) = (p.pieces_log2, p.spline_bits);
    let n = x.len() as u64;
    let half = n / 2;
    let luts = luts_of(&p, n);
    let per_call = |n: u64| {
        let open = 2 * (n * (s + m) as u64).div_ceil(8) + 2 * (n * m as u64).div_ceil(8);
        let index_carry = millionaire_bytes(n, s, cmp::cheapest_digit_bits(s));
        gelu_bytes(&p, n) - luts_of(&p, n) + open + index_carry
    };
    assert_eq!(bytes, per_call(half) + per_call(n - half));
    // What replaces the lookups is under a fifth of their bytes even on IKNP, whose
    // comparisons dominate the rest.
    let online = gelu_bytes(&p, half) + gelu_bytes(&p, n - half);
    let replaced = bytes - (online - luts_of(&p, half) - luts_of(&p, n - half));
    assert!(replaced * 5 < luts, "{replaced} against {luts}");
    // On silent OT, where the lookups are most of the online protocol, the whole falls 5×.
    let ring = Ring::new(bits).unwrap();
    let (xs, xc) = split(ring, &mut Prg::from_entropy(), &x);
    let (ts, tc) = (t.clone(), t.clone());
    let f = move |p: &mut Peer, t: GeluTables, x: Vec<u64>| {
        let before = own_bytes(&*p.ch);
        let y = gelu::gelu(&mut p.party(), ring, &t, &x).unwrap();
        (y, own_bytes(&*p.ch) - before)
    };
    let ((ys, silent_online), (yc, _)) = two_party(move |p| f(p, ts, xs), move |p| f(p, tc, xc));
    check(bits, &t, &x, &ring.add_vec(&ys, &yc));
    let (y, silent_prepared, _) = run_prepared(bits, &t, &x, false);
    check(bits, &t, &x, &y);
    let per = |b: u64| b as f64 / n as f64;
    eprintln!(
        "gelu ℓ = {bits}, n = {n}, bytes/element: IKNP {:.2} prepared against {:.2} online \
         ({rounds} flights); silent OT {:.2} prepared against {:.2} online",
        per(bytes),
        per(online),
        per(silent_prepared),
        per(silent_online)
    );
    assert!(
        silent_prepared * 5 < silent_online,
        "{silent_prepared} against {silent_online}"
    );
}

/// Refusals before any communication: a correlation made for other tables, or too short from
/// the offset given.
#[test]
fn prepared_correlation_misuse_is_refused() {
    let ring = Ring::new(38).unwrap();
    let t = tables(15, 2, 7, GeluForm::Tanh);
    let other = tables(12, 2, 6, GeluForm::Tanh);
    let f = move |p: &mut Peer| {
        let prep = gelu::prepare(&mut p.party(), ring, &t, 4).unwrap();
        let bad = |r: Result<Vec<u64>, ProtocolError>| matches!(r, Err(ProtocolError::Invalid(_)));
        let x = vec![0u64; 3];
        [
            bad(gelu::gelu_prepared(
                &mut p.party(),
                ring,
                &other,
                &x,
                &prep,
                0,
            )),
            bad(gelu::gelu_prepared(&mut p.party(), ring, &t, &x, &prep, 2)),
            bad(gelu::gelu_prepared(
                &mut p.party(),
                Ring::new(40).unwrap(),
                &t,
                &x,
                &prep,
                0,
            )),
        ]
    };
    let g = f.clone();
    let (a, b) = two_party(f, g);
    assert_eq!(a, [true; 3]);
    assert_eq!(b, [true; 3]);
}

/// The client's online view of the prepared protocol — every byte it receives after the
/// preparation — and its output share do not depend on the input, as for the online protocol.
#[test]
fn prepared_client_view_is_independent_of_the_input() {
    let t = tables(15, 2, 7, GeluForm::Tanh);
    let (xc, cases) = view_cases(&t, 38, 1 << 12);
    client_view_check(&t, 38, &xc, cases, true);
}

/// For each case (a name and the inputs x), with the client's shares `xc` fixed: runs the GELU
/// (on a correlation prepared first when `prepared`) with a tapped client channel; checks the
/// output against `semantics::gelu`, that the client's view after the base OTs (after the
/// preparation, when prepared) has the same length in every case and fair-coin bits overall and
/// in each of 32 slices (|z| < 6), and that the client's output share is uniform and
/// independent of y.
fn client_view_check(
    t: &GeluTables,
    bits: u32,
    xc: &[u64],
    cases: Vec<(&str, Vec<i64>)>,
    prepared: bool,
) {
    let ring = Ring::new(bits).unwrap();
    let n = xc.len();
    let mut lens = Vec::new();
    for (what, x) in cases {
        let xr: Vec<u64> = x.iter().map(|&v| ring.from_signed(v)).collect();
        let xs = ring.sub_vec(&xr, xc);
        let ts = t.clone();
        let ((c, view), s) = tapped_two_party(
            Role::Client,
            CotBackend::Silent,
            |ot, tap| {
                let role = Role::Client;
                let prep = prepared
                    .then(|| gelu::prepare(&mut Party::new(ot, tap, role), ring, t, n).unwrap());
                let start = tap.received.len();
                let c = match &prep {
                    Some(p) => {
                        gelu::gelu_prepared(&mut Party::new(ot, tap, role), ring, t, xc, p, 0)
                            .unwrap()
                    }
                    None => gelu::gelu(&mut Party::new(ot, tap, role), ring, t, xc).unwrap(),
                };
                (c, tap.received[start..].to_vec())
            },
            move |ot, ch| {
                let role = Role::Server;
                if prepared {
                    let prep = gelu::prepare(&mut Party::new(ot, ch, role), ring, &ts, n).unwrap();
                    gelu::gelu_prepared(&mut Party::new(ot, ch, role), ring, &ts, &xs, &prep, 0)
                        .unwrap()
                } else {
                    gelu::gelu(&mut Party::new(ot, ch, role), ring, &ts, &xs).unwrap()
                }
            },
        );
        let y: Vec<u64> = x
            .iter()
            .map(|&v| ring.from_signed(semantics::gelu(v, t).unwrap()))
            .collect();
        assert_eq!(ring.add_vec(&s, &c), y, "{what}");
        let view = &view[..];
        lens.push(view.len());
        let slice = view.len().div_ceil(32);
        for part in std::iter::once(view).chain(view.chunks(slice)) {
            let ones: u32 = part.iter().map(|v| v.count_ones()).sum();
            let z = z_fair(ones as usize, 8 * part.len());
            assert!(z.abs() < 6.0, "{what}: view bits z = {z:.2}");
        }
        assert_uniform_and_independent(&c, &y, bits, what);
    }
    assert!(
        lens.windows(2).all(|w| w[0] == w[1]),
        "view lengths {lens:?}"
    );
}
