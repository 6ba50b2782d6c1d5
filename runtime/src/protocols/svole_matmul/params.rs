//! The public shapes of one weight's correlation ([`SvoleParams`]): chunks, noise blocks and
//! trees, the flooding, the cost (*Cost* in the module docs of [`super`]) and where each
//! returned ciphertext sits in the client's message.

use crate::crypto::pack::packed_len;
use crate::crypto::pprf::TreeGroup;
use crate::crypto::qc_code;
use crate::crypto::rlwe::{output_params, OutputParams, Plain, Seeded, N};
use crate::protocols::shares::Ring;
use crate::protocols::ProtocolError;

/// Shapes of one weight's correlation: `rows` future input rows (L), the weight's `inner` (m) ×
/// `cols` (k), and the noise weight t per weight row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvoleParams {
    pub rows: usize,
    pub inner: usize,
    pub cols: usize,
    pub noise: usize,
    /// Limbs of the gadget (2 at ℓ ≤ 40 for 768 columns) and noise values per returned
    /// ciphertext (at most ⌊8192/k_c⌋): the widest that fit the flooding budget.
    pub limbs: u32,
    pub per_ct: usize,
    /// Whether [`prepare`](super::prepare) enforces the security floor (noise blocks of at least
    /// [`MIN_BLOCK_LEN`] positions); only [`SvoleParams::new_test_only`] clears it.
    pub secure: bool,
}

/// The shortest noise block allowed: regular noise in blocks of 2^8 positions or more (Ferret's
/// smallest, its setup parameters); shorter blocks make the noise dense and its structure
/// visible. With t = 175 this needs about 22,400 rows.
pub const MIN_BLOCK_LEN: usize = 256;

/// Bytes of a preparation and of its online use, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvoleCost {
    /// The server's public key and gadget ciphertexts.
    pub keys_down: usize,
    /// The client's returned ciphertexts.
    pub products_up: usize,
    /// The server's corrections d.
    pub corrections_down: usize,
    /// The PPRF's OTs (chosen-message, 128-bit).
    pub tree_ots: usize,
    /// Online bytes per input row, client → server.
    pub online_per_row: usize,
}

