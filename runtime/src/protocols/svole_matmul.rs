//! CipherGPT's matrix product by subfield VOLE (CipherGPT §III): the products X_j·Y of the
//! inputs of many future rows with one server weight Y ∈ Z^(m×k) are prepared together, before
//! the inputs exist; online the client sends its masked input and the server's work is local.
//!
//! **Correlation.** For L future input rows, the client holds a random mask matrix U ∈ Z_2^ℓ^(L×m)
//! and T ∈ Z_2^ℓ^(L×k); the server holds S = U·Y + T. Column i of U is the mask u_i of the inputs'
//! i-th coordinates, and S − T = Σ_i u_i ⊗ y′_i is the sum of the m subfield-VOLE correlations
//! W_i = u_i ⊗ y′_i + V_i of the paper (y′_i row i of Y, the VOLE's Δ in Z_2^ℓ^k; only the sums over
//! i are kept, S = Σ_i W_i and T = Σ_i V_i, so the client's t·n·m·k of the paper become L·k).
//!
//! **Online** ([`super::masked_matmul::multiply`]). For n input rows x (the next n rows of the
//! correlation) the client sends x − U_rows (n·m values of ℓ bits, one flight) and outputs
//! −T_rows; the server outputs (x − U_rows)·Y + S_rows. The shares add up to x·Y mod 2^ℓ.
//!
//! **Preparation** ([`prepare`]). Dual LPN over Z_2^ℓ with the quasi-cyclic code H of
//! [`crate::crypto::qc_code`] (input 2L′, L′ > L prime, noise weight t, regular: one nonzero
//! entry in each of t near-equal blocks of [0, 2L′)):
//! 1. The server encrypts, under its own fresh RLWE key ([`crate::crypto::rlwe`]), each row of Y
//!    twice, y′_i and 2^w·y′_i (w = ⌈ℓ/2⌉; a gadget of two limbs), one ciphertext per row and
//!    chunk of at most 8192 columns, and sends them with its public key.
//! 2. For each weight row i the client picks the noise e_i: in block b a position α_(i,b) and an
//!    odd value β_(i,b) (units, so the noise keeps its weight modulo 2). With β = β₀ + 2^w·β₁ it
//!    computes Enc(y′_i)·B₀ + Enc(2^w·y′_i)·B₁ where B_g places the limbs of ⌊8192/k⌋ values β at
//!    the coefficients 0, k, 2k, …: the result holds β_(i,b)·y′_i at positions jk … jk + k − 1. It
//!    returns each result re-randomised, flooded, switched and masked by a fresh uniform R_(i,b)
//!    ([`crate::crypto::rlwe::finalize`]; the limbs are below 2^w, which keeps the flood within
//!    the noise budget). The server decrypts s_(i,b) = β_(i,b)·y′_i − R_(i,b).
//! 3. The server expands m·t GGM trees, tree (i, b) on block b, each leaf λ expanded by the AES
//!    PRG to a vector G(λ) ∈ Z_2^ℓ^k; the client learns every leaf but α_(i,b)'s by the PPRF of
//!    [`crate::crypto::pprf`] (one OT per tree level, silent OT by default).
//! 4. The server sends d_(i,b) = Σ_(p∈b) G(λ_(i,p)) − s_(i,b); the client sets
//!    V′_(i,α) = d_(i,b) − Σ_(p∈b, p≠α) G(λ_(i,p)) − R_(i,b) = G(λ_(i,α)) − β_(i,b)·y′_i, and
//!    V′_(i,p) = G(λ_(i,p)) elsewhere; the server's W′_(i,p) = G(λ_(i,p)). So W′_i − V′_i = e_i ⊗ y′_i.
//! 5. Locally: the server S = H·Σ_i W′_i, the client T = H·Σ_i V′_i and u_i = H·e_i. By
//!    linearity S − T = Σ_i (H·e_i) ⊗ y′_i = U·Y.
//!
//! **Cost** (bits; t noise weight, c = ⌈k/8192⌉ column chunks of k_c columns, r = ⌊8192/k_c⌋
//! noise values per returned ciphertext, K = ℓ + D the switch target, b the returned bits of
//! each b-coefficient, d = ⌈log₂(2L′/t)⌉ tree depth; [`SvoleParams::cost`] computes them):
//! - server → client: (1 + 2mc) seeded ciphertexts of 1,351,808 bits, then m·t·k·ℓ for the d's;
//! - client → server: m·c·⌈t/r⌉ returned ciphertexts of 8192·K + r·k_c·b bits;
//! - the PPRF: m·t·d chosen-message OTs of 128-bit messages;
//! - online, per input row: m·ℓ bits, client → server, one flight.
//!
//! Six flights in the preparation (ciphertexts down, results up, the PPRF's two, the d's).
//! Work: the server's and the client's 2L′·m leaf expansions of k values each (c·L·m·k values
//! over the batch, CipherGPT's "c·nmk AESs"; 1/3 AES block per value at ℓ ≤ 42) dominate; the
//! code costs k exact convolutions of length L′ per party, the ciphertexts 2·m·c·⌈t/r⌉
//! products. Measured by `ciphergpt bench svole` (docs/protocols.md §29).
//!
//! **Security** (semi-honest; 128-bit computational, 40-bit statistical).
//! - The server's view: the client's returned ciphertexts, decrypting to β·y′ − R with R fresh
//!   and uniform, their noise flooded (40-bit statistical per session, the bound of
//!   [`crate::crypto::rlwe::noise`] with the limbs' 2^w as the multiplier bound), `a` re-randomised
//!   by Enc_pk(0) — so they reveal nothing about β; the PPRF's OT messages (the choices hidden by
//!   the OT); online, x − U_rows: U = (H·e_i)_i is pseudorandom under dual LPN with the code's
//!   parameters (128-bit), and each row of it is used once, so the masked inputs are
//!   indistinguishable from uniform.
//! - The client's view: RLWE ciphertexts under the server's key (128-bit: N = 8192, log₂ q < 165);
//!   the PPRF's punctured keys (GGM, 128-bit), which leave G(λ_(i,α)) pseudorandom; the d's, each
//!   masked by that unknown leaf's expansion. Its outputs U and T are independent of Y.
//!
//! **Paper.** CipherGPT §III (Table II: dual LPN, e = 144, c = 2, N = 4096; reverse VOLE with
//! AHE). Differences: our ring is N = 8192 (flooding per session); the noise × weight products go
//! through the server's key with a two-limb gadget (so the client's flooding hides its noise
//! values) rather than the client's key; the sums over i are kept instead of the m correlations;
//! the noise weight is our own bound ([`crate::crypto::qc_code::noise_weight`], 174, rounded up
//! to fill the ciphertexts).

