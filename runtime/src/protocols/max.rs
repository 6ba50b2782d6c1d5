//! Maximum of each row of a shared matrix with ragged rows, by a pairwise tournament of
//! comparisons and multiplexers. CrypTFlow2 §4 (Maxpool: a maximum by DReLU and MUX) and
//! CipherGPT §VII-C (step 1 of softmax: x′_i = x_i − max(x), per row of the masked attention
//! scores); Cheetah §2.5.2 takes the same blueprint. [`super::argmax`] is the same tournament
//! carrying an index beside each value ([`tournament`] serves both).
//!
//! **Protocol.** Every row is a list of candidates. At each level the candidates of every row are
//! paired (0, 1), (2, 3), … (an odd last one passes up unchanged) and for each pair (a, b):
//! gt = 1{b > a} = msb(a − b) as XOR shares ([`cmp::msb`]), then the winner
//! a + gt·(b − a) by one multiplexer ([`mux::mux`]); a − b and b − a are local. The pairs of all
//! rows at one level go into ONE msb call and ONE mux call, so a row of length n takes
//! ⌈log₂ n⌉ levels and the whole matrix ⌈log₂ max n⌉, however many rows it has; rows that are
//! done (one candidate left) take no part. A payload carried beside the values (the argmax
//! index) is selected by the same mux call, its differences appended to the values' (2 × pairs
//! elements, the bits repeated). Ties keep the left candidate (gt = 0), so the payload that
//! wins is that of the leftmost maximum in the tree order (= the smallest index, see
//! [`super::argmax`]).
//!
//! **Precondition** (not checkable on shares; it is what the compiler's ring guarantees with its
//! two margin bits): every entry, read signed, lies in [−2^(ℓ−2), 2^(ℓ−2)). Then a − b lies in
//! (−2^(ℓ−1), 2^(ℓ−1)) and never wraps, so msb(a − b) is exactly 1{a < b}; the winners stay in the
//! range. Outside it the result is unspecified (no error, no panic).
//!
//! **Cost.** A row of n entries takes exactly n − 1 comparisons and n − 1 multiplexed elements
//! (every comparison removes one candidate), whatever the pairing. Per comparison, with
//! M(ℓ − 1) the millionaires' on ℓ − 1 bits with m-bit digits ([`cmp`]: q = ⌈(ℓ−1)/m⌉ leaves of
//! mλ + 2^(m+1) bits, A = and_count(q) AND triples of 2λ bits and 4 opening bits each) and
//! 2(λ + ℓ) bits per MUX element: M(ℓ − 1) + 2(λ + ℓ) bits (plus 2(λ + ℓ) more per payload).
//! [`row_max`] takes the digit width with the fewest bytes on IKNP (`cmp::cheapest_digit_bits`:
//! 6 bits at ℓ = 35 to 38, q = 6 or 7 leaves in 3 tree levels where 4-bit digits take 4, so
//! 2 flights fewer per level); [`super::argmax`] keeps 4-bit digits. With 4-bit digits at
//! ℓ = 38 (q = 10, A = 14): 680 + 448 + 7 + 41.5 = 1,176.5 bytes per comparison, so
//! 255 × 1,176.5 = 300,007.5 bytes per row of 256 (1,171.9 bytes per element), plus IKNP's
//! padding to 128 OTs per call; measured exactly that over 256 rows of 256 (every level's batch
//! is a multiple of 128, so no padding), 96 flights from the server and 108 from the client
//! (before the row maximum took the cheapest digits). Flights:
//! ⌈log₂ max n⌉ × (msb flights + mux flights), msb being 2 (triples) + 2 (leaf OTs) + ⌈log₂ q⌉
//! exchanges (1 or 2 flights each, see [`super::shares::exchange`]) and mux 3; the channel
//! merges the flights where one call ends and the next begins in the same direction.
//!
//! **Security** (semi-honest). Between the calls each party computes only on its own shares
//! (differences, additions), and each level is one msb and one mux call, whose views are
//! simulatable from the party's inputs and outputs ([`cmp`]: every message masked by fresh triple
//! shares or pads, or hidden by the OT; [`mux`]: COT corrections masked by pads the receiver
//! cannot compute). Their outputs are fresh XOR or additive shares, uniform on their own, so by
//! sequential composition nothing is revealed: not the comparison bits, not which entry wins,
//! not the maximum. The row lengths and the number of rows are public (they fix the message
//! sizes).

use super::shares::Ring;
use super::{cmp, mux};
use crate::crypto::iknp::OtPair;
use crate::net::{Channel, NetError, Role};

