//! The linear-layer bench: GPT-2 small's weight products under RLWE, and attention's.

use super::*;

/// Settings of the linear-layer bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct LinearBenchOptions {
    /// Ring width ℓ.
    pub ring_bits: u32,
    /// Weights are uniform in ±2^(weight_bits − 1).
    pub weight_bits: u32,
    /// Include the vocabulary projection 1×768·768×50,257 (620 MB of encoded weights).
    pub logits: bool,
    /// Rows of the prefill product T×768·768×768 (0: skip it).
    pub prefill_rows: usize,
    /// After each product, the client reveals its shares and the server checks x·W + b
    /// (outside the measured scopes).
    pub verify: bool,
}

/// GPT-2 small's weight products in each layer of a decode step: (name, K, N).
pub const GPT2_DECODE_PRODUCTS: [(&str, usize, usize); 4] = [
    ("qkv", 768, 2304),
    ("attn-out", 768, 768),
    ("fc1", 768, 3072),
    ("fc2", 3072, 768),
];
/// GPT-2 small's layers and vocabulary.
pub const GPT2_LAYERS: usize = 12;
pub const GPT2_VOCAB: usize = 50_257;

/// One weight product of the bench: (short name, row name, T, K, N, published figures).
type LinearShape = (String, String, usize, usize, usize, String);

/// Run the linear-layer bench as `role` on `ch`: the HE setup, then for each GPT-2-small shape
/// the server's one-time weight encoding (its own row) and one product on random shares with
/// random weights; then the decode step's weight products in total (12 layers of the four
/// products, plus the logits when measured), summed from the rows.
pub fn linear_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &LinearBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    use crate::crypto::rlwe::HeSession;
    use crate::protocols::shares::Ring;
    let ring = Ring::new(opts.ring_bits)?;
    let mut rng = Prg::from_entropy();
    let mut results = Vec::new();
    let t = start(ch, role)?;
    let he = scoped(ch, "he-setup", |ch| HeSession::setup(ch, role))?;
    results.push(
        finish(ch, role, t, "he-setup", 1)?
            .with_reference("the client's public key, once per session"),
    );
    let shapes = linear_shapes(opts);
    let measured = weight_products(ch, role, opts, ring, &he, &mut rng, shapes, &mut results)?;
    // One decode step's weight products: 12 layers of the four, plus the logits if measured.
    let mut total = (0.0, crate::net::Counters::default());
    for (name, _, _) in GPT2_DECODE_PRODUCTS {
        let (s, c) = sum_rows(&measured, name, GPT2_LAYERS as u64);
        total.0 += s;
        total.1.add(&c);
    }
    let (s, c) = sum_rows(&measured, "logits", 1);
    total.0 += s;
    total.1.add(&c);
    results.push(
        BenchResult::new("decode-step-weights", 1, total.0, total.1).with_reference(&format!(
            "sum of the rows: {GPT2_LAYERS} × (qkv, attn-out, fc1, fc2){}",
            if opts.logits { " + logits" } else { "" }
        )),
    );

    let att = attention_rows(ch, role, ring, he, &mut rng, &mut results)?;
    let (es, ec) = sum_rows(&measured, "embedding", 1);
    total.0 += att.0 + es;
    total.1.add(&att.1);
    total.1.add(&ec);
    results.push(
        BenchResult::new("decode-step-total", 1, total.0, total.1).with_reference(&format!(
            "decode-step-weights + {GPT2_LAYERS} × attention (q·Kᵀ, P·V){}; issue 6's target: \
             < 5 s and < 100 MB",
            if opts.logits { " + embedding" } else { "" }
        )),
    );
    Ok(results)
}

/// The bench's weight products: GPT-2 small's four per layer, then the logits and the
/// embedding when measured, then the prefill product when asked for.
fn linear_shapes(opts: &LinearBenchOptions) -> Vec<LinearShape> {
    let l = opts.ring_bits;
    let cheetah = "Cheetah FC 2048→1001: 111 ms, 1.83 MB (Table 5)";
    let svole = "CipherGPT sVOLE, 48 products × 256 rows: 1,091 MB, 211.9 s per token";
    // (short name, row name, T, K, N, published figures)
    let mut shapes: Vec<LinearShape> = GPT2_DECODE_PRODUCTS
        .iter()
        .map(|&(name, k, n)| {
            (
                name.to_string(),
                format!("{name}-1x{k}x{n}-l{l}"),
                1,
                k,
                n,
                format!("{svole}; {cheetah}"),
            )
        })
        .collect();
    if opts.logits {
        shapes.push((
            "logits".into(),
            format!("logits-1x768x{GPT2_VOCAB}-l{l}"),
            1,
            768,
            GPT2_VOCAB,
            "CipherGPT HE (QKᵀ, SV, vocabulary): 490 MB, 194.2 s per token in all".into(),
        ));
    }
    if opts.logits {
        shapes.push((
            "embedding".into(),
            format!("embedding-1x{GPT2_VOCAB}x768-l{l}"),
            1,
            GPT2_VOCAB,
            768,
            "the client's one-hot token row times the table; CipherGPT: the server's \
             encrypted table, sent once"
                .into(),
        ));
    }
    if opts.prefill_rows > 0 {
        shapes.push((
            format!("prefill{}", opts.prefill_rows),
            format!("prefill{}-768x768-l{l}", opts.prefill_rows),
            opts.prefill_rows,
            768,
            768,
            "CipherGPT sVOLE 256×768·768×768: 1,462 ms, 8.2 MB amortised over 256 tokens \
             (Fig. 3); Iron 2.3× and 3.7× that"
                .into(),
        ));
    }
    shapes
}

