//! The public description of a cache's products ([`AttnLayout`]): HomFC windows, limbs, the
//! cost formula and the packing of the pre-chosen shares (*Packing* and *Cost* in the module
//! docs of [`super`]).

use super::{invalid, MAX_LIMBS, MAX_POSITIONS, MAX_WIDTH};
use crate::crypto::pack::packed_len;
use crate::crypto::rlwe::noise::{output_params, OutputParams};
use crate::crypto::rlwe::{Plain, Seeded, N as DEG};
use crate::protocols::shares::Ring;
use crate::protocols::ProtocolError;

/// Which cache a [`SharedCache`](super::SharedCache) holds, i.e. which product it feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The key cache, for [`qk_t`](super::qk_t).
    Keys,
    /// The value cache, for [`pv`](super::pv).
    Values,
}

/// The public description of one cache's products: shapes, window, limbs. Both parties build it
/// with [`AttnLayout::new`] from public values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnLayout {
    /// ℓ.
    pub ring_bits: u32,
    pub operand: Operand,
    pub heads: usize,
    /// Head width d (c = heads·d columns per cache row).
    pub d: usize,
    /// The most cache rows a call may use (the plan's context length).
    pub max_positions: usize,
    /// HomFC window: inner entries n_i and output columns n_o per block.
    pub n_i: usize,
    pub n_o: usize,
    /// Limbs L of the fresh operand and their width s = ⌈ℓ/L⌉.
    pub limbs: u32,
    pub limb_bits: u32,
}

/// Messages, products and bytes of one call, per party (both send the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnCost {
    /// Result ciphertexts each party returns.
    pub cts: usize,
    /// Returned `b` coefficients each party sends.
    pub values: usize,
    /// Plaintext × ciphertext products each party computes.
    pub products: usize,
    /// Bytes each party sends (re-shared rows, results).
    pub bytes: usize,
}

/// The plaintext ring of a layout; `ProtocolError::Invalid` for empty or too large shapes.
fn check_shape(
    ring: Ring,
    heads: usize,
    d: usize,
    max_positions: usize,
) -> Result<Plain, ProtocolError> {
    let plain = Plain::new(ring.bits)?;
    if heads == 0 || d == 0 || max_positions == 0 {
        return Err(invalid(format!(
            "empty shape: {heads} heads of {d}, {max_positions} positions"
        )));
    }
    if heads.checked_mul(d).is_none_or(|c| c > MAX_WIDTH) || max_positions > MAX_POSITIONS {
        return Err(invalid(format!(
            "shape too large: {heads} heads of {d} (at most {MAX_WIDTH} columns), \
             {max_positions} positions (at most {MAX_POSITIONS})"
        )));
    }
    Ok(plain)
}

impl AttnLayout {
    /// The layout for a cache of `heads` heads of width `d` and at most `max_positions` rows at
    /// ℓ = `ring.bits`, with the limb count chosen by bytes (see the module docs).
    /// `ProtocolError::Invalid` for empty or too large shapes, ℓ outside 16..=43, or when no limb count
    /// up to [`MAX_LIMBS`] fits the noise budget.
    pub fn new(
        ring: Ring,
        operand: Operand,
        heads: usize,
        d: usize,
        max_positions: usize,
    ) -> Result<AttnLayout, ProtocolError> {
        check_shape(ring, heads, d, max_positions)?;
        let mut best: Option<(usize, AttnLayout)> = None;
        for limbs in 1..=MAX_LIMBS.min(ring.bits) {
            let Ok(l) = Self::with_limbs(ring, operand, heads, d, max_positions, limbs) else {
                continue;
            };
            let p = max_positions;
            let per_token = l.cost(1, p, 1, true).bytes + l.offline_bytes_per_row();
            if best.as_ref().is_none_or(|(b, _)| per_token < *b) {
                best = Some((per_token, l));
            }
        }
        best.map(|(_, l)| l).ok_or_else(|| {
            invalid(format!(
                "{heads} heads of {d} over {max_positions} positions do not fit the noise budget \
                 at ℓ = {} even in {MAX_LIMBS} limbs",
                ring.bits
            ))
        })
    }

    /// The layout with `limbs` limbs; `ProtocolError::Invalid` also when they do not fit the budget.
    pub fn with_limbs(
        ring: Ring,
        operand: Operand,
        heads: usize,
        d: usize,
        max_positions: usize,
        limbs: u32,
    ) -> Result<AttnLayout, ProtocolError> {
        let plain = check_shape(ring, heads, d, max_positions)?;
        if !(1..=MAX_LIMBS.min(ring.bits)).contains(&limbs) {
            return Err(invalid(format!(
                "{limbs} limbs is not in 1..={}",
                MAX_LIMBS.min(ring.bits)
            )));
        }
        let (n_i, n_o) = match operand {
            Operand::Keys => {
                let n_i = d.min((DEG / max_positions).max(1));
                (n_i, DEG / n_i)
            }
            Operand::Values => {
                let n_o = d.min(DEG);
                (DEG / n_o, n_o)
            }
        };
        let l = AttnLayout {
            ring_bits: ring.bits,
            operand,
            heads,
            d,
            max_positions,
            n_i,
            n_o,
            limbs,
            limb_bits: ring.bits.div_ceil(limbs),
        };
        l.out_params(plain, max_positions)?;
        Ok(l)
    }

