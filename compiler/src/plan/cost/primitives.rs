//! The protocol primitives' costs on silent OT, in bits per element and flights: what each
//! party sends and how many one-way flights the client sees (an exchange in which both send at
//! once counts 2, as the channel counts it). ℓ = ring bits. A COT with a chosen choice costs
//! its receiver one bit (the correction of a random choice), its sender the message; random
//! COTs (bit triples, pads) cost nothing online. Sources in `docs/cost-model.md`.

use super::{log2_ceil, Bits, Edge};

/// Bits of the OT security parameter λ, what one IKNP COT costs its receiver.
pub const IKNP_CHOICE_BITS: u64 = 128;

/// Default digit width m of the millionaires' protocol (CrypTFlow2's choice).
pub const DEFAULT_DIGIT_BITS: u32 = 4;

/// The most nodes one node of a millionaires' tree combines: one `(2^(2a) choose 1)`-OT.
pub const TREE_ARITY: usize = 4;

/// The shape of the tree that combines `q` digits down to `top` nodes (1: the comparison; 2: the
/// last pair of [`carry_arith`]): per level the group sizes, lowest first. Each level has as few
/// levels left after it as groups of up to [`TREE_ARITY`] allow, and within that as many groups
/// as possible (at least two nodes each but for a remainder), the larger ones lowest, since a
/// node's OT has 2^(2a) messages.
pub fn tree_groups(q: usize, top: usize) -> Vec<Vec<usize>> {
    let top = top.max(1);
    let mut out = Vec::new();
    let mut cnt = q;
    while cnt > top {
        let mut reach = top;
        while reach < cnt {
            reach *= TREE_ARITY;
        }
        let groups = cnt.div_ceil(2).min(reach / TREE_ARITY).max(top);
        let (base, extra) = (cnt / groups, cnt % groups);
        out.push((0..groups).map(|g| base + usize::from(g < extra)).collect());
        cnt = groups;
    }
    out
}

/// Tree levels (rounds of node OTs) for q digits.
pub fn levels(q: usize) -> usize {
    tree_groups(q, 1).len()
}

/// One level of a tree ([`tree_groups`]): its OTs (one per group of two or more), their
/// message count N (the level's widest node: the lowest group takes 2a − 1 choice bits, for it
/// needs no eq of its lowest node and gives none, the others 2a) and message bits (1 when the
/// lowest group is the only one, else gt and eq).
pub fn tree_level(groups: &[usize]) -> (u64, u64, u64) {
    let inputs = |(i, &a): (usize, &usize)| 2 * a as u64 - u64::from(i == 0);
    let ots = groups.iter().filter(|&&a| a > 1).count() as u64;
    let width = groups
        .iter()
        .enumerate()
        .filter(|(_, &a)| a > 1)
        .map(inputs)
        .max()
        .unwrap_or(0);
    let out = if groups.iter().skip(1).any(|&a| a > 1) {
        2
    } else {
        1
    };
    (ots, 1 << width, out)
}

/// Whether the server chooses in level `j` (0 lowest) of a millionaires' tree. The choosers
/// alternate, the leaves' sender (the client) first: a level's sender knows its output shares
/// (its fresh masks) as soon as it sends, so it chooses in the next level in the same flight,
/// and each level costs one flight instead of two. (The server chooses in the leaves: most
/// steps before a comparison end with the server sending, so the leaves' choices continue
/// that flight.)
pub fn tree_server_chooses(j: usize) -> bool {
    !j.is_multiple_of(2)
}

/// Whether the server sent the last step of a millionaires' whose tree has `depth` levels (the
/// leaves for 0): the party whose output shares are its own masks, so the one that can choose
/// in the step after it without waiting.
pub fn tree_server_sends_last(depth: usize) -> bool {
    !depth.is_multiple_of(2)
}

/// Bits the server and the client send in the tree of `q` digits down to `top` nodes, with
/// `choice_bits` per OT choice bit (1 on silent OT, λ on IKNP): per level the chooser's
/// choices and the sender's tables ([`tree_server_chooses`]).
pub fn tree_bits(q: usize, top: usize, choice_bits: u64) -> (u64, u64) {
    let levels = tree_groups(q, top);
    levels.iter().enumerate().fold((0, 0), |(s, c), (j, g)| {
        let (ots, n, out) = tree_level(g);
        let (tables, choices) = (ots * n * out, ots * log2_ceil(n) * choice_bits);
        if tree_server_chooses(j) {
            (s + choices, c + tables)
        } else {
            (s + tables, c + choices)
        }
    })
}

/// Bits of one millionaires' comparison on k-bit inputs with m-bit digits on IKNP (λ = 128):
/// q = ⌈k/m⌉ leaves of m·λ + 2^m·2 bits, and the tree's node OTs. The digit width is chosen
/// by it ([`cheapest_digit_bits`]).
pub fn millionaire_bits(k: u32, m: u32) -> u64 {
    if k == 0 {
        return 0;
    }
    let q = k.div_ceil(m) as u64;
    let (s, c) = tree_bits(q as usize, 1, IKNP_CHOICE_BITS);
    q * (m as u64 * IKNP_CHOICE_BITS + (2u64 << m)) + s + c
}

