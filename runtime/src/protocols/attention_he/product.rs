//! The online products q·Kᵀ ([`qk_t`]) and P·V ([`pv`]): steps 3 to 5 of the protocol in the
//! module docs of [`super`] — the checks, each party's products with the peer's encryptions
//! (per limb), the one flight each way, the decryption and the local term.

use rayon::prelude::*;

use super::{
    check_session, invalid, prepare, AttnLayout, DuplexHe, Operand, SharedCache, MAX_LIMBS,
};
use crate::crypto::pack::{pack, packed_len, unpack};
use crate::crypto::rlwe::eval::{
    finalize, Accumulator, NttCiphertext, PublicKeyNtt, SwitchedCiphertext,
};
use crate::crypto::rlwe::noise::OutputParams;
use crate::crypto::rlwe::params::ring as rlwe_ring;
use crate::crypto::rlwe::{Plain, SecretKey, N as DEG, PRIMES};
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Role};
use crate::protocols::shares::Ring;
use crate::protocols::ProtocolError;

/// Shares of the scores q·Kᵀ of every head, [heads × t × npos], for this party's shares of the
/// fresh queries `q` ([t × c]) and of the key cache `keys` ([npos × c], the cache as it stands
/// after this program's rows were appended; rows re-shared by earlier calls must be unchanged).
/// `cache` is this party's state of the key cache (an [`Operand::Keys`] layout).
#[allow(clippy::too_many_arguments)]
pub fn qk_t<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    q: &[u64],
    keys: &[u64],
    t: usize,
    causal: bool,
) -> Result<Vec<u64>, ProtocolError> {
    product(he, ch, role, ring, cache, Operand::Keys, q, keys, t, causal)
}

/// Shares of P·V for every head, [t × c], for this party's shares of the fresh probabilities
/// `p` ([heads × t × npos]) and of the value cache `values` ([npos × c], as for [`qk_t`]).
/// `cache` is this party's state of the value cache (an [`Operand::Values`] layout).
#[allow(clippy::too_many_arguments)]
pub fn pv<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    p: &[u64],
    values: &[u64],
    t: usize,
    causal: bool,
) -> Result<Vec<u64>, ProtocolError> {
    product(
        he,
        ch,
        role,
        ring,
        cache,
        Operand::Values,
        p,
        values,
        t,
        causal,
    )
}

/// The transform form mod each prime (PRIMES·N words) of the plaintext polynomial with the signed
/// coefficients `coeffs` (n_i of them, the rest zero), by [`NttPlan::forward_low`]: a HomFC
/// vector block has only n_i ≤ 64 nonzero coefficients, so the first stages are copies.
///
/// [`NttPlan::forward_low`]: crate::crypto::rlwe::ntt::NttPlan::forward_low
fn encode_short(coeffs: &[i64], out: &mut [u64]) {
    let r = rlwe_ring();
    for (i, dst) in out.chunks_exact_mut(DEG).enumerate() {
        let pl = &r.plans[i];
        dst.fill(0);
        for (d, &c) in dst.iter_mut().zip(coeffs) {
            *d = pl.m.from_i64(c);
        }
        pl.forward_low(dst, coeffs.len());
    }
}

/// One output ciphertext: head, fresh row, output block, the positions it uses.
#[derive(Clone, Copy)]
struct Job {
    h: usize,
    r: usize,
    beta: usize,
    used: usize,
}

/// A checked call: the layout, the ring, this party's fresh share `x`, the fresh rows `t` and
/// the cache rows `npos` it runs against.
#[derive(Clone, Copy)]
struct Call<'a> {
    l: AttnLayout,
    ring: Ring,
    x: &'a [u64],
    t: usize,
    npos: usize,
    causal: bool,
}

