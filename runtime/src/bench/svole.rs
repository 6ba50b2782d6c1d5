//! The subfield-VOLE product bench (CipherGPT §4).

use super::*;

/// Settings of the subfield-VOLE product bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct SvoleBenchOptions {
    /// Ring width ℓ.
    pub ring_bits: u32,
    /// Weights are uniform in ±2^(weight_bits − 1).
    pub weight_bits: u32,
    /// Input rows per iteration (n), the weight's rows (m) and columns (k).
    pub rows: usize,
    pub inner: usize,
    pub cols: usize,
    /// Iterations prepared together (t): the correlation covers t·n rows.
    pub iterations: usize,
    /// After the online products, the client reveals its shares of the first iteration and the
    /// server checks them against x·Y (outside the measured scopes).
    pub verify: bool,
}

/// Run the sVOLE product bench as `role` on `ch`: silent-OT setup, the preparation of t·n rows
/// for one m × k weight (with its phases' bytes), then t online products of n rows, and the
/// amortised cost per iteration beside CipherGPT's.
pub fn svole_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &SvoleBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    use crate::protocols::masked_matmul;
    use crate::protocols::shares::Ring;
    use crate::protocols::svole_matmul::{self, SvoleParams};
    use rand::Rng;
    let ring = Ring::new(opts.ring_bits)?;
    let (n, m, k, t) = (opts.rows, opts.inner, opts.cols, opts.iterations);
    let server = role == Role::Server;
    let mut rng = Prg::from_entropy();
    let mut results = Vec::new();
    let params = SvoleParams::new(ring, n * t, m, k)?;
    let cost = params.cost(ring)?;
    let t0 = start(ch, role)?;
    let mut ot = scoped(ch, "ot-setup", |ch| OtPair::setup(ch, role, &mut rng))?;
    results.push(finish(ch, role, t0, "ot-setup", 1)?);
    let wb = 1i64 << (opts.weight_bits - 1);
    let w: Vec<i64> = if server {
        (0..m * k).map(|_| rng.gen_range(-wb..wb)).collect()
    } else {
        Vec::new()
    };
    let shape = format!("{n}x{m}x{k}-t{t}-l{}", opts.ring_bits);
    let prep = format!("svole-prepare-{shape}");
    let t0 = start(ch, role)?;
    let mut corr = scoped(ch, &prep, |ch| {
        svole_matmul::prepare(
            &mut Party::new(&mut ot, ch, role),
            ring,
            params,
            server.then_some(&w[..]),
            None,
        )
    })?;
    let prepared = finish(ch, role, t0, &prep, 1)?;
    results.push(prepared.clone().with_reference(&format!(
        "{} rows, noise weight {}, {} limbs, {} noise values per ciphertext",
        n * t,
        params.noise,
        params.limbs,
        params.per_ct
    )));
    for (phase, formula) in [
        ("keys", cost.keys_down),
        ("products", cost.products_up),
        ("trees", 0),
        ("corrections", cost.corrections_down),
    ] {
        let c = ch.stats().scope_inclusive(&format!("{prep}/{phase}"));
        let note = if phase == "trees" {
            format!("{} chosen-message OTs (silent)", cost.tree_ots)
        } else {
            format!("formula {formula} bytes")
        };
        results.push(
            BenchResult::new(&format!("  {phase}"), 1, 0.0, c)
                .with_reference(&format!("part of the preparation: {note}")),
        );
    }
    let online = format!("svole-online-{n}x{m}x{k}");
    let mut first: Option<(Vec<u64>, Vec<u64>)> = None;
    let t0 = start(ch, role)?;
    for _ in 0..t {
        let x = if server {
            Vec::new()
        } else {
            ring.random(&mut rng, n * m)
        };
        let y = scoped(ch, &online, |ch| {
            masked_matmul::multiply(
                ch,
                role,
                ring,
                &mut corr,
                (!server).then_some(&x[..]),
                server.then_some(&w[..]),
                n,
            )
        })?;
        if first.is_none() {
            first = Some((x, y));
        }
    }
    let on = finish(ch, role, t0, &online, t as u64)?;
    results.push(on.clone().with_reference(&format!(
        "per iteration: the client's masked input, {} bytes",
        cost.online_per_row * n
    )));
    let mut total = prepared.clone();
    total.seconds += on.seconds;
    total.bytes_sent += on.bytes_sent;
    total.bytes_received += on.bytes_received;
    total.rounds += on.rounds;
    let c = crate::net::Counters {
        bytes_sent: total.bytes_sent,
        bytes_received: total.bytes_received,
        rounds: total.rounds,
    };
    results.push(
        BenchResult::new(
            &format!("svole-per-iteration-{shape}"),
            t as u64,
            total.seconds,
            c,
        )
        .with_reference(
            "amortised (preparation + online) / t; CipherGPT 256×768·768×768 at t = 256: \
                 1,462 ms, 8.2 MB (Fig. 3)",
        ),
    );
    if opts.verify {
        if let Some((x, y)) = first {
            scoped(ch, "verify", |ch| -> Result<(), BenchError> {
                if !server {
                    ch.send_packed(&x, ring.bits)?;
                    ch.send_packed(&y, ring.bits)?;
                    return Ok(ch.flush()?);
                }
                let x = ch.recv_packed(n * m, ring.bits)?;
                let yc = ch.recv_packed(n * k, ring.bits)?;
                for r in 0..n {
                    for c in 0..k {
                        let mut acc = 0u64;
                        for i in 0..m {
                            acc = acc.wrapping_add(x[r * m + i].wrapping_mul(w[i * k + c] as u64));
                        }
                        if ring.add(y[r * k + c], yc[r * k + c]) != ring.reduce(acc) {
                            return Err(BenchError::Verify(format!(
                                "svole {n}×{m}·{m}×{k}: output ({r}, {c})"
                            )));
                        }
                    }
                }
                Ok(())
            })?;
        }
    }
    Ok(results)
}
