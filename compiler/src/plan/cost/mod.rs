//! The cost model: an estimate, before anything runs, of the bytes each party sends and the
//! flights each plan instruction takes.
//!
//! Pure functions from an instruction and concrete sizes (rows, past positions, the session's
//! context) to a [`Cost`] per op class: the primitives on silent OT ([`primitives`]), the
//! non-linear layers composed from them step by step as the runtime runs them ([`layers`]),
//! and the products under RLWE ([`he`]). Every formula, with its source, is in
//! `docs/cost-model.md`. Primitive costs are computed in bits ([`Bits`]) and rounded up to bytes
//! per instruction part. The runtime's session report measures the same quantities per
//! instruction and op class; a test holds the two within 10% per class.
//!
//! Conventions:
//! - *server* and *client* bytes are what each party sends. In OT-based protocols the server is
//!   the OT sender (it sends the messages, the client its choice corrections).
//! - *rounds* are the one-way flights the client counts: a message it sends after receiving,
//!   or receives after sending; an exchange in which both send at once counts 2. Elements of
//!   one instruction run in parallel (batched), so an instruction's rounds are the depth of
//!   one element's protocol plus its per-row steps.
//! - OT correlations come from silent OT, whose batches (refills of the pools) the report
//!   counts apart; the estimate leaves them out.

mod he;
mod layers;
mod preparation;
mod primitives;

pub use he::*;
pub use layers::*;
pub use preparation::*;
pub use primitives::*;

use super::ops::kind;
use super::{instruction::Op, Instruction, Plan, Program, Rows};
use serde::Serialize;

/// Operation classes, as the rows of CipherGPT's Table V.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum OpClass {
    MatMul,
    #[serde(rename = "GELU")]
    Gelu,
    Softmax,
    LayerNorm,
    Truncation,
    Embedding,
    Sampling,
    /// Free: computed on each party's shares without communication.
    Local,
}

impl OpClass {
    /// The classes of the summary, in Table V order (`Local` costs nothing and is left out).
    pub const SUMMARY: [OpClass; 7] = [
        OpClass::MatMul,
        OpClass::Gelu,
        OpClass::Softmax,
        OpClass::LayerNorm,
        OpClass::Truncation,
        OpClass::Embedding,
        OpClass::Sampling,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            OpClass::MatMul => "MatMul",
            OpClass::Gelu => "GELU",
            OpClass::Softmax => "Softmax",
            OpClass::LayerNorm => "LayerNorm",
            OpClass::Truncation => "Truncation",
            OpClass::Embedding => "Embedding",
            OpClass::Sampling => "Sampling",
            OpClass::Local => "Local",
        }
    }
}

/// What the client does at one end of a step: send, receive, or nothing known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Edge {
    #[default]
    Unknown,
    Send,
    Recv,
}

/// Communication in bits, per party, and the client's flights, with what the client does
/// first and last: a step that begins in the direction the previous one ended in continues its
/// flight (the channel counts direction changes), so [`Bits::then`] merges the two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits {
    pub server: u64,
    pub client: u64,
    pub rounds: u64,
    pub first: Edge,
    pub last: Edge,
}

impl Bits {
    pub const ZERO: Bits = Bits::new(0, 0, 0);

    /// A step whose ends are not known (nothing merges with it).
    pub const fn new(server: u64, client: u64, rounds: u64) -> Bits {
        Bits {
            server,
            client,
            rounds,
            first: Edge::Unknown,
            last: Edge::Unknown,
        }
    }

    /// The same step, the client's first and last action stated.
    pub const fn edges(self, first: Edge, last: Edge) -> Bits {
        Bits {
            first,
            last,
            ..self
        }
    }

    /// `n` instances side by side: n times the bits, the same rounds (none if `n = 0`).
    pub fn times(self, n: u64) -> Bits {
        if n == 0 {
            return Bits::ZERO;
        }
        Bits {
            server: self.server.saturating_mul(n),
            client: self.client.saturating_mul(n),
            ..self
        }
    }

