//! Comparison: the millionaires' protocol on private ℓ-bit inputs and DReLU / MSB of a shared
//! value, with boolean (XOR) output shares. CrypTFlow2 §3 (Algorithm 1, "Π_MILL") and its use for
//! DReLU in §4.1; Cheetah §2.3 / §4 takes both unchanged (with silent OT underneath).
//!
//! **Millionaires** ([`millionaire`]). The server holds a, the client holds b, both < 2^k; the
//! output is XOR shares of 1{a > b}. Split both into q = ⌈k/m⌉ digits of m bits (m = 4 by
//! default). For every digit i the client draws random bits (g_i, e_i) and offers, in a 1-of-2^m
//! OT indexed by the server's digit v, the 2-bit message (g_i ⊕ 1{v > b_i}, e_i ⊕ 1{v = b_i}); the
//! server chooses v = a_i, so the two hold XOR shares of gt_i = 1{a_i > b_i} and eq_i = 1{a_i = b_i}.
//! (The server chooses because the step before a comparison most often ends with the server
//! sending: its choices continue that flight. [`millionaire_from`] lets the client begin instead,
//! the same protocol with the parties' parts exchanged, after a step the client sent last.)
//! The digits are then combined in a tree whose nodes each take up to four adjacent nodes
//! (lowest first: (gt_t, eq_t), t < a) to gt = gt_{a−1} ⊕ eq_{a−1}∧(gt_{a−2} ⊕ eq_{a−2}∧(…)),
//! eq = ∧ eq_t — the terms of each XOR are never both 1 — by one `(2^(2a) choose 1)`-OT (a
//! one-time truth table): the level's chooser chooses with its 2a shares, the other party (the
//! sender) offers for every choice c the (gt, eq) of its own shares ⊕ c, XORed with two fresh
//! bits that are its output shares. The choosers alternate, the client first (the leaves'
//! sender): a sender's output shares are its own masks, known when it sends, so it chooses in
//! the next level in that same flight ([`tree_server_chooses`]). The eq of the lowest node is
//! never used, so the lowest group takes 2a − 1 bits and gives gt alone. Each level has as few levels after it as groups of four allow
//! ([`tree_groups`]: 4 digits take 1 level, 8 or 16 take 2; the pairwise tree took 2, 3, 4), and
//! all its nodes share one OT call.
//!
//! **DReLU / MSB** ([`msb`], [`drelu`]). For x = x_S + x_C mod 2^ℓ, msb(x) = msb(x_S) ⊕ msb(x_C) ⊕
//! carry, with carry = 1{x_S mod 2^(ℓ−1) + x_C mod 2^(ℓ−1) ≥ 2^(ℓ−1)} = 1{a > b} for the server's
//! a = x_S mod 2^(ℓ−1) and the client's b = 2^(ℓ−1) − 1 − x_C mod 2^(ℓ−1): one millionaires' on
//! ℓ − 1 bits. DReLU(x) = 1{x ≥ 0 as a signed value} = 1 ⊕ msb(x).
//!
//! **Cost** per comparison of k-bit inputs, with q = ⌈k/m⌉ digits, λ = 128:
//! - leaves: q 1-of-2^m OTs of 2-bit messages (Naor–Pinkas, [`crate::crypto::one_of_n`]):
//!   q·(m·λ + 2^m·2) bits;
//! - tree: per level and node one 1-of-N OT, N = 2^(2a) of the level's widest node (the lowest
//!   2^(2a−1)), of 2-bit messages (1-bit when the lowest node is the level's only one): log₂N
//!   choices (1 bit each on silent OT, λ on IKNP) and N·2 bits ([`tree_level`]).
//!
//! DReLU at ℓ = 37 (k = 36, m = 6, q = 6: groups 2, 2, 2, then a root of 3): 6·(768 + 128)
//! bits of leaves and 3·(4λ + 32) + 5λ + 32 bits of tree on IKNP. Flights: 2 (leaf OTs) + 1
//! per tree level (2 levels for q = 6 or 9; 3 for q = 17). The last flight is the server's for
//! an odd number of levels ([`last_sender`]); the step after a comparison begins with it.
//!
//! **Security** (semi-honest). The server's view of the leaves is its 1-of-N OT output
//! (g_i ⊕ …, e_i ⊕ …), one-time padded by the client's fresh random bits g_i, e_i, and the OT's
//! other ciphertexts, hidden by the OT (128-bit). The client receives only the OT receiver's
//! choice corrections (masked by the random OTs' choices). In the tree likewise, each level
//! with its own chooser: the chooser receives one entry of each node's table, padded by the
//! sender's two fresh bits, and the sender the chooser's choice corrections. So every message
//! is masked by fresh randomness or hidden by OT, and each party's output share is uniform on
//! its own.

