//! Lookup tables at a shared index: exhaustive over all index-share pairs for small N, random at
//! N = 256, several tables at once (one OT message or several groups), TCP, and the client's view.

use crate::common;

use ciphergpt_runtime::crypto::pack::unpack;
use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::Role;
use ciphergpt_runtime::protocols::lut;
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::Party;
use common::*;

type Out = Vec<Vec<u64>>;

fn run(ring: Ring, tables: Vec<Vec<u64>>, is: Vec<u64>, ic: Vec<u64>, tcp: bool) -> Out {
    let t2 = tables.clone();
    let f = move |p: &mut Peer, t: Vec<Vec<u64>>, i: Vec<u64>| -> Out {
        let refs: Vec<&[u64]> = t.iter().map(|v| v.as_slice()).collect();
        lut::lut(&mut p.party(), ring, &refs, &i).unwrap()
    };
    let (s, c) = if tcp {
        two_party_tcp(move |p| f(p, tables, is), move |p| f(p, t2, ic))
    } else {
        two_party(move |p| f(p, tables, is), move |p| f(p, t2, ic))
    };
    s.iter().zip(&c).map(|(a, b)| ring.add_vec(a, b)).collect()
}

fn check(ring: Ring, tables: &[Vec<u64>], is: &[u64], ic: &[u64], got: &Out) {
    let size = tables[0].len() as u64;
    assert_eq!(got.len(), tables.len());
    for (k, t) in tables.iter().enumerate() {
        for i in 0..is.len() {
            let idx = (is[i].wrapping_add(ic[i]) % size) as usize;
            assert_eq!(
                got[k][i],
                ring.reduce(t[idx]),
                "table {k} i_S {} i_C {}",
                is[i],
                ic[i]
            );
        }
    }
}

#[test]
fn exhaustive_small_tables() {
    for bits in [1u32, 16, 37, 64] {
        let ring = Ring::new(bits).unwrap();
        for size in [1usize, 2, 4, 8, 16, 32] {
            for nt in [1usize, 2, 3] {
                let mut p = Prg::from_entropy();
                let mut tables: Vec<Vec<u64>> = (0..nt).map(|_| p.values(size, bits)).collect();
                tables[0][0] = 0;
                tables[0][size - 1] = ring.mask();
                let (mut is, mut ic) = (Vec::new(), Vec::new());
                for a in 0..size as u64 {
                    for b in 0..size as u64 {
                        is.push(a);
                        ic.push(b);
                    }
                }
                let got = run(ring, tables.clone(), is.clone(), ic.clone(), false);
                check(ring, &tables, &is, &ic, &got);
            }
        }
    }
}

#[test]
fn random_indices_at_256_entries() {
    for (bits, nt) in [(37u32, 1usize), (37, 2), (16, 4), (16, 5), (64, 2), (8, 9)] {
        let ring = Ring::new(bits).unwrap();
        let n = 3001;
        let mut p = Prg::from_entropy();
        let tables: Vec<Vec<u64>> = (0..nt).map(|_| p.values(256, bits)).collect();
        // Index shares with junk above bit 8, which must be ignored.
        let is = p.values(n, 64);
        let ic = p.values(n, 64);
        let got = run(ring, tables.clone(), is.clone(), ic.clone(), false);
        check(ring, &tables, &is, &ic, &got);
    }
}

#[test]
fn slope_and_intercept_over_tcp() {
    let ring = Ring::new(37).unwrap();
    let n = 4099;
    let mut p = Prg::from_entropy();
    let tables: Vec<Vec<u64>> = (0..2).map(|_| p.values(64, 37)).collect();
    let is = p.values(n, 6);
    let ic = p.values(n, 6);
    let got = run(ring, tables.clone(), is.clone(), ic.clone(), true);
    check(ring, &tables, &is, &ic, &got);
}

#[test]
fn empty_and_invalid_inputs() {
    let ring = Ring::new(37).unwrap();
    let got = run(ring, vec![vec![1; 16]], vec![], vec![], false);
    assert_eq!(got, vec![Vec::<u64>::new()]);
    let (a, b) = two_party(
        move |p| {
            let t3 = [1u64, 2, 3];
            let t4 = [1u64, 2, 3, 4];
            let t8 = [0u64; 8];
            let big = vec![0u64; 512];
            let mut errs = 0;
            for tabs in [vec![&t3[..]], vec![&t4[..], &t8[..]], vec![&big[..]]] {
                errs += lut::lut(&mut p.party(), ring, &tabs, &[0]).is_err() as u32;
            }
            let none = lut::lut(&mut p.party(), ring, &[], &[0]).unwrap();
            errs == 3 && none.is_empty()
        },
        |_| true,
    );
    assert!(a && b);
}

/// The client's received message m_{i_C} = T[i] − r (its output share) is uniform whatever the
/// table and the index: for tables all-zero, all-ones, 2^(ℓ−1) everywhere and random, with the
/// server's index share fixed at 0 or 255 and the client's fixed or random, every bit of the
/// client's share is a fair coin and agrees with T[i]'s bit half the time (|z| < 6 over 2^13
/// lookups). The ciphertexts it receives have a fixed length (N·ℓ bits per lookup) and are fair
/// coins bit-wise in aggregate.
#[test]
fn client_view_is_uniform_whatever_the_table_and_index() {
    let bits = 37;
    let ring = Ring::new(bits).unwrap();
    let n = 1 << 13;
    let size = 256;
    let mut p = Prg::from_entropy();
    let random_table = p.values(size, bits);
    for (tname, table) in [
        ("zero", vec![0u64; size]),
        ("ones", vec![ring.mask(); size]),
        ("half", vec![1u64 << (bits - 1); size]),
        ("random", random_table),
    ] {
        for (isv, ic) in [(0u64, vec![3u64; n]), (255, p.values(n, 8))] {
            let ts = table.clone();
            let ((c, view), s) = tapped_two_party(
                Role::Client,
                CotBackend::Silent,
                |ot, tap| {
                    let start = tap.received.len();
                    let c = lut::lut(&mut Party::new(ot, tap, Role::Client), ring, &[&table], &ic)
                        .unwrap();
                    (c, tap.received[start..].to_vec())
                },
                move |ot, ch| {
                    lut::lut(
                        &mut Party::new(ot, ch, Role::Server),
                        ring,
                        &[&ts],
                        &vec![isv; n],
                    )
                    .unwrap()
                },
            );
            let want: Vec<u64> = ic
                .iter()
                .map(|&b| table[((isv + b) % size as u64) as usize])
                .collect();
            assert_eq!(ring.add_vec(&s[0], &c[0]), want);
            let what = format!("{tname} table, i_S = {isv}");
            assert_uniform_and_independent(&c[0], &want, bits, &what);
            let view = &view[..];
            let clen = (n * size * bits as usize).div_ceil(8);
            assert_eq!(view.len(), clen, "{what}: view length");
            let cts = unpack(view, n * size, bits);
            let ones: u64 = cts.iter().map(|v| v.count_ones() as u64).sum();
            let z = z_fair(ones as usize, n * size * bits as usize);
            assert!(z.abs() < 6.0, "{what}: ciphertext bits z = {z:.2}");
        }
    }
}
