//! Secret-shared shuffle (`protocols::shuffle`): reconstruction equals π_S(π_C(x)) exactly (and
//! π(x) for one permute-and-share) for many lengths, rings and network shapes; the output shares
//! are fresh; what each party sees; GPT-2's vocabulary over TCP with its bytes and flights;
//! invalid arguments.

use crate::common;

use ciphergpt_runtime::crypto::Prg;
use ciphergpt_runtime::net::{Channel, Role};
use ciphergpt_runtime::protocols::shares::Ring;
use ciphergpt_runtime::protocols::shuffle::{
    self, permute_and_share, random_permutation, shuffle_with, Network, ShuffleParams,
};
use ciphergpt_runtime::protocols::Party;
use ciphergpt_runtime::protocols::ProtocolError;
use common::*;

/// w_i = x_{π_C(π_S(i))}.
fn composed(x: &[u64], pc: &[usize], ps: &[usize]) -> Vec<u64> {
    (0..x.len()).map(|i| x[pc[ps[i]]]).collect()
}

/// One case: the ring, the network parameters, x, the client's share, π_C and π_S.
type Case = (
    Ring,
    ShuffleParams,
    Vec<u64>,
    Vec<u64>,
    Vec<usize>,
    Vec<usize>,
);

/// Run every case in one session; returns (server shares, client shares) per case.
fn run_all(cases: Vec<Case>) -> Vec<(Vec<u64>, Vec<u64>)> {
    let c2 = cases.clone();
    let (s, c) = two_party(
        move |s| {
            cases
                .iter()
                .map(|(ring, params, x, xc, _, ps)| {
                    let xs = ring.sub_vec(x, xc);
                    shuffle_with(&mut s.party(), *ring, ps, &xs, params).unwrap()
                })
                .collect::<Vec<_>>()
        },
        move |c| {
            c2.iter()
                .map(|(ring, params, _, xc, pc, _)| {
                    shuffle_with(&mut c.party(), *ring, pc, xc, params).unwrap()
                })
                .collect::<Vec<_>>()
        },
    );
    s.into_iter().zip(c).collect()
}

/// Lengths 0–9, 16, 17, 100, 1,000 and 3,001 at ℓ ∈ {1, 16, 38, 54, 64}, identity, reversal and
/// random permutations, with the default network and with blocks of at most 2, 4 and 16
/// elements (up to 19 layers).
#[test]
fn reconstructs_to_the_composed_permutation() {
    let mut p = Prg::from_entropy();
    let mut cases: Vec<Case> = Vec::new();
    for bits in [1u32, 16, 38, 54, 64] {
        let ring = Ring::new(bits).unwrap();
        for n in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 100, 1000, 3001] {
            for block_bits in [10u32, 1, 2, 4] {
                if n > 1000 && block_bits < 4 {
                    continue;
                }
                let params = ShuffleParams {
                    max_block_bits: block_bits,
                };
                let x = values_with_edges(&mut p, n, bits);
                let xc = values_with_edges(&mut p, n, bits);
                let (pc, ps) = match n % 3 {
                    0 => (random_permutation(n), random_permutation(n)),
                    1 => ((0..n).collect(), (0..n).rev().collect()),
                    _ => ((0..n).rev().collect(), random_permutation(n)),
                };
                cases.push((ring, params, x, xc, pc, ps));
            }
        }
    }
    let out = run_all(cases.clone());
    for ((ring, params, x, _, pc, ps), (ws, wc)) in cases.iter().zip(out) {
        assert_eq!(
            ring.add_vec(&ws, &wc),
            composed(x, pc, ps),
            "ℓ {}, n {}, {params:?}",
            ring.bits,
            x.len()
        );
    }
}

/// One permute-and-share with either party as the holder, on explicit networks of 1 to 4 outer
/// radices.
#[test]
fn permute_and_share_either_holder() {
    let ring = Ring::new(38).unwrap();
    let mut p = Prg::from_entropy();
    for radices in [vec![], vec![2], vec![4, 2], vec![8, 2, 4], vec![2, 2, 2, 2]] {
        for holder in [Role::Server, Role::Client] {
            let n = 300;
            let net = Network::with_radices(n, &radices).unwrap();
            let x = values_with_edges(&mut p, n, 38);
            let xc = p.values(n, 38);
            let xs = ring.sub_vec(&x, &xc);
            let perm = random_permutation(n);
            let (n1, n2, pm, pc) = (net.clone(), net.clone(), perm.clone(), perm.clone());
            let (ys, yc) = two_party(
                move |s| {
                    let mine = (holder == Role::Server).then_some(&pm[..]);
                    permute_and_share(&mut s.party(), ring, &n1, holder, mine, &xs).unwrap()
                },
                move |c| {
                    let mine = (holder == Role::Client).then_some(&pc[..]);
                    permute_and_share(&mut c.party(), ring, &n2, holder, mine, &xc).unwrap()
                },
            );
            let want: Vec<u64> = (0..n).map(|i| x[perm[i]]).collect();
            assert_eq!(
                ring.add_vec(&ys, &yc),
                want,
                "radices {radices:?}, holder {holder:?}"
            );
        }
    }
}

