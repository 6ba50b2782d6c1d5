//! The client's side of a preparation: its noise, the masked products it returns under the
//! server's key, the punctured trees and its shares (steps 1 to 5 of *Preparation*).

use rand::{Rng, RngCore};
use rayon::prelude::*;

use super::blocks::{block_rows, BlockScratch};
use super::params::ct_layout;
use super::{phase, SvoleParams};
use crate::crypto::pack::{mask, pack};
use crate::crypto::pprf;
use crate::crypto::qc_code::QcCode;
use crate::crypto::rlwe::eval::{expand, finalize, Accumulator, PublicKeyNtt};
use crate::crypto::rlwe::{encode_plain, OutputParams, Plain, ReturnCount, Seeded, N, PRIMES};
use crate::crypto::{Block, OtPair, Prg};
use crate::net::{Channel, NetError, Role};
use crate::protocols::masked_matmul::Correlation;
use crate::protocols::shares::{recv_ring, Ring};
use crate::protocols::ProtocolError;

/// The client's mask R_(i,b) ∈ Z_2^ℓ^k, from its per-(i, b) key.
fn mask_of(ring: Ring, key: Block, k: usize) -> Vec<u64> {
    ring.random(&mut Prg::new(key), k)
}

/// The client's secrets of a preparation, per (weight row i, block b) at i·t + b: the noise
/// position α in the block, its odd value β, and the key of the mask R_(i,b).
struct Noise {
    alpha: Vec<usize>,
    beta: Vec<u64>,
    mask_keys: Vec<Block>,
}

impl Noise {
    /// Draw the noise (per (row, block) a position in the block and an odd value), then the
    /// mask keys.
    fn draw(rng: &mut Prg, ring: Ring, p: &SvoleParams, blocks: &[(usize, usize)]) -> Noise {
        let (t, m) = (p.noise, p.inner);
        let alpha: Vec<usize> = (0..m * t)
            .map(|idx| rng.gen_range(0..blocks[idx % t].1))
            .collect();
        let beta: Vec<u64> = (0..m * t)
            .map(|_| (rng.next_u64() | 1) & ring.mask())
            .collect();
        let mask_keys = rng.blocks(m * t);
        Noise {
            alpha,
            beta,
            mask_keys,
        }
    }
}

/// The client's side of [`super::prepare`]; its returns count in `returns`.
pub(super) fn prepare<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    ring: Ring,
    p: SvoleParams,
    code: &QcCode,
    returns: Option<&ReturnCount>,
) -> Result<Correlation, ProtocolError> {
    let plain = Plain::new(ring.bits)?;
    let out = p.output(ring)?;
    let cost = p.cost(ring)?;
    let (t, k, m) = (p.noise, p.cols, p.inner);
    let mut rng = Prg::from_entropy();
    let noise_len = code.noise_len();
    let blocks = p.blocks(noise_len);
    let noise = Noise::draw(&mut rng, ring, &p, &blocks);
    // 1. The server's key and gadget ciphertexts.
    let base = ch.scope().to_string();
    phase(ch, &base, "keys");
    let wire = Seeded::wire_len();
    let keys = ch.recv_vec(cost.keys_down)?;
    let pk = PublicKeyNtt::new(&Seeded::read(&keys[..wire])?);
    let pk = match returns {
        Some(count) => pk.counting_in(count),
        None => pk,
    };
    // 2. The products β·y′_i, masked by R, returned.
    let parts = products(ring, &p, plain, &out, &pk, &keys, &noise, &mut rng)?;
    drop(keys);
    let msg = parts.concat();
    drop(parts);
    phase(ch, &base, "products");
    ch.send(&msg)?;
    ch.flush()?;
    drop(msg);
    // 3. The punctured trees.
    let groups = p.groups(noise_len);
    phase(ch, &base, "trees");
    let siblings = pprf::recv_siblings(&mut ot.receiver, ch, &groups, &noise.alpha)?;
    let leaves = pprf::expand_punctured_map(&groups, &noise.alpha, &siblings, |_, l| l.to_vec())?;
    let rows: Vec<Vec<Block>> = leaves.chunks(2).map(|g| g.concat()).collect();
    drop(leaves);
    // 4. The corrections, then Σ_i V′_i block by block.
    phase(ch, &base, "corrections");
    let d = recv_ring(ch, ring, t * m * k)?;
    ch.set_scope(&base);
    let acc = sum_rows(ring, &p, noise_len, &blocks, &rows, &d, &noise);
    drop(rows);
    drop(d);
    // 5. T = H·Σ_i V′_i (kept as −T), U = (H·e_i)_i.
    correlation(ring, &p, code, &blocks, &noise, acc)
}

