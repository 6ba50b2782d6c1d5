//! The executor against the cleartext simulator on the committed trained model: a two-party
//! prefill and decode steps (over mem and over TCP) give, reconstructed, exactly the simulator's
//! logits and the same sampled tokens; the server's result is never the token. Whole sessions
//! with top-K sampling draw only tokens from the simulator's top K.

use crate::common;

use ciphergpt_compiler::fixed::{self, simulate::Simulator};
use ciphergpt_compiler::plan::{self, instruction::Op, Plan, Sample, WeightsFile};
use ciphergpt_runtime::crypto::CotBackend;
use ciphergpt_runtime::exec::{EncodedModel, Executor};
use ciphergpt_runtime::protocols::attention_he::DuplexHe;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::session::{ClientOptions, Decoding, SessionReport};
use common::*;
use std::sync::Arc;

fn compiled() -> (Plan, WeightsFile) {
    trained_with(&fixed::Options::default())
}

/// Server: Executor over the weights; returns its logits shares per program and its results.
/// Client: the prompt; returns its shares and tokens.
fn run(prompt: Vec<i64>, steps: usize, tcp: bool) {
    let (plan, weights) = compiled();
    let ring = Ring::new(plan.ring_bits).unwrap();
    let logits = logits_register(&plan);
    // The oracle.
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    let mut want_tokens = vec![sim.prefill(&prompt).unwrap()];
    let mut want_logits = vec![sim.last_logits.last().unwrap().clone()];
    for _ in 0..steps {
        let t = *want_tokens.last().unwrap() as i64;
        want_tokens.push(sim.decode(t).unwrap());
        want_logits.push(sim.last_logits.last().unwrap().clone());
    }
    let plan = Arc::new(plan);
    let (ps, pc) = (plan.clone(), plan.clone());
    let t = prompt.len();
    let server = move |p: &mut Peer| {
        let prepared = EncodedModel::new(&ps, Some(&weights)).unwrap();
        let he = DuplexHe::setup(&mut p.ch, p.role).unwrap();
        let mut ex = Executor::new(&ps, p.role, &prepared).unwrap();
        ex.keep_registers = true;
        // The session's bound (as `session` sets it): the attention layouts are sized for it.
        ex.set_context(t + steps).unwrap();
        let mut shares = Vec::new();
        let r = ex.prefill(&mut p.ot, &he, &mut p.ch, t, None).unwrap();
        assert_eq!(r, None, "the server learned the token");
        shares.push(ex.registers[&logits].clone());
        for _ in 0..steps {
            assert_eq!(ex.decode(&mut p.ot, &he, &mut p.ch, None).unwrap(), None);
            shares.push(ex.registers[&logits].clone());
        }
        // One step beyond the bound fails at once, before any message.
        let e = ex.decode(&mut p.ot, &he, &mut p.ch, None).unwrap_err();
        assert!(e.to_string().contains("the session has"), "{e}");
        shares
    };
    let client = move |p: &mut Peer| {
        let prepared = EncodedModel::new(&pc, None).unwrap();
        let he = DuplexHe::setup(&mut p.ch, p.role).unwrap();
        let mut ex = Executor::new(&pc, p.role, &prepared).unwrap();
        ex.keep_registers = true;
        assert!(ex.set_context(0).is_err());
        assert!(ex.set_context(1 << 20).is_err());
        ex.set_context(t + steps).unwrap();
        let mut shares = Vec::new();
        let mut tokens = vec![ex
            .prefill(&mut p.ot, &he, &mut p.ch, t, Some(&prompt))
            .unwrap()
            .unwrap()];
        shares.push(ex.registers[&logits].clone());
        for _ in 0..steps {
            let last = *tokens.last().unwrap() as i64;
            tokens.push(
                ex.decode(&mut p.ot, &he, &mut p.ch, Some(last))
                    .unwrap()
                    .unwrap(),
            );
            shares.push(ex.registers[&logits].clone());
        }
        let last = *tokens.last().unwrap() as i64;
        assert!(ex.decode(&mut p.ot, &he, &mut p.ch, Some(last)).is_err());
        assert!(
            ex.set_context(t + steps + 1).is_err(),
            "set after the first program"
        );
        (tokens, shares)
    };
    let (s_shares, (tokens, c_shares)) = if tcp {
        two_party_tcp(server, client)
    } else {
        two_party(server, client)
    };
    assert_eq!(tokens, want_tokens);
    for (step, ((a, b), want)) in s_shares.iter().zip(&c_shares).zip(&want_logits).enumerate() {
        let got: Vec<i64> = ring
            .add_vec(a, b)
            .into_iter()
            .map(|v| ring.to_signed(v))
            .collect();
        assert_eq!(&got, want, "logits of program {step}");
    }
}

