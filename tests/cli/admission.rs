//! `serve`'s admission (`src/serve.rs`): only a peer whose hello is read and checked takes a
//! session slot, a hello must arrive whole within `--timeout`, and connections without a slot
//! are capped (`--max-pending`). A peer that drips its hello, or connects and says nothing, does
//! not keep a real client from the only slot, and is cut at the timeout. And the load: four
//! clients at once on one server get the tokens of serial runs.

use crate::common;

use common::*;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, Output, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bundled trained model (byte-level, 128 positions), compiled once for these tests.
fn model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| trained("cli-admission-trained"))
}

/// `generate --json` with `--threads 1` and a timeout of `wait` seconds, started now. Not the
/// common `generate`: the load test's memory figures rely on one thread and one lane per client
/// (and a server of `--threads 1`), so every client here runs so.
fn generate(addr: &str, prompt: &str, new: usize, wait: f64) -> std::process::Child {
    exe()
        .args(["generate", "--plan"])
        .arg(model())
        .args([
            "--connect",
            addr,
            "--prompt",
            prompt,
            "--json",
            "--threads",
            "1",
        ])
        .args(["--max-new-tokens", &new.to_string()])
        .args(["--timeout", &wait.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The tokens of a successful `generate --json`.
fn tokens(out: &Output) -> Vec<usize> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_tokens(&serde_json::from_slice(&out.stdout).unwrap())
}

/// The server's log after it has exited by itself.
fn log_after_exit(mut server: Reap, err: BufReader<ChildStderr>) -> Vec<String> {
    let status = server.0.wait().unwrap();
    let log: Vec<String> = err.lines().map_while(Result::ok).collect();
    assert!(status.success(), "{log:?}");
    log
}

/// A raw connection to `addr` that sends `drip` one byte every `every` (nothing when `drip` is
/// empty) until the server closes it; returns how long the server kept it (`None`: it was still
/// open after `give_up`).
fn hold(
    addr: &str,
    drip: &'static [u8],
    every: Duration,
    give_up: Duration,
) -> JoinHandle<Option<Duration>> {
    let mut s = TcpStream::connect(addr).unwrap();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let mut bytes = drip.iter();
        let mut buf = [0u8; 64];
        while t0.elapsed() < give_up {
            if let Some(&b) = bytes.next() {
                if s.write_all(&[b]).is_err() {
                    return Some(t0.elapsed());
                }
            }
            // Wait for the next drip, or for the server to close the connection.
            s.set_read_timeout(Some(every)).unwrap();
            match s.read(&mut buf) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // The end of the stream, a reset, or the server's answer: it is done with us.
                _ => return Some(t0.elapsed()),
            }
        }
        None
    })
}

/// With `--max-clients 1`, a peer that drips its hello (a byte every 2 s, each within the
/// 5-s timeout) and a half-open one (connected, silent) arrive first; a real client after them
/// is served at once, with the simulator's tokens, and both are cut about the timeout after
/// they connected. Before per-message deadlines and verified-only slots, the dripper held the
/// only slot for as long as it dripped and the client failed ("the server may be busy").
#[test]
fn a_dripping_and_a_half_open_peer_never_hold_the_only_slot() {
    let dir = model();
    let wait = 5.0;
    let (server, addr, err) = serve(
        dir,
        &[
            "--sessions",
            "1",
            "--max-clients",
            "1",
            "--timeout",
            &wait.to_string(),
        ],
    );
    let limit = Duration::from_secs_f64(wait);
    let give_up = limit * 4;
    let dripper = hold(&addr, b"CGPT-2PC\x05\0\0\0\x38\0", limit * 2 / 5, give_up);
    let half_open = hold(&addr, b"", limit, give_up);
    std::thread::sleep(Duration::from_millis(200));

    let (prompt, new) = ("And God said", 2);
    let t0 = Instant::now();
    let out = generate(&addr, prompt, new, wait)
        .wait_with_output()
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(tokens(&out), simulated(dir, &bytes(prompt), new));

    for (name, peer) in [("dripper", dripper), ("half-open", half_open)] {
        let held = peer.join().unwrap();
        let held = held.unwrap_or_else(|| panic!("the {name} was never cut"));
        assert!(
            held >= limit - Duration::from_millis(100) && held < limit + Duration::from_secs(1),
            "the {name} was held {held:?}; the client took {took:?}"
        );
    }
    let log = log_after_exit(server, err);
    let cut: Vec<&String> = log
        .iter()
        .filter(|l| {
            l.starts_with("connection from ")
                && l.contains("refused: timed out after 5.0 s while reading the hello")
        })
        .collect();
    assert_eq!(cut.len(), 2, "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("session 1 ") && l.contains("programs")),
        "{log:?}"
    );
    assert_eq!(log.len(), 3, "{log:?}");
}

