//! The costs of the non-linear layers on silent OT, composed from [`super::primitives`] step by
//! step as the runtime's protocols run them (`runtime/src/protocols/{gelu, softmax, layernorm,
//! inverse, max, argmax, topk}.rs`, whose module docs give each step). Flights are the client's:
//! the sum of the steps', less one wherever a step begins in the direction the previous one
//! ended in ([`Bits::then`]). Sources in `docs/cost-model.md`.

use super::primitives::{
    b2a, carry_arith, carry_arith_with, comparison, cot, cross_term, extend_nonnegative,
    headroom_truncations, lut, millionaire, mux, opening, ot_1_of_n, product, reveal,
    row_digit_bits, square, truncation, DEFAULT_DIGIT_BITS,
};
use super::{log2_ceil, Bits, Edge, Sizes};
use crate::fixed::convert::{gelu_from_plan, layernorm_from_plan, softmax_from_plan};
use crate::fixed::semantics::InvTables;

/// Index bits of the spline table of a reciprocal or inverse square root
/// (`fixed::semantics::inverse::INV_INDEX_BITS`).
pub const INV_TABLE_BITS: u64 = crate::fixed::semantics::inverse::INV_INDEX_BITS as u64;
/// The wide ring W of the inverse power and of LayerNorm's row statistics.
const WIDE: u64 = 64;

/// What the cost of an inverse power depends on: its tables' widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvShape {
    /// `B`: inputs below `2^B`.
    pub in_bits: u64,
    /// `R`: the carries' width.
    pub carry_bits: u64,
    /// Whether the position's carry (`R₂ > 0`) is computed beside the segment's.
    pub two_carries: bool,
    /// `G`: the final shift.
    pub out_shift: u64,
}

impl InvShape {
    /// The shape of the plan's tables.
    pub fn of(t: &InvTables) -> InvShape {
        InvShape {
            in_bits: u64::from(t.in_bits),
            carry_bits: u64::from(t.index_shift()),
            two_carries: t.pos_shift() > 0,
            out_shift: u64::from(t.out_shift),
        }
    }

    /// A shape for inputs below `2^in_bits` when the tables cannot be built (a malformed plan):
    /// 8 index bits and a shift of 34.
    pub fn generic(in_bits: u64) -> InvShape {
        let b = in_bits.clamp(2, 62);
        InvShape {
            in_bits: b,
            carry_bits: b.saturating_sub(1 + INV_TABLE_BITS),
            two_carries: true,
            out_shift: 34,
        }
    }
}

/// The reciprocal or inverse square root of `rows` positive values (`fixed::semantics::inverse`,
/// runtime `inverse::inv_pow`), over W = Z_2^64, all rows in the same steps: the leading bit by
/// `B − 1` DReLUs per row, the mantissa by one multiplexer call of `B` values per row, the
/// segment and position carries in arithmetic shares, the lookup of two 64-bit tables of `2^T`
/// entries, the spline's product, the scale by a second multiplexer call and a truncation of a
/// non-negative value with headroom. Its comparisons take the digit width of
/// [`row_digit_bits`] for their count; otherwise the flights do not grow with the rows.
pub fn inverse_root(t: InvShape, rows: u64) -> Bits {
    if rows == 0 {
        return Bits::ZERO;
    }
    let b = t.in_bits.max(2);
    let leading_count = rows.saturating_mul(b - 1);
    let leading = millionaire(b, row_digit_bits(b as u32, leading_count)).times(leading_count);
    let select = mux(WIDE).times(rows.saturating_mul(b));
    let r = t.carry_bits;
    let carries = if r == 0 {
        Bits::ZERO
    } else {
        let count = rows.saturating_mul(1 + u64::from(t.two_carries));
        carry_arith_with(r, row_digit_bits(r as u32, count), WIDE).times(count)
    };
    let table = Bits::new(2 * (1 << INV_TABLE_BITS) * WIDE, 2 * INV_TABLE_BITS, 2)
        .edges(Edge::Send, Edge::Recv)
        .times(rows);
    let s = t.out_shift;
    let scale = headroom_truncations(WIDE, &[s], row_digit_bits(s as u32, rows)).times(rows);
    leading
        .then_by_last_sender(select)
        .then(carries)
        .then(table)
        .then(product(WIDE).times(rows))
        .then_by_last_sender(select)
        .then(scale)
}

