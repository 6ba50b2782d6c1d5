//! GELU of shared fixed-point values: exactly the compiler's spline `semantics::gelu` (CipherGPT
//! §IV, Algorithm 1), bit for bit. With B = 2^(alpha_log2+f) (α in fixed point), x' = x + B,
//! w = piece_bits, N = 2^s pieces, K = w + s (2B = 2^K): y = 0 if x' < 0, y = x if x' ≥ 2B, else
//! y = ⌊(A_i·r + C_i) / 2^f⌋ with i = ⌊x'/2^w⌋, r = x' mod 2^w.
//!
//! **Precondition.** −2^(ℓ−2) ≤ x < 2^(ℓ−2) (the compiler's two margin bits; exactly, the protocol
//! needs −2^(ℓ−1) + B ≤ x < 2^(ℓ−1) − B), which cannot be checked on shares. Checked, with
//! `ProtocolError::Invalid` ([`params`]): the tables' shape, N ≤ 256, B ≤ 2^(ℓ−2), and that the spline's
//! intermediate fits: with z = A_i·r + C_i over every piece and every r ∈ [0, 2^w), and β the
//! smallest multiple of 2^f with z + β ≥ 0, z + β < 2^(m−1) for some m ≤ min(ℓ, 63) (m = 34 for
//! the default tables, 28 for CipherGPT's f = 12, 64 pieces).
//!
//! **Protocol.** The server adds B to its share.
//! 1. c_w = 1{lo_S + lo_C ≥ 2^w} for lo_P = x'_P mod 2^w: a millionaires' on w bits ([`cmp`]),
//!    then B2A ([`b2a`]) over Z_2^max(m, ℓ−w). Locally: h_P = (x'_P >> w) + c_w,P, shares of
//!    h = ⌊x'/2^w⌋ mod 2^(ℓ−w) (the carry makes the floor exact, as in [`super::trunc`]); the
//!    piece index i_P = h_P mod N; the offset r_P = lo_P − 2^w·c_w,P mod 2^m, so r = r_S + r_C is
//!    x' mod 2^w exactly, and each r_P is private to P.
//! 2. The product and the intercept are folded into two lookups with private tables (the
//!    lookup of [`super::lut`] with a per-element table known only to the party that rotates it):
//!    the client rotates T_C(j) = A_j·r_C, the server T_S(j) = A_j·r_S + C_j + β, both
//!    mod 2^m. The sum of the four output shares is u = A_i·r + C_i + β mod 2^m, and
//!    u ∈ [0, 2^(m−1)) as an integer for every i and r, inside the spline's domain or not. No
//!    multiplication protocol is needed. The server's lookup also delivers the index carry
//!    c_s = 1{i_S + i_C ≥ N} for step 4: each of its messages j carries one more bit,
//!    1{j + i_S ≥ N} ⊕ g with a fresh random g the server keeps (the client receives j = i_C).
//! 3. ⌊u/2^f⌋ = (u_S >> f) + (u_C >> f) + c_f − 2^(m−f)·wrap, with
//!    c_f = 1{u_S mod 2^f + u_C mod 2^f ≥ 2^f} (a millionaires' on f bits) and
//!    wrap = 1{u_S + u_C ≥ 2^m}; since u < 2^(m−1), wrap = msb(u_S) ∨ msb(u_C) (Cheetah's
//!    known-MSB shortcut), one COT. The server subtracts β/2^f:
//!    the spline value ⌊z/2^f⌋, now over Z_2^ℓ (a faithful truncation and the extension from m to
//!    ℓ bits in one step).
//! 4. h2 = ⌊h/2^s⌋ = ⌊x'/2^K⌋ mod 2^(ℓ−K) = (h_S >> s) + (h_C >> s) + c_s with c_s the carry of
//!    the index shares from step 2. The three B2A-like COTs of c_f, wrap and c_s go in one batch
//!    (widths ℓ, ℓ − m + f, ℓ − K). Then b_lo = 1{x' < 0} = msb(h2) and b_hi = 1{x' ≥ 2B} =
//!    1 ⊕ msb(h2 − 1), one [`cmp::msb`] call on 2n values over Z_2^(ℓ−K): the precondition keeps
//!    h2 and h2 − 1 inside that ring's signed range.
//! 5. mid = 1 ⊕ b_lo ⊕ b_hi (never both 1), local; y = MUX(b_hi, x) + MUX(mid, spline), one
//!    [`mux`] call on 2n values.
//!
//! **Prepared lookups** ([`prepare`], [`gelu_prepared`]). Step 2's two lookups send N·m bits
//! each, most of the protocol's bytes on silent OT (1,088 of 1,137 bytes per element at ℓ = 37
//! with the default tables), and their messages depend on the shares of the moment. Made
//! before the inputs exist, per element: shares E of the one-hot vector of a random index ρ over
//! Z_2^m ([`onehot`], ρ = ρ_S + ρ_C known to neither) and a Beaver triple (a, b, c = a·b) over
//! Z_2^m ([`Triples`]). Online, in place of the lookups:
//! 2a. one simultaneous flight: each party sends i_P − ρ_P mod N and r_P − b_P; both learn
//!     δ = i − ρ and f = r − b;
//! 2b. locally, shares of A_i = Σ_j A_(j+δ)·E_j and of C_i + β = Σ_j (C + β)_(j+δ)·E_j;
//! 2c. one simultaneous flight: g = A_i − a; then A_i·r = c + g·b + f·a + g·f (g·f by the
//!     server), and u = A_i·r + C_i + β mod 2^m, the same value as the lookups' (its shares are
//!     fresh, so step 3's known-MSB wrap holds as before);
//! 2d. the index carry c_s from a millionaires' on s bits ([`cmp::carry`]).
//!
//! Online cost of step 2, in bits per element: 2(s + m) + 2m + M(s), against the lookups'
//! 2(sλ + N·m) + N; at ℓ = 38 with the default tables on silent OT the whole GELU measures 196
//! bytes per element against 1,274 online (`protocols_gelu.rs`). Security: δ is uniform and
//! independent of i from either side (ρ's other share is uniform and used once), f and g are
//! uniform (b and a are), and the rest is the online protocol's; each element of a correlation
//! serves one input once.
//!
//! Every millionaires' uses the digit width m ≤ 6 that makes it cheapest in bytes ([`cmp::cheapest_digit_bits`]:
//! 6 for 11 bits, 5 for 15 and 19 bits) instead of the fixed 4 of [`cmp::DEFAULT_DIGIT_BITS`].
//! Wider digits would save a few more bytes, but the sender's AES work and the leaf messages grow
//! as 2^m: m = 7 for the 21-bit signs at ℓ = 37 saved 7% of the bytes and doubled the wall time.
//!
//! **Cost** per element, in bits, λ = 128, M(k) the millionaires' on k bits ([`cmp::millionaire_bits`]
//! with [`cmp::cheapest_digit_bits`]):
//! - carry and B2A: M(w) + λ + max(m, ℓ−w);
//! - lookups: 2(sλ + N·m) + N (the index carry);
//! - carry c_f: M(f);
//! - COT batch: 3λ + ℓ + (ℓ−m+f) + (ℓ−K);
//! - signs: 2·M(ℓ−K−1);
//! - MUX: 4(λ + ℓ).
//!
//! At ℓ = 38 with the default tables (f = 15, w = 11, s = 7, m = 34), in bytes: 256.5 + 20.25,
//! 1,328, 329, 57.625, 964, 83: 3,038.375 in all, as measured over 2^16 elements (the lookups are
//! 44%, the comparisons 51%). CipherGPT's setting (ℓ = 37, f = 12, 64 pieces, m = 28): 2,429
//! bytes. Flights (at 2^16 elements, as the channel counts them): 24 for the server, 28 for the
//! client — eight sub-protocol calls in sequence, each party's last and next first flight merged
//! where the directions allow (B2A → client's lookup → server's lookup).
//!
//! **Security** (semi-honest). Between sub-protocols each party computes only locally on its own
//! shares and on public values (B, β, the tables and the widths derived from them). The
//! sub-protocols are simulatable from each party's inputs and outputs: the millionaires'
//! ([`cmp`]), the COTs (as in [`b2a`]: the receiver's output is masked by the fresh pad t, the
//! sender receives only IKNP's PRG-masked message), the MSB and the MUX. In each private lookup
//! the chooser receives its chosen message T(i) − ρ, uniform in Z_2^m because ρ is fresh and used
//! once, and N − 1 ciphertexts under keys it did not choose (1-out-of-N OT security, 128-bit); the
//! rotator receives only the OT receiver's IKNP message. All outputs of the sub-protocols are fresh
//! XOR or additive shares (the index carry's g is a fresh one-time pad), so by sequential
//! composition neither party learns anything beyond its output share, which is uniform (a MUX
//! output share).
//!
//! **Paper.** CipherGPT §IV (Algorithm 1: the shift by α, one lookup of slope and intercept at
//! the index from a truncation of the low bits, two comparisons with 0 and 2α, two MUXes; ours
//! computes its spline `semantics::gelu` exactly). Differences: the index comes from a carry on w
//! bits (SIRNN §IV-B's truncate-and-reduce), the product A_i·r is folded into two private lookups
//! instead of a multiplication, the truncation uses Cheetah's known-MSB wrap (Cheetah §4.2.2:
//! w = msb(x_A) ∨ msb(x_B) when msb(x) = 0) with the bias β, and the comparisons run on
//! ⌊x'/2^K⌋ in an (ℓ − K)-bit ring.
//!
//! **Memory.** The rotator of a lookup holds 2·n·N words (messages and ciphertexts), 128 MiB at
//! n = 2^16, N = 128; callers with larger tensors should call in slices.

