//! `serve` and `generate` as two processes on loopback: the secure greedy tokens equal the plan's
//! cleartext semantics (the simulator) token for token, for a byte-level and a GPT-2 plan; the
//! server serves several clients at once (`--max-clients`) and survives a client that vanishes,
//! stalls mid-generation or brings the wrong plan, and serves the next one; a client whose server
//! is down or stalls, a bad prompt and a plan/weights mismatch each fail with one line and a
//! non-zero exit.

use crate::common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Output};
use std::sync::OnceLock;
use std::time::Instant;

/// The bundled trained model (byte-level, 128 positions), compiled once for all tests.
fn trained() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-generate-trained");
        compile("models/tiny-trained.torchscript.onnx", &dir, &[]);
        dir
    })
}

/// The tiny model with GPT-2's vocabulary (50,257 tokens, 64 positions), compiled once.
fn gpt2vocab() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-generate-gpt2vocab");
        // Calibration alone would give 32 bits; the compiler widens the ring to the 34 bits the
        // GELU protocol's spline needs (`compile::protocol_min_ring`).
        compile("models/tiny-gpt2vocab.torchscript.onnx", &dir, &[]);
        dir
    })
}

/// The server's log lines after "serving", once it has exited by itself.
fn log_after_exit(mut server: Reap, err: BufReader<ChildStderr>) -> Vec<String> {
    let status = server.0.wait().unwrap();
    let log: Vec<String> = err.lines().map_while(Result::ok).collect();
    assert!(status.success(), "{log:?}");
    log
}

/// A `generate` process; `--json` prints the tokens, otherwise the text streams and the
/// progress goes to stderr (piped).
fn client(dir: &Path, addr: &str, prompt: &str, new: usize, timeout: f64, json: bool) -> Child {
    let mut c = common::generate(dir, addr, prompt, new, timeout);
    if json {
        c.arg("--json");
    }
    c.spawn().unwrap()
}

fn generate(dir: &Path, addr: &str, prompt: &str, new: usize) -> Output {
    client(dir, addr, prompt, new, 60.0, true)
        .wait_with_output()
        .unwrap()
}

/// Read a client's stderr until its prefill has begun (its progress shows); returns the pipe
/// and what was read.
fn wait_for_prefill(child: &mut Child) -> (ChildStderr, Vec<u8>) {
    let mut err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("[prefill ") {
        let n = err.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    (err, seen)
}

/// Stop a process where it is (SIGSTOP): its peer sees a stall, not a disconnection.
fn stop(child: &Child) {
    // SAFETY: kill(2) on a child of this process that has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) }, 0);
}

/// The tokens and text of a successful `generate --json`.
fn tokens_of(out: &Output) -> (Vec<usize>, serde_json::Value) {
    let doc = json_doc(out, "generate");
    (json_tokens(&doc), doc)
}

/// A failed run: non-zero exit, and stderr is one `error:` line containing `needle` (after the
/// progress marks of a client that got as far as its prefill); returns that line.
fn one_line_error(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let lines: Vec<&str> = err
        .trim_end()
        .split(['\n', '\r'])
        .map(|l| l.trim_start_matches("\x1b[K"))
        .filter(|l| !l.is_empty())
        .collect();
    let (last, before) = lines.split_last().expect("no error output");
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "{err}"
    );
    assert!(before.iter().all(|l| l.starts_with("[prefill")), "{err}");
    last.to_string()
}

/// A port nobody listens on: bind, read the port, drop the listener.
fn dead_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

#[test]
fn secure_generation_equals_the_simulator_and_the_server_survives_a_vanished_client() {
    let dir = trained();
    let (server, addr, err) = serve(dir, &["--sessions", "2", "--timeout", "60"]);

    // A client that vanishes mid-session: killed once its prefill has begun.
    let mut quitter = client(dir, &addr, "Let there be light", 4, 60.0, false);
    let _ = wait_for_prefill(&mut quitter);
    quitter.kill().unwrap();
    quitter.wait().unwrap();

    // The next client is served, and its tokens are the simulator's.
    let (prompt, new) = ("And God said", 4);
    let (tokens, doc) = tokens_of(&generate(dir, &addr, prompt, new));
    assert_eq!(tokens, simulated(dir, &bytes(prompt), new));
    let text: String = tokens.iter().map(|&t| t as u8 as char).collect();
    assert_eq!(doc["text"], text);
    // The report: a prefill and new − 1 decode steps, each with bytes in the MatMul class.
    let programs = doc["report"]["programs"].as_array().unwrap();
    assert_eq!(programs.len(), new);
    assert_eq!(programs[0]["program"], "prefill");
    assert_eq!(programs[0]["tokens"], prompt.len());
    for p in programs {
        let matmul = &p["classes"][0];
        assert_eq!(matmul["name"], "MatMul");
        assert!(matmul["bytes_received"].as_u64().unwrap() > 0);
    }

    let log = log_after_exit(server, err);
    assert!(
        log.iter()
            .any(|l| l.contains("session 1") && l.contains("failed") && l.contains("disconnected")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("session 2") && l.contains("programs")),
        "{log:?}"
    );
}

