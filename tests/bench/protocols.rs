//! `ciphergpt bench protocols` between two processes: the JSON report has every row, and the
//! bytes each protocol moved per element equal its cost formula on silent OT (docs/protocols.md).

use std::process::Command;

#[test]
fn protocol_bytes_match_their_formulas() {
    let out = Command::new(env!("CARGO_BIN_EXE_ciphergpt"))
        .args([
            "bench",
            "protocols",
            "--n",
            "2048",
            "--ring-bits",
            "37",
            "--json",
            "--timeout",
            "30",
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
    let per_op = |name: &str| -> f64 {
        let r = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        assert_eq!(r["count"], 2048);
        r["bytes_per_op"].as_f64().unwrap()
    };
    // The protocols run on silent OT (crypto::silent): a COT with chosen choices costs one bit
    // (plus one marker byte per call), a random one nothing at all; a protocol's row leaves out
    // the silent-OT batches that ran inside it (a pool runs dry wherever its 531,984 setup COTs
    // end; the `silent-cot` row has the batches' cost).
    let (n, l) = (2048.0f64, 37.0f64);
    let bits = |b: f64| (b / 8.0).ceil();
    // Gilboa product: two cross terms of nℓ chosen COTs plus nℓ(ℓ+1)/2 correction bits each.
    assert_eq!(
        per_op("product-l37"),
        (2.0 * (bits(n * l) + 1.0) + 2.0 * bits(n * l * (l + 1.0) / 2.0)) / n
    );
    // B2A: one COT over Z_2^ℓ (1 + ℓ bits); MUX: two.
    assert_eq!(per_op("b2a-l37"), (bits(n) + 1.0 + bits(n * l)) / n);
    assert_eq!(per_op("mux-l37"), 2.0 * (bits(n) + 1.0 + bits(n * l)) / n);
    // Comparison on 36 bits, 4-bit digits: 9 leaf 1-of-16 OTs of 4 chosen COTs and 16 2-bit
    // messages (4.5 B); the tree (docs/protocols.md, section 10) in groups 3, 2, 2, 2, each a
    // 1-of-32 OT (the level's widest: the lowest group of three) of 2-bit messages with 5
    // choices (8.625 B), then a root of 4, a 1-of-128 OT of 1-bit messages with 7 choices
    // (16.875 B); a marker byte per OT call (leaves, two levels).
    let node = |n: f64, out: f64, choices: f64| (n * out + choices) / 8.0;
    assert_eq!(
        per_op("comparison-l37"),
        9.0 * 4.5 + 4.0 * node(32.0, 2.0, 5.0) + node(128.0, 1.0, 7.0) + 3.0 / n
    );
    // Faithful truncation by 12 (docs/protocols.md, section 13, on silent OT), 4-bit digits:
    // the carry of the low 12 bits (3 leaves, one node of three: 1-of-32 of 1-bit messages)
    // and its B2A into Z_2^25; the wrap of the 25 high bits (7 leaves; groups 2, 2, 2, 1 as
    // 1-of-16 OTs of 2-bit messages, then a root of 4) and its B2A into Z_2^37; a marker byte
    // per call (2 + 3 comparisons' calls, 2 B2As).
    let carry = 3.0 * 4.5 + node(32.0, 1.0, 5.0) + (1.0 + 25.0) / 8.0;
    let wrap = 7.0 * 4.5 + 3.0 * node(16.0, 2.0, 4.0) + node(128.0, 1.0, 7.0) + (1.0 + 37.0) / 8.0;
    assert_eq!(per_op("truncation-l37-s12"), carry + wrap + 7.0 / n);
    // Silent COT: bootstrap and one main batch, under 2 bits per COT amortised (0.45 in steady
    // state).
    let cot = rows
        .iter()
        .find(|r| r["name"] == "silent-cot")
        .expect("silent-cot row");
    let per_cot = 8.0 * cot["bytes_per_op"].as_f64().unwrap();
    assert!(per_cot < 2.0, "silent COT: {per_cot} bits per COT");
    // The GPT-2 rows: GELU per element, softmax and LayerNorm per row (2048 / 256 and
    // max(1, 2048 / 768) rows), argmax once over the vocabulary; each with a published figure.
    for (name, count) in [
        ("gelu-l37-f12", 2048),
        ("softmax-row256-l37", 8),
        ("layernorm-row768-l37", 2),
        ("argmax-50257-l37", 1),
    ] {
        let r = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        assert_eq!(r["count"], count, "{name}");
        assert!(r["reference"].is_string(), "{name}: no published figure");
        assert!(r["rounds"].as_u64().unwrap() > 0, "{name}");
    }
    // The GELU prepared ahead: its online part under a third of the online GELU's bytes (its
    // lookups become openings of 6 + 2·ℓ' bits each way), and a preparation below the online
    // GELU's bytes (the point function's six levels of 64 bytes, where the OT of rotations
    // cost 64² bits and made it dearer than the GELU itself).
    let gelu = bytes_of(rows, "gelu-l37-f12");
    let online = bytes_of(rows, "gelu-prepared-l37-f12");
    let prepare = bytes_of(rows, "gelu-prepare-l37-f12");
    assert!(online * 3.0 < gelu, "{online} against {gelu}");
    assert!(prepare < gelu, "{prepare} against {gelu}");
    // Top-K sampling of the vocabulary for K = 1, 50, 100; K = 100 beside CipherGPT's figure.
    // Each costs more than the argmax: a shuffle, then comparisons of values with index tags.
    let topk: Vec<&serde_json::Value> =
        ["topk1-50257-l37", "topk50-50257-l37", "topk100-50257-l37"]
            .iter()
            .map(|name| {
                rows.iter()
                    .find(|r| r["name"] == *name)
                    .unwrap_or_else(|| panic!("no row {name}"))
            })
            .collect();
    let bytes = |r: &serde_json::Value| r["bytes_per_op"].as_f64().unwrap();
    let argmax = rows
        .iter()
        .find(|r| r["name"] == "argmax-50257-l37")
        .unwrap();
    for r in &topk {
        assert!(bytes(r) > bytes(argmax), "{r}");
        assert!(r["rounds"].as_u64().unwrap() > 0, "{r}");
    }
    assert!(topk[2]["reference"].is_string());
}

/// `bytes_per_op` of the row `name`.
fn bytes_of(rows: &[serde_json::Value], name: &str) -> f64 {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}"))["bytes_per_op"]
        .as_f64()
        .unwrap()
}
