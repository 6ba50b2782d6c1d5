//! The cost model: an estimate, before anything runs, of the bytes each party sends and the
//! rounds each plan instruction takes.
//!
//! Pure functions from an instruction and concrete sizes (rows, past positions) to a
//! [`Cost`] per op class. Every formula, with its source, is in `docs/cost-model.md`; the
//! constants below are the only tunables. Primitive costs are computed in bits ([`Bits`]) and
//! rounded up to bytes per instruction part. The runtime's channel accounting will measure the
//! real costs per instruction; this model is what they are compared against.
//!
//! Conventions:
//! - *server* and *client* bytes are what each party sends. In OT-based protocols the server is
//!   the OT sender (it sends the messages, the client its choice bits); symmetric parts (AND
//!   gates, the two cross terms of a product) are split evenly.
//! - *rounds* are one-way flights a party must wait for; a round trip is 2. Elements of one
//!   instruction run in parallel (batched), so an instruction's rounds are the depth of one
//!   element's protocol plus its per-row steps.
//! - OT correlations come from silent OT (Ferret-style), whose amortised cost is taken as 0.

use super::{instruction::Op, Instruction, Linear, Plan, Program, Rows};
use serde::Serialize;

/// RLWE polynomial degree N (Cheetah's SEAL parameters).
pub const POLY_DEGREE: u64 = 4096;
/// Bits of the ciphertext modulus q of a fresh ciphertext (the 128-bit-secure maximum for
/// N = 4096; Cheetah quotes q ≈ 2^105).
pub const LOG_Q: u64 = 109;
/// A response ciphertext is modulus-switched to q′ with log2 q′ = ℓ + this many bits.
pub const RESPONSE_EXTRA_BITS: u64 = 12;
/// Index bits of the spline table of a reciprocal or inverse square root
/// (`fixed::semantics::inverse::INV_INDEX_BITS`).
pub const INV_TABLE_BITS: u64 = crate::fixed::semantics::inverse::INV_INDEX_BITS as u64;

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

    pub fn name(self) -> &'static str {
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

/// Communication in bits, per party, and rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits {
    pub server: u64,
    pub client: u64,
    pub rounds: u64,
}

impl Bits {
    pub const ZERO: Bits = Bits {
        server: 0,
        client: 0,
        rounds: 0,
    };

    pub const fn new(server: u64, client: u64, rounds: u64) -> Bits {
        Bits {
            server,
            client,
            rounds,
        }
    }

    /// `n` instances side by side: n times the bits, the same rounds (none if `n = 0`).
    pub fn times(self, n: u64) -> Bits {
        if n == 0 {
            return Bits::ZERO;
        }
        Bits::new(
            self.server.saturating_mul(n),
            self.client.saturating_mul(n),
            self.rounds,
        )
    }

    /// `self`, then `next`: bits and rounds add.
    pub fn then(self, next: Bits) -> Bits {
        Bits::new(
            self.server.saturating_add(next.server),
            self.client.saturating_add(next.client),
            self.rounds.saturating_add(next.rounds),
        )
    }

    /// `self` and `other` at the same time: bits add, rounds are the longer of the two.
    pub fn alongside(self, other: Bits) -> Bits {
        Bits::new(
            self.server.saturating_add(other.server),
            self.client.saturating_add(other.client),
            self.rounds.max(other.rounds),
        )
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
}

impl Sizes {
    /// Prefill over a prompt of `tokens` tokens.
    pub fn prefill(tokens: u64) -> Sizes {
        Sizes {
            rows: tokens,
            past: 0,
        }
    }