impl Call<'_> {
    /// Values of this party's output share.
    fn out_len(&self) -> usize {
        let l = &self.l;
        match l.operand {
            Operand::Keys => l.heads * self.t * self.npos,
            Operand::Values => self.t * l.width(),
        }
    }

    /// Output ciphertexts in message order: head, row, block.
    fn jobs(&self) -> Vec<Job> {
        let (l, t, npos, causal) = (self.l, self.t, self.npos, self.causal);
        (0..l.heads)
            .flat_map(|h| (0..t).map(move |r| (h, r)))
            .flat_map(|(h, r)| {
                let used = AttnLayout::used(t, npos, r, causal);
                (0..l.out_blocks(used)).map(move |beta| Job { h, r, beta, used })
            })
            .collect()
    }

    /// (coefficient, output index) of a job.
    fn outputs(&self, j: &Job) -> Vec<(usize, usize)> {
        let l = &self.l;
        let (c, d, t, npos) = (l.width(), l.d, self.t, self.npos);
        let mut v = Vec::with_capacity(l.n_o);
        for col in 0..l.n_o {
            let cc = j.beta * l.n_o + col;
            let coeff = col * l.n_i + l.n_i - 1;
            match l.operand {
                Operand::Keys if cc < j.used => v.push((coeff, (j.h * t + j.r) * npos + cc)),
                Operand::Values if cc < d => v.push((coeff, j.r * c + j.h * d + cc)),
                _ => break,
            }
        }
        v
    }

    /// The fresh value of head h, row r, inner index i (0 beyond the used positions).
    fn fresh(&self, h: usize, r: usize, i: usize, used: usize) -> u64 {
        let (c, d) = (self.l.width(), self.l.d);
        match self.l.operand {
            Operand::Keys => self.x[r * c + h * d + i],
            Operand::Values if i < used => self.x[(h * self.t + r) * self.npos + i],
            Operand::Values => 0,
        }
    }

    /// Inner entries of a row that uses `used` positions.
    fn inner_len(&self, used: usize) -> usize {
        match self.l.operand {
            Operand::Keys => self.l.d,
            Operand::Values => used,
        }
    }
}

/// Check a call's operands against the cache's layout and the rows it re-shared so far.
fn check_call<'a>(
    cache: &SharedCache,
    ring: Ring,
    operand: Operand,
    x: &'a [u64],
    share: &[u64],
    t: usize,
    causal: bool,
) -> Result<Call<'a>, ProtocolError> {
    let l = cache.layout;
    if l.operand != operand {
        return Err(invalid(format!(
            "a cache of {:?} used for the product with {operand:?}",
            l.operand
        )));
    }
    let (c, heads) = (l.width(), l.heads);
    if !share.len().is_multiple_of(c) {
        return Err(invalid(format!(
            "cache share of {} values is not a whole number of rows of {c}",
            share.len()
        )));
    }
    let npos = share.len() / c;
    if npos > l.max_positions {
        return Err(invalid(format!(
            "{npos} cache rows exceed the layout's {} positions",
            l.max_positions
        )));
    }
    if npos < cache.rows {
        return Err(invalid(format!(
            "the cache has {npos} rows, fewer than the {} already re-shared",
            cache.rows
        )));
    }
    if causal && npos < t {
        return Err(invalid(format!(
            "causal use of {t} fresh rows against {npos} cache rows"
        )));
    }
    let want_x = match operand {
        Operand::Keys => t * c,
        Operand::Values => heads * t * npos,
    };
    if x.len() != want_x {
        return Err(invalid(format!(
            "fresh operand of {} values, expected {want_x} ({t} rows, {heads} heads, {npos} \
             positions)",
            x.len()
        )));
    }
    if x.iter().chain(share).any(|&v| v > ring.mask()) {
        return Err(invalid(format!("share not reduced mod 2^{}", ring.bits)));
    }
    Ok(Call {
        l,
        ring,
        x,
        t,
        npos,
        causal,
    })
}

/// The online part of a call once the cache is prepared: the call, the plaintext ring, the
/// output parameters and the output ciphertexts.
struct Round<'a> {
    call: Call<'a>,
    plain: Plain,
    out: OutputParams,
    jobs: Vec<Job>,
}

/// A returned result and the masks R it was switched with.
type Returned = (SwitchedCiphertext, Vec<u64>);

