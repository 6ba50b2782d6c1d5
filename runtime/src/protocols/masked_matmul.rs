//! A weight product prepared ahead of its inputs (CipherGPT §III's online phase): for the next
//! rows of x·Y, with Y `[m×k]` the server's weight, the parties hold a correlation prepared
//! before the rows exist — the client's random masks U `[L×m]` and −T `[L×k]`, the server's
//! S = U·Y + T — and online the product costs the client's masked input only.
//!
//! **Online** ([`multiply`]). For the next n rows of a shared x = x_S + x_C: the client sends
//! x_C − U_rows (n·m values of ℓ bits, one flight) and outputs −T_rows; the server outputs
//! (x_S + x_C − U_rows)·Y + S_rows. The sum is x·Y mod 2^ℓ exactly. Each row of U masks one input
//! row once.
//!
//! **Preparation**, by one of two methods:
//! - the subfield VOLE of [`super::svole_matmul`] (dual LPN; cheap per row for batches above its
//!   security floor of about 22,400 rows);
//! - the RLWE product of [`super::linear`] ([`prepare_rlwe`]): the client's share is U, the
//!   server's zero, so the two output shares y_S + y_C = U·Y; S = y_S and −T = y_C. Per row it
//!   costs what the online product would, but before the prompt.
//!
//! **Security** (semi-honest). Online, the server receives x_C − U_rows: U is uniform (RLWE
//! method) or pseudorandom under dual LPN (sVOLE), used once, so the message is independent of
//! x_C. The client receives nothing online. The preparations are the protocols' own
//! (`docs/protocols.md` §24 and §29): their outputs are fresh shares, and U and −T are
//! independent of Y.

use rayon::prelude::*;

use super::linear::{self, Packing};
use super::shares::{recv_ring, send_ring, Ring};
use super::{PreparedCorrelation, ProtocolError};
use crate::crypto::rlwe::HeSession;
use crate::crypto::Prg;
use crate::net::{Channel, Role};

/// One party's prepared correlation for one weight, and the rows of it used so far.
pub struct Correlation {
    role: Role,
    rows: usize,
    inner: usize,
    cols: usize,
    /// The client's U (rows × inner, row-major); empty at the server.
    masks: Vec<u64>,
    /// The server's S, the client's −T (rows × cols, row-major).
    shares: Vec<u64>,
    used: usize,
}

impl Correlation {
    /// A correlation of `rows` rows for an `inner × cols` weight from its parts.
    pub fn new(
        role: Role,
        rows: usize,
        inner: usize,
        cols: usize,
        masks: Vec<u64>,
        shares: Vec<u64>,
    ) -> Correlation {
        Correlation {
            role,
            rows,
            inner,
            cols,
            masks,
            shares,
            used: 0,
        }
    }

    /// Rows prepared in all.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The client's masks U (rows × inner); empty at the server.
    pub fn masks(&self) -> &[u64] {
        &self.masks
    }

    /// The server's S or the client's −T (rows × cols).
    pub fn shares(&self) -> &[u64] {
        &self.shares
    }
}

impl PreparedCorrelation for Correlation {
    fn units(&self) -> usize {
        self.rows
    }
    fn used(&self) -> usize {
        self.used
    }
    fn used_mut(&mut self) -> &mut usize {
        &mut self.used
    }
    fn footprint(&self) -> usize {
        (self.masks.len() + self.shares.len()) * 8
    }
}

fn invalid(msg: String) -> ProtocolError {
    ProtocolError::Invalid(msg)
}

/// Bytes one call of a preparation moves at most (up and down), unless a single row group does.
pub const MAX_CALL_BYTES: usize = 256 << 20;

/// The rows of the next call of [`prepare_rlwe`] with `left` rows to go, and their packing: as
/// many whole row groups of the packing for `left` rows (up to 16 rows per ciphertext) as move
/// at most [`MAX_CALL_BYTES`], at least one group. The server encodes its weight once per call,
/// so GPT-2 small's layer weights are encoded once per batch of up to 256 decode steps, its
/// vocabulary projection once per 64 rows.
pub fn call_rows(
    ring: Ring,
    packing: &Packing,
    left: usize,
) -> Result<(usize, Packing), ProtocolError> {
    let p = Packing::new(ring, packing.k, packing.n, packing.weight_bits, left)?;
    let group = p.cost(p.rows_per_ct);
    let groups = (MAX_CALL_BYTES / (group.bytes_up + group.bytes_down).max(1)).max(1);
    let n = (groups * p.rows_per_ct).min(left);
    if n == left {
        return Ok((n, p));
    }
    // Fewer rows than `left`: their own packing (the same window when n ≥ 16).
    Ok((
        n,
        Packing::new(ring, packing.k, packing.n, packing.weight_bits, n)?,
    ))
}

