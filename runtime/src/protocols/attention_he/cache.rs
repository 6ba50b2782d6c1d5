//! One party's state of a persistent cache operand and its offline part, [`prepare`] (step 2
//! of the protocol in the module docs of [`super`]).

use rayon::prelude::*;

use super::{check_session, invalid, AttnLayout, DuplexHe};
use crate::crypto::rlwe::eval::{expand, NttCiphertext};
use crate::crypto::rlwe::{Plain, Seeded, N as DEG};
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Role};
use crate::protocols::shares::Ring;
use crate::protocols::ProtocolError;

/// One party's state of a persistent cache operand: its pre-chosen shares r_own, the rows it
/// holds as M − r_peer, and the peer's encryptions of 2^(s·l)·r_peer.
pub struct SharedCache {
    pub(super) layout: AttnLayout,
    /// r_own, [blocks·block_rows × c].
    pub(super) own_r: Vec<u64>,
    /// M − r_peer for the rows re-shared so far, [rows × c].
    pub(super) local: Vec<u64>,
    /// Rows re-shared so far.
    pub(super) rows: usize,
    /// Blocks prepared (both parties' encryptions exchanged).
    pub(super) blocks: usize,
    /// The peer's ciphertexts, indexed by [`AttnLayout::ct_index`].
    pub(super) peer: Vec<NttCiphertext>,
    pub(super) rng: Prg,
}

impl SharedCache {
    /// An empty cache (nothing prepared, no rows).
    pub fn new(layout: AttnLayout) -> SharedCache {
        SharedCache {
            layout,
            own_r: Vec::new(),
            local: Vec::new(),
            rows: 0,
            blocks: 0,
            peer: Vec::new(),
            rng: Prg::from_entropy(),
        }
    }

    pub fn layout(&self) -> &AttnLayout {
        &self.layout
    }

    /// Cache rows re-shared so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Cache rows covered by prepared encryptions.
    pub fn capacity(&self) -> usize {
        (self.blocks * self.layout.block_rows()).min(self.layout.max_positions)
    }

    /// Bytes held (the peer's expanded ciphertexts dominate: 128 KiB each).
    pub fn memory_bytes(&self) -> usize {
        (self.own_r.len() + self.local.len()) * 8 + self.peer.len() * 4 * DEG * 8
    }
}

/// Prepare the encryptions for the first `rows` cache rows (a no-op for rows already covered):
/// both parties draw their pre-chosen shares for the new blocks and exchange their encryptions,
/// the client's first. Both parties call it with the same `rows`.
pub fn prepare<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    rows: usize,
) -> Result<(), ProtocolError> {
    let l = cache.layout;
    check_session(he, role, ring, &l)?;
    if rows > l.max_positions {
        return Err(invalid(format!(
            "{rows} rows exceed the layout's {} positions",
            l.max_positions
        )));
    }
    let (from, to) = (cache.blocks, l.blocks(rows));
    if to <= from {
        return Ok(());
    }
    let sk = he.own_key()?;
    let plain = Plain::new(ring.bits)?;
    let c = l.width();
    let new_r = ring.random(&mut cache.rng, (to - from) * l.block_rows() * c);
    cache.own_r.extend_from_slice(&new_r);
    let per_block = l.cts_per_block();
    let count = (to - from) * per_block;
    let wire = Seeded::wire_len();
    let seeds: Vec<Block> = (0..count).map(|_| cache.rng.block()).collect();
    let own_r = &cache.own_r;
    let mut mine = vec![0u8; count * wire];
    mine.par_chunks_mut(wire)
        .zip(seeds.par_iter())
        .enumerate()
        .try_for_each(|(idx, (dst, &seed))| -> Result<(), ProtocolError> {
            let (cb, rest) = (from + idx / per_block, idx % per_block);
            let li = rest % l.limbs as usize;
            let sub = (rest / l.limbs as usize) % l.subs();
            let h = rest / (l.limbs as usize * l.subs());
            let poly = l.matrix_poly(own_r, cb, h, sub, li as u32);
            let ct = sk.encrypt(plain, &poly, &mut Prg::new(seed))?;
            let mut bytes = Vec::with_capacity(wire);
            ct.write(&mut bytes);
            dst.copy_from_slice(&bytes);
            Ok(())
        })?;
    let theirs = match role {
        Role::Client => {
            ch.send(&mine)?;
            ch.flush()?;
            ch.recv_vec(mine.len())?
        }
        Role::Server => {
            let theirs = ch.recv_vec(mine.len())?;
            ch.send(&mine)?;
            ch.flush()?;
            theirs
        }
    };
    drop(mine);
    let expanded = theirs
        .par_chunks(wire)
        .map(|b| Ok(expand(&Seeded::read(b)?, None, None)))
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    // Received in index order: block, head, sub-block, limb.
    debug_assert_eq!(cache.peer.len(), l.ct_index(from, 0, 0, 0));
    cache.peer.extend(expanded);
    cache.blocks = to;
    Ok(())
}