#[test]
fn prefill_and_decode_equal_the_simulator() {
    run(
        b"In the beginning".iter().map(|&b| b as i64).collect(),
        2,
        false,
    );
}

#[test]
fn decode_over_tcp_equals_the_simulator() {
    run(b"And God".iter().map(|&b| b as i64).collect(), 1, true);
}

/// Issue 7's acceptance run: the five held-out prompts × 16 new tokens, each a two-party session
/// (mem), token for token the simulator's greedy continuation.
#[test]
fn five_prompts_sixteen_tokens_equal_the_simulator() {
    let prompts = include_str!("../../../models/eval-prompts.txt");
    let (plan, weights) = compiled();
    let plan = Arc::new(plan);
    let weights = Arc::new(weights);
    for line in prompts.lines().filter(|l| !l.trim().is_empty()) {
        let prompt: Vec<i64> = line.bytes().map(|b| b as i64).collect();
        let mut sim = Simulator::new(&plan, &weights).unwrap();
        let mut want = vec![sim.prefill(&prompt).unwrap()];
        while want.len() < 16 {
            let t = *want.last().unwrap() as i64;
            want.push(sim.decode(t).unwrap());
        }
        let (ps, pc, w) = (plan.clone(), plan.clone(), weights.clone());
        let t = prompt.len();
        let ((), got) = two_party(
            move |p| {
                let prepared = EncodedModel::new(&ps, Some(&w)).unwrap();
                let he = DuplexHe::setup(&mut p.ch, p.role).unwrap();
                let mut ex = Executor::new(&ps, p.role, &prepared).unwrap();
                assert_eq!(
                    ex.prefill(&mut p.ot, &he, &mut p.ch, t, None).unwrap(),
                    None
                );
                for _ in 1..16 {
                    assert_eq!(ex.decode(&mut p.ot, &he, &mut p.ch, None).unwrap(), None);
                }
            },
            move |p| {
                let prepared = EncodedModel::new(&pc, None).unwrap();
                let he = DuplexHe::setup(&mut p.ch, p.role).unwrap();
                let mut ex = Executor::new(&pc, p.role, &prepared).unwrap();
                let mut out = vec![ex
                    .prefill(&mut p.ot, &he, &mut p.ch, t, Some(&prompt))
                    .unwrap()
                    .unwrap()];
                for _ in 1..16 {
                    let last = *out.last().unwrap() as i64;
                    out.push(
                        ex.decode(&mut p.ot, &he, &mut p.ch, Some(last))
                            .unwrap()
                            .unwrap(),
                    );
                }
                out
            },
        );
        assert_eq!(got, want, "prompt {line:?}");
    }
}

/// A whole session (`session::serve` / `session::generate` over mem) with the given decodings;
/// returns the client's tokens and report.
fn session_run(
    plan: &Arc<Plan>,
    weights: &Arc<WeightsFile>,
    prompt: &[i64],
    new: usize,
    client: Decoding,
    server_seed: Option<u64>,
) -> (Vec<usize>, SessionReport) {
    let options = ClientOptions {
        decoding: client,
        preprocess_tokens: 0,
        ot: CotBackend::Silent,
    };
    let (tokens, report, server) = session_pair(
        Transport::Mem,
        (1, 1),
        plan,
        weights,
        prompt,
        new,
        options,
        server_seed,
    );
    assert_eq!(server.programs.len(), new);
    (tokens, report)
}

