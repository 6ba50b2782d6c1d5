//! The protocols bench: each non-linear protocol on random shared elements.

use super::*;

/// Settings of the protocols bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct ProtocolBenchOptions {
    /// Elements per protocol.
    pub n: usize,
    /// Ring width ℓ.
    pub ring_bits: u32,
    /// Fractional bits f of the fixed-point protocols (GELU, softmax, LayerNorm), as in a plan.
    pub frac_bits: u32,
}

/// Entries of a softmax row in the bench (GPT-2 small's context in CipherGPT's evaluation).
pub const SOFTMAX_ROW: usize = 256;
/// Entries of a LayerNorm row in the bench (GPT-2 small's width).
pub const LAYERNORM_ROW: usize = 768;
/// Entries of the argmax in the bench (GPT-2's vocabulary).
pub const ARGMAX_LEN: usize = 50_257;
/// The K of the top-K sampling rows (over [`ARGMAX_LEN`] logits).
pub const TOPK_KS: [usize; 3] = [1, 50, 100];

/// Run the non-linear protocols bench as `role` on `ch`: each protocol on `n` random shared
/// elements in its own channel scope, after one OT setup in both directions (reported apart).
pub fn protocols_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &ProtocolBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    use crate::protocols::shares::Ring;
    let mut rng = Prg::from_entropy();
    let ring = Ring::new(opts.ring_bits)?;
    let mut results = Vec::new();
    let t = start(ch, role)?;
    let ot = scoped(ch, "ot-setup", |ch| OtPair::setup(ch, role, &mut rng))?;
    results.push(finish(ch, role, t, "ot-setup", 1)?);
    results.push(silent_cot(ch, role, opts, &mut rng)?);
    let mut rows = Rows { role, ot, results };
    ring_rows(&mut rows, ch, ring, opts, &mut rng)?;
    fixed_point_rows(&mut rows, ch, ring, opts, &mut rng)?;
    selection_rows(&mut rows, ch, ring, opts, &mut rng)?;
    Ok(rows.results)
}

/// Silent random COT, server → client, on a pair of its own from scratch (base OTs and
/// bootstrapping batches included): the 531,984 COTs of the small batches, then whole main
/// batches of 10,198,341 (1 at n < 2^15, up to 3 at n ≥ 2^15), amortised.
fn silent_cot<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &ProtocolBenchOptions,
    rng: &mut Prg,
) -> Result<BenchResult, BenchError> {
    let main_batches = (opts.n >> 14).clamp(1, 3);
    let n_cot = 531_984 + main_batches * 10_198_341;
    let t = start(ch, role)?;
    scoped(ch, "silent-cot", |ch| -> Result<(), NetError> {
        let mut p = OtPair::setup(ch, role, rng)?;
        let mut buf = vec![Block::ZERO; BATCH];
        let mut left = n_cot;
        while left > 0 {
            let m = left.min(BATCH);
            if role == Role::Server {
                p.sender.send_cot_random_into(ch, &mut buf[..m])?;
            } else {
                p.receiver.recv_cot_random(ch, m)?;
            }
            left -= m;
        }
        Ok(())
    })?;
    let r = finish(ch, role, t, "silent-cot", n_cot as u64)?;
    Ok(r.with_reference("Ferret: 0.44 bit/COT, 2 flights per batch; IKNP 128 bit/COT"))
}

/// The rows measured so far and the OT pair the protocols run on.
struct Rows {
    role: Role,
    ot: OtPair,
    results: Vec<BenchResult>,
}

impl Rows {
    /// Each protocol runs in a scope of its own name; `finish` reads that scope's counters.
    fn measure<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        name: String,
        reference: Option<&str>,
        count: u64,
        body: &mut dyn FnMut(&mut C, &mut OtPair) -> Result<(), ProtocolError>,
    ) -> Result<(), BenchError> {
        let role = self.role;
        let t = start(ch, role)?;
        scoped(ch, &name, |ch| body(ch, &mut self.ot))?;
        let r = finish(ch, role, t, &name, count)?;
        let r = without_batches(ch, r);
        self.results.push(match reference {
            Some(text) => r.with_reference(text),
            None => r,
        });
        Ok(())
    }
}

/// Small random fixed-point values at `f` fractional bits (the costs do not depend on them).
fn small(rng: &mut Prg, ring: crate::protocols::shares::Ring, f: u32, len: usize) -> Vec<u64> {
    use rand::RngCore;
    let k = (f + 4).min(ring.bits - 3);
    (0..len)
        .map(|_| ring.from_signed((rng.next_u64() >> (63 - k)) as i64 - (1i64 << k)))
        .collect()
}