use rand::RngCore;

use super::b2a::b2a_by;
use super::shares::Ring;
use super::{Party, ProtocolError};
use crate::crypto::pack::mask;
use crate::crypto::Prg;
use crate::net::{Channel, Role};

// The digit width, the tree's shape and the bytes that choose the width are the cost model's
// (`plan::cost`), so that its estimates and these protocols agree.
pub use ciphergpt_compiler::plan::cost::{
    cheapest_digit_bits, levels, millionaire_bits, row_digit_bits, tree_groups, tree_level,
    tree_server_chooses, tree_server_sends_last, DEFAULT_DIGIT_BITS, MAX_DIGIT_BITS, TREE_ARITY,
};

/// XOR shares of the carry 1{v_S + v_C ≥ 2^k} for this party's `v` (< 2^k, higher bits ignored):
/// one millionaires' on k bits with m-bit digits (server a = v_S, client b = 2^k − 1 − v_C).
pub fn carry<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    k: u32,
    m: u32,
    v: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    let mk = if k == 0 { 0 } else { mask(k) };
    let input: Vec<u64> = v
        .iter()
        .map(|&x| match party.role {
            Role::Server => x & mk,
            Role::Client => mk - (x & mk),
        })
        .collect();
    millionaire(party, k, m, &input)
}

/// [`carry`] with a width per element: 1{v_S + v_C ≥ 2^(k_i)} for every element, by one
/// millionaires' on the widest k with each element's k_i low bits shifted up to it (which keeps
/// its carry), so in the flights of that one comparison.
pub fn carry_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    widths: &[u32],
    m: u32,
    v: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    carry_each_from(party, Role::Server, widths, m, v)
}

/// [`carry_each`] begun by `first` ([`millionaire_from`]).
pub fn carry_each_from<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    widths: &[u32],
    m: u32,
    v: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    let Some((k, input)) = carry_inputs(party.role, widths, m, v)? else {
        return Ok(Vec::new());
    };
    millionaire_from(party, first, k, m, &input)
}

/// [`carry_each`] with additive output shares over `out` ([`millionaire_arith`]: the last tree
/// level and the conversion in one 1-out-of-8 OT, 2 flights fewer than a B2A after it).
pub fn carry_arith_each<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    widths: &[u32],
    m: u32,
    out: Ring,
    v: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    let Some((k, input)) = carry_inputs(party.role, widths, m, v)? else {
        return Ok(Vec::new());
    };
    millionaire_arith(party, k, m, out, &input)
}

/// The millionaires' width and inputs of [`carry_each`] (None for no elements): each element's
/// k_i low bits shifted up to the widest k, the client's complemented (b = 2^k − 1 − v_C).
fn carry_inputs(
    role: Role,
    widths: &[u32],
    m: u32,
    v: &[u64],
) -> Result<Option<(u32, Vec<u64>)>, ProtocolError> {
    if widths.len() != v.len() {
        return Err(ProtocolError::Invalid(format!(
            "carry: {} widths for {} values",
            widths.len(),
            v.len()
        )));
    }
    let Some(&k) = widths.iter().max() else {
        return Ok(None);
    };
    check_digits(k, m)?;
    let mk = if k == 0 { 0 } else { mask(k) };
    let input = v
        .iter()
        .zip(widths)
        .map(|(&x, &w)| {
            let up = if w == 0 { 0 } else { (x & mask(w)) << (k - w) };
            match role {
                Role::Server => up,
                Role::Client => mk - up,
            }
        })
        .collect();
    Ok(Some((k, input)))
}

