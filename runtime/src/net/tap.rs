//! A channel wrapper that records everything its party receives: the party's view of the
//! transcript, for tests that check what a party can see.

use std::time::Duration;

use super::{Accounting, Channel, NetError};

/// Wraps a channel and keeps a copy of every byte received through it.
pub struct Tap<C> {
    inner: C,
    /// Every byte received, in order.
    pub received: Vec<u8>,
}

impl<C: Channel> Tap<C> {
    pub fn new(inner: C) -> Self {
        Tap {
            inner,
            received: Vec::new(),
        }
    }
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C: Channel> Channel for Tap<C> {
    fn send_raw(&mut self, data: &[u8]) -> Result<(), NetError> {
        self.inner.send_raw(data)
    }
    fn recv_raw(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        self.inner.recv_raw(buf)?;
        self.received.extend_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), NetError> {
        self.inner.flush()
    }
    fn accounting(&mut self) -> &mut Accounting {
        self.inner.accounting()
    }
    fn accounting_ref(&self) -> &Accounting {
        self.inner.accounting_ref()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
}
