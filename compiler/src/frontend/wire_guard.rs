//! A guard in front of the protobuf parser (RUSTSEC-2024-0437).
//!
//! `protobuf` 3.4 (the version `onnx-protobuf` builds with) skips unknown *group* fields by
//! recursion without a depth limit, so a file of a few kilobytes of nested group tags overflows
//! the stack and aborts the process. Before parsing, this module walks the wire format
//! iteratively (an explicit stack, never recursion) and refuses any input whose nesting, of groups
//! or of length-delimited payloads that are themselves well-formed messages, exceeds
//! [`MAX_DEPTH`]. Payloads that do not parse as messages (tensor bytes, strings) are opaque.
//! Depth 64 is far beyond anything ONNX needs (GPT graphs nest 3–4 levels).

/// The deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// Check `bytes` before handing them to the protobuf parser.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    // Each frame: a byte range believed to be a message, and its nesting depth.
    let mut stack: Vec<(usize, usize, usize)> = vec![(0, bytes.len(), 0)];
    while let Some((start, end, depth)) = stack.pop() {
        let children = scan_message(bytes, start, end, depth)?;
        for (s, e) in children {
            stack.push((s, e, depth + 1));
        }
    }
    Ok(())
}

/// Walk one message's fields. Returns the length-delimited payloads that parse as messages, to
/// be scanned one level deeper. Errors only for nesting beyond the limit; a range that is not a
/// well-formed message is left to the real parser (for the top level) or treated as bytes.
fn scan_message(
    b: &[u8],
    start: usize,
    end: usize,
    depth: usize,
) -> Result<Vec<(usize, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "messages nest deeper than {MAX_DEPTH} levels (refused: a protobuf parser defect, RUSTSEC-2024-0437, would crash on it)"
        ));
    }
    let mut pos = start;
    let mut group_depth = 0usize;
    let mut children = Vec::new();
    while pos < end {
        let Some((tag, n)) = varint(b, pos, end) else {
            return Ok(Vec::new());
        };
        pos += n;
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Ok(Vec::new());
        }
        match wire {
            0 => match varint(b, pos, end) {
                Some((_, n)) => pos += n,
                None => return Ok(Vec::new()),
            },
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let Some((len, n)) = varint(b, pos, end) else {
                    return Ok(Vec::new());
                };
                pos += n;
                let len = len as usize;
                if len > end.saturating_sub(pos) {
                    return Ok(Vec::new());
                }
                if len >= 2 && looks_like_message(b, pos, pos + len) {
                    children.push((pos, pos + len));
                }
                pos += len;
            }
            3 => {
                group_depth += 1;
                if depth + group_depth > MAX_DEPTH {
                    return Err(format!(
                        "groups nest deeper than {MAX_DEPTH} levels (refused: a protobuf parser defect, RUSTSEC-2024-0437, would crash on it)"
                    ));
                }
            }
            4 => group_depth = group_depth.saturating_sub(1),
            _ => return Ok(Vec::new()),
        }
    }
    Ok(children)
}

/// Whether a range reads as a sequence of well-formed fields (a cheap, linear check).
fn looks_like_message(b: &[u8], start: usize, end: usize) -> bool {
    let mut pos = start;
    while pos < end {
        let Some((tag, n)) = varint(b, pos, end) else {
            return false;
        };
        pos += n;
        if tag >> 3 == 0 {
            return false;
        }
        match tag & 7 {
            0 => match varint(b, pos, end) {
                Some((_, n)) => pos += n,
                None => return false,
            },
            1 => pos += 8,
            5 => pos += 4,
            2 => match varint(b, pos, end) {
                Some((len, n)) if (len as usize) <= end.saturating_sub(pos + n) => {
                    pos += n + len as usize
                }
                _ => return false,
            },
            3 | 4 => {}
            _ => return false,
        }
    }
    pos == end
}

fn varint(b: &[u8], mut pos: usize, end: usize) -> Option<(u64, usize)> {
    let start = pos;
    let mut v = 0u64;
    let mut shift = 0;
    while pos < end && shift < 64 {
        let byte = b[pos];
        v |= ((byte & 0x7f) as u64) << shift;
        pos += 1;
        if byte & 0x80 == 0 {
            return Some((v, pos - start));
        }
        shift += 7;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_groups_are_refused() {
        // Field 1, start group, repeated 100 000 times: enough to crash the unguarded parser.
        let bytes = vec![0x0b; 100_000];
        let err = check(&bytes).unwrap_err();
        assert!(err.contains("RUSTSEC-2024-0437"), "{err}");
    }

    #[test]
    fn deep_length_delimited_nesting_is_refused() {
        // field 1, length-delimited, wrapping itself 200 times.
        let mut msg: Vec<u8> = vec![0x08, 0x01];
        for _ in 0..200 {
            let mut outer = vec![0x0a];
            let mut len = msg.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    outer.push(byte);
                    break;
                }
                outer.push(byte | 0x80);
            }
            outer.extend_from_slice(&msg);
            msg = outer;
        }
        assert!(check(&msg).is_err());
    }

    #[test]
    fn shallow_messages_pass() {
        assert!(check(&[0x08, 0x96, 0x01, 0x12, 0x02, 0x08, 0x01]).is_ok());
        assert!(check(&[]).is_ok());
    }
}
