use std::time::Duration;

use prost::Message as _;

use super::*;
use crate::net::mem;

fn hello() -> Hello {
    Hello {
        role: Role::Client,
        plan_hash: [0xa5; 32],
        channel_index: 2,
        channel_count: 3,
        session_id: [0x5a; 16],
    }
}

fn request() -> Request {
    Request::new(5, 16, 40, 65_536, 256).unwrap()
}

/// The largest request: 2^31 + 2^31 − 1 positions, every varint but the reciprocal's 5 bytes.
fn big_request() -> Request {
    Request::new(1 << 31, 1 << 31, u32::MAX, (1 << 23) - 1, u32::MAX).unwrap()
}

/// The error of decoding `bytes` as `M`, as a string.
fn refusal<M: WireMessage + std::fmt::Debug>(bytes: &[u8]) -> String {
    match M::decode(bytes) {
        Ok(m) => panic!("{bytes:?} decoded as {m:?}"),
        Err(e) => e.to_string(),
    }
}

/// A message of header `M::HEADER` and the raw body `raw`, encoded as is.
fn framed<M: WireMessage>(raw: &M::Raw) -> Vec<u8> {
    let body = raw.encode_to_vec();
    let mut b = M::HEADER.to_vec();
    b.extend((body.len() as u16).to_le_bytes());
    b.extend(body);
    b
}

fn assert_refused<M: WireMessage + std::fmt::Debug>(raw: &M::Raw, wants: &[&str]) {
    let e = refusal::<M>(&framed::<M>(raw));
    for w in wants {
        assert!(e.contains(w), "{e} lacks {w:?}");
    }
    assert!(!e.contains('\n'), "one line: {e}");
}

/// Round trip through the bytes and through a channel, and the encoded size.
fn round_trip<M: WireMessage + PartialEq + std::fmt::Debug>(m: &M, size: usize) {
    let bytes = m.encode();
    assert_eq!(bytes.len(), size, "{} {m:?}", M::NAME);
    assert_eq!(&M::decode(&bytes).unwrap(), m);
    let (mut a, mut b) = mem::pair(Duration::from_secs(5));
    m.send(&mut a).unwrap();
    a.flush().unwrap();
    assert_eq!(&M::recv(&mut b).unwrap(), m);
    assert_eq!(b.stats().total.bytes_received, size as u64);
}

#[test]
fn every_message_round_trips() {
    // Hello: the 12-byte preamble, the length, then the fields (index 0 is left out).
    round_trip(&hello(), 12 + 2 + 2 + 34 + 2 + 2 + 18);
    let first = Hello {
        channel_index: 0,
        role: Role::Server,
        ..hello()
    };
    round_trip(&first, 70);
    for (backend, size) in [(CotBackend::Silent, 5), (CotBackend::Iknp, 5)] {
        let m = OtChoice::new(backend).unwrap();
        round_trip(&m, size);
        assert_eq!(m.backend(), backend);
    }
    // 1 + 2 + (2 + 2 + 2 + 4 + 3): the counts are varints.
    round_trip(&request(), 16);
    let r = request();
    assert_eq!((r.prompt_tokens(), r.new_tokens(), r.top_k()), (5, 16, 40));
    assert_eq!((r.inv_temperature(), r.preprocess_tokens()), (65_536, 256));
    // A request with no preparation batch leaves the field out.
    round_trip(&Request::new(1, 1, 1, 1, 0).unwrap(), 3 + 8);
    round_trip(&Step::Next, 5);
    round_trip(&Step::Stop, 5);
    assert_eq!(
        (Step::go_on(true), Step::go_on(false)),
        (Step::Next, Step::Stop)
    );
}