use rand::{Rng, RngCore};
use rayon::prelude::*;

use super::masked_matmul::Correlation;
use super::shares::{recv_ring, send_ring, Ring};
use super::{Party, ProtocolError};
use crate::crypto::pack::{mask, pack, packed_len, unpack};
use crate::crypto::pprf::{self, TreeGroup};
use crate::crypto::qc_code::{self, QcCode};
use crate::crypto::rlwe::eval::{expand, finalize, Accumulator, PublicKeyNtt};
use crate::crypto::rlwe::{encode_plain, output_params, OutputParams, Plain, SecretKey, Seeded};
use crate::crypto::rlwe::{ReturnCount, SwitchedCiphertext, N, PRIMES};
use crate::crypto::{Block, OtPair, Prg};
use crate::net::{Channel, NetError, Role};

/// The public seed of the code's vector a.
const CODE_SEED: Block = Block(0x73766f6c_655f7163_5f636f64_655f6131);

/// Shapes of one weight's correlation: `rows` future input rows (L), the weight's `inner` (m) ×
/// `cols` (k), and the noise weight t per weight row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvoleParams {
    pub rows: usize,
    pub inner: usize,
    pub cols: usize,
    pub noise: usize,
    /// Limbs of the gadget (2 at ℓ ≤ 40 for 768 columns) and noise values per returned
    /// ciphertext (at most ⌊8192/k_c⌋): the widest that fit the flooding budget.
    pub limbs: u32,
    pub per_ct: usize,
    /// Whether [`prepare`] enforces the security floor (noise blocks of at least
    /// [`MIN_BLOCK_LEN`] positions); only [`SvoleParams::new_test_only`] clears it.
    pub secure: bool,
}

