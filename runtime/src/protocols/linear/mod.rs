//! Weight × activation under RLWE: additive shares over Z_2^ℓ of y = x·W + b for a shared
//! activation x ([T × K], row-major) and a server-held weight W ([K × N], signed integers of at
//! most `weight_bits` bits, |w| ≤ 2^(weight_bits−1)) and bias b ([N]). This is the plan's
//! `Linear`/`Logits` before its truncation. Cheetah §3.1 (HomFC: coefficient packing, extraction
//! of the needed coefficients, re-masking) with Iron §4.1's several rows per ciphertext;
//! the HE layer is [`crate::crypto::rlwe`].
//!
//! **Packing** ([`Packing`]). Windows n_i × n_o (n_i·n_o ≤ N = 8192) and m = ⌊N/(n_i·n_o)⌋
//! rows per ciphertext, S = n_i·n_o. Block α of the inner dimension of rows g·m … g·m + m − 1 is
//! the polynomial v̂[i·S + j] = x[g·m + i][α·n_i + j]; block (β, α) of the weight is
//! ŵ[c·n_i + n_i − 1 − j] = W[α·n_i + j][β·n_o + c], in transform form: pre-encoded once
//! ([`EncodedWeights`]) for a decode step's products, or encoded on the way from the server's
//! integer weights ([`ServerWeights::Plain`]) for the products on many rows (the prefill, a
//! preparation), whose windows differ from the decode step's. Then Σ_α v̂_α·ŵ_{β,α} holds y[g·m + i][β·n_o + c] at coefficient
//! i·S + c·n_i + n_i − 1, and no other pair of coefficients reaches those positions (the
//! negacyclic wrap lands below n_i − 1). The window is chosen by bytes for the expected number of
//! rows (one in a decode step), at most [`MAX_ROWS_PER_CT`] rows per ciphertext. When the
//! session's flooding does not fit the noise budget at ℓ (32-bit weights at ℓ = 43), the weights
//! are split into L balanced limbs of ⌈weight_bits/L⌉ bits, W = Σ_l 2^(s·l)·W_l, each product
//! returned on its own and recombined by the client.
//!
//! **Protocol.** (Once per session: the client's public key, [`HeSession::setup`].)
//! 1. The client encrypts its share of every block, v̂_α(x_C), with fresh seeds and sends them
//!    (one flight).
//! 2. The server adds its own share v̂_α(x_S) to each (so the ciphertexts encrypt x), multiplies
//!    and accumulates with the pre-encoded ŵ_{l,β,α}, and returns each result through
//!    [`crate::crypto::rlwe::finalize`]: + Enc_pk(0), flood on the returned coefficients, switch to
//!    2^k, − R·2^(k−ℓ) for a fresh uniform R per output, only the needed coefficients of b (one
//!    flight).
//! 3. The client decrypts y_l − R_l and outputs Σ_l 2^(s·l)(y_l − R_l); the server outputs
//!    Σ_l 2^(s·l)·R_l + b. The sum is x·W + b mod 2^ℓ exactly: R is subtracted after the switch,
//!    where 2^(k−ℓ) is an integer, and decryption is exact except with probability ≤ 2^−41 per
//!    session (see [`crate::crypto::rlwe::noise`]).
//!
//! **Cost** (G = ⌈T/m⌉ row groups, A = ⌈K/n_i⌉, B = ⌈N/n_o⌉): client → server G·A ciphertexts of
//! 168,976 bytes (a 16-byte seed and b at 3 × 55 bits per coefficient); server → client
//! L·G·B results of 8192·k bits (a, k = ℓ + D, D = 10 at ℓ = 37) plus T·N·L values of b_bits
//! bits; 2 flights. Server work: G·A expansions, L·G·A·B plaintext × ciphertext products, L·G·B
//! returns; client work: G·A encryptions, L·G·B decryptions. Measured with
//! `ciphergpt bench linear` (ℓ = 37, 16-bit weights, two processes on loopback, 2 cores, one run;
//! times vary with the machine's load; bytes are up + down):
//!
//! | product | window n_i × n_o | cts up / down | bytes | time | encoding (once) |
//! |---|---|---|---|---|---|
//! | 1×768·768×2304 (QKV) | 96 × 85 | 8 / 28 | 1,351,808 + 1,359,392 | 51 ms | 44.0 MB, 59 ms |
//! | 1×768·768×768 (out) | 154 × 53 | 5 / 15 | 844,880 + 725,856 | 27 ms | 14.7 MB, 20 ms |
//! | 1×768·768×3072 (FC1) | 77 × 106 | 10 / 29 | 1,689,760 + 1,411,456 | 42 ms | 57.0 MB, 65 ms |
//! | 1×3072·3072×768 (FC2) | 384 × 21 | 8 / 37 | 1,351,808 + 1,784,672 | 50 ms | 58.2 MB, 68 ms |
//! | 1×768·768×50257 (logits) | 22 × 372 | 35 / 136 | 5,914,160 + 6,802,976 | 239 ms | 936 MB, 1.07 s |
//! | 256×768·768×768 (prefill) | 46 × 11, m = 16 | 272 / 1,120 | 45,961,472 + 54,910,976 | 1.62 s | 234 MB, 0.22 s |
//!
//! One GPT-2-small decode step's weight products (12 × the four + logits): 139.0 MB, 98 flights,
//! 2.3 s. At N = 4096 with flooding per returned coefficient they were 79.8 MB: the factor 1.74
//! is √(2 · 165/109), the price of 40 bits per session (see [`crate::crypto::rlwe::params`]).

