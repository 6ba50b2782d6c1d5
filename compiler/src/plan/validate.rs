//! The structural checks of a plan, and of a weights file against its plan, run on every load
//! ([`super::file::decode_plan`], [`super::file::read_weights`]).
//!
//! A plan's hash detects damage, not intent: a plan edited and re-sealed passes it. Everything
//! the simulator and the runtime index by a number read from the plan is checked here first, so
//! that a crafted plan is refused with one line naming the instruction instead of a panic:
//! register and weight ids, the arity of every operation, the shapes it relies on (a weight's
//! dimensions against its registers, the split of a fused QKV register, heads dividing the
//! width), the row kinds (per token, the cache, one row), that every register is written before
//! it is read, the ring and scale bounds and the sizes of the public tables (through the
//! primitives' own `validate`), and that each program ends with its `Sample`. The bounds on
//! counts ([`MAX_POSITIONS`], [`MAX_VOCAB`], [`MAX_COLS`]) keep every size product the runtime
//! forms far from overflow.

use super::cost::op_name;
use super::{instruction::Op, Instruction, Plan, Register, Rows, WeightsFile};
use crate::fixed::convert;
use std::collections::HashMap;

/// Most positions a plan may declare.
pub const MAX_POSITIONS: u64 = 1 << 20;
/// Largest vocabulary a plan may declare.
pub const MAX_VOCAB: u64 = 1 << 24;
/// Widest register a plan may declare.
pub const MAX_COLS: u64 = 1 << 24;
/// Most entries of one weight tensor.
pub const MAX_WEIGHT_ENTRIES: u64 = 1 << 36;

/// Check a plan's structure. The error is one line, naming the instruction when there is one
/// (`prefill instruction 12 (Softmax, h.0.attn): reads register r9999, the plan has 140`).
pub fn validate(plan: &Plan) -> Result<(), String> {
    check_header(plan)?;
    for (which, prog) in [("prefill", &plan.prefill), ("decode", &plan.decode)] {
        let Some(prog) = prog else { continue };
        if prog.instructions.is_empty() {
            return Err(format!("the {which} program has no instructions"));
        }
        let mut produced: HashMap<u32, &Instruction> = HashMap::new();
        let last = prog.instructions.len() - 1;
        for (i, ins) in prog.instructions.iter().enumerate() {
            check_instruction(plan, ins, &produced, i == last).map_err(|what| {
                format!(
                    "{which} instruction {i} ({}, {}): {what}",
                    op_name(&ins.op),
                    ins.name.escape_debug()
                )
            })?;
            for &o in &ins.outputs {
                produced.insert(o, ins);
            }
        }
    }
    Ok(())
}

fn check_header(plan: &Plan) -> Result<(), String> {
    if !(8..=64).contains(&plan.ring_bits) {
        return Err(format!("ring of {} bits is not in 8..=64", plan.ring_bits));
    }
    if plan.frac_bits >= plan.ring_bits {
        return Err(format!(
            "{} fractional bits leave nothing of the {}-bit ring",
            plan.frac_bits, plan.ring_bits
        ));
    }
    let m = plan
        .model
        .as_ref()
        .ok_or_else(|| "the plan has no model description".to_string())?;
    if !(1..=MAX_VOCAB).contains(&m.vocab)
        || !(1..=MAX_POSITIONS).contains(&m.positions)
        || !(1..=MAX_COLS).contains(&m.width)
    {
        return Err(format!(
            "model with vocabulary {}, {} positions and width {}: each must be at least 1 and at most {MAX_VOCAB}, {MAX_POSITIONS} and {MAX_COLS}",
            m.vocab, m.positions, m.width
        ));
    }
    for (r, reg) in plan.registers.iter().enumerate() {
        let bad = |what: String| {
            Err(format!(
                "register r{r} ('{}'): {what}",
                reg.name.escape_debug()
            ))
        };
        if Rows::try_from(reg.rows).is_err() {
            return bad(format!("unknown row kind {}", reg.rows));
        }
        if reg.cols > MAX_COLS {
            return bad(format!("{} columns, at most {MAX_COLS}", reg.cols));
        }
        if reg.frac_bits >= plan.ring_bits {
            return bad(format!(
                "{} fractional bits in a {}-bit ring",
                reg.frac_bits, plan.ring_bits
            ));
        }
    }
    for (w, info) in plan.weights.iter().enumerate() {
        let bad = |what: String| {
            Err(format!(
                "weight w{w} ('{}'): {what}",
                info.name.escape_debug()
            ))
        };
        if info.shape.is_empty() || info.shape.len() > 2 || info.shape.contains(&0) {
            return bad(format!(
                "shape {:?} is not one or two positive dimensions",
                info.shape
            ));
        }
        if entries(&info.shape).is_none() {
            return bad(format!(
                "shape {:?} has more than {MAX_WEIGHT_ENTRIES} entries",
                info.shape
            ));
        }
        if !(1..=64).contains(&info.bits) || info.frac_bits > 62 {
            return bad(format!(
                "value bound of {} bits (1..=64) or {} fractional bits (at most 62)",
                info.bits, info.frac_bits
            ));
        }
    }
    Ok(())
}

