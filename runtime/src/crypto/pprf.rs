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
//! construction, as Ferret's implementation uses). A tree of depth d has the root at level 0 and
//! 2^j nodes at level j; node i of level j has the children 2i and 2i + 1 of level j + 1; the
//! 2^d leaves are the PRF's values on [0, 2^d). Depth 0 is one leaf, the root.
//!
//! **Puncturing** ([`send`] / [`recv`], [`send_map`] / [`recv_map`]). The receiver chooses a
//! point α ∈ [0, 2^d) per tree; α_j is its j-th bit from the top (level j's node on the path is
//! α >> (d − j)). For every level j = 1..d the sender computes the XOR of the left children
//! K^j_0 (the nodes of even index of level j) and of the right children K^j_1 (odd index), and
//! the two are offered in one chosen-message 1-of-2 OT of 128-bit messages ([`CotSender::send_ot`]);
//! the receiver chooses 1 − α_j, the side off its path. Level by level the receiver then knows
//! every node of level j − 1 but the path node p (none at j = 1: only the root, unknown), so it
//! expands all of them and finds the off-path child of p, the sibling of its path, as
//! K^j_{1−α_j} ⊕ (XOR of the other nodes of that side, all known). At the end it holds every leaf
//! but α's, which [`recv`] sets to zero. Many trees go into one batch, of any depths, with one
//! OT call for all their levels: [`TreeGroup`] lists them. A t-point PRF on [t·2^d] is t trees,
//! one point in each (the "regular" multi-point PPRF of Ferret and BCGIKS19 §5).
//!
//! **Streaming.** A batch may hold more leaves than memory should ([`crate::protocols::shuffle`]
//! expands 2^16 trees of 2^10 leaves), so [`send_map`] and [`recv_map`] hand the leaves of each
//! group of trees to a closure and keep only its result, in parallel over the groups (rayon).
//!
//! **Cost.** Per tree of depth d: d chosen-message OTs of 128-bit messages, 16 bytes (IKNP)
//! receiver → sender and 32 bytes sender → receiver each, 48·d bytes in all; 2 flights for the
//! whole batch (receiver → sender, sender → receiver). Work: 2(2^d − 1) AES blocks to expand a
//! tree, the same for the receiver, and 2^d block XORs for the level sums.
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

/// Largest tree depth accepted (2^20 leaves, 16 MiB per tree).
pub const MAX_DEPTH: u32 = 20;

/// Parents expanded per AES batch.
const BATCH: usize = 64;

fn keys() -> &'static [Aes128; 2] {
    static K: OnceLock<[Aes128; 2]> = OnceLock::new();
    K.get_or_init(|| {
        [
            aes_from_block(Block(KEYS[0])),
            aes_from_block(Block(KEYS[1])),
        ]
    })
}

/// One level of expansion in place: `nodes[..half]` are the parents; afterwards `nodes[..2·half]`
/// are their children, 2i and 2i + 1 for parent i (G_0 and G_1).
fn expand_level_in_place(nodes: &mut [Block], half: usize) {
    let [k0, k1] = keys();
    let mut left = [Block::ZERO; BATCH];
    let mut right = [Block::ZERO; BATCH];
    let mut parents = [Block::ZERO; BATCH];
    // From the last parents down: children of [s, e) land in [2s, 2e), which only overlaps
    // parents already copied or already expanded.
    let mut e = half;
    while e > 0 {
        let s = e.saturating_sub(BATCH);
        let n = e - s;
        parents[..n].copy_from_slice(&nodes[s..e]);
        left[..n].copy_from_slice(&parents[..n]);
        right[..n].copy_from_slice(&parents[..n]);
        aes_encrypt_blocks(k0, &mut left[..n]);
        aes_encrypt_blocks(k1, &mut right[..n]);
        for i in 0..n {
            nodes[2 * (s + i)] = left[i] ^ parents[i];
            nodes[2 * (s + i) + 1] = right[i] ^ parents[i];
        }
        e = s;
    }
}

/// The XOR of the even-index and of the odd-index nodes.
fn side_sums(nodes: &[Block]) -> [Block; 2] {
    let mut s = [Block::ZERO; 2];
    for pair in nodes.chunks_exact(2) {
        s[0] ^= pair[0];
        s[1] ^= pair[1];
    }
    s
}

/// The length-doubling PRG: (G_0(s), G_1(s)).
pub fn prg(s: Block) -> [Block; 2] {
    let mut n = [s, Block::ZERO];
    expand_level_in_place(&mut n, 1);
    n
}

