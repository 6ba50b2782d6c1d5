//! An in-memory channel pair, for tests: both parties in one process, in two threads.
//!
//! Writes are buffered and handed to the peer on `flush` (which `recv` does first) or when the
//! buffer grows past 1 MiB. Dropping one end makes the other's pending and future receives fail
//! with [`NetError::Disconnected`]; a receive that waits longer than the timeout in all (however
//! its bytes trickle in) fails with [`NetError::Timeout`].

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::{Accounting, Channel, NetError, SessionConfig};

const FLUSH_AT: usize = 1 << 20;

/// One end of an in-memory channel pair.
pub struct MemChannel {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    inpos: usize,
    acct: Accounting,
    timeout: Duration,
}

/// A connected pair of in-memory channels.
pub fn pair(timeout: Duration) -> (MemChannel, MemChannel) {
    let (t1, r1) = mpsc::channel();
    let (t2, r2) = mpsc::channel();
    let mk = |tx, rx| MemChannel {
        tx,
        rx,
        out: Vec::new(),
        inbuf: Vec::new(),
        inpos: 0,
        acct: Accounting::default(),
        timeout,
    };
    (mk(t1, r2), mk(t2, r1))
}

/// `n` connected pairs: (the first party's channels, the second party's channels).
pub fn pairs(n: usize, timeout: Duration) -> (Vec<MemChannel>, Vec<MemChannel>) {
    (0..n).map(|_| pair(timeout)).unzip()
}

/// Open an in-memory session with the full handshake on every channel, both parties in this
/// process: returns (server channels, client channels), as many as the first channel's handshake
/// negotiates (the smaller of the two `channels`). Fails like the TCP session would when the two
/// configurations disagree (the server's error is returned).
pub fn session(
    server: &SessionConfig,
    client: &SessionConfig,
) -> Result<(Vec<MemChannel>, Vec<MemChannel>), NetError> {
    let (first_s, first_c) = pair(server.timeout);
    let client_cfg = client.clone();
    // The client: negotiate on channel 0, then take and handshake the further pairs.
    let (more_tx, more_rx) = mpsc::channel::<MemChannel>();
    let handle = std::thread::spawn(move || -> Result<Vec<MemChannel>, NetError> {
        let mut c = vec![first_c];
        let ours = super::Hello::new(&client_cfg, 0, [0; 16]);
        let n = super::lanes(&ours, &super::handshake(&mut c[0], &ours)?);
        for i in 1..n {
            let mut ch =
                more_rx
                    .recv_timeout(client_cfg.timeout)
                    .map_err(|_| NetError::Disconnected {
                        what: "opening the in-memory session's lanes".into(),
                    })?;
            super::handshake(
                &mut ch,
                &super::Hello::new(&client_cfg, i as u32, [0; 16]).lanes(n),
            )?;
            c.push(ch);
        }
        Ok(c)
    });
    let mut s = vec![first_s];
    let ours = super::Hello::new(server, 0, [0; 16]);
    let mut res = super::handshake(&mut s[0], &ours).map(|theirs| super::lanes(&ours, &theirs));
    if let Ok(n) = res {
        for i in 1..n {
            let (mut a, b) = pair(server.timeout);
            if more_tx.send(b).is_err() {
                break;
            }
            let hello = super::Hello::new(server, i as u32, [0; 16]).lanes(n);
            if let Err(e) = super::handshake(&mut a, &hello) {
                res = Err(e);
                break;
            }
            s.push(a);
        }
    }
    if res.is_err() {
        // Let the client thread see the disconnection instead of waiting for its timeout.
        s.clear();
    }
    drop(more_tx);
    let client_res = match handle.join() {
        Ok(r) => r,
        Err(_) => Err(NetError::Malformed("client thread panicked".into())),
    };
    res?;
    Ok((s, client_res?))
}

