//! The inverse-power protocol against the compiler's recipe: the reconstructed outputs equal
//! `semantics::inv_pow` for LayerNorm's and softmax's tables and narrow ranges, on random inputs
//! and the edges of every octave (powers of two and their neighbours, v_min, 2^B − 1), in memory
//! and over TCP; its bytes on IKNP equal the module's formula and its flights are the same for
//! 1 and 128 inputs.

use crate::common;

use ciphergpt_compiler::fixed::semantics::{inv_pow, inv_tables, InvPower, InvTables};
use ciphergpt_compiler::plan::cost;
use ciphergpt_runtime::crypto::{silent, Prg};
use ciphergpt_runtime::net::Role;
use ciphergpt_runtime::protocols::inverse;
use ciphergpt_runtime::protocols::shares::Ring;
use common::*;
use rand::Rng;

/// Inputs: every octave's edges within [v_min, 2^B), then log-uniform values, `n` in all.
fn inputs(p: &mut Prg, t: &InvTables, n: usize) -> Vec<u64> {
    let top = (1u64 << t.in_bits) - 1;
    let mut v = vec![t.v_min, t.v_min + 1, top, top - 1];
    for k in 0..t.in_bits {
        v.extend([1u64 << k, (1u64 << k) + 1, (2u64 << k) - 1]);
    }
    v.retain(|&x| x >= t.v_min && x <= top);
    v.truncate(n);
    let k_min = t.v_min.ilog2();
    while v.len() < n {
        let k = p.gen_range(k_min..t.in_bits);
        let x = (1u64 << k) | (p.gen::<u64>() & ((1u64 << k) - 1));
        if x >= t.v_min {
            v.push(x);
        }
    }
    v
}

/// Runs the protocol on shares of `v`; returns the outputs and each party's (bytes, flights).
fn run(t: &InvTables, v: &[u64], mode: Mode) -> (Vec<u64>, (u64, u64), u64) {
    let w = Ring::new(64).unwrap();
    let mut p = Prg::from_entropy();
    let r = p.values(v.len(), 64);
    let (vs, vc) = (w.sub_vec(v, &r), r);
    let (ts, tc) = (t.clone(), t.clone());
    // The totals less the silent-OT batches (a refill wherever a pool runs dry).
    let counted = |p: &mut Peer| {
        let st = p.ch.stats();
        let refill = st
            .scopes
            .iter()
            .filter(|(k, _)| k.split('/').any(|s| s == silent::SCOPE))
            .fold((0, 0), |(b, r), (_, c)| (b + c.bytes(), r + c.rounds));
        (st.total.bytes() - refill.0, st.total.rounds - refill.1)
    };
    let f = move |p: &mut Peer, t: InvTables, x: Vec<u64>| {
        // As inside a layer, the client has last received (the cost model counts from there).
        match p.role {
            Role::Server => p.ch.send(&[0]).and_then(|_| p.ch.flush()).unwrap(),
            Role::Client => p.ch.recv(&mut [0]).unwrap(),
        }
        let before = counted(p);
        let y = inverse::inv_pow(&mut p.party(), &t, &x).unwrap();
        let after = counted(p);
        (y, after.0 - before.0, after.1 - before.1)
    };
    let g = f;
    let ((a, bytes, fs), (b, _, fc)) = match mode {
        Mode::Mem => two_party(move |p| f(p, ts, vs), move |p| g(p, tc, vc)),
        Mode::Tcp => two_party_tcp(move |p| f(p, ts, vs), move |p| g(p, tc, vc)),
        Mode::Iknp => two_party_iknp(move |p| f(p, ts, vs), move |p| g(p, tc, vc)),
    };
    (w.add_vec(&a, &b), (fs, fc), bytes)
}

#[derive(Clone, Copy)]
enum Mode {
    Mem,
    Tcp,
    Iknp,
}

fn check(t: &InvTables, n: usize, mode: Mode) {
    let mut p = Prg::from_entropy();
    let v = inputs(&mut p, t, n);
    let (out, _, _) = run(t, &v, mode);
    for (x, y) in v.iter().zip(&out) {
        assert_eq!(*y as i64, inv_pow(*x, t).unwrap(), "{:?} of {x}", t.power);
    }
}

fn layernorm_tables() -> InvTables {
    // GPT-2 small's N = 768·2^48, v_eps = 18.
    inv_tables(InvPower::RecipSqrt, 768u128 << 48, 18, 62).unwrap()
}

fn softmax_tables() -> InvTables {
    inv_tables(InvPower::Reciprocal, 1 << 34, 1 << 14, 35).unwrap()
}

#[test]
fn layernorm_inverse_square_root_is_exact() {
    check(&layernorm_tables(), 400, Mode::Mem);
}

#[test]
fn softmax_reciprocal_is_exact() {
    check(&softmax_tables(), 400, Mode::Mem);
}

#[test]
fn narrow_ranges_are_exact() {
    // B = 2 (one index bit, no position), 9 (no position bits left), 12 and 20 (fewer than D).
    for b in [2u32, 3, 9, 12, 20] {
        for power in [InvPower::Reciprocal, InvPower::RecipSqrt] {
            let t = inv_tables(power, 1 << 20, 1, b).unwrap();
            check(&t, 64, Mode::Mem);
        }
    }
}

#[test]
fn over_tcp() {
    check(&layernorm_tables(), 50, Mode::Tcp);
}

/// Bytes on IKNP equal the formula (128 inputs: every OT batch a multiple of 128, so no
/// padding); on silent OT the client's flights equal the cost model's for 1 and 128 inputs
/// (the digit widths follow the count: one row takes wider digits and fewer levels).
#[test]
fn bytes_and_flights_match_the_formulas() {
    for t in [layernorm_tables(), softmax_tables()] {
        let mut p = Prg::from_entropy();
        let v = inputs(&mut p, &t, 128);
        let (_, iknp, bytes) = run(&t, &v, Mode::Iknp);
        assert_eq!(8 * bytes, 128 * inv_pow_bits(&t, 128), "{:?}", t.power);
        for n in [1usize, 128] {
            let (_, flights, _) = run(&t, &v[..n], Mode::Mem);
            let model = cost::inverse_root(cost::InvShape::of(&t), n as u64);
            // The client has last received: a first flight from the server continues it.
            let want = model.rounds - u64::from(model.first == cost::Edge::Recv);
            assert_eq!(
                flights.1, want,
                "{:?}: client flights of {n} inputs",
                t.power
            );
            eprintln!(
                "inv_pow {:?}, B = {}, {n} inputs: flights {} / {} on silent OT",
                t.power, t.in_bits, flights.0, flights.1
            );
        }
        eprintln!(
            "inv_pow {:?}: {:.1} B per input on IKNP (128 inputs), flights {} / {}",
            t.power,
            bytes as f64 / 128.0,
            iknp.0,
            iknp.1
        );
    }
}