    /// Columns of a cache row, c = heads·d.
    pub fn width(&self) -> usize {
        self.heads * self.d
    }

    /// Cache rows per prepared block: n_o (Keys) or n_i (Values).
    pub fn block_rows(&self) -> usize {
        match self.operand {
            Operand::Keys => self.n_o,
            Operand::Values => self.n_i,
        }
    }

    /// Ciphertexts per head, block and limb: the inner blocks ⌈d/n_i⌉ (Keys) or the output
    /// blocks ⌈d/n_o⌉ (Values).
    pub(super) fn subs(&self) -> usize {
        match self.operand {
            Operand::Keys => self.d.div_ceil(self.n_i),
            Operand::Values => self.d.div_ceil(self.n_o),
        }
    }

    /// Ciphertexts each party sends per prepared block.
    pub fn cts_per_block(&self) -> usize {
        self.heads * self.subs() * self.limbs as usize
    }

    /// Offline bytes each party sends per cache row (a block's ciphertexts over its rows).
    pub fn offline_bytes_per_row(&self) -> usize {
        (self.cts_per_block() * Seeded::wire_len()).div_ceil(self.block_rows())
    }

    /// Blocks that cover `rows` cache rows.
    pub fn blocks(&self, rows: usize) -> usize {
        rows.div_ceil(self.block_rows())
    }

    /// Inner blocks of a row that uses `used` positions.
    pub(super) fn in_blocks(&self, used: usize) -> usize {
        match self.operand {
            Operand::Keys => self.d.div_ceil(self.n_i),
            Operand::Values => used.div_ceil(self.n_i),
        }
    }

    /// Output blocks of a row that uses `used` positions.
    pub(super) fn out_blocks(&self, used: usize) -> usize {
        match self.operand {
            Operand::Keys => used.div_ceil(self.n_o),
            Operand::Values => self.d.div_ceil(self.n_o),
        }
    }

    /// Positions row `r` of `t` uses against `npos` cache rows.
    pub(super) fn used(t: usize, npos: usize, r: usize, causal: bool) -> usize {
        if causal {
            npos - t + r + 1
        } else {
            npos
        }
    }

    /// Flooding and switching for products against `npos` rows: every returned coefficient sums
    /// A·L·n_i terms e·x_l and as many ε·x_l with |ε| ≤ 1/2 (|x_l| ≤ 2^(s−1)).
    pub(super) fn out_params(
        &self,
        plain: Plain,
        npos: usize,
    ) -> Result<OutputParams, ProtocolError> {
        let terms = self.in_blocks(npos) * self.limbs as usize * self.n_i;
        Ok(output_params(
            plain,
            1u64 << (self.limb_bits - 1),
            terms,
            terms.div_ceil(2),
        )?)
    }

    /// The output parameters for a call against `npos` rows (both parties derive the same).
    pub fn output_params(&self, npos: usize) -> Result<OutputParams, ProtocolError> {
        self.out_params(Plain::new(self.ring_bits)?, npos)
    }

    /// Ciphertexts, values, products and bytes each party sends in a call on `t` fresh rows
    /// against `npos` cache rows of which `new` are re-shared in this call.
    pub fn cost(&self, t: usize, npos: usize, new: usize, causal: bool) -> AttnCost {
        let (mut cts, mut values, mut products) = (0, 0, 0);
        let l = self.limbs as usize;
        for r in 0..t {
            let u = Self::used(t, npos, r, causal);
            cts += self.heads * self.out_blocks(u);
            values += self.heads
                * match self.operand {
                    Operand::Keys => u,
                    Operand::Values => self.d,
                };
            products += self.heads * self.out_blocks(u) * self.in_blocks(u) * l;
        }
        let k = self
            .output_params(npos)
            .map(|o| (o.k, o.b_bits))
            .unwrap_or((64, 64));
        AttnCost {
            cts,
            values,
            products,
            bytes: packed_len(new * self.width(), self.ring_bits)
                + cts * packed_len(DEG, k.0)
                + packed_len(values, k.1),
        }
    }

