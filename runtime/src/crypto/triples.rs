//! Beaver bit triples (a, b, c) with c = a ∧ b, XOR-shared, from two random OTs per triple, one in
//! each direction (the "OT-based AND triple" of ALSZ13 §6 / Demmler et al. ABY §III-C):
//!
//! For P_i as ROT sender with random bits (m_0, m_1) and P_{1−i} as receiver with random choice
//! b_{1−i} getting v = m_{b_{1−i}}: setting a_i = m_0 ⊕ m_1 and u_i = m_0 gives
//! u_i ⊕ v = a_i·b_{1−i}. Doing it both ways, each party outputs
//! c_i = a_i·b_i ⊕ u_i ⊕ v_i, and c_0 ⊕ c_1 = (a_0 ⊕ a_1)(b_0 ⊕ b_1).
//!
//! Cost: 2 random OTs per triple, one each way: under IKNP 2·16 bytes and 2 flights; under silent
//! OT nothing is sent (the random choices are the generator's own), so triples take no flight.

use super::block::Block;
use super::iknp::OtPair;
use crate::net::{Channel, NetError, Role};

/// One party's share of `n` bit triples, packed 64 per word (bit i is bit `i % 64` of word
/// `i / 64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitTriples {
    pub n: usize,
    pub a: Vec<u64>,
    pub b: Vec<u64>,
    pub c: Vec<u64>,
}

impl BitTriples {
    /// This party's shares (a_i, b_i, c_i) of triple `i`.
    pub fn get(&self, i: usize) -> (bool, bool, bool) {
        let bit = |v: &Vec<u64>| (v[i / 64] >> (i % 64)) & 1 == 1;
        (bit(&self.a), bit(&self.b), bit(&self.c))
    }
}

fn pack_lsb(it: impl Iterator<Item = bool>, n: usize) -> Vec<u64> {
    let mut out = vec![0u64; n.div_ceil(64)];
    for (i, b) in it.enumerate() {
        out[i / 64] |= (b as u64) << (i % 64);
    }
    out
}

/// Generate `n` bit triples; both parties call this with their own role.
pub fn bit_triples<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    role: Role,
    n: usize,
) -> Result<BitTriples, NetError> {
    let send = |ot: &mut OtPair, ch: &mut C| -> Result<(Vec<u64>, Vec<u64>), NetError> {
        let pairs = ot.sender.send_rot_random(ch, n)?;
        let a = pack_lsb(pairs.iter().map(|p| (p[0] ^ p[1]).lsb()), n);
        let u = pack_lsb(pairs.iter().map(|p| p[0].lsb()), n);
        Ok((a, u))
    };
    let recv = |ot: &mut OtPair, ch: &mut C| -> Result<(Vec<u64>, Vec<u64>), NetError> {
        let (b, v) = ot.receiver.recv_rot_random(ch, n)?;
        Ok((
            pack_lsb(b.into_iter(), n),
            pack_lsb(v.iter().map(|x: &Block| x.lsb()), n),
        ))
    };
    let ((a, u), (b, v)) = match role {
        Role::Server => {
            let s = send(ot, ch)?;
            (s, recv(ot, ch)?)
        }
        Role::Client => {
            let r = recv(ot, ch)?;
            (send(ot, ch)?, r)
        }
    };
    let c = a
        .iter()
        .zip(&b)
        .zip(u.iter().zip(&v))
        .map(|((a, b), (u, v))| (a & b) ^ u ^ v)
        .collect();
    Ok(BitTriples { n, a, b, c })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;
    use crate::testing::on_mem_pair;

    #[test]
    fn triples_are_correct_and_uniform() {
        let n = 10_000;
        let (t0, t1) = on_mem_pair(
            |mut x| {
                let mut ot = OtPair::setup(&mut x, Role::Server, &mut Prg::from_entropy()).unwrap();
                bit_triples(&mut ot, &mut x, Role::Server, n).unwrap()
            },
            move |mut y| {
                let mut ot = OtPair::setup(&mut y, Role::Client, &mut Prg::from_entropy()).unwrap();
                bit_triples(&mut ot, &mut y, Role::Client, n).unwrap()
            },
        );
        let (mut ca, mut cb, mut cc) = (0, 0, 0);
        for i in 0..n {
            let (a0, b0, c0) = t0.get(i);
            let (a1, b1, c1) = t1.get(i);
            assert_eq!(c0 ^ c1, (a0 ^ a1) & (b0 ^ b1), "triple {i}");
            ca += (a0 ^ a1) as usize;
            cb += (b0 ^ b1) as usize;
            cc += (c0 ^ c1) as usize;
        }
        let sd = (n as f64).sqrt() / 2.0;
        assert!((ca as f64 - n as f64 / 2.0).abs() < 6.0 * sd);
        assert!((cb as f64 - n as f64 / 2.0).abs() < 6.0 * sd);
        assert!((cc as f64 - n as f64 / 4.0).abs() < 6.0 * sd);
        // Each party's own shares are uniform as well.
        let ones: u32 =
            t0.a.iter()
                .chain(&t0.b)
                .chain(&t1.c)
                .map(|w| w.count_ones())
                .sum();
        assert!((ones as f64 - 1.5 * n as f64).abs() < 6.0 * (3.0 * n as f64).sqrt() / 2.0);
    }
}