use rand::RngCore;
use rayon::prelude::*;

use ciphergpt_compiler::fixed::semantics::GeluTables;

use super::b2a::b2a_by;
use super::cmp;
use super::lut::MAX_ENTRIES;
use super::mul::{recv_cot_widths, send_cot_widths, triples, Triples};
use super::mux::mux;
use super::onehot::{self, OneHot};
use super::shares::{open, Ring};
use super::{Party, PreparedCorrelation, ProtocolError};
use crate::crypto::iknp::OtPair;
use crate::crypto::pack::mask;
use crate::crypto::Prg;
use crate::net::{Channel, Role};

/// The public widths and constants of a GELU evaluation, derived from the tables and the ring by
/// [`params`]. Both parties derive the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Z_2^ℓ, the ring of the input and the output.
    pub ring: Ring,
    /// f: fractional bits of input and output.
    pub frac: u32,
    /// w: bits of the offset r within a piece.
    pub piece_bits: u32,
    /// s: there are N = 2^s pieces.
    pub pieces_log2: u32,
    /// m: width of the ring Z_2^m in which u = slope·r + intercept + β is computed.
    pub spline_bits: u32,
    /// β ≥ 0, a multiple of 2^f: the bias that puts u in [0, 2^(m−1)) for every piece and offset.
    pub bias: u64,
}

