//! Operation attributes as printed between braces (`{axis=-1 keepdims=true}`), read back into
//! the typed fields of an [`Op`].

use super::cursor::Cursor;
use super::ParseError;
use crate::ir::{Dim, GeluForm, MaskKind, Op};
use crate::tensor::Tensor;

/// One `key=value` (or bare `key`) item, with the columns where key and value start.
struct Item {
    key: String,
    key_col: usize,
    value: Option<(String, usize)>,
}

/// The attributes of one operation. Each is taken once by the constructor of the op; whatever
/// is left over is an error.
pub(super) struct Attrs {
    line: usize,
    /// Column of `{` (or of the op name when there are no braces): where a missing one is reported.
    col: usize,
    items: Vec<Item>,
}

impl Attrs {
    /// Read `{…}` at the cursor if it is there; no braces means no attributes.
    pub fn read(c: &mut Cursor) -> Result<Attrs, ParseError> {
        c.skip_ws();
        let mut attrs = Attrs {
            line: c.line(),
            col: c.col(),
            items: Vec::new(),
        };
        if !c.eat('{') {
            return Ok(attrs);
        }
        loop {
            if c.eat('}') {
                return Ok(attrs);
            }
            let key_col = c.col();
            let key = c.word();
            if key.is_empty() {
                return Err(c.expected("an attribute name or `}`"));
            }
            let value = if c.peek() == Some('=') {
                c.bump();
                let col = c.col();
                let v = raw_value(c);
                if v.is_empty() {
                    return Err(c.expected(&format!("a value for attribute `{key}`")));
                }
                Some((v, col))
            } else {
                None
            };
            if attrs.items.iter().any(|i| i.key == key) {
                return Err(c.error_at(key_col, format!("attribute `{key}` given twice")));
            }
            attrs.items.push(Item {
                key,
                key_col,
                value,
            });
            if !matches!(c.peek(), Some(' ') | Some('}')) {
                return Err(c.expected("a space or `}` after an attribute"));
            }
        }
    }

    fn error(&self, col: usize, message: String) -> ParseError {
        ParseError {
            line: self.line,
            col,
            message,
        }
    }

    /// Take `key`'s value as text with its column.
    fn take(&mut self, key: &str) -> Result<(String, usize), ParseError> {
        let i = self
            .items
            .iter()
            .position(|i| i.key == key)
            .ok_or_else(|| self.error(self.col, format!("expected attribute `{key}=…`")))?;
        let item = self.items.remove(i);
        item.value.ok_or_else(|| {
            self.error(
                item.key_col,
                format!("expected a value: `{key}=…`, found `{key}` alone"),
            )
        })
    }

    /// Take a bare flag (`allowzero`); true if present.
    pub fn flag(&mut self, key: &str) -> Result<bool, ParseError> {
        match self.items.iter().position(|i| i.key == key) {
            None => Ok(false),
            Some(i) => {
                let item = self.items.remove(i);
                match item.value {
                    None => Ok(true),
                    Some((_, col)) => {
                        Err(self.error(col, format!("attribute `{key}` is a flag: no `=` value")))
                    }
                }
            }
        }
    }

    /// Take `key` and read its value with `f`, which sees a cursor over the value alone and
    /// must consume all of it.
    pub fn with<T>(
        &mut self,
        key: &str,
        f: impl FnOnce(&mut Cursor) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        let (text, col) = self.take(key)?;
        let mut c = Cursor::within(self.line, col - 1, &text);
        let v = f(&mut c)?;
        if !c.at_end() {
            return Err(c.expected(&format!("the end of attribute `{key}`")));
        }
        Ok(v)
    }

    /// Take `key` as any type that `str::parse` reads (integers, floats, `true`/`false`).
    pub fn get<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<T, ParseError> {
        self.with(key, |c| {
            let col = c.col();
            let s = c.rest();
            let v = s.parse::<T>().map_err(|_| {
                c.error_at(col, format!("expected {what} for `{key}`, found `{s}`"))
            })?;
            let _ = c.take_while(|_| true);
            Ok(v)
        })
    }

