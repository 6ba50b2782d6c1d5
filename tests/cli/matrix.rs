//! The end-to-end matrix: `serve` and `generate` as processes on loopback, over the transports
//! (plain TCP, mutual TLS with the certificates of `tests/tls`), the OT extensions (`--ot
//! silent`, `--ot iknp`), the lanes (`--threads 1` and `2` against a `--threads 3` server, which
//! grants the smaller) and the prepared products (`--preprocess-tokens 2`, batches of two decode
//! steps, or `0`, every product online). Every cell's greedy tokens are the simulator's (the
//! independent oracle), and the cells that must agree do: TLS carries the same payload bytes as
//! TCP, and the prepared decode steps' weight products send far fewer bytes than the online
//! ones.
//!
//! The in-memory transport is not the command's: the executor's runs over it are checked,
//! register by register and instruction by instruction, in `runtime/tests/exec`.

use crate::common;
use crate::tls::{serve_tls, tls_args};

use common::*;
use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::process::Child;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Tls,
}

/// One cell of the matrix: a client's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cell {
    transport: Transport,
    ot: &'static str,
    lanes: usize,
    prepared: bool,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let t = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        let p = if self.prepared { "prepared" } else { "online" };
        write!(f, "[{t}, {}, {} lanes, {p}]", self.ot, self.lanes)
    }
}

const fn cell(transport: Transport, ot: &'static str, lanes: usize, prepared: bool) -> Cell {
    Cell {
        transport,
        ot,
        lanes,
        prepared,
    }
}

/// The cells that run: every pair of two factors' levels appears in at least one of them
/// (pairwise, 6 sessions instead of the full product's 16, which would take more CPU time than
/// the tests the matrix replaced), and the cells compared with each other differ in one factor
/// only: the first two in the transport (the same bytes), the first and the third in the
/// prepared products (fewer bytes).
const CELLS: [Cell; 6] = {
    use Transport::*;
    [
        cell(Tcp, "silent", 2, true),
        cell(Tls, "silent", 2, true),
        cell(Tcp, "silent", 2, false),
        cell(Tcp, "iknp", 1, true),
        cell(Tls, "iknp", 2, false),
        cell(Tls, "silent", 1, false),
    ]
};

/// Long enough that the prefill's LayerNorm, Softmax, GELU and truncations split over 2 lanes.
const PROMPT: &str = "And God said, Let there ";
/// New tokens: a prefill and 3 decode steps, so that batches of 2 decode steps run out once.
const NEW: usize = 4;
/// The decode steps per preparation batch of a prepared cell.
const BATCH: usize = 2;

/// The client's TLS flags (mutual: it presents the test client certificate).
const CLIENT_TLS: [&str; 6] = [
    "--tls-ca",
    "ca.pem",
    "--tls-cert",
    "client.pem",
    "--tls-key",
    "client.key",
];

/// A `generate --json` process for the cell.
fn client(dir: &Path, addr: &str, c: &Cell) -> Child {
    let batch = if c.prepared { BATCH } else { 0 };
    let mut cmd = generate(dir, addr, PROMPT, NEW, 60.0);
    cmd.args(["--json", "--threads", &c.lanes.to_string(), "--ot", c.ot])
        .args(["--preprocess-tokens", &batch.to_string()]);
    if c.transport == Transport::Tls {
        cmd.args(tls_args(&CLIENT_TLS));
    }
    cmd.spawn().unwrap()
}

/// The payload bytes (sent and received) of every program and preparation batch.
fn payload_bytes(doc: &serde_json::Value) -> u64 {
    let r = &doc["report"];
    let all = r["programs"].as_array().unwrap().iter();
    let all = all.chain(r["preprocess"].as_array().into_iter().flatten());
    all.map(|p| {
        p["total"]["bytes_sent"].as_u64().unwrap() + p["total"]["bytes_received"].as_u64().unwrap()
    })
    .sum()
}