impl Params {
    /// K = w + s = alpha_log2 + frac + 1: 2B = 2^K.
    pub fn window_bits(&self) -> u32 {
        self.piece_bits + self.pieces_log2
    }
}

fn invalid(msg: String) -> ProtocolError {
    ProtocolError::Invalid(msg)
}

/// Checks the tables against the ring and derives the protocol's widths. Errors
/// (`ProtocolError::Invalid`): malformed tables (`GeluTables::validate`), more than 256 pieces, a ring
/// too narrow for the inputs' range (ℓ < K + 1, i.e. B > 2^(ℓ−2)) or for the spline's
/// intermediate (m > min(ℓ, 63); the server's lookup messages take m + 1 bits).
pub fn params(ring: Ring, t: &GeluTables) -> Result<Params, ProtocolError> {
    t.validate().map_err(|e| invalid(e.to_string()))?;
    if (1usize << t.pieces_log2) > MAX_ENTRIES {
        return Err(invalid(format!(
            "gelu: 2^{} pieces exceed the lookup limit of {MAX_ENTRIES}",
            t.pieces_log2
        )));
    }
    let k = t.alpha_log2 + t.frac + 1;
    if k + 1 > ring.bits {
        return Err(invalid(format!(
            "gelu: a {}-bit ring is too narrow for B = 2^{}: inputs in [−2^(ℓ−2), 2^(ℓ−2)) need \
             B ≤ 2^(ℓ−2), i.e. ℓ ≥ {}",
            ring.bits,
            k - 1,
            k + 1
        )));
    }
    let w = t.piece_bits();
    let (lo, hi, bias, m) = t.spline_range();
    if m > ring.bits.min(63) {
        return Err(invalid(format!(
            "gelu: a {}-bit ring is too narrow for the spline: slope·r + intercept spans \
             [{lo}, {hi}], which needs {m} bits (ℓ ≥ {m}, and m ≤ 63)",
            ring.bits
        )));
    }
    Ok(Params {
        ring,
        frac: t.frac,
        piece_bits: w,
        pieces_log2: t.pieces_log2,
        spline_bits: m,
        bias: bias as u64,
    })
}