//! **Security** (semi-honest).
//! - The server's view: the client's public key and ciphertexts, RLWE samples under the client's
//!   ternary secret at N = 8192, log₂ q < 165 (128-bit by the HomomorphicEncryption.org
//!   standard), with `a` expanded from public seeds by the AES PRG; they are pseudorandom, so the
//!   server learns nothing about x_C. Its output R is uniform and independent of everything.
//! - The client's view of each returned ciphertext: a′ = a·w + a₀ and
//!   b′_j = −a′·s + Δ·(y_j − R_j) + E_j + e₀ + F_j, with Enc_pk(0) = (a₀, −a₀·s + e₀). The flood
//!   F_j, uniform in ±2^77·E_max, hides the weight-dependent E_j + e₀ up to statistical distance
//!   2^−41 over the at most 2^36 coefficients returned in the session (public bound E_max from
//!   the weight width and the number of terms; the server refuses more returns); then
//!   a₀ = u·a_pk + e₂ with a fresh ternary u is pseudorandom by RLWE (secret u), so a′ is
//!   independent of W; y_j − R_j is uniform because R_j is. The coefficients of b that carry
//!   other partial sums are never sent. So the client learns only its uniformly masked output
//!   share, up to 2^−40 per session.

use rayon::prelude::*;

use super::shares::Ring;
use super::ProtocolError;
use crate::crypto::pack::{packed_len, unpack};
use crate::crypto::rlwe::eval::SwitchedCiphertext;
use crate::crypto::rlwe::noise::{output_params, OutputParams};
use crate::crypto::rlwe::{encode_plain, HeSession, Plain, Seeded, N as DEG, PRIMES};
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Role};

mod server;
use server::{groups_per_pass, server, STREAM_BYTES};

/// Most rows packed into one ciphertext. The weight polynomials of a window n_i × n_o are
/// N/(n_i·n_o) times the weight count, so more rows per ciphertext cost the server memory
/// (pre-encoded) or encoding time (encoded on the way).
pub const MAX_ROWS_PER_CT: usize = 16;
/// Most limbs a weight is split into.
pub const MAX_LIMBS: u32 = 4;
/// Widest supported weight.
pub const MAX_WEIGHT_BITS: u32 = 32;

/// The public description of one weight product — shapes, weight width, window, limbs and how
/// its results are returned. Both parties build it with [`Packing::new`] from public values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Packing {
    /// ℓ.
    pub ring_bits: u32,
    /// Inner dimension K.
    pub k: usize,
    /// Output columns N.
    pub n: usize,
    /// Weights satisfy |w| ≤ 2^(weight_bits − 1).
    pub weight_bits: u32,
    /// Window: inner entries per block n_i, output columns per block n_o.
    pub n_i: usize,
    pub n_o: usize,
    /// Rows per ciphertext m = min(⌊N/(n_i·n_o)⌋, MAX_ROWS_PER_CT).
    pub rows_per_ct: usize,
    /// Limbs L and bits per limb s.
    pub limbs: u32,
    pub limb_bits: u32,
    /// Flooding and switching of the returned results.
    pub out: OutputParams,
}

