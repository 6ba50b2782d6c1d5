//! The server's accept loop: up to `max_clients` sessions at once, one thread each, all sharing
//! the plan and the weights prepared once.
//!
//! A session is one connection per lane: its first negotiates the lanes (the smaller of the
//! client's ask and the server's `--threads`, `net::handshake`), then the client opens the
//! others, whose hellos carry the first's session id. Every accepted connection reads the peer's
//! hello in a thread of its own, within the timeout in all (however its bytes trickle in:
//! `TcpChannel::within`), then either opens a session (channel 0: it takes a slot and answers)
//! or is handed to the session its id names (a lane: that session answers it, waiting at most
//! the timeout for each).
//!
//! **Admission.** Only a peer whose hello has been read and checked takes a session slot. A
//! connection is *pending* from its accept until it holds a slot or is handed to its session:
//! while its hello is unread, and (a first connection) while it waits for a slot. The loop
//! accepts a connection only while fewer than `max_pending` are pending, and only when it may
//! be wanted: a slot is free for a new session (the open and the waiting first connections are
//! fewer than `max_clients`, and `--sessions` is not reached by them), or a session still waits
//! for its lanes. So connections that say nothing, or drip their hello, never keep a verified
//! client from a free slot unless `max_pending` of them are held at once, and each is cut at
//! the timeout after its accept; a client beyond `max_clients` waits in the listen queue (its
//! handshake is answered when a session ends, so its own `--timeout` bounds the wait). Verified
//! first connections waiting for a slot get it in the order they were accepted. With
//! `max_clients` = 1 clients are served one after another. The memory bound: at most
//! `max_clients` sessions (each with its lanes; about 410 MB per one-lane session of the bundled
//! trained model, measured in `docs/generation.md`) and `max_pending` other connections (a
//! thread and two 256 KiB buffers each) are held at once.
//!
//! Each session ends in one log line on stderr: `session N from ADDR: …` or
//! `session N from ADDR failed: …`; a refused handshake logs `connection from ADDR refused: …`
//! and does not count as a session.

use ciphergpt_compiler::plan::Plan;
use ciphergpt_runtime::exec::EncodedModel;
use ciphergpt_runtime::net::tcp::TcpChannel;
use ciphergpt_runtime::net::{answer, lanes, read_hello, Channel, Hello, NetError, SessionConfig};
use ciphergpt_runtime::session;
use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `--max-pending` by default: connections held without a session slot.
pub const DEFAULT_MAX_PENDING: usize = 16;

/// A session waiting for its lanes' connections.
struct Joining {
    /// Where a lane's connection (and the hello read from it) is handed over.
    to: Sender<(TcpChannel, Hello)>,
    /// Lanes still to come.
    missing: usize,
}

/// Open connections and sessions, shared by the accept loop and the connection threads.
#[derive(Default)]
struct Slots {
    /// Sessions holding a slot (from their first connection's answer to their end).
    open: usize,
    /// Sessions holding a slot whose handshake has not passed yet.
    opening: usize,
    /// Accepted connections whose hello is not read yet.
    unread: usize,
    /// First connections waiting for a slot.
    queued: usize,
    /// Their accept numbers: a slot goes to the first accepted of them.
    waiting: BTreeSet<u64>,
    /// Sessions that passed their handshake (they are numbered in this order).
    started: usize,
    /// Sessions waiting for lanes, by session id.
    joining: HashMap<[u8; 16], Joining>,
}

impl Slots {
    /// Lane connections that sessions still wait for.
    fn lanes_wanted(&self) -> usize {
        self.joining.values().map(|j| j.missing).sum()
    }
}

type Shared = Arc<(Mutex<Slots>, Condvar)>;

fn lock(s: &Shared) -> MutexGuard<'_, Slots> {
    // A session thread that panicked while holding the lock left consistent counters.
    s.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frees a session's slot when its thread ends, however it ends.
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
    pub prepared: Arc<EncodedModel>,
    /// The server's side of the handshake: its `channels` are the most lanes it grants a
    /// session, its timeout bounds every wait of a session.
    pub cfg: SessionConfig,
    /// Sessions at once, at least 1.
    pub max_clients: usize,
    /// Connections held without a session slot (hello unread, or waiting for a slot), at
    /// least 1.
    pub max_pending: usize,
    /// Serve this many sessions (that passed the handshake), then return; `None`: forever.
    pub sessions: Option<usize>,
    /// Seed of the sampling randomness of every session (tests); `None`: fresh.
    pub seed: Option<u64>,
}