    /// The encrypted matrix polynomial of head `h`, block `cb`, sub-block `sub`, limb `l`, from
    /// the pre-chosen shares `r` ([rows × c], covering the block).
    pub(super) fn matrix_poly(
        &self,
        r: &[u64],
        cb: usize,
        h: usize,
        sub: usize,
        l: u32,
    ) -> Vec<u64> {
        let (c, d, n_i, n_o) = (self.width(), self.d, self.n_i, self.n_o);
        let mask = (1u64 << self.ring_bits) - 1;
        let sh = self.limb_bits * l;
        let scale = |v: u64| if sh >= 64 { 0 } else { (v << sh) & mask };
        let mut poly = vec![0u64; DEG];
        for col in 0..n_o {
            for j in 0..n_i {
                let (pos, dim) = match self.operand {
                    // W = K_hᵀ: inner = dimension α·n_i + j, column = position β·n_o + col.
                    Operand::Keys => (cb * n_o + col, sub * n_i + j),
                    // W = V_h: inner = position α·n_i + j, column = dimension β·n_o + col.
                    Operand::Values => (cb * n_i + j, sub * n_o + col),
                };
                if dim < d {
                    poly[col * n_i + n_i - 1 - j] = scale(r[pos * c + h * d + dim]);
                }
            }
        }
        poly
    }

    /// Index of a stored ciphertext.
    pub(super) fn ct_index(&self, cb: usize, h: usize, sub: usize, l: usize) -> usize {
        ((cb * self.heads + h) * self.subs() + sub) * self.limbs as usize + l
    }

    /// The L balanced limbs of a centred value (the top limb takes the rest).
    pub(super) fn limbs_of(&self, v: i64, out: &mut [i64]) {
        let s = self.limb_bits;
        let mut v = v as i128;
        let n = self.limbs as usize;
        for (i, o) in out.iter_mut().enumerate().take(n) {
            if i + 1 == n {
                *o = v as i64;
                break;
            }
            let half = 1i128 << (s - 1);
            let d = (v + half).rem_euclid(1i128 << s) - half;
            *o = d as i64;
            v = (v - d) >> s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Block, Prg};

    /// Balanced limbs recombine to the centred value mod 2^ℓ and stay within ±2^(s−1), the
    /// bound the noise budget assumes, for every limb count, at the ends of the range.
    #[test]
    fn limbs_recombine_within_their_bound() {
        for bits in [16u32, 35, 37, 38, 44] {
            let ring = Ring::new(bits).unwrap();
            for limbs in 1..=MAX_LIMBS {
                let l = AttnLayout {
                    ring_bits: bits,
                    operand: Operand::Keys,
                    heads: 1,
                    d: 1,
                    max_positions: 1,
                    n_i: 1,
                    n_o: 1,
                    limbs,
                    limb_bits: bits.div_ceil(limbs),
                };
                let half = 1i64 << (bits - 1);
                let b = 1i64 << (l.limb_bits - 1);
                let mut rng = Prg::new(Block(bits as u128));
                let mut vals = vec![-half, half - 1, 0, -1, 1, -b, b, b - 1, -b - 1];
                vals.extend((0..2000).map(|_| ring.to_signed(ring.random(&mut rng, 1)[0])));
                for v in vals {
                    let v = ring.to_signed(ring.from_signed(v));
                    let mut out = [0i64; MAX_LIMBS as usize];
                    l.limbs_of(v, &mut out);
                    let mut sum = 0i128;
                    for (i, &x) in out.iter().take(limbs as usize).enumerate() {
                        assert!(x.abs() <= b, "ℓ {bits}, {limbs} limbs, v {v}: limb {x}");
                        sum += (x as i128) << (l.limb_bits as usize * i);
                    }
                    assert_eq!(ring.from_signed(sum as i64), ring.from_signed(v));
                }
            }
        }
    }

    /// The report's windows for GPT-2 (d = 64, 256 positions) and the trained model (d = 32).
    #[test]
    fn windows_and_limbs() {
        let ring = Ring::new(37).unwrap();
        let k = AttnLayout::new(ring, Operand::Keys, 12, 64, 256).unwrap();
        assert_eq!((k.n_i, k.n_o, k.limbs), (32, 256, 1));
        let v = AttnLayout::new(ring, Operand::Values, 12, 64, 256).unwrap();
        assert_eq!((v.n_i, v.n_o, v.limbs), (128, 64, 1));
        let k = AttnLayout::new(ring, Operand::Keys, 4, 32, 7).unwrap();
        assert_eq!((k.n_i, k.n_o), (32, 256));
        let v = AttnLayout::new(ring, Operand::Values, 4, 32, 7).unwrap();
        assert_eq!((v.n_i, v.n_o), (256, 32));
        // A 37-bit multiplier fits in one limb at ℓ = 37; a 43-bit one does not, and ℓ = 43
        // takes narrower limbs.
        let ring43 = Ring::new(43).unwrap();
        assert!(AttnLayout::with_limbs(ring43, Operand::Keys, 12, 64, 256, 1).is_err());
        let w = AttnLayout::new(ring43, Operand::Keys, 12, 64, 256).unwrap();
        assert!(w.limbs >= 2, "{w:?}");
    }
}