/// The shape of a [`private_lut`]: entries in `ring`, `size` of them (a power of two ≤ 256), and
/// whether each message also carries the index carry 1{i_S + i_C ≥ size} (one more bit).
#[derive(Clone, Copy)]
struct Shape {
    ring: Ring,
    size: usize,
    index_carry: bool,
}

/// Lookup in a table private to the rotator (this party if `rotates`), one table per element:
/// shares over `ring` of entry(e, i_e), where i = i_S + i_C mod N is shared in `index`, and, if
/// `index_carry`, XOR shares of 1{i_S + i_C ≥ N} (all-zero otherwise). [`super::lut`]'s protocol
/// with a private, per-element table and either party as the rotator: it offers
/// m_j = entry(e, (j + i_R) mod N) − ρ_e in a 1-out-of-N OT, with the bit 1{j + i_R ≥ N} ⊕ g_e
/// above it, and keeps ρ_e and g_e; the chooser picks j = i_Q. For N = 1 there is nothing to
/// send. `entry` is evaluated only by the rotator.
fn private_lut<C, F>(
    ot: &mut OtPair,
    ch: &mut C,
    rotates: bool,
    shape: Shape,
    index: &[u64],
    entry: F,
) -> Result<(Vec<u64>, Vec<bool>), ProtocolError>
where
    C: Channel + ?Sized,
    F: Fn(usize, usize) -> u64 + Sync,
{
    let Shape {
        ring,
        size,
        index_carry,
    } = shape;
    let n = index.len();
    let imask = size - 1;
    if size == 1 {
        let v = (0..n)
            .map(|e| if rotates { ring.reduce(entry(e, 0)) } else { 0 })
            .collect();
        return Ok((v, vec![false; n]));
    }
    let bits = ring.bits + index_carry as u32;
    if rotates {
        let mut rng = Prg::from_entropy();
        let rho = ring.random(&mut rng, n);
        let g: Vec<bool> = (0..n)
            .map(|_| index_carry && rng.next_u32() & 1 == 1)
            .collect();
        let mut msgs = vec![0u64; n * size];
        msgs.par_chunks_mut(size).enumerate().for_each(|(e, ms)| {
            let ir = index[e] as usize & imask;
            for (j, m) in ms.iter_mut().enumerate() {
                let flag = (index_carry && j + ir >= size) ^ g[e];
                *m = ring.sub(entry(e, (j + ir) & imask), rho[e]) | (flag as u64) << ring.bits;
            }
        });
        ot.sender.send_1_of_n(ch, &msgs, size, bits)?;
        Ok((rho, g))
    } else {
        let choices: Vec<u32> = index.iter().map(|&v| (v as usize & imask) as u32).collect();
        let got = ot.receiver.recv_1_of_n(ch, &choices, size, bits)?;
        Ok((
            got.iter().map(|&v| ring.reduce(v)).collect(),
            got.iter().map(|&v| (v >> ring.bits) & 1 == 1).collect(),
        ))
    }
}

