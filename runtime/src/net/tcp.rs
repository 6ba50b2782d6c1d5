//! Blocking TCP channels: buffered both ways, `TCP_NODELAY`, flushed before every receive (as EMP
//! and SCI do), with a deadline for each whole receive and each send or flush (the timeout, from
//! its first wait; [`super::deadline`]) so that a stalled, vanished or trickling peer gives an
//! error within the timeout, never a hang. The handshake of each connection has one deadline for
//! all of it ([`TcpChannel::within`]): the timeout, however its bytes arrive.
//!
//! A session is `lanes` connections from the client to the server, opened in order; each
//! starts with the [`handshake`](super::handshake()). The first negotiates the lanes (the smaller
//! of the two parties' `channels`, [`lanes`](super::lanes)); the server checks that every
//! connection after the first carries the session id of the first, its index and that count.
//!
//! With [`SessionConfig::tls`] every connection runs the TLS handshake first
//! ([`TcpChannel::start_tls`], [`super::tls`]), within the deadline of its handshake, and carries
//! everything after it over TLS; the accounting counts the session's bytes, not TLS's.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::deadline::{after, Half, Timed};
use super::tls::{Tls, TlsStream};
use super::{handshake, lanes, Accounting, Channel, Hello, NetError, SessionConfig};

const BUF: usize = 1 << 18;

/// One TCP connection to the peer.
pub struct TcpChannel {
    io: Transport,
    acct: Accounting,
    timeout: Duration,
    peer: SocketAddr,
}

/// The bytes' way: plaintext, buffered each way, or TLS (rustls buffers what it reads; writes
/// are buffered before they are encrypted, so a record carries up to 16 KiB). One per
/// connection: the plain variant's size (two buffer handles) does not matter.
#[allow(clippy::large_enum_variant)]
enum Transport {
    Plain {
        reader: BufReader<Timed>,
        writer: BufWriter<Timed>,
    },
    Tls(Box<BufWriter<TlsStream>>),
}

impl TcpChannel {
    /// Wrap a connected stream (no handshake).
    pub fn from_stream(stream: TcpStream, timeout: Duration) -> Result<TcpChannel, NetError> {
        let io = |e| NetError::from_io(e, "configuring the TCP connection", timeout);
        stream.set_nonblocking(false).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let peer = stream.peer_addr().map_err(io)?;
        let w = stream.try_clone().map_err(io)?;
        let reader = Timed::new(stream, Half::Read, timeout).map_err(io)?;
        let writer = Timed::new(w, Half::Write, timeout).map_err(io)?;
        Ok(TcpChannel {
            io: Transport::Plain {
                reader: BufReader::with_capacity(BUF, reader),
                writer: BufWriter::with_capacity(BUF, writer),
            },
            acct: Accounting::default(),
            timeout,
            peer,
        })
    }

    /// Run the TLS handshake as `tls`'s side, before any byte of the session: from then on
    /// every byte goes over TLS. Its waits keep the channel's deadlines (run it [`within`] the
    /// connection's handshake). TLS's own bytes are not counted.
    ///
    /// [`within`]: TcpChannel::within
    pub fn start_tls(&mut self, tls: &Tls) -> Result<(), NetError> {
        let Transport::Plain { reader, writer } = &self.io else {
            return Err(NetError::InvalidArgument("TLS is on already".into()));
        };
        if !reader.buffer().is_empty() || !writer.buffer().is_empty() {
            return Err(NetError::InvalidArgument(
                "TLS must start before any byte of the session".into(),
            ));
        }
        let what = format!("doing the TLS handshake with {}", self.peer);
        let fail = |e| NetError::from_io(e, what.as_str(), self.timeout);
        let outer = reader.get_ref().outer();
        let half = |half| -> std::io::Result<Timed> {
            let mut t = Timed::new(reader.get_ref().get_ref().try_clone()?, half, self.timeout)?;
            t.set_outer(outer);
            t.start();
            Ok(t)
        };
        let (r, w) = (
            half(Half::Read).map_err(fail)?,
            half(Half::Write).map_err(fail)?,
        );
        let tls = TlsStream::handshake(tls, r, w).map_err(fail)?;
        self.io = Transport::Tls(Box::new(BufWriter::with_capacity(BUF, tls)));
        Ok(())
    }

