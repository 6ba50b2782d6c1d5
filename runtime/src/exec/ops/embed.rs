//! `Embed`'s two-party execution: the private embedding lookup. Its name, class, integer
//! semantics, cost and `inspect` line: `compiler/src/plan/ops/embed.rs`.

use ciphergpt_compiler::plan;

use super::Step;
use crate::exec::Executor;
use crate::net::{Channel, Role};
use crate::protocols::ProtocolError;

impl Executor<'_> {
    /// `Embed`: the client's share is the one-hot rows of its tokens, the server's zero; their
    /// product with the token table is the table's rows. The server adds the position rows.
    pub(super) fn embed<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        e: &plan::Embed,
    ) -> Result<(), ProtocolError> {
        let (t, ring, past) = (s.t, self.ring, self.positions);
        let out0 = s.output(0)?;
        let c = self.cols(out0);
        let vocab = self.plan.model.as_ref().map_or(0, |m| m.vocab as usize);
        let mut onehot = vec![0u64; t * vocab];
        if let Some(tk) = s.tokens.filter(|_| self.role == Role::Client) {
            for (r, &x) in tk.iter().enumerate() {
                if x < 0 || x as usize >= vocab {
                    return Err(ProtocolError::Invalid(format!(
                        "token id {x} outside the vocabulary of {vocab}"
                    )));
                }
                onehot[r * vocab + x as usize] = 1;
            }
        }
        let mut x = if self.decoding && self.stock.product_has(e.token_table, t) {
            let own = (self.role == Role::Client).then_some(&onehot[..]);
            self.masked_product(s.party.ch, e.token_table, own, t, None)?
        } else {
            self.product(s.he, s.party.ch, e.token_table, &onehot, t, None)?
        };
        if let Some(pe) = self.model.signed(e.position_table) {
            for (r, row) in x.chunks_mut(c).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = ring.add(*v, ring.from_signed(pe[(past + r) * c + j]));
                }
            }
        }
        s.regs.insert(out0, x);
        Ok(())
    }
}