impl MemChannel {
    fn push(&mut self) -> Result<(), NetError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.out);
        self.tx.send(data).map_err(|_| NetError::Disconnected {
            what: "sending to the in-memory peer".into(),
        })
    }
}

impl Channel for MemChannel {
    fn send_raw(&mut self, data: &[u8]) -> Result<(), NetError> {
        self.out.extend_from_slice(data);
        if self.out.len() >= FLUSH_AT {
            self.push()?;
        }
        Ok(())
    }

    fn recv_raw(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        let mut filled = 0;
        // The whole receive's deadline, from its first wait (`None`: none yet, or beyond the
        // clock).
        let mut deadline: Option<Option<Instant>> = None;
        while filled < buf.len() {
            if self.inpos == self.inbuf.len() {
                let now = Instant::now();
                let end = *deadline.get_or_insert_with(|| now.checked_add(self.timeout));
                let left = end.map_or(self.timeout, |d| d.saturating_duration_since(now));
                match self.rx.recv_timeout(left) {
                    Ok(v) => {
                        self.inbuf = v;
                        self.inpos = 0;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(NetError::Timeout {
                            what: format!("receiving {} bytes from the in-memory peer", buf.len()),
                            secs: self.timeout.as_secs_f64(),
                        })
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(NetError::Disconnected {
                            what: format!("receiving {} bytes from the in-memory peer", buf.len()),
                        })
                    }
                }
                continue;
            }
            let take = (buf.len() - filled).min(self.inbuf.len() - self.inpos);
            buf[filled..filled + take].copy_from_slice(&self.inbuf[self.inpos..self.inpos + take]);
            filled += take;
            self.inpos += take;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), NetError> {
        self.push()
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

impl Drop for MemChannel {
    fn drop(&mut self) {
        let _ = self.push();
    }
}

// Not the two-party harness (`crate::testing`), which is built on this channel: these tests are
// of the in-memory channel itself (its buffering, disconnection and timeouts).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_transfer_in_threads() {
        let (mut a, mut b) = pair(Duration::from_secs(10));
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let d2 = data.clone();
        let h = std::thread::spawn(move || {
            a.send(&d2).unwrap();
            let mut ack = [0u8; 1];
            a.recv(&mut ack).unwrap();
            ack[0]
        });
        let got = b.recv_vec(data.len()).unwrap();
        assert_eq!(got, data);
        b.send(&[42]).unwrap();
        b.flush().unwrap();
        assert_eq!(h.join().unwrap(), 42);
    }

    #[test]
    fn stalled_peer_times_out() {
        let (_a, mut b) = pair(Duration::from_millis(200));
        let t = Instant::now();
        let err = b.recv_vec(4).unwrap_err();
        assert!(matches!(err, NetError::Timeout { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains("timed out after 0.2 s"), "{err}");
    }

    /// The timeout bounds a whole receive: bytes that trickle in, each within the timeout of
    /// the last, do not keep it waiting longer.
    #[test]
    fn a_trickling_peer_times_out_within_the_timeout_in_all() {
        let (mut a, mut b) = pair(Duration::from_millis(300));
        let h = std::thread::spawn(move || {
            for _ in 0..10 {
                if a.send(&[1]).and_then(|()| a.flush()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(120));
            }
        });
        let t = Instant::now();
        let err = b.recv_vec(10).unwrap_err();
        let took = t.elapsed();
        assert!(matches!(err, NetError::Timeout { .. }), "{err}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_millis(450), "{took:?}");
        drop(b);
        h.join().unwrap();
    }

    #[test]
    fn dropped_peer_disconnects() {
        let (a, mut b) = pair(Duration::from_secs(30));
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(a);
        });
        let t = Instant::now();
        let err = b.recv_vec(4).unwrap_err();
        h.join().unwrap();
        assert!(matches!(err, NetError::Disconnected { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(b.send(&[1]).and_then(|_| b.flush()).is_err());
    }
}
