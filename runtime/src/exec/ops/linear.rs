//! `Linear`'s and `Logits`' two-party execution: a weight product, by a prepared correlation or
//! under RLWE, then its truncation. Their name, class, integer semantics, cost and `inspect`
//! line: `compiler/src/plan/ops/linear.rs`.

use ciphergpt_compiler::plan;

use super::Step;
use crate::exec::Executor;
use crate::net::{Channel, Role};
use crate::protocols::ProtocolError;

impl Executor<'_> {
    /// `Linear` and `Logits` (the last row only): x·W + b, by the prepared correlation in a
    /// decode step while it lasts, else under RLWE; then the shift.
    pub(super) fn linear<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        l: &plan::Linear,
        last_row: bool,
    ) -> Result<(), ProtocolError> {
        let t = s.t;
        let x = self.input(s, 0)?;
        let k = self.cols(s.input_reg(0)?);
        let (x, rows) = match last_row {
            true => (x[(t - 1) * k..t * k].to_vec(), 1),
            false => (x, t),
        };
        // The client sends a prepared product's last flight (its masked input), the server an
        // encrypted-input product's (the results).
        let (y, last) = if self.decoding && self.stock.product_has(l.weight, rows) {
            let y = self.masked_product(s.party.ch, l.weight, Some(&x), rows, l.bias)?;
            (y, Role::Client)
        } else {
            let y = self.product(s.he, s.party.ch, l.weight, &x, rows, l.bias)?;
            (y, Role::Server)
        };
        let y = s.truncate(last, l.shift, &y)?;
        s.regs.insert(s.output(0)?, y);
        Ok(())
    }
}
