//! TLS between hosts (rustls, TLS 1.3 only, the `ring` provider): the server presents a
//! certificate chain that the client checks against its CA and the server's name; with a client
//! CA the server requires a client certificate signed by it (mutual TLS).
//!
//! [`TlsStream`] is one TLS connection over the two [`Timed`] halves of a TCP connection, so every
//! read and write keeps the channel's deadlines; its handshake ([`TlsStream::handshake`]) runs
//! under the deadline of the connection's handshake ([`super::tcp::TcpChannel::within`]).
//!
//! **Mismatched peers.** The first bytes each party reads in the TLS handshake are checked: a
//! ciphergpt hello ([`super::wire::MAGIC`]) means the peer speaks plaintext. A TLS server then
//! answers with [`super::wire::TLS_REQUIRED`], a preamble that a plaintext client reports as
//! "the server requires TLS"; a plaintext server that reads a TLS record refuses it
//! ([`super::wire::Hello`]'s header check) and a TLS client reports what it reads back.
//!
//! Session tickets are not sent (a session is never resumed), and no `close_notify` is sent at
//! the end: every message of the protocol has a length known to both parties, so a truncated
//! stream is an error anyway ([`super::NetError::Disconnected`]).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, Connection, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::deadline::Timed;
use super::wire::{MAGIC, TLS_REQUIRED};
use super::NetError;

/// The TLS side of a party, carried by [`super::SessionConfig::tls`].
#[derive(Clone, Debug)]
pub enum Tls {
    /// A server: its certificate and key, and whether (by whom) clients must be certified.
    Server(Arc<ServerConfig>),
    /// A client: the CA it trusts (and its own certificate, if any), and the server's name.
    Client(Arc<ClientConfig>, ServerName<'static>),
}

fn file_error(file: &Path, problem: impl std::fmt::Display) -> NetError {
    NetError::File {
        file: file.display().to_string(),
        problem: problem.to_string(),
    }
}

/// The certificates of a PEM file, at least one.
pub fn load_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| file_error(file, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(file, e))?;
    if certs.is_empty() {
        return Err(file_error(
            file,
            "no certificate in it (a PEM `BEGIN CERTIFICATE` block is expected)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(file: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => file_error(
            file,
            "no private key in it (a PEM `BEGIN PRIVATE KEY` block is expected)",
        ),
        e => file_error(file, e),
    })
}

/// The CA certificates of a PEM file, as a root store.
fn load_roots(file: &Path) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(file)? {
        roots
            .add(cert)
            .map_err(|e| file_error(file, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The `ring` provider: its key exchanges (X25519, P-256, P-384) are classical, not post-quantum
/// (which is why rustls marks it deprecated; the aws-lc-rs provider needs cmake to build).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A server's TLS: the certificate chain in `cert` (the server's first) and its key in `key`;
/// with `client_ca`, clients must present a certificate signed by a CA in that file.
pub fn server(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Tls, NetError> {
    let chain = load_certs(cert)?;
    let secret = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::InvalidArgument(format!("TLS: {e}")))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider())
                .build()
                .map_err(|e| file_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, secret).map_err(|e| {
        file_error(
            key,
            format!("does not fit the certificate in {}: {e}", cert.display()),
        )
    })?;
    config.send_tls13_tickets = 0;
    Ok(Tls::Server(Arc::new(config)))
}

/// A client's TLS: the server's certificate must be signed by a CA in `ca` and name
/// `server_name`; with `identity` (certificate chain, key) the client presents a certificate.
pub fn client(
    ca: &Path,
    server_name: &str,
    identity: Option<(&Path, &Path)>,
) -> Result<Tls, NetError> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| {
        NetError::InvalidArgument(format!(
            "TLS server name {server_name:?}: {e} (give --tls-server-name)"
        ))
    })?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::InvalidArgument(format!("TLS: {e}")))?
        .with_root_certificates(load_roots(ca)?);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| {
                file_error(
                    key,
                    format!("does not fit the certificate in {}: {e}", cert.display()),
                )
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Tls::Client(Arc::new(config), name))
}

