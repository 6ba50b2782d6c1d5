//! 1-out-of-N OT of ℓ-bit messages from log₂N random 1-out-of-2 OTs (Naor–Pinkas, "Computationally
//! secure oblivious transfer", J. Cryptology 2005, §4; the construction Cheetah §2.3 cites as the
//! alternative to KK13), for CrypTFlow2's millionaire protocol (N = 16) and lookup tables.
//!
//! **Protocol.** Let k = ⌈log₂N⌉. For each instance the parties run k random OTs; the receiver's
//! j-th choice bit is bit j of its index c, so it learns the keys s_j^{c_j}. The sender encrypts
//! message x under pad_x = ⊕_j F(s_j^{x_j}, x) and sends all N ciphertexts; the receiver can
//! compute only pad_c. Every other pad contains F under a key it does not know. F(s, x) is the
//! ℓ bits at x·ℓ of the stream G(s)[0] ‖ G(s)[1] ‖ …, G(s)[t] = π(a ⊕ t) ⊕ a with a = π(σ(s)):
//! the tweakable correlation-robust hash of s under tweak t ([`super::hash`]), so a PRF of x
//! under the unknown key, as in Naor–Pinkas. One AES call gives 128 bits of pads (before:
//! one call per message and key).
//!
//! **Cost.** k·16 bytes (the COTs) + N·ℓ bits (the ciphertexts) per instance, two flights.
//! Sender: 2k·(1 + ⌈N·ℓ/128⌉) AES calls per instance (for N = 16, ℓ = 2: 16 instead of 72),
//! and when ℓ divides 64 the pads are XORed a word at a time; receiver: 3k. For N = 16, ℓ = 2:
//! 68 bytes. (KK13 would need 32 + 4 bytes; it is left for later.)

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
/// Blocks of key stream the sender expands in one AES batch (instances grouped up to it).
const EXPAND_BLOCKS: usize = 4096;

/// The pad stream of one instance: for each random-OT key s, the blocks G(s)[t] = π(a ⊕ t) ⊕ a
/// with a = π(σ(s)) (the tweakable correlation-robust hash of s under tweak t), t < `blocks`,
/// read as a string of bits in which message x's F(s, x) is the `bits` bits at x·bits.
struct Stream {
    n_msgs: usize,
    bits: u32,
    /// Blocks per key: ⌈N·bits / 128⌉.
    blocks: usize,
    /// When `bits` divides 64: per choice bit j, the slices of a word whose index has bit j
    /// set (0 once 2^j slices fill a word).
    choice_masks: Vec<u64>,
}

impl Stream {
    fn new(n_msgs: usize, bits: u32) -> Stream {
        let b = bits as usize;
        let choice_masks = if 64 % b == 0 {
            (0..usize::BITS as usize)
                .map(|j| {
                    (0..64 / b)
                        .filter(|s| (s >> j) & 1 == 1)
                        .fold(0, |acc, s| acc | (mask(bits) << (s * b)))
                })
                .collect()
        } else {
            Vec::new()
        };
        Stream {
            n_msgs,
            bits,
            blocks: (n_msgs * b).div_ceil(128),
            choice_masks,
        }
    }

    /// 64-bit words of one key's stream.
    fn words(&self) -> usize {
        2 * self.blocks
    }

    /// `g[key · blocks + t] = G(keys[key])[t]`.
    fn expand(&self, keys: &[Block], g: &mut [Block]) {
        let mut a: Vec<Block> = keys.iter().map(|&s| sigma(s)).collect();
        permute(&mut a);
        for (chunk, &ai) in g.chunks_exact_mut(self.blocks).zip(&a) {
            for (t, v) in chunk.iter_mut().enumerate() {
                *v = ai ^ Block(t as u128);
            }
        }
        permute(g);
        for (chunk, &ai) in g.chunks_exact_mut(self.blocks).zip(&a) {
            chunk.iter_mut().for_each(|v| *v ^= ai);
        }
    }

    /// Word `w` of key `key`'s stream in `g`.
    fn word(&self, g: &[Block], key: usize, w: usize) -> u64 {
        let b = g[key * self.blocks + w / 2];
        if w.is_multiple_of(2) {
            b.low()
        } else {
            b.high()
        }
    }

    /// The `bits` bits at bit `off` of a word string.
    fn extract(&self, word: impl Fn(usize) -> u64, off: usize) -> u64 {
        let (w, sh) = (off / 64, off % 64);
        let mut v = word(w) >> sh;
        if sh > 0 && sh + self.bits as usize > 64 {
            v |= word(w + 1) << (64 - sh);
        }
        v & mask(self.bits)
    }

    /// Every message's pad, ⊕_j F(s_j^{x_j}, x), from the expanded keys `g` (key 2j + b is
    /// s_j^b). When `bits` divides 64, whole words at a time: in word w the choice bit j is
    /// constant once 2^j slices fill a word, otherwise it follows a fixed mask.
    fn pads(&self, g: &[Block], k: usize, words: &mut [u64], pads: &mut [u64]) {
        let bits = self.bits as usize;
        if 64 % bits != 0 {
            for (x, pad) in pads.iter_mut().enumerate() {
                *pad = (0..k).fold(0, |acc, j| {
                    let key = 2 * j + ((x >> j) & 1);
                    acc ^ self.extract(|w| self.word(g, key, w), x * bits)
                });
            }
            return;
        }
        let per = 64 / bits;
        let used = (self.n_msgs * bits).div_ceil(64);
        words[..used].fill(0);
        for j in 0..k {
            let within = (1usize << j) < per;
            let pattern = self.choice_masks[j];
            for (w, out) in words[..used].iter_mut().enumerate() {
                let (w0, w1) = (self.word(g, 2 * j, w), self.word(g, 2 * j + 1, w));
                *out ^= if within {
                    (w0 & !pattern) | (w1 & pattern)
                } else if ((w * per) >> j) & 1 == 1 {
                    w1
                } else {
                    w0
                };
            }
        }
        for (x, pad) in pads.iter_mut().enumerate() {
            *pad = self.extract(|w| words[w], x * bits);
        }
    }

