//! Softmax of ragged rows of shared scores, exactly the compiler's `semantics::softmax_row` on
//! every row: the row maximum, the clipped distance to it, the two-digit table exponential, the
//! row sum, one exact reciprocal per row and the normalisation, all on shares.
//! CipherGPT §VII-C (x − max(x), clip the distance at 16, exponentiate, normalise; the same
//! structure as its reference BumbleBee), with the exponential of SIRNN §V-A (digit
//! decomposition, one lookup table per digit with s′ + 2-bit entries, one product, one
//! truncation), SIRNN §IV-C (products of operands narrower than the ring, by Gilboa's COT
//! product) and Cheetah §4.2.2 (the wrap of a value whose msb is known to be zero is
//! msb(x_S) ∨ msb(x_C)).
//!
//! **Semantics** (`ExpTables`, all public): u_j = m − s_j (m the row maximum),
//! u′ = min(u, clip − 1) = h·2^lo + l, E_j = (T1\[h\]·T0\[l\]) >> f_e, Z = Σ_j E_j, R = ⌊2^K / Z⌋,
//! p_j = (E_j·R) >> S, with K = f_e + f_out + guard and S = f_e + guard.
//!
//! **Precondition** (not checkable on shares; the compiler's ring has two margin bits for it):
//! every score, read signed, lies in [−2^(ℓ−2), 2^(ℓ−2)), so that u = m − s_j ∈ [0, 2^(ℓ−1)) never
//! wraps. Outside it the output is unspecified (no error, no panic, nothing revealed).
//!
//! **Protocol.** Every step is batched over all rows and elements, so the flights do not grow
//! with the number of rows. Every millionaires' uses the digit width with the fewest bytes for
//! its input width (4 bits for 8-bit inputs, 5 or 6 for 17 to 37 bits; see [`cmp::cheapest_digit_bits`]).
//! 1. m = [`max::row_max`] (groups of four, ⌈log₄ n⌉ levels); u_j = m − s_j, local.
//! 2. Digits. l = u mod 2^lo is free (each party reduces its share). H = ⌊u / 2^lo⌋ has shares
//!    (u_S >> lo) + (u_C >> lo) + c mod 2^(ℓ−lo), c = 1{(u_S mod 2^lo) + (u_C mod 2^lo) ≥ 2^lo}:
//!    one millionaires' on lo bits whose last level gives c in arithmetic shares over
//!    Z_2^(ℓ−lo) ([`cmp::carry_arith_each`], in place of a B2A after it; SIRNN's
//!    truncate-and-reduce; the wrap of the whole sum vanishes mod 2^(ℓ−lo), and u ≥ 0 needs no
//!    bias). h = H mod 2^hi is the high digit.
//! 3. Clip bit c = 1{u ≥ clip}. When clip is a multiple of 2^lo (always for fitted tables,
//!    clip = 2^(hi+lo)) this is 1{H ≥ clip/2^lo} = DReLU(H − clip/2^lo) in Z_2^(ℓ−lo): H is below
//!    2^(ℓ−lo−1), so the difference does not wrap, and the comparison spends ℓ − lo − 1 bits
//!    instead of ℓ − 1. Otherwise DReLU(u − clip) in Z_2^ℓ. Its millionaires' runs in step 6's
//!    batch (it is needed only there), and the clip is applied to E in step 6, not to u (the
//!    digits of a clipped u are wrong, but its E is replaced).
//! 4. Lookups ([`lut::lut`], one call per table). Each table is looked up as offsets from its
//!    smallest entry, D\[i\] = T\[i\] − min T ∈ [0, span], in Z_2^w with w = bits(span) + 1, so that
//!    the msb of D is known to be zero and the 1-of-N OT messages have w bits, not ℓ. At the
//!    defaults T1 spans [0, 2^f_e] (w = f_e + 2) and T0 only [T0\[2^lo − 1\], 2^f_e] (w = 14 at
//!    f_e = 17, 11 at f_e = 14).
//! 5. Product P = T1\[h\]·T0\[l\] exactly in Z_2^W1, W1 = 2f_e + 2 (P ≤ 2^(2f_e)). Let x = D of the
//!    narrower table (m = w bits), b its offset, and Y the other table's value in Z_2^W1 (its D
//!    extended by [`trunc::extend_nonnegative`], its offset added by the server). Then
//!    P = b·Y + x·Y, and x·Y multiplies an m-bit operand by a W1-bit one ([`mul::mul_rows`]): with
//!    p = msb(x_S), q = msb(x_C) and x′_P = x_P − 2^m·msb(x_P) (the signed lift of the share),
//!    x = x′_S + x′_C + 2^m·p·q over the integers (because msb(x) = 0), so x·Y = x′_S·Y_S +
//!    x′_C·Y_C (local) + the cross terms x′_S·Y_C + 2^m·p·q·Y_C and x′_C·Y_S + 2^m·q·p·Y_S. The cross
//!    term of chooser P and holder H is Gilboa's product over the m bits of x_P: COT j over
//!    Z_2^(W1−j), the bit as choice, Y_H as correlation, weight 2^j; the top bit, of weight
//!    −2^(m−1) in x′_P, instead carries the correlation (2q_H − 1)·Y_H with weight 2^(m−1), which
//!    adds exactly 2^m·p·q·Y_H. So the product takes m COTs each way and no wrap computation.
//! 6. E = ⌊P / 2^f_e⌋ by truncate-and-reduce into Z_2^(f_e+2), where E ≤ 2^f_e has a known zero
//!    msb. Clip: E ← E + MUX(c, E_clip − E), E_clip = exp_neg(clip − 1) public ([`mux`]). E is
//!    extended to Z_2^W2, W2 = max(K + 2, den_bits + 2), by [`trunc::extend_nonnegative`].
//! 7. Z = Σ_j E_j, local (den_bits = bits(n_max·2^f_e), Z ≤ n·2^f_e; the maximum has u = 0 and
//!    E = 2^f_e, so Z ≥ 2^f_e). R = `semantics::inv_pow(Z)` ≈ ⌊2^K / Z⌋ by [`inverse::inv_pow`]
//!    on Z extended to Z_2^64 ([`trunc::extend_nonnegative`]), all rows in the same steps, then
//!    reduced to Z_2^W2 (R < 2^(K−f_e+1): never above the floor by more than 2^−16.9 of it).
//! 8. E_j·R in Z_2^W2 (E·R ≤ Z·R ≤ 2^K): R < 2^(K−f_e+1) is narrow and the same for the whole
//!    row, so the product is [`mul::mul_rows`] again with R's m_R = K − f_e + 2 bits as the chooser's
//!    operand, and one COT per bit of R per row serves the whole row: its two 128-bit pads are
//!    expanded by AES-CTR into one pad per element (a vector correlation), so per element only
//!    the corrections cross the wire.
//! 9. p = ⌊E·R / 2^S⌋ by truncate-and-reduce into Z_2^(W2−S) (its carry arithmetic from the
//!    comparison's last level, as in step 2), where p ≤ 2^f_out has a known zero msb, then
//!    [`trunc::extend_nonnegative`] to Z_2^ℓ (a reduction if ℓ ≤ W2 − S).
//!
//! **Prepared** ([`prepare`], [`softmax_prepared`]). Step 4's two lookups send
//! 2^hi·w_h + 2^lo·w_l bits per entry (8,448 at the plan's 8 + 8 digits), most of a decode
//! step's softmax bytes on silent OT. Made ahead, per entry: one one-hot vector of a random
//! index for each table ([`onehot`], over Z_2^W1), and two Beaver triples ([`mul::triples`],
//! over Z_2^W1 and Z_2^(K+2)). Online, steps 4 and 5: each party sends the two digits' offsets
//! from the random indices (hi + lo bits, one flight), both tables' values T1\[h\], T0\[l\] are
//! local sums over Z_2^W1, and their product is one triple's two openings (2·W1 bits each
//! way). Step 8: E·R with R repeated along its row, on the other triple (2·W2 bits each way;
//! the online product is used if W2 ≠ K + 2, for rows of 2^(K−f_e) or more). The same values, as
//! fresh shares; the offsets and openings are uniform (the random indices' other shares and the
//! triples' a, b are unknown to the receiver and used once).
//!
//! **Cost** per element, with M(k) the millionaires' on k bits at the chosen digit width and
//! B(k) = COT(k) = λ + k bits ([`cmp`], [`b2a`]), A(k, w) = M(k) − (2λ + 4) + 3λ + 8w the
//! millionaires' with arithmetic output over w bits (one AND fewer, a 1-out-of-8 OT),
//! L(N, w) = log₂N·λ + N·w ([`lut`]), w_x ≤ w_y the two tables' widths:
//! - digits: A(lo, ℓ − lo);
//! - lookups: L(2^hi, w_h) + L(2^lo, w_l);
//! - product: (λ + W1 − w_y) + 2(w_x·λ + Σ_{j<w_x}(W1 − j));
//! - truncation and clip, their comparisons in one batch on K = max(f_e, ℓ − lo − 1) bits:
//!   2·M(K) + B(f_e + 2) + 2(λ + f_e + 2) + (λ + W2 − f_e − 2), then the extension;
//! - normalisation: 2·Σ_{j<m_R}(W2 − j) + A(S, W2 − S) + (λ + ℓ − W2 + S);
//!
//! and per row of n: the maximum ([`max::row_max`]: per group of four candidates 6·M(ℓ − 1)
//! and two 1-out-of-64 OTs of ℓ-bit messages, ⌈log₄ n⌉ levels), Z's extension to 64 bits
//! (λ + 64 − W2), the reciprocal ([`inverse`]) and 2·m_R·λ for the normalisation's COTs. At
//! ℓ = 38 with the plan's tables (12/17/15: w = 19 and 14, W1 = 36, W2 = 42, K = 40, S = 25,
//! m_R = 25) over rows of 256 on IKNP: 7,061.61 bytes per element (1,807,771.9 per row),
//! measured equal to the formula; 113 flights from the server, 127 from the client (161 and
//! 187 with the pairwise maximum, the triples' flights and B2As after the carries, 385 and 449
//! with the bit-serial division). At ℓ = 37 with CipherGPT's 12/14/12: 6,280.95 bytes per
//! element, 111 / 125 flights.
//! `docs/protocols.md` has the table.
//!
//! **Security** (semi-honest). Between the sub-protocols each party computes only locally on its
//! own shares and public constants (the tables, their offsets and widths, clip, K, S, the row
//! lengths). Every sub-protocol — maximum, millionaires', B2A, DReLU, lookup, MUX, extension,
//! reciprocal — reveals nothing beyond its output shares, which are fresh and uniform (see their
//! modules). The cross terms are correlated OTs: the chooser (the COT receiver) sends the IKNP
//! message, masked by PRG streams the holder cannot compute, and receives per pad the corrections
//! d = a + c − b, where b (choice 0) or a (choice 1) is the AES-CTR expansion of a tweakable
//! correlation-robust hash of a key it does not hold, so d is pseudorandom to it and independent
//! of the holder's correlation c; the holder receives only the IKNP message. The holder's output
//! −Σ 2^j·a_j is masked by fresh pads, the chooser's by the holder's. By sequential composition
//! neither party learns anything about the scores, the maxima, the exponentials, the sums, the
//! reciprocals or the probabilities; the shapes (row lengths) are public.

