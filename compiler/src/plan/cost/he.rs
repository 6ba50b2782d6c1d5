//! The costs of the products under RLWE: weight products (HomFC with Iron's rows per
//! ciphertext), attention's products of two shared matrices, and the prepared products' sVOLE.
//! Ciphertexts going out are seeded (a 128-bit seed and `b` at log2 q bits per coefficient);
//! results come back switched to 2^(ℓ + D), the `a` polynomial whole and only the needed
//! coefficients of `b`. Sources in `docs/cost-model.md`.

use super::{log2_ceil, Bits, Edge, Sizes};
use serde::Serialize;

/// RLWE polynomial degree N (runtime `rlwe::params`: 8192, so that q can hold the flooding of a
/// whole session).
pub const POLY_DEGREE: u64 = 8192;
/// Bits of the ciphertext modulus q of a fresh ciphertext (three 55-bit primes; the 128-bit
/// maximum at N = 8192 is 218).
pub const LOG_Q: u64 = 165;
/// A weight product's result is switched to 2^(ℓ + this many bits) (runtime
/// `rlwe::noise::output_params`: 10 at ℓ = 37 with 16-bit weights).
pub const RESPONSE_EXTRA_BITS: u64 = 10;
/// An attention product's result is switched to 2^(ℓ + this many bits) (10 for GPT-2's and the
/// trained model's caches at N = 8192: the rounding of the switch alone needs 2^8.9).
pub const ATTENTION_EXTRA_BITS: u64 = 10;
/// Limbs of attention's fresh operand for the estimate of the caches' preparation (the runtime
/// picks them by the noise budget and the bytes, `attention_he::AttnLayout::new`: one for
/// GPT-2's caches up to ℓ = 37, two from ℓ = 38 for narrow heads).
pub const ATTENTION_LIMBS: u64 = 1;

/// Bits of a seeded RLWE ciphertext on the wire (the seed and b at 165 bits per coefficient):
/// 168,976 bytes.
pub fn ct_in_bits() -> u64 {
    SEEDED_CT_BITS
}

/// Bits of a result ciphertext's `a` polynomial after switching: `N·(ℓ + D)`; its needed `b`
/// coefficients are counted apart.
pub fn ct_out_bits(l: u64) -> u64 {
    POLY_DEGREE * (l + RESPONSE_EXTRA_BITS)
}

/// How a weight product `x·W` (`x` `[m×k]` encrypted by the client, `W` `[k×n]` the server's)
/// is packed (runtime `linear::Packing`, HomFC with Iron's rows per ciphertext): the window
/// `n_i × n_o` and the rows per ciphertext `r ≤ ⌊N/(n_i·n_o)⌋` (at most 16) that make the `m`
/// rows cheapest in bytes — one row per ciphertext in a decode step, several in the prefill and
/// a preparation; `G·⌈k/n_i⌉` seeded ciphertexts go in and `G·⌈n/n_o⌉` results come back for
/// `G = ⌈m/r⌉` row groups, with the `m·n` needed coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HePacking {
    pub windows: [u64; 2],
    pub rows_per_ct: u64,
    pub in_cts: u64,
    pub out_cts: u64,
    pub in_bits: u64,
    pub out_bits: u64,
}

/// Rows per ciphertext of a weight product at most (runtime `linear::MAX_ROWS_PER_CT`).
pub const MAX_ROWS_PER_CT: u64 = 16;