/// Expand the tree of `root` into `leaves` (2^depth of them) and write the level sums
/// (K^j_0, K^j_1) of levels j = 1..=depth into `sums[j − 1]`.
pub fn expand(root: Block, depth: u32, leaves: &mut [Block], sums: &mut [[Block; 2]]) {
    debug_assert_eq!(leaves.len(), 1usize << depth);
    debug_assert_eq!(sums.len(), depth as usize);
    leaves[0] = root;
    for j in 1..=depth {
        let half = 1usize << (j - 1);
        expand_level_in_place(leaves, half);
        sums[j as usize - 1] = side_sums(&leaves[..2 * half]);
    }
}

/// The receiver's expansion: every leaf of the tree but the one at `point`, which is set to
/// zero, from `siblings[j − 1]` = K^j_{1−α_j} (the OT outputs of levels j = 1..=depth).
pub fn expand_punctured(point: usize, depth: u32, siblings: &[Block], leaves: &mut [Block]) {
    debug_assert_eq!(leaves.len(), 1usize << depth);
    debug_assert_eq!(siblings.len(), depth as usize);
    debug_assert!(point < leaves.len());
    leaves[0] = Block::ZERO;
    for j in 1..=depth {
        let half = 1usize << (j - 1);
        // The path node of level j − 1 holds zero: its children come out as garbage and are
        // overwritten below.
        expand_level_in_place(leaves, half);
        let path = point >> (depth - j);
        let sib = path ^ 1;
        let mut s = siblings[j as usize - 1];
        for i in ((sib & 1)..2 * half).step_by(2) {
            if i != sib {
                s ^= leaves[i];
            }
        }
        leaves[sib] = s;
        leaves[path] = Block::ZERO;
    }
}

/// `trees` trees of 2^`depth` leaves each, handed to the caller's closure together (a group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeGroup {
    pub trees: usize,
    pub depth: u32,
}

