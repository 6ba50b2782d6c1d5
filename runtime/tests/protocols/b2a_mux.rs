//! B2A and MUX: exact results, edge values, lengths, widths, TCP, views, and ReLU composed from
//! DReLU and MUX against the cleartext max(x, 0).

use crate::common;

use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::Party;
use ciphergpt_runtime::protocols::{b2a, cmp, mux};
use common::*;

fn xor_split(p: &mut Prg, b: &[bool]) -> (Vec<bool>, Vec<bool>) {
    let r = p.bools(b.len());
    (b.iter().zip(&r).map(|(x, y)| x ^ y).collect(), r)
}

fn add_split(ring: Ring, p: &mut Prg, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let r = values_with_edges(p, x.len(), ring.bits);
    (ring.sub_vec(x, &r), r)
}

#[test]
fn b2a_is_exact() {
    for bits in [1u32, 16, 37, 64] {
        for n in [0usize, 1, 1000, 1001] {
            let ring = Ring::new(bits).unwrap();
            let mut p = Prg::from_entropy();
            let b = p.bools(n);
            let (bs, bc) = xor_split(&mut p, &b);
            let (s, (c, rounds)) = two_party(
                move |p| b2a::b2a(&mut p.party(), ring, &bs).unwrap(),
                move |p| {
                    let r0 = p.ch.stats().total.rounds;
                    let c = b2a::b2a(&mut p.party(), ring, &bc).unwrap();
                    (c, p.ch.stats().total.rounds - r0)
                },
            );
            let v = ring.add_vec(&s, &c);
            for i in 0..n {
                assert_eq!(v[i], b[i] as u64, "bits {bits} n {n} i {i}");
            }
            if n > 0 {
                assert!((1..=2).contains(&rounds), "{rounds} flights");
            }
        }
    }
}

#[test]
fn mux_is_exact() {
    for bits in [1u32, 16, 37, 64] {
        for n in [0usize, 1, 1000, 1001] {
            let ring = Ring::new(bits).unwrap();
            let mut p = Prg::from_entropy();
            let x = values_with_edges(&mut p, n, bits);
            let mut b = p.bools(n);
            b.iter_mut().take(9).for_each(|v| *v = true); // every edge value selected once
            let (bs, bc) = xor_split(&mut p, &b);
            let (xs, xc) = add_split(ring, &mut p, &x);
            let (s, (c, rounds)) = two_party(
                move |p| mux::mux(&mut p.party(), ring, &bs, &xs).unwrap(),
                move |p| {
                    let r0 = p.ch.stats().total.rounds;
                    let c = mux::mux(&mut p.party(), ring, &bc, &xc).unwrap();
                    (c, p.ch.stats().total.rounds - r0)
                },
            );
            let v = ring.add_vec(&s, &c);
            for i in 0..n {
                assert_eq!(v[i], if b[i] { x[i] } else { 0 }, "bits {bits} n {n} i {i}");
            }
            if n > 0 {
                assert!(rounds <= 3);
            }
        }
    }
}

/// ReLU(x) = MUX(DReLU(x), x) = max(x, 0) on the signed lift, over TCP.
#[test]
fn relu_from_drelu_and_mux_over_tcp() {
    let bits = 37;
    let ring = Ring::new(bits).unwrap();
    let n = 3001;
    let mut p = Prg::from_entropy();
    let x = values_with_edges(&mut p, n, bits);
    let (xs, xc) = add_split(ring, &mut p, &x);
    let relu = move |p: &mut Peer, x: Vec<u64>| {
        let d = cmp::drelu(&mut p.party(), ring, &x).unwrap();
        mux::mux(&mut p.party(), ring, &d, &x).unwrap()
    };
    let (s, c) = two_party_tcp(move |p| relu(p, xs), move |p| relu(p, xc));
    let v = ring.add_vec(&s, &c);
    for i in 0..n {
        assert_eq!(
            ring.to_signed(v[i]),
            ring.to_signed(x[i]).max(0),
            "x {}",
            x[i]
        );
    }
}

/// What the client receives in B2A and MUX (all bytes after the base OTs: the COT corrections and,
/// for MUX, the peer's IKNP message)
/// and its output share are uniform and independent of the server's secrets. Server inputs:
/// constant b_S = 0 or 1 with x_S = 1, 0, all-ones or 2^(ℓ−1), against fixed client inputs. In
/// every setting each bit position of the received ℓ-bit corrections and of the client's share is
/// a fair coin (|z| < 6 over 2^14 elements; a false alarm has probability < 1e-8 per check), so
/// their distribution is the same whatever the server's secrets; the view's length is fixed.
#[test]
fn client_view_is_independent_of_server_secrets() {
    let bits = 37;
    let ring = Ring::new(bits).unwrap();
    let n = 1 << 14;
    let bc = Prg::from_entropy().bools(n);
    let xc = Prg::from_entropy().values(n, bits);
    for (bsv, xsv) in [
        (false, 0u64),
        (true, ring.mask()),
        (true, 1 << (bits - 1)),
        (false, 1),
    ] {
        for proto in ["b2a", "mux"] {
            let (bc, xc) = (&bc, &xc);
            let ((c, view), s) = tapped_two_party(
                Role::Client,
                CotBackend::Iknp,
                |ot, tap| {
                    let start = tap.received.len();
                    let p = &mut Party::new(ot, tap, Role::Client);
                    let c = if proto == "b2a" {
                        b2a::b2a(p, ring, bc).unwrap()
                    } else {
                        mux::mux(p, ring, bc, xc).unwrap()
                    };
                    (c, tap.received[start..].to_vec())
                },
                move |ot, ch| {
                    let bs = vec![bsv; n];
                    let p = &mut Party::new(ot, ch, Role::Server);
                    if proto == "b2a" {
                        b2a::b2a(p, ring, &bs).unwrap()
                    } else {
                        mux::mux(p, ring, &bs, &vec![xsv; n]).unwrap()
                    }
                },
            );
            let v = ring.add_vec(&s, &c);
            for i in 0..n {
                let b = (bsv ^ bc[i]) as u64;
                let want = if proto == "b2a" {
                    b
                } else {
                    ring.mul(b, ring.add(xsv, xc[i]))
                };
                assert_eq!(v[i], want);
            }
            // First the corrections of the COT in which the client is the receiver; for MUX
            // then the IKNP message of the COT in which it is the sender (16 bytes per OT).
            let view = &view[..];
            let dlen = (n * bits as usize).div_ceil(8);
            let ulen = if proto == "mux" { 16 * n } else { 0 };
            assert_eq!(view.len(), dlen + ulen);
            let d = ciphergpt_runtime::crypto::pack::unpack(&view[..dlen], n, bits);
            let u_ones: u32 = view[dlen..].iter().map(|x| x.count_ones()).sum();
            assert!(ulen == 0 || z_fair(u_ones as usize, 8 * ulen).abs() < 6.0);
            for (what, v) in [("corrections", &d), ("client's share", &c)] {
                for pos in 0..bits {
                    let ones = v.iter().filter(|&&w| (w >> pos) & 1 == 1).count();
                    let z = z_fair(ones, n);
                    assert!(z.abs() < 6.0, "{proto} {what}: bit {pos}: z = {z:.2}");
                }
            }
        }
    }
}
