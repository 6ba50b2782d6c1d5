//! RLWE keys and ciphertexts as they come from the peer, as a fuzz target
//! ([`ciphergpt_compiler::fuzz`]): [`Seeded::read`] returns the ciphertext or a one-line error;
//! what it accepts is its own encoding and expands, as a public key, without a panic.

use super::eval::PublicKeyNtt;
use super::keys::{SecretKey, Seeded};
use super::params::Plain;
use crate::crypto::{Block, Prg};
use ciphergpt_compiler::fuzz::{refused, Target, Verdict};

/// A public key and a ciphertext, on the wire: the seeds.
pub fn samples() -> Vec<Vec<u8>> {
    let mut rng = Prg::new(Block(7));
    let sk = SecretKey::generate(&mut rng);
    let plain = Plain::new(37).expect("a supported width");
    let ct = sk
        .encrypt(plain, &[1, 2, plain.mask()], &mut rng)
        .expect("three coefficients");
    [sk.public_key(&mut rng), ct]
        .iter()
        .map(|s| {
            let mut bytes = Vec::with_capacity(Seeded::wire_len());
            s.write(&mut bytes);
            bytes
        })
        .collect()
}

/// The target `rlwe`: the peer's public keys and ciphertexts.
pub fn target() -> Target {
    Target {
        name: "rlwe",
        text: false,
        seeds: samples(),
        check: Box::new(|b| match Seeded::read(b) {
            Ok(s) => {
                let mut again = Vec::with_capacity(b.len());
                s.write(&mut again);
                if again != b {
                    return Err(
                        "an RLWE ciphertext decoded from bytes other than its encoding".into(),
                    );
                }
                PublicKeyNtt::new(&s);
                Ok(Verdict::Accepted)
            }
            Err(e) => refused(&e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use ciphergpt_compiler::fuzz;

    /// Mutations of a key and a ciphertext: never a panic, every error one line, and anything
    /// that decodes encodes back to the same bytes.
    #[test]
    fn mutated_keys_and_ciphertexts_never_panic() {
        let options = fuzz::Options {
            seed: 23,
            iterations: 10_000,
            ..Default::default()
        };
        let report = fuzz::run(&super::target(), &options);
        assert_eq!(report.failures, 0, "{:?}", report.findings);
        assert_eq!(report.inputs, 10_000);
        // The seeds (every 16th input) and the mutants that keep the length and the residues'
        // range decode; a mutant of another length never does.
        assert!(
            (10_000 / 16..10_000).contains(&report.accepted),
            "{} accepted",
            report.accepted
        );
    }
}