use ciphergpt_compiler::fixed::semantics::{ExpTables, InvTables};

use super::mul::Triples;
use super::onehot::{self, OneHot};
use super::shares::Ring;
use super::{b2a::b2a, cmp, inverse, lut, max, mul, mux::mux, trunc};
use super::{Party, PreparedCorrelation, ProtocolError};
use crate::crypto::pack::mask;
use crate::net::{Channel, Role};

fn bad(msg: String) -> ProtocolError {
    ProtocolError::Invalid(format!("softmax: {msg}"))
}

/// Bit length of v (0 for 0).
fn bit_len(v: u128) -> u32 {
    128 - v.leading_zeros()
}

/// A table looked up as offsets from its smallest entry, in the narrowest ring that keeps the
/// offsets' msb at zero.
struct OffsetTable {
    base: u64,
    ring: Ring,
    entries: Vec<u64>,
}

impl OffsetTable {
    fn new(t: &[i64]) -> Result<OffsetTable, ProtocolError> {
        let lo = t.iter().copied().min().unwrap_or(0);
        let hi = t.iter().copied().max().unwrap_or(0);
        let span = (hi - lo) as u128;
        Ok(OffsetTable {
            base: lo as u64,
            ring: Ring::new(bit_len(span) + 1)?,
            entries: t.iter().map(|&v| (v - lo) as u64).collect(),
        })
    }
}

