//! The plan: the public two-party program the runtime executes, and the server's weights file.
//!
//! Protobuf messages defined with prost derives (no protoc). The plan is the only contract
//! between compiler and runtime. It holds the architecture, the ring and scales, the registers
//! (secret-shared tensors) and the instructions of two programs — `prefill` over the prompt and
//! `decode`, one new token against the secret KV cache — and every public table. It never holds
//! a weight: weights are referred to by id and live in the weights file, which only the server
//! reads. `docs/plan.md` describes every instruction's integer semantics.

pub mod cost;
pub mod file;
pub mod inspect;
pub mod link;
pub mod ops;
pub mod validate;

/// Version of the plan and weights file formats (`plan.cgp`, `weights.cgw`); a file of another
/// version is refused. Not the wire's version: that is the runtime's `net::wire::WIRE_VERSION`.
/// 2: the token choice is `Sample` (greedy or top-K), where version 1 had a greedy-only `Argmax`.
pub const PLAN_FORMAT_VERSION: u32 = 2;

/// The whole public plan.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Plan {
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    /// BLAKE3 of this message's encoding with `hash` empty.
    #[prost(bytes = "vec", tag = "2")]
    pub hash: Vec<u8>,
    /// The model file the plan was compiled from (name only).
    #[prost(string, tag = "3")]
    pub source: String,
    #[prost(message, optional, tag = "4")]
    pub model: Option<ModelInfo>,
    #[prost(enumeration = "Tokenizer", tag = "5")]
    pub tokenizer: i32,
    /// Ring width ℓ: values are integers mod 2^ℓ, read as signed.
    #[prost(uint32, tag = "6")]
    pub ring_bits: u32,
    /// Fractional bits of activations.
    #[prost(uint32, tag = "7")]
    pub frac_bits: u32,
    /// The server-held weights, by id: names, shapes and scales only.
    #[prost(message, repeated, tag = "8")]
    pub weights: Vec<WeightInfo>,
    /// The secret-shared tensors the programs read and write, by id.
    #[prost(message, repeated, tag = "9")]
    pub registers: Vec<Register>,
    #[prost(message, optional, tag = "10")]
    pub prefill: Option<Program>,
    #[prost(message, optional, tag = "11")]
    pub decode: Option<Program>,
    /// How calibration was done (prompts, tokens) and what it found, for `inspect`.
    #[prost(string, tag = "12")]
    pub calibration: String,
}

/// The architecture: public by the threat model.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInfo {
    #[prost(uint64, tag = "1")]
    pub vocab: u64,
    #[prost(uint64, tag = "2")]
    pub positions: u64,
    #[prost(uint64, tag = "3")]
    pub width: u64,
    #[prost(uint64, tag = "4")]
    pub heads: u64,
    #[prost(uint64, tag = "5")]
    pub layers: u64,
}

/// How the client turns text into token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Tokenizer {
    /// No tokenizer: the client gives token ids.
    Ids = 0,
    /// One token per byte (vocabulary 256).
    Byte = 1,
    /// GPT-2's byte-level BPE (vocabulary 50,257).
    Gpt2 = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WeightInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint64, repeated, tag = "2")]
    pub shape: Vec<u64>,
    #[prost(uint32, tag = "3")]
    pub frac_bits: u32,
    /// A public bound on the values: every entry v has −2^(bits−1) ≤ v < 2^(bits−1) (the
    /// runtime sizes its homomorphic products' noise flooding from it).
    #[prost(uint32, tag = "4")]
    pub bits: u32,
}

/// How many rows a register has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Rows {
    /// One row per token processed by the program: T in prefill, 1 in a decode step.
    Tokens = 0,
    /// One row per position so far (the KV cache): grows by the tokens of each program.
    Positions = 1,
    /// A single row.
    One = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Register {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "Rows", tag = "2")]
    pub rows: i32,
    /// Row width (for attention scores: heads × positions is given by the rows of the cache).
    #[prost(uint64, tag = "3")]
    pub cols: u64,
    #[prost(uint32, tag = "4")]
    pub frac_bits: u32,
    /// Kept across programs (the KV cache).
    #[prost(bool, tag = "5")]
    pub persistent: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Program {
    #[prost(message, repeated, tag = "1")]
    pub instructions: Vec<Instruction>,
}