/// This party's shares over `ring` of `semantics::gelu(x_i, t)` for the shared inputs `x` (signed
/// lift of x ∈ Z_2^ℓ). Precondition: −2^(ℓ−2) ≤ x < 2^(ℓ−2) (the compiler's two margin bits; see
/// the module doc), not checkable on shares; outside it the output is unspecified. Errors as
/// [`params`], and for input shares not reduced mod 2^ℓ. Empty input: empty output, no
/// communication. Cost and memory: see the module doc.
pub fn gelu<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    t: &GeluTables,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    gelu_with(party, ring, t, x, None)
}

/// A GELU correlation made before its inputs exist ([`prepare`]): per element, shares of the
/// one-hot vector of a random piece index over Z_2^m ([`onehot`]) and one Beaver triple over
/// Z_2^m ([`Triples`]), for the tables and the ring it was made for. [`gelu_prepared`] consumes
/// elements in order; each serves one GELU input once.
#[derive(Clone, Debug)]
pub struct Correlation {
    params: Params,
    onehot: OneHot,
    triples: Triples,
    used: usize,
}

impl Correlation {
    /// How many elements it holds.
    pub fn len(&self) -> usize {
        self.onehot.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.onehot.is_empty()
    }

    /// Bytes held per element for the tables `t`: a one-hot vector of 2^s words and its index,
    /// and a triple.
    pub fn footprint_per_element(t: &GeluTables) -> usize {
        OneHot::footprint_per_element(1 << t.pieces_log2.min(16)) + Triples::FOOTPRINT_PER_TRIPLE
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
        self.onehot.footprint() + self.triples.footprint()
    }
}

/// Prepares `n` elements of GELU correlation for the tables `t` over `ring` (both parties call it
/// with the same arguments): the one-hot vectors of N = 2^s entries and the triples, over the
/// spline's ring Z_2^m. Cost per element: [`onehot::prepare`]'s plus one [`Triples`]'s product
/// (2mλ + m(m + 1) bits on IKNP); at the default tables (N = 128, m = 34) on silent OT about
/// 2.8 KB. Errors as [`params`].
pub fn prepare<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    t: &GeluTables,
    n: usize,
) -> Result<Correlation, ProtocolError> {
    let params = params(ring, t)?;
    let rz = Ring::new(params.spline_bits)?;
    let size = 1usize << params.pieces_log2;
    let onehot = onehot::prepare(party, rz, size, n)?;
    let triples = triples(party, rz, n)?;
    Ok(Correlation {
        params,
        onehot,
        triples,
        used: 0,
    })
}

/// [`gelu`] with step 2 on the correlation `prep`, elements `at..at + x.len()`: the same output
/// distribution (fresh shares of the same values) for a fraction of the online bytes — see the
/// module doc's "Prepared lookups". Errors as [`gelu`], and when `prep` was made for other
/// tables or another ring or has too few elements from `at`.
pub fn gelu_prepared<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    t: &GeluTables,
    x: &[u64],
    prep: &Correlation,
    at: usize,
) -> Result<Vec<u64>, ProtocolError> {
    gelu_with(party, ring, t, x, Some((prep, at)))
}