/// GELU of one element (CipherGPT Algorithm 1 on the plan's spline, runtime `gelu`): the piece
/// carry on w bits and its B2A; the two private lookups (each party rotates its table: `2^s`
/// messages of m bits, the server's with the index carry's bit), or prepared, two openings
/// and the index carry; the spline's carry on `frac` bits; three COTs in one call; the two
/// signs (MSBs over Z_2^(ℓ−K)); two multiplexers.
pub fn gelu(l: u64, g: &crate::plan::Gelu) -> Bits {
    let t = gelu_from_plan(g);
    let m = u64::from(t.spline_range().3);
    let (f, s) = (u64::from(g.frac), u64::from(g.pieces_log2));
    let k = u64::from(g.alpha_log2 + 1 + g.frac);
    let w = k.saturating_sub(s);
    let piece = comparison(w).then_by_last_sender(b2a(m.max(l.saturating_sub(w))));
    let spline = if g.prepared {
        gelu_prepared_spline(m, s)
    } else {
        // The client's lookup (it rotates: it receives the server's choices, sends), then the
        // server's (the client chooses, receives).
        let n = 1u64 << s.min(30);
        Bits::new(n * (m + 1) + s, n * m + s, 3).edges(Edge::Recv, Edge::Recv)
    };
    let batch = Bits::new(l + (l - m + f) + (l - k), 3, 2).edges(Edge::Send, Edge::Recv);
    let signs = comparison(l - k - 1).times(2);
    piece
        .then(spline)
        .then(comparison(f))
        .then(batch)
        .then(signs)
        .then(mux(l).times(2))
}

/// Words (of 64 bits) a GELU call's lookups may hold, over all lanes: 2·n·N for n elements of
/// N pieces (the rotator's messages and ciphertexts), 256 MiB.
pub const GELU_CALL_WORDS: u64 = 1 << 25;

/// Elements per GELU call for `2^pieces_log2` pieces: the executor (runtime `exec`) runs a longer
/// input in slices of this many, one after the other, each with its flights. 131,072 at the
/// default 128 pieces: a GPT-2-small prefill of up to 42 tokens makes one call per layer, of 64
/// tokens two (six at the former 2^16).
pub fn gelu_slice(pieces_log2: u32) -> u64 {
    ((GELU_CALL_WORDS / 2) >> pieces_log2.min(24)).max(1)
}

/// `elements` GELUs as the executor runs them: in slices of [`gelu_slice`], one after the other.
pub fn gelu_layer(l: u64, g: &crate::plan::Gelu, elements: u64) -> Bits {
    let one = gelu(l, g);
    let slices = elements.div_ceil(gelu_slice(g.pieces_log2)).max(1);
    Bits {
        rounds: one.repeated(slices).rounds,
        ..one.times(elements)
    }
}

/// The prepared GELU's lookup and product over Z_2^m, online: the openings of the index's
/// offset (s bits) and of r − b (m bits), then of A_i − a, and the index carry (a
/// millionaires' on s bits).
pub fn gelu_prepared_spline(m: u64, s: u64) -> Bits {
    opening(s + m).then(opening(m)).then(comparison(s))
}

/// Bits of the offsets of a table from its smallest entry, plus the zero msb.
fn offset_bits(t: &[i64]) -> u64 {
    let lo = t.iter().copied().min().unwrap_or(0);
    let hi = t.iter().copied().max().unwrap_or(0);
    let span = (hi - lo) as u128;
    u64::from(128 - span.leading_zeros()) + 1
}

/// One level in groups of four over `n` candidates (runtime `max::quad_level`): its comparisons
/// (six per full group, one or three for a last group of 2 or 3) and its groups (a single last
/// candidate passes up without one).
fn quad_level(n: u64) -> (u64, u64) {
    let (full, rest) = (n / 4, n % 4);
    (
        (6 * full).saturating_add(rest * rest.saturating_sub(1) / 2),
        full + u64::from(rest >= 2),
    )
}

