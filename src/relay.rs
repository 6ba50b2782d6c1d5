//! `ciphergpt relay`: a TCP forwarder that puts an emulated link between a client and a server.
//!
//! Every accepted connection gets its own connection to `--connect` (so each lane of a session is
//! relayed apart), and bytes flow both ways through a [`Link`]: in each direction a reader thread
//! stamps every chunk it reads and queues it for a writer thread, which delivers it at its due
//! time. A chunk of `b` bytes read at `t` occupies the direction for `b · 8 / bandwidth` from the
//! moment the previous chunk has left it (a serialisation queue, chunks in order), then takes the
//! one-way delay `RTT/2`: it is delivered no earlier than `t + RTT/2`. The two directions are
//! independent (full duplex). Both sides run with `TCP_NODELAY`; the queue holds at most
//! [`QUEUE`] chunks of at most [`CHUNK`] bytes, beyond which the reader stops reading and the
//! sender's own TCP buffers push back.
//!
//! An end of stream from one side is passed on (after the bytes still queued) as a half close to
//! the other; a pair ends when both directions have, or at once when either side fails, or when
//! no byte has moved either way for `--timeout` seconds. Each pair ends in one log line on
//! stderr, `pair N from ADDR: …`.

use anyhow::Context;
use ciphergpt_runtime::net::link::Link;
use clap::Args;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The most bytes one read takes off a socket (one queued chunk).
pub const CHUNK: usize = 64 * 1024;
/// The most chunks queued in one direction (so at most 64 MiB in flight each way).
pub const QUEUE: usize = 1024;
/// How often a reader with nothing to read checks whether its pair has been idle too long.
const POLL: Duration = Duration::from_millis(500);

#[derive(Args, Debug)]
pub struct RelayArgs {
    /// Address to accept connections on (port 0: a free one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Address to open one connection to for each accepted connection (a `serve`).
    #[arg(long)]
    pub connect: String,
    /// The link to emulate: lan (1 ms RTT, 1 Gbit/s), wan (40 ms RTT, 400 Mbit/s), loopback,
    /// or free values such as rtt=10ms,bw=400mbit.
    #[arg(long)]
    pub link: String,
    /// Seconds to wait for --connect to accept, for a side to take bytes, and for any byte to
    /// move either way before a pair is closed.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Exit once this many connection pairs have been relayed and closed (default: relay until
    /// killed).
    #[arg(long)]
    pub connections: Option<usize>,
}

pub fn run(a: RelayArgs) -> anyhow::Result<()> {
    let wait = crate::generate::timeout(a.timeout)?;
    let link: Link = a.link.parse().map_err(|e| anyhow::anyhow!("relay: {e}"))?;
    let listener = TcpListener::bind(&a.listen)
        .with_context(|| format!("relay: binding {} (is the port in use?)", a.listen))?;
    let bound = listener
        .local_addr()
        .context("relay: reading the bound address")?;
    eprintln!("relaying {bound} -> {} (link {link})", a.connect);
    let mut pairs: Vec<JoinHandle<()>> = Vec::new();
    let mut accepted = 0usize;
    while a.connections.is_none_or(|n| accepted < n) {
        let (client, from) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                // A connection that died in the listen queue; the listener itself is fine.
                eprintln!("relay: accepting a connection on {bound}: {e}");
                continue;
            }
        };
        accepted += 1;
        let (to, link) = (a.connect.clone(), link.clone());
        pairs.retain(|p| !p.is_finished());
        pairs.push(thread::spawn(move || {
            let line = match relay_pair(client, &to, &link, wait) {
                Ok((up, down)) => format!("{up} bytes to {to}, {down} back; closed"),
                Err(e) => format!("failed: {e}"),
            };
            eprintln!("pair {accepted} from {from}: {line}");
        }));
    }
    for p in pairs {
        p.join()
            .map_err(|_| anyhow::anyhow!("relay: a pair's thread panicked"))?;
    }
    Ok(())
}

/// Connect to `to` within `wait`, trying each address it resolves to.
fn connect(to: &str, wait: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = to
        .to_socket_addrs()
        .map_err(|e| format!("resolving {to}: {e}"))?
        .collect();
    let mut last = format!("{to} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, wait) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("connecting to {to} within {:.1} s: {e}", wait.as_secs_f64()),
        }
    }
    Err(last)
}

