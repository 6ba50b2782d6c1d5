//! Secret-shared shuffle: fresh shares of π_S(π_C(x)) for a shared vector x and two random
//! permutations, π_C known only to the client and π_S only to the server, so that neither party
//! knows the composition. Chase, Ghosh, Poburinnaya, "Secret-shared shuffle" (ASIACRYPT 2020):
//! §4 (share translation from puncturable PRFs), §5 (permute-and-share through a Beneš-like
//! network of small permutations), §6 (the shuffle as two permute-and-shares); CipherGPT §II
//! ("Secret-shared shuffle", F_Shuffle) and §V (Algorithm 2, line 1, before its top-K selection).
//!
//! **Permutations** act by gathering: π(x)_i = x_{π(i)}, so [`shuffle`] returns shares of w with
//! w_i = x_{π_C(π_S(i))}.
//!
//! **Permute-and-share** ([`permute_and_share`]). P0 (the holder of π) and P1 hold shares
//! x = x_0 + x_1 of n elements of Z_2^ℓ; they get fresh shares of π(x). P0 permutes its own share
//! locally; P1's share goes through the *share translation* of π: random vectors a, b at P1 and
//! Δ = π(a) − b at P0. Then P1 sends m = x_1 − a, P0 outputs π(m) + Δ + π(x_0) = π(x) − b and
//! P1 outputs b.
//!
//! *Share translation of a permutation p of T elements* (CGP20 §4). P1 expands T GGM trees
//! ([`crate::crypto::pprf`]) of 2^⌈log₂T⌉ leaves and reads the first T leaves of tree i as ring
//! elements v_{i,j} (their low ℓ bits); P0 punctures tree i at p(i) (it learns every v_{i,j} but
//! v_{i,p(i)}). P1 sets a_j = Σ_i v_{i,j} (column sums) and b_i = Σ_j v_{i,j} (row sums); P0 sets
//! Δ_i = Σ_{i'≠i} v_{i',p(i)} − Σ_{j≠p(i)} v_{i,j}, which is a_{p(i)} − b_i because the one leaf it
//! misses in column p(i) is the one it misses in row i, and it cancels.
//!
//! *The network* ([`Network`]). Puncturing costs one OT per tree level, so a permutation of n
//! elements in one piece costs n·log₂n OTs but n² leaves. Instead π is routed through a Clos
//! network (Beneš's with radix T; CGP20 §5 groups the layers of a binary Beneš network the same
//! way): n′ = T·M positions (n padded, π extended by the identity on the padding), an input layer
//! of M permutations of T elements on consecutive blocks, a public transposition (slot c of block u
//! goes to sub-network c, position u), T middle permutations of M elements, the inverse
//! transposition and an output layer of M permutations of T. The middle ones are routed the same
//! way with the next radix, down to an inner permutation of M elements in one piece. Routing is
//! colouring the edges of the T-regular bipartite multigraph (input block of x_{π(i)}, output
//! block of i) with T colours, so that each block sends one element to each middle permutation
//! and receives one from each: T is a power of two and the colouring halves the graph log₂T times
//! by 2-colouring the cycles of a pairing of the edges at every vertex (Euler splitting, as the
//! looping algorithm of Beneš networks). Every layer is block-diagonal; the wirings between them
//! depend only on n and the radices, which are public. With k − 1 outer radices T = 2^t and an
//! inner size M, there are 2k − 1 layers and Σ depths = 2(k − 1)·t + ⌈log₂M⌉ OTs per position.
//! [`Network::new`] picks t, k and M (M ≤ 2^max_block_bits) with the fewest bytes: for n = 50,257
//! and blocks of at most 2^10: T = 64, M = 786 (n′ = 50,304), 3 layers, 22 OTs per position.
//!
//! *Layer by layer.* With share translations (a^k, b^k, Δ^k) for the layers λ_1, …, λ_L and the
//! public wirings W_1, …, W_(L−1) (π = λ_L ∘ W_(L−1) ∘ … ∘ W_1 ∘ λ_1, applied from the right), P1
//! sends m_1 = x_1 − a^1 and m_k = W_(k−1)(b^(k−1)) − a^k; P0 keeps z^0 = 0 and computes
//! z^k = λ_k(W_(k−1)(z^(k−1)) + m_k) + Δ^k = λ_k(W_(k−1)(z^(k−1) + b^(k−1))) − b^k, so that
//! z^k + b^k is the vector after layer k; the outputs are z^L + π(x_0) and b^L. Every m_k depends
//! only on P1's randomness and its share, so all of them cross in one message.
//!
//! **Shuffle** ([`shuffle`], [`shuffle_with`]): permute-and-share with the client's π_C (client =
//! P0), then with the server's π_S on the result (server = P0). [`shuffle`] draws both
//! permutations uniformly (Fisher–Yates on a fresh PRG, 128-bit).
//!
//! **Cost** of one permute-and-share of n elements: with D = Σ_layers ⌈log₂T_k⌉ OTs per position,
//! n′·D chosen 128-bit OTs (16 bytes P0 → P1, 32 bytes P1 → P0, plus IKNP's padding to 128) and
//! L·n′·ℓ bits of messages P1 → P0: n′·(384·D + L·ℓ) bits ([`Network::bits`]). Flights: 2 (P0 → P1
//! the IKNP message, P1 → P0 the OT messages and all m_k). The shuffle is two of them in 3 flights
//! (see [`shuffle_with`] for the schedule). Work per permute-and-share: P1 expands n′·Σ_k T_k
//! leaves (about 2 AES blocks per leaf, trees pruned to their T leaves), P0 the same; for
//! n = 50,257: 914 leaves per position. Shuffle of 50,257 elements at ℓ = 54 (ℓ = 38 values with
//! 16-bit index tags, as [`super::topk`] shuffles them): 2 × 50,304 × (384·22 + 3·54) bits =
//! 108,279,360 bytes, 2,154.5 per element (measured equal: 22 × 50,304 OTs fill whole chunks of
//! 128), 3 flights.
//!
//! **Security** (semi-honest). P1 receives only the IKNP messages of P0's OT receiver side
//! (PRG-masked), so it learns nothing of π; its output b^L is its own fresh randomness. P0
//! receives the OT messages of the PPRF (which give it the punctured trees and nothing about the
//! punctured leaves, [`crate::crypto::pprf`]) and m_1, …, m_L. Each a^k_j contains exactly one
//! leaf that P0 misses (column j's, in row p_k^(−1)(j)), a different one for every j, so m_k is
//! one-time padded by leaves that are pseudorandom given everything else P0 sees; layer by layer
//! (m_k is masked by the missed leaves of layer k, m_(k+1) by those of layer k+1) the messages
//! are jointly uniform, and P0's output z^L + π(x_0) is then a bijective function of m_L:
//! uniform, while P1's b^L completes it to π(x). So P0's view is simulatable from its input and
//! output, and the output shares are fresh. In the shuffle each party is P0 once and P1 once; π_S
//! is uniform and unknown to the client, so the composed permutation is uniform from the client's
//! view whatever π_C is, and symmetrically for the server. The network's shape (n, the radices)
//! is public; the routing of π is P0's secret and only decides which leaves it punctures.

