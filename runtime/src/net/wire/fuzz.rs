//! The session messages as a fuzz target ([`ciphergpt_compiler::fuzz`]): every input is decoded
//! as each of the four messages; a decoder returns the message or a one-line error, and a message
//! decodes only from its own encoding.

use super::{CotBackend, Hello, OtChoice, Request, Role, Step, WireMessage};
use ciphergpt_compiler::fuzz::{refused, Target, Verdict};

/// One of each message, with small and with the largest values: the seeds.
pub fn samples() -> Vec<Vec<u8>> {
    let hello = Hello {
        role: Role::Client,
        plan_hash: [0xa5; 32],
        channel_index: 2,
        channel_count: 3,
        session_id: [0x5a; 16],
    };
    let big_hello = Hello {
        role: Role::Server,
        channel_index: u32::MAX - 1,
        channel_count: u32::MAX,
        ..hello.clone()
    };
    let mut v = vec![hello.encode(), big_hello.encode()];
    for b in [CotBackend::Silent, CotBackend::Iknp] {
        v.push(OtChoice::new(b).expect("a session backend").encode());
    }
    for (p, n, k, t, b) in [(5, 16, 40, 65_536, 256), (1, 1, 1, 1, 0)] {
        v.push(Request::new(p, n, k, t, b).expect("valid counts").encode());
    }
    let big = Request::new(1 << 31, 1 << 31, u32::MAX, (1 << 23) - 1, u32::MAX);
    v.push(big.expect("the largest counts").encode());
    v.push(Step::Next.encode());
    v.push(Step::Stop.encode());
    v
}

/// Decode as `M`: accepted only if the input is the message's own encoding.
fn one<M: WireMessage>(b: &[u8]) -> Result<Verdict, String> {
    match M::decode(b) {
        Ok(m) if m.encode() == b => Ok(Verdict::Accepted),
        Ok(m) => Err(format!(
            "{} decoded from bytes other than its encoding {:?}",
            M::NAME,
            m.encode()
        )),
        Err(e) => refused(&e),
    }
}

/// The target `wire`: [`Hello`], [`OtChoice`], [`Request`] and [`Step`] decoders.
pub fn target() -> Target {
    Target {
        name: "wire",
        text: false,
        seeds: samples(),
        check: Box::new(|b| {
            let verdicts = [
                one::<Hello>(b)?,
                one::<OtChoice>(b)?,
                one::<Request>(b)?,
                one::<Step>(b)?,
            ];
            Ok(verdicts.into_iter().min().expect("four"))
        }),
    }
}
