//! The session-level messages: every message the two parties exchange outside the protocols' own
//! byte streams, typed, in one place, under one version.
//!
//! | message | who sends it | when |
//! |---|---|---|
//! | [`Hello`] | both | first on every connection ([`super::handshake`]) |
//! | [`OtChoice`] | client | after the handshake, before the OT setup: silent OT or IKNP |
//! | [`Request`] | client | after the setup: the counts, the decoding, the preparation batch |
//! | [`Step`] | client | before each decode step: go on, or stop |
//!
//! **Encoding.** Each message's body is a protobuf message (prost derives, as the plan file; the
//! raw structs are private to this module), behind a header and a 2-byte little-endian body
//! length. The header of [`Hello`] is its *preamble*, the magic `CGPT-2PC` and [`WIRE_VERSION`]
//! as a little-endian u32, laid out the same in every version, so that parties of two versions
//! both refuse each other with "wire version differs" rather than a garbled message. The header of
//! the others is one kind byte, so a message out of order is refused as such.
//!
//! **Decoding** refuses, with a one-line error naming the message and the field: another header,
//! a body longer than the message's most ([`WireMessage::MAX_BODY`], checked before it is read),
//! a body that is not protobuf, or not the canonical encoding of its value (unknown, repeated or
//! default-valued fields, trailing bytes), a missing or unknown enum value, a hash or id of the
//! wrong length, and counts out of range. Nothing panics on any input.
//!
//! **Versions.** [`WIRE_VERSION`] is the version of everything on the wire: these messages and
//! the cryptographic protocols' byte streams. The plan and weights files have their own,
//! `ciphergpt_compiler::plan::PLAN_FORMAT_VERSION`. [`LAYOUTS`] records a fingerprint of these
//! messages' layout for each wire version; a unit test fails when the layout changes under the
//! same version.

use prost::Message as _;

use super::{Channel, NetError, Role};
use crate::crypto::CotBackend;

/// Version of the wire format: the session messages of this module and the protocols' bytes;
/// bump it whenever either changes. 2: the session request carries the decoding (top-K,
/// temperature). 3: the first channel's count is each party's most lanes, the session runs the
/// smaller on as many channels, each with its own OT. 4: 1-out-of-N OT pads are read from each
/// key's hash stream, and the millionaires' trees combine up to four digits per node by one OT.
/// 5: the session messages are protobuf bodies behind a header and a length (this module).
pub const WIRE_VERSION: u32 = 5;

/// The layout fingerprint of this module's messages at each wire version (BLAKE3, hex; the unit
/// test `layout_matches_the_wire_version` computes it). Never edit a row: when the test fails,
/// bump [`WIRE_VERSION`] and add a row.
pub const LAYOUTS: &[(u32, &str)] = &[(
    5,
    "3f5eefe7951af9cc823c469eb2bbb34e55669fb3bd8475838c4d8f2b984b64a7",
)];

/// The first bytes of every connection.
pub const MAGIC: [u8; 8] = *b"CGPT-2PC";

/// The hello's preamble: [`MAGIC`], then [`WIRE_VERSION`] (u32, little endian).
pub const PREAMBLE: [u8; 12] = preamble(WIRE_VERSION);

const fn preamble(version: u32) -> [u8; 12] {
    let mut p = [0u8; 12];
    let mut i = 0;
    while i < 8 {
        p[i] = MAGIC[i];
        i += 1;
    }
    let v = version.to_le_bytes();
    while i < 12 {
        p[i] = v[i - 8];
        i += 1;
    }
    p
}

/// What a TLS server sends a plaintext client in place of its hello: the preamble with the
/// version `u32::MAX` (no version is), and an empty body, which the client reports as "the
/// server requires TLS".
pub const TLS_REQUIRED: [u8; 14] = {
    let p = preamble(u32::MAX);
    let mut t = [0u8; 14];
    let mut i = 0;
    while i < 12 {
        t[i] = p[i];
        i += 1;
    }
    t
};

/// Bytes of the body length after the header.
pub const LEN_BYTES: usize = 2;