/// The shortest noise block allowed: regular noise in blocks of 2^8 positions or more (Ferret's
/// smallest, its setup parameters); shorter blocks make the noise dense and its structure
/// visible. With t = 175 this needs about 22,400 rows.
pub const MIN_BLOCK_LEN: usize = 256;

/// Bytes of a preparation and of its online use, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvoleCost {
    /// The server's public key and gadget ciphertexts.
    pub keys_down: usize,
    /// The client's returned ciphertexts.
    pub products_up: usize,
    /// The server's corrections d.
    pub corrections_down: usize,
    /// The PPRF's OTs (chosen-message, 128-bit).
    pub tree_ots: usize,
    /// Online bytes per input row, client → server.
    pub online_per_row: usize,
}

impl SvoleParams {
    /// Shapes over `ring` with the default noise weight: [`qc_code::noise_weight`], rounded up
    /// to a multiple of the noise values per returned ciphertext when that is smaller (180 for
    /// k = 768). The preparation needs 2L′ ≥ t, about 87 rows or more.
    pub fn new(
        ring: Ring,
        rows: usize,
        inner: usize,
        cols: usize,
    ) -> Result<SvoleParams, ProtocolError> {
        if rows == 0 || inner == 0 || cols == 0 {
            return Err(ProtocolError::Invalid(format!(
                "svole: a {rows} × {inner} · {inner} × {cols} product has an empty side"
            )));
        }
        let mut p = SvoleParams {
            rows,
            inner,
            cols,
            noise: 0,
            limbs: 2,
            per_ct: 1,
            secure: true,
        };
        // The most noise values per ciphertext that the flood allows, over 2 to 4 limbs.
        let most = N / p.chunk_cols();
        let mut best: Option<(usize, u32)> = None;
        for limbs in 2..=4u32 {
            let fits = |r: usize| p.output_with(ring, limbs, r).is_ok();
            if !fits(1) {
                continue;
            }
            let (mut lo, mut hi) = (1, most);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if fits(mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            if best.is_none_or(|(r, _)| lo > r) {
                best = Some((lo, limbs));
            }
        }
        let (r, limbs) = best.ok_or_else(|| {
            ProtocolError::Invalid(format!(
                "svole: no gadget of up to 4 limbs fits the RLWE noise budget at ℓ = {}",
                ring.bits
            ))
        })?;
        p.limbs = limbs;
        p.per_ct = r;
        // Fill the returned ciphertexts when one holds fewer than t noise values.
        let t = qc_code::noise_weight();
        p.noise = if r >= t { t } else { t.div_ceil(r) * r };
        Ok(p)
    }

    /// The same shapes without the security floor: for tests of small products, whose masks
    /// are not pseudorandom (the noise is nearly dense). Never for real inputs.
    pub fn new_test_only(
        ring: Ring,
        rows: usize,
        inner: usize,
        cols: usize,
    ) -> Result<SvoleParams, ProtocolError> {
        let mut p = SvoleParams::new(ring, rows, inner, cols)?;
        p.secure = false;
        Ok(p)
    }

    /// The fewest rows that meet the security floor.
    pub fn min_rows(&self) -> usize {
        (self.noise * MIN_BLOCK_LEN).div_ceil(2)
    }

    /// Columns per chunk (at most N).
    fn chunk_cols(&self) -> usize {
        self.cols.min(N)
    }

    /// Column chunks.
    fn chunks(&self) -> usize {
        self.cols.div_ceil(self.chunk_cols())
    }

    /// Columns of chunk c.
    fn chunk_len(&self, c: usize) -> usize {
        (self.cols - c * self.chunk_cols()).min(self.chunk_cols())
    }

    /// Returned ciphertexts per weight row and chunk.
    fn cts_per_chunk(&self) -> usize {
        self.noise.div_ceil(self.per_ct)
    }

    /// The noise blocks: (start, length) of each of the t blocks of [0, 2L′).
    fn blocks(&self, noise_len: usize) -> Vec<(usize, usize)> {
        let t = self.noise;
        let (base, extra) = (noise_len / t, noise_len % t);
        let mut start = 0;
        (0..t)
            .map(|b| {
                let len = base + usize::from(b < extra);
                let r = (start, len);
                start += len;
                r
            })
            .collect()
    }

    /// The PPRF's tree groups: per weight row, the longer blocks then the shorter ones.
    fn groups(&self, noise_len: usize) -> Vec<TreeGroup> {
        let t = self.noise;
        let (base, extra) = (noise_len / t, noise_len % t);
        (0..self.inner)
            .flat_map(|_| {
                [
                    TreeGroup {
                        trees: extra,
                        leaves: base + 1,
                    },
                    TreeGroup {
                        trees: t - extra,
                        leaves: base,
                    },
                ]
            })
            .collect()
    }

    /// The gadget's limb width w = ⌈ℓ/limbs⌉.
    fn limb_bits(&self, ring: Ring) -> u32 {
        ring.bits.div_ceil(self.limbs)
    }

    /// The returned ciphertexts' flooding and switch for `limbs` limbs and `per_ct` noise values
    /// per ciphertext: each returned coefficient sums limbs·per_ct products of an encryption
    /// error with a limb below 2^w.
    fn output_with(
        &self,
        ring: Ring,
        limbs: u32,
        per_ct: usize,
    ) -> Result<OutputParams, ProtocolError> {
        let plain = Plain::new(ring.bits)?;
        let terms = limbs as usize * per_ct;
        Ok(output_params(
            plain,
            1 << ring.bits.div_ceil(limbs),
            terms,
            terms,
        )?)
    }

    fn output(&self, ring: Ring) -> Result<OutputParams, ProtocolError> {
        self.output_with(ring, self.limbs, self.per_ct)
    }

    /// The exact bytes of a preparation's messages (the OTs counted as OTs) and of online use.
    pub fn cost(&self, ring: Ring) -> Result<SvoleCost, ProtocolError> {
        let out = self.output(ring)?;
        let code_block = qc_code::block_length(self.rows);
        let depths: usize = self
            .groups(2 * code_block)
            .iter()
            .map(|g| g.trees * g.depth() as usize)
            .sum();
        let mut up = 0;
        for c in 0..self.chunks() {
            let kc = self.chunk_len(c);
            for q in 0..self.cts_per_chunk() {
                let count = (self.noise - q * self.per_ct).min(self.per_ct);
                up += packed_len(N, out.k) + packed_len(count * kc, out.b_bits);
            }
        }
        Ok(SvoleCost {
            keys_down: (1 + self.limbs as usize * self.inner * self.chunks()) * Seeded::wire_len(),
            products_up: self.inner * up,
            corrections_down: packed_len(self.inner * self.noise * self.cols, ring.bits),
            tree_ots: depths,
            online_per_row: packed_len(self.inner, ring.bits),
        })
    }
}

/// The rows of each noise block in a (2L′ × k) matrix, as disjoint slices.
fn block_rows<'a>(acc: &'a mut [u64], blocks: &[(usize, usize)], k: usize) -> Vec<&'a mut [u64]> {
    let mut parts = Vec::with_capacity(blocks.len());
    let mut rest = acc;
    for &(_, len) in blocks {
        let (head, tail) = rest.split_at_mut(len * k);
        parts.push(head);
        rest = tail;
    }
    parts
}

