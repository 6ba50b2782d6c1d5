//! The correlation stock: what the decode program's prepared instructions run on. The plan
//! marks which instructions are prepared ([`prepared_products`], [`prepared_gelus`],
//! [`prepared_layernorms`], [`prepared_softmaxes`]); [`Executor::preprocess`] makes their
//! correlations for a batch of decode steps (the products' masks by RLWE or the subfield VOLE,
//! the non-linear layers' one-hot vectors and triples), and a decode step uses them while they
//! last ([`CorrelationStock`]). Every correlation counts its own use
//! ([`PreparedCorrelation`]); both parties see the same counts: they are public.

use std::collections::HashMap;
use std::time::Instant;

use ciphergpt_compiler::fixed::convert;
use ciphergpt_compiler::plan::{
    instruction::Op, Gelu as PlanGelu, Instruction, LayerNorm as PlanLayerNorm,
    Linear as PlanLinear, Plan, Softmax as PlanSoftmax,
};

use super::{ExecError, Executor, InstructionCost};
use crate::crypto::iknp::OtPair;
use crate::net::{scoped, Channel, Counters, Role};
use crate::protocols::attention_he::DuplexHe;
use crate::protocols::masked_matmul::{self, Correlation};
use crate::protocols::svole_matmul::{self, SvoleParams};
use crate::protocols::{gelu, layernorm, softmax};
use crate::protocols::{Party, PreparedCorrelation, ProtocolError};

/// The decode program's instructions for which `pick` gives a value, with their first input
/// register's columns, in program order.
fn decode_instructions<'a, T>(
    plan: &'a Plan,
    pick: impl Fn(&'a Op) -> Option<T>,
) -> Vec<(&'a Instruction, usize, T)> {
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
            Some((i, cols, v))
        })
        .collect()
}

/// The instructions' names in place of the instructions.
fn named<T>(list: Vec<(&Instruction, usize, T)>) -> Vec<(&str, usize, T)> {
    list.into_iter()
        .map(|(i, n, v)| (i.name.as_str(), n, v))
        .collect()
}

/// The decode program's GELUs marked prepared (`Gelu.prepared`): (instruction, elements per
/// decode step, the plan's tables), in program order.
fn decode_gelus(plan: &Plan) -> Vec<(&Instruction, usize, &PlanGelu)> {
    decode_instructions(plan, |op| match op {
        Op::Gelu(g) if g.prepared => Some(g),
        _ => None,
    })
}

/// The decode program's LayerNorms marked prepared (`LayerNorm.prepared`): (instruction, rows
/// per decode step, the plan's parameters), in program order.
fn decode_layernorms(plan: &Plan) -> Vec<(&Instruction, usize, &PlanLayerNorm)> {
    decode_instructions(plan, |op| match op {
        Op::LayerNorm(l) if l.prepared => Some(l),
        _ => None,
    })
    .into_iter()
    .map(|(ins, cols, l)| (ins, cols / (l.n as usize).max(1), l))
    .collect()
}

/// The decode program's softmaxes marked prepared (`Softmax.prepared`): (instruction, heads,
/// the plan's tables), in program order.
fn decode_softmaxes(plan: &Plan) -> Vec<(&Instruction, usize, &PlanSoftmax)> {
    decode_instructions(plan, |op| match op {
        Op::Softmax(s) if s.prepared => Some(s),
        _ => None,
    })
    .into_iter()
    .map(|(ins, _, s)| (ins, s.heads.max(1) as usize, s))
    .collect()
}

/// The decode program's GELUs marked prepared (`Gelu.prepared`): (instruction name, elements per
/// decode step, the plan's tables), in program order.
pub fn prepared_gelus(plan: &Plan) -> Vec<(&str, usize, &PlanGelu)> {
    named(decode_gelus(plan))
}

/// The decode program's LayerNorms marked prepared (`LayerNorm.prepared`): (instruction name,
/// rows per decode step, the plan's parameters), in program order.
pub fn prepared_layernorms(plan: &Plan) -> Vec<(&str, usize, &PlanLayerNorm)> {
    named(decode_layernorms(plan))
}

