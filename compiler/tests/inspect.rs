//! `inspect`: listings, JSON, DOT and the per-class summary of hand-built plans (snapshots), and
//! properties of the cost model.

use ciphergpt_compiler::fixed::semantics;
use ciphergpt_compiler::plan::cost::{self, OpClass, Sizes, Summary};
use ciphergpt_compiler::plan::inspect::{self, Format, Options};
use ciphergpt_compiler::plan::{
    self, file, instruction::Op, Instruction, ModelInfo, Plan, Program, Register, Rows, WeightInfo,
};

/// Sizes of a GPT-2-shaped plan.
#[derive(Clone, Copy)]
struct Dims {
    vocab: u64,
    positions: u64,
    width: u64,
    heads: u32,
    layers: u64,
    ring: u32,
}

const TINY: Dims = Dims {
    vocab: 256,
    positions: 64,
    width: 64,
    heads: 4,
    layers: 1,
    ring: 37,
};

const GPT2_SMALL: Dims = Dims {
    vocab: 50257,
    positions: 1024,
    width: 768,
    heads: 12,
    layers: 12,
    ring: 37,
};

/// A plan with the instruction sequence the compiler lowers GPT-2 to (see `fixed/lower.rs`):
/// registers, weight shapes and public tables, no weights.
struct Builder {
    plan: Plan,
    program: Vec<Instruction>,
}

impl Builder {
    fn reg(&mut self, name: &str, rows: Rows, cols: u64, frac: u32) -> u32 {
        self.plan.registers.push(Register {
            name: name.into(),
            rows: rows as i32,
            cols,
            frac_bits: frac,
            persistent: rows == Rows::Positions,
        });
        (self.plan.registers.len() - 1) as u32
    }

    fn act(&mut self, name: &str, cols: u64) -> u32 {
        self.reg(name, Rows::Tokens, cols, 12)
    }

    fn weight(&mut self, name: &str, shape: &[u64], frac: u32) -> u32 {
        self.plan.weights.push(WeightInfo {
            name: name.into(),
            shape: shape.to_vec(),
            frac_bits: frac,
            bits: 16,
        });
        (self.plan.weights.len() - 1) as u32
    }

    fn push(&mut self, name: &str, inputs: Vec<u32>, outputs: Vec<u32>, op: Op) {
        self.program.push(Instruction {
            name: name.into(),
            inputs,
            outputs,
            op: Some(op),
        });
    }

    fn linear(&mut self, name: &str, x: u32, k: u64, n: u64) -> u32 {
        let w = self.weight(&format!("{name}.weight"), &[k, n], 12);
        let b = self.weight(&format!("{name}.bias"), &[n], 24);
        let y = self.act(&format!("{name}.out"), n);
        self.push(
            name,
            vec![x],
            vec![y],
            Op::Linear(plan::Linear {
                weight: w,
                bias: Some(b),
                shift: 12,
                prepared: plan::Linear::ONLINE,
            }),
        );
        y
    }

    fn layernorm(&mut self, name: &str, x: u32, n: u64) -> u32 {
        let y = self.act(&format!("{name}.out"), n);
        self.push(
            name,
            vec![x],
            vec![y],
            Op::LayerNorm(plan::LayerNorm {
                n,
                frac: 12,
                r1: 6,
                r2: 8,
                v_eps: 1,
                f_rho: 18,
                prepared: false,
            }),
        );
        y
    }

    /// The token and position tables and the `Embed` instruction; returns its output.
    fn embed(&mut self, d: Dims) -> u32 {
        let c = d.width;
        let wte = self.weight("token_table", &[d.vocab, c], 12);
        let wpe = self.weight("position_table", &[d.positions, c], 12);
        let x = self.act("embed.out", c);
        self.push(
            "embed",
            vec![],
            vec![x],
            Op::Embed(plan::Embed {
                token_table: wte,
                position_table: wpe,
                prepared: plan::Linear::ONLINE,
            }),
        );
        x
    }

