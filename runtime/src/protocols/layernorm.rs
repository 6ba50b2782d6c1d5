//! LayerNorm's normalisation (x − μ)/√(var + ε) of shared rows, exactly as the plan's integer
//! semantics defines it (`semantics::layernorm_row`; γ and β are folded into the next linear
//! layer by the compiler, so the protocol only normalises). CipherGPT §VII-B computes the mean,
//! the variance and an inverse square root; we follow that structure, with the inverse square
//! root of the plan's recipe ([`inverse`]: a leading-bit normalisation and a 256-piece spline, in
//! the spirit of SIRNN §V-D's table start, in a fixed ~45 flights).
//!
//! **Protocol**, per row of n entries, every step batched over all rows and entries:
//! 1. Extension of x from Z_2^ℓ to Z_2^64: d_j = n·x_j − Σx can exceed the plan's ring (it is n
//!    times a deviation), so the row statistics live in the wide ring W. Within the plan's ring
//!    margin (|x| < 2^(ℓ−2), as for every activation) x + 2^(ℓ−2) has a known zero msb, and one
//!    COT extends it ([`trunc::extend_nonnegative`], Cheetah §4.2.2); the server removes the
//!    offset in W.
//! 2. d_j = n·x_j − S (local); e_j = ⌊(d_j + 2^(r1−1)) / 2^r1⌋ and v_j = ⌊(e_j + 2^(r2−1)) / 2^r2⌋
//!    = ⌊(d_j + 2^(r1−1) + 2^(r1+r2−1)) / 2^(r1+r2)⌋, both from d in one batch of truncations
//!    within W's margin ([`trunc::trunc_within_margin_each`]: |d| < 2^61).
//! 3. V = Σ v_j² + v_eps: each square v² = v_S² + v_C² + 2·v_S·v_C needs one cross term
//!    ([`mul::cross_term`]), half a product.
//! 4. ρ = inv_pow(V) ≈ ⌊√(N / V)⌋ with the public N = n·2^(2(f − r2 + f_ρ)) and the tables
//!    `LayerNormParams::rsqrt_tables` ([`inverse::inv_pow`], v_eps ≤ V < 2^62).
//! 5. y_j = ⌊e_j·ρ / 2^f_ρ⌋: a product in W by the row's scalar ρ < 2^(⌈t/2⌉ + 1) (t the bits of
//!    N / v_eps), a narrow operand ([`mul::mul_rows`] with m = ⌈t/2⌉ + 2 bits), a
//!    truncate-and-reduce ([`trunc::trunc_reduce_each`] at the cheapest digit width: the floor
//!    mod 2^(64 − f_ρ), a multiple of 2^ℓ when f_ρ ≤ 64 − ℓ, else a faithful truncation), and the
//!    shares reduced mod 2^ℓ (exact: y fits the plan's ring).
//!
//! **Prepared** ([`prepare`], [`layernorm_prepared`]; Beaver, CRYPTO 1991). The two products
//! run on correlations made before the rows exist, over W: per entry a square pair (a, a²) and
//! per row α with per entry (B, C = α·B). Step 3's square: D = v − a is opened (64 bits each
//! way) and v² = D² + 2D·a + a². Step 5: R = ρ − α (per row) and E = e − B are opened in one
//! flight and e·ρ = C + E·α + R·B + E·R. Both are exact mod 2^64, so the output is the same;
//! the openings are uniform because a, α and B are, and each is used once. Online, 16 bytes per
//! entry each in place of a cross term (64λ + 64·65/2 bits) and the row product.
//!
//! **Exactness conditions** (beyond the semantics' own, |d| < 2^61, r1 + r2 ≤ 60 and V < 2^62):
//! |x| < 2^(ℓ−2) (the plan's ring margin) and |e·ρ| < 2^63 (the bound
//! `LayerNormParams::bounds` gives is about √n·2^(f + f_ρ + 1)).
//!
//! **Cost** per element, with W = 64: the extension λ + 64 − ℓ, two truncations within W's
//! margin (M(r) + B(64 − r) + λ + r each, r = r1 and r1 + r2), half a product in W
//! (64λ + 64·65/2 bits), the row-scalar product (2Σ_{j<m}(64 − j) bits per entry, plus 2mλ per
//! row) and a truncate-and-reduce by f_ρ; per row, the inverse square root ([`inverse`]).
//! Flights: a fixed number, whatever the rows: the inverse square root's 45 and the other
//! steps' about 30 (about 1,160 with the bit-serial division and root and the faithful
//! extension and truncations before). Measured figures are in `docs/protocols.md`.
//!
//! **Security** (semi-honest). Every value after step 1 — d, e, v, V, ρ, y — stays
//! additively shared; each step is one of the sub-protocols above (extension, truncation, cross
//! term, product, inverse square root), each of which reveals nothing beyond fresh output shares, or
//! local arithmetic on shares and public constants. By sequential composition neither party
//! learns anything about the row, its mean or its variance.

