//! Text ↔ token ids with the plan's tokenizer, on the client only (the server never sees text).
//!
//! - **Byte-level** plans (vocabulary 256): one token per byte of the UTF-8 text.
//! - **GPT-2** plans (vocabulary 50,257): GPT-2's byte-level BPE through the `tiktoken-rs` crate,
//!   whose embedded `r50k_base` ranks are GPT-2's 50,256 byte sequences with GPT-2's ids (checked
//!   entry for entry against OpenAI's `encoder.json`: no difference) and whose pre-tokenising
//!   pattern is GPT-2's; id 50,256 is `<|endoftext|>`. Prompts are encoded as ordinary text: a
//!   literal `<|endoftext|>` in a prompt is not turned into the special token. The vocabulary is
//!   compiled into the binary (about 0.8 MB); nothing is downloaded at run time.
//! - **Ids** plans: no tokenizer; the client gives ids and sees ids.
//!
//! Decoding streams: a token may end in the middle of a UTF-8 character (byte-level tokens
//! always can, GPT-2 tokens can for characters outside its merges, such as most emoji), so
//! [`TextStream`] holds back an incomplete tail until the next tokens complete it; what it
//! prints in all equals the lossy UTF-8 decoding of all the bytes at once.
//!
//! The tests compare the encoder with GPT-2 ids computed by an independent implementation
//! (`tests/data/gpt2_reference.json`, made with the npm package `gpt-3-encoder` 1.1.4, a port of
//! OpenAI's `encoder.py` with OpenAI's vocabulary files: `npm install gpt-3-encoder@1.1.4`, then
//! `require("gpt-3-encoder").encode(text)` for each text).

use anyhow::{anyhow, bail};
use ciphergpt_compiler::plan::{Plan, Tokenizer};
use std::sync::OnceLock;
use tiktoken_rs::CoreBPE;

/// GPT-2's vocabulary size: 50,256 byte sequences and `<|endoftext|>`.
pub const GPT2_VOCAB: usize = 50_257;

/// A plan's text tokenizer.
pub enum TextTokenizer {
    Byte,
    Gpt2(&'static CoreBPE),
}

/// GPT-2's tokenizer, built once per process (about 20 ms).
fn gpt2() -> anyhow::Result<&'static CoreBPE> {
    static BPE: OnceLock<Result<CoreBPE, String>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::r50k_base().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("cannot load GPT-2's vocabulary: {e}"))
}

impl TextTokenizer {
    /// The tokenizer `plan` names; `None` when its client gives token ids.
    pub fn for_plan(plan: &Plan) -> anyhow::Result<Option<TextTokenizer>> {
        match Tokenizer::try_from(plan.tokenizer) {
            Ok(Tokenizer::Ids) => Ok(None),
            Ok(Tokenizer::Byte) => Ok(Some(TextTokenizer::Byte)),
            Ok(Tokenizer::Gpt2) => Ok(Some(TextTokenizer::Gpt2(gpt2()?))),
            Err(_) => bail!(
                "the plan names tokenizer {}, which this build does not know: recompile the plan",
                plan.tokenizer
            ),
        }
    }

    /// The number of token ids.
    pub fn vocab(&self) -> usize {
        match self {
            TextTokenizer::Byte => 256,
            TextTokenizer::Gpt2(_) => GPT2_VOCAB,
        }
    }

    /// The token ids of `text`.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        match self {
            TextTokenizer::Byte => text.bytes().map(i64::from).collect(),
            TextTokenizer::Gpt2(bpe) => bpe
                .encode_ordinary(text)
                .into_iter()
                .map(i64::from)
                .collect(),
        }
    }

    /// The bytes of one token (part of a UTF-8 character, or several characters).
    pub fn token_bytes(&self, id: usize) -> anyhow::Result<Vec<u8>> {
        if id >= self.vocab() {
            bail!(
                "token {id} is outside the tokenizer's vocabulary of {}",
                self.vocab()
            );
        }
        match self {
            TextTokenizer::Byte => Ok(vec![id as u8]),
            TextTokenizer::Gpt2(bpe) => bpe
                .decode_bytes(&[id as u32])
                .map_err(|e| anyhow!("token {id}: {e}")),
        }
    }

    /// The text of `ids`, invalid UTF-8 replaced by U+FFFD.
    pub fn decode(&self, ids: &[usize]) -> anyhow::Result<String> {
        let mut s = TextStream::default();
        let mut out = String::new();
        for &id in ids {
            out += &s.push(&self.token_bytes(id)?);
        }
        out += &s.finish();
        Ok(out)
    }
}

