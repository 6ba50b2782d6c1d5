//! Weight × activation under RLWE: bit-exact against x·W + b mod 2^ℓ (i128 arithmetic, the plan's
//! `Linear` before truncation) on ragged and GPT-2 shapes, several rings, extreme weights and
//! limbs; over memory and TCP; the plan's Logits against the simulator; bytes and flights against
//! the cost formula; invalid arguments; what the client receives.

use crate::common;

use ciphergpt_runtime::crypto::rlwe::{HeSession, N};
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::linear::{linear, EncodedWeights, Packing};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::ProtocolError;
use common::*;
use rand::Rng;

/// A random K × N weight in ±2^(wbits−1) with both extremes: row 0 all +max and row 1 all −max
/// (when K > 2), and the corners.
fn weights(rng: &mut Prg, k: usize, n: usize, wbits: u32) -> Vec<i64> {
    let b = 1i64 << (wbits - 1);
    let mut w: Vec<i64> = (0..k * n).map(|_| rng.gen_range(-b..=b)).collect();
    if k > 2 {
        w[..n].fill(b);
        w[n..2 * n].fill(-b);
    }
    w[0] = b;
    w[k * n - 1] = -b;
    w
}

/// x·W + b mod 2^ℓ on the signed lift of x, in i128.
fn cleartext(
    ring: Ring,
    x: &[u64],
    t: usize,
    k: usize,
    n: usize,
    w: &[i64],
    b: &[i64],
) -> Vec<u64> {
    let mut y = Vec::with_capacity(t * n);
    for r in 0..t {
        for c in 0..n {
            let mut acc = b[c] as i128;
            for i in 0..k {
                acc += ring.to_signed(x[r * k + i]) as i128 * w[i * n + c] as i128;
            }
            y.push((acc as u64) & ring.mask());
        }
    }
    y
}

#[derive(Clone, Copy, Debug)]
struct Case {
    bits: u32,
    t: usize,
    k: usize,
    n: usize,
    wbits: u32,
    /// Rows the packing is chosen for.
    rows: usize,
}

/// Run one product between two parties on random inputs with edge values; assert that the
/// reconstruction equals the cleartext; return the packing used.
fn check(c: Case, tcp: bool) -> Packing {
    let ring = Ring::new(c.bits).unwrap();
    let mut rng = Prg::from_entropy();
    let x = values_with_edges(&mut rng, c.t * c.k, c.bits);
    let x_s = ring.random(&mut rng, x.len());
    let x_c = ring.sub_vec(&x, &x_s);
    let w = weights(&mut rng, c.k, c.n, c.wbits);
    let bmax = 1i64 << (c.bits - 2);
    let mut bias: Vec<i64> = (0..c.n).map(|_| rng.gen_range(-bmax..bmax)).collect();
    bias[0] = bmax - 1;
    bias[c.n - 1] = -bmax;
    let want = cleartext(ring, &x, c.t, c.k, c.n, &w, &bias);
    let packing = Packing::new(ring, c.k, c.n, c.wbits, c.rows).unwrap();
    let enc = EncodedWeights::new(&packing, &w).unwrap();
    let t = c.t;
    let s = move |p: &mut Peer| {
        let he = HeSession::setup(&mut p.ch, p.role).unwrap();
        linear(
            &he,
            &mut p.ch,
            p.role,
            ring,
            &packing,
            &x_s,
            t,
            Some((&enc, &bias)),
        )
        .unwrap()
    };
    let cl = move |p: &mut Peer| {
        let he = HeSession::setup(&mut p.ch, p.role).unwrap();
        linear(&he, &mut p.ch, p.role, ring, &packing, &x_c, t, None).unwrap()
    };
    let (ys, yc) = if tcp {
        two_party_tcp(s, cl)
    } else {
        two_party(s, cl)
    };
    let got = ring.add_vec(&ys, &yc);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g,
            w,
            "{c:?}: output {i} (row {}, column {})",
            i / c.n,
            i % c.n
        );
    }
    packing
}

#[test]
fn exact_on_ragged_shapes_and_rings() {
    for bits in [35u32, 37, 38] {
        for (t, k, n) in [(1, 7, 5), (3, 100, 33), (2, 128, 384), (1, 1, 1)] {
            let p = check(
                Case {
                    bits,
                    t,
                    k,
                    n,
                    wbits: 16,
                    rows: 1,
                },
                false,
            );
            assert_eq!(p.limbs, 1, "16-bit weights fit at ℓ = {bits}");
        }
    }
}

/// GPT-2 small's QKV product in a decode step, and the trained model's shape in prefill.
#[test]
fn exact_on_gpt2_qkv_decode_shape() {
    let p = check(
        Case {
            bits: 37,
            t: 1,
            k: 768,
            n: 2304,
            wbits: 16,
            rows: 1,
        },
        false,
    );
    // The report's window for this shape: 8 ciphertexts up, 28 down.
    let c = p.cost(1);
    assert_eq!((c.cts_up, c.cts_down), (8, 28), "{p:?}");
}

