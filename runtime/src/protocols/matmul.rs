//! Matrix products on shares by correlated OT: x·W for a shared x and a matrix W held by one party
//! (a weight), and x·Y for two shared matrices (attention's q·Kᵀ and P·V). Each entry x_{t,k} of
//! the left operand is the chooser's scalar of one Gilboa product whose correlation is the whole
//! row k of the right operand ([`mul::mul_rows`]: one COT per bit, expanded over the row by a
//! PRG), and the products are summed over k locally. This is the OT-based matrix multiplication
//! of SecureML §4.1 / CrypTFlow2 §5 in the row-correlated form; RLWE packing (Cheetah §3) needs
//! fewer bytes for large matrices.
//!
//! **Protocol.** [`mul::mul_rows`] wants a narrow non-negative scalar, so x is biased:
//! x' = x + 2^(ℓ−2) ∈ [0, 2^(ℓ−1)) for |x| < 2^(ℓ−2) (the compiler's ring keeps two margin bits),
//! with m = ℓ. Then x·W = x'·W − 2^(ℓ−2)·Σ_k W_{k,·}, the correction computed locally on each
//! party's share of W (for a private W, by its owner alone).
//!
//! **Cost** per left entry x_{t,k} and direction: ℓ COTs (ℓλ bits) plus Σ_{j<ℓ}(ℓ − j) =
//! ℓ(ℓ+1)/2 bits per right entry of row k. x·W with W private: one direction, so
//! T·K·ℓλ + T·K·N·ℓ(ℓ+1)/2 bits; x·Y shared: twice that. 2 and 3 flights.
//!
//! **Security.** That of [`mul::mul_rows`]: the chooser receives corrections masked by PRG
//! streams of OT pads it does not hold, the holder only IKNP messages; outputs are fresh shares.
//!
//! **Use.** Neither the executor nor a bench calls it: it is the documented OT baseline that the
//! RLWE products are measured against (docs/protocols.md §21, and §26 for
//! [`super::attention_he`]'s q·Kᵀ and P·V), kept as a tested alternative with no HE assumption
//! (`runtime/tests/protocols/matmul.rs`).

use super::mul;
use super::shares::Ring;
use super::{Party, ProtocolError};
use crate::net::{Channel, Role};

fn check(ring: Ring, x: &[u64], t: usize, k: usize, n: usize) -> Result<(), ProtocolError> {
    if ring.bits < 3 || ring.bits > 63 || t.checked_mul(k) != Some(x.len()) || n == 0 {
        return Err(ProtocolError::Invalid(format!(
            "matmul: {} left values for a {t}×{k} matrix (ring {} bits, 3..=63; {n} columns)",
            x.len(),
            ring.bits
        )));
    }
    Ok(())
}

/// x' = x + 2^(ℓ−2) on this party's shares (the server adds the bias).
fn biased(ring: Ring, role: Role, x: &[u64]) -> Vec<u64> {
    let b = match role {
        Role::Server => 1u64 << (ring.bits - 2),
        Role::Client => 0,
    };
    x.iter().map(|&v| ring.add(v, b)).collect()
}

/// Σ_k x'_{t,k}·Y_{k,·} − 2^(ℓ−2)·Σ_k Y_{k,·} from the per-(t, k) products and this party's
/// share of Y (zeros for a party without one).
fn sum_rows(ring: Ring, prod: &[u64], y: &[u64], t: usize, k: usize, n: usize) -> Vec<u64> {
    let mut col = vec![0u64; n];
    for row in y.chunks(n) {
        for (c, &v) in col.iter_mut().zip(row) {
            *c = ring.add(*c, v);
        }
    }
    let bias = 1u64 << (ring.bits - 2);
    let mut out = vec![0u64; t * n];
    for (ti, o) in out.chunks_mut(n).enumerate() {
        for ki in 0..k {
            let p = &prod[(ti * k + ki) * n..(ti * k + ki + 1) * n];
            for (ov, &pv) in o.iter_mut().zip(p) {
                *ov = ring.add(*ov, pv);
            }
        }
        for (ov, &c) in o.iter_mut().zip(&col) {
            *ov = ring.sub(*ov, ring.mul(bias, c));
        }
    }
    out
}

/// Shares of x·W ([t × n]) for the shared x ([t × k], this party's share) and W ([k × n]) held by
/// `owner` (`Some` there, ignored elsewhere). Precondition: |x| < 2^(ℓ−2) (signed lift).
pub fn matmul_private<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
    (t, k, n): (usize, usize, usize),
    w: Option<&[u64]>,
    owner: Role,
) -> Result<Vec<u64>, ProtocolError> {
    check(ring, x, t, k, n)?;
    let w = match (party.role == owner, w) {
        (true, Some(w)) if w.len() == k * n => Some(w),
        (true, _) => {
            return Err(ProtocolError::Invalid(format!(
                "matmul: the owner must pass a {k}×{n} matrix"
            )))
        }
        (false, _) => None,
    };
    if t == 0 || k == 0 {
        return Ok(vec![0; t * n]);
    }
    let rep: Option<Vec<u64>> = w.map(|w| (0..t).flat_map(|_| w.iter().copied()).collect());
    let xb = biased(ring, party.role, x);
    let prod = mul::mul_rows_private(
        party,
        ring,
        ring.bits,
        &xb,
        rep.as_deref(),
        &vec![n; t * k],
        owner,
    )?;
    let zeros;
    let w_share = match w {
        Some(w) => w,
        None => {
            zeros = vec![0u64; k * n];
            &zeros[..]
        }
    };
    Ok(sum_rows(ring, &prod, w_share, t, k, n))
}

/// Shares of x·y ([t × n]) for shared x ([t × k]) and y ([k × n]), this party's shares of both.
/// Precondition: |x| < 2^(ℓ−2) (signed lift).
pub fn matmul_shared<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
    y: &[u64],
    (t, k, n): (usize, usize, usize),
) -> Result<Vec<u64>, ProtocolError> {
    check(ring, x, t, k, n)?;
    if y.len() != k * n {
        return Err(ProtocolError::Invalid(format!(
            "matmul: {} right values for a {k}×{n} matrix",
            y.len()
        )));
    }
    if t == 0 || k == 0 {
        return Ok(vec![0; t * n]);
    }
    let rep: Vec<u64> = (0..t).flat_map(|_| y.iter().copied()).collect();
    let xb = biased(ring, party.role, x);
    let prod = mul::mul_rows(party, ring, ring.bits, &xb, &rep, &vec![n; t * k])?;
    Ok(sum_rows(ring, &prod, y, t, k, n))
}