/// The largest value of each message encodes to its `MAX_BODY`, so no valid message is refused
/// as oversize.
#[test]
fn the_largest_values_fit_max_body() {
    let big = Hello {
        channel_index: u32::MAX - 1,
        channel_count: u32::MAX,
        ..hello()
    };
    assert_eq!(big.encode().len(), 12 + 2 + Hello::MAX_BODY);
    let r = big_request();
    // The reciprocal's varint is 4 bytes, not 5.
    assert_eq!(r.encode().len(), 1 + 2 + Request::MAX_BODY - 1);
    let iknp = OtChoice::new(CotBackend::Iknp).unwrap();
    assert_eq!(iknp.encode().len(), 1 + 2 + OtChoice::MAX_BODY);
    assert_eq!(Step::Stop.encode().len(), 1 + 2 + Step::MAX_BODY);
}

/// Every strict prefix of every message, and every message with a byte more, is refused with an
/// error naming it.
#[test]
fn truncated_and_overlong_inputs_are_refused() {
    fn check<M: WireMessage + std::fmt::Debug>(m: &M) {
        let bytes = m.encode();
        for n in 0..bytes.len() {
            let e = refusal::<M>(&bytes[..n]);
            assert!(e.contains(M::NAME), "{e}");
        }
        let mut more = bytes.clone();
        more.push(0);
        let e = refusal::<M>(&more);
        assert!(e.contains("the length says"), "{e}");
    }
    check(&hello());
    check(&OtChoice::new(CotBackend::Silent).unwrap());
    check(&request());
    check(&Step::Next);
    let e = refusal::<Request>(&[2, 1]);
    assert!(e.contains("Request: truncated: 2 bytes"), "{e}");
}

#[test]
fn oversize_lengths_are_refused_before_the_body() {
    let mut b = vec![2u8];
    b.extend(((Request::MAX_BODY + 1) as u16).to_le_bytes());
    b.resize(b.len() + Request::MAX_BODY + 1, 0);
    let e = refusal::<Request>(&b);
    assert!(
        e.contains("Request: oversize: a body of 31 bytes, at most 30"),
        "{e}"
    );
    // Over a channel, only the header is read: the session does not wait for 65,535 bytes.
    let (mut a, mut c) = mem::pair(Duration::from_millis(200));
    a.send(&[3, 0xff, 0xff]).unwrap();
    a.flush().unwrap();
    let e = Step::recv(&mut c).unwrap_err().to_string();
    assert!(
        e.contains("Step: oversize: a body of 65535 bytes, at most 2"),
        "{e}"
    );
    assert_eq!(c.stats().total.bytes_received, 3);
}

#[test]
fn a_message_out_of_order_is_refused() {
    let e = refusal::<Request>(&Step::Next.encode());
    assert!(e.contains("Request: expected kind [2], got [3]"), "{e}");
    let e = refusal::<Hello>(&[0; 30]);
    assert!(e.contains("not a ciphergpt hello"), "{e}");
}

