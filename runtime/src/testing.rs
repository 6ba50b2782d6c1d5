//! Test support, not part of the API: both parties of a two-party run in one process, the server
//! on the calling thread and the client on another, over the in-memory channel or TCP loopback.
//! The one harness of the runtime's unit tests, its integration tests (`runtime/tests`) and the
//! executor's and sessions' runs there; set-ups that differ on purpose (a TLS handshake, a peer
//! that drips or stalls) open their own connections and say why.

use std::time::Duration;

use crate::crypto::{CotBackend, OtPair, Prg};
use crate::net::{mem, tcp, Channel, Role, SessionConfig};

/// How the two parties of a test are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// [`mem`] channels: a session's, with the handshake on every lane ([`on_session`]), or a
    /// bare pair ([`two_party`]).
    Mem,
    /// TCP on loopback (`tcp::Listener` and `tcp::connect`).
    Tcp,
}

/// The timeout of the harness's channels: long enough for a slow shared machine, short enough
/// that a test whose peer died fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Run `server` with its end here and `client` with its end on another thread; returns both
/// results. A panic of the client is raised here, after the server has returned.
pub fn on_two_threads<X, Y, A, B, S, C>(ends: (X, Y), server: S, client: C) -> (A, B)
where
    S: FnOnce(X) -> A,
    C: FnOnce(Y) -> B + Send + 'static,
    Y: Send + 'static,
    B: Send + 'static,
{
    let (x, y) = ends;
    let h = std::thread::spawn(move || client(y));
    let a = server(x);
    match h.join() {
        Ok(b) => (a, b),
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// [`on_two_threads`] on a fresh [`mem::pair`] with [`TIMEOUT`].
pub fn on_mem_pair<A, B, S, C>(server: S, client: C) -> (A, B)
where
    S: FnOnce(mem::MemChannel) -> A,
    C: FnOnce(mem::MemChannel) -> B + Send + 'static,
    B: Send + 'static,
{
    on_two_threads(mem::pair(TIMEOUT), server, client)
}

/// Open a session of `lanes` channels over `transport` (the server offers `offered` lanes
/// and the client asks for `lanes`; the smaller wins), with the session's handshake, plan hash
/// `[7; 32]` and [`TIMEOUT`]; run `server` on the server's channels here and `client` on the
/// client's on another thread.
pub fn on_session<A, B, S, C>(
    transport: Transport,
    (offered, lanes): (usize, usize),
    server: S,
    client: C,
) -> (A, B)
where
    S: FnOnce(Vec<Box<dyn Channel>>) -> A,
    C: FnOnce(Vec<Box<dyn Channel>>) -> B + Send + 'static,
    B: Send + 'static,
{
    let cfg = |role, n| {
        SessionConfig::new(role, [7; 32])
            .with_channels(n)
            .with_timeout(TIMEOUT)
    };
    let (scfg, ccfg) = (cfg(Role::Server, offered), cfg(Role::Client, lanes));
    match transport {
        Transport::Mem => {
            let (s, c) = mem::session(&scfg, &ccfg).unwrap();
            on_two_threads((boxed(s), boxed(c)), server, client)
        }
        Transport::Tcp => {
            let l = tcp::Listener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().to_string();
            on_two_threads(
                (l, addr),
                |l| server(boxed(l.accept(&scfg).unwrap())),
                move |addr| client(boxed(tcp::connect(&addr, &ccfg).unwrap())),
            )
        }
    }
}

fn boxed<T: Channel + 'static>(v: Vec<T>) -> Vec<Box<dyn Channel>> {
    v.into_iter()
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .collect()
}

/// One party of a protocol test: its channel, its OT extension (both directions), its role and
/// its randomness.
pub struct Peer {
    pub ch: Box<dyn Channel>,
    pub ot: OtPair,
    pub role: Role,
    pub rng: Prg,
}

impl Peer {
    /// Set up the OT extension `backend` on `ch` as `role`.
    pub fn setup(mut ch: Box<dyn Channel>, role: Role, backend: CotBackend) -> Peer {
        let mut rng = Prg::from_entropy();
        let ot = OtPair::setup_with(&mut ch, role, backend, &mut rng).unwrap();
        Peer { ch, ot, role, rng }
    }

    /// This peer as a protocol's party: its OT, its channel, its role.
    pub fn party(&mut self) -> crate::protocols::Party<'_, dyn Channel> {
        crate::protocols::Party::new(&mut self.ot, &mut *self.ch, self.role)
    }
}

/// Both roles of a protocol test on one channel over `transport` (in memory a bare pair, so
/// that it carries the protocol's bytes only; over TCP a session of one lane), each a [`Peer`] on the OT
/// extension `backend`: `server` here, `client` on another thread.
pub fn two_party<A, B, S, C>(
    transport: Transport,
    backend: CotBackend,
    server: S,
    client: C,
) -> (A, B)
where
    S: FnOnce(&mut Peer) -> A,
    C: FnOnce(&mut Peer) -> B + Send + 'static,
    B: Send + 'static,
{
    let setup = move |ch, role| Peer::setup(ch, role, backend);
    match transport {
        // A bare pair, no handshake: the channels carry the protocol's bytes only.
        Transport::Mem => {
            let (a, b) = mem::pair(TIMEOUT);
            on_two_threads(
                (
                    Box::new(a) as Box<dyn Channel>,
                    Box::new(b) as Box<dyn Channel>,
                ),
                |a| server(&mut setup(a, Role::Server)),
                move |b| client(&mut setup(b, Role::Client)),
            )
        }
        Transport::Tcp => {
            let first = |v: Vec<Box<dyn Channel>>| v.into_iter().next().unwrap();
            on_session(
                Transport::Tcp,
                (1, 1),
                |s| server(&mut setup(first(s), Role::Server)),
                move |c| client(&mut setup(first(c), Role::Client)),
            )
        }
    }
}
