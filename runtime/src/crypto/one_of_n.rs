//! 1-out-of-N OT of ℓ-bit messages from log₂N random 1-out-of-2 OTs (Naor–Pinkas, "Computationally
//! secure oblivious transfer", J. Cryptology 2005, §4; the construction Cheetah §2.3 cites as the
//! alternative to KK13), for CrypTFlow2's millionaire protocol (N = 16) and lookup tables.
//!
//! **Protocol.** Let k = ⌈log₂N⌉. For each instance the parties run k random OTs; the receiver's
//! j-th choice bit is bit j of its index c, so it learns the keys s_j^{c_j}. The sender encrypts
//! message x under pad_x = ⊕_j F(s_j^{x_j}, x), with F the fixed-key-AES PRF
//! [`PrfKey`](super::hash::PrfKey) (computed here in batches), and sends all N ciphertexts; the receiver can compute only
//! pad_c. Every other pad contains F under a key it does not know.
//!
//! **Cost.** k·16 bytes (the COTs) + N·ℓ bits (the ciphertexts) per instance, two flights.
//! Sender: 2k + N·k AES calls per instance; receiver: 2k. For N = 16, ℓ = 2: 68 bytes. (KK13
//! would need 32 + 4 bytes; it is left for later.)

use rayon::prelude::*;

use super::block::Block;
use super::hash::{permute, sigma};
use super::iknp::{CotReceiver, CotSender};
use super::pack::mask;
use crate::net::{Channel, NetError};

/// ⌈log₂ n⌉ for n ≥ 2.
fn log2_ceil(n: usize) -> usize {
    (usize::BITS - (n - 1).leading_zeros()) as usize
}

fn check(n_msgs: usize, bits: u32) -> Result<usize, NetError> {
    if !(2..=1 << 16).contains(&n_msgs) {
        return Err(NetError::InvalidArgument(format!(
            "1-out-of-N OT needs 2 ≤ N ≤ 65536, not {n_msgs}"
        )));
    }
    if !(1..=64).contains(&bits) {
        return Err(NetError::InvalidArgument(format!(
            "bit width {bits} is not in 1..=64"
        )));
    }
    Ok(log2_ceil(n_msgs))
}

/// Instances per rayon task.
const PAR_CHUNK: usize = 256;

impl CotSender {
    /// 1-out-of-N OT: `msgs[i * n_msgs + x]` is message x of instance i (`bits` bits each).
    pub fn send_1_of_n<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        msgs: &[u64],
        n_msgs: usize,
        bits: u32,
    ) -> Result<(), NetError> {
        let k = check(n_msgs, bits)?;
        if msgs.len() / n_msgs * n_msgs != msgs.len() {
            return Err(NetError::InvalidArgument(format!(
                "{} messages are not a whole number of {n_msgs}-message instances",
                msgs.len()
            )));
        }
        let n = msgs.len() / n_msgs;
        let keys = self.send_rot(ch, n * k)?;
        let m = mask(bits);
        let mut cts = vec![0u64; n * n_msgs];
        cts.par_chunks_mut(PAR_CHUNK * n_msgs)
            .zip(msgs.par_chunks(PAR_CHUNK * n_msgs))
            .zip(keys.par_chunks(PAR_CHUNK * k))
            .for_each(|((ct, ms), ks)| {
                // a[2j + b] = π(σ(s_j^b)); pad_x = ⊕_j π(a[2j + x_j] ⊕ x) ⊕ a[2j + x_j].
                let mut a = vec![Block::ZERO; 2 * k];
                let mut buf = vec![Block::ZERO; n_msgs * k];
                for ((ct, ms), ks) in ct
                    .chunks_mut(n_msgs)
                    .zip(ms.chunks(n_msgs))
                    .zip(ks.chunks(k))
                {
                    for (j, pair) in ks.iter().enumerate() {
                        a[2 * j] = sigma(pair[0]);
                        a[2 * j + 1] = sigma(pair[1]);
                    }
                    permute(&mut a);
                    for (x, row) in buf.chunks_exact_mut(k).enumerate() {
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = a[2 * j + ((x >> j) & 1)] ^ Block(x as u128);
                        }
                    }
                    permute(&mut buf);
                    for (x, ((c, msg), row)) in
                        ct.iter_mut().zip(ms).zip(buf.chunks_exact(k)).enumerate()
                    {
                        let mut pad = 0u64;
                        for (j, v) in row.iter().enumerate() {
                            pad ^= (*v ^ a[2 * j + ((x >> j) & 1)]).low();
                        }
                        *c = (msg ^ pad) & m;
                    }
                }
            });
        ch.send_packed(&cts, bits)?;
        ch.flush()
    }
}

