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

mod network;

pub use network::{Network, ShuffleParams};

use rand::seq::SliceRandom;

use super::shares::{recv_ring, send_ring, Ring};
use super::{Party, ProtocolError};
use crate::crypto::pprf::{self, LevelSums, TreeGroup};
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Role};
use network::{check_perm, gather};

fn bad(msg: String) -> ProtocolError {
    ProtocolError::Invalid(format!("shuffle: {msg}"))
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