    /// `[1, 2]`, or `input` (the values come from an input slot): `None`.
    pub fn list_or_input(&mut self, key: &str) -> Result<Option<Vec<i64>>, ParseError> {
        self.with(key, |c| {
            if c.peek().is_some_and(|ch| ch.is_ascii_alphabetic()) {
                let col = c.col();
                return match c.word().as_str() {
                    "input" => Ok(None),
                    w => Err(c.error_at(col, format!("expected a list or `input`, found `{w}`"))),
                };
            }
            list::<i64>(c, "an integer").map(Some)
        })
    }

    /// `Some(v)` or `None`.
    pub fn option<T: std::str::FromStr>(
        &mut self,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, ParseError> {
        self.with(key, |c| {
            let col = c.col();
            match c.word().as_str() {
                "None" => Ok(None),
                "Some" => {
                    c.expect('(', "after `Some`")?;
                    let (s, col) = c.number();
                    let v = s
                        .parse::<T>()
                        .map_err(|_| c.error_at(col, format!("expected {what}, found `{s}`")))?;
                    c.expect(')', "to close `Some(…)`")?;
                    Ok(Some(v))
                }
                _ => Err(c.error_at(col, format!("expected `Some({what})` or `None`"))),
            }
        })
    }

    /// Error on the first attribute no constructor took.
    pub fn finish(self, kind: &str) -> Result<(), ParseError> {
        match self.items.first() {
            None => Ok(()),
            Some(i) => Err(self.error(
                i.key_col,
                format!("operation {kind} has no attribute `{}`", i.key),
            )),
        }
    }
}

/// A value's text: up to a space or `}` outside brackets and parentheses.
fn raw_value(c: &mut Cursor) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    while let Some(ch) = c.peek() {
        match ch {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            ' ' | '}' if depth == 0 => break,
            _ => {}
        }
        out.push(ch);
        c.bump();
    }
    out
}

/// `[a, b, …]` of numbers (`inf`, `NaN` included for floats) or `true`/`false`.
pub(super) fn list<T: std::str::FromStr>(c: &mut Cursor, what: &str) -> Result<Vec<T>, ParseError> {
    c.expect('[', "to open a list")?;
    let mut out = Vec::new();
    if c.eat(']') {
        return Ok(out);
    }
    loop {
        let (s, col) = c.number();
        if s.is_empty() {
            return Err(c.expected(&format!("{what} in a list")));
        }
        out.push(
            s.parse::<T>()
                .map_err(|_| c.error_at(col, format!("expected {what}, found `{s}`")))?,
        );
        if c.eat(']') {
            return Ok(out);
        }
        if !c.eat(',') {
            return Err(c.expected("`,` or `]` in a list"));
        }
    }
}

/// A tensor literal `[v, …]` of the element type and shape of `ty` (whose shape must be known).
pub(super) fn tensor(
    c: &mut Cursor,
    ty: &crate::ir::TensorType,
    col: usize,
) -> Result<Tensor, ParseError> {
    use crate::tensor::DType;
    use ndarray::{ArrayD, IxDyn};
    let shape = known_shape(ty).ok_or_else(|| {
        c.error_at(
            col,
            format!("a constant needs a known shape, found {ty}: no `T`, no negative sizes"),
        )
    })?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let lcol = c.col();
    let wrong = |c: &Cursor, got: usize| {
        c.error_at(
            lcol,
            format!("the literal has {got} values but its type {ty} holds {n:?}"),
        )
    };
    let t = match ty.dtype {
        DType::F32 => {
            let v = list::<f32>(c, "an f32 number")?;
            let got = v.len();
            ArrayD::from_shape_vec(IxDyn(&shape), v)
                .map(Tensor::F32)
                .map_err(|_| wrong(c, got))?
        }
        DType::I64 => {
            let v = list::<i64>(c, "an i64 integer")?;
            let got = v.len();
            ArrayD::from_shape_vec(IxDyn(&shape), v)
                .map(Tensor::I64)
                .map_err(|_| wrong(c, got))?
        }
        DType::Bool => {
            let v = list::<bool>(c, "`true` or `false`")?;
            let got = v.len();
            ArrayD::from_shape_vec(IxDyn(&shape), v)
                .map(Tensor::Bool)
                .map_err(|_| wrong(c, got))?
        }
    };
    Ok(t)
}

