//! Puncturable PRF from GGM trees, punctured by OT: the sender holds every leaf of a tree, the
//! receiver every leaf but one, at an index of its choice that the sender does not learn.
//! Goldreich–Goldwasser–Micali (J. ACM 1986) for the tree; the puncturing by one 1-of-2 OT per
//! level is the distributed point-function / single-point COT step of Boyle, Couteau, Gilboa,
//! Ishai, Kohl, Scholl (CCS 2019, §4, "Π_PPRF"), also Ferret's SPCOT (Yang, Weng, Lan, Zhang,
//! Wang, CCS 2020, §3). It is the building block of the secret-shared shuffle
//! ([`crate::protocols::shuffle`], Chase–Ghosh–Poburinnaya, ASIACRYPT 2020, §4) and of silent
//! OT (issue 9).
//!
//! **Tree.** A length-doubling PRG G(s) = (G_0(s), G_1(s)) with G_b(s) = π_b(s) ⊕ s, π_0 and π_1
//! AES-128 under two public fixed keys (the 256 bits of π's expansion after those of
//! [`super::hash`]'s key), modelled as independent random permutations (the Matyas–Meyer–Oseas
//! construction, as Ferret's implementation uses). A tree on the domain [0, N) has depth
//! d = ⌈log₂N⌉, the root at level 0 and w_j = ⌈N / 2^(d−j)⌉ nodes at level j (the GGM tree of
//! 2^d leaves pruned to the nodes above its first N leaves); node i of level j has the children
//! 2i and 2i + 1 of level j + 1. The N leaves are the PRF's values. N = 1 is one leaf, the root.
//!
//! **Puncturing** ([`send`] / [`recv`], [`send_map`] / [`recv_map`]). The receiver chooses a
//! point α ∈ [0, N) per tree; α_j is bit d − j of α (level j's node on the path is α >> (d − j)).
//! For every level j = 1..d the sender computes the XOR of the left children K^j_0 (the nodes of
//! even index of level j) and of the right children K^j_1 (odd index), and the two are offered in
//! one chosen-message 1-of-2 OT of 128-bit messages ([`CotSender::send_ot`]); the receiver
//! chooses 1 − α_j, the side off its path. Level by level the receiver then knows every node of
//! level j − 1 but the path node p (none at j = 1: only the root, unknown), so it expands all of
//! them and finds the off-path child of p, the sibling of its path, as K^j_{1−α_j} ⊕ (XOR of the
//! other nodes of that side, all known); a sibling past w_j does not exist and is not needed. At
//! the end it holds every leaf but α's, which it sets to zero. Many trees go into one batch, of
//! any sizes, with one OT call for all their levels: [`TreeGroup`] lists them. A t-point PRF on
//! [t·N] is t trees, one point in each (the "regular" multi-point PPRF of Ferret and BCGIKS19 §5).
//!
//! **Phases and streaming.** The expansion needs no communication, so the sender's side splits
//! into [`expand_map`] (local) and [`send_sums`] (the OT), and the receiver's into
//! [`recv_siblings`] (the OT) and [`expand_punctured_map`] (local): a protocol can expand while it
//! waits for its peer ([`crate::protocols::shuffle`] does). A batch may hold more leaves than
//! memory should (the shuffle expands 2^16 trees of up to 2^10 leaves), so the map functions hand
//! the leaves of each group of trees to a closure and keep only its result, in parallel over the
//! groups (rayon).
//!
//! **Cost.** Per tree on [0, N): d = ⌈log₂N⌉ chosen-message OTs of 128-bit messages, 16 bytes
//! (IKNP) receiver → sender and 32 bytes sender → receiver each, 48·d bytes in all (plus IKNP's
//! padding of the batch to 128 OTs); 2 flights for the whole batch (receiver → sender, sender →
//! receiver). Work: one AES block per node below the root (about 2N), the same for the
//! receiver, and one block XOR per node for the level sums.
//!
//! **Security** (semi-honest). The sender receives only the IKNP message of the OT receiver
//! (PRG-masked), independent of the points. The receiver receives per level one OT, whose
//! unchosen message is masked by a pad it cannot compute (tweakable correlation-robust hash,
//! [`super::ot`]), and the chosen one, K^j_{1−α_j}, is the XOR of nodes it computes anyway once it
//! knows the sibling: its view is a function of the co-path nodes (the siblings of the path),
//! which GGM security makes pseudorandom and independent of every node on the path, the
//! punctured leaf included: given the view, the leaf at α is indistinguishable from uniform
//! (128-bit, with π_0, π_1 random permutations). The receiver's choices 1 − α_j are hidden from
//! the sender by the OT.

