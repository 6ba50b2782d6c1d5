//! Maximum of each row of a shared matrix with ragged rows, by a tournament of comparisons and
//! selections. CrypTFlow2 §4 (Maxpool: a maximum by DReLU and MUX) and CipherGPT §VII-C (step 1
//! of softmax: x′_i = x_i − max(x), per row of the masked attention scores); Cheetah §2.5.2
//! takes the same blueprint. [`super::argmax`] is the pairwise tournament carrying an index
//! beside each value (the crate-private `tournament` serves it).
//!
//! **Row maximum** ([`row_max`], issue 16: fewer levels). Every level puts each row's
//! candidates in groups of four (the row's last group may hold 2 or 3; a single last candidate
//! passes up), so a row of n takes ⌈log₄ n⌉ levels, the whole matrix ⌈log₄ max n⌉. A level is
//! ONE msb batch of every group's pairwise comparisons, 1{a_j > a_i} = msb(a_i − a_j)
//! ([`cmp::msb_with`]), and ONE selection: the winner a_0 + Σ_k ind_k·(a_k − a_0), where ind_k
//! picks the leftmost maximum (a_k beats every candidate to its left strictly and none to its
//! right) and is a function of the six comparison bits g = s ⊕ c. Two 1-out-of-64 OTs
//! ([`crate::crypto::one_of_n`]), one each way, give it: the server offers, for every c′, the
//! message Σ_k ind_k(s ⊕ c′)·D_k,S − r (D_k = a_k − a_0, r fresh) and the client picks its c;
//! the client does the same with its D_k,C and the server picks its s. A level costs one
//! comparison batch and 3 flights of selection, as one level of the pairwise tournament, for
//! twice the reduction. The comparisons' last sender picks first (its choices leave in its last
//! flight); [`row_max_from`] begins the comparisons with either party, and with the client the
//! whole maximum is the same protocol with the parties' parts exchanged.
//!
//! **Pairwise tournament** (`tournament`, argmax). At each level the candidates of every row
//! are paired (0, 1), (2, 3), … (an odd last one passes up unchanged) and for each pair (a, b):
//! gt = 1{b > a} = msb(a − b) as XOR shares, then the winner a + gt·(b − a) by one multiplexer
//! ([`mux::mux`]). The pairs of all rows at one level go into ONE msb call and ONE mux call. A
//! payload carried beside the values (the argmax index) is selected by the same mux call, its
//! differences appended to the values' (2 × pairs elements, the bits repeated). Ties keep the
//! left candidate (gt = 0), so the payload that wins is that of the leftmost maximum in the tree
//! order (= the smallest index, see [`super::argmax`]).
//!
//! **Precondition** (not checkable on shares; it is what the compiler's ring guarantees with its
//! two margin bits): every entry, read signed, lies in [−2^(ℓ−2), 2^(ℓ−2)). Then a − b lies in
//! (−2^(ℓ−1), 2^(ℓ−1)) and never wraps, so msb(a − b) is exactly 1{a < b}; the winners stay in the
//! range. Outside it the result is unspecified (no error, no panic).
//!
//! **Cost.** With M(ℓ − 1) the millionaires' on ℓ − 1 bits ([`cmp`], at the digit width with the
//! fewest bytes for the row maximum, `cmp::cheapest_digit_bits`: 6 bits at ℓ = 35 to 38, 3 tree
//! levels; 4-bit digits for argmax):
//! - row maximum, per level and group of g: g(g − 1)/2 comparisons and two 1-out-of-64 OTs of
//!   ℓ-bit messages (6λ + 64ℓ bits each way); flights per level: the msb's (2 leaf OTs + 2 per
//!   tree level) and 3 (C → S choices; S → C messages and the server's choices; C → S
//!   messages). A row of 256 takes 4 levels instead of 8.
//! - pairwise tournament: a row of n entries takes exactly n − 1 comparisons and n − 1
//!   multiplexed elements, M(ℓ − 1) + 2(λ + ℓ) bits each (plus 2(λ + ℓ) per payload); with
//!   4-bit digits at ℓ = 38 (q = 10, A = 14) 1,176.5 bytes per comparison on IKNP. Flights per
//!   level: the msb's and the mux's 3.
//!
//! On IKNP the triples of each msb add 2 flights; on silent OT they take none. The channel
//! merges the flights where one call ends and the next begins in the same direction.
//!
//! **Security** (semi-honest). Between the calls each party computes only on its own shares
//! (differences, additions), and each level is one msb call and one selection, whose views are
//! simulatable from the party's inputs and outputs ([`cmp`]: every message masked by fresh triple
//! shares or pads, or hidden by the OT; [`mux`]: COT corrections masked by pads the receiver
//! cannot compute; the 1-out-of-64 OTs: the receiver learns only its chosen message, which is
//! masked by the sender's fresh r, and the sender learns nothing of the choice (128-bit)). Their outputs are fresh XOR or additive shares, uniform on their own, so by
//! sequential composition nothing is revealed: not the comparison bits, not which entry wins,
//! not the maximum. The row lengths and the number of rows are public (they fix the message
//! sizes).