    /// `self`, then `next`: bits add, and rounds less one where `next` begins in the direction
    /// `self` ended in.
    pub fn then(self, next: Bits) -> Bits {
        if self.rounds == 0 {
            return Bits {
                server: self.server.saturating_add(next.server),
                client: self.client.saturating_add(next.client),
                ..next
            };
        }
        if next.rounds == 0 {
            return Bits {
                server: self.server.saturating_add(next.server),
                client: self.client.saturating_add(next.client),
                ..self
            };
        }
        let merged = self.last != Edge::Unknown && self.last == next.first;
        Bits {
            server: self.server.saturating_add(next.server),
            client: self.client.saturating_add(next.client),
            rounds: self.rounds.saturating_add(next.rounds) - u64::from(merged),
            first: self.first,
            last: next.last,
        }
    }

    /// The same step with the parties' roles swapped: each sends what the other did, and the
    /// client's ends are reversed.
    pub fn swapped(self) -> Bits {
        let flip = |e: Edge| match e {
            Edge::Send => Edge::Recv,
            Edge::Recv => Edge::Send,
            Edge::Unknown => Edge::Unknown,
        };
        Bits {
            server: self.client,
            client: self.server,
            rounds: self.rounds,
            first: flip(self.first),
            last: flip(self.last),
        }
    }

    /// `self`, then `next` (given as the client begins it) begun by the party that sent `self`'s
    /// last flight, whose first message then leaves in that flight: `next` swapped when the
    /// server sent last ([`Bits::begun_after`]). The runtime's protocols pick the same party
    /// (`cmp::last_sender`).
    pub fn then_by_last_sender(self, next: Bits) -> Bits {
        self.then(next.begun_after(self))
    }

    /// `self`, a step either party can begin (written as one of them does), begun by the party
    /// that sent `prev`'s last flight, so that it continues that flight: swapped when it would
    /// begin the other way. The executor's product truncations are begun so
    /// (runtime `trunc_within_margin_from`).
    pub fn begun_after(self, prev: Bits) -> Bits {
        let known = prev.rounds > 0 && prev.last != Edge::Unknown && self.first != Edge::Unknown;
        if known && self.first != prev.last {
            self.swapped()
        } else {
            self
        }
    }

    /// `self` and `other` at the same time: bits add, rounds (and ends) are the longer one's.
    pub fn alongside(self, other: Bits) -> Bits {
        let longer = if other.rounds > self.rounds {
            other
        } else {
            self
        };
        Bits {
            server: self.server.saturating_add(other.server),
            client: self.client.saturating_add(other.client),
            ..longer
        }
    }

    /// `self` run `n ≥ 1` times one after the other (slices of a long input): `n` times the
    /// bits and the flights, less the `n − 1` merges where one run ends as the next begins.
    pub fn repeated(self, n: u64) -> Bits {
        let n = n.max(1);
        let merges = if self.rounds > 0 && self.last != Edge::Unknown && self.last == self.first {
            n - 1
        } else {
            0
        };
        Bits {
            rounds: self.rounds.saturating_mul(n) - merges,
            ..self.times(n)
        }
    }

    /// Both directions.
    pub fn total(self) -> u64 {
        self.server.saturating_add(self.client)
    }
}

/// The estimate of one instruction part: bytes each party sends, and rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Bytes the server sends (server → client).
    pub server_bytes: u64,
    /// Bytes the client sends (client → server).
    pub client_bytes: u64,
    pub rounds: u64,
}

impl Cost {
    /// Bits rounded up to whole bytes.
    pub fn from_bits(b: Bits) -> Cost {
        Cost {
            server_bytes: b.server.div_ceil(8),
            client_bytes: b.client.div_ceil(8),
            rounds: b.rounds,
        }
    }

    /// Both directions.
    pub fn bytes(&self) -> u64 {
        self.server_bytes.saturating_add(self.client_bytes)
    }

    /// Sequential composition.
    pub fn add(&self, o: &Cost) -> Cost {
        Cost {
            server_bytes: self.server_bytes.saturating_add(o.server_bytes),
            client_bytes: self.client_bytes.saturating_add(o.client_bytes),
            rounds: self.rounds.saturating_add(o.rounds),
        }
    }
}

