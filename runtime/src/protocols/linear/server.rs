//! The server's part of [`super::linear_with`]: its share added into the client's ciphertexts,
//! the products with the weight polynomials (pre-encoded, or encoded on the way pass by pass),
//! and the returns with fresh masks.

use rayon::prelude::*;

use super::{limb_scale, Packing, ServerWeights};
use crate::crypto::pack::{pack, packed_len};
use crate::crypto::rlwe::eval::{expand, finalize, Accumulator, NttCiphertext, SwitchedCiphertext};
use crate::crypto::rlwe::{encode_plain, HeSession, Plain, Seeded, N as DEG, PRIMES};
use crate::crypto::{Block, Prg};
use crate::net::Channel;
use crate::protocols::shares::Ring;
use crate::protocols::ProtocolError;

/// Expanded ciphertexts a product from integer weights holds at once: the row groups of one
/// pass, for which each (limb, column block) of weight polynomials is encoded once.
pub(super) const STREAM_BYTES: usize = 256 << 20;

/// Row groups per pass of the server: one with pre-encoded weights (the least held), as many as
/// `held` bytes of expanded ciphertexts allow (A per group) with integer weights.
pub(super) fn groups_per_pass(w: ServerWeights<'_>, a: usize, held: usize) -> usize {
    match w {
        ServerWeights::Encoded(_) => 1,
        ServerWeights::Plain(_) => (held / (a * 2 * PRIMES * DEG * 8)).max(1),
    }
}

/// One returned result: (limb, row group, column block), the switched ciphertext and its masks R.
type Returned = (usize, usize, usize, SwitchedCiphertext, Vec<u64>);

#[allow(clippy::too_many_arguments)]
pub(super) fn server<C: Channel + ?Sized>(
    he: &HeSession,
    ch: &mut C,
    ring: Ring,
    p: &Packing,
    x: &[u64],
    t: usize,
    (w, per_pass): (ServerWeights<'_>, usize),
    bias: &[i64],
) -> Result<Vec<u64>, ProtocolError> {
    let plain = Plain::new(ring.bits)?;
    let groups = t.div_ceil(p.rows_per_ct);
    let a = p.in_blocks();
    let cost = p.cost(t);
    let wire = Seeded::wire_len();
    let msg = ch.recv_vec(cost.bytes_up)?;
    let mut y: Vec<u64> = (0..t * p.n)
        .map(|i| ring.from_signed(bias[i % p.n]))
        .collect();
    let a_len = packed_len(DEG, p.out.k);
    let mut a_out = vec![0u8; cost.cts_down * a_len];
    let mut b_out: Vec<Vec<u64>> = vec![Vec::new(); cost.cts_down];
    // Row groups `per_pass` at a time: their ciphertexts expanded with this party's share,
    // then every (limb, column block) result of the pass; integer weights are encoded once per
    // pass.
    for g0 in (0..groups).step_by(per_pass) {
        let pass = g0..groups.min(g0 + per_pass);
        let cts = (0..pass.len() * a)
            .into_par_iter()
            .map(|i| {
                let (g, alpha) = (g0 + i / a, i % a);
                let idx = g * a + alpha;
                let ct = Seeded::read(&msg[idx * wire..(idx + 1) * wire])?;
                let own = p.activation_poly(x, t, g, alpha);
                Ok(expand(&ct, Some(plain), Some(&own)))
            })
            .collect::<Result<Vec<_>, ProtocolError>>()?;
        for (limb, g, beta, sw, masks) in pass_results(he, ring, p, t, w, pass, &cts)? {
            let idx = (limb * groups + g) * p.out_blocks() + beta;
            a_out[idx * a_len..(idx + 1) * a_len].copy_from_slice(&pack(&sw.a, p.out.k));
            b_out[idx] = sw.b;
            let scale = limb_scale(ring, p, limb);
            for ((_, r, col), m) in p.outputs(t, g, beta).into_iter().zip(masks) {
                let cell = &mut y[r * p.n + col];
                *cell = ring.add(*cell, ring.mul(scale, m));
            }
        }
    }
    drop(msg);
    let b_flat: Vec<u64> = b_out.into_iter().flatten().collect();
    ch.send(&a_out)?;
    ch.send(&pack(&b_flat, p.out.b_bits))?;
    ch.flush()?;
    Ok(y)
}

/// Every (limb, column block) result of the row groups `pass`, whose expanded ciphertexts are
/// `cts` (group by group, A each): products with the weight polynomials, then the return
/// ([`finalize`]) with fresh masks R.
fn pass_results(
    he: &HeSession,
    ring: Ring,
    p: &Packing,
    t: usize,
    w: ServerWeights<'_>,
    pass: std::ops::Range<usize>,
    cts: &[NttCiphertext],
) -> Result<Vec<Returned>, ProtocolError> {
    let pk = he.public_key()?;
    let plain = Plain::new(ring.bits)?;
    let a = p.in_blocks();
    let mut rng = Prg::from_entropy();
    let jobs: Vec<(usize, usize, Block)> = (0..p.limbs as usize)
        .flat_map(|limb| (0..p.out_blocks()).map(move |beta| (limb, beta)))
        .map(|(limb, beta)| (limb, beta, rng.block()))
        .collect();
    let per_job = jobs
        .par_iter()
        .map(|&(limb, beta, seed)| {
            let fresh: Vec<u64>;
            let polys: Vec<&[u64]> = match w {
                ServerWeights::Encoded(e) => {
                    (0..a).map(|alpha| e.poly(limb, beta, alpha)).collect()
                }
                ServerWeights::Plain(v) => {
                    let mut out = vec![0u64; a * PRIMES * DEG];
                    for (alpha, dst) in out.chunks_exact_mut(PRIMES * DEG).enumerate() {
                        encode_plain(&p.weight_block(v, limb as u32, beta, alpha), dst);
                    }
                    fresh = out;
                    fresh.chunks_exact(PRIMES * DEG).collect()
                }
            };
            let mut prg = Prg::new(seed);
            pass.clone()
                .map(|g| {
                    let mut acc = Accumulator::new();
                    let group = &cts[(g - pass.start) * a..(g - pass.start + 1) * a];
                    for (ct, poly) in group.iter().zip(&polys) {
                        acc.mac(ct, poly);
                    }
                    let outs = p.outputs(t, g, beta);
                    let positions: Vec<usize> = outs.iter().map(|o| o.0).collect();
                    let masks = ring.random(&mut prg, outs.len());
                    let sw = finalize(
                        acc.finish(),
                        pk,
                        plain,
                        &p.out,
                        &positions,
                        &masks,
                        &mut prg,
                    )?;
                    Ok((limb, g, beta, sw, masks))
                })
                .collect::<Result<Vec<_>, ProtocolError>>()
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    Ok(per_job.into_iter().flatten().collect())
}