/// A field of a message that does not hold: names the message and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}.{field}: {problem}")]
pub struct WireError {
    pub message: &'static str,
    pub field: &'static str,
    pub problem: String,
}

impl WireError {
    fn new(message: &'static str, field: &'static str, problem: impl Into<String>) -> WireError {
        WireError {
            message,
            field,
            problem: problem.into(),
        }
    }
}

/// What the peer sent does not decode: it is malformed.
impl From<WireError> for NetError {
    fn from(e: WireError) -> NetError {
        NetError::Malformed(e.to_string())
    }
}

/// A session message: its header, its most body bytes, and its conversion to and from the raw
/// protobuf body, which validates. The provided methods frame, send and receive it.
pub trait WireMessage: Sized {
    /// The message's name in errors.
    const NAME: &'static str;
    /// What precedes the body length: a kind byte, or the hello's preamble.
    const HEADER: &'static [u8];
    /// The longest body of a valid message (a longer length is refused before the body is read).
    const MAX_BODY: usize;
    /// The protobuf body.
    type Raw: prost::Message + Default;

    fn to_raw(&self) -> Self::Raw;
    /// The typed message of a decoded body, or the field that does not hold.
    fn from_raw(raw: &Self::Raw) -> Result<Self, WireError>;

    /// The error for a header other than [`WireMessage::HEADER`] (as many bytes).
    fn bad_header(got: &[u8]) -> NetError {
        NetError::Malformed(format!(
            "{}: expected kind {:?}, got {:?} (a message out of order)",
            Self::NAME,
            Self::HEADER,
            got
        ))
    }

    /// The whole message: header, body length, body.
    fn encode(&self) -> Vec<u8> {
        let body = self.to_raw().encode_to_vec();
        debug_assert!(body.len() <= Self::MAX_BODY, "{} body too long", Self::NAME);
        let mut out = Vec::with_capacity(Self::HEADER.len() + LEN_BYTES + body.len());
        out.extend_from_slice(Self::HEADER);
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decode a whole message, exactly (no byte short, none left over).
    fn decode(bytes: &[u8]) -> Result<Self, NetError> {
        let h = Self::HEADER.len();
        let head = bytes.get(..h + LEN_BYTES).ok_or_else(|| {
            malformed::<Self>(format!(
                "truncated: {} bytes, the header and length are {}",
                bytes.len(),
                h + LEN_BYTES
            ))
        })?;
        let n = body_len::<Self>(head)?;
        let body = &bytes[h + LEN_BYTES..];
        if body.len() != n {
            return Err(malformed::<Self>(format!(
                "the length says {n} body bytes, {} follow",
                body.len()
            )));
        }
        decode_body(body)
    }

    /// Queue the message for the peer (not flushed).
    fn send<C: Channel + ?Sized>(&self, ch: &mut C) -> Result<(), NetError> {
        ch.send(&self.encode())
    }

    /// Receive one message; the length is checked before the body is read.
    fn recv<C: Channel + ?Sized>(ch: &mut C) -> Result<Self, NetError> {
        let h = Self::HEADER.len();
        let head = ch.recv_vec(h + LEN_BYTES)?;
        let n = body_len::<Self>(&head)?;
        decode_body(&ch.recv_vec(n)?)
    }
}

fn malformed<M: WireMessage>(what: String) -> NetError {
    NetError::Malformed(format!("{}: {what}", M::NAME))
}

/// The body length from a header and length, after checking the header.
fn body_len<M: WireMessage>(head: &[u8]) -> Result<usize, NetError> {
    let h = M::HEADER.len();
    if &head[..h] != M::HEADER {
        return Err(M::bad_header(&head[..h]));
    }
    let n = u16::from_le_bytes([head[h], head[h + 1]]) as usize;
    if n > M::MAX_BODY {
        return Err(malformed::<M>(format!(
            "oversize: a body of {n} bytes, at most {}",
            M::MAX_BODY
        )));
    }
    Ok(n)
}

/// Decode a body: protobuf, canonical (it encodes back to the same bytes), then the fields.
fn decode_body<M: WireMessage>(body: &[u8]) -> Result<M, NetError> {
    let raw = M::Raw::decode(body)
        .map_err(|e| malformed::<M>(format!("not a protobuf message ({e})")))?;
    if raw.encode_to_vec() != body {
        return Err(malformed::<M>(
            "not the canonical encoding of its fields (unknown, repeated or default-valued fields)"
                .into(),
        ));
    }
    Ok(M::from_raw(&raw)?)
}

/// The raw protobuf bodies. Enum values are `uint32` with 0 refused, so that a missing field
/// (which protobuf leaves out) never reads as a valid value.
mod raw {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Hello {
        /// 1 server, 2 client.
        #[prost(uint32, tag = "1")]
        pub role: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub plan_hash: Vec<u8>,
        #[prost(uint32, tag = "3")]
        pub channel_index: u32,
        #[prost(uint32, tag = "4")]
        pub channel_count: u32,
        #[prost(bytes = "vec", tag = "5")]
        pub session_id: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OtChoice {
        /// 1 silent OT, 2 IKNP.
        #[prost(uint32, tag = "1")]
        pub backend: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(uint32, tag = "1")]
        pub prompt_tokens: u32,
        #[prost(uint32, tag = "2")]
        pub new_tokens: u32,
        #[prost(uint32, tag = "3")]
        pub top_k: u32,
        #[prost(uint32, tag = "4")]
        pub inv_temperature: u32,
        #[prost(uint32, tag = "5")]
        pub preprocess_tokens: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Step {
        /// 1 next, 2 stop.
        #[prost(uint32, tag = "1")]
        pub step: u32,
    }
}

/// Most bytes of a `uint32` field with a one-byte tag, and of a `bytes` field of `n` (< 128) bytes.
const U32_FIELD: usize = 1 + 5;
const fn bytes_field(n: usize) -> usize {
    2 + n
}

/// What each party announces first on every connection (after the preamble, which carries the
/// magic and the wire version): its role, the plan's hash, the channel's index and count, and the
/// session id. On channel 0 the count is the party's most lanes; see [`super::handshake`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub role: Role,
    pub plan_hash: [u8; 32],
    pub channel_index: u32,
    pub channel_count: u32,
    /// Identifies the session among the connections a server accepts (set by the client).
    pub session_id: [u8; 16],
}

impl WireMessage for Hello {
    const NAME: &'static str = "Hello";
    const HEADER: &'static [u8] = &PREAMBLE;
    const MAX_BODY: usize = 2 + bytes_field(32) + 2 * U32_FIELD + bytes_field(16);
    type Raw = raw::Hello;

