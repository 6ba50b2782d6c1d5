//! OT between two `ciphergpt` processes over TCP loopback: correctness (`bench ot --verify`), the
//! shared bench JSON shape, and what happens when one party is killed, stalls, or loads another
//! plan: the other exits with a clear error within its timeout, never hangs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ciphergpt");

/// A `bench ot --role server` process, its address, and a thread collecting its stderr.
struct Server {
    child: Child,
    addr: String,
    stderr: JoinHandle<String>,
}

fn start_server(extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["bench", "ot", "--role", "server", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start server");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        for line in err.lines().map_while(Result::ok) {
            s += &line;
            s += "\n";
        }
        s
    });
    Server {
        child,
        addr,
        stderr,
    }
}

fn start_client(addr: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["bench", "ot", "--role", "client", "--connect", addr])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start client")
}

/// Wait for a child at most `limit`; kill it and fail if it is still running then.
fn wait_within(child: &mut Child, limit: Duration, who: &str) -> (ExitStatus, Duration) {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st, t.elapsed());
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{who} still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(e) = child.stderr.take() {
        for line in BufReader::new(e).lines().map_while(Result::ok) {
            s += &line;
            s += "\n";
        }
    }
    s
}

#[test]
fn bench_ot_verifies_between_two_processes_and_prints_json() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "ot",
            "--n",
            "30000",
            "--verify",
            "--json",
            "--timeout",
            "30",
        ])
        .output()
        .expect("run bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    let results = v["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "base-ot",
        "cot",
        "cot-reverse",
        "rot",
        "ot-1of16-l2",
        "bit-triples",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for r in results {
        for key in [
            "count",
            "seconds",
            "bytes_sent",
            "bytes_received",
            "rounds",
            "bytes_per_op",
            "ops_per_second",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    let cot = results.iter().find(|r| r["name"] == "cot").unwrap();
    let bpo = cot["bytes_per_op"].as_f64().unwrap();
    assert!((16.0..16.2).contains(&bpo), "COT costs {bpo} bytes");
    // The table goes to stderr when the JSON takes stdout.
    assert!(String::from_utf8_lossy(&out.stderr).contains("ops/s"));
}

#[test]
fn killing_the_client_mid_protocol_stops_the_server_with_a_clear_error() {
    let mut s = start_server(&["--n", "2000000000", "--timeout", "2"]);
    let mut c = start_client(&s.addr, &["--n", "2000000000", "--timeout", "2"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(c.try_wait().unwrap().is_none(), "client ended early");
    c.kill().unwrap();
    c.wait().unwrap();
    let (st, took) = wait_within(&mut s.child, Duration::from_secs(10), "server");
    let err = s.stderr.join().unwrap();
    assert!(!st.success());
    assert!(took < Duration::from_secs(5), "server took {took:?}");
    assert!(
        err.contains("the peer disconnected") || err.contains("timed out after 2.0 s"),
        "unclear error: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn killing_the_server_mid_protocol_stops_the_client_with_a_clear_error() {
    let mut s = start_server(&["--n", "2000000000", "--timeout", "2"]);
    let mut c = start_client(&s.addr, &["--n", "2000000000", "--timeout", "2"]);
    std::thread::sleep(Duration::from_millis(1500));
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let (st, took) = wait_within(&mut c, Duration::from_secs(10), "client");
    let err = stderr_of(&mut c);
    assert!(!st.success());
    assert!(took < Duration::from_secs(5), "client took {took:?}");
    assert!(
        err.contains("the peer disconnected") || err.contains("timed out after 2.0 s"),
        "unclear error: {err}"
    );
}

#[test]
fn a_stalled_client_makes_the_server_time_out() {
    let mut s = start_server(&["--n", "2000000000", "--timeout", "2"]);
    let mut c = start_client(&s.addr, &["--n", "2000000000", "--timeout", "2"]);
    std::thread::sleep(Duration::from_millis(1500));
    let stop = Command::new("kill")
        .args(["-STOP", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let (st, took) = wait_within(&mut s.child, Duration::from_secs(15), "server");
    c.kill().unwrap();
    c.wait().unwrap();
    let err = s.stderr.join().unwrap();
    assert!(!st.success());
    assert!(took < Duration::from_secs(8), "server took {took:?}");
    assert!(
        err.contains("timed out after 2.0 s"),
        "unclear error: {err}"
    );
}

#[test]
fn different_plans_are_refused_by_both_parties() {
    let a = "aa".repeat(32);
    let b = "bb".repeat(32);
    let mut s = start_server(&["--plan-hash", &a, "--timeout", "5"]);
    let mut c = start_client(&s.addr, &["--plan-hash", &b, "--timeout", "5"]);
    let (cs, _) = wait_within(&mut c, Duration::from_secs(10), "client");
    let (ss, _) = wait_within(&mut s.child, Duration::from_secs(10), "server");
    assert!(!cs.success() && !ss.success());
    let cerr = stderr_of(&mut c);
    let serr = s.stderr.join().unwrap();
    for e in [cerr, serr] {
        assert!(e.contains("plan hash differs"), "{e}");
        assert!(e.contains("same plan file"), "{e}");
    }
}
