//! The session's two RLWE key pairs (step 1 of the protocol in the module docs of
//! [`super`]).

use super::invalid;
use crate::crypto::rlwe::eval::PublicKeyNtt;
use crate::crypto::rlwe::{HeSession, ReturnCount, SecretKey, Seeded};
use crate::crypto::Prg;
use crate::net::{Channel, Role};
use crate::protocols::ProtocolError;

/// The session's two RLWE key pairs: the client's (from an [`HeSession`]) and the server's.
pub struct DuplexHe {
    base: HeSession,
    /// The server's secret key (server only).
    server_sk: Option<SecretKey>,
    /// The server's public key in transform form (client only).
    server_pk: Option<PublicKeyNtt>,
}

impl DuplexHe {
    /// Set up both key pairs from scratch: the client's public key (client → server), then the
    /// server's (server → client); 168,976 bytes and one flight each way.
    pub fn setup<C: Channel + ?Sized>(ch: &mut C, role: Role) -> Result<DuplexHe, ProtocolError> {
        let base = HeSession::setup(ch, role)?;
        DuplexHe::extend(base, ch)
    }

    /// Add the server's key pair to an existing session (the one of
    /// [`crate::protocols::linear`]): the server sends its public key, 168,976 bytes, one flight.
    pub fn extend<C: Channel + ?Sized>(
        base: HeSession,
        ch: &mut C,
    ) -> Result<DuplexHe, ProtocolError> {
        match base.role {
            Role::Server => {
                let mut rng = Prg::from_entropy();
                let sk = SecretKey::generate(&mut rng);
                let mut bytes = Vec::with_capacity(Seeded::wire_len());
                sk.public_key(&mut rng).write(&mut bytes);
                ch.send(&bytes)?;
                ch.flush()?;
                Ok(DuplexHe {
                    base,
                    server_sk: Some(sk),
                    server_pk: None,
                })
            }
            Role::Client => {
                let pk = Seeded::read(&ch.recv_vec(Seeded::wire_len())?)?;
                Ok(DuplexHe {
                    base,
                    server_sk: None,
                    server_pk: Some(PublicKeyNtt::new(&pk)),
                })
            }
        }
    }

    /// This party's role.
    pub fn role(&self) -> Role {
        self.base.role
    }

    /// The client-keyed session (for [`crate::protocols::linear`]).
    pub fn session(&self) -> &HeSession {
        &self.base
    }

    /// The count of coefficients this party returns in the session (under the peer's keys),
    /// which its other keys from the peer (an sVOLE batch's) share.
    pub fn returns(&self) -> Result<&ReturnCount, ProtocolError> {
        Ok(self.peer_key()?.count())
    }

    /// This party's own secret key.
    pub(super) fn own_key(&self) -> Result<&SecretKey, ProtocolError> {
        match self.base.role {
            Role::Client => Ok(self.base.secret_key()?),
            Role::Server => self
                .server_sk
                .as_ref()
                .ok_or_else(|| invalid("the server's key pair is missing".into())),
        }
    }

    /// The peer's public key.
    pub(super) fn peer_key(&self) -> Result<&PublicKeyNtt, ProtocolError> {
        match self.base.role {
            Role::Server => Ok(self.base.public_key()?),
            Role::Client => self
                .server_pk
                .as_ref()
                .ok_or_else(|| invalid("the server's public key is missing".into())),
        }
    }
}