    fn to_raw(&self) -> raw::Hello {
        raw::Hello {
            role: match self.role {
                Role::Server => 1,
                Role::Client => 2,
            },
            plan_hash: self.plan_hash.to_vec(),
            channel_index: self.channel_index,
            channel_count: self.channel_count,
            session_id: self.session_id.to_vec(),
        }
    }

    fn from_raw(r: &raw::Hello) -> Result<Hello, WireError> {
        let err = |field, problem: String| WireError::new("Hello", field, problem);
        let role = match r.role {
            1 => Role::Server,
            2 => Role::Client,
            0 => return Err(err("role", "missing".into())),
            b => {
                return Err(err(
                    "role",
                    format!("unknown role {b} (1 server, 2 client)"),
                ))
            }
        };
        let plan_hash = r.plan_hash.as_slice().try_into().map_err(|_| {
            err(
                "plan_hash",
                format!("{} bytes, a hash is 32", r.plan_hash.len()),
            )
        })?;
        let session_id = r.session_id.as_slice().try_into().map_err(|_| {
            err(
                "session_id",
                format!("{} bytes, an id is 16", r.session_id.len()),
            )
        })?;
        if r.channel_count == 0 {
            return Err(err("channel_count", "0 channels".into()));
        }
        if r.channel_index >= r.channel_count {
            return Err(err(
                "channel_index",
                format!(
                    "{} is not below the channel count {}",
                    r.channel_index, r.channel_count
                ),
            ));
        }
        Ok(Hello {
            role,
            plan_hash,
            channel_index: r.channel_index,
            channel_count: r.channel_count,
            session_id,
        })
    }