/// The decode steps' bytes in an op class (MatMul holds the weight products and attention,
/// Embedding the token table's product), summed.
fn decode_bytes(doc: &serde_json::Value, class: &str) -> u64 {
    doc["report"]["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["program"].as_str().unwrap().starts_with("decode"))
        .flat_map(|p| p["classes"].as_array().unwrap().iter())
        .filter(|c| c["name"] == class)
        .map(|c| c["bytes_sent"].as_u64().unwrap() + c["bytes_received"].as_u64().unwrap())
        .sum()
}

/// What one cell's document must say besides its tokens: its lanes and threads, its options,
/// a prefill and NEW − 1 decode steps, and the preparation batches (2 decode steps, then the
/// last one) or none.
fn check_report(c: &Cell, doc: &serde_json::Value) {
    let r = &doc["report"];
    assert_eq!(r["lanes"], c.lanes, "{c}: lanes");
    assert_eq!(r["threads"], c.lanes, "{c}: threads");
    assert_eq!(doc["ot"], c.ot, "{c}: ot");
    let batch = if c.prepared { BATCH } else { 0 };
    assert_eq!(doc["preprocess_tokens"], batch, "{c}: preprocess_tokens");
    let programs = r["programs"].as_array().unwrap();
    assert_eq!(programs.len(), NEW, "{c}: programs");
    assert_eq!(programs[0]["program"], "prefill", "{c}");
    assert_eq!(programs[0]["tokens"], PROMPT.len(), "{c}");
    let batches: Vec<u64> = r["preprocess"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tokens"].as_u64().unwrap())
        .collect();
    let want: &[u64] = if c.prepared { &[2, 1] } else { &[] };
    assert_eq!(batches, want, "{c}: preparation batches");
}

/// Run the cells of one transport at once against one server (each on its own lanes: the
/// server takes as many clients at once); returns their documents in the cells' order.
fn run_transport(
    dir: &Path,
    transport: Transport,
    want: &[usize],
) -> Vec<(Cell, serde_json::Value)> {
    let cells: Vec<Cell> = CELLS
        .into_iter()
        .filter(|c| c.transport == transport)
        .collect();
    let n = cells.len().to_string();
    let mut flags: Vec<String> = match transport {
        Transport::Tcp => Vec::new(),
        Transport::Tls => serve_tls(true),
    };
    flags.extend(
        [
            "--threads",
            "3",
            "--sessions",
            &n,
            "--max-clients",
            &n,
            "--timeout",
            "60",
        ]
        .map(String::from),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (mut server, addr, log) = serve(dir, &flags);
    let running: Vec<Child> = cells.iter().map(|c| client(dir, &addr, c)).collect();
    let mut docs = Vec::new();
    for (c, child) in cells.into_iter().zip(running) {
        let doc = json_doc(&child.wait_with_output().unwrap(), &c.to_string());
        assert_eq!(
            json_tokens(&doc),
            want,
            "{c}: tokens differ from the simulator's"
        );
        check_report(&c, &doc);
        docs.push((c, doc));
    }
    // The server's session lines: one per cell, each with the cell's lanes and batches.
    assert!(server.0.wait().unwrap().success(), "{transport:?} server");
    let lines: Vec<String> = log.lines().map_while(Result::ok).collect();
    assert_eq!(lines.len(), docs.len(), "{transport:?}: {lines:?}");
    let count = |f: &dyn Fn(&String) -> bool| lines.iter().filter(|l| f(l)).count();
    let cells_where = |f: &dyn Fn(&Cell) -> bool| docs.iter().filter(|(c, _)| f(c)).count();
    assert_eq!(
        count(&|l| l.ends_with(", 2 lanes")),
        cells_where(&|c| c.lanes == 2),
        "{transport:?}: {lines:?}"
    );
    assert_eq!(
        count(&|l| l.ends_with(", 1 lane")),
        cells_where(&|c| c.lanes == 1),
        "{transport:?}: {lines:?}"
    );
    assert_eq!(
        count(&|l| l.contains(" and 2 preparation batches")),
        cells_where(&|c| c.prepared),
        "{transport:?}: {lines:?}"
    );
    docs
}

#[test]
fn every_cell_gives_the_simulators_tokens_and_the_cells_agree() {
    let dir = trained("cli-matrix-trained");
    let want = simulated(&dir, &bytes(PROMPT), NEW);
    let mut docs = run_transport(&dir, Transport::Tcp, &want);
    docs.extend(run_transport(&dir, Transport::Tls, &want));
    assert_eq!(docs.len(), CELLS.len());
    let doc = |c: &Cell| &docs.iter().find(|(d, _)| d == c).unwrap().1;

    // TLS against TCP: the same payload bytes.
    let (tcp, tls) = (&CELLS[0], &CELLS[1]);
    assert_eq!(
        (tcp.ot, tcp.lanes, tcp.prepared),
        (tls.ot, tls.lanes, tls.prepared)
    );
    assert_eq!(
        payload_bytes(doc(tcp)),
        payload_bytes(doc(tls)),
        "{tcp} against {tls}: payload bytes"
    );
    // Prepared against online products: the decode steps' weight products send the masked
    // inputs only.
    let (prepared, online) = (&CELLS[0], &CELLS[2]);
    assert_eq!(
        (prepared.transport, prepared.ot, prepared.lanes),
        (online.transport, online.ot, online.lanes)
    );
    for class in ["MatMul", "Embedding"] {
        let (with, without) = (
            decode_bytes(doc(prepared), class),
            decode_bytes(doc(online), class),
        );
        assert!(
            2 * with < without,
            "{prepared} against {online}: {class}: {with} vs {without} bytes"
        );
    }
}

/// Pairwise: every two factors take every pair of their levels in some cell.
#[test]
fn the_cells_cover_every_pair_of_levels() {
    type Level = fn(&Cell) -> String;
    let factors: [Level; 4] = [
        |c| format!("{:?}", c.transport),
        |c| c.ot.to_string(),
        |c| c.lanes.to_string(),
        |c| c.prepared.to_string(),
    ];
    let levels = [
        vec!["Tcp", "Tls"],
        vec!["silent", "iknp"],
        vec!["1", "2"],
        vec!["true", "false"],
    ];
    for i in 0..4 {
        for j in i + 1..4 {
            for a in &levels[i] {
                for b in &levels[j] {
                    assert!(
                        CELLS
                            .iter()
                            .any(|c| factors[i](c) == *a && factors[j](c) == *b),
                        "no cell with {a} and {b}"
                    );
                }
            }
        }
    }
}

/// An OT extension the command does not know: one line naming it, before connecting.
#[test]
fn an_unknown_ot_extension_is_refused() {
    let out = exe()
        .args(["generate", "--plan", "models", "--connect", "127.0.0.1:9"])
        .args(["--prompt", "x", "--ot", "dealer"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dealer"));
}
