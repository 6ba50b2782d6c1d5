//! The plan executor: one party's side of a two-party run of a compiled plan. It interprets the
//! plan's `prefill` and `decode` programs instruction by instruction, calling the protocol for
//! each; registers hold this party's additive shares over the plan's ring, the KV cache
//! (persistent registers) lives across programs, so a decode step never re-runs the prefix. The
//! instruction semantics is `docs/plan.md`'s, and the cleartext simulator
//! (`ciphergpt_compiler::fixed::simulate`) is its oracle: the reconstructed registers and the
//! sampled token equal the simulator's.
//!
//! Weight products (`Linear`, `Logits`) and the token embedding (a one-hot row of the client's
//! token times the server's table) run under RLWE ([`protocols::linear`], weights pre-encoded once
//! in a [`Prepared`] model), and so do attention's products of two shared matrices
//! ([`protocols::attention_he`], one key and one value cache state per layer, prepared a block
//! of rows ahead).
//!
//! **Lanes.** A session may run on several lanes, each its own channel and its own OT extension
//! ([`Lane`], [`Executor::set_lanes`]); lane 0 is the `(ot, ch)` passed to
//! [`Executor::prefill`] and [`Executor::decode`]. The calls whose work splits into independent
//! parts run their parts on the lanes at once (scoped threads): the products' truncations and
//! GELU elementwise, Softmax and LayerNorm by rows, each in contiguous parts that both parties
//! cut alike from public shapes ([`MIN_SPLIT`]: smaller inputs stay on lane 0). The RLWE
//! products, attention's products and the token choice stay on lane 0 (the first two spread
//! their local work over rayon's threads). The protocols compute elementwise or row functions,
//! so the result is the same whatever the cut; with one lane the messages are exactly those of
//! a single channel. An instruction's cost sums the bytes of all lanes and takes the most
//! flights of any lane (they run at once).
//!
//! **Prepared products.** The decode program's weight products that the plan marks prepared
//! ([`prepared_products`]) get correlations for a batch of future decode steps from
//! [`Executor::preprocess`] (RLWE, or the subfield VOLE for batches above its security floor);
//! a decode step then runs them by [`masked_matmul::multiply`], the client sending only its
//! masked share. The decode program's prepared GELUs ([`prepared_gelus`]) get one-hot vectors
//! and Beaver triples in the same batches (at most [`NONLINEAR_BATCH_BYTES`] per batch) and run
//! by [`gelu::gelu_prepared`] while they last; its prepared LayerNorms ([`prepared_layernorms`])
//! get square pairs and row triples and run by [`layernorm::layernorm_prepared`], its prepared
//! softmaxes ([`prepared_softmaxes`]) one-hot vectors for their exponential tables
//! ([`softmax::softmax_prepared`]).
//!
//! **What each party learns.** The server learns the number of tokens of each program (the
//! shapes); the client learns the sampled token. Everything else is shares produced by the
//! protocols, each of which reveals nothing beyond fresh shares (`docs/protocols.md`); the
//! client's tokens enter only as its share of the lookup index, the weights only at the server.

use std::collections::HashMap;
use std::time::Instant;

use ciphergpt_compiler::fixed::convert;
use ciphergpt_compiler::plan::{
    instruction::Op, Instruction, Linear as PlanLinear, Plan, Program, WeightsFile,
};

use crate::crypto::iknp::{CotBackend, OtPair};
use crate::crypto::{Block, Prg};
use crate::net::{scoped, Channel, Counters, Dir, NetError, Role};
use crate::protocols::attention_he::{self, AttnLayout, DuplexHe, Operand, SharedCache};
use crate::protocols::linear::{self, EncodedWeights, Packing};
use crate::protocols::masked_matmul::{self, Correlation};
use crate::protocols::shares::Ring;
use crate::protocols::svole_matmul::{self, SvoleParams};
use crate::protocols::topk::{self, Temperature, TopKParams};
use crate::protocols::{argmax, gelu, layernorm, softmax, trunc};

/// An error of a two-party run, naming the plan instruction where it happened.
#[derive(Debug, thiserror::Error)]
#[error("plan instruction '{instruction}': {source}")]
pub struct ExecError {
    pub instruction: String,
    #[source]
    pub source: NetError,
}

/// Cost of one executed instruction, from this party's channel.
#[derive(Clone, Debug)]
pub struct InstructionCost {
    pub name: String,
    /// The operation (`Linear`, `Softmax`, …).
    pub op: &'static str,
    pub seconds: f64,
    /// Everything the instruction sent and received, its truncation included.
    pub counters: Counters,
    /// The part of it spent in truncations (`{name}/trunc`).
    pub trunc_seconds: f64,
    pub trunc: Counters,
    /// The silent-OT batches the pools ran during the instruction (`{name}/…/silent-ot`), left
    /// out of `counters` and `trunc`: a refill lands in whichever instruction empties a pool.
    pub ot_refill: Counters,
}

/// A preparation scope's counters: all of them, and the silent-OT batches run inside it.
#[derive(Clone, Copy)]
struct ScopeCost {
    all: Counters,
    refill: Counters,
}

impl ScopeCost {
    fn of(st: &crate::net::Stats, scope: &str) -> ScopeCost {
        ScopeCost {
            all: st.scope_inclusive(scope),
            refill: st.nested_leaf(scope, crate::crypto::silent::SCOPE),
        }
    }
    fn since(&self, before: &ScopeCost) -> ScopeCost {
        ScopeCost {
            all: self.all.since(&before.all),
            refill: self.refill.since(&before.refill),
        }
    }
    /// The cost of preparing `name` (no truncation), its refills apart.
    fn preparation(&self, name: &str, op: &'static str, seconds: f64) -> InstructionCost {
        InstructionCost {
            name: name.to_string(),
            op,
            seconds,
            counters: self.all.without(&self.refill),
            trunc_seconds: 0.0,
            trunc: Counters::default(),
            ot_refill: self.refill,
        }
    }
}

/// One lane of a session beyond lane 0: its own channel to the peer and its own OT extension,
/// set up on that channel ([`Lane::setup_all`]).
pub struct Lane {
    pub ot: OtPair,
    pub ch: Box<dyn Channel>,
}

impl Lane {
    /// Set up the OT extension `backend` (both directions) on each channel, all at once, under
    /// the scope `"setup"`. Returns the lanes and their cost: the bytes of all of them, the most
    /// flights of any one (they run at once).
    pub fn setup_all(
        chans: Vec<Box<dyn Channel>>,
        role: Role,
        backend: CotBackend,
    ) -> Result<(Vec<Lane>, Counters), NetError> {
        let results: Vec<Result<(Lane, Counters), NetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = chans
                .into_iter()
                .map(|mut ch| {
                    s.spawn(move || {
                        let before = ch.stats().total;
                        let mut rng = Prg::from_entropy();
                        let ot = scoped(ch.as_mut(), "setup", |c| {
                            OtPair::setup_with(c, role, backend, &mut rng)
                        })?;
                        let cost = ch.stats().total.since(&before);
                        Ok((Lane { ot, ch }, cost))
                    })
                })
                .collect();
            handles.into_iter().map(join).collect()
        });
        let mut lanes = Vec::with_capacity(results.len());
        let mut cost = Vec::with_capacity(results.len());
        for r in results {
            let (l, c) = r?;
            lanes.push(l);
            cost.push(c);
        }
        Ok((lanes, concurrent(cost)))
    }
}

