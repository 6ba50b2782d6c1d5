//! Two-party softmax: the reconstructed outputs equal the compiler's `semantics::softmax_row`
//! exactly, row by row, for the plan's default tables (12/17/15 at ℓ = 38) and CipherGPT's
//! (12/14/12 at ℓ = 37), on causal ragged rows, long rows (256, 1,024), random scores over the
//! whole precondition range and realistic ones, and the edges (all-equal rows, one-entry rows,
//! distances at the clip ± 1, the extreme ±(2^(ℓ−2) − 1), digit boundaries); over mem and TCP;
//! invalid inputs; the client's view independent of the server's scores.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{
    fit_exp_tables, fit_exp_tables_with, softmax_row, ExpTables,
};
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::Role;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::softmax;
use ciphergpt_runtime::protocols::ProtocolError;
use ciphergpt_runtime::protocols::{Party, PreparedCorrelation};
use common::*;
use rand::Rng;

fn split(ring: Ring, p: &mut Prg, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let r = p.values(x.len(), ring.bits);
    (ring.sub_vec(x, &r), r)
}

/// One party's call: scores (and maxima, if given) are this party's shares.
fn call(
    p: &mut Peer,
    ring: Ring,
    t: &ExpTables,
    s: &[u64],
    lens: &[usize],
    m: Option<&[u64]>,
) -> Result<Vec<u64>, ProtocolError> {
    match m {
        Some(m) => softmax::softmax_with_max(&mut p.party(), ring, t, s, lens, m),
        None => softmax::softmax(&mut p.party(), ring, t, s, lens),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// softmax over the in-memory channel (row maximum included).
    Mem,
    /// The same over TCP loopback.
    Tcp,
    /// softmax_with_max, the maxima shared by the test.
    GivenMax,
    /// softmax_prepared on a correlation made first (7 more entries than needed, consumed
    /// from entry 7).
    Prepared,
}

/// Shares the rows (and their maxima), runs both parties, checks every row against softmax_row.
fn check(bits: u32, t: &ExpTables, rows: &[Vec<i64>], mode: Mode) {
    let ring = Ring::new(bits).unwrap();
    let lens: Vec<usize> = rows.iter().map(|r| r.len()).collect();
    let flat: Vec<u64> = rows
        .iter()
        .flatten()
        .map(|&v| ring.from_signed(v))
        .collect();
    let maxima: Vec<u64> = rows
        .iter()
        .map(|r| ring.from_signed(*r.iter().max().unwrap()))
        .collect();
    let mut p = Prg::from_entropy();
    let (ss, sc) = split(ring, &mut p, &flat);
    let (ms, mc) = split(ring, &mut p, &maxima);
    let (ts, tc) = (t.clone(), t.clone());
    let (ls, lc) = (lens.clone(), lens.clone());
    let given = mode == Mode::GivenMax;
    let prepared = mode == Mode::Prepared;
    let run = move |p: &mut Peer, t: &ExpTables, s: &[u64], l: &[usize], m: Option<&[u64]>| {
        if prepared {
            let prep = softmax::prepare(&mut p.party(), t, s.len() + 7).unwrap();
            assert_eq!(
                prep.footprint(),
                (s.len() + 7) * softmax::Correlation::footprint_per_score(t)
            );
            softmax::softmax_prepared(&mut p.party(), ring, t, s, l, &prep, 7).unwrap()
        } else {
            call(p, ring, t, s, l, m).unwrap()
        }
    };
    let fs = move |p: &mut Peer| run(p, &ts, &ss, &ls, given.then_some(&ms[..]));
    let fc = move |p: &mut Peer| run(p, &tc, &sc, &lc, given.then_some(&mc[..]));
    let (a, b) = if mode == Mode::Tcp {
        two_party_tcp(fs, fc)
    } else {
        two_party(fs, fc)
    };
    let got = ring.add_vec(&a, &b);
    let mut start = 0;
    for row in rows {
        let want = softmax_row(row, t).unwrap();
        let have: Vec<i64> = got[start..start + row.len()]
            .iter()
            .map(|&v| ring.to_signed(v))
            .collect();
        assert_eq!(have, want, "row {row:?} (l = {bits})");
        start += row.len();
    }
}

fn defaults() -> (u32, ExpTables) {
    (38, fit_exp_tables(12, 17, 15).unwrap())
}

fn ciphergpt() -> (u32, ExpTables) {
    (37, fit_exp_tables(12, 14, 12).unwrap())
}

/// Scores uniform in ±`spread` real units at scale 2^frac_in, shifted by `base`.
fn realistic(p: &mut Prg, len: usize, t: &ExpTables, spread: f64, base: i64) -> Vec<i64> {
    let a = (spread * (1u64 << t.frac_in) as f64) as i64;
    (0..len).map(|_| base + p.gen_range(-a..=a)).collect()
}

/// Scores uniform over the whole precondition range [−2^(ℓ−2), 2^(ℓ−2)).
fn full_range(p: &mut Prg, len: usize, bits: u32) -> Vec<i64> {
    let h = 1i64 << (bits - 2);
    (0..len).map(|_| p.gen_range(-h..h)).collect()
}

/// Rows at the edges: all equal, one entry, distances at clip − 1, clip, clip + 1, the extremes
/// ±(2^(ℓ−2) − 1) and −2^(ℓ−2), and distances at the digit boundaries k·2^lo − 1, k·2^lo,
/// k·2^lo + 1 (and at the high digit's boundaries), each around a few bases.
fn edge_rows(bits: u32, t: &ExpTables) -> Vec<Vec<i64>> {
    let top = (1i64 << (bits - 2)) - 1;
    let bottom = -(1i64 << (bits - 2));
    let clip = t.clip;
    let step = 1i64 << t.lo_bits;
    let mut rows = vec![
        vec![0; 7],
        vec![top; 5],
        vec![bottom; 3],
        vec![123_456],
        vec![top],
        vec![bottom],
        vec![top, bottom],
        vec![bottom, top, top],
        vec![
            top,
            top - 1,
            top - clip + 1,
            top - clip,
            top - clip - 1,
            bottom,
        ],
        vec![
            bottom + clip + 1,
            bottom + clip,
            bottom + clip - 1,
            bottom,
            bottom + 1,
        ],
    ];
    for base in [0i64, top, bottom + clip + 5, -777_777] {
        let base = base.min(top).max(bottom + clip + 1);
        rows.push(vec![
            base,
            base - (clip - 1),
            base - clip,
            base - (clip + 1),
        ]);
        let mut r = vec![base];
        for k in [1i64, 2, 3, 7, 100, (clip - 1) / step] {
            for d in [-1i64, 0, 1] {
                let dist = (k * step + d).clamp(0, clip + 1);
                r.push(base - dist);
            }
        }
        for d in [1i64, step - 1, clip - step, clip - step - 1, clip - 2] {
            r.push(base - d);
        }
        rows.push(r);
    }
    rows
}

/// Causal rows of lengths 1..=t_max with realistic scores around a random base (clamped into
/// the precondition range of ℓ = `bits`).
fn causal(p: &mut Prg, bits: u32, t_max: usize, t: &ExpTables, spread: f64) -> Vec<Vec<i64>> {
    let h = 1i64 << (bits - 2);
    (1..=t_max)
        .map(|len| {
            let base = p.gen_range(-5i64..=5) << t.frac_in;
            let r = realistic(p, len, t, spread, base);
            r.into_iter().map(|v| v.clamp(-h, h - 1)).collect()
        })
        .collect()
}

#[test]
fn default_tables_causal_rows_and_edges() {
    let (bits, t) = defaults();
    let mut p = Prg::from_entropy();
    let mut rows = causal(&mut p, bits, 40, &t, 20.0);
    rows.extend(causal(&mut p, bits, 12, &t, 4.0));
    rows.extend(edge_rows(bits, &t));
    for len in [1usize, 2, 5, 33] {
        rows.push(full_range(&mut p, len, bits));
    }
    check(bits, &t, &rows, Mode::Mem);
}

#[test]
fn ciphergpt_tables_causal_rows_and_edges() {
    let (bits, t) = ciphergpt();
    let mut p = Prg::from_entropy();
    let mut rows = causal(&mut p, bits, 40, &t, 20.0);
    rows.extend(causal(&mut p, bits, 12, &t, 2.0));
    rows.extend(edge_rows(bits, &t));
    for len in [1usize, 3, 17] {
        rows.push(full_range(&mut p, len, bits));
    }
    check(bits, &t, &rows, Mode::Mem);
}

/// Rows of 256 (realistic, narrow, full range, all distances inside the clip) and one of 1,024
/// (GPT-2's context), at the plan's defaults.
#[test]
fn long_rows_of_256_and_1024() {
    let (bits, t) = defaults();
    let mut p = Prg::from_entropy();
    let mut rows = vec![
        realistic(&mut p, 256, &t, 20.0, 0),
        realistic(&mut p, 256, &t, 1.0, -(9 << 12)),
        realistic(&mut p, 256, &t, 7.9, 1 << 30),
        full_range(&mut p, 256, bits),
        vec![42; 256],
        realistic(&mut p, 1024, &t, 20.0, 3 << 12),
    ];
    // One row with every distance from the maximum 0, 1, …, 255 digits apart (every hi entry).
    rows.push((0..256).map(|k| -(k << t.lo_bits) - (k % 7)).collect());
    check(bits, &t, &rows, Mode::Mem);
}

/// Other digit splits (7+8, 8+6, 4+6, 0+8, 8+0), clips that are not a multiple of 2^lo (the
/// comparison on u itself) or smaller than 2^(hi+lo), a ring at the limit ℓ = hi + lo + 2 and
/// the widest ring ℓ = 64; the maxima given (softmax_with_max).
#[test]
fn other_splits_and_clips() {
    let mut p = Prg::from_entropy();
    let mut cases: Vec<(u32, ExpTables)> = vec![
        (64, fit_exp_tables(12, 17, 15).unwrap()),
        (37, fit_exp_tables_with(12, 14, 12, 7, 8, 8).unwrap()),
        (37, fit_exp_tables_with(12, 14, 12, 8, 6, 4).unwrap()),
        (12, fit_exp_tables_with(6, 9, 8, 4, 6, 6).unwrap()),
        (20, fit_exp_tables_with(8, 10, 8, 0, 8, 6).unwrap()),
        (20, fit_exp_tables_with(8, 10, 8, 8, 0, 6).unwrap()),
    ];
    // clip − 1 = 2^lo and clip differ in the low digit: E(256) = T1[1] ≠ E(257), and at
    // f_out = 15 the probabilities show it.
    for clip in [12_345i64, 257] {
        let mut odd = fit_exp_tables(12, 17, 15).unwrap();
        odd.clip = clip;
        cases.push((38, odd));
    }
    let mut small = fit_exp_tables_with(12, 14, 12, 8, 8, 8).unwrap();
    small.clip = 5 << 8;
    cases.push((38, small));
    for (bits, t) in cases {
        let mut rows = edge_rows(bits, &t);
        let spread = (t.clip as f64 * 1.5) / (1u64 << t.frac_in) as f64;
        rows.extend(causal(&mut p, bits, 10, &t, spread));
        rows.push(full_range(&mut p, 9, bits));
        check(bits, &t, &rows, Mode::GivenMax);
    }
}

#[test]
fn over_tcp() {
    let (bits, t) = defaults();
    let mut p = Prg::from_entropy();
    let mut rows = causal(&mut p, bits, 24, &t, 20.0);
    rows.extend(edge_rows(bits, &t));
    rows.push(realistic(&mut p, 256, &t, 20.0, 0));
    check(bits, &t, &rows, Mode::Tcp);
}

#[test]
fn empty_and_invalid_inputs() {
    let (bits, t) = defaults();
    let ring = Ring::new(bits).unwrap();
    let (a, b) = two_party(
        move |p| {
            let none = call(p, ring, &t, &[], &[], None).unwrap().is_empty();
            let mut errs = Vec::new();
            // Lengths not matching the scores, an empty row, a maximum count that is off.
            errs.push(call(p, ring, &t, &[1, 2, 3], &[2], None).unwrap_err());
            errs.push(call(p, ring, &t, &[1, 2], &[2, 0], None).unwrap_err());
            errs.push(call(p, ring, &t, &[1, 2], &[2], Some(&[0, 0])).unwrap_err());
            // A digit over 8 bits (the 9+10 split of 15 fractional bits).
            let wide = fit_exp_tables(15, 17, 15).unwrap();
            errs.push(call(p, ring, &wide, &[1], &[1], None).unwrap_err());
            // A row longer than the tables allow (2^(4+0) = 16 entries).
            let short = fit_exp_tables_with(12, 14, 4, 8, 8, 0).unwrap();
            errs.push(call(p, ring, &short, &[0; 17], &[17], None).unwrap_err());
            // Malformed tables, a ring too narrow for the digits.
            let mut broken = t.clone();
            broken.hi.pop();
            errs.push(call(p, ring, &broken, &[1], &[1], Some(&[0])).unwrap_err());
            let tiny = Ring::new(17).unwrap();
            errs.push(call(p, tiny, &t, &[1], &[1], None).unwrap_err());
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| match e {
                    ProtocolError::Invalid(m) => m.clone(),
                    other => panic!("not ProtocolError::Invalid: {other}"),
                })
                .collect();
            assert!(msgs[3].contains("9+10"), "{}", msgs[3]);
            assert!(msgs.iter().all(|m| !m.contains('\n')));
            none && msgs.len() == 7
        },
        |_| true,
    );
    assert!(a && b);
}