/// A group's winner selected from its comparison bits: two `(64 choose 1)`-OTs of `msg`-bit
/// messages, one each way (the client's choices, the server's messages and choices, the
/// client's messages).
fn quad_select(msg: u64) -> Bits {
    let ots = ot_1_of_n(64, msg).times(2);
    Bits::new(ots.server, ots.client, 3).edges(Edge::Send, Edge::Send)
}

/// The row maximum (runtime `max::row_max`) over `rows` rows of the given `lengths` (each
/// `count` times): per level every row's candidates in groups of four (the last group of 2 or 3,
/// a single one passes up), six comparisons on ℓ − 1 bits per full group, and two
/// `(64 choose 1)`-OTs of ℓ-bit messages per group; per level the comparisons' flights and 3,
/// the selection begun by the comparisons' last sender. Begun by the server; `.swapped()` is
/// the maximum begun by the client (runtime `max::row_max_from`).
pub fn row_max(l: u64, lengths: &[(u64, u64)]) -> Bits {
    let compare = comparison(l - 1);
    let select = quad_select(l);
    let (mut comps, mut groups, mut depth) = (0u64, 0u64, 0u64);
    for &(len, count) in lengths {
        let (mut n, mut levels) = (len, 0);
        while n > 1 {
            let (c, g) = quad_level(n);
            comps = comps.saturating_add(count.saturating_mul(c));
            groups = groups.saturating_add(count.saturating_mul(g));
            n = n.div_ceil(4);
            levels += 1;
        }
        depth = depth.max(levels);
    }
    if depth == 0 {
        return Bits::ZERO;
    }
    // The comparisons' last sender begins the selection (runtime `max::quad_level`).
    let level = compare.then_by_last_sender(select);
    Bits {
        rounds: level.repeated(depth).rounds,
        ..compare.times(comps).then(select.times(groups))
    }
}

/// Softmax over the causal score rows of `heads` heads (runtime `softmax`; its module doc lists
/// the steps): the row maximum; per entry the digit carry, the two lookups (prepared: the
/// digits' offsets and a triple's openings) and their product, the truncation and clip
/// comparisons in one batch with their B2A, multiplexer and extension; per row Z's extension
/// and the reciprocal; per entry the normalising product and its truncate-and-reduce.
pub fn softmax(l: u64, s: &crate::plan::Softmax, sizes: Sizes) -> Bits {
    let heads = u64::from(s.heads.max(1));
    let entries = heads.saturating_mul(sizes.visible());
    let row_count = heads.saturating_mul(sizes.rows);
    if entries == 0 {
        return Bits::ZERO;
    }
    let longest = sizes.positions();
    let (lo, fe) = (u64::from(s.lo_bits), u64::from(s.frac_exp));
    let hi = u64::from(s.hi_bits);
    let k = fe + u64::from(s.frac_out) + u64::from(s.recip_guard);
    let shift = fe + u64::from(s.recip_guard);
    let den_bits = 64 - u64::from((longest << fe).leading_zeros());
    let w2 = (k + 2).max(den_bits + 2);
    let w1 = 2 * fe + 2;
    let (wh, wl) = (offset_bits(&s.exp_hi), offset_bits(&s.exp_lo));
    let (wx, wy) = (wh.min(wl), wh.max(wl));
    let m_r = k - fe + 2;
    // Row r of each head sees past + r + 1 positions.
    let lengths: Vec<(u64, u64)> = (0..sizes.rows)
        .map(|r| (sizes.past + r + 1, heads))
        .collect();
    // Begun by the client (runtime `max::row_max_from`): the attention product's truncation
    // before it ends with the client's flight, the digit carry after it begins with the server.
    let max = row_max(l, &lengths).swapped();
    let digits = carry_arith(lo, l - lo);
    let exp = if s.prepared {
        opening(hi + lo).then(opening(2 * w1))
    } else {
        let tables = lut(1 << hi, wh).alongside(lut(1 << lo, wl));
        let prod = cot(w1 - wy).then(cross_term(w1, wx).times(2));
        tables.then(prod)
    };
    let kc = fe.max(l - lo - 1);
    let clip = comparison(kc)
        .times(2)
        .then(b2a(fe + 2))
        .then(mux(fe + 2))
        .then(extend_nonnegative(fe + 2, w2));
    let per_entry = digits.then(exp).then(clip).times(entries);
    let recip_shape = softmax_from_plan(s)
        .recip_tables()
        .map_or(InvShape::generic(k + 1), |t| InvShape::of(&t));
    let recip = extend_nonnegative(w2, WIDE)
        .times(row_count)
        .then(inverse_root(recip_shape, row_count));
    let norm = if s.prepared {
        opening(2 * w2)
    } else {
        cross_term(w2, m_r).times(2)
    }
    .then(carry_arith(shift, w2 - shift))
    .then(extend_nonnegative(w2 - shift, l))
    .times(entries);
    max.then(per_entry).then(recip).then(norm)
}