/// Counters of lanes that ran at once: their bytes summed, the most rounds of any one.
pub fn concurrent(parts: impl IntoIterator<Item = Counters>) -> Counters {
    parts
        .into_iter()
        .fold(Counters::default(), |a, c| Counters {
            bytes_sent: a.bytes_sent + c.bytes_sent,
            bytes_received: a.bytes_received + c.bytes_received,
            rounds: a.rounds.max(c.rounds),
        })
}

/// A scoped thread's result; a panic in it goes on in this thread.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Inputs of fewer elements than this run on lane 0 alone: below it a part's fixed costs (a
/// thread, each protocol's flights on one more channel) outweigh its share of the work.
pub const MIN_SPLIT: usize = 1024;

/// How many parts an input of `elements` elements in `units` separable units (elements or rows)
/// is cut into on `lanes` lanes.
fn parts_for(lanes: usize, elements: usize, units: usize) -> usize {
    if elements < MIN_SPLIT {
        1
    } else {
        lanes.min(units).max(1)
    }
}

/// The bounds of `parts` contiguous near-equal parts of `n` units (parts + 1 offsets).
fn even_cuts(n: usize, parts: usize) -> Vec<usize> {
    (0..=parts).map(|i| i * n / parts).collect()
}

/// The bounds of `parts` contiguous groups of the rows of lengths `lens` (rows ≥ parts), each
/// of at least one row, holding about equal numbers of elements (parts + 1 row offsets).
fn balanced_cuts(lens: &[usize], parts: usize) -> Vec<usize> {
    let rows = lens.len();
    let mut prefix = Vec::with_capacity(rows + 1);
    prefix.push(0usize);
    for &l in lens {
        prefix.push(prefix[prefix.len() - 1] + l);
    }
    let total = prefix[rows];
    let mut cuts = vec![0];
    for k in 1..parts {
        let target = total * k / parts;
        let c = prefix.partition_point(|&p| p < target);
        let prev = cuts[cuts.len() - 1];
        cuts.push(c.clamp(prev + 1, rows - (parts - k)));
    }
    cuts.push(rows);
    cuts
}

/// Run `f` on `parts` parts at once: part 0 on lane 0 (`ot`, `ch`) in this thread, part i on
/// `lanes[i − 1]` in a scoped thread, whose channel takes lane 0's current scope for it (so the
/// instruction's accounting finds every lane's traffic). Returns the parts' results in order, or
/// the first error (lane 0's first: a vanished peer fails every lane alike).
fn on_lanes<C, R, F>(
    ot: &mut OtPair,
    ch: &mut C,
    lanes: &mut [Lane],
    parts: usize,
    f: F,
) -> Result<Vec<R>, NetError>
where
    C: Channel + ?Sized,
    R: Send,
    F: Fn(&mut OtPair, &mut dyn Channel, usize) -> Result<R, NetError> + Sync,
{
    let mut lane0: &mut C = ch;
    let parts = parts.clamp(1, lanes.len() + 1);
    if parts == 1 {
        return Ok(vec![f(ot, &mut lane0, 0)?]);
    }
    let scope = lane0.scope().to_string();
    // Each lane's part runs alongside lane 0's: its first flight continues lane 0's last.
    let last = lane0.accounting_ref().last_flight();
    for lane in lanes[..parts - 1].iter_mut() {
        lane.ch.accounting().resume_flight(last);
    }
    let results: Vec<Result<R, NetError>> = std::thread::scope(|s| {
        let (f, scope) = (&f, scope.as_str());
        let handles: Vec<_> = lanes[..parts - 1]
            .iter_mut()
            .enumerate()
            .map(|(i, lane)| {
                s.spawn(move || scoped(lane.ch.as_mut(), scope, |c| f(&mut lane.ot, c, i + 1)))
            })
            .collect();
        let mut all = vec![f(ot, &mut lane0, 0)];
        all.extend(handles.into_iter().map(join));
        all
    });
    results.into_iter().collect()
}

/// `f` elementwise over `v`: contiguous parts on the lanes at once, concatenated.
fn elementwise<C, F>(
    ot: &mut OtPair,
    ch: &mut C,
    lanes: &mut [Lane],
    v: &[u64],
    f: F,
) -> Result<Vec<u64>, NetError>
where
    C: Channel + ?Sized,
    F: Fn(&mut OtPair, &mut dyn Channel, &[u64]) -> Result<Vec<u64>, NetError> + Sync,
{
    elementwise_at(ot, ch, lanes, v, |ot, c, _, part| f(ot, c, part))
}

/// [`elementwise`], `f` also told where its part starts in `v`.
fn elementwise_at<C, F>(
    ot: &mut OtPair,
    ch: &mut C,
    lanes: &mut [Lane],
    v: &[u64],
    f: F,
) -> Result<Vec<u64>, NetError>
where
    C: Channel + ?Sized,
    F: Fn(&mut OtPair, &mut dyn Channel, usize, &[u64]) -> Result<Vec<u64>, NetError> + Sync,
{
    let parts = parts_for(lanes.len() + 1, v.len(), v.len());
    let cuts = even_cuts(v.len(), parts);
    let out = on_lanes(ot, ch, lanes, parts, |ot, c, i| {
        f(ot, c, cuts[i], &v[cuts[i]..cuts[i + 1]])
    })?;
    Ok(out.concat())
}

/// [`trunc::trunc_within_margin_from`] in the instruction's `…/trunc` scope, on the lanes, its
/// time added to `secs`; `first`, the party that sent the product's last flight, begins it (the
/// cost model's `Bits::begun_after`).
#[allow(clippy::too_many_arguments)]
fn truncate<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    lanes: &mut [Lane],
    role: Role,
    first: Role,
    ring: Ring,
    scope: &str,
    secs: &mut f64,
    s: u32,
    v: &[u64],
) -> Result<Vec<u64>, NetError> {
    let t0 = Instant::now();
    let r = scoped(ch, scope, |ch| {
        elementwise(ot, ch, lanes, v, |ot, c, part| {
            trunc::trunc_within_margin_from(ot, c, role, first, ring, s, part)
        })
    });
    *secs += t0.elapsed().as_secs_f64();
    r
}

/// What a party prepares from the plan once, before any session: the packing of every weight
/// product (both parties, from public shapes and weight widths) and, at the server, the weights
/// pre-encoded for it and the signed biases and position tables.
pub struct Prepared {
    /// Per weight id used as a product's right operand.
    packing: HashMap<u32, Packing>,
    /// The server's pre-encoded weights, per weight id.
    encoded: HashMap<u32, EncodedWeights>,
    /// The server's biases and position tables as signed integers, per weight id (empty for
    /// the weights used only through their encodings; no entries at the client).
    signed: Vec<Vec<i64>>,
    /// The server's weights of the decode program's prepared products ([`masked_matmul`]), as
    /// 32-bit integers (the online product is local to it), per weight id.
    plain: HashMap<u32, Vec<i32>>,
}

