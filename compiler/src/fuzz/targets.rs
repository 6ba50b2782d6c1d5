//! The compiler's parsers as fuzz targets: each runs what the command line runs on a file of
//! that kind, from the bytes in memory, and takes a clean one-line error as a pass.

use super::{refused, Target, Verdict};
use crate::error::Result;
use crate::frontend::dsl::{self, WeightSource};
use crate::frontend::onnx;
use crate::frontend::weights::WeightFile;
use crate::ir::{self, Graph};
use crate::passes::{self, Pass};
use crate::plan::{file, Plan, WeightsFile};
use prost::Message;
use std::path::PathBuf;

fn verdict<T>(r: Result<T>) -> std::result::Result<Verdict, String> {
    match r {
        Ok(_) => Ok(Verdict::Accepted),
        Err(e) => refused(&e),
    }
}

/// ONNX import, then the default passes and the high-level check (`ciphergpt compile m.onnx`).
/// External data is read from `base`.
pub fn onnx(seeds: Vec<Vec<u8>>, base: PathBuf) -> Target {
    Target {
        name: "onnx",
        text: false,
        seeds,
        check: Box::new(move |b| {
            verdict(
                onnx::load_bytes(b, "fuzz.onnx", &base).and_then(|mut g: Graph| {
                    passes::run(&mut g, passes::DEFAULT_PASSES)?;
                    passes::require_high_level(&g)
                }),
            )
        }),
    }
}

/// The DSL (invalid UTF-8 replaced), with weights from the safetensors file `weights`, then
/// shape inference and the high-level check (`ciphergpt compile m.cgpt --weights w`).
pub fn dsl(seeds: Vec<Vec<u8>>, weights: PathBuf) -> Target {
    let source = WeightSource::Safetensors(weights);
    Target {
        name: "dsl",
        text: true,
        seeds,
        check: Box::new(move |b| {
            let text = String::from_utf8_lossy(b);
            verdict(
                dsl::load_str(&text, "fuzz.cgpt", &source, &[]).and_then(|mut g| {
                    passes::run(&mut g, &[Pass::ShapeInference])?;
                    passes::require_high_level(&g)
                }),
            )
        }),
    }
}

/// The IR text form (invalid UTF-8 replaced). What parses renders to a text that parses to the
/// same rendering.
pub fn ir(seeds: Vec<Vec<u8>>) -> Target {
    Target {
        name: "ir",
        text: true,
        seeds,
        check: Box::new(|b| {
            let text = String::from_utf8_lossy(b);
            let g = match ir::parse(&text) {
                Ok(g) => g,
                Err(e) => return refused(&e),
            };
            let once = ir::render(&g);
            let again = ir::parse(&once)
                .map_err(|e| format!("the rendering of a parsed text does not parse: {e}"))?;
            if ir::render(&again) != once {
                return Err("the rendering of a parsed text renders differently".into());
            }
            Ok(Verdict::Accepted)
        }),
    }
}

/// The frame's magic and version, and the body after them.
fn body(b: &[u8]) -> Option<&[u8]> {
    b.get(12..)
}

/// Plan files: decoded as they are, and, where the body decodes, once more re-sealed (the hash
/// made to match), so that the structural checks see crafted plans too.
pub fn plan(seeds: Vec<Vec<u8>>) -> Target {
    Target {
        name: "plan",
        text: false,
        seeds,
        check: Box::new(|b| {
            let as_is = verdict(file::decode_plan(b, "fuzz.cgp"))?;
            let Some(mut p) = body(b).and_then(|body| Plan::decode(body).ok()) else {
                return Ok(as_is);
            };
            file::seal(&mut p);
            let resealed = verdict(file::decode_plan(&file::plan_bytes(&p), "fuzz.cgp"))?;
            Ok(as_is.min(resealed))
        }),
    }
}

/// Weights files of `plan`: decoded as they are, and, where the body decodes, once more with
/// the plan's hash set, so that the checks against the plan's shapes see them.
pub fn weights(seeds: Vec<Vec<u8>>, plan: Plan) -> Target {
    Target {
        name: "weights",
        text: false,
        seeds,
        check: Box::new(move |b| {
            let as_is = verdict(file::decode_weights(b, "fuzz.cgw", &plan))?;
            let Some(mut w) = body(b).and_then(|body| WeightsFile::decode(body).ok()) else {
                return Ok(as_is);
            };
            w.plan_hash.clone_from(&plan.hash);
            let bound = file::weights_bytes(&w);
            let rebound = verdict(file::decode_weights(&bound, "fuzz.cgw", &plan))?;
            Ok(as_is.min(rebound))
        }),
    }
}

/// Safetensors files (the DSL's `--weights`): the header, then every tensor read as f32.
pub fn safetensors(seeds: Vec<Vec<u8>>) -> Target {
    Target {
        name: "safetensors",
        text: false,
        seeds,
        check: Box::new(|b| {
            let f = match WeightFile::from_bytes("fuzz.safetensors", b.to_vec()) {
                Ok(f) => f,
                Err(e) => return refused(&e),
            };
            for name in f.names() {
                if f.check_float(name).is_ok() {
                    if let Err(e) = f.read_f32(name) {
                        return refused(&e);
                    }
                }
            }
            Ok(Verdict::Accepted)
        }),
    }
}

/// The compiler's targets, by name.
pub const NAMES: &[&str] = &["onnx", "dsl", "ir", "plan", "weights", "safetensors"];

/// The target `name` of [`NAMES`], with its seeds from the repository at `root`; `scratch` is a
/// folder for the files a target reads (the DSL's weights).
pub fn by_name(name: &str, root: &std::path::Path, scratch: &std::path::Path) -> Result<Target> {
    use super::seeds;
    Ok(match name {
        "onnx" => onnx(seeds::onnx(root)?, root.join("models")),
        "dsl" => {
            let path = scratch.join("fuzz-tiny.safetensors");
            let bytes = seeds::safetensors_of(&seeds::tiny_graph(root)?);
            std::fs::write(&path, bytes).map_err(|source| crate::CompileError::Io {
                path: path.display().to_string(),
                source,
            })?;
            dsl(seeds::dsl(root)?, path)
        }
        "ir" => ir(seeds::ir(root)?),
        "plan" => plan(vec![seeds::compiled(root)?.1]),
        "weights" => {
            let (p, _, w) = seeds::compiled(root)?;
            weights(vec![w], p)
        }
        "safetensors" => {
            let mut s = seeds::safetensors(root)?;
            s.push(seeds::safetensors_of(&seeds::tiny_graph(root)?));
            safetensors(s)
        }
        other => {
            return Err(crate::CompileError::Input(format!(
                "no fuzz target {other}; the compiler's are {}",
                NAMES.join(", ")
            )))
        }
    })
}