/// Several rows per ciphertext (prefill packing), over TCP on loopback.
#[test]
fn exact_over_tcp_with_rows_packed_together() {
    let p = check(
        Case {
            bits: 38,
            t: 9,
            k: 100,
            n: 33,
            wbits: 16,
            rows: 9,
        },
        true,
    );
    assert!(p.rows_per_ct > 1, "{p:?}");
    // A decode packing used on several rows packs as many as fit too.
    check(
        Case {
            bits: 37,
            t: 5,
            k: 128,
            n: 384,
            wbits: 16,
            rows: 1,
        },
        true,
    );
}

/// Where 32-bit weights do not fit the noise budget (ℓ = 43), the weights are split into limbs;
/// still exact. Wide rings, 24-bit weights in one limb and narrow rings work too.
#[test]
fn exact_with_limbs_in_wide_rings_and_for_wide_weights() {
    for (bits, wbits) in [(43u32, 32u32), (40, 16), (37, 24), (16, 16)] {
        let p = check(
            Case {
                bits,
                t: 2,
                k: 300,
                n: 70,
                wbits,
                rows: 1,
            },
            false,
        );
        assert_eq!(p.limbs > 1, wbits == 32, "{p:?}");
    }
}

/// The plan's integer semantics: the trained model's Logits instruction (x·W + b, shift 0) on
/// its embedding rows, against the compiler's simulator running the same instruction.
#[test]
fn plan_logits_match_the_simulator() {
    use ciphergpt_compiler::fixed::{self, simulate::Simulator};
    use ciphergpt_compiler::model::{self, ModelSpec};
    use ciphergpt_compiler::plan::{instruction::Op, Program};
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tiny-trained.torchscript.onnx");
    let graph = model::load(&ModelSpec {
        path,
        ..Default::default()
    })
    .unwrap();
    let compiled = fixed::compile(&graph, &fixed::Options::default()).unwrap();
    let mut plan = compiled.plan.clone();
    let prefill = plan.prefill.clone().unwrap();
    let find = |f: &dyn Fn(&Op) -> bool| {
        prefill
            .instructions
            .iter()
            .find(|i| i.op.as_ref().is_some_and(f))
            .cloned()
            .unwrap()
    };
    let embed = find(&|o| matches!(o, Op::Embed(_)));
    let mut logits = find(&|o| matches!(o, Op::Logits(_)));
    let sample = find(&|o| matches!(o, Op::Sample(_)));
    let (Some(Op::Embed(e)), Some(Op::Logits(l))) = (embed.op.clone(), logits.op.clone()) else {
        unreachable!()
    };
    // The program Embed → Logits → Sample: the Logits input is the embedding.
    logits.inputs[0] = embed.outputs[0];
    plan.prefill = Some(Program {
        instructions: vec![embed, logits, sample],
    });
    let tokens: Vec<i64> = b"In the beginning".iter().map(|&b| b as i64).collect();
    let mut sim = Simulator::new(&plan, &compiled.weights).unwrap();
    sim.all_rows = true;
    sim.prefill(&tokens).unwrap();
    let tensor = |i: u32| compiled.weights.tensors[i as usize].values();
    let (wte, wpe, w) = (
        tensor(e.token_table),
        tensor(e.position_table),
        tensor(l.weight),
    );
    let bias = tensor(l.bias.unwrap());
    let n = bias.len();
    let k = w.len() / n;
    let ring = Ring::new(plan.ring_bits).unwrap();
    let t = tokens.len();
    let x: Vec<u64> = (0..t * k)
        .map(|i| {
            let (r, j) = (i / k, i % k);
            ring.from_signed(wte[tokens[r] as usize * k + j] + wpe[r * k + j])
        })
        .collect();
    let wmax = w.iter().map(|v| v.unsigned_abs()).max().unwrap();
    let wbits = (1..=32u32).find(|b| wmax <= 1 << (b - 1)).unwrap();
    let packing = Packing::new(ring, k, n, wbits, t).unwrap();
    let enc = EncodedWeights::new(&packing, &w).unwrap();
    let mut rng = Prg::from_entropy();
    let x_s = ring.random(&mut rng, x.len());
    let x_c = ring.sub_vec(&x, &x_s);
    let (ys, yc) = two_party(
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            linear(
                &he,
                &mut p.ch,
                p.role,
                ring,
                &packing,
                &x_s,
                t,
                Some((&enc, &bias)),
            )
            .unwrap()
        },
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            linear(&he, &mut p.ch, p.role, ring, &packing, &x_c, t, None).unwrap()
        },
    );
    let got: Vec<i64> = ring
        .add_vec(&ys, &yc)
        .into_iter()
        .map(|v| ring.to_signed(v))
        .collect();
    let want: Vec<i64> = sim.last_logits.concat();
    assert_eq!(want.len(), t * n);
    assert_eq!(got, want, "ℓ = {}, weights of {wbits} bits", plan.ring_bits);
}