use rand::seq::SliceRandom;

use super::shares::{recv_ring, send_ring, Ring};
use super::{Party, ProtocolError};
use crate::crypto::pprf::{self, LevelSums, TreeGroup};
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Role};

fn bad(msg: String) -> ProtocolError {
    ProtocolError::Invalid(format!("shuffle: {msg}"))
}

/// Parameters of the permutation network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuffleParams {
    /// Largest layer block is 2^max_block_bits elements (a PPRF tree of that many leaves per
    /// position): more bits, fewer OTs and more AES work. 1..=16.
    pub max_block_bits: u32,
}

impl Default for ShuffleParams {
    fn default() -> Self {
        ShuffleParams { max_block_bits: 10 }
    }
}

/// ⌈log₂ x⌉ (0 for x ≤ 1).
fn ceil_log2(x: usize) -> u32 {
    if x <= 1 {
        0
    } else {
        usize::BITS - (x - 1).leading_zeros()
    }
}

/// The public shape of the permutation network for n elements: the outer radices T_1, …, T_(k−1)
/// (powers of two) and the inner size M; n′ = T_1·…·T_(k−1)·M ≥ n positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    n: usize,
    outer: Vec<usize>,
    inner: usize,
}

impl Network {
    /// The network with the fewest bytes for n elements of `ring_bits` bits whose blocks have at
    /// most 2^max_block_bits elements (ties: fewer leaves to expand).
    pub fn new(n: usize, ring_bits: u32, params: &ShuffleParams) -> Result<Network, ProtocolError> {
        let b = params.max_block_bits;
        if !(1..=16).contains(&b) {
            return Err(bad(format!("max_block_bits {b} is not in 1..=16")));
        }
        if n > u32::MAX as usize / 2 {
            return Err(bad(format!("{n} elements are too many")));
        }
        let mut best: Option<((u128, u128), Network)> = None;
        for t in 1..=b {
            let t_size = 1usize << t;
            let mut outer = Vec::new();
            loop {
                let prod: usize = outer.iter().product();
                let inner = n.div_ceil(prod).max(1);
                if ceil_log2(inner) <= b {
                    let net = Network {
                        n,
                        outer: outer.clone(),
                        inner,
                    };
                    let key = (net.bits(ring_bits) as u128, net.leaves() as u128);
                    let better = match &best {
                        Some((k, _)) => key < *k,
                        None => true,
                    };
                    if better {
                        best = Some((key, net));
                    }
                }
                if inner == 1 || outer.len() >= 64 {
                    break;
                }
                outer.push(t_size);
            }
        }
        best.map(|(_, net)| net)
            .ok_or_else(|| bad(format!("no network for {n} elements")))
    }

