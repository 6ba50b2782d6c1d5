//! The server's side of a preparation: its key and gadget ciphertexts, the decryption of the
//! client's products, the trees and the corrections (steps 1 to 5 of *Preparation*).

use rayon::prelude::*;

use super::blocks::{block_rows, BlockScratch};
use super::params::ct_layout;
use super::{phase, SvoleParams};
use crate::crypto::pack::unpack;
use crate::crypto::pprf;
use crate::crypto::qc_code::QcCode;
use crate::crypto::rlwe::{Plain, SecretKey, Seeded, SwitchedCiphertext, N};
use crate::crypto::{Block, OtPair, Prg};
use crate::net::{Channel, Role};
use crate::protocols::masked_matmul::Correlation;
use crate::protocols::shares::{send_ring, Ring};
use crate::protocols::ProtocolError;

/// The server's gadget plaintext of row i, chunk c, limb g: 2^(w·g)·y′_i over the chunk's columns.
fn gadget_row(ring: Ring, p: &SvoleParams, w: &[i64], i: usize, c: usize, g: u32) -> Vec<u64> {
    let sh = p.limb_bits(ring) * g;
    let scale = if sh >= 64 { 0 } else { ring.reduce(1u64 << sh) };
    let start = c * p.chunk_cols();
    (0..p.chunk_len(c))
        .map(|l| ring.mul(ring.from_signed(w[i * p.cols + start + l]), scale))
        .collect()
}

/// The server's side of [`super::prepare`], with the weights `w`.
pub(super) fn prepare<C: Channel + ?Sized>(
    ot: &mut OtPair,
    ch: &mut C,
    ring: Ring,
    p: SvoleParams,
    code: &QcCode,
    w: &[i64],
) -> Result<Correlation, ProtocolError> {
    let plain = Plain::new(ring.bits)?;
    let out = p.output(ring)?;
    let cost = p.cost(ring)?;
    let mut rng = Prg::from_entropy();
    let sk = SecretKey::generate(&mut rng);
    let base = ch.scope().to_string();
    phase(ch, &base, "keys");
    // 1. The public key and the gadget ciphertexts, row-major (row, chunk, limb).
    let wire = Seeded::wire_len();
    let g_n = p.limbs as usize;
    let n_cts = g_n * p.inner * p.chunks();
    let seeds = rng.blocks(n_cts);
    let mut msg = Vec::with_capacity((1 + n_cts) * wire);
    sk.public_key(&mut rng).write(&mut msg);
    let cts = (0..n_cts)
        .into_par_iter()
        .map(|idx| {
            let (i, c, g) = (
                idx / (g_n * p.chunks()),
                (idx / g_n) % p.chunks(),
                idx % g_n,
            );
            let row = gadget_row(ring, &p, w, i, c, g as u32);
            let ct = sk.encrypt(plain, &row, &mut Prg::new(seeds[idx]))?;
            let mut b = Vec::with_capacity(wire);
            ct.write(&mut b);
            Ok(b)
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    for b in cts {
        msg.extend_from_slice(&b);
    }
    ch.send(&msg)?;
    ch.flush()?;
    drop(msg);
    // 2. The client's products: s_(i,b) = β·y′_i − R, stored block-major (b, i, column).
    phase(ch, &base, "products");
    let resp = ch.recv_vec(cost.products_up)?;
    let (t, k, m) = (p.noise, p.cols, p.inner);
    let layout = ct_layout(&p, &out);
    let decrypted: Vec<Vec<u64>> = layout
        .par_iter()
        .map(|l| {
            let a = unpack(&resp[l.offset..l.offset + l.a_len], N, out.k);
            let b = unpack(
                &resp[l.offset + l.a_len..l.offset + l.a_len + l.b_len],
                l.count * l.kc,
                out.b_bits,
            );
            let ct = SwitchedCiphertext {
                k: out.k,
                b_bits: out.b_bits,
                a,
                b,
            };
            sk.decrypt_switched(plain, &ct, &l.positions())
        })
        .collect();
    drop(resp);
    let mut s = vec![0u64; t * m * k];
    for (l, vals) in layout.iter().zip(decrypted) {
        for jj in 0..l.count {
            let b = l.first + jj;
            let dst = &mut s[(b * m + l.row) * k + l.col0..][..l.kc];
            dst.copy_from_slice(&vals[jj * l.kc..(jj + 1) * l.kc]);
        }
    }
    // 3. The trees.
    let noise_len = code.noise_len();
    let groups = p.groups(noise_len);
    let roots = rng.blocks(m * t);
    let (leaves, sums) = pprf::expand_map(&groups, &roots, |_, l| l.to_vec())?;
    phase(ch, &base, "trees");
    pprf::send_sums(&mut ot.sender, ch, &sums)?;
    let rows: Vec<Vec<Block>> = leaves.chunks(2).map(|g| g.concat()).collect();
    drop(leaves);
    // 4. Σ_i W′_i and the corrections d = Σ_(p∈b) G(λ) − s, block by block.
    let blocks = p.blocks(noise_len);
    let mut acc = vec![0u64; noise_len * k];
    let acc_parts = block_rows(&mut acc, &blocks, k);
    s.par_chunks_mut(m * k)
        .zip(acc_parts.into_par_iter())
        .zip(blocks.par_iter())
        .for_each(|((s_b, acc_b), &(start, len))| {
            let mut scratch = BlockScratch::new(k);
            for (i, row) in rows.iter().enumerate() {
                let sigma = scratch.add_block(&row[start..start + len], None, ring.bits, acc_b);
                let d = &mut s_b[i * k..(i + 1) * k];
                for (x, &sg) in d.iter_mut().zip(sigma) {
                    *x = ring.sub(sg, *x);
                }
            }
        });
    drop(rows);
    phase(ch, &base, "corrections");
    send_ring(ch, ring, &s)?;
    ch.flush()?;
    ch.set_scope(&base);
    drop(s);
    // 5. S = H·Σ_i W′_i.
    let shares = code.compress_columns(&acc, k)?;
    Ok(Correlation::new(
        Role::Server,
        p.rows,
        p.inner,
        p.cols,
        Vec::new(),
        shares,
    ))
}