/// Everything public that the protocol derives from the tables, the ring and the row lengths.
struct Params {
    ring: Ring,
    hi_bits: u32,
    lo_bits: u32,
    frac_e: u32,
    /// Z_2^(ℓ − lo): the ring of H = ⌊u / 2^lo⌋.
    h_ring: Ring,
    /// clip / 2^lo when clip is a multiple of 2^lo (the comparison on H), else `None`.
    clip_digit: Option<u64>,
    clip: u64,
    hi: OffsetTable,
    lo: OffsetTable,
    /// Z_2^(2f_e + 2): the ring of T1·T0.
    prod_ring: Ring,
    /// Z_2^(f_e + 2): the ring of E after the truncation.
    e_ring: Ring,
    e_clip: u64,
    /// Z_2^W2: the ring of E, Z, R and E·R.
    wide: Ring,
    shift: u32,
    /// The reciprocal's tables.
    recip: InvTables,
    /// Bits of R's shares in the final product (R < 2^(r_bits − 1)).
    r_bits: u32,
}

fn params(ring: Ring, t: &ExpTables, lens: &[usize], n: usize) -> Result<Params, ProtocolError> {
    t.validate().map_err(|e| bad(e.msg))?;
    if t.hi_bits > 8 || t.lo_bits > 8 {
        return Err(bad(format!(
            "digit split {}+{} has a digit over 8 bits (lookup tables hold at most {} entries); \
             fit the tables with digits of at most 8 bits",
            t.hi_bits,
            t.lo_bits,
            lut::MAX_ENTRIES
        )));
    }
    if ring.bits < t.hi_bits + t.lo_bits + 2 {
        return Err(bad(format!(
            "a {}-bit ring cannot hold distances of {} bits and their comparison (needs at \
             least {} bits)",
            ring.bits,
            t.hi_bits + t.lo_bits,
            t.hi_bits + t.lo_bits + 2
        )));
    }
    if let Some(i) = lens.iter().position(|&l| l == 0) {
        return Err(bad(format!(
            "row {i} is empty (every row needs at least one entry)"
        )));
    }
    let total = lens.iter().try_fold(0usize, |s, &l| s.checked_add(l));
    if total != Some(n) {
        return Err(bad(format!(
            "the row lengths sum to {} but there are {n} scores",
            total.map_or("more than usize::MAX".to_string(), |t| t.to_string())
        )));
    }
    let longest = lens.iter().copied().max().unwrap_or(1);
    if longest > t.max_row_len() {
        return Err(bad(format!(
            "a row of {longest} entries exceeds the tables' maximum {}",
            t.max_row_len()
        )));
    }
    let k = t.recip_num_log2();
    let den_bits = bit_len((longest as u128) << t.frac_e);
    let wide_bits = (k + 2).max(den_bits + 2);
    if wide_bits > 64 {
        return Err(bad(format!(
            "K = {k} and rows of {longest} entries need a {wide_bits}-bit ring (at most 64)"
        )));
    }
    let lo_bits = t.lo_bits;
    let clip = t.clip as u64;
    Ok(Params {
        ring,
        hi_bits: t.hi_bits,
        lo_bits,
        frac_e: t.frac_e,
        h_ring: Ring::new(ring.bits - lo_bits)?,
        clip_digit: clip
            .is_multiple_of(1u64 << lo_bits)
            .then_some(clip >> lo_bits),
        clip,
        hi: OffsetTable::new(&t.hi)?,
        lo: OffsetTable::new(&t.lo)?,
        prod_ring: Ring::new(2 * t.frac_e + 2)?,
        e_ring: Ring::new(t.frac_e + 2)?,
        e_clip: t.exp_neg(t.clip as i128 - 1) as u64,
        wide: Ring::new(wide_bits)?,
        shift: t.recip_shift(),
        recip: t.recip_tables().map_err(|e| bad(e.msg))?,
        r_bits: k - t.frac_e + 2,
    })
}