use ciphergpt_compiler::fixed::semantics::LayerNormParams;

use super::shares::{open, Ring};
use super::{cmp, inverse, mul, trunc};
use super::{Party, PreparedCorrelation, ProtocolError};
use crate::crypto::Prg;
use crate::net::{Channel, Role};

/// Ring of the row statistics.
const WIDE_BITS: u32 = 64;

/// `2^(s−1)`, the rounding constant of a shift by s (0 for s = 0), at the server.
fn half(role: Role, s: u32) -> u64 {
    match role {
        Role::Server if s > 0 => 1u64 << (s - 1),
        _ => 0,
    }
}

/// Step 1: shares over W of the signed x ∈ Z_2^ℓ, for |x| < 2^(ℓ−2) (the plan's ring margin):
/// x + 2^(ℓ−2) is non-negative below 2^(ℓ−1), so one COT extends it ([`trunc::extend_nonnegative`]).
fn widen<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    w: Ring,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let offset = half(party.role, ring.bits - 1);
    let y: Vec<u64> = x.iter().map(|&v| ring.add(v, offset)).collect();
    let wide = trunc::extend_nonnegative(party, ring, w, &y)?;
    Ok(wide.into_iter().map(|v| w.sub(v, offset)).collect())
}

/// Step 2: e = ⌊(d + 2^(r1−1)) / 2^r1⌋ and v = ⌊(e + 2^(r2−1)) / 2^r2⌋, both truncations of d
/// in one batch: v = ⌊(d + 2^(r1−1) + 2^(r1+r2−1)) / 2^(r1+r2)⌋ (as ⌊(⌊y/a⌋ + c)/b⌋ = ⌊(y + ca)/ab⌋),
/// by [`trunc::trunc_within_margin_each`] (|d| < 2^61 and r1 + r2 ≤ 60: within W's margin).
fn round_shifts<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    w: Ring,
    p: &LayerNormParams,
    d: &[u64],
) -> Result<(Vec<u64>, Vec<u64>), ProtocolError> {
    let (r1, total) = (p.r1, p.r1 + p.r2);
    let biased = |c: u64| d.iter().map(move |&v| w.add(v, c));
    let mut shifts = Vec::with_capacity(2 * d.len());
    let mut inputs = Vec::with_capacity(2 * d.len());
    if r1 > 0 {
        shifts.extend(std::iter::repeat_n(r1, d.len()));
        inputs.extend(biased(half(party.role, r1)));
    }
    if p.r2 > 0 {
        shifts.extend(std::iter::repeat_n(total, d.len()));
        inputs.extend(biased(w.add(half(party.role, r1), half(party.role, total))));
    }
    let out = if shifts.is_empty() {
        Vec::new()
    } else {
        trunc::trunc_within_margin_each(party, Role::Server, w, &shifts, &inputs)?
    };
    let e = if r1 > 0 {
        out[..d.len()].to_vec()
    } else {
        d.to_vec()
    };
    let v = if p.r2 > 0 {
        out[out.len() - d.len()..].to_vec()
    } else {
        e.clone()
    };
    Ok((e, v))
}

/// This party's shares over `ring` of `layernorm_row` of every row of `x` (rows of `p.n` entries,
/// concatenated; shares over `ring`, ℓ < 64).
pub fn layernorm<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    p: &LayerNormParams,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    layernorm_with(party, ring, p, x, None)
}

/// A LayerNorm correlation made before its rows exist ([`prepare`]), over W = Z_2^64: per entry
/// a square pair (a, a²) and a triple entry (B, C = α·B) with α one per row. Rows are consumed
/// in order by [`layernorm_prepared`]; each serves one input row once.
#[derive(Clone, Debug)]
pub struct Correlation {
    n: usize,
    sq: Vec<u64>,
    sq_of: Vec<u64>,
    alpha: Vec<u64>,
    b: Vec<u64>,
    c: Vec<u64>,
    used: usize,
}

impl Correlation {
    /// How many rows it holds.
    pub fn rows(&self) -> usize {
        self.alpha.len()
    }

