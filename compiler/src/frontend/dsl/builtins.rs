//! The built-in functions (`embedding`, `layer_norm`, `linear`, `gelu`, `attention`, `logits`)
//! and `+` of two tensors: argument checks, shape checks and the fused op nodes they add.

use super::ast::{Expr, ExprKind};
use super::builder::{closest, Builder, Ctx, TVal, Val};
use super::source::Span;
use super::DEFAULT_EPS;
use crate::error::Result;
use crate::ir::{Dim, GeluForm, Op, TensorType, ValueRef};
use crate::tensor::DType;

const BUILTINS: [&str; 6] = [
    "embedding",
    "layer_norm",
    "linear",
    "gelu",
    "attention",
    "logits",
];

impl Builder<'_> {
    /// A name for an op node: the function and where it was written, and the loop iteration.
    fn node_name(&self, what: &str, span: Span) -> String {
        let mut s = format!("{what}@{}", self.location(span));
        for (n, v) in &self.loop_vars {
            s.push_str(&format!("[{n}={v}]"));
        }
        s
    }

    pub(super) fn op(
        &mut self,
        what: &str,
        span: Span,
        op: Op,
        inputs: &[ValueRef],
        ty: TensorType,
    ) -> Val {
        let name = self.node_name(what, span);
        let id = self.graph.add(name, op, inputs);
        self.graph.g[id].outputs = vec![Some(ty.clone())];
        Val::Tensor(TVal {
            v: id.into(),
            ty,
            weight: false,
        })
    }

    pub(super) fn residual(
        &mut self,
        x: TVal,
        y: TVal,
        a: &Expr,
        b: &Expr,
        e: &Expr,
    ) -> Result<Val> {
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
    pub(super) fn call(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
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
    pub(super) fn embedding(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
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
    pub(super) fn layer_norm(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
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
    pub(super) fn gelu(&mut self, name: &str, args: &[Expr], e: &Expr) -> Result<Val> {
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
    pub(super) fn activation(&mut self, f: &str, a: &Expr) -> Result<TVal> {
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
}
