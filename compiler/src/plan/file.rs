//! The two files a compilation writes, and the checks on reading them.
//!
//! `plan.cgp` (public) and `weights.cgw` (server only) share one layout: an 8-byte magic, the
//! plan format version ([`super::PLAN_FORMAT_VERSION`], u32, little endian; not the wire's), then
//! one protobuf message. A plan carries the BLAKE3 hash of its own encoding with the hash field
//! empty; a weights file carries the hash of the plan it belongs to. Reading refuses another
//! magic, another version, a plan whose hash does not match its content, a plan whose structure
//! is not sound ([`super::validate`]: a crafted plan re-sealed with its hash), and weights of
//! another plan or not of its plan's shapes, each with a one-line error naming the file.

use super::{validate, Plan, WeightsFile, PLAN_FORMAT_VERSION};
use crate::error::{CompileError, Result};
use prost::Message;
use std::path::Path;

pub const PLAN_MAGIC: &[u8; 8] = b"CGPTPLAN";
pub const WEIGHTS_MAGIC: &[u8; 8] = b"CGPTWGTS";

/// The content hash of a plan: BLAKE3 of its encoding with `hash` empty.
pub fn plan_hash(plan: &Plan) -> [u8; 32] {
    let mut unhashed = plan.clone();
    unhashed.hash.clear();
    *blake3::hash(&unhashed.encode_to_vec()).as_bytes()
}

/// Set the plan's hash field from its content.
pub fn seal(plan: &mut Plan) {
    plan.format_version = PLAN_FORMAT_VERSION;
    plan.hash = plan_hash(plan).to_vec();
}

fn frame(magic: &[u8; 8], body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&PLAN_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn unframe<'a>(bytes: &'a [u8], magic: &[u8; 8], what: &str, path: &str) -> Result<&'a [u8]> {
    let err = |reason: String| CompileError::Plan {
        path: path.to_string(),
        reason,
    };
    if bytes.len() < 12 || &bytes[..8] != magic {
        return Err(err(format!("not a ciphergpt {what} file")));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != PLAN_FORMAT_VERSION {
        return Err(err(format!(
            "{what} file of plan format version {version}, this ciphergpt reads plan format version {PLAN_FORMAT_VERSION}; hint: recompile the model with this version"
        )));
    }
    Ok(&bytes[12..])
}

/// The bytes of a plan file: magic, version, the plan's encoding.
pub fn plan_bytes(plan: &Plan) -> Vec<u8> {
    frame(PLAN_MAGIC, plan.encode_to_vec())
}

/// The bytes of a weights file: magic, version, the weights' encoding.
pub fn weights_bytes(weights: &WeightsFile) -> Vec<u8> {
    frame(WEIGHTS_MAGIC, weights.encode_to_vec())
}

pub fn write_plan(plan: &Plan, path: &Path) -> Result<()> {
    write(path, &plan_bytes(plan))
}