/// Entries of a weight of this shape, if at most [`MAX_WEIGHT_ENTRIES`].
fn entries(shape: &[u64]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_WEIGHT_ENTRIES)
}

/// The arity of each operation: (inputs, outputs).
fn arity(op: &Op) -> (usize, usize) {
    match op {
        Op::Embed(_) => (0, 1),
        Op::SplitQkv(_) => (1, 3),
        Op::QkT(_) | Op::Pv(_) | Op::Add(_) => (2, 1),
        Op::Linear(_)
        | Op::Logits(_)
        | Op::CacheAppend(_)
        | Op::Softmax(_)
        | Op::LayerNorm(_)
        | Op::Gelu(_)
        | Op::Sample(_) => (1, 1),
    }
}

fn check_instruction(
    plan: &Plan,
    ins: &Instruction,
    produced: &HashMap<u32, &Instruction>,
    last: bool,
) -> Result<(), String> {
    let op = ins.op.as_ref().ok_or("no operation")?;
    let c = Check {
        plan,
        ins,
        produced,
    };
    c.operands(op, last)?;
    match op {
        Op::Embed(_)
        | Op::Linear(_)
        | Op::Logits(_)
        | Op::SplitQkv(_)
        | Op::CacheAppend(_)
        | Op::QkT(_)
        | Op::Pv(_) => c.products(op),
        Op::Softmax(_) | Op::LayerNorm(_) | Op::Gelu(_) | Op::Add(_) | Op::Sample(_) => {
            c.elementwise(op)
        }
    }
}

/// One instruction under check, with the plan and what the program wrote before it.
struct Check<'a> {
    plan: &'a Plan,
    ins: &'a Instruction,
    produced: &'a HashMap<u32, &'a Instruction>,
}

