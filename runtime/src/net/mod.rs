//! The channel between the two parties.
//!
//! One trait, [`Channel`], with two implementations: [`tcp::TcpChannel`] (blocking TCP, buffered,
//! `TCP_NODELAY`, flushed before every receive) and [`mem::MemChannel`] (an in-memory pair for
//! tests). Every channel counts the bytes it sends and receives and the rounds it takes part in,
//! and attributes them to the *scope* that is current when they happen ([`Channel::set_scope`],
//! [`scoped`]), so that the cost of each plan instruction is measured, not estimated.
//!
//! A round is a flight of messages in one direction: the counter goes up each time this party's
//! direction changes (send after receive, or receive after send), and on its first operation. For a
//! protocol A→B→A both parties count 2 rounds. A scope counts its own first flight too, so the
//! rounds of the scopes can add up to more than the total (a flight can straddle two scopes),
//! unless flights continue across scopes ([`Accounting::continue_flights`], as the executor
//! counts a program's instructions): then a scope counts a flight only where the direction turns.
//!
//! Every wait has a timeout, for the whole message: a receive (or a send, a flush) ends within
//! the timeout however the peer's bytes trickle, and over TCP a connection's handshake ends
//! within one timeout in all ([`deadline`], [`tcp::TcpChannel::within`]). A peer that
//! disconnects gives [`NetError::Disconnected`], a peer that stalls or trickles gives
//! [`NetError::Timeout`]; neither hangs.
//!
//! Between hosts the connections run over TLS 1.3 ([`tls`]: the server certified by a CA the
//! client trusts, optionally the client too); the accounting counts the same bytes either way.
//!
//! [`wire`] holds every session-level message (the hello, the client's OT choice, its request,
//! the step before each decode) and [`WIRE_VERSION`], the version of everything on the wire.
//!
//! [`link::Link`] is a network link as a cost (round-trip time, bandwidth; the design's `lan` and
//! `wan`): a flight costs half a round trip, a byte its transfer time
//! ([`link::Link::estimate_seconds`]); `ciphergpt relay` emulates one between the two processes.

pub mod deadline;
pub mod handshake;
pub mod link;
pub mod mem;
pub mod tap;
pub mod tcp;
pub mod tls;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::block::{self, Block};

pub use handshake::{answer, handshake, lanes, read_hello, Hello};
pub use wire::{WireMessage, WIRE_VERSION};

/// Default time a party waits for its peer before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Which side of the two-party computation this process plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Holds the weights; listens.
    Server,
    /// Holds the prompt; connects.
    Client,
}

impl Role {
    /// The peer's role.
    pub fn other(self) -> Role {
        match self {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Server => "server",
            Role::Client => "client",
        })
    }
}

/// Everything that can go wrong between the two parties. Messages are one line: what happened,
/// where, and a hint.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("timed out after {secs:.1} s while {what}: the peer stalled or is far slower (raise the timeout if this is expected)")]
    Timeout { what: String, secs: f64 },
    #[error("the peer disconnected while {what}: it exited or crashed (see its own error output)")]
    Disconnected { what: String },
    #[error("handshake refused: {field} differs (ours {ours}, peer's {theirs}); {hint}")]
    HandshakeMismatch {
        field: &'static str,
        ours: String,
        theirs: String,
        hint: &'static str,
    },
    #[error(
        "could not connect to {addr} within {secs:.1} s ({err}): is the peer listening there?"
    )]
    Connect {
        addr: String,
        secs: f64,
        err: std::io::Error,
    },
    #[error("no peer connected to {addr} within {secs:.1} s: start the other party, or raise the timeout")]
    AcceptTimeout { addr: String, secs: f64 },
    #[error("I/O error while {what}: {err}")]
    Io { what: String, err: std::io::Error },
    #[error("malformed message from the peer: {0} (the peer is buggy or not a ciphergpt runtime)")]
    Malformed(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("TLS failed while {what}: {problem}")]
    Tls { what: String, problem: String },
    #[error("{file}: {problem}")]
    File { file: String, problem: String },
}

