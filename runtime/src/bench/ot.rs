//! The OT bench: each OT flavour (base OT, correlated, random, chosen-message, ring, 1-of-N,
//! bit triples) on its own scope, optionally verified against its definition.

use super::*;

/// Settings of the OT bench (both parties must use the same).
#[derive(Clone, Debug)]
pub struct OtBenchOptions {
    /// Number of random correlated OTs; the other flavours run a fraction of it.
    pub n: usize,
    /// After each flavour, reveal the last batch to the server and check it against the
    /// definition (outside the measured scopes).
    pub verify: bool,
}

/// Per-flavour state of the last batch, revealed for verification.
enum Last {
    None,
    Blocks(Vec<Block>),
    Pairs(Vec<[Block; 2]>),
    Values(Vec<u64>),
}

/// Run the OT bench as `role` on `ch`; returns the results as this party counts them.
pub fn ot_bench<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    opts: &OtBenchOptions,
) -> Result<Vec<BenchResult>, BenchError> {
    let mut rng = Prg::from_entropy();
    let mut results = Vec::new();
    let pair = base_ots(ch, role, &mut rng, &mut results)?;
    let mut run = Run {
        ch,
        role,
        opts,
        n: opts.n.max(128),
        pair,
        rng,
        results,
    };
    run.cot_rows()?;
    run.rot_row()?;
    run.cot_ring_row()?;
    run.chosen_row()?;
    run.one_of_n_row()?;
    run.triples_row()?;
    Ok(run.results)
}

/// One party's run of the rows after the base OTs: its channel, role and settings, the OT pair
/// the base OTs set up, its randomness, and the results so far.
struct Run<'a, C: Channel + ?Sized> {
    ch: &'a mut C,
    role: Role,
    opts: &'a OtBenchOptions,
    /// OTs of the first row; the other rows run a fraction of it.
    n: usize,
    pair: OtPair,
    rng: Prg,
    results: Vec<BenchResult>,
}

/// The base OTs: the server's as COT sender (measured), then the reverse direction (not).
fn base_ots<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    rng: &mut Prg,
    results: &mut Vec<BenchResult>,
) -> Result<OtPair, BenchError> {
    let server = role == Role::Server;
    // Base OT: the server is the COT sender, i.e. the base-OT receiver.
    let t = start(ch, role)?;
    let (mut sender, mut receiver) = scoped(ch, "base-ot", |ch| -> Result<_, NetError> {
        Ok(if server {
            (Some(CotSender::setup(ch, rng)?), None)
        } else {
            (None, Some(CotReceiver::setup(ch, rng)?))
        })
    })?;
    results.push(finish(ch, role, t, "base-ot", base_ot_count())?);
    // The reverse direction, not measured.
    scoped(ch, "setup", |ch| -> Result<(), NetError> {
        if server {
            receiver = Some(CotReceiver::setup(ch, rng)?);
        } else {
            sender = Some(CotSender::setup(ch, rng)?);
        }
        Ok(())
    })?;
    let pair = OtPair {
        sender: sender.expect("set up above"),
        receiver: receiver.expect("set up above"),
    };
    Ok(pair)
}

