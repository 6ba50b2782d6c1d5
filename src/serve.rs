//! The server's accept loop: up to `max_clients` sessions at once, one thread each, all sharing
//! the plan and the weights prepared once.
//!
//! A connection is accepted only while fewer than `max_clients` are open; a client beyond that
//! waits in the listen queue (its handshake is answered when a session ends, so its own
//! `--timeout` bounds the wait). With `max_clients` = 1 clients are served one after another.
//! The handshake runs in the connection's thread, so a peer that connects and says nothing holds
//! only its own slot, for at most the timeout. Each session ends in one log line on stderr:
//! `session N from ADDR: …` or `session N from ADDR failed: …`; a refused handshake logs
//! `connection from ADDR refused: …` and does not count as a session.

use ciphergpt_compiler::plan::Plan;
use ciphergpt_runtime::exec::Prepared;
use ciphergpt_runtime::net::tcp::TcpChannel;
use ciphergpt_runtime::net::{handshake, Hello, NetError, SessionConfig};
use ciphergpt_runtime::session;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// Open connections and sessions, shared by the accept loop and the session threads.
#[derive(Default)]
struct Slots {
    /// Connections being handled (handshake or session).
    open: usize,
    /// Connections still in their handshake.
    opening: usize,
    /// Sessions that passed their handshake (they are numbered in this order).
    started: usize,
}

type Shared = Arc<(Mutex<Slots>, Condvar)>;

fn lock(s: &Shared) -> MutexGuard<'_, Slots> {
    // A session thread that panicked while holding the lock left consistent counters.
    s.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frees a connection's slot when its thread ends, however it ends.
struct Slot(Shared);

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.0).open -= 1;
        self.0 .1.notify_all();
    }
}

/// What the session threads share.
pub struct Server {
    pub plan: Arc<Plan>,
    pub prepared: Arc<Prepared>,
    /// The server's side of the handshake; its timeout bounds every wait of a session.
    pub cfg: SessionConfig,
    /// Sessions at once, at least 1.
    pub max_clients: usize,
    /// Serve this many sessions (that passed the handshake), then return; `None`: forever.
    pub sessions: Option<usize>,
    /// Seed of the sampling randomness of every session (tests); `None`: fresh.
    pub seed: Option<u64>,
}

/// Accept and serve clients on `listener` until `server.sessions` sessions have been served.
pub fn run(listener: &TcpListener, server: Server) -> anyhow::Result<()> {
    let server = Arc::new(server);
    let max = server.max_clients.max(1);
    let shared: Shared = Arc::default();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    loop {
        {
            // Wait for a free slot, and for a session still to serve that no open handshake
            // may yet provide.
            let mut s = lock(&shared);
            loop {
                if server.sessions.is_some_and(|n| s.started >= n) {
                    break;
                }
                let wanted = server.sessions.is_none_or(|n| s.started + s.opening < n);
                if s.open < max && wanted {
                    break;
                }
                s = shared.1.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if server.sessions.is_some_and(|n| s.started >= n) {
                break;
            }
        }
        threads.retain(|t| !t.is_finished());
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: say so, wait a little, go on.
                eprintln!("accepting a connection failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        {
            let mut s = lock(&shared);
            s.open += 1;
            s.opening += 1;
        }
        let slot = Slot(shared.clone());
        let server = server.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("session {peer}"))
            .spawn(move || connection(stream, peer, &server, slot));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The closure (and with it the slot and the stream) is dropped.
                lock(&shared).opening -= 1;
                eprintln!("connection from {peer} refused: cannot start a thread: {e}");
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// The server's handshake on a fresh connection (sessions of one channel).
fn open(stream: TcpStream, cfg: &SessionConfig) -> Result<TcpChannel, NetError> {
    let mut ch = TcpChannel::from_stream(stream, cfg.timeout)?;
    handshake(&mut ch, &Hello::new(cfg, 0, [0; 16]))?;
    Ok(ch)
}

/// One connection: handshake, session, one log line.
fn connection(stream: TcpStream, peer: SocketAddr, server: &Server, slot: Slot) {
    let opened = open(stream, &server.cfg);
    let n = {
        let mut s = lock(&slot.0);
        s.opening -= 1;
        if opened.is_ok() {
            s.started += 1;
        }
        s.started
    };
    slot.0 .1.notify_all();
    let mut ch = match opened {
        Ok(ch) => ch,
        Err(e) => {
            eprintln!("connection from {peer} refused: {e}");
            return;
        }
    };
    let t0 = Instant::now();
    match session::serve(&mut ch, &server.plan, &server.prepared, server.seed) {
        Ok(r) => {
            let sent: u64 = r.programs.iter().map(|p| p.total.bytes_sent).sum();
            let recv: u64 = r.programs.iter().map(|p| p.total.bytes_received).sum();
            eprintln!(
                "session {n} from {peer}: {} programs, {} tokens in, {:.1} s, {:.1} MB sent, {:.1} MB received",
                r.programs.len(),
                r.programs.iter().map(|p| p.tokens).sum::<usize>(),
                t0.elapsed().as_secs_f64(),
                sent as f64 / 1e6,
                recv as f64 / 1e6
            );
        }
        Err(e) => eprintln!(
            "session {n} from {peer} failed after {:.1} s: {e}",
            t0.elapsed().as_secs_f64()
        ),
    }
    drop(slot);
}