    /// A network with the given outer radices (each a power of two ≥ 2); the inner size is
    /// ⌈n / Π T⌉.
    pub fn with_radices(n: usize, outer: &[usize]) -> Result<Network, ProtocolError> {
        if let Some(t) = outer.iter().find(|t| !t.is_power_of_two() || **t < 2) {
            return Err(bad(format!("radix {t} is not a power of two ≥ 2")));
        }
        let prod = outer
            .iter()
            .try_fold(1usize, |p, &t| p.checked_mul(t))
            .filter(|&p| p <= u32::MAX as usize / 2)
            .ok_or_else(|| bad("the radices' product is too large".to_string()))?;
        let inner = n.div_ceil(prod).max(1);
        if ceil_log2(inner) > pprf::MAX_DEPTH || prod * inner > u32::MAX as usize / 2 {
            return Err(bad(format!("an inner permutation of {inner} is too large")));
        }
        Ok(Network {
            n,
            outer: outer.to_vec(),
            inner,
        })
    }

    /// The number of elements n.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The padded length n′.
    pub fn padded_len(&self) -> usize {
        self.outer.iter().product::<usize>() * self.inner
    }

    /// The outer radices.
    pub fn radices(&self) -> &[usize] {
        &self.outer
    }

    /// The inner permutation's size M.
    pub fn inner(&self) -> usize {
        self.inner
    }

    /// Block size of every layer: T_1, …, T_(k−1), M, T_(k−1), …, T_1.
    pub fn block_sizes(&self) -> Vec<usize> {
        let mut v = self.outer.clone();
        v.push(self.inner);
        v.extend(self.outer.iter().rev());
        v
    }

    /// The PPRF tree depth of every layer.
    pub fn depths(&self) -> Vec<u32> {
        self.block_sizes().into_iter().map(ceil_log2).collect()
    }

    /// OTs per position: the sum of the depths.
    pub fn ots_per_position(&self) -> u64 {
        self.depths().iter().map(|&d| d as u64).sum()
    }

    /// Leaves expanded per position (by each party): Σ T_k.
    pub fn leaves(&self) -> u64 {
        self.block_sizes().iter().map(|&t| t as u64).sum()
    }

    /// Bits of one permute-and-share by the formula: n′·(384·D + L·ℓ), IKNP's padding aside.
    pub fn bits(&self, ring_bits: u32) -> u64 {
        let layers = 2 * self.outer.len() as u64 + 1;
        self.padded_len() as u64 * (384 * self.ots_per_position() + layers * ring_bits as u64)
    }