/// Per shape, the server's one-time encoding of random weights and one product on random
/// shares (their rows pushed to `results`); the products' rows by short name.
#[allow(clippy::too_many_arguments)]
fn weight_products<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &LinearBenchOptions,
    ring: crate::protocols::shares::Ring,
    he: &crate::crypto::rlwe::HeSession,
    rng: &mut Prg,
    shapes: Vec<LinearShape>,
    results: &mut Vec<BenchResult>,
) -> Result<Vec<(String, BenchResult)>, BenchError> {
    use crate::protocols::linear::{linear, EncodedWeights, Packing};
    use rand::Rng;
    let server = role == Role::Server;
    let wb = 1i64 << (opts.weight_bits - 1);
    let mut measured: Vec<(String, BenchResult)> = Vec::new();
    for (short, name, t_rows, k, n, reference) in shapes {
        let packing = Packing::new(ring, k, n, opts.weight_bits, t_rows)?;
        // The server's one-time encoding of the weights.
        let enc_name = format!("encode-{short}");
        let w: Vec<i64> = if server {
            (0..k * n).map(|_| rng.gen_range(-wb..=wb)).collect()
        } else {
            Vec::new()
        };
        let t = start(ch, role)?;
        let enc = if server {
            Some(EncodedWeights::new(&packing, &w)?)
        } else {
            None
        };
        let r = finish(ch, role, t, &enc_name, 1)?;
        let mem = enc.as_ref().map_or(0, |e| e.bytes());
        results.push(r.with_reference(&format!(
            "server, once per model: {} polynomials, {:.1} MB \
             (n_i {}, n_o {}, {} rows/ct, {} limb(s), k = {})",
            mem / (crate::crypto::rlwe::PRIMES * crate::crypto::rlwe::N * 8),
            mem as f64 / 1e6,
            packing.n_i,
            packing.n_o,
            packing.rows_per_ct,
            packing.limbs,
            packing.out.k
        )));
        let x = ring.random(rng, t_rows * k);
        let bias: Vec<i64> = (0..n).map(|_| rng.gen_range(-wb..=wb)).collect();
        let lname = name.clone();
        let t = start(ch, role)?;
        let y = scoped(ch, &lname, |ch| {
            linear(
                he,
                ch,
                role,
                ring,
                &packing,
                &x,
                t_rows,
                enc.as_ref().map(|e| (e, &bias[..])),
            )
        })?;
        let r = finish(ch, role, t, &lname, 1)?;
        let c = packing.cost(t_rows);
        results.push(r.clone().with_reference(&format!(
            "{} cts up, {} down, {} pt×ct; {reference}",
            c.cts_up, c.cts_down, c.products
        )));
        measured.push((short, r));
        drop(enc);
        if opts.verify {
            verify_linear(ch, server, ring, &x, &y, &w, &bias, t_rows, k, n)?;
        }
    }
    Ok(measured)
}

/// The seconds and counts of the measured rows named `short`, `times` over.
fn sum_rows(
    measured: &[(String, BenchResult)],
    short: &str,
    times: u64,
) -> (f64, crate::net::Counters) {
    let mut s = (0.0, crate::net::Counters::default());
    for (name, r) in measured {
        if name == short {
            s.0 += r.seconds * times as f64;
            s.1.bytes_sent += r.bytes_sent * times;
            s.1.bytes_received += r.bytes_received * times;
            s.1.rounds += r.rounds * times;
        }
    }
    s
}

