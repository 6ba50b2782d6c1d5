//! `Add`'s two-party execution: local, each party adds its shares. Its name, class, integer
//! semantics, cost and `inspect` line: `compiler/src/plan/ops/add.rs`.

use super::Step;
use crate::exec::Executor;
use crate::net::Channel;
use crate::protocols::ProtocolError;

impl Executor<'_> {
    /// `Add`: the sum of the two inputs' shares.
    pub(super) fn add<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
    ) -> Result<(), ProtocolError> {
        let (a, b) = (self.input(s, 0)?, self.input(s, 1)?);
        s.regs.insert(s.output(0)?, self.ring.add_vec(&a, &b));
        Ok(())
    }
}
