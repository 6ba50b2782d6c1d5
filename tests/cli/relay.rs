//! `relay` between two processes: bytes cross it intact both ways, a round trip through it takes
//! at least the link's RTT and a message at least its serialisation time each way (lower bounds:
//! checks of the emulation, not of speed); `serve` and `generate` run through it unchanged, the
//! tokens are the simulator's, the run waits at least a one-way delay per two rounds the client
//! counted, every lane is a relayed pair of its own and the relay carries the bytes the client
//! counted; a bad link or a server that is not there gives one line.

use crate::common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{ChildStderr, Stdio};
use std::time::{Duration, Instant};

/// Start `relay` to `to` over `link` with `extra` arguments; returns the process, its address
/// (from its "relaying ADDR -> …" line) and the rest of its log.
fn relay(to: &str, link: &str, extra: &[&str]) -> (Reap, String, BufReader<ChildStderr>) {
    let mut child = exe()
        .args(["relay", "--listen", "127.0.0.1:0", "--connect", to])
        .args(["--link", link, "--timeout", "30"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    assert!(err.read_line(&mut line).unwrap() > 0, "relay exited early");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "relaying", "{line}");
    assert_eq!(words[2..4], ["->", to], "{line}");
    (Reap(child), words[1].to_string(), err)
}

/// Wait at most 20 s for a process to exit by itself; its status must be success. Returns the
/// rest of its log.
fn exits(mut p: Reap, err: BufReader<ChildStderr>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the relay did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log: Vec<String> = err.lines().map_while(Result::ok).collect();
    assert!(status.success(), "{log:?}");
    log
}

/// A message of `n` bytes that differ from position to position and message to message.
fn message(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Echo length-prefixed messages whole (read all of one, then send it back) until the end.
fn echo(listener: TcpListener) {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    let mut len = [0u8; 4];
    while s.read_exact(&mut len).is_ok() {
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        s.write_all(&len).unwrap();
        s.write_all(&body).unwrap();
    }
}

#[test]
fn ping_pong_takes_a_round_trip_and_the_transfer_each_way_and_arrives_intact() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap().to_string();
    let echoer = std::thread::spawn(move || echo(listener));
    // 20 ms RTT, 80 Mbit/s: 10 ms per byte each way, 0.1 µs per byte.
    let (rtt, bw) = (0.020, 80e6);
    let (p, addr, err) = relay(&to, "rtt=20ms,bw=80mbit", &["--connections", "1"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    let sizes = [1usize, 100, 1500, 65_536, 65_537, 1 << 20, 7, 300_000];
    let mut bound = 0.0;
    let t0 = Instant::now();
    for (i, &n) in sizes.iter().enumerate() {
        let m = message(n, i as u64);
        s.write_all(&(n as u32).to_le_bytes()).unwrap();
        s.write_all(&m).unwrap();
        let mut back = vec![0u8; 4 + n];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back[..4], (n as u32).to_le_bytes(), "message {i}");
        assert!(
            back[4..] == m[..],
            "message {i} of {n} bytes came back altered"
        );
        // One way and back, the whole message serialised on each way (the echo waits for all
        // of it).
        bound += rtt + 2.0 * (4 + n) as f64 * 8.0 / bw;
    }
    let took = t0.elapsed().as_secs_f64();
    assert!(
        took >= bound,
        "{} round trips in {took:.3} s < {bound:.3} s",
        sizes.len()
    );
    drop(s);
    echoer.join().unwrap();
    let log = exits(p, err);
    let total: usize = sizes.iter().map(|n| n + 4).sum();
    let want = format!("{total} bytes to {to}, {total} back; closed");
    assert!(
        log.len() == 1 && log[0].starts_with("pair 1 from ") && log[0].ends_with(&want),
        "{log:?}"
    );
}

/// The bytes a pair's log line says went each way: `… N bytes to ADDR, M back; closed`.
fn relayed(line: &str) -> (u64, u64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = |w: &str| words.iter().position(|x| *x == w).unwrap();
    let num = |i: usize| words[i].trim_end_matches(',').parse::<u64>().unwrap();
    (num(at("bytes") - 1), num(at("back;") - 1))
}

#[test]
fn generation_through_the_relay_gives_the_simulators_tokens_and_waits_for_its_flights() {
    let dir = trained("cli-relay-trained");
    let (_server, server_addr, _log) = serve(&dir, &["--sessions", "1", "--threads", "2"]);
    // Two lanes: two connections, each relayed apart.
    let (p, addr, err) = relay(&server_addr, "rtt=2ms", &["--connections", "2"]);
    let (prompt, new) = ("And God", 2);
    let t0 = Instant::now();
    let out = generate(&dir, &addr, prompt, new, 60.0)
        .args(["--json", "--threads", "2"])
        .output()
        .unwrap();
    let wall = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json_tokens(&doc), simulated(&dir, &bytes(prompt), new));
    let report = &doc["report"];
    assert_eq!(report["lanes"], 2);
    // The client's counters (setup, preparation, prefill, decode step) against the relay's.
    let (mut rounds, mut sent, mut received) = (0, 0, 0);
    let parts = report["programs"].as_array().unwrap().iter();
    let parts = parts.chain(report["preprocess"].as_array().unwrap());
    for line in parts.map(|p| &p["total"]).chain([&report["setup"]]) {
        let n = |k: &str| line[k].as_u64().unwrap();
        (rounds, sent, received) = (
            rounds + n("rounds"),
            sent + n("bytes_sent"),
            received + n("bytes_received"),
        );
    }
    // A round is a change of direction of the client's; two of them (a send, then a receive)
    // take at least one one-way delay even when the server's message crossed the client's
    // (both send, then both receive). Counted rounds are not all sequential flights: a decode
    // step of this model counts 6,810 rounds and takes 0.85 ms per round at 2 ms RTT.
    let bound = rounds as f64 / 2.0 * 0.001;
    assert!(
        wall >= bound,
        "{rounds} rounds in {wall:.3} s < {bound:.3} s"
    );
    let log = exits(p, err);
    assert_eq!(log.len(), 2, "{log:?}");
    let (mut up, mut down) = (0, 0);
    for pair in &log {
        assert!(pair.ends_with("back; closed"), "{log:?}");
        let (u, d) = relayed(pair);
        (up, down) = (up + u, down + d);
    }
    // The relay carried what the client counted, and only the handshakes and the go-on bytes
    // besides.
    assert!(
        (sent..sent + 1024).contains(&up),
        "{sent} sent, {up} relayed"
    );
    assert!(
        (received..received + 1024).contains(&down),
        "{received} received, {down} relayed"
    );
    eprintln!("{rounds} rounds, {wall:.3} s; relay: {log:?}");
}

#[test]
fn a_bad_link_or_an_absent_server_gives_one_line() {
    let out = exe()
        .args(["relay", "--connect", "127.0.0.1:9", "--link", "rtt=10"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: relay: link \"rtt=10\": rtt \"10\" needs a unit"),
        "{err}"
    );

    // Nobody listens there: the pair fails in one log line, the client sees its connection end.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = dead.local_addr().unwrap().to_string();
    drop(dead);
    let (p, addr, err) = relay(&to, "lan", &["--connections", "1"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 1];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    let log = exits(p, err);
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with("pair 1 from ")
            && log[0].contains(&format!("failed: connecting to {to} within 30.0 s")),
        "{log:?}"
    );
}
