//! A generation session between the server and the client, on its lanes after the handshake
//! (lane 0's channel, and one channel per further lane, [`crate::exec::Lane`]): the client's
//! choice of OT extension, OT setup on every lane at once (and the RLWE keys on lane 0), the
//! client's request (prompt tokens, new tokens, the decoding — K and the temperature — and the
//! preparation batch: public, as the shapes are), the first preparation of the prepared weight
//! products, the prefill, then per further token the client's [`Step`], a preparation batch
//! when one has run out, and one decode step. The sampled tokens reach the client only. Both
//! sides build a cost report from their own channels: per program, per op class as CipherGPT's
//! Table V, the bytes of all lanes, the most flights of any; the preparation batches apart; each
//! line with its link time estimated on lan and wan (`plan::link`).

use std::time::Instant;

use ciphergpt_compiler::plan::cost::OpClass;
use ciphergpt_compiler::plan::link::LinkEstimate;
use ciphergpt_compiler::plan::{Plan, Sample};
use serde::{Deserialize, Serialize};

use crate::crypto::{CotBackend, OtPair, Prg};
use crate::exec::{
    self, EncodedModel, ExecError, Executor, InstructionCost, Lane, Progress, Sampling,
};
use crate::net::wire::{OtChoice, Request, Step, WireMessage};
use crate::net::{scoped, Channel, Counters, NetError, Role};
use crate::protocols::attention_he::DuplexHe;
use crate::protocols::ProtocolError;

/// The op classes of the report, in CipherGPT's Table V order.
/// Beside them, [`OT_REFILL`]: the silent-OT batches the pools ran while the program did.
pub const OP_CLASSES: [&str; 9] = [
    OpClass::MatMul.name(),
    OpClass::Gelu.name(),
    OpClass::Truncation.name(),
    OpClass::Softmax.name(),
    OpClass::LayerNorm.name(),
    OpClass::Embedding.name(),
    OpClass::Sampling.name(),
    OpClass::Local.name(),
    OT_REFILL,
];

/// The report line of the silent-OT batches run when a pool ran dry: they land in whichever
/// instruction empties it, so they are counted apart from the op classes (the cost model
/// amortises them: `docs/cost-model.md`).
pub const OT_REFILL: &str = "OT refill";

/// One op class (or instruction) of one program, from one party's channel.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CostLine {
    pub name: String,
    pub seconds: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub rounds: u64,
    /// The link time of this line's bytes (sent plus received) and rounds on the reference
    /// links, estimated (`plan::link`: rounds · RTT/2 + bytes · 8 / bandwidth); the measured
    /// `seconds` are loopback's, or whatever link the session ran over.
    #[serde(default)]
    pub estimate: LinkEstimate,
}

impl CostLine {
    /// A line of the counters `c`, its link estimate from them.
    pub fn new(name: &str, seconds: f64, c: &Counters) -> CostLine {
        CostLine {
            name: name.to_string(),
            seconds,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            rounds: c.rounds,
            estimate: LinkEstimate::of(c.bytes(), c.rounds),
        }
    }

    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }

    /// Add another line's cost (the name stays); the estimate is the summed counters'.
    pub fn add(&mut self, b: &CostLine) {
        self.seconds += b.seconds;
        self.bytes_sent += b.bytes_sent;
        self.bytes_received += b.bytes_received;
        self.rounds += b.rounds;
        self.estimate = LinkEstimate::of(self.bytes(), self.rounds);
    }
}

/// The cost of one program run (prefill or one decode step).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProgramCost {
    /// `prefill` or `decode N`.
    pub program: String,
    /// Tokens processed and positions after the program.
    pub tokens: usize,
    pub positions: usize,
    /// Per op class ([`OP_CLASSES`]), then the total.
    pub classes: Vec<CostLine>,
    pub total: CostLine,
    /// Per instruction.
    pub instructions: Vec<CostLine>,
}

impl ProgramCost {
    /// The line of op class `name` ([`OP_CLASSES`]).
    pub fn class(&self, name: &str) -> Option<&CostLine> {
        self.classes.iter().find(|c| c.name == name)
    }
}

