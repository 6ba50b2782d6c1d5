//! Products over Z_2^ℓ by correlated OT: exact results mod 2^ℓ, edge values, cost, and what the
//! chooser receives.

use crate::common;

use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::mul;
use ciphergpt_runtime::protocols::shares::{self, Ring};
use ciphergpt_runtime::protocols::Party;
use common::*;

/// Shares of x and y (random splits, done in the clear), with edge values on both operands.
fn split(ring: Ring, p: &mut Prg, v: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let r = ring.random(p, v.len());
    (ring.sub_vec(v, &r), r)
}

#[test]
fn mul_is_exact() {
    for bits in [1u32, 16, 37, 64] {
        for n in [0usize, 1, 1000, 1003] {
            let ring = Ring::new(bits).unwrap();
            let mut p = Prg::from_entropy();
            let x = values_with_edges(&mut p, n, bits);
            let mut y = values_with_edges(&mut p, n, bits);
            y.reverse(); // pair edge values with other edge values
            let (xs, xc) = split(ring, &mut p, &x);
            let (ys, yc) = split(ring, &mut p, &y);
            let (zs, (zc, rounds)) = two_party(
                move |p| mul::mul(&mut p.party(), ring, &xs, &ys).unwrap(),
                move |p| {
                    let r0 = p.ch.stats().total.rounds;
                    let z = mul::mul(&mut p.party(), ring, &xc, &yc).unwrap();
                    (z, p.ch.stats().total.rounds - r0)
                },
            );
            let z = ring.add_vec(&zs, &zc);
            for i in 0..n {
                assert_eq!(z[i], ring.mul(x[i], y[i]), "bits {bits} n {n} i {i}");
                let exact = (ring.to_signed(x[i]) as i128) * (ring.to_signed(y[i]) as i128);
                assert_eq!(z[i], (exact as u64) & ring.mask());
            }
            if n > 0 {
                assert!(rounds <= 3, "client took {rounds} flights");
            }
        }
    }
}

#[test]
fn mul_by_private_is_exact_both_owners() {
    for bits in [16u32, 37, 64] {
        for owner in [Role::Server, Role::Client] {
            let n = 1000;
            let ring = Ring::new(bits).unwrap();
            let mut p = Prg::from_entropy();
            let x = values_with_edges(&mut p, n, bits);
            let y = values_with_edges(&mut p, n, bits);
            let (xs, xc) = split(ring, &mut p, &x);
            let (ys, yc) = (y.clone(), y.clone());
            let (zs, zc) = two_party(
                move |p| {
                    let y = (owner == Role::Server).then_some(&ys[..]);
                    mul::mul_by_private(&mut p.party(), ring, owner, &xs, y).unwrap()
                },
                move |p| {
                    let y = (owner == Role::Client).then_some(&yc[..]);
                    mul::mul_by_private(&mut p.party(), ring, owner, &xc, y).unwrap()
                },
            );
            let z = ring.add_vec(&zs, &zc);
            for i in 0..n {
                assert_eq!(
                    z[i],
                    ring.mul(x[i], y[i]),
                    "bits {bits} owner {owner} i {i}"
                );
            }
        }
    }
}

#[test]
fn mul_over_tcp_and_cost() {
    let bits = 37;
    let n = 4099;
    let ring = Ring::new(bits).unwrap();
    let mut p = Prg::from_entropy();
    let x = values_with_edges(&mut p, n, bits);
    let y = p.values(n, bits);
    let (xs, xc) = split(ring, &mut p, &x);
    let (ys, yc) = split(ring, &mut p, &y);
    let ((zs, bytes), zc) = two_party_tcp_iknp(
        move |p| {
            let b0 = p.ch.stats().total.bytes();
            let z = mul::mul(&mut p.party(), ring, &xs, &ys).unwrap();
            (z, p.ch.stats().total.bytes() - b0)
        },
        move |p| mul::mul(&mut p.party(), ring, &xc, &yc).unwrap(),
    );
    assert_eq!(
        ring.add_vec(&zs, &zc),
        (0..n).map(|i| ring.mul(x[i], y[i])).collect::<Vec<_>>()
    );
    // 2ℓ COTs of 16 bytes (padded to 128 per direction) + ℓ(ℓ+1) bits of corrections.
    let l = bits as u64;
    let cots = 2 * (n as u64 * l).div_ceil(128) * 128 * 16;
    let corr = 2 * (n as u64 * l * (l + 1) / 2).div_ceil(8);
    assert_eq!(bytes, cots + corr);
}

