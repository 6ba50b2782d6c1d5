//! The mutation engine: from a set of seed inputs, derive input number `i` of a run by a short
//! stack of random edits, drawn from a ChaCha8 stream keyed by the run's seed with stream `i`.
//! Input `i` depends on nothing else, so any input of a run can be made again alone.
//!
//! Byte edits (every format): bit flips, bytes and little-endian words set to edge values,
//! protobuf varints written over a field (lengths, counts), small additions, truncation,
//! deletion, duplication and overwriting of chunks, random insertions, and splices of two seeds.
//! Text edits (DSL, IR text), on top: whole lines deleted, duplicated, swapped or taken from
//! another seed, a token replaced by an edge number or by another token of the seeds, and
//! brackets or punctuation inserted.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bytes that often sit on a boundary.
const EDGE_BYTES: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x20, 0x3a, 0x08];

/// Numbers, as text, that often sit on a boundary of a parser or of a size computation.
const EDGE_NUMBERS: [&str; 18] = [
    "0",
    "1",
    "-1",
    "2",
    "3",
    "64",
    "65536",
    "2147483647",
    "2147483648",
    "4294967296",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551616",
    "1e308",
    "1e-320",
    "nan",
    "-0.0",
    "99999999999999999999999999999999",
];

/// Characters inserted into text: brackets, separators and operators of the formats.
const PUNCTUATION: &[u8] = b"{}[]()<>,:;=%\"#*+-/._ \n\t?";

/// Seeds and how to edit them.
pub struct Mutator {
    seeds: Vec<Vec<u8>>,
    text: bool,
    /// The seeds' tokens (words and numbers), for text edits.
    tokens: Vec<Vec<u8>>,
    seed: u64,
}

impl Mutator {
    /// A mutator over `seeds` (at least one); `text` adds the line and token edits. `seed` keys
    /// the run.
    pub fn new(seeds: Vec<Vec<u8>>, text: bool, seed: u64) -> Mutator {
        assert!(!seeds.is_empty(), "a fuzz target needs at least one seed");
        let mut tokens: Vec<Vec<u8>> = if text {
            seeds.iter().flat_map(|s| split_tokens(s)).collect()
        } else {
            Vec::new()
        };
        tokens.sort_unstable();
        tokens.dedup();
        Mutator {
            seeds,
            text,
            tokens,
            seed,
        }
    }

