//! The executor's shift of a product's accumulator (`trunc::trunc_within_margin`): exactly the
//! compiler's `trunc_floor` for every x with −2^(ℓ−2) ≤ x < 2^(ℓ−2) − 2^s (x < 2^(ℓ−2) at
//! s = ℓ − 2), inside the range the compiler's two margin bits leave beyond calibration — the
//! range's ends, multiples of 2^s and their neighbours, random values — for the plan rings of
//! GPT-2 small (35) and the trained model (38), ℓ = 16 and 64, shifts 1 … ℓ − 2 and the
//! fallbacks s = 0 and s = ℓ − 1; over mem and TCP. The client's view has the same length and
//! fair bits whatever the server's share.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{from_ring_u64, to_ring_u64, trunc_floor};
use ciphergpt_runtime::crypto::{OtPair, Prg};
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::cmp;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::trunc::trunc_within_margin;
use ciphergpt_runtime::protocols::Party;
use common::*;

/// The end of the range for shift s: 2^(ℓ−2) − 2^s, or 2^(ℓ−2) for the shifts that take the
/// two-step path (s = ℓ − 2) or `trunc` (s = 0, s = ℓ − 1).
fn top(bits: u32, s: u32) -> i128 {
    let q = 1i128 << (bits - 2);
    if s >= 1 && s + 3 <= bits {
        q - (1i128 << s)
    } else {
        q
    }
}

/// n values in [−2^(ℓ−2), top): edges first, then uniform.
fn inputs(p: &mut Prg, n: usize, bits: u32, s: u32) -> Vec<u64> {
    let ring = Ring::new(bits).unwrap();
    let q = 1i128 << (bits - 2);
    let t = top(bits, s);
    let step = 1i128 << s.min(bits - 2);
    let mut v: Vec<i128> = vec![0, 1, -1, t - 1, -q, t - 2, -q + 1];
    for k in [-2i128, -1, 0, 1, 2] {
        for base in [0, t, -q] {
            for d in [-1i128, 0, 1] {
                let m = base + k * step + d;
                if (-q..t).contains(&m) {
                    v.push(m);
                }
            }
        }
    }
    while v.len() < n {
        let r = p.values(1, bits)[0];
        // Uniform in [−2^(ℓ−2), 2^(ℓ−2)) (the low ℓ − 1 bits, recentred), kept below the top.
        let m = (r & ((1u64 << (bits - 1)) - 1)) as i128 - q;
        if m < t {
            v.push(m);
        }
    }
    v.into_iter()
        .map(|x| ring.reduce(x as i64 as u64))
        .collect()
}

fn run(bits: u32, s: u32, n: usize, tcp: bool) {
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let x = inputs(&mut p, n, bits, s);
    let r = p.values(x.len(), bits);
    let (xs, xc) = (ring.sub_vec(&x, &r), r);
    let f =
        move |p: &mut Peer, x: Vec<u64>| trunc_within_margin(&mut p.party(), ring, s, &x).unwrap();
    let (a, b) = if tcp {
        two_party_tcp(move |p| f(p, xs), move |p| f(p, xc))
    } else {
        two_party(move |p| f(p, xs), move |p| f(p, xc))
    };
    let got = ring.add_vec(&a, &b);
    for (i, &xi) in x.iter().enumerate() {
        let want = to_ring_u64(trunc_floor(from_ring_u64(xi, bits).unwrap(), s), bits).unwrap();
        assert_eq!(got[i], want, "ℓ {bits} s {s} x {}", ring.to_signed(xi));
    }
}

#[test]
fn equals_trunc_floor_within_the_margin() {
    for bits in [16u32, 35, 38, 64] {
        for s in [1u32, 12, 15, bits - 2] {
            run(bits, s, 1500, false);
        }
    }
}

#[test]
fn shifts_without_room_for_the_offset_fall_back_to_trunc() {
    for bits in [16u32, 35] {
        for s in [0u32, bits - 1] {
            run(bits, s, 500, false);
        }
    }
}

#[test]
fn over_tcp() {
    run(35, 15, 4001, true);
}