/// The load: four clients at once on one server (`--max-clients 4`), one lane each. Every one
/// gets the simulator's tokens, which are a serial run's (`generate.rs` checks serial runs
/// against the same oracle), and the four sessions overlapped: the wall time is less than the
/// sum of their times as the server logged them.
#[test]
fn four_clients_at_once_get_the_tokens_of_serial_runs() {
    let dir = model();
    let (server, addr, err) = serve(
        dir,
        &[
            "--sessions",
            "4",
            "--max-clients",
            "4",
            "--threads",
            "1",
            "--timeout",
            "60",
        ],
    );
    let prompts = [
        ("In the beginning", 3),
        ("And God said", 2),
        ("Let there be light", 3),
        ("And the earth was", 2),
    ];
    let t0 = Instant::now();
    let running: Vec<_> = prompts
        .iter()
        .map(|&(p, n)| generate(&addr, p, n, 60.0))
        .collect();
    for (c, &(prompt, new)) in running.into_iter().zip(&prompts) {
        let got = tokens(&c.wait_with_output().unwrap());
        assert_eq!(got, simulated(dir, &bytes(prompt), new), "{prompt}");
    }
    let wall = t0.elapsed().as_secs_f64();
    let log = log_after_exit(server, err);
    assert_eq!(log.len(), 4, "{log:?}");
    // Numbered in the order they passed the handshake, logged as they end.
    let mut numbers: Vec<usize> = log
        .iter()
        .filter_map(|l| l.strip_prefix("session ")?.split(' ').next()?.parse().ok())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4], "{log:?}");
    let mut sum = 0.0;
    for l in &log {
        assert!(l.contains("programs") && l.ends_with(", 1 lane"), "{log:?}");
        sum += l
            .split(", ")
            .find_map(|f| f.strip_suffix(" s")?.parse::<f64>().ok())
            .unwrap();
    }
    assert!(wall < sum, "{wall} s against {sum} s in all: {log:?}");
}

/// `--max-clients 0` and `--max-pending 0` are one-line refusals before anything is read;
/// the largest count is taken (the counts it is compared with saturate, never wrap).
#[test]
fn zero_slots_or_pending_places_are_refused_and_the_largest_count_is_taken() {
    for (flag, want) in [
        ("--max-clients", "--max-clients must be at least 1"),
        ("--max-pending", "--max-pending must be at least 1"),
    ] {
        let out = exe()
            .args([
                "serve",
                "--plan",
                "no-such-dir",
                "--listen",
                "127.0.0.1:0",
                flag,
                "0",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert_eq!(err.trim_end(), format!("error: {want}"), "{err}");
    }
    let dir = model();
    let (server, addr, err) = serve(
        dir,
        &["--sessions", "1", "--max-pending", &usize::MAX.to_string()],
    );
    let (prompt, new) = ("In the beginning", 1);
    let out = generate(&addr, prompt, new, 60.0)
        .wait_with_output()
        .unwrap();
    assert_eq!(tokens(&out), simulated(dir, &bytes(prompt), new));
    let log = log_after_exit(server, err);
    assert!(
        log.len() == 1 && log[0].starts_with("session 1 "),
        "{log:?}"
    );
}