/// One part of an instruction's estimate (a Linear is a MatMul part and a Truncation part).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Part {
    pub class: OpClass,
    #[serde(flatten)]
    pub cost: Cost,
    /// What the client does first and last in this part (see [`chain`]).
    #[serde(skip)]
    pub first: Edge,
    #[serde(skip)]
    pub last: Edge,
}

/// Run parts one after another as a program does: a part that begins in the direction the
/// previous one (with flights) ended in continues that flight, so its first flight is not
/// counted again (the runtime counts an instruction's flights the same way).
pub fn chain<'a>(parts: impl IntoIterator<Item = &'a mut Part>) {
    let mut last = Edge::Unknown;
    for p in parts {
        if p.cost.rounds == 0 {
            continue;
        }
        if last != Edge::Unknown && last == p.first {
            p.cost.rounds -= 1;
        }
        last = p.last;
    }
}

/// The sum of an instruction's parts (they run one after the other).
pub fn total(parts: &[Part]) -> Cost {
    parts
        .iter()
        .fold(Cost::default(), |acc, p| acc.add(&p.cost))
}

/// The concrete sizes a program runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Rows processed: T in prefill, 1 in a decode step.
    pub rows: u64,
    /// Positions already in the KV cache: 0 in prefill, the position of the new token in a
    /// decode step.
    pub past: u64,
    /// The most positions of the session (prompt and generated tokens less one), which sets
    /// the attention products' layout; at least [`Sizes::positions`].
    pub context: u64,
}

impl Sizes {
    /// Prefill over a prompt of `tokens` tokens.
    pub fn prefill(tokens: u64) -> Sizes {
        Sizes {
            rows: tokens,
            past: 0,
            context: tokens,
        }
    }

    /// One decode step for the token at position `position` (after `position` tokens).
    pub fn decode(position: u64) -> Sizes {
        Sizes {
            rows: 1,
            past: position,
            context: position + 1,
        }
    }

    /// The same sizes in a session of `context` positions.
    pub fn within(self, context: u64) -> Sizes {
        Sizes {
            context: context.max(self.positions()),
            ..self
        }
    }

    /// Rows of the KV cache after this program's appends.
    pub fn positions(&self) -> u64 {
        self.past.saturating_add(self.rows)
    }

    /// Score entries per head under the causal mask: row r sees `past + r + 1` positions.
    pub fn visible(&self) -> u64 {
        let r = self.rows;
        r.saturating_mul(self.past)
            .saturating_add(r.saturating_mul(r.saturating_add(1)) / 2)
    }

    /// Rows a register of this kind has.
    pub fn rows_of(&self, rows: i32) -> u64 {
        match Rows::try_from(rows) {
            Ok(Rows::Positions) => self.positions(),
            Ok(Rows::One) => 1,
            _ => self.rows,
        }
    }
}

/// `⌈log2 x⌉` (0 for x ≤ 1).
pub fn log2_ceil(x: u64) -> u64 {
    if x <= 1 {
        0
    } else {
        64 - u64::from((x - 1).leading_zeros())
    }
}

// ---------------------------------------------------------------------------------------------
// Instructions.
// ---------------------------------------------------------------------------------------------

/// The op's name as the listing shows it ([`Op::name`]).
pub fn op_name(op: &Option<Op>) -> &'static str {
    op.as_ref().map_or("(none)", Op::name)
}

/// The class an op's main part belongs to ([`Op::class`]).
pub fn class_of(op: &Option<Op>) -> OpClass {
    op.as_ref().map_or(OpClass::Local, Op::class)
}

fn cols(plan: &Plan, reg: Option<&u32>) -> u64 {
    reg.and_then(|&r| plan.registers.get(r as usize))
        .map_or(0, |r| r.cols)
}

/// What one instruction's estimate reads: the plan, the instruction, and the sizes it runs at.
pub struct CostInput<'a> {
    pub plan: &'a Plan,
    pub ins: &'a Instruction,
    pub sizes: Sizes,
}