/// The decode program's softmaxes marked prepared (`Softmax.prepared`): (instruction name,
/// heads, the plan's tables), in program order. A decode step at position P has heads·(P + 1)
/// scores per softmax.
pub fn prepared_softmaxes(plan: &Plan) -> Vec<(&str, usize, &PlanSoftmax)> {
    named(decode_softmaxes(plan))
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

/// The decode program's weight products marked prepared (`Linear.prepared`, `Embed.prepared`
/// for the token table): (weight id, method), each weight once, in program order.
pub fn prepared_products(plan: &Plan) -> Vec<(u32, u32)> {
    let mut seen = std::collections::HashSet::new();
    decode_products(plan)
        .filter(|&(w, method)| method != PlanLinear::ONLINE && seen.insert(w))
        .collect()
}

/// The decode program's weight products (`Linear`, `Logits`, and `Embed`'s token table):
/// (weight id, how it runs: `Linear.prepared`), in program order, a weight as often as used.
pub(super) fn decode_products(plan: &Plan) -> impl Iterator<Item = (u32, u32)> + '_ {
    plan.decode
        .iter()
        .flat_map(|p| p.instructions.iter())
        .filter_map(|i| match &i.op {
            Some(Op::Linear(l)) | Some(Op::Logits(l)) => Some((l.weight, l.prepared)),
            Some(Op::Embed(e)) => Some((e.token_table, e.prepared)),
            _ => None,
        })
}

/// A prepared non-linear instruction's correlation.
pub(super) enum Nonlinear {
    Gelu(gelu::Correlation),
    LayerNorm(layernorm::Correlation),
    Softmax(softmax::Correlation),
}

impl Nonlinear {
    /// The correlation, whichever its kind: elements for a GELU, rows for a LayerNorm, scores
    /// for a softmax.
    fn correlation(&self) -> &dyn PreparedCorrelation {
        match self {
            Nonlinear::Gelu(g) => g,
            Nonlinear::LayerNorm(l) => l,
            Nonlinear::Softmax(p) => p,
        }
    }

    fn correlation_mut(&mut self) -> &mut dyn PreparedCorrelation {
        match self {
            Nonlinear::Gelu(g) => g,
            Nonlinear::LayerNorm(l) => l,
            Nonlinear::Softmax(p) => p,
        }
    }

    pub(super) fn gelu(&self) -> Option<&gelu::Correlation> {
        match self {
            Nonlinear::Gelu(p) => Some(p),
            _ => None,
        }
    }

    pub(super) fn layernorm(&self) -> Option<&layernorm::Correlation> {
        match self {
            Nonlinear::LayerNorm(p) => Some(p),
            _ => None,
        }
    }

    pub(super) fn softmax(&self) -> Option<&softmax::Correlation> {
        match self {
            Nonlinear::Softmax(p) => Some(p),
            _ => None,
        }
    }
}

/// One session's correlations: the prepared products' per weight id, the prepared non-linear
/// instructions' per instruction name.
#[derive(Default)]
pub(super) struct CorrelationStock {
    products: HashMap<u32, Correlation>,
    nonlinear: HashMap<String, Nonlinear>,
}

impl CorrelationStock {
    /// Whether weight `w`'s correlation has `rows` rows left.
    pub(super) fn product_has(&self, w: u32, rows: usize) -> bool {
        self.products.get(&w).is_some_and(|c| c.remaining() >= rows)
    }

    /// Weight `w`'s correlation, to be consumed by a product.
    pub(super) fn product_mut(&mut self, w: u32) -> Result<&mut Correlation, ProtocolError> {
        self.products
            .get_mut(&w)
            .ok_or_else(|| ProtocolError::Invalid(format!("weight {w} has no correlation")))
    }

    /// What is left of instruction `name`'s non-linear correlation.
    pub(super) fn remaining(&self, name: &str) -> usize {
        self.nonlinear
            .get(name)
            .map_or(0, |s| s.correlation().remaining())
    }

    /// Instruction `name`'s correlation as `pick` reads it and where its unused part starts,
    /// when at least `need` of it is left.
    pub(super) fn take<'s, T>(
        &'s self,
        name: &str,
        need: usize,
        pick: impl Fn(&'s Nonlinear) -> Option<&'s T>,
    ) -> Option<(&'s T, usize)> {
        let s = self.nonlinear.get(name)?;
        let c = s.correlation();
        if c.remaining() < need {
            return None;
        }
        pick(s).map(|p| (p, c.used()))
    }

