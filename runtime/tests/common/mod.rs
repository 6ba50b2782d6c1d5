//! What the runtime's test binaries share: the two-party harness (`ciphergpt_runtime::testing`,
//! both roles as threads, over the in-memory channel or TCP loopback) with the OT extension and
//! transport in the name, one party's view (`tapped_two_party`), whole sessions
//! (`session_pair`), random values, uniformity checks, the trained model, cost formulas.
#![allow(dead_code)]

pub use ciphergpt_runtime::crypto::CotBackend;
use ciphergpt_runtime::crypto::{OtPair, Prg};
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{mem, Channel, Role};
use ciphergpt_runtime::testing::two_party as two_party_on;
pub use ciphergpt_runtime::testing::{on_mem_pair, on_session, Peer, Transport};

/// Both roles in memory on silent OT (the sessions' default): `s` as the server (this thread),
/// `c` as the client (another thread).
pub fn two_party<A, B, S, C>(s: S, c: C) -> (A, B)
where
    S: FnOnce(&mut Peer) -> A,
    C: FnOnce(&mut Peer) -> B + Send + 'static,
    B: Send + 'static,
{
    two_party_on(Transport::Mem, CotBackend::Silent, s, c)
}

/// Both roles over TCP loopback on silent OT.
pub fn two_party_tcp<A, B, S, C>(s: S, c: C) -> (A, B)
where
    S: FnOnce(&mut Peer) -> A,
    C: FnOnce(&mut Peer) -> B + Send + 'static,
    B: Send + 'static,
{
    two_party_on(Transport::Tcp, CotBackend::Silent, s, c)
}

/// [`two_party`] on IKNP OT extension (for tests of IKNP's exact costs and wire format).
pub fn two_party_iknp<A, B, S, C>(s: S, c: C) -> (A, B)
where
    S: FnOnce(&mut Peer) -> A,
    C: FnOnce(&mut Peer) -> B + Send + 'static,
    B: Send + 'static,
{
    two_party_on(Transport::Mem, CotBackend::Iknp, s, c)
}

/// [`two_party_tcp`] on IKNP OT extension.
pub fn two_party_tcp_iknp<A, B, S, C>(s: S, c: C) -> (A, B)
where
    S: FnOnce(&mut Peer) -> A,
    C: FnOnce(&mut Peer) -> B + Send + 'static,
    B: Send + 'static,
{
    two_party_on(Transport::Tcp, CotBackend::Iknp, s, c)
}

/// What one party sees: both roles in memory, each with the OT extension `backend` set up,
/// `tapped` on this thread on a [`Tap`] of its channel (its `received` bytes from the OT setup
/// on), the other role on another thread; returns both results.
pub fn tapped_two_party<A, B, M, T>(tapped: Role, backend: CotBackend, mine: M, theirs: T) -> (A, B)
where
    M: FnOnce(&mut OtPair, &mut Tap<mem::MemChannel>) -> A,
    T: FnOnce(&mut OtPair, &mut mem::MemChannel) -> B + Send + 'static,
    B: Send + 'static,
{
    let setup = move |ch: &mut dyn Channel, role| {
        OtPair::setup_with(ch, role, backend, &mut Prg::from_entropy()).unwrap()
    };
    on_mem_pair(
        |ch| {
            let mut tap = Tap::new(ch);
            let mut ot = setup(&mut tap, tapped);
            mine(&mut ot, &mut tap)
        },
        move |mut ch| {
            let mut ot = setup(&mut ch, tapped.other());
            theirs(&mut ot, &mut ch)
        },
    )
}

/// Random ℓ-bit values with the edge values first: 0, 1, −1, ±max, 2^(ℓ−1) and its neighbours.
pub fn values_with_edges(rng: &mut Prg, n: usize, bits: u32) -> Vec<u64> {
    let m = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let h = 1u64 << (bits - 1);
    let edges = [
        0,
        1,
        m,
        h - 1,
        h,
        h + 1,
        m - 1,
        h.wrapping_sub(2) & m,
        2 & m,
    ];
    let mut v = rng.values(n, bits);
    for (x, e) in v.iter_mut().zip(edges) {
        *x = e & m;
    }
    v
}

/// z-score of `ones` successes out of n fair coin flips.
pub fn z_fair(ones: usize, n: usize) -> f64 {
    (ones as f64 - n as f64 / 2.0) / ((n as f64).sqrt() / 2.0)
}