/// Bytes and flights of a call equal the cost formula: G·A ciphertexts of 168,976 bytes up,
/// L·G·B results of 8192·k bits plus T·N·L values of b_bits bits down, one flight each way.
#[test]
fn bytes_and_flights_match_the_cost_formula() {
    for (bits, t, k, n, wbits) in [
        (37u32, 1usize, 768usize, 768usize, 16u32),
        (43, 3, 200, 50, 32),
    ] {
        let ring = Ring::new(bits).unwrap();
        let packing = Packing::new(ring, k, n, wbits, 1).unwrap();
        let mut rng = Prg::from_entropy();
        let enc = EncodedWeights::new(&packing, &weights(&mut rng, k, n, wbits)).unwrap();
        let x_s = ring.random(&mut rng, t * k);
        let x_c = ring.random(&mut rng, t * k);
        let bias = vec![0i64; n];
        // The call in a scope of its own, so that its first flight counts (docs of `net`).
        let measure = move |p: &mut Peer, w: Option<(&EncodedWeights, &[i64])>, x: &[u64]| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            p.ch.set_scope("linear");
            linear(&he, &mut p.ch, p.role, ring, &packing, x, t, w).unwrap();
            let c = p.ch.stats().scope("linear");
            (c.bytes_sent, c.bytes_received, c.rounds)
        };
        let (s, c) = two_party(
            move |p| measure(p, Some((&enc, &bias)), &x_s),
            move |p| measure(p, None, &x_c),
        );
        let cost = packing.cost(t);
        assert_eq!(cost.bytes_up, cost.cts_up * 168_976);
        assert_eq!(
            cost.bytes_down,
            cost.cts_down * 8192 * packing.out.k as usize / 8
                + (t * n * packing.limbs as usize * packing.out.b_bits as usize).div_ceil(8)
        );
        assert_eq!(
            s,
            (cost.bytes_down as u64, cost.bytes_up as u64, 2),
            "{packing:?}"
        );
        assert_eq!(
            c,
            (cost.bytes_up as u64, cost.bytes_down as u64, 2),
            "{packing:?}"
        );
    }
}

#[test]
fn invalid_arguments_are_rejected() {
    let ring = Ring::new(37).unwrap();
    let bad = |r: Result<Packing, ProtocolError>| matches!(r, Err(ProtocolError::Invalid(_)));
    assert!(bad(Packing::new(ring, 0, 5, 16, 1)));
    assert!(bad(Packing::new(ring, 5, 0, 16, 1)));
    assert!(bad(Packing::new(ring, 5, 5, 0, 1)));
    assert!(bad(Packing::new(ring, 5, 5, 33, 1)));
    assert!(bad(Packing::new(Ring::new(44).unwrap(), 5, 5, 16, 1)));
    assert!(bad(Packing::new(Ring::new(15).unwrap(), 5, 5, 16, 1)));
    let packing = Packing::new(ring, 4, 3, 16, 1).unwrap();
    let enc_bad = |w: &[i64]| {
        matches!(
            EncodedWeights::new(&packing, w),
            Err(ProtocolError::Invalid(_))
        )
    };
    assert!(enc_bad(&[0; 11]));
    let mut w = vec![0i64; 12];
    w[5] = (1 << 15) + 1;
    assert!(enc_bad(&w));
    w[5] = -(1 << 15) - 1;
    assert!(enc_bad(&w));
    w[5] = -(1 << 15);
    let enc = EncodedWeights::new(&packing, &w).unwrap();
    let other = Packing::new(ring, 4, 3, 17, 1).unwrap();
    let ring38 = Ring::new(38).unwrap();
    // Every call below fails on both sides before anything is sent.
    let (s, c) = two_party(
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            let x = vec![0u64; 8];
            let b = vec![0i64; 3];
            let mut errs = Vec::new();
            let mut call = |ring: Ring, pk: &Packing, x: &[u64], t: usize, w| {
                errs.push(matches!(
                    linear(&he, &mut p.ch, Role::Server, ring, pk, x, t, w),
                    Err(ProtocolError::Invalid(_))
                ));
            };
            call(ring, &packing, &x[..7], 2, Some((&enc, &b))); // x is not t × K
            call(ring, &packing, &x, 3, Some((&enc, &b)));
            call(ring, &packing, &x, 2, Some((&enc, &b[..2]))); // bias length
            call(ring, &other, &x, 2, Some((&enc, &b))); // weights of another packing
            call(ring38, &packing, &x, 2, Some((&enc, &b))); // ring mismatch
            call(ring, &packing, &x, 2, None); // no weights
            call(ring, &packing, &[1u64 << 37; 8], 2, Some((&enc, &b))); // not reduced
            let wrong_role = linear(&he, &mut p.ch, Role::Client, ring, &packing, &x, 2, None);
            errs.push(matches!(wrong_role, Err(ProtocolError::Invalid(_))));
            errs
        },
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            let x = vec![0u64; 8];
            let r1 = linear(&he, &mut p.ch, p.role, ring, &packing, &x[..4], 2, None);
            let w = EncodedWeights::new(&packing, &[0; 12]).unwrap();
            let r2 = linear(
                &he,
                &mut p.ch,
                p.role,
                ring,
                &packing,
                &x,
                2,
                Some((&w, &[0; 3])),
            );
            let inv =
                |r: Result<Vec<u64>, ProtocolError>| matches!(r, Err(ProtocolError::Invalid(_)));
            vec![inv(r1), inv(r2)]
        },
    );
    assert!(s.iter().chain(&c).all(|&e| e), "server {s:?}, client {c:?}");
    // Zero rows: nothing to do, nothing sent.
    let (s, c) = two_party(
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            let before = p.ch.stats().total;
            let w = EncodedWeights::new(&packing, &[0; 12]).unwrap();
            let y = linear(
                &he,
                &mut p.ch,
                p.role,
                ring,
                &packing,
                &[],
                0,
                Some((&w, &[0; 3])),
            );
            (
                y.unwrap().len(),
                p.ch.stats().total.bytes() - before.bytes(),
            )
        },
        move |p| {
            let he = HeSession::setup(&mut p.ch, p.role).unwrap();
            linear(&he, &mut p.ch, p.role, ring, &packing, &[], 0, None)
                .unwrap()
                .len()
        },
    );
    assert_eq!((s, c), ((0, 0), 0));
}

