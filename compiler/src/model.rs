//! Loading a model from any front end and bringing it to the fused IR.

use crate::error::{CompileError, Result};
use crate::frontend::{dsl, onnx};
use crate::ir::Graph;
use crate::passes;
use std::path::{Path, PathBuf};

/// What to load: a `.onnx` file, or a `.cgpt` DSL file with its weights.
#[derive(Clone, Debug, Default)]
pub struct ModelSpec {
    pub path: PathBuf,
    /// Safetensors weights for a DSL model.
    pub weights: Option<PathBuf>,
    /// Seed for random weights of a DSL model.
    pub seed: Option<u64>,
    /// DSL configuration overrides (`--set name=value`).
    pub overrides: Vec<(String, String)>,
}

/// Load the model and run the front-end passes; the result holds only high-level ops.
pub fn load(spec: &ModelSpec) -> Result<Graph> {
    load_traced(spec).map(|(graph, _)| graph)
}

/// [`load`], with the fusion rewrites that brought the import to high-level ops, in order
/// (none for a DSL model: it writes the fused form directly).
pub fn load_traced(spec: &ModelSpec) -> Result<(Graph, Vec<passes::fusion::Fired>)> {
    let mut graph = load_unfused(spec)?;
    let trace = if is_dsl(&spec.path) {
        // The DSL writes the fused form directly; check its types by running it once.
        passes::run(&mut graph, &[passes::Pass::ShapeInference])?;
        Vec::new()
    } else {
        passes::run_traced(&mut graph, passes::DEFAULT_PASSES)?
    };
    passes::require_high_level(&graph)?;
    Ok((graph, trace))
}

/// Load the model as its front end writes it, before any pass.
pub fn load_unfused(spec: &ModelSpec) -> Result<Graph> {
    let ext = spec.path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "onnx" => {
            if spec.weights.is_some() || spec.seed.is_some() || !spec.overrides.is_empty() {
                return Err(CompileError::Input(format!(
                    "{}: an ONNX model carries its own weights and sizes; --weights, --seed and --set apply to .cgpt models",
                    spec.path.display()
                )));
            }
            onnx::load(&spec.path)
        }
        "cgpt" => {
            let source = match (&spec.weights, spec.seed) {
                (Some(w), None) => dsl::WeightSource::Safetensors(w.clone()),
                (None, Some(s)) => dsl::WeightSource::Seed(s),
                _ => {
                    return Err(CompileError::Input(format!(
                    "{}: a .cgpt model needs exactly one of --weights FILE.safetensors or --seed N",
                    spec.path.display()
                )))
                }
            };
            dsl::load(&spec.path, &source, &spec.overrides)
        }
        _ => Err(CompileError::Input(format!(
            "{}: unknown model format; hint: give a .onnx file or a .cgpt DSL file",
            spec.path.display()
        ))),
    }
}

/// Parse `name=value,name=value` (repeatable `--set`).
pub fn parse_overrides(items: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in items
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.trim().is_empty())
    {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            CompileError::Input(format!(
                "--set {item}: expected name=value, e.g. --set layers=2"
            ))
        })?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// Whether a path names a DSL file.
pub fn is_dsl(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some("cgpt")
}
