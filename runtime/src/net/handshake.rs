//! The session handshake: each channel starts with both parties sending a `Hello` and checking
//! the peer's: magic, format version, roles, plan hash, channel index and count. Both parties send
//! before they receive (or the server answers a hello it has read, [`read_hello`] then
//! [`answer`]), so both see a mismatch and both refuse with the same clear message.
//!
//! **Lanes.** A session runs on `lanes` channels, negotiated on the first: there each party's
//! `channel_count` is the most lanes it will run (the client's ask; the server's own limit, or
//! its grant when it answers after reading the ask), and the session's lanes are the smaller of
//! the two ([`lanes`]), so a 2-core client and a 4-core server agree on 2 without error. The
//! client then opens channels 1..lanes, whose hellos carry that count, their index and the first
//! channel's session id; there the counts must be equal.

use super::{Channel, NetError, Role, SessionConfig};

/// Version of the wire format; bump it whenever any protocol message changes. 2: the session
/// request carries the decoding (top-K, temperature). 3: the first channel's count is each
/// party's most lanes, the session runs the smaller on as many channels, each with its own OT.
/// 4: 1-out-of-N OT pads are read from each key's hash stream, and the millionaires' trees
/// combine up to four digits per node by one OT.
pub const FORMAT_VERSION: u32 = 4;

const MAGIC: [u8; 8] = *b"CGPT-2PC";
const HELLO_LEN: usize = 8 + 4 + 1 + 32 + 4 + 4 + 16;

/// What each party announces at the start of every channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    pub role: Role,
    pub plan_hash: [u8; 32],
    pub channel_index: u32,
    pub channel_count: u32,
    /// Identifies the session among the connections a server accepts (set by the client).
    pub session_id: [u8; 16],
}

impl Hello {
    /// The hello of channel `index`: on channel 0 the count is `cfg.channels` (this party's most
    /// lanes), on the others set it to the session's lanes with [`Hello::lanes`].
    pub fn new(cfg: &SessionConfig, index: u32, session_id: [u8; 16]) -> Hello {
        Hello {
            version: FORMAT_VERSION,
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

    fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12] = self.role.to_byte();
        b[13..45].copy_from_slice(&self.plan_hash);
        b[45..49].copy_from_slice(&self.channel_index.to_le_bytes());
        b[49..53].copy_from_slice(&self.channel_count.to_le_bytes());
        b[53..69].copy_from_slice(&self.session_id);
        b
    }

    fn decode(b: &[u8; HELLO_LEN]) -> Result<Hello, NetError> {
        if b[0..8] != MAGIC {
            return Err(NetError::Malformed(
                "the first bytes are not a ciphergpt hello".into(),
            ));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let role = Role::from_byte(b[12])
            .ok_or_else(|| NetError::Malformed(format!("unknown role byte {}", b[12])))?;
        let mut plan_hash = [0u8; 32];
        plan_hash.copy_from_slice(&b[13..45]);
        let mut session_id = [0u8; 16];
        session_id.copy_from_slice(&b[53..69]);
        if u32_at(49) == 0 {
            return Err(NetError::Malformed("a hello with 0 channels".into()));
        }
        Ok(Hello {
            version: u32_at(8),
            role,
            plan_hash,
            channel_index: u32_at(45),
            channel_count: u32_at(49),
            session_id,
        })
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
        ch.send(&ours.encode())?;
        let mut buf = [0u8; HELLO_LEN];
        ch.recv(&mut buf)?;
        Hello::decode(&buf)
    })?;
    check(ours, &theirs)?;
    Ok(theirs)
}

/// Read the peer's hello without sending ours first: the server does, to see whether a
/// connection opens a session (channel 0) or joins one as a lane, then [`answer`]s it. Counted
/// under `"handshake"`.
pub fn read_hello<C: Channel + ?Sized>(ch: &mut C) -> Result<Hello, NetError> {
    super::scoped(ch, "handshake", |ch| -> Result<Hello, NetError> {
        let mut buf = [0u8; HELLO_LEN];
        ch.recv(&mut buf)?;
        Hello::decode(&buf)
    })
}

/// Send our hello in answer to the peer's, already read, and check the two.
pub fn answer<C: Channel + ?Sized>(
    ch: &mut C,
    ours: &Hello,
    theirs: &Hello,
) -> Result<(), NetError> {
    super::scoped(ch, "handshake", |ch| -> Result<(), NetError> {
        ch.send(&ours.encode())?;
        ch.flush()
    })?;
    check(ours, theirs)
}

/// The session's lanes from the two hellos of channel 0: the smaller of the two counts.
pub fn lanes(ours: &Hello, theirs: &Hello) -> usize {
    ours.channel_count.min(theirs.channel_count).max(1) as usize
}

fn check(ours: &Hello, theirs: &Hello) -> Result<(), NetError> {
    if ours.version != theirs.version {
        return Err(NetError::HandshakeMismatch {
            field: "format version",
            ours: ours.version.to_string(),
            theirs: theirs.version.to_string(),
            hint: "run the same ciphergpt version on both hosts",
        });
    }
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
    use super::super::{mem, SessionConfig};
    use super::*;
    use std::time::Duration;

    fn run(
        s: SessionConfig,
        c: SessionConfig,
    ) -> (Result<Hello, NetError>, Result<Hello, NetError>) {
        let (mut a, mut b) = mem::pair(Duration::from_secs(5));
        let h = std::thread::spawn(move || handshake(&mut b, &Hello::new(&c, 0, [7; 16])));
        let ra = handshake(&mut a, &Hello::new(&s, 0, [0; 16]));
        (ra, h.join().unwrap())
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
        let (mut x, mut y) = mem::pair(Duration::from_secs(5));
        let h = std::thread::spawn(move || {
            handshake(&mut y, &Hello::new(&c, 1, [7; 16]).lanes(2))
                .unwrap_err()
                .to_string()
        });
        let e = handshake(&mut x, &Hello::new(&s, 1, [7; 16]).lanes(3)).unwrap_err();
        assert!(e.to_string().contains("channel count differs"), "{e}");
        assert!(h.join().unwrap().contains("channel count differs"));
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
        b.send(&[0u8; HELLO_LEN]).unwrap();
        b.flush().unwrap();
        let cfg = SessionConfig::new(Role::Server, [0; 32]);
        let e = handshake(&mut a, &Hello::new(&cfg, 0, [0; 16])).unwrap_err();
        assert!(matches!(e, NetError::Malformed(_)), "{e}");
        assert_eq!(a.stats().scope("handshake").bytes_sent, HELLO_LEN as u64);
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
