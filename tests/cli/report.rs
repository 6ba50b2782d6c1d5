//! The session report (`generate --report FILE` and the table `generate` prints), from one
//! session of the trained model:
//! - every cost line's `estimate` is the link time of its own bytes and rounds on the design's
//!   reference links, recomputed here from the figures of the design (lan: 1 ms RTT, 1 Gbit/s;
//!   wan: 40 ms RTT, 400 Mbit/s), not from the code's constants; the table's `LAN s` and
//!   `WAN s` columns and its decode-step line state the same figures;
//! - the cost model (`inspect --format json`) estimates the measured bytes and flights of the
//!   prefill and of each decode step within 10% per op class.

use crate::common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The prompt of the session (7 byte tokens) and its new tokens.
const PROMPT: &str = "And God";
const NEW_TOKENS: u64 = 3;

/// The session's plan folder, its JSON report and the client's stderr (the table).
struct Session {
    dir: PathBuf,
    doc: Value,
    stderr: String,
}

/// One session shared by the tests of this file.
fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let dir = trained("cli-report-trained");
        let (server, addr, log) = serve(&dir, &["--sessions", "1", "--timeout", "60"]);
        let file = dir.join("report.json");
        let out = exe()
            .args(["generate", "--plan"])
            .arg(&dir)
            .args(["--connect", &addr, "--prompt", PROMPT, "--timeout", "60"])
            .args(["--max-new-tokens", &NEW_TOKENS.to_string()])
            .args(["--preprocess-tokens", "1"])
            .arg("--report")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        drop((server, log));
        let doc = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        Session { dir, doc, stderr }
    })
}

/// rounds · RTT/2 + bytes · 8 / bandwidth, on lan and wan.
fn oracle(bytes: f64, rounds: f64) -> (f64, f64) {
    (
        rounds * 0.000_5 + bytes * 8.0 / 1e9,
        rounds * 0.020 + bytes * 8.0 / 4e8,
    )
}

fn u(v: &Value) -> f64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")) as f64
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A cost line's bytes (sent + received) and rounds.
fn counts(line: &Value) -> (f64, f64) {
    (
        u(&line["bytes_sent"]) + u(&line["bytes_received"]),
        u(&line["rounds"]),
    )
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

/// The JSON's estimate of one cost line equals the oracle of its bytes and rounds.
fn check_line(line: &Value, what: &str) {
    let (bytes, rounds) = counts(line);
    let (lan, wan) = oracle(bytes, rounds);
    close(f(&line["estimate"]["lan_s"]), lan, &format!("{what} lan"));
    close(f(&line["estimate"]["wan_s"]), wan, &format!("{what} wan"));
}

/// The rows of the table's block titled by a line starting with `title`: (name, LAN s, WAN s).
fn table_block(table: &[&str], title: &str) -> Vec<(String, f64, f64)> {
    let at = table
        .iter()
        .position(|l| l.starts_with(title))
        .unwrap_or_else(|| panic!("no block {title:?} in {table:#?}"));
    assert!(table[at + 1].starts_with("op class"), "{}", table[at + 1]);
    assert!(
        table[at + 1].ends_with("LAN s     WAN s"),
        "{}",
        table[at + 1]
    );
    let mut rows = Vec::new();
    for l in &table[at + 2..] {
        // The name fills the first 11 columns (it may hold a space: `OT refill`).
        let name = l.get(..11).unwrap_or(l).trim();
        let cells: Vec<&str> = l.split_whitespace().collect();
        rows.push((
            name.to_string(),
            cells[cells.len() - 2].parse().unwrap(),
            cells[cells.len() - 1].parse().unwrap(),
        ));
        if name == "total" {
            return rows;
        }
    }
    panic!("block {title:?} has no total row");
}

/// The table's row `name` states the oracle of `bytes` and `rounds`, to its 3 decimals.
fn check_row(rows: &[(String, f64, f64)], name: &str, bytes: f64, rounds: f64, what: &str) {
    let (lan, wan) = oracle(bytes, rounds);
    let Some((_, tl, tw)) = rows.iter().find(|r| r.0 == name) else {
        // A class with no traffic may be left out (Local).
        assert_eq!((bytes, rounds), (0.0, 0.0), "{what}: no row {name}");
        return;
    };
    assert!(
        (tl - lan).abs() <= 6e-4,
        "{what} {name} LAN s: {tl} vs {lan}"
    );
    assert!(
        (tw - wan).abs() <= 6e-4,
        "{what} {name} WAN s: {tw} vs {wan}"
    );
}

/// The mean over `progs` of each class's (bytes, rounds), then the total's, by name.
fn mean_rows(progs: &[&Value]) -> Vec<(String, f64, f64)> {
    let k = progs.len() as f64;
    let lines = |p: &Value| -> Vec<Value> {
        let mut v = p["classes"].as_array().unwrap().clone();
        v.push(p["total"].clone());
        v
    };
    let names: Vec<String> = lines(progs[0])
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (b, r) = progs.iter().fold((0.0, 0.0), |(b, r), p| {
                let (pb, pr) = counts(&lines(p)[i]);
                (b + pb, r + pr)
            });
            (n.clone(), b / k, r / k)
        })
        .collect()
}