    /// Layer `layer`'s attention on the packed projection `qkv`: `SplitQkv`, `CacheAppend` of k
    /// and v, `QkT`, `Softmax` and `Pv`; returns its output.
    fn attention(&mut self, layer: u64, qkv: u32, d: Dims) -> u32 {
        let c = d.width;
        let att = format!("h{layer}.attn");
        let q = self.act(&format!("{att}.q"), c);
        let k = self.act(&format!("{att}.k"), c);
        let v = self.act(&format!("{att}.v"), c);
        let kc = self.reg(&format!("layer{layer}.k_cache"), Rows::Positions, c, 12);
        let vc = self.reg(&format!("layer{layer}.v_cache"), Rows::Positions, c, 12);
        self.push(
            &att,
            vec![qkv],
            vec![q, k, v],
            Op::SplitQkv(plan::SplitQkv {}),
        );
        self.push(
            &att,
            vec![k],
            vec![kc],
            Op::CacheAppend(plan::CacheAppend {}),
        );
        self.push(
            &att,
            vec![v],
            vec![vc],
            Op::CacheAppend(plan::CacheAppend {}),
        );
        let scores = self.act(&format!("{att}.scores"), 0);
        self.push(
            &att,
            vec![q, kc],
            vec![scores],
            Op::QkT(plan::HeadProduct {
                heads: d.heads,
                shift: 12,
            }),
        );
        let probs = self.act(&format!("{att}.probs"), 0);
        self.push(
            &att,
            vec![scores],
            vec![probs],
            Op::Softmax(plan::Softmax {
                heads: d.heads,
                frac_in: 12,
                frac_exp: 14,
                frac_out: 12,
                exp_hi: vec![0; 256],
                exp_lo: vec![0; 256],
                hi_bits: 8,
                lo_bits: 8,
                recip_guard: 8,
                clip: 16 << 12,
                prepared: false,
            }),
        );
        let out = self.act(&format!("{att}.out"), c);
        self.push(
            &att,
            vec![probs, vc],
            vec![out],
            Op::Pv(plan::HeadProduct {
                heads: d.heads,
                shift: 12,
            }),
        );
        out
    }

    /// The `Gelu` instruction named `name` on `x`, `n` wide; returns its output.
    fn gelu(&mut self, name: &str, x: u32, n: u64) -> u32 {
        let y = self.act(name, n);
        self.push(
            name,
            vec![x],
            vec![y],
            Op::Gelu(plan::Gelu {
                frac: 12,
                alpha_log2: 2,
                pieces_log2: 6,
                slope: vec![0; 64],
                intercept: vec![0; 64],
                form: 0,
                prepared: false,
            }),
        );
        y
    }

    /// The `Add` instruction named `name` of `x` and `y`, `n` wide; returns its output.
    fn add(&mut self, name: &str, x: u32, y: u32, n: u64) -> u32 {
        let z = self.act(name, n);
        self.push(name, vec![x, y], vec![z], Op::Add(plan::Add {}));
        z
    }

    /// Transformer block `layer` on `x`: LayerNorm, attention and its projection, residual add,
    /// LayerNorm, MLP with GELU, residual add; returns its output.
    fn block(&mut self, layer: u64, x: u32, d: Dims) -> u32 {
        let (p, c) = (format!("h{layer}"), d.width);
        let a = self.layernorm(&format!("{p}.ln_1"), x, c);
        let qkv = self.linear(&format!("{p}.attn.c_attn"), a, c, 3 * c);
        let out = self.attention(layer, qkv, d);
        let o = self.linear(&format!("{p}.attn.c_proj"), out, c, c);
        let x1 = self.add(&format!("{p}.add_1"), x, o, c);
        let m = self.layernorm(&format!("{p}.ln_2"), x1, c);
        let h = self.linear(&format!("{p}.mlp.c_fc"), m, c, 4 * c);
        let g = self.gelu(&format!("{p}.mlp.gelu"), h, 4 * c);
        let y = self.linear(&format!("{p}.mlp.c_proj"), g, 4 * c, c);
        self.add(&format!("{p}.add_2"), x1, y, c)
    }

    /// The final LayerNorm, the `Logits` and the `Sample` of the next token.
    fn head(&mut self, x: u32, d: Dims) {
        let c = d.width;
        let f = self.layernorm("ln_f", x, c);
        let w = self.weight("lm_head.weight", &[c, d.vocab], 12);
        let z = self.reg("lm_head.out", Rows::One, d.vocab, 24);
        self.push(
            "lm_head",
            vec![f],
            vec![z],
            Op::Logits(plan::Linear {
                weight: w,
                bias: None,
                shift: 0,
                prepared: plan::Linear::ONLINE,
            }),
        );
        let t = self.reg("next_token", Rows::One, 1, 0);
        self.push(
            "sample",
            vec![z],
            vec![t],
            Op::Sample(plan::Sample {
                top_k: 1,
                inv_temperature: 1 << 16,
                shift: 28,
                softmax: None,
            }),
        );
    }
}