impl NetError {
    /// Classify an I/O error raised while doing `what`, waiting at most `timeout` per operation.
    pub fn from_io(err: std::io::Error, what: impl Into<String>, timeout: Duration) -> NetError {
        use std::io::ErrorKind::*;
        let what = what.into();
        if let Some(inner) = err.get_ref() {
            let problem = if let Some(e) = inner.downcast_ref::<rustls::Error>() {
                Some(tls::describe(e))
            } else {
                inner
                    .downcast_ref::<tls::Mismatch>()
                    .map(|m| m.0.to_string())
            };
            if let Some(problem) = problem {
                return NetError::Tls { what, problem };
            }
        }
        match err.kind() {
            WouldBlock | TimedOut => NetError::Timeout {
                what,
                secs: timeout.as_secs_f64(),
            },
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected => {
                NetError::Disconnected { what }
            }
            _ => NetError::Io { what, err },
        }
    }

    /// True for the errors that mean the peer went away or stalled.
    pub fn is_peer_failure(&self) -> bool {
        matches!(
            self,
            NetError::Timeout { .. } | NetError::Disconnected { .. }
        )
    }
}

/// Bytes and rounds, as seen by one party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub rounds: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.rounds += other.rounds;
    }
    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
    /// What was counted since the `earlier` snapshot of the same counters.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            rounds: self.rounds - earlier.rounds,
        }
    }
    /// These counters less a `part` of them. The bytes of a part are within the whole's, but
    /// counters of several lanes at once ([`crate::exec::concurrent`]) take the most rounds of
    /// any lane, and the lane with the most rounds of the part need not be the whole's: the
    /// rounds stop at zero.
    pub fn without(&self, part: &Counters) -> Counters {
        Counters {
            bytes_sent: self.bytes_sent - part.bytes_sent,
            bytes_received: self.bytes_received - part.bytes_received,
            rounds: self.rounds.saturating_sub(part.rounds),
        }
    }
}

/// A snapshot of a channel's accounting: the totals and the counters of each scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub total: Counters,
    /// Counters per scope name; traffic outside any scope is under `""`.
    pub scopes: BTreeMap<String, Counters>,
}

impl Stats {
    /// The counters of one scope (zero if it never saw traffic).
    pub fn scope(&self, name: &str) -> Counters {
        self.scopes.get(name).copied().unwrap_or_default()
    }
    /// The counters of a scope and of every scope nested below it (`name/…`).
    pub fn scope_inclusive(&self, name: &str) -> Counters {
        let prefix = format!("{name}/");
        let mut c = Counters::default();
        for (k, v) in &self.scopes {
            if k == name || k.starts_with(&prefix) {
                c.add(v);
            }
        }
        c
    }
    /// The counters of the scopes nested below `name` that run `leaf` (a scope part of that
    /// name, e.g. the silent-OT batches an instruction ran: `{name}/…/silent-ot`).
    pub fn nested_leaf(&self, name: &str, leaf: &str) -> Counters {
        let (end, inner) = (format!("/{leaf}"), format!("/{leaf}/"));
        let mut c = Counters::default();
        for (k, v) in &self.scopes {
            // What follows `name`, from its '/' on.
            let Some(rest) = k.strip_prefix(name).filter(|r| r.starts_with('/')) else {
                continue;
            };
            if rest.ends_with(&end) || rest.contains(&inner) {
                c.add(v);
            }
        }
        c
    }
    /// Add another channel's stats (several channels of one session).
    pub fn merge(&mut self, other: &Stats) {
        self.total.add(&other.total);
        for (k, v) in &other.scopes {
            self.scopes.entry(k.clone()).or_default().add(v);
        }
    }
}

/// Which way a channel's last message went, as this party sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    None,
    Send,
    Recv,
}

/// The per-channel accounting state every [`Channel`] implementation embeds.
#[derive(Debug)]
pub struct Accounting {
    total: Counters,
    scopes: BTreeMap<String, Counters>,
    scope: String,
    current: Counters,
    last: Dir,
    /// Direction of the last operation in the current scope (a scope's first flight counts).
    scope_last: Dir,
    /// A scope's first flight counts only when the direction turns ([`Accounting::continue_flights`]).
    continuing: bool,
}

impl Default for Accounting {
    fn default() -> Self {
        Accounting {
            total: Counters::default(),
            scopes: BTreeMap::new(),
            scope: String::new(),
            current: Counters::default(),
            last: Dir::None,
            scope_last: Dir::None,
            continuing: false,
        }
    }
}