    pub fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    /// Input number `index` of the run: every 16th a seed as is, the others a seed under one to
    /// eight edits (fewer more often).
    pub fn input(&self, index: u64) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let mut b = self.seeds[rng.gen_range(0..self.seeds.len())].clone();
        if index.is_multiple_of(16) {
            return b;
        }
        let edits = 1 + (rng.gen::<u32>() | 0x80).trailing_zeros().min(7);
        for _ in 0..edits {
            if self.text && rng.gen_bool(0.6) {
                self.text_edit(&mut rng, &mut b);
            } else {
                self.byte_edit(&mut rng, &mut b);
            }
        }
        b
    }

    fn other_seed(&self, rng: &mut ChaCha8Rng) -> &[u8] {
        &self.seeds[rng.gen_range(0..self.seeds.len())]
    }

    fn byte_edit(&self, rng: &mut ChaCha8Rng, b: &mut Vec<u8>) {
        if b.is_empty() {
            let n = rng.gen_range(1..16);
            b.extend((0..n).map(|_| rng.gen::<u8>()));
            return;
        }
        let len = b.len();
        let at = rng.gen_range(0..len);
        match rng.gen_range(0..12) {
            0 | 1 => b[at] ^= 1 << rng.gen_range(0..8),
            2 => b[at] = EDGE_BYTES[rng.gen_range(0..EDGE_BYTES.len())],
            3 => {
                let d = rng.gen_range(1..=8u8);
                b[at] = if rng.gen() {
                    b[at].wrapping_add(d)
                } else {
                    b[at].wrapping_sub(d)
                };
            }
            4 => {
                let width = [2usize, 4, 8][rng.gen_range(0..3)];
                let v = edge_number(rng, len).to_le_bytes();
                let end = (at + width).min(len);
                b[at..end].copy_from_slice(&v[..end - at]);
            }
            5 => {
                // A varint over 1..=3 bytes: a protobuf tag's length or count.
                let cut = (at + rng.gen_range(1..=3)).min(len);
                b.splice(at..cut, varint(edge_number(rng, len)));
            }
            6 => b.truncate(at),
            7 => {
                let n = chunk_len(rng, len - at);
                b.drain(at..at + n);
            }
            8 => {
                let n = chunk_len(rng, len - at);
                let chunk = b[at..at + n].to_vec();
                let to = rng.gen_range(0..=len);
                b.splice(to..to, chunk);
            }
            9 => {
                let n = chunk_len(rng, len - at);
                let to = rng.gen_range(0..=len - n);
                b.copy_within(at..at + n, to);
            }
            10 => {
                let n = rng.gen_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                b.splice(at..at, bytes);
            }
            _ => {
                // Our head, another seed's tail (from a random point of it).
                let other = self.other_seed(rng);
                let from = rng.gen_range(0..=other.len());
                b.truncate(at);
                b.extend_from_slice(&other[from..]);
            }
        }
    }

    fn text_edit(&self, rng: &mut ChaCha8Rng, b: &mut Vec<u8>) {
        let lines = line_starts(b);
        let pick = |rng: &mut ChaCha8Rng| {
            let i = rng.gen_range(0..lines.len());
            let end = lines.get(i + 1).copied().unwrap_or(b.len());
            (lines[i], end)
        };
        match rng.gen_range(0..7) {
            0 => {
                let (s, e) = pick(rng);
                b.drain(s..e);
            }
            1 => {
                let (s, e) = pick(rng);
                let line = b[s..e].to_vec();
                let (to, _) = pick(rng);
                b.splice(to..to, line);
            }
            2 => {
                let ((s1, e1), (s2, e2)) = (pick(rng), pick(rng));
                if e1 <= s2 {
                    let (first, second) = (b[s1..e1].to_vec(), b[s2..e2].to_vec());
                    b.splice(s2..e2, first);
                    b.splice(s1..e1, second);
                }
            }
            3 => {
                let other = self.other_seed(rng);
                let starts = line_starts(other);
                let i = rng.gen_range(0..starts.len());
                let end = starts.get(i + 1).copied().unwrap_or(other.len());
                let line = other[starts[i]..end].to_vec();
                let (to, _) = pick(rng);
                b.splice(to..to, line);
            }
            4 | 5 => {
                let Some((s, e)) = token_at(b, rng.gen_range(0..=b.len())) else {
                    return;
                };
                let with = if rng.gen_bool(0.5) || self.tokens.is_empty() {
                    EDGE_NUMBERS[rng.gen_range(0..EDGE_NUMBERS.len())]
                        .as_bytes()
                        .to_vec()
                } else {
                    self.tokens[rng.gen_range(0..self.tokens.len())].clone()
                };
                b.splice(s..e, with);
            }
            _ => {
                let at = rng.gen_range(0..=b.len());
                let c = PUNCTUATION[rng.gen_range(0..PUNCTUATION.len())];
                b.insert(at, c);
            }
        }
    }
}

/// A length for a chunk of at most `max` (≥ 1) bytes: short ones far more often.
fn chunk_len(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let cap = 1usize << rng.gen_range(0..16);
    rng.gen_range(1..=cap.min(max).max(1)).min(max)
}

/// An integer on a boundary: small, a power of two or just below, the largest of a width,
/// negative, or the input's length give or take one.
fn edge_number(rng: &mut ChaCha8Rng, len: usize) -> u64 {
    let len = len as u64;
    match rng.gen_range(0..6) {
        0 => rng.gen_range(0..=16),
        1 => 1 << rng.gen_range(0..64),
        2 => (1u64 << rng.gen_range(1..64)) - 1,
        3 => [u8::MAX as u64, u16::MAX as u64, u32::MAX as u64, u64::MAX][rng.gen_range(0..4)],
        4 => (-(rng.gen_range(1..=256) as i64)) as u64,
        _ => len.wrapping_add(rng.gen_range(0..3)).wrapping_sub(1),
    }
}

