//! `QkT`'s and `Pv`'s two-party execution: attention's products against the KV cache under
//! RLWE, then their truncation. Their name, class, integer semantics, cost and `inspect` line:
//! `compiler/src/plan/ops/head_product.rs`.

use ciphergpt_compiler::plan;

use super::{causal_entries, Step};
use crate::exec::Executor;
use crate::net::{Channel, Role};
use crate::protocols::attention_he::{self, AttnLayout, DuplexHe, Operand, SharedCache};
use crate::protocols::ProtocolError;

impl Executor<'_> {
    /// `QkT`: the queries times the cached keys under RLWE, the causal entries truncated.
    pub(super) fn qk_t<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        h: &plan::HeadProduct,
    ) -> Result<(), ProtocolError> {
        let (q, kc) = (self.input(s, 0)?, self.input(s, 1)?);
        let c = self.cols(s.input_reg(0)?);
        let (t, past, heads) = (s.t, self.positions, h.heads as usize);
        let (role, ring) = (self.role, self.ring);
        let reg = s.input_reg(1)?;
        let cache =
            self.attention_cache(s.he, s.party.ch, reg, Operand::Keys, heads, c, past + t)?;
        let out = attention_he::qk_t(s.he, s.party.ch, role, ring, cache, &q, &kc, t, true)?;
        let causal = causal_entries(heads, t, past);
        let kept: Vec<u64> = causal.iter().map(|&i| out[i]).collect();
        // The client sends the attention product's last flight (its results).
        let kept = s.truncate(Role::Client, h.shift, &kept)?;
        let mut res = vec![0u64; out.len()];
        for (&i, v) in causal.iter().zip(kept) {
            res[i] = v;
        }
        s.regs.insert(s.output(0)?, res);
        Ok(())
    }

    /// `Pv`: the probabilities times the cached values under RLWE, truncated.
    pub(super) fn pv<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        h: &plan::HeadProduct,
    ) -> Result<(), ProtocolError> {
        let (p, vc) = (self.input(s, 0)?, self.input(s, 1)?);
        let reg = s.input_reg(1)?;
        let c = self.cols(reg);
        let (t, past, heads) = (s.t, self.positions, h.heads as usize);
        let (role, ring) = (self.role, self.ring);
        let cache =
            self.attention_cache(s.he, s.party.ch, reg, Operand::Values, heads, c, past + t)?;
        let out = attention_he::pv(s.he, s.party.ch, role, ring, cache, &p, &vc, t, true)?;
        let out = s.truncate(Role::Client, h.shift, &out)?;
        s.regs.insert(s.output(0)?, out);
        Ok(())
    }

    /// The RLWE state of cache register `reg`, created at first use for the session's
    /// positions, with encryptions prepared for its first `rows` rows (a no-op once they are).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attention_cache<C: Channel + ?Sized>(
        &mut self,
        he: &DuplexHe,
        ch: &mut C,
        reg: u32,
        operand: Operand,
        heads: usize,
        c: usize,
        rows: usize,
    ) -> Result<&mut SharedCache, ProtocolError> {
        if !self.attention.contains_key(&reg) {
            if heads == 0 || !c.is_multiple_of(heads) {
                return Err(ProtocolError::Invalid(format!(
                    "{c} columns do not split into {heads} heads"
                )));
            }
            let layout = AttnLayout::new(self.ring, operand, heads, c / heads, self.context)?;
            self.attention.insert(reg, SharedCache::new(layout));
        }
        let (role, ring) = (self.role, self.ring);
        let cache = self
            .attention
            .get_mut(&reg)
            .ok_or_else(|| ProtocolError::Invalid(format!("no cache state for {reg}")))?;
        attention_he::prepare(he, ch, role, ring, cache, rows)?;
        Ok(cache)
    }
}
