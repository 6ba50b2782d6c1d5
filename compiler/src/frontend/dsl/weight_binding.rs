//! Weight declarations: the weight node, the check of a safetensors tensor against the declared
//! shape (with a `--set` hint when they differ), `init`, and reading or drawing the values.

use super::ast::{uses, BinOp, Expr, ExprKind, Name, TypeAst};
use super::builder::{Builder, Ctx, Kind, PendingWeight, TVal, Val};
use super::source::Span;
use super::MAX_WEIGHT_ELEMENTS;
use crate::error::{CompileError, Result};
use crate::frontend::weights::{seeded_values, Init, WeightFile};
use crate::ir::{Graph, Op, TensorType};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

impl Builder<'_> {
    pub(super) fn weight(
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

    pub(super) fn init(&self, e: &Expr) -> Result<Init> {
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

    /// Read or draw every declared weight (in parallel) and put it in its node.
    pub(super) fn materialize(mut self, seed: u64) -> Result<Graph> {
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