/// The digit width m ∈ 1..=6 that makes a millionaires' on k-bit inputs cheapest in bytes (ties:
/// fewer tree levels, then the smaller m), e.g. 4 for k = 8, 6 for k = 11 and 21, 5 for k = 15 and
/// 19. Wider digits cost the sender 2^m·m AES calls and 2^m message words per leaf: m = 7 saved
/// 7% of GELU's bytes but doubled its time, so the search stops at 6.
pub fn cheapest_digit_bits(k: u32) -> u32 {
    if k == 0 {
        return DEFAULT_DIGIT_BITS;
    }
    (1..=6u32)
        .min_by_key(|&m| (millionaire_bits(k, m), levels(k.div_ceil(m) as usize)))
        .unwrap_or(DEFAULT_DIGIT_BITS)
}

/// The widest digit of a millionaires' (its leaves are `(2^m choose 1)`-OTs).
pub const MAX_DIGIT_BITS: u32 = 8;
/// The most leaf messages (comparisons × leaves × 2^m) a batch may take at a digit width wider
/// than the cheapest: 2^20, 8 MiB of message words at the sender.
pub const WIDE_DIGIT_MESSAGES: u64 = 1 << 20;

/// The digit width of `count` comparisons on k bits made once per row (the inverse power's
/// leading bit, carries and scale): the fewest tree levels that digits of at most
/// [`MAX_DIGIT_BITS`] reach within [`WIDE_DIGIT_MESSAGES`] leaf messages, at the fewest bytes
/// among those widths; the cheapest width if no wider one saves a level. Few rows make these
/// comparisons cheap in bytes, so a level (2 flights) is worth more than the wider leaves.
pub fn row_digit_bits(k: u32, count: u64) -> u32 {
    let cheapest = cheapest_digit_bits(k);
    if k == 0 {
        return cheapest;
    }
    let depth = |m: u32| levels(k.div_ceil(m) as usize);
    let messages = |m: u32| count.saturating_mul(u64::from(k.div_ceil(m))) << m;
    (1..=MAX_DIGIT_BITS)
        .filter(|&m| m == cheapest || messages(m) <= WIDE_DIGIT_MESSAGES)
        .min_by_key(|&m| (depth(m), millionaire_bits(k, m)))
        .unwrap_or(cheapest)
}

/// One COT over Z_2^k with a chosen choice: k bits from the sender, the choice correction from
/// the receiver; 2 flights.
pub fn cot(k: u64) -> Bits {
    Bits::new(k, 1, 2).edges(Edge::Send, Edge::Recv)
}

/// `(n choose 1)`-OT of `msg` bits from `⌈log2 n⌉` COTs: the sender sends `n·msg`, the
/// receiver its `⌈log2 n⌉` choice corrections; 2 flights.
pub fn ot_1_of_n(n: u64, msg: u64) -> Bits {
    Bits::new(n.saturating_mul(msg), log2_ceil(n), 2).edges(Edge::Send, Edge::Recv)
}

/// Lookup of a secret-shared index in a public table of `entries` entries of `bits` bits: one
/// `(entries choose 1)`-OT (CipherGPT §II, F_LUT).
pub fn lut(entries: u64, bits: u64) -> Bits {
    ot_1_of_n(entries, bits)
}

/// The millionaires' protocol on k-bit inputs with m-bit digits (CrypTFlow2 Algorithm 1): q
/// leaf `(2^m choose 1)`-OTs of 2-bit messages (the server choosing, the client offering),
/// then a tree ([`tree_groups`]) whose nodes each combine up to [`TREE_ARITY`] digits by one
/// OT, one OT call and one flight per level.
pub fn millionaire(k: u64, m: u32) -> Bits {
    millionaire_to(k, m, 1)
}

/// [`millionaire`] whose tree stops at `top` nodes.
fn millionaire_to(k: u64, m: u32, top: usize) -> Bits {
    if k == 0 {
        return Bits::ZERO;
    }
    let q = k.div_ceil(u64::from(m));
    let (s, c) = tree_bits(q as usize, top, 1);
    let depth = tree_groups(q as usize, top).len();
    let last = if tree_server_sends_last(depth) {
        Edge::Recv
    } else {
        Edge::Send
    };
    // The server chooses the leaves (q·m choice bits), the client offers them (2^m two-bit
    // messages each).
    Bits::new(q * u64::from(m) + s, q * (2u64 << m) + c, 2 + depth as u64).edges(Edge::Recv, last)
}

/// A millionaires' on k bits at the cheapest digit width: the comparison of every layer
/// protocol (a carry, DReLU or MSB of a (k + 1)-bit value).
pub fn comparison(k: u64) -> Bits {
    millionaire(k, cheapest_digit_bits(k as u32))
}