fn gpt_plan(d: Dims) -> Plan {
    let c = d.width;
    let mut b = Builder {
        plan: Plan {
            source: format!("gpt-{}x{}.onnx", d.layers, d.width),
            model: Some(ModelInfo {
                vocab: d.vocab,
                positions: d.positions,
                width: c,
                heads: u64::from(d.heads),
                layers: d.layers,
            }),
            ring_bits: d.ring,
            frac_bits: 12,
            ..Default::default()
        },
        program: Vec::new(),
    };
    let mut x = b.embed(d);
    for layer in 0..d.layers {
        x = b.block(layer, x, d);
    }
    b.head(x, d);
    let program = Program {
        instructions: b.program,
    };
    let mut plan = b.plan;
    plan.prefill = Some(program.clone());
    plan.decode = Some(program);
    file::seal(&mut plan);
    plan
}

fn render(plan: &Plan, format: Format, summary: bool, tokens: u64) -> String {
    inspect::render(
        plan,
        &Options {
            format,
            summary,
            tokens,
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// Snapshots.
// ---------------------------------------------------------------------------------------------

#[test]
fn tiny_plan_listing() {
    insta::assert_snapshot!(
        "tiny-listing",
        render(&gpt_plan(TINY), Format::Text, false, 8)
    );
}

#[test]
fn tiny_plan_json() {
    let text = render(&gpt_plan(TINY), Format::Json, false, 8);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["plan"]["ring_bits"], 37);
    assert_eq!(v["prefill"].as_array().unwrap().len(), 19);
    assert_eq!(v["decode"][2]["op"], "Linear");
    assert_eq!(v["decode"][2]["inputs"][0]["shape"][0], "1");
    assert_eq!(v["prefill"][2]["parts"][1]["class"], "Truncation");
    // Per-instruction costs add up to the summary's total.
    let sum: u64 = v["prefill"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["cost"]["server_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, v["summary"]["prefill"]["total"]["server_bytes"]);
}

#[test]
fn tiny_plan_summary_json_has_no_listing() {
    let v: serde_json::Value =
        serde_json::from_str(&render(&gpt_plan(TINY), Format::Json, true, 8)).unwrap();
    assert!(v.get("prefill").is_none() && v.get("decode").is_none());
    assert_eq!(v["summary"]["decode"]["past"], 8);
    assert_eq!(v["summary"]["prefill"]["classes"][1]["class"], "GELU");
    insta::assert_snapshot!(
        "tiny-summary-json",
        serde_json::to_string_pretty(&v).unwrap()
    );
}

/// rounds · RTT/2 + bytes · 8 / bandwidth on the design's lan (1 ms, 1 Gbit/s) and wan (40 ms,
/// 400 Mbit/s), from a JSON cost's bytes and rounds.
fn link_oracle(c: &serde_json::Value) -> (f64, f64) {
    let bytes = c["bytes"].as_u64().unwrap_or_else(|| {
        c["server_bytes"].as_u64().unwrap() + c["client_bytes"].as_u64().unwrap()
    }) as f64;
    let rounds = c["rounds"].as_u64().unwrap() as f64;
    (
        rounds * 0.000_5 + bytes * 8.0 / 1e9,
        rounds * 0.020 + bytes * 8.0 / 4e8,
    )
}

#[test]
fn summary_link_times_are_the_formula_of_bytes_and_rounds() {
    let plan = gpt_plan(GPT2_SMALL);
    let v: serde_json::Value =
        serde_json::from_str(&render(&plan, Format::Json, true, 32)).unwrap();
    let text = render(&plan, Format::Text, true, 32);
    // The text's blocks: prefill, then the decode step; each row ends with LAN s and WAN s.
    let mut blocks = text.split("\nop class").skip(1);
    for program in ["prefill", "decode"] {
        let s = &v["summary"][program];
        let mut rows: Vec<&serde_json::Value> = s["classes"].as_array().unwrap().iter().collect();
        rows.push(&s["total"]);
        let block = blocks.next().unwrap();
        let lines: Vec<&str> = block.lines().skip(1).take(rows.len()).collect();
        for (row, line) in rows.iter().zip(lines) {
            let (lan, wan) = link_oracle(row);
            let est = &row["estimate"];
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.max(1.0);
            assert!(
                close(est["lan_s"].as_f64().unwrap(), lan),
                "{program} {row}"
            );
            assert!(
                close(est["wan_s"].as_f64().unwrap(), wan),
                "{program} {row}"
            );
            let cells: Vec<f64> = line
                .split_whitespace()
                .rev()
                .take(2)
                .map(|c| c.parse().unwrap())
                .collect();
            assert!((cells[1] - lan).abs() <= 6e-4, "{program}: {line} vs {lan}");
            assert!((cells[0] - wan).abs() <= 6e-4, "{program}: {line} vs {wan}");
        }
    }
    // GPT-2 small's decode step is a few thousand flights: seconds on wan, not milliseconds.
    let wan = v["summary"]["decode"]["total"]["estimate"]["wan_s"]
        .as_f64()
        .unwrap();
    assert!(wan > 10.0, "{wan}");
}

#[test]
fn tiny_plan_dot() {
    let dot = render(&gpt_plan(TINY), Format::Dot, false, 8);
    assert!(dot.starts_with("digraph plan {") && dot.ends_with("}\n"));
    assert!(
        dot.contains("r6 [shape=cylinder"),
        "the KV cache is drawn as a store"
    );
    insta::assert_snapshot!("tiny-dot", dot);
}

#[test]
fn gpt2_small_summary() {
    // GPT-2 small at 256 prompt tokens, as CipherGPT's Table V (which has no KV cache).
    insta::assert_snapshot!(
        "gpt2-small-summary-256",
        render(&gpt_plan(GPT2_SMALL), Format::Text, true, 256)
    );
    insta::assert_snapshot!(
        "gpt2-small-summary-32",
        render(&gpt_plan(GPT2_SMALL), Format::Text, true, 32)
    );
}

// ---------------------------------------------------------------------------------------------
// The cost model's properties.
// ---------------------------------------------------------------------------------------------

#[test]
fn comparison_and_truncation_grow_with_the_ring() {
    for l in [16u64, 32, 37, 48, 63] {
        // A comparison on silent OT: the leaves' messages (2^(m+1) bits per m-bit digit) and
        // the openings, about 12 to 40 bits per input bit (the digit width is chosen per width,
        // so one more bit may cost less, but twice the bits cost more).
        let c = cost::comparison(l).total();
        assert!((12 * l..=40 * l).contains(&c), "comparison({l}): {c} bits");
        assert!(cost::comparison(2 * l).total() > c);
        // A truncation by 12: the carry's millionaires' on 12 bits does not grow with ℓ, the
        // carry's COT over Z_2^ℓ does, one bit per bit.
        let t = cost::truncation(l + 1, 12).total() - cost::truncation(l, 12).total();
        assert_eq!(t, 1);
        assert_eq!(cost::mux(l).total(), 2 * l + 2);
    }
}

fn linear_bytes(rows: u64, k: u64, n: u64) -> u64 {
    let mut plan = gpt_plan(TINY);
    plan.registers[0].cols = k;
    plan.weights[0].shape = vec![k, n];
    let ins = Instruction {
        name: "fc".into(),
        inputs: vec![0],
        outputs: vec![1],
        op: Some(Op::Linear(plan::Linear {
            weight: 0,
            bias: None,
            shift: 12,
            prepared: plan::Linear::ONLINE,
        })),
    };
    let parts = cost::estimate(&plan, &ins, Sizes::prefill(rows));
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].class, OpClass::MatMul);
    assert_eq!(parts[1].class, OpClass::Truncation);
    cost::total(&parts).bytes()
}

#[test]
fn linear_cost_grows_with_k_n_and_rows() {
    let base = linear_bytes(16, 256, 256);
    assert!(linear_bytes(16, 1024, 256) > base);
    assert!(linear_bytes(16, 256, 1024) > base);
    assert!(linear_bytes(64, 256, 256) > base);
    assert!(linear_bytes(64, 1024, 1024) > linear_bytes(64, 256, 1024));
}

#[test]
fn summary_shares_sum_to_100_percent() {
    for d in [TINY, GPT2_SMALL] {
        let plan = gpt_plan(d);
        for sizes in [Sizes::prefill(8), Sizes::decode(8), Sizes::prefill(1)] {
            let parts = cost::program(&plan, plan.prefill.as_ref().unwrap(), sizes);
            let s = Summary::of(&parts);
            let bytes: f64 = s.classes.iter().map(|(_, c)| s.bytes_share(c)).sum();
            let rounds: f64 = s.classes.iter().map(|(_, c)| s.rounds_share(c)).sum();
            assert!((bytes - 100.0).abs() < 1e-9, "{bytes}");
            assert!((rounds - 100.0).abs() < 1e-9, "{rounds}");
            // The total is the sum over the instructions.
            let all = parts.iter().map(|p| cost::total(p).bytes()).sum::<u64>();
            assert_eq!(all, s.total.bytes());
        }
    }
}

#[test]
fn a_decode_step_costs_less_than_the_prefill_and_grows_with_the_position() {
    let plan = gpt_plan(GPT2_SMALL);
    let prog = plan.prefill.as_ref().unwrap();
    let total = |s: Sizes| Summary::of(&cost::program(&plan, prog, s)).total.bytes();
    assert!(total(Sizes::decode(32)) < total(Sizes::prefill(32)));
    assert!(total(Sizes::decode(32)) < total(Sizes::decode(512)));
    assert!(total(Sizes::prefill(16)) < total(Sizes::prefill(32)));
}

#[test]
fn softmax_follows_the_causal_mask() {
    // Prefill of T rows: T(T+1)/2 entries per head; decode at position N: N + 1.
    assert_eq!(Sizes::prefill(4).visible(), 10);
    assert_eq!(Sizes::decode(7).visible(), 8);
    let s = plan::Softmax {
        heads: 2,
        frac_in: 12,
        frac_exp: 14,
        frac_out: 12,
        exp_hi: vec![0; 256],
        exp_lo: vec![0; 256],
        hi_bits: 8,
        lo_bits: 8,
        recip_guard: 8,
        clip: 16 << 12,
        prepared: false,
    };
    // Doubling the heads doubles the bits.
    let one = cost::softmax(
        37,
        &plan::Softmax {
            heads: 1,
            ..s.clone()
        },
        Sizes::prefill(5),
    );
    let two = cost::softmax(37, &s, Sizes::prefill(5));
    assert_eq!(two.total(), 2 * one.total());
    assert_eq!(two.rounds, one.rounds);
}

#[test]
fn gelu_per_element_is_near_cipher_gpts_figure() {
    // CipherGPT Table IV: 765 MB for 2^20 elements (≈ 730 B per element), with |rOT| ≈ 0.6 bit;
    // its setting: ℓ = 37, f = 12, 64 pieces on ±4.
    let t = semantics::fit_gelu(12, 2, 6, semantics::GeluForm::Tanh).unwrap();
    let g = ciphergpt_compiler::fixed::convert::gelu_to_plan(&t);
    let per_element = cost::gelu(37, &g).total() as f64 / 8.0;
    assert!(
        (400.0..1000.0).contains(&per_element),
        "{per_element} B per element"
    );
}

#[test]
fn malformed_plans_and_bad_lengths_are_refused() {
    let mut plan = gpt_plan(TINY);
    plan.prefill.as_mut().unwrap().instructions[3].inputs = vec![999];
    let err = inspect::render(&plan, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("prefill instruction 3") && err.contains("r999"),
        "{err}"
    );

    let mut plan = gpt_plan(TINY);
    if let Some(Op::Linear(l)) = &mut plan.decode.as_mut().unwrap().instructions[2].op {
        l.weight = 77;
    }
    let err = inspect::render(&plan, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("decode instruction 2") && err.contains("w77"),
        "{err}"
    );

    let plan = gpt_plan(TINY);
    for tokens in [0, 64, 1000] {
        let err = inspect::render(
            &plan,
            &Options {
                tokens,
                ..Options::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--tokens"), "{err}");
    }
    // The largest prompt that leaves room for one decode step is fine.
    assert!(inspect::render(
        &plan,
        &Options {
            tokens: 63,
            ..Options::default()
        }
    )
    .is_ok());
}

#[test]
fn hostile_sizes_do_not_overflow() {
    let mut plan = gpt_plan(TINY);
    for r in &mut plan.registers {
        r.cols = u64::MAX / 3;
    }
    for w in &mut plan.weights {
        w.shape = vec![u64::MAX / 5, u64::MAX / 7];
    }
    // Saturates instead of panicking.
    let parts = cost::program(&plan, plan.prefill.as_ref().unwrap(), Sizes::prefill(63));
    assert!(Summary::of(&parts).total.bytes() > 0);
}

// ---------------------------------------------------------------------------------------------
// The committed models, compiled in the test.
// ---------------------------------------------------------------------------------------------

#[test]
fn committed_model_summaries() {
    use ciphergpt_compiler::fixed;
    use ciphergpt_compiler::model::{self, ModelSpec};
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    for name in ["tiny-trained", "tiny-erf", "tiny-gpt2vocab"] {
        let path = models.join(format!("{name}.torchscript.onnx"));
        let graph = model::load(&ModelSpec {
            path,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let compiled = fixed::compile(&graph, &fixed::Options::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let positions = compiled.plan.model.as_ref().unwrap().positions;
        let tokens = 32.min(positions - 1);
        let text = render(&compiled.plan, Format::Text, true, tokens);
        // The first line names the plan's hash, which changes with any compiler change.
        let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
        insta::assert_snapshot!(format!("{name}-summary"), body);
    }
}
