//! Deadlines for whole messages over a socket whose timeouts apply to each read or write.
//!
//! A socket's read timeout (`SO_RCVTIMEO`) bounds one `read` call: a peer that sends one byte
//! per timeout would keep a reader of a 14-byte message waiting for 14 timeouts. [`Timed`] wraps
//! one direction of a TCP stream and gives each *operation* (one `recv` or `send`/`flush` of the
//! channel, [`Timed::start`]) a deadline: the timeout from its first wait, and never later than
//! an outer deadline (the handshake's, [`Timed::set_outer`]). Before each read or write it sets
//! the socket's timeout to what is left, so a trickling peer fails within the timeout in total.
//!
//! The socket option is set again only when it is off by more than a *slack* (a fiftieth of the
//! timeout, at most 20 ms): an operation that does not wait that long sets nothing, and one that
//! waits longer sets it about once per slack, so a deadline can be overrun by at most the slack.
//! A read or write that times out before the deadline (the option was shorter, from an earlier
//! operation) is retried with what is left. The bytes on the wire do not change.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The instant `d` from now; a `d` beyond the clock's range (no `--timeout` is) gives a century.
pub fn after(d: Duration) -> Instant {
    let now = Instant::now();
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(d)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// Which of the socket's two timeouts a [`Timed`] sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    Read,
    Write,
}

/// One direction of a TCP stream, each operation of which ends by its deadline.
#[derive(Debug)]
pub struct Timed {
    stream: TcpStream,
    half: Half,
    /// How long one operation may last.
    limit: Duration,
    /// How far the socket's timeout may be from what is left before it is set again.
    slack: Duration,
    /// The socket's timeout for this direction, as last set.
    armed: Duration,
    /// The current operation's deadline, from its first wait; `None` before it (or when the
    /// clock cannot hold it).
    deadline: Option<Instant>,
    /// Whether the current operation has waited yet.
    started: bool,
    /// A deadline no operation may pass (the handshake's).
    outer: Option<Instant>,
}

impl Timed {
    /// Wrap `stream` (blocking) for `half`, with `limit` per operation; sets the socket's timeout.
    pub fn new(stream: TcpStream, half: Half, limit: Duration) -> io::Result<Timed> {
        let mut t = Timed {
            stream,
            half,
            limit,
            slack: (limit / 50).min(Duration::from_millis(20)),
            armed: limit,
            deadline: None,
            started: false,
            outer: None,
        };
        t.set(limit)?;
        Ok(t)
    }

    /// The stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// Begin an operation: its deadline is the limit from its first wait.
    #[inline]
    pub fn start(&mut self) {
        self.started = false;
    }

    /// The outer deadline, if any.
    pub fn outer(&self) -> Option<Instant> {
        self.outer
    }

    /// Bound every operation by `outer` too (`None`: by its own limit only).
    pub fn set_outer(&mut self, outer: Option<Instant>) {
        self.outer = outer;
    }

    fn set(&mut self, d: Duration) -> io::Result<()> {
        // A zero timeout means "none" to the socket: wait a microsecond at least.
        let d = d.max(Duration::from_micros(1));
        match self.half {
            Half::Read => self.stream.set_read_timeout(Some(d))?,
            Half::Write => self.stream.set_write_timeout(Some(d))?,
        }
        self.armed = d;
        Ok(())
    }

    /// Before a wait: the socket's timeout is set to what is left of the operation, within the
    /// slack; past the deadline, a `TimedOut` error.
    fn arm(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if !self.started {
            self.started = true;
            self.deadline = now.checked_add(self.limit);
        }
        let deadline = match (self.deadline, self.outer) {
            (Some(d), Some(o)) => Some(d.min(o)),
            (d, o) => d.or(o),
        };
        let left = deadline.map_or(self.limit, |d| d.saturating_duration_since(now));
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if self.armed.abs_diff(left) > self.slack {
            self.set(left)?;
        }
        Ok(())
    }

    /// Run one read or write until it succeeds, fails otherwise, or the deadline passes.
    fn wait<R>(&mut self, mut op: impl FnMut(&mut TcpStream) -> io::Result<R>) -> io::Result<R> {
        loop {
            self.arm()?;
            match op(&mut self.stream) {
                // The socket's timeout ran out: the deadline may not have (`arm` decides).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(|s| s.read(buf))
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wait(|s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

// Not the two-party harness (`crate::testing`): these tests are of the socket deadlines
// themselves, on a bare `std::net` socket pair that a thread drips bytes into.
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    /// A peer that sends a byte every 120 ms never lets one read wait 300 ms, but a 10-byte
    /// read of it fails at 300 ms, having read 2 or 3 bytes.
    #[test]
    fn a_trickle_fails_at_the_deadline_not_per_byte() {
        let (a, b) = pair();
        let drip = std::thread::spawn(move || {
            for _ in 0..10 {
                if (&a).write_all(&[1]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(120));
            }
        });
        let limit = Duration::from_millis(300);
        let mut r = Timed::new(b, Half::Read, limit).unwrap();
        let mut buf = [0u8; 10];
        r.start();
        let t = Instant::now();
        let e = r.read_exact(&mut buf).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(took >= limit, "{took:?}");
        assert!(took < limit + Duration::from_millis(150), "{took:?}");
        drop(r);
        drip.join().unwrap();
    }

    /// Each operation has its own deadline: slow messages that each arrive within the limit all
    /// pass, though together they take longer; an outer deadline ends them all.
    #[test]
    fn each_operation_has_its_own_deadline_within_the_outer_one() {
        let (a, b) = pair();
        let send = std::thread::spawn(move || {
            for _ in 0..4 {
                std::thread::sleep(Duration::from_millis(150));
                if (&a).write_all(&[2]).is_err() {
                    return;
                }
            }
        });
        let mut r = Timed::new(b, Half::Read, Duration::from_millis(250)).unwrap();
        let mut one = [0u8; 1];
        let t = Instant::now();
        for _ in 0..2 {
            r.start();
            r.read_exact(&mut one).unwrap();
            assert_eq!(one, [2]);
        }
        assert!(t.elapsed() >= Duration::from_millis(300));
        r.set_outer(Some(Instant::now() + Duration::from_millis(100)));
        r.start();
        let e = r.read_exact(&mut one).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        send.join().unwrap();
    }
}
