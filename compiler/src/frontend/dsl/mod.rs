//! The model DSL (`.cgpt`): a small language that describes GPT-2-family models and builds the
//! IR graph directly in its high-level, fused form. See `docs/dsl.md` for the reference.
//!
//! Three steps: pest parses the text (`dsl.pest`), [`ast::Ast`] is built from the parse tree with
//! byte spans, and the [`Builder`] evaluates the program (config, overrides, loops) and type-checks
//! every call while it adds nodes to the graph. Weights are read from a safetensors file or drawn
//! from a seed at the end, in parallel. Every error is a one-line `path:line:col: message (at
//! `text`)`.
//!
//! The parts: `source` (spans and located errors), `ast` and `syntax_error` (parsing),
//! `builder` (values, scopes, config and statements), `eval` (expressions), `builtins` (the
//! built-in functions) and `weight_binding` (weight declarations and their values).

mod ast;
mod builder;
mod builtins;
mod eval;
mod source;
mod syntax_error;
mod weight_binding;

use self::ast::parse;
use self::builder::Builder;
use self::source::{check_nesting, Src};
use super::weights::WeightFile;
use crate::error::{CompileError, Result};
use crate::ir::Graph;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the weights of a DSL model come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightSource {
    /// A safetensors file whose tensor names are the ones the weight declarations give.
    Safetensors(PathBuf),
    /// Random weights drawn from this seed with each declaration's `init`.
    Seed(u64),
}

/// Parse a `.cgpt` file and build the graph. `overrides` set config parameters (from
/// `--set name=value`), e.g. `[("layers", "2")]`.
pub fn load(path: &Path, weights: &WeightSource, overrides: &[(String, String)]) -> Result<Graph> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CompileError::Io {
        path: shown.clone(),
        source,
    })?;
    load_str(&text, &shown, weights, overrides)
}

/// Like [`load`], with the model text given; `path_for_messages` names it in errors.
pub fn load_str(
    source: &str,
    path_for_messages: &str,
    weights: &WeightSource,
    overrides: &[(String, String)],
) -> Result<Graph> {
    let src = Src {
        path: path_for_messages,
        text: source,
    };
    check_nesting(&src)?;
    let model = parse(&src)?;
    let file = match weights {
        WeightSource::Safetensors(p) => Some(WeightFile::open(p)?),
        WeightSource::Seed(_) => None,
    };
    let seed = match weights {
        WeightSource::Seed(s) => *s,
        WeightSource::Safetensors(_) => 0,
    };
    let mut b = Builder {
        src,
        graph: Graph::new(path_for_messages),
        scopes: vec![HashMap::new()],
        loop_vars: Vec::new(),
        pending: Vec::new(),
        by_tensor: HashMap::new(),
        outputs: HashMap::new(),
        file: file.as_ref(),
    };
    b.config(&model, overrides)?;
    b.block(&model.body)?;
    if b.graph.outputs.is_empty() {
        return Err(src.err(model.name_span, "the model has no `output` statement"));
    }
    b.materialize(seed)
}

/// The most deeply nested brackets we accept (deeper input is refused before parsing).
const MAX_NESTING: usize = 64;
/// The deepest expression tree we accept (long chains of `+` count too).
const MAX_EXPR_DEPTH: usize = 256;
/// The most iterations one `repeat` may run.
const MAX_REPEAT: i64 = 100_000;
/// The most elements one weight may have.
const MAX_WEIGHT_ELEMENTS: usize = 1 << 32;
/// GPT-2's LayerNorm epsilon, used when `layer_norm` is given no `eps`.
const DEFAULT_EPS: f64 = 1e-5;