/// The server's share of a public constant, the client's 0.
fn public(role: Role, ring: Ring, v: u64) -> u64 {
    match role {
        Role::Server => ring.reduce(v),
        Role::Client => 0,
    }
}

/// Shares over Z_2^(ℓ−s) of ⌊x / 2^s⌋ for x ∈ Z_2^ℓ read unsigned (1 ≤ s < ℓ): (x_S >> s) +
/// (x_C >> s) + c with c = 1{(x_S mod 2^s) + (x_C mod 2^s) ≥ 2^s}, one millionaires' on s bits
/// whose last level gives c in arithmetic shares over Z_2^(ℓ−s) ([`cmp::carry_arith_each`]); the
/// wrap of the whole sum is a multiple of 2^(ℓ−s) and vanishes. SIRNN §IV-B (truncate-and-reduce)
/// without the bias, as every value here is non-negative.
fn shift_reduce<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    s: u32,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let out = Ring::new(ring.bits - s)?;
    let widths = vec![s; x.len()];
    let c = cmp::carry_arith_each(party, &widths, cmp::cheapest_digit_bits(s), out, x)?;
    Ok(shifted_plus(ring, out, s, x, c))
}

/// (x_P >> s) + c_P over `out`: the shifted shares with the carries' arithmetic shares.
fn shifted_plus(ring: Ring, out: Ring, s: u32, x: &[u64], c: Vec<u64>) -> Vec<u64> {
    x.iter()
        .zip(c)
        .map(|(&v, c)| out.add(ring.reduce(v) >> s, c))
        .collect()
}