impl Accounting {
    /// Count a message going `dir`: a flight when the direction turns; in the current scope also
    /// when the scope opens with it, unless flights continue across scopes.
    #[inline]
    fn on_flight(&mut self, dir: Dir) {
        let turned = self.last != dir;
        let opened = self.scope_last != dir;
        self.last = dir;
        self.scope_last = dir;
        if turned {
            self.total.rounds += 1;
        }
        if turned || (opened && !self.continuing) {
            self.current.rounds += 1;
        }
    }
    /// With `on`, a scope that begins in the direction the channel's last message went continues
    /// that flight and does not count it again, so the scopes' flights add up to the channel's
    /// (the executor's instructions); without it (the default) every scope counts its first
    /// flight, as a protocol run on its own would (the benchmarks' rows).
    pub fn continue_flights(&mut self, on: bool) {
        self.continuing = on;
    }
    /// Which way the last message went.
    pub fn last_flight(&self) -> Dir {
        self.last
    }
    /// Take `dir` as the last message's direction: a channel that runs its part of an
    /// instruction alongside another continues that channel's last flight.
    pub fn resume_flight(&mut self, dir: Dir) {
        self.last = dir;
    }
    #[inline]
    fn on_send(&mut self, n: usize) {
        self.on_flight(Dir::Send);
        self.total.bytes_sent += n as u64;
        self.current.bytes_sent += n as u64;
    }
    /// Returns true when the direction changed (the caller must flush pending sends first).
    #[inline]
    fn on_recv(&mut self, n: usize) -> bool {
        let changed = self.last != Dir::Recv;
        self.on_flight(Dir::Recv);
        self.total.bytes_received += n as u64;
        self.current.bytes_received += n as u64;
        changed
    }
    fn set_scope(&mut self, name: &str) -> String {
        self.scope_last = Dir::None;
        let cur = std::mem::take(&mut self.current);
        if cur != Counters::default() {
            self.scopes.entry(self.scope.clone()).or_default().add(&cur);
        }
        std::mem::replace(&mut self.scope, name.to_string())
    }
    fn snapshot(&self) -> Stats {
        let mut scopes = self.scopes.clone();
        if self.current != Counters::default() {
            scopes
                .entry(self.scope.clone())
                .or_default()
                .add(&self.current);
        }
        Stats {
            total: self.total,
            scopes,
        }
    }
}

/// A reliable, ordered, blocking byte channel to the peer, with accounting.
///
/// Implementations provide the four `*_raw`/accounting methods; protocols use the provided
/// methods (`send`, `recv`, `send_blocks`, …), which count bytes and rounds and flush pending
/// output before every receive.
pub trait Channel: Send {
    /// Queue bytes for the peer (they may stay buffered until the next `flush`).
    fn send_raw(&mut self, data: &[u8]) -> Result<(), NetError>;
    /// Read exactly `buf.len()` bytes, waiting at most the timeout for all of them.
    fn recv_raw(&mut self, buf: &mut [u8]) -> Result<(), NetError>;
    /// Push buffered bytes to the peer.
    fn flush(&mut self) -> Result<(), NetError>;
    /// The accounting state.
    fn accounting(&mut self) -> &mut Accounting;
    /// The accounting state, read-only.
    fn accounting_ref(&self) -> &Accounting;
    /// How long one receive (all its bytes), send or flush may last.
    fn timeout(&self) -> Duration;

    /// Send bytes (counted).
    fn send(&mut self, data: &[u8]) -> Result<(), NetError> {
        self.accounting().on_send(data.len());
        self.send_raw(data)
    }