    /// One decode step for the token at position `position` (after `position` tokens).
    pub fn decode(position: u64) -> Sizes {
        Sizes {
            rows: 1,
            past: position,
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
// Primitives (bits), silent-OT era. ℓ = ring bits. Sources in docs/cost-model.md.
// ---------------------------------------------------------------------------------------------

/// `(n choose 1)`-OT of `msg` bits (Cheetah Table 2): the sender (server) sends `n·msg`, the
/// receiver `⌈log2 n⌉` bits of choice correction; 2 rounds.
pub fn ot_1_of_n(n: u64, msg: u64) -> Bits {
    Bits::new(n.saturating_mul(msg), log2_ceil(n), 2)
}

/// Lookup of a secret-shared index in a public table of `entries` entries of `bits` bits: one
/// `(entries choose 1)`-OT (CipherGPT §II, F_LUT).
pub fn lut(entries: u64, bits: u64) -> Bits {
    ot_1_of_n(entries, bits)
}

/// Millionaires' comparison of ℓ-bit values (Cheetah Table 3, m = 4): `< 11ℓ` bits — leaf
/// `(16 choose 1)`-OT₂ per 4-bit block, `9ℓ` (8ℓ sender, ℓ receiver), and the AND tree, `2ℓ`
/// (even); `⌈log2 ℓ⌉` rounds.
pub fn comparison(l: u64) -> Bits {
    Bits::new(9 * l, 2 * l, log2_ceil(l))
}

/// Multiplexer of an ℓ-bit value by a shared bit (SIRNN): `2(ℓ + 1)` bits, one COT each way.
pub fn mux(l: u64) -> Bits {
    Bits::new(l + 1, l + 1, 2)
}

/// Boolean to arithmetic conversion into Z_2^ℓ: one `(2 choose 1)`-COT_ℓ, `ℓ + 1` bits.
pub fn b2a(l: u64) -> Bits {
    Bits::new(l, 1, 2)
}

/// Faithful truncation of ℓ-bit values by `s` bits (Cheetah Table 4, VOLE): `16ℓ + 11s` bits —
/// Mill_ℓ (9ℓ/2ℓ), `(4 choose 1)`-OT_ℓ (4ℓ), B2A (ℓ), Mill_s (9s/2s); `⌈log2 ℓ⌉ + 2` rounds.
pub fn truncation(l: u64, s: u64) -> Bits {
    if s == 0 {
        return Bits::ZERO;
    }
    Bits::new(14 * l + 9 * s, 2 * l + 2 * s, log2_ceil(l) + 2)
}

/// Truncate-then-reduce of ℓ-bit values by `s` bits (SIRNN, via CipherGPT §II, with silent
/// OT): `ℓ + 13s` bits; `⌈log2 s⌉ + 2` rounds.
pub fn truncate_reduce(l: u64, s: u64) -> Bits {
    if s == 0 {
        return Bits::ZERO;
    }
    Bits::new(l + 11 * s, 2 * s, log2_ceil(s) + 2)
}

/// Product of two secret-shared ℓ-bit values (Gilboa with COT): two cross terms, each ℓ COTs
/// of `ℓ, ℓ−1, …, 1` bits (`ℓ(ℓ+1)/2` from the sender, ℓ choice bits from the receiver), one
/// in each direction: `ℓ² + 3ℓ` bits; 2 rounds.
pub fn product(l: u64) -> Bits {
    let each = l * (l + 1) / 2 + l;
    Bits::new(each, each, 2)
}

/// Square of a secret-shared value: one cross term, `(ℓ² + 3ℓ)/2` bits.
pub fn square(l: u64) -> Bits {
    Bits::new(l * (l + 1) / 2, l, 2)
}

/// Reveal of an ℓ-bit value to the client: the server sends its share.
pub fn reveal(l: u64) -> Bits {
    Bits::new(l, 0, 1)
}

/// A per-row reciprocal or inverse square root of a positive value below `2^in_bits`
/// (`fixed::semantics::inverse`, computed over Z_2^64): the leading bit by `in_bits − 1`
/// comparisons side by side, the mantissa by one multiplexer per candidate bit, the segment and
/// position by two carries and their B2A, a lookup of two 64-bit tables of `2^8` entries, the
/// spline's product, and the scale by a second multiplexer per candidate and a truncation. A
/// fixed number of rounds, whatever the number of rows.
pub fn inverse_root(in_bits: u64) -> Bits {
    let b = in_bits.max(2);
    let r = b.saturating_sub(1 + INV_TABLE_BITS);
    let leading = comparison(b).times(b - 1);
    let select = mux(64).times(b);
    let carries = comparison(r).then(b2a(64)).times(2);
    let table = lut(1 << INV_TABLE_BITS, 128);
    let spline = product(64);
    let scale = select.then(truncation(64, 34));
    leading
        .then(select)
        .then(carries)
        .then(table)
        .then(spline)
        .then(scale)
}

/// Bits of a fresh RLWE ciphertext: `2·N·log2 q`.
pub fn ct_in_bits() -> u64 {
    2 * POLY_DEGREE * LOG_Q
}

/// Bits of a response ciphertext after modulus switching: `2·N·(ℓ + 12)`.
pub fn ct_out_bits(l: u64) -> u64 {
    2 * POLY_DEGREE * (l + RESPONSE_EXTRA_BITS)
}

/// How an HE matrix product `A·B` (`A` `[m×k]` encrypted by one party, `B` `[k×n]` plaintext
/// of the other) is packed (Iron, Algorithm 1): windows `m_w·k_w·n_w ≤ N`, chosen to minimise
/// the bits; `⌈m/m_w⌉·⌈k/k_w⌉` ciphertexts go in and `⌈m/m_w⌉·⌈n/n_w⌉` come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HePacking {
    pub windows: [u64; 3],
    pub in_cts: u64,
    pub out_cts: u64,
    pub in_bits: u64,
    pub out_bits: u64,
}

fn window_candidates(d: u64) -> Vec<u64> {
    let top = d.min(POLY_DEGREE);
    let mut c: Vec<u64> = (0..).map(|i| 1u64 << i).take_while(|&w| w < top).collect();
    c.push(top);
    c
}

/// The cheapest Iron packing of `[m×k]·[k×n]` for ring ℓ.
pub fn he_packing(m: u64, k: u64, n: u64, l: u64) -> HePacking {
    let empty = HePacking {
        windows: [0; 3],
        in_cts: 0,
        out_cts: 0,
        in_bits: 0,
        out_bits: 0,
    };
    if m == 0 || k == 0 || n == 0 {
        return empty;
    }
    let (ci, co) = (ct_in_bits(), ct_out_bits(l));
    let mut best: Option<HePacking> = None;
    for &mw in &window_candidates(m) {
        for &kw in &window_candidates(k) {
            if mw * kw > POLY_DEGREE {
                continue;
            }
            let nw = n.min(POLY_DEGREE / (mw * kw));
            let blocks = m.div_ceil(mw);
            let in_cts = blocks.saturating_mul(k.div_ceil(kw));
            let out_cts = blocks.saturating_mul(n.div_ceil(nw));
            let p = HePacking {
                windows: [mw, kw, nw],
                in_cts,
                out_cts,
                in_bits: in_cts.saturating_mul(ci),
                out_bits: out_cts.saturating_mul(co),
            };
            let bits = |q: &HePacking| q.in_bits.saturating_add(q.out_bits);
            match &best {
                Some(b) if bits(b) <= bits(&p) => {}
                _ => best = Some(p),
            }
        }
    }
    best.unwrap_or(empty)
}

/// Secret-shared `[m×k]` times a server-held `[k×n]`: the client sends its encrypted share,
/// the server returns the masked product (the server's own share times W is local); 2 rounds.
pub fn he_matmul_server_weights(m: u64, k: u64, n: u64, l: u64) -> Bits {
    let p = he_packing(m, k, n, l);
    if p.in_cts == 0 {
        return Bits::ZERO;
    }
    Bits::new(p.out_bits, p.in_bits, 2)
}

/// Bits of a seeded RLWE ciphertext on the wire (the seed and b at 109 bits per coefficient).
pub const SEEDED_CT_BITS: u64 = 128 + POLY_DEGREE * LOG_Q;
/// The sVOLE's dual-LPN noise weight before rounding to fill ciphertexts (runtime
/// `crypto::qc_code::noise_weight`).
pub const SVOLE_NOISE_WEIGHT: u64 = 174;
/// The sVOLE's shortest noise block (runtime `svole_matmul::MIN_BLOCK_LEN`): a batch needs
/// 2L′ ≥ 256·t rows' worth of noise positions.
pub const SVOLE_MIN_BLOCK: u64 = 256;

/// The sVOLE layout for `k` columns: (noise values per returned ciphertext, noise weight t).
/// Two gadget limbs; at most 64 values per ciphertext (the runtime searches the flooding
/// budget exactly; this is its estimate).
pub fn svole_layout(k: u64) -> (u64, u64) {
    let per_ct = (POLY_DEGREE / k.clamp(1, POLY_DEGREE)).min(64);
    let t = SVOLE_NOISE_WEIGHT;
    (
        per_ct,
        if per_ct >= t {
            t
        } else {
            t.div_ceil(per_ct) * per_ct
        },
    )
}

/// The fewest rows an sVOLE preparation of a `[·×k]` product may cover (its security floor).
pub fn svole_min_rows(k: u64) -> u64 {
    let (_, t) = svole_layout(k);
    (t * SVOLE_MIN_BLOCK).div_ceil(2)
}

/// Preparing `rows` future rows of x·W (`W` `[m×k]`, the server's) by CipherGPT's subfield VOLE
/// (`docs/protocols.md` §29): the server's gadget ciphertexts of W and the d corrections, the
/// client's returned products, the PPRF's chosen-message OTs (two 128-bit messages and a choice
/// bit each); 6 rounds.
pub fn svole_prepare(rows: u64, m: u64, k: u64, l: u64) -> Bits {
    let (per_ct, t) = svole_layout(k);
    let kc = k.min(POLY_DEGREE);
    let chunks = k.div_ceil(kc);
    let depth = log2_ceil((2 * (rows + 1)).div_ceil(t).max(1));
    let keys = (1 + 2 * m * chunks) * SEEDED_CT_BITS;
    let products =
        m * chunks * t.div_ceil(per_ct) * (POLY_DEGREE * (l + 10) + per_ct * kc * (l + 2));
    let corrections = m * t * k * l;
    let ots = m * t * depth;
    Bits::new(keys + corrections + 256 * ots, products + ots, 6)
}

/// Online part of a prepared product, per row: the client's masked input, `m·ℓ` bits, 1 round.
pub fn prepared_online(m: u64, l: u64) -> Bits {
    Bits::new(0, m * l, 1)
}

/// Secret-shared `[m×k]` times secret-shared `[k×n]`: two cross products (`a_S·b_C` and
/// `a_C·b_S`), one in each direction, each in the cheaper orientation (encrypt `a`, or encrypt
/// `bᵀ`); side by side, 2 rounds.
pub fn he_matmul_shared(m: u64, k: u64, n: u64, l: u64) -> Bits {
    let a = he_packing(m, k, n, l);
    let b = he_packing(n, k, m, l);
    let p = if b.in_bits.saturating_add(b.out_bits) < a.in_bits.saturating_add(a.out_bits) {
        b
    } else {
        a
    };
    if p.in_cts == 0 {
        return Bits::ZERO;
    }
    let each = p.in_bits.saturating_add(p.out_bits);
    Bits::new(each, each, 2)
}

// ---------------------------------------------------------------------------------------------
// Instructions.
// ---------------------------------------------------------------------------------------------

/// The op's name as the listing shows it.
pub fn op_name(op: &Option<Op>) -> &'static str {
    match op {
        Some(Op::Embed(_)) => "Embed",
        Some(Op::Linear(_)) => "Linear",
        Some(Op::SplitQkv(_)) => "SplitQkv",
        Some(Op::CacheAppend(_)) => "CacheAppend",
        Some(Op::QkT(_)) => "QkT",
        Some(Op::Softmax(_)) => "Softmax",
        Some(Op::Pv(_)) => "Pv",
        Some(Op::LayerNorm(_)) => "LayerNorm",
        Some(Op::Gelu(_)) => "Gelu",
        Some(Op::Add(_)) => "Add",
        Some(Op::Logits(_)) => "Logits",
        Some(Op::Sample(_)) => "Sample",
        None => "(none)",
    }
}

/// The class an op's main part belongs to.
pub fn class_of(op: &Option<Op>) -> OpClass {
    match op {
        Some(Op::Embed(_)) => OpClass::Embedding,
        Some(Op::Linear(_) | Op::Logits(_) | Op::QkT(_) | Op::Pv(_)) => OpClass::MatMul,
        Some(Op::Softmax(_)) => OpClass::Softmax,
        Some(Op::LayerNorm(_)) => OpClass::LayerNorm,
        Some(Op::Gelu(_)) => OpClass::Gelu,
        Some(Op::Sample(_)) => OpClass::Sampling,
        Some(Op::SplitQkv(_) | Op::CacheAppend(_) | Op::Add(_)) | None => OpClass::Local,
    }
}

fn cols(plan: &Plan, reg: Option<&u32>) -> u64 {
    reg.and_then(|&r| plan.registers.get(r as usize))
        .map_or(0, |r| r.cols)
}

fn weight_shape(plan: &Plan, id: u32) -> (u64, u64) {
    match plan.weights.get(id as usize).map(|w| w.shape.as_slice()) {
        Some([k, n]) => (*k, *n),
        Some([n]) => (1, *n),
        _ => (0, 0),
    }
}

/// The estimate of one instruction at the given sizes, as parts by op class (each part's
/// bits rounded up to bytes). Never panics: a malformed reference costs nothing.
pub fn estimate(plan: &Plan, ins: &Instruction, sizes: Sizes) -> Vec<Part> {
    let l = u64::from(plan.ring_bits);
    let rows = sizes.rows;
    let input_cols = cols(plan, ins.inputs.first());
    let part = |class: OpClass, b: Bits| Part {
        class,
        cost: Cost::from_bits(b),
    };
    match &ins.op {
        Some(Op::Embed(e)) => {
            // The client's one-hot rows [rows × V], encrypted, times the table [V × C] (Iron §3);
            // the public position rows are added by the server to its share.
            let (v, c) = weight_shape(plan, e.token_table);
            let mm = if e.prepared == Linear::ONLINE {
                he_matmul_server_weights(rows, v, c, l)
            } else {
                prepared_online(v, l).times(rows)
            };
            vec![part(OpClass::Embedding, mm)]
        }
        Some(Op::Linear(lin)) => {
            let (k, n) = weight_shape(plan, lin.weight);
            let k = if input_cols > 0 { input_cols } else { k };
            let mm = if lin.prepared == Linear::ONLINE {
                he_matmul_server_weights(rows, k, n, l)
            } else {
                prepared_online(k, l).times(rows)
            };
            let tr = truncation(l, u64::from(lin.shift)).times(rows.saturating_mul(n));
            vec![part(OpClass::MatMul, mm), part(OpClass::Truncation, tr)]
        }
        Some(Op::Logits(lin)) => {
            let (k, n) = weight_shape(plan, lin.weight);
            let k = if input_cols > 0 { input_cols } else { k };
            let mm = if lin.prepared == Linear::ONLINE {
                he_matmul_server_weights(1, k, n, l)
            } else {
                prepared_online(k, l)
            };
            let tr = truncation(l, u64::from(lin.shift)).times(n);
            let mut parts = vec![part(OpClass::MatMul, mm)];
            if lin.shift > 0 {
                parts.push(part(OpClass::Truncation, tr));
            }
            parts
        }
        Some(Op::QkT(h)) => {
            let heads = u64::from(h.heads.max(1));
            let dh = input_cols / heads;
            let p = sizes.positions();
            let mm = he_matmul_shared(rows, dh, p, l);
            let mm = Bits::new(
                mm.server.saturating_mul(heads),
                mm.client.saturating_mul(heads),
                mm.rounds,
            );
            let tr = truncation(l, u64::from(h.shift)).times(heads.saturating_mul(sizes.visible()));
            vec![part(OpClass::MatMul, mm), part(OpClass::Truncation, tr)]
        }
        Some(Op::Pv(h)) => {
            let heads = u64::from(h.heads.max(1));
            let c = cols(plan, ins.outputs.first());
            let dh = c / heads;
            let p = sizes.positions();
            let mm = he_matmul_shared(rows, p, dh, l);
            let mm = Bits::new(
                mm.server.saturating_mul(heads),
                mm.client.saturating_mul(heads),
                mm.rounds,
            );
            let tr = truncation(l, u64::from(h.shift)).times(rows.saturating_mul(c));
            vec![part(OpClass::MatMul, mm), part(OpClass::Truncation, tr)]
        }
        Some(Op::Softmax(s)) => {
            vec![part(OpClass::Softmax, softmax(l, s, sizes))]
        }
        Some(Op::LayerNorm(n)) => {
            let width = if n.n > 0 { n.n } else { input_cols };
            vec![part(OpClass::LayerNorm, layernorm(l, n, rows, width))]
        }
        Some(Op::Gelu(g)) => {
            let elements = rows.saturating_mul(input_cols);
            vec![part(OpClass::Gelu, gelu(l, g).times(elements))]
        }
        Some(Op::Sample(sp)) => vec![part(OpClass::Sampling, sample(l, input_cols, sp))],
        Some(Op::SplitQkv(_) | Op::CacheAppend(_) | Op::Add(_)) | None => {
            vec![part(OpClass::Local, Bits::ZERO)]
        }
    }
}

/// GELU of one element, CipherGPT Algorithm 1 on the plan's spline: TR of the `h`-bit shifted
/// input to its `s`-bit piece index, a LUT of `2^s` (slope, intercept) pairs of ℓ bits each, one
/// product and one truncation; alongside, two comparisons; then two multiplexers. Prepared
/// (`g.prepared`), the LUT and the product become [`gelu_prepared_spline`].
pub fn gelu(l: u64, g: &super::Gelu) -> Bits {
    let h = u64::from(g.alpha_log2 + 1 + g.frac);
    let s = u64::from(g.pieces_log2);
    let lookup = if g.prepared {
        gelu_prepared_spline(l, s)
    } else {
        lut(1 << s.min(30), 2 * l).then(product(l))
    };
    let spline = truncate_reduce(h, h.saturating_sub(s))
        .then(lookup)
        .then(truncation(l, u64::from(g.frac)));
    let compare = comparison(l).times(2);
    spline.alongside(compare).then(mux(l).times(2))
}

/// The prepared GELU's lookup and product, online: the openings of the index's offset (s bits)
/// and of r − b, then of A_i − a (ℓ bits each), each way, and the index carry (a comparison of
/// s bits); 2 rounds besides the comparison's.
pub fn gelu_prepared_spline(l: u64, s: u64) -> Bits {
    let open = s + 2 * l;
    Bits::new(open, open, 2).alongside(comparison(s))
}

/// Preparing one element of a GELU correlation: the one-hot vector of a random index among
/// `2^s` (a `(2^s choose 1)`-OT of `2^s`-bit rotations, then `2^s` B2A into Z_2^ℓ) and one Beaver
/// triple (a [`product`]); 4 rounds.
pub fn gelu_prepare(l: u64, s: u64) -> Bits {
    let n = 1u64 << s.min(30);
    ot_1_of_n(n, n).then(b2a(l).times(n)).alongside(product(l))
}

/// Softmax over the causal score rows of `heads` heads (see docs/cost-model.md).
pub fn softmax(l: u64, s: &super::Softmax, sizes: Sizes) -> Bits {
    let heads = u64::from(s.heads.max(1));
    let entries = heads.saturating_mul(sizes.visible());
    let row_count = heads.saturating_mul(sizes.rows);
    if entries == 0 {
        return Bits::ZERO;
    }
    let longest = sizes.positions();
    let lo_bits = if s.lo_bits > 0 {
        u64::from(s.lo_bits)
    } else {
        log2_ceil(s.exp_lo.len() as u64)
    };
    // Row maximum: a tree of (comparison + MUX) over each row, m − 1 of them per row.
    let cmp_mux = comparison(l).then(mux(l));
    let max = tree(cmp_mux, entries.saturating_sub(row_count), longest);
    // Per entry: clip the distance (comparison + MUX), split it into digits (TR; the low digit
    // is local), two table lookups side by side, their product and truncation.
    let exp = comparison(l)
        .then(mux(l))
        .then(truncate_reduce(l, lo_bits))
        .then(if s.prepared {
            // Prepared: the two digits' offsets from random indices, one flight, then the
            // product's two openings on a triple.
            opening(log2_ceil(s.exp_hi.len() as u64) + log2_ceil(s.exp_lo.len() as u64))
                .then(opening(2 * l))
        } else {
            lut(s.exp_hi.len() as u64, l)
                .alongside(lut(s.exp_lo.len() as u64, l))
                .then(product(l))
        })
        .then(truncation(l, u64::from(s.frac_exp)))
        .times(entries);
    // Per row: the reciprocal of the sum (the sum is local).
    let k = u64::from(s.frac_exp) + u64::from(s.frac_out) + u64::from(s.recip_guard);
    let recip = inverse_root(k + 1).times(row_count);
    // Per entry: the normalising product (prepared: a triple's openings) and truncation.
    let norm = if s.prepared {
        opening(2 * l)
    } else {
        product(l)
    }
    .then(truncation(
        l,
        u64::from(s.frac_exp) + u64::from(s.recip_guard),
    ))
    .times(entries);
    max.then(exp).then(recip).then(norm)
}

/// LayerNorm normalisation of `rows` rows of `n` (see docs/cost-model.md).
pub fn layernorm(l: u64, p: &super::LayerNorm, rows: u64, n: u64) -> Bits {
    let elements = rows.saturating_mul(n);
    if elements == 0 {
        return Bits::ZERO;
    }
    // d = n·x − S is local; V = Σ v² (squares). Prepared, the square and the normalising
    // product are openings of 64-bit values.
    let (square, product) = if p.prepared {
        (opening(64), opening(64))
    } else {
        (square(l), product(l))
    };
    // x extended to 64 bits by one COT within the ring margin; e and v both truncations of
    // d (by r1 and r1 + r2) within the wide ring's margin, side by side: a truncate-and-reduce
    // and a COT each.
    let margin = |s: u64| {
        if s == 0 {
            Bits::ZERO
        } else {
            truncate_reduce(64, s).then(b2a(s))
        }
    };
    let (r1, r2) = (u64::from(p.r1), u64::from(p.r2));
    let shifts = margin(r1).alongside(if r2 == 0 { Bits::ZERO } else { margin(r1 + r2) });
    let per_element = b2a(64 - l.min(63))
        .then(shifts)
        .then(square)
        .times(elements);
    let per_row =
        inverse_root(u64::from(crate::fixed::semantics::inverse::INV_MAX_IN_BITS)).times(rows);
    let scale = product
        .then(truncation(l, u64::from(p.f_rho)))
        .times(elements);
    per_element.then(per_row).then(scale)
}

/// Opening a shared value of `bits` bits to both parties (one Beaver-style step on a prepared
/// correlation): `bits` each way, one simultaneous flight.
pub fn opening(bits: u64) -> Bits {
    Bits::new(bits, bits, 1)
}

/// Preparing one LayerNorm entry: a square pair (one cross term over 64 bits) and a triple
/// entry (a product over 64 bits); 3 rounds.
pub fn layernorm_prepare() -> Bits {
    square(64).alongside(product(64))
}

/// Argmax over `v` logits: a tournament of `v − 1` comparisons, each with two multiplexers
/// (value and index), `⌈log2 v⌉` levels; then the index is revealed to the client.
pub fn argmax(l: u64, v: u64) -> Bits {
    if v == 0 {
        return Bits::ZERO;
    }
    let step = comparison(l).then(mux(l).times(2));
    tree(step, v - 1, v).then(reveal(l))
}

/// The token choice over `v` logits: [`argmax`] for K = 1, else [`top_k_sample`].
pub fn sample(l: u64, v: u64, s: &super::Sample) -> Bits {
    match s.top_k {
        0 | 1 => argmax(l, v),
        k => top_k_sample(l, v, u64::from(k), s),
    }
}

/// Top-K sampling over `v` logits (CipherGPT §V–VI; docs/cost-model.md): the values tagged with
/// `b = ⌈log2 v⌉` index bits (L = ℓ + b); a shuffle, two permute-and-shares of about
/// `b` one-of-two OTs of 128-bit seeds and three ring layers per entry; about `v + 4.5K`
/// comparisons of L − 1 bits, their bits revealed to both, in about `6 + log2 K` rounds of
/// comparisons (the planner's mean for GPT-2's vocabulary); the K survivors' values and indices
/// split off (a carry and a B2A each); then the temperature (a truncation in `ℓ + 23` bits), a
/// softmax over one row of K, K − 1 comparisons in Z_2^64, K multiplexers and the reveal.
pub fn top_k_sample(l: u64, v: u64, k: u64, s: &super::Sample) -> Bits {
    let b = log2_ceil(v).max(1);
    let wide = l + b;
    let permute = Bits::new(v * (256 * b + 3 * wide), v * (256 * b + 3 * wide), 3);
    let shuffle = permute.then(permute);
    let compare = comparison(wide - 1).then(Bits::new(2, 2, 1));
    let rounds = 6 + log2_ceil(k);
    let select = Bits {
        rounds: compare.rounds * rounds,
        ..compare.times(v + 9 * k / 2)
    };
    let split = comparison(b).then(b2a(l)).times(k);
    let temper = truncation(l + 23, u64::from(s.shift)).times(k);
    let soft = s.softmax.as_ref().map_or(Bits::ZERO, |t| {
        softmax(
            l,
            t,
            Sizes {
                rows: 1,
                past: k - 1,
            },
        )
    });
    let draw = comparison(64)
        .times(k - 1)
        .then(mux(l).times(k))
        .then(reveal(l));
    shuffle
        .then(select)
        .then(split)
        .then(temper)
        .then(soft)
        .then(draw)
}

/// `count` instances of `step` arranged as tournaments over rows of at most `longest`
/// entries: `⌈log2 longest⌉` levels of `step`'s rounds.
fn tree(step: Bits, count: u64, longest: u64) -> Bits {
    let b = step.times(count);
    Bits {
        rounds: if count == 0 {
            0
        } else {
            step.rounds * log2_ceil(longest)
        },
        ..b
    }
}

/// The estimate of every instruction of a program.
pub fn program(plan: &Plan, program: &Program, sizes: Sizes) -> Vec<Vec<Part>> {
    program
        .instructions
        .iter()
        .map(|ins| estimate(plan, ins, sizes))
        .collect()
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
    fn primitive_totals_match_the_papers() {
        let l = 37;
        assert_eq!(comparison(l).total(), 11 * l);
        assert_eq!(mux(l).total(), 2 * (l + 1));
        assert_eq!(b2a(l).total(), l + 1);
        assert_eq!(truncation(l, 12).total(), 16 * l + 11 * 12);
        assert_eq!(truncation(l, 12).total(), 724); // ANCHORS: Cheetah, 724 bit
        assert_eq!(truncate_reduce(l, 9).total(), l + 13 * 9);
        assert_eq!(product(l).total(), l * l + 3 * l);
        assert_eq!(ot_1_of_n(16, 2).total(), 16 * 2 + 4);
        assert_eq!(truncation(l, 0), Bits::ZERO);
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
            let [mw, kw, nw] = p.windows;
            assert!(mw * kw * nw <= POLY_DEGREE, "{m}x{k}x{n}: {:?}", p.windows);
            assert!(mw <= m && kw <= k && nw <= n);
            assert_eq!(p.in_cts, m.div_ceil(mw) * k.div_ceil(kw));
            assert_eq!(p.out_cts, m.div_ceil(mw) * n.div_ceil(nw));
        }
        // A small product fits one ciphertext each way.
        let p = he_packing(4, 16, 16, 37);
        assert_eq!((p.in_cts, p.out_cts), (1, 1));
    }
}