/// The bytes the client receives after the base OTs, for the same client share and values at
/// the range's ends (all 0, all 2^(ℓ−2) − 2^s − 1, all −2^(ℓ−2)) or random: equally long, and every
/// bit position of the bytes a fair coin (|z| < 6), so they do not show the server's share.
#[test]
fn client_view_does_not_depend_on_the_servers_share() {
    let (bits, s, n) = (35u32, 15u32, 1 << 13);
    let ring = Ring::new(bits).unwrap();
    let q = 1i64 << (bits - 2);
    let xc = Prg::from_entropy().values(n, bits);
    let mut rnd = inputs(&mut Prg::from_entropy(), n, bits, s);
    rnd.truncate(n);
    let mut lens = Vec::new();
    for x in [
        vec![0u64; n],
        vec![ring.from_signed(top(bits, s) as i64 - 1); n],
        vec![ring.from_signed(-q); n],
        rnd,
    ] {
        let xs = ring.sub_vec(&x, &xc);
        let xc2 = xc.clone();
        let (server, (c, view)) = on_mem_pair(
            |mut ch| {
                let mut ot =
                    OtPair::setup(&mut ch, Role::Server, &mut Prg::from_entropy()).unwrap();
                trunc_within_margin(
                    &mut Party::new(&mut ot, &mut ch, Role::Server),
                    ring,
                    s,
                    &xs,
                )
                .unwrap()
            },
            move |ch| {
                let mut tap = Tap::new(ch);
                let mut ot =
                    OtPair::setup(&mut tap, Role::Client, &mut Prg::from_entropy()).unwrap();
                let start = tap.received.len();
                let c = trunc_within_margin(
                    &mut Party::new(&mut ot, &mut tap, Role::Client),
                    ring,
                    s,
                    &xc2,
                )
                .unwrap();
                (c, tap.received[start..].to_vec())
            },
        );
        let got = ring.add_vec(&server, &c);
        for (i, &xi) in x.iter().enumerate() {
            let want = to_ring_u64(trunc_floor(ring.to_signed(xi), s), bits).unwrap();
            assert_eq!(got[i], want);
        }
        lens.push(view.len());
        for pos in 0..8 {
            let ones = view.iter().filter(|&&b| (b >> pos) & 1 == 1).count();
            let z = z_fair(ones, view.len());
            assert!(z.abs() < 6.0, "received byte bit {pos}: z = {z:.2}");
        }
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]), "{lens:?}");
}

/// Bytes and flights at GPT-2 small's ring and weight shift (ℓ = 35, s = 15) over 2^12
/// elements on silent OT (few enough that no OT batch runs inside), against `trunc::trunc`:
/// measured 41.4 against 78.1 bytes per element, 6 against 14 flights (the client's). The
/// flights are exactly the millionaires' on 15 bits (4-bit digits: 2 for the leaves, 2 per tree
/// level, one level of four) and 2 for the one COT call.
#[test]
fn costs_less_than_half_of_trunc() {
    let (bits, s, n) = (35u32, 15u32, 1usize << 12);
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let x = inputs(&mut p, n, bits, s);
    let r = p.values(n, bits);
    let xs = ring.sub_vec(&x, &r);
    let mut per = Vec::new();
    for margin in [true, false] {
        let (xs, xc) = (xs.clone(), r.clone());
        let f = move |p: &mut Peer, x: Vec<u64>| {
            let o = p.party().scoped("t", |party| {
                if margin {
                    trunc_within_margin(party, ring, s, &x)
                } else {
                    ciphergpt_runtime::protocols::trunc::trunc(party, ring, s, &x)
                }
            });
            (o.unwrap(), p.ch.stats().scope("t"))
        };
        let ((a, cs), (b, cc)) = two_party(move |p| f(p, xs), move |p| f(p, xc));
        assert_eq!(a.len() + b.len(), 2 * n);
        let bytes = (cs.bytes_sent + cs.bytes_received) as f64 / n as f64;
        println!(
            "{}: {bytes:.3} bytes/element, flights {} (server) / {} (client)",
            if margin {
                "trunc_within_margin"
            } else {
                "trunc"
            },
            cs.rounds,
            cc.rounds
        );
        if margin {
            // The client: the server's leaf choices, its leaf messages, one flight per tree
            // level (its chooser sent the level below), the COT's messages (chosen by the
            // tree's last sender, in its last flight); the server the same flights.
            let levels = cmp::levels(s.div_ceil(cmp::DEFAULT_DIGIT_BITS) as usize) as u64;
            assert_eq!(cc.rounds, 2 + levels + 1);
            assert_eq!(cs.rounds, cc.rounds);
        }
        per.push(bytes);
    }
    assert!(per[0] < 0.55 * per[1], "{per:?}");
}