/// [`shift_reduce`] from the carries `c` (XOR shares, one per element) already computed: their
/// B2A over Z_2^(ℓ−s) and the shifted shares.
fn shift_with_carries<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    s: u32,
    x: &[u64],
    c: &[bool],
) -> Result<Vec<u64>, ProtocolError> {
    let out = Ring::new(ring.bits - s)?;
    let c = b2a(party, out, c)?;
    Ok(shifted_plus(ring, out, s, x, c))
}

/// Shares of softmax_row of every row: `s` is the concatenation of the rows (this party's
/// shares, over `ring`), `lens` their lengths (each ≥ 1); output has the same layout.
/// Precondition: every score, read signed, lies in [−2^(ℓ−2), 2^(ℓ−2)) (see the module doc).
/// Errors: malformed tables, a digit over 8 bits, lengths that do not match `s`, an empty row,
/// a row longer than [`ExpTables::max_row_len`], a ring too narrow for the digits.
pub fn softmax<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    t: &ExpTables,
    s: &[u64],
    lens: &[usize],
) -> Result<Vec<u64>, ProtocolError> {
    params(ring, t, lens, s.len())?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let m = max::row_max_from(party, Role::Client, ring, s, lens)?;
    softmax_with_max(party, ring, t, s, lens, &m)
}

/// A softmax correlation made before its scores exist ([`prepare`]): per entry one one-hot
/// vector of a random index for each digit's table ([`onehot`]), over that table's offset ring.
/// [`softmax_prepared`] consumes entries in order; each serves one score once.
#[derive(Clone, Debug)]
pub struct Correlation {
    hi: OneHot,
    lo: OneHot,
    /// Beaver triples over Z_2^W1 for T1[h]·T0[l], one per entry.
    product: Triples,
    /// Beaver triples over Z_2^(K+2) for E·R, one per entry (R repeated along its row).
    normalise: Triples,
    used: usize,
}

impl Correlation {
    /// How many entries (scores) it holds.
    pub fn len(&self) -> usize {
        self.hi.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.hi.is_empty()
    }

    /// Bytes held per score for the tables `t`: the two digits' one-hot vectors and their
    /// indices, and two triples.
    pub fn footprint_per_score(t: &ExpTables) -> usize {
        OneHot::footprint_per_element(1 << t.hi_bits.min(16))
            + OneHot::footprint_per_element(1 << t.lo_bits.min(16))
            + 2 * Triples::FOOTPRINT_PER_TRIPLE
    }
}

impl PreparedCorrelation for Correlation {
    fn units(&self) -> usize {
        self.len()
    }
    fn used(&self) -> usize {
        self.used
    }
    fn used_mut(&mut self) -> &mut usize {
        &mut self.used
    }
    fn footprint(&self) -> usize {
        self.hi.footprint()
            + self.lo.footprint()
            + self.product.footprint()
            + self.normalise.footprint()
    }
}

