//! The session handshake: each channel starts with both parties sending a [`Hello`] and checking
//! the peer's: magic, wire version ([`super::wire::WIRE_VERSION`]), roles, plan hash, channel
//! index and count. Both parties send before they receive (or the server answers a hello it has
//! read, [`read_hello`] then [`answer`]), so both see a mismatch and both refuse with the same
//! clear message.
//!
//! **Lanes.** A session runs on `lanes` channels, negotiated on the first: there each party's
//! `channel_count` is the most lanes it will run (the client's ask; the server's own limit, or
//! its grant when it answers after reading the ask), and the session's lanes are the smaller of
//! the two ([`lanes`]), so a 2-core client and a 4-core server agree on 2 without error. The
//! client then opens channels 1..lanes, whose hellos carry that count, their index and the first
//! channel's session id; there the counts must be equal.

use super::wire::{WireMessage, PREAMBLE};
use super::{Channel, NetError, SessionConfig};

pub use super::wire::Hello;

impl Hello {
    /// The hello of channel `index`: on channel 0 the count is `cfg.channels` (this party's most
    /// lanes), on the others set it to the session's lanes with [`Hello::lanes`].
    pub fn new(cfg: &SessionConfig, index: u32, session_id: [u8; 16]) -> Hello {
        Hello {
            role: cfg.role,
            plan_hash: cfg.plan_hash,
            channel_index: index,
            channel_count: cfg.channels.max(1) as u32,
            session_id,
        }
    }

    /// This hello with the channel count `n`.
    pub fn lanes(mut self, n: usize) -> Hello {
        self.channel_count = n.max(1) as u32;
        self
    }
}

