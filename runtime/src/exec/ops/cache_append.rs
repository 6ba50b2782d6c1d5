//! `CacheAppend`'s two-party execution: local, each party appends its shares to the cache. Its
//! name, class, integer semantics, cost and `inspect` line:
//! `compiler/src/plan/ops/cache_append.rs`.

use super::Step;
use crate::exec::Executor;
use crate::net::Channel;
use crate::protocols::ProtocolError;

impl Executor<'_> {
    /// `CacheAppend`: the input rows appended to the persistent register.
    pub(super) fn cache_append<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        self.cache.entry(s.output(0)?).or_default().extend(x);
        Ok(())
    }
}