impl Prepared {
    /// Packings for `plan`'s weight products and, when `weights` is given (the server), their
    /// encodings. The token table's product is the one-hot row of a token times the table.
    pub fn new(plan: &Plan, weights: Option<&WeightsFile>) -> Result<Prepared, NetError> {
        let ring = Ring::new(plan.ring_bits)?;
        if let Some(w) = weights {
            if w.tensors.len() != plan.weights.len() {
                return Err(NetError::InvalidArgument(format!(
                    "the weights file has {} tensors, the plan {}",
                    w.tensors.len(),
                    plan.weights.len()
                )));
            }
        }
        // Weights read as signed integers during a run: biases and position tables. The others
        // are only used through their encodings (the server's memory: 8 bytes per weight as
        // signed integers, 1 GB for GPT-2 small).
        let mut read = std::collections::HashSet::new();
        let programs = || plan.prefill.iter().chain(plan.decode.iter());
        for ins in programs().flat_map(|p| p.instructions.iter()) {
            match &ins.op {
                Some(Op::Linear(l)) | Some(Op::Logits(l)) => read.extend(l.bias),
                Some(Op::Embed(e)) => {
                    read.insert(e.position_table);
                }
                _ => {}
            }
        }
        let signed: Vec<Vec<i64>> = match weights {
            Some(w) => (0..w.tensors.len() as u32)
                .map(|id| {
                    if read.contains(&id) {
                        w.tensors[id as usize].values()
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let mut packing = HashMap::new();
        let mut encoded = HashMap::new();
        for ins in programs().flat_map(|p| p.instructions.iter()) {
            let id = match &ins.op {
                Some(Op::Linear(l)) | Some(Op::Logits(l)) => l.weight,
                Some(Op::Embed(e)) => e.token_table,
                _ => continue,
            };
            if packing.contains_key(&id) {
                continue;
            }
            let info = plan.weights.get(id as usize).ok_or_else(|| {
                NetError::InvalidArgument(format!("instruction '{}': no weight {id}", ins.name))
            })?;
            let (k, n) = match info.shape.as_slice() {
                [k, n] => (*k as usize, *n as usize),
                other => {
                    return Err(NetError::InvalidArgument(format!(
                        "weight '{}' has shape {other:?}, not a matrix",
                        info.name
                    )))
                }
            };
            let p = Packing::new(ring, k, n, info.bits.max(1), 1)?;
            if let Some(w) = weights.and_then(|w| w.tensors.get(id as usize)) {
                encoded.insert(id, EncodedWeights::new(&p, &w.values())?);
            }
            packing.insert(id, p);
        }
        let mut plain = HashMap::new();
        if let Some(w) = weights {
            for (id, _) in prepared_products(plan) {
                if let Some(t) = w.tensors.get(id as usize) {
                    let v = t.values();
                    if v.iter().any(|&x| i32::try_from(x).is_err()) {
                        return Err(NetError::InvalidArgument(format!(
                            "weight {id}: values beyond 32 bits cannot be prepared"
                        )));
                    }
                    plain.insert(id, v.into_iter().map(|x| x as i32).collect());
                }
            }
        }
        Ok(Prepared {
            packing,
            encoded,
            signed,
            plain,
        })
    }

    /// Bytes of pre-encoded weights held (and of the prepared products' integer weights).
    pub fn encoded_bytes(&self) -> usize {
        self.encoded.values().map(|e| e.bytes()).sum::<usize>()
            + self.plain.values().map(|v| 4 * v.len()).sum::<usize>()
    }
}

/// The decode program's instructions for which `pick` gives a value, with their name and their
/// first input register's columns, in program order.
fn decode_instructions<'a, T>(
    plan: &'a Plan,
    pick: impl Fn(&'a Op) -> Option<T>,
) -> Vec<(&'a str, usize, T)> {
    plan.decode
        .iter()
        .flat_map(|p| p.instructions.iter())
        .filter_map(|i| {
            let v = pick(i.op.as_ref()?)?;
            let cols = i
                .inputs
                .first()
                .and_then(|&r| plan.registers.get(r as usize))
                .map_or(0, |r| r.cols as usize);
            Some((i.name.as_str(), cols, v))
        })
        .collect()
}

/// The decode program's GELUs marked prepared (`Gelu.prepared`): (instruction name, elements per
/// decode step, the plan's tables), in program order.
pub fn prepared_gelus(plan: &Plan) -> Vec<(&str, usize, &ciphergpt_compiler::plan::Gelu)> {
    decode_instructions(plan, |op| match op {
        Op::Gelu(g) if g.prepared => Some(g),
        _ => None,
    })
}

/// The decode program's LayerNorms marked prepared (`LayerNorm.prepared`): (instruction name,
/// rows per decode step, the plan's parameters), in program order.
pub fn prepared_layernorms(
    plan: &Plan,
) -> Vec<(&str, usize, &ciphergpt_compiler::plan::LayerNorm)> {
    decode_instructions(plan, |op| match op {
        Op::LayerNorm(l) if l.prepared => Some(l),
        _ => None,
    })
    .into_iter()
    .map(|(name, cols, l)| (name, cols / (l.n as usize).max(1), l))
    .collect()
}

/// The decode program's softmaxes marked prepared (`Softmax.prepared`): (instruction name,
/// heads, the plan's tables), in program order. A decode step at position P has heads·(P + 1)
/// scores per softmax.
pub fn prepared_softmaxes(plan: &Plan) -> Vec<(&str, usize, &ciphergpt_compiler::plan::Softmax)> {
    decode_instructions(plan, |op| match op {
        Op::Softmax(s) if s.prepared => Some(s),
        _ => None,
    })
    .into_iter()
    .map(|(name, _, s)| (name, s.heads.max(1) as usize, s))
    .collect()
}

/// Scores per head of the `steps` decode steps after `positions` positions: Σ_{j=1..steps}
/// (positions + j).
fn heads_scores(positions: usize, steps: usize) -> usize {
    steps * positions + steps * (steps + 1) / 2
}

/// The most bytes of GELU, LayerNorm and softmax correlations a preparation batch makes per
/// party (GELU's one-hot vectors of N words per element dominate): the batch covers fewer decode
/// steps than the products' when the model's GELUs need more (GPT-2 small: 36,864 elements,
/// 39 MB per step at N = 128).
pub const NONLINEAR_BATCH_BYTES: usize = 512 << 20;

/// A prepared non-linear instruction's correlation.
enum Stock {
    Gelu(gelu::Prepared),
    LayerNorm(layernorm::Prepared),
    Softmax(softmax::Prepared),
}

/// A correlation and how much of it is used: elements for a GELU, rows for a LayerNorm, scores
/// for a softmax.
struct Stocked {
    stock: Stock,
    used: usize,
}

impl Stock {
    fn gelu(&self) -> Option<&gelu::Prepared> {
        match self {
            Stock::Gelu(p) => Some(p),
            _ => None,
        }
    }

    fn layernorm(&self) -> Option<&layernorm::Prepared> {
        match self {
            Stock::LayerNorm(p) => Some(p),
            _ => None,
        }
    }

    fn softmax(&self) -> Option<&softmax::Prepared> {
        match self {
            Stock::Softmax(p) => Some(p),
            _ => None,
        }
    }
}

impl Stocked {
    fn remaining(&self) -> usize {
        let len = match &self.stock {
            Stock::Gelu(g) => g.len(),
            Stock::LayerNorm(l) => l.rows(),
            Stock::Softmax(p) => p.len(),
        };
        len - self.used
    }
}

/// The decode program's weight products marked prepared (`Linear.prepared`, `Embed.prepared`
/// for the token table): (weight id, method), each weight once, in program order.
pub fn prepared_products(plan: &Plan) -> Vec<(u32, u32)> {
    let mut seen = std::collections::HashSet::new();
    plan.decode
        .iter()
        .flat_map(|p| p.instructions.iter())
        .filter_map(|i| match &i.op {
            Some(Op::Linear(l)) | Some(Op::Logits(l)) if l.prepared != PlanLinear::ONLINE => {
                seen.insert(l.weight).then_some((l.weight, l.prepared))
            }
            Some(Op::Embed(e)) if e.prepared != PlanLinear::ONLINE => seen
                .insert(e.token_table)
                .then_some((e.token_table, e.prepared)),
            _ => None,
        })
        .collect()
}

/// A session's decoding: K (1 is greedy), the temperature's 16-bit fixed-point reciprocal (both
/// public, agreed by the two parties) and this party's randomness for top-K sampling (its shuffle
/// permutation and its part of each draw's jointly random value).
pub struct Sampling {
    pub top_k: u32,
    pub inv_temperature: u32,
    rng: Prg,
}

/// The plan's default decoding, (K, the temperature's reciprocal): its `Sample` instruction's,
/// greedy when it has none.
pub fn plan_decoding(plan: &Plan) -> (u32, u32) {
    let sample = plan
        .decode
        .iter()
        .flat_map(|p| p.instructions.iter())
        .find_map(|i| match &i.op {
            Some(Op::Sample(s)) => Some(s),
            _ => None,
        });
    (
        sample.map_or(1, |s| s.top_k.max(1)),
        sample.map_or(1 << 16, |s| s.inv_temperature),
    )
}

impl Sampling {
    /// The plan's default mode ([`plan_decoding`]), fresh randomness.
    pub fn of_plan(plan: &Plan) -> Sampling {
        let (top_k, inv_temperature) = plan_decoding(plan);
        Sampling::new(top_k, inv_temperature, None)
    }

    /// K and the temperature's reciprocal given; randomness from `seed` (reproducible runs: the
    /// seed must stay secret to this party) or fresh.
    pub fn new(top_k: u32, inv_temperature: u32, seed: Option<u64>) -> Sampling {
        Sampling {
            top_k,
            inv_temperature,
            rng: match seed {
                Some(s) => Prg::new(Block(u128::from(s) | 1 << 64)),
                None => Prg::from_entropy(),
            },
        }
    }
}

/// A progress callback: (instruction index, instruction count, instruction name).
pub type Progress = Box<dyn FnMut(usize, usize, &str)>;

/// One party's session state.
pub struct Executor<'p> {
    plan: &'p Plan,
    role: Role,
    ring: Ring,
    prepared: &'p Prepared,
    cache: HashMap<u32, Vec<u64>>,
    /// The RLWE state of each cache register (keys or values), created at first use.
    attention: HashMap<u32, SharedCache>,
    /// Positions processed so far.
    pub positions: usize,
    /// Per-instruction costs of the last program run.
    pub costs: Vec<InstructionCost>,
    /// Keep this party's shares of the last program's registers in [`Executor::registers`]
    /// (for tests that reconstruct them against the simulator).
    pub keep_registers: bool,
    /// This party's shares of the registers of the last program run, when `keep_registers`.
    pub registers: HashMap<u32, Vec<u64>>,
    /// Called before each instruction with (index, count, name): progress for long programs.
    pub progress: Option<Progress>,
    /// How `Sample` picks the token (the plan's default unless the session changes it).
    pub sampling: Sampling,
    /// The most positions this session uses (public), at most the model's; it sizes the
    /// attention layouts ([`Executor::set_context`]).
    context: usize,
    /// Lanes 1.. of the session (none: one lane).
    lanes: Vec<Lane>,
    /// The prepared products' correlations, per weight id ([`Executor::preprocess`]).
    correlations: HashMap<u32, Correlation>,
    /// The prepared GELUs' and LayerNorms' correlations, per instruction name
    /// ([`Executor::preprocess`]).
    stocks: HashMap<String, Stocked>,
    /// Whether the program running is the decode program (only it uses the correlations).
    decoding: bool,
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Embed(_) => "Embed",
        Op::Linear(_) => "Linear",
        Op::SplitQkv(_) => "SplitQkv",
        Op::CacheAppend(_) => "CacheAppend",
        Op::QkT(_) => "QkT",
        Op::Softmax(_) => "Softmax",
        Op::Pv(_) => "Pv",
        Op::LayerNorm(_) => "LayerNorm",
        Op::Gelu(_) => "Gelu",
        Op::Add(_) => "Add",
        Op::Logits(_) => "Logits",
        Op::Sample(_) => "Sample",
    }
}

impl<'p> Executor<'p> {
    /// A session for `role` over a [`Prepared`] plan (the server's holds the weights).
    pub fn new(plan: &'p Plan, role: Role, prepared: &'p Prepared) -> Result<Self, NetError> {
        let ring = Ring::new(plan.ring_bits)?;
        if role == Role::Server && prepared.signed.len() != plan.weights.len() {
            return Err(NetError::InvalidArgument(
                "the server needs the weights file".into(),
            ));
        }
        Ok(Executor {
            plan,
            role,
            ring,
            prepared,
            cache: HashMap::new(),
            attention: HashMap::new(),
            positions: 0,
            costs: Vec::new(),
            keep_registers: false,
            registers: HashMap::new(),
            progress: None,
            sampling: Sampling::of_plan(plan),
            context: plan.model.as_ref().map_or(0, |m| m.positions as usize),
            lanes: Vec::new(),
            correlations: HashMap::new(),
            stocks: HashMap::new(),
            decoding: false,
        })
    }

    /// Run the session on these lanes besides lane 0 (both parties must give as many, in the
    /// same order: lane i's channels connect the two parties' lane i).
    pub fn set_lanes(&mut self, lanes: Vec<Lane>) {
        self.lanes = lanes;
    }

    /// The session's lanes, lane 0 included.
    pub fn lanes(&self) -> usize {
        1 + self.lanes.len()
    }

    /// The accounting of the channels of lanes 1.. (lane 0's is the caller's).
    pub fn lane_stats(&self) -> Vec<crate::net::Stats> {
        self.lanes.iter().map(|l| l.ch.stats()).collect()
    }

    /// Bound this session to `positions` positions in all (prompt plus generated tokens; public,
    /// as every shape is), at most the model's. Both parties must set the same bound before the
    /// first program: it sizes the attention caches' RLWE layouts, whose cost per decode step
    /// grows with the bound (for GPT-2's 1,024 positions a key block of 1,024 rows, 16 inner
    /// blocks per head; for 40 positions one block of 64 rows, one inner block).
    pub fn set_context(&mut self, positions: usize) -> Result<(), NetError> {
        let model = self.plan.model.as_ref().map_or(0, |m| m.positions as usize);
        if positions == 0 || positions > model {
            return Err(NetError::InvalidArgument(format!(
                "a session of {positions} positions: the model has {model}"
            )));
        }
        if self.positions > 0 || !self.attention.is_empty() {
            return Err(NetError::InvalidArgument(
                "the session's positions are set before its first program".into(),
            ));
        }
        self.context = positions;
        Ok(())
    }

    /// Run the prefill program over `t` prompt tokens (`tokens` at the client, `None` at the
    /// server); returns the sampled token at the client.
    pub fn prefill<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        t: usize,
        tokens: Option<&[i64]>,
    ) -> Result<Option<usize>, ExecError> {
        let p = self.plan.prefill.as_ref().ok_or_else(|| ExecError {
            instruction: "prefill".into(),
            source: NetError::InvalidArgument("the plan has no prefill program".into()),
        })?;
        self.run(ot, he, ch, p, t, tokens)
    }

    /// Run one decode step on the last sampled token (known to the client only).
    pub fn decode<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        token: Option<i64>,
    ) -> Result<Option<usize>, ExecError> {
        let p = self.plan.decode.as_ref().ok_or_else(|| ExecError {
            instruction: "decode".into(),
            source: NetError::InvalidArgument("the plan has no decode program".into()),
        })?;
        let tokens = token.map(|t| vec![t]);
        self.decoding = true;
        let r = self.run(ot, he, ch, p, 1, tokens.as_deref());
        self.decoding = false;
        r
    }