use std::cell::RefCell;
use std::sync::OnceLock;

use aes::Aes128;
use rayon::prelude::*;

use super::block::Block;
use super::iknp::{CotReceiver, CotSender};
use super::prg::{aes_encrypt_blocks, aes_from_block};
use crate::net::{Channel, NetError};

/// The public keys of π_0 and π_1: the 256 bits of π's hexadecimal expansion that follow the
/// 128 of [`super::hash`]'s fixed key (nothing up the sleeve).
const KEYS: [u128; 2] = [
    0xa409_3822_299f_31d0_082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377_be54_66cf_34e9_0c6c,
];

/// Largest tree depth accepted (domains of up to 2^20 leaves, 16 MiB per tree).
pub const MAX_DEPTH: u32 = 20;

/// Parents expanded per AES batch.
const BATCH: usize = 256;

fn keys() -> &'static [Aes128; 2] {
    static K: OnceLock<[Aes128; 2]> = OnceLock::new();
    K.get_or_init(|| {
        [
            aes_from_block(Block(KEYS[0])),
            aes_from_block(Block(KEYS[1])),
        ]
    })
}

/// ⌈log₂ n⌉ (0 for n ≤ 1): the depth of a tree on [0, n).
pub fn depth_of(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// One level of expansion in place: `nodes[..parents]` are the parents; afterwards
/// `nodes[..children]` are their first `children` children (2i and 2i + 1 for parent i, G_0 and
/// G_1), children ∈ {2·parents − 1, 2·parents}.
pub(crate) fn expand_level_in_place(nodes: &mut [Block], parents: usize, children: usize) {
    thread_local! {
        // Per-thread AES batches (left, right, parents): zeroing them per call would cost more
        // than expanding the small top levels.
        static SCRATCH: RefCell<[[Block; BATCH]; 3]> = const { RefCell::new([[Block::ZERO; BATCH]; 3]) };
    }
    let [k0, k1] = keys();
    SCRATCH.with_borrow_mut(|[left, right, par]| {
        // From the last parents down: children of [s, e) land in [2s, 2e), which only overlaps
        // parents already copied or already expanded.
        let mut e = parents;
        while e > 0 {
            let s = e.saturating_sub(BATCH);
            let n = e - s;
            par[..n].copy_from_slice(&nodes[s..e]);
            left[..n].copy_from_slice(&par[..n]);
            right[..n].copy_from_slice(&par[..n]);
            aes_encrypt_blocks(k0, &mut left[..n]);
            aes_encrypt_blocks(k1, &mut right[..n]);
            for i in 0..n {
                let c = 2 * (s + i);
                nodes[c] = left[i] ^ par[i];
                if c + 1 < children {
                    nodes[c + 1] = right[i] ^ par[i];
                }
            }
            e = s;
        }
    });
}

/// The XOR of the even-index and of the odd-index nodes.
fn side_sums(nodes: &[Block]) -> [Block; 2] {
    let mut s = [Block::ZERO; 2];
    for (i, &b) in nodes.iter().enumerate() {
        s[i & 1] ^= b;
    }
    s
}

/// The length-doubling PRG: (G_0(s), G_1(s)).
pub fn prg(s: Block) -> [Block; 2] {
    let mut n = [s, Block::ZERO];
    expand_level_in_place(&mut n, 1, 2);
    n
}

/// Nodes of level j of a tree on [0, n) of depth d: ⌈n / 2^(d−j)⌉.
fn width(n: usize, d: u32, j: u32) -> usize {
    n.div_ceil(1usize << (d - j))
}

/// Expand the tree of `root` on [0, leaves.len()) into `leaves` and write the level sums
/// (K^j_0, K^j_1) of levels j = 1..=d into `sums[j − 1]` (d = [`depth_of`] the domain size).
pub fn expand(root: Block, leaves: &mut [Block], sums: &mut [[Block; 2]]) {
    let n = leaves.len();
    let d = depth_of(n);
    debug_assert_eq!(sums.len(), d as usize);
    if n == 0 {
        return;
    }
    leaves[0] = root;
    for j in 1..=d {
        let w = width(n, d, j);
        expand_level_in_place(leaves, width(n, d, j - 1), w);
        sums[j as usize - 1] = side_sums(&leaves[..w]);
    }
}

/// The receiver's expansion of a tree on [0, leaves.len()): every leaf but the one at `point`,
/// which is set to zero, from `siblings[j − 1]` = K^j_{1−α_j} (the OT outputs of levels j = 1..=d).
pub fn expand_punctured(point: usize, siblings: &[Block], leaves: &mut [Block]) {
    let n = leaves.len();
    let d = depth_of(n);
    debug_assert_eq!(siblings.len(), d as usize);
    debug_assert!(point < n);
    if n == 0 {
        return;
    }
    leaves[0] = Block::ZERO;
    for j in 1..=d {
        let w = width(n, d, j);
        // The path node of level j − 1 holds zero: its children come out as garbage and are
        // overwritten below.
        expand_level_in_place(leaves, width(n, d, j - 1), w);
        let path = point >> (d - j);
        let sib = path ^ 1;
        if sib < w {
            let mut s = siblings[j as usize - 1];
            for i in ((sib & 1)..w).step_by(2) {
                if i != sib {
                    s ^= leaves[i];
                }
            }
            leaves[sib] = s;
        }
        leaves[path] = Block::ZERO;
    }
}

/// `trees` trees on [0, `leaves`) each, handed to the caller's closure together (a group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeGroup {
    pub trees: usize,
    pub leaves: usize,
}