/// Every bit position of ℓ-bit values is a fair coin and uncorrelated with `x`'s same bit
/// (|z| < 6: a false alarm has probability < 1e-8 per check). Returns the largest |z|.
pub fn assert_uniform_and_independent(view: &[u64], x: &[u64], bits: u32, what: &str) -> f64 {
    assert_eq!(view.len(), x.len());
    let n = view.len();
    let mut worst = 0f64;
    for pos in 0..bits {
        let ones = view.iter().filter(|&&v| (v >> pos) & 1 == 1).count();
        let agree = view
            .iter()
            .zip(x)
            .filter(|(&v, &x)| (v >> pos) & 1 == (x >> pos) & 1)
            .count();
        for z in [z_fair(ones, n), z_fair(agree, n)] {
            assert!(z.abs() < 6.0, "{what}: bit {pos}: z = {z:.2}");
            worst = worst.max(z.abs());
        }
    }
    worst
}

/// x·W mod 2^ℓ in the clear, for x `[n × m]` (values mod 2^ℓ) and signed W `[m × k]`.
pub fn plain_product(
    ring: ciphergpt_runtime::protocols::shares::Ring,
    x: &[u64],
    w: &[i64],
    m: usize,
    k: usize,
) -> Vec<u64> {
    let n = x.len() / m;
    let mut y = vec![0u64; n * k];
    for r in 0..n {
        for i in 0..m {
            for c in 0..k {
                let v = x[r * m + i].wrapping_mul(w[i * k + c] as u64);
                y[r * k + c] = y[r * k + c].wrapping_add(v);
            }
        }
    }
    y.into_iter().map(|v| ring.reduce(v)).collect()
}

/// The bundled trained model compiled with `options` (the plan and its weights).
pub fn trained_with(
    options: &ciphergpt_compiler::fixed::Options,
) -> (
    ciphergpt_compiler::plan::Plan,
    ciphergpt_compiler::plan::WeightsFile,
) {
    use ciphergpt_compiler::model::{self, ModelSpec};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tiny-trained.torchscript.onnx");
    let graph = model::load(&ModelSpec {
        path,
        ..Default::default()
    })
    .unwrap();
    let c = ciphergpt_compiler::fixed::compile(&graph, options).unwrap();
    (c.plan, c.weights)
}

/// The logits register: the input of the plan's token choice.
pub fn logits_register(plan: &ciphergpt_compiler::plan::Plan) -> u32 {
    use ciphergpt_compiler::plan::instruction::Op;
    plan.decode
        .as_ref()
        .unwrap()
        .instructions
        .iter()
        .find(|i| matches!(i.op, Some(Op::Sample(_))))
        .unwrap()
        .inputs[0]
}

/// Millionaires' bits on k-bit inputs with m-bit digits on IKNP (`protocols::cmp`): q leaves of
/// m·λ + 2^m·2 bits, and the tree's node OTs down to `top` nodes (per node log₂N choices of λ
/// bits and N messages of 1 or 2 bits).
pub fn mill_bits_to(k: u32, m: u32, top: usize) -> u64 {
    let q = k.div_ceil(m) as u64;
    q * (m as u64 * 128 + (2u64 << m)) + tree_bits(q as usize, top)
}

/// [`mill_bits_to`] down to one node: the comparison.
pub fn mill_bits(k: u32, m: u32) -> u64 {
    mill_bits_to(k, m, 1)
}

/// Bits of a millionaires' tree of q digits down to `top` nodes on IKNP, by its shape.
pub fn tree_bits(q: usize, top: usize) -> u64 {
    use ciphergpt_runtime::protocols::cmp;
    cmp::tree_groups(q, top)
        .iter()
        .map(|g| {
            let (ots, n, out) = cmp::tree_level(g);
            ots * (u64::from(n.trailing_zeros()) * 128 + n * out)
        })
        .sum()
}

/// The same with the cheapest digit width up to 6, as the protocol picks it
/// (`cmp::cheapest_digit_bits`).
pub fn mill_best(k: u32) -> u64 {
    (1..=6).map(|m| mill_bits(k, m)).min().unwrap()
}

/// Bits of `cmp::carry_arith_each` per element on IKNP, k-bit carries into `out`-bit shares at the
/// cheapest digit width: the millionaires' less its last AND (2λ + 4 bits) and one 1-out-of-8 OT
/// of `out`-bit messages (3λ + 8·out bits); with one digit, the millionaires' and a B2A.
pub fn carry_arith_bits(k: u32, out: u64) -> u64 {
    let m = ciphergpt_runtime::protocols::cmp::cheapest_digit_bits(k);
    if k.div_ceil(m) == 1 {
        mill_best(k) + 128 + out
    } else {
        mill_bits_to(k, m, 2) + 3 * 128 + 8 * out
    }
}