/// Messages, products and bytes of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearCost {
    pub cts_up: usize,
    pub cts_down: usize,
    pub products: usize,
    pub bytes_up: usize,
    pub bytes_down: usize,
}

fn invalid(msg: String) -> ProtocolError {
    ProtocolError::Invalid(format!("linear: {msg}"))
}

impl Packing {
    /// The packing of a K × N weight of `weight_bits`-bit entries at ℓ = `ring.bits`, with the
    /// window chosen to minimise the bytes of a product on `rows` rows (1 for a decode step).
    /// `ProtocolError::Invalid` for empty shapes, ℓ outside 16..=43, or weights too wide for the noise
    /// budget even in [`MAX_LIMBS`] limbs.
    pub fn new(
        ring: Ring,
        k: usize,
        n: usize,
        weight_bits: u32,
        rows: usize,
    ) -> Result<Packing, ProtocolError> {
        let plain = Plain::new(ring.bits)?;
        if k == 0 || n == 0 || rows == 0 {
            return Err(invalid(format!("empty shape {rows} × {k} · {k} × {n}")));
        }
        if k > 1 << 24 || n > 1 << 24 {
            return Err(invalid(format!("shape {k} × {n} too large")));
        }
        if !(1..=MAX_WEIGHT_BITS).contains(&weight_bits) {
            return Err(invalid(format!(
                "weight width {weight_bits} is not in 1..={MAX_WEIGHT_BITS}"
            )));
        }
        let mut best: Option<(usize, usize, Packing)> = None;
        for limbs in 1..=MAX_LIMBS.min(weight_bits) {
            let limb_bits = weight_bits.div_ceil(limbs);
            let bound = 1u64 << (limb_bits - 1);
            // m rows per ciphertext (up to the rows expected), then every inner window n_i with
            // the widest output window n_o that leaves room for m rows.
            for m in 1..=MAX_ROWS_PER_CT.min(rows) {
                for n_i in 1..=k.min(DEG / m) {
                    let n_o = (DEG / (m * n_i)).min(n);
                    let rows_per_ct = (DEG / (n_i * n_o)).min(MAX_ROWS_PER_CT);
                    if rows_per_ct < m {
                        continue;
                    }
                    let a = k.div_ceil(n_i);
                    let Ok(out) = output_params(plain, bound, a * n_i * n_o, a * n_i) else {
                        continue;
                    };
                    let p = Packing {
                        ring_bits: ring.bits,
                        k,
                        n,
                        weight_bits,
                        n_i,
                        n_o,
                        rows_per_ct,
                        limbs,
                        limb_bits,
                        out,
                    };
                    let c = p.cost(rows);
                    let key = (c.bytes_up + c.bytes_down, c.products);
                    if best.as_ref().is_none_or(|(b, pr, _)| key < (*b, *pr)) {
                        best = Some((key.0, key.1, p));
                    }
                }
            }
        }
        best.map(|(_, _, p)| p).ok_or_else(|| {
            invalid(format!(
                "{weight_bits}-bit weights over K = {k} do not fit the noise budget at ℓ = {} \
                 even in {MAX_LIMBS} limbs",
                ring.bits
            ))
        })
    }

    /// Blocks of the inner dimension, A = ⌈K/n_i⌉.
    pub fn in_blocks(&self) -> usize {
        self.k.div_ceil(self.n_i)
    }

    /// Blocks of the output columns, B = ⌈N/n_o⌉.
    pub fn out_blocks(&self) -> usize {
        self.n.div_ceil(self.n_o)
    }

    /// Stride between packed rows, S = n_i·n_o.
    fn stride(&self) -> usize {
        self.n_i * self.n_o
    }

    /// Ciphertexts, products and bytes of a product on `t` rows.
    pub fn cost(&self, t: usize) -> LinearCost {
        let g = t.div_ceil(self.rows_per_ct);
        let (a, b, l) = (self.in_blocks(), self.out_blocks(), self.limbs as usize);
        LinearCost {
            cts_up: g * a,
            cts_down: l * g * b,
            products: l * g * a * b,
            bytes_up: g * a * Seeded::wire_len(),
            bytes_down: l * g * b * packed_len(DEG, self.out.k)
                + packed_len(t * self.n * l, self.out.b_bits),
        }
    }

