//! OT flavours built on correlated OT ([`super::iknp`]), each breaking the global correlation
//! with the tweakable correlation-robust hash H(x, i) = [`tccr`](super::hash::tccr) where i is the
//! OT's global index (IKNP §3; ALSZ13 §5 for the correlated and random variants):
//!
//! | flavour | sender gets / gives | receiver gets | cost beyond the 16-byte COT |
//! |---|---|---|---|
//! | random OT (ROT) | random m_0 = H(K), m_1 = H(K ⊕ Δ) | b, m_b | nothing |
//! | chosen-message OT, 128-bit | gives m_0, m_1 | m_b | 32 bytes sender → receiver |
//! | chosen-message OT, ℓ-bit | gives m_0, m_1 | m_b | 2ℓ bits sender → receiver |
//! | correlated OT over Z_2^ℓ | gets random x, gives Δ_i | x + b·Δ_i mod 2^ℓ | ℓ bits sender → receiver |
//!
//! The last one is CrypTFlow2's `(2 1)-COT_ℓ` (ALSZ13): λ + ℓ bits per OT in total.
//! Flavours with a message from the sender take two flights (receiver → sender → receiver).

use rayon::prelude::*;

use super::block::Block;
use super::hash::tccr_many;
use super::iknp::{CotReceiver, CotSender};
use super::pack::{mask, pack_widths, packed_len_widths, unpack_widths};
use crate::net::{Channel, NetError};

/// Batches at least this large are hashed with rayon.
const PAR_MIN: usize = 1 << 14;
const PAR_CHUNK: usize = 1 << 12;

/// `xs[k] ← H(xs[k], first_tweak + k)`, in parallel for big batches.
pub(crate) fn hash_many(xs: &mut [Block], first_tweak: u64) {
    if xs.len() >= PAR_MIN {
        xs.par_chunks_mut(PAR_CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| tccr_many(chunk, first_tweak + (c * PAR_CHUNK) as u64));
    } else {
        tccr_many(xs, first_tweak);
    }
}

/// For every OT i, `out[i] = f(i, H(K_i, t+i), H(K_i ⊕ Δ, t+i))`, in cache-sized chunks and in
/// parallel, with no n-sized temporaries.
fn map_sender_pads<T, F>(k: &[Block], delta: Block, tweak: u64, out: &mut [T], f: F)
where
    T: Send,
    F: Fn(usize, Block, Block) -> T + Sync,
{
    let work = |c: usize, kc: &[Block], oc: &mut [T]| {
        let mut p0 = kc.to_vec();
        let mut p1: Vec<Block> = kc.iter().map(|&x| x ^ delta).collect();
        let first = tweak + (c * PAR_CHUNK) as u64;
        tccr_many(&mut p0, first);
        tccr_many(&mut p1, first);
        for (j, o) in oc.iter_mut().enumerate() {
            *o = f(c * PAR_CHUNK + j, p0[j], p1[j]);
        }
    };
    if k.len() >= PAR_MIN {
        k.par_chunks(PAR_CHUNK)
            .zip(out.par_chunks_mut(PAR_CHUNK))
            .enumerate()
            .for_each(|(c, (kc, oc))| work(c, kc, oc));
    } else {
        for (c, (kc, oc)) in k
            .chunks(PAR_CHUNK)
            .zip(out.chunks_mut(PAR_CHUNK))
            .enumerate()
        {
            work(c, kc, oc);
        }
    }
}

fn check_bits(bits: u32) -> Result<(), NetError> {
    if (1..=64).contains(&bits) {
        Ok(())
    } else {
        Err(NetError::InvalidArgument(format!(
            "bit width {bits} is not in 1..=64"
        )))
    }
}