impl Check<'_> {
    fn reg(&self, r: u32) -> &Register {
        &self.plan.registers[r as usize]
    }

    fn rows(&self, r: u32) -> Rows {
        Rows::try_from(self.reg(r).rows).unwrap_or(Rows::Tokens)
    }

    fn cols(&self, r: u32) -> u64 {
        self.reg(r).cols
    }

    fn want_rows(&self, r: u32, kind: Rows) -> Result<(), String> {
        if self.rows(r) != kind {
            return Err(format!(
                "register r{r} has rows {:?}, the operation needs {kind:?}",
                self.rows(r)
            ));
        }
        Ok(())
    }

    fn want_shape(&self, w: u32, shape: &[u64]) -> Result<(), String> {
        let got = self
            .plan
            .weights
            .get(w as usize)
            .map(|i| i.shape.as_slice())
            .ok_or_else(|| {
                format!(
                    "uses weight w{w}, the plan has {} weights",
                    self.plan.weights.len()
                )
            })?;
        if got != shape {
            return Err(format!(
                "weight w{w} has shape {got:?}, its registers need {shape:?}"
            ));
        }
        Ok(())
    }

    fn shift_ok(&self, shift: u32) -> Result<(), String> {
        if shift >= self.plan.ring_bits {
            return Err(format!(
                "shift {shift} is not below the {}-bit ring",
                self.plan.ring_bits
            ));
        }
        Ok(())
    }

    /// The first input (every operation but `Embed` has one) and the first output.
    fn io(&self) -> (u32, u32) {
        (
            self.ins.inputs.first().copied().unwrap_or(0),
            self.ins.outputs[0],
        )
    }

    /// Arity, register ids, every input written before (or a persistent cache), and the
    /// `Sample` last.
    fn operands(&self, op: &Op, last: bool) -> Result<(), String> {
        let ins = self.ins;
        let nregs = self.plan.registers.len();
        let (nin, nout) = arity(op);
        if ins.inputs.len() != nin || ins.outputs.len() != nout {
            return Err(format!(
                "{} inputs and {} outputs, the operation takes {nin} and {nout}",
                ins.inputs.len(),
                ins.outputs.len()
            ));
        }
        for (&r, verb) in ins
            .inputs
            .iter()
            .map(|r| (r, "reads"))
            .chain(ins.outputs.iter().map(|r| (r, "writes")))
        {
            if r as usize >= nregs {
                return Err(format!(
                    "{verb} register r{r}, the plan has {nregs} registers"
                ));
            }
        }
        for &r in &ins.inputs {
            if !self.produced.contains_key(&r) && !self.reg(r).persistent {
                return Err(format!(
                    "reads register r{r} before any instruction writes it"
                ));
            }
        }
        if matches!(op, Op::Sample(_)) != last {
            return Err(if last {
                "the program does not end with a Sample".into()
            } else {
                "a Sample before the end of the program".into()
            });
        }
        Ok(())
    }

    /// The products and the attention's data movement: weights against their registers, the
    /// QKV split, the cache appends, heads dividing the cache.
    fn products(&self, op: &Op) -> Result<(), String> {
        let model = self.plan.model.as_ref().expect("checked by check_header");
        let (x, y) = self.io();
        match op {
            Op::Embed(e) => {
                self.want_rows(y, Rows::Tokens)?;
                let c = self.cols(y);
                self.want_shape(e.token_table, &[model.vocab, c])?;
                self.want_shape(e.position_table, &[model.positions, c])?;
                if e.prepared > super::Linear::PREPARED_SVOLE {
                    return Err(format!("unknown product method {}", e.prepared));
                }
            }
            Op::Linear(l) | Op::Logits(l) => {
                self.want_rows(x, Rows::Tokens)?;
                let logits = matches!(op, Op::Logits(_));
                self.want_rows(y, if logits { Rows::One } else { Rows::Tokens })?;
                self.want_shape(l.weight, &[self.cols(x), self.cols(y)])?;
                if let Some(b) = l.bias {
                    self.want_shape(b, &[self.cols(y)])?;
                }
                if logits && self.cols(y) != model.vocab {
                    return Err(format!(
                        "writes {} logits, the vocabulary has {}",
                        self.cols(y),
                        model.vocab
                    ));
                }
                self.shift_ok(l.shift)?;
                if l.prepared > super::Linear::PREPARED_SVOLE {
                    return Err(format!("unknown product method {}", l.prepared));
                }
            }
            Op::SplitQkv(_) => {
                self.want_rows(x, Rows::Tokens)?;
                let c = self.cols(x) / 3;
                if c == 0 || !self.cols(x).is_multiple_of(3) {
                    return Err(format!(
                        "splits r{x} of {} columns into three equal parts",
                        self.cols(x)
                    ));
                }
                for &o in &self.ins.outputs {
                    self.want_rows(o, Rows::Tokens)?;
                    if self.cols(o) != c {
                        return Err(format!(
                            "writes r{o} of {} columns, a third of r{x} is {c}",
                            self.cols(o)
                        ));
                    }
                }
            }
            Op::CacheAppend(_) => {
                self.want_rows(x, Rows::Tokens)?;
                self.want_rows(y, Rows::Positions)?;
                if !self.reg(y).persistent || self.cols(x) != self.cols(y) || self.cols(y) == 0 {
                    return Err(format!(
                        "appends r{x} ({} columns) to r{y} ({} columns, {}persistent): needs a persistent cache of the same width",
                        self.cols(x),
                        self.cols(y),
                        if self.reg(y).persistent { "" } else { "not " }
                    ));
                }
            }
            Op::QkT(h) | Op::Pv(h) => {
                let (a, cache) = (self.ins.inputs[0], self.ins.inputs[1]);
                self.want_rows(a, Rows::Tokens)?;
                self.want_rows(cache, Rows::Positions)?;
                self.want_rows(y, Rows::Tokens)?;
                let c = self.cols(cache);
                if h.heads == 0 || c == 0 || !c.is_multiple_of(u64::from(h.heads)) {
                    return Err(format!(
                        "{} heads do not divide the cache r{cache}'s {c} columns",
                        h.heads
                    ));
                }
                if !self.reg(cache).persistent {
                    return Err(format!("r{cache} is not a persistent cache register"));
                }
                let same = if let Op::QkT(_) = op { a } else { y };
                if self.cols(same) != c {
                    return Err(format!(
                        "r{same} has {} columns, the cache r{cache} has {c}",
                        self.cols(same)
                    ));
                }
                if let Op::Pv(_) = op {
                    from_heads(self.produced, a, "Softmax", h.heads)?;
                }
                self.shift_ok(h.shift)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The non-linear layers, the residual sum and the sampling: widths, heads and tables.
    fn elementwise(&self, op: &Op) -> Result<(), String> {
        let model = self.plan.model.as_ref().expect("checked by check_header");
        let (x, y) = self.io();
        match op {
            Op::Softmax(s) => {
                self.want_rows(x, Rows::Tokens)?;
                self.want_rows(y, Rows::Tokens)?;
                from_heads(self.produced, x, "QkT", s.heads)?;
                softmax_tables(self.plan, s)?;
            }
            Op::LayerNorm(n) => {
                self.want_rows(x, Rows::Tokens)?;
                self.want_rows(y, Rows::Tokens)?;
                if n.n != self.cols(x) || self.cols(y) != self.cols(x) {
                    return Err(format!(
                        "normalises rows of {} from r{x} of {} columns into r{y} of {}",
                        n.n,
                        self.cols(x),
                        self.cols(y)
                    ));
                }
                convert::layernorm_from_plan(n)
                    .validate()
                    .map_err(|e| e.to_string())?;
            }
            Op::Gelu(g) => {
                self.want_rows(x, Rows::Tokens)?;
                self.want_rows(y, Rows::Tokens)?;
                if self.cols(x) != self.cols(y) || self.cols(x) == 0 {
                    return Err(format!(
                        "maps r{x} of {} columns to r{y} of {}",
                        self.cols(x),
                        self.cols(y)
                    ));
                }
                let t = convert::gelu_from_plan(g);
                t.validate().map_err(|e| e.to_string())?;
                if t.min_ring_bits() > self.plan.ring_bits {
                    return Err(format!(
                        "its tables need a ring of {} bits, the plan's has {}",
                        t.min_ring_bits(),
                        self.plan.ring_bits
                    ));
                }
            }
            Op::Add(_) => {
                let (a, b) = (self.ins.inputs[0], self.ins.inputs[1]);
                for r in [a, b, y] {
                    self.want_rows(r, Rows::Tokens)?;
                }
                if self.cols(a) != self.cols(y) || self.cols(b) != self.cols(y) || self.cols(y) == 0
                {
                    return Err(format!(
                        "adds r{a} ({} columns) and r{b} ({}) into r{y} ({})",
                        self.cols(a),
                        self.cols(b),
                        self.cols(y)
                    ));
                }
            }
            Op::Sample(sp) => {
                match self.produced.get(&x).and_then(|p| p.op.as_ref()) {
                    Some(Op::Logits(_)) => {}
                    _ => return Err(format!("samples from r{x}, which no Logits writes")),
                }
                self.want_rows(y, Rows::One)?;
                super::Sample::check_decoding(sp.top_k, sp.inv_temperature, model.vocab)?;
                match &sp.softmax {
                    Some(s) => softmax_tables(self.plan, s)?,
                    None if sp.top_k > 1 => return Err("top-K sampling without tables".into()),
                    None => {}
                }
                if sp.shift > 62 {
                    return Err(format!("shift {} is above 62", sp.shift));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Register `r` is written by an instruction of kind `kind` with `heads` heads (a score block's
/// layout is `[heads × rows, positions]`, which only its producer knows).
fn from_heads(
    produced: &HashMap<u32, &Instruction>,
    r: u32,
    kind: &str,
    heads: u32,
) -> Result<(), String> {
    let theirs = match produced.get(&r).and_then(|p| p.op.as_ref()) {
        Some(Op::QkT(h)) if kind == "QkT" => h.heads,
        Some(Op::Softmax(s)) if kind == "Softmax" => s.heads,
        _ => return Err(format!("reads r{r}, which no {kind} writes")),
    };
    if theirs != heads {
        return Err(format!(
            "{heads} heads, the {kind} that writes r{r} has {theirs}"
        ));
    }
    Ok(())
}

fn softmax_tables(plan: &Plan, s: &super::Softmax) -> Result<(), String> {
    if s.heads == 0 {
        return Err("softmax over 0 heads".into());
    }
    // The layout only: the entries are checked where they are used (the simulator and the
    // protocols validate the tables in full), and estimates may be made for placeholder tables.
    convert::softmax_from_plan(s)
        .validate_layout()
        .map_err(|e| e.to_string())?;
    let need = s.hi_bits + s.lo_bits + 2;
    if need > plan.ring_bits {
        return Err(format!(
            "its tables need a ring of {need} bits, the plan's has {}",
            plan.ring_bits
        ));
    }
    Ok(())
}

/// Check a weights file against its plan: one tensor per weight, in order, by name, each of
/// 4- or 8-byte entries, as many as the weight's shape, within its declared bound.
pub fn validate_weights(plan: &Plan, weights: &WeightsFile) -> Result<(), String> {
    if weights.tensors.len() != plan.weights.len() {
        return Err(format!(
            "{} tensors, the plan has {} weights",
            weights.tensors.len(),
            plan.weights.len()
        ));
    }
    for (w, (t, info)) in weights.tensors.iter().zip(&plan.weights).enumerate() {
        let bad = |what: String| Err(format!("tensor {w} ('{}'): {what}", t.name.escape_debug()));
        if t.name != info.name {
            return bad(format!(
                "the plan's weight w{w} is '{}'",
                info.name.escape_debug()
            ));
        }
        if t.width != 4 && t.width != 8 {
            return bad(format!("entries of {} bytes, not 4 or 8", t.width));
        }
        let n = entries(&info.shape).unwrap_or(0);
        let want = n.checked_mul(u64::from(t.width));
        if want != Some(t.data.len() as u64) {
            return bad(format!(
                "{} bytes, shape {:?} of {}-byte entries needs {}",
                t.data.len(),
                info.shape,
                t.width,
                n.saturating_mul(u64::from(t.width))
            ));
        }
        let half = 1i128 << (info.bits - 1);
        let out = |v: i64| !(-half..half).contains(&i128::from(v));
        let found = if t.width == 8 {
            t.data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .find(|&v| out(v))
        } else {
            t.data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4 bytes"))))
                .find(|&v| out(v))
        };
        if let Some(v) = found {
            return bad(format!(
                "value {v} outside the plan's {}-bit bound",
                info.bits
            ));
        }
    }
    Ok(())
}