impl SvoleParams {
    /// Shapes over `ring` with the default noise weight: [`qc_code::noise_weight`], rounded up
    /// to a multiple of the noise values per returned ciphertext when that is smaller (180 for
    /// k = 768). The preparation needs 2L′ ≥ t, about 87 rows or more.
    pub fn new(
        ring: Ring,
        rows: usize,
        inner: usize,
        cols: usize,
    ) -> Result<SvoleParams, ProtocolError> {
        if rows == 0 || inner == 0 || cols == 0 {
            return Err(ProtocolError::Invalid(format!(
                "svole: a {rows} × {inner} · {inner} × {cols} product has an empty side"
            )));
        }
        let mut p = SvoleParams {
            rows,
            inner,
            cols,
            noise: 0,
            limbs: 2,
            per_ct: 1,
            secure: true,
        };
        // The most noise values per ciphertext that the flood allows, over 2 to 4 limbs.
        let most = N / p.chunk_cols();
        let mut best: Option<(usize, u32)> = None;
        for limbs in 2..=4u32 {
            let fits = |r: usize| p.output_with(ring, limbs, r).is_ok();
            if !fits(1) {
                continue;
            }
            let (mut lo, mut hi) = (1, most);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if fits(mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            if best.is_none_or(|(r, _)| lo > r) {
                best = Some((lo, limbs));
            }
        }
        let (r, limbs) = best.ok_or_else(|| {
            ProtocolError::Invalid(format!(
                "svole: no gadget of up to 4 limbs fits the RLWE noise budget at ℓ = {}",
                ring.bits
            ))
        })?;
        p.limbs = limbs;
        p.per_ct = r;
        // Fill the returned ciphertexts when one holds fewer than t noise values.
        let t = qc_code::noise_weight();
        p.noise = if r >= t { t } else { t.div_ceil(r) * r };
        Ok(p)
    }

    /// The same shapes without the security floor: for tests of small products, whose masks
    /// are not pseudorandom (the noise is nearly dense). Never for real inputs.
    pub fn new_test_only(
        ring: Ring,
        rows: usize,
        inner: usize,
        cols: usize,
    ) -> Result<SvoleParams, ProtocolError> {
        let mut p = SvoleParams::new(ring, rows, inner, cols)?;
        p.secure = false;
        Ok(p)
    }

    /// The fewest rows that meet the security floor.
    pub fn min_rows(&self) -> usize {
        (self.noise * MIN_BLOCK_LEN).div_ceil(2)
    }

    /// Columns per chunk (at most N).
    pub(super) fn chunk_cols(&self) -> usize {
        self.cols.min(N)
    }

    /// Column chunks.
    pub(super) fn chunks(&self) -> usize {
        self.cols.div_ceil(self.chunk_cols())
    }

    /// Columns of chunk c.
    pub(super) fn chunk_len(&self, c: usize) -> usize {
        (self.cols - c * self.chunk_cols()).min(self.chunk_cols())
    }

    /// Returned ciphertexts per weight row and chunk.
    pub(super) fn cts_per_chunk(&self) -> usize {
        self.noise.div_ceil(self.per_ct)
    }

    /// The noise blocks: (start, length) of each of the t blocks of [0, 2L′).
    pub(super) fn blocks(&self, noise_len: usize) -> Vec<(usize, usize)> {
        let t = self.noise;
        let (base, extra) = (noise_len / t, noise_len % t);
        let mut start = 0;
        (0..t)
            .map(|b| {
                let len = base + usize::from(b < extra);
                let r = (start, len);
                start += len;
                r
            })
            .collect()
    }

    /// The PPRF's tree groups: per weight row, the longer blocks then the shorter ones.
    pub(super) fn groups(&self, noise_len: usize) -> Vec<TreeGroup> {
        let t = self.noise;
        let (base, extra) = (noise_len / t, noise_len % t);
        (0..self.inner)
            .flat_map(|_| {
                [
                    TreeGroup {
                        trees: extra,
                        leaves: base + 1,
                    },
                    TreeGroup {
                        trees: t - extra,
                        leaves: base,
                    },
                ]
            })
            .collect()
    }

    /// The gadget's limb width w = ⌈ℓ/limbs⌉.
    pub(super) fn limb_bits(&self, ring: Ring) -> u32 {
        ring.bits.div_ceil(self.limbs)
    }

    /// The returned ciphertexts' flooding and switch for `limbs` limbs and `per_ct` noise values
    /// per ciphertext: each returned coefficient sums limbs·per_ct products of an encryption
    /// error with a limb below 2^w.
    pub(super) fn output_with(
        &self,
        ring: Ring,
        limbs: u32,
        per_ct: usize,
    ) -> Result<OutputParams, ProtocolError> {
        let plain = Plain::new(ring.bits)?;
        let terms = limbs as usize * per_ct;
        Ok(output_params(
            plain,
            1 << ring.bits.div_ceil(limbs),
            terms,
            terms,
        )?)
    }

    pub(super) fn output(&self, ring: Ring) -> Result<OutputParams, ProtocolError> {
        self.output_with(ring, self.limbs, self.per_ct)
    }

    /// The exact bytes of a preparation's messages (the OTs counted as OTs) and of online use.
    pub fn cost(&self, ring: Ring) -> Result<SvoleCost, ProtocolError> {
        let out = self.output(ring)?;
        let code_block = qc_code::block_length(self.rows);
        let depths: usize = self
            .groups(2 * code_block)
            .iter()
            .map(|g| g.trees * g.depth() as usize)
            .sum();
        let mut up = 0;
        for c in 0..self.chunks() {
            let kc = self.chunk_len(c);
            for q in 0..self.cts_per_chunk() {
                let count = (self.noise - q * self.per_ct).min(self.per_ct);
                up += packed_len(N, out.k) + packed_len(count * kc, out.b_bits);
            }
        }
        Ok(SvoleCost {
            keys_down: (1 + self.limbs as usize * self.inner * self.chunks()) * Seeded::wire_len(),
            products_up: self.inner * up,
            corrections_down: packed_len(self.inner * self.noise * self.cols, ring.bits),
            tree_ots: depths,
            online_per_row: packed_len(self.inner, ring.bits),
        })
    }
}

/// Where each returned ciphertext sits in the client's message and what it holds: weight row
/// `row`, chunk columns `col0 .. col0 + kc`, noise values `first .. first + count`.
pub(super) struct CtSlot {
    pub(super) row: usize,
    pub(super) col0: usize,
    pub(super) kc: usize,
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) offset: usize,
    pub(super) a_len: usize,
    pub(super) b_len: usize,
}

impl CtSlot {
    /// The returned coefficients: kc per noise value, at j·kc + l.
    pub(super) fn positions(&self) -> Vec<usize> {
        (0..self.count * self.kc).collect()
    }
}

/// The returned ciphertexts in message order (row, chunk, group of noise values).
pub(super) fn ct_layout(p: &SvoleParams, out: &OutputParams) -> Vec<CtSlot> {
    let mut v = Vec::with_capacity(p.inner * p.chunks() * p.cts_per_chunk());
    let mut offset = 0;
    for row in 0..p.inner {
        for c in 0..p.chunks() {
            let kc = p.chunk_len(c);
            for q in 0..p.cts_per_chunk() {
                let first = q * p.per_ct;
                let count = (p.noise - first).min(p.per_ct);
                let (a_len, b_len) = (packed_len(N, out.k), packed_len(count * kc, out.b_bits));
                v.push(CtSlot {
                    row,
                    col0: c * p.chunk_cols(),
                    kc,
                    first,
                    count,
                    offset,
                    a_len,
                    b_len,
                });
                offset += a_len + b_len;
            }
        }
    }
    v
}