/// A carry on k bits in arithmetic shares over Z_2^w: the millionaires' tree down to its last
/// pair, then one `(8 choose 1)`-OT of w-bit messages for the pair, chosen by the tree's last
/// sender (one flight more); with a single digit, the millionaires' and a B2A (chosen so too).
pub fn carry_arith(k: u64, w: u64) -> Bits {
    carry_arith_with(k, cheapest_digit_bits(k as u32), w)
}

/// [`carry_arith`] with m-bit digits.
pub fn carry_arith_with(k: u64, m: u32, w: u64) -> Bits {
    if k.div_ceil(u64::from(m)) <= 1 {
        return millionaire(k, m).then_by_last_sender(b2a(w));
    }
    millionaire_to(k, m, 2).then_by_last_sender(ot_1_of_n(8, w))
}

/// Multiplexer of an ℓ-bit value by a shared bit (SIRNN): one COT each way, the client's
/// first: it sends, receives (its message and the server's choice), sends. After a step it
/// is begun by that step's last sender ([`Bits::then_by_last_sender`], runtime `mux_by`).
pub fn mux(l: u64) -> Bits {
    Bits::new(l + 1, l + 1, 3).edges(Edge::Send, Edge::Send)
}

/// Boolean to arithmetic conversion into Z_2^ℓ: one COT over Z_2^ℓ.
pub fn b2a(l: u64) -> Bits {
    cot(l)
}

/// Truncation by `s` of an ℓ-bit value within the ring's margin, as the executor shifts every
/// product (`trunc_within_margin`): [`headroom_truncations`] with 4-bit digits.
pub fn truncation(l: u64, s: u64) -> Bits {
    if s == 0 {
        return Bits::ZERO;
    }
    headroom_truncations(l, &[s], DEFAULT_DIGIT_BITS)
}

/// Truncations of one ℓ-bit value by each of `shifts` (nonzero), with headroom (runtime
/// `trunc_headroom_each`): the carries of the low bits in one millionaires' batch on the widest
/// shift with m-bit digits, then per shift the wrap's and the carry's COTs (over Z_2^s and
/// Z_2^ℓ) in one call, chosen by the comparison's last sender.
pub fn headroom_truncations(l: u64, shifts: &[u64], m: u32) -> Bits {
    let (Some(&top), n) = (shifts.iter().max(), shifts.len() as u64) else {
        return Bits::ZERO;
    };
    let cots: u64 = shifts.iter().map(|s| s + l).sum();
    millionaire(top, m)
        .times(n)
        .then_by_last_sender(Bits::new(cots, 2 * n, 2).edges(Edge::Send, Edge::Recv))
}

/// Truncate-and-reduce of ℓ-bit values by `s` bits into Z_2^(ℓ−s) (SIRNN): the carry of the
/// low `s` bits in arithmetic shares.
pub fn truncate_reduce(l: u64, s: u64) -> Bits {
    if s == 0 {
        return Bits::ZERO;
    }
    carry_arith(s, l.saturating_sub(s))
}

/// Extension of a non-negative value with a known zero msb from Z_2^m to Z_2^n (Cheetah
/// §4.2.2): one COT over Z_2^(n−m).
pub fn extend_nonnegative(m: u64, n: u64) -> Bits {
    if n <= m {
        return Bits::ZERO;
    }
    cot(n - m)
}

/// One cross term of a Gilboa product over Z_2^ℓ with a `bits`-bit chooser, the client: COT j
/// over Z_2^(ℓ−j) for each of its bits.
pub fn cross_term(l: u64, bits: u64) -> Bits {
    let bits = bits.min(l);
    let holder: u64 = (0..bits).map(|j| l - j).sum();
    Bits::new(holder, bits, 2).edges(Edge::Send, Edge::Recv)
}

/// Product of two secret-shared ℓ-bit values: a cross term in each direction, the server's
/// choices first (the client receives, sends its messages and choices, receives).
pub fn product(l: u64) -> Bits {
    let c = cross_term(l, l);
    let each = c.server + c.client;
    Bits::new(each, each, 3).edges(Edge::Recv, Edge::Recv)
}

/// Square of a secret-shared value: one cross term, the server choosing.
pub fn square(l: u64) -> Bits {
    let c = cross_term(l, l);
    Bits::new(c.client, c.server, 2).edges(Edge::Recv, Edge::Send)
}

/// Reveal of an ℓ-bit value to the client: the server sends its share.
pub fn reveal(l: u64) -> Bits {
    Bits::new(l, 0, 1).edges(Edge::Recv, Edge::Recv)
}

/// Opening a shared value of `bits` bits to both parties (a step on a prepared correlation):
/// `bits` each way in one exchange (the client sends, then receives).
pub fn opening(bits: u64) -> Bits {
    Bits::new(bits, bits, 2).edges(Edge::Send, Edge::Recv)
}