impl CostInput<'_> {
    /// The ring width ℓ.
    pub fn ring_bits(&self) -> u64 {
        u64::from(self.plan.ring_bits)
    }

    /// Columns of the first input register (0 when there is none).
    pub fn input_cols(&self) -> u64 {
        cols(self.plan, self.ins.inputs.first())
    }

    /// Columns of the first output register (0 when there is none).
    pub fn output_cols(&self) -> u64 {
        cols(self.plan, self.ins.outputs.first())
    }

    /// A weight's `[K, N]` (a vector is `[1, N]`; a missing or other weight `[0, 0]`).
    pub fn weight_shape(&self, id: u32) -> (u64, u64) {
        match self
            .plan
            .weights
            .get(id as usize)
            .map(|w| w.shape.as_slice())
        {
            Some([k, n]) => (*k, *n),
            Some([n]) => (1, *n),
            _ => (0, 0),
        }
    }
}

/// A part of class `class` costing `b` (its bits rounded up to bytes).
pub fn part(class: OpClass, b: Bits) -> Part {
    Part {
        class,
        cost: Cost::from_bits(b),
        first: b.first,
        last: b.last,
    }
}

/// The estimate of one instruction at the given sizes, as parts by op class: its kind's
/// ([`crate::plan::ops::InstructionKind::estimate`]). Never panics: a malformed reference costs
/// nothing.
pub fn estimate(plan: &Plan, ins: &Instruction, sizes: Sizes) -> Vec<Part> {
    match &ins.op {
        Some(op) => kind(op).estimate(&CostInput { plan, ins, sizes }),
        None => vec![part(OpClass::Local, Bits::ZERO)],
    }
}

/// The estimate of every instruction of a program, run one after another ([`chain`]).
pub fn program(plan: &Plan, program: &Program, sizes: Sizes) -> Vec<Vec<Part>> {
    let mut parts: Vec<Vec<Part>> = program
        .instructions
        .iter()
        .map(|ins| estimate(plan, ins, sizes))
        .collect();
    chain(parts.iter_mut().flatten());
    parts
}

/// A program's estimate grouped by op class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// One entry per class of [`OpClass::SUMMARY`], in that order.
    pub classes: Vec<(OpClass, Cost)>,
    pub total: Cost,
}

impl Summary {
    /// Group per-instruction parts.
    pub fn of(parts: &[Vec<Part>]) -> Summary {
        let classes: Vec<(OpClass, Cost)> = OpClass::SUMMARY
            .iter()
            .map(|&c| {
                let cost = parts
                    .iter()
                    .flatten()
                    .filter(|p| p.class == c)
                    .fold(Cost::default(), |acc, p| acc.add(&p.cost));
                (c, cost)
            })
            .collect();
        let total = classes
            .iter()
            .fold(Cost::default(), |acc, (_, c)| acc.add(c));
        Summary { classes, total }
    }

    /// Share of the total bytes, in percent (0 when the total is 0).
    pub fn bytes_share(&self, c: &Cost) -> f64 {
        share(c.bytes(), self.total.bytes())
    }

    /// Share of the total rounds, in percent.
    pub fn rounds_share(&self, c: &Cost) -> f64 {
        share(c.rounds, self.total.rounds)
    }
}