/// The party that sends the last flight of a millionaires' on `bits`-bit inputs with m-bit
/// digits (its tree down to `top` nodes; the leaves alone for one digit): its output shares are
/// its own masks, so it chooses first in the step after it, in that flight. The client when
/// there is no comparison (no flight to continue).
pub fn last_sender(bits: u32, m: u32, top: usize) -> Role {
    last_sender_from(Role::Server, bits, m, top)
}

/// [`last_sender`] of a millionaires' begun by `first` ([`millionaire_from`]).
pub fn last_sender_from(first: Role, bits: u32, m: u32, top: usize) -> Role {
    if bits == 0 || m == 0 {
        return Role::Client;
    }
    let q = bits.div_ceil(m) as usize;
    // With the server first, the server sends last after an odd number of tree levels.
    if tree_server_sends_last(tree_groups(q, top).len()) == (first == Role::Server) {
        Role::Server
    } else {
        Role::Client
    }
}

fn check_digits(bits: u32, m: u32) -> Result<(), ProtocolError> {
    if bits > 64 {
        return Err(ProtocolError::Invalid(format!(
            "comparison width {bits} is over 64 bits"
        )));
    }
    if !(1..=MAX_DIGIT_BITS).contains(&m) {
        return Err(ProtocolError::Invalid(format!(
            "digit width {m} is not in 1..={MAX_DIGIT_BITS}"
        )));
    }
    Ok(())
}

/// Millionaires' protocol: the server's `mine` is a, the client's is b (each value < 2^bits,
/// 0 ≤ bits ≤ 64); returns this party's XOR share of 1{a > b} per element. `m` is the digit
/// width (see [`DEFAULT_DIGIT_BITS`]).
pub fn millionaire<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    bits: u32,
    m: u32,
    mine: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    millionaire_from(party, Role::Server, bits, m, mine)
}

/// [`millionaire`] whose first flight is `first`'s: it chooses the leaves (with its digits) and
/// the odd tree levels, the other party offers the leaves and chooses the even levels. The
/// server first is [`millionaire`]; the client first is the same protocol with the parties'
/// parts exchanged (the same bytes, each direction's the other's), for a comparison after a
/// step whose last flight was the client's (a product truncation after a prepared or
/// attention product), which then continues that flight.
pub fn millionaire_from<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    bits: u32,
    m: u32,
    mine: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    check_inputs(bits, m, mine)?;
    let n = mine.len();
    if bits == 0 || n == 0 {
        return Ok(vec![false; n]);
    }
    let q = bits.div_ceil(m) as usize;
    let (gt, eq) = leaves(party, first, bits, m, mine)?;
    Ok(combine(party, first, n, q, 1, gt, eq)?.0)
}