impl CotReceiver {
    /// 1-out-of-N OT: returns message `choices[i]` of each instance i.
    pub fn recv_1_of_n<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[u32],
        n_msgs: usize,
        bits: u32,
    ) -> Result<Vec<u64>, NetError> {
        let k = check(n_msgs, bits)?;
        if let Some(c) = choices.iter().find(|&&c| c as usize >= n_msgs) {
            return Err(NetError::InvalidArgument(format!(
                "choice {c} is out of range for 1-out-of-{n_msgs} OT"
            )));
        }
        let bitsel: Vec<bool> = choices
            .iter()
            .flat_map(|&c| (0..k).map(move |j| (c >> j) & 1 == 1))
            .collect();
        let keys = self.recv_rot(ch, &bitsel)?;
        let cts = ch.recv_packed(choices.len() * n_msgs, bits)?;
        let m = mask(bits);
        let mut out = vec![0u64; choices.len()];
        out.par_chunks_mut(PAR_CHUNK)
            .zip(choices.par_chunks(PAR_CHUNK))
            .zip(keys.par_chunks(PAR_CHUNK * k))
            .zip(cts.par_chunks(PAR_CHUNK * n_msgs))
            .for_each(|(((o, cs), ks), ct)| {
                // a = π(σ(s_j^{c_j})), then pad_c = ⊕_j π(a ⊕ c) ⊕ a, all batched.
                let mut a: Vec<Block> = ks.iter().map(|&key| sigma(key)).collect();
                permute(&mut a);
                let mut b: Vec<Block> = a
                    .iter()
                    .enumerate()
                    .map(|(i, &ai)| ai ^ Block(cs[i / k] as u128))
                    .collect();
                permute(&mut b);
                for (i, (o, &c)) in o.iter_mut().zip(cs).enumerate() {
                    let mut pad = 0u64;
                    for j in i * k..(i + 1) * k {
                        pad ^= (a[j] ^ b[j]).low();
                    }
                    *o = (ct[i * n_msgs + c as usize] ^ pad) & m;
                }
            });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;
    use crate::net::mem;
    use rand::Rng;
    use std::time::Duration;

    fn run(n: usize, n_msgs: usize, bits: u32) {
        let mut p = Prg::from_entropy();
        let msgs = p.values(n * n_msgs, bits);
        let choices: Vec<u32> = (0..n).map(|_| p.gen_range(0..n_msgs as u32)).collect();
        let (m2, c2) = (msgs.clone(), choices.clone());
        let (mut a, mut b) = mem::pair(Duration::from_secs(30));
        let h = std::thread::spawn(move || {
            let mut r = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
            r.recv_1_of_n(&mut b, &c2, n_msgs, bits).unwrap()
        });
        let mut s = CotSender::setup(&mut a, &mut Prg::from_entropy()).unwrap();
        s.send_1_of_n(&mut a, &m2, n_msgs, bits).unwrap();
        let got = h.join().unwrap();
        for i in 0..n {
            assert_eq!(
                got[i],
                msgs[i * n_msgs + choices[i] as usize],
                "N {n_msgs} inst {i}"
            );
        }
    }

    #[test]
    fn one_of_n_matches_definition() {
        run(1000, 2, 1);
        run(1000, 4, 8);
        run(3000, 16, 2);
        run(300, 5, 64);
        run(50, 256, 37);
        run(0, 16, 2);
    }

    #[test]
    fn pads_are_uniform() {
        // With all-zero messages the ciphertexts are the pads; all of them, including the ones
        // the receiver cannot open, must look uniform.
        let n = 4096;
        let mut counts = [0u32; 256];
        let (mut a, b) = mem::pair(Duration::from_secs(30));
        let h = std::thread::spawn(move || {
            let mut tb = crate::net::tap::Tap::new(b);
            let mut r = CotReceiver::setup(&mut tb, &mut Prg::from_entropy()).unwrap();
            r.recv_1_of_n(&mut tb, &vec![3u32; n], 16, 8).unwrap();
            tb.received
        });
        let mut s = CotSender::setup(&mut a, &mut Prg::from_entropy()).unwrap();
        s.send_1_of_n(&mut a, &vec![0u64; n * 16], 16, 8).unwrap();
        let recv = h.join().unwrap();
        // The receiver's view: the base OT's 128 points, then the n·16 one-byte ciphertexts.
        assert_eq!(recv.len(), 32 * 128 + 16 * n);
        let cts = &recv[recv.len() - 16 * n..];
        for &c in cts {
            counts[c as usize] += 1;
        }
        // Chi-square with 255 degrees of freedom: mean 255, sd ≈ 22.6; allow 6 sd.
        let e = (16 * n) as f64 / 256.0;
        let chi: f64 = counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
        assert!(chi < 255.0 + 6.0 * 22.6, "chi-square {chi}");
    }
}