fn share(x: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * x as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_ceil_values() {
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 37, 64].map(log2_ceil),
            [0, 0, 1, 2, 2, 3, 6, 6]
        );
    }

    #[test]
    fn primitives_on_silent_ot() {
        // 4-bit digits over 15 bits: 4 leaves of 16 two-bit messages (the server chooses, the
        // client offers), then one node of the 4 (7 choice bits: the lowest eq is not needed;
        // 128 one-bit messages), 1 level, chosen by the client in the flight of the leaves'
        // messages: 3 flights, the server's first and last.
        assert_eq!(
            millionaire(15, 4),
            Bits::new(4 * 4 + 128, 4 * 32 + 7, 3).edges(Edge::Recv, Edge::Recv)
        );
        // 8 digits: four pairs (16 two-bit messages each: a pair above the lowest takes 4
        // choice bits; the client chooses, the server offers), then a node of 4 (the server
        // chooses); the arithmetic root's last pair of `carry_arith` (a node of 4 and one of 4
        // below it: 2^8 two-bit messages each, chosen by the client; then the 1-of-8 OT, chosen
        // by the server, whose shares are its masks).
        assert_eq!(tree_groups(8, 1), vec![vec![2, 2, 2, 2], vec![4]]);
        assert_eq!(tree_bits(8, 1, 1), (4 * 32 + 7, 4 * 4 + 128));
        assert_eq!(millionaire(29, 4).rounds, 4);
        assert_eq!(millionaire(29, 4).last, Edge::Send);
        assert_eq!(tree_groups(8, 2), vec![vec![4, 4]]);
        assert_eq!(
            carry_arith_with(29, 4, 35),
            Bits::new(8 * 4 + 2 * 256 * 2 + 3, 8 * 32 + 2 * 8 + 8 * 35, 4)
                .edges(Edge::Recv, Edge::Send)
        );
        // A product ends with the client receiving, as a comparison begins: one flight fewer.
        assert_eq!(
            product(37).then(comparison(36)).rounds,
            3 + comparison(36).rounds - 1
        );
        assert_eq!(
            mux(37).then(comparison(36)).rounds,
            3 + comparison(36).rounds
        );
        // The headroom truncation by 15 at ℓ = 35: 41.4 bytes per element (runtime
        // `trunc_within_margin`'s doc), 4 flights (the COTs leave with the tree's level).
        let t = truncation(35, 15);
        assert_eq!((t.total(), t.rounds), (331, 4));
        assert_eq!(mux(37).total(), 2 * 38);
        assert_eq!(b2a(37).total(), 38);
        assert_eq!(product(3).total(), 2 * (3 + 2 + 1 + 3));
        assert_eq!(ot_1_of_n(16, 2).total(), 16 * 2 + 4);
        assert_eq!(truncation(37, 0), Bits::ZERO);
        assert_eq!(cheapest_digit_bits(8), 4);
        assert_eq!(cheapest_digit_bits(11), 6);
    }

    /// Parts in a row: a part that begins where the previous part with flights ended (a local
    /// part between them changes nothing) loses its first flight; one that turns keeps it.
    #[test]
    fn chained_parts_continue_flights() {
        let part = |class, b: Bits| Part {
            class,
            cost: Cost::from_bits(b),
            first: b.first,
            last: b.last,
        };
        let mut parts = [
            part(OpClass::MatMul, opening(8)),
            part(OpClass::Truncation, truncation(35, 15)),
            part(OpClass::Local, Bits::ZERO),
            part(OpClass::MatMul, opening(8)),
            part(OpClass::Gelu, mux(8)),
        ];
        // opening: send → receive; truncation: receive → send; mux: send → send.
        chain(parts.iter_mut());
        let rounds: Vec<u64> = parts.iter().map(|p| p.cost.rounds).collect();
        assert_eq!(rounds, vec![2, 3, 0, 1, 3]);
        // A truncation after a step the client sent last begins with the client (the parties'
        // bits exchanged) and continues its flight; after the server's, it is unchanged.
        let t = truncation(35, 15);
        let after_client = t.begun_after(opening(8).then(mux(8)));
        assert_eq!(after_client, t.swapped());
        assert_eq!(
            (after_client.first, after_client.server),
            (Edge::Send, t.client)
        );
        assert_eq!(t.begun_after(opening(8)), t);
        assert_eq!(t.begun_after(Bits::ZERO), t);
    }

    #[test]
    fn packing_respects_the_degree_and_covers_the_matrix() {
        for (m, k, n) in [
            (1, 64, 192),
            (32, 768, 2304),
            (256, 64, 256),
            (1, 768, 50257),
            (7, 3, 5),
        ] {
            let p = he_packing(m, k, n, 37);
            let [n_i, n_o] = p.windows;
            assert!(
                n_i * n_o * p.rows_per_ct <= POLY_DEGREE,
                "{m}x{k}x{n}: {p:?}"
            );
            assert!(n_i <= k && n_o <= n);
            let groups = m.div_ceil(p.rows_per_ct);
            assert_eq!(p.in_cts, groups * k.div_ceil(n_i));
            assert_eq!(p.out_cts, groups * n.div_ceil(n_o));
        }
        // GPT-2's QKV product on one row: the 96 × 85 window of `ciphergpt bench linear`
        // (8 ciphertexts up, 28 down).
        let p = he_packing(1, 768, 2304, 37);
        assert_eq!((p.windows, p.in_cts, p.out_cts), ([96, 85], 8, 28));
    }
}