/// The output shares are fresh: for a random x of 8,192 elements at ℓ = 38, each party's output
/// share is bit-wise a fair coin independent of the shuffled value w and of its own input share
/// carried along by the same permutations (|z| < 6), and two shuffles of the same shares with the
/// same permutations give different shares of the same w; in memory and over TCP.
#[test]
fn output_shares_are_fresh() {
    let ring = Ring::new(38).unwrap();
    let n = 8192;
    let mut p = Prg::from_entropy();
    let x = p.values(n, 38);
    let xc = p.values(n, 38);
    let xs = ring.sub_vec(&x, &xc);
    let (pc, ps) = (random_permutation(n), random_permutation(n));
    let w = composed(&x, &pc, &ps);
    let params = ShuffleParams::default();
    for tcp in [false, true] {
        let (a, b, c, d) = (xs.clone(), xc.clone(), ps.clone(), pc.clone());
        let server = move |s: &mut Peer| {
            let r1 = shuffle_with(&mut s.party(), ring, &c, &a, &params).unwrap();
            let r2 = shuffle_with(&mut s.party(), ring, &c, &a, &params).unwrap();
            (r1, r2)
        };
        let client = move |cl: &mut Peer| {
            let r1 = shuffle_with(&mut cl.party(), ring, &d, &b, &params).unwrap();
            let r2 = shuffle_with(&mut cl.party(), ring, &d, &b, &params).unwrap();
            (r1, r2)
        };
        let ((s1, s2), (c1, c2)) = if tcp {
            two_party_tcp(server, client)
        } else {
            two_party(server, client)
        };
        assert_eq!(ring.add_vec(&s1, &c1), w);
        assert_eq!(ring.add_vec(&s2, &c2), w);
        assert_ne!(s1, s2);
        let own_s = composed(&xs, &pc, &ps);
        let own_c = composed(&xc, &pc, &ps);
        let tag = if tcp { "tcp" } else { "mem" };
        assert_uniform_and_independent(&s1, &w, 38, &format!("{tag}: server share vs w"));
        assert_uniform_and_independent(&c1, &w, 38, &format!("{tag}: client share vs w"));
        assert_uniform_and_independent(&s1, &own_s, 38, &format!("{tag}: server vs its input"));
        assert_uniform_and_independent(&c1, &own_c, 38, &format!("{tag}: client vs its input"));
        assert_uniform_and_independent(&c1, &c2, 38, &format!("{tag}: client, two runs"));
    }
}

fn assert_fair(view: &[u8], what: &str) {
    let ones: u32 = view.iter().map(|x| x.count_ones()).sum();
    let z = z_fair(ones as usize, 8 * view.len());
    assert!(z.abs() < 6.0, "{what}: z = {z:.2}");
}

/// `role`'s view (every byte it receives after the base OTs) and output of one shuffle, its own
/// shares and permutation `mine`, the peer's `theirs`.
fn view_of(
    role: Role,
    ring: Ring,
    mine: (Vec<usize>, Vec<u64>),
    theirs: (Vec<usize>, Vec<u64>),
) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
    let params = ShuffleParams::default();
    let ((view, out), peer_out) = tapped_two_party(
        role,
        CotBackend::Silent,
        |ot, tap| {
            let start = tap.received.len();
            let out = shuffle_with(
                &mut Party::new(ot, tap, role),
                ring,
                &mine.0,
                &mine.1,
                &params,
            )
            .unwrap();
            (tap.received[start..].to_vec(), out)
        },
        move |ot, ch| {
            let peer = role.other();
            shuffle_with(
                &mut Party::new(ot, ch, peer),
                ring,
                &theirs.0,
                &theirs.1,
                &params,
            )
            .unwrap()
        },
    );
    (view, out, peer_out)
}