    /// Output positions of row group `g` and column block `beta`: (coefficient, row, column).
    fn outputs(&self, t: usize, g: usize, beta: usize) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        for i in 0..self.rows_per_ct {
            let r = g * self.rows_per_ct + i;
            if r >= t {
                break;
            }
            for c in 0..self.n_o {
                let col = beta * self.n_o + c;
                if col >= self.n {
                    break;
                }
                v.push((i * self.stride() + c * self.n_i + self.n_i - 1, r, col));
            }
        }
        v
    }

    /// The activation polynomial of row group `g`, block `alpha` (values of `x`, T × K).
    fn activation_poly(&self, x: &[u64], t: usize, g: usize, alpha: usize) -> Vec<u64> {
        let mut v = vec![0u64; DEG];
        for i in 0..self.rows_per_ct {
            let r = g * self.rows_per_ct + i;
            if r >= t {
                break;
            }
            for j in 0..self.n_i {
                let col = alpha * self.n_i + j;
                if col >= self.k {
                    break;
                }
                v[i * self.stride() + j] = x[r * self.k + col];
            }
        }
        v
    }

    /// Limb `l` of w: balanced digits of `limb_bits` bits, the top limb taking the rest.
    fn limb(&self, w: i64, l: u32) -> i64 {
        let s = self.limb_bits;
        let mut v = w;
        for i in 0..self.limbs {
            if i + 1 == self.limbs {
                return v;
            }
            let half = 1i64 << (s - 1);
            let d = (v + half).rem_euclid(1i64 << s) - half;
            if i == l {
                return d;
            }
            v = (v - d) >> s;
        }
        v
    }

    /// The coefficients of weight polynomial (limb `l`, column block `beta`, inner block
    /// `alpha`) of `w` ([K × N], row-major): ŵ[c·n_i + n_i − 1 − j] = W_l[α·n_i + j][β·n_o + c].
    fn weight_block<W: Copy + Into<i64>>(
        &self,
        w: &[W],
        l: u32,
        beta: usize,
        alpha: usize,
    ) -> Vec<i64> {
        let mut c = vec![0i64; DEG];
        for cc in 0..self.n_o {
            let col = beta * self.n_o + cc;
            if col >= self.n {
                break;
            }
            for j in 0..self.n_i {
                let row = alpha * self.n_i + j;
                if row >= self.k {
                    break;
                }
                c[cc * self.n_i + self.n_i - 1 - j] = self.limb(w[row * self.n + col].into(), l);
            }
        }
        c
    }

    /// `ProtocolError::Invalid` unless `w` has K·N entries within ±2^(weight_bits − 1).
    fn check_weights<W: Copy + Into<i64> + Sync>(&self, w: &[W]) -> Result<(), ProtocolError> {
        if w.len() != self.k * self.n {
            return Err(invalid(format!(
                "weight of {} entries for a {} × {} matrix",
                w.len(),
                self.k,
                self.n
            )));
        }
        let bound = 1i64 << (self.weight_bits - 1);
        if let Some(v) = w
            .par_iter()
            .map(|&v| v.into())
            .find_any(|v: &i64| v.abs() > bound)
        {
            return Err(invalid(format!(
                "weight {v} exceeds ±2^{} (weight_bits {})",
                self.weight_bits - 1,
                self.weight_bits
            )));
        }
        Ok(())
    }
}

/// A server's weight, pre-encoded once for a [`Packing`]: L·B·A plaintext polynomials in
/// transform form (192 KiB each: N words per prime).
pub struct EncodedWeights {
    packing: Packing,
    /// Polynomial (l, β, α) at ((l·B + β)·A + α)·PRIMES·N.
    polys: Vec<u64>,
}