impl CotSender {
    /// `n` random OTs with 128-bit messages: returns (m_0, m_1) per OT.
    pub fn send_rot<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
    ) -> Result<Vec<[Block; 2]>, NetError> {
        let tweak = self.counter;
        let k = self.send_cot(ch, n)?;
        let mut out = vec![[Block::ZERO; 2]; n];
        map_sender_pads(&k, self.delta(), tweak, &mut out, |_, a, b| [a, b]);
        Ok(out)
    }

    /// `n` random OTs whose receiver takes random choices ([`CotReceiver::recv_rot_random`]):
    /// returns (m_0, m_1) per OT. Under silent OT no message is sent.
    pub fn send_rot_random<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
    ) -> Result<Vec<[Block; 2]>, NetError> {
        let tweak = self.counter;
        let mut k = vec![Block::ZERO; n];
        self.send_cot_random_into(ch, &mut k)?;
        let mut out = vec![[Block::ZERO; 2]; n];
        map_sender_pads(&k, self.delta(), tweak, &mut out, |_, a, b| [a, b]);
        Ok(out)
    }

    /// Chosen-message OT of 128-bit messages.
    pub fn send_ot<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        msgs: &[[Block; 2]],
    ) -> Result<(), NetError> {
        let tweak = self.counter;
        let k = self.send_cot(ch, msgs.len())?;
        let mut out = vec![[Block::ZERO; 2]; msgs.len()];
        map_sender_pads(&k, self.delta(), tweak, &mut out, |i, a, b| {
            [a ^ msgs[i][0], b ^ msgs[i][1]]
        });
        ch.send_blocks(out.as_flattened())?;
        ch.flush()
    }

    /// Chosen-message OT of `bits`-bit messages (1..=64; higher bits are ignored).
    pub fn send_ot_bits<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        msgs: &[[u64; 2]],
        bits: u32,
    ) -> Result<(), NetError> {
        check_bits(bits)?;
        let tweak = self.counter;
        let k = self.send_cot(ch, msgs.len())?;
        let m = mask(bits);
        let mut out = vec![[0u64; 2]; msgs.len()];
        map_sender_pads(&k, self.delta(), tweak, &mut out, |i, a, b| {
            [(a.low() ^ msgs[i][0]) & m, (b.low() ^ msgs[i][1]) & m]
        });
        ch.send_packed(out.as_flattened(), bits)?;
        ch.flush()
    }

    /// Correlated OT over Z_2^ℓ (ℓ = `bits`): one per entry of `deltas`. Returns the sender's
    /// random x_i; the receiver gets x_i + b_i·Δ_i mod 2^ℓ.
    pub fn send_cot_ring<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        deltas: &[u64],
        bits: u32,
    ) -> Result<Vec<u64>, NetError> {
        check_bits(bits)?;
        let tweak = self.counter;
        let k = self.send_cot(ch, deltas.len())?;
        let m = mask(bits);
        let mut xd = vec![[0u64; 2]; deltas.len()];
        map_sender_pads(&k, self.delta(), tweak, &mut xd, |i, a, b| {
            let x = a.low() & m;
            [x, x.wrapping_add(deltas[i]).wrapping_sub(b.low()) & m]
        });
        let ds: Vec<u64> = xd.iter().map(|p| p[1]).collect();
        ch.send_packed(&ds, bits)?;
        ch.flush()?;
        Ok(xd.into_iter().map(|p| p[0]).collect())
    }

    /// [`Self::send_cot_ring`] with a width per OT: OT i is over Z_2^(widths\[i\]), so
    /// independent correlations of different rings share one call and its flights, each paying
    /// only its own width.
    pub fn send_cot_ring_each<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        deltas: &[u64],
        widths: &[u32],
    ) -> Result<Vec<u64>, NetError> {
        check_widths(deltas.len(), widths)?;
        let tweak = self.counter;
        let k = self.send_cot(ch, deltas.len())?;
        let mut xd = vec![[0u64; 2]; deltas.len()];
        map_sender_pads(&k, self.delta(), tweak, &mut xd, |i, a, b| {
            let m = mask(widths[i]);
            let x = a.low() & m;
            [x, x.wrapping_add(deltas[i]).wrapping_sub(b.low()) & m]
        });
        let ds: Vec<u64> = xd.iter().map(|p| p[1]).collect();
        ch.send(&pack_widths(&ds, widths))?;
        ch.flush()?;
        Ok(xd.into_iter().map(|p| p[0]).collect())
    }
}

fn check_widths(n: usize, widths: &[u32]) -> Result<(), NetError> {
    if widths.len() != n {
        return Err(NetError::InvalidArgument(format!(
            "{} widths for {n} correlated OTs",
            widths.len()
        )));
    }
    widths.iter().try_for_each(|&w| check_bits(w))
}