/// The client's view of the whole protocol (row maximum included) does not depend on the
/// server's scores: for server shares making the
/// scores all zero, all at the top of the range, random over the range, and realistic, against
/// one fixed client share, the view (after the base OTs) has the same length and its bits are
/// fair coins in aggregate, and the client's output share is bit-wise a fair coin and agrees
/// with the output's bit half the time (|z| < 6).
#[test]
fn client_view_is_independent_of_server_scores() {
    let (bits, t) = ciphergpt();
    let ring = Ring::new(bits).unwrap();
    let lens = vec![64usize; 32];
    let n: usize = lens.iter().sum();
    let mut p = Prg::from_entropy();
    let sc = p.values(n, bits);
    let top = (1i64 << (bits - 2)) - 1;
    let mut views = Vec::new();
    for scores in [
        vec![0i64; n],
        vec![top; n],
        full_range(&mut p, n, bits),
        realistic(&mut p, n, &t, 20.0, 0),
    ] {
        let flat: Vec<u64> = scores.iter().map(|&v| ring.from_signed(v)).collect();
        let ss = ring.sub_vec(&flat, &sc);
        let (ts, ls) = (t.clone(), lens.clone());
        let ((c, view), s) = tapped_two_party(
            Role::Client,
            CotBackend::Silent,
            |ot, tap| {
                let start = tap.received.len();
                let c =
                    softmax::softmax(&mut Party::new(ot, tap, Role::Client), ring, &t, &sc, &lens)
                        .unwrap();
                (c, tap.received[start..].to_vec())
            },
            move |ot, ch| {
                softmax::softmax(&mut Party::new(ot, ch, Role::Server), ring, &ts, &ss, &ls)
                    .unwrap()
            },
        );
        let out = ring.add_vec(&s, &c);
        let want: Vec<u64> = scores
            .chunks(64)
            .flat_map(|r| softmax_row(r, &t).unwrap())
            .map(|v| ring.from_signed(v))
            .collect();
        assert_eq!(out, want);
        let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
        let z = z_fair(ones as usize, 8 * view.len());
        assert!(z.abs() < 6.0, "view bits: z = {z:.2}");
        assert_uniform_and_independent(&c, &out, bits, "client output share");
        views.push(view.len());
    }
    assert!(
        views.windows(2).all(|w| w[0] == w[1]),
        "view lengths {views:?}"
    );
}