/// Additive shares over `out` of 1{a > b} for the server's a and the client's b (as
/// [`millionaire`]): the tree stops at its last pair (gt_hi, eq_hi, gt_lo), and one
/// 1-out-of-8 OT turns gt = gt_hi ⊕ eq_hi·gt_lo into arithmetic shares directly — the two terms
/// are never both 1, so gt = gt_hi + eq_hi·gt_lo as integers. The tree's last sender chooses
/// (its shares are its masks, so its choices leave with its tables); the other party offers,
/// for each of the chooser's 3 bits c′, (its bits ⊕ c′ put in that formula) − r with r fresh,
/// and keeps r. That is the root's node OT and a B2A's COT in one, one flight after the tree
/// (the tree below the pair takes groups of four, [`tree_groups`] with 2 nodes left). One
/// digit (no tree): [`b2a_by`] of the leaf, chosen by the client (the leaves' sender).
pub fn millionaire_arith<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    bits: u32,
    m: u32,
    out: Ring,
    mine: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    check_inputs(bits, m, mine)?;
    let n = mine.len();
    if bits == 0 || n == 0 {
        return Ok(vec![0; n]);
    }
    let q = bits.div_ceil(m) as usize;
    if q == 1 {
        let gt = millionaire(party, bits, m, mine)?;
        return b2a_by(party, last_sender(bits, m, 1), out, &gt);
    }
    let (gt, eq) = leaves(party, Role::Server, bits, m, mine)?;
    let (gt, eq) = combine(party, Role::Server, n, q, 2, gt, eq)?;
    // Per element: (gt_lo, gt_hi) = gt[2i..2i + 2], eq_hi = eq[2i + 1].
    let own =
        |i: usize| gt[2 * i + 1] as u32 | (eq[2 * i + 1] as u32) << 1 | (gt[2 * i] as u32) << 2;
    const N: usize = 8;
    // The tree's last sender knows its shares first: it chooses.
    if party.role != last_sender(bits, m, 2) {
        let pads = out.random(&mut Prg::from_entropy(), n);
        let mut msgs = Vec::with_capacity(n * N);
        for (i, &r) in pads.iter().enumerate() {
            let s = own(i);
            msgs.extend((0..N as u32).map(|c| {
                let x = s ^ c;
                let val = (x & 1) + ((x >> 1) & (x >> 2) & 1);
                out.sub(val as u64, r)
            }));
        }
        party.ot.sender.send_1_of_n(party.ch, &msgs, N, out.bits)?;
        Ok(pads)
    } else {
        let choices: Vec<u32> = (0..n).map(own).collect();
        Ok(party
            .ot
            .receiver
            .recv_1_of_n(party.ch, &choices, N, out.bits)?)
    }
}

fn check_inputs(bits: u32, m: u32, mine: &[u64]) -> Result<(), ProtocolError> {
    check_digits(bits, m)?;
    if bits > 0 && mine.iter().any(|&v| v & !mask(bits) != 0) {
        return Err(ProtocolError::Invalid(format!(
            "a comparison input is not below 2^{bits}"
        )));
    }
    Ok(())
}

/// The leaves of a millionaires' on `bits`-bit inputs with m-bit digits: XOR shares of
/// gt[i·q + k] = 1{a_k > b_k} and eq[i·q + k] = 1{a_k = b_k} for digit k (k = 0 lowest), by one
/// 1-out-of-2^m OT per digit: `first` chooses with its digit, and the other party offers, for
/// every value v of that digit, the 2-bit (gt, eq) of v against its own digit, masked by fresh
/// g, e (its output shares). The server (a) first: v = a_k against b_k; the client (b) first:
/// a_k against v = b_k.
fn leaves<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    bits: u32,
    m: u32,
    mine: &[u64],
) -> Result<(Vec<bool>, Vec<bool>), ProtocolError> {
    let n = mine.len();
    let q = bits.div_ceil(m) as usize;
    let nmsg = 1usize << m;
    let dmask = (1u64 << m) - 1;
    let mut gt = vec![false; n * q];
    let mut eq = vec![false; n * q];
    if party.role != first {
        let mut rng = Prg::from_entropy();
        let mut msgs = vec![0u64; n * q * nmsg];
        for i in 0..n {
            for k in 0..q {
                let r = rng.next_u32();
                let (g, e) = (r & 1 == 1, r & 2 == 2);
                gt[i * q + k] = g;
                eq[i * q + k] = e;
                let own = (mine[i] >> (k as u32 * m)) & dmask;
                let base = (i * q + k) * nmsg;
                for v in 0..nmsg as u64 {
                    // (a, b) = (v, own) when the server chooses, (own, v) when the client does.
                    let (a, b) = if party.role == Role::Client {
                        (v, own)
                    } else {
                        (own, v)
                    };
                    msgs[base + v as usize] = (g ^ (a > b)) as u64 | (((e ^ (a == b)) as u64) << 1);
                }
            }
        }
        party.ot.sender.send_1_of_n(party.ch, &msgs, nmsg, 2)?;
    } else {
        let choices: Vec<u32> = mine
            .iter()
            .flat_map(|&a| (0..q).map(move |k| ((a >> (k as u32 * m)) & dmask) as u32))
            .collect();
        let got = party.ot.receiver.recv_1_of_n(party.ch, &choices, nmsg, 2)?;
        for (j, v) in got.into_iter().enumerate() {
            gt[j] = v & 1 == 1;
            eq[j] = v & 2 == 2;
        }
    }
    Ok((gt, eq))
}

