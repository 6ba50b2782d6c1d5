//! Activation × activation under RLWE: q·Kᵀ and P·V of all heads against a growing shared cache,
//! bit-exact against the plan's integer products (the simulator's i128 sums of `QkT` and `Pv`
//! before the shift, mod 2^ℓ) in decode steps (cache of 1, 7 and 256 rows; GPT-2's 12 heads of
//! 64 and the trained model's 4 of 32) and in prefill (causal); several rings, values over the
//! executor's whole range and over the whole ring; over memory and TCP; bytes and flights
//! against the cost formula; invalid arguments; what the client receives.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{from_ring_u64, to_ring_u64};
use ciphergpt_runtime::crypto::pack::unpack;
use ciphergpt_runtime::crypto::rlwe::N as DEG;
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::attention_he::{
    pv, qk_t, AttnLayout, DuplexHe, Operand, SharedCache,
};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::ProtocolError;
use common::*;
use rand::Rng;

/// One program of the executor: t fresh rows against npos cache rows.
#[derive(Clone, Copy, Debug)]
struct Program {
    t: usize,
    npos: usize,
    causal: bool,
}

#[derive(Clone, Debug)]
struct Case {
    bits: u32,
    heads: usize,
    d: usize,
    max_positions: usize,
    programs: Vec<Program>,
    /// Values over the whole ring instead of |x| < 2^(ℓ−2).
    full_ring: bool,
}

/// Cleartext values: uniform in (−2^(ℓ−2), 2^(ℓ−2)) with the ends ±(2^(ℓ−2) − 1), 0, ±1 first
/// (the executor's range), or over the whole ring with its edge values.
fn values(rng: &mut Prg, n: usize, bits: u32, full_ring: bool) -> Vec<u64> {
    if full_ring {
        return values_with_edges(rng, n, bits);
    }
    let m = (1i64 << (bits - 2)) - 1;
    let mut v: Vec<i64> = (0..n).map(|_| rng.gen_range(-m..=m)).collect();
    for (x, e) in v.iter_mut().zip([m, -m, 0, 1, -1, m - 1]) {
        *x = e;
    }
    v.into_iter()
        .map(|x| to_ring_u64(x, bits).unwrap())
        .collect()
}

/// The plan's QkT before its shift: s[h][r][j] = Σ_e q[r][h·d+e]·K[j][h·d+e] for the positions
/// row r uses (0 elsewhere), the sum in i128 of the signed values, mod 2^ℓ.
fn cleartext_qk(ring: Ring, q: &[u64], k: &[u64], heads: usize, d: usize, p: Program) -> Vec<u64> {
    let (t, npos, c) = (p.t, p.npos, heads * d);
    let lift = |v: u64| from_ring_u64(v, ring.bits).unwrap() as i128;
    let mut out = vec![0u64; heads * t * npos];
    for h in 0..heads {
        for r in 0..t {
            let used = if p.causal { npos - t + r + 1 } else { npos };
            for j in 0..used {
                let acc: i128 = (0..d)
                    .map(|e| lift(q[r * c + h * d + e]) * lift(k[j * c + h * d + e]))
                    .sum();
                out[(h * t + r) * npos + j] = (acc as u64) & ring.mask();
            }
        }
    }
    out
}

/// The plan's Pv before its shift: o[r][h·d+e] = Σ_j P[h][r][j]·V[j][h·d+e] over the positions
/// row r uses.
fn cleartext_pv(ring: Ring, pm: &[u64], v: &[u64], heads: usize, d: usize, p: Program) -> Vec<u64> {
    let (t, npos, c) = (p.t, p.npos, heads * d);
    let lift = |x: u64| from_ring_u64(x, ring.bits).unwrap() as i128;
    let mut out = vec![0u64; t * c];
    for h in 0..heads {
        for r in 0..t {
            let used = if p.causal { npos - t + r + 1 } else { npos };
            for e in 0..d {
                let acc: i128 = (0..used)
                    .map(|j| lift(pm[(h * t + r) * npos + j]) * lift(v[j * c + h * d + e]))
                    .sum();
                out[r * c + h * d + e] = (acc as u64) & ring.mask();
            }
        }
    }
    out
}

/// One party's inputs: its shares of the whole caches and of every program's q and P.
#[derive(Clone)]
struct Inputs {
    k: Vec<u64>,
    v: Vec<u64>,
    q: Vec<Vec<u64>>,
    p: Vec<Vec<u64>>,
}