    /// Receive exactly `buf.len()` bytes (counted); flushes pending output first.
    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        if self.accounting().on_recv(buf.len()) {
            self.flush()?;
        }
        self.recv_raw(buf)
    }

    /// Receive `n` bytes into a new vector.
    fn recv_vec(&mut self, n: usize) -> Result<Vec<u8>, NetError> {
        let mut v = vec![0u8; n];
        self.recv(&mut v)?;
        Ok(v)
    }

    fn send_blocks(&mut self, blocks: &[Block]) -> Result<(), NetError> {
        self.send(block::as_bytes(blocks))
    }

    fn recv_blocks(&mut self, blocks: &mut [Block]) -> Result<(), NetError> {
        self.recv(block::as_bytes_mut(blocks))
    }

    fn send_u64(&mut self, v: u64) -> Result<(), NetError> {
        self.send(&v.to_le_bytes())
    }

    fn recv_u64(&mut self) -> Result<u64, NetError> {
        let mut b = [0u8; 8];
        self.recv(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Send values of `bits` bits each (1..=64), packed.
    fn send_packed(&mut self, values: &[u64], bits: u32) -> Result<(), NetError> {
        self.send(&crate::crypto::pack::pack(values, bits))
    }

    /// Receive `n` values of `bits` bits each, packed.
    fn recv_packed(&mut self, n: usize, bits: u32) -> Result<Vec<u64>, NetError> {
        let bytes = self.recv_vec(crate::crypto::pack::packed_len(n, bits))?;
        Ok(crate::crypto::pack::unpack(&bytes, n, bits))
    }

    /// Make `name` the current scope; returns the previous one (restore it with another call).
    fn set_scope(&mut self, name: &str) -> String {
        self.accounting().set_scope(name)
    }

    /// The name of the current scope.
    fn scope(&self) -> &str {
        &self.accounting_ref().scope
    }

    /// A snapshot of the counters, in total and per scope.
    fn stats(&self) -> Stats {
        self.accounting_ref().snapshot()
    }
}

impl<C: Channel + ?Sized> Channel for &mut C {
    fn send_raw(&mut self, data: &[u8]) -> Result<(), NetError> {
        (**self).send_raw(data)
    }
    fn recv_raw(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        (**self).recv_raw(buf)
    }
    fn flush(&mut self) -> Result<(), NetError> {
        (**self).flush()
    }
    fn accounting(&mut self) -> &mut Accounting {
        (**self).accounting()
    }
    fn accounting_ref(&self) -> &Accounting {
        (**self).accounting_ref()
    }
    fn timeout(&self) -> Duration {
        (**self).timeout()
    }
}

impl<C: Channel + ?Sized> Channel for Box<C> {
    fn send_raw(&mut self, data: &[u8]) -> Result<(), NetError> {
        (**self).send_raw(data)
    }
    fn recv_raw(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        (**self).recv_raw(buf)
    }
    fn flush(&mut self) -> Result<(), NetError> {
        (**self).flush()
    }
    fn accounting(&mut self) -> &mut Accounting {
        (**self).accounting()
    }
    fn accounting_ref(&self) -> &Accounting {
        (**self).accounting_ref()
    }
    fn timeout(&self) -> Duration {
        (**self).timeout()
    }
}

/// Run `f` with `name` as the channel's current scope, then restore the previous scope.
pub fn scoped<C: Channel + ?Sized, R>(ch: &mut C, name: &str, f: impl FnOnce(&mut C) -> R) -> R {
    let prev = ch.set_scope(name);
    let r = f(ch);
    ch.set_scope(&prev);
    r
}

/// Settings shared by both transports when a session is opened.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub role: Role,
    /// Hash of the plan both parties execute; a mismatch refuses the session.
    pub plan_hash: [u8; 32],
    /// The most channels (lanes) this party runs a session on, at least 1; a session runs on the
    /// smaller of the two parties' (negotiated on its first channel, [`handshake::lanes`]).
    pub channels: usize,
    /// Longest one receive (all its bytes), send, flush, connect or accept may last, and one
    /// connection's whole handshake.
    pub timeout: Duration,
    /// TLS on every connection of the session (`None`: plaintext, the default).
    pub tls: Option<tls::Tls>,
}

impl SessionConfig {
    pub fn new(role: Role, plan_hash: [u8; 32]) -> Self {
        SessionConfig {
            role,
            plan_hash,
            channels: 1,
            timeout: DEFAULT_TIMEOUT,
            tls: None,
        }
    }
    pub fn with_channels(mut self, n: usize) -> Self {
        self.channels = n;
        self
    }
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    pub fn with_tls(mut self, tls: Option<tls::Tls>) -> Self {
        self.tls = tls;
        self
    }
}