fn gelu_with<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    t: &GeluTables,
    x: &[u64],
    prep: Option<(&Correlation, usize)>,
) -> Result<Vec<u64>, ProtocolError> {
    let p = params(ring, t)?;
    check_inputs(ring, p, x, prep)?;
    let n = x.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let server = party.role == Role::Server;
    // A public constant enters the server's share only.
    let public = |v: u64| if server { v } else { 0 };
    let (l, f, w, s, k) = (
        ring.bits,
        p.frac,
        p.piece_bits,
        p.pieces_log2,
        p.window_bits(),
    );
    let size = 1usize << s;
    let rz = Ring::new(p.spline_bits)?; // u = z + β
    let rh = Ring::new(l - w)?; // h = ⌊x'/2^w⌋
    let r2 = Ring::new(l - k)?; // h2 = ⌊x'/2^K⌋

    // Step 1. x' = x + B; c_w = carry of the low w bits into bit w, as arithmetic shares.
    let xp: Vec<u64> = x
        .iter()
        .map(|&v| ring.add(v, public(1 << (k - 1))))
        .collect();
    let lo: Vec<u64> = xp.iter().map(|&v| v & mask(w)).collect();
    let digits = cmp::cheapest_digit_bits(w);
    let cw = cmp::carry(party, w, digits, &lo)?;
    let first = cmp::last_sender(w, digits, 1);
    let cw = b2a_by(party, first, Ring::new(p.spline_bits.max(l - w))?, &cw)?;

    // Step 1, local: h = ⌊x'/2^w⌋ mod 2^(ℓ−w), the piece index i = h mod N, the offset
    //    r = lo_S + lo_C − 2^w·c_w ∈ [0, 2^w) mod 2^m, each party's r_P private.
    let h: Vec<u64> = xp
        .iter()
        .zip(&cw)
        .map(|(&v, &c)| rh.add(v >> w, c))
        .collect();
    let idx: Vec<u64> = h.iter().map(|&v| v & (size as u64 - 1)).collect();
    let r: Vec<u64> = lo
        .iter()
        .zip(&cw)
        .map(|(&v, &c)| rz.sub(v, rz.mul(c, 1u64 << w)))
        .collect();

    // Step 2. u = A_i·r + C_i + β mod 2^m, and XOR shares of the index carry c_s.
    let slope: Vec<u64> = t.slope.iter().map(|&a| rz.from_signed(a)).collect();
    let icpt: Vec<u64> = t
        .intercept
        .iter()
        .map(|&c| (c as i128 + p.bias as i128) as u64 & rz.mask())
        .collect();
    let (u, cs) = match prep {
        None => lookup_spline(party, rz, size, &idx, &r, &slope, &icpt)?,
        Some((c, at)) => prepared_spline(party, rz, c, at, &idx, &r, &slope, &icpt)?,
    };

    // Step 3. c_f = carry of u's low f bits.
    let ulo: Vec<u64> = u.iter().map(|&v| v & mask(f)).collect();
    let cf = cmp::carry(party, f, cmp::cheapest_digit_bits(f), &ulo)?;

    // Steps 3 and 4: one batch of COTs (server's bits as correlations, client's as choices):
    //    B2A of c_f over Z_2^ℓ, the AND of the shares' top bits a = msb(u_S), b = msb(u_C) over
    //    Z_2^(ℓ−m+f) (u < 2^(m−1), so the wrap of u_S + u_C is a ∨ b = a + b − a∧b), B2A of c_s
    //    over Z_2^(ℓ−K). prod(j) is this party's share of the j-th product (bit_S·bit_C).
    let wrap_bits = l - p.spline_bits + f;
    let top: Vec<bool> = u.iter().map(|&v| rz.msb(v)).collect();
    let bits: Vec<bool> = cf.iter().chain(&top).chain(&cs).copied().collect();
    let widths: Vec<u32> = [l, wrap_bits, r2.bits]
        .iter()
        .flat_map(|&b| std::iter::repeat_n(b, n))
        .collect();
    let prod = bit_products(party, &bits, &widths)?;
    // XOR → arithmetic: b_S ⊕ b_C = b_S + b_C − 2·b_S·b_C; OR: a ∨ b = a + b − a·b.
    let xor = |j: usize| (bits[j] as u64).wrapping_sub(prod[j].wrapping_mul(2));
    let or = |j: usize| (bits[j] as u64).wrapping_sub(prod[j]);

    // ⌊u/2^f⌋ = (u_S >> f) + (u_C >> f) + c_f − 2^(m−f)·wrap, and ⌊z/2^f⌋ = ⌊u/2^f⌋ − β/2^f.
    let spline: Vec<u64> = (0..n)
        .map(|e| {
            let wrap = (or(n + e) & mask(wrap_bits))
                .checked_shl(p.spline_bits - f)
                .unwrap_or(0);
            ring.reduce(
                (u[e] >> f)
                    .wrapping_add(xor(e))
                    .wrapping_sub(wrap)
                    .wrapping_sub(public(p.bias >> f)),
            )
        })
        .collect();

    // Step 4. h2 = ⌊h/2^s⌋ = ⌊x'/2^K⌋ mod 2^(ℓ−K). x' < 0 ⇔ h2 < 0, x' ≥ 2B ⇔ h2 − 1 ≥ 0: one MSB
    //    call on [h2, h2 − 1].
    let h2: Vec<u64> = (0..n)
        .map(|e| r2.add(h[e] >> s, r2.reduce(xor(2 * n + e))))
        .collect();
    let mut v = h2.clone();
    v.extend(h2.iter().map(|&a| r2.sub(a, public(1))));
    let sign = cmp::msb_with(party, r2, cmp::cheapest_digit_bits(r2.bits - 1), &v)?;

    // Step 5. b_hi = 1 ⊕ msb(h2 − 1), mid = 1 ⊕ b_lo ⊕ b_hi = msb(h2) ⊕ msb(h2 − 1);
    //    y = b_hi·x + mid·spline, one MUX call on 2n.
    let sel: Vec<bool> = (0..n)
        .map(|e| sign[n + e] ^ server)
        .chain((0..n).map(|e| sign[e] ^ sign[n + e]))
        .collect();
    let vals: Vec<u64> = x.iter().copied().chain(spline).collect();
    let out = mux(party, ring, &sel, &vals)?;
    Ok(ring.add_vec(&out[..n], &out[n..]))
}