    /// Another magic is not a ciphergpt peer; another version is refused as such (both parties
    /// read the version where every version puts it).
    fn bad_header(got: &[u8]) -> NetError {
        if got[0] == 0x16 && got[1] == 0x03 {
            // A TLS record of the handshake: a client with TLS on.
            return NetError::Tls {
                what: "reading the hello".into(),
                problem: "the peer speaks TLS and this server plaintext: start the server with --tls-cert and --tls-key, or connect without --tls-ca".into(),
            };
        }
        if got[..8] != MAGIC {
            return NetError::Malformed("Hello: the first bytes are not a ciphergpt hello".into());
        }
        let theirs = u32::from_le_bytes([got[8], got[9], got[10], got[11]]);
        if theirs == u32::MAX {
            return NetError::Tls {
                what: "reading the hello".into(),
                problem: "the server requires TLS: connect with --tls-ca (the CA that signed its certificate)".into(),
            };
        }
        NetError::HandshakeMismatch {
            field: "wire version",
            ours: WIRE_VERSION.to_string(),
            theirs: theirs.to_string(),
            hint: "run the same ciphergpt version on both hosts",
        }
    }
}

/// The OT extension a session runs on, chosen by the client and sent before the setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtChoice {
    backend: CotBackend,
}

impl OtChoice {
    /// The choice of `backend`: silent OT or IKNP (the test-only backends are refused).
    pub fn new(backend: CotBackend) -> Result<OtChoice, WireError> {
        match backend {
            CotBackend::Silent | CotBackend::Iknp => Ok(OtChoice { backend }),
            other => Err(WireError::new(
                "OtChoice",
                "backend",
                format!("{other:?} is for tests, not sessions"),
            )),
        }
    }

    pub fn backend(&self) -> CotBackend {
        self.backend
    }
}

impl WireMessage for OtChoice {
    const NAME: &'static str = "OtChoice";
    const HEADER: &'static [u8] = &[1];
    const MAX_BODY: usize = 2;
    type Raw = raw::OtChoice;

    fn to_raw(&self) -> raw::OtChoice {
        raw::OtChoice {
            backend: match self.backend {
                CotBackend::Iknp => 2,
                // `new` admits only the two.
                _ => 1,
            },
        }
    }

    fn from_raw(r: &raw::OtChoice) -> Result<OtChoice, WireError> {
        let backend = match r.backend {
            1 => CotBackend::Silent,
            2 => CotBackend::Iknp,
            0 => return Err(WireError::new("OtChoice", "backend", "missing")),
            b => {
                return Err(WireError::new(
                    "OtChoice",
                    "backend",
                    format!("unknown backend {b} (1 silent OT, 2 IKNP)"),
                ))
            }
        };
        Ok(OtChoice { backend })
    }
}

/// The client's request, in the clear (the server learns the shapes anyway): the prompt's and
/// the new tokens' counts, the decoding (K and the temperature's 16-bit fixed-point reciprocal),
/// and the decode steps a preparation batch covers (0: none). Valid by construction: the counts
/// positive and `prompt_tokens + new_tokens − 1` within u32, K positive, the reciprocal in
/// 1..2^23; whether they fit the plan the server checks apart (`session::context_positions`,
/// `plan::Sample::check_decoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    prompt_tokens: u32,
    new_tokens: u32,
    top_k: u32,
    inv_temperature: u32,
    preprocess_tokens: u32,
}

/// The temperature reciprocal's bound, exclusive (`plan::Sample::check_decoding`'s).
const INV_TEMPERATURE_END: u32 = 1 << 23;

impl Request {
    /// The request of `prompt` tokens and `new` tokens to generate, as the client has them.
    pub fn new(
        prompt: usize,
        new: usize,
        top_k: u32,
        inv_temperature: u32,
        preprocess_tokens: u32,
    ) -> Result<Request, WireError> {
        let (prompt_tokens, new_tokens) = Request::counts(prompt, new)?;
        let r = Request {
            prompt_tokens,
            new_tokens,
            top_k,
            inv_temperature,
            preprocess_tokens,
        };
        r.check()?;
        Ok(r)
    }