#[test]
fn out_of_range_fields_are_refused_by_name() {
    let h = hello().to_raw();
    for (role, want) in [
        (0, "Hello.role: missing"),
        (3, "Hello.role: unknown role 3"),
    ] {
        assert_refused::<Hello>(&raw::Hello { role, ..h.clone() }, &[want]);
    }
    let short = raw::Hello {
        plan_hash: vec![1; 31],
        ..h.clone()
    };
    assert_refused::<Hello>(&short, &["Hello.plan_hash: 31 bytes, a hash is 32"]);
    let long = raw::Hello {
        session_id: vec![1; 17],
        ..h.clone()
    };
    assert_refused::<Hello>(&long, &["Hello.session_id: 17 bytes, an id is 16"]);
    let none = raw::Hello {
        channel_count: 0,
        channel_index: 0,
        ..h.clone()
    };
    assert_refused::<Hello>(&none, &["Hello.channel_count: 0 channels"]);
    let beyond = raw::Hello {
        channel_index: 3,
        ..h
    };
    assert_refused::<Hello>(
        &beyond,
        &["Hello.channel_index: 3 is not below the channel count 3"],
    );

    for (backend, want) in [(0, "missing"), (3, "unknown backend 3")] {
        assert_refused::<OtChoice>(&raw::OtChoice { backend }, &["OtChoice.backend: ", want]);
    }
    for (step, want) in [(0, "missing"), (9, "unknown step 9")] {
        assert_refused::<Step>(&raw::Step { step }, &["Step.step: ", want]);
    }

    let r = request().to_raw();
    let cases = [
        (
            raw::Request {
                prompt_tokens: 0,
                ..r.clone()
            },
            "Request.prompt_tokens: 0",
        ),
        (
            raw::Request {
                new_tokens: 0,
                ..r.clone()
            },
            "Request.new_tokens: 0",
        ),
        (
            raw::Request {
                top_k: 0,
                ..r.clone()
            },
            "Request.top_k: 0",
        ),
        (
            raw::Request {
                inv_temperature: 0,
                ..r.clone()
            },
            "Request.inv_temperature: 0 is not",
        ),
        (
            raw::Request {
                inv_temperature: 1 << 23,
                ..r.clone()
            },
            "Request.inv_temperature: 8388608 is not in 1..2^23",
        ),
        (
            raw::Request {
                prompt_tokens: u32::MAX,
                new_tokens: 2,
                ..r
            },
            "Request.new_tokens: 4294967295 prompt tokens and 2 new ones need more than",
        ),
    ];
    for (raw, want) in cases {
        assert_refused::<Request>(&raw, &[want]);
    }
}

/// Fields the message does not have, a field twice, a default value written out: not the
/// canonical encoding of any value, refused.
#[test]
fn non_canonical_bodies_are_refused() {
    let canonical = request().encode();
    assert_eq!(
        &canonical[3..5],
        &[0x08, 0x05],
        "prompt_tokens = 5 comes first"
    );
    let with_body = |body: &[u8]| {
        let mut b = vec![2, body.len() as u8, 0];
        b.extend(body);
        b
    };
    let cases: [(&str, Vec<u8>); 4] = [
        // A field the message does not have (6 = 1).
        ("unknown field", [&canonical[3..], &[0x30, 0x01]].concat()),
        // The same field twice (the last would win in protobuf).
        ("repeated field", [&canonical[3..], &[0x08, 0x06]].concat()),
        // A zero written out (field 5 = 0) after the others.
        ("default value", [&canonical[3..13], &[0x28, 0x00]].concat()),
        // prompt_tokens = 5 as a two-byte varint.
        (
            "long varint",
            [&[0x08, 0x85, 0x00][..], &canonical[5..]].concat(),
        ),
    ];
    for (what, body) in cases {
        let e = refusal::<Request>(&with_body(&body));
        assert!(
            e.contains("Request: not the canonical encoding"),
            "{what}: {e}"
        );
    }
    // Not protobuf at all: wire type 7, and a varint cut short.
    let e = refusal::<Step>(&[3, 2, 0, 0x0f, 0xff]);
    assert!(e.contains("Step: not a protobuf message"), "{e}");
    let e = refusal::<Request>(&with_body(&[0x08, 0x80]));
    assert!(e.contains("Request: not a protobuf message"), "{e}");
}

/// Mutations of valid messages by the fuzz engine ([`fuzz::target`]): never a panic, every
/// error one line, and anything that decodes encodes back to the same bytes.
#[test]
fn mutated_inputs_never_panic() {
    use ciphergpt_compiler::fuzz;
    let options = fuzz::Options {
        seed: 19,
        iterations: 20_000,
        ..Default::default()
    };
    let report = fuzz::run(&super::fuzz::target(), &options);
    assert_eq!(report.failures, 0, "{:?}", report.findings);
    assert_eq!(report.inputs, 20_000);
    // The seeds themselves (every 16th input) and some mutants decode; most mutants do not.
    assert!(
        (20_000 / 16..10_000).contains(&report.accepted),
        "{} accepted",
        report.accepted
    );
}

