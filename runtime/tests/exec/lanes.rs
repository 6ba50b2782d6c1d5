//! The executor and whole sessions on several lanes (channels, each with its own OT extension)
//! against the cleartext simulator on the committed trained model: the tokens and the logits are
//! the simulator's with 3 lanes and with 2, every register equals the one-lane run's, every byte
//! a lane's channel carries is in some instruction's cost, the totals stay within a few percent of
//! the one-lane run's (the same protocols on the same data), and the report counts the lanes.

use crate::common;

use ciphergpt_compiler::fixed::{self, simulate::Simulator};
use ciphergpt_compiler::plan::{cost, instruction::Op, Plan, WeightsFile};
use ciphergpt_runtime::crypto::{CotBackend, OtPair, Prg};
use ciphergpt_runtime::exec::{EncodedModel, Executor, InstructionCost, Lane};
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::attention_he::DuplexHe;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::session::{ClientOptions, SessionReport};
use common::{logits_register, on_mem_pair, on_session, session_pair, trained_with, Transport};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

fn compiled() -> &'static (Arc<Plan>, Arc<WeightsFile>) {
    static C: OnceLock<(Arc<Plan>, Arc<WeightsFile>)> = OnceLock::new();
    C.get_or_init(|| {
        let (plan, weights) = trained_with(&fixed::Options::default());
        (Arc::new(plan), Arc::new(weights))
    })
}

/// A long enough prompt that every split op splits in the prefill (LayerNorm rows ≥ lanes and
/// ≥ 1,024 elements, Softmax's causal rows over 1,024 elements, GELU and the truncations).
const PROMPT: &[u8] = b"And God said, Let there ";

/// Decode steps after the prefill.
const STEPS: usize = 1;

/// The one-lane run of [`PROMPT`], shared by the tests.
fn one_lane() -> &'static (Side, Side) {
    static R: OnceLock<(Side, Side)> = OnceLock::new();
    R.get_or_init(|| {
        let prompt: Vec<i64> = PROMPT.iter().map(|&b| b as i64).collect();
        run(1, &prompt, STEPS)
    })
}

/// One party's result of a run: per program, its registers' shares, its costs, and the bytes
/// every channel carried during it; the tokens at the client.
struct Side {
    registers: Vec<HashMap<u32, Vec<u64>>>,
    costs: Vec<Vec<InstructionCost>>,
    channel_bytes: Vec<u64>,
    tokens: Vec<usize>,
}

/// Bytes sent plus received on lane 0 and on every other lane.
fn all_bytes(ch: &dyn Channel, ex: &Executor) -> u64 {
    ch.stats().total.bytes() + ex.lane_stats().iter().map(|s| s.total.bytes()).sum::<u64>()
}

/// One party: set up its lanes (lane 0's OT and RLWE keys, then the others' OT), run the prefill
/// and `steps` decode steps, keep everything.
fn party(
    role: Role,
    chans: Vec<Box<dyn Channel>>,
    plan: &Plan,
    weights: Option<&WeightsFile>,
    prompt: &[i64],
    steps: usize,
) -> Side {
    let mut chans = chans.into_iter();
    let mut ch = chans.next().unwrap();
    let more: Vec<Box<dyn Channel>> = chans.collect();
    let mut ot = OtPair::setup(&mut ch, role, &mut Prg::from_entropy()).unwrap();
    let he = DuplexHe::setup(&mut ch, role).unwrap();
    let (lanes, _) = Lane::setup_all(more, role, CotBackend::Silent).unwrap();
    let prepared = EncodedModel::new(plan, weights).unwrap();
    let mut ex = Executor::new(plan, role, &prepared).unwrap();
    ex.keep_registers = true;
    ex.set_context(prompt.len() + steps).unwrap();
    ex.set_lanes(lanes);
    let client = role == Role::Client;
    let mut side = Side {
        registers: Vec::new(),
        costs: Vec::new(),
        channel_bytes: Vec::new(),
        tokens: Vec::new(),
    };
    for step in 0..=steps {
        let before = all_bytes(ch.as_ref(), &ex);
        let tok = if step == 0 {
            ex.prefill(
                &mut ot,
                &he,
                &mut ch,
                prompt.len(),
                client.then_some(prompt),
            )
        } else {
            let last = side.tokens.last().map(|&t| t as i64);
            ex.decode(&mut ot, &he, &mut ch, last.filter(|_| client))
        }
        .unwrap();
        assert_eq!(tok.is_some(), client, "only the client learns the token");
        side.tokens.extend(tok);
        side.channel_bytes
            .push(all_bytes(ch.as_ref(), &ex) - before);
        side.registers.push(std::mem::take(&mut ex.registers));
        side.costs.push(ex.costs.clone());
    }
    assert_eq!(ex.lanes(), ex.lane_stats().len() + 1);
    side
}