/// Bits of `max::row_max` on one row of `len` entries over Z_2^ℓ on IKNP: per level, the row's
/// candidates in groups of four (the last group of 2 or 3, or a single that passes up), the
/// pairwise comparisons of every group (millionaires' on ℓ − 1 bits at the cheapest digit
/// width) and per group two 1-out-of-64 OTs of ℓ-bit messages (6 COTs of λ bits and 64·ℓ bits
/// each).
pub fn row_max_bits(l: u32, len: u64) -> u64 {
    let mut n = len;
    let mut total = 0;
    while n > 1 {
        let (full, rest) = (n / 4, n % 4);
        let mut comps = 6 * full;
        let mut groups = full;
        if rest >= 2 {
            comps += rest * (rest - 1) / 2;
            groups += 1;
        }
        total += comps * mill_best(l - 1) + groups * 2 * (6 * 128 + 64 * l as u64);
        n = n.div_ceil(4);
    }
    total
}

/// Bits of `inverse::inv_pow` per input on IKNP for a call on `n` inputs (its module doc's cost,
/// term by term), with COT_k = λ + k and W = 64, every comparison at the digit width
/// `cmp::row_digit_bits` gives its count: the B − 1 DReLUs on B + 1 bits (millionaires' on B
/// bits), two multiplexer calls of B values (2 COT_64 each), the carries on R bits in
/// arithmetic shares (the millionaires' less its last AND, and a 1-out-of-8 OT), the lookup of
/// two 64-bit tables (two OT groups of T·λ + 2^T·64 bits), the product over W (two cross terms
/// of 64 COTs of 64, 63, …, 1 bits) and a truncation of a non-negative value with headroom
/// (its millionaires', then the carry's B2A over W and the extension's COT_s in one call).
pub fn inv_pow_bits(t: &ciphergpt_compiler::fixed::semantics::InvTables, n: u64) -> u64 {
    use ciphergpt_runtime::protocols::cmp::row_digit_bits;
    let cot = |k: u64| 128 + k;
    let b = t.in_bits as u64;
    let (r1, r2) = (t.index_shift(), t.pos_shift());
    let carries = if r2 > 0 { 2 } else { 1 };
    let trunc_nn = |s: u32| {
        if s == 0 {
            0
        } else {
            mill_bits(s, row_digit_bits(s, n)) + cot(64) + cot(s as u64)
        }
    };
    // The carries' millionaires' with its tree down to the last pair, then one 1-out-of-8 OT
    // of 64-bit messages (3 COTs) for that pair and the B2A (one digit: a B2A's COT).
    let carry_bits = if r1 > 0 {
        let m = row_digit_bits(r1, carries * n);
        if r1.div_ceil(m) == 1 {
            mill_bits(r1, m) + cot(64)
        } else {
            mill_bits_to(r1, m, 2) + 3 * 128 + 8 * 64
        }
    } else {
        0
    };
    let leading = mill_bits(t.in_bits, row_digit_bits(t.in_bits, (b - 1) * n));
    (b - 1) * leading
        + 2 * 2 * b * cot(64)
        + carries * carry_bits
        + 2 * (t.index_bits as u64 * 128 + (64u64 << t.index_bits))
        + 2 * (64 * 128 + (1..=64).sum::<u64>())
        + trunc_nn(t.out_shift)
}

/// A whole session over `transport`: `session::serve` with the weights here and
/// `session::generate` of `prompt` and `new` tokens with the client's `options` on another
/// thread, the server offering `lanes.0` lanes and the client asking for `lanes.1`; returns the
/// client's tokens and report and the server's report.
#[allow(clippy::too_many_arguments)]
pub fn session_pair(
    transport: Transport,
    lanes: (usize, usize),
    plan: &std::sync::Arc<ciphergpt_compiler::plan::Plan>,
    weights: &std::sync::Arc<ciphergpt_compiler::plan::WeightsFile>,
    prompt: &[i64],
    new: usize,
    options: ciphergpt_runtime::session::ClientOptions,
    server_seed: Option<u64>,
) -> (
    Vec<usize>,
    ciphergpt_runtime::session::SessionReport,
    ciphergpt_runtime::session::SessionReport,
) {
    use ciphergpt_runtime::exec::EncodedModel;
    use ciphergpt_runtime::net::Channel;
    use ciphergpt_runtime::session;
    let split = |v: Vec<Box<dyn Channel>>| {
        let mut it = v.into_iter();
        (it.next().unwrap(), it.collect::<Vec<_>>())
    };
    let (pc, prompt) = (plan.clone(), prompt.to_vec());
    let (server, (tokens, report)) = on_session(
        transport,
        lanes,
        |chans| {
            let (mut ch, more) = split(chans);
            let prepared = EncodedModel::new(plan, Some(weights)).unwrap();
            session::serve(&mut ch, more, plan, &prepared, server_seed).unwrap()
        },
        move |chans| {
            let (mut ch, more) = split(chans);
            let prepared = EncodedModel::new(&pc, None).unwrap();
            session::generate(
                &mut ch,
                more,
                &pc,
                &prepared,
                &prompt,
                new,
                &options,
                None,
                |_, _| true,
            )
            .unwrap()
        },
    );
    (tokens, report, server)
}