/// Enter the sub-scope `name` of the scope `base` (the phases of a preparation, for the bench).
fn phase<C: Channel + ?Sized>(ch: &mut C, base: &str, name: &str) {
    ch.set_scope(&if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    });
}

fn invalid(msg: String) -> ProtocolError {
    ProtocolError::Invalid(msg)
}

/// The per-thread buffers of the block passes: each leaf expands by the AES PRG into k values of
/// ℓ bits (three per AES block when ℓ ≤ 42, else two).
struct BlockScratch {
    blocks: Vec<Block>,
    vals: Vec<u64>,
    sum: Vec<u64>,
}

impl BlockScratch {
    fn new(k: usize) -> BlockScratch {
        BlockScratch {
            blocks: Vec::new(),
            vals: Vec::new(),
            sum: vec![0; k],
        }
    }

    /// Add the expansion of every leaf of one tree's block (but the punctured one, `skip`) to its
    /// row of `acc` (one row of k values per leaf) and return their sum over the block.
    fn add_block(
        &mut self,
        leaves: &[Block],
        skip: Option<usize>,
        bits: u32,
        acc: &mut [u64],
    ) -> &[u64] {
        let k = self.sum.len();
        let m = mask(bits);
        let per = if bits <= 42 { 3 } else { 2 };
        self.sum.iter_mut().for_each(|x| *x = 0);
        for (q, &leaf) in leaves.iter().enumerate() {
            if skip == Some(q) {
                continue;
            }
            self.blocks.resize(k.div_ceil(per), Block::ZERO);
            Prg::new(leaf).fill_blocks(&mut self.blocks);
            self.vals.clear();
            for b in &self.blocks {
                if per == 3 {
                    let x = b.0;
                    self.vals.extend_from_slice(&[
                        x as u64 & m,
                        (x >> 42) as u64 & m,
                        (x >> 84) as u64 & m,
                    ]);
                } else {
                    self.vals.extend_from_slice(&[b.low() & m, b.high() & m]);
                }
            }
            for (a, &v) in acc[q * k..(q + 1) * k].iter_mut().zip(&self.vals) {
                *a = a.wrapping_add(v);
            }
            for (s, &v) in self.sum.iter_mut().zip(&self.vals) {
                *s = s.wrapping_add(v);
            }
        }
        &self.sum
    }
}