/// A whole session's report, from one party's view (its sent and received bytes).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionReport {
    /// Which party measured it.
    pub party: String,
    /// OT setup (base OTs both ways) of every lane, and the RLWE keys.
    pub setup: CostLine,
    pub programs: Vec<ProgramCost>,
    /// The preparation batches of the prepared weight products and non-linear layers
    /// (`tokens`: the decode steps each covers), before the prompt and when they run out; not
    /// part of `programs`.
    #[serde(default)]
    pub preprocess: Vec<ProgramCost>,
    /// Worker threads (rayon) this party ran with.
    pub threads: usize,
    /// Lanes (channels, each with its own OT extension) the session ran on.
    #[serde(default)]
    pub lanes: usize,
    /// The spread of the decode steps' costs (none without a decode step): a step processes
    /// one token against the cache and never re-runs the prefix, so its cost should not grow
    /// with the position.
    #[serde(default)]
    pub decode_steps: Option<StepSpread>,
}

/// Least, mean and largest of one measure over the decode steps.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MinMeanMax {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl MinMeanMax {
    fn of(v: impl Iterator<Item = f64> + Clone) -> MinMeanMax {
        let n = v.clone().count().max(1) as f64;
        MinMeanMax {
            min: v.clone().fold(f64::INFINITY, f64::min),
            mean: v.clone().sum::<f64>() / n,
            max: v.fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// max/min (1 when both are 0).
    pub fn ratio(&self) -> f64 {
        if self.max == 0.0 {
            1.0
        } else {
            self.max / self.min.max(f64::MIN_POSITIVE)
        }
    }
}

/// How much the decode steps' costs vary across positions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepSpread {
    /// Decode steps and the positions after the first and the last.
    pub steps: usize,
    pub first_position: usize,
    pub last_position: usize,
    pub seconds: MinMeanMax,
    /// Bytes sent plus received.
    pub bytes: MinMeanMax,
    /// The same without the silent-OT batches run inside the steps ([`OT_REFILL`]): a batch
    /// lands in whichever step empties a pool, so these are what the position changes.
    #[serde(default)]
    pub bytes_without_refills: MinMeanMax,
    pub rounds: MinMeanMax,
    /// The steps' link estimates on the reference links ([`CostLine::estimate`]).
    #[serde(default)]
    pub lan_s: MinMeanMax,
    #[serde(default)]
    pub wan_s: MinMeanMax,
}

impl SessionReport {
    /// The spread of the decode steps' totals; `None` without a decode step.
    pub fn decode_spread(&self) -> Option<StepSpread> {
        let steps: Vec<&ProgramCost> = self
            .programs
            .iter()
            .filter(|p| p.program.starts_with("decode"))
            .collect();
        let (first, last) = (steps.first()?, steps.last()?);
        let it = steps.iter();
        Some(StepSpread {
            steps: steps.len(),
            first_position: first.positions,
            last_position: last.positions,
            seconds: MinMeanMax::of(it.clone().map(|p| p.total.seconds)),
            bytes: MinMeanMax::of(it.clone().map(|p| p.total.bytes() as f64)),
            bytes_without_refills: MinMeanMax::of(
                it.clone().map(|p| {
                    (p.total.bytes() - p.class(OT_REFILL).map_or(0, CostLine::bytes)) as f64
                }),
            ),
            rounds: MinMeanMax::of(it.clone().map(|p| p.total.rounds as f64)),
            lan_s: MinMeanMax::of(it.clone().map(|p| p.total.estimate.lan_s)),
            wan_s: MinMeanMax::of(it.map(|p| p.total.estimate.wan_s)),
        })
    }
}