/// Server and client on `lanes` in-memory lanes (negotiated as a TCP session is).
fn run(lanes: usize, prompt: &[i64], steps: usize) -> (Side, Side) {
    let (plan, weights) = compiled();
    let (pc, p) = (plan.clone(), prompt.to_vec());
    on_session(
        Transport::Mem,
        (lanes, lanes),
        |s| {
            assert_eq!(s.len(), lanes);
            party(Role::Server, s, plan, Some(weights), prompt, steps)
        },
        move |c| {
            assert_eq!(c.len(), lanes);
            party(Role::Client, c, &pc, None, &p, steps)
        },
    )
}

/// Reconstruct register `r` of program `i` as signed values.
fn open(ring: Ring, s: &Side, c: &Side, i: usize, r: u32) -> Vec<i64> {
    ring.add_vec(&s.registers[i][&r], &c.registers[i][&r])
        .into_iter()
        .map(|v| ring.to_signed(v))
        .collect()
}

/// An instruction's bytes, its silent-OT refills included.
fn bytes(costs: &[InstructionCost]) -> u64 {
    costs
        .iter()
        .map(|c| c.counters.bytes() + c.ot_refill.bytes())
        .sum()
}

/// The oracle: the simulator's greedy tokens and logits per program.
fn simulated(prompt: &[i64], steps: usize) -> (Vec<usize>, Vec<Vec<i64>>) {
    let (plan, weights) = compiled();
    let mut sim = Simulator::new(plan, weights).unwrap();
    let mut tokens = vec![sim.prefill(prompt).unwrap()];
    let mut logits = vec![sim.last_logits.last().unwrap().clone()];
    for _ in 0..steps {
        tokens.push(sim.decode(*tokens.last().unwrap() as i64).unwrap());
        logits.push(sim.last_logits.last().unwrap().clone());
    }
    (tokens, logits)
}

#[test]
fn three_lanes_equal_the_simulator_and_the_one_lane_run() {
    let (plan, _) = compiled();
    let ring = Ring::new(plan.ring_bits).unwrap();
    let prompt: Vec<i64> = PROMPT.iter().map(|&b| b as i64).collect();
    let (want_tokens, want_logits) = simulated(&prompt, STEPS);
    // The prefill's GELUs run on correlations made at the request (the cost model's choice
    // for this many elements), so the logits below check that path too.
    let mut gelus = 0;
    for ins in plan.prefill.iter().flat_map(|p| p.instructions.iter()) {
        if let Some(Op::Gelu(g)) = &ins.op {
            let n = prompt.len() as u64 * plan.registers[ins.inputs[0] as usize].cols;
            assert!(
                cost::prefill_gelu(plan.ring_bits.into(), g, n).1,
                "{}",
                ins.name
            );
            gelus += 1;
        }
    }
    assert!(gelus > 0);
    let (s3, c3) = run(3, &prompt, STEPS);
    let (s1, c1) = one_lane();
    assert_eq!(c3.tokens, want_tokens);
    assert_eq!(c1.tokens, want_tokens);
    let logits = logits_register(plan);
    for (i, want) in want_logits.iter().enumerate() {
        assert_eq!(
            &open(ring, &s3, &c3, i, logits),
            want,
            "logits of program {i}"
        );
        // Every register of the run on lanes is the one-lane run's.
        for &r in s1.registers[i].keys() {
            assert_eq!(
                open(ring, &s3, &c3, i, r),
                open(ring, s1, c1, i, r),
                "program {i}, register {r}"
            );
        }
    }
    for (i, (s, c)) in s3.costs.iter().zip(&c3.costs).enumerate() {
        // Every byte of every lane is in an instruction's cost or its refills, at both parties.
        assert_eq!(bytes(s), s3.channel_bytes[i], "server, program {i}");
        assert_eq!(bytes(c), c3.channel_bytes[i], "client, program {i}");
        // What one party sent the other received, instruction by instruction.
        for (a, b) in s.iter().zip(c) {
            assert_eq!(
                a.counters.bytes_sent, b.counters.bytes_received,
                "{}",
                a.name
            );
            assert_eq!(a.trunc.bytes_sent, b.trunc.bytes_received, "{}", a.name);
            assert_eq!(
                a.ot_refill.bytes_sent, b.ot_refill.bytes_received,
                "{}",
                a.name
            );
        }
        // The same protocols on the same data: within a few percent of one lane's bytes (each
        // lane's OT extension refills on its own).
        let (b3, b1) = (bytes(c) as f64, bytes(&c1.costs[i]) as f64);
        assert!(
            (b3 / b1 - 1.0).abs() < 0.05,
            "program {i}: {b3} vs {b1} bytes"
        );
    }
    // The prefill's split ops ran on more than one lane: their flights are the most of any lane,
    // not the sum, so none takes more than the one-lane run's plus a refill's.
    for (a, b) in c3.costs[0].iter().zip(&c1.costs[0]) {
        assert!(
            a.counters.rounds <= b.counters.rounds + 8,
            "{}: {} rounds on 3 lanes, {} on one",
            a.name,
            a.counters.rounds,
            b.counters.rounds
        );
    }
}