/// One step: an operation with register inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Instruction {
    /// The IR node it came from.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, repeated, tag = "2")]
    pub inputs: Vec<u32>,
    #[prost(uint32, repeated, tag = "3")]
    pub outputs: Vec<u32>,
    #[prost(
        oneof = "instruction::Op",
        tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22"
    )]
    pub op: Option<instruction::Op>,
}

pub mod instruction {
    use super::cost::OpClass;

    /// The operations. Each kind's home (name, class, simulation, cost, `inspect` line) is its
    /// module of [`crate::plan::ops`]; its integer semantics is in `docs/plan.md`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Op {
        /// Private embedding lookup: row r = wte[token_r] + wpe[position_r]. Input: none (the
        /// client's tokens); output `[tokens, width]`.
        #[prost(message, tag = "10")]
        Embed(super::Embed),
        /// `y = (x·W + b) >> shift` with a server-held W and b.
        #[prost(message, tag = "11")]
        Linear(super::Linear),
        /// Split a `[rows, 3C]` register into q, k, v (local).
        #[prost(message, tag = "12")]
        SplitQkv(super::SplitQkv),
        /// Append the input rows to a persistent cache register (local).
        #[prost(message, tag = "13")]
        CacheAppend(super::CacheAppend),
        /// Per head: `scores = (q·Kᵀ) >> shift` against the cache. Output `[heads·rows, positions]`.
        #[prost(message, tag = "14")]
        QkT(super::HeadProduct),
        /// Causal softmax of every score row.
        #[prost(message, tag = "15")]
        Softmax(super::Softmax),
        /// Per head: `out = (P·V) >> shift` against the cache. Output `[rows, C]`.
        #[prost(message, tag = "16")]
        Pv(super::HeadProduct),
        /// LayerNorm normalisation (γ, β folded into the next linear layer).
        #[prost(message, tag = "17")]
        LayerNorm(super::LayerNorm),
        /// GELU as a linear spline with public tables.
        #[prost(message, tag = "18")]
        Gelu(super::Gelu),
        /// Elementwise sum of two registers (local).
        #[prost(message, tag = "19")]
        Add(super::Add),
        /// Vocabulary projection of the last row: `x·W + b`, not truncated.
        #[prost(message, tag = "20")]
        Logits(super::Linear),
        /// The next token from the logits (greedy or top-K sampling), revealed to the client
        /// only. (Tag 21 was the greedy-only `Argmax` of plans before sampling.)
        #[prost(message, tag = "22")]
        Sample(super::Sample),
    }

    impl Op {
        /// The operation's name, as listings and reports show it: its kind's
        /// ([`crate::plan::ops`]).
        pub fn name(&self) -> &'static str {
            super::ops::kind(self).name()
        }

        /// The op class its main part belongs to (its truncation, if any, is
        /// [`OpClass::Truncation`]): its kind's ([`crate::plan::ops`]).
        pub fn class(&self) -> OpClass {
            super::ops::kind(self).class()
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Embed {
    #[prost(uint32, tag = "1")]
    pub token_table: u32,
    #[prost(uint32, tag = "2")]
    pub position_table: u32,
    /// How the one-hot × token-table product runs, as [`Linear::prepared`].
    #[prost(uint32, tag = "3")]
    pub prepared: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Linear {
    #[prost(uint32, tag = "1")]
    pub weight: u32,
    #[prost(uint32, optional, tag = "2")]
    pub bias: Option<u32>,
    #[prost(uint32, tag = "3")]
    pub shift: u32,
    /// How the product runs ([`Linear::ONLINE`], [`Linear::PREPARED_RLWE`],
    /// [`Linear::PREPARED_SVOLE`]); the compiler's cost model chooses (`docs/cost-model.md`).
    #[prost(uint32, tag = "4")]
    pub prepared: u32,
}

impl Linear {
    /// The whole product under RLWE when it runs.
    pub const ONLINE: u32 = 0;
    /// Prepared ahead of the tokens as a masked-input correlation (the client's random mask U,
    /// shares of U·W) by the RLWE product; online only the client's masked input.
    pub const PREPARED_RLWE: u32 = 1;
    /// Prepared the same way by CipherGPT's subfield VOLE (dual LPN), when a batch is large
    /// enough for its security floor and cheaper than RLWE.
    pub const PREPARED_SVOLE: u32 = 2;

    /// A name for reports and `inspect`.
    pub fn prepared_name(&self) -> &'static str {
        prepared_name(self.prepared)
    }
}

/// The name of a product's method ([`Linear::prepared`], [`Embed::prepared`]).
pub fn prepared_name(method: u32) -> &'static str {
    match method {
        Linear::PREPARED_RLWE => "prepared(RLWE)",
        Linear::PREPARED_SVOLE => "prepared(sVOLE)",
        _ => "online",
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SplitQkv {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CacheAppend {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeadProduct {
    #[prost(uint32, tag = "1")]
    pub heads: u32,
    #[prost(uint32, tag = "2")]
    pub shift: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Softmax {
    #[prost(uint32, tag = "1")]
    pub heads: u32,
    #[prost(uint32, tag = "2")]
    pub frac_in: u32,
    #[prost(uint32, tag = "3")]
    pub frac_exp: u32,
    #[prost(uint32, tag = "4")]
    pub frac_out: u32,
    /// `exp(−h·2^lo_bits/2^frac_in)` for the high digit of the clipped difference, at `frac_exp`.
    #[prost(int64, repeated, tag = "5")]
    pub exp_hi: Vec<i64>,
    /// `exp(−l/2^frac_in)` for the low digit.
    #[prost(int64, repeated, tag = "6")]
    pub exp_lo: Vec<i64>,
    #[prost(uint32, tag = "7")]
    pub hi_bits: u32,
    #[prost(uint32, tag = "8")]
    pub lo_bits: u32,
    /// Guard bits of the per-row reciprocal.
    #[prost(uint32, tag = "9")]
    pub recip_guard: u32,
    /// Differences from the row maximum are clipped below this (scale `2^frac_in`).
    #[prost(int64, tag = "10")]
    pub clip: i64,
    /// Whether the decode program's softmax looks its exponential tables up on one-hot vectors
    /// prepared ahead of the tokens (`docs/protocols.md` §30): the cost model's choice
    /// ([`crate::fixed::prepare`]); always false in the prefill program.
    #[prost(bool, tag = "11")]
    pub prepared: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LayerNorm {
    #[prost(uint64, tag = "1")]
    pub n: u64,
    #[prost(uint32, tag = "2")]
    pub frac: u32,
    #[prost(uint32, tag = "3")]
    pub r1: u32,
    #[prost(uint32, tag = "4")]
    pub r2: u32,
    #[prost(int64, tag = "5")]
    pub v_eps: i64,
    #[prost(uint32, tag = "6")]
    pub f_rho: u32,
    /// Whether the decode program's LayerNorm runs its two products on correlations prepared
    /// ahead of the tokens (square pairs and row triples, `docs/protocols.md` §30): the cost
    /// model's choice ([`crate::fixed::prepare`]); always false in the prefill program.
    #[prost(bool, tag = "7")]
    pub prepared: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Gelu {
    #[prost(uint32, tag = "1")]
    pub frac: u32,
    #[prost(uint32, tag = "2")]
    pub alpha_log2: u32,
    #[prost(uint32, tag = "3")]
    pub pieces_log2: u32,
    #[prost(int64, repeated, tag = "4")]
    pub slope: Vec<i64>,
    #[prost(int64, repeated, tag = "5")]
    pub intercept: Vec<i64>,
    /// The GELU formula the tables were fitted to: 0 tanh, 1 erf.
    #[prost(uint32, tag = "6")]
    pub form: u32,
    /// Whether the decode program's GELU runs on correlations prepared ahead of the tokens
    /// (one-hot vectors of a random piece index and Beaver triples, `docs/protocols.md`): the
    /// cost model's choice ([`crate::fixed::prepare`]); always false in the prefill program.
    #[prost(bool, tag = "7")]
    pub prepared: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Add {}

/// The next token: the index of the largest logit (`top_k` = 1, greedy decoding) or a draw from
/// the softmax of the `top_k` largest logits divided by a temperature T. The plan records the
/// default mode; a client may ask for another per session (both are public).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// K; 1 is greedy (the secure argmax).
    #[prost(uint32, tag = "1")]
    pub top_k: u32,
    /// The temperature as a 16-bit fixed-point reciprocal, round(2^16 / T) (65,536 is T = 1).
    #[prost(uint32, tag = "2")]
    pub inv_temperature: u32,
    /// The tempered logits of the survivors are `⌊z·inv_temperature / 2^shift⌋`: 16 bits for the
    /// reciprocal plus the logits' fractional bits beyond the softmax's input scale.
    #[prost(uint32, tag = "3")]
    pub shift: u32,
    /// The softmax over the K survivors (`heads` = 1).
    #[prost(message, optional, tag = "4")]
    pub softmax: Option<Softmax>,
}

impl Sample {
    /// Bits of the temperature's fixed-point reciprocal.
    pub const TEMPERATURE_FRAC: u32 = 16;

    /// round(2^16 / T) for a positive T within [2^−7, 2^16), or a one-line reason.
    pub fn inv_temperature_of(t: f64) -> Result<u32, String> {
        let m = (t.recip() * f64::from(1u32 << Self::TEMPERATURE_FRAC)).round();
        if t.is_nan() || t <= 0.0 || !(1.0..f64::from(1u32 << 23)).contains(&m) {
            return Err(format!(
                "temperature {t} is outside (2^-7, 2^16]: its 16-bit fixed-point reciprocal must be in 1..2^23"
            ));
        }
        Ok(m as u32)
    }

    /// The decoding is usable with a vocabulary of `vocab` tokens: K in 1..=vocab and the
    /// temperature's reciprocal in 1..2^23 (so the tempered product fits ℓ + 23 bits). The
    /// message starts with the flag's name (`top-k …`, `temperature …`).
    pub fn check_decoding(top_k: u32, inv_temperature: u32, vocab: u64) -> Result<(), String> {
        if top_k == 0 || u64::from(top_k) > vocab {
            return Err(format!(
                "top-k {top_k} is not in 1..={vocab} (the vocabulary)"
            ));
        }
        if !(1..1 << 23).contains(&inv_temperature) {
            return Err(format!(
                "temperature reciprocal {inv_temperature} is not in 1..2^23"
            ));
        }
        Ok(())
    }

    /// T as a float (for display).
    pub fn temperature(&self) -> f64 {
        f64::from(1u32 << Self::TEMPERATURE_FRAC) / f64::from(self.inv_temperature.max(1))
    }
}

/// The server's weights, in the order of `Plan::weights`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WeightsFile {
    /// The hash of the plan these weights belong to.
    #[prost(bytes = "vec", tag = "1")]
    pub plan_hash: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub tensors: Vec<WeightTensor>,
}

/// One weight tensor: fixed-point integers, little-endian, `width` bytes each (4 or 8).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WeightTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(uint32, tag = "3")]
    pub width: u32,
}

impl WeightTensor {
    /// Encode values as i32 when they all fit, else as i64.
    pub fn from_values(name: String, values: &[i64]) -> WeightTensor {
        let narrow = values.iter().all(|&v| i32::try_from(v).is_ok());
        let width = if narrow { 4 } else { 8 };
        let mut data = Vec::with_capacity(values.len() * width);
        for &v in values {
            if narrow {
                data.extend_from_slice(&(v as i32).to_le_bytes());
            } else {
                data.extend_from_slice(&v.to_le_bytes());
            }
        }
        WeightTensor {
            name,
            data,
            width: width as u32,
        }
    }

    pub fn values(&self) -> Vec<i64> {
        if self.width == 8 {
            self.data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        } else {
            self.data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect()
        }
    }
}