/// The packing of `[m×k]·[k×n]` for ring ℓ (see [`HePacking`]).
pub fn he_packing(m: u64, k: u64, n: u64, l: u64) -> HePacking {
    let empty = HePacking {
        windows: [0; 2],
        rows_per_ct: 0,
        in_cts: 0,
        out_cts: 0,
        in_bits: 0,
        out_bits: 0,
    };
    if m == 0 || k == 0 || n == 0 {
        return empty;
    }
    let (ci, co) = (ct_in_bits(), ct_out_bits(l));
    let packing = |n_i: u64, n_o: u64| {
        let rows_per_ct = (POLY_DEGREE / (n_i * n_o)).clamp(1, MAX_ROWS_PER_CT);
        let groups = m.div_ceil(rows_per_ct);
        let in_cts = groups.saturating_mul(k.div_ceil(n_i));
        let out_cts = groups.saturating_mul(n.div_ceil(n_o));
        HePacking {
            windows: [n_i, n_o],
            rows_per_ct,
            in_cts,
            out_cts,
            in_bits: in_cts.saturating_mul(ci),
            out_bits: out_cts.saturating_mul(co),
        }
    };
    // As the runtime: r rows per ciphertext up to the rows there are, then every inner window
    // with the widest output window that leaves room for r rows; the fewest bits win (the m·n
    // needed coefficients are the same for every window).
    let mut best: Option<(u64, HePacking)> = None;
    for r in 1..=m.min(MAX_ROWS_PER_CT) {
        for n_i in 1..=k.min(POLY_DEGREE / r) {
            let n_o = (POLY_DEGREE / (r * n_i)).min(n);
            let p = packing(n_i, n_o);
            if p.rows_per_ct < r {
                continue;
            }
            let bits = p.in_bits.saturating_add(p.out_bits);
            if best.is_none_or(|(b, _)| bits < b) {
                best = Some((bits, p));
            }
        }
    }
    best.map_or(empty, |(_, p)| p)
}

/// Secret-shared `[m×k]` times a server-held `[k×n]`: the client sends its encrypted share,
/// the server returns the masked product (the server's own share times W is local); 2 rounds.
pub fn he_matmul_server_weights(m: u64, k: u64, n: u64, l: u64) -> Bits {
    let p = he_packing(m, k, n, l);
    if p.in_cts == 0 {
        return Bits::ZERO;
    }
    let values = m.saturating_mul(n).saturating_mul(l + RESPONSE_EXTRA_BITS);
    Bits::new(p.out_bits.saturating_add(values), p.in_bits, 2).edges(Edge::Send, Edge::Recv)
}

/// Bits of a seeded RLWE ciphertext on the wire (the seed and b at 165 bits per coefficient).
pub const SEEDED_CT_BITS: u64 = 128 + POLY_DEGREE * LOG_Q;
/// The sVOLE's dual-LPN noise weight before rounding to fill ciphertexts (runtime
/// `crypto::qc_code::noise_weight`).
pub const SVOLE_NOISE_WEIGHT: u64 = 174;
/// The sVOLE's shortest noise block (runtime `svole_matmul::MIN_BLOCK_LEN`): a batch needs
/// 2L′ ≥ 256·t rows' worth of noise positions.
pub const SVOLE_MIN_BLOCK: u64 = 256;

/// The sVOLE layout for `k` columns: (noise values per returned ciphertext, noise weight t).
/// Two gadget limbs; at most 64 values per ciphertext (the runtime searches the flooding
/// budget exactly; this is its estimate).
pub fn svole_layout(k: u64) -> (u64, u64) {
    let per_ct = (POLY_DEGREE / k.clamp(1, POLY_DEGREE)).min(64);
    let t = SVOLE_NOISE_WEIGHT;
    (
        per_ct,
        if per_ct >= t {
            t
        } else {
            t.div_ceil(per_ct) * per_ct
        },
    )
}

/// The fewest rows an sVOLE preparation of a `[·×k]` product may cover (its security floor).
pub fn svole_min_rows(k: u64) -> u64 {
    let (_, t) = svole_layout(k);
    (t * SVOLE_MIN_BLOCK).div_ceil(2)
}

/// Preparing `rows` future rows of x·W (`W` `[m×k]`, the server's) by CipherGPT's subfield VOLE
/// (`docs/protocols.md` §29): the server's gadget ciphertexts of W and the d corrections, the
/// client's returned products, the PPRF's chosen-message OTs (two 128-bit messages and a choice
/// bit each); 6 rounds.
pub fn svole_prepare(rows: u64, m: u64, k: u64, l: u64) -> Bits {
    let (per_ct, t) = svole_layout(k);
    let kc = k.min(POLY_DEGREE);
    let chunks = k.div_ceil(kc);
    let depth = log2_ceil((2 * (rows + 1)).div_ceil(t).max(1));
    let keys = (1 + 2 * m * chunks) * SEEDED_CT_BITS;
    let products =
        m * chunks * t.div_ceil(per_ct) * (POLY_DEGREE * (l + 10) + per_ct * kc * (l + 2));
    let corrections = m * t * k * l;
    let ots = m * t * depth;
    Bits::new(keys + corrections + 256 * ots, products + ots, 6)
}