    /// Whether a prepared product, GELU, LayerNorm or softmax cannot serve the next decode step
    /// (both parties see the same: the counts are public).
    pub fn needs_preparation(&self) -> bool {
        prepared_products(self.plan)
            .iter()
            .any(|(w, _)| self.correlations.get(w).is_none_or(|c| c.remaining() == 0))
            || prepared_gelus(self.plan)
                .iter()
                .any(|&(name, per_step, _)| self.remaining(name) < per_step)
            || prepared_layernorms(self.plan)
                .iter()
                .any(|&(name, per_step, _)| self.remaining(name) < per_step)
            || prepared_softmaxes(self.plan)
                .iter()
                .any(|&(name, heads, _)| self.remaining(name) < heads * (self.positions + 1))
    }

    /// What is left of a prepared instruction's correlation (elements or rows).
    fn remaining(&self, name: &str) -> usize {
        self.stocks.get(name).map_or(0, Stocked::remaining)
    }

    /// The correlation of instruction `name`, as `pick` reads it, and where its unused part
    /// starts, when the decode program runs, the plan marks the instruction `prepared` and at
    /// least `need` elements (or rows) are left; else `None`, and the instruction runs online.
    fn stock<'s, T>(
        &'s self,
        name: &str,
        prepared: bool,
        need: usize,
        pick: impl Fn(&'s Stock) -> Option<&'s T>,
    ) -> Option<(&'s T, usize)> {
        let s = self.stocks.get(name)?;
        if !(self.decoding && prepared && s.remaining() >= need) {
            return None;
        }
        pick(&s.stock).map(|p| (p, s.used))
    }