    /// The receiver's pads of messages `choices` from its keys s_j^{c_j} (`k` per instance): per
    /// key the two blocks that hold bits c·bits.. of its stream (the same one twice when they
    /// fit in one), all in two AES batches.
    fn pads_of(&self, keys: &[Block], choices: &[u32], k: usize) -> Vec<u64> {
        let bits = self.bits as usize;
        let mut a: Vec<Block> = keys.iter().map(|&s| sigma(s)).collect();
        permute(&mut a);
        let span = |c: u32| {
            let off = c as usize * bits;
            (off / 128, (off + bits - 1) / 128)
        };
        let mut g: Vec<Block> = a
            .iter()
            .enumerate()
            .flat_map(|(i, &ai)| {
                let (t0, t1) = span(choices[i / k]);
                [ai ^ Block(t0 as u128), ai ^ Block(t1 as u128)]
            })
            .collect();
        permute(&mut g);
        choices
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let local = c as usize * bits - 128 * span(c).0;
                (i * k..(i + 1) * k).fold(0, |acc, key| {
                    let (b0, b1) = (g[2 * key] ^ a[key], g[2 * key + 1] ^ a[key]);
                    let words = [b0.low(), b0.high(), b1.low(), b1.high()];
                    acc ^ self.extract(|w| words[w], local)
                })
            })
            .collect()
    }
}

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
        let stream = Stream::new(n_msgs, bits);
        let mut cts = vec![0u64; n * n_msgs];
        cts.par_chunks_mut(PAR_CHUNK * n_msgs)
            .zip(msgs.par_chunks(PAR_CHUNK * n_msgs))
            .zip(keys.par_chunks(PAR_CHUNK * k))
            .for_each(|((ct, ms), ks)| {
                // Instances expanded together, so that AES runs on long batches.
                let per = 2 * k * stream.blocks;
                let group = (EXPAND_BLOCKS / per).max(1);
                let mut g = vec![Block::ZERO; group * per];
                let mut words = vec![0u64; stream.words()];
                let mut pads = vec![0u64; n_msgs];
                for ((ct, ms), ks) in ct
                    .chunks_mut(group * n_msgs)
                    .zip(ms.chunks(group * n_msgs))
                    .zip(ks.chunks(group * k))
                {
                    let a: Vec<Block> = ks.iter().flat_map(|p| [p[0], p[1]]).collect();
                    let g = &mut g[..ks.len() / k * per];
                    stream.expand(&a, g);
                    for ((ct, ms), g) in ct
                        .chunks_mut(n_msgs)
                        .zip(ms.chunks(n_msgs))
                        .zip(g.chunks(per))
                    {
                        stream.pads(g, k, &mut words, &mut pads);
                        for ((c, &msg), &pad) in ct.iter_mut().zip(ms).zip(&pads) {
                            *c = (msg ^ pad) & m;
                        }
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
        let stream = Stream::new(n_msgs, bits);
        let mut out = vec![0u64; choices.len()];
        out.par_chunks_mut(PAR_CHUNK)
            .zip(choices.par_chunks(PAR_CHUNK))
            .zip(keys.par_chunks(PAR_CHUNK * k))
            .zip(cts.par_chunks(PAR_CHUNK * n_msgs))
            .for_each(|(((o, cs), ks), ct)| {
                let pads = stream.pads_of(ks, cs, k);
                for (i, ((o, &c), pad)) in o.iter_mut().zip(cs).zip(pads).enumerate() {
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
    use crate::testing::on_mem_pair;
    use rand::Rng;

    fn run(n: usize, n_msgs: usize, bits: u32) {
        let mut p = Prg::from_entropy();
        let msgs = p.values(n * n_msgs, bits);
        let choices: Vec<u32> = (0..n).map(|_| p.gen_range(0..n_msgs as u32)).collect();
        let (m2, c2) = (msgs.clone(), choices.clone());
        let ((), got) = on_mem_pair(
            |mut a| {
                let mut s = CotSender::setup(&mut a, &mut Prg::from_entropy()).unwrap();
                s.send_1_of_n(&mut a, &m2, n_msgs, bits).unwrap();
            },
            move |mut b| {
                let mut r = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
                r.recv_1_of_n(&mut b, &c2, n_msgs, bits).unwrap()
            },
        );
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
        let ((), recv) = on_mem_pair(
            |mut a| {
                let mut s = CotSender::setup(&mut a, &mut Prg::from_entropy()).unwrap();
                s.send_1_of_n(&mut a, &vec![0u64; n * 16], 16, 8).unwrap();
            },
            move |b| {
                let mut tb = crate::net::tap::Tap::new(b);
                let mut r = CotReceiver::setup(&mut tb, &mut Prg::from_entropy()).unwrap();
                r.recv_1_of_n(&mut tb, &vec![3u32; n], 16, 8).unwrap();
                tb.received
            },
        );
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