/// Prepare the correlation for `params.rows` future input rows of the product with the
/// server's `weights` (inner × cols, row-major, signed; `None` at the client). Both parties call
/// it with the same parameters, in the same order on the channel. The client returns
/// coefficients under the server's fresh key: `returns` is the session's count of them (its
/// [`crate::protocols::attention_he::DuplexHe::returns`]), so that the flooding's bound holds
/// per session; `None` counts this call alone.
pub fn prepare<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    params: SvoleParams,
    weights: Option<&[i64]>,
    returns: Option<&ReturnCount>,
) -> Result<Correlation, ProtocolError> {
    let min = qc_code::noise_weight();
    if params.noise < min || params.rows == 0 || params.inner == 0 || params.cols == 0 {
        return Err(invalid(format!(
            "svole: noise weight {} below {min} or an empty shape ({} rows, {} × {})",
            params.noise, params.rows, params.inner, params.cols
        )));
    }
    if !(2..=4).contains(&params.limbs)
        || params.per_ct == 0
        || params.per_ct > N / params.chunk_cols()
    {
        return Err(invalid(format!(
            "svole: {} limbs and {} noise values per ciphertext are not a valid layout",
            params.limbs, params.per_ct
        )));
    }
    params.output(ring)?;
    let code = QcCode::new(params.rows, ring.bits, CODE_SEED)?;
    if params.secure && code.noise_len() / params.noise < MIN_BLOCK_LEN {
        return Err(invalid(format!(
            "svole: {} rows give noise blocks of {} positions; the security floor is {MIN_BLOCK_LEN} \
             (at least {} rows)",
            params.rows,
            code.noise_len() / params.noise,
            params.min_rows()
        )));
    }
    if code.noise_len() < params.noise {
        return Err(invalid(format!(
            "svole: noise weight {} exceeds the noise length {}",
            params.noise,
            code.noise_len()
        )));
    }
    match party.role {
        Role::Server => {
            let w = weights.ok_or_else(|| invalid("svole: the server needs the weights".into()))?;
            if w.len() != params.inner * params.cols {
                return Err(invalid(format!(
                    "svole: {} weights for a {} × {} matrix",
                    w.len(),
                    params.inner,
                    params.cols
                )));
            }
            server(party.ot, party.ch, ring, params, &code, w)
        }
        Role::Client => client(party.ot, party.ch, ring, params, &code, returns),
    }
}

/// The server's gadget plaintext of row i, chunk c, limb g: 2^(w·g)·y′_i over the chunk's columns.
fn gadget_row(ring: Ring, p: &SvoleParams, w: &[i64], i: usize, c: usize, g: u32) -> Vec<u64> {
    let sh = p.limb_bits(ring) * g;
    let scale = if sh >= 64 { 0 } else { ring.reduce(1u64 << sh) };
    let start = c * p.chunk_cols();
    (0..p.chunk_len(c))
        .map(|l| ring.mul(ring.from_signed(w[i * p.cols + start + l]), scale))
        .collect()
}

