//! The session handshake: each channel starts with both parties sending a `Hello` and checking
//! the peer's: magic, format version, roles, plan hash, channel index and count. Both parties send
//! before they receive, so both see a mismatch and both refuse with the same clear message.

use super::{Channel, NetError, Role, SessionConfig};

/// Version of the wire format; bump it whenever any protocol message changes. 2: the session
/// request carries the decoding (top-K, temperature).
pub const FORMAT_VERSION: u32 = 2;

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
    if ours.channel_count != theirs.channel_count {
        return Err(NetError::HandshakeMismatch {
            field: "channel count",
            ours: ours.channel_count.to_string(),
            theirs: theirs.channel_count.to_string(),
            hint: "both parties must open the session with the same number of channels (threads)",
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
    fn channel_count_mismatch_refused() {
        let (a, _b) = run(
            SessionConfig::new(Role::Server, [1; 32]).with_channels(2),
            SessionConfig::new(Role::Client, [1; 32]),
        );
        assert!(a.unwrap_err().to_string().contains("channel count"));
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
        let bad = SessionConfig::new(Role::Client, [4; 32]).with_channels(3);
        assert!(mem::session(&s, &bad).is_err());
    }
}