/// The host part of `host:port` (an IPv6 address without its brackets): the server name a
/// client checks by default.
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A TLS failure as an I/O error, classified by [`super::NetError::from_io`].
fn tls_io(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// What a TLS failure means, with a hint.
pub(super) fn describe(e: &rustls::Error) -> String {
    use rustls::AlertDescription as A;
    use rustls::Error as E;
    match e {
        E::AlertReceived(a @ (A::UnknownCA | A::BadCertificate | A::CertificateRequired | A::DecryptError | A::AccessDenied)) => format!(
            "the peer refused the TLS session (alert {a:?}): it does not trust our certificate, or wants one we did not give (a server's must be signed by the client's --tls-ca, a client's --tls-cert by the server's --tls-client-ca)"
        ),
        E::AlertReceived(a) => format!("the peer ended the TLS session (alert {a:?})"),
        E::InvalidCertificate(c) => format!(
            "the peer's certificate is refused ({c:?}): is it signed by the CA given (--tls-ca, --tls-client-ca), and for a server, does it name the host connected to (--tls-server-name)?"
        ),
        E::NoCertificatesPresented => "the peer presented no certificate and one is required: give the client --tls-cert and --tls-key signed by the server's --tls-client-ca".into(),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            format!("the peer does not speak TLS as expected ({e}): does it run without TLS?")
        }
        e => e.to_string(),
    }
}

/// How many bytes of the peer's first flight are checked for a plaintext hello.
const SNIFF: usize = 5;

/// One TLS connection over the two timed halves of a TCP connection.
pub struct TlsStream {
    conn: Connection,
    pub(super) r: Timed,
    pub(super) w: Timed,
}

impl TlsStream {
    /// Run the TLS handshake as `tls`'s side over `r` and `w` (their deadlines apply).
    pub fn handshake(tls: &Tls, r: Timed, w: Timed) -> io::Result<TlsStream> {
        let conn: Connection = match tls {
            Tls::Server(c) => rustls::ServerConnection::new(c.clone())
                .map_err(tls_io)?
                .into(),
            Tls::Client(c, name) => rustls::ClientConnection::new(c.clone(), name.clone())
                .map_err(tls_io)?
                .into(),
        };
        let mut s = TlsStream { conn, r, w };
        s.send_tls()?;
        s.sniff()?;
        while s.conn.is_handshaking() {
            s.send_tls()?;
            if s.conn.is_handshaking() {
                s.receive_tls()?;
            }
        }
        s.send_tls()?;
        Ok(s)
    }

    /// Read the peer's first bytes: a plaintext ciphergpt hello is refused (a server tells the
    /// client that it requires TLS), anything else goes to rustls.
    fn sniff(&mut self) -> io::Result<()> {
        let mut head = [0u8; SNIFF];
        self.r.read_exact(&mut head).map_err(closed_in_handshake)?;
        if head[..] == MAGIC[..SNIFF] {
            let problem = match self.conn {
                Connection::Server(_) => {
                    // Tell the client, then wait for it to hang up (so the answer is not lost
                    // to a reset), within the deadline.
                    let _ = self.w.write_all(&TLS_REQUIRED);
                    let _ = self.w.get_ref().shutdown(Shutdown::Write);
                    let _ = io::copy(&mut self.r, &mut io::sink());
                    "the peer speaks plaintext and this server requires TLS: give the client --tls-ca"
                }
                Connection::Client(_) => {
                    "the server speaks plaintext: start it with --tls-cert and --tls-key, or connect without --tls-ca"
                }
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Mismatch(problem),
            ));
        }
        self.conn.read_tls(&mut &head[..])?;
        self.process()
    }

    /// Send whatever TLS records are pending.
    fn send_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.w)?;
        }
        Ok(())
    }

    /// Read TLS records from the socket and decrypt them (the end of the stream is recorded).
    fn receive_tls(&mut self) -> io::Result<usize> {
        let n = self.conn.read_tls(&mut self.r);
        let n = if self.conn.is_handshaking() {
            n.map_err(closed_in_handshake)?
        } else {
            n?
        };
        if n == 0 && self.conn.is_handshaking() {
            return Err(closed_in_handshake(io::ErrorKind::UnexpectedEof.into()));
        }
        self.process()?;
        Ok(n)
    }

    fn process(&mut self) -> io::Result<()> {
        if let Err(e) = self.conn.process_new_packets() {
            // Best effort: the alert rustls queued tells the peer why.
            let _ = self.send_tls();
            return Err(tls_io(e));
        }
        Ok(())
    }

    /// Whether decrypted bytes wait to be read.
    pub fn has_plaintext(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
    }
}

/// Plaintext met TLS: the message says which side is which.
#[derive(Debug)]
pub(super) struct Mismatch(pub &'static str);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The peer hung up in the TLS handshake: before its first bytes most likely a plaintext
/// server that refused our client hello, after them a refusal of our certificate.
fn closed_in_handshake(e: io::Error) -> io::Error {
    use io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => io::Error::new(
            InvalidData,
            Mismatch("the peer closed the connection in the TLS handshake: does it run without TLS, or refuse our certificate?"),
        ),
        _ => e,
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.send_tls()?;
                    self.receive_tls()?;
                }
                r => return r,
            }
        }
    }
}