/// Bits of a table's offsets (span + 1 bit).
fn table_width(t: &[i64]) -> u32 {
    let span = t.iter().max().unwrap() - t.iter().min().unwrap();
    64 - (span as u64).leading_zeros() + 1
}

/// The module doc's cost formula, in bits, for `rows` rows of `len` entries (maximum and
/// division included, fast clip path).
/// The widths the protocol derives from the tables and a row length (the module doc's names).
struct Widths {
    hi: u64,
    lo: u64,
    fe: u64,
    w1: u64,
    w2: u64,
    wh: u64,
    wl: u64,
    wx: u64,
    wy: u64,
    m_r: u64,
}

impl Widths {
    fn of(t: &ExpTables, len: u64) -> Widths {
        let (hi, lo, fe) = (t.hi_bits as u64, t.lo_bits as u64, t.frac_e as u64);
        let k = t.recip_num_log2() as u64;
        let den_bits = 64 - (len << fe).leading_zeros() as u64;
        let (wh, wl) = (table_width(&t.hi) as u64, table_width(&t.lo) as u64);
        Widths {
            hi,
            lo,
            fe,
            w1: 2 * fe + 2,
            w2: (k + 2).max(den_bits + 2),
            wh,
            wl,
            wx: wh.min(wl),
            wy: wh.max(wl),
            m_r: k - fe + 2,
        }
    }
}