/// Fold an executor's per-instruction costs into a program report. The truncations inside
/// matrix products are their own class, as in CipherGPT's table.
fn program_cost(
    program: String,
    tokens: usize,
    positions: usize,
    costs: &[InstructionCost],
) -> ProgramCost {
    let mut classes: Vec<CostLine> = OP_CLASSES
        .iter()
        .map(|c| CostLine {
            name: c.to_string(),
            ..Default::default()
        })
        .collect();
    let mut total = CostLine {
        name: "total".into(),
        ..Default::default()
    };
    let mut instructions = Vec::with_capacity(costs.len());
    for c in costs {
        let all = CostLine::new(&c.name, c.seconds, &c.counters);
        let tr = CostLine::new(OpClass::Truncation.name(), c.trunc_seconds, &c.trunc);
        let own = CostLine::new(
            &c.name,
            c.seconds - c.trunc_seconds,
            &c.counters.without(&c.trunc),
        );
        let refill = CostLine::new(OT_REFILL, 0.0, &c.ot_refill);
        let class = c.class.name();
        for cl in classes.iter_mut() {
            if cl.name == class {
                cl.add(&own);
            } else if cl.name == OpClass::Truncation.name() {
                cl.add(&tr);
            } else if cl.name == OT_REFILL {
                cl.add(&refill);
            }
        }
        total.add(&all);
        total.add(&refill);
        instructions.push(all);
    }
    ProgramCost {
        program,
        tokens,
        positions,
        classes,
        total,
        instructions,
    }
}

/// OT extension in both directions on every lane (lanes 1.. in their own threads) and both
/// parties' RLWE public keys on lane 0, with their cost: the bytes of all lanes, the most flights
/// of any, the wall time.
#[allow(clippy::type_complexity)]
fn setup<C: Channel + ?Sized>(
    ch: &mut C,
    more: Vec<Box<dyn Channel>>,
    role: Role,
    backend: CotBackend,
) -> Result<(OtPair, DuplexHe, Vec<Lane>, CostLine), SessionError> {
    let t0 = Instant::now();
    let before = ch.stats().total;
    let (first, rest) = std::thread::scope(|s| {
        let rest = s.spawn(move || Lane::setup_all(more, role, backend));
        let first = (|| -> Result<(OtPair, DuplexHe), SessionError> {
            let mut rng = Prg::from_entropy();
            let ot = scoped(ch, "setup", |ch| {
                OtPair::setup_with(ch, role, backend, &mut rng)
            })?;
            let he = scoped(ch, "setup", |ch| DuplexHe::setup(ch, role))?;
            Ok((ot, he))
        })();
        (first, rest.join())
    });
    let rest = rest.unwrap_or_else(|p| std::panic::resume_unwind(p));
    let (ot, he) = first?;
    let (lanes, cost) = rest?;
    let c: Counters = exec::concurrent([ch.stats().total.since(&before), cost]);
    Ok((
        ot,
        he,
        lanes,
        CostLine::new("setup", t0.elapsed().as_secs_f64(), &c),
    ))
}

/// Errors of a session: the network, a protocol's set-up, or an instruction.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// What the client chooses for a session besides its prompt, all public to both parties: the
/// decoding, how many decode steps of the prepared weight products and non-linear layers each
/// preparation batch covers (0: everything online), and the OT extension (silent OT, or IKNP;
/// sent before the setup).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    pub decoding: Decoding,
    pub preprocess_tokens: u32,
    pub ot: CotBackend,
}

impl ClientOptions {
    /// The plan's decoding, the default preparation batch, silent OT.
    pub fn of_plan(plan: &Plan) -> ClientOptions {
        ClientOptions {
            decoding: Decoding::of_plan(plan),
            preprocess_tokens: DEFAULT_PREPROCESS_TOKENS,
            ot: CotBackend::Silent,
        }
    }
}

/// Decode steps a preparation batch covers unless the client says otherwise.
pub const DEFAULT_PREPROCESS_TOKENS: u32 = 256;

/// Prepare the decode steps `from..new` need when a prepared product has run out, at most
/// `batch` of them, and add the cost to the report's `preprocess` list. Both parties call it at
/// the same points with the same arguments.
#[allow(clippy::too_many_arguments)]
fn refill<C: Channel + ?Sized>(
    ex: &mut Executor,
    ot: &mut OtPair,
    he: &DuplexHe,
    ch: &mut C,
    batch: usize,
    from: usize,
    new: usize,
    report: &mut SessionReport,
) -> Result<(), SessionError> {
    let steps = batch.min(new.saturating_sub(from));
    if steps == 0 || !ex.needs_preparation() {
        return Ok(());
    }
    ex.preprocess(ot, he, ch, steps)?;
    report.preprocess.push(program_cost(
        "preprocess".into(),
        steps,
        ex.positions,
        &ex.costs,
    ));
    Ok(())
}

