//! Evaluation state: values, bindings and scopes, the [`Builder`] that holds the graph being
//! built, the config block with its `--set` overrides, and the statements.

use super::ast::{Model, Name, Stmt};
use super::source::{Span, Src};
use super::MAX_REPEAT;
use crate::error::{CompileError, Result};
use crate::frontend::weights::{Init, WeightFile};
use crate::ir::{Dim, Graph, TensorType, ValueRef};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub(super) enum Val {
    Int(i64),
    Float(f64),
    /// A bare word such as `tanh` (config values and GELU forms).
    Word(String),
    Tensor(TVal),
}

#[derive(Clone, Debug)]
pub(super) struct TVal {
    pub(super) v: ValueRef,
    pub(super) ty: TensorType,
    /// A declared weight (server-held constant), as opposed to an activation.
    pub(super) weight: bool,
}

impl Val {
    pub(super) fn describe(&self) -> String {
        match self {
            Val::Int(i) => format!("the integer {i}"),
            Val::Float(f) => format!("the number {f}"),
            Val::Word(w) => format!("the word `{w}`"),
            Val::Tensor(t) if t.weight => format!("the weight {}", t.ty),
            Val::Tensor(t) => format!("the tensor {}", t.ty),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Config,
    Input,
    Weight,
    LoopVar,
    Var,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Config => "config parameter",
            Kind::Input => "input",
            Kind::Weight => "weight",
            Kind::LoopVar => "loop variable",
            Kind::Var => "variable",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Binding {
    pub(super) val: Val,
    pub(super) kind: Kind,
    pub(super) span: Span,
}

/// Where an expression is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ctx {
    /// A config value: unknown names are words, calls are not allowed.
    Config,
    /// A shape, range bound or init argument: numbers only.
    Scalar,
    /// The model body: tensors and calls.
    Body,
}

pub(super) struct PendingWeight {
    pub(super) node: NodeIndex,
    pub(super) name: String,
    pub(super) shape: Vec<usize>,
    pub(super) init: Init,
}

pub(super) struct Builder<'a> {
    pub(super) src: Src<'a>,
    pub(super) graph: Graph,
    pub(super) scopes: Vec<HashMap<String, Binding>>,
    pub(super) loop_vars: Vec<(String, i64)>,
    pub(super) pending: Vec<PendingWeight>,
    /// Tensor name → (node, shape, declaration) for weights already declared.
    pub(super) by_tensor: HashMap<String, (NodeIndex, Vec<usize>, Span)>,
    pub(super) outputs: HashMap<String, Span>,
    pub(super) file: Option<&'a WeightFile>,
}

impl Builder<'_> {
    pub(super) fn err(&self, span: Span, message: impl Into<String>) -> CompileError {
        self.src.err(span, message)
    }

    pub(super) fn lookup(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    pub(super) fn location(&self, span: Span) -> String {
        let (l, c) = self.src.line_col(span.start);
        format!("{l}:{c}")
    }

    /// Bind a new name in the innermost scope; an existing name anywhere is an error.
    pub(super) fn declare(&mut self, name: &Name, kind: Kind, val: Val) -> Result<()> {
        if let Some(b) = self.lookup(&name.text) {
            return Err(self.err(
                name.span,
                format!(
                    "`{}` is already defined (a {} at {})",
                    name.text,
                    b.kind.noun(),
                    self.location(b.span)
                ),
            ));
        }
        let scope = self.scopes.last_mut().expect("there is always a scope");
        scope.insert(
            name.text.clone(),
            Binding {
                val,
                kind,
                span: name.span,
            },
        );
        Ok(())
    }

    /// `name = value`: update the variable where it lives, or create it in the innermost scope.
    pub(super) fn assign(&mut self, name: &Name, val: Val) -> Result<()> {
        for i in (0..self.scopes.len()).rev() {
            if let Some(b) = self.scopes[i].get(&name.text) {
                if b.kind != Kind::Var {
                    return Err(self.err(
                        name.span,
                        format!(
                            "cannot assign to `{}`: it is a {} (declared at {})",
                            name.text,
                            b.kind.noun(),
                            self.location(b.span)
                        ),
                    ));
                }
                if let Some(b) = self.scopes[i].get_mut(&name.text) {
                    b.val = val;
                }
                return Ok(());
            }
        }
        self.declare(name, Kind::Var, val)
    }

    pub(super) fn visible_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.scopes.iter().flat_map(|s| s.keys().cloned()).collect();
        v.sort();
        v.dedup();
        v
    }

    // ----- config