/// Both sockets of a pair, to close them all when one direction fails, and when the pair last
/// moved a byte (microseconds since `start`).
struct Pair {
    client: TcpStream,
    server: TcpStream,
    start: Instant,
    last_activity: AtomicU64,
}

impl Pair {
    fn kill(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
    fn touch(&self) {
        let us = self.start.elapsed().as_micros() as u64;
        self.last_activity.fetch_max(us, Ordering::Relaxed);
    }
    fn idle(&self) -> Duration {
        let last = Duration::from_micros(self.last_activity.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Relay one accepted connection to a fresh connection to `to` until both directions end;
/// returns the bytes relayed each way (client to server, server to client).
fn relay_pair(
    client: TcpStream,
    to: &str,
    link: &Link,
    wait: Duration,
) -> Result<(u64, u64), String> {
    let server = connect(to, wait)?;
    for s in [&client, &server] {
        let setup = |e: std::io::Error| format!("configuring a relayed connection: {e}");
        s.set_nodelay(true).map_err(setup)?;
        s.set_read_timeout(Some(POLL.min(wait))).map_err(setup)?;
        s.set_write_timeout(Some(wait)).map_err(setup)?;
    }
    let clone = |s: &TcpStream| s.try_clone().map_err(|e| format!("cloning a socket: {e}"));
    let pair = Arc::new(Pair {
        client: clone(&client)?,
        server: clone(&server)?,
        start: Instant::now(),
        last_activity: AtomicU64::new(0),
    });
    let up = {
        let (src, dst) = (clone(&client)?, clone(&server)?);
        let (pair, link) = (pair.clone(), link.clone());
        thread::spawn(move || forward(src, dst, &link, wait, &pair, "to the server"))
    };
    let down = forward(server, client, link, wait, &pair, "to the client");
    let up = up
        .join()
        .unwrap_or_else(|_| Err("the forwarding thread panicked".into()));
    Ok((up?, down?))
}

/// True for the ways a peer closing its socket shows up: a normal end, not a failure.
fn closed(kind: ErrorKind) -> bool {
    use ErrorKind::*;
    matches!(
        kind,
        ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof
    )
}

/// Forward `src` to `dst` through `link` until `src` ends (then half-close `dst`); returns the
/// bytes forwarded. On a failure both sockets of the pair are closed, ending the other
/// direction too.
fn forward(
    mut src: TcpStream,
    dst: TcpStream,
    link: &Link,
    wait: Duration,
    pair: &Pair,
    what: &str,
) -> Result<u64, String> {
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
    let writer = thread::spawn(move || deliver(rx, dst));
    let mut free = Instant::now();
    let mut total = 0u64;
    let read = loop {
        let mut buf = vec![0u8; CHUNK];
        match src.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                let now = Instant::now();
                pair.touch();
                buf.truncate(n);
                free = free.max(now) + link.serialisation(n as u64);
                total += n as u64;
                if tx.send((free + link.one_way(), buf)).is_err() {
                    break Ok(()); // the writer failed; it says why
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if writer.is_finished() {
                    break Ok(()); // the writer failed or its side closed; it says which
                }
                if pair.idle() >= wait {
                    let secs = wait.as_secs_f64();
                    break Err(format!("no byte moved either way for {secs:.1} s"));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if closed(e.kind()) => break Ok(()),
            Err(e) => break Err(format!("reading the bytes {what}: {e}")),
        }
    };
    drop(tx);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err("the delivering thread panicked".into()));
    if read.is_err() || written.is_err() {
        pair.kill();
    }
    read.and(written).map(|()| total)
}

/// Deliver the queued chunks to `dst`, each at its due time, then pass the end of stream on.
fn deliver(rx: Receiver<(Instant, Vec<u8>)>, mut dst: TcpStream) -> Result<(), String> {
    for (due, chunk) in rx {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        match dst.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if closed(e.kind()) => return Ok(()),
            Err(e) => return Err(format!("delivering {} bytes: {e}", chunk.len())),
        }
    }
    match dst.shutdown(Shutdown::Write) {
        Err(e) if !closed(e.kind()) => Err(format!("passing on the end of stream: {e}")),
        _ => Ok(()),
    }
}