#[test]
fn concurrent_clients_get_the_simulators_tokens_while_a_stalled_one_holds_a_slot() {
    let dir = trained();
    let (server, addr, err) = serve(
        dir,
        &["--sessions", "3", "--max-clients", "3", "--timeout", "60"],
    );
    // One client stops mid-prefill and holds its session open …
    let mut stalled = client(dir, &addr, "Let there be light", 4, 60.0, false);
    let _pipe = wait_for_prefill(&mut stalled);
    stop(&stalled);
    let stalled = Reap(stalled);
    // … while two others run at once; one after another they would wait for it.
    let prompts = [("In the beginning", 4), ("And the earth was", 3)];
    let t0 = Instant::now();
    let running: Vec<Child> = prompts
        .iter()
        .map(|&(p, n)| client(dir, &addr, p, n, 60.0, true))
        .collect();
    for (c, &(prompt, new)) in running.into_iter().zip(&prompts) {
        let (tokens, _) = tokens_of(&c.wait_with_output().unwrap());
        assert_eq!(tokens, simulated(dir, &bytes(prompt), new), "{prompt}");
    }
    let both = t0.elapsed();
    drop(stalled);

    let log = log_after_exit(server, err);
    assert_eq!(log.len(), 3, "{log:?}");
    let ok: Vec<&String> = log.iter().filter(|l| l.contains("programs")).collect();
    assert_eq!(ok.len(), 2, "{log:?}");
    // The stalled client started first, so it is session 1; it failed when it was killed.
    assert!(
        log.iter()
            .any(|l| l.starts_with("session 1 ") && l.contains("failed")),
        "{log:?}"
    );
    // They overlapped: both took less time than their sessions took in all (as the server
    // logged them).
    let sum: f64 = ok
        .iter()
        .map(|l| {
            l.split(", ")
                .find_map(|f| f.strip_suffix(" s")?.parse::<f64>().ok())
                .unwrap()
        })
        .sum();
    assert!(
        both.as_secs_f64() < sum,
        "{} s, {log:?}",
        both.as_secs_f64()
    );
}

#[test]
fn a_client_that_stalls_times_out_and_the_server_serves_the_next() {
    let dir = trained();
    let wait = 5.0;
    let (server, addr, err) = serve(dir, &["--sessions", "2", "--timeout", &wait.to_string()]);
    // A peer that connects and says nothing holds no slot (only a verified hello takes one):
    // a client with another plan is refused at the handshake at once, not after the silent
    // peer's timeout; the silent peer is cut at the timeout. Neither is a session.
    let other = gpt2vocab();
    let silent = std::net::TcpStream::connect(&addr).unwrap();
    let t0 = Instant::now();
    let wrong = client(other, &addr, "Hello", 2, 60.0, true)
        .wait_with_output()
        .unwrap();
    one_line_error(&wrong, "plan hash differs");
    assert!(
        t0.elapsed().as_secs_f64() < wait - 1.0,
        "{:?}",
        t0.elapsed()
    );

    // A client that stops mid-prefill; the next one waits for the only slot.
    let mut stalled = client(dir, &addr, "Let there be light", 4, 60.0, false);
    let _pipe = wait_for_prefill(&mut stalled);
    stop(&stalled);
    let stalled = Reap(stalled);
    let t0 = Instant::now();
    let (prompt, new) = ("And God said", 2);
    let (tokens, _) = tokens_of(&generate(dir, &addr, prompt, new));
    assert_eq!(tokens, simulated(dir, &bytes(prompt), new));
    assert!(t0.elapsed().as_secs_f64() >= wait - 0.5);
    drop(stalled);
    drop(silent);

    let log = log_after_exit(server, err);
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log[0].starts_with("connection from ") && log[0].contains("plan hash differs"),
        "{log:?}"
    );
    assert!(
        log[1].starts_with("connection from ")
            && log[1].contains("timed out after 5.0 s while reading the hello"),
        "{log:?}"
    );
    assert!(
        log[2].starts_with("session 1 ")
            && log[2].contains("failed")
            && log[2].contains("timed out after 5.0 s"),
        "{log:?}"
    );
    assert!(
        log[3].starts_with("session 2 ") && log[3].contains("programs"),
        "{log:?}"
    );
}

#[test]
fn a_server_that_stalls_is_one_line_and_a_non_zero_exit_within_the_timeout() {
    let dir = trained();
    let (server, addr, _err) = serve(dir, &["--sessions", "1", "--timeout", "60"]);
    let wait = 3.0;
    let mut c = client(dir, &addr, "Let there be light", 4, wait, false);
    let (pipe, seen) = wait_for_prefill(&mut c);
    stop(&server.0);
    let t0 = Instant::now();
    c.stderr = Some(pipe);
    let mut out = c.wait_with_output().unwrap();
    let took = t0.elapsed().as_secs_f64();
    out.stderr.splice(0..0, seen);
    let line = one_line_error(&out, "timed out after 3.0 s");
    // The executor names the instruction; the cause is not repeated.
    assert!(line.contains("plan instruction '"), "{line}");
    assert_eq!(line.matches("timed out").count(), 1, "{line}");
    assert!(took < wait + 2.0, "{took} s");
}