/// Prepares `n` entries for the tables `t` (both parties call it with the same arguments): per
/// entry one one-hot vector of 2^hi entries and one of 2^lo, over the product's ring
/// Z_2^W1 (W1 = 2f_e + 2), a Beaver triple over Z_2^W1 and one over Z_2^(K+2) (the
/// normalisation's ring for every row shorter than 2^(K−f_e), [`mul::triples`]). Cost per
/// entry: [`onehot::prepare`]'s for each vector, 2^(2·hi) + 2^(2·lo) bits of OT messages above
/// all (16 KB at the plan's 8 + 8 digits), and two products. Errors: malformed tables or a
/// digit over 8 bits.
pub fn prepare<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    t: &ExpTables,
    n: usize,
) -> Result<Correlation, ProtocolError> {
    t.validate().map_err(|e| bad(e.msg))?;
    if t.hi_bits > 8 || t.lo_bits > 8 {
        return Err(bad(format!(
            "digit split {}+{} has a digit over 8 bits",
            t.hi_bits, t.lo_bits
        )));
    }
    let pring = Ring::new(2 * t.frac_e + 2)?;
    let wide = Ring::new(t.recip_num_log2() + 2)?;
    Ok(Correlation {
        hi: onehot::prepare(party, pring, 1 << t.hi_bits, n)?,
        lo: onehot::prepare(party, pring, 1 << t.lo_bits, n)?,
        product: mul::triples(party, pring, n)?,
        normalise: mul::triples(party, wide, n)?,
        used: 0,
    })
}

/// [`softmax`] with steps 4, 5 and 8's product on the correlation `prep`, entries
/// `at..at + s.len()` (module doc, "Prepared"): the lookups become the digits' offsets from
/// random indices (hi + lo bits per entry, one flight), the two products openings of triples.
/// The same output values. Errors as [`softmax`], and when `prep` was made for other tables or
/// has too few entries from `at`.
pub fn softmax_prepared<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    t: &ExpTables,
    s: &[u64],
    lens: &[usize],
    prep: &Correlation,
    at: usize,
) -> Result<Vec<u64>, ProtocolError> {
    let pr = params(ring, t, lens, s.len())?;
    if prep.hi.size != 1 << pr.hi_bits
        || prep.lo.size != 1 << pr.lo_bits
        || prep.hi.ring != pr.prod_ring
        || prep.product.len() != prep.len()
    {
        return Err(bad(
            "the prepared correlation was made for other tables".into()
        ));
    }
    if at + s.len() > prep.len() {
        return Err(bad(format!(
            "{} scores from entry {at} of a prepared correlation of {}",
            s.len(),
            prep.len()
        )));
    }
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let m = max::row_max_from(party, Role::Client, ring, s, lens)?;
    from_max(party, &pr, s, lens, &m, Some((prep, at)))
}

/// Steps 1–9 from the row maxima `m`, on `prep`'s entries from the given one when it is there.
fn from_max<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    pr: &Params,
    s: &[u64],
    lens: &[usize],
    m: &[u64],
    prep: Option<(&Correlation, usize)>,
) -> Result<Vec<u64>, ProtocolError> {
    // 1. u_j = m − s_j.
    let ring = pr.ring;
    let mut u = Vec::with_capacity(s.len());
    for (r, &len) in lens.iter().enumerate() {
        let start = u.len();
        u.extend(s[start..start + len].iter().map(|&v| ring.sub(m[r], v)));
    }
    let e = exp_neg(party, pr, &u, prep)?;
    normalise(party, pr, &e, lens, prep)
}

/// [`softmax`] for a caller that already holds shares of every row's maximum `m` (one per row,
/// over `ring`; it must be the exact maximum of the row, else the output is unspecified).
pub fn softmax_with_max<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    t: &ExpTables,
    s: &[u64],
    lens: &[usize],
    m: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let pr = params(ring, t, lens, s.len())?;
    if m.len() != lens.len() {
        return Err(bad(format!(
            "{} row maxima for {} rows",
            m.len(),
            lens.len()
        )));
    }
    if s.is_empty() {
        return Ok(Vec::new());
    }
    from_max(party, &pr, s, lens, m, None)
}