use super::shares::Ring;
use super::{cmp, mux};
use super::{Party, ProtocolError};
use crate::crypto::Prg;
use crate::net::{Channel, Role};

/// Shares of the maximum of each row; `x` is the concatenation of the rows (this party's
/// shares), `lens` their lengths (each ≥ 1, sum = x.len()). Precondition: every entry, read
/// signed, lies in [−2^(ℓ−2), 2^(ℓ−2)) (see the module doc). No rows: no output.
pub fn row_max<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
    lens: &[usize],
) -> Result<Vec<u64>, ProtocolError> {
    row_max_from(party, Role::Server, ring, x, lens)
}

/// [`row_max`] begun by `first`: every level's comparisons begin with it
/// ([`cmp::millionaire_from`]) and their last sender begins the selection, so the whole
/// maximum is the same protocol with the parties' parts exchanged when `first` is the client
/// (softmax begins so: the client sends the last flight of the attention product's
/// truncation before it, and the step after the maximum begins with the server).
pub fn row_max_from<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    ring: Ring,
    x: &[u64],
    lens: &[usize],
) -> Result<Vec<u64>, ProtocolError> {
    check_rows(x.len(), lens)?;
    // The digit width with the fewest bytes, which also has no more tree levels than 4-bit
    // digits (6 bits for 34-bit differences: 3 levels where 4-bit digits take 4).
    let digits = cmp::cheapest_digit_bits(ring.bits - 1);
    let shape = Shape {
        digits,
        quad_from: usize::MAX,
        first,
    };
    tournament(party, ring, shape, x, lens, None).map(|(v, _)| v)
}

/// How a [`tournament`] plays: the millionaires' digit width, and the longest row from which on
/// its levels take groups of four (longer rows go pairwise first: a group's selection sends
/// 64 messages each way, cheap in flights but not in bytes for very long rows).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub digits: u32,
    pub quad_from: usize,
    /// The party that begins the comparisons of the levels in groups of four (the pairwise
    /// levels begin with the server).
    pub first: Role,
}

/// The tournament of every row of `x` (rows of lengths `lens`, already checked: each ≥ 1, sum =
/// x.len()), optionally carrying `payload` (same layout as `x`): returns this party's shares of
/// each row's winner and of the winner's payload (empty without a payload). Each level is
/// pairwise ([`pair_level`]) while the longest row is above `shape.quad_from`, then in groups
/// of four ([`quad_level`]); both keep the leftmost maximum.
pub(crate) fn tournament<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    shape: Shape,
    x: &[u64],
    lens: &[usize],
    payload: Option<&[u64]>,
) -> Result<(Vec<u64>, Vec<u64>), ProtocolError> {
    if let Some(p) = payload {
        if p.len() != x.len() {
            return Err(ProtocolError::Invalid(format!(
                "row_max: {} payload entries for {} values",
                p.len(),
                x.len()
            )));
        }
    }
    let reduce = |v: &[u64]| v.iter().map(|&e| ring.reduce(e)).collect::<Vec<u64>>();
    let mut level = Level {
        values: reduce(x),
        payload: payload.map(reduce),
        lens: lens.to_vec(),
    };
    while let Some(&longest) = level.lens.iter().max().filter(|&&l| l > 1) {
        level = if longest > shape.quad_from {
            pair_level(party, ring, shape.digits, &level)?
        } else {
            quad_level(party, shape.first, ring, shape.digits, &level)?
        };
    }
    Ok((level.values, level.payload.unwrap_or_default()))
}

/// The candidates of one tournament level: values, optional payloads, row lengths.
struct Level {
    values: Vec<u64>,
    payload: Option<Vec<u64>>,
    lens: Vec<usize>,
}