#[test]
fn each_report_line_states_its_link_time_on_lan_and_wan() {
    let Session { doc, stderr, .. } = session();

    // The JSON: every line, per class, in total, per instruction, the setup and the batches.
    let report = &doc["report"];
    check_line(&report["setup"], "setup");
    let programs = report["programs"].as_array().unwrap();
    let preprocess = report["preprocess"].as_array().unwrap();
    assert_eq!((programs.len(), preprocess.len()), (3, 2));
    for p in programs.iter().chain(preprocess) {
        let name = p["program"].as_str().unwrap();
        let lines = p["classes"].as_array().unwrap().iter();
        let lines = lines.chain(p["instructions"].as_array().unwrap());
        for l in lines.chain([&p["total"]]) {
            check_line(l, &format!("{name} {}", l["name"]));
        }
        assert!(f(&p["total"]["estimate"]["wan_s"]) > f(&p["total"]["estimate"]["lan_s"]));
    }
    let decode: Vec<&Value> = programs[1..].iter().collect();
    let spread = &report["decode_steps"];
    let means = mean_rows(&decode);
    let (_, db, dr) = means.last().unwrap();
    let (lan, wan) = oracle(*db, *dr);
    close(f(&spread["lan_s"]["mean"]), lan, "decode_steps lan_s");
    close(f(&spread["wan_s"]["mean"]), wan, "decode_steps wan_s");
    // Without the OT refills: each step's total less its "OT refill" class line.
    let bytes = |l: &Value| f(&l["bytes_sent"]) + f(&l["bytes_received"]);
    let own: Vec<f64> = decode
        .iter()
        .map(|p| {
            let refill = p["classes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "OT refill")
                .map_or(0.0, bytes);
            bytes(&p["total"]) - refill
        })
        .collect();
    let (lo, hi) = own
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    assert_eq!(f(&spread["bytes_without_refills"]["min"]), lo);
    assert_eq!(f(&spread["bytes_without_refills"]["max"]), hi);
    assert!(hi <= f(&spread["bytes"]["max"]));
    assert!(
        stderr.contains("; without OT refills "),
        "the table's decode-steps line: {stderr}"
    );

    // The table: the preparation (the batches summed), the prefill, the mean decode step.
    let table: Vec<&str> = stderr
        .split(['\n', '\r'])
        .map(|l| l.trim_start_matches("\x1b[K"))
        .collect();
    let pre = mean_rows(&preprocess.iter().collect::<Vec<_>>());
    let blocks = [
        ("preprocessing", pre, preprocess.len() as f64),
        ("prefill", mean_rows(&[&programs[0]]), 1.0),
        ("decode (online)", means, 1.0),
    ];
    for (title, want, scale) in blocks {
        let rows = table_block(&table, title);
        for (name, b, r) in &want {
            check_row(&rows, name, b * scale, r * scale, title);
        }
    }
    // "decode step on lan: about X s (measured compute Y s + link Z s); on wan: …".
    let secs = decode
        .iter()
        .map(|p| f(&p["total"]["seconds"]))
        .sum::<f64>()
        / 2.0;
    let line = table
        .iter()
        .find(|l| l.starts_with("decode step on lan: about "))
        .unwrap_or_else(|| panic!("no decode-step line: {stderr}"));
    let numbers: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse().ok())
        .collect();
    let want = [secs + lan, secs, lan, secs + wan, secs, wan];
    assert_eq!(numbers.len(), want.len(), "{line}");
    for (got, want) in numbers.iter().zip(want) {
        assert!((got - want).abs() <= 6e-4, "{line}: {got} vs {want}");
    }
}

/// The cost model's estimate (`inspect --format json`) of the prompt's prefill and of the
/// decode step at `position`, each a map from op class to (bytes, rounds).
fn estimate(dir: &std::path::Path, position: u64) -> [Vec<(String, f64, f64)>; 2] {
    let out = exe()
        .args([
            "inspect",
            "--format",
            "json",
            "--tokens",
            &position.to_string(),
        ])
        .args(["--new-tokens", &NEW_TOKENS.to_string()])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    ["prefill", "decode"].map(|p| {
        doc["summary"][p]["classes"]
            .as_array()
            .unwrap_or_else(|| panic!("no {p} classes: {doc}"))
            .iter()
            .map(|c| {
                (
                    c["class"].as_str().unwrap().to_string(),
                    u(&c["server_bytes"]) + u(&c["client_bytes"]),
                    u(&c["rounds"]),
                )
            })
            .collect()
    })
}

/// Every op class of a measured program is within 10% of the estimate, in bytes and in
/// flights (the silent-OT refills are apart and not estimated).
fn within_ten_percent(measured: &Value, estimated: &[(String, f64, f64)], what: &str) {
    let mut checked = 0;
    for line in measured["classes"].as_array().unwrap() {
        let name = line["name"].as_str().unwrap();
        let (bytes, rounds) = counts(line);
        if name == "OT refill" || (bytes, rounds) == (0.0, 0.0) {
            continue;
        }
        let Some((_, eb, er)) = estimated.iter().find(|e| e.0 == name) else {
            panic!("{what}: no estimate for {name}: {estimated:?}");
        };
        for (kind, got, want) in [("bytes", *eb, bytes), ("flights", *er, rounds)] {
            assert!(
                (got - want).abs() <= 0.1 * want,
                "{what} {name}: estimated {got} {kind}, measured {want}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 6, "{what}: only {checked} classes measured");
}

#[test]
fn the_cost_model_estimates_each_class_within_ten_percent() {
    let Session { dir, doc, .. } = session();
    let programs = doc["report"]["programs"].as_array().unwrap();
    let prompt = PROMPT.len() as u64;
    assert_eq!(u(&programs[0]["positions"]), prompt as f64);
    let [prefill, _] = estimate(dir, prompt);
    within_ten_percent(&programs[0], &prefill, "prefill");
    for step in &programs[1..] {
        let position = u(&step["positions"]) as u64 - 1;
        let [_, decode] = estimate(dir, position);
        within_ten_percent(step, &decode, &format!("decode at {position}"));
    }
}