impl EncodedWeights {
    /// Encode `w` ([K × N], row-major) for `packing`; `ProtocolError::Invalid` if the length is wrong or
    /// an entry exceeds the packing's weight width.
    pub fn new(packing: &Packing, w: &[i64]) -> Result<EncodedWeights, ProtocolError> {
        let p = *packing;
        p.check_weights(w)?;
        let (a, b) = (p.in_blocks(), p.out_blocks());
        let mut polys = vec![0u64; p.limbs as usize * a * b * PRIMES * DEG];
        polys
            .par_chunks_mut(PRIMES * DEG)
            .enumerate()
            .for_each(|(idx, out)| {
                let (alpha, beta, l) = (idx % a, (idx / a) % b, (idx / (a * b)) as u32);
                encode_plain(&p.weight_block(w, l, beta, alpha), out);
            });
        Ok(EncodedWeights { packing: p, polys })
    }

    /// The packing these weights are encoded for.
    pub fn packing(&self) -> &Packing {
        &self.packing
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.polys.len() * 8
    }

    fn poly(&self, l: usize, beta: usize, alpha: usize) -> &[u64] {
        let p = &self.packing;
        let idx = (l * p.out_blocks() + beta) * p.in_blocks() + alpha;
        &self.polys[idx * PRIMES * DEG..(idx + 1) * PRIMES * DEG]
    }
}