fn formula_bits(bits: u32, t: &ExpTables, rows: u64, len: u64) -> u64 {
    let l = bits as u64;
    let Widths {
        hi,
        lo,
        fe,
        w1,
        w2,
        wh,
        wl,
        wx,
        wy,
        m_r,
    } = Widths::of(t, len);
    let s = t.recip_shift() as u64;
    // The clip comparison (ℓ − lo − 1 bits) and E's carry (f_e bits) in one batch on the wider.
    let per_element = carry_arith_bits(lo as u32, l - lo)
        + 2 * mill_best((l - lo - 1).max(fe) as u32)
        + hi * 128
        + (wh << hi)
        + lo * 128
        + (wl << lo)
        + (128 + w1 - wy)
        + 2 * (wx * 128 + (0..wx).map(|j| w1 - j).sum::<u64>())
        + (128 + fe + 2)
        + 2 * (128 + fe + 2)
        + (128 + w2 - fe - 2)
        + 2 * (0..m_r).map(|j| w2 - j).sum::<u64>()
        + carry_arith_bits(s as u32, w2 - s)
        + (128 + l - (w2 - s));
    let per_row = row_max_bits(bits, len)
        + (128 + 64 - w2)
        + inv_pow_bits(&t.recip_tables().unwrap(), rows)
        + 2 * m_r * 128;
    rows * (len * per_element + per_row)
}