fn check_groups(groups: &[TreeGroup], trees: usize, what: &str) -> Result<(), NetError> {
    if let Some(g) = groups.iter().find(|g| g.depth > MAX_DEPTH) {
        return Err(NetError::InvalidArgument(format!(
            "pprf: tree depth {} is over the maximum {MAX_DEPTH}",
            g.depth
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

/// The OT index of the first level of every tree (the OTs are tree-major, top level first).
fn ot_offsets(groups: &[TreeGroup]) -> (Vec<usize>, usize) {
    let mut off = Vec::new();
    let mut o = 0;
    for g in groups {
        for _ in 0..g.trees {
            off.push(o);
            o += g.depth as usize;
        }
    }
    (off, o)
}

/// The sender's side: expands the tree of every root (`roots[t]` is tree t's, the trees of the
/// groups in order), hands each group's leaves (tree-major, 2^depth per tree) to `f` and keeps
/// its result, then offers the level sums to the receiver by OT. Returns `f`'s results in group
/// order.
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
    check_groups(groups, roots.len(), "roots")?;
    let first = offsets(groups);
    let (ot_first, n_ots) = ot_offsets(groups);
    let results: Vec<(T, Vec<[Block; 2]>)> = groups
        .par_iter()
        .enumerate()
        .map(|(gi, g)| {
            let size = 1usize << g.depth;
            let mut leaves = vec![Block::ZERO; g.trees * size];
            let mut sums = vec![[Block::ZERO; 2]; g.trees * g.depth as usize];
            for t in 0..g.trees {
                let d = g.depth as usize;
                expand(
                    roots[first[gi] + t],
                    g.depth,
                    &mut leaves[t * size..(t + 1) * size],
                    &mut sums[t * d..(t + 1) * d],
                );
            }
            (f(gi, &leaves), sums)
        })
        .collect();
    let mut msgs = vec![[Block::ZERO; 2]; n_ots];
    let mut out = Vec::with_capacity(results.len());
    for (gi, (r, sums)) in results.into_iter().enumerate() {
        let o = ot_first.get(first[gi]).copied().unwrap_or(n_ots);
        msgs[o..o + sums.len()].copy_from_slice(&sums);
        out.push(r);
    }
    if n_ots > 0 {
        ot.send_ot(ch, &msgs)?;
    }
    Ok(out)
}

/// The receiver's side: `points[t]` is the punctured leaf of tree t. Receives the sibling sums by
/// OT, expands every tree but the punctured leaf (zero) and hands each group's leaves to `f`.
/// Returns `f`'s results in group order.
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
    check_groups(groups, points.len(), "points")?;
    let first = offsets(groups);
    let (ot_first, n_ots) = ot_offsets(groups);
    let mut choices = Vec::with_capacity(n_ots);
    for (gi, g) in groups.iter().enumerate() {
        for t in 0..g.trees {
            let a = points[first[gi] + t];
            if a >> g.depth != 0 {
                return Err(NetError::InvalidArgument(format!(
                    "pprf: point {a} of tree {} is outside its 2^{} leaves",
                    first[gi] + t,
                    g.depth
                )));
            }
            // Level j's choice: the side off the path, 1 − α_j.
            choices.extend((1..=g.depth).map(|j| (a >> (g.depth - j)) & 1 == 0));
        }
    }
    let siblings = if n_ots > 0 {
        ot.recv_ot(ch, &choices)?
    } else {
        Vec::new()
    };
    let out = groups
        .par_iter()
        .enumerate()
        .map(|(gi, g)| {
            let size = 1usize << g.depth;
            let d = g.depth as usize;
            let mut leaves = vec![Block::ZERO; g.trees * size];
            for t in 0..g.trees {
                let tree = first[gi] + t;
                let o = ot_first[tree];
                expand_punctured(
                    points[tree],
                    g.depth,
                    &siblings[o..o + d],
                    &mut leaves[t * size..(t + 1) * size],
                );
            }
            f(gi, &leaves)
        })
        .collect();
    Ok(out)
}

/// Every leaf of `roots.len()` trees of depth `depth` (tree-major), after puncturing them for
/// the receiver ([`recv`]).
pub fn send<C: Channel + ?Sized>(
    ot: &mut CotSender,
    ch: &mut C,
    depth: u32,
    roots: &[Block],
) -> Result<Vec<Block>, NetError> {
    let groups = vec![TreeGroup { trees: 1, depth }; roots.len()];
    let v = send_map(ot, ch, &groups, roots, |_, l| l.to_vec())?;
    Ok(v.concat())
}

/// The receiver's leaves of `points.len()` trees of depth `depth` (tree-major): every leaf but
/// the punctured one, which is zero.
pub fn recv<C: Channel + ?Sized>(
    ot: &mut CotReceiver,
    ch: &mut C,
    depth: u32,
    points: &[usize],
) -> Result<Vec<Block>, NetError> {
    let groups = vec![TreeGroup { trees: 1, depth }; points.len()];
    let v = recv_map(ot, ch, &groups, points, |_, l| l.to_vec())?;
    Ok(v.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;

    /// The tree by the definition: level by level with the one-block PRG.
    fn naive_leaves(root: Block, depth: u32) -> Vec<Block> {
        let mut level = vec![root];
        for _ in 0..depth {
            level = level.iter().flat_map(|&s| prg(s)).collect();
        }
        level
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
        for depth in [0u32, 1, 2, 5, 8, 11] {
            let root = p.block();
            let n = 1usize << depth;
            let mut leaves = vec![Block::ZERO; n];
            let mut sums = vec![[Block::ZERO; 2]; depth as usize];
            expand(root, depth, &mut leaves, &mut sums);
            assert_eq!(leaves, naive_leaves(root, depth), "depth {depth}");
            for j in 1..=depth {
                let level = naive_leaves(root, j);
                assert_eq!(sums[j as usize - 1], side_sums(&level));
            }
            for point in [0, n - 1, n / 2, (p.block().low() as usize) % n] {
                let sib: Vec<Block> = (1..=depth)
                    .map(|j| sums[j as usize - 1][((point >> (depth - j)) & 1) ^ 1])
                    .collect();
                let mut got = vec![Block::ONES; n];
                expand_punctured(point, depth, &sib, &mut got);
                for i in 0..n {
                    let want = if i == point { Block::ZERO } else { leaves[i] };
                    assert_eq!(got[i], want, "depth {depth} point {point} leaf {i}");
                }
            }
        }
    }

    #[test]
    fn bad_groups_are_errors() {
        let g = [TreeGroup { trees: 2, depth: 3 }];
        assert!(check_groups(&g, 3, "roots").is_err());
        assert!(check_groups(
            &[TreeGroup {
                trees: 1,
                depth: 21
            }],
            1,
            "roots"
        )
        .is_err());
        assert!(check_groups(&g, 2, "roots").is_ok());
    }
}