#[test]
fn a_server_that_is_down_is_one_line_and_a_non_zero_exit() {
    let out = exe()
        .args(["generate", "--plan"])
        .arg(trained())
        .args(["--connect", &dead_port(), "--prompt", "x", "--timeout", "2"])
        .output()
        .unwrap();
    one_line_error(&out, "could not connect");
}

#[test]
fn bad_prompts_and_a_plan_weights_mismatch_are_one_line_errors() {
    let dir = trained();
    // Refused before connecting: the address is dead, and the error is not about it.
    let addr = dead_port();
    let run = |args: &[&str]| {
        exe()
            .args(["generate", "--plan"])
            .arg(dir)
            .args(["--connect", &addr, "--timeout", "2"])
            .args(args)
            .output()
            .unwrap()
    };
    one_line_error(&run(&["--prompt", ""]), "the prompt is empty");
    let long = "x".repeat(129);
    one_line_error(&run(&["--prompt", &long]), "the prompt is too long");
    // 120 tokens fit the 128 positions, but not with 16 new ones.
    let long = "x".repeat(120);
    one_line_error(
        &run(&["--prompt", &long, "--max-new-tokens", "16"]),
        "need 135 positions, the model has 128",
    );
    one_line_error(
        &run(&["--tokens", "72,300"]),
        "outside the model's vocabulary",
    );
    one_line_error(
        &run(&["--prompt", "x", "--max-new-tokens", "0"]),
        "--max-new-tokens must be at least 1",
    );
    // The largest count: prompt + new − 1 would wrap; refused before connecting.
    one_line_error(
        &run(&["--prompt", "xy", "--max-new-tokens", "18446744073709551615"]),
        "2 prompt tokens and 18446744073709551615 new ones need at least 2^64 positions",
    );
    one_line_error(
        &run(&["--prompt", "x", "--max-new-tokens", "4294967296"]),
        "need 4294967296 positions, the model has 128",
    );

    // Weights of another plan: the server refuses to start.
    let out = exe()
        .args(["serve", "--plan"])
        .arg(dir)
        .arg("--weights")
        .arg(gpt2vocab().join("weights.cgw"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    one_line_error(&out, "these weights belong to plan");
}

#[test]
fn a_gpt2_plan_takes_text_and_streams_text() {
    let dir = gpt2vocab();
    let (server, addr, err) = serve(dir, &["--sessions", "2", "--timeout", "60"]);
    let prompt = "Hello world, naïve 😀";
    let ids = [15496, 995, 11, 41492, 30325, 222];
    let new = 3;
    let want = simulated(dir, &ids, new);
    // JSON: the tokens are the simulator's on GPT-2's ids of the prompt.
    let (tokens, doc) = tokens_of(&generate(dir, &addr, prompt, new));
    assert_eq!(tokens, want);
    let text = doc["text"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    // Streamed: stdout is exactly that text and a newline.
    let out = client(dir, &addr, prompt, new, 60.0, false)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{text}\n"));
    let log = log_after_exit(server, err);
    assert_eq!(log.len(), 2, "{log:?}");
}

/// A client that gives up while it waits for the only slot (its own timeout) and closes the
/// connection is dropped when the slot frees, without a session number; the next client is
/// session 2.
#[test]
fn a_client_that_leaves_the_queue_is_not_a_session() {
    let dir = trained();
    let (server, addr, err) = serve(
        dir,
        &["--sessions", "2", "--max-clients", "1", "--timeout", "60"],
    );
    let mut stalled = client(dir, &addr, "Let there be light", 4, 60.0, false);
    let _pipe = wait_for_prefill(&mut stalled);
    stop(&stalled);
    let stalled = Reap(stalled);
    let left = client(dir, &addr, "And God said", 2, 2.0, true)
        .wait_with_output()
        .unwrap();
    assert!(!left.status.success());
    drop(stalled);
    let (prompt, new) = ("In the beginning", 2);
    let (tokens, _) = tokens_of(&generate(dir, &addr, prompt, new));
    assert_eq!(tokens, simulated(dir, &bytes(prompt), new));

    let log = log_after_exit(server, err);
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[0].starts_with("session 1 ") && log[0].contains("failed"),
        "{log:?}"
    );
    assert!(
        log[1].starts_with("connection from ") && log[1].contains("left while it waited"),
        "{log:?}"
    );
    assert!(
        log[2].starts_with("session 2 ") && log[2].contains("programs"),
        "{log:?}"
    );
}
