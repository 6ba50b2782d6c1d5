//! `Sample`'s two-party execution: the token choice on this party's shares of the logits
//! (the protocols in `exec/sampling.rs`); only the client learns the token. Its name, class,
//! integer semantics, cost and `inspect` line: `compiler/src/plan/ops/sample.rs`.

use ciphergpt_compiler::plan;

use super::Step;
use crate::exec::Executor;
use crate::net::Channel;
use crate::protocols::ProtocolError;

impl Executor<'_> {
    /// `Sample`: the token, at the client.
    pub(super) fn sample_step<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        sp: &plan::Sample,
    ) -> Result<Option<usize>, ProtocolError> {
        let z = self.input(s, 0)?;
        self.sample(&mut s.party, sp, &z)
    }
}