/// The bytes on the wire equal the cost formula exactly, for 128 rows of 256 (every OT batch a
/// multiple of 128, so no IKNP padding), at the plan's defaults (ℓ = 38) and CipherGPT's
/// (ℓ = 37). Prints bytes per element and per row and the flights.
#[test]
fn bytes_match_the_cost_formula() {
    for (bits, t) in [defaults(), ciphergpt()] {
        let ring = Ring::new(bits).unwrap();
        let (rows, len) = (128usize, 256usize);
        let lens = vec![len; rows];
        let mut p = Prg::from_entropy();
        let scores = realistic(&mut p, rows * len, &t, 20.0, 0);
        let flat: Vec<u64> = scores.iter().map(|&v| ring.from_signed(v)).collect();
        let (ss, sc) = split(ring, &mut p, &flat);
        let (ts, ls) = (t.clone(), lens.clone());
        let (tc, lc) = (t.clone(), lens.clone());
        let run = move |p: &mut Peer, t: &ExpTables, s: &[u64], lens: &[usize]| {
            let before = p.ch.stats().total;
            softmax::softmax(&mut p.party(), ring, t, s, lens).unwrap();
            let after = p.ch.stats().total;
            (after.bytes() - before.bytes(), after.rounds - before.rounds)
        };
        let ((bytes, fs), (_, fc)) = two_party_iknp(
            move |p| run(p, &ts, &ss, &ls),
            move |p| run(p, &tc, &sc, &lc),
        );
        let want = formula_bits(bits, &t, rows as u64, len as u64);
        assert_eq!(8 * bytes, want, "l = {bits}");
        eprintln!(
            "softmax l = {bits}, f_e = {}: {:.2} B/element, {:.1} B/row of {len}, flights {fs} / {fc}",
            t.frac_e,
            bytes as f64 / (rows * len) as f64,
            bytes as f64 / rows as f64
        );
    }
}

/// The prepared lookups give `softmax_row` exactly: the default and CipherGPT's tables on causal
/// rows and the edges, and splits with an empty digit (hi = 0, lo = 0: one-entry tables).
#[test]
fn prepared_lookups_are_exact() {
    let mut p = Prg::from_entropy();
    for (bits, t) in [
        defaults(),
        ciphergpt(),
        (20, fit_exp_tables_with(8, 10, 8, 0, 8, 6).unwrap()),
        (20, fit_exp_tables_with(8, 10, 8, 8, 0, 6).unwrap()),
    ] {
        let mut rows = edge_rows(bits, &t);
        let spread = (t.clip as f64 * 1.5) / (1u64 << t.frac_in) as f64;
        rows.extend(causal(&mut p, bits, 12, &t, spread));
        check(bits, &t, &rows, Mode::Prepared);
    }
}