/// Bytes in, complete characters out: the tail of an unfinished UTF-8 character waits for the
/// next bytes.
#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    /// Add `bytes`; returns the characters now complete (invalid sequences as U+FFFD).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out += s;
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is valid UTF-8 by construction.
                    out += &String::from_utf8_lossy(valid);
                    match e.error_len() {
                        // An unfinished character at the end: keep it for the next bytes.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// The end of the text: an unfinished character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2_tok() -> TextTokenizer {
        TextTokenizer::Gpt2(gpt2().unwrap())
    }

    /// (text, ids) pairs of the independent reference.
    fn reference() -> Vec<(String, Vec<i64>)> {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/gpt2_reference.json")).unwrap();
        doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["text"].as_str().unwrap().to_string(),
                    c["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_i64().unwrap())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn gpt2_encodes_well_known_ids() {
        let t = gpt2_tok();
        assert_eq!(t.encode("Hello world"), [15496, 995]);
        assert_eq!(t.encode(" the"), [262]);
        assert_eq!(t.encode("!"), [0]);
        // Special tokens are ordinary text in a prompt, but decode as themselves.
        assert_ne!(t.encode("<|endoftext|>"), [50256]);
        assert_eq!(t.decode(&[50256]).unwrap(), "<|endoftext|>");
        assert_eq!(t.decode(&[15496, 995]).unwrap(), "Hello world");
    }

    #[test]
    fn gpt2_equals_an_independent_implementation() {
        let t = gpt2_tok();
        let cases = reference();
        assert!(cases.len() >= 20);
        for (text, ids) in cases {
            assert_eq!(t.encode(&text), ids, "{text:?}");
            let back: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
            assert_eq!(t.decode(&back).unwrap(), text);
        }
    }

    #[test]
    fn round_trips_and_streams_whole_characters() {
        let text = "naïve café — 日本語 😀👍🏽 done\n";
        for t in [TextTokenizer::Byte, gpt2_tok()] {
            let ids: Vec<usize> = t.encode(text).iter().map(|&i| i as usize).collect();
            assert_eq!(t.decode(&ids).unwrap(), text);
            // Token by token, each piece printed is whole characters and they add up.
            let mut s = TextStream::default();
            let mut out = String::new();
            for &id in &ids {
                let piece = s.push(&t.token_bytes(id).unwrap());
                assert!(!piece.contains(char::REPLACEMENT_CHARACTER));
                out += &piece;
            }
            out += &s.finish();
            assert_eq!(out, text);
        }
        // GPT-2 splits an emoji across tokens: a token alone is not a character.
        let t = gpt2_tok();
        let ids = t.encode("😀");
        assert!(ids.len() > 1);
        assert!(std::str::from_utf8(&t.token_bytes(ids[0] as usize).unwrap()).is_err());
    }

    #[test]
    fn the_stream_equals_lossy_decoding_of_all_bytes() {
        // Random bytes, biased towards UTF-8 lead and continuation bytes, pushed in random pieces.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..500 {
            let n = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..n)
                .map(|_| match next() % 4 {
                    0 => (next() % 128) as u8,
                    1 => 0x80 | (next() % 64) as u8,
                    2 => 0xc0 | (next() % 64) as u8,
                    _ => next() as u8,
                })
                .collect();
            let mut s = TextStream::default();
            let mut out = String::new();
            let mut i = 0;
            while i < bytes.len() {
                let k = 1 + (next() % 4) as usize;
                let end = (i + k).min(bytes.len());
                out += &s.push(&bytes[i..end]);
                i = end;
            }
            out += &s.finish();
            assert_eq!(out, String::from_utf8_lossy(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn ids_outside_the_vocabulary_are_errors() {
        assert!(TextTokenizer::Byte.token_bytes(256).is_err());
        let t = gpt2_tok();
        assert!(t.token_bytes(GPT2_VOCAB).is_err());
        assert!(t.decode(&[15496, 99_999]).is_err());
    }
}