/// The server's weight in one product ([`linear_with`]).
#[derive(Clone, Copy)]
pub enum ServerWeights<'a> {
    /// Pre-encoded for the product's packing ([`EncodedWeights`]).
    Encoded(&'a EncodedWeights),
    /// Signed integers ([K × N], row-major, within the packing's weight width), encoded for the
    /// product's packing while it runs: each (limb, column block) of weight polynomials once per
    /// pass over the row groups, dropped after use, so no encoding is held between products.
    /// The way to pack many rows per ciphertext (the prefill, a preparation) without a second
    /// copy of the encoded weights.
    Plain(&'a [i32]),
}

/// Shares of x·W + b mod 2^ℓ ([T × N], row-major) for this party's share `x` of the activation
/// ([T × K], values mod 2^ℓ). The server passes `Some((weights, bias))` (bias: N entries, signed),
/// the client `None`; both pass the same `packing` (the one the weights were encoded for).
#[allow(clippy::too_many_arguments)]
pub fn linear<C: Channel + ?Sized>(
    he: &HeSession,
    ch: &mut C,
    role: Role,
    ring: Ring,
    packing: &Packing,
    x: &[u64],
    t: usize,
    weights: Option<(&EncodedWeights, &[i64])>,
) -> Result<Vec<u64>, ProtocolError> {
    let server = weights.map(|(w, b)| (ServerWeights::Encoded(w), b));
    linear_with(he, ch, role, ring, packing, x, t, server)
}

/// [`linear`] with the server's weight pre-encoded or as integers encoded on the way
/// ([`ServerWeights`]); the bytes and the flights are those of the packing either way.
#[allow(clippy::too_many_arguments)]
pub fn linear_with<C: Channel + ?Sized>(
    he: &HeSession,
    ch: &mut C,
    role: Role,
    ring: Ring,
    packing: &Packing,
    x: &[u64],
    t: usize,
    weights: Option<(ServerWeights<'_>, &[i64])>,
) -> Result<Vec<u64>, ProtocolError> {
    let p = *packing;
    if p.ring_bits != ring.bits {
        return Err(invalid(format!(
            "packing for ℓ = {} used in a ring of {} bits",
            p.ring_bits, ring.bits
        )));
    }
    if he.role != role {
        return Err(invalid("the HE session belongs to the other role".into()));
    }
    if t.checked_mul(p.k) != Some(x.len()) {
        return Err(invalid(format!(
            "activation of {} values is not {t} × {}",
            x.len(),
            p.k
        )));
    }
    if x.iter().any(|&v| v > ring.mask()) {
        return Err(invalid(format!(
            "activation share not reduced mod 2^{}",
            ring.bits
        )));
    }
    match (role, weights) {
        (Role::Server, Some((w, bias))) => {
            match w {
                ServerWeights::Encoded(e) if *e.packing() != p => {
                    return Err(invalid("weights encoded for another packing".into()))
                }
                ServerWeights::Encoded(_) => {}
                ServerWeights::Plain(v) => p.check_weights(v)?,
            }
            if bias.len() != p.n {
                return Err(invalid(format!(
                    "bias of {} entries for {} columns",
                    bias.len(),
                    p.n
                )));
            }
            if t == 0 {
                return Ok(Vec::new());
            }
            let per_pass = groups_per_pass(w, p.in_blocks(), STREAM_BYTES);
            server(he, ch, ring, &p, x, t, (w, per_pass), bias)
        }
        (Role::Client, None) => {
            if t == 0 {
                return Ok(Vec::new());
            }
            client(he, ch, ring, &p, x, t)
        }
        (Role::Server, None) => Err(invalid("the server must pass its weights".into())),
        (Role::Client, Some(_)) => Err(invalid("the client holds no weights".into())),
    }
}

fn client<C: Channel + ?Sized>(
    he: &HeSession,
    ch: &mut C,
    ring: Ring,
    p: &Packing,
    x: &[u64],
    t: usize,
) -> Result<Vec<u64>, ProtocolError> {
    let sk = he.secret_key()?;
    let plain = Plain::new(ring.bits)?;
    let groups = t.div_ceil(p.rows_per_ct);
    let (a, b, l) = (p.in_blocks(), p.out_blocks(), p.limbs as usize);
    let mut rng = Prg::from_entropy();
    // 1. Encrypt every block of this party's share.
    let seeds: Vec<Block> = (0..groups * a).map(|_| rng.block()).collect();
    let wire = Seeded::wire_len();
    let mut msg = vec![0u8; groups * a * wire];
    msg.par_chunks_mut(wire)
        .zip(seeds.par_iter())
        .enumerate()
        .try_for_each(|(idx, (dst, &seed))| -> Result<(), ProtocolError> {
            let poly = p.activation_poly(x, t, idx / a, idx % a);
            let ct = sk.encrypt(plain, &poly, &mut Prg::new(seed))?;
            let mut bytes = Vec::with_capacity(wire);
            ct.write(&mut bytes);
            dst.copy_from_slice(&bytes);
            Ok(())
        })?;
    ch.send(&msg)?;
    ch.flush()?;
    drop(msg);
    // 3. Receive the results, decrypt, recombine the limbs.
    let cost = p.cost(t);
    let a_len = packed_len(DEG, p.out.k);
    let resp = ch.recv_vec(cost.bytes_down)?;
    let (a_bytes, b_bytes) = resp.split_at(cost.cts_down * a_len);
    let b_all = unpack(b_bytes, t * p.n * l, p.out.b_bits);
    // Result (limb, group, β) in that order; its b values follow those of the previous results.
    let mut offsets = Vec::with_capacity(cost.cts_down);
    let mut off = 0;
    for _ in 0..l {
        for g in 0..groups {
            for beta in 0..b {
                offsets.push(off);
                off += p.outputs(t, g, beta).len();
            }
        }
    }
    let decrypted: Vec<Vec<u64>> = (0..cost.cts_down)
        .into_par_iter()
        .map(|idx| {
            let (g, beta) = ((idx / b) % groups, idx % b);
            let outs = p.outputs(t, g, beta);
            let positions: Vec<usize> = outs.iter().map(|o| o.0).collect();
            let ct = SwitchedCiphertext {
                k: p.out.k,
                b_bits: p.out.b_bits,
                a: unpack(&a_bytes[idx * a_len..(idx + 1) * a_len], DEG, p.out.k),
                b: b_all[offsets[idx]..offsets[idx] + outs.len()].to_vec(),
            };
            sk.decrypt_switched(plain, &ct, &positions)
        })
        .collect();
    let mut y = vec![0u64; t * p.n];
    for (idx, vals) in decrypted.into_iter().enumerate() {
        let (limb, g, beta) = (idx / (groups * b), (idx / b) % groups, idx % b);
        let scale = limb_scale(ring, p, limb);
        for ((_, r, col), v) in p.outputs(t, g, beta).into_iter().zip(vals) {
            let cell = &mut y[r * p.n + col];
            *cell = ring.add(*cell, ring.mul(scale, v));
        }
    }
    Ok(y)
}

/// 2^(s·l) mod 2^ℓ.
fn limb_scale(ring: Ring, p: &Packing, limb: usize) -> u64 {
    let sh = p.limb_bits as usize * limb;
    if sh >= 64 {
        0
    } else {
        ring.reduce(1u64 << sh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The balanced limbs of every weight of up to 12 bits recombine to it and stay within
    /// ±2^(s−1), the bound the noise budget assumes.
    #[test]
    fn limbs_recombine_within_their_bound() {
        let ring = Ring::new(37).unwrap();
        for wbits in 1..=12u32 {
            for limbs in 1..=MAX_LIMBS.min(wbits) {
                let mut p = Packing::new(ring, 4, 4, wbits, 1).unwrap();
                p.limbs = limbs;
                p.limb_bits = wbits.div_ceil(limbs);
                let bound = 1i64 << (p.limb_bits - 1);
                let b = 1i64 << (wbits - 1);
                for w in -b..=b {
                    let mut sum = 0i64;
                    for l in 0..limbs {
                        let d = p.limb(w, l);
                        assert!(
                            d.abs() <= bound,
                            "w {w}, {limbs} limbs of {wbits} bits: {d}"
                        );
                        sum += d << (p.limb_bits * l);
                    }
                    assert_eq!(sum, w, "{wbits} bits, {limbs} limbs");
                }
            }
        }
    }

    /// Windows of the decode shapes (one row) and the prefill packing's rows per ciphertext.
    #[test]
    fn windows_are_chosen_by_bytes() {
        let ring = Ring::new(37).unwrap();
        let p = Packing::new(ring, 768, 2304, 16, 1).unwrap();
        assert_eq!((p.n_i, p.n_o, p.limbs), (96, 85, 1));
        let p = Packing::new(ring, 768, 768, 16, 256).unwrap();
        assert_eq!(p.rows_per_ct, MAX_ROWS_PER_CT);
        // 272 ciphertexts up, 1,120 down: 100.9 MB.
        let c = p.cost(256);
        assert!(c.bytes_up + c.bytes_down < 105_000_000, "{c:?}");
        let decode = Packing::new(ring, 768, 768, 16, 1).unwrap();
        assert!(decode.cost(256).bytes_up > 3 * p.cost(256).bytes_up);
    }

    /// Integer weights encoded on the way give x·W + b exactly, whatever the number of row
    /// groups per pass, as the pre-encoded weights do.
    #[test]
    fn integer_weights_encoded_on_the_way_are_exact_in_any_number_of_passes() {
        use crate::net::mem;
        use rand::Rng;
        let ring = Ring::new(37).unwrap();
        let (t, k, n) = (10usize, 100usize, 33usize);
        // The decode packing of this shape packs two rows per ciphertext: five groups.
        let p = Packing::new(ring, k, n, 16, 1).unwrap();
        assert_eq!(t.div_ceil(p.rows_per_ct), 5, "{p:?}");
        let mut rng = Prg::from_entropy();
        let w: Vec<i32> = (0..k * n).map(|_| rng.gen_range(-32768..=32768)).collect();
        let bias: Vec<i64> = (0..n).map(|_| rng.gen_range(-1000..1000)).collect();
        let x = ring.random(&mut rng, t * k);
        let x_s = ring.random(&mut rng, t * k);
        let x_c = ring.sub_vec(&x, &x_s);
        let mut want = vec![0u64; t * n];
        for r in 0..t {
            for c in 0..n {
                let mut acc = i128::from(bias[c]);
                for i in 0..k {
                    acc += i128::from(ring.to_signed(x[r * k + i])) * i128::from(w[i * n + c]);
                }
                want[r * n + c] = (acc as u64) & ring.mask();
            }
        }
        for per_pass in [1, 2, 5] {
            let (mut cs, mut cc) = mem::pair(std::time::Duration::from_secs(60));
            let xc = x_c.clone();
            let client = std::thread::spawn(move || {
                let he = HeSession::setup(&mut cc, Role::Client).unwrap();
                client(&he, &mut cc, ring, &p, &xc, t).unwrap()
            });
            let he = HeSession::setup(&mut cs, Role::Server).unwrap();
            let sw = ServerWeights::Plain(&w);
            let ys = server(&he, &mut cs, ring, &p, &x_s, t, (sw, per_pass), &bias).unwrap();
            let got = ring.add_vec(&ys, &client.join().unwrap());
            assert_eq!(got, want, "{per_pass} groups per pass");
        }
    }
}