/// Shares over Z_2^W2 of E(u) = exp_neg(u) for shared distances u ∈ [0, 2^(ℓ−1)) over Z_2^ℓ;
/// the lookups on `prep`'s entries from the given one when it is there.
fn exp_neg<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    pr: &Params,
    u: &[u64],
    prep: Option<(&Correlation, usize)>,
) -> Result<Vec<u64>, ProtocolError> {
    let (ring, lo_bits) = (pr.ring, pr.lo_bits);
    // 2. Digits: H = ⌊u / 2^lo⌋ over Z_2^(ℓ−lo), l = u mod 2^lo.
    let h: Vec<u64> = if lo_bits == 0 {
        u.to_vec()
    } else {
        shift_reduce(party, ring, lo_bits, u)?
    };
    // 3. Clip bit c = 1{u ≥ clip} = DReLU(diff) over `clip_ring`, computed in step 6's batch.
    let (clip_ring, diff) = match pr.clip_digit {
        Some(cd) => (
            pr.h_ring,
            h.iter()
                .map(|&v| pr.h_ring.sub(v, public(party.role, pr.h_ring, cd)))
                .collect::<Vec<u64>>(),
        ),
        None => (
            ring,
            u.iter()
                .map(|&v| ring.sub(v, public(party.role, ring, pr.clip)))
                .collect(),
        ),
    };
    // 4. Lookups of the offsets D = T − min T.
    let hi_idx: Vec<u64> = h.iter().map(|&v| v & mask(pr.hi_bits.max(1))).collect();
    let lo_idx: Vec<u64> = u.iter().map(|&v| v & mask(lo_bits.max(1))).collect();
    let pring = pr.prod_ring;
    let prod = match prep {
        None => table_product(party, pr, &hi_idx, &lo_idx)?,
        // Prepared: both digits' offsets from the random indices in one flight, both tables
        // read over Z_2^W1 locally, and their product on a triple (one more flight).
        Some((c, at)) => {
            let lo_mask = c.lo.size as u64 - 1;
            let lo_off: Vec<u64> = (0..u.len())
                .map(|e| lo_idx[e].wrapping_sub(c.lo.rho[at + e]) & lo_mask)
                .collect();
            let (dhi, dlo) = onehot::open_offsets(
                party.ch, party.role, &c.hi, at, &hi_idx, &lo_off, pr.lo_bits,
            )?;
            let table = |t: &OffsetTable| -> Vec<u64> {
                t.entries
                    .iter()
                    .map(|&d| pring.reduce(d.wrapping_add(t.base)))
                    .collect()
            };
            let (th, tl) = (table(&pr.hi), table(&pr.lo));
            let t1: Vec<u64> = (0..u.len())
                .map(|e| c.hi.dot(at + e, dhi[e], &th))
                .collect();
            let t0: Vec<u64> = (0..u.len())
                .map(|e| c.lo.dot(at + e, dlo[e] as usize, &tl))
                .collect();
            c.product.multiply(party.ch, party.role, at, &t1, &t0)?
        }
    };
    // 6. E = P >> f_e into Z_2^(f_e+2) and the clip bit, their comparisons in one batch; clip;
    //    extend to Z_2^W2.
    let (e, c) = shift_and_clip(party, pr, &prod, clip_ring, &diff)?;
    let er = pr.e_ring;
    let diff: Vec<u64> = e
        .iter()
        .map(|&v| er.sub(public(party.role, er, pr.e_clip), v))
        .collect();
    let fix = mux(party, er, &c, &diff)?;
    let e = er.add_vec(&e, &fix);
    trunc::extend_nonnegative(party, er, pr.wide, &e)
}

/// Step 6's comparisons in one millionaires' batch ([`cmp::carry_each`] at the cheapest digit
/// width of the wider input): the carry of the product's f_e low bits (E = ⌊P / 2^f_e⌋ in
/// Z_2^(f_e+2), [`shift_with_carries`]) and step 3's clip bit, DReLU(diff) over
/// `clip_ring` = 1 ⊕ msb(diff_S) ⊕ msb(diff_C) ⊕ carry of the low ℓ′ − 1 bits (as
/// [`cmp::drelu`]). One comparison's flights for both.
fn shift_and_clip<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    pr: &Params,
    prod: &[u64],
    clip_ring: Ring,
    diff: &[u64],
) -> Result<(Vec<u64>, Vec<bool>), ProtocolError> {
    let (fe, n) = (pr.frac_e, prod.len());
    let low = clip_ring.bits - 1;
    let mut widths = vec![fe; n];
    widths.extend(std::iter::repeat_n(low, n));
    let mut mine: Vec<u64> = prod.to_vec();
    mine.extend_from_slice(diff);
    let digits = cmp::cheapest_digit_bits(fe.max(low));
    let carries = cmp::carry_each(party, &widths, digits, &mine)?;
    let (shift, clip) = carries.split_at(n);
    let e = shift_with_carries(party, pr.prod_ring, fe, prod, shift)?;
    let server = party.role == Role::Server;
    let clip = diff
        .iter()
        .zip(clip)
        .map(|(&d, &k)| clip_ring.msb(clip_ring.reduce(d)) ^ k ^ server)
        .collect();
    Ok((e, clip))
}