    pub(super) fn config(&mut self, model: &Model, overrides: &[(String, String)]) -> Result<()> {
        // Overrides: last one wins; unknown names are errors.
        let mut set: HashMap<&str, &str> = HashMap::new();
        for (k, v) in overrides {
            let k = k.trim();
            if !model.config.iter().any(|e| e.name.text == k) {
                let known: Vec<&str> = model.config.iter().map(|e| e.name.text.as_str()).collect();
                let hint = match closest(k, known.iter().copied()) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => String::new(),
                };
                return Err(CompileError::Input(format!(
                    "--set {k}={v}: {} has no config parameter `{k}`{hint} (its parameters: {})",
                    self.src.path,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            set.insert(k, v.as_str());
        }
        for e in &model.config {
            let default = self.eval(&e.expr, Ctx::Config)?;
            if matches!(default, Val::Tensor(_)) {
                return Err(self.err(e.expr.span, "a config value must be a number or a word"));
            }
            let val = match set.get(e.name.text.as_str()) {
                None => default,
                Some(text) => override_value(&e.name.text, text, &default)?,
            };
            self.declare(&e.name, Kind::Config, val)?;
        }
        Ok(())
    }

    // ----- statements

    pub(super) fn block(&mut self, stmts: &[Stmt]) -> Result<()> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    pub(super) fn stmt(&mut self, s: &Stmt) -> Result<()> {
        match s {
            Stmt::Input { name, ty, span } => {
                let dtype = match ty.dtype {
                    Some((d, _)) => d,
                    None => {
                        return Err(self.err(
                            *span,
                            "an input needs an element type, e.g. `input ids : i64[1, T]`",
                        ))
                    }
                };
                let dims = ty
                    .dims
                    .iter()
                    .map(|d| self.dim(d, true))
                    .collect::<Result<Vec<Dim>>>()?;
                let t = TensorType::new(dtype, dims);
                let id = self.graph.add_input(name.text.clone(), t.clone());
                let val = Val::Tensor(TVal {
                    v: id.into(),
                    ty: t,
                    weight: false,
                });
                self.declare(name, Kind::Input, val)
            }
            Stmt::Weight {
                name,
                ty,
                tensor,
                tensor_span,
                init,
                span,
            } => self.weight(name, ty, tensor, *tensor_span, init.as_ref(), *span),
            Stmt::Repeat {
                var,
                from,
                to,
                body,
            } => {
                let a = self.int(from, Ctx::Scalar)?;
                let b = self.int(to, Ctx::Scalar)?;
                if b < a {
                    return Err(self.err(
                        from.span.to(to.span),
                        format!("the range {a}..{b} ends before it starts"),
                    ));
                }
                if b - a > MAX_REPEAT {
                    return Err(self.err(
                        from.span.to(to.span),
                        format!("the range {a}..{b} has more than {MAX_REPEAT} iterations"),
                    ));
                }
                if let Some(b) = self.lookup(&var.text) {
                    return Err(self.err(
                        var.span,
                        format!(
                            "`{}` is already defined (a {} at {})",
                            var.text,
                            b.kind.noun(),
                            self.location(b.span)
                        ),
                    ));
                }
                for i in a..b {
                    let mut scope = HashMap::new();
                    scope.insert(
                        var.text.clone(),
                        Binding {
                            val: Val::Int(i),
                            kind: Kind::LoopVar,
                            span: var.span,
                        },
                    );
                    self.scopes.push(scope);
                    self.loop_vars.push((var.text.clone(), i));
                    let r = self.block(body);
                    self.loop_vars.pop();
                    self.scopes.pop();
                    r?;
                }
                Ok(())
            }
            Stmt::Output { name, expr } => {
                let t = self.tensor(expr, Ctx::Body)?;
                if let Some(prev) = self.outputs.get(&name.text) {
                    return Err(self.err(
                        name.span,
                        format!(
                            "output `{}` is already defined at {}",
                            name.text,
                            self.location(*prev)
                        ),
                    ));
                }
                self.outputs.insert(name.text.clone(), name.span);
                self.graph.outputs.push((name.text.clone(), t.v));
                Ok(())
            }
            Stmt::Assign { name, expr } => {
                let v = self.eval(expr, Ctx::Body)?;
                self.assign(name, v)
            }
        }
    }
}

/// The value of `--set name=text` for a parameter whose default is `default`.
fn override_value(name: &str, text: &str, default: &Val) -> Result<Val> {
    let text = text.trim();
    let bad = |what: &str| {
        CompileError::Input(format!(
            "--set {name}={text}: {name} is {what} (its default is {})",
            match default {
                Val::Int(i) => i.to_string(),
                Val::Float(f) => f.to_string(),
                Val::Word(w) => w.clone(),
                Val::Tensor(_) => "a tensor".into(),
            }
        ))
    };
    match default {
        Val::Int(_) => text
            .parse::<i64>()
            .map(Val::Int)
            .map_err(|_| bad("an integer")),
        Val::Float(_) => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Val::Float)
            .ok_or_else(|| bad("a number")),
        Val::Word(_) => {
            let ok = text
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                Ok(Val::Word(text.to_string()))
            } else {
                Err(bad("a word"))
            }
        }
        Val::Tensor(_) => Err(bad("not settable")),
    }
}

/// The candidate closest to `name` by edit distance, if close enough to be a likely typo.
pub(super) fn closest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    // Optimal string alignment: insertions, deletions, substitutions and adjacent swaps.
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let mut v = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + usize::from(a[i - 1] != b[j - 1]));
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        assert_eq!(edit_distance("gleu", "gelu"), 1);
        assert_eq!(edit_distance("width", "widht"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let names = ["width", "heads", "layers"];
        assert_eq!(closest("widht", names.iter().copied()), Some("width"));
        assert_eq!(closest("depth", names.iter().copied()), None);
    }

    #[test]
    fn override_values_keep_the_default_kind() {
        assert!(matches!(
            override_value("n", " 3 ", &Val::Int(1)),
            Ok(Val::Int(3))
        ));
        assert!(override_value("n", "3.5", &Val::Int(1)).is_err());
        assert!(
            matches!(override_value("e", "2", &Val::Float(1.0)), Ok(Val::Float(f)) if f == 2.0)
        );
        assert!(override_value("e", "inf", &Val::Float(1.0)).is_err());
        let tanh = Val::Word("tanh".into());
        assert!(matches!(override_value("g", "erf", &tanh), Ok(Val::Word(w)) if w == "erf"));
        assert!(override_value("g", "1x", &tanh).is_err());
    }
}