/// Run the programs in order, each q·Kᵀ then P·V, with one cache state per operand.
fn run_party(
    p: &mut Peer,
    ring: Ring,
    layouts: (AttnLayout, AttnLayout),
    programs: &[Program],
    x: &Inputs,
) -> Vec<(Vec<u64>, Vec<u64>)> {
    let he = DuplexHe::setup(&mut p.ch, p.role).unwrap();
    let c = layouts.0.width();
    let mut kc = SharedCache::new(layouts.0);
    let mut vc = SharedCache::new(layouts.1);
    let mut out = Vec::new();
    for (i, pr) in programs.iter().enumerate() {
        let cache = ..pr.npos * c;
        let s = qk_t(
            &he,
            &mut p.ch,
            p.role,
            ring,
            &mut kc,
            &x.q[i],
            &x.k[cache],
            pr.t,
            pr.causal,
        )
        .unwrap();
        let o = pv(
            &he,
            &mut p.ch,
            p.role,
            ring,
            &mut vc,
            &x.p[i],
            &x.v[cache],
            pr.t,
            pr.causal,
        )
        .unwrap();
        out.push((s, o));
    }
    out
}

/// Split into uniform shares.
fn split(ring: Ring, rng: &mut Prg, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let s = ring.random(rng, x.len());
    let c = ring.sub_vec(x, &s);
    (s, c)
}

/// Run a case between two parties; assert every reconstructed output equals the cleartext.
fn check(case: &Case, tcp: bool) -> (AttnLayout, AttnLayout) {
    let ring = Ring::new(case.bits).unwrap();
    let (heads, d) = (case.heads, case.d);
    let c = heads * d;
    let lk = AttnLayout::new(ring, Operand::Keys, heads, d, case.max_positions).unwrap();
    let lv = AttnLayout::new(ring, Operand::Values, heads, d, case.max_positions).unwrap();
    let mut rng = Prg::from_entropy();
    let rows = case.programs.iter().map(|p| p.npos).max().unwrap();
    let k = values(&mut rng, rows * c, case.bits, case.full_ring);
    let v = values(&mut rng, rows * c, case.bits, case.full_ring);
    let (ks, kcl) = split(ring, &mut rng, &k);
    let (vs, vcl) = split(ring, &mut rng, &v);
    let mut server = Inputs {
        k: ks,
        v: vs,
        q: vec![],
        p: vec![],
    };
    let mut client = Inputs {
        k: kcl,
        v: vcl,
        q: vec![],
        p: vec![],
    };
    let mut want = Vec::new();
    for pr in &case.programs {
        let q = values(&mut rng, pr.t * c, case.bits, case.full_ring);
        // P beyond the causal positions holds garbage, which must be ignored.
        let pm = values(&mut rng, heads * pr.t * pr.npos, case.bits, case.full_ring);
        want.push((
            cleartext_qk(ring, &q, &k, heads, d, *pr),
            cleartext_pv(ring, &pm, &v, heads, d, *pr),
        ));
        let (qs, qc) = split(ring, &mut rng, &q);
        let (ps, pc) = split(ring, &mut rng, &pm);
        server.q.push(qs);
        server.p.push(ps);
        client.q.push(qc);
        client.p.push(pc);
    }
    let progs = case.programs.clone();
    let progs_c = progs.clone();
    let s = move |p: &mut Peer| run_party(p, ring, (lk, lv), &progs, &server);
    let cl = move |p: &mut Peer| run_party(p, ring, (lk, lv), &progs_c, &client);
    let (ys, yc) = if tcp {
        two_party_tcp(s, cl)
    } else {
        two_party(s, cl)
    };
    for (i, ((ss, os), (sc, oc))) in ys.iter().zip(&yc).enumerate() {
        let pr = case.programs[i];
        let (ws, wo) = &want[i];
        let got = ring.add_vec(ss, sc);
        for (idx, (g, w)) in got.iter().zip(ws).enumerate() {
            let (h, r, j) = (idx / (pr.t * pr.npos), idx / pr.npos % pr.t, idx % pr.npos);
            assert_eq!(
                g, w,
                "ℓ = {}, {pr:?}: score head {h} row {r} position {j}",
                case.bits
            );
        }
        let got = ring.add_vec(os, oc);
        for (idx, (g, w)) in got.iter().zip(wo).enumerate() {
            let (r, col) = (idx / c, idx % c);
            assert_eq!(g, w, "ℓ = {}, {pr:?}: P·V row {r} column {col}", case.bits);
        }
    }
    (lk, lv)
}