/// The shape of a type whose dimensions are all known and non-negative.
pub(super) fn known_shape(ty: &crate::ir::TensorType) -> Option<Vec<usize>> {
    ty.shape
        .iter()
        .map(|d| d.as_known().and_then(|v| usize::try_from(v).ok()))
        .collect()
}

/// `value=[1,T,4,8]` (a vector) or `value=T` (a scalar) of a `sym_shape`.
pub(super) fn sym_dims(c: &mut Cursor) -> Result<(Vec<Dim>, bool), ParseError> {
    if c.eat('[') {
        Ok((c.dims(']')?, false))
    } else {
        Ok((vec![c.dim()?], true))
    }
}

pub(super) fn gelu_form(c: &mut Cursor) -> Result<GeluForm, ParseError> {
    let col = c.col();
    match c.word().as_str() {
        "tanh" => Ok(GeluForm::Tanh),
        "erf" => Ok(GeluForm::Erf),
        w => Err(c.error_at(col, format!("expected `tanh` or `erf`, found `{w}`"))),
    }
}

/// A causal mask's encoding: the flag `allowed` or `blocked`, or `additive=v`.
pub(super) fn mask_kind(a: &mut Attrs) -> Result<MaskKind, ParseError> {
    let allowed = a.flag("allowed")?;
    let blocked = a.flag("blocked")?;
    match (allowed, blocked) {
        (true, false) => Ok(MaskKind::Allowed),
        (false, true) => Ok(MaskKind::Blocked),
        (false, false) => Ok(MaskKind::Additive(a.get("additive", "an f32 number")?)),
        (true, true) => Err(a.error(a.col, "a mask is `allowed` or `blocked`, not both".into())),
    }
}

/// `perm=[…]` or `perm=reverse`.
pub(super) fn perm(c: &mut Cursor) -> Result<Option<Vec<usize>>, ParseError> {
    if c.peek().is_some_and(|ch| ch.is_ascii_alphabetic()) {
        let col = c.col();
        return match c.word().as_str() {
            "reverse" => Ok(None),
            w => Err(c.error_at(col, format!("expected a list or `reverse`, found `{w}`"))),
        };
    }
    list::<usize>(c, "an axis").map(Some)
}

