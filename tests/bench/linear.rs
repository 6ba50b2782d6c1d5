//! `ciphergpt bench linear` between two processes: every row is in the JSON report, each product
//! is verified against x·W + b, and its bytes equal the cost formula of its packing.

use std::process::Command;

use ciphergpt_runtime::protocols::linear::Packing;
use ciphergpt_runtime::protocols::shares::Ring;

#[test]
fn linear_rows_are_verified_and_their_bytes_match_the_formula() {
    let out = Command::new(env!("CARGO_BIN_EXE_ciphergpt"))
        .args([
            "bench",
            "linear",
            "--no-logits",
            "--prefill-rows",
            "16",
            "--verify",
            "--json",
            "--timeout",
            "60",
        ])
        .output()
        .expect("run ciphergpt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rows = report["results"].as_array().expect("results");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}"))
    };
    assert_eq!(row("he-setup")["bytes_received"], 168_976);
    let ring = Ring::new(37).unwrap();
    let mut total = 0u64;
    for (short, t, k, n) in [
        ("qkv", 1, 768, 2304),
        ("attn-out", 1, 768, 768),
        ("fc1", 1, 768, 3072),
        ("fc2", 1, 3072, 768),
        ("prefill16", 16, 768, 768),
    ] {
        let name = if t == 1 {
            format!("{short}-1x{k}x{n}-l37")
        } else {
            format!("{short}-768x768-l37")
        };
        let r = row(&name);
        let c = Packing::new(ring, k, n, 16, t).unwrap().cost(t);
        assert_eq!(r["bytes_sent"], c.bytes_down as u64, "{name}");
        assert_eq!(r["bytes_received"], c.bytes_up as u64, "{name}");
        assert_eq!(r["rounds"], 2, "{name}");
        assert!(r["reference"].is_string(), "{name}: no published figure");
        assert!(row(&format!("encode-{short}"))["seconds"].as_f64().unwrap() > 0.0);
        if t == 1 {
            total += 12 * (c.bytes_up + c.bytes_down) as u64;
        }
    }
    // The decode step's weight products: 12 layers of the four (no logits in this run).
    let d = row("decode-step-weights");
    assert_eq!(
        d["bytes_sent"].as_u64().unwrap() + d["bytes_received"].as_u64().unwrap(),
        total
    );
    assert_eq!(d["rounds"], 96);
}