/// `Err` when `prep` was made for other parameters than `p` or has too few elements from its
/// start for `x`, or when a share of `x` is not reduced mod 2^ℓ.
fn check_inputs(
    ring: Ring,
    p: Params,
    x: &[u64],
    prep: Option<(&Correlation, usize)>,
) -> Result<(), ProtocolError> {
    if let Some((c, at)) = prep {
        if c.params != p {
            return Err(invalid(
                "gelu: the prepared correlation was made for other tables or another ring".into(),
            ));
        }
        if at + x.len() > c.len() {
            return Err(invalid(format!(
                "gelu: {} inputs from element {at} of a prepared correlation of {}",
                x.len(),
                c.len()
            )));
        }
    }
    if x.iter().any(|&v| v & !ring.mask() != 0) {
        return Err(invalid(format!(
            "gelu: an input share is not reduced mod 2^{}",
            ring.bits
        )));
    }
    Ok(())
}

/// Step 2 by two lookups (module doc), each in a table private to the party that holds its r_P:
/// shares of u = A_i·r + C_i + β over Z_2^m (`rz`) for the piece indices `idx` (N = `size`) and
/// the offsets `r`, and XOR shares of the index carry c_s from the server's lookup.
fn lookup_spline<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    rz: Ring,
    size: usize,
    idx: &[u64],
    r: &[u64],
    slope: &[u64],
    icpt: &[u64],
) -> Result<(Vec<u64>, Vec<bool>), ProtocolError> {
    let server = party.role == Role::Server;
    let shape = Shape {
        ring: rz,
        size,
        index_carry: false,
    };
    let (uc, _) = private_lut(party.ot, party.ch, !server, shape, idx, |e, j| {
        rz.mul(slope[j], r[e])
    })?;
    let shape = Shape {
        index_carry: true,
        ..shape
    };
    let (us, cs) = private_lut(party.ot, party.ch, server, shape, idx, |e, j| {
        rz.add(rz.mul(slope[j], r[e]), icpt[j])
    })?;
    Ok((rz.add_vec(&uc, &us), cs))
}