/// LayerNorm normalisation of `rows` rows of `n` (runtime `layernorm`): x extended to W; d's two
/// truncations (by r1 and r1 + r2) within W's margin in one batch; the squares (prepared: an
/// opening); per row the inverse square root; the row-scalar product (prepared: an opening)
/// and its truncate-and-reduce by f_ρ into the plan's ring.
pub fn layernorm(l: u64, p: &crate::plan::LayerNorm, rows: u64, n: u64) -> Bits {
    let elements = rows.saturating_mul(n);
    if elements == 0 {
        return Bits::ZERO;
    }
    let (r1, r2) = (u64::from(p.r1), u64::from(p.r2));
    let shifts = if r2 == 0 { vec![r1] } else { vec![r1, r1 + r2] };
    let truncs = if r1 + r2 == 0 {
        Bits::ZERO
    } else {
        headroom_truncations(WIDE, &shifts, DEFAULT_DIGIT_BITS)
    };
    let (sq, scale) = if p.prepared {
        (opening(WIDE), opening(WIDE))
    } else {
        (square(WIDE), cross_term(WIDE, 30).times(2))
    };
    let f_rho = u64::from(p.f_rho);
    let per_element = extend_nonnegative(l, WIDE)
        .then(truncs)
        .then(sq)
        .times(elements);
    let shape = layernorm_from_plan(p).rsqrt_tables().map_or(
        InvShape::generic(u64::from(crate::fixed::semantics::inverse::INV_MAX_IN_BITS)),
        |t| InvShape::of(&t),
    );
    let per_row = inverse_root(shape, rows);
    let out = scale.then(carry_arith(f_rho, l)).times(elements);
    per_element.then(per_row).then(out)
}

/// Argmax over `v` logits (runtime `argmax`, every comparison on ℓ − 1 bits with 4-bit digits):
/// pairwise levels (a comparison, the value and the index multiplexed) down to [`ARGMAX_QUAD_FROM`] candidates,
/// then levels in groups of four (six comparisons and two pairs of `(64 choose 1)`-OTs per
/// group); then the index is revealed to the client.
pub fn argmax(l: u64, v: u64) -> Bits {
    if v == 0 {
        return Bits::ZERO;
    }
    let mut n = v;
    let mut total = Bits::ZERO;
    let pair = millionaire(l - 1, DEFAULT_DIGIT_BITS);
    while n > ARGMAX_QUAD_FROM {
        let pairs = n / 2;
        let step = pair.then(mux(l).times(2)).times(pairs);
        total = total.then(step);
        n -= pairs;
    }
    let quad = millionaire(l - 1, DEFAULT_DIGIT_BITS);
    // The index is selected beside the value: messages of 2ℓ bits.
    let select = quad_select(2 * l);
    while n > 1 {
        let (comps, groups) = quad_level(n);
        total = total.then(quad.times(comps).then_by_last_sender(select.times(groups)));
        n = n.div_ceil(4);
    }
    total.then(reveal(l))
}

/// The candidates below which argmax's levels go in groups of four (runtime
/// `argmax::QUAD_FROM`).
pub const ARGMAX_QUAD_FROM: u64 = 1024;

/// The token choice over `v` logits: [`argmax`] for K = 1, else [`top_k_sample`].
pub fn sample(l: u64, v: u64, s: &crate::plan::Sample) -> Bits {
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
pub fn top_k_sample(l: u64, v: u64, k: u64, s: &crate::plan::Sample) -> Bits {
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
                context: k,
            },
        )
    });
    let draw = comparison(63)
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