fn decode(npos: &[usize]) -> Vec<Program> {
    npos.iter()
        .map(|&n| Program {
            t: 1,
            npos: n,
            causal: true,
        })
        .collect()
}

/// GPT-2 small's attention in decode steps against caches of 1, 7 and 256 rows (one session, the
/// cache growing by 6 and 249 rows between steps), at ℓ = 37, and the report's windows.
#[test]
fn exact_gpt2_decode_against_1_7_256_rows() {
    let (lk, lv) = check(
        &Case {
            bits: 37,
            heads: 12,
            d: 64,
            max_positions: 256,
            programs: decode(&[1, 7, 256]),
            full_ring: false,
        },
        false,
    );
    assert_eq!((lk.n_i, lk.n_o, lk.limbs), (32, 256, 1));
    assert_eq!((lv.n_i, lv.n_o, lv.limbs), (128, 64, 1));
}

/// The trained model's heads (4 of 32) in decode steps, at ℓ = 35 and 38, and over the whole
/// ring (the protocol is exact mod 2^ℓ whatever the values); one limb in every ring.
#[test]
fn exact_trained_model_decode_in_several_rings() {
    for (bits, full_ring) in [(35u32, false), (38, false), (37, true)] {
        let (lk, lv) = check(
            &Case {
                bits,
                heads: 4,
                d: 32,
                max_positions: 256,
                programs: decode(&[1, 7, 256]),
                full_ring,
            },
            false,
        );
        assert_eq!((lk.n_i, lk.n_o, lk.limbs), (32, 256, 1));
        assert_eq!(
            (lv.n_i, lv.n_o, lv.limbs),
            (256, 32, if bits >= 38 { 2 } else { 1 })
        );
    }
}

/// Prefill (t = 5 rows against their own 5, causal), then decode steps, then a non-causal call,
/// with a ragged head width and a small context so that several blocks are prepared; also in the
/// widest ring, ℓ = 43, where the fresh operand takes 2 limbs.
#[test]
fn exact_prefill_then_decode() {
    for (bits, heads, d, max_positions) in [
        (38u32, 4usize, 32usize, 64usize),
        (35, 3, 20, 300),
        (43, 2, 16, 40),
    ] {
        let (lk, lv) = check(
            &Case {
                bits,
                heads,
                d,
                max_positions,
                programs: vec![
                    Program {
                        t: 5,
                        npos: 5,
                        causal: true,
                    },
                    Program {
                        t: 1,
                        npos: 6,
                        causal: true,
                    },
                    Program {
                        t: 3,
                        npos: max_positions.min(200),
                        causal: true,
                    },
                    Program {
                        t: 2,
                        npos: max_positions.min(200),
                        causal: false,
                    },
                ],
                full_ring: false,
            },
            false,
        );
        if bits == 43 {
            assert_eq!((lk.limbs, lv.limbs), (2, 2), "{lk:?} {lv:?}");
        }
    }
}

/// GPT-2's shape at ℓ = 38 over TCP on loopback: prefill of 5, then a decode step.
#[test]
fn exact_over_tcp() {
    check(
        &Case {
            bits: 38,
            heads: 12,
            d: 64,
            max_positions: 256,
            programs: vec![
                Program {
                    t: 5,
                    npos: 5,
                    causal: true,
                },
                Program {
                    t: 1,
                    npos: 6,
                    causal: true,
                },
            ],
            full_ring: false,
        },
        true,
    );
}