    /// Bytes held per row of `p.n` entries: per entry a square pair and a triple's b and c,
    /// per row the triples' shared a.
    pub fn footprint_per_row(p: &LayerNormParams) -> usize {
        (4 * p.n + 1) * 8
    }
}

impl PreparedCorrelation for Correlation {
    fn units(&self) -> usize {
        self.rows()
    }
    fn used(&self) -> usize {
        self.used
    }
    fn used_mut(&mut self) -> &mut usize {
        &mut self.used
    }
    fn footprint(&self) -> usize {
        [&self.sq, &self.sq_of, &self.alpha, &self.b, &self.c]
            .iter()
            .map(|v| v.len() * 8)
            .sum()
    }
}

/// Prepares `rows` rows of `p.n` entries (both parties call it with the same arguments): the
/// square pairs by one cross term over W per entry (a² = a_S² + a_C² + 2·a_S·a_C, as step 3
/// squares), the triples by [`mul::mul`] over W. Cost per entry on silent OT about 0.8 KB.
/// Errors as [`layernorm`]'s parameter checks.
pub fn prepare<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    p: &LayerNormParams,
    rows: usize,
) -> Result<Correlation, ProtocolError> {
    p.validate()
        .map_err(|e| ProtocolError::Invalid(format!("layernorm: {e}")))?;
    let w = Ring::new(WIDE_BITS)?;
    let n = p.n;
    let mut rng = Prg::from_entropy();
    let sq = w.random(&mut rng, rows * n);
    let cross = mul::cross_term(party, w, Role::Server, &sq)?;
    let sq_of = sq
        .iter()
        .zip(&cross)
        .map(|(&a, &c)| w.add(w.mul(a, a), w.mul(2, c)))
        .collect();
    let alpha = w.random(&mut rng, rows);
    let b = w.random(&mut rng, rows * n);
    let wide: Vec<u64> = alpha
        .iter()
        .flat_map(|&a| std::iter::repeat_n(a, n))
        .collect();
    let c = mul::mul(party, w, &wide, &b)?;
    Ok(Correlation {
        n,
        sq,
        sq_of,
        alpha,
        b,
        c,
        used: 0,
    })
}

/// [`layernorm`] with its two products (the squares of step 3, e·ρ of step 5) on the correlation
/// `prep` from row `at`: each becomes one opening over W (see the module doc). The same output
/// values; errors as [`layernorm`], and when `prep` holds rows of another width or too few rows
/// from `at`.
pub fn layernorm_prepared<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    p: &LayerNormParams,
    x: &[u64],
    prep: &Correlation,
    at: usize,
) -> Result<Vec<u64>, ProtocolError> {
    let rows = x.len() / p.n.max(1);
    if prep.n != p.n || at + rows > prep.rows() {
        return Err(ProtocolError::Invalid(format!(
            "layernorm: {rows} rows of {} from row {at} of a prepared correlation of {} rows of {}",
            p.n,
            prep.rows(),
            prep.n
        )));
    }
    layernorm_with(party, ring, p, x, Some((prep, at)))
}