impl<C: Channel + ?Sized> Run<'_, C> {
    /// Random correlated OT, both directions.
    fn cot_rows(&mut self) -> Result<(), BenchError> {
        let (role, n, opts) = (self.role, self.n, self.opts);
        let (ch, pair, rng, results) = (
            &mut *self.ch,
            &mut self.pair,
            &mut self.rng,
            &mut self.results,
        );
        let server = role == Role::Server;
        // Random correlated OT, both directions.
        for (name, server_sends) in [("cot", true), ("cot-reverse", false)] {
            let t = start(ch, role)?;
            let last = scoped(ch, name, |ch| -> Result<Last, NetError> {
                let mut buf = vec![Block::ZERO; BATCH.min(n)];
                let mut choices = Vec::new();
                let mut left = n;
                while left > 0 {
                    let m = left.min(BATCH);
                    if server == server_sends {
                        pair.sender.send_cot_into(ch, &mut buf[..m])?;
                    } else {
                        choices = rng.blocks(m.div_ceil(128));
                        pair.receiver
                            .recv_cot_packed_into(ch, &choices, &mut buf[..m])?;
                    }
                    left -= m;
                }
                let m = (n - 1) % BATCH + 1;
                buf.truncate(m);
                if server != server_sends {
                    let mut v = unpack_bools(&choices, m)
                        .into_iter()
                        .map(|b| Block(b as u128))
                        .collect::<Vec<_>>();
                    v.extend(buf);
                    return Ok(Last::Blocks(v));
                }
                Ok(Last::Blocks(buf))
            })?;
            results.push(finish(ch, role, t, name, n as u64)?);
            if opts.verify {
                // The flavour's sender checks, with its own Δ.
                verify_cot(ch, server == server_sends, pair.sender.delta(), last)?;
            }
        }
        Ok(())
    }

    /// Random OT with 128-bit messages.
    fn rot_row(&mut self) -> Result<(), BenchError> {
        let (role, n, opts) = (self.role, self.n, self.opts);
        let (ch, pair, results) = (&mut *self.ch, &mut self.pair, &mut self.results);
        let server = role == Role::Server;
        // Random OT with 128-bit messages.
        let n_rot = n / 2;
        let t = start(ch, role)?;
        let last = scoped(ch, "rot", |ch| -> Result<Last, NetError> {
            let mut last = Last::None;
            let mut left = n_rot;
            while left > 0 {
                let m = left.min(BATCH);
                last = if server {
                    Last::Pairs(pair.sender.send_rot_random(ch, m)?)
                } else {
                    let (b, v) = pair.receiver.recv_rot_random(ch, m)?;
                    Last::Pairs(
                        b.into_iter()
                            .zip(v)
                            .map(|(b, v)| [Block(b as u128), v])
                            .collect(),
                    )
                };
                left -= m;
            }
            Ok(last)
        })?;
        results.push(finish(ch, role, t, "rot", n_rot as u64)?);
        if opts.verify {
            verify_pairs(ch, server, last, "rot")?;
        }
        Ok(())
    }

    /// Correlated OT over Z_2^37 (CrypTFlow2's COT_ℓ).
    fn cot_ring_row(&mut self) -> Result<(), BenchError> {
        let (role, n, opts) = (self.role, self.n, self.opts);
        let (ch, pair, rng, results) = (
            &mut *self.ch,
            &mut self.pair,
            &mut self.rng,
            &mut self.results,
        );
        let server = role == Role::Server;
        let n_ring = n / 4;
        let bits = 37;
        let t = start(ch, role)?;
        let last = scoped(ch, "cot-ring-l37", |ch| -> Result<Last, NetError> {
            let mut last = Last::None;
            let mut left = n_ring;
            while left > 0 {
                let m = left.min(BATCH);
                last = if server {
                    let deltas = rng.values(m, bits);
                    let xs = pair.sender.send_cot_ring(ch, &deltas, bits)?;
                    Last::Values(deltas.into_iter().chain(xs).collect())
                } else {
                    let choices = rng.bools(m);
                    let ys = pair.receiver.recv_cot_ring(ch, &choices, bits)?;
                    Last::Values(choices.iter().map(|&b| b as u64).chain(ys).collect())
                };
                left -= m;
            }
            Ok(last)
        })?;
        results.push(finish(ch, role, t, "cot-ring-l37", n_ring as u64)?);
        if opts.verify {
            verify_ring(ch, server, last, bits)?;
        }
        Ok(())
    }

    /// Chosen-message OT of 128-bit messages.
    fn chosen_row(&mut self) -> Result<(), BenchError> {
        let (role, n, opts) = (self.role, self.n, self.opts);
        let (ch, pair, rng, results) = (
            &mut *self.ch,
            &mut self.pair,
            &mut self.rng,
            &mut self.results,
        );
        let server = role == Role::Server;
        let n_ot = n / 4;
        let t = start(ch, role)?;
        let last = scoped(ch, "ot-chosen-128", |ch| -> Result<Last, NetError> {
            let mut last = Last::None;
            let mut left = n_ot;
            while left > 0 {
                let m = left.min(BATCH);
                last = if server {
                    let msgs: Vec<[Block; 2]> =
                        (0..m).map(|_| [rng.block(), rng.block()]).collect();
                    pair.sender.send_ot(ch, &msgs)?;
                    Last::Pairs(msgs)
                } else {
                    let choices = rng.bools(m);
                    let got = pair.receiver.recv_ot(ch, &choices)?;
                    Last::Pairs(
                        choices
                            .into_iter()
                            .zip(got)
                            .map(|(b, v)| [Block(b as u128), v])
                            .collect(),
                    )
                };
                left -= m;
            }
            Ok(last)
        })?;
        results.push(finish(ch, role, t, "ot-chosen-128", n_ot as u64)?);
        if opts.verify {
            verify_pairs(ch, server, last, "ot-chosen-128")?;
        }
        Ok(())
    }

    /// 1-of-16 OT of 2-bit messages.
    fn one_of_n_row(&mut self) -> Result<(), BenchError> {
        let (role, n, opts) = (self.role, self.n, self.opts);
        let (ch, pair, rng, results) = (
            &mut *self.ch,
            &mut self.pair,
            &mut self.rng,
            &mut self.results,
        );
        let server = role == Role::Server;
        let n16 = n / 16;
        let (nm, lbits) = (16usize, 2u32);
        let t = start(ch, role)?;
        let last = scoped(ch, "ot-1of16-l2", |ch| -> Result<Last, NetError> {
            let mut last = Last::None;
            let mut left = n16;
            let batch = BATCH / 4;
            while left > 0 {
                let m = left.min(batch);
                last = if server {
                    let msgs = rng.values(m * nm, lbits);
                    pair.sender.send_1_of_n(ch, &msgs, nm, lbits)?;
                    Last::Values(msgs)
                } else {
                    let choices: Vec<u32> =
                        rng.values(m, 4).into_iter().map(|c| c as u32).collect();
                    let got = pair.receiver.recv_1_of_n(ch, &choices, nm, lbits)?;
                    Last::Values(choices.iter().map(|&c| c as u64).chain(got).collect())
                };
                left -= m;
            }
            Ok(last)
        })?;
        results.push(finish(ch, role, t, "ot-1of16-l2", n16 as u64)?);
        if opts.verify {
            verify_1_of_n(ch, server, last, nm)?;
        }
        Ok(())
    }

    /// Bit triples, verified by revealing them to the server.
    fn triples_row(&mut self) -> Result<(), BenchError> {
        let (role, n, opts) = (self.role, self.n, self.opts);
        let (ch, pair, results) = (&mut *self.ch, &mut self.pair, &mut self.results);
        let server = role == Role::Server;
        let n_tr = n / 4;
        let t = start(ch, role)?;
        let triples = scoped(ch, "bit-triples", |ch| bit_triples(pair, ch, role, n_tr))?;
        results.push(finish(ch, role, t, "bit-triples", n_tr as u64)?);
        if opts.verify {
            scoped(ch, "verify", |ch| -> Result<(), BenchError> {
                let words = triples.a.len();
                if server {
                    let mut theirs = vec![0u64; 3 * words];
                    for v in theirs.iter_mut() {
                        *v = ch.recv_u64()?;
                    }
                    for i in 0..words {
                        let a = triples.a[i] ^ theirs[i];
                        let b = triples.b[i] ^ theirs[words + i];
                        let c = triples.c[i] ^ theirs[2 * words + i];
                        if c != a & b {
                            return Err(BenchError::Verify(format!("bit triple word {i}")));
                        }
                    }
                } else {
                    for v in triples.a.iter().chain(&triples.b).chain(&triples.c) {
                        ch.send_u64(*v)?;
                    }
                    ch.flush()?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

fn base_ot_count() -> u64 {
    crate::crypto::iknp::KAPPA as u64
}

fn send_last<C: Channel + ?Sized>(ch: &mut C, last: &Last) -> Result<(), NetError> {
    match last {
        Last::None => ch.send_u64(0)?,
        Last::Blocks(v) => {
            ch.send_u64(v.len() as u64)?;
            ch.send_blocks(v)?;
        }
        Last::Pairs(v) => {
            ch.send_u64(v.len() as u64)?;
            for p in v {
                ch.send_blocks(p)?;
            }
        }
        Last::Values(v) => {
            ch.send_u64(v.len() as u64)?;
            ch.send_packed(v, 64)?;
        }
    }
    ch.flush()
}

fn recv_len<C: Channel + ?Sized>(ch: &mut C, want: usize) -> Result<(), BenchError> {
    let got = ch.recv_u64()? as usize;
    if got != want {
        return Err(BenchError::Verify(format!(
            "the client revealed {got} items, expected {want}"
        )));
    }
    Ok(())
}

/// Receiver side reveals (b_i, M_i); the sender checks M_i = K_i ⊕ b_i·Δ.
fn verify_cot<C: Channel + ?Sized>(
    ch: &mut C,
    i_am_sender: bool,
    delta: Block,
    last: Last,
) -> Result<(), BenchError> {
    let Last::Blocks(mine) = last else {
        return Err(BenchError::Verify("no COT output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !i_am_sender {
            // Our Δ is the peer's: reveal choices and outputs; the peer checks.
            return Ok(send_last(ch, &Last::Blocks(mine))?);
        }
        let m = mine.len();
        recv_len(ch, 2 * m)?;
        let mut theirs = vec![Block::ZERO; 2 * m];
        ch.recv_blocks(&mut theirs)?;
        for i in 0..m {
            let b = theirs[i].0 == 1;
            if theirs[m + i] != mine[i] ^ delta.and_bit(b) {
                return Err(BenchError::Verify(format!("COT {i} of the last batch")));
            }
        }
        Ok(())
    })
}

/// Pairs flavours: the server holds (m_0, m_1), the client ([b], m_b).
fn verify_pairs<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    last: Last,
    what: &str,
) -> Result<(), BenchError> {
    let Last::Pairs(mine) = last else {
        return Err(BenchError::Verify("no output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            return Ok(send_last(ch, &Last::Pairs(mine))?);
        }
        recv_len(ch, mine.len())?;
        for (i, p) in mine.iter().enumerate() {
            let mut t = [Block::ZERO; 2];
            ch.recv_blocks(&mut t)?;
            if t[0].0 > 1 || t[1] != p[t[0].0 as usize] {
                return Err(BenchError::Verify(format!("{what} {i} of the last batch")));
            }
        }
        Ok(())
    })
}

fn verify_ring<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    last: Last,
    bits: u32,
) -> Result<(), BenchError> {
    let Last::Values(mine) = last else {
        return Err(BenchError::Verify("no output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            return Ok(send_last(ch, &Last::Values(mine))?);
        }
        recv_len(ch, mine.len())?;
        let theirs = ch.recv_packed(mine.len(), 64)?;
        let m = mine.len() / 2;
        let (deltas, xs) = mine.split_at(m);
        for i in 0..m {
            let want = xs[i].wrapping_add(deltas[i].wrapping_mul(theirs[i])) & mask(bits);
            if theirs[m + i] != want {
                return Err(BenchError::Verify(format!(
                    "ring COT {i} of the last batch"
                )));
            }
        }
        Ok(())
    })
}

fn verify_1_of_n<C: Channel + ?Sized>(
    ch: &mut C,
    server: bool,
    last: Last,
    nm: usize,
) -> Result<(), BenchError> {
    let Last::Values(mine) = last else {
        return Err(BenchError::Verify("no output kept".into()));
    };
    scoped(ch, "verify", |ch| -> Result<(), BenchError> {
        if !server {
            return Ok(send_last(ch, &Last::Values(mine))?);
        }
        let m = mine.len() / nm;
        recv_len(ch, 2 * m)?;
        let theirs = ch.recv_packed(2 * m, 64)?;
        for i in 0..m {
            let c = theirs[i] as usize;
            if c >= nm || theirs[m + i] != mine[i * nm + c] {
                return Err(BenchError::Verify(format!(
                    "1-of-{nm} OT {i} of the last batch"
                )));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mem;
    use std::time::Duration;

    #[test]
    fn ot_bench_runs_and_verifies_in_memory() {
        let (mut a, mut b) = mem::pair(Duration::from_secs(30));
        let opts = OtBenchOptions {
            n: 5000,
            verify: true,
        };
        let o2 = opts.clone();
        let h = std::thread::spawn(move || ot_bench(&mut b, Role::Client, &o2).unwrap());
        let res = ot_bench(&mut a, Role::Server, &opts).unwrap();
        h.join().unwrap();
        let names: Vec<&str> = res.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "base-ot",
                "cot",
                "cot-reverse",
                "rot",
                "cot-ring-l37",
                "ot-chosen-128",
                "ot-1of16-l2",
                "bit-triples"
            ]
        );
        let cot = &res[1];
        assert_eq!(cot.count, 5000);
        // 5000 OTs pad to 5120: 16 bytes each from the client.
        assert_eq!(cot.bytes_received, 16 * 5120);
        assert_eq!(cot.bytes_sent, 0);
        assert_eq!(res[0].bytes_sent, 32 * 128);
        let report = BenchReport {
            machine: machine_info("in-memory"),
            results: res,
        };
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "name",
            "count",
            "seconds",
            "bytes_sent",
            "bytes_received",
            "rounds",
            "bytes_per_op",
            "ops_per_second",
        ] {
            assert!(json["results"][0].get(key).is_some(), "{key}");
        }
        assert!(report.table().contains("ot-1of16-l2"));
    }
}
