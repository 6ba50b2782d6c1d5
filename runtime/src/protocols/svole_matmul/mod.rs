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

mod blocks;
mod client;
mod params;
mod server;

pub use params::{SvoleCost, SvoleParams, MIN_BLOCK_LEN};

use super::masked_matmul::Correlation;
use super::shares::Ring;
use super::{Party, ProtocolError};
use crate::crypto::qc_code::{self, QcCode};
use crate::crypto::rlwe::{ReturnCount, N};
use crate::crypto::Block;
use crate::net::{Channel, Role};

/// The public seed of the code's vector a.
const CODE_SEED: Block = Block(0x73766f6c_655f7163_5f636f64_655f6131);

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
            server::prepare(party.ot, party.ch, ring, params, &code, w)
        }
        Role::Client => client::prepare(party.ot, party.ch, ring, params, &code, returns),
    }
}