/// The per-element ring protocols: product, comparison, truncation, B2A and mux.
fn ring_rows<C: Channel + ?Sized>(
    rows: &mut Rows,
    ch: &mut C,
    ring: crate::protocols::shares::Ring,
    opts: &ProtocolBenchOptions,
    rng: &mut Prg,
) -> Result<(), BenchError> {
    use crate::protocols::{b2a::b2a, cmp::drelu, mul::mul, mux::mux, trunc::trunc};
    let (role, n, l) = (rows.role, opts.n as u64, opts.ring_bits);
    let x = ring.random(rng, opts.n);
    let y = ring.random(rng, opts.n);
    let bits: Vec<bool> = rng.bools(opts.n);
    rows.measure(ch, format!("product-l{l}"), None, n, &mut |ch, ot| {
        mul(&mut Party::new(ot, ch, role), ring, &x, &y).map(drop)
    })?;
    rows.measure(
        ch,
        format!("comparison-l{l}"),
        Some("Cheetah ≈51 B (ℓ=37); CrypTFlow2 ≈657 B; SPU 127 B (FM64)"),
        n,
        &mut |ch, ot| drelu(&mut Party::new(ot, ch, role), ring, &x).map(drop),
    )?;
    // Truncation by 12 bits (CipherGPT's scale), exact: floor(x / 2^12).
    if l > 12 {
        rows.measure(
            ch,
            format!("truncation-l{l}-s12"),
            Some("Cheetah faithful 724 bit ≈ 91 B (ℓ=37, s=12); CrypTFlow2 ≈ 7.4 kbit"),
            n,
            &mut |ch, ot| trunc(&mut Party::new(ot, ch, role), ring, 12, &x).map(drop),
        )?;
    }
    rows.measure(ch, format!("b2a-l{l}"), None, n, &mut |ch, ot| {
        b2a(&mut Party::new(ot, ch, role), ring, &bits).map(drop)
    })?;
    rows.measure(ch, format!("mux-l{l}"), None, n, &mut |ch, ot| {
        mux(&mut Party::new(ot, ch, role), ring, &bits, &x).map(drop)
    })?;

    Ok(())
}

/// Per-row protocols: the count is rows, so bytes/op is per row. Inputs are small random
/// fixed-point values (the costs do not depend on them). GELU (direct, then prepared and
/// online apart), softmax and LayerNorm.
fn fixed_point_rows<C: Channel + ?Sized>(
    rows: &mut Rows,
    ch: &mut C,
    ring: crate::protocols::shares::Ring,
    opts: &ProtocolBenchOptions,
    rng: &mut Prg,
) -> Result<(), BenchError> {
    use crate::protocols::{
        gelu::{self, gelu},
        layernorm::layernorm,
        softmax::softmax,
    };
    use ciphergpt_compiler::fixed::lower::{GELU_PIECES_LOG2, SCORE_FRAC_MAX};
    use ciphergpt_compiler::fixed::semantics;
    let (role, n, l, f) = (rows.role, opts.n as u64, opts.ring_bits, opts.frac_bits);
    let gelu_t = semantics::fit_gelu(f, 2, GELU_PIECES_LOG2, semantics::GeluForm::Tanh)
        .map_err(|e| NetError::InvalidArgument(format!("bench gelu: {e}")))?;
    let gx = small(rng, ring, f, opts.n);
    rows.measure(
        ch,
        format!("gelu-l{l}-f{f}"),
        Some("CipherGPT ≈730 B (2^20 in 30.6 s, 765 MB; ℓ=37, f=12, 64 pieces); SPU 2,840 B"),
        n,
        &mut |ch, ot| gelu(&mut Party::new(ot, ch, role), ring, &gelu_t, &gx).map(drop),
    )?;
    // The same GELU on a correlation prepared ahead (one-hot vectors and triples): the
    // preparation and the online part apart.
    let mut prepared = None;
    rows.measure(
        ch,
        format!("gelu-prepare-l{l}-f{f}"),
        None,
        n,
        &mut |ch, ot| {
            prepared = Some(gelu::prepare(
                &mut Party::new(ot, ch, role),
                ring,
                &gelu_t,
                opts.n,
            )?);
            Ok(())
        },
    )?;
    let prepared = prepared.ok_or_else(|| NetError::InvalidArgument("bench gelu".into()))?;
    rows.measure(
        ch,
        format!("gelu-prepared-l{l}-f{f}"),
        Some("online part only; CipherGPT ≈730 B"),
        n,
        &mut |ch, ot| {
            gelu::gelu_prepared(
                &mut Party::new(ot, ch, role),
                ring,
                &gelu_t,
                &gx,
                &prepared,
                0,
            )
            .map(drop)
        },
    )?;
    // Softmax over rows of 256 with the plan's tables: scores at min(f, 12) fractional bits,
    // exponentials at f + 2, probabilities at f.
    let sm_rows = (opts.n / SOFTMAX_ROW).max(1);
    let sm_t = semantics::fit_exp_tables(f.min(SCORE_FRAC_MAX), f + 2, f)
        .map_err(|e| NetError::InvalidArgument(format!("bench softmax: {e}")))?;
    let scores = small(rng, ring, f, sm_rows * SOFTMAX_ROW);
    let lens = vec![SOFTMAX_ROW; sm_rows];
    rows.measure(
        ch,
        format!("softmax-row{SOFTMAX_ROW}-l{l}"),
        Some("CipherGPT ≈353 B/entry (3,332 MB / 144 rows·256²); SPU 4,150 B/entry"),
        sm_rows as u64,
        &mut |ch, ot| softmax(&mut Party::new(ot, ch, role), ring, &sm_t, &scores, &lens).map(drop),
    )?;
    let ln_rows = (opts.n / LAYERNORM_ROW).max(1);
    let ln = semantics::layernorm_params(LAYERNORM_ROW, 1e-5, f, 50.0)
        .map_err(|e| NetError::InvalidArgument(format!("bench layernorm: {e}")))?;
    let xs = small(rng, ring, f, ln_rows * LAYERNORM_ROW);
    rows.measure(
        ch,
        format!("layernorm-row{LAYERNORM_ROW}-l{l}"),
        Some("CipherGPT ≈330 B/entry (1,625 MB / 25·256 rows of 768)"),
        ln_rows as u64,
        &mut |ch, ot| layernorm(&mut Party::new(ot, ch, role), ring, &ln, &xs).map(drop),
    )?;
    Ok(())
}