    /// Whether the bytes go over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Transport::Tls(_))
    }

    fn stream(&self) -> &TcpStream {
        match &self.io {
            Transport::Plain { reader, .. } => reader.get_ref().get_ref(),
            Transport::Tls(t) => t.get_ref().r.get_ref(),
        }
    }

    /// Whether the peer has closed (or reset) its end: a read would find the end of the stream
    /// at once. Bytes already waiting, or none yet on an open connection, mean it is still
    /// there. (A server checks a queued client before it takes a slot for it.)
    pub fn peer_closed(&mut self) -> bool {
        let buffered = match &mut self.io {
            Transport::Plain { reader, .. } => !reader.buffer().is_empty(),
            Transport::Tls(t) => t.get_mut().has_plaintext(),
        };
        if buffered {
            return false;
        }
        let stream = self.stream();
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let closed = match stream.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        // Back to blocking reads with the channel's timeout (the flag is the socket's).
        let _ = stream.set_nonblocking(false);
        closed
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Run `f` (a handshake, or reading the peer's hello) with one deadline for all of it: the
    /// channel's timeout from now, whatever the deadlines of its messages. A timeout there is
    /// reported as `what` (a gerund: "doing the handshake of …") with that timeout.
    pub fn within<R>(
        &mut self,
        what: impl Into<String>,
        f: impl FnOnce(&mut TcpChannel) -> Result<R, NetError>,
    ) -> Result<R, NetError> {
        let outer = Instant::now().checked_add(self.timeout);
        self.set_outer(outer);
        let r = f(self);
        self.set_outer(None);
        match r {
            Err(NetError::Timeout { .. }) => Err(NetError::Timeout {
                what: what.into(),
                secs: self.timeout.as_secs_f64(),
            }),
            r => r,
        }
    }

    fn set_outer(&mut self, outer: Option<Instant>) {
        let (r, w) = self.halves();
        r.set_outer(outer);
        w.set_outer(outer);
    }

    /// The read and write halves, for their deadlines.
    fn halves(&mut self) -> (&mut Timed, &mut Timed) {
        match &mut self.io {
            Transport::Plain { reader, writer } => (reader.get_mut(), writer.get_mut()),
            Transport::Tls(t) => {
                let s = t.get_mut();
                (&mut s.r, &mut s.w)
            }
        }
    }
}

/// Establish a session's connection: TLS first if `cfg` asks for it, then the hellos, all
/// within one deadline (`what`).
fn open(
    ch: &mut TcpChannel,
    cfg: &SessionConfig,
    what: String,
    ours: &Hello,
) -> Result<Hello, NetError> {
    ch.within(what, |ch| {
        if let Some(tls) = &cfg.tls {
            ch.start_tls(tls)?;
        }
        handshake(ch, ours)
    })
}

impl Drop for TcpChannel {
    /// Bytes still buffered are sent within the timeout from now (not from an earlier send).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Channel for TcpChannel {
    fn send_raw(&mut self, data: &[u8]) -> Result<(), NetError> {
        self.halves().1.start();
        let r = match &mut self.io {
            Transport::Plain { writer, .. } => writer.write_all(data),
            Transport::Tls(t) => t.write_all(data),
        };
        r.map_err(|e| {
            NetError::from_io(
                e,
                format!("sending {} bytes to {}", data.len(), self.peer),
                self.timeout,
            )
        })
    }

    fn recv_raw(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        // A TLS read may write too (an alert).
        let (r, w) = self.halves();
        r.start();
        w.start();
        let r = match &mut self.io {
            Transport::Plain { reader, .. } => reader.read_exact(buf),
            Transport::Tls(t) => t.get_mut().read_exact(buf),
        };
        r.map_err(|e| {
            NetError::from_io(
                e,
                format!("receiving {} bytes from {}", buf.len(), self.peer),
                self.timeout,
            )
        })
    }

    fn flush(&mut self) -> Result<(), NetError> {
        self.halves().1.start();
        let r = match &mut self.io {
            Transport::Plain { writer, .. } => writer.flush(),
            Transport::Tls(t) => t.flush(),
        };
        r.map_err(|e| NetError::from_io(e, format!("sending to {}", self.peer), self.timeout))
    }

    fn accounting(&mut self) -> &mut Accounting {
        &mut self.acct
    }

    fn accounting_ref(&self) -> &Accounting {
        &self.acct
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A bound server socket.
pub struct Listener {
    inner: TcpListener,
    addr: SocketAddr,
}

impl Listener {
    /// Bind to `addr` (use port 0 for any free port, then [`Listener::local_addr`]).
    pub fn bind(addr: &str) -> Result<Listener, NetError> {
        let inner = TcpListener::bind(addr).map_err(|e| NetError::Io {
            what: format!("binding {addr} (is the port in use?)"),
            err: e,
        })?;
        let addr = inner.local_addr().map_err(|e| NetError::Io {
            what: "reading the bound address".into(),
            err: e,
        })?;
        Ok(Listener { inner, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accept one session of at most `cfg.channels` connections (as many as negotiated on the
    /// first); waits at most `cfg.timeout` for each.
    pub fn accept(&self, cfg: &SessionConfig) -> Result<Vec<TcpChannel>, NetError> {
        self.accept_within(cfg, Some(cfg.timeout))
    }

    /// Accept one session, waiting at most `first_wait` for the first connection (forever when
    /// `None`) and `cfg.timeout` for each of the others.
    pub fn accept_within(
        &self,
        cfg: &SessionConfig,
        first_wait: Option<Duration>,
    ) -> Result<Vec<TcpChannel>, NetError> {
        let mut n = 1;
        let mut chans = Vec::with_capacity(cfg.channels.max(1));
        let mut session = [0u8; 16];
        let mut i = 0;
        while i < n {
            let wait = if i == 0 {
                first_wait
            } else {
                Some(cfg.timeout)
            };
            let stream = self.accept_one(wait)?;
            let mut ch = TcpChannel::from_stream(stream, cfg.timeout)?;
            let ours = Hello::new(cfg, i as u32, session);
            let ours = if i == 0 { ours } else { ours.lanes(n) };
            let what = format!(
                "doing the handshake of connection {i} from {}",
                ch.peer_addr()
            );
            let theirs = open(&mut ch, cfg, what, &ours)?;
            if i == 0 {
                session = theirs.session_id;
                n = lanes(&ours, &theirs);
            } else if theirs.session_id != session {
                return Err(NetError::HandshakeMismatch {
                    field: "session id",
                    ours: "the first connection's".into(),
                    theirs: "another".into(),
                    hint: "a second client connected to this server while a session was opening",
                });
            }
            chans.push(ch);
            i += 1;
        }
        Ok(chans)
    }

    fn accept_one(&self, wait: Option<Duration>) -> Result<TcpStream, NetError> {
        let io = |e| NetError::Io {
            what: format!("accepting on {}", self.addr),
            err: e,
        };
        let Some(wait) = wait else {
            self.inner.set_nonblocking(false).map_err(io)?;
            return self.inner.accept().map(|(s, _)| s).map_err(io);
        };
        self.inner.set_nonblocking(true).map_err(io)?;
        let deadline = after(wait);
        loop {
            match self.inner.accept() {
                Ok((s, _)) => return Ok(s),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(NetError::AcceptTimeout {
                            addr: self.addr.to_string(),
                            secs: wait.as_secs_f64(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(io(e)),
            }
        }
    }
}

/// Connect a session to the server at `addr`, asking for `cfg.channels` lanes: the first
/// connection negotiates how many (at most the ask), then the others are opened, one connection
/// per lane. Retries while the server is not yet listening, for at most `cfg.timeout` each.
pub fn connect(addr: &str, cfg: &SessionConfig) -> Result<Vec<TcpChannel>, NetError> {
    let session: [u8; 16] = rand::random();
    let stream = connect_one(addr, cfg.timeout)?;
    let mut first = TcpChannel::from_stream(stream, cfg.timeout)?;
    let ours = Hello::new(cfg, 0, session);
    let theirs = open(&mut first, cfg, handshake_with(addr, 0), &ours)?;
    let n = lanes(&ours, &theirs);
    let mut chans = Vec::with_capacity(n);
    chans.push(first);
    for i in 1..n {
        let stream = connect_one(addr, cfg.timeout)?;
        let mut ch = TcpChannel::from_stream(stream, cfg.timeout)?;
        let ours = Hello::new(cfg, i as u32, session).lanes(n);
        open(&mut ch, cfg, handshake_with(addr, i), &ours)?;
        chans.push(ch);
    }
    Ok(chans)
}

/// What a client's handshake on connection `i` is, in a timeout's message.
fn handshake_with(addr: &str, i: usize) -> String {
    format!("doing the handshake of connection {i} with {addr}")
}

fn connect_one(addr: &str, timeout: Duration) -> Result<TcpStream, NetError> {
    let deadline = after(timeout);
    let fail = |err| NetError::Connect {
        addr: addr.to_string(),
        secs: timeout.as_secs_f64(),
        err,
    };
    let sa: SocketAddr = addr
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::other("the address resolves to nothing")))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail(std::io::ErrorKind::TimedOut.into()));
        }
        match TcpStream::connect_timeout(&sa, left) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
                ) =>
            {
                if deadline.saturating_duration_since(Instant::now()) <= Duration::from_millis(20) {
                    return Err(fail(e));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

// Not the two-party harness (`crate::testing`): these tests are of the TCP transport itself
// (its listener, connect retries, lane negotiation, peers that drip, stall or vanish), so each
// opens its sockets as the case needs, with short timeouts.
#[cfg(test)]
mod tests {
    use super::super::{Role, WireMessage};
    use super::*;

    fn cfgs(n: usize, t: Duration) -> (SessionConfig, SessionConfig) {
        (
            SessionConfig::new(Role::Server, [5; 32])
                .with_channels(n)
                .with_timeout(t),
            SessionConfig::new(Role::Client, [5; 32])
                .with_channels(n)
                .with_timeout(t),
        )
    }

    #[test]
    fn loopback_session_with_two_channels() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let (s, c) = cfgs(2, Duration::from_secs(10));
        let h = std::thread::spawn(move || {
            let mut chans = connect(&addr, &c).unwrap();
            for (i, ch) in chans.iter_mut().enumerate() {
                let data = vec![i as u8; 300_000];
                ch.send(&data).unwrap();
                assert_eq!(ch.recv_u64().unwrap(), 300_000 * i as u64);
            }
            chans[0].stats()
        });
        let mut chans = l.accept(&s).unwrap();
        for (i, ch) in chans.iter_mut().enumerate() {
            let got = ch.recv_vec(300_000).unwrap();
            assert!(got.iter().all(|&b| b == i as u8));
            ch.send_u64(got.iter().map(|&b| b as u64).sum()).unwrap();
            ch.flush().unwrap();
        }
        let cs = h.join().unwrap();
        // Channel 0's hello: the preamble (12), the length (2), a body of 56 bytes (index 0
        // is left out).
        assert_eq!(cs.total.bytes_sent, 300_000 + 70);
        assert_eq!(cs.scope("handshake").bytes_received, 70);
    }

    #[test]
    fn the_smaller_party_sets_the_lanes() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let (s, _) = cfgs(4, Duration::from_secs(10));
        let (_, c) = cfgs(2, Duration::from_secs(10));
        let h = std::thread::spawn(move || connect(&addr, &c).unwrap().len());
        assert_eq!(l.accept(&s).unwrap().len(), 2);
        assert_eq!(h.join().unwrap(), 2);
        // And the other way round.
        let addr = l.local_addr().to_string();
        let (s, _) = cfgs(1, Duration::from_secs(10));
        let (_, c) = cfgs(3, Duration::from_secs(10));
        let h = std::thread::spawn(move || connect(&addr, &c).unwrap().len());
        assert_eq!(l.accept(&s).unwrap().len(), 1);
        assert_eq!(h.join().unwrap(), 1);
    }

    #[test]
    fn plan_hash_mismatch_over_tcp() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let (s, mut c) = cfgs(1, Duration::from_secs(10));
        c.plan_hash = [6; 32];
        let h = std::thread::spawn(move || connect(&addr, &c).err().map(|e| e.to_string()));
        let e = l.accept(&s).err().unwrap().to_string();
        assert!(e.contains("plan hash differs"), "{e}");
        assert!(h.join().unwrap().unwrap().contains("plan hash differs"));
    }

    #[test]
    fn a_closed_peer_is_seen_without_a_read() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (stream, _) = l.accept().unwrap();
        let mut ch = TcpChannel::from_stream(stream, Duration::from_secs(5)).unwrap();
        assert!(!ch.peer_closed(), "open and silent");
        (&client).write_all(&[7]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!ch.peer_closed(), "a byte waiting");
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!ch.peer_closed(), "the byte still unread");
        let mut b = [0u8; 1];
        ch.recv(&mut b).unwrap();
        assert_eq!(b, [7]);
        assert!(ch.peer_closed());
        // Still a blocking channel: a read ends at once with the peer gone.
        assert!(matches!(
            ch.recv_vec(1).unwrap_err(),
            NetError::Disconnected { .. }
        ));
    }

    #[test]
    fn peer_exit_gives_disconnected() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let (s, c) = cfgs(1, Duration::from_secs(20));
        let h = std::thread::spawn(move || {
            let chans = connect(&addr, &c).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(chans);
        });
        let mut ch = l.accept(&s).unwrap().pop().unwrap();
        let t = Instant::now();
        let e = ch.recv_vec(1000).unwrap_err();
        h.join().unwrap();
        assert!(matches!(e, NetError::Disconnected { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn stalled_peer_times_out() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let (s, c) = cfgs(1, Duration::from_millis(300));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _chans = connect(&addr, &c).unwrap();
            let _ = rx.recv(); // hold the connection open, silently
        });
        let mut ch = l.accept(&s).unwrap().pop().unwrap();
        let t = Instant::now();
        let e = ch.recv_vec(10).unwrap_err();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        tx.send(()).unwrap();
        h.join().unwrap();
    }

    /// A peer that sends a byte every 100 ms never lets one read wait 300 ms; a 10-byte
    /// receive of it still ends at 300 ms (it would take a second at that pace).
    #[test]
    fn a_trickling_peer_times_out_within_the_timeout_in_all() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let drip = std::thread::spawn(move || {
            for _ in 0..12 {
                if (&client).write_all(&[3]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (stream, _) = l.accept().unwrap();
        let limit = Duration::from_millis(300);
        let mut ch = TcpChannel::from_stream(stream, limit).unwrap();
        let t = Instant::now();
        let e = ch.recv_vec(10).unwrap_err();
        let took = t.elapsed();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("after 0.3 s while receiving 10 bytes"),
            "{e}"
        );
        assert!(
            took >= limit && took < limit + Duration::from_millis(150),
            "{took:?}"
        );
        drop(ch);
        drip.join().unwrap();
    }

    /// The handshake has one deadline in all: a hello whose length and body each come within
    /// the timeout, but not both, is cut at the timeout; the same pace passes a bare handshake.
    #[test]
    fn a_slow_hello_fails_the_handshake_within_the_timeout() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr();
        let (s, c) = cfgs(1, Duration::from_millis(500));
        let hello = Hello::new(&c, 0, [4; 16]).encode();
        let send_slowly = move || {
            let mut raw = std::net::TcpStream::connect(addr).unwrap();
            // The preamble and length, then the body, 300 ms apart.
            for part in [&hello[..14], &hello[14..]] {
                std::thread::sleep(Duration::from_millis(300));
                if raw.write_all(part).is_err() {
                    return;
                }
            }
            let mut answer = Vec::new();
            let _ = raw.read_to_end(&mut answer);
        };
        let h = std::thread::spawn(send_slowly.clone());
        let t = Instant::now();
        let e = l.accept(&s).err().unwrap();
        let took = t.elapsed();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("after 0.5 s while doing the handshake of connection 0 from 127.0.0.1:"),
            "{e}"
        );
        // The accept waits up to 300 ms for the connection, then 500 ms for its handshake.
        assert!(took < Duration::from_millis(950), "{took:?}");
        h.join().unwrap();
        // Each message on its own is within the timeout.
        let h = std::thread::spawn(send_slowly);
        let stream = l.accept_one(Some(Duration::from_secs(5))).unwrap();
        let mut ch = TcpChannel::from_stream(stream, Duration::from_millis(500)).unwrap();
        let theirs = handshake(&mut ch, &Hello::new(&s, 0, [0; 16])).unwrap();
        assert_eq!(theirs.session_id, [4; 16]);
        drop(ch);
        h.join().unwrap();
    }

    #[test]
    fn nobody_listening_fails_within_timeout() {
        // Bind then drop to get a port that is (almost certainly) closed.
        let port = Listener::bind("127.0.0.1:0").unwrap().local_addr().port();
        let (_, c) = cfgs(1, Duration::from_millis(300));
        let t = Instant::now();
        let e = connect(&format!("127.0.0.1:{port}"), &c).err().unwrap();
        assert!(matches!(e, NetError::Connect { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn nobody_connecting_fails_within_timeout() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let (s, _) = cfgs(1, Duration::from_millis(200));
        let e = l.accept(&s).err().unwrap();
        assert!(matches!(e, NetError::AcceptTimeout { .. }), "{e}");
    }
}