impl CotReceiver {
    /// Random OTs with chosen choice bits: returns m_{b_i}.
    pub fn recv_rot<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
    ) -> Result<Vec<Block>, NetError> {
        let tweak = self.counter;
        let mut m = self.recv_cot(ch, choices)?;
        hash_many(&mut m, tweak);
        Ok(m)
    }

    /// `n` random OTs with random choice bits: returns (b, m_b). The sender's side is
    /// [`CotSender::send_rot_random`].
    pub fn recv_rot_random<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
    ) -> Result<(Vec<bool>, Vec<Block>), NetError> {
        let tweak = self.counter;
        let (b, mut m) = self.recv_cot_random(ch, n)?;
        hash_many(&mut m, tweak);
        Ok((b, m))
    }

    /// Chosen-message OT of 128-bit messages: returns m_{b_i}.
    pub fn recv_ot<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
    ) -> Result<Vec<Block>, NetError> {
        let mut pads = self.recv_rot(ch, choices)?;
        let mut y = vec![Block::ZERO; 2 * choices.len()];
        ch.recv_blocks(&mut y)?;
        for (i, (p, &c)) in pads.iter_mut().zip(choices).enumerate() {
            *p ^= y[2 * i + c as usize];
        }
        Ok(pads)
    }

    /// Chosen-message OT of `bits`-bit messages: returns m_{b_i}.
    pub fn recv_ot_bits<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
        bits: u32,
    ) -> Result<Vec<u64>, NetError> {
        check_bits(bits)?;
        let pads = self.recv_rot(ch, choices)?;
        let y = ch.recv_packed(2 * choices.len(), bits)?;
        let m = mask(bits);
        Ok(pads
            .iter()
            .zip(choices)
            .enumerate()
            .map(|(i, (p, &c))| (p.low() ^ y[2 * i + c as usize]) & m)
            .collect())
    }

    /// Correlated OT over Z_2^ℓ: returns x_i + b_i·Δ_i mod 2^ℓ.
    pub fn recv_cot_ring<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
        bits: u32,
    ) -> Result<Vec<u64>, NetError> {
        check_bits(bits)?;
        let pads = self.recv_rot(ch, choices)?;
        let d = ch.recv_packed(choices.len(), bits)?;
        let m = mask(bits);
        Ok(pads
            .iter()
            .zip(choices)
            .zip(d)
            .map(|((p, &c), d)| p.low().wrapping_add(if c { d } else { 0 }) & m)
            .collect())
    }

    /// [`Self::recv_cot_ring`] with a width per OT (the sender's
    /// [`CotSender::send_cot_ring_each`]): x_i + b_i·Δ_i mod 2^(widths\[i\]).
    pub fn recv_cot_ring_each<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
        widths: &[u32],
    ) -> Result<Vec<u64>, NetError> {
        check_widths(choices.len(), widths)?;
        let pads = self.recv_rot(ch, choices)?;
        let d = unpack_widths(&ch.recv_vec(packed_len_widths(widths))?, widths);
        Ok(pads
            .iter()
            .zip(choices)
            .zip(d)
            .zip(widths)
            .map(|(((p, &c), d), &w)| p.low().wrapping_add(if c { d } else { 0 }) & mask(w))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prg::Prg;
    use crate::net::mem;
    use crate::testing::on_mem_pair;
    use rand::RngCore;

    /// Set up a sender (this thread) and a receiver (another thread) and run `s` and `r` on them.
    pub(crate) fn two_party<S, R, A, B>(s: S, r: R) -> (A, B)
    where
        S: FnOnce(&mut CotSender, &mut mem::MemChannel) -> A,
        R: FnOnce(&mut CotReceiver, &mut mem::MemChannel) -> B + Send + 'static,
        B: Send + 'static,
    {
        on_mem_pair(
            |mut a| {
                let mut sc = CotSender::setup(&mut a, &mut Prg::from_entropy()).unwrap();
                s(&mut sc, &mut a)
            },
            |mut b| {
                let mut rc = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
                r(&mut rc, &mut b)
            },
        )
    }

    #[test]
    fn rot_matches_definition_and_is_uniform() {
        let n = 10_000;
        let choices = Prg::from_entropy().bools(n);
        let c2 = choices.clone();
        let (pairs, (got, (rb, rm))) = two_party(
            |s, ch| {
                let mut v = s.send_rot(ch, n).unwrap();
                v.extend(s.send_rot(ch, 20_000).unwrap());
                v
            },
            move |r, ch| {
                let g = r.recv_rot(ch, &c2).unwrap();
                (g, r.recv_rot_random(ch, 20_000).unwrap())
            },
        );
        for i in 0..n {
            assert_eq!(got[i], pairs[i][choices[i] as usize]);
        }
        for i in 0..20_000 {
            assert_eq!(rm[i], pairs[n + i][rb[i] as usize]);
        }
        // Both messages of every OT are uniform and unrelated: m_0 ⊕ m_1 is not constant.
        let x: Vec<Block> = pairs.iter().map(|p| p[0] ^ p[1]).collect();
        assert!(x.windows(2).all(|w| w[0] != w[1]));
        for pos in [0usize, 1, 63, 64, 127] {
            for side in 0..2 {
                let c = pairs.iter().filter(|p| p[side].bit(pos)).count() as f64;
                assert!(
                    (c - 15_000.0).abs() < 6.0 * 122.5,
                    "pos {pos} side {side}: {c}"
                );
            }
        }
    }

    #[test]
    fn chosen_message_ot_matches_definition() {
        let n = 3000;
        let mut p = Prg::from_entropy();
        let msgs: Vec<[Block; 2]> = (0..n).map(|_| [p.block(), p.block()]).collect();
        let small: Vec<[u64; 2]> = (0..n).map(|_| [p.next_u64(), p.next_u64()]).collect();
        let choices = p.bools(n);
        let (m2, s2, c2) = (msgs.clone(), small.clone(), choices.clone());
        let (_, (got, got_small, got1)) = two_party(
            move |s, ch| {
                s.send_ot(ch, &m2).unwrap();
                s.send_ot_bits(ch, &s2, 13).unwrap();
                s.send_ot_bits(ch, &s2, 1).unwrap();
            },
            move |r, ch| {
                (
                    r.recv_ot(ch, &c2).unwrap(),
                    r.recv_ot_bits(ch, &c2, 13).unwrap(),
                    r.recv_ot_bits(ch, &c2, 1).unwrap(),
                )
            },
        );
        for i in 0..n {
            let c = choices[i] as usize;
            assert_eq!(got[i], msgs[i][c]);
            assert_eq!(got_small[i], small[i][c] & 0x1fff);
            assert_eq!(got1[i], small[i][c] & 1);
        }
    }

    #[test]
    fn ring_cot_matches_definition_and_is_uniform() {
        for bits in [1u32, 37, 64] {
            let n = 20_000;
            let mut p = Prg::from_entropy();
            let deltas = p.values(n, bits);
            let choices = p.bools(n);
            let (d2, c2) = (deltas.clone(), choices.clone());
            let ((xs, sent), (ys, recv_bytes)) = two_party(
                move |s, ch| {
                    let before = ch.stats().total.bytes_sent;
                    let xs = s.send_cot_ring(ch, &d2, bits).unwrap();
                    (xs, ch.stats().total.bytes_sent - before)
                },
                move |r, ch| {
                    let ys = r.recv_cot_ring(ch, &c2, bits).unwrap();
                    (ys, ch.stats().total.bytes_sent)
                },
            );
            let m = mask(bits);
            for i in 0..n {
                let want = xs[i].wrapping_add(if choices[i] { deltas[i] } else { 0 }) & m;
                assert_eq!(ys[i], want, "bits {bits} OT {i}");
                assert_eq!(xs[i] & !m, 0);
            }
            assert_eq!(sent, (n as u64 * bits as u64).div_ceil(8));
            assert!(recv_bytes >= 16 * n as u64);
            // The sender's x is uniform in Z_2^ℓ: test the top and bottom bits.
            for pos in [0, bits - 1] {
                let c = xs.iter().filter(|&&x| (x >> pos) & 1 == 1).count() as f64;
                assert!((c - n as f64 / 2.0).abs() < 6.0 * (n as f64).sqrt() / 2.0);
            }
        }
    }

    #[test]
    fn bad_bit_width_is_an_error() {
        let (e, _) = two_party(
            |s, ch| s.send_cot_ring(ch, &[1, 2], 65).unwrap_err(),
            |_, _| (),
        );
        assert!(matches!(e, NetError::InvalidArgument(_)));
    }
}