/// Bytes and flights of each call equal the cost formula: the first call prepares the blocks
/// (client → server, then server → client: the peer's ciphertexts of 55,824 bytes each way) and
/// the product (server → client, client → server) — 3 flights; a later call within the blocks is
/// 2 flights and sends only its re-shared rows and results.
#[test]
fn bytes_and_flights_match_the_cost_formula() {
    let ring = Ring::new(37).unwrap();
    let (heads, d, maxp) = (12usize, 64usize, 256usize);
    let c = heads * d;
    let lk = AttnLayout::new(ring, Operand::Keys, heads, d, maxp).unwrap();
    let lv = AttnLayout::new(ring, Operand::Values, heads, d, maxp).unwrap();
    let mut rng = Prg::from_entropy();
    let mk = |rng: &mut Prg| {
        (
            ring.random(rng, maxp * c),
            ring.random(rng, maxp * c),
            ring.random(rng, c),
            ring.random(rng, heads * maxp),
        )
    };
    let (xs, xc) = (mk(&mut rng), mk(&mut rng));
    let measure = move |p: &mut Peer, (k, v, q, pm): (Vec<u64>, Vec<u64>, Vec<u64>, Vec<u64>)| {
        let he = DuplexHe::setup(&mut p.ch, p.role).unwrap();
        let mut kc = SharedCache::new(lk);
        let mut vc = SharedCache::new(lv);
        let mut got = Vec::new();
        // The first step against 255 rows prepares every block; the second against 256.
        for (i, npos) in [255usize, 256].into_iter().enumerate() {
            let pm = &pm[..heads * npos];
            p.ch.set_scope(&format!("qk{i}"));
            qk_t(
                &he,
                &mut p.ch,
                p.role,
                ring,
                &mut kc,
                &q,
                &k[..npos * c],
                1,
                true,
            )
            .unwrap();
            p.ch.set_scope(&format!("pv{i}"));
            pv(
                &he,
                &mut p.ch,
                p.role,
                ring,
                &mut vc,
                pm,
                &v[..npos * c],
                1,
                true,
            )
            .unwrap();
            for s in ["qk", "pv"] {
                let st = p.ch.stats().scope(&format!("{s}{i}"));
                got.push((st.bytes_sent, st.bytes_received, st.rounds));
            }
        }
        got
    };
    let (s, cl) = two_party(move |p| measure(p, xs), move |p| measure(p, xc));
    assert_eq!(s, cl, "both parties send the same");
    let off = |l: &AttnLayout| (l.blocks(256) * l.cts_per_block() * 168_976) as u64;
    let on = |l: &AttnLayout, npos: usize, new: usize| l.cost(1, npos, new, true).bytes as u64;
    assert_eq!(lk.blocks(256) * lk.cts_per_block(), 12 * 2);
    assert_eq!(lv.blocks(256) * lv.cts_per_block(), 12 * 2);
    let want = [
        (off(&lk) + on(&lk, 255, 255), 3),
        (off(&lv) + on(&lv, 255, 255), 3),
        (on(&lk, 256, 1), 2),
        (on(&lv, 256, 1), 2),
    ];
    for (g, (bytes, rounds)) in s.iter().zip(want) {
        assert_eq!((g.0, g.1, g.2), (bytes, bytes, rounds));
    }
    // A decode step against 256 rows: one result per head and direction of each product,
    // 8192·k bits of `a` and 256 (q·Kᵀ) or 64 (P·V) values of b_bits per head, plus one
    // re-shared row of 768 values.
    for (l, vals) in [(lk, 256usize), (lv, 64)] {
        let o = l.output_params(256).unwrap();
        let cost = l.cost(1, 256, 1, true);
        assert_eq!((cost.cts, cost.values), (12, 12 * vals));
        assert_eq!(
            cost.bytes,
            (768 * 37usize).div_ceil(8)
                + 12 * 8192 * o.k as usize / 8
                + (12 * vals * o.b_bits as usize).div_ceil(8)
        );
    }
}

/// Layouts the protocol cannot run: no heads, no head width, no positions or more than the
/// ciphertexts hold, a packing that does not fit, rings too wide or too narrow for the noise
/// budget, and multipliers split into no limbs or too few.
#[test]
fn invalid_layouts_are_rejected() {
    let ring = Ring::new(37).unwrap();
    let bad = |r: Result<AttnLayout, ProtocolError>| matches!(r, Err(ProtocolError::Invalid(_)));
    assert!(bad(AttnLayout::new(ring, Operand::Keys, 0, 64, 256)));
    assert!(bad(AttnLayout::new(ring, Operand::Keys, 12, 0, 256)));
    assert!(bad(AttnLayout::new(ring, Operand::Values, 12, 64, 0)));
    assert!(bad(AttnLayout::new(ring, Operand::Values, 12, 64, 1 << 17)));
    assert!(bad(AttnLayout::new(
        ring,
        Operand::Values,
        1 << 10,
        1 << 10,
        8
    )));
    assert!(bad(AttnLayout::new(
        Ring::new(44).unwrap(),
        Operand::Keys,
        1,
        8,
        8
    )));
    assert!(bad(AttnLayout::new(
        Ring::new(15).unwrap(),
        Operand::Keys,
        1,
        8,
        8
    )));
    assert!(bad(AttnLayout::with_limbs(ring, Operand::Keys, 1, 8, 8, 0)));
    // One limb of a 43-bit multiplier does not fit the noise budget.
    let ring43 = Ring::new(43).unwrap();
    assert!(bad(AttnLayout::with_limbs(
        ring43,
        Operand::Keys,
        1,
        8,
        8,
        1
    )));
}