/// The decode program's prepared weight products and layers: a session that
/// prepares them in batches of 4 decode steps — before the prompt, then twice more when they run
/// out — gives the simulator's greedy tokens, on silent OT and on IKNP; its decode steps'
/// weight products send only the masked inputs, a small part of the online products' bytes,
/// and its prepared GELUs a fraction of the online GELUs'; both parties report the same
/// preparation batches.
#[test]
fn prepared_products_sessions_equal_the_simulator() {
    // Every layer that can be prepared is, as `--prepare-by online` chooses for this model (the
    // default weighs the preparation in and runs one of its LayerNorms online).
    let (plan, weights) = trained_with(&fixed::Options {
        prepare_by: fixed::prepare::PrepareBy::Online,
        ..fixed::Options::default()
    });
    let products: Vec<u32> = plan
        .decode
        .iter()
        .flat_map(|p| p.instructions.iter())
        .filter_map(|i| match &i.op {
            Some(Op::Linear(l)) | Some(Op::Logits(l)) => Some(l.prepared),
            _ => None,
        })
        .collect();
    assert!(!products.is_empty() && products.iter().all(|&m| m == plan::Linear::PREPARED_RLWE));
    let (plan, weights) = (Arc::new(plan), Arc::new(weights));
    let prompt: Vec<i64> = b"In the beginning".iter().map(|&b| b as i64).collect();
    let new = 10;
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    let mut want = vec![sim.prefill(&prompt).unwrap()];
    while want.len() < new {
        want.push(sim.decode(*want.last().unwrap() as i64).unwrap());
    }
    let decoding = Decoding::of_plan(&plan);
    let run = |batch: u32, ot: CotBackend| {
        let options = ClientOptions {
            decoding,
            preprocess_tokens: batch,
            ot,
        };
        session_pair(
            Transport::Mem,
            (1, 1),
            &plan,
            &weights,
            &prompt,
            new,
            options,
            None,
        )
    };
    // The decode program's GELUs and LayerNorms (two per layer and the final one) are prepared
    // too.
    let gelus = ciphergpt_runtime::exec::prepared_gelus(&plan);
    let layers = plan.model.as_ref().unwrap().layers as usize;
    assert_eq!(gelus.len(), layers);
    let norms = ciphergpt_runtime::exec::prepared_layernorms(&plan);
    assert_eq!(norms.len(), 2 * layers + 1);
    let softmaxes = ciphergpt_runtime::exec::prepared_softmaxes(&plan);
    assert_eq!(softmaxes.len(), layers);
    // The bytes of the decode steps' instructions that `pick` selects, from their costs.
    let decode_bytes = |r: &SessionReport, pick: fn(&Op) -> bool| -> u64 {
        let names: Vec<&str> = plan
            .decode
            .iter()
            .flat_map(|p| p.instructions.iter())
            .filter(|i| i.op.as_ref().is_some_and(pick))
            .map(|i| i.name.as_str())
            .collect();
        r.programs
            .iter()
            .filter(|p| p.program.starts_with("decode"))
            .flat_map(|p| p.instructions.iter())
            .filter(|c| names.contains(&c.name.as_str()))
            .map(|c| c.bytes_sent + c.bytes_received)
            .sum()
    };
    let weight_bytes =
        |r: &SessionReport| decode_bytes(r, |op| matches!(op, Op::Linear(_) | Op::Logits(_)));
    let gelu_bytes = |r: &SessionReport| decode_bytes(r, |op| matches!(op, Op::Gelu(_)));
    let norm_bytes = |r: &SessionReport| decode_bytes(r, |op| matches!(op, Op::LayerNorm(_)));
    let softmax_bytes = |r: &SessionReport| decode_bytes(r, |op| matches!(op, Op::Softmax(_)));
    for ot in [CotBackend::Silent, CotBackend::Iknp] {
        let (online_tokens, online, _) = run(0, ot);
        assert_eq!(online_tokens, want, "{ot:?}, online");
        let (tokens, client, server) = run(4, ot);
        assert_eq!(tokens, want, "{ot:?}");
        for r in [&client, &server] {
            let batches: Vec<usize> = r.preprocess.iter().map(|p| p.tokens).collect();
            assert_eq!(batches, vec![4, 4, 1], "{}", r.party);
            assert_eq!(r.decode_steps.as_ref().unwrap().steps, new - 1);
        }
        // Online: the masked inputs (the tiny model's products take 128 or 512 inputs) and the
        // products' truncations, which still run online: on silent OT a twentieth of the
        // online products' bytes, on IKNP (whose truncations cost more) under half.
        let (with, without) = (weight_bytes(&client), weight_bytes(&online));
        let factor = if ot == CotBackend::Silent { 20 } else { 2 };
        assert!(with * factor < without, "{ot:?}: {with} vs {without}");
        // The GELUs' lookups become openings: on silent OT a fifth of their online bytes or
        // less; on IKNP, whose comparisons stay, under two thirds.
        let (with, without) = (gelu_bytes(&client), gelu_bytes(&online));
        let ok = match ot {
            CotBackend::Silent => with * 5 < without,
            _ => with * 3 < without * 2,
        };
        assert!(ok, "{ot:?}: GELU {with} vs {without}");
        // The LayerNorms' square and product become openings: on IKNP (exact counts; on
        // silent OT the pool refills land where they may) at least the squares' cross terms
        // less, 1,268 bytes per entry.
        if ot == CotBackend::Iknp {
            let (with, without) = (norm_bytes(&client), norm_bytes(&online));
            let entries: u64 = norms.iter().map(|&(_, r, l)| (r as u64) * l.n).sum();
            let saved = 1_268 * entries * (new as u64 - 1);
            assert!(without - with >= saved, "LayerNorm {with} vs {without}");
        }
        // The softmaxes' table lookups become the digits' offsets: on IKNP at least the
        // lookups' random OTs less, 16 log₂N bytes per score and table.
        if ot == CotBackend::Iknp {
            let (with, without) = (softmax_bytes(&client), softmax_bytes(&online));
            let heads: usize = softmaxes.iter().map(|s| s.1).sum();
            let scores: usize = (prompt.len() + 1..prompt.len() + new).sum::<usize>() * heads;
            let bits = |s: &plan::Softmax| (s.hi_bits + s.lo_bits) as u64;
            let saved = 16 * bits(softmaxes[0].2) * scores as u64;
            assert!(without - with >= saved, "Softmax {with} vs {without}");
        }
        // Every batch prepared every GELU, LayerNorm and softmax (the tiny model's fit one
        // batch's budget).
        for p in &client.preprocess {
            let prepared = |names: Vec<&str>| {
                p.instructions
                    .iter()
                    .filter(|c| names.contains(&c.name.as_str()))
                    .count()
            };
            assert_eq!(prepared(gelus.iter().map(|g| g.0).collect()), gelus.len());
            assert_eq!(prepared(norms.iter().map(|g| g.0).collect()), norms.len());
            assert_eq!(
                prepared(softmaxes.iter().map(|g| g.0).collect()),
                softmaxes.len()
            );
        }
        let pre: u64 = client
            .preprocess
            .iter()
            .map(|p| p.total.bytes_sent + p.total.bytes_received)
            .sum();
        assert_eq!(client.programs.len(), new);
        assert!(
            pre > without / 2,
            "the preparation moves the products' bytes: {pre} vs {without}"
        );
    }
}