/// Attention of one layer against a 256-row cache (12 heads of 64), in steady state: the
/// caches' encryptions are prepared (offline), the first 255 rows re-shared by an earlier
/// step, and the measured step adds row 256. Pushes the prepare, q·Kᵀ and P·V rows; returns
/// the two products over the 12 layers.
fn attention_rows<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    ring: crate::protocols::shares::Ring,
    he: crate::crypto::rlwe::HeSession,
    rng: &mut Prg,
    results: &mut Vec<BenchResult>,
) -> Result<(f64, crate::net::Counters), BenchError> {
    use crate::protocols::attention_he::{self, AttnLayout, DuplexHe, Operand, SharedCache};
    let l = ring.bits;
    let he = scoped(ch, "he-duplex", |ch| DuplexHe::extend(he, ch))?;
    let (heads, d, rows) = (12usize, 64usize, 256usize);
    let c = heads * d;
    let mut kc = SharedCache::new(AttnLayout::new(ring, Operand::Keys, heads, d, rows)?);
    let mut vc = SharedCache::new(AttnLayout::new(ring, Operand::Values, heads, d, rows)?);
    let t = start(ch, role)?;
    scoped(ch, "attention-prepare", |ch| -> Result<(), ProtocolError> {
        attention_he::prepare(&he, ch, role, ring, &mut kc, rows)?;
        attention_he::prepare(&he, ch, role, ring, &mut vc, rows)
    })?;
    results.push(
        finish(ch, role, t, "attention-prepare", 1)?.with_reference(&format!(
            "offline, one layer's key and value caches for {rows} rows (ahead of the tokens)"
        )),
    );
    let keys = ring.random(rng, rows * c);
    let values = ring.random(rng, rows * c);
    let q = ring.random(rng, c);
    let p_earlier = ring.random(rng, heads * (rows - 1));
    let p = ring.random(rng, heads * rows);
    scoped(ch, "attention-warmup", |ch| -> Result<(), ProtocolError> {
        attention_he::qk_t(
            &he,
            ch,
            role,
            ring,
            &mut kc,
            &q,
            &keys[..(rows - 1) * c],
            1,
            true,
        )?;
        attention_he::pv(
            &he,
            ch,
            role,
            ring,
            &mut vc,
            &p_earlier,
            &values[..(rows - 1) * c],
            1,
            true,
        )
        .map(drop)
    })?;
    let mut att = (0.0, crate::net::Counters::default());
    for (name, is_keys) in [("qkt", true), ("pv", false)] {
        let row = format!("attention-{name}-12x64-{rows}rows-l{l}");
        let t = start(ch, role)?;
        scoped(ch, &row, |ch| -> Result<(), ProtocolError> {
            if is_keys {
                attention_he::qk_t(&he, ch, role, ring, &mut kc, &q, &keys, 1, true).map(drop)
            } else {
                attention_he::pv(&he, ch, role, ring, &mut vc, &p, &values, 1, true).map(drop)
            }
        })?;
        let r = finish(ch, role, t, &row, 1)?;
        att.0 += r.seconds * GPT2_LAYERS as f64;
        att.1.bytes_sent += r.bytes_sent * GPT2_LAYERS as u64;
        att.1.bytes_received += r.bytes_received * GPT2_LAYERS as u64;
        att.1.rounds += r.rounds * GPT2_LAYERS as u64;
        results.push(r.with_reference(
            "one layer, one decode step; research projection 1.19 MB per layer for both",
        ));
    }
    Ok(att)
}

/// The client reveals x_C and y_C; the server checks y_S + y_C = x·W + b mod 2^ℓ.
#[allow(clippy::too_many_arguments)]
fn verify_linear<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    ring: crate::protocols::shares::Ring,
    x: &[u64],
    y: &[u64],
    w: &[i64],
    bias: &[i64],
    t: usize,
    k: usize,
    n: usize,
) -> Result<(), BenchError> {
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            ch.send_packed(x, ring.bits)?;
            ch.send_packed(y, ring.bits)?;
            return Ok(ch.flush()?);
        }
        let xc = ch.recv_packed(x.len(), ring.bits)?;
        let yc = ch.recv_packed(y.len(), ring.bits)?;
        let x = ring.add_vec(x, &xc);
        let y = ring.add_vec(y, &yc);
        for r in 0..t {
            let mut acc: Vec<i128> = bias.iter().map(|&b| b as i128).collect();
            for i in 0..k {
                let xi = ring.to_signed(x[r * k + i]) as i128;
                for (a, &wv) in acc.iter_mut().zip(&w[i * n..(i + 1) * n]) {
                    *a += xi * wv as i128;
                }
            }
            for (c, a) in acc.into_iter().enumerate() {
                if y[r * n + c] != (a as u64) & ring.mask() {
                    return Err(BenchError::Verify(format!(
                        "linear {t}×{k}·{k}×{n}: output ({r}, {c})"
                    )));
                }
            }
        }
        Ok(())
    })
}