    /// The two counts as the request carries them: positive, within u32, and `prompt + new − 1`
    /// (the session's positions) too. A client checks them before it connects.
    pub fn counts(prompt: usize, new: usize) -> Result<(u32, u32), WireError> {
        let fit = |field, n: usize| {
            u32::try_from(n).map_err(|_| {
                WireError::new(
                    "Request",
                    field,
                    format!("{n} does not fit the 32-bit count"),
                )
            })
        };
        let counts = (fit("prompt_tokens", prompt)?, fit("new_tokens", new)?);
        Request::check_counts(counts.0, counts.1)?;
        Ok(counts)
    }

    fn check_counts(prompt: u32, new: u32) -> Result<(), WireError> {
        let err = |field, problem: String| WireError::new("Request", field, problem);
        if prompt == 0 {
            return Err(err("prompt_tokens", "0: the prompt needs a token".into()));
        }
        if new == 0 {
            return Err(err(
                "new_tokens",
                "0: at least one token is generated".into(),
            ));
        }
        if prompt.checked_add(new - 1).is_none() {
            return Err(err(
                "new_tokens",
                format!(
                    "{prompt} prompt tokens and {new} new ones need more than 2^32 − 1 positions"
                ),
            ));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), WireError> {
        let err = |field, problem: String| WireError::new("Request", field, problem);
        Request::check_counts(self.prompt_tokens, self.new_tokens)?;
        if self.top_k == 0 {
            return Err(err("top_k", "0: K is at least 1 (greedy)".into()));
        }
        if !(1..INV_TEMPERATURE_END).contains(&self.inv_temperature) {
            return Err(err(
                "inv_temperature",
                format!("{} is not in 1..2^23", self.inv_temperature),
            ));
        }
        Ok(())
    }

    pub fn prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }
    pub fn new_tokens(&self) -> u32 {
        self.new_tokens
    }
    pub fn top_k(&self) -> u32 {
        self.top_k
    }
    pub fn inv_temperature(&self) -> u32 {
        self.inv_temperature
    }
    pub fn preprocess_tokens(&self) -> u32 {
        self.preprocess_tokens
    }
}

impl WireMessage for Request {
    const NAME: &'static str = "Request";
    const HEADER: &'static [u8] = &[2];
    const MAX_BODY: usize = 5 * U32_FIELD;
    type Raw = raw::Request;

    fn to_raw(&self) -> raw::Request {
        raw::Request {
            prompt_tokens: self.prompt_tokens,
            new_tokens: self.new_tokens,
            top_k: self.top_k,
            inv_temperature: self.inv_temperature,
            preprocess_tokens: self.preprocess_tokens,
        }
    }

    fn from_raw(r: &raw::Request) -> Result<Request, WireError> {
        let req = Request {
            prompt_tokens: r.prompt_tokens,
            new_tokens: r.new_tokens,
            top_k: r.top_k,
            inv_temperature: r.inv_temperature,
            preprocess_tokens: r.preprocess_tokens,
        };
        req.check()?;
        Ok(req)
    }
}

/// The client's word before each decode step: run it, or end the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Next,
    Stop,
}

impl Step {
    /// `Next` when the client goes on.
    pub fn go_on(go: bool) -> Step {
        if go {
            Step::Next
        } else {
            Step::Stop
        }
    }
}

impl WireMessage for Step {
    const NAME: &'static str = "Step";
    const HEADER: &'static [u8] = &[3];
    const MAX_BODY: usize = 2;
    type Raw = raw::Step;

    fn to_raw(&self) -> raw::Step {
        raw::Step {
            step: match self {
                Step::Next => 1,
                Step::Stop => 2,
            },
        }
    }

    fn from_raw(r: &raw::Step) -> Result<Step, WireError> {
        match r.step {
            1 => Ok(Step::Next),
            2 => Ok(Step::Stop),
            0 => Err(WireError::new("Step", "step", "missing")),
            s => Err(WireError::new(
                "Step",
                "step",
                format!("unknown step {s} (1 next, 2 stop)"),
            )),
        }
    }
}

pub mod fuzz;
#[cfg(test)]
mod tests;