/// Shares of the maximum of each row; `x` is the concatenation of the rows (this party's
/// shares), `lens` their lengths (each ≥ 1, sum = x.len()). Precondition: every entry, read
/// signed, lies in [−2^(ℓ−2), 2^(ℓ−2)) (see the module doc). No rows: no output.
pub fn row_max<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    x: &[u64],
    lens: &[usize],
) -> Result<Vec<u64>, NetError> {
    check_rows(x.len(), lens)?;
    // The digit width with the fewest bytes, which also has no more tree levels than 4-bit
    // digits (6 bits for 34-bit differences: 3 levels where 4-bit digits take 4).
    let digits = cmp::cheapest_digit_bits(ring.bits - 1);
    tournament(ot, ch, role, ring, digits, x, lens, None).map(|(v, _)| v)
}

/// An error unless every length is ≥ 1 and they sum to `n`.
fn check_rows(n: usize, lens: &[usize]) -> Result<(), NetError> {
    if let Some(i) = lens.iter().position(|&l| l == 0) {
        return Err(NetError::InvalidArgument(format!(
            "row_max: row {i} is empty (every row needs at least one entry)"
        )));
    }
    let total = lens.iter().try_fold(0usize, |s, &l| s.checked_add(l));
    if total != Some(n) {
        return Err(NetError::InvalidArgument(format!(
            "row_max: the row lengths sum to {} but there are {n} entries",
            total.map_or("more than usize::MAX".to_string(), |t| t.to_string())
        )));
    }
    Ok(())
}

/// The tournament of every row of `x` (rows of lengths `lens`, already checked: each ≥ 1, sum =
/// x.len()), optionally carrying `payload` (same layout as `x`): returns this party's shares of
/// each row's winner and of the winner's payload (empty without a payload). One msb (with
/// `digits`-bit digits) and one mux call per level.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tournament<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    ring: Ring,
    digits: u32,
    x: &[u64],
    lens: &[usize],
    payload: Option<&[u64]>,
) -> Result<(Vec<u64>, Vec<u64>), NetError> {
    if let Some(p) = payload {
        if p.len() != x.len() {
            return Err(NetError::InvalidArgument(format!(
                "row_max: {} payload entries for {} values",
                p.len(),
                x.len()
            )));
        }
    }
    let reduce = |v: &[u64]| v.iter().map(|&e| ring.reduce(e)).collect::<Vec<u64>>();
    let mut cur = reduce(x);
    let mut pay = payload.map(reduce);
    let mut lens = lens.to_vec();
    while lens.iter().any(|&l| l > 1) {
        let pairs: usize = lens.iter().map(|&l| l / 2).sum();
        // a − b for every pair of every row, in row order.
        let mut diff = Vec::with_capacity(pairs);
        let mut off = 0;
        for &l in &lens {
            diff.extend((0..l / 2).map(|p| ring.sub(cur[off + 2 * p], cur[off + 2 * p + 1])));
            off += l;
        }
        // gt = 1{b > a} = msb(a − b): the difference never wraps under the precondition.
        let gt = cmp::msb_with(ot, ch, role, ring, digits, &diff)?;
        // Selected: b − a, then (with a payload) the payload's b − a, under the same bits.
        let mut bits = gt;
        let mut sel: Vec<u64> = diff.iter().map(|&d| ring.neg(d)).collect();
        if let Some(pv) = &pay {
            bits.extend_from_within(..);
            let mut off = 0;
            for &l in &lens {
                sel.extend((0..l / 2).map(|p| ring.sub(pv[off + 2 * p + 1], pv[off + 2 * p])));
                off += l;
            }
        }
        let sel = mux::mux(ot, ch, role, ring, &bits, &sel)?;
        // Winners: a + gt·(b − a); an odd last candidate passes up.
        let next_len: usize = lens.iter().map(|&l| l.div_ceil(2)).sum();
        let mut next = Vec::with_capacity(next_len);
        let mut next_pay = pay.as_ref().map(|_| Vec::with_capacity(next_len));
        let (mut off, mut j) = (0, 0);
        for l in lens.iter_mut() {
            for p in 0..*l / 2 {
                next.push(ring.add(cur[off + 2 * p], sel[j + p]));
                if let (Some(np), Some(pv)) = (next_pay.as_mut(), pay.as_ref()) {
                    np.push(ring.add(pv[off + 2 * p], sel[pairs + j + p]));
                }
            }
            if *l % 2 == 1 {
                next.push(cur[off + *l - 1]);
                if let (Some(np), Some(pv)) = (next_pay.as_mut(), pay.as_ref()) {
                    np.push(pv[off + *l - 1]);
                }
            }
            j += *l / 2;
            off += *l;
            *l = l.div_ceil(2);
        }
        cur = next;
        pay = next_pay;
    }
    Ok((cur, pay.unwrap_or_default()))
}