/// One pairwise level: one msb call on every pair's a − b, one mux call on b − a (and the
/// payload's b − a) under the same bits; an odd last candidate passes up.
fn pair_level<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    digits: u32,
    level: &Level,
) -> Result<Level, ProtocolError> {
    let (cur, pay, lens) = (&level.values, level.payload.as_ref(), &level.lens);
    let pairs: usize = lens.iter().map(|&l| l / 2).sum();
    // a − b for every pair of every row, in row order.
    let mut diff = Vec::with_capacity(pairs);
    let mut off = 0;
    for &l in lens {
        diff.extend((0..l / 2).map(|p| ring.sub(cur[off + 2 * p], cur[off + 2 * p + 1])));
        off += l;
    }
    // gt = 1{b > a} = msb(a − b): the difference never wraps under the precondition.
    let gt = cmp::msb_with(party, ring, digits, &diff)?;
    // Selected: b − a, then (with a payload) the payload's b − a, under the same bits.
    let mut bits = gt;
    let mut sel: Vec<u64> = diff.iter().map(|&d| ring.neg(d)).collect();
    if let Some(pv) = pay {
        bits.extend_from_within(..);
        let mut off = 0;
        for &l in lens {
            sel.extend((0..l / 2).map(|p| ring.sub(pv[off + 2 * p + 1], pv[off + 2 * p])));
            off += l;
        }
    }
    let sel = mux::mux(party, ring, &bits, &sel)?;
    // Winners: a + gt·(b − a); an odd last candidate passes up.
    let mut next = Vec::new();
    let mut next_pay = pay.map(|_| Vec::new());
    let (mut off, mut j) = (0, 0);
    for &l in lens {
        for p in 0..l / 2 {
            next.push(ring.add(cur[off + 2 * p], sel[j + p]));
            if let (Some(np), Some(pv)) = (next_pay.as_mut(), pay) {
                np.push(ring.add(pv[off + 2 * p], sel[pairs + j + p]));
            }
        }
        if l % 2 == 1 {
            next.push(cur[off + l - 1]);
            if let (Some(np), Some(pv)) = (next_pay.as_mut(), pay) {
                np.push(pv[off + l - 1]);
            }
        }
        j += l / 2;
        off += l;
    }
    Ok(Level {
        values: next,
        payload: next_pay,
        lens: lens.iter().map(|&l| l.div_ceil(2)).collect(),
    })
}

/// The pairs (i, j), i < j, of a group of four, in the order of the selection index's bits.
const QUAD_PAIRS: [(usize, usize); 6] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];

/// The candidate of a group of `g` (2 to 4) that wins given the comparison bits `bits` (bit p is
/// 1{a_j > a_i} for QUAD_PAIRS\[p\] = (i, j)): the leftmost maximum, the one that beats every
/// candidate to its left strictly and no candidate to its right.
fn quad_winner(g: usize, bits: u32) -> usize {
    let gt = |i: usize, j: usize| {
        let p = QUAD_PAIRS.iter().position(|&q| q == (i, j)).unwrap_or(0);
        (bits >> p) & 1 == 1
    };
    (0..g)
        .find(|&k| (0..k).all(|i| gt(i, k)) && (k + 1..g).all(|j| !gt(k, j)))
        .unwrap_or(0)
}

