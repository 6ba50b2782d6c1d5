//! Silent OT ([`ciphergpt_runtime::crypto::silent`]): the COT definition w = v ⊕ u·Δ for random
//! and chosen choices across many batches (the tiny test-only parameters, in memory) and across
//! the default schedule's batches (Ferret's sets, over TCP); balanced choices and outputs; the
//! sender's view of chosen choices; its cost against IKNP.

use crate::common::{on_mem_pair, Transport};
use std::time::Instant;

use ciphergpt_runtime::crypto::lpn::{
    LpnParams, FERRET_BOOT, FERRET_MAIN, FERRET_SETUP, TEST_ONLY_TINY,
};
use ciphergpt_runtime::crypto::{Block, CotBackend, OtPair, Prg};
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::testing;
use rand::RngCore;

/// Run `s` as the server and `c` as the client, both with `backend`, in memory or over TCP (the
/// runtime's harness).
fn pair_run<A, B, S, C>(backend: CotBackend, over_tcp: bool, s: S, c: C) -> (A, B)
where
    S: FnOnce(&mut OtPair, &mut dyn Channel) -> A,
    C: FnOnce(&mut OtPair, &mut dyn Channel) -> B + Send + 'static,
    B: Send + 'static,
{
    let transport = if over_tcp {
        Transport::Tcp
    } else {
        Transport::Mem
    };
    testing::two_party(
        transport,
        backend,
        |p| s(&mut p.ot, &mut *p.ch),
        move |p| c(&mut p.ot, &mut *p.ch),
    )
}

/// Bytes the receiver and the sender send for the batches `ps` of one direction, the first
/// bootstrapped by IKNP if `first`: the receiver sends the IKNP matrix (16 bytes per COT,
/// padded to 128 COTs) and per batch a marker byte and one correction bit per PPRF OT; the sender
/// two 16-byte pads per PPRF OT and one 16-byte sum per tree.
fn batch_bytes(ps: &[LpnParams], first: bool) -> (u64, u64) {
    let mut r = if first {
        16 * (ps[0].base() as u64).div_ceil(128) * 128
    } else {
        0
    };
    let mut s = 0;
    for p in ps {
        let ots = p.pprf_ots() as u64;
        r += 1 + ots.div_ceil(8);
        s += 32 * ots + 16 * p.t as u64;
    }
    (r, s)
}

/// The sender's side of a call whose receiver takes `random` choices (no message) or chosen
/// ones (the marker byte and the corrections).
fn send(ot: &mut OtPair, ch: &mut dyn Channel, m: usize, random: bool) -> Vec<Block> {
    let mut v = vec![Block::ZERO; m];
    if random {
        ot.sender.send_cot_random_into(ch, &mut v).unwrap();
    } else {
        ot.sender.send_cot_into(ch, &mut v).unwrap();
    }
    v
}

/// Call sizes that cross batch boundaries at odd places.
fn sizes(total: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut left = total;
    let mut p = Prg::new(Block(17));
    while left > 0 {
        let m = ((p.next_u64() % 9000) as usize + 1).min(left);
        v.push(m);
        left -= m;
    }
    v
}

/// Many batches of the test-only set, both directions, random and chosen choices in turn.
#[test]
fn cot_definition_over_many_batches_both_directions() {
    let total = 6 * TEST_ONLY_TINY.n + 777; // about 7 batches per direction
    let calls = sizes(total);
    let choices = Prg::from_entropy().bools(total);
    let (c2, calls2) = (choices.clone(), calls.clone());
    let ((delta, v, k2), (u, w, d2, m2)) = pair_run(
        CotBackend::SilentTestOnly,
        false,
        move |ot, ch| {
            // Server → client: the server sends; client → server: the server receives.
            let mut v = Vec::new();
            let mut k2 = Vec::new();
            let mut at = 0;
            for (j, &m) in calls2.iter().enumerate() {
                v.extend(send(ot, ch, m, j % 3 == 0));
                if j % 2 == 0 {
                    let c = &c2[at..at + m];
                    let x = ot.receiver.recv_cot(ch, c).unwrap();
                    k2.extend(x.into_iter().zip(c.iter().copied()));
                } else {
                    let (b, m) = ot.receiver.recv_cot_random(ch, m).unwrap();
                    assert!(b.iter().zip(&m).all(|(&b, x)| x.lsb() == b));
                    k2.extend(m.into_iter().zip(b));
                }
                at += m;
            }
            (ot.sender.delta(), v, k2)
        },
        move |ot, ch| {
            let mut u = Vec::new();
            let mut w = Vec::new();
            let mut m2 = Vec::new();
            for (j, &m) in calls.iter().enumerate() {
                if j % 3 == 0 {
                    let (b, x) = ot.receiver.recv_cot_random(ch, m).unwrap();
                    u.extend(b);
                    w.extend(x);
                } else {
                    let b = Prg::from_entropy().bools(m);
                    w.extend(ot.receiver.recv_cot(ch, &b).unwrap());
                    u.extend(b);
                }
                m2.extend(send(ot, ch, m, j % 2 == 1));
            }
            assert_eq!(ot.sender.extended(), total as u64);
            (u, w, ot.sender.delta(), m2)
        },
    );
    for i in 0..total {
        assert_eq!(w[i], v[i] ^ delta.and_bit(u[i]), "server → client COT {i}");
    }
    // The other direction: k2 holds (M, b), chosen b on even calls, random on odd ones.
    let chosen = k2.iter().zip(&choices).filter(|(x, &c)| x.1 == c).count();
    assert!(chosen > total / 2);
    for i in 0..total {
        assert_eq!(
            k2[i].0,
            m2[i] ^ d2.and_bit(k2[i].1),
            "client → server COT {i}"
        );
    }
    assert_ne!(delta, d2);
    assert!(delta.lsb() && d2.lsb());
}

