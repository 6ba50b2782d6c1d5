//! The public permutation network ([`Network`]): its layers of block-diagonal permutations,
//! the wirings between them, its cost, and the routing of a permutation through it.

use super::bad;
use crate::crypto::pprf;
use crate::protocols::ProtocolError;

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
pub(super) fn check_perm(perm: &[usize], n: usize) -> Result<(), ProtocolError> {
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
pub(super) fn gather(x: &[u64], g: &[u32]) -> Vec<u64> {
    g.iter().map(|&i| x[i as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Block, Prg};
    use rand::seq::SliceRandom;

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