    /// Bytes of one permute-and-share as the channel counts them: the OTs' IKNP messages are
    /// padded to 128 OTs.
    pub fn bytes(&self, ring_bits: u32) -> u64 {
        let ots = self.padded_len() as u64 * self.ots_per_position();
        let layers = 2 * self.outer.len() as u64 + 1;
        16 * ots.div_ceil(128) * 128
            + 32 * ots
            + (layers * self.padded_len() as u64 * ring_bits as u64).div_ceil(8)
    }

    /// The public wirings between consecutive layers (gathers over n′ positions).
    pub fn wirings(&self) -> Vec<Vec<u32>> {
        let np = self.padded_len();
        let count = 2 * self.outer.len();
        let mut w = vec![vec![0u32; np]; count];
        if count > 0 {
            wire(np, 0, &self.outer, &mut w, 0, count - 1);
        }
        w
    }

    /// Route P0's permutation (gather, length n) through the network: one block-diagonal gather
    /// per layer over n′ positions, such that applying layer 0, wiring 0, layer 1, … gathers
    /// exactly π extended by the identity on the padding.
    pub fn route(&self, perm: &[usize]) -> Result<Vec<Vec<u32>>, ProtocolError> {
        check_perm(perm, self.n)?;
        let np = self.padded_len();
        let mut p: Vec<u32> = perm.iter().map(|&v| v as u32).collect();
        p.extend(self.n as u32..np as u32);
        let layers = 2 * self.outer.len() + 1;
        let mut out = vec![vec![0u32; np]; layers];
        decompose(&p, 0, &self.outer, &mut out, 0, layers - 1);
        Ok(out)
    }
}

/// Errors unless `perm` is a permutation of 0..n.
fn check_perm(perm: &[usize], n: usize) -> Result<(), ProtocolError> {
    if perm.len() != n {
        return Err(bad(format!(
            "a permutation of {} entries for {n} elements",
            perm.len()
        )));
    }
    let mut seen = vec![false; n];
    for &v in perm {
        if v >= n || seen[v] {
            return Err(bad(format!("the permutation repeats or exceeds {v}")));
        }
        seen[v] = true;
    }
    Ok(())
}

/// Wirings of the sub-network of `size` positions at `off` with radices `outer`, into
/// w[first] (after its input layer) and w[last] (before its output layer).
fn wire(size: usize, off: usize, outer: &[usize], w: &mut [Vec<u32>], first: usize, last: usize) {
    let Some((&t, rest)) = outer.split_first() else {
        return;
    };
    let mb = size / t;
    for u in 0..mb {
        for c in 0..t {
            // Input layer slot c of block u → sub-network c, position u; and back.
            w[first][off + c * mb + u] = (off + u * t + c) as u32;
            w[last][off + u * t + c] = (off + c * mb + u) as u32;
        }
    }
    for c in 0..t {
        wire(mb, off + c * mb, rest, w, first + 1, last - 1);
    }
}

/// Route the gather `p` (local to the sub-network at `off`) into layers[first..=last].
fn decompose(
    p: &[u32],
    off: usize,
    outer: &[usize],
    layers: &mut [Vec<u32>],
    first: usize,
    last: usize,
) {
    let Some((&t, rest)) = outer.split_first() else {
        for (i, &v) in p.iter().enumerate() {
            layers[first][off + i] = off as u32 + v;
        }
        return;
    };
    let size = p.len();
    let mb = size / t;
    let colour = edge_colour(p, t, mb);
    let mut mid = vec![vec![0u32; mb]; t];
    for i in 0..size {
        let c = colour[i] as usize;
        let (u, v) = (p[i] as usize / t, i / t);
        // Input layer: slot c of input block u takes x_{p(i)}; output layer: position i takes
        // slot c of its output block; middle permutation c: output v takes input u.
        layers[first][off + u * t + c] = (off + p[i] as usize) as u32;
        layers[last][off + i] = (off + v * t + c) as u32;
        mid[c][v] = u as u32;
    }
    for (c, m) in mid.iter().enumerate() {
        decompose(m, off + c * mb, rest, layers, first + 1, last - 1);
    }
}