/// The tree over `cnt` nodes per element (`gt[i·cnt + k]`, `eq[i·cnt + k]`, k = 0 lowest), level
/// by level in the groups of [`tree_groups`], until `top` nodes are left (1: the comparison; 2:
/// its last pair). A group of a nodes is combined by one `(N choose 1)`-OT, the chooser choosing
/// with its shares of the group's bits (the lowest group's lowest eq is never used, so it is
/// left out), the sender offering, for each choice c, the table of (gt, eq) of its own bits ⊕ c,
/// masked by fresh random bits that are its output shares. All groups of a level share one OT
/// call (N is the level's widest group's). The leaves' offerer chooses in the even levels,
/// `first` (their chooser) in the odd ones (with the server first: [`tree_server_chooses`]): the
/// chooser of a level is the sender of the one below, whose shares are its own masks, so its
/// choices leave in the flight of its tables.
fn combine<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    n: usize,
    mut cnt: usize,
    top: usize,
    mut gt: Vec<bool>,
    mut eq: Vec<bool>,
) -> Result<(Vec<bool>, Vec<bool>), ProtocolError> {
    for (j, groups) in tree_groups(cnt, top).into_iter().enumerate() {
        let (ots, n_msgs, out) = tree_level(&groups);
        let chooses = tree_server_chooses(j) == (party.role == first);
        let n_msgs = n_msgs as usize;
        let next = groups.len();
        // Each group's first node and its bits of this party's shares, element-major.
        let mut firsts = Vec::with_capacity(next);
        let mut first = 0;
        for &a in &groups {
            firsts.push(first);
            first += a;
        }
        let own = |i: usize, g: usize| node_bits(&gt, &eq, i * cnt + firsts[g], groups[g], g == 0);
        let mut ngt = vec![false; n * next];
        let mut neq = vec![false; n * next];
        let joined: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (0..next).map(move |g| (i, g)))
            .filter(|&(_, g)| groups[g] > 1)
            .collect();
        if !chooses {
            let tables: Vec<Vec<u8>> = (0..next).map(|g| node_table(groups[g], g == 0)).collect();
            let mut rng = Prg::from_entropy();
            let mut msgs = Vec::with_capacity(joined.len() * n_msgs);
            for &(i, g) in &joined {
                let (s, r) = (own(i, g), rng.next_u32() & 3);
                let t = &tables[g];
                let width = t.len() - 1;
                msgs.extend((0..n_msgs).map(|c| u64::from(t[(c ^ s) & width] ^ r as u8)));
                ngt[i * next + g] = r & 1 == 1;
                neq[i * next + g] = r & 2 == 2;
            }
            if ots > 0 {
                party
                    .ot
                    .sender
                    .send_1_of_n(party.ch, &msgs, n_msgs, out as u32)?;
            }
        } else {
            let choices: Vec<u32> = joined.iter().map(|&(i, g)| own(i, g) as u32).collect();
            let got = if ots > 0 {
                party
                    .ot
                    .receiver
                    .recv_1_of_n(party.ch, &choices, n_msgs, out as u32)?
            } else {
                Vec::new()
            };
            for (&(i, g), v) in joined.iter().zip(got) {
                ngt[i * next + g] = v & 1 == 1;
                neq[i * next + g] = v & 2 == 2;
            }
        }
        // A group of one node passes up unchanged.
        for i in 0..n {
            for (g, &a) in groups.iter().enumerate() {
                if a == 1 {
                    ngt[i * next + g] = gt[i * cnt + firsts[g]];
                    neq[i * next + g] = eq[i * cnt + firsts[g]];
                }
            }
        }
        gt = ngt;
        eq = neq;
        cnt = next;
    }
    Ok((gt, eq))
}