#[test]
fn request_counts_are_checked_before_the_wire() {
    assert_eq!(Request::counts(3, 4), Ok((3, 4)));
    let e = Request::counts(u32::MAX as usize + 1, 1).unwrap_err();
    assert_eq!((e.message, e.field), ("Request", "prompt_tokens"));
    assert!(e.problem.contains("does not fit the 32-bit count"), "{e}");
    let e = Request::counts(1, usize::MAX).unwrap_err();
    assert_eq!(e.field, "new_tokens");
    // prompt + new − 1 would wrap a u32.
    let e = Request::counts(u32::MAX as usize, 2).unwrap_err();
    assert!(
        e.to_string().contains("need more than 2^32 − 1 positions"),
        "{e}"
    );
    assert_eq!(Request::counts(u32::MAX as usize, 1), Ok((u32::MAX, 1)));
    assert_eq!(Request::counts(0, 1).unwrap_err().field, "prompt_tokens");
    assert_eq!(Request::counts(1, 0).unwrap_err().field, "new_tokens");
    assert_eq!(Request::new(1, 1, 0, 1, 0).unwrap_err().field, "top_k");
    let e = OtChoice::new(CotBackend::SilentTestOnly).unwrap_err();
    assert_eq!(e.field, "backend");
}

/// The layout of every message, as bytes: each message's name, header, most body bytes, and
/// the encodings of sample values that set every field (the largest values too), with each raw
/// body's field names and values (a field added with a default value changes them too).
fn layout_fingerprint() -> String {
    fn add<M: WireMessage>(h: &mut blake3::Hasher, samples: &[M])
    where
        M::Raw: std::fmt::Debug,
    {
        h.update(M::NAME.as_bytes());
        h.update(M::HEADER);
        h.update(&(M::MAX_BODY as u64).to_le_bytes());
        h.update(&(LEN_BYTES as u64).to_le_bytes());
        for m in samples {
            let bytes = m.encode();
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
            h.update(format!("{:?}", m.to_raw()).as_bytes());
        }
    }
    let mut h = blake3::Hasher::new();
    let big = Hello {
        channel_index: u32::MAX - 1,
        channel_count: u32::MAX,
        ..hello()
    };
    add(&mut h, &[hello(), big]);
    add(
        &mut h,
        &[CotBackend::Silent, CotBackend::Iknp].map(|b| OtChoice::new(b).unwrap()),
    );
    add(&mut h, &[request(), big_request()]);
    add(&mut h, &[Step::Next, Step::Stop]);
    h.finalize().to_hex().to_string()
}

/// The guard: the messages' layout is the one recorded for this wire version. When it fails,
/// a message's layout changed: bump `WIRE_VERSION` and add a row to `LAYOUTS`.
#[test]
fn layout_matches_the_wire_version() {
    let now = layout_fingerprint();
    let next = WIRE_VERSION + 1;
    let Some(&(_, recorded)) = LAYOUTS.iter().find(|(v, _)| *v == WIRE_VERSION) else {
        panic!(
            "LAYOUTS has no row for WIRE_VERSION {WIRE_VERSION}: add ({WIRE_VERSION}, \"{now}\")"
        );
    };
    assert!(
        recorded == now,
        "the wire messages' layout changed under WIRE_VERSION {WIRE_VERSION} (recorded {recorded}, \
         now {now}): bump WIRE_VERSION to {next} in runtime/src/net/wire.rs and add the row \
         ({next}, \"{now}\") to LAYOUTS; never edit an old row"
    );
    // The rows go up by version, the last is this one, and no two layouts are the same.
    assert!(LAYOUTS.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(LAYOUTS.last().map(|r| r.0), Some(WIRE_VERSION));
    let mut fps: Vec<&str> = LAYOUTS.iter().map(|r| r.1).collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), LAYOUTS.len(), "two rows record the same layout");
}