/// One level in groups of four: every row's candidates grouped (the last group of a row may
/// hold 2 or 3; a single last candidate passes up).
///
/// All pairwise comparisons of all groups go into one msb batch (bit 1{a_j > a_i} = msb(a_i −
/// a_j), exact under the precondition). The winner a_0 + Σ_k ind_k·(a_k − a_0), with ind_k a
/// function of the six comparison bits g = s ⊕ c (s the server's XOR shares, c the client's),
/// comes from two 1-out-of-64 OTs, one each way: the server offers, for every c′, the message
/// Σ_k ind_k(s ⊕ c′)·D_k,S − r (D_k = a_k − a_0, r fresh), and the client picks c; the client
/// offers the same on its D_k,C and the server picks s. The two outputs with the senders' r are
/// shares of the selected difference; a payload's difference is selected by a second instance
/// with the same choice. So a level costs one comparison batch and the 3 flights of a
/// multiplexer, where the pairwise tournament needs two of each for the same reduction.
fn quad_level<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    ring: Ring,
    digits: u32,
    level: &Level,
) -> Result<Level, ProtocolError> {
    let (cur, pay, lens) = (&level.values, level.payload.as_ref(), &level.lens);
    // Groups: (first index, size ≥ 2); the single last candidates pass up.
    let mut groups = Vec::new();
    let mut off = 0;
    for &l in lens {
        let mut at = 0;
        while l - at >= 2 {
            let g = (l - at).min(4);
            groups.push((off + at, g));
            at += g;
        }
        off += l;
    }
    let mut diff = Vec::new();
    for &(start, g) in &groups {
        for &(i, j) in QUAD_PAIRS.iter().filter(|&&(_, j)| j < g) {
            diff.push(ring.sub(cur[start + i], cur[start + j]));
        }
    }
    let gt = cmp::msb_from(party, first, ring, digits, &diff)?;
    let mut mine = Vec::with_capacity(groups.len());
    let mut at = 0;
    for &(_, g) in &groups {
        // Each bit at its pair's position in QUAD_PAIRS; the pairs a smaller group lacks are 0.
        let mut bits = 0u32;
        for (p, _) in QUAD_PAIRS.iter().enumerate().filter(|(_, &(_, j))| j < g) {
            bits |= (gt[at] as u32) << p;
            at += 1;
        }
        mine.push(bits);
    }
    let mut sources = vec![cur.as_slice()];
    sources.extend(pay.map(|p| p.as_slice()));
    // The comparisons' last sender knows its shares first: it chooses first.
    let chooser = cmp::last_sender_from(first, ring.bits - 1, digits, 1);
    let sel = select_winners(party, chooser, ring, &sources, &groups, &mine)?;
    // Winners in row order: each group's a_0 plus its selected difference; singles pass up.
    // A row of l keeps ⌈l/4⌉: ⌊l/4⌋ full groups, then a smaller group or a single.
    let pick = |src: &[u64], part: usize| {
        let mut next = Vec::new();
        let (mut off, mut q) = (0, 0);
        for &l in lens {
            let mut at = 0;
            while l - at >= 2 {
                next.push(ring.add(src[off + at], sel[part * groups.len() + q]));
                at += groups[q].1;
                q += 1;
            }
            if at < l {
                next.push(src[off + at]);
            }
            off += l;
        }
        next
    };
    Ok(Level {
        values: pick(cur, 0),
        payload: pay.map(|p| pick(p, 1)),
        lens: lens.iter().map(|&l| l.div_ceil(4)).collect(),
    })
}

/// Shares of Σ_k ind_k·(a_k − a_0) for every group and every source (the values, then the
/// payload: `sources[s]` laid out as the candidates) by the two 1-out-of-64 OTs of
/// [`quad_level`], source-major; `mine` holds this party's XOR shares of each group's
/// comparison bits, the choice of every source's instance.
fn select_winners<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    chooser: Role,
    ring: Ring,
    sources: &[&[u64]],
    groups: &[(usize, usize)],
    mine: &[u32],
) -> Result<Vec<u64>, ProtocolError> {
    const N: usize = 64;
    let mut rng = Prg::from_entropy();
    let count = sources.len() * groups.len();
    let pads = ring.random(&mut rng, count);
    let mut msgs = Vec::with_capacity(count * N);
    let mut choices = Vec::with_capacity(count);
    for (src, pads) in sources.iter().zip(pads.chunks(groups.len().max(1))) {
        for ((&(first, g), &own), &r) in groups.iter().zip(mine).zip(pads) {
            let d = |k: usize| ring.sub(src[first + k], src[first]);
            msgs.extend((0..N as u32).map(|other| ring.sub(d(quad_winner(g, own ^ other)), r)));
        }
        choices.extend_from_slice(mine);
    }
    // `chooser`'s choices first, then the other's messages and choices, then its messages.
    let got = if party.role == chooser {
        let got = party
            .ot
            .receiver
            .recv_1_of_n(party.ch, &choices, N, ring.bits)?;
        party.ot.sender.send_1_of_n(party.ch, &msgs, N, ring.bits)?;
        got
    } else {
        party.ot.sender.send_1_of_n(party.ch, &msgs, N, ring.bits)?;
        party
            .ot
            .receiver
            .recv_1_of_n(party.ch, &choices, N, ring.bits)?
    };
    Ok(got
        .into_iter()
        .zip(pads)
        .map(|(u, r)| ring.add(u, r))
        .collect())
}

/// An error unless every length is ≥ 1 and they sum to `n`.
fn check_rows(n: usize, lens: &[usize]) -> Result<(), ProtocolError> {
    if let Some(i) = lens.iter().position(|&l| l == 0) {
        return Err(ProtocolError::Invalid(format!(
            "row_max: row {i} is empty (every row needs at least one entry)"
        )));
    }
    let total = lens.iter().try_fold(0usize, |s, &l| s.checked_add(l));
    if total != Some(n) {
        return Err(ProtocolError::Invalid(format!(
            "row_max: the row lengths sum to {} but there are {n} entries",
            total.map_or("more than usize::MAX".to_string(), |t| t.to_string())
        )));
    }
    Ok(())
}
