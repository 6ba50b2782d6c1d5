//! The model DSL (`.cgpt`): a small language that describes GPT-2-family models and builds the
//! IR graph directly in its high-level, fused form. See `docs/dsl.md` for the reference.
//!
//! Three steps: pest parses the text (`dsl.pest`), [`Ast`] is built from the parse tree with
//! byte spans, and the [`Builder`] evaluates the program (config, overrides, loops) and type-checks
//! every call while it adds nodes to the graph. Weights are read from a safetensors file or drawn
//! from a seed at the end, in parallel. Every error is a one-line `path:line:col: message (at
//! `text`)`.

use super::weights::{seeded_values, Init, WeightFile};
use crate::error::{CompileError, Result};
use crate::ir::{Dim, GeluForm, Graph, Op, TensorType, ValueRef};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use pest::Parser;
use petgraph::stable_graph::NodeIndex;
use rayon::prelude::*;
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

// ---------------------------------------------------------------------------------------------
// Source text and located errors

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(s: pest::Span<'_>) -> Self {
        Span {
            start: s.start(),
            end: s.end(),
        }
    }
}

#[derive(Clone, Copy)]
struct Src<'a> {
    path: &'a str,
    text: &'a str,
}

impl Src<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = floor_char_boundary(self.text, pos);
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The text of a span on one line: comments dropped, whitespace collapsed, shortened.
    fn snippet(&self, span: Span) -> String {
        let start = floor_char_boundary(self.text, span.start);
        let end = floor_char_boundary(self.text, span.end.max(start));
        let mut words = Vec::new();
        for line in self.text[start..end].lines() {
            let code = line.split('#').next().unwrap_or("");
            words.extend(code.split_whitespace());
        }
        shorten(&words.join(" "), 60)
    }

    fn err(&self, span: Span, message: impl Into<String>) -> CompileError {
        let (line, col) = self.line_col(span.start);
        CompileError::Dsl {
            path: self.path.to_string(),
            line,
            col,
            message: one_line(message.into()),
            snippet: self.snippet(span),
        }
    }

    fn at(&self, pos: usize, message: impl Into<String>, snippet: String) -> CompileError {
        let (line, col) = self.line_col(pos);
        CompileError::Dsl {
            path: self.path.to_string(),
            line,
            col,
            message: one_line(message.into()),
            snippet,
        }
    }
}

fn floor_char_boundary(s: &str, mut pos: usize) -> usize {
    pos = pos.min(s.len());
    while !s.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}

/// Refuse absurdly deep bracket nesting before pest and the evaluator recurse on it.
fn check_nesting(src: &Src) -> Result<()> {
    let mut depth = 0usize;
    let mut in_comment = false;
    let mut string_start: Option<usize> = None;
    let unterminated = |start: usize| {
        let rest = &src.text[start..];
        src.at(
            start,
            "string not closed on its line",
            shorten(rest.lines().next().unwrap_or(rest), 30),
        )
    };
    for (i, c) in src.text.char_indices() {
        let in_string = string_start.is_some();
        match c {
            '\n' if in_string => return Err(unterminated(string_start.unwrap_or(i))),
            '\n' => in_comment = false,
            _ if in_comment => {}
            '"' if in_string => string_start = None,
            '"' => string_start = Some(i),
            _ if in_string => {}
            '#' => in_comment = true,
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(src.at(
                        i,
                        format!("brackets nested more than {MAX_NESTING} deep"),
                        c.to_string(),
                    ));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    match string_start {
        Some(start) => Err(unterminated(start)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: pest, then an AST with spans

#[derive(pest_derive::Parser)]
#[grammar = "frontend/dsl.pest"]
struct DslParser;

type Pair<'i> = pest::iterators::Pair<'i, Rule>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Clone, Debug)]
enum ExprKind {
    Int(i64),
    Float(f64),
    Ident(String),
    Call { name: String, args: Vec<Expr> },
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
}

#[derive(Clone, Debug)]
struct Expr {
    kind: ExprKind,
    span: Span,
    depth: usize,
}

#[derive(Debug)]
struct TypeAst {
    dtype: Option<(DType, Span)>,
    dims: Vec<Expr>,
}

#[derive(Debug)]
struct Name {
    text: String,
    span: Span,
}

#[derive(Debug)]
enum Stmt {
    Input {
        name: Name,
        ty: TypeAst,
        span: Span,
    },
    Weight {
        name: Name,
        ty: TypeAst,
        tensor: String,
        tensor_span: Span,
        init: Option<Expr>,
        span: Span,
    },
    Repeat {
        var: Name,
        from: Expr,
        to: Expr,
        body: Vec<Stmt>,
    },
    Output {
        name: Name,
        expr: Expr,
    },
    Assign {
        name: Name,
        expr: Expr,
    },
}

#[derive(Debug)]
struct ConfigEntry {
    name: Name,
    expr: Expr,
}

#[derive(Debug)]
struct Model {
    name_span: Span,
    config: Vec<ConfigEntry>,
    body: Vec<Stmt>,
}

fn parse(src: &Src) -> Result<Model> {
    pest::set_error_detail(true);
    let mut pairs = DslParser::parse(Rule::file, src.text).map_err(|e| syntax_error(src, &e))?;
    let file = pairs
        .next()
        .ok_or_else(|| src.at(0, "empty input", String::new()))?;
    let model = file
        .into_inner()
        .find(|p| p.as_rule() == Rule::model)
        .ok_or_else(|| src.at(0, "expected `model`", String::new()))?;
    let ast = Ast { src: *src };
    ast.model(model)
}

/// The reserved words (see `keyword` in dsl.pest).
const KEYWORDS: [&str; 8] = [
    "model", "config", "input", "weight", "repeat", "in", "output", "init",
];

/// What a rule is called in "expected …" messages.
fn rule_label(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::tensor_type => "a tensor type like `[width]`",
        Rule::dtype => "an element type (f32 or i64)",
        Rule::expr | Rule::product | Rule::unary => "an expression",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::neg => "`-`",
        Rule::ident => "a name",
        Rule::number => "a number",
        Rule::string => "a string",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

fn syntax_error(src: &Src, e: &pest::error::Error<Rule>) -> CompileError {
    use pest::error::{ErrorVariant, InputLocation};
    let mut pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    let message = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            // pest places the error at the furthest *rule* attempt; its detailed attempts also
            // know literal tokens (`=`, `}`), which may have been tried further on.
            let attempts = e.parse_attempts().filter(|a| a.max_position >= pos);
            match &attempts {
                Some(a) if a.max_position > pos => pos = a.max_position,
                _ => {
                    for r in positives {
                        if let Some(l) = rule_label(*r) {
                            push(l.to_string());
                        }
                    }
                }
            }
            if let Some(a) = attempts {
                for t in a.expected_tokens() {
                    // pest does not export the token type; its Debug form names the variant.
                    if format!("{t:?}").starts_with("Sensitive") {
                        push(format!("`{t}`"));
                    }
                }
            }
            let expected = tidy_expected(expected);
            // A keyword where a name was expected: pest's furthest attempt is just after it.
            let word_start = src.text[..floor_char_boundary(src.text, pos)]
                .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
                .len();
            let word = &src.text[word_start..floor_char_boundary(src.text, pos)];
            let found = if KEYWORDS.contains(&word)
                && expected
                    .iter()
                    .any(|e| e == "a name" || e == "an expression")
            {
                pos = word_start;
                format!(", found the keyword `{word}`")
            } else {
                String::new()
            };
            if expected.is_empty() {
                "syntax error".to_string()
            } else {
                format!("expected {}{found}", or_list(&expected))
            }
        }
        ErrorVariant::CustomError { message } => format!("syntax error: {message}"),
    };
    src.at(pos, message, text_at(src.text, pos))
}

/// Make pest's list of what was expected readable: drop whitespace, comment starts and the
/// letters inside names, fold the arithmetic operators into one entry, and drop keywords that
/// only appear because a name may not be a keyword.
fn tidy_expected(raw: Vec<String>) -> Vec<String> {
    const OPS: [&str; 4] = ["`+`", "`-`", "`*`", "`/`"];
    let has = |s: &str| raw.iter().any(|r| r == s);
    let name_expected = has("a name")
        || raw.iter().any(|r| {
            r == "`_`"
                || (r.len() == 3 && r.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic()))
        });
    let expr_expected = has("an expression");
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    for r in &raw {
        let token = r.strip_prefix('`').and_then(|t| t.strip_suffix('`'));
        match token {
            None => add(r),
            Some(t) if t.trim().is_empty() || t == "#" => {}
            Some("_") => add("a name"),
            Some(t) if t.chars().count() == 1 && t.chars().all(|c| c.is_ascii_alphabetic()) => {
                add("a name")
            }
            Some(t) if t.chars().count() == 1 && t.chars().all(|c| c.is_ascii_digit()) => {
                add("a number")
            }
            Some("f32" | "i64") => add("an element type (f32 or i64)"),
            Some("model" | "config" | "in" | "init") if name_expected => {}
            Some("(" | "-") if expr_expected => {}
            Some(_) if OPS.contains(&r.as_str()) => {
                if !(expr_expected && r == "`-`") {
                    add("an operator");
                }
            }
            Some("(") => add("`(`"),
            Some(_) => add(r),
        }
    }
    if out.iter().any(|o| o == "an expression") {
        out.retain(|o| o != "a name" && o != "a number");
    }
    // Names and expressions first, punctuation last.
    out.sort_by_key(|s| s.starts_with('`'));
    out
}

/// The text at a syntax error: the rest of the line, shortened.
/// Whether `e` names `name`.
fn uses(e: &Expr, name: &str) -> bool {
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Float(_) => false,
        ExprKind::Ident(n) => n == name,
        ExprKind::Neg(x) => uses(x, name),
        ExprKind::Bin(_, a, b) => uses(a, name) || uses(b, name),
        ExprKind::Call { args, .. } => args.iter().any(|a| uses(a, name)),
    }
}