/// The protobuf varint of `v`.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// Offsets where the lines of `b` start (at least one: 0).
fn line_starts(b: &[u8]) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(
        b.iter()
            .enumerate()
            .filter(|&(i, &c)| c == b'\n' && i + 1 < b.len())
            .map(|(i, _)| i + 1),
    );
    v
}

fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-'
}

/// The token (a run of word, digit, `.` or `-` bytes) at or after `at`, if any.
fn token_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let s = at + b.get(at..)?.iter().position(|&c| is_token_byte(c))?;
    let s = (0..s)
        .rev()
        .find(|&i| !is_token_byte(b[i]))
        .map_or(0, |i| i + 1);
    let e = b[s..]
        .iter()
        .position(|&c| !is_token_byte(c))
        .map_or(b.len(), |n| s + n);
    Some((s, e))
}

/// The distinct tokens of a text (at most 64 bytes each).
fn split_tokens(b: &[u8]) -> Vec<Vec<u8>> {
    b.split(|&c| !is_token_byte(c))
        .filter(|t| !t.is_empty() && t.len() <= 64)
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_depends_only_on_the_seed_and_its_index() {
        let seeds = vec![b"model m { x = 1 }\nline two 42\n".to_vec(), vec![1, 2, 3]];
        let (a, b) = (
            Mutator::new(seeds.clone(), true, 7),
            Mutator::new(seeds.clone(), true, 7),
        );
        let run: Vec<Vec<u8>> = (0..200).map(|i| a.input(i)).collect();
        // Made in another order, by another mutator: the same inputs.
        for i in (0..200).rev() {
            assert_eq!(b.input(i), run[i as usize], "input {i}");
        }
        // Another run seed gives other inputs; the edits change most inputs.
        let other = Mutator::new(seeds.clone(), true, 8);
        let same = (0..200)
            .filter(|&i| other.input(i) == run[i as usize])
            .count();
        assert!(same < 40, "{same} of 200 equal");
        let changed = run.iter().filter(|r| !seeds.contains(r)).count();
        assert!(changed > 150, "{changed} of 200 changed");
    }

    #[test]
    fn edits_reach_lengths_and_edge_values() {
        let m = Mutator::new(vec![vec![0x55; 64]], false, 1);
        let inputs: Vec<Vec<u8>> = (0..2000).map(|i| m.input(i)).collect();
        assert!(inputs.iter().any(|b| b.len() < 64), "truncated");
        assert!(inputs.iter().any(|b| b.len() > 64), "grown");
        assert!(inputs.iter().any(|b| b.contains(&0xff)), "edge byte");
        assert!(inputs.iter().any(|b| b.is_empty() || b.len() == 1));
    }

    #[test]
    fn text_edits_swap_numbers_and_lines() {
        let m = Mutator::new(vec![b"a = 12\nb = 34\n".to_vec()], true, 3);
        let texts: Vec<String> = (0..2000)
            .map(|i| String::from_utf8_lossy(&m.input(i)).into_owned())
            .collect();
        assert!(texts.iter().any(|t| t.contains("9223372036854775807")));
        assert!(
            texts.iter().any(|t| t == "b = 34\na = 12\n"),
            "lines swapped"
        );
        assert!(texts.iter().any(|t| t == "a = 12\n"), "line deleted");
    }

    #[test]
    fn tokens_and_varints() {
        assert_eq!(token_at(b"ab cd", 2), Some((3, 5)));
        assert_eq!(token_at(b"ab cd", 1), Some((0, 2)));
        assert_eq!(token_at(b"ab  ", 2), None);
        assert_eq!(varint(300), vec![0xac, 0x02]);
        assert_eq!(varint(u64::MAX).len(), 10);
    }
}