/// Step 2: the client's returned ciphertexts in the order of [`ct_layout`], row by row (the
/// row's gadget ciphertexts in `keys` expanded once, then its returned ciphertexts): the
/// products β·y′_i under the server's key `pk`, masked by R; one seed from `rng` per ciphertext.
#[allow(clippy::too_many_arguments)]
fn products(
    ring: Ring,
    p: &SvoleParams,
    plain: Plain,
    out: &OutputParams,
    pk: &PublicKeyNtt,
    keys: &[u8],
    noise: &Noise,
    rng: &mut Prg,
) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let (t, k) = (p.noise, p.cols);
    let (beta, mask_keys) = (&noise.beta, &noise.mask_keys);
    let wire = Seeded::wire_len();
    let gadget = |i: usize, c: usize, g: usize| -> Result<Seeded, ProtocolError> {
        let idx = 1 + (i * p.chunks() + c) * p.limbs as usize + g;
        Ok(Seeded::read(&keys[idx * wire..(idx + 1) * wire])?)
    };
    let layout = ct_layout(p, out);
    let wbits = p.limb_bits(ring);
    let ct_seeds = rng.blocks(layout.len());
    let per_row = p.chunks() * p.cts_per_chunk();
    layout
        .par_chunks(per_row)
        .zip(ct_seeds.par_chunks(per_row))
        .map(|(slots, seeds)| {
            let row = slots[0].row;
            let expanded = (0..p.chunks())
                .flat_map(|c| (0..p.limbs as usize).map(move |g| (c, g)))
                .map(|(c, g)| Ok(expand(&gadget(row, c, g)?, None, None)))
                .collect::<Result<Vec<_>, ProtocolError>>()?;
            let mut bytes = Vec::new();
            for (l, &seed) in slots.iter().zip(seeds) {
                let c = l.col0 / p.chunk_cols();
                let mut acc = Accumulator::new();
                for g in 0..p.limbs as usize {
                    let mut coeffs = vec![0i64; N];
                    for jj in 0..l.count {
                        let b = beta[l.row * t + l.first + jj];
                        let limb = (b >> (wbits as usize * g)) & mask(wbits);
                        coeffs[jj * l.kc] = limb as i64;
                    }
                    let mut enc = vec![0u64; PRIMES * N];
                    encode_plain(&coeffs, &mut enc);
                    acc.mac(&expanded[c * p.limbs as usize + g], &enc);
                }
                let mut masks = Vec::with_capacity(l.count * l.kc);
                for jj in 0..l.count {
                    let r = mask_of(ring, mask_keys[l.row * t + l.first + jj], k);
                    masks.extend_from_slice(&r[l.col0..l.col0 + l.kc]);
                }
                let sw = finalize(
                    acc.finish(),
                    pk,
                    plain,
                    out,
                    &l.positions(),
                    &masks,
                    &mut Prg::new(seed),
                )?;
                bytes.extend_from_slice(&pack(&sw.a, out.k));
                bytes.extend_from_slice(&pack(&sw.b, out.b_bits));
            }
            Ok(bytes)
        })
        .collect::<Result<Vec<_>, ProtocolError>>()
}

/// Step 4: Σ_i V′_i (noise length × k) from the punctured trees' `rows` and the server's
/// corrections `d`, block by block: each block's leaves but the punctured one, and at the
/// punctured position d − Σ leaves − R.
fn sum_rows(
    ring: Ring,
    p: &SvoleParams,
    noise_len: usize,
    blocks: &[(usize, usize)],
    rows: &[Vec<Block>],
    d: &[u64],
    noise: &Noise,
) -> Vec<u64> {
    let (t, k, m) = (p.noise, p.cols, p.inner);
    let (alpha, mask_keys) = (&noise.alpha, &noise.mask_keys);
    let mut acc = vec![0u64; noise_len * k];
    let acc_parts = block_rows(&mut acc, blocks, k);
    d.par_chunks(m * k)
        .zip(acc_parts.into_par_iter())
        .zip(blocks.par_iter())
        .enumerate()
        .for_each(|(b, ((d_b, acc_b), &(start, len)))| {
            let mut scratch = BlockScratch::new(k);
            for (i, row) in rows.iter().enumerate() {
                let a = alpha[i * t + b];
                let sigma = scratch.add_block(&row[start..start + len], Some(a), ring.bits, acc_b);
                let r = mask_of(ring, mask_keys[i * t + b], k);
                let dst = &mut acc_b[a * k..(a + 1) * k];
                for c in 0..k {
                    let v = ring.sub(ring.sub(d_b[i * k + c], sigma[c]), r[c]);
                    dst[c] = dst[c].wrapping_add(v);
                }
            }
        });
    acc
}

/// Step 5: the client's correlation, T = H·Σ_i V′_i (kept as −T) from `acc` and the masks
/// U = (H·e_i)_i from the noise.
fn correlation(
    ring: Ring,
    p: &SvoleParams,
    code: &QcCode,
    blocks: &[(usize, usize)],
    noise: &Noise,
    acc: Vec<u64>,
) -> Result<Correlation, ProtocolError> {
    let (t, k, m) = (p.noise, p.cols, p.inner);
    let (alpha, beta) = (&noise.alpha, &noise.beta);
    let t_mat = code.compress_columns(&acc, k)?;
    drop(acc);
    let shares: Vec<u64> = t_mat.iter().map(|&x| ring.neg(x)).collect();
    let columns: Vec<Vec<u64>> = (0..m)
        .into_par_iter()
        .map(|i| {
            let noise: Vec<(usize, u64)> = (0..t)
                .map(|b| (blocks[b].0 + alpha[i * t + b], beta[i * t + b]))
                .collect();
            code.compress_sparse(&noise)
        })
        .collect::<Result<Vec<_>, NetError>>()?;
    let mut masks = vec![0u64; p.rows * m];
    masks.par_chunks_mut(m).enumerate().for_each(|(r, row)| {
        for (i, x) in row.iter_mut().enumerate() {
            *x = columns[i][r];
        }
    });
    Ok(Correlation::new(
        Role::Client,
        p.rows,
        p.inner,
        p.cols,
        masks,
        shares,
    ))
}