/// Prepare `rows` rows for the weight whose decode packing is `packing` by the RLWE product (the
/// module docs): the server passes its weight as integers. Rows go in calls of
/// [`call_rows`] (bounding the messages), each packed several per ciphertext in the packing
/// chosen for its rows, the weight encoded for it on the way
/// ([`linear::ServerWeights::Plain`]).
pub fn prepare_rlwe<C: Channel + ?Sized>(
    he: &HeSession,
    ch: &mut C,
    role: Role,
    ring: Ring,
    packing: &Packing,
    rows: usize,
    weights: Option<&[i32]>,
) -> Result<Correlation, ProtocolError> {
    let (m, k) = (packing.k, packing.n);
    if rows == 0 {
        return Err(invalid("masked product: no rows to prepare".into()));
    }
    let masks = match role {
        Role::Client => ring.random(&mut Prg::from_entropy(), rows * m),
        Role::Server => Vec::new(),
    };
    let zero_bias = vec![0i64; k];
    let mut shares = Vec::with_capacity(rows * k);
    let mut r0 = 0;
    while r0 < rows {
        let (n, call) = call_rows(ring, packing, rows - r0)?;
        let zeros;
        let x = match role {
            Role::Client => &masks[r0 * m..(r0 + n) * m],
            Role::Server => {
                zeros = vec![0u64; n * m];
                &zeros[..]
            }
        };
        let server = match role {
            Role::Server => Some((
                linear::ServerWeights::Plain(weights.ok_or_else(|| {
                    invalid("masked product: the server needs the weight".into())
                })?),
                &zero_bias[..],
            )),
            Role::Client => None,
        };
        shares.extend(linear::linear_with(
            he, ch, role, ring, &call, x, n, server,
        )?);
        r0 += n;
    }
    Ok(Correlation::new(role, rows, m, k, masks, shares))
}

/// The online product of the next `n` rows with this party's share of the input (n × inner;
/// the server may pass `None` for a zero share, the client must pass its share) and, at the
/// server, the weights (inner × cols, signed). Returns this party's share of x·Y (n × cols).
/// `ProtocolError::Invalid` when fewer than n prepared rows remain.
pub fn multiply<C: Channel + ?Sized, W: Copy + Into<i64> + Sync>(
    ch: &mut C,
    role: Role,
    ring: Ring,
    corr: &mut Correlation,
    input: Option<&[u64]>,
    weights: Option<&[W]>,
    n: usize,
) -> Result<Vec<u64>, ProtocolError> {
    if role != corr.role {
        return Err(invalid(
            "masked product: the correlation is the other party's".into(),
        ));
    }
    if n > corr.remaining() {
        return Err(invalid(format!(
            "masked product: {n} rows asked, {} prepared rows left",
            corr.remaining()
        )));
    }
    let (m, k, r0) = (corr.inner, corr.cols, corr.used);
    if let Some(x) = input {
        if x.len() != n * m {
            return Err(invalid(format!(
                "masked product: {} inputs for {n} rows of {m}",
                x.len()
            )));
        }
    }
    let out = match role {
        Role::Client => {
            let x = input
                .ok_or_else(|| invalid("masked product: the client needs its input".into()))?;
            let masked = ring.sub_vec(x, &corr.masks[r0 * m..(r0 + n) * m]);
            send_ring(ch, ring, &masked)?;
            ch.flush()?;
            corr.shares[r0 * k..(r0 + n) * k].to_vec()
        }
        Role::Server => {
            let w = weights
                .ok_or_else(|| invalid("masked product: the server needs the weights".into()))?;
            if w.len() != m * k {
                return Err(invalid(format!(
                    "masked product: {} weights for {m} × {k}",
                    w.len()
                )));
            }
            let mut masked = recv_ring(ch, ring, n * m)?;
            if let Some(x) = input {
                masked = ring.add_vec(&masked, x);
            }
            let shares = &corr.shares[r0 * k..(r0 + n) * k];
            let mut y = vec![0u64; n * k];
            y.par_chunks_mut(k).enumerate().for_each(|(r, row)| {
                row.copy_from_slice(&shares[r * k..(r + 1) * k]);
                for (i, &xi) in masked[r * m..(r + 1) * m].iter().enumerate() {
                    if xi == 0 {
                        continue;
                    }
                    for (d, &wv) in row.iter_mut().zip(&w[i * k..(i + 1) * k]) {
                        *d = d.wrapping_add(xi.wrapping_mul(wv.into() as u64));
                    }
                }
                row.iter_mut().for_each(|v| *v = ring.reduce(*v));
            });
            y
        }
    };
    corr.consume(n);
    Ok(out)
}
