//! `serve` and `generate` over TLS, as processes on loopback, with the certificates of
//! `tests/tls` (made by its `make.sh`): a client that trusts another CA, one without a
//! certificate or with one of another CA, and a plaintext client are each refused with one line
//! on both sides, at once, and the server goes on to serve the next client. (Mutual-TLS sessions
//! against plain TCP ones, tokens and payload bytes, are cells of `matrix.rs`.)

use crate::common;

use common::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls")
        .join(name)
}

/// `serve` flags for TLS with the test server certificate, requiring client certificates of the
/// test CA when `mutual`.
pub(crate) fn serve_tls(mutual: bool) -> Vec<String> {
    let mut v = vec![
        "--tls-cert".into(),
        fixture("server.pem").display().to_string(),
        "--tls-key".into(),
        fixture("server.key").display().to_string(),
    ];
    if mutual {
        v.push("--tls-client-ca".into());
        v.push(fixture("ca.pem").display().to_string());
    }
    v
}

/// `generate --json` on 2 threads with `tls` flags (file names are of `tests/tls`).
fn generate(dir: &Path, addr: &str, prompt: &str, new: usize, tls: &[&str]) -> Output {
    let mut c = common::generate(dir, addr, prompt, new, 60.0);
    c.args(["--json", "--threads", "2"]);
    c.args(tls_args(tls)).output().unwrap()
}

/// TLS flags with the file names of `tests/tls` made paths.
pub(crate) fn tls_args(tls: &[&str]) -> Vec<PathBuf> {
    tls.iter()
        .map(|a| {
            if a.ends_with(".pem") || a.ends_with(".key") {
                fixture(a)
            } else {
                PathBuf::from(a)
            }
        })
        .collect()
}

/// The tokens of a good run.
fn tokens(out: &Output) -> Vec<usize> {
    json_tokens(&json_doc(out, "generate"))
}

/// A failed run's one-line error.
fn error(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn clients_the_server_cannot_trust_are_refused_at_once() {
    let dir = trained("cli-tls-refused");
    let mut flags = serve_tls(true);
    flags.extend(["--sessions", "1", "--timeout", "30"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (mut server, addr, mut log) = serve(&dir, &flags);
    let cases: [(&[&str], &str, &str); 4] = [
        // The client does not trust the server's CA.
        (
            &[
                "--tls-ca",
                "other-ca.pem",
                "--tls-cert",
                "client.pem",
                "--tls-key",
                "client.key",
            ],
            "the peer's certificate is refused",
            "refused: TLS failed",
        ),
        // No client certificate.
        (
            &["--tls-ca", "ca.pem"],
            "the peer refused the TLS session",
            "presented no certificate",
        ),
        // A client certificate of another CA.
        (
            &[
                "--tls-ca",
                "ca.pem",
                "--tls-cert",
                "other-client.pem",
                "--tls-key",
                "other-client.key",
            ],
            "the peer refused the TLS session",
            "the peer's certificate is refused",
        ),
        // Plaintext.
        (
            &[],
            "the server requires TLS: connect with --tls-ca",
            "the peer speaks plaintext and this server requires TLS",
        ),
    ];
    for (tls, client_says, server_says) in cases {
        let t = Instant::now();
        let e = error(&generate(&dir, &addr, "In the", 1, tls));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{e}: {:?}",
            t.elapsed()
        );
        assert!(e.contains(client_says), "{tls:?}: {e}");
        let mut line = String::new();
        log.read_line(&mut line).unwrap();
        assert!(line.contains(server_says), "{tls:?}: {line}");
        assert!(line.starts_with("connection from 127.0.0.1:"), "{line}");
    }
    // The server still serves a certified client.
    let ok = generate(
        &dir,
        &addr,
        "In the",
        1,
        &[
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "client.pem",
            "--tls-key",
            "client.key",
        ],
    );
    let tokens = tokens(&ok);
    assert_eq!(tokens, simulated(&dir, &bytes("In the"), 1));
    assert!(server.0.wait().unwrap().success());
}

#[test]
fn a_tls_client_of_a_plaintext_server_fails_at_once() {
    let dir = trained("cli-tls-plain-server");
    let (_server, addr, mut log) = serve(&dir, &["--timeout", "30"]);
    let t = Instant::now();
    let e = error(&generate(&dir, &addr, "In the", 1, &["--tls-ca", "ca.pem"]));
    assert!(t.elapsed() < Duration::from_secs(10), "{e}");
    assert!(
        e.contains("the server speaks plaintext") || e.contains("does it run without TLS"),
        "{e}"
    );
    let mut line = String::new();
    log.read_line(&mut line).unwrap();
    assert!(
        line.contains("the peer speaks TLS and this server plaintext"),
        "{line}"
    );
}

#[test]
fn bad_tls_files_are_named_in_one_line() {
    let dir = trained("cli-tls-files");
    let missing = fixture("missing.pem");
    let out = exe()
        .args(["serve", "--plan"])
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&missing)
        .arg("--tls-key")
        .arg(fixture("server.key"))
        .output()
        .unwrap();
    let e = error(&out);
    assert!(e.contains(&format!("{}: ", missing.display())), "{e}");
    let out = generate(&dir, "127.0.0.1:9", "In", 1, &["--tls-ca", "server.key"]);
    let e = error(&out);
    assert!(e.contains("server.key: no certificate in it"), "{e}");
}
