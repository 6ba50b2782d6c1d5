//! Expressions: scalars and their arithmetic, dimensions, names in weight strings, and tensor
//! values (a call of a built-in adds nodes).

use super::ast::{BinOp, Expr, ExprKind};
use super::builder::{closest, Builder, Ctx, TVal, Val};
use super::source::{shorten, Span};
use crate::error::Result;
use crate::ir::Dim;

impl Builder<'_> {
    /// `"transformer.h.{l}.ln_1.weight"` with `{name}` replaced by integer values.
    pub(super) fn interpolate(&self, raw: &str, span: Span) -> Result<String> {
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

    /// A dimension of a declared type: an integer, or `T` (the sequence length) when `seq`.
    pub(super) fn dim(&self, e: &Expr, seq: bool) -> Result<Dim> {
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

    pub(super) fn int(&self, e: &Expr, ctx: Ctx) -> Result<i64> {
        match self.eval_scalar(e, ctx)? {
            Val::Int(i) => Ok(i),
            v => Err(self.err(
                e.span,
                format!("expected an integer, found {}", v.describe()),
            )),
        }
    }

    pub(super) fn number(&self, e: &Expr, ctx: Ctx) -> Result<f64> {
        match self.eval_scalar(e, ctx)? {
            Val::Int(i) => Ok(i as f64),
            Val::Float(f) => Ok(f),
            v => Err(self.err(e.span, format!("expected a number, found {}", v.describe()))),
        }
    }

    /// Evaluate where no graph node may be made (calls are rejected before any is).
    pub(super) fn eval_scalar(&self, e: &Expr, ctx: Ctx) -> Result<Val> {
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

    pub(super) fn tensor(&mut self, e: &Expr, ctx: Ctx) -> Result<TVal> {
        match self.eval(e, ctx)? {
            Val::Tensor(t) => Ok(t),
            v => Err(self.err(e.span, format!("expected a tensor, found {}", v.describe()))),
        }
    }

    pub(super) fn eval(&mut self, e: &Expr, ctx: Ctx) -> Result<Val> {
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
}

#[cfg(test)]
mod tests {
    use crate::frontend::dsl::{load_str, WeightSource};

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