/// How the client wants its tokens chosen: K (1 = greedy), the temperature's 16-bit fixed-point
/// reciprocal (`plan::Sample::inv_temperature_of`), and an optional seed for this party's
/// sampling randomness. Both K and the temperature are public to both parties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoding {
    pub top_k: u32,
    pub inv_temperature: u32,
    pub seed: Option<u64>,
}

impl Decoding {
    /// The plan's default mode, fresh randomness.
    pub fn of_plan(plan: &Plan) -> Decoding {
        let (top_k, inv_temperature) = crate::exec::plan_decoding(plan);
        Decoding {
            top_k,
            inv_temperature,
            seed: None,
        }
    }

    fn sampling(&self) -> Sampling {
        Sampling::new(self.top_k, self.inv_temperature, self.seed)
    }
}

/// The positions a session of `prompt` tokens generating `new` tokens fills, `prompt + new − 1`,
/// if the prompt and the count are positive and that fits the plan's model; else a one-line
/// reason. Overflow-checked: the counts come from flags and from the wire.
pub fn context_positions(plan: &Plan, prompt: usize, new: usize) -> Result<usize, String> {
    let positions = plan.model.as_ref().map_or(0, |m| m.positions);
    if prompt == 0 {
        return Err("the prompt is empty: give at least one token".into());
    }
    if new == 0 {
        return Err("the number of new tokens must be at least 1".into());
    }
    match prompt.checked_add(new - 1) {
        Some(n) if n as u64 <= positions => Ok(n),
        need => Err(format!(
            "{prompt} prompt tokens and {new} new ones need {} positions, the model has {positions}",
            need.map_or(format!("at least 2^{}", usize::BITS), |n| n.to_string())
        )),
    }
}

/// The request's decoding is usable with `plan` ([`Sample::check_decoding`]).
fn check_decoding(plan: &Plan, top_k: u32, inv_temperature: u32) -> Result<(), String> {
    let vocab = plan.model.as_ref().map_or(0, |m| m.vocab);
    Sample::check_decoding(top_k, inv_temperature, vocab)
}

/// The server's side of one session on lane 0's channel `ch` and the channels of lanes 1..
/// (`more`; empty: one lane): answer the client's request with `plan` and the weights `prepared`
/// once for it; `seed` seeds the server's sampling randomness (fresh when `None`). Returns the
/// server's report.
pub fn serve<C: Channel + ?Sized>(
    ch: &mut C,
    more: Vec<Box<dyn Channel>>,
    plan: &Plan,
    prepared: &EncodedModel,
    seed: Option<u64>,
) -> Result<SessionReport, SessionError> {
    let role = Role::Server;
    let mut report = SessionReport {
        party: "server".into(),
        threads: rayon::current_num_threads(),
        lanes: 1 + more.len(),
        ..Default::default()
    };
    let backend = OtChoice::recv(ch)?.backend();
    let (mut ot, he, lanes, setup) = setup(ch, more, role, backend)?;
    report.setup = setup;
    let req = Request::recv(ch)?;
    let (t, new) = (req.prompt_tokens() as usize, req.new_tokens() as usize);
    let batch = req.preprocess_tokens() as usize;
    let decoding = Decoding {
        top_k: req.top_k(),
        inv_temperature: req.inv_temperature(),
        seed,
    };
    check_decoding(plan, decoding.top_k, decoding.inv_temperature)
        .map_err(|e| NetError::Malformed(format!("request: {e}")))?;
    let context = context_positions(plan, t, new)
        .map_err(|e| NetError::Malformed(format!("request: {e}")))?;
    let mut ex = Executor::new(plan, role, prepared)?;
    ex.sampling = decoding.sampling();
    ex.set_context(context)?;
    ex.set_lanes(lanes);
    refill(&mut ex, &mut ot, &he, ch, batch, 1, new, &mut report)?;
    ex.prefill(&mut ot, &he, ch, t, None)?;
    report
        .programs
        .push(program_cost("prefill".into(), t, ex.positions, &ex.costs));
    for step in 1..new {
        if Step::recv(ch)? == Step::Stop {
            break;
        }
        refill(&mut ex, &mut ot, &he, ch, batch, step, new, &mut report)?;
        ex.decode(&mut ot, &he, ch, None)?;
        report.programs.push(program_cost(
            format!("decode {step}"),
            1,
            ex.positions,
            &ex.costs,
        ));
    }
    report.decode_steps = report.decode_spread();
    Ok(report)
}

