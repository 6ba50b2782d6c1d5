//! The per-session HE setup: the client makes a key pair and sends its public key once; both
//! parties keep an [`HeSession`]. Cost: one flight client → server of
//! [`Seeded::wire_len`] = 168,976 bytes. The server receives an RLWE encryption of zero under the
//! client's key (pseudorandom by RLWE), so it learns nothing.

use super::eval::PublicKeyNtt;
use super::keys::{SecretKey, Seeded};
use crate::crypto::Prg;
use crate::net::{Channel, NetError, Role};

/// What each party keeps for the session's RLWE products.
pub struct HeSession {
    /// This party's role.
    pub role: Role,
    /// The client's secret key (client only).
    secret: Option<SecretKey>,
    /// The client's public key in transform form (server only), for re-randomising results.
    public: Option<PublicKeyNtt>,
}

impl HeSession {
    /// Run the setup: the client generates keys and sends the public key, the server receives it.
    pub fn setup<C: Channel + ?Sized>(ch: &mut C, role: Role) -> Result<HeSession, NetError> {
        match role {
            Role::Client => {
                let mut rng = Prg::from_entropy();
                let sk = SecretKey::generate(&mut rng);
                let pk = sk.public_key(&mut rng);
                let mut bytes = Vec::with_capacity(Seeded::wire_len());
                pk.write(&mut bytes);
                ch.send(&bytes)?;
                ch.flush()?;
                Ok(HeSession {
                    role,
                    secret: Some(sk),
                    public: None,
                })
            }
            Role::Server => {
                let pk = Seeded::read(&ch.recv_vec(Seeded::wire_len())?)?;
                Ok(HeSession {
                    role,
                    secret: None,
                    public: Some(PublicKeyNtt::new(&pk)),
                })
            }
        }
    }

    /// The secret key; `InvalidArgument` on the server.
    pub fn secret_key(&self) -> Result<&SecretKey, NetError> {
        self.secret.as_ref().ok_or_else(|| {
            NetError::InvalidArgument("only the client's HE session holds a secret key".into())
        })
    }

    /// The peer's public key; `InvalidArgument` on the client.
    pub fn public_key(&self) -> Result<&PublicKeyNtt, NetError> {
        self.public.as_ref().ok_or_else(|| {
            NetError::InvalidArgument(
                "only the server's HE session holds the client's public key".into(),
            )
        })
    }
}