/// Steps 4 and 5 online: the two lookups of the offsets D = T − min T, then
/// T1·T0 = b_x·Y + x·Y over Z_2^W1, x the narrower offsets, Y the other table's value.
fn table_product<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    pr: &Params,
    hi_idx: &[u64],
    lo_idx: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let dh = lut::lut(party, pr.hi.ring, &[&pr.hi.entries], hi_idx)?.remove(0);
    let dl = lut::lut(party, pr.lo.ring, &[&pr.lo.entries], lo_idx)?.remove(0);
    let (dh, dl) = (&dh, &dl);
    let pring = pr.prod_ring;
    let ((x, xt), (y, yt)) = if pr.lo.ring.bits <= pr.hi.ring.bits {
        ((dl, &pr.lo), (dh, &pr.hi))
    } else {
        ((dh, &pr.hi), (dl, &pr.lo))
    };
    let y = trunc::extend_nonnegative(party, yt.ring, pring, y)?;
    let y: Vec<u64> = y
        .iter()
        .map(|&v| pring.add(v, public(party.role, pring, yt.base)))
        .collect();
    let ones = vec![1usize; x.len()];
    let xy = mul::mul_rows(party, pring, xt.ring.bits, x, &y, &ones)?;
    Ok(xy
        .iter()
        .zip(&y)
        .map(|(&v, &yv)| pring.add(v, pring.mul(xt.base, yv)))
        .collect())
}

/// Steps 7–9: p_j = (E_j·⌊2^K / Z⌋) >> S per row, from shares of E over Z_2^W2; E·R on
/// `prep`'s triples from the given entry when they are over Z_2^W2.
fn normalise<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    pr: &Params,
    e: &[u64],
    lens: &[usize],
    prep: Option<(&Correlation, usize)>,
) -> Result<Vec<u64>, ProtocolError> {
    let w = pr.wide;
    let mut z = Vec::with_capacity(lens.len());
    let mut start = 0;
    for &len in lens {
        z.push(e[start..start + len].iter().fold(0u64, |a, &v| w.add(a, v)));
        start += len;
    }
    // R ≈ ⌊2^K / Z⌋ by the inverse-power recipe over Z_2^64 (Z ≤ 2^K < 2^(W2−1)).
    let full = Ring::new(64)?;
    let z64 = if w.bits < 64 {
        trunc::extend_nonnegative(party, w, full, &z)?
    } else {
        z
    };
    let r: Vec<u64> = inverse::inv_pow(party, &pr.recip, &z64)?
        .into_iter()
        .map(|v| w.reduce(v))
        .collect();
    let er = match prep {
        // R repeated along its row, times E, on one triple per entry.
        Some((c, at)) if c.normalise.ring == w => {
            let wide_r: Vec<u64> = r
                .iter()
                .zip(lens)
                .flat_map(|(&v, &len)| std::iter::repeat_n(v, len))
                .collect();
            c.normalise.multiply(party.ch, party.role, at, &wide_r, e)?
        }
        _ => {
            let rm = mask(pr.r_bits);
            let r: Vec<u64> = r.iter().map(|&v| v & rm).collect();
            mul::mul_rows(party, w, pr.r_bits, &r, e, lens)?
        }
    };
    let p = shift_reduce(party, w, pr.shift, &er)?;
    let p_ring = Ring::new(w.bits - pr.shift)?;
    if pr.ring.bits > p_ring.bits {
        trunc::extend_nonnegative(party, p_ring, pr.ring, &p)
    } else {
        Ok(p.iter().map(|&v| pr.ring.reduce(v)).collect())
    }
}