impl Round<'_> {
    /// Step 4: this party's products with the peer's encryptions `peer`, under the peer's key
    /// `pk`: per job, the limbs of its fresh values times the peer's ciphertexts, then the return
    /// (one seed per job).
    fn evaluate(
        &self,
        pk: &PublicKeyNtt,
        peer: &[NttCiphertext],
        seeds: &[Block],
    ) -> Result<Vec<Returned>, ProtocolError> {
        let (call, l, ring, plain, out) = (
            &self.call,
            &self.call.l,
            self.call.ring,
            self.plain,
            &self.out,
        );
        self.jobs
            .par_iter()
            .zip(seeds.par_iter())
            .map(|(j, &seed)| {
                let mut acc = Accumulator::new();
                let nl = l.limbs as usize;
                let mut limbs = vec![[0i64; MAX_LIMBS as usize]; l.n_i];
                let mut coeffs = vec![0i64; l.n_i];
                let mut wn = vec![0u64; PRIMES * DEG];
                for alpha in 0..l.in_blocks(j.used) {
                    for (jj, lv) in limbs.iter_mut().enumerate() {
                        let i = alpha * l.n_i + jj;
                        let v = if i < call.inner_len(j.used) {
                            ring.to_signed(call.fresh(j.h, j.r, i, j.used))
                        } else {
                            0
                        };
                        l.limbs_of(v, lv);
                    }
                    for li in 0..nl {
                        for (cf, lv) in coeffs.iter_mut().zip(&limbs) {
                            *cf = lv[li];
                        }
                        if coeffs.iter().all(|&v| v == 0) {
                            continue;
                        }
                        encode_short(&coeffs, &mut wn);
                        // Keys: block β of positions, sub-block α of dimensions; Values: the
                        // reverse.
                        let idx = match l.operand {
                            Operand::Keys => l.ct_index(j.beta, j.h, alpha, li),
                            Operand::Values => l.ct_index(alpha, j.h, j.beta, li),
                        };
                        acc.mac(&peer[idx], &wn);
                    }
                }
                let outs = call.outputs(j);
                let positions: Vec<usize> = outs.iter().map(|o| o.0).collect();
                let mut prg = Prg::new(seed);
                let masks = ring.random(&mut prg, outs.len());
                let sw = finalize(acc.finish(), pk, plain, out, &positions, &masks, &mut prg)?;
                Ok((sw, masks))
            })
            .collect::<Result<Vec<_>, ProtocolError>>()
    }

    /// Steps 3 and 4: the message of `bytes` bytes: the re-shared rows, then every result's `a`, then
    /// the `b` values.
    fn message(&self, reshare: &[u64], results: &[Returned], bytes: usize) -> Vec<u8> {
        let mut mine = pack(reshare, self.call.ring.bits);
        mine.reserve(bytes.saturating_sub(mine.len()));
        for (sw, _) in results {
            mine.extend_from_slice(&pack(&sw.a, self.out.k));
        }
        let b_flat: Vec<u64> = results.iter().flat_map(|(sw, _)| sw.b.clone()).collect();
        mine.extend_from_slice(&pack(&b_flat, self.out.b_bits));
        debug_assert_eq!(mine.len(), bytes);
        mine
    }

    /// Step 5: add to `y` this party's masks R of its `results`.
    fn add_masks(&self, results: &[Returned], y: &mut [u64]) {
        let ring = self.call.ring;
        for (j, (_, masks)) in self.jobs.iter().zip(results) {
            for ((_, o), &m) in self.call.outputs(j).iter().zip(masks) {
                y[*o] = ring.add(y[*o], m);
            }
        }
    }

    /// Step 5: add to `y` what this party decrypts with `sk` of the peer's results in `theirs` (after
    /// the `new` re-shared rows; `values` returned `b` values); the peer's re-shared rows.
    fn add_decrypted(
        &self,
        sk: &SecretKey,
        theirs: &[u8],
        new: usize,
        values: usize,
        y: &mut [u64],
    ) -> Vec<u64> {
        let (call, ring, out, jobs) = (&self.call, self.call.ring, &self.out, &self.jobs);
        let c = call.l.width();
        let a_len = packed_len(DEG, out.k);
        let re_len = packed_len(new * c, ring.bits);
        let peer_reshare = unpack(&theirs[..re_len], new * c, ring.bits);
        let a_bytes = &theirs[re_len..re_len + jobs.len() * a_len];
        let b_all = unpack(&theirs[re_len + jobs.len() * a_len..], values, out.b_bits);
        let mut offsets = Vec::with_capacity(jobs.len());
        let mut off = 0;
        for j in jobs {
            offsets.push(off);
            off += call.outputs(j).len();
        }
        let decrypted: Vec<Vec<u64>> = jobs
            .par_iter()
            .enumerate()
            .map(|(idx, j)| {
                let outs = call.outputs(j);
                let positions: Vec<usize> = outs.iter().map(|o| o.0).collect();
                let ct = SwitchedCiphertext {
                    k: out.k,
                    b_bits: out.b_bits,
                    a: unpack(&a_bytes[idx * a_len..(idx + 1) * a_len], DEG, out.k),
                    b: b_all[offsets[idx]..offsets[idx] + outs.len()].to_vec(),
                };
                sk.decrypt_switched(self.plain, &ct, &positions)
            })
            .collect();
        for (j, vals) in jobs.iter().zip(decrypted) {
            for ((_, o), v) in call.outputs(j).iter().zip(vals) {
                y[*o] = ring.add(y[*o], v);
            }
        }
        peer_reshare
    }
}