/// The default schedule (Ferret's setup set twice, then the main set) over TCP: the definition
/// holds across the three batches, and the cost is Ferret's.
#[test]
fn default_schedule_over_tcp_reaches_the_main_set() {
    // Past the bootstrapping batches (136 + 531,848 + 325 usable) into the main one.
    let total = 900_000usize;
    let calls = [1000usize, 300_000, 250_000, 349_000];
    let ((delta, v, secs, sent), (u, w, recv_bytes)) = pair_run(
        CotBackend::Silent,
        true,
        move |ot, ch| {
            let t = Instant::now();
            let before = ch.stats().total;
            let mut v = Vec::new();
            for &m in &calls {
                v.extend(send(ot, ch, m, true));
            }
            let sent = ch.stats().total.since(&before);
            (ot.sender.delta(), v, t.elapsed().as_secs_f64(), sent)
        },
        move |ot, ch| {
            let before = ch.stats().total;
            let mut u = Vec::new();
            let mut w = Vec::new();
            for &m in &calls {
                let (b, x) = ot.receiver.recv_cot_random(ch, m).unwrap();
                u.extend(b);
                w.extend(x);
            }
            let after = ch.stats().total;
            (u, w, after.bytes_sent - before.bytes_sent)
        },
    );
    assert_eq!(v.len(), total);
    for i in 0..total {
        assert_eq!(w[i], v[i] ^ delta.and_bit(u[i]), "COT {i}");
    }
    // Two batches at setup, then in the calls a setup batch and a main one.
    let (r, s) = batch_bytes(&[FERRET_SETUP, FERRET_MAIN], false);
    assert_eq!(recv_bytes, r);
    assert_eq!((sent.bytes_received, sent.bytes_sent), (r, s));
    // One flight each way per batch; random choices send nothing.
    assert!(sent.rounds <= 2 * 2, "{} flights", sent.rounds);
    eprintln!(
        "silent default schedule over TCP: {total} COTs in {secs:.2} s (2 batches, one main), \
         receiver sent {recv_bytes} B, sender sent {s} B"
    );
}

/// Choices and every bit of v and w but v's lsb are balanced; v's lsb is 0 and w's is u.
#[test]
fn choices_and_outputs_are_balanced() {
    let n = 1 << 16;
    let ((delta, v), (u, w)) = pair_run(
        CotBackend::Silent,
        false,
        move |ot, ch| (ot.sender.delta(), send(ot, ch, n, true)),
        move |ot, ch| ot.receiver.recv_cot_random(ch, n).unwrap(),
    );
    let sd = (n as f64).sqrt() / 2.0;
    let ones = u.iter().filter(|&&b| b).count() as f64;
    assert!(
        (ones - n as f64 / 2.0).abs() < 6.0 * sd,
        "choices: {ones} ones"
    );
    // Runs: adjacent choices agree half the time.
    let agree = u.windows(2).filter(|p| p[0] == p[1]).count() as f64;
    assert!((agree - n as f64 / 2.0).abs() < 6.0 * sd);
    for pos in 1..128 {
        for (name, xs) in [("v", &v), ("w", &w)] {
            let c = xs.iter().filter(|x| x.bit(pos)).count() as f64;
            assert!((c - n as f64 / 2.0).abs() < 6.0 * sd, "{name} bit {pos}");
        }
    }
    assert!(v.iter().all(|x| !x.lsb()));
    assert!(w.iter().zip(&u).all(|(x, &b)| x.lsb() == b));
    assert!(delta.lsb() && delta.0.count_ones() > 30 && delta.0.count_ones() < 98);
    for i in 0..n {
        assert_eq!(w[i], v[i] ^ delta.and_bit(u[i]));
    }
}