/// The chooser's view of a cross term — the corrections d_j it receives after its own IKNP
/// message — is uniform and independent of the holder's operand b: for b = 0, all-ones, 2^(ℓ−1)
/// and random, every bit of the first correction of each element (width ℓ) is a fair coin and
/// agrees with b's bit half the time (|z| < 6 over 2^14 elements). Its length does not depend on
/// b either.
#[test]
fn chooser_view_is_independent_of_holder_operand() {
    let bits = 37;
    let ring = Ring::new(bits).unwrap();
    let n = 1 << 14;
    let a = Prg::from_entropy().values(n, bits);
    let mut lens = Vec::new();
    for b in [
        vec![0u64; n],
        vec![ring.mask(); n],
        vec![1u64 << (bits - 1); n],
        Prg::from_entropy().values(n, bits),
    ] {
        let b2 = b.clone();
        let ((s, view), c) = tapped_two_party(
            Role::Server,
            CotBackend::Silent,
            |ot, tap| {
                let start = tap.received.len();
                let s = mul::cross_term(
                    &mut Party::new(ot, tap, Role::Server),
                    ring,
                    Role::Server,
                    &a,
                )
                .unwrap();
                (s, tap.received[start..].to_vec())
            },
            move |ot, ch| {
                mul::cross_term(
                    &mut Party::new(ot, ch, Role::Client),
                    ring,
                    Role::Server,
                    &b2,
                )
                .unwrap()
            },
        );
        let prod: Vec<u64> = (0..n).map(|i| ring.mul(a[i], b[i])).collect();
        assert_eq!(ring.add_vec(&s, &c), prod);
        let view = &view[..];
        lens.push(view.len());
        let widths: Vec<u32> = (0..n).flat_map(|_| (0..bits).map(|j| bits - j)).collect();
        let d = shares::unpack_widths(view, &widths);
        let first: Vec<u64> = d.chunks(bits as usize).map(|c| c[0]).collect();
        assert_uniform_and_independent(&first, &b, bits, "chooser's corrections");
        // The chooser's output share is uniform and independent of b as well.
        assert_uniform_and_independent(&s, &b, bits, "chooser's share");
    }
    assert!(lens.windows(2).all(|w| w[0] == w[1]));
}

/// Rows times a narrow scalar per row (x_r ∈ [0, 2^(m−1)), shares over Z_2^m): exact mod 2^ℓ for
/// ℓ = 64, 38 and 5, ragged rows, rows of one entry (plain COTs), scalars at 0 and 2^(m−1) − 1
/// with every share pattern; the bytes equal m COTs per row each way plus Σ_{j<m}(ℓ − j) bits per
/// entry each way.
#[test]
fn mul_rows_is_exact_and_costs_per_row() {
    let cases: [(u32, u32, Vec<usize>); 4] = [
        (64, 28, vec![768, 768, 768]),
        (38, 25, (1..=40).collect()),
        (38, 14, vec![1; 50]),
        (5, 3, vec![2, 1, 3, 1, 7]),
    ];
    for (bits, m, lens) in cases {
        let ring = Ring::new(bits).unwrap();
        let narrow = Ring::new(m).unwrap();
        let mut p = Prg::from_entropy();
        let total: usize = lens.iter().sum();
        let rows = lens.len();
        let y = values_with_edges(&mut p, total, bits);
        let top = (1u64 << (m - 1)) - 1;
        let mut x: Vec<u64> = p.values(rows, m - 1);
        x[0] = 0;
        x[rows - 1] = top;
        let (ys, yc) = split(ring, &mut p, &y);
        let (xs, xc) = split(narrow, &mut p, &x);
        let (ls, lc) = (lens.clone(), lens.clone());
        let ((zs, bytes), zc) = two_party_iknp(
            move |p| {
                let b0 = p.ch.stats().total.bytes();
                let z = mul::mul_rows(&mut p.party(), ring, m, &xs, &ys, &ls).unwrap();
                (z, p.ch.stats().total.bytes() - b0)
            },
            move |p| mul::mul_rows(&mut p.party(), ring, m, &xc, &yc, &lc).unwrap(),
        );
        let row_of: Vec<usize> = lens
            .iter()
            .enumerate()
            .flat_map(|(r, &l)| std::iter::repeat_n(r, l))
            .collect();
        let want: Vec<u64> = (0..total).map(|i| ring.mul(x[row_of[i]], y[i])).collect();
        assert_eq!(ring.add_vec(&zs, &zc), want, "l = {bits}, m = {m}");
        let (l, m64) = (bits as u64, m as u64);
        let per_entry: u64 = (0..m64).map(|j| l - j).sum();
        let cots = 2 * (rows as u64 * m64).div_ceil(128) * 128 * 16;
        let corr = 2 * (total as u64 * per_entry).div_ceil(8);
        assert_eq!(bytes, cots + corr, "l = {bits}, m = {m}");
    }
}

/// Beaver triples: c = a·b mod 2^ℓ on the reconstructed shares, a and b nonzero somewhere (they
/// are drawn, not fixed), and products through them (`Triples::multiply`, from an offset) equal
/// x·y.
#[test]
fn triples_multiply_and_serve_a_product() {
    for bits in [16u32, 34, 64] {
        let ring = Ring::new(bits).unwrap();
        let n = 700;
        let mut p = Prg::from_entropy();
        let x = values_with_edges(&mut p, n, bits);
        let y = ring.random(&mut p, n);
        let (xs, xc) = split(ring, &mut p, &x);
        let (ys, yc) = split(ring, &mut p, &y);
        let f = move |p: &mut Peer, x: Vec<u64>, y: Vec<u64>| {
            let t = mul::triples(&mut p.party(), ring, n + 2).unwrap();
            assert_eq!(t.ring, ring);
            // From triple 2: the first two stay unused.
            let z = t.multiply(&mut p.ch, p.role, 2, &x, &y).unwrap();
            (t, z)
        };
        let ((ts, zs), (tc, zc)) = two_party(move |p| f(p, xs, ys), move |p| f(p, xc, yc));
        let a = ring.add_vec(&ts.a, &tc.a);
        let b = ring.add_vec(&ts.b, &tc.b);
        let c = ring.add_vec(&ts.c, &tc.c);
        assert!(a.iter().any(|&v| v != 0) && b.iter().any(|&v| v != 0));
        for i in 0..n + 2 {
            assert_eq!(c[i], ring.mul(a[i], b[i]), "ℓ = {bits}, triple {i}");
        }
        let z = ring.add_vec(&zs, &zc);
        for i in 0..n {
            assert_eq!(z[i], ring.mul(x[i], y[i]), "ℓ = {bits}, product {i}");
        }
    }
}