/// Colour the edges i = (input block p(i)/t, output block i/t) of a t-regular bipartite
/// multigraph on mb + mb vertices with t colours (t a power of two), every colour once at every
/// vertex: log₂t halvings, each pairing the edges of a colour class at every vertex and
/// 2-colouring the alternating cycles of the pairing.
fn edge_colour(p: &[u32], t: usize, mb: usize) -> Vec<u32> {
    const NONE: u32 = u32::MAX;
    let s = p.len();
    let mut class = vec![0u32; s];
    let mut lp = vec![0u32; s];
    let mut rp = vec![0u32; s];
    let mut pend = vec![NONE; s];
    let mut bit = vec![2u8; s];
    for round in 0..t.trailing_zeros() {
        let classes = 1usize << round;
        for (partner, side) in [(&mut lp, 0), (&mut rp, 1)] {
            pend[..classes * mb].fill(NONE);
            for e in 0..s {
                let vertex = if side == 0 { p[e] as usize / t } else { e / t };
                let key = class[e] as usize * mb + vertex;
                let q = pend[key];
                if q == NONE {
                    pend[key] = e as u32;
                } else {
                    partner[e] = q;
                    partner[q as usize] = e as u32;
                    pend[key] = NONE;
                }
            }
        }
        bit.fill(2);
        for e in 0..s {
            if bit[e] != 2 {
                continue;
            }
            let mut cur = e;
            loop {
                bit[cur] = 0;
                let l = lp[cur] as usize;
                bit[l] = 1;
                cur = rp[l] as usize;
                if cur == e {
                    break;
                }
            }
        }
        for (c, &b) in class.iter_mut().zip(&bit) {
            *c = 2 * *c + b as u32;
        }
    }
    class
}

/// y_i = x_{g(i)}.
fn gather(x: &[u64], g: &[u32]) -> Vec<u64> {
    g.iter().map(|&i| x[i as usize]).collect()
}

/// The PPRF trees of a network: one group per block of every layer (T trees on [0, T)), and per
/// group its layer and first position.
fn groups_of(net: &Network) -> (Vec<TreeGroup>, Vec<(usize, usize)>) {
    let np = net.padded_len();
    let mut groups = Vec::new();
    let mut at = Vec::new();
    for (k, t) in net.block_sizes().into_iter().enumerate() {
        for b in 0..np / t {
            groups.push(TreeGroup {
                trees: t,
                leaves: t,
            });
            at.push((k, b * t));
        }
    }
    (groups, at)
}

/// Column and row sums of a block's T × T leaves (low ℓ bits), with wrapping u64 arithmetic.
fn col_row_sums(ring: Ring, t: usize, leaves: &[Block]) -> (Vec<u64>, Vec<u64>) {
    let mut col = vec![0u64; t];
    let mut row = vec![0u64; t];
    for (i, r) in leaves.chunks_exact(t).enumerate() {
        let mut acc = 0u64;
        for (c, l) in col.iter_mut().zip(r) {
            let v = l.low() & ring.mask();
            *c = c.wrapping_add(v);
            acc = acc.wrapping_add(v);
        }
        row[i] = acc;
    }
    (col, row)
}

/// P1's share translation of every layer: a^k (column sums), b^k (row sums), and the level sums
/// to offer by OT. Local.
struct PeerSide {
    a: Vec<Vec<u64>>,
    b: Vec<Vec<u64>>,
    sums: LevelSums,
}

fn peer_expand(net: &Network, ring: Ring) -> Result<PeerSide, ProtocolError> {
    let np = net.padded_len();
    let n_layers = net.block_sizes().len();
    let (groups, at) = groups_of(net);
    let roots = Prg::from_entropy().blocks(np * n_layers);
    let (ab, sums) = pprf::expand_map(&groups, &roots, |gi, leaves| {
        col_row_sums(ring, groups[gi].trees, leaves)
    })?;
    let mut a = vec![vec![0u64; np]; n_layers];
    let mut b = vec![vec![0u64; np]; n_layers];
    for (gi, (col, row)) in ab.into_iter().enumerate() {
        let (k, s) = at[gi];
        for (j, (c, r)) in col.into_iter().zip(row).enumerate() {
            a[k][s + j] = ring.reduce(c);
            b[k][s + j] = ring.reduce(r);
        }
    }
    Ok(PeerSide { a, b, sums })
}