/// Rebuild an operation from its printed name, taking its attributes from `a`. `None` for a
/// name that is no operation.
pub(super) fn build(kind: &str, a: &mut Attrs) -> Result<Option<Op>, ParseError> {
    use Op::*;
    let op = match kind {
        "Identity" => Identity,
        "Add" => Add,
        "Sub" => Sub,
        "Mul" => Mul,
        "Div" => Div,
        "Pow" => Pow,
        "Sqrt" => Sqrt,
        "Tanh" => Tanh,
        "Erf" => Erf,
        "Neg" => Neg,
        "Exp" => Exp,
        "Reciprocal" => Reciprocal,
        "Max" => Max,
        "Min" => Min,
        "Equal" => Equal,
        "Less" => Less,
        "LessOrEqual" => LessOrEqual,
        "Greater" => Greater,
        "GreaterOrEqual" => GreaterOrEqual,
        "And" => And,
        "Or" => Or,
        "Not" => Not,
        "IsNaN" => IsNaN,
        "Where" => Where,
        "Cast" => Cast {
            to: a.with("to", |c| c.dtype())?,
        },
        "MatMul" => MatMul,
        "Gemm" => Gemm {
            alpha: a.get("alpha", "an f32 number")?,
            beta: a.get("beta", "an f32 number")?,
            trans_a: a.get("trans_a", "`true` or `false`")?,
            trans_b: a.get("trans_b", "`true` or `false`")?,
        },
        "Transpose" => Transpose {
            perm: a.with("perm", perm)?,
        },
        "Reshape" => Reshape {
            allowzero: a.flag("allowzero")?,
        },
        "Unsqueeze" => Unsqueeze {
            axes: a.list_or_input("axes")?,
        },
        "Squeeze" => Squeeze {
            axes: a.list_or_input("axes")?,
        },
        "Concat" => Concat {
            axis: a.get("axis", "an integer")?,
        },
        "Split" => Split {
            axis: a.get("axis", "an integer")?,
            split: a.list_or_input("split")?,
            outputs: a.get("outputs", "a count")?,
        },
        "Slice" => Slice,
        "Gather" => Gather {
            axis: a.get("axis", "an integer")?,
        },
        "GatherND" => GatherND {
            batch_dims: a.get("batch_dims", "an integer")?,
        },
        "Shape" => Shape {
            start: a.get("start", "an integer")?,
            end: a.option("end", "an integer")?,
        },
        "ConstantOfShape" => ConstantOfShape {
            value: a.with("value", |c| {
                let col = c.col();
                let text = c.take_while(|ch| ch != ':');
                c.expect(':', "between the value and its type")?;
                let ty = c.ty()?.ok_or_else(|| c.expected("a known type"))?;
                let mut lit = Cursor::within(c.line(), col - 1, &text);
                let t = tensor(&mut lit, &ty, col)?;
                if !lit.at_end() {
                    return Err(lit.expected("`:` after the value"));
                }
                Ok(t)
            })?,
        },
        "Expand" => Expand,
        "Range" => Range,
        "CumSum" => CumSum {
            exclusive: a.get("exclusive", "`true` or `false`")?,
            reverse: a.get("reverse", "`true` or `false`")?,
        },
        "Trilu" => Trilu {
            upper: a.get("upper", "`true` or `false`")?,
        },
        "ReduceMean" => ReduceMean {
            axes: a.list_or_input("axes")?,
            keepdims: a.get("keepdims", "`true` or `false`")?,
        },
        "ReduceSum" => ReduceSum {
            axes: a.list_or_input("axes")?,
            keepdims: a.get("keepdims", "`true` or `false`")?,
            noop_with_empty_axes: a.get("noop_with_empty_axes", "`true` or `false`")?,
        },
        "Softmax" => Softmax {
            axis: a.get("axis", "an integer")?,
        },
        "LayerNormalization" => LayerNormalization {
            axis: a.get("axis", "an integer")?,
            epsilon: a.get("epsilon", "an f32 number")?,
        },
        "Attention" => OnnxAttention {
            is_causal: a.get("is_causal", "`true` or `false`")?,
            scale: a.option("scale", "an f32 number")?,
            q_heads: a.option("q_heads", "a count")?,
            kv_heads: a.option("kv_heads", "a count")?,
        },
        "sym_shape" => {
            let (dims, scalar) = a.with("value", sym_dims)?;
            SymShape { dims, scalar }
        }
        "positions" => Positions,
        "causal_mask" => CausalMask {
            kind: mask_kind(a)?,
        },
        "embedding" => Embedding,
        "layer_norm" => LayerNorm {
            eps: a.get("eps", "an f32 number")?,
        },
        "linear" => Linear,
        "gelu" => Gelu {
            form: a.with("form", gelu_form)?,
        },
        "attention" => Attention {
            heads: a.get("heads", "a count")?,
            scale: a.get("scale", "an f32 number")?,
        },
        "residual_add" => ResidualAdd,
        "logits" => Logits,
        _ => return Ok(None),
    };
    Ok(Some(op))
}