/// The client's side, on lane 0's channel `ch` and the channels of lanes 1.. (`more`, as many
/// and in the same order as the server's): run the prompt `tokens` and generate up to
/// `new_tokens` tokens chosen as `decoding` says, calling `prefill_progress` before each prefill instruction and `on_token`
/// with each token as it arrives (return `false` to stop early). Returns the generated
/// tokens and the client's report.
#[allow(clippy::too_many_arguments)]
pub fn generate<C: Channel + ?Sized>(
    ch: &mut C,
    more: Vec<Box<dyn Channel>>,
    plan: &Plan,
    prepared: &EncodedModel,
    tokens: &[i64],
    new_tokens: usize,
    options: &ClientOptions,
    prefill_progress: Option<Progress>,
    mut on_token: impl FnMut(usize, &ProgramCost) -> bool,
) -> Result<(Vec<usize>, SessionReport), SessionError> {
    let role = Role::Client;
    // Checked before any message: the request's counts and decoding, and the context, which
    // bounds every buffer of the session.
    let context =
        context_positions(plan, tokens.len(), new_tokens).map_err(NetError::InvalidArgument)?;
    let decoding = &options.decoding;
    check_decoding(plan, decoding.top_k, decoding.inv_temperature)
        .map_err(NetError::InvalidArgument)?;
    let invalid = |e: crate::net::wire::WireError| NetError::InvalidArgument(e.to_string());
    let request = Request::new(
        tokens.len(),
        new_tokens,
        decoding.top_k,
        decoding.inv_temperature,
        options.preprocess_tokens,
    )
    .map_err(invalid)?;
    let ot_choice = OtChoice::new(options.ot).map_err(invalid)?;
    let mut report = SessionReport {
        party: "client".into(),
        threads: rayon::current_num_threads(),
        lanes: 1 + more.len(),
        ..Default::default()
    };
    ot_choice.send(ch)?;
    let (mut ot, he, lanes, setup) = setup(ch, more, role, options.ot)?;
    report.setup = setup;
    request.send(ch)?;
    ch.flush()?;
    let batch = options.preprocess_tokens as usize;
    let mut ex = Executor::new(plan, role, prepared)?;
    ex.sampling = decoding.sampling();
    ex.set_context(context)?;
    ex.set_lanes(lanes);
    refill(&mut ex, &mut ot, &he, ch, batch, 1, new_tokens, &mut report)?;
    ex.progress = prefill_progress;
    let first = ex
        .prefill(&mut ot, &he, ch, tokens.len(), Some(tokens))?
        .ok_or_else(|| NetError::Malformed("prefill sampled no token".into()))?;
    report.programs.push(program_cost(
        "prefill".into(),
        tokens.len(),
        ex.positions,
        &ex.costs,
    ));
    ex.progress = None;
    let mut out = vec![first];
    let mut go = on_token(
        first,
        report.programs.last().unwrap_or(&ProgramCost::default()),
    );
    for step in 1..new_tokens {
        Step::go_on(go).send(ch)?;
        ch.flush()?;
        if !go {
            break;
        }
        refill(
            &mut ex,
            &mut ot,
            &he,
            ch,
            batch,
            step,
            new_tokens,
            &mut report,
        )?;
        let last = *out.last().unwrap_or(&first) as i64;
        let tok = ex
            .decode(&mut ot, &he, ch, Some(last))?
            .ok_or_else(|| NetError::Malformed("decode sampled no token".into()))?;
        report.programs.push(program_cost(
            format!("decode {step}"),
            1,
            ex.positions,
            &ex.costs,
        ));
        out.push(tok);
        go = on_token(
            tok,
            report.programs.last().unwrap_or(&ProgramCost::default()),
        );
    }
    report.decode_steps = report.decode_spread();
    Ok((out, report))
}
