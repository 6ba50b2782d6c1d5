//! Parsing: pest parses the text with the grammar in `dsl.pest`, then [`Ast`] turns the parse
//! tree into [`Model`], statements and expressions that carry byte spans.

use super::source::{Span, Src};
use super::syntax_error::syntax_error;
use super::MAX_EXPR_DEPTH;
use crate::error::{CompileError, Result};
use crate::tensor::DType;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "frontend/dsl.pest"]
struct DslParser;

type Pair<'i> = pest::iterators::Pair<'i, Rule>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum ExprKind {
    Int(i64),
    Float(f64),
    Ident(String),
    Call { name: String, args: Vec<Expr> },
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
}

#[derive(Clone, Debug)]
pub(super) struct Expr {
    pub(super) kind: ExprKind,
    pub(super) span: Span,
    pub(super) depth: usize,
}

#[derive(Debug)]
pub(super) struct TypeAst {
    pub(super) dtype: Option<(DType, Span)>,
    pub(super) dims: Vec<Expr>,
}

#[derive(Debug)]
pub(super) struct Name {
    pub(super) text: String,
    pub(super) span: Span,
}

#[derive(Debug)]
pub(super) enum Stmt {
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
pub(super) struct ConfigEntry {
    pub(super) name: Name,
    pub(super) expr: Expr,
}

#[derive(Debug)]
pub(super) struct Model {
    pub(super) name_span: Span,
    pub(super) config: Vec<ConfigEntry>,
    pub(super) body: Vec<Stmt>,
}

pub(super) fn parse(src: &Src) -> Result<Model> {
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

/// Whether `e` names `name`.
pub(super) fn uses(e: &Expr, name: &str) -> bool {
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Float(_) => false,
        ExprKind::Ident(n) => n == name,
        ExprKind::Neg(x) => uses(x, name),
        ExprKind::Bin(_, a, b) => uses(a, name) || uses(b, name),
        ExprKind::Call { args, .. } => args.iter().any(|a| uses(a, name)),
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