impl Server {
    fn quota_done(&self, s: &Slots) -> bool {
        self.sessions.is_some_and(|n| s.started >= n)
    }

    /// Whether a verified first connection could take a slot now and be a session still to
    /// serve: the open sessions and the first connections waiting for a slot are fewer than
    /// `max`, and with those opening or waiting `--sessions` is not reached.
    fn slot_wanted(&self, s: &Slots, max: usize) -> bool {
        let free = s.open.saturating_add(s.queued) < max;
        let ahead = s.started.saturating_add(s.opening).saturating_add(s.queued);
        free && self.sessions.is_none_or(|n| ahead < n)
    }
}

/// Accept and serve clients on `listener` until `server.sessions` sessions have been served.
pub fn run(listener: &TcpListener, server: Server) -> anyhow::Result<()> {
    let server = Arc::new(server);
    let max = server.max_clients.max(1);
    let max_pending = server.max_pending.max(1);
    let shared: Shared = Arc::default();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut accepted: u64 = 0;
    // Polled, so that the loop sees a session's lanes arrive or its wait for them end.
    listener.set_nonblocking(true)?;
    'serve: loop {
        {
            // Wait until a connection may be held (fewer than `max_pending` are pending) and is
            // wanted: a slot free for a session still to serve that no verified connection
            // waits for, or a lane a session waits for. Unread connections count for neither.
            let mut s = lock(&shared);
            loop {
                let lanes = s.lanes_wanted();
                if server.quota_done(&s) && lanes == 0 {
                    break 'serve;
                }
                if s.unread.saturating_add(s.queued) < max_pending
                    && (lanes > 0 || server.slot_wanted(&s, max))
                {
                    break;
                }
                s = shared
                    .1
                    .wait_timeout(s, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        threads.retain(|t| !t.is_finished());
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                // Out of file descriptors and the like: say so, wait a little, go on.
                eprintln!("accepting a connection failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        lock(&shared).unread += 1;
        let number = accepted;
        accepted += 1;
        let (server, sh) = (server.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("connection {peer}"))
            .spawn(move || connection(stream, peer, number, &server, &sh));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The closure (and with it the stream) is dropped.
                lock(&shared).unread -= 1;
                eprintln!("connection from {peer} refused: cannot start a thread: {e}");
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// One accepted connection (the `number`th): read the peer's hello, then open a session or join
/// one as a lane.
fn connection(stream: TcpStream, peer: SocketAddr, number: u64, server: &Server, shared: &Shared) {
    let cfg = &server.cfg;
    // One deadline for the whole hello, however its bytes trickle in.
    // With TLS, its handshake is within that deadline too.
    let read = TcpChannel::from_stream(stream, cfg.timeout).and_then(|mut ch| {
        let what = format!("reading the hello of a connection from {peer}");
        ch.within(what, |ch| {
            if let Some(tls) = &cfg.tls {
                ch.start_tls(tls)?;
            }
            read_hello(ch)
        })
        .map(|h| (ch, h))
    });
    // A refusal is logged before the connection's place is given up, so the log keeps the
    // order of events: the connection this one held back cannot be logged first.
    if let Err(e) = &read {
        eprintln!("connection from {peer} refused: {e}");
    }
    let mut s = lock(shared);
    s.unread -= 1;
    shared.1.notify_all();
    let Ok((mut ch, theirs)) = read else {
        return;
    };
    if theirs.channel_index > 0 {
        // A lane: to the session it names, which answers it.
        if let Some(j) = s.joining.get_mut(&theirs.session_id) {
            if j.missing > 0 {
                j.missing -= 1;
                // The session keeps its receiver while it is in `joining`.
                let _ = j.to.send((ch, theirs));
                return;
            }
        }
        drop(s);
        // No session of that id is opening (it gave up waiting): the client sees the index
        // differ and refuses too.
        let ours = Hello::new(cfg, 0, theirs.session_id).lanes(theirs.channel_count as usize);
        let e = answer(&mut ch, &ours, &theirs).err();
        eprintln!(
            "connection from {peer} refused: {}",
            e.map_or("a lane of no session opening here".into(), |e| e
                .to_string())
        );
        return;
    }
    // A session's first connection: wait for a slot (the first accepted of the waiting ones
    // takes it), answer, wait for the lanes.
    s.queued += 1;
    s.waiting.insert(number);
    while (s.open >= server.max_clients.max(1) || s.waiting.first() != Some(&number))
        && !server.quota_done(&s)
    {
        s = shared.1.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    s.queued -= 1;
    s.waiting.remove(&number);
    // The next in line may go.
    shared.1.notify_all();
    // A client that gave up waiting (its timeout) and closed the connection is not a session.
    if ch.peer_closed() {
        drop(s);
        eprintln!("connection from {peer} dropped: the client left while it waited for a slot");
        return;
    }
    if server.quota_done(&s) {
        drop(s);
        eprintln!("connection from {peer} refused: the server has served its sessions");
        return;
    }
    let first = Hello::new(cfg, 0, [0; 16]);
    let n = lanes(&first, &theirs);
    let id = theirs.session_id;
    let (to, from) = mpsc::channel();
    s.open += 1;
    s.opening += 1;
    if let Some(missing) = n.checked_sub(1).filter(|&m| m > 0) {
        // Before the answer: the client opens its lanes as soon as it has it.
        s.joining.insert(id, Joining { to, missing });
    }
    drop(s);
    let slot = Slot(shared.clone());
    let answered = answer(&mut ch, &first.lanes(n), &theirs);
    let number = {
        let mut s = lock(shared);
        s.opening -= 1;
        if answered.is_ok() {
            s.started += 1;
        } else {
            s.joining.remove(&id);
        }
        s.started
    };
    shared.1.notify_all();
    if let Err(e) = answered {
        eprintln!("connection from {peer} refused: {e}");
        return;
    }
    let t0 = Instant::now();
    let more = join_lanes(&from, cfg, id, n);
    lock(shared).joining.remove(&id);
    shared.1.notify_all();
    let result = more.map_err(session::SessionError::from).and_then(|more| {
        session::serve(&mut ch, more, &server.plan, &server.prepared, server.seed)
    });
    match result {
        Ok(r) => {
            let all = || r.programs.iter().chain(&r.preprocess);
            let sent: u64 = all().map(|p| p.total.bytes_sent).sum();
            let recv: u64 = all().map(|p| p.total.bytes_received).sum();
            eprintln!(
                "session {number} from {peer}: {} programs{}, {} tokens in, {:.1} s, {:.1} MB sent, {:.1} MB received, {} lane{}",
                r.programs.len(),
                match r.preprocess.len() {
                    0 => String::new(),
                    n => format!(" and {n} preparation batch{}", if n == 1 { "" } else { "es" }),
                },
                r.programs.iter().map(|p| p.tokens).sum::<usize>(),
                t0.elapsed().as_secs_f64(),
                sent as f64 / 1e6,
                recv as f64 / 1e6,
                r.lanes,
                if r.lanes == 1 { "" } else { "s" }
            );
        }
        Err(e) => eprintln!(
            "session {number} from {peer} failed after {:.1} s: {e}",
            t0.elapsed().as_secs_f64()
        ),
    }
    drop(slot);
}

/// The session's lanes 1..n, answered in order as they arrive, each within the timeout.
fn join_lanes(
    from: &Receiver<(TcpChannel, Hello)>,
    cfg: &SessionConfig,
    id: [u8; 16],
    n: usize,
) -> Result<Vec<Box<dyn Channel>>, NetError> {
    let mut more: Vec<Box<dyn Channel>> = Vec::with_capacity(n.saturating_sub(1));
    for i in 1..n {
        let (mut ch, theirs) = from
            .recv_timeout(cfg.timeout)
            .map_err(|_| NetError::Timeout {
                what: format!("waiting for the connection of lane {i} of {n}"),
                secs: cfg.timeout.as_secs_f64(),
            })?;
        answer(&mut ch, &Hello::new(cfg, i as u32, id).lanes(n), &theirs)?;
        more.push(Box::new(ch));
    }
    Ok(more)
}