/// Send `mine` and receive the peer's message of the same length: the server first, then the
/// client (one flight each way).
fn exchange<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    mine: Vec<u8>,
) -> Result<Vec<u8>, ProtocolError> {
    let theirs = match role {
        Role::Server => {
            ch.send(&mine)?;
            ch.flush()?;
            ch.recv_vec(mine.len())?
        }
        Role::Client => {
            let theirs = ch.recv_vec(mine.len())?;
            ch.send(&mine)?;
            ch.flush()?;
            theirs
        }
    };
    Ok(theirs)
}

/// Step 5: add to `y` the local term x_own·(M − r_peer), with `local` the cache rows as M − r_peer.
fn add_local_term(call: &Call, local: &[u64], y: &mut [u64]) {
    let (l, ring, x, t, npos, causal) =
        (&call.l, call.ring, call.x, call.t, call.npos, call.causal);
    let (c, heads, d) = (l.width(), l.heads, l.d);
    match l.operand {
        Operand::Keys => {
            y.par_chunks_mut(npos).enumerate().for_each(|(hr, row)| {
                let (h, r) = (hr / t, hr % t);
                let qv = &x[r * c + h * d..r * c + (h + 1) * d];
                for (jpos, cell) in row
                    .iter_mut()
                    .enumerate()
                    .take(AttnLayout::used(t, npos, r, causal))
                {
                    let kv = &local[jpos * c + h * d..jpos * c + (h + 1) * d];
                    let s = qv
                        .iter()
                        .zip(kv)
                        .fold(0u64, |a, (&u, &v)| a.wrapping_add(u.wrapping_mul(v)));
                    *cell = ring.add(*cell, s);
                }
            });
        }
        Operand::Values => {
            y.par_chunks_mut(c).enumerate().for_each(|(r, row)| {
                let used = AttnLayout::used(t, npos, r, causal);
                for h in 0..heads {
                    let pr = &x[(h * t + r) * npos..(h * t + r) * npos + used];
                    let cells = &mut row[h * d..(h + 1) * d];
                    for (jpos, &pv) in pr.iter().enumerate() {
                        if pv == 0 {
                            continue;
                        }
                        let vv = &local[jpos * c + h * d..jpos * c + (h + 1) * d];
                        for (cell, &v) in cells.iter_mut().zip(vv) {
                            *cell = cell.wrapping_add(pv.wrapping_mul(v));
                        }
                    }
                    for cell in cells.iter_mut() {
                        *cell &= ring.mask();
                    }
                }
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn product<C: Channel + ?Sized>(
    he: &DuplexHe,
    ch: &mut C,
    role: Role,
    ring: Ring,
    cache: &mut SharedCache,
    operand: Operand,
    x: &[u64],
    share: &[u64],
    t: usize,
    causal: bool,
) -> Result<Vec<u64>, ProtocolError> {
    let l = cache.layout;
    check_session(he, role, ring, &l)?;
    let call = check_call(cache, ring, operand, x, share, t, causal)?;
    let (c, npos) = (l.width(), call.npos);
    if t == 0 || npos == 0 {
        return Ok(vec![0; call.out_len()]);
    }
    prepare(he, ch, role, ring, cache, npos)?;
    let plain = Plain::new(ring.bits)?;
    let out = l.out_params(plain, npos)?;
    let sk = he.own_key()?;
    let pk = he.peer_key()?;
    let round = Round {
        call,
        plain,
        out,
        jobs: call.jobs(),
    };

    // 4. This party's products with the peer's encryptions, under the peer's key.
    let seeds: Vec<Block> = round.jobs.iter().map(|_| cache.rng.block()).collect();
    let results = round.evaluate(pk, &cache.peer, &seeds)?;

    // 3. + 4. The message: re-shared rows, then every result's `a`, then the `b` values.
    let (old, new) = (cache.rows, npos - cache.rows);
    let reshare: Vec<u64> = (old * c..npos * c)
        .map(|i| ring.sub(share[i], cache.own_r[i]))
        .collect();
    let cost = l.cost(t, npos, new, causal);
    debug_assert_eq!(cost.cts, round.jobs.len());
    let mine = round.message(&reshare, &results, cost.bytes);
    let theirs = exchange(ch, role, mine)?;

    // 5. This party's output: its masks, what it decrypts of the peer's results, the local term.
    let mut y = vec![0u64; call.out_len()];
    round.add_masks(&results, &mut y);
    drop(results);
    let peer_reshare = round.add_decrypted(sk, &theirs, new, cost.values, &mut y);
    // 3. The new rows as M − r_peer: this party's share plus the peer's M_peer − r_peer.
    cache
        .local
        .extend((0..new * c).map(|i| ring.add(share[old * c + i], peer_reshare[i])));
    cache.rows = npos;
    add_local_term(&call, &cache.local, &mut y);
    Ok(y)
}