/// P1's messages for its share `x` (length n): m_1 = x − a^1, m_k = W_(k−1)(b^(k−1)) − a^k; and its
/// output share b^L (first n positions).
fn peer_messages(net: &Network, ring: Ring, peer: &PeerSide, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let np = net.padded_len();
    let wirings = net.wirings();
    let mut padded: Vec<u64> = x.iter().map(|&v| ring.reduce(v)).collect();
    padded.resize(np, 0);
    let mut m = Vec::with_capacity(peer.a.len() * np);
    m.extend(ring.sub_vec(&padded, &peer.a[0]));
    for k in 1..peer.a.len() {
        m.extend(ring.sub_vec(&gather(&peer.b[k - 1], &wirings[k - 1]), &peer.a[k]));
    }
    let mut out = peer.b.last().cloned().unwrap_or_default();
    out.truncate(net.len());
    (m, out)
}

/// P0's routing of π: the layers and the punctured point of every tree (local to its block).
struct HolderSide {
    perm: Vec<u32>,
    layers: Vec<Vec<u32>>,
    points: Vec<usize>,
}

fn holder_route(net: &Network, perm: &[usize]) -> Result<HolderSide, ProtocolError> {
    let layers = net.route(perm)?;
    let sizes = net.block_sizes();
    let mut points = Vec::with_capacity(net.padded_len() * layers.len());
    for (l, t) in layers.iter().zip(sizes) {
        points.extend(l.iter().enumerate().map(|(i, &s)| s as usize - i / t * t));
    }
    let mut full: Vec<u32> = perm.iter().map(|&v| v as u32).collect();
    full.extend(net.len() as u32..net.padded_len() as u32);
    Ok(HolderSide {
        perm: full,
        layers,
        points,
    })
}

/// P0's Δ^k of every layer from the punctured trees: Δ_i = colsum(p(i)) − rowsum(i) over the
/// leaves it knows. Local.
fn holder_deltas(
    net: &Network,
    ring: Ring,
    holder: &HolderSide,
    siblings: &[Block],
) -> Result<Vec<Vec<u64>>, ProtocolError> {
    let np = net.padded_len();
    let (groups, at) = groups_of(net);
    let first: Vec<usize> = at.iter().map(|&(k, b)| k * np + b).collect();
    let deltas = pprf::expand_punctured_map(&groups, &holder.points, siblings, |gi, leaves| {
        let t = groups[gi].trees;
        let pts = &holder.points[first[gi]..first[gi] + t];
        let (col, row) = col_row_sums(ring, t, leaves);
        (0..t)
            .map(|i| ring.sub(ring.reduce(col[pts[i]]), ring.reduce(row[i])))
            .collect::<Vec<u64>>()
    })?;
    let mut delta = vec![vec![0u64; np]; holder.layers.len()];
    for (gi, d) in deltas.into_iter().enumerate() {
        let (k, b) = at[gi];
        delta[k][b..b + d.len()].copy_from_slice(&d);
    }
    Ok(delta)
}

/// P0's output share from P1's messages `m` and its own share `x`: z^L + π(x).
fn holder_output(
    net: &Network,
    ring: Ring,
    holder: &HolderSide,
    delta: &[Vec<u64>],
    m: &[u64],
    x: &[u64],
) -> Vec<u64> {
    let np = net.padded_len();
    let wirings = net.wirings();
    let mut z = vec![0u64; np];
    for (k, layer) in holder.layers.iter().enumerate() {
        if k > 0 {
            z = gather(&z, &wirings[k - 1]);
        }
        let v = ring.add_vec(&z, &m[k * np..(k + 1) * np]);
        z = ring.add_vec(&gather(&v, layer), &delta[k]);
    }
    let mut padded: Vec<u64> = x.iter().map(|&v| ring.reduce(v)).collect();
    padded.resize(np, 0);
    let mut out = ring.add_vec(&z, &gather(&padded, &holder.perm));
    out.truncate(net.len());
    out
}

