//! The inputs fuzzing starts from: the committed fixtures (under the repository's root), made
//! small enough that a mutated copy parses in well under a millisecond, and a plan and weights
//! compiled from the DSL example at a tiny size.

use crate::error::{CompileError, Result};
use crate::fixed;
use crate::frontend::dsl::{self, WeightSource};
use crate::ir::{Graph, Op};
use crate::passes;
use crate::plan::{file, Plan};
use crate::tensor::Tensor;
use onnx_protobuf::{Message, ModelProto};
use std::path::{Path, PathBuf};

/// The committed ONNX exports fuzzing starts from: the smallest of each exporter family, two
/// with external data (read from `models/`, the folder the ONNX target is given).
pub const ONNX_FIXTURES: &[&str] = &[
    "tiny-untied.tf4-torchscript17-sdpa.onnx",
    "tiny-tf5.dynamo20-sdpa-external.onnx",
    "tiny-trained.external.onnx",
];

/// Reference outputs (safetensors of a few tensors each) fuzzing starts from.
pub const SAFETENSORS_FIXTURES: &[&str] = &[
    "tiny-trained.dynamo.ref.safetensors",
    "tiny-erf.torchscript.ref.safetensors",
];

/// The DSL example's configuration at a tiny size: every weight has at most a few hundred
/// elements.
pub const TINY_CONFIG: &[(&str, &str)] = &[
    ("vocab", "16"),
    ("positions", "32"),
    ("width", "8"),
    ("heads", "2"),
    ("layers", "1"),
];

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| CompileError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The files of `dir` whose names end with `ext`, sorted.
fn files_ending(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| CompileError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(ext)))
        .collect();
    v.sort();
    Ok(v)
}

/// [`ONNX_FIXTURES`], without doc strings and metadata (the dynamo exporter's stack traces are
/// most of a file's bytes).
pub fn onnx(root: &Path) -> Result<Vec<Vec<u8>>> {
    ONNX_FIXTURES
        .iter()
        .map(|name| {
            let path = root.join("models").join(name);
            let mut m = ModelProto::parse_from_bytes(&read(&path)?).map_err(|e| {
                CompileError::OnnxFormat {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            m.doc_string.clear();
            m.metadata_props.clear();
            if let Some(g) = m.graph.as_mut() {
                g.doc_string.clear();
                g.metadata_props.clear();
                for n in &mut g.node {
                    n.doc_string.clear();
                    n.metadata_props.clear();
                }
            }
            Ok(m.write_to_bytes().expect("a parsed model encodes"))
        })
        .collect()
}

/// Set `name = value` lines of a DSL text's config to the given values.
pub fn shrink_config(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let body = line.trim_start();
        let key = body.split(|c: char| c == '=' || c.is_whitespace()).next();
        match values.iter().find(|(k, _)| Some(*k) == key) {
            Some((k, v)) if body.contains('=') => {
                out.push_str(&line[..line.len() - body.len()]);
                out.push_str(&format!("{k} = {v}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The DSL examples (`examples/*.cgpt`) at [`TINY_CONFIG`].
pub fn dsl(root: &Path) -> Result<Vec<Vec<u8>>> {
    files_ending(&root.join("examples"), ".cgpt")?
        .iter()
        .map(|p| {
            let text = String::from_utf8_lossy(&read(p)?).into_owned();
            Ok(shrink_config(&text, TINY_CONFIG).into_bytes())
        })
        .collect()
}

/// The tiny DSL GPT-2 with weights drawn from seed 1, fused.
pub fn tiny_graph(root: &Path) -> Result<Graph> {
    let text = String::from_utf8_lossy(&dsl(root)?[0]).into_owned();
    let mut g = dsl::load_str(&text, "tiny.cgpt", &WeightSource::Seed(1), &[])?;
    passes::run(&mut g, &[passes::Pass::ShapeInference])?;
    Ok(g)
}

/// The f32 constants of a graph as a safetensors file, under their names.
pub fn safetensors_of(graph: &Graph) -> Vec<u8> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for id in graph.g.node_indices() {
        let n = graph.node(id);
        if let Op::Const(Tensor::F32(a)) = &n.op {
            let bytes = a.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.push((n.name.clone(), a.shape().to_vec(), bytes));
        }
    }
    let views = tensors.iter().map(|(name, shape, bytes)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .expect("the bytes fill the shape");
        (name.clone(), view)
    });
    safetensors::serialize(views, &None).expect("distinct names")
}

/// [`SAFETENSORS_FIXTURES`].
pub fn safetensors(root: &Path) -> Result<Vec<Vec<u8>>> {
    SAFETENSORS_FIXTURES
        .iter()
        .map(|name| read(&root.join("models").join(name)))
        .collect()
}

/// The IR texts of the pass tests (`compiler/tests/passes/*.ir`): each file's input, and its
/// expected output (after `; expect:`) where it has one.
pub fn ir(root: &Path) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for p in files_ending(&root.join("compiler/tests/passes"), ".ir")? {
        let text = String::from_utf8_lossy(&read(&p)?).into_owned();
        let (input, expected) = match text.find("\n; expect") {
            Some(at) => text.split_at(at + 1),
            None => (text.as_str(), ""),
        };
        out.push(input.as_bytes().to_vec());
        if let Some((_, after)) = expected.split_once('\n') {
            out.push(after.as_bytes().to_vec());
        }
    }
    Ok(out)
}

/// The tiny DSL GPT-2 compiled: its plan, and the bytes of its plan and weights files.
pub fn compiled(root: &Path) -> Result<(Plan, Vec<u8>, Vec<u8>)> {
    let c = fixed::compile(&tiny_graph(root)?, &fixed::Options::default())?;
    let (p, w) = (file::plan_bytes(&c.plan), file::weights_bytes(&c.weights));
    Ok((c.plan, p, w))
}