impl TreeGroup {
    /// The depth ⌈log₂ leaves⌉ of the group's trees: OTs per tree.
    pub fn depth(&self) -> u32 {
        depth_of(self.leaves)
    }
}

fn check_groups(groups: &[TreeGroup], trees: usize, what: &str) -> Result<(), NetError> {
    if let Some(g) = groups
        .iter()
        .find(|g| g.trees > 0 && (g.leaves == 0 || g.depth() > MAX_DEPTH))
    {
        return Err(NetError::InvalidArgument(format!(
            "pprf: trees of {} leaves are outside 1..=2^{MAX_DEPTH}",
            g.leaves
        )));
    }
    let total = groups
        .iter()
        .try_fold(0usize, |s, g| s.checked_add(g.trees));
    if total != Some(trees) {
        return Err(NetError::InvalidArgument(format!(
            "pprf: the groups hold {} trees but there are {trees} {what}",
            total.map_or("more than usize::MAX".to_string(), |t| t.to_string())
        )));
    }
    Ok(())
}

/// First tree of every group.
fn offsets(groups: &[TreeGroup]) -> Vec<usize> {
    let mut off = Vec::with_capacity(groups.len());
    let mut t = 0;
    for g in groups {
        off.push(t);
        t += g.trees;
    }
    off
}

/// The OT index of the first level of every group (the OTs are tree-major, top level first) and
/// the number of OTs.
fn ot_offsets(groups: &[TreeGroup]) -> (Vec<usize>, usize) {
    let mut off = Vec::with_capacity(groups.len());
    let mut o = 0;
    for g in groups {
        off.push(o);
        o += g.trees * g.depth() as usize;
    }
    (off, o)
}

/// The OTs of a batch: Σ trees × depth.
pub fn ot_count(groups: &[TreeGroup]) -> usize {
    ot_offsets(groups).1
}

/// The sender's level sums of a batch, in OT order: what [`send_sums`] offers.
pub struct LevelSums(Vec<[Block; 2]>);