    /// Marks `n` more elements (or rows) of instruction `name`'s correlation used.
    fn consume(&mut self, name: &str, n: usize) {
        if let Some(s) = self.stocks.get_mut(name) {
            s.used += n;
        }
    }

    /// Prepare the rows of the next `steps` decode steps for every prepared product that has
    /// none left: by the subfield VOLE when the plan says so and `steps` reaches its security
    /// floor, else by RLWE (`docs/generation.md`); and the correlations of every prepared GELU,
    /// LayerNorm and softmax that cannot serve the next `steps` steps (made anew), for `steps`
    /// steps or as many as [`NONLINEAR_BATCH_BYTES`] holds. Costs per instruction in
    /// [`Executor::costs`], each under the scope `prepare/{instruction}`.
    pub fn preprocess<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        steps: usize,
    ) -> Result<(), ExecError> {
        self.costs.clear();
        if steps == 0 {
            return Ok(());
        }
        let names: HashMap<u32, (String, &'static str)> = self
            .plan
            .decode
            .iter()
            .flat_map(|p| p.instructions.iter())
            .filter_map(|i| match &i.op {
                Some(op @ (Op::Linear(l) | Op::Logits(l))) => {
                    Some((l.weight, (i.name.clone(), op_name(op))))
                }
                Some(op @ Op::Embed(e)) => Some((e.token_table, (i.name.clone(), op_name(op)))),
                _ => None,
            })
            .collect();
        for (w, method) in prepared_products(self.plan) {
            if self.correlations.get(&w).is_some_and(|c| c.remaining() > 0) {
                continue;
            }
            let (name, op) = names.get(&w).cloned().unwrap_or_default();
            let scope = format!("prepare/{name}");
            let fail = |source| ExecError {
                instruction: format!("prepare {name}"),
                source,
            };
            let start = Instant::now();
            let before = ScopeCost::of(&ch.stats(), &scope);
            let corr = scoped(ch, &scope, |ch| {
                self.prepare_product(ot, he, ch, w, method, steps)
            })
            .map_err(fail)?;
            self.correlations.insert(w, corr);
            let spent = ScopeCost::of(&ch.stats(), &scope).since(&before);
            self.costs
                .push(spent.preparation(&name, op, start.elapsed().as_secs_f64()));
        }
        // The GELUs, LayerNorms and softmaxes that cannot serve the next step: `steps` steps,
        // or as many as NONLINEAR_BATCH_BYTES holds (at least one).
        // A softmax's scores per step grow with the position: the session's bound sizes them.
        let gelus = prepared_gelus(self.plan);
        let norms = prepared_layernorms(self.plan);
        let softmaxes = prepared_softmaxes(self.plan);
        let context = self.context;
        let per_step: usize = gelus
            .iter()
            .map(|&(_, n, g)| n * ((1usize << g.pieces_log2.min(16)) + 4) * 8)
            .chain(
                norms
                    .iter()
                    .map(|&(_, rows, l)| rows * (5 * l.n as usize + 1) * 8),
            )
            .chain(softmaxes.iter().map(|&(_, heads, sm)| {
                heads * context * (sm.exp_hi.len() + sm.exp_lo.len() + 2) * 8
            }))
            .sum();
        let batch = steps.min((NONLINEAR_BATCH_BYTES / per_step.max(1)).max(1));
        let (role, ring) = (self.role, self.ring);
        type Make<'a, C> = Box<dyn Fn(&mut OtPair, &mut C) -> Result<Stock, NetError> + 'a>;
        let mut todo: Vec<(&str, &'static str, Make<C>)> = Vec::new();
        // A correlation that cannot serve all `batch` steps is made anew (what is left of it is
        // never used: unused correlations reveal nothing).
        for (name, n, g) in gelus {
            if self.remaining(name) < batch * n {
                let tables = convert::gelu_from_plan(g);
                todo.push((
                    name,
                    "Gelu",
                    Box::new(move |ot, ch| {
                        gelu::prepare(ot, ch, role, ring, &tables, batch * n).map(Stock::Gelu)
                    }),
                ));
            }
        }
        for (name, rows, l) in norms {
            if self.remaining(name) < batch * rows {
                let p = convert::layernorm_from_plan(l);
                todo.push((
                    name,
                    "LayerNorm",
                    Box::new(move |ot, ch| {
                        layernorm::prepare(ot, ch, role, &p, batch * rows).map(Stock::LayerNorm)
                    }),
                ));
            }
        }
        // The next `batch` steps' scores (their positions are known once the prompt is in; before
        // it, the session's bound is).
        let scores_next = heads_scores(self.positions, batch);
        for (name, heads, sm) in softmaxes {
            if self.remaining(name) < heads * scores_next {
                let t = convert::softmax_from_plan(sm);
                let scores = batch * heads * context;
                todo.push((
                    name,
                    "Softmax",
                    Box::new(move |ot, ch| {
                        softmax::prepare(ot, ch, role, &t, scores).map(Stock::Softmax)
                    }),
                ));
            }
        }
        for (name, op, make) in todo {
            let scope = format!("prepare/{name}");
            let start = Instant::now();
            let before = ScopeCost::of(&ch.stats(), &scope);
            let stock = scoped(ch, &scope, |ch| make(ot, ch)).map_err(|source| ExecError {
                instruction: format!("prepare {name}"),
                source,
            })?;
            self.stocks
                .insert(name.to_string(), Stocked { stock, used: 0 });
            let spent = ScopeCost::of(&ch.stats(), &scope).since(&before);
            self.costs
                .push(spent.preparation(name, op, start.elapsed().as_secs_f64()));
        }
        Ok(())
    }

    /// One product's correlation for `rows` rows.
    fn prepare_product<C: Channel + ?Sized>(
        &self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        w: u32,
        method: u32,
        rows: usize,
    ) -> Result<Correlation, NetError> {
        let p = self.prepared.packing.get(&w).ok_or_else(|| {
            NetError::InvalidArgument(format!("weight {w} was not prepared for a product"))
        })?;
        if method == PlanLinear::PREPARED_SVOLE {
            let params = SvoleParams::new(self.ring, rows, p.k, p.n)?;
            if rows >= params.min_rows() {
                let wide: Option<Vec<i64>> = match self.role {
                    Role::Server => Some(
                        self.plain_weights(w)?
                            .iter()
                            .map(|&x| i64::from(x))
                            .collect(),
                    ),
                    Role::Client => None,
                };
                return svole_matmul::prepare(
                    ot,
                    ch,
                    self.role,
                    self.ring,
                    params,
                    wide.as_deref(),
                );
            }
        }
        let enc =
            match self.role {
                Role::Server => Some(self.prepared.encoded.get(&w).ok_or_else(|| {
                    NetError::InvalidArgument(format!("weight {w} is not encoded"))
                })?),
                Role::Client => None,
            };
        masked_matmul::prepare_rlwe(he.session(), ch, self.role, self.ring, p, rows, enc)
    }

    /// The server's integer weights of a prepared product.
    fn plain_weights(&self, w: u32) -> Result<&[i32], NetError> {
        self.prepared.plain.get(&w).map(|v| &v[..]).ok_or_else(|| {
            NetError::InvalidArgument(format!("weight {w} is not held for a prepared product"))
        })
    }

    fn run<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        program: &Program,
        t: usize,
        tokens: Option<&[i64]>,
    ) -> Result<Option<usize>, ExecError> {
        let mut lanes = std::mem::take(&mut self.lanes);
        // A program's flights are counted as the client sees them: each begins afresh, and an
        // instruction that begins in the direction the last one ended continues its flight.
        for a in std::iter::once(ch.accounting()).chain(lanes.iter_mut().map(|l| l.ch.accounting()))
        {
            a.continue_flights(true);
            a.resume_flight(Dir::None);
        }
        let r = self.run_on(ot, he, ch, &mut lanes, program, t, tokens);
        for a in std::iter::once(ch.accounting()).chain(lanes.iter_mut().map(|l| l.ch.accounting()))
        {
            a.continue_flights(false);
        }
        self.lanes = lanes;
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn run_on<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        lanes: &mut [Lane],
        program: &Program,
        t: usize,
        tokens: Option<&[i64]>,
    ) -> Result<Option<usize>, ExecError> {
        let model = self.plan.model.clone().unwrap_or_default();
        let bad = |what: &str, m: String| ExecError {
            instruction: what.into(),
            source: NetError::InvalidArgument(m),
        };
        if t == 0 || self.positions + t > self.context {
            return Err(bad(
                "program",
                format!(
                    "{t} tokens after {} positions: the session has {} positions (the model {})",
                    self.positions, self.context, model.positions
                ),
            ));
        }
        if self.role == Role::Client && tokens.is_none_or(|tk| tk.len() != t) {
            return Err(bad("program", format!("the client must pass {t} tokens")));
        }
        let mut regs: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut next = None;
        self.costs.clear();
        let count = program.instructions.len();
        for (index, ins) in program.instructions.iter().enumerate() {
            if let Some(p) = self.progress.as_mut() {
                p(index, count, &ins.name);
            }
            let op = ins
                .op
                .as_ref()
                .ok_or_else(|| bad(&ins.name, "no operation".into()))?;
            let start = Instant::now();
            let tscope = format!("{}/trunc", ins.name);
            // Each lane's counters of the instruction's scope and of its truncations, and of
            // the silent-OT batches run inside each.
            let snapshot = |st: crate::net::Stats| {
                [
                    st.scope_inclusive(&ins.name),
                    st.scope_inclusive(&tscope),
                    st.nested_leaf(&ins.name, crate::crypto::silent::SCOPE),
                    st.nested_leaf(&tscope, crate::crypto::silent::SCOPE),
                ]
            };
            let before: Vec<[Counters; 4]> = std::iter::once(ch.stats())
                .chain(lanes.iter().map(|l| l.ch.stats()))
                .map(snapshot)
                .collect();
            let mut trunc_seconds = 0.0;
            let r = scoped(ch, &ins.name, |ch| {
                self.step(
                    ot,
                    he,
                    ch,
                    lanes,
                    &mut regs,
                    ins,
                    op,
                    t,
                    tokens,
                    &mut trunc_seconds,
                )
            });
            let out = r.map_err(|source| ExecError {
                instruction: ins.name.clone(),
                source,
            })?;
            if out.is_some() {
                next = out;
            }
            let after: Vec<[Counters; 4]> = std::iter::once(ch.stats())
                .chain(lanes.iter().map(|l| l.ch.stats()))
                .map(snapshot)
                .collect();
            // Per lane: [all, trunc, refill, trunc's refill] since `before`.
            let spent: Vec<[Counters; 4]> = after
                .iter()
                .zip(&before)
                .map(|(a, b)| std::array::from_fn(|i| a[i].since(&b[i])))
                .collect();
            let part = |i: usize| concurrent(spent.iter().map(|s| s[i]));
            let refill = part(2);
            self.costs.push(InstructionCost {
                name: ins.name.clone(),
                op: op_name(op),
                seconds: start.elapsed().as_secs_f64(),
                counters: part(0).without(&refill),
                trunc_seconds,
                trunc: part(1).without(&part(3)),
                ot_refill: refill,
            });
        }
        self.positions += t;
        if self.keep_registers {
            self.registers = regs;
        }
        Ok(next)
    }

    /// The RLWE state of cache register `reg`, created at first use for the model's positions,
    /// with encryptions prepared for its first `rows` rows (a no-op once they are).
    #[allow(clippy::too_many_arguments)]
    fn attention_cache<C: Channel + ?Sized>(
        &mut self,
        he: &DuplexHe,
        ch: &mut C,
        reg: u32,
        operand: Operand,
        heads: usize,
        c: usize,
        rows: usize,
    ) -> Result<&mut SharedCache, NetError> {
        if !self.attention.contains_key(&reg) {
            let positions = self.context;
            if heads == 0 || !c.is_multiple_of(heads) {
                return Err(NetError::InvalidArgument(format!(
                    "{c} columns do not split into {heads} heads"
                )));
            }
            let layout = AttnLayout::new(self.ring, operand, heads, c / heads, positions)?;
            self.attention.insert(reg, SharedCache::new(layout));
        }
        let (role, ring) = (self.role, self.ring);
        let cache = self
            .attention
            .get_mut(&reg)
            .ok_or_else(|| NetError::InvalidArgument(format!("no cache state for {reg}")))?;
        attention_he::prepare(he, ch, role, ring, cache, rows)?;
        Ok(cache)
    }

    /// Shares of x·W + b by the prepared correlation of weight `w` (the server adds the bias).
    fn masked_product<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        w: u32,
        x: Option<&[u64]>,
        rows: usize,
        b: Option<u32>,
    ) -> Result<Vec<u64>, NetError> {
        let (role, ring) = (self.role, self.ring);
        // The prepared weights outlive the executor's borrow: no copy per step.
        let prepared: &'p Prepared = self.prepared;
        let weights = match role {
            Role::Server => Some(prepared.plain.get(&w).map(|v| &v[..]).ok_or_else(|| {
                NetError::InvalidArgument(format!("weight {w} is not held for a prepared product"))
            })?),
            Role::Client => None,
        };
        let corr = self
            .correlations
            .get_mut(&w)
            .ok_or_else(|| NetError::InvalidArgument(format!("weight {w} has no correlation")))?;
        let mut y = masked_matmul::multiply(ch, role, ring, corr, x, weights, rows)?;
        if let (Role::Server, Some(b)) = (role, b) {
            let bias = prepared.signed.get(b as usize).map_or(&[][..], |v| &v[..]);
            let n = y.len() / rows.max(1);
            for (i, v) in y.iter_mut().enumerate() {
                *v = ring.add(*v, ring.from_signed(bias.get(i % n).copied().unwrap_or(0)));
            }
        }
        Ok(y)
    }

    /// Shares of x·W + b under RLWE for the weight `w` ([K × N]) and optional bias `b` (ids in
    /// the plan), x of `rows` rows.
    fn product<C: Channel + ?Sized>(
        &self,
        he: &DuplexHe,
        ch: &mut C,
        w: u32,
        x: &[u64],
        rows: usize,
        b: Option<u32>,
    ) -> Result<Vec<u64>, NetError> {
        let p = self.prepared.packing.get(&w).ok_or_else(|| {
            NetError::InvalidArgument(format!("weight {w} was not prepared for a product"))
        })?;
        let server = match self.role {
            Role::Server => {
                let enc = self.prepared.encoded.get(&w).ok_or_else(|| {
                    NetError::InvalidArgument(format!("weight {w} is not encoded"))
                })?;
                let bias = match b {
                    Some(b) => self
                        .prepared
                        .signed
                        .get(b as usize)
                        .cloned()
                        .unwrap_or_default(),
                    None => vec![0; p.n],
                };
                Some((enc, bias))
            }
            Role::Client => None,
        };
        linear::linear(
            he.session(),
            ch,
            self.role,
            self.ring,
            p,
            x,
            rows,
            server.as_ref().map(|(e, b)| (*e, &b[..])),
        )
    }

    /// Execute one instruction; returns the sampled token (client, `Sample`).
    #[allow(clippy::too_many_arguments)]
    fn step<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        lanes: &mut [Lane],
        regs: &mut HashMap<u32, Vec<u64>>,
        ins: &Instruction,
        op: &Op,
        t: usize,
        tokens: Option<&[i64]>,
        trunc_secs: &mut f64,
    ) -> Result<Option<usize>, NetError> {
        let (role, ring, plan) = (self.role, self.ring, self.plan);
        let tscope = format!("{}/trunc", ins.name);
        let past = self.positions;
        let npos = past + t;
        let cols = |r: u32| plan.registers[r as usize].cols as usize;
        let input = |regs: &HashMap<u32, Vec<u64>>, i: usize| -> Result<Vec<u64>, NetError> {
            let r = *ins
                .inputs
                .get(i)
                .ok_or_else(|| NetError::InvalidArgument(format!("input {i} missing")))?;
            regs.get(&r)
                .or_else(|| self.cache.get(&r))
                .cloned()
                .ok_or_else(|| {
                    NetError::InvalidArgument(format!("register {r} read before written"))
                })
        };
        let out0 = *ins
            .outputs
            .first()
            .ok_or_else(|| NetError::InvalidArgument("no output register".into()))?;
        let server = role == Role::Server;
        match op {
            Op::Embed(e) => {
                let c = cols(out0);
                let vocab = plan.model.as_ref().map_or(0, |m| m.vocab as usize);
                // The client's share is the one-hot rows of its tokens, the server's zero; their
                // product with the token table is the table's rows (RLWE, `linear`).
                let mut onehot = vec![0u64; t * vocab];
                if let Some(tk) = tokens.filter(|_| !server) {
                    for (r, &x) in tk.iter().enumerate() {
                        if x < 0 || x as usize >= vocab {
                            return Err(NetError::InvalidArgument(format!(
                                "token id {x} outside the vocabulary of {vocab}"
                            )));
                        }
                        onehot[r * vocab + x as usize] = 1;
                    }
                }
                let prepared = self.decoding
                    && self
                        .correlations
                        .get(&e.token_table)
                        .is_some_and(|c| c.remaining() >= t);
                let mut x = if prepared {
                    let own = (!server).then_some(&onehot[..]);
                    self.masked_product(ch, e.token_table, own, t, None)?
                } else {
                    self.product(he, ch, e.token_table, &onehot, t, None)?
                };
                // The server adds the position rows (the client holds no weights).
                if let Some(pe) = self.prepared.signed.get(e.position_table as usize) {
                    for (r, row) in x.chunks_mut(c).enumerate() {
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = ring.add(*v, ring.from_signed(pe[(past + r) * c + j]));
                        }
                    }
                }
                regs.insert(out0, x);
            }
            Op::Linear(l) | Op::Logits(l) => {
                let x = input(regs, 0)?;
                let k = cols(ins.inputs[0]);
                let (x, rows) = match op {
                    Op::Logits(_) => (x[(t - 1) * k..t * k].to_vec(), 1),
                    _ => (x, t),
                };
                // The client sends a prepared product's last flight (its masked input), the
                // server an encrypted-input product's (the results).
                let (y, last) = if self.decoding
                    && self
                        .correlations
                        .get(&l.weight)
                        .is_some_and(|c| c.remaining() >= rows)
                {
                    let y = self.masked_product(ch, l.weight, Some(&x), rows, l.bias)?;
                    (y, Role::Client)
                } else {
                    (
                        self.product(he, ch, l.weight, &x, rows, l.bias)?,
                        Role::Server,
                    )
                };
                let y = truncate(
                    ot, ch, lanes, role, last, ring, &tscope, trunc_secs, l.shift, &y,
                )?;
                regs.insert(out0, y);
            }
            Op::SplitQkv(_) => {
                let x = input(regs, 0)?;
                let c3 = cols(ins.inputs[0]);
                let c = c3 / 3;
                for (part, &o) in ins.outputs.iter().enumerate() {
                    let v: Vec<u64> = x
                        .chunks(c3)
                        .flat_map(|row| row[part * c..(part + 1) * c].to_vec())
                        .collect();
                    regs.insert(o, v);
                }
            }
            Op::CacheAppend(_) => {
                let x = input(regs, 0)?;
                self.cache.entry(out0).or_default().extend(x);
            }
            Op::QkT(h) => {
                let (q, kc) = (input(regs, 0)?, input(regs, 1)?);
                let c = cols(ins.inputs[0]);
                let heads = h.heads as usize;
                let cache =
                    self.attention_cache(he, ch, ins.inputs[1], Operand::Keys, heads, c, npos)?;
                let out = attention_he::qk_t(he, ch, role, ring, cache, &q, &kc, t, true)?;
                let causal = causal_entries(heads, t, past);
                let kept: Vec<u64> = causal.iter().map(|&i| out[i]).collect();
                // The client sends the attention product's last flight (its results).
                let kept = truncate(
                    ot,
                    ch,
                    lanes,
                    role,
                    Role::Client,
                    ring,
                    &tscope,
                    trunc_secs,
                    h.shift,
                    &kept,
                )?;
                let mut res = vec![0u64; out.len()];
                for (&i, v) in causal.iter().zip(kept) {
                    res[i] = v;
                }
                regs.insert(out0, res);
            }
            Op::Softmax(s) => {
                let x = input(regs, 0)?;
                let tables = convert::softmax_from_plan(s);
                let heads = s.heads as usize;
                let causal = causal_entries(heads, t, past);
                let row: Vec<u64> = causal.iter().map(|&i| x[i]).collect();
                let lens: Vec<usize> = (0..heads)
                    .flat_map(|_| (0..t).map(|r| past + r + 1))
                    .collect();
                // Rows in contiguous groups of about equal elements, one per lane.
                let parts = parts_for(lanes.len() + 1, row.len(), lens.len());
                let cuts = balanced_cuts(&lens, parts);
                let mut starts = vec![0usize];
                for w in cuts.windows(2) {
                    let last = starts[starts.len() - 1];
                    starts.push(last + lens[w[0]..w[1]].iter().sum::<usize>());
                }
                // A prepared softmax of the decode program runs on its correlation while it
                // lasts, each lane from its first score's place.
                let stock = self.stock(&ins.name, s.prepared, row.len(), Stock::softmax);
                let p = on_lanes(ot, ch, lanes, parts, |ot, c, i| {
                    let (a, b) = (cuts[i], cuts[i + 1]);
                    let v = &row[starts[i]..starts[i + 1]];
                    match stock {
                        Some((prep, used)) => softmax::softmax_prepared(
                            ot,
                            c,
                            role,
                            ring,
                            &tables,
                            v,
                            &lens[a..b],
                            prep,
                            used + starts[i],
                        ),
                        None => softmax::softmax(ot, c, role, ring, &tables, v, &lens[a..b]),
                    }
                })?
                .concat();
                if stock.is_some() {
                    self.consume(&ins.name, row.len());
                }
                let mut out = vec![0u64; x.len()];
                for (&i, v) in causal.iter().zip(p) {
                    out[i] = v;
                }
                regs.insert(out0, out);
            }
            Op::Pv(h) => {
                let (p, vc) = (input(regs, 0)?, input(regs, 1)?);
                let c = cols(ins.inputs[1]);
                let heads = h.heads as usize;
                let cache =
                    self.attention_cache(he, ch, ins.inputs[1], Operand::Values, heads, c, npos)?;
                let out = attention_he::pv(he, ch, role, ring, cache, &p, &vc, t, true)?;
                let out = truncate(
                    ot,
                    ch,
                    lanes,
                    role,
                    Role::Client,
                    ring,
                    &tscope,
                    trunc_secs,
                    h.shift,
                    &out,
                )?;
                regs.insert(out0, out);
            }
            Op::LayerNorm(l) => {
                let x = input(regs, 0)?;
                let p = convert::layernorm_from_plan(l);
                // Whole rows of p.n, in contiguous groups, one per lane.
                let n = p.n.max(1);
                let rows = x.len() / n;
                let parts = match x.len() % n {
                    0 => parts_for(lanes.len() + 1, x.len(), rows),
                    _ => 1,
                };
                let cuts = even_cuts(rows, parts);
                // A prepared LayerNorm of the decode program runs on its correlation while it
                // lasts, each lane from its first row's place.
                let stock = self.stock(&ins.name, l.prepared, rows, Stock::layernorm);
                let run =
                    |ot: &mut OtPair, c: &mut dyn Channel, first: usize, v: &[u64]| match stock {
                        Some((prep, used)) => layernorm::layernorm_prepared(
                            ot,
                            c,
                            role,
                            ring,
                            &p,
                            v,
                            prep,
                            used + first,
                        ),
                        None => layernorm::layernorm(ot, c, role, ring, &p, v),
                    };
                let y = if parts == 1 {
                    // Unsplit (and the protocol checks the shape).
                    let mut lane0: &mut C = ch;
                    run(ot, &mut lane0, 0, &x)?
                } else {
                    on_lanes(ot, ch, lanes, parts, |ot, c, i| {
                        run(ot, c, cuts[i], &x[cuts[i] * n..cuts[i + 1] * n])
                    })?
                    .concat()
                };
                if stock.is_some() {
                    self.consume(&ins.name, rows);
                }
                regs.insert(out0, y);
            }
            Op::Gelu(g) => {
                let x = input(regs, 0)?;
                let tables = convert::gelu_from_plan(g);
                // A prepared GELU of the decode program runs on its correlation while it lasts
                // (both parties see the same counts).
                let stock = self.stock(&ins.name, g.prepared, x.len(), Stock::gelu);
                let mut out = Vec::with_capacity(x.len());
                // Slices bound the lookups' memory (2·n·N words per call,
                // `cost::GELU_CALL_WORDS`); each is cut across the lanes. Every call costs its
                // ~16 flights, so a GPT-2-small prefill of up to 42 tokens makes one per layer.
                let slice = ciphergpt_compiler::plan::cost::gelu_slice(g.pieces_log2) as usize;
                for (k, chunk) in x.chunks(slice).enumerate() {
                    out.extend(elementwise_at(
                        ot,
                        ch,
                        lanes,
                        chunk,
                        |ot, c, at, part| match stock {
                            Some((prep, used)) => {
                                let at = used + k * slice + at;
                                gelu::gelu_prepared(ot, c, role, ring, &tables, part, prep, at)
                            }
                            None => gelu::gelu(ot, c, role, ring, &tables, part),
                        },
                    )?);
                }
                if stock.is_some() {
                    self.consume(&ins.name, x.len());
                }
                regs.insert(out0, out);
            }
            Op::Add(_) => {
                let (a, b) = (input(regs, 0)?, input(regs, 1)?);
                regs.insert(out0, ring.add_vec(&a, &b));
            }
            Op::Sample(sp) => {
                let z = input(regs, 0)?;
                return self.sample(ot, ch, sp, &z);
            }
        }
        Ok(None)
    }
}