impl Write for TlsStream {
    /// Encrypts at most what rustls buffers (64 KiB of records), then sends it.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.send_tls()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_tls()?;
        self.w.flush()
    }
}

// Not the two-party harness (`crate::testing`): these tests are of the TLS transport against
// plain TCP (certificates, refusals, a TLS peer of a plaintext one), so each opens its own
// sockets with its own TLS configuration.
#[cfg(test)]
mod tests {
    use super::super::tcp::{connect, Listener};
    use super::super::{Channel, Role, SessionConfig};
    use super::*;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    /// The fixtures of `tests/tls` (made by its `make.sh`).
    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/tls")
            .join(name)
    }

    fn server_tls(client_ca: Option<&str>) -> Tls {
        let ca = client_ca.map(fixture);
        server(
            &fixture("server.pem"),
            &fixture("server.key"),
            ca.as_deref(),
        )
        .unwrap()
    }

    fn client_tls(ca: &str, name: &str, who: Option<&str>) -> Tls {
        let id = who.map(|w| (fixture(&format!("{w}.pem")), fixture(&format!("{w}.key"))));
        let id = id.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        client(&fixture(ca), name, id).unwrap()
    }

    fn cfg(role: Role, n: usize, tls: Option<Tls>) -> SessionConfig {
        SessionConfig::new(role, [5; 32])
            .with_channels(n)
            .with_timeout(Duration::from_secs(10))
            .with_tls(tls)
    }

    /// Run a session's opening with the server's and the client's TLS (`None`: plaintext);
    /// each side's lanes, or its error's message.
    fn open(
        server: Option<Tls>,
        client: Option<Tls>,
        n: usize,
    ) -> (Result<usize, String>, Result<usize, String>) {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let c = cfg(Role::Client, n, client);
        let h = std::thread::spawn(move || {
            connect(&addr, &c)
                .map(|chans| {
                    assert!(chans.iter().all(|ch| ch.is_tls() == c.tls.is_some()));
                    chans.len()
                })
                .map_err(|e| e.to_string())
        });
        let s = l
            .accept(&cfg(Role::Server, n, server))
            .map(|chans| chans.len())
            .map_err(|e| e.to_string());
        (s, h.join().unwrap())
    }

    /// Two lanes over TLS carry the bytes sent, and count the payload only: the same figures as
    /// over plaintext (`tcp`'s loopback test).
    #[test]
    fn two_lanes_over_tls_count_the_payload_only() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let c = cfg(
            Role::Client,
            2,
            Some(client_tls("ca.pem", "localhost", None)),
        );
        let h = std::thread::spawn(move || {
            let mut chans = connect(&addr, &c).unwrap();
            for (i, ch) in chans.iter_mut().enumerate() {
                ch.send(&vec![i as u8 + 1; 300_000]).unwrap();
                assert_eq!(ch.recv_u64().unwrap(), 300_000 * (i as u64 + 1));
            }
            chans[0].stats()
        });
        let mut chans = l
            .accept(&cfg(Role::Server, 2, Some(server_tls(None))))
            .unwrap();
        assert_eq!(chans.len(), 2);
        for (i, ch) in chans.iter_mut().enumerate() {
            assert!(ch.is_tls());
            let got = ch.recv_vec(300_000).unwrap();
            assert!(got.iter().all(|&b| b == i as u8 + 1));
            ch.send_u64(got.iter().map(|&b| b as u64).sum()).unwrap();
            ch.flush().unwrap();
        }
        let cs = h.join().unwrap();
        assert_eq!(cs.total.bytes_sent, 300_000 + 70);
        assert_eq!(cs.scope("handshake").bytes_received, 70);
    }

    #[test]
    fn the_server_name_defaults_to_the_host() {
        assert_eq!(host_of("127.0.0.1:7878"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7878"), "::1");
        assert_eq!(host_of("gpu.example:7878"), "gpu.example");
        // The certificate names 127.0.0.1 and localhost: both pass.
        for name in ["127.0.0.1", "localhost"] {
            let (s, c) = open(
                Some(server_tls(None)),
                Some(client_tls("ca.pem", name, None)),
                1,
            );
            assert_eq!((s, c), (Ok(1), Ok(1)), "{name}");
        }
    }

    #[test]
    fn a_server_of_another_ca_or_name_is_refused() {
        for (ca, name) in [("other-ca.pem", "localhost"), ("ca.pem", "gpu.example")] {
            let (s, c) = open(Some(server_tls(None)), Some(client_tls(ca, name, None)), 1);
            let c = c.unwrap_err();
            assert!(c.contains("the peer's certificate is refused"), "{c}");
            assert!(c.contains("doing the TLS handshake with 127.0.0.1:"), "{c}");
            assert!(s.unwrap_err().contains("TLS failed"));
        }
    }

    #[test]
    fn mutual_tls_takes_only_clients_certified_by_its_ca() {
        let (s, c) = open(
            Some(server_tls(Some("ca.pem"))),
            Some(client_tls("ca.pem", "localhost", Some("client"))),
            2,
        );
        assert_eq!((s, c), (Ok(2), Ok(2)));
        // No certificate: the server says it wants one, the client that it was refused.
        let (s, c) = open(
            Some(server_tls(Some("ca.pem"))),
            Some(client_tls("ca.pem", "localhost", None)),
            1,
        );
        let s = s.unwrap_err();
        assert!(s.contains("presented no certificate"), "{s}");
        let c = c.unwrap_err();
        assert!(c.contains("the peer refused the TLS session"), "{c}");
        // A certificate of another CA.
        let (s, c) = open(
            Some(server_tls(Some("ca.pem"))),
            Some(client_tls("ca.pem", "localhost", Some("other-client"))),
            1,
        );
        let s = s.unwrap_err();
        assert!(s.contains("the peer's certificate is refused"), "{s}");
        assert!(c.unwrap_err().contains("the peer refused the TLS session"));
    }

    #[test]
    fn plaintext_and_tls_refuse_each_other_clearly() {
        let t = Instant::now();
        let (s, c) = open(Some(server_tls(None)), None, 1);
        let (s, c) = (s.unwrap_err(), c.unwrap_err());
        assert!(
            s.contains("the peer speaks plaintext and this server requires TLS"),
            "{s}"
        );
        assert!(
            c.contains("the server requires TLS: connect with --tls-ca"),
            "{c}"
        );
        let (s, c) = open(None, Some(client_tls("ca.pem", "localhost", None)), 1);
        let (s, c) = (s.unwrap_err(), c.unwrap_err());
        assert!(
            s.contains("the peer speaks TLS and this server plaintext"),
            "{s}"
        );
        assert!(
            c.contains("the server speaks plaintext") || c.contains("does it run without TLS"),
            "{c}"
        );
        // Neither waits for its timeout (10 s).
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    /// The server sees a TLS client that left while it waited for a slot, as over plaintext.
    #[test]
    fn a_closed_tls_peer_is_seen_without_a_read() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().to_string();
        let c = cfg(
            Role::Client,
            1,
            Some(client_tls("ca.pem", "localhost", None)),
        );
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let chans = connect(&addr, &c).unwrap();
            let _ = rx.recv();
            drop(chans);
        });
        let s = cfg(Role::Server, 1, Some(server_tls(None)));
        let mut ch = l.accept(&s).unwrap().pop().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!ch.peer_closed(), "open and silent");
        tx.send(()).unwrap();
        h.join().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(ch.peer_closed());
        assert!(matches!(
            ch.recv_vec(1).unwrap_err(),
            NetError::Disconnected { .. }
        ));
    }

    /// A peer that connects and says nothing fails the TLS handshake at the timeout.
    #[test]
    fn a_silent_peer_fails_the_tls_handshake_within_the_timeout() {
        let l = Listener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr();
        let hold = std::thread::spawn(move || {
            let s = std::net::TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            drop(s);
        });
        let s =
            cfg(Role::Server, 1, Some(server_tls(None))).with_timeout(Duration::from_millis(400));
        let t = Instant::now();
        let e = l.accept(&s).err().unwrap();
        let took = t.elapsed();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("doing the handshake of connection 0"),
            "{e}"
        );
        assert!(took < Duration::from_millis(900), "{took:?}");
        hold.join().unwrap();
    }

    #[test]
    fn bad_files_are_named() {
        let missing = fixture("missing.pem");
        let e = server(&missing, &fixture("server.key"), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{}: ", missing.display())), "{e}");
        // A key where a certificate should be, a certificate where a key should be.
        let e = server(&fixture("server.key"), &fixture("server.key"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.key: no certificate in it"), "{e}");
        let e = server(&fixture("server.pem"), &fixture("server.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.pem: no private key in it"), "{e}");
        // A key that is not the certificate's.
        let e = server(&fixture("server.pem"), &fixture("client.key"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("client.key: does not fit the certificate"),
            "{e}"
        );
        let e = client(&fixture("ca.pem"), "not a name!", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tls-server-name"), "{e}");
    }
}