/// Online part of a prepared product, per row: the client's masked input, `m·ℓ` bits, 1 round.
pub fn prepared_online(m: u64, l: u64) -> Bits {
    Bits::new(0, m.saturating_mul(l), 1).edges(Edge::Send, Edge::Send)
}

/// A weight product of `rows` rows, `[rows×k]·[k×n]`, run as the plan's `prepared` says
/// (`plan::Linear::ONLINE`: under RLWE; else its prepared online part per row).
pub fn weight_product(prepared: u32, rows: u64, k: u64, n: u64, l: u64) -> Bits {
    if prepared == crate::plan::Linear::ONLINE {
        he_matmul_server_weights(rows, k, n, l)
    } else {
        prepared_online(k, l).times(rows)
    }
}

/// Attention's product of a fresh shared `[rows × heads·d]` with a shared cache of `heads`
/// heads of `d` (`keys`: q·Kᵀ, else P·V), at the sizes of one program, by the HomFC layout
/// with the encrypted side the cache (runtime `attention_he`): per party, the new cache rows
/// re-shared (`rows·heads·d·ℓ` bits), one result ciphertext per head and row and output block
/// (`N·(ℓ + 10)` bits) and its needed coefficients; a block of `n_o` (keys) or `n_i` (values)
/// cache rows is prepared when a program first reaches it (`heads·⌈d/n⌉·L` seeded ciphertexts
/// each way, one more flight). `context` is the session's most positions.
pub fn he_attention(heads: u64, d: u64, keys: bool, sizes: Sizes, context: u64, l: u64) -> Bits {
    if heads == 0 || d == 0 || sizes.rows == 0 {
        return Bits::ZERO;
    }
    let context = context.max(sizes.positions()).max(1);
    let n = POLY_DEGREE;
    // Windows: keys n_i = min(d, N / context), n_o = N / n_i; values n_o = d, n_i = N / d.
    let (n_i, n_o) = if keys {
        let n_i = d.min((n / context).max(1));
        (n_i, n / n_i)
    } else {
        let n_o = d.min(n);
        (n / n_o, n_o)
    };
    let k = l + ATTENTION_EXTRA_BITS;
    // Keys: row r uses past + r + 1 positions, ⌈used/n_o⌉ results and `used` values per head;
    // values: ⌈d/n_o⌉ results and d values per head and row.
    let (cts, values) = if keys {
        (0..sizes.rows).fold((0u64, 0u64), |(c, v), r| {
            let used = sizes.past.saturating_add(r + 1);
            (
                c.saturating_add(heads.saturating_mul(used.div_ceil(n_o))),
                v.saturating_add(heads.saturating_mul(used)),
            )
        })
    } else {
        let per_row = heads.saturating_mul(d.div_ceil(n_o));
        (
            sizes.rows.saturating_mul(per_row),
            sizes.rows.saturating_mul(heads.saturating_mul(d)),
        )
    };
    let each = (sizes
        .rows
        .saturating_mul(heads)
        .saturating_mul(d)
        .saturating_mul(l))
    .saturating_add(cts.saturating_mul(n * k))
    .saturating_add(values.saturating_mul(k));
    let block = if keys { n_o } else { n_i };
    let subs = if keys {
        d.div_ceil(n_i)
    } else {
        d.div_ceil(n_o)
    };
    let new_blocks = sizes.positions().div_ceil(block) - sizes.past.div_ceil(block);
    let prepare = new_blocks
        .saturating_mul(heads)
        .saturating_mul(subs)
        .saturating_mul(ATTENTION_LIMBS * SEEDED_CT_BITS);
    let each = each.saturating_add(prepare);
    // The server's results first, then the client's; a preparation before them, client first.
    let (rounds, first) = if new_blocks > 0 {
        (3, Edge::Send)
    } else {
        (2, Edge::Recv)
    };
    Bits::new(each, each, rounds).edges(first, Edge::Send)
}