/// Each party's view does not depend on the peer's share or permutation: with its own share and
/// permutation fixed and the peer's chosen so that x is all zero, all at the top of the ring,
/// random or increasing (and the peer's permutation the identity, the reversal or random), the
/// view has the same length and fair bits in aggregate, and its output share is bit-wise a fair
/// coin independent of the result (|z| < 6 over 4,096 elements).
#[test]
fn views_are_independent_of_the_peer() {
    let ring = Ring::new(38).unwrap();
    let n = 4096;
    let mut p = Prg::from_entropy();
    for role in [Role::Client, Role::Server] {
        let own = p.values(n, 38);
        let own_perm = random_permutation(n);
        let mut lens = Vec::new();
        for shape in 0..4 {
            let x: Vec<u64> = match shape {
                0 => vec![0; n],
                1 => vec![ring.mask(); n],
                2 => p.values(n, 38),
                _ => (0..n as u64).collect(),
            };
            let peer_perm: Vec<usize> = match shape {
                0 => (0..n).collect(),
                1 => (0..n).rev().collect(),
                _ => random_permutation(n),
            };
            let theirs = ring.sub_vec(&x, &own);
            let (view, out, peer_out) = view_of(
                role,
                ring,
                (own_perm.clone(), own.clone()),
                (peer_perm.clone(), theirs),
            );
            let (pc, ps) = if role == Role::Client {
                (&own_perm, &peer_perm)
            } else {
                (&peer_perm, &own_perm)
            };
            let w = composed(&x, pc, ps);
            assert_eq!(ring.add_vec(&out, &peer_out), w);
            lens.push(view.len());
            assert_fair(&view, &format!("{role:?} view, shape {shape}"));
            let what = format!("{role:?} output share, shape {shape}");
            assert_uniform_and_independent(&out, &w, 38, &what);
        }
        assert!(lens.windows(2).all(|w| w[0] == w[1]), "{lens:?}");
    }
}

/// GPT-2's vocabulary, 50,257 elements at ℓ = 54 (38-bit values with 16-bit index tags, as top-K
/// shuffles them) over TCP: exact, the bytes of the formula (two permute-and-shares, IKNP padding
/// included) and 3 flights from each side.
#[test]
fn gpt2_vocabulary_over_tcp() {
    let ring = Ring::new(54).unwrap();
    let n = 50_257;
    let mut p = Prg::from_entropy();
    let x = p.values(n, 54);
    let xc = p.values(n, 54);
    let xs = ring.sub_vec(&x, &xc);
    let (pc, ps) = (random_permutation(n), random_permutation(n));
    let params = ShuffleParams::default();
    let (p1, p2) = (ps.clone(), pc.clone());
    let ((ws, s_stats), (wc, c_stats)) = two_party_tcp_iknp(
        move |s| {
            let t0 = std::time::Instant::now();
            let w = s
                .party()
                .scoped("shuffle", |party| {
                    shuffle_with(party, ring, &p1, &xs, &params)
                })
                .unwrap();
            println!(
                "shuffle of {n} at ℓ = 54: {:.3} s",
                t0.elapsed().as_secs_f64()
            );
            (w, s.ch.stats().scope("shuffle"))
        },
        move |c| {
            let w = c
                .party()
                .scoped("shuffle", |party| {
                    shuffle_with(party, ring, &p2, &xc, &params)
                })
                .unwrap();
            (w, c.ch.stats().scope("shuffle"))
        },
    );
    assert_eq!(ring.add_vec(&ws, &wc), composed(&x, &pc, &ps));
    let net = Network::new(n, 54, &params).unwrap();
    assert_eq!(s_stats.bytes_sent + c_stats.bytes_sent, 2 * net.bytes(54));
    assert_eq!(s_stats.bytes_sent, c_stats.bytes_received);
    assert_eq!((s_stats.rounds, c_stats.rounds), (3, 3));
    let total = s_stats.bytes_sent + c_stats.bytes_sent;
    println!(
        "bytes {total} ({:.2} per element; S→C {}, C→S {}), formula {} bits",
        total as f64 / n as f64,
        s_stats.bytes_sent,
        c_stats.bytes_sent,
        2 * net.bits(54)
    );
}

/// Bad permutations, a holder mismatch and a wrong length are `ProtocolError::Invalid`, before anything
/// is sent.
#[test]
fn invalid_arguments() {
    let ring = Ring::new(38).unwrap();
    let (errs, _) = two_party(
        move |s| {
            let before = s.ch.stats().total.bytes_sent;
            let p = ShuffleParams::default();
            let net = Network::new(3, 38, &p).unwrap();
            let x = [1u64, 2, 3];
            let e = vec![
                shuffle_with(&mut s.party(), ring, &[0, 1], &x, &p).unwrap_err(),
                shuffle_with(&mut s.party(), ring, &[0, 1, 1], &x, &p).unwrap_err(),
                shuffle_with(&mut s.party(), ring, &[0, 1, 3], &x, &p).unwrap_err(),
                permute_and_share(
                    &mut s.party(),
                    ring,
                    &net,
                    Role::Client,
                    Some(&[0, 1, 2]),
                    &x,
                )
                .unwrap_err(),
                permute_and_share(&mut s.party(), ring, &net, Role::Server, None, &x).unwrap_err(),
                permute_and_share(&mut s.party(), ring, &net, Role::Client, None, &x[..2])
                    .unwrap_err(),
                shuffle::shuffle(
                    &mut s.party(),
                    ring,
                    &x,
                    &ShuffleParams { max_block_bits: 17 },
                )
                .unwrap_err(),
            ];
            (e, s.ch.stats().total.bytes_sent - before)
        },
        |_| (),
    );
    let (errs, sent) = errs;
    for e in &errs {
        assert!(matches!(e, ProtocolError::Invalid(_)), "{e}");
    }
    assert_eq!(sent, 0);
}