fn layernorm_with<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    p: &LayerNormParams,
    x: &[u64],
    prep: Option<(&Correlation, usize)>,
) -> Result<Vec<u64>, ProtocolError> {
    p.validate()
        .map_err(|e| ProtocolError::Invalid(format!("layernorm: {e}")))?;
    let n = p.n;
    if !x.len().is_multiple_of(n) {
        return Err(ProtocolError::Invalid(format!(
            "layernorm: {} values are not whole rows of {n}",
            x.len()
        )));
    }
    if ring.bits >= WIDE_BITS {
        return Err(ProtocolError::Invalid(format!(
            "layernorm: the plan's ring must be narrower than {WIDE_BITS} bits (it is {})",
            ring.bits
        )));
    }
    let tables = p
        .rsqrt_tables()
        .map_err(|e| ProtocolError::Invalid(format!("layernorm: {e}")))?;
    // N / v_eps < 2^q_bits (below 2^58: the tables' outputs are below 2^29).
    let q_bits = 128 - (p.rsqrt_numerator() / p.v_eps as u128).leading_zeros();
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let rows = x.len() / n;
    let w = Ring::new(WIDE_BITS)?;

    // 1–2. d, e, v in W.
    let xw = widen(party, ring, w, x)?;
    let mut d = Vec::with_capacity(x.len());
    for row in xw.chunks(n) {
        let s = row.iter().fold(0u64, |a, &v| w.add(a, v));
        d.extend(row.iter().map(|&v| w.sub(w.mul(n as u64, v), s)));
    }
    let (e, v) = round_shifts(party, w, p, &d)?;

    // 3. V = Σ v² + v_eps: this party's shares of the squares, with v_S·v_C from one cross
    //    term (the server chooses), or prepared: D = v − a opened, v² = D² + 2D·a + a².
    let server = party.role == Role::Server;
    let squares: Vec<u64> = match prep {
        None => {
            let cross = mul::cross_term(party, w, Role::Server, &v)?;
            v.iter()
                .zip(&cross)
                .map(|(&vi, &ci)| w.add(w.mul(vi, vi), w.mul(2, ci)))
                .collect()
        }
        Some((c, at)) => {
            let k0 = at * n;
            let mine: Vec<u64> = (0..v.len()).map(|k| w.sub(v[k], c.sq[k0 + k])).collect();
            let d = open(party.ch, party.role, &vec![WIDE_BITS; mine.len()], &mine)?;
            (0..v.len())
                .map(|k| {
                    let mut y = w.add(c.sq_of[k0 + k], w.mul(w.mul(2, d[k]), c.sq[k0 + k]));
                    if server {
                        y = w.add(y, w.mul(d[k], d[k]));
                    }
                    y
                })
                .collect()
        }
    };
    let eps = if server { p.v_eps as u64 } else { 0 };
    let big_v: Vec<u64> = squares
        .chunks(n)
        .map(|sr| sr.iter().fold(eps, |a, &q| w.add(a, q)))
        .collect();

    // 4. ρ ≈ ⌊√(N / V)⌋ by the inverse-power recipe.
    let rho = inverse::inv_pow(party, &tables, &big_v)?;

    // 5. y = (e·ρ) >> f_ρ, back to the plan's ring.
    let prod = match prep {
        None => {
            // ρ ≤ √(N/V)·(1 + 2^−18.8) < 2^(⌈q_bits/2⌉ + 1) (the recipe's excess).
            let m = q_bits.div_ceil(2) + 2;
            let narrow = Ring::new(m)?;
            let rho: Vec<u64> = rho.iter().map(|&r| narrow.reduce(r)).collect();
            mul::mul_rows(party, w, m, &rho, &e, &vec![n; rows])?
        }
        // Prepared: R = ρ − α per row and E = e − B per entry opened, in one flight;
        // e·ρ = C + E·α + R·B + E·R (the last by the server).
        Some((c, at)) => {
            let k0 = at * n;
            let mut mine: Vec<u64> = (0..rows).map(|r| w.sub(rho[r], c.alpha[at + r])).collect();
            mine.extend((0..e.len()).map(|k| w.sub(e[k], c.b[k0 + k])));
            let opened = open(party.ch, party.role, &vec![WIDE_BITS; mine.len()], &mine)?;
            let (big_r, big_e) = opened.split_at(rows);
            (0..e.len())
                .map(|k| {
                    let r = k / n;
                    let mut y = w.add(
                        c.c[k0 + k],
                        w.add(
                            w.mul(big_e[k], c.alpha[at + r]),
                            w.mul(big_r[r], c.b[k0 + k]),
                        ),
                    );
                    if server {
                        y = w.add(y, w.mul(big_e[k], big_r[r]));
                    }
                    y
                })
                .collect()
        }
    };
    // ⌊e·ρ / 2^f_ρ⌋ is needed mod 2^ℓ only: truncate-and-reduce leaves it mod 2^(64 − f_ρ), which
    // 2^ℓ divides when f_ρ ≤ 64 − ℓ, and skips the extension back to 64 bits. Its millionaires'
    // takes the digit width with the fewest bytes on IKNP: at GPT-2's f_ρ = 18, 6-bit digits in
    // 2 tree levels where 4-bit digits take 3 (2 flights fewer, 27.5 bytes more per entry on
    // silent OT).
    let y = if p.f_rho == 0 {
        prod
    } else if p.f_rho <= WIDE_BITS - ring.bits {
        let shifts = vec![p.f_rho; prod.len()];
        let digits = cmp::cheapest_digit_bits(p.f_rho);
        trunc::trunc_reduce_to_each(party, w, &shifts, digits, ring, &prod)?
    } else {
        trunc::trunc(party, w, p.f_rho, &prod)?
    };
    Ok(y.into_iter().map(|v| ring.reduce(v)).collect())
}