fn short_hex(h: &[u8; 32]) -> String {
    h[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

/// Exchange hellos on `ch` and check the peer's against ours. Returns the peer's hello.
/// The bytes are counted under the scope `"handshake"`.
pub fn handshake<C: Channel + ?Sized>(ch: &mut C, ours: &Hello) -> Result<Hello, NetError> {
    let theirs = super::scoped(ch, "handshake", |ch| -> Result<Hello, NetError> {
        ours.send(ch)?;
        Hello::recv(ch)
    })?;
    check(ours, &theirs)?;
    Ok(theirs)
}

/// Read the peer's hello without sending ours first: the server does, to see whether a
/// connection opens a session (channel 0) or joins one as a lane, then [`answer`]s it. Counted
/// under `"handshake"`. A peer of another wire version gets our preamble (magic and version)
/// in answer, so that it refuses with the same message.
pub fn read_hello<C: Channel + ?Sized>(ch: &mut C) -> Result<Hello, NetError> {
    super::scoped(ch, "handshake", |ch| -> Result<Hello, NetError> {
        let theirs = Hello::recv(ch);
        if let Err(NetError::HandshakeMismatch { .. } | NetError::Tls { .. }) = &theirs {
            // Best effort: the session is refused whether or not the peer reads it.
            let _ = ch.send(&PREAMBLE).and_then(|()| ch.flush());
        }
        theirs
    })
}

/// Send our hello in answer to the peer's, already read, and check the two.
pub fn answer<C: Channel + ?Sized>(
    ch: &mut C,
    ours: &Hello,
    theirs: &Hello,
) -> Result<(), NetError> {
    super::scoped(ch, "handshake", |ch| -> Result<(), NetError> {
        ours.send(ch)?;
        ch.flush()
    })?;
    check(ours, theirs)
}

/// The session's lanes from the two hellos of channel 0: the smaller of the two counts.
pub fn lanes(ours: &Hello, theirs: &Hello) -> usize {
    ours.channel_count.min(theirs.channel_count).max(1) as usize
}

/// The wire version is checked as the peer's hello is read ([`Hello::recv`]).
fn check(ours: &Hello, theirs: &Hello) -> Result<(), NetError> {
    if theirs.role != ours.role.other() {
        return Err(NetError::HandshakeMismatch {
            field: "role",
            ours: ours.role.to_string(),
            theirs: theirs.role.to_string(),
            hint: "start one party as server and the other as client",
        });
    }
    if ours.plan_hash != theirs.plan_hash {
        return Err(NetError::HandshakeMismatch {
            field: "plan hash",
            ours: short_hex(&ours.plan_hash),
            theirs: short_hex(&theirs.plan_hash),
            hint: "both parties must load the same plan file",
        });
    }
    if ours.channel_index != theirs.channel_index {
        return Err(NetError::HandshakeMismatch {
            field: "channel index",
            ours: ours.channel_index.to_string(),
            theirs: theirs.channel_index.to_string(),
            hint: "connections arrived out of order; is another client connecting to this server?",
        });
    }
    // Channel 0 negotiates the count (each party's most lanes); the others must agree on it.
    if ours.channel_index > 0 && ours.channel_count != theirs.channel_count {
        return Err(NetError::HandshakeMismatch {
            field: "channel count",
            ours: ours.channel_count.to_string(),
            theirs: theirs.channel_count.to_string(),
            hint: "both parties must run the lanes agreed on the session's first channel",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::wire::{LEN_BYTES, MAGIC, WIRE_VERSION};
    use super::super::{mem, Role, SessionConfig};
    use super::*;
    use crate::testing::on_two_threads;
    use std::time::Duration;

    fn run(
        s: SessionConfig,
        c: SessionConfig,
    ) -> (Result<Hello, NetError>, Result<Hello, NetError>) {
        // The harness on a pair with a short timeout: a refused hello fails at once anyway.
        on_two_threads(
            mem::pair(Duration::from_secs(5)),
            |mut a| handshake(&mut a, &Hello::new(&s, 0, [0; 16])),
            move |mut b| handshake(&mut b, &Hello::new(&c, 0, [7; 16])),
        )
    }

    #[test]
    fn matching_hellos_pass() {
        let (a, b) = run(
            SessionConfig::new(Role::Server, [1; 32]),
            SessionConfig::new(Role::Client, [1; 32]),
        );
        assert_eq!(a.unwrap().session_id, [7; 16]);
        assert_eq!(b.unwrap().role, Role::Server);
    }

    #[test]
    fn plan_hash_mismatch_refused_by_both() {
        let (a, b) = run(
            SessionConfig::new(Role::Server, [1; 32]),
            SessionConfig::new(Role::Client, [2; 32]),
        );
        for e in [a.unwrap_err(), b.unwrap_err()] {
            let m = e.to_string();
            assert!(m.contains("plan hash differs"), "{m}");
            assert!(m.contains("same plan file"), "{m}");
        }
    }

    #[test]
    fn same_roles_refused() {
        let (a, b) = run(
            SessionConfig::new(Role::Server, [1; 32]),
            SessionConfig::new(Role::Server, [1; 32]),
        );
        assert!(a.unwrap_err().to_string().contains("role differs"));
        assert!(b.unwrap_err().to_string().contains("one party as server"));
    }

    #[test]
    fn channel_zero_negotiates_the_lanes_and_later_channels_must_agree() {
        let (s, c) = (
            SessionConfig::new(Role::Server, [1; 32]).with_channels(4),
            SessionConfig::new(Role::Client, [1; 32]).with_channels(2),
        );
        let (a, b) = run(s.clone(), c.clone());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(lanes(&Hello::new(&s, 0, [0; 16]), &a), 2);
        assert_eq!(lanes(&Hello::new(&c, 0, [7; 16]), &b), 2);
        // Channel 1 with counts that differ is refused by both.
        let (e, theirs) = on_two_threads(
            mem::pair(Duration::from_secs(5)),
            |mut x| handshake(&mut x, &Hello::new(&s, 1, [7; 16]).lanes(3)).unwrap_err(),
            move |mut y| {
                handshake(&mut y, &Hello::new(&c, 1, [7; 16]).lanes(2))
                    .unwrap_err()
                    .to_string()
            },
        );
        assert!(e.to_string().contains("channel count differs"), "{e}");
        assert!(theirs.contains("channel count differs"));
    }

    #[test]
    fn read_then_answer_pairs_with_handshake() {
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        let c = SessionConfig::new(Role::Client, [1; 32]).with_channels(3);
        let h = std::thread::spawn(move || handshake(&mut b, &Hello::new(&c, 0, [9; 16])));
        let s = SessionConfig::new(Role::Server, [1; 32]).with_channels(8);
        let theirs = read_hello(&mut a).unwrap();
        assert_eq!((theirs.channel_count, theirs.session_id), (3, [9; 16]));
        let ours = Hello::new(&s, 0, [0; 16]).lanes(lanes(&Hello::new(&s, 0, [0; 16]), &theirs));
        answer(&mut a, &ours, &theirs).unwrap();
        assert_eq!(h.join().unwrap().unwrap().channel_count, 3);
        // A wrong plan is refused on both sides.
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        let c = SessionConfig::new(Role::Client, [2; 32]);
        let h = std::thread::spawn(move || handshake(&mut b, &Hello::new(&c, 0, [9; 16])));
        let theirs = read_hello(&mut a).unwrap();
        let e = answer(&mut a, &Hello::new(&s, 0, [0; 16]), &theirs).unwrap_err();
        assert!(e.to_string().contains("plan hash differs"), "{e}");
        assert!(h
            .join()
            .unwrap()
            .unwrap_err()
            .to_string()
            .contains("plan hash differs"));
    }

    #[test]
    fn garbage_is_malformed() {
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        b.send(&[0u8; 69]).unwrap();
        b.flush().unwrap();
        let cfg = SessionConfig::new(Role::Server, [0; 32]);
        let ours = Hello::new(&cfg, 0, [0; 16]);
        let e = handshake(&mut a, &ours).unwrap_err();
        assert!(matches!(e, NetError::Malformed(_)), "{e}");
        assert!(e.to_string().contains("not a ciphergpt hello"), "{e}");
        let sent = a.stats().scope("handshake").bytes_sent;
        assert_eq!(sent, ours.encode().len() as u64);
    }

    /// A peer of another wire version: its hello's preamble (magic, version) as every version
    /// lays it out, then a body this version need not read.
    fn foreign_hello(version: u32) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend(version.to_le_bytes());
        b.extend((3u16).to_le_bytes());
        b.extend([0xff; 3]);
        assert_eq!(b.len(), 12 + LEN_BYTES + 3);
        b
    }

    #[test]
    fn another_wire_version_is_refused_by_name() {
        let cfg = SessionConfig::new(Role::Server, [1; 32]);
        // Both send first.
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        b.send(&foreign_hello(WIRE_VERSION + 1)).unwrap();
        b.flush().unwrap();
        let e = handshake(&mut a, &Hello::new(&cfg, 0, [0; 16])).unwrap_err();
        let want = format!(
            "wire version differs (ours {WIRE_VERSION}, peer's {})",
            WIRE_VERSION + 1
        );
        assert!(e.to_string().contains(&want), "{e}");
        assert!(e.to_string().contains("same ciphergpt version"), "{e}");
        // The server reads first: it answers with its preamble, which the peer refuses alike.
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        b.send(&foreign_hello(WIRE_VERSION - 1)).unwrap();
        b.flush().unwrap();
        let e = read_hello(&mut a).unwrap_err();
        assert!(e.to_string().contains("wire version differs"), "{e}");
        let mut preamble = [0u8; 12];
        b.recv(&mut preamble).unwrap();
        assert_eq!(&preamble[..8], &MAGIC);
        assert_eq!(preamble[8..], WIRE_VERSION.to_le_bytes());
    }

    #[test]
    fn mem_session_with_several_channels() {
        let s = SessionConfig::new(Role::Server, [3; 32]).with_channels(3);
        let c = SessionConfig::new(Role::Client, [3; 32]).with_channels(3);
        let (sc, cc) = mem::session(&s, &c).unwrap();
        assert_eq!((sc.len(), cc.len()), (3, 3));
        // The smaller ask wins.
        let two = SessionConfig::new(Role::Client, [3; 32]).with_channels(2);
        let (sc, cc) = mem::session(&s, &two).unwrap();
        assert_eq!((sc.len(), cc.len()), (2, 2));
        let bad = SessionConfig::new(Role::Client, [4; 32]).with_channels(3);
        assert!(mem::session(&s, &bad).is_err());
    }
}