// The channel layer's own tests (framing, scopes, accounting) on bare in-memory pairs with short
// timeouts, not the two-party harness (`crate::testing`) built on them.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_leaf_finds_the_scopes_below_a_name_that_run_a_leaf() {
        let c = |n: u64| Counters {
            bytes_sent: n,
            bytes_received: 0,
            rounds: 1,
        };
        let mut st = Stats::default();
        for (k, n) in [
            ("層/attn", 1),
            ("層/attn/silent-ot", 2),
            ("層/attn/trunc/silent-ot", 4),
            ("層/attn/trunc/silent-ot/iknp", 8),
            ("層/attnx/silent-ot", 16),
            ("層/silent-ot", 32),
            ("ü", 64),
        ] {
            st.scopes.insert(k.to_string(), c(n));
        }
        assert_eq!(st.nested_leaf("層/attn", "silent-ot").bytes_sent, 2 + 4 + 8);
        assert_eq!(
            st.nested_leaf("層/attn/trunc", "silent-ot").bytes_sent,
            4 + 8
        );
        assert_eq!(
            st.nested_leaf("層", "silent-ot").bytes_sent,
            2 + 4 + 8 + 16 + 32
        );
        assert_eq!(st.nested_leaf("ü", "silent-ot"), Counters::default());
    }

    #[test]
    fn rounds_count_direction_changes() {
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        a.send(&[1, 2, 3]).unwrap();
        a.send(&[4]).unwrap();
        a.flush().unwrap();
        let mut buf = [0u8; 4];
        b.recv(&mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        b.send(&[9; 10]).unwrap();
        b.flush().unwrap();
        let mut r = [0u8; 10];
        a.recv(&mut r).unwrap();
        let sa = a.stats().total;
        let sb = b.stats().total;
        assert_eq!(
            sa,
            Counters {
                bytes_sent: 4,
                bytes_received: 10,
                rounds: 2
            }
        );
        assert_eq!(
            sb,
            Counters {
                bytes_sent: 10,
                bytes_received: 4,
                rounds: 2
            }
        );
    }

    /// With flights continuing across scopes, a scope that begins in the direction the last
    /// message went counts no flight for it, and the scopes' flights add up to the total;
    /// without, each scope counts its first flight. A resumed direction is continued likewise.
    #[test]
    fn continued_flights_add_up_to_the_total() {
        for continuing in [false, true] {
            let (mut a, mut b) = mem::pair(Duration::from_secs(5));
            a.accounting().continue_flights(continuing);
            scoped(&mut a, "x", |a| a.send(&[1]).unwrap());
            scoped(&mut a, "y", |a| a.send(&[2]).unwrap());
            a.flush().unwrap();
            let mut buf = [0u8; 2];
            b.recv(&mut buf).unwrap();
            b.send(&[3]).unwrap();
            b.flush().unwrap();
            scoped(&mut a, "y", |a| a.recv(&mut buf[..1]).unwrap());
            a.accounting().resume_flight(Dir::Send);
            scoped(&mut a, "z", |a| a.send(&[4]).unwrap());
            let st = a.stats();
            let sum: u64 = st.scopes.values().map(|c| c.rounds).sum();
            let y = st.scopes["y"].rounds;
            if continuing {
                assert_eq!((y, st.scopes["z"].rounds), (1, 0));
                assert_eq!(sum, 2, "x's send, y's receive");
            } else {
                assert_eq!((y, st.scopes["z"].rounds), (2, 1));
                assert_eq!(sum, 4);
            }
            assert_eq!(a.accounting_ref().last_flight(), Dir::Send);
        }
    }

    #[test]
    fn scopes_attribute_traffic() {
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        scoped(&mut a, "mul", |a| a.send(&[0; 16]).unwrap());
        a.send(&[0; 3]).unwrap();
        let prev = a.set_scope("cmp");
        assert_eq!(prev, "");
        a.send(&[0; 5]).unwrap();
        a.flush().unwrap();
        let mut buf = [0u8; 24];
        b.recv(&mut buf).unwrap();
        let s = a.stats();
        assert_eq!(s.scope("mul").bytes_sent, 16);
        assert_eq!(s.scope("").bytes_sent, 3);
        assert_eq!(s.scope("cmp").bytes_sent, 5);
        assert_eq!(s.scope("nothing"), Counters::default());
        scoped(&mut a, "cmp/ot", |a| a.send(&[0; 7]).unwrap());
        let s = a.stats();
        assert_eq!(s.scope("cmp").bytes_sent, 5);
        assert_eq!(s.scope_inclusive("cmp").bytes_sent, 12);
        assert_eq!(s.scope_inclusive("cm").bytes_sent, 0);
        assert_eq!(s.total.bytes_sent, 31);
        let mut merged = s.clone();
        merged.merge(&s);
        assert_eq!(merged.scope("cmp").bytes_sent, 10);
        assert_eq!(merged.scope_inclusive("cmp").bytes_sent, 24);
    }

    #[test]
    fn packed_values_roundtrip() {
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        let vals: Vec<u64> = (0..1000u64)
            .map(|i| (i * 0x9e37_79b9) & ((1 << 37) - 1))
            .collect();
        a.send_packed(&vals, 37).unwrap();
        a.send_u64(77).unwrap();
        a.flush().unwrap();
        assert_eq!(b.recv_packed(1000, 37).unwrap(), vals);
        assert_eq!(b.recv_u64().unwrap(), 77);
        assert_eq!(a.stats().total.bytes_sent, (1000 * 37_u64).div_ceil(8) + 8);
    }
}