/// What the client receives — the switched `a` of every result and the returned `b`
/// coefficients — looks uniform and independent of the weights: for W = 0, W = all +2^15 and a
/// random W, every bit of the `b` values (b_bits) is a fair coin and agrees with the true
/// output's bit half the time, every bit of `a` (k bits) is a fair coin, and the client's output
/// share is uniform and independent of the output. The view's length does not depend on W.
#[test]
fn client_view_is_independent_of_the_weights() {
    let (k, n, t) = (64usize, 4096usize, 1usize);
    let ring = Ring::new(37).unwrap();
    let packing = Packing::new(ring, k, n, 16, 1).unwrap();
    let mut rng = Prg::from_entropy();
    let x = values_with_edges(&mut rng, k, 37);
    let mut lens = Vec::new();
    for which in 0..3 {
        let w: Vec<i64> = match which {
            0 => vec![0; k * n],
            1 => vec![1 << 15; k * n],
            _ => weights(&mut rng, k, n, 16),
        };
        let bias = vec![0i64; n];
        let y = cleartext(ring, &x, t, k, n, &w, &bias);
        let enc = EncodedWeights::new(&packing, &w).unwrap();
        let x_s = ring.random(&mut rng, k);
        let x_c = ring.sub_vec(&x, &x_s);
        let (ys, (view, yc)) = on_mem_pair(
            |mut ch| {
                let he = HeSession::setup(&mut ch, Role::Server).unwrap();
                let w = Some((&enc, &bias[..]));
                linear(&he, &mut ch, Role::Server, ring, &packing, &x_s, t, w).unwrap()
            },
            move |ch| {
                let mut tap = Tap::new(ch);
                let he = HeSession::setup(&mut tap, Role::Client).unwrap();
                let out =
                    linear(&he, &mut tap, Role::Client, ring, &packing, &x_c, t, None).unwrap();
                (tap.received, out)
            },
        );
        assert_eq!(ring.add_vec(&ys, &yc), y);
        lens.push(view.len());
        let cost = packing.cost(t);
        assert_eq!(view.len(), cost.bytes_down);
        let kk = packing.out.k;
        let a_len = N * kk as usize / 8;
        let a_vals = ciphergpt_runtime::crypto::pack::unpack(&view, cost.cts_down * N, kk);
        let b_vals = ciphergpt_runtime::crypto::pack::unpack(
            &view[cost.cts_down * a_len..],
            n,
            packing.out.b_bits,
        );
        // The b values are in output order (one result per column block, in order); compare
        // their low 37 bits with the output's.
        assert_uniform_and_independent(&b_vals, &y, 37, "b");
        let zeros = vec![0u64; a_vals.len()];
        assert_uniform_and_independent(&a_vals, &zeros, kk, "a");
        assert_uniform_and_independent(&yc, &y, 37, "client share");
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]));
}