/// This party's shares of bit_S·bit_C for each of its XOR shares `bits`, the j-th over
/// Z_2^widths[j]: one batch of COTs, the server's bits as correlations, the client's as choices.
fn bit_products<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    bits: &[bool],
    widths: &[u32],
) -> Result<Vec<u64>, ProtocolError> {
    if party.role == Role::Server {
        let deltas: Vec<u64> = bits.iter().map(|&b| b as u64).collect();
        let got = send_cot_widths(&mut party.ot.sender, party.ch, &deltas, widths)?;
        Ok(got.iter().map(|g| g.wrapping_neg()).collect())
    } else {
        recv_cot_widths(&mut party.ot.receiver, party.ch, bits, widths)
    }
}

/// Step 2 on a prepared correlation (module doc, "Prepared lookups"): shares of
/// u = A_i·r + C_i + β over Z_2^m (`rz`) and XOR shares of the index carry c_s.
#[allow(clippy::too_many_arguments)]
fn prepared_spline<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    rz: Ring,
    c: &Correlation,
    at: usize,
    idx: &[u64],
    r: &[u64],
    slope: &[u64],
    icpt: &[u64],
) -> Result<(Vec<u64>, Vec<bool>), ProtocolError> {
    let n = idx.len();
    let (oh, tr) = (&c.onehot, &c.triples);
    let server = party.role == Role::Server;
    // One flight: the offsets δ = i − ρ and f = r − b.
    let fm: Vec<u64> = (0..n).map(|e| rz.sub(r[e], tr.b[at + e])).collect();
    let (delta, f) = onehot::open_offsets(party.ch, party.role, oh, at, idx, &fm, rz.bits)?;
    // Local: shares of A_i and of C_i + β through the one-hot vectors.
    let a_i: Vec<u64> = (0..n).map(|e| oh.dot(at + e, delta[e], slope)).collect();
    let c_i: Vec<u64> = (0..n).map(|e| oh.dot(at + e, delta[e], icpt)).collect();
    // One flight: g = A_i − a; then A_i·r = c + g·b + f·a + g·f (the last by the server).
    let gm: Vec<u64> = (0..n).map(|e| rz.sub(a_i[e], tr.a[at + e])).collect();
    let g = open(party.ch, party.role, &vec![rz.bits; n], &gm)?;
    let u = (0..n)
        .map(|e| {
            let k = at + e;
            let g = g[e];
            let mut v = tr.c[k]
                .wrapping_add(g.wrapping_mul(tr.b[k]))
                .wrapping_add(f[e].wrapping_mul(tr.a[k]))
                .wrapping_add(c_i[e]);
            if server {
                v = v.wrapping_add(g.wrapping_mul(f[e]));
            }
            rz.reduce(v)
        })
        .collect();
    // The index carry c_s = 1{i_S + i_C ≥ N}: a millionaires' on s bits.
    let s = oh.size.trailing_zeros();
    let cs = if s == 0 {
        vec![false; n]
    } else {
        cmp::carry(party, s, cmp::cheapest_digit_bits(s), idx)?
    };
    Ok((u, cs))
}