impl LevelSums {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The sender's local part: expands the tree of every root (`roots[t]` is tree t's, the trees of
/// the groups in order), hands each group's leaves (tree-major, `leaves` per tree) to `f` and
/// keeps its result. Returns `f`'s results in group order and the level sums for [`send_sums`].
pub fn expand_map<T, F>(
    groups: &[TreeGroup],
    roots: &[Block],
    f: F,
) -> Result<(Vec<T>, LevelSums), NetError>
where
    T: Send,
    F: Fn(usize, &[Block]) -> T + Sync,
{
    check_groups(groups, roots.len(), "roots")?;
    let first = offsets(groups);
    let (ot_first, n_ots) = ot_offsets(groups);
    // One leaf buffer per rayon job, reused across its groups (every leaf is overwritten).
    let results: Vec<(T, Vec<[Block; 2]>)> = groups
        .par_iter()
        .enumerate()
        .map_init(Vec::new, |leaves, (gi, g)| {
            let (n, d) = (g.leaves, g.depth() as usize);
            leaves.resize(g.trees * n, Block::ZERO);
            let mut sums = vec![[Block::ZERO; 2]; g.trees * d];
            for t in 0..g.trees {
                expand(
                    roots[first[gi] + t],
                    &mut leaves[t * n..(t + 1) * n],
                    &mut sums[t * d..(t + 1) * d],
                );
            }
            (f(gi, &leaves[..g.trees * n]), sums)
        })
        .collect();
    let mut msgs = vec![[Block::ZERO; 2]; n_ots];
    let mut out = Vec::with_capacity(results.len());
    for (gi, (r, sums)) in results.into_iter().enumerate() {
        msgs[ot_first[gi]..ot_first[gi] + sums.len()].copy_from_slice(&sums);
        out.push(r);
    }
    Ok((out, LevelSums(msgs)))
}

/// The sender's OT: offers the level sums, one chosen-message OT per level of every tree.
pub fn send_sums<C: Channel + ?Sized>(
    ot: &mut CotSender,
    ch: &mut C,
    sums: &LevelSums,
) -> Result<(), NetError> {
    if sums.0.is_empty() {
        return Ok(());
    }
    ot.send_ot(ch, &sums.0)
}

/// The receiver's OT: `points[t]` is the punctured leaf of tree t (the trees of the groups in
/// order); returns the sibling sums K^j_{1−α_j} in OT order, for [`expand_punctured_map`].
pub fn recv_siblings<C: Channel + ?Sized>(
    ot: &mut CotReceiver,
    ch: &mut C,
    groups: &[TreeGroup],
    points: &[usize],
) -> Result<Vec<Block>, NetError> {
    check_points(groups, points)?;
    let mut choices = Vec::with_capacity(ot_count(groups));
    let mut t = 0;
    for g in groups {
        let d = g.depth();
        for &a in &points[t..t + g.trees] {
            // Level j's choice: the side off the path, 1 − α_j.
            choices.extend((1..=d).map(|j| (a >> (d - j)) & 1 == 0));
        }
        t += g.trees;
    }
    if choices.is_empty() {
        return Ok(Vec::new());
    }
    ot.recv_ot(ch, &choices)
}

fn check_points(groups: &[TreeGroup], points: &[usize]) -> Result<(), NetError> {
    check_groups(groups, points.len(), "points")?;
    let mut t = 0;
    for g in groups {
        if let Some(k) = points[t..t + g.trees].iter().position(|&a| a >= g.leaves) {
            return Err(NetError::InvalidArgument(format!(
                "pprf: point {} of tree {} is outside its {} leaves",
                points[t + k],
                t + k,
                g.leaves
            )));
        }
        t += g.trees;
    }
    Ok(())
}

/// The receiver's local part: expands every tree but its punctured leaf (zero) from the sibling
/// sums of [`recv_siblings`] and hands each group's leaves to `f`. Returns `f`'s results in group
/// order.
pub fn expand_punctured_map<T, F>(
    groups: &[TreeGroup],
    points: &[usize],
    siblings: &[Block],
    f: F,
) -> Result<Vec<T>, NetError>
where
    T: Send,
    F: Fn(usize, &[Block]) -> T + Sync,
{
    check_points(groups, points)?;
    let first = offsets(groups);
    let (ot_first, n_ots) = ot_offsets(groups);
    if siblings.len() != n_ots {
        return Err(NetError::InvalidArgument(format!(
            "pprf: {} sibling sums for {n_ots} tree levels",
            siblings.len()
        )));
    }
    Ok(groups
        .par_iter()
        .enumerate()
        .map_init(Vec::new, |leaves, (gi, g)| {
            let (n, d) = (g.leaves, g.depth() as usize);
            leaves.resize(g.trees * n, Block::ZERO);
            for t in 0..g.trees {
                let o = ot_first[gi] + t * d;
                expand_punctured(
                    points[first[gi] + t],
                    &siblings[o..o + d],
                    &mut leaves[t * n..(t + 1) * n],
                );
            }
            f(gi, &leaves[..g.trees * n])
        })
        .collect())
}

/// The sender's side in one call: [`expand_map`] then [`send_sums`].
pub fn send_map<C, T, F>(
    ot: &mut CotSender,
    ch: &mut C,
    groups: &[TreeGroup],
    roots: &[Block],
    f: F,
) -> Result<Vec<T>, NetError>
where
    C: Channel + ?Sized,
    T: Send,
    F: Fn(usize, &[Block]) -> T + Sync,
{
    let (out, sums) = expand_map(groups, roots, f)?;
    send_sums(ot, ch, &sums)?;
    Ok(out)
}

/// The receiver's side in one call: [`recv_siblings`] then [`expand_punctured_map`].
pub fn recv_map<C, T, F>(
    ot: &mut CotReceiver,
    ch: &mut C,
    groups: &[TreeGroup],
    points: &[usize],
    f: F,
) -> Result<Vec<T>, NetError>
where
    C: Channel + ?Sized,
    T: Send,
    F: Fn(usize, &[Block]) -> T + Sync,
{
    let siblings = recv_siblings(ot, ch, groups, points)?;
    expand_punctured_map(groups, points, &siblings, f)
}

/// Every leaf of `roots.len()` trees on [0, `leaves`) (tree-major), after puncturing them for
/// the receiver ([`recv`]).
pub fn send<C: Channel + ?Sized>(
    ot: &mut CotSender,
    ch: &mut C,
    leaves: usize,
    roots: &[Block],
) -> Result<Vec<Block>, NetError> {
    let groups = [TreeGroup {
        trees: roots.len(),
        leaves,
    }];
    let v = send_map(ot, ch, &groups, roots, |_, l| l.to_vec())?;
    Ok(v.concat())
}

/// The receiver's leaves of `points.len()` trees on [0, `leaves`) (tree-major): every leaf but
/// the punctured one, which is zero.
pub fn recv<C: Channel + ?Sized>(
    ot: &mut CotReceiver,
    ch: &mut C,
    leaves: usize,
    points: &[usize],
) -> Result<Vec<Block>, NetError> {
    let groups = [TreeGroup {
        trees: points.len(),
        leaves,
    }];
    let v = recv_map(ot, ch, &groups, points, |_, l| l.to_vec())?;
    Ok(v.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;

    /// The tree by the definition: the full GGM tree of depth ⌈log₂n⌉ with the one-block PRG,
    /// cut to its first n leaves; and the level sums over the pruned levels.
    fn naive(root: Block, n: usize) -> (Vec<Block>, Vec<[Block; 2]>) {
        let d = depth_of(n);
        let mut level = vec![root];
        let mut sums = Vec::new();
        for j in 1..=d {
            level = level.iter().flat_map(|&s| prg(s)).collect();
            sums.push(side_sums(&level[..width(n, d, j)]));
        }
        level.truncate(n);
        (level, sums)
    }

    #[test]
    fn prg_is_mmo_under_two_keys() {
        let s = Block(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let [l, r] = prg(s);
        let mut a = [s];
        aes_encrypt_blocks(&keys()[0], &mut a);
        assert_eq!(l, a[0] ^ s);
        let mut b = [s];
        aes_encrypt_blocks(&keys()[1], &mut b);
        assert_eq!(r, b[0] ^ s);
        assert_ne!(l, r);
    }

    #[test]
    fn expansion_matches_definition_and_punctured_agrees() {
        let mut p = Prg::new(Block(5));
        for n in [
            1usize, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 100, 786, 1024, 2047,
        ] {
            let d = depth_of(n);
            assert!(n <= 1 << d && (d == 0 || n > 1 << (d - 1)));
            let root = p.block();
            let mut leaves = vec![Block::ZERO; n];
            let mut sums = vec![[Block::ZERO; 2]; d as usize];
            expand(root, &mut leaves, &mut sums);
            let (want, want_sums) = naive(root, n);
            assert_eq!(leaves, want, "n {n}");
            assert_eq!(sums, want_sums, "n {n}");
            for point in [0, n - 1, n / 2, (p.block().low() as usize) % n] {
                let sib: Vec<Block> = (1..=d)
                    .map(|j| sums[j as usize - 1][((point >> (d - j)) & 1) ^ 1])
                    .collect();
                let mut got = vec![Block::ONES; n];
                expand_punctured(point, &sib, &mut got);
                for i in 0..n {
                    let want = if i == point { Block::ZERO } else { leaves[i] };
                    assert_eq!(got[i], want, "n {n} point {point} leaf {i}");
                }
            }
        }
    }

    #[test]
    fn bad_groups_are_errors() {
        let g = [TreeGroup {
            trees: 2,
            leaves: 8,
        }];
        assert!(check_groups(&g, 3, "roots").is_err());
        let big = TreeGroup {
            trees: 1,
            leaves: (1 << 20) + 1,
        };
        assert!(check_groups(&[big], 1, "roots").is_err());
        let empty = TreeGroup {
            trees: 1,
            leaves: 0,
        };
        assert!(check_groups(&[empty], 1, "roots").is_err());
        assert!(check_groups(&g, 2, "roots").is_ok());
        assert!(check_points(&g, &[0, 8]).is_err());
        assert!(check_points(&g, &[0, 7]).is_ok());
        assert!(expand_punctured_map(&g, &[0, 7], &[Block::ZERO; 5], |_, _| ()).is_err());
    }
}