/// Top-K sampling in a whole session: every sampled token is among the K largest of the
/// simulator's logits after the prefix actually generated, the Sampling class has a cost in every
/// program, and both parties seeded make the run reproducible; K = 1 asked of a plan compiled
/// for top-40 gives the simulator's greedy tokens.
#[test]
fn top_k_sampling_sessions() {
    let options = fixed::Options {
        decoding: fixed::lower::Decoding {
            top_k: 40,
            inv_temperature: Sample::inv_temperature_of(0.8).unwrap(),
        },
        ..Default::default()
    };
    let (plan, weights) = trained_with(&options);
    let (plan, weights) = (Arc::new(plan), Arc::new(weights));
    let prompt: Vec<i64> = b"And God said".iter().map(|&b| b as i64).collect();
    let k = 5;
    let decoding = Decoding {
        top_k: k,
        inv_temperature: Sample::inv_temperature_of(1.5).unwrap(),
        seed: Some(7),
    };
    let (tokens, report) = session_run(&plan, &weights, &prompt, 5, decoding, Some(9));
    // The oracle: the simulator's logits along the sampled continuation.
    let mut sim = Simulator::new(&plan, &weights).unwrap();
    sim.prefill(&prompt).unwrap();
    for (i, &tok) in tokens.iter().enumerate() {
        let z = sim.last_logits.last().unwrap().clone();
        let top = ciphergpt_compiler::fixed::semantics::top_k(&z, k as usize);
        assert!(
            top.contains(&tok),
            "token {i} = {tok} not in the top {k}: {top:?}"
        );
        sim.decode(tok as i64).unwrap();
    }
    for p in &report.programs {
        let s = p.classes.iter().find(|c| c.name == "Sampling").unwrap();
        assert!(s.bytes_sent > 0 && s.rounds > 0, "{}: {s:?}", p.program);
    }
    let (again, _) = session_run(&plan, &weights, &prompt, 5, decoding, Some(9));
    assert_eq!(again, tokens, "both parties seeded: the same tokens");
    // K = 1 asked of a top-40 plan: greedy, the simulator's tokens.
    let greedy = Decoding {
        top_k: 1,
        inv_temperature: 1 << 16,
        seed: None,
    };
    let (got, _) = session_run(&plan, &weights, &prompt, 4, greedy, None);
    let mut greedy_plan = (*plan).clone();
    for prog in [greedy_plan.prefill.as_mut(), greedy_plan.decode.as_mut()] {
        for ins in prog.unwrap().instructions.iter_mut() {
            if let Some(Op::Sample(s)) = ins.op.as_mut() {
                s.top_k = 1;
            }
        }
    }
    let mut sim = Simulator::new(&greedy_plan, &weights).unwrap();
    let mut want = vec![sim.prefill(&prompt).unwrap()];
    while want.len() < 4 {
        want.push(sim.decode(*want.last().unwrap() as i64).unwrap());
    }
    assert_eq!(got, want);
}
