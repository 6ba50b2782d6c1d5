//! What each party sees: the OT sender's view must not depend on the receiver's choice bits, and
//! OT runs over real TCP sockets (loopback, two threads) as it does in memory.

use crate::common::{on_mem_pair, on_session, Transport};
use ciphergpt_runtime::crypto::{Block, CotReceiver, CotSender, OtPair, Prg};
use ciphergpt_runtime::net::tap::Tap;
use ciphergpt_runtime::net::{Channel, Role};

/// Run `n` COTs with the given choices; return the sender's view: (Δ, its outputs K, every byte
/// it received after the base OTs).
fn sender_view(choices: Vec<bool>) -> (Block, Vec<Block>, Vec<u8>) {
    on_mem_pair(
        |a| {
            let mut tap = Tap::new(a);
            let mut s = CotSender::setup(&mut tap, &mut Prg::from_entropy()).unwrap();
            let setup_bytes = tap.received.len();
            let n = 1 << 15;
            let k = s.send_cot(&mut tap, n).unwrap();
            (s.delta(), k, tap.received[setup_bytes..].to_vec())
        },
        move |mut b| {
            let mut r = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
            r.recv_cot(&mut b, &choices).unwrap();
        },
    )
    .0
}

/// Agreement between bit `bit` of each item and the choice bit, minus n/2, in standard deviations.
fn z_score(n: usize, agree: usize) -> f64 {
    (agree as f64 - n as f64 / 2.0) / ((n as f64).sqrt() / 2.0)
}

#[test]
fn sender_view_does_not_depend_on_choices() {
    let n = 1 << 15;
    let patterns: Vec<(&str, Vec<bool>)> = vec![
        ("all zero", vec![false; n]),
        ("all one", vec![true; n]),
        ("alternating", (0..n).map(|i| i % 2 == 1).collect()),
        ("random", Prg::from_entropy().bools(n)),
    ];
    let mut lens = Vec::new();
    for (name, choices) in patterns {
        let (_delta, k, view) = sender_view(choices.clone());
        lens.push(view.len());
        // The view is the matrix u: 128 columns of n bits. Every column must be uncorrelated
        // with the choice vector, and so must every bit of the sender's outputs K_i.
        let nb = n / 128;
        let cols: Vec<Block> = view
            .chunks_exact(16)
            .map(|c| Block::from_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(cols.len(), 128 * nb);
        for j in 0..128 {
            let agree = (0..n)
                .filter(|&i| cols[j * nb + i / 128].bit(i % 128) == choices[i])
                .count();
            let z = z_score(n, agree);
            assert!(
                z.abs() < 6.0,
                "{name}: column {j} agrees with the choices, z = {z:.1}"
            );
        }
        for pos in 0..128 {
            let agree = (0..n).filter(|&i| k[i].bit(pos) == choices[i]).count();
            let z = z_score(n, agree);
            assert!(z.abs() < 6.0, "{name}: output bit {pos} leaks, z = {z:.1}");
        }
        // The view's bits are balanced overall.
        let ones: u64 = view.iter().map(|b| b.count_ones() as u64).sum();
        let bits = 8.0 * view.len() as f64;
        assert!(
            (ones as f64 - bits / 2.0).abs() < 6.0 * bits.sqrt() / 2.0,
            "{name}"
        );
    }
    assert!(
        lens.windows(2).all(|w| w[0] == w[1]),
        "view length depends on choices: {lens:?}"
    );
}

#[test]
fn chosen_ot_sender_view_has_fixed_shape() {
    // For chosen-message OT and 1-of-N OT the sender receives only the COT matrix.
    for choice in [false, true] {
        let (sent, got) = on_mem_pair(
            |a| {
                let mut tap = Tap::new(a);
                let mut s = CotSender::setup(&mut tap, &mut Prg::from_entropy()).unwrap();
                let before = tap.received.len();
                s.send_ot(&mut tap, &vec![[Block(1), Block(2)]; 1000])
                    .unwrap();
                s.send_1_of_n(&mut tap, &vec![7u64; 1600], 16, 4).unwrap();
                tap.received.len() - before
            },
            move |mut b| {
                let mut r = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
                r.recv_ot(&mut b, &vec![choice; 1000]).unwrap();
                r.recv_1_of_n(&mut b, &vec![choice as u32 * 15; 100], 16, 4)
                    .unwrap()
            },
        );
        assert!(got.iter().all(|&g| g == 7));
        // 1000 OTs pad to 1024, 400 to 512: 16 bytes per OT, nothing else.
        assert_eq!(sent, 16 * (1024 + 512));
    }
}

#[test]
fn ot_over_tcp_loopback_in_both_directions_and_several_channels() {
    // A session of two lanes, one thread per channel at each party, each with its own OT pair.
    let (server, client) = on_session(
        Transport::Tcp,
        (2, 2),
        |chans| {
            let hs: Vec<_> = chans
                .into_iter()
                .map(|mut ch| {
                    std::thread::spawn(move || {
                        let mut p =
                            OtPair::setup_iknp(&mut ch, Role::Server, &mut Prg::from_entropy())
                                .unwrap();
                        let k = p.sender.send_cot(&mut ch, 100_000).unwrap();
                        let choices = Prg::from_entropy().bools(50_000);
                        let m = p.receiver.recv_cot(&mut ch, &choices).unwrap();
                        let mut d = [Block::ZERO];
                        ch.recv_blocks(&mut d).unwrap();
                        let mut k2 = vec![Block::ZERO; 50_000];
                        ch.recv_blocks(&mut k2).unwrap();
                        for i in 0..50_000 {
                            assert_eq!(m[i], k2[i] ^ d[0].and_bit(choices[i]));
                        }
                        (p.sender.delta(), k, ch.stats())
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        },
        |chans| {
            let hs: Vec<_> = chans
                .into_iter()
                .map(|mut ch| {
                    std::thread::spawn(move || {
                        let mut p =
                            OtPair::setup_iknp(&mut ch, Role::Client, &mut Prg::from_entropy())
                                .unwrap();
                        let (b, m) = p.receiver.recv_cot_random(&mut ch, 100_000).unwrap();
                        let k = p.sender.send_cot(&mut ch, 50_000).unwrap();
                        ch.send_blocks(&[p.sender.delta()]).unwrap();
                        ch.send_blocks(&k).unwrap();
                        ch.flush().unwrap();
                        (b, m)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        },
    );
    assert_eq!((server.len(), client.len()), (2, 2));
    for ((delta, k, stats), (b, m)) in server.iter().zip(client) {
        for i in 0..100_000 {
            assert_eq!(m[i], k[i] ^ delta.and_bit(b[i]));
        }
        assert_eq!(
            stats.scope("").bytes_received,
            16 * 100_096 + 16 + 16 * 50_000
        );
    }
}