fn text_at(text: &str, pos: usize) -> String {
    let pos = floor_char_boundary(text, pos);
    let rest = &text[pos..];
    if rest.is_empty() {
        return "end of file".into();
    }
    let line = rest.lines().next().unwrap_or("").trim_end();
    if line.is_empty() {
        return "end of line".into();
    }
    shorten(line, 30)
}

fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Builds the AST from pest pairs. The grammar guarantees the structure; a pair that is not
/// where the grammar puts it is reported as an internal error, never a panic.
struct Ast<'a> {
    src: Src<'a>,
}

impl Ast<'_> {
    fn internal(&self, span: Span) -> CompileError {
        self.src.err(span, "internal error: unexpected parse tree")
    }

    fn next<'i>(
        &self,
        it: &mut pest::iterators::Pairs<'i, Rule>,
        rule: Rule,
        span: Span,
    ) -> Result<Pair<'i>> {
        match it.next() {
            Some(p) if p.as_rule() == rule => Ok(p),
            _ => Err(self.internal(span)),
        }
    }

    fn name(&self, p: Pair) -> Name {
        Name {
            text: p.as_str().to_string(),
            span: p.as_span().into(),
        }
    }

    fn model(&self, p: Pair) -> Result<Model> {
        let span: Span = p.as_span().into();
        let mut it = p.into_inner();
        let name = self.name(self.next(&mut it, Rule::ident, span)?);
        let mut config = Vec::new();
        let mut body = Vec::new();
        for p in it {
            if p.as_rule() == Rule::config {
                for e in p.into_inner() {
                    let espan: Span = e.as_span().into();
                    let mut ei = e.into_inner();
                    let n = self.name(self.next(&mut ei, Rule::ident, espan)?);
                    let expr = self.expr(self.next(&mut ei, Rule::expr, espan)?)?;
                    config.push(ConfigEntry { name: n, expr });
                }
            } else {
                body.push(self.stmt(p)?);
            }
        }
        Ok(Model {
            name_span: name.span,
            config,
            body,
        })
    }

    fn stmt(&self, p: Pair) -> Result<Stmt> {
        let span: Span = p.as_span().into();
        let rule = p.as_rule();
        let mut it = p.into_inner();
        Ok(match rule {
            Rule::input_decl => Stmt::Input {
                name: self.name(self.next(&mut it, Rule::ident, span)?),
                ty: self.tensor_type(self.next(&mut it, Rule::tensor_type, span)?)?,
                span,
            },
            Rule::weight_decl => {
                let name = self.name(self.next(&mut it, Rule::ident, span)?);
                let ty = self.tensor_type(self.next(&mut it, Rule::tensor_type, span)?)?;
                let s = self.next(&mut it, Rule::string, span)?;
                let init = match it.next() {
                    Some(i) => {
                        let ispan = i.as_span().into();
                        Some(self.expr(self.next(&mut i.into_inner(), Rule::expr, ispan)?)?)
                    }
                    None => None,
                };
                let raw = s.as_str();
                Stmt::Weight {
                    name,
                    ty,
                    tensor: raw[1..raw.len() - 1].to_string(),
                    tensor_span: s.as_span().into(),
                    init,
                    span,
                }
            }
            Rule::repeat => Stmt::Repeat {
                var: self.name(self.next(&mut it, Rule::ident, span)?),
                from: self.expr(self.next(&mut it, Rule::expr, span)?)?,
                to: self.expr(self.next(&mut it, Rule::expr, span)?)?,
                body: it.map(|s| self.stmt(s)).collect::<Result<_>>()?,
            },
            Rule::output => Stmt::Output {
                name: self.name(self.next(&mut it, Rule::ident, span)?),
                expr: self.expr(self.next(&mut it, Rule::expr, span)?)?,
            },
            Rule::assign => Stmt::Assign {
                name: self.name(self.next(&mut it, Rule::ident, span)?),
                expr: self.expr(self.next(&mut it, Rule::expr, span)?)?,
            },
            _ => return Err(self.internal(span)),
        })
    }

    fn tensor_type(&self, p: Pair) -> Result<TypeAst> {
        let mut dtype = None;
        let mut dims = Vec::new();
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::dtype => {
                    let d = if q.as_str() == "i64" {
                        DType::I64
                    } else {
                        DType::F32
                    };
                    dtype = Some((d, q.as_span().into()));
                }
                _ => dims.push(self.expr(q)?),
            }
        }
        Ok(TypeAst { dtype, dims })
    }

    fn mk(&self, kind: ExprKind, span: Span, depth: usize) -> Result<Expr> {
        if depth > MAX_EXPR_DEPTH {
            return Err(self.src.err(
                span,
                format!("expression nested more than {MAX_EXPR_DEPTH} deep"),
            ));
        }
        Ok(Expr { kind, span, depth })
    }

    /// `expr` and `product`: left-associative chains of binary operators.
    fn expr(&self, p: Pair) -> Result<Expr> {
        let span: Span = p.as_span().into();
        match p.as_rule() {
            Rule::expr | Rule::product => {
                let mut it = p.into_inner();
                let first = it.next().ok_or_else(|| self.internal(span))?;
                let mut acc = self.expr(first)?;
                while let Some(op) = it.next() {
                    let op = match op.as_str() {
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        _ => BinOp::Div,
                    };
                    let rhs = self.expr(it.next().ok_or_else(|| self.internal(span))?)?;
                    let s = acc.span.to(rhs.span);
                    let depth = acc.depth.max(rhs.depth) + 1;
                    acc = self.mk(ExprKind::Bin(op, Box::new(acc), Box::new(rhs)), s, depth)?;
                }
                Ok(acc)
            }
            Rule::unary => {
                let inner: Vec<Pair> = p.into_inner().collect();
                let (negs, prim) = inner.split_at(inner.len().saturating_sub(1));
                let prim = prim.first().ok_or_else(|| self.internal(span))?;
                let mut acc = self.expr(prim.clone())?;
                for n in negs.iter().rev() {
                    let s = Span::from(n.as_span()).to(acc.span);
                    let depth = acc.depth + 1;
                    acc = self.mk(ExprKind::Neg(Box::new(acc)), s, depth)?;
                }
                Ok(acc)
            }
            Rule::number => {
                let t = p.as_str();
                if t.contains(['.', 'e', 'E']) {
                    let v: f64 = t.parse().map_err(|_| self.src.err(span, "not a number"))?;
                    self.mk(ExprKind::Float(v), span, 1)
                } else {
                    let v: i64 = t.parse().map_err(|_| {
                        self.src
                            .err(span, "integer too large (the limit is 9223372036854775807)")
                    })?;
                    self.mk(ExprKind::Int(v), span, 1)
                }
            }
            Rule::ident => self.mk(ExprKind::Ident(p.as_str().to_string()), span, 1),
            Rule::call => {
                let mut it = p.into_inner();
                let name = self.next(&mut it, Rule::ident, span)?.as_str().to_string();
                let args: Vec<Expr> = it.map(|a| self.expr(a)).collect::<Result<_>>()?;
                let depth = args.iter().map(|a| a.depth).max().unwrap_or(0) + 1;
                self.mk(ExprKind::Call { name, args }, span, depth)
            }
            _ => Err(self.internal(span)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation: values, scopes, the graph

#[derive(Clone, Debug)]
enum Val {
    Int(i64),
    Float(f64),
    /// A bare word such as `tanh` (config values and GELU forms).
    Word(String),
    Tensor(TVal),
}

#[derive(Clone, Debug)]
struct TVal {
    v: ValueRef,
    ty: TensorType,
    /// A declared weight (server-held constant), as opposed to an activation.
    weight: bool,
}

impl Val {
    fn describe(&self) -> String {
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
enum Kind {
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
struct Binding {
    val: Val,
    kind: Kind,
    span: Span,
}

/// Where an expression is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    /// A config value: unknown names are words, calls are not allowed.
    Config,
    /// A shape, range bound or init argument: numbers only.
    Scalar,
    /// The model body: tensors and calls.
    Body,
}

struct PendingWeight {
    node: NodeIndex,
    name: String,
    shape: Vec<usize>,
    init: Init,
}

struct Builder<'a> {
    src: Src<'a>,
    graph: Graph,
    scopes: Vec<HashMap<String, Binding>>,
    loop_vars: Vec<(String, i64)>,
    pending: Vec<PendingWeight>,
    /// Tensor name → (node, shape, declaration) for weights already declared.
    by_tensor: HashMap<String, (NodeIndex, Vec<usize>, Span)>,
    outputs: HashMap<String, Span>,
    file: Option<&'a WeightFile>,
}

const BUILTINS: [&str; 6] = [
    "embedding",
    "layer_norm",
    "linear",
    "gelu",
    "attention",
    "logits",
];

impl Builder<'_> {
    fn err(&self, span: Span, message: impl Into<String>) -> CompileError {
        self.src.err(span, message)
    }

    fn lookup(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    fn location(&self, span: Span) -> String {
        let (l, c) = self.src.line_col(span.start);
        format!("{l}:{c}")
    }

    /// Bind a new name in the innermost scope; an existing name anywhere is an error.
    fn declare(&mut self, name: &Name, kind: Kind, val: Val) -> Result<()> {
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
    fn assign(&mut self, name: &Name, val: Val) -> Result<()> {
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

    fn visible_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.scopes.iter().flat_map(|s| s.keys().cloned()).collect();
        v.sort();
        v.dedup();
        v
    }

    // ----- config

    fn config(&mut self, model: &Model, overrides: &[(String, String)]) -> Result<()> {
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

    fn block(&mut self, stmts: &[Stmt]) -> Result<()> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<()> {
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

    fn weight(
        &mut self,
        name: &Name,
        ty: &TypeAst,
        tensor: &str,
        tensor_span: Span,
        init: Option<&Expr>,
        span: Span,
    ) -> Result<()> {
        let ty_ast = ty;
        if let Some((d, dspan)) = ty.dtype {
            if d != DType::F32 {
                return Err(self.err(dspan, format!("weights are f32, not {d}")));
            }
        }
        let mut shape = Vec::with_capacity(ty.dims.len());
        for d in &ty.dims {
            let n = self.int(d, Ctx::Scalar)?;
            if n < 1 {
                return Err(self.err(
                    d.span,
                    format!("a weight dimension must be at least 1, found {n}"),
                ));
            }
            shape.push(n as usize);
        }
        let elements = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_WEIGHT_ELEMENTS);
        if elements.is_none() {
            return Err(self.err(
                span,
                format!("weight of shape {shape:?} is larger than {MAX_WEIGHT_ELEMENTS} elements"),
            ));
        }
        let tensor_name = self.interpolate(tensor, tensor_span)?;
        let init = match init {
            Some(e) => self.init(e)?,
            None => Init::GPT2,
        };
        let ty = TensorType::known(DType::F32, &shape);

        let node = if let Some((node, prev_shape, prev_span)) = self.by_tensor.get(&tensor_name) {
            // The same tensor declared twice (e.g. tied weights): one node.
            if *prev_shape != shape {
                return Err(self.err(
                    span,
                    format!(
                        "tensor \"{tensor_name}\" is declared with shape {shape:?} here and {prev_shape:?} at {}",
                        self.location(*prev_span)
                    ),
                ));
            }
            *node
        } else {
            if let Some(file) = self.file {
                self.check_file_tensor(file, &tensor_name, (&shape, &ty_ast.dims), &ty, span)?;
            }
            let placeholder = Tensor::F32(ArrayD::zeros(IxDyn(&[0])));
            let node = self
                .graph
                .add(tensor_name.clone(), Op::Const(placeholder), &[]);
            self.graph.g[node].outputs = vec![Some(ty.clone())];
            self.pending.push(PendingWeight {
                node,
                name: tensor_name.clone(),
                shape: shape.clone(),
                init,
            });
            self.by_tensor.insert(tensor_name, (node, shape, span));
            node
        };
        let val = Val::Tensor(TVal {
            v: node.into(),
            ty,
            weight: true,
        });
        self.declare(name, Kind::Weight, val)
    }

    /// The safetensors file must hold the tensor with the declared shape and a float type.
    fn check_file_tensor(
        &self,
        file: &WeightFile,
        name: &str,
        (shape, dims): (&[usize], &[Expr]),
        ty: &TensorType,
        span: Span,
    ) -> Result<()> {
        let Some(found) = file.shape(name) else {
            let hint = if self.loop_vars.is_empty() {
                "check the tensor name against the file's".to_string()
            } else {
                let vars: Vec<String> = self
                    .loop_vars
                    .iter()
                    .map(|(n, v)| format!("{n} = {v}"))
                    .collect();
                format!(
                    "declared inside `repeat` with {}; does the file hold that many layers? (e.g. --set layers=N)",
                    vars.join(", ")
                )
            };
            return Err(self.err(
                span,
                format!(
                    "tensor \"{name}\" (declared {ty}) is not in {} ({} tensors); hint: {hint}",
                    file.path(),
                    file.len()
                ),
            ));
        };
        if found != shape {
            let found_ty = TensorType::known(DType::F32, found);
            return Err(self.err(
                span,
                format!(
                    "tensor \"{name}\" in {} has shape {found_ty}, declared {ty}; hint: {}",
                    file.path(),
                    self.shape_hint(dims, shape, found)
                ),
            ));
        }
        if let Err(dtype) = file.check_float(name) {
            return Err(self.err(
                span,
                format!(
                    "tensor \"{name}\" in {} holds {dtype} values; ciphergpt reads F32, F16, BF16 or F64",
                    file.path()
                ),
            ));
        }
        Ok(())
    }

    /// Suggest config overrides that would make a declared shape match the file's: each
    /// differing dimension is solved for the one config parameter its expression uses. The
    /// suggestion is made only when it makes every dimension match: each differing one solves,
    /// the solutions agree, and no parameter solved for also sets a dimension that already
    /// matches. Otherwise the hint says which dimensions differ and why no `--set` fits.
    fn shape_hint(&self, dims: &[Expr], declared: &[usize], found: &[usize]) -> String {
        if dims.len() != found.len() || declared.len() != found.len() {
            return format!(
                "the file's tensor has {} dimensions, the declaration {}: the file holds another layout, not only another size",
                found.len(),
                dims.len()
            );
        }
        let mut sets: Vec<(String, i64)> = Vec::new();
        let mut sound = true;
        let mut differ: Vec<String> = Vec::new();
        for (i, ((e, &d), &f)) in dims.iter().zip(declared).zip(found).enumerate() {
            if d == f {
                continue;
            }
            differ.push(format!(
                "dimension {i} is {f} in the file, `{}` = {d} here",
                self.src.snippet(e.span)
            ));
            match self.solve(e, f as i64) {
                Some((name, v)) if sets.iter().all(|(n, x)| *n != name || *x == v) => {
                    if !sets.contains(&(name.clone(), v)) {
                        sets.push((name, v));
                    }
                }
                _ => sound = false,
            }
        }
        // A parameter solved for must not also set a dimension that matches already.
        let breaks = dims
            .iter()
            .zip(declared.iter().zip(found))
            .filter(|(_, (d, f))| d == f)
            .any(|(e, _)| sets.iter().any(|(n, _)| uses(e, n)));
        if sound && !breaks && !sets.is_empty() {
            let sets: Vec<String> = sets.iter().map(|(n, v)| format!("{n}={v}")).collect();
            return format!(
                "the file holds a model of another size; try --set {}",
                sets.join(",")
            );
        }
        format!(
            "{}; no --set makes every dimension match (the file's tensor is laid out differently, or another parameter sets that size)",
            differ.join(", ")
        )
    }

    /// Whether `e` uses no config parameter (so its value is fixed).
    fn is_fixed(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Float(_) => true,
            ExprKind::Ident(n) => self.lookup(n).is_some_and(|b| b.kind != Kind::Config),
            ExprKind::Neg(x) => self.is_fixed(x),
            ExprKind::Bin(_, a, b) => self.is_fixed(a) && self.is_fixed(b),
            ExprKind::Call { .. } => false,
        }
    }

    /// The value of the one config parameter in `e` that makes `e` equal `target`.
    fn solve(&self, e: &Expr, target: i64) -> Option<(String, i64)> {
        let fixed = |x: &Expr| match self.eval_scalar(x, Ctx::Scalar) {
            Ok(Val::Int(v)) if self.is_fixed(x) => Some(v),
            _ => None,
        };
        match &e.kind {
            ExprKind::Ident(n) => match self.lookup(n) {
                Some(b) if b.kind == Kind::Config && matches!(b.val, Val::Int(_)) => {
                    Some((n.clone(), target))
                }
                _ => None,
            },
            ExprKind::Bin(op, a, b) => match (op, fixed(a), fixed(b)) {
                (BinOp::Mul, Some(k), None) if target.checked_rem(k) == Some(0) => {
                    self.solve(b, target.checked_div(k)?)
                }
                (BinOp::Mul, None, Some(k)) if target.checked_rem(k) == Some(0) => {
                    self.solve(a, target.checked_div(k)?)
                }
                (BinOp::Div, None, Some(k)) => self.solve(a, target.checked_mul(k)?),
                (BinOp::Add, Some(c), None) => self.solve(b, target.checked_sub(c)?),
                (BinOp::Add, None, Some(c)) => self.solve(a, target.checked_sub(c)?),
                (BinOp::Sub, None, Some(c)) => self.solve(a, target.checked_add(c)?),
                (BinOp::Sub, Some(c), None) => self.solve(b, c.checked_sub(target)?),
                _ => None,
            },
            _ => None,
        }
    }

    /// `"transformer.h.{l}.ln_1.weight"` with `{name}` replaced by integer values.
    fn interpolate(&self, raw: &str, span: Span) -> Result<String> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        // Byte offset of `rest` in the source (after the opening quote).
        let mut offset = span.start + 1;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                let pos = offset + open;
                return Err(self.src.at(
                    pos,
                    "`{` without a closing `}` in a tensor name",
                    shorten(&rest[open..], 30),
                ));
            };
            let name = after[..close].trim();
            let nspan = Span {
                start: offset + open,
                end: offset + open + close + 2,
            };
            match self.lookup(name).map(|b| &b.val) {
                Some(Val::Int(i)) => out.push_str(&i.to_string()),
                Some(v) => {
                    return Err(self.err(
                        nspan,
                        format!(
                            "`{name}` in a tensor name must be an integer, found {}",
                            v.describe()
                        ),
                    ))
                }
                None => {
                    return Err(self.err(nspan, self.unknown_name_message(name)));
                }
            }
            let consumed = open + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        out.push_str(rest);
        Ok(out)
    }

    fn init(&self, e: &Expr) -> Result<Init> {
        let bad = || {
            self.err(
                e.span,
                "init must be `zeros`, `ones`, `normal(std)` or `normal(mean, std)`",
            )
        };
        match &e.kind {
            ExprKind::Ident(n) if n == "zeros" => Ok(Init::Zeros),
            ExprKind::Ident(n) if n == "ones" => Ok(Init::Ones),
            ExprKind::Call { name, args } if name == "normal" => {
                let nums = args
                    .iter()
                    .map(|a| self.number(a, Ctx::Scalar))
                    .collect::<Result<Vec<f64>>>()?;
                let (mean, std) = match nums[..] {
                    [s] => (0.0, s),
                    [m, s] => (m, s),
                    _ => return Err(bad()),
                };
                if !(std >= 0.0 && std.is_finite() && mean.is_finite()) {
                    return Err(self.err(
                        e.span,
                        format!("normal(mean, std) needs a finite mean and std ≥ 0, found ({mean}, {std})"),
                    ));
                }
                Ok(Init::Normal {
                    mean: mean as f32,
                    std: std as f32,
                })
            }
            _ => Err(bad()),
        }
    }

    /// A dimension of a declared type: an integer, or `T` (the sequence length) when `seq`.
    fn dim(&self, e: &Expr, seq: bool) -> Result<Dim> {
        if let ExprKind::Ident(n) = &e.kind {
            if n == "T" && self.lookup("T").is_none() {
                if seq {
                    return Ok(Dim::SEQ);
                }
                return Err(self.err(e.span, "`T` (the sequence length) is only for inputs"));
            }
        }
        let n = self.int(e, Ctx::Scalar)?;
        if n < 1 {
            return Err(self.err(e.span, format!("a dimension must be at least 1, found {n}")));
        }
        Ok(Dim::known(n))
    }

    // ----- expressions

    fn int(&self, e: &Expr, ctx: Ctx) -> Result<i64> {
        match self.eval_scalar(e, ctx)? {
            Val::Int(i) => Ok(i),
            v => Err(self.err(
                e.span,
                format!("expected an integer, found {}", v.describe()),
            )),
        }
    }

    fn number(&self, e: &Expr, ctx: Ctx) -> Result<f64> {
        match self.eval_scalar(e, ctx)? {
            Val::Int(i) => Ok(i as f64),
            Val::Float(f) => Ok(f),
            v => Err(self.err(e.span, format!("expected a number, found {}", v.describe()))),
        }
    }

    /// Evaluate where no graph node may be made (calls are rejected before any is).
    fn eval_scalar(&self, e: &Expr, ctx: Ctx) -> Result<Val> {
        match &e.kind {
            ExprKind::Int(i) => Ok(Val::Int(*i)),
            ExprKind::Float(f) => Ok(Val::Float(*f)),
            ExprKind::Ident(n) => match self.lookup(n) {
                Some(b) => Ok(b.val.clone()),
                None if ctx == Ctx::Config => Ok(Val::Word(n.clone())),
                None => Err(self.err(e.span, self.unknown_name_message(n))),
            },
            ExprKind::Call { name, .. } => Err(self.err(
                e.span,
                format!("`{name}(…)`: calls are not allowed in a config value, shape or range"),
            )),
            ExprKind::Neg(x) => {
                let v = self.eval_scalar(x, ctx)?;
                self.negate(v, e.span)
            }
            ExprKind::Bin(op, a, b) => {
                let x = self.eval_scalar(a, ctx)?;
                let y = self.eval_scalar(b, ctx)?;
                self.arith(*op, x, y, e)
            }
        }
    }

    fn negate(&self, v: Val, span: Span) -> Result<Val> {
        match v {
            Val::Int(i) => i
                .checked_neg()
                .map(Val::Int)
                .ok_or_else(|| self.err(span, "integer overflow")),
            Val::Float(f) => Ok(Val::Float(-f)),
            v => Err(self.err(span, format!("cannot negate {}", v.describe()))),
        }
    }

    /// Arithmetic on numbers. Integer division must be exact (shapes are whole numbers).
    fn arith(&self, op: BinOp, x: Val, y: Val, e: &Expr) -> Result<Val> {
        match (x, y) {
            (Val::Int(a), Val::Int(b)) => {
                let r = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    BinOp::Div => {
                        if b == 0 {
                            return Err(self.err(e.span, "division by zero"));
                        }
                        if a.checked_rem(b).is_some_and(|r| r != 0) {
                            return Err(self.err(e.span, format!("{a}/{b} is not a whole number")));
                        }
                        a.checked_div(b)
                    }
                };
                r.map(Val::Int)
                    .ok_or_else(|| self.err(e.span, "integer overflow"))
            }
            (x @ (Val::Int(_) | Val::Float(_)), y @ (Val::Int(_) | Val::Float(_))) => {
                let f = |v: Val| match v {
                    Val::Int(i) => i as f64,
                    Val::Float(f) => f,
                    _ => 0.0,
                };
                let (a, b) = (f(x), f(y));
                let r = match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => {
                        if b == 0.0 {
                            return Err(self.err(e.span, "division by zero"));
                        }
                        a / b
                    }
                };
                Ok(Val::Float(r))
            }
            (Val::Tensor(_), Val::Tensor(_)) => Err(self.err(
                e.span,
                format!(
                    "`{}` does not apply to tensors; only `+` (a residual connection) does",
                    op.symbol()
                ),
            )),
            (x, y) => Err(self.err(
                e.span,
                format!(
                    "`{}` needs two numbers or two tensors, found {} and {}",
                    op.symbol(),
                    x.describe(),
                    y.describe()
                ),
            )),
        }
    }

    fn unknown_name_message(&self, n: &str) -> String {
        let names = self.visible_names();
        match closest(n, names.iter().map(String::as_str)) {
            Some(s) => format!("unknown name `{n}`; did you mean `{s}`?"),
            None => format!("unknown name `{n}`"),
        }
    }

    fn tensor(&mut self, e: &Expr, ctx: Ctx) -> Result<TVal> {
        match self.eval(e, ctx)? {
            Val::Tensor(t) => Ok(t),
            v => Err(self.err(e.span, format!("expected a tensor, found {}", v.describe()))),
        }
    }

    fn eval(&mut self, e: &Expr, ctx: Ctx) -> Result<Val> {
        if ctx != Ctx::Body {
            return self.eval_scalar(e, ctx);
        }
        match &e.kind {
            ExprKind::Call { name, args } => self.call(name, args, e),
            ExprKind::Bin(op, a, b) => {
                let x = self.eval(a, ctx)?;
                let y = self.eval(b, ctx)?;
                match (op, x, y) {
                    (BinOp::Add, Val::Tensor(x), Val::Tensor(y)) => self.residual(x, y, a, b, e),
                    (_, x, y) => self.arith(*op, x, y, e),
                }
            }
            ExprKind::Neg(x) => {
                let v = self.eval(x, ctx)?;
                self.negate(v, e.span)
            }
            _ => self.eval_scalar(e, ctx),
        }
    }

    /// A name for an op node: the function and where it was written, and the loop iteration.
    fn node_name(&self, what: &str, span: Span) -> String {
        let mut s = format!("{what}@{}", self.location(span));
        for (n, v) in &self.loop_vars {
            s.push_str(&format!("[{n}={v}]"));
        }
        s
    }

    fn op(&mut self, what: &str, span: Span, op: Op, inputs: &[ValueRef], ty: TensorType) -> Val {
        let name = self.node_name(what, span);
        let id = self.graph.add(name, op, inputs);
        self.graph.g[id].outputs = vec![Some(ty.clone())];
        Val::Tensor(TVal {
            v: id.into(),
            ty,
            weight: false,
        })
    }

    fn residual(&mut self, x: TVal, y: TVal, a: &Expr, b: &Expr, e: &Expr) -> Result<Val> {
        for (t, ex) in [(&x, a), (&y, b)] {
            if t.weight || t.ty.dtype != DType::F32 {
                return Err(self.err(
                    ex.span,
                    format!(
                        "`+` adds two f32 activations (a residual connection), found {}",
                        Val::Tensor(t.clone()).describe()
                    ),
                ));
            }
        }
        if x.ty != y.ty {
            return Err(self.err(
                e.span,
                format!(
                    "`+` needs two tensors of the same shape, found {} and {}",
                    x.ty, y.ty
                ),
            ));
        }
        let ty = x.ty.clone();
        Ok(self.op("residual_add", e.span, Op::ResidualAdd, &[x.v, y.v], ty))
    }

    /// A call of a built-in function: the arguments counted, then the function's node.
    fn call(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
        self.check_arguments(name, args, e)?;
        match name {
            "embedding" => self.embedding(name, args, e),
            "layer_norm" => self.layer_norm(name, args, e),
            "linear" => self.linear(name, args, e),
            "gelu" => self.gelu(name, args, e),
            "attention" => self.attention(name, args, e),
            // `check_arguments` refused every other name.
            _ => self.logits(name, args, e),
        }
    }

    /// `Err` unless `name` is a built-in function and `args` are as many as it takes.
    fn check_arguments(&self, name: &str, args: &[Expr], e: &Expr) -> Result<()> {
        let (params, optional): (&[&str], usize) = match name {
            "embedding" => (&["ids", "token_table", "position_table"], 0),
            "layer_norm" => (&["x", "gamma", "beta", "eps"], 1),
            "linear" => (&["x", "weight", "bias"], 0),
            "gelu" => (&["x", "form"], 1),
            "attention" => (&["qkv", "heads", "scale"], 1),
            "logits" => (&["x", "token_table"], 0),
            _ => {
                let hint = match closest(name, BUILTINS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the functions are {}", BUILTINS.join(", ")),
                };
                return Err(self.err(e.span, format!("unknown function `{name}`; {hint}")));
            }
        };
        let required = params.len() - optional;
        if args.len() < required || args.len() > params.len() {
            let count = if optional == 0 {
                format!("{}", params.len())
            } else {
                format!("{} or {}", required, params.len())
            };
            return Err(self.err(
                e.span,
                format!(
                    "`{name}` takes {count} arguments ({}), found {}",
                    params.join(", "),
                    args.len()
                ),
            ));
        }
        Ok(())
    }

    /// `embedding(ids, token_table, position_table)`: the token ids `i64[1,T]` and two weight
    /// tables of equal width.
    fn embedding(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
        let ids = self.tensor(&args[0], Ctx::Body)?;
        let wte = self.weight_arg(name, &args[1], 2)?;
        let wpe = self.weight_arg(name, &args[2], 2)?;
        let seq_ok = ids.ty.dtype == DType::I64
            && ids.ty.rank() == 2
            && ids.ty.shape[0] == Dim::known(1)
            && ids.ty.shape[1].is_seq();
        if !seq_ok || ids.weight {
            return Err(self.err(
                args[0].span,
                format!(
                    "embedding: token ids must be an i64[1,T] input, found {}",
                    Val::Tensor(ids).describe()
                ),
            ));
        }
        let c = wte.ty.shape[1];
        if wpe.ty.shape[1] != c {
            return Err(self.err(
                args[2].span,
                format!(
                    "embedding: the position table is {} wide but the token table {} is {} wide",
                    wpe.ty.shape[1], wte.ty, c
                ),
            ));
        }
        let ty = TensorType::new(DType::F32, vec![Dim::known(1), Dim::SEQ, c]);
        Ok(self.op(name, e.span, Op::Embedding, &[ids.v, wte.v, wpe.v], ty))
    }

    /// `layer_norm(x, gamma, beta[, eps])`: γ and β as wide as the activation `x`, ε positive
    /// (GPT-2's when not given).
    fn layer_norm(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
        let x = self.activation(name, &args[0])?;
        let c = self.last_dim(name, &x, &args[0])?;
        let g = self.weight_arg(name, &args[1], 1)?;
        let b = self.weight_arg(name, &args[2], 1)?;
        for (w, a, what) in [(&g, &args[1], "gamma"), (&b, &args[2], "beta")] {
            if w.ty.shape[0] != c {
                return Err(self.err(
                    a.span,
                    format!(
                        "layer_norm: {what} is {} but the input {} is {c} wide",
                        w.ty, x.ty
                    ),
                ));
            }
        }
        let eps = match args.get(3) {
            Some(a) => {
                let v = self.number(a, Ctx::Body)?;
                if !((v as f32) > 0.0 && (v as f32).is_finite()) {
                    return Err(self.err(
                        a.span,
                        format!("layer_norm: eps must be a positive number, found {v}"),
                    ));
                }
                v
            }
            None => DEFAULT_EPS,
        };
        let ty = x.ty.clone();
        Ok(self.op(
            name,
            e.span,
            Op::LayerNorm { eps: eps as f32 },
            &[x.v, g.v, b.v],
            ty,
        ))
    }

    /// `linear(x, weight, bias)`: `x·weight + bias`, the weight `[K, N]` for an activation `K` wide.
    fn linear(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
        let x = self.activation(name, &args[0])?;
        let k = self.last_dim(name, &x, &args[0])?;
        let w = self.weight_arg(name, &args[1], 2)?;
        let b = self.weight_arg(name, &args[2], 1)?;
        if w.ty.shape[0] != k {
            return Err(self.err(
                args[1].span,
                format!(
                    "linear: the weight {} has {} rows but the input {} is {k} wide",
                    w.ty, w.ty.shape[0], x.ty
                ),
            ));
        }
        let n = w.ty.shape[1];
        if b.ty.shape[0] != n {
            return Err(self.err(
                args[2].span,
                format!(
                    "linear: the bias {} does not match the weight's {n} columns ({})",
                    b.ty, w.ty
                ),
            ));
        }
        let mut shape = x.ty.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        let ty = TensorType::new(DType::F32, shape);
        Ok(self.op(name, e.span, Op::Linear, &[x.v, w.v, b.v], ty))
    }

    /// `gelu(x[, form])`: the form `tanh` (the default) or `erf`.
    fn gelu(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
        let x = self.activation(name, &args[0])?;
        let form = match args.get(1) {
            None => GeluForm::Tanh,
            Some(a) => {
                let v = match &a.kind {
                    ExprKind::Ident(n) if self.lookup(n).is_none() => Val::Word(n.clone()),
                    _ => self.eval(a, Ctx::Body)?,
                };
                match v {
                    Val::Word(w) if w == "tanh" => GeluForm::Tanh,
                    Val::Word(w) if w == "erf" => GeluForm::Erf,
                    v => {
                        return Err(self.err(
                            a.span,
                            format!(
                                "gelu: the form must be `tanh` or `erf`, found {}",
                                v.describe()
                            ),
                        ))
                    }
                }
            }
        };
        let ty = x.ty.clone();
        Ok(self.op(name, e.span, Op::Gelu { form }, &[x.v], ty))
    }

    /// `attention(qkv, heads[, scale])`: causal self-attention on `f32[1,T,3C]`, the scale
    /// `1/√(C/heads)` when not given.
    fn attention(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
        let x = self.activation(name, &args[0])?;
        let three_c = self.last_dim(name, &x, &args[0])?;
        let rank_ok = x.ty.rank() == 3 && x.ty.shape[0] == Dim::known(1) && x.ty.shape[1].is_seq();
        if !rank_ok {
            return Err(self.err(
                args[0].span,
                format!("attention: the input must be f32[1,T,3C], found {}", x.ty),
            ));
        }
        let w = three_c.as_known().unwrap_or(0);
        if w % 3 != 0 {
            return Err(self.err(
                args[0].span,
                format!(
                    "attention: the input {} packs q, k and v, so its width {w} must be divisible by 3",
                    x.ty
                ),
            ));
        }
        let c = w / 3;
        let heads = self.int(&args[1], Ctx::Body)?;
        if heads < 1 || c % heads != 0 {
            return Err(self.err(
                args[1].span,
                format!(
                    "attention: {heads} heads do not divide the width {c} (the input {} is q, k, v of width {c})",
                    x.ty
                ),
            ));
        }
        let scale = match args.get(2) {
            Some(a) => {
                let v = self.number(a, Ctx::Body)? as f32;
                if !v.is_finite() {
                    return Err(self.err(
                        a.span,
                        format!("attention: the scale must be a finite number, found {v}"),
                    ));
                }
                v
            }
            None => 1.0f32 / ((c / heads) as f32).sqrt(),
        };
        let ty = TensorType::new(DType::F32, vec![Dim::known(1), Dim::SEQ, Dim::known(c)]);
        Ok(self.op(
            name,
            e.span,
            Op::Attention {
                heads: heads as usize,
                scale,
            },
            &[x.v],
            ty,
        ))
    }

    /// `logits(x, token_table)`: `x·token_tableᵀ` for `x` `f32[1,T,C]`.
    fn logits(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
        let x = self.activation(name, &args[0])?;
        let c = self.last_dim(name, &x, &args[0])?;
        let rank_ok = x.ty.rank() == 3 && x.ty.shape[0] == Dim::known(1) && x.ty.shape[1].is_seq();
        if !rank_ok {
            return Err(self.err(
                args[0].span,
                format!("logits: the input must be f32[1,T,C], found {}", x.ty),
            ));
        }
        let w = self.weight_arg(name, &args[1], 2)?;
        if w.ty.shape[1] != c {
            return Err(self.err(
                args[1].span,
                format!(
                    "logits: the token table {} is {} wide but the input {} is {c} wide",
                    w.ty, w.ty.shape[1], x.ty
                ),
            ));
        }
        let ty = TensorType::new(DType::F32, vec![Dim::known(1), Dim::SEQ, w.ty.shape[0]]);
        Ok(self.op(name, e.span, Op::Logits, &[x.v, w.v], ty))
    }

    /// An f32 activation (not a weight).
    fn activation(&mut self, f: &str, a: &Expr) -> Result<TVal> {
        let t = self.tensor(a, Ctx::Body)?;
        if t.weight || t.ty.dtype != DType::F32 {
            return Err(self.err(
                a.span,
                format!(
                    "{f}: expected an f32 activation, found {}",
                    Val::Tensor(t).describe()
                ),
            ));
        }
        Ok(t)
    }

    /// A declared weight of the given rank.
    fn weight_arg(&mut self, f: &str, a: &Expr, rank: usize) -> Result<TVal> {
        let t = self.tensor(a, Ctx::Body)?;
        if !t.weight || t.ty.rank() != rank {
            let what = if rank == 1 { "vector" } else { "matrix" };
            return Err(self.err(
                a.span,
                format!(
                    "{f}: expected a weight {what} (declared with `weight`), found {}",
                    Val::Tensor(t).describe()
                ),
            ));
        }
        Ok(t)
    }

    /// The last dimension of an activation, which must be a known size.
    fn last_dim(&self, f: &str, x: &TVal, a: &Expr) -> Result<Dim> {
        match x.ty.last() {
            Some(d) if d.as_known().is_some() => Ok(d),
            _ => Err(self.err(
                a.span,
                format!(
                    "{f}: the input's last dimension must be a fixed size, found {}",
                    x.ty
                ),
            )),
        }
    }

    // ----- weights

    /// Read or draw every declared weight (in parallel) and put it in its node.
    fn materialize(mut self, seed: u64) -> Result<Graph> {
        let file = self.file;
        let values: Vec<Result<Vec<f32>>> = self
            .pending
            .par_iter()
            .map(|p| match file {
                Some(f) => f.read_f32(&p.name),
                None => Ok(seeded_values(
                    seed,
                    &p.name,
                    p.shape.iter().product(),
                    p.init,
                )),
            })
            .collect();
        for (p, v) in self.pending.iter().zip(values) {
            let t = Tensor::f32_from(&p.shape, v?).ok_or_else(|| CompileError::Weights {
                path: file.map_or("seed", |f| f.path()).to_string(),
                reason: format!(
                    "tensor \"{}\": data does not fill shape {:?}",
                    p.name, p.shape
                ),
            })?;
            self.graph.g[p.node].op = Op::Const(t);
        }
        Ok(self.graph)
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
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
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

    fn src(text: &str) -> Src<'_> {
        Src {
            path: "t.cgpt",
            text,
        }
    }

    #[test]
    fn line_col_counts_characters() {
        let s = src("ab\ncé d\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(3), (2, 1));
        // `é` is two bytes, one column.
        assert_eq!(s.line_col(6), (2, 3));
        assert_eq!(s.line_col(100), (3, 1));
    }

    #[test]
    fn snippet_is_one_line_without_comments() {
        let s = src("f(a, # first\n   b)");
        assert_eq!(s.snippet(Span { start: 0, end: 19 }), "f(a, b)");
        let long = "x".repeat(100);
        let s = src(&long);
        assert_eq!(s.snippet(Span { start: 0, end: 100 }).chars().count(), 60);
    }

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
    fn expected_lists_are_tidied() {
        let raw = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            tidy_expected(raw(&["`+`", "`*`", "` `", "`#`", "`,`", "`)`"])),
            ["an operator", "`,`", "`)`"]
        );
        assert_eq!(
            tidy_expected(raw(&["`a`", "`_`", "`config`", "`=`"])),
            ["a name", "`=`"]
        );
        assert_eq!(
            tidy_expected(raw(&["an expression", "`(`", "`-`", "`x`"])),
            ["an expression"]
        );
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

    #[test]
    fn nesting_and_strings_are_checked_before_parsing() {
        assert!(check_nesting(&src("model m { x = f((1)) }")).is_ok());
        // Brackets inside strings and comments do not count.
        let many = "(".repeat(100);
        assert!(check_nesting(&src(&format!("# {many}\n\"{many}\""))).is_ok());
        let e = check_nesting(&src(&many)).unwrap_err().to_string();
        assert!(
            e.starts_with("t.cgpt:1:65: brackets nested more than 64 deep"),
            "{e}"
        );
        let e = check_nesting(&src("x = \"abc\ny")).unwrap_err().to_string();
        assert_eq!(e, "t.cgpt:1:5: string not closed on its line (at `\"abc`)");
    }

    #[test]
    fn interpolated_names() {
        let text = "model m {\n  config { n = 3 }\n  repeat l in 0..2 { weight w : [n] = \"h.{l}.w{ n }\" }\n  input ids : i64[1, T]\n  weight wte : [4, 2] = \"wte\"\n  weight wpe : [4, 2] = \"wpe\"\n  output o = embedding(ids, wte, wpe)\n}";
        let g = load_str(text, "t.cgpt", &WeightSource::Seed(1), &[]).unwrap();
        let names: Vec<String> = g.g.node_weights().map(|n| n.name.clone()).collect();
        assert!(names.contains(&"h.0.w3".to_string()), "{names:?}");
        assert!(names.contains(&"h.1.w3".to_string()), "{names:?}");
        let bad = text.replace("{ n }", "{m}");
        let e = load_str(&bad, "t.cgpt", &WeightSource::Seed(1), &[])
            .unwrap_err()
            .to_string();
        let col = "  repeat l in 0..2 { weight w : [n] = \"h.{l}.w".len() + 1;
        assert!(
            e.starts_with(&format!("t.cgpt:3:{col}: unknown name `m`")),
            "{e}"
        );
        assert!(e.ends_with("(at `{m}`)"), "{e}");
    }
}
