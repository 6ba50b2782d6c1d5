//! The plan executor: one party's side of a two-party run of a compiled plan. It interprets the
//! plan's `prefill` and `decode` programs instruction by instruction, calling the protocol for
//! each; registers hold this party's additive shares over the plan's ring, the KV cache
//! (persistent registers) lives across programs, so a decode step never re-runs the prefix. The
//! instruction semantics is `docs/plan.md`'s, and the cleartext simulator
//! (`ciphergpt_compiler::fixed::simulate`) is its oracle: the reconstructed registers and the
//! sampled token equal the simulator's.
//!
//! Weight products (`Linear`, `Logits`) and the token embedding (a one-hot row of the client's
//! token times the server's table) run under RLWE ([`protocols::linear`]: in a decode step on
//! weights pre-encoded once in an [`EncodedModel`], on many rows — the prefill, a preparation —
//! several rows per ciphertext, the weights encoded on the way), and so do attention's products of two shared matrices
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

mod encoded;
mod lanes;
mod ops;
mod sampling;
mod stock;

use std::collections::HashMap;
use std::time::Instant;

use ciphergpt_compiler::plan::cost::OpClass;
use ciphergpt_compiler::plan::{Plan, Program};

use crate::crypto::iknp::OtPair;
use crate::net::{scoped, Channel, Counters, Dir, Role};
use crate::protocols::attention_he::{DuplexHe, SharedCache};
use crate::protocols::shares::Ring;
use crate::protocols::{Party, ProtocolError};

pub use encoded::EncodedModel;
pub use lanes::{concurrent, Lane, MIN_SPLIT};
use ops::Step;
pub use sampling::{plan_decoding, Sampling};
use stock::CorrelationStock;
pub use stock::{
    prepared_gelus, prepared_layernorms, prepared_products, prepared_softmaxes,
    NONLINEAR_BATCH_BYTES,
};

/// An error of a two-party run, naming the plan instruction where it happened.
#[derive(Debug, thiserror::Error)]
#[error("plan instruction '{instruction}': {source}")]
pub struct ExecError {
    pub instruction: String,
    #[source]
    pub source: ProtocolError,
}

/// Cost of one executed instruction, from this party's channel.
#[derive(Clone, Debug)]
pub struct InstructionCost {
    pub name: String,
    /// The operation (`Linear`, `Softmax`, …).
    pub op: &'static str,
    /// Its op class (the report's line; its truncations apart).
    pub class: OpClass,
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

/// A progress callback: (instruction index, instruction count, instruction name).
pub type Progress = Box<dyn FnMut(usize, usize, &str)>;

/// One party's session state.
pub struct Executor<'p> {
    plan: &'p Plan,
    role: Role,
    ring: Ring,
    model: &'p EncodedModel,
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
    /// The correlations of the decode program's prepared instructions
    /// ([`Executor::preprocess`]).
    stock: CorrelationStock,
    /// Whether the program running is the decode program (only it uses the correlations).
    decoding: bool,
}

impl<'p> Executor<'p> {
    /// A session for `role` over a plan and its [`EncodedModel`] (the server's holds the
    /// weights).
    pub fn new(plan: &'p Plan, role: Role, model: &'p EncodedModel) -> Result<Self, ProtocolError> {
        let ring = Ring::new(plan.ring_bits)?;
        if role == Role::Server && !model.holds_weights(plan.weights.len()) {
            return Err(ProtocolError::Invalid(
                "the server needs the weights file".into(),
            ));
        }
        Ok(Executor {
            plan,
            role,
            ring,
            model,
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
            stock: CorrelationStock::default(),
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
    pub fn set_context(&mut self, positions: usize) -> Result<(), ProtocolError> {
        let model = self.plan.model.as_ref().map_or(0, |m| m.positions as usize);
        if positions == 0 || positions > model {
            return Err(ProtocolError::Invalid(format!(
                "a session of {positions} positions: the model has {model}"
            )));
        }
        if self.positions > 0 || !self.attention.is_empty() {
            return Err(ProtocolError::Invalid(
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
            source: ProtocolError::Invalid("the plan has no prefill program".into()),
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
            source: ProtocolError::Invalid("the plan has no decode program".into()),
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
        self.stock.needs_preparation(self.plan, self.positions)
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
            source: ProtocolError::Invalid(m),
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
                let mut step = Step {
                    party: Party::new(&mut *ot, ch, self.role),
                    ring: self.ring,
                    he,
                    lanes: &mut *lanes,
                    regs: &mut regs,
                    ins,
                    t,
                    tokens,
                    trunc_secs: &mut trunc_seconds,
                };
                self.step(&mut step, op)
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
                op: op.name(),
                class: op.class(),
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
}