/// Permute-and-share: fresh shares of π(x) for the shared x (this party's share `x`) and the
/// permutation π (a gather: π(x)_i = x_{π(i)}) held by `holder`, who passes `Some(π)`; the other
/// party passes `None`. `net` must be the network of x.len() elements, the same on both sides.
/// Two flights: P0 → P1 (IKNP), P1 → P0 (the OT messages and the m_k).
pub fn permute_and_share<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    net: &Network,
    holder: Role,
    perm: Option<&[usize]>,
    x: &[u64],
) -> Result<Vec<u64>, ProtocolError> {
    if x.len() != net.len() {
        return Err(bad(format!(
            "{} elements for a network of {}",
            x.len(),
            net.len()
        )));
    }
    if (party.role == holder) != perm.is_some() {
        return Err(bad(format!(
            "the permutation must be given by the holder ({holder:?}) only"
        )));
    }
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let n_m = net.block_sizes().len() * net.padded_len();
    match perm {
        Some(perm) => {
            let h = holder_route(net, perm)?;
            let (groups, _) = groups_of(net);
            let siblings =
                pprf::recv_siblings(&mut party.ot.receiver, party.ch, &groups, &h.points)?;
            let m = recv_ring(party.ch, ring, n_m)?;
            let delta = holder_deltas(net, ring, &h, &siblings)?;
            Ok(holder_output(net, ring, &h, &delta, &m, x))
        }
        None => {
            let peer = peer_expand(net, ring)?;
            let (m, out) = peer_messages(net, ring, &peer, x);
            pprf::send_sums(&mut party.ot.sender, party.ch, &peer.sums)?;
            send_ring(party.ch, ring, &m)?;
            party.ch.flush()?;
            Ok(out)
        }
    }
}

/// A uniformly random permutation of 0..n (Fisher–Yates on a fresh PRG).
pub fn random_permutation(n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(&mut Prg::from_entropy());
    p
}

/// Fresh shares of w, w_i = x_{π_C(π_S(i))}, for the shared x and this party's permutation
/// `perm` (the client's π_C at the client, the server's π_S at the server).
///
/// Schedule (3 flights): both expand their P1 trees first (the server's for π_C, the client's for
/// π_S), at the same time; C → S: the IKNP message of π_C's OTs; S → C: π_C's OT messages, the
/// server's m_k for π_C and the IKNP message of π_S's OTs; C → S: π_S's OT messages, then (after
/// the client's punctured expansion, while the server does its own) the client's m_k for π_S,
/// computed from its share of π_C(x).
pub fn shuffle_with<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    perm: &[usize],
    x: &[u64],
    params: &ShuffleParams,
) -> Result<Vec<u64>, ProtocolError> {
    let net = Network::new(x.len(), ring.bits, params)?;
    check_perm(perm, x.len())?;
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let n_m = net.block_sizes().len() * net.padded_len();
    let (groups, _) = groups_of(&net);
    let peer = peer_expand(&net, ring)?;
    let mine = holder_route(&net, perm)?;
    match party.role {
        Role::Server => {
            // P1 of π_C, then P0 of π_S.
            let (m, y) = peer_messages(&net, ring, &peer, x);
            pprf::send_sums(&mut party.ot.sender, party.ch, &peer.sums)?;
            send_ring(party.ch, ring, &m)?;
            let siblings =
                pprf::recv_siblings(&mut party.ot.receiver, party.ch, &groups, &mine.points)?;
            let delta = holder_deltas(&net, ring, &mine, &siblings)?;
            let m = recv_ring(party.ch, ring, n_m)?;
            Ok(holder_output(&net, ring, &mine, &delta, &m, &y))
        }
        Role::Client => {
            // P0 of π_C, then P1 of π_S.
            let siblings =
                pprf::recv_siblings(&mut party.ot.receiver, party.ch, &groups, &mine.points)?;
            let m = recv_ring(party.ch, ring, n_m)?;
            pprf::send_sums(&mut party.ot.sender, party.ch, &peer.sums)?;
            let delta = holder_deltas(&net, ring, &mine, &siblings)?;
            let y = holder_output(&net, ring, &mine, &delta, &m, x);
            let (m, out) = peer_messages(&net, ring, &peer, &y);
            send_ring(party.ch, ring, &m)?;
            party.ch.flush()?;
            Ok(out)
        }
    }
}