/// The sender's view of a chosen-choice call is 1 marker byte and n bits d = b ⊕ u: uncorrelated
/// with the choices b whatever they are.
#[test]
fn sender_view_does_not_depend_on_choices() {
    let n = 1 << 15;
    for (name, choices) in [
        ("all zero", vec![false; n]),
        ("all one", vec![true; n]),
        (
            "alternating",
            (0..n).map(|i| i % 2 == 1).collect::<Vec<_>>(),
        ),
    ] {
        let c2 = choices.clone();
        let (view, ()) = on_mem_pair(
            |a| {
                let mut tap = Tap::new(a);
                let mut ot = OtPair::setup_with(
                    &mut tap,
                    Role::Server,
                    CotBackend::SilentTestOnly,
                    &mut Prg::from_entropy(),
                )
                .unwrap();
                send(&mut ot, &mut tap, 40_000, true);
                let before = tap.received.len();
                ot.sender.send_cot(&mut tap, n).unwrap();
                tap.received[before..].to_vec()
            },
            move |mut b| {
                let mut ot = OtPair::setup_with(
                    &mut b,
                    Role::Client,
                    CotBackend::SilentTestOnly,
                    &mut Prg::from_entropy(),
                )
                .unwrap();
                // Run the first batches, then the measured call.
                ot.receiver.recv_cot_random(&mut b, 40_000).unwrap();
                ot.receiver.recv_cot(&mut b, &c2).unwrap();
            },
        );
        // Batches run first inside the call; its marker byte and d (n bits) come last.
        let d = &view[view.len() - n / 8..];
        assert_eq!(view[view.len() - n / 8 - 1], 1);
        let agree = (0..n)
            .filter(|&i| ((d[i / 8] >> (i % 8)) & 1 == 1) == choices[i])
            .count() as f64;
        let z = (agree - n as f64 / 2.0) / ((n as f64).sqrt() / 2.0);
        assert!(z.abs() < 6.0, "{name}: z = {z}");
    }
}

/// A session that needs a thousand OTs does not wait for a big batch: setup runs the two
/// bootstrapping batches of each direction, the call sends n bits; IKNP stays available and
/// costs its 16 bytes per COT.
#[test]
fn small_session_cost_and_iknp_backend() {
    let n = 1000;
    for backend in [CotBackend::Silent, CotBackend::Iknp] {
        let t0 = Instant::now();
        let ((setup_bytes, delta, v), (u, w, bytes, secs)) = pair_run(
            backend,
            false,
            move |ot, ch| {
                let setup_bytes = ch.stats().total;
                let v = ot.sender.send_cot(ch, n).unwrap();
                (setup_bytes, ot.sender.delta(), v)
            },
            move |ot, ch| {
                let setup_secs = t0.elapsed().as_secs_f64();
                let b0 = ch.stats().total.bytes_sent;
                let b = Prg::from_entropy().bools(n);
                let w = ot.receiver.recv_cot(ch, &b).unwrap();
                (b, w, ch.stats().total.bytes_sent - b0, setup_secs)
            },
        );
        for i in 0..n {
            assert_eq!(w[i], v[i] ^ delta.and_bit(u[i]));
        }
        eprintln!(
            "{backend:?}: setup {secs:.3} s, {} B both ways; {n} chosen COTs: receiver sent {bytes} B",
            setup_bytes.bytes()
        );
        match backend {
            CotBackend::Iknp => assert_eq!(bytes, 16 * 1024),
            _ => {
                assert_eq!(bytes, 1 + (n as u64).div_ceil(8));
                // Both directions: base OTs and the boot and setup batches.
                let (r, s) = batch_bytes(&[FERRET_BOOT, FERRET_SETUP], true);
                let base = setup_bytes.bytes() - 2 * (r + s);
                assert!(base < 20_000, "base OTs {base} B");
                // About 0.15 s alone on 2 cores; generous for a loaded machine (the bytes above
                // already show that no main batch ran).
                assert!(secs < 10.0, "setup {secs} s");
            }
        }
    }
}