pub fn write_weights(weights: &WeightsFile, path: &Path) -> Result<()> {
    write(path, &weights_bytes(weights))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| CompileError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| CompileError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Read a plan and check its version, its hash and its structure ([`validate::validate`]).
pub fn read_plan(path: &Path) -> Result<Plan> {
    let shown = path.display().to_string();
    let bytes = read(path)?;
    decode_plan(&bytes, &shown)
}

/// Decode plan bytes (as written by [`write_plan`]); `shown` names them in errors.
pub fn decode_plan(bytes: &[u8], shown: &str) -> Result<Plan> {
    let body = unframe(bytes, PLAN_MAGIC, "plan", shown)?;
    let plan = Plan::decode(body).map_err(|e| CompileError::Plan {
        path: shown.to_string(),
        reason: format!("damaged plan: {e}"),
    })?;
    if plan.format_version != PLAN_FORMAT_VERSION || plan.hash != plan_hash(&plan) {
        return Err(CompileError::Plan {
            path: shown.to_string(),
            reason: "the plan's content does not match its hash (modified or damaged); hint: recompile the model".into(),
        });
    }
    validate::validate(&plan).map_err(|what| CompileError::Plan {
        path: shown.to_string(),
        reason: format!(
            "{what}; hint: the plan is not one this compiler writes, recompile the model"
        ),
    })?;
    Ok(plan)
}

/// Read a weights file and check that it belongs to `plan` and matches its weights
/// ([`validate::validate_weights`]).
pub fn read_weights(path: &Path, plan: &Plan) -> Result<WeightsFile> {
    let shown = path.display().to_string();
    let bytes = read(path)?;
    decode_weights(&bytes, &shown, plan)
}

/// Decode weights file bytes (as written by [`write_weights`]) of `plan`; `shown` names them in
/// errors.
pub fn decode_weights(bytes: &[u8], shown: &str, plan: &Plan) -> Result<WeightsFile> {
    let shown = shown.to_string();
    let body = unframe(bytes, WEIGHTS_MAGIC, "weights", &shown)?;
    let w = WeightsFile::decode(body).map_err(|e| CompileError::Plan {
        path: shown.clone(),
        reason: format!("damaged weights file: {e}"),
    })?;
    if w.plan_hash != plan.hash {
        return Err(CompileError::Plan {
            path: shown,
            reason: format!(
                "these weights belong to plan {}, not to the plan given ({}); hint: use the weights.cgw written beside that plan.cgp",
                short_hash(&w.plan_hash),
                short_hash(&plan.hash)
            ),
        });
    }
    validate::validate_weights(plan, &w).map_err(|what| CompileError::Plan {
        path: shown,
        reason: format!("{what}; hint: use the weights.cgw written beside that plan.cgp"),
    })?;
    Ok(w)
}

/// The first 12 hex digits of a hash, for messages.
pub fn short_hash(h: &[u8]) -> String {
    h.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ModelInfo, WeightInfo, WeightTensor};

    fn sample_plan(width: u64) -> Plan {
        let mut p = Plan {
            source: "test".into(),
            model: Some(ModelInfo {
                vocab: 256,
                positions: 16,
                width,
                heads: 2,
                layers: 1,
            }),
            ring_bits: 37,
            frac_bits: 12,
            weights: vec![WeightInfo {
                name: "w".into(),
                shape: vec![2, 2],
                frac_bits: 12,
                bits: 16,
            }],
            ..Default::default()
        };
        seal(&mut p);
        p
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cgp-file-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    #[test]
    fn round_trip_and_hash() {
        let p = sample_plan(8);
        let path = tmp("a.cgp");
        write_plan(&p, &path).unwrap();
        assert_eq!(read_plan(&path).unwrap(), p);
        assert_ne!(plan_hash(&p), plan_hash(&sample_plan(16)));
    }

    #[test]
    fn other_version_is_refused() {
        let p = sample_plan(8);
        let path = tmp("v.cgp");
        write_plan(&p, &path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] = bytes[8].wrapping_add(1);
        std::fs::write(&path, &bytes).unwrap();
        let err = read_plan(&path).unwrap_err().to_string();
        assert!(
            err.contains("format version") && err.contains("recompile"),
            "{err}"
        );
    }

    #[test]
    fn modified_plan_is_refused() {
        let mut p = sample_plan(8);
        p.ring_bits = 40; // changed after sealing
        let path = tmp("m.cgp");
        write_plan(&p, &path).unwrap();
        let err = read_plan(&path).unwrap_err().to_string();
        assert!(err.contains("does not match its hash"), "{err}");
    }

    #[test]
    fn weights_of_another_plan_are_refused() {
        let (a, b) = (sample_plan(8), sample_plan(16));
        let w = WeightsFile {
            plan_hash: a.hash.clone(),
            tensors: vec![WeightTensor::from_values("w".into(), &[1, -2, 3, -4])],
        };
        let path = tmp("w.cgw");
        write_weights(&w, &path).unwrap();
        assert_eq!(
            read_weights(&path, &a).unwrap().tensors[0].values(),
            vec![1, -2, 3, -4]
        );
        let err = read_weights(&path, &b).unwrap_err().to_string();
        assert!(err.contains("belong to plan"), "{err}");
        // A plan file is not a weights file, and the reverse.
        let pp = tmp("p.cgp");
        write_plan(&a, &pp).unwrap();
        assert!(read_weights(&pp, &a)
            .unwrap_err()
            .to_string()
            .contains("not a ciphergpt weights file"));
    }
}