/// The secret-shared shuffle: fresh shares of x permuted by a uniformly random permutation that
/// neither party knows (each draws its own and they are composed, see [`shuffle_with`]).
pub fn shuffle<C: Channel + ?Sized>(
    party: &mut Party<'_, C>,
    ring: Ring,
    x: &[u64],
    params: &ShuffleParams,
) -> Result<Vec<u64>, ProtocolError> {
    let perm = random_permutation(x.len());
    shuffle_with(party, ring, &perm, x, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apply the routed layers and the wirings in order.
    fn apply(net: &Network, layers: &[Vec<u32>], x: &[u64]) -> Vec<u64> {
        let w = net.wirings();
        let mut v = x.to_vec();
        for (k, l) in layers.iter().enumerate() {
            if k > 0 {
                v = gather(&v, &w[k - 1]);
            }
            v = gather(&v, l);
        }
        v
    }

    #[test]
    fn routing_realises_the_permutation_with_block_diagonal_layers() {
        let mut rng = Prg::new(Block(3));
        let cases: Vec<(usize, Vec<usize>)> = vec![
            (1, vec![]),
            (2, vec![]),
            (7, vec![2]),
            (64, vec![2, 2, 2]),
            (100, vec![4]),
            (1000, vec![8, 4]),
            (4096, vec![16, 16]),
            (5000, vec![64]),
            (257, vec![2, 4, 8]),
        ];
        for (n, radices) in cases {
            let net = Network::with_radices(n, &radices).unwrap();
            let np = net.padded_len();
            assert!(np >= n);
            let w1 = net.wirings();
            for trial in 0..4 {
                let perm: Vec<usize> = match trial {
                    0 => (0..n).collect(),
                    1 => (0..n).rev().collect(),
                    _ => {
                        let mut p: Vec<usize> = (0..n).collect();
                        p.shuffle(&mut rng);
                        p
                    }
                };
                let layers = net.route(&perm).unwrap();
                // Block-diagonal layers.
                for (l, t) in layers.iter().zip(net.block_sizes()) {
                    for (i, &s) in l.iter().enumerate() {
                        assert_eq!(s as usize / t, i / t, "n {n} radices {radices:?}");
                    }
                }
                let x: Vec<u64> = (0..np as u64).map(|i| i * 7 + 1).collect();
                let y = apply(&net, &layers, &x);
                for i in 0..np {
                    let want = if i < n { x[perm[i]] } else { x[i] };
                    assert_eq!(
                        y[i], want,
                        "n {n} radices {radices:?} trial {trial} pos {i}"
                    );
                }
                // The wirings do not depend on the permutation.
                assert_eq!(net.wirings(), w1);
            }
        }
    }

    #[test]
    fn network_choice() {
        let p = ShuffleParams::default();
        let net = Network::new(50_257, 54, &p).unwrap();
        assert_eq!(net.radices(), &[64]);
        assert_eq!(net.inner(), 786);
        assert_eq!(net.padded_len(), 50_304);
        assert_eq!(net.ots_per_position(), 22);
        assert_eq!(net.leaves(), 914);
        assert_eq!(net.bits(54), 50_304 * (384 * 22 + 3 * 54));
        for n in [0usize, 1, 2, 3, 1000, 1024, 1025, 65_536, 200_000] {
            let net = Network::new(n, 38, &p).unwrap();
            assert!(net.padded_len() >= n);
            assert!(net.depths().iter().all(|&d| d <= 10));
            if (2..=1024).contains(&n) {
                assert!(net.radices().is_empty(), "n {n}: one layer");
            }
        }
        assert!(Network::new(10, 38, &ShuffleParams { max_block_bits: 0 }).is_err());
        assert!(Network::with_radices(10, &[3]).is_err());
        assert!(check_perm(&[0, 0], 2).is_err());
        assert!(check_perm(&[0, 2], 2).is_err());
        assert!(check_perm(&[1, 0], 2).is_ok());
    }
}