fn server<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    ring: Ring,
    p: SvoleParams,
    code: &QcCode,
    w: &[i64],
) -> Result<Correlation, ProtocolError> {
    let plain = Plain::new(ring.bits)?;
    let out = p.output(ring)?;
    let cost = p.cost(ring)?;
    let mut rng = Prg::from_entropy();
    let sk = SecretKey::generate(&mut rng);
    let base = ch.scope().to_string();
    phase(ch, &base, "keys");
    // 1. The public key and the gadget ciphertexts, row-major (row, chunk, limb).
    let wire = Seeded::wire_len();
    let g_n = p.limbs as usize;
    let n_cts = g_n * p.inner * p.chunks();
    let seeds = rng.blocks(n_cts);
    let mut msg = Vec::with_capacity((1 + n_cts) * wire);
    sk.public_key(&mut rng).write(&mut msg);
    let cts = (0..n_cts)
        .into_par_iter()
        .map(|idx| {
            let (i, c, g) = (
                idx / (g_n * p.chunks()),
                (idx / g_n) % p.chunks(),
                idx % g_n,
            );
            let row = gadget_row(ring, &p, w, i, c, g as u32);
            let ct = sk.encrypt(plain, &row, &mut Prg::new(seeds[idx]))?;
            let mut b = Vec::with_capacity(wire);
            ct.write(&mut b);
            Ok(b)
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    for b in cts {
        msg.extend_from_slice(&b);
    }
    ch.send(&msg)?;
    ch.flush()?;
    drop(msg);
    // 2. The client's products: s_(i,b) = β·y′_i − R, stored block-major (b, i, column).
    phase(ch, &base, "products");
    let resp = ch.recv_vec(cost.products_up)?;
    let (t, k, m) = (p.noise, p.cols, p.inner);
    let layout = ct_layout(&p, &out);
    let decrypted: Vec<Vec<u64>> = layout
        .par_iter()
        .map(|l| {
            let a = unpack(&resp[l.offset..l.offset + l.a_len], N, out.k);
            let b = unpack(
                &resp[l.offset + l.a_len..l.offset + l.a_len + l.b_len],
                l.count * l.kc,
                out.b_bits,
            );
            let ct = SwitchedCiphertext {
                k: out.k,
                b_bits: out.b_bits,
                a,
                b,
            };
            sk.decrypt_switched(plain, &ct, &l.positions())
        })
        .collect();
    drop(resp);
    let mut s = vec![0u64; t * m * k];
    for (l, vals) in layout.iter().zip(decrypted) {
        for jj in 0..l.count {
            let b = l.first + jj;
            let dst = &mut s[(b * m + l.row) * k + l.col0..][..l.kc];
            dst.copy_from_slice(&vals[jj * l.kc..(jj + 1) * l.kc]);
        }
    }
    // 3. The trees.
    let noise_len = code.noise_len();
    let groups = p.groups(noise_len);
    let roots = rng.blocks(m * t);
    let (leaves, sums) = pprf::expand_map(&groups, &roots, |_, l| l.to_vec())?;
    phase(ch, &base, "trees");
    pprf::send_sums(&mut ot.sender, ch, &sums)?;
    let rows: Vec<Vec<Block>> = leaves.chunks(2).map(|g| g.concat()).collect();
    drop(leaves);
    // 4. Σ_i W′_i and the corrections d = Σ_(p∈b) G(λ) − s, block by block.
    let blocks = p.blocks(noise_len);
    let mut acc = vec![0u64; noise_len * k];
    let acc_parts = block_rows(&mut acc, &blocks, k);
    s.par_chunks_mut(m * k)
        .zip(acc_parts.into_par_iter())
        .zip(blocks.par_iter())
        .for_each(|((s_b, acc_b), &(start, len))| {
            let mut scratch = BlockScratch::new(k);
            for (i, row) in rows.iter().enumerate() {
                let sigma = scratch.add_block(&row[start..start + len], None, ring.bits, acc_b);
                let d = &mut s_b[i * k..(i + 1) * k];
                for (x, &sg) in d.iter_mut().zip(sigma) {
                    *x = ring.sub(sg, *x);
                }
            }
        });
    drop(rows);
    phase(ch, &base, "corrections");
    send_ring(ch, ring, &s)?;
    ch.flush()?;
    ch.set_scope(&base);
    drop(s);
    // 5. S = H·Σ_i W′_i.
    let shares = code.compress_columns(&acc, k)?;
    Ok(Correlation::new(
        Role::Server,
        p.rows,
        p.inner,
        p.cols,
        Vec::new(),
        shares,
    ))
}

/// Where each returned ciphertext sits in the client's message and what it holds: weight row
/// `row`, chunk columns `col0 .. col0 + kc`, noise values `first .. first + count`.
struct CtSlot {
    row: usize,
    col0: usize,
    kc: usize,
    first: usize,
    count: usize,
    offset: usize,
    a_len: usize,
    b_len: usize,
}

impl CtSlot {
    /// The returned coefficients: kc per noise value, at j·kc + l.
    fn positions(&self) -> Vec<usize> {
        (0..self.count * self.kc).collect()
    }
}

/// The returned ciphertexts in message order (row, chunk, group of noise values).
fn ct_layout(p: &SvoleParams, out: &OutputParams) -> Vec<CtSlot> {
    let mut v = Vec::with_capacity(p.inner * p.chunks() * p.cts_per_chunk());
    let mut offset = 0;
    for row in 0..p.inner {
        for c in 0..p.chunks() {
            let kc = p.chunk_len(c);
            for q in 0..p.cts_per_chunk() {
                let first = q * p.per_ct;
                let count = (p.noise - first).min(p.per_ct);
                let (a_len, b_len) = (packed_len(N, out.k), packed_len(count * kc, out.b_bits));
                v.push(CtSlot {
                    row,
                    col0: c * p.chunk_cols(),
                    kc,
                    first,
                    count,
                    offset,
                    a_len,
                    b_len,
                });
                offset += a_len + b_len;
            }
        }
    }
    v
}

/// The client's mask R_(i,b) ∈ Z_2^ℓ^k, from its per-(i, b) key.
fn mask_of(ring: Ring, key: Block, k: usize) -> Vec<u64> {
    ring.random(&mut Prg::new(key), k)
}

fn client<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    ring: Ring,
    p: SvoleParams,
    code: &QcCode,
    returns: Option<&ReturnCount>,
) -> Result<Correlation, ProtocolError> {
    let plain = Plain::new(ring.bits)?;
    let out = p.output(ring)?;
    let cost = p.cost(ring)?;
    let (t, k, m) = (p.noise, p.cols, p.inner);
    let mut rng = Prg::from_entropy();
    let noise_len = code.noise_len();
    let blocks = p.blocks(noise_len);
    // The noise: per (row, block) a position in the block and an odd value.
    let alpha: Vec<usize> = (0..m * t)
        .map(|idx| rng.gen_range(0..blocks[idx % t].1))
        .collect();
    let beta: Vec<u64> = (0..m * t)
        .map(|_| (rng.next_u64() | 1) & ring.mask())
        .collect();
    let mask_keys = rng.blocks(m * t);
    // 1. The server's key and gadget ciphertexts.
    let base = ch.scope().to_string();
    phase(ch, &base, "keys");
    let wire = Seeded::wire_len();
    let keys = ch.recv_vec(cost.keys_down)?;
    let pk = PublicKeyNtt::new(&Seeded::read(&keys[..wire])?);
    let pk = match returns {
        Some(count) => pk.counting_in(count),
        None => pk,
    };
    let gadget = |i: usize, c: usize, g: usize| -> Result<Seeded, ProtocolError> {
        let idx = 1 + (i * p.chunks() + c) * p.limbs as usize + g;
        Ok(Seeded::read(&keys[idx * wire..(idx + 1) * wire])?)
    };
    // 2. The products β·y′_i, masked by R, returned.
    let layout = ct_layout(&p, &out);
    let wbits = p.limb_bits(ring);
    let ct_seeds = rng.blocks(layout.len());
    // Row by row: the row's gadget ciphertexts expanded once, then its returned ciphertexts.
    let per_row = p.chunks() * p.cts_per_chunk();
    let parts = layout
        .par_chunks(per_row)
        .zip(ct_seeds.par_chunks(per_row))
        .map(|(slots, seeds)| {
            let row = slots[0].row;
            let expanded = (0..p.chunks())
                .flat_map(|c| (0..p.limbs as usize).map(move |g| (c, g)))
                .map(|(c, g)| Ok(expand(&gadget(row, c, g)?, None, None)))
                .collect::<Result<Vec<_>, ProtocolError>>()?;
            let mut bytes = Vec::new();
            for (l, &seed) in slots.iter().zip(seeds) {
                let c = l.col0 / p.chunk_cols();
                let mut acc = Accumulator::new();
                for g in 0..p.limbs as usize {
                    let mut coeffs = vec![0i64; N];
                    for jj in 0..l.count {
                        let b = beta[l.row * t + l.first + jj];
                        let limb = (b >> (wbits as usize * g)) & mask(wbits);
                        coeffs[jj * l.kc] = limb as i64;
                    }
                    let mut enc = vec![0u64; PRIMES * N];
                    encode_plain(&coeffs, &mut enc);
                    acc.mac(&expanded[c * p.limbs as usize + g], &enc);
                }
                let mut masks = Vec::with_capacity(l.count * l.kc);
                for jj in 0..l.count {
                    let r = mask_of(ring, mask_keys[l.row * t + l.first + jj], k);
                    masks.extend_from_slice(&r[l.col0..l.col0 + l.kc]);
                }
                let sw = finalize(
                    acc.finish(),
                    &pk,
                    plain,
                    &out,
                    &l.positions(),
                    &masks,
                    &mut Prg::new(seed),
                )?;
                bytes.extend_from_slice(&pack(&sw.a, out.k));
                bytes.extend_from_slice(&pack(&sw.b, out.b_bits));
            }
            Ok(bytes)
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    drop(keys);
    let msg = parts.concat();
    drop(parts);
    phase(ch, &base, "products");
    ch.send(&msg)?;
    ch.flush()?;
    drop(msg);
    // 3. The punctured trees.
    let groups = p.groups(noise_len);
    phase(ch, &base, "trees");
    let siblings = pprf::recv_siblings(&mut ot.receiver, ch, &groups, &alpha)?;
    let leaves = pprf::expand_punctured_map(&groups, &alpha, &siblings, |_, l| l.to_vec())?;
    let rows: Vec<Vec<Block>> = leaves.chunks(2).map(|g| g.concat()).collect();
    drop(leaves);
    // 4. The corrections, then Σ_i V′_i block by block.
    phase(ch, &base, "corrections");
    let d = recv_ring(ch, ring, t * m * k)?;
    ch.set_scope(&base);
    let mut acc = vec![0u64; noise_len * k];
    let acc_parts = block_rows(&mut acc, &blocks, k);
    d.par_chunks(m * k)
        .zip(acc_parts.into_par_iter())
        .zip(blocks.par_iter())
        .enumerate()
        .for_each(|(b, ((d_b, acc_b), &(start, len)))| {
            let mut scratch = BlockScratch::new(k);
            for (i, row) in rows.iter().enumerate() {
                let a = alpha[i * t + b];
                let sigma = scratch.add_block(&row[start..start + len], Some(a), ring.bits, acc_b);
                let r = mask_of(ring, mask_keys[i * t + b], k);
                let dst = &mut acc_b[a * k..(a + 1) * k];
                for c in 0..k {
                    let v = ring.sub(ring.sub(d_b[i * k + c], sigma[c]), r[c]);
                    dst[c] = dst[c].wrapping_add(v);
                }
            }
        });
    drop(rows);
    drop(d);
    // 5. T = H·Σ_i V′_i (kept as −T), U = (H·e_i)_i.
    let t_mat = code.compress_columns(&acc, k)?;
    drop(acc);
    let shares: Vec<u64> = t_mat.iter().map(|&x| ring.neg(x)).collect();
    let columns: Vec<Vec<u64>> = (0..m)
        .into_par_iter()
        .map(|i| {
            let noise: Vec<(usize, u64)> = (0..t)
                .map(|b| (blocks[b].0 + alpha[i * t + b], beta[i * t + b]))
                .collect();
            code.compress_sparse(&noise)
        })
        .collect::<Result<Vec<_>, NetError>>()?;
    let mut masks = vec![0u64; p.rows * m];
    masks.par_chunks_mut(m).enumerate().for_each(|(r, row)| {
        for (i, x) in row.iter_mut().enumerate() {
            *x = columns[i][r];
        }
    });
    Ok(Correlation::new(
        Role::Client,
        p.rows,
        p.inner,
        p.cols,
        masks,
        shares,
    ))
}