/// The ring (37 bits) and the key and value layouts (2 heads of 8, up to 16 positions) of the
/// invalid calls below.
fn small_layouts() -> (Ring, AttnLayout, AttnLayout) {
    let ring = Ring::new(37).unwrap();
    let lk = AttnLayout::new(ring, Operand::Keys, 2, 8, 16).unwrap();
    let lv = AttnLayout::new(ring, Operand::Values, 2, 8, 16).unwrap();
    (ring, lk, lv)
}

/// Run `calls` at both parties after the RLWE keys' exchange, with fresh caches of
/// [`small_layouts`]; every check either party returns must hold.
fn both_parties_refuse(calls: fn(&DuplexHe, &mut Peer, &mut [SharedCache; 2]) -> Vec<bool>) {
    let run = move |p: &mut Peer| {
        let he = DuplexHe::setup(&mut p.ch, p.role).unwrap();
        let (_, lk, lv) = small_layouts();
        calls(&he, p, &mut [SharedCache::new(lk), SharedCache::new(lv)])
    };
    let (s, cl) = two_party(run, run);
    assert!(!s.is_empty() && s.len() == cl.len());
    assert!(
        s.iter().chain(&cl).all(|&e| e),
        "server {s:?}, client {cl:?}"
    );
}

fn invalid(r: Result<Vec<u64>, ProtocolError>) -> bool {
    matches!(r, Err(ProtocolError::Invalid(_)))
}

/// q·Kᵀ calls with bad shapes or the value cache fail on both sides before anything is sent;
/// zero fresh rows are nothing to do and send nothing.
#[test]
fn invalid_score_calls_fail_before_anything_is_sent() {
    both_parties_refuse(|he, p, [kc, vc]| {
        let (ring, role, ch) = (small_layouts().0, p.role, &mut p.ch);
        let c = 2 * 8;
        let z = vec![0u64; 64 * c];
        let before = ch.stats().total.bytes();
        let mut errs = vec![
            invalid(qk_t(he, ch, role, ring, kc, &z[..c + 1], &z[..c], 1, true)), // q not t × c
            invalid(qk_t(he, ch, role, ring, kc, &z[..c], &z[..c + 3], 1, true)), // ragged cache
            invalid(qk_t(he, ch, role, ring, kc, &z[..c], &z[..17 * c], 1, true)), // > max positions
            invalid(qk_t(he, ch, role, ring, kc, &z[..2 * c], &z[..c], 2, true)), // causal t > npos
            invalid(qk_t(he, ch, role, ring, vc, &z[..c], &z[..c], 1, true)),     // value cache
        ];
        errs.push(ch.stats().total.bytes() == before);
        // Zero fresh rows: nothing to do, nothing sent.
        let y = qk_t(he, ch, role, ring, kc, &[], &z[..3 * c], 0, true).unwrap();
        errs.push(y.is_empty() && ch.stats().total.bytes() == before);
        errs
    });
}

/// P·V calls with the key cache, bad shapes, another ring, the wrong role or unreduced values
/// fail on both sides before anything is sent, and so does a cache that shrinks below the rows
/// already re-shared.
#[test]
fn invalid_value_calls_fail_before_anything_is_sent() {
    both_parties_refuse(|he, p, [kc, vc]| {
        let (ring, role, ch) = (small_layouts().0, p.role, &mut p.ch);
        let ring38 = Ring::new(38).unwrap();
        let c = 2 * 8;
        let z = vec![0u64; 64 * c];
        let mut big = z[..2].to_vec();
        big[1] = 1 << 37;
        let before = ch.stats().total.bytes();
        let mut errs = vec![
            invalid(pv(he, ch, role, ring, kc, &z[..2], &z[..c], 1, true)), // key cache
            invalid(pv(he, ch, role, ring, vc, &z[..3], &z[..2 * c], 1, true)), // P not heads × t × npos
            invalid(pv(he, ch, role, ring38, vc, &z[..2], &z[..c], 1, true)),   // ring mismatch
            invalid(pv(
                he,
                ch,
                role.other(),
                ring,
                vc,
                &z[..2],
                &z[..c],
                1,
                true,
            )), // wrong role
            invalid(pv(he, ch, role, ring, vc, &big, &z[..c], 1, true)),        // not reduced
        ];
        errs.push(ch.stats().total.bytes() == before);
        // A cache that shrinks below the rows already re-shared.
        let ok = pv(he, ch, role, ring, vc, &z[..4], &z[..2 * c], 1, true);
        errs.push(ok.is_ok());
        errs.push(invalid(pv(
            he,
            ch,
            role,
            ring,
            vc,
            &z[..2],
            &z[..c],
            1,
            true,
        )));
        errs
    });
}