    /// Marks `n` more of instruction `name`'s correlation used.
    pub(super) fn consume(&mut self, name: &str, n: usize) {
        if let Some(s) = self.nonlinear.get_mut(name) {
            s.correlation_mut().consume(n);
        }
    }

    /// Whether a prepared product, GELU, LayerNorm or softmax of `plan` cannot serve the decode
    /// step after `positions` positions.
    pub(super) fn needs_preparation(&self, plan: &Plan, positions: usize) -> bool {
        prepared_products(plan)
            .iter()
            .any(|&(w, _)| !self.product_has(w, 1))
            || prepared_gelus(plan)
                .iter()
                .any(|&(name, per_step, _)| self.remaining(name) < per_step)
            || prepared_layernorms(plan)
                .iter()
                .any(|&(name, per_step, _)| self.remaining(name) < per_step)
            || prepared_softmaxes(plan)
                .iter()
                .any(|&(name, heads, _)| self.remaining(name) < heads * (positions + 1))
    }
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
    fn preparation(&self, name: &str, op: &Op, seconds: f64) -> InstructionCost {
        InstructionCost {
            name: name.to_string(),
            op: op.name(),
            class: op.class(),
            seconds,
            counters: self.all.without(&self.refill),
            trunc_seconds: 0.0,
            trunc: Counters::default(),
            ot_refill: self.refill,
        }
    }
}

/// Makes a non-linear instruction's correlation as a party (its OT, channel and role).
type Make<'a, C> = Box<dyn Fn(&mut Party<'_, C>) -> Result<Nonlinear, ProtocolError> + 'a>;

