//! The token choice: the secure argmax (K = 1) or top-K sampling at the session's temperature
//! ([`Sampling`]), on this party's shares of the logits; only the client learns the token.

use ciphergpt_compiler::fixed::convert;
use ciphergpt_compiler::plan::{instruction::Op, Plan};

use super::Executor;
use crate::crypto::{Block, Prg};
use crate::net::Channel;
use crate::protocols::argmax;
use crate::protocols::topk::{self, Temperature, TopKParams};
use crate::protocols::{Party, ProtocolError};

/// A session's decoding: K (1 is greedy), the temperature's 16-bit fixed-point reciprocal (both
/// public, agreed by the two parties) and this party's randomness for top-K sampling (its shuffle
/// permutation and its part of each draw's jointly random value).
pub struct Sampling {
    pub top_k: u32,
    pub inv_temperature: u32,
    rng: Prg,
}

/// The plan's default decoding, (K, the temperature's reciprocal): its `Sample` instruction's,
/// greedy when it has none.
pub fn plan_decoding(plan: &Plan) -> (u32, u32) {
    let sample = plan
        .decode
        .iter()
        .flat_map(|p| p.instructions.iter())
        .find_map(|i| match &i.op {
            Some(Op::Sample(s)) => Some(s),
            _ => None,
        });
    (
        sample.map_or(1, |s| s.top_k.max(1)),
        sample.map_or(1 << 16, |s| s.inv_temperature),
    )
}

impl Sampling {
    /// The plan's default mode ([`plan_decoding`]), fresh randomness.
    pub fn of_plan(plan: &Plan) -> Sampling {
        let (top_k, inv_temperature) = plan_decoding(plan);
        Sampling::new(top_k, inv_temperature, None)
    }

    /// K and the temperature's reciprocal given; randomness from `seed` (reproducible runs: the
    /// seed must stay secret to this party) or fresh.
    pub fn new(top_k: u32, inv_temperature: u32, seed: Option<u64>) -> Sampling {
        Sampling {
            top_k,
            inv_temperature,
            rng: match seed {
                Some(s) => Prg::new(Block(u128::from(s) | 1 << 64)),
                None => Prg::from_entropy(),
            },
        }
    }
}

impl Executor<'_> {
    /// The token from this party's shares of the logits `z`: the secure argmax (K = 1) or top-K
    /// sampling with the session's temperature; `Some` at the client only.
    pub(super) fn sample<C: Channel + ?Sized>(
        &mut self,
        party: &mut Party<'_, C>,
        sp: &ciphergpt_compiler::plan::Sample,
        z: &[u64],
    ) -> Result<Option<usize>, ProtocolError> {
        let ring = self.ring;
        let k = self.sampling.top_k as usize;
        if k <= 1 {
            return argmax::argmax(party, ring, z);
        }
        if k > z.len() {
            return Err(ProtocolError::Invalid(format!(
                "top-k {k} exceeds the {} logits",
                z.len()
            )));
        }
        let tables = sp
            .softmax
            .as_ref()
            .map(convert::softmax_from_plan)
            .ok_or_else(|| ProtocolError::Invalid("the plan has no sampling softmax".into()))?;
        let mut perm: Vec<usize> = (0..z.len()).collect();
        rand::seq::SliceRandom::shuffle(perm.as_mut_slice(), &mut self.sampling.rng);
        let top = topk::topk_with(party, ring, z, k, &TopKParams::default(), &perm)?;
        let temp = Temperature {
            mul: u64::from(self.sampling.inv_temperature),
            shift: sp.shift,
        };
        let mine = self
            .sampling
            .rng
            .values(1, topk::sample_bits(tables.frac_out));
        let got = topk::sample_with(party, ring, &top, temp, &tables, &mine)?;
        Ok(got.and_then(|v| v.first().copied()))
    }
}
