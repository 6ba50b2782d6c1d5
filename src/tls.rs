//! The TLS flags of `serve` and `generate` (runtime::net::tls does the work).

use ciphergpt_runtime::net::tls::{self, Tls};
use clap::Args;
use std::path::PathBuf;

/// `serve`'s TLS: plaintext unless a certificate is given.
#[derive(Args, Debug)]
pub struct ServeTls {
    /// Serve over TLS 1.3 with this certificate chain (PEM, the server's certificate first);
    /// clients must then connect with --tls-ca. Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require every client to present a certificate signed by a CA in this PEM file (mutual
    /// TLS: only holders of such a certificate get a session). Needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServeTls {
    pub fn config(&self) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        Ok(Some(tls::server(cert, key, self.tls_client_ca.as_deref())?))
    }
}

/// `generate`'s TLS: plaintext unless a CA is given.
#[derive(Args, Debug)]
pub struct ClientTls {
    /// Connect over TLS 1.3, trusting the server's certificate only if a CA in this PEM file
    /// signed it and it names the server (the host of --connect, or --tls-server-name).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of --connect).
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
    /// Present this certificate chain (PEM) to a server that requires client certificates
    /// (its --tls-client-ca). Needs --tls-key and --tls-ca.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTls {
    /// The client's TLS for a server at `connect` (`host:port`).
    pub fn config(&self, connect: &str) -> anyhow::Result<Option<Tls>> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let name = self
            .tls_server_name
            .as_deref()
            .unwrap_or_else(|| tls::host_of(connect));
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        Ok(Some(tls::client(ca, name, identity)?))
    }
}