/// The selections over the vocabulary: argmax, then top-K sampling for each K.
fn selection_rows<C: Channel + ?Sized>(
    rows: &mut Rows,
    ch: &mut C,
    ring: crate::protocols::shares::Ring,
    opts: &ProtocolBenchOptions,
    rng: &mut Prg,
) -> Result<(), BenchError> {
    use crate::protocols::{
        argmax::argmax,
        topk::{sample, topk, Temperature, TopKParams},
    };
    use ciphergpt_compiler::fixed::lower::SCORE_FRAC_MAX;
    use ciphergpt_compiler::fixed::semantics;
    use ciphergpt_compiler::plan::Sample;
    let (role, l, f) = (rows.role, opts.ring_bits, opts.frac_bits);
    let z = small(rng, ring, f, ARGMAX_LEN);
    rows.measure(
        ch,
        format!("argmax-{ARGMAX_LEN}-l{l}"),
        Some("CipherGPT top-100 of 50,257: 136 MB, 3.3 s (top-k, not argmax)"),
        1,
        &mut |ch, ot| argmax(&mut Party::new(ot, ch, role), ring, &z).map(drop),
    )?;
    // Top-K sampling over the vocabulary (CipherGPT §V–VI): shuffle, selection, one draw at
    // T = 0.8 from the softmax of the K survivors (tables at the plan's scales).
    let fs = f.min(SCORE_FRAC_MAX);
    let sample_t = semantics::fit_exp_tables(fs, f + 2, f)
        .map_err(|e| NetError::InvalidArgument(format!("bench top-k: {e}")))?;
    let temp = Temperature {
        mul: Temperature::from_f64(0.8)?.mul,
        shift: Sample::TEMPERATURE_FRAC + f - fs,
    };
    for k in TOPK_KS {
        rows.measure(
            ch,
            format!("topk{k}-{ARGMAX_LEN}-l{l}"),
            (k == 100).then_some("CipherGPT top-100 of 50,257: 3,281 ms, 136 MB"),
            1,
            &mut |ch, ot| {
                let top = topk(
                    &mut Party::new(ot, ch, role),
                    ring,
                    &z,
                    k,
                    &TopKParams::default(),
                )?;
                sample(
                    &mut Party::new(ot, ch, role),
                    ring,
                    &top,
                    temp,
                    &sample_t,
                    1,
                )
                .map(drop)
            },
        )?;
    }
    Ok(())
}