impl<'p> Executor<'p> {
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
        self.prepare_products(ot, he, ch, steps)?;
        let role = self.role;
        let todo = self.nonlinear_to_prepare(steps);
        for (name, op, make) in todo {
            let (correlation, cost) =
                prepare_in_scope(ch, &name, op, |ch| make(&mut Party::new(ot, ch, role)))?;
            self.stock.nonlinear.insert(name, correlation);
            self.costs.push(cost);
        }
        Ok(())
    }

    /// The products' part of [`Executor::preprocess`].
    fn prepare_products<C: Channel + ?Sized>(
        &mut self,
        ot: &mut OtPair,
        he: &DuplexHe,
        ch: &mut C,
        steps: usize,
    ) -> Result<(), ExecError> {
        let plan = self.plan;
        let names: HashMap<u32, (&str, &Op)> = plan
            .decode
            .iter()
            .flat_map(|p| p.instructions.iter())
            .filter_map(|i| match &i.op {
                Some(op @ (Op::Linear(l) | Op::Logits(l))) => Some((l.weight, (&i.name[..], op))),
                Some(op @ Op::Embed(e)) => Some((e.token_table, (&i.name[..], op))),
                _ => None,
            })
            .collect();
        for (w, method) in prepared_products(self.plan) {
            if self.stock.product_has(w, 1) {
                continue;
            }
            // Every prepared product is one of these instructions.
            let Some(&(name, op)) = names.get(&w) else {
                continue;
            };
            let (corr, cost) = prepare_in_scope(ch, name, op, |ch| {
                self.prepare_product(ot, he, ch, w, method, steps)
            })?;
            self.stock.products.insert(w, corr);
            self.costs.push(cost);
        }
        Ok(())
    }

    /// The GELUs, LayerNorms and softmaxes that cannot serve the next `steps` steps, each with
    /// the maker of its new correlation: for `steps` steps, or as many as
    /// [`NONLINEAR_BATCH_BYTES`] holds (at least one). What is left of an old correlation is
    /// never used (unused correlations reveal nothing).
    fn nonlinear_to_prepare<'a, C: Channel + ?Sized>(
        &self,
        steps: usize,
    ) -> Vec<(String, &'p Op, Make<'a, C>)> {
        let plan: &'p Plan = self.plan;
        let gelus = decode_gelus(plan);
        let norms = decode_layernorms(plan);
        let softmaxes = decode_softmaxes(plan);
        // A softmax's scores per step grow with the position: the session's bound sizes them.
        let context = self.context;
        let per_step: usize = gelus
            .iter()
            .map(|&(_, n, g)| {
                n * gelu::Correlation::footprint_per_element(&convert::gelu_from_plan(g))
            })
            .chain(norms.iter().map(|&(_, rows, l)| {
                rows * layernorm::Correlation::footprint_per_row(&convert::layernorm_from_plan(l))
            }))
            .chain(softmaxes.iter().map(|&(_, heads, sm)| {
                heads
                    * context
                    * softmax::Correlation::footprint_per_score(&convert::softmax_from_plan(sm))
            }))
            .sum();
        let batch = steps.min((NONLINEAR_BATCH_BYTES / per_step.max(1)).max(1));
        let ring = self.ring;
        let mut todo: Vec<(String, &'p Op, Make<C>)> = Vec::new();
        let mut push = |ins: &'p Instruction, make: Make<'a, C>| {
            if let Some(op) = &ins.op {
                todo.push((ins.name.clone(), op, make));
            }
        };
        for (ins, n, g) in gelus {
            if self.stock.remaining(&ins.name) < batch * n {
                let tables = convert::gelu_from_plan(g);
                let make = move |p: &mut Party<'_, C>| {
                    gelu::prepare(p, ring, &tables, batch * n).map(Nonlinear::Gelu)
                };
                push(ins, Box::new(make));
            }
        }
        for (ins, rows, l) in norms {
            if self.stock.remaining(&ins.name) < batch * rows {
                let p = convert::layernorm_from_plan(l);
                let make = move |party: &mut Party<'_, C>| {
                    layernorm::prepare(party, &p, batch * rows).map(Nonlinear::LayerNorm)
                };
                push(ins, Box::new(make));
            }
        }
        // The next `batch` steps' scores (their positions are known once the prompt is in;
        // before it, the session's bound is).
        let scores_next = heads_scores(self.positions, batch);
        for (ins, heads, sm) in softmaxes {
            if self.stock.remaining(&ins.name) < heads * scores_next {
                let t = convert::softmax_from_plan(sm);
                let scores = batch * heads * context;
                let make = move |p: &mut Party<'_, C>| {
                    softmax::prepare(p, &t, scores).map(Nonlinear::Softmax)
                };
                push(ins, Box::new(make));
            }
        }
        todo
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
    ) -> Result<Correlation, ProtocolError> {
        let p = self.model.packing(w)?;
        if method == PlanLinear::PREPARED_SVOLE {
            let params = SvoleParams::new(self.ring, rows, p.k, p.n)?;
            if rows >= params.min_rows() {
                let wide: Option<Vec<i64>> = match self.role {
                    Role::Server => Some(
                        self.model
                            .plain_weights(w)?
                            .iter()
                            .map(|&x| i64::from(x))
                            .collect(),
                    ),
                    Role::Client => None,
                };
                return svole_matmul::prepare(
                    &mut Party::new(ot, ch, self.role),
                    self.ring,
                    params,
                    wide.as_deref(),
                    Some(he.returns()?),
                );
            }
        }
        let plain = match self.role {
            Role::Server => Some(self.model.plain_weights(w)?),
            Role::Client => None,
        };
        masked_matmul::prepare_rlwe(he.session(), ch, self.role, self.ring, p, rows, plain)
    }
}

/// Run `make` under the scope `prepare/{name}`; its result and its cost as instruction `name`'s
/// preparation, the silent-OT batches run inside it apart.
fn prepare_in_scope<C: Channel + ?Sized, T>(
    ch: &mut C,
    name: &str,
    op: &Op,
    make: impl FnOnce(&mut C) -> Result<T, ProtocolError>,
) -> Result<(T, InstructionCost), ExecError> {
    let scope = format!("prepare/{name}");
    let start = Instant::now();
    let before = ScopeCost::of(&ch.stats(), &scope);
    let made = scoped(ch, &scope, make).map_err(|source| ExecError {
        instruction: format!("prepare {name}"),
        source,
    })?;
    let spent = ScopeCost::of(&ch.stats(), &scope).since(&before);
    Ok((
        made,
        spent.preparation(name, op, start.elapsed().as_secs_f64()),
    ))
}