/// What the client receives in a decode step — the server's re-shared cache row, the switched
/// `a` of every result and the returned `b` coefficients — looks uniform and independent of the
/// cleartext: with the client's shares all zero (so the server's shares are the cleartext
/// itself), for K = 0, K = all +max and a random K, every bit of the `b` values is a fair coin
/// and agrees with the true score's bit half the time, every bit of `a` and of the re-shared row
/// is a fair coin, and the client's output share is uniform and independent of the scores. The
/// view's length does not depend on K.
#[test]
fn client_view_is_independent_of_the_servers_shares() {
    let bits = 37u32;
    let ring = Ring::new(bits).unwrap();
    let (heads, d, npos) = (12usize, 64usize, 256usize);
    let c = heads * d;
    let lk = AttnLayout::new(ring, Operand::Keys, heads, d, npos).unwrap();
    let mut rng = Prg::from_entropy();
    let q = values(&mut rng, c, bits, false);
    let max = (1u64 << (bits - 2)) - 1;
    let mut lens = Vec::new();
    for which in 0..3 {
        let k: Vec<u64> = match which {
            0 => vec![0; npos * c],
            1 => vec![max; npos * c],
            _ => values(&mut rng, npos * c, bits, false),
        };
        let want = cleartext_qk(
            ring,
            &q,
            &k,
            heads,
            d,
            Program {
                t: 1,
                npos,
                causal: true,
            },
        );
        let (ys, (view, yc)) = on_mem_pair(
            |mut ch| {
                let he = DuplexHe::setup(&mut ch, Role::Server).unwrap();
                let mut kc = SharedCache::new(lk);
                ciphergpt_runtime::protocols::attention_he::prepare(
                    &he,
                    &mut ch,
                    Role::Server,
                    ring,
                    &mut kc,
                    npos,
                )
                .unwrap();
                qk_t(&he, &mut ch, Role::Server, ring, &mut kc, &q, &k, 1, true).unwrap()
            },
            move |ch| {
                let mut tap = Tap::new(ch);
                let he = DuplexHe::setup(&mut tap, Role::Client).unwrap();
                let mut kc = SharedCache::new(lk);
                ciphergpt_runtime::protocols::attention_he::prepare(
                    &he,
                    &mut tap,
                    Role::Client,
                    ring,
                    &mut kc,
                    npos,
                )
                .unwrap();
                let before = tap.received.len();
                let zeros = vec![0u64; npos * c];
                let out = qk_t(
                    &he,
                    &mut tap,
                    Role::Client,
                    ring,
                    &mut kc,
                    &zeros[..c],
                    &zeros,
                    1,
                    true,
                )
                .unwrap();
                (tap.received[before..].to_vec(), out)
            },
        );
        assert_eq!(ring.add_vec(&ys, &yc), want);
        lens.push(view.len());
        let cost = lk.cost(1, npos, npos, true);
        assert_eq!(view.len(), cost.bytes);
        let o = lk.output_params(npos).unwrap();
        let re_len = (npos * c * bits as usize).div_ceil(8);
        let a_len = DEG * o.k as usize / 8;
        let reshare = unpack(&view[..re_len], npos * c, bits);
        let a_vals = unpack(&view[re_len..], cost.cts * DEG, o.k);
        let b_vals = unpack(&view[re_len + cost.cts * a_len..], cost.values, o.b_bits);
        // The b values are in output order (head by head, position by position).
        assert_uniform_and_independent(&b_vals, &want, bits, "b");
        assert_uniform_and_independent(&reshare, &k, bits, "re-shared rows");
        let zeros = vec![0u64; a_vals.len()];
        assert_uniform_and_independent(&a_vals, &zeros, o.k, "a");
        assert_uniform_and_independent(&yc, &want, bits, "client share");
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]));
}