/// What the prepared protocol sends in place of steps 4, 5 and 8's product, in bits, for `rows`
/// rows of `len`: (bits of the online protocol's lookups, extension and two products; bits of
/// the offsets and the two triples' openings), both directions.
fn prepared_delta_bits(t: &ExpTables, rows: u64, len: u64) -> (u64, u64) {
    let Widths {
        hi,
        lo,
        w1,
        w2,
        wh,
        wl,
        wx,
        wy,
        m_r,
        ..
    } = Widths::of(t, len);
    let n = rows * len;
    let online = n
        * (hi * 128
            + (wh << hi)
            + lo * 128
            + (wl << lo)
            + (128 + w1 - wy)
            + 2 * (wx * 128 + (0..wx).map(|j| w1 - j).sum::<u64>())
            + 2 * (0..m_r).map(|j| w2 - j).sum::<u64>())
        + rows * 2 * m_r * 128;
    let prepared = n * (2 * (hi + lo) + 2 * 2 * w1 + 2 * 2 * w2);
    (online, prepared)
}

/// Online bytes on IKNP (exact counts, 128 rows of 32: no OT batch padding): the online
/// protocol's equal the cost formula, and the prepared protocol's equal them less the lookups,
/// the extension and the two products, plus the digits' offsets and the triples' openings.
/// Refusals: a correlation for other tables, or too short.
#[test]
fn prepared_online_bytes_and_refusals() {
    let (bits, t) = defaults();
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let (rows, len) = (128usize, 32usize);
    let lens = vec![len; rows];
    let scores = realistic(&mut p, rows * len, &t, 20.0, 0);
    let flat: Vec<u64> = scores.iter().map(|&v| ring.from_signed(v)).collect();
    let (ss, sc) = split(ring, &mut p, &flat);
    let other = ciphergpt().1;
    let f = move |p: &mut Peer, s: Vec<u64>, t: ExpTables, lens: Vec<usize>| {
        let prep = softmax::prepare(&mut p.party(), &t, s.len()).unwrap();
        let b0 = p.ch.stats().total.bytes();
        let y = softmax::softmax_prepared(&mut p.party(), ring, &t, &s, &lens, &prep, 0).unwrap();
        let b1 = p.ch.stats().total.bytes();
        let z = softmax::softmax(&mut p.party(), ring, &t, &s, &lens).unwrap();
        let b2 = p.ch.stats().total.bytes();
        let refused = [
            softmax::softmax_prepared(&mut p.party(), ring, &other, &s, &lens, &prep, 0).is_err(),
            softmax::softmax_prepared(&mut p.party(), ring, &t, &s, &lens, &prep, 1).is_err(),
        ];
        (y, z, b1 - b0, b2 - b1, refused)
    };
    let (ts, tc) = (t.clone(), t.clone());
    let (ls, lc) = (lens.clone(), lens.clone());
    let g = f.clone();
    let ((ys, zs, prepared, online, rs), (yc, zc, _, _, rc)) =
        two_party_iknp(move |p| f(p, ss, ts, ls), move |p| g(p, sc, tc, lc));
    let y = ring.add_vec(&ys, &yc);
    assert_eq!(y, ring.add_vec(&zs, &zc));
    for (r, row) in scores.chunks(len).enumerate() {
        let want = softmax_row(row, &t).unwrap();
        let have: Vec<i64> = y[r * len..(r + 1) * len]
            .iter()
            .map(|&v| ring.to_signed(v))
            .collect();
        assert_eq!(have, want, "row {r}");
    }
    assert_eq!((rs, rc), ([true; 2], [true; 2]));
    let full = formula_bits(bits, &t, rows as u64, len as u64);
    assert_eq!(8 * online, full);
    let (replaced, added) = prepared_delta_bits(&t, rows as u64, len as u64);
    assert_eq!(8 * prepared, full - replaced + added);
    eprintln!(
        "softmax prepared, 128 rows of 32, IKNP: {:.1} B per score against {:.1} online",
        prepared as f64 / (rows * len) as f64,
        online as f64 / (rows * len) as f64
    );
}