impl Executor<'_> {
    /// The token from this party's shares of the logits `z`: the secure argmax (K = 1) or top-K
    /// sampling with the session's temperature; `Some` at the client only.
    fn sample<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        ch: &mut C,
        sp: &ciphergpt_compiler::plan::Sample,
        z: &[u64],
    ) -> Result<Option<usize>, NetError> {
        let (role, ring) = (self.role, self.ring);
        let k = self.sampling.top_k as usize;
        if k <= 1 {
            return argmax::argmax(ot, ch, role, ring, z);
        }
        if k > z.len() {
            return Err(NetError::InvalidArgument(format!(
                "top-k {k} exceeds the {} logits",
                z.len()
            )));
        }
        let tables = sp
            .softmax
            .as_ref()
            .map(convert::softmax_from_plan)
            .ok_or_else(|| NetError::InvalidArgument("the plan has no sampling softmax".into()))?;
        let mut perm: Vec<usize> = (0..z.len()).collect();
        rand::seq::SliceRandom::shuffle(perm.as_mut_slice(), &mut self.sampling.rng);
        let top = topk::topk_with(ot, ch, role, ring, z, k, &TopKParams::default(), &perm)?;
        let temp = Temperature {
            mul: u64::from(self.sampling.inv_temperature),
            shift: sp.shift,
        };
        let mine = self
            .sampling
            .rng
            .values(1, topk::sample_bits(tables.frac_out));
        let got = topk::sample_with(ot, ch, role, ring, &top, temp, &tables, &mine)?;
        Ok(got.and_then(|v| v.first().copied()))
    }
}

/// Flat indices of the causal entries (j ≤ past + r) of a [heads × t × (past + t)] score block,
/// in head, row, position order.
fn causal_entries(heads: usize, t: usize, past: usize) -> Vec<usize> {
    let npos = past + t;
    (0..heads)
        .flat_map(|h| (0..t).flat_map(move |r| (0..=past + r).map(move |j| (h * t + r) * npos + j)))
        .collect()
}