/// A whole session over mem on `lanes` lanes; the server offers more lanes than the client asks
/// for: the client's ask wins.
fn session_run(
    lanes: usize,
    prompt: &[i64],
    new: usize,
) -> (Vec<usize>, SessionReport, SessionReport) {
    let (plan, weights) = compiled();
    // The products online, as in the executor's own runs it is compared with.
    let options = ClientOptions {
        preprocess_tokens: 0,
        ..ClientOptions::of_plan(plan)
    };
    session_pair(
        Transport::Mem,
        (lanes + 2, lanes),
        plan,
        weights,
        prompt,
        new,
        options,
        None,
    )
}

/// Bytes of one lane's OT setup and of the RLWE keys' exchange, each measured on its own.
fn setup_bytes() -> (u64, u64) {
    let (bytes, ()) = on_mem_pair(
        |mut a| {
            OtPair::setup(&mut a, Role::Server, &mut Prg::from_entropy()).unwrap();
            let ot = a.stats().total.bytes();
            DuplexHe::setup(&mut a, Role::Server).unwrap();
            (ot, a.stats().total.bytes() - ot)
        },
        |mut b| {
            OtPair::setup(&mut b, Role::Client, &mut Prg::from_entropy()).unwrap();
            DuplexHe::setup(&mut b, Role::Client).unwrap();
        },
    );
    bytes
}

#[test]
fn a_session_on_two_lanes_equals_the_simulator_and_counts_every_lane() {
    let prompt: Vec<i64> = PROMPT.iter().map(|&b| b as i64).collect();
    let new = STEPS + 1;
    let (want, _) = simulated(&prompt, STEPS);
    let (tokens, client, server) = session_run(2, &prompt, new);
    assert_eq!(tokens, want);
    assert_eq!((client.lanes, server.lanes), (2, 2));
    // The setup counts both lanes' OT extension and the RLWE keys.
    let (ot, he) = setup_bytes();
    for r in [&client, &server] {
        assert_eq!(r.setup.bytes_sent + r.setup.bytes_received, 2 * ot + he);
    }
    // Per program, within a few percent of the one-lane run's bytes; both parties agree.
    let (_, one) = one_lane();
    for (i, (c, s)) in client.programs.iter().zip(&server.programs).enumerate() {
        let got = c.total.bytes_sent + c.total.bytes_received;
        assert_eq!(got, s.total.bytes_sent + s.total.bytes_received);
        assert_eq!(c.total.bytes_sent, s.total.bytes_received);
        let want = bytes(&one.costs[i]) as f64;
        assert!(
            (got as f64 / want - 1.0).abs() < 0.05,
            "program {i}: {got} vs {want} bytes"
        );
    }
    // The report serializes the lanes beside the threads.
    let json = serde_json::to_value(&client).unwrap();
    assert_eq!(json["lanes"], 2);
    assert!(json["threads"].as_u64().unwrap() >= 1);
}