/// A group's bits of one party's shares, from node `at` on, `a` nodes: node t's gt at bit 2t and
/// eq at bit 2t + 1, or, in the lowest group (which skips its lowest eq), gt_0 at bit 0 and node
/// t ≥ 1 at bits 2t − 1 and 2t.
fn node_bits(gt: &[bool], eq: &[bool], at: usize, a: usize, lowest: bool) -> usize {
    let skip = usize::from(lowest);
    (0..a).fold(0, |acc, t| {
        let g = usize::from(gt[at + t]) << (2 * t - usize::from(t > 0) * skip);
        let e = if lowest && t == 0 {
            0
        } else {
            usize::from(eq[at + t]) << (2 * t + 1 - skip)
        };
        acc | g | e
    })
}

/// The (gt, eq) of a group of `a` nodes for every value of its bits (laid out as
/// [`node_bits`]): gt = gt_{a−1} ∨ eq_{a−1}∧(gt_{a−2} ∨ …), eq = ∧ eq_t; bit 0 gt, bit 1 eq.
fn node_table(a: usize, lowest: bool) -> Vec<u8> {
    let width = 2 * a - usize::from(lowest);
    (0..1usize << width)
        .map(|v| {
            let skip = usize::from(lowest);
            let (mut g, mut e) = (false, true);
            for t in 0..a {
                let gt = (v >> (2 * t - usize::from(t > 0) * skip)) & 1 == 1;
                let eq = !(lowest && t == 0) && (v >> (2 * t + 1 - skip)) & 1 == 1;
                // Node t is above the nodes before it.
                g = gt || (eq && g);
                e = e && eq;
            }
            u8::from(g) | u8::from(e) << 1
        })
        .collect()
}

/// XOR shares of msb(x) for shared x ∈ Z_2^ℓ (`x` is this party's share).
pub fn msb<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    msb_with(party, ring, DEFAULT_DIGIT_BITS, x)
}

/// [`msb`] with digit width `m`.
pub fn msb_with<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    m: u32,
    x: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    msb_from(party, Role::Server, ring, m, x)
}

/// [`msb_with`] whose millionaires' `first` begins ([`millionaire_from`]).
pub fn msb_from<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    first: Role,
    ring: Ring,
    m: u32,
    x: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    let k = ring.bits - 1;
    let low = mask(k.max(1)) * (k > 0) as u64;
    let input: Vec<u64> = x
        .iter()
        .map(|&v| match party.role {
            Role::Server => v & low,
            Role::Client => low - (v & low),
        })
        .collect();
    let carry = millionaire_from(party, first, k, m, &input)?;
    Ok(x.iter().zip(carry).map(|(&v, c)| ring.msb(v) ^ c).collect())
}

/// XOR shares of DReLU(x) = 1{x ≥ 0} (signed lift of x ∈ Z_2^ℓ).
pub fn drelu<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    drelu_with(party, ring, DEFAULT_DIGIT_BITS, x)
}

/// [`drelu`] with digit width `m`.
pub fn drelu_with<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    m: u32,
    x: &[u64],
) -> Result<Vec<bool>, ProtocolError> {
    let mut s = msb_with(party, ring, m, x)?;
    if party.role == Role::Server {
        s.iter_mut().for_each(|b| *b = !*b);
    }
    Ok(s)
}
