//! Attention fusion: causal multi-head self-attention on a packed qkv projection → `attention`.
//!
//! Two anchors, one check. The decomposed form (eager attention, and sdpa below opset 23) is
//! found from its Softmax: masked scores `MatMul(q, kᵀ)` before it, `MatMul(p, v)` after it,
//! possibly through a NaN guard `Where(IsNaN(p), c, p)` (the exporter's guard against rows with
//! nothing to attend; the causal mask, folded and public, always leaves the diagonal, so the
//! guard never fires). The standard ONNX `Attention` operator (opset 23) is found as itself,
//! with its mask input a folded causal mask or none. Either way q, k and v must trace back,
//! through reshapes, transposes and scalar scalings, to the three parts of one Split of a
//! `[1, T, 3C]` projection, and the region between that Split and the output must compute the
//! high-level `attention` exactly (checked on test values at length [`CHECK_LEN`]) before it is
//! replaced. The causal mask is thereby checked equal to the one the plan uses.

use super::{
    activation_width, boundary_with_ids, close, input, live_nodes, op, replace, scalar,
    test_values, CHECK_LEN,
};
use crate::interp::{float, kernels};
use crate::ir::{Dim, Graph, MaskKind, Op, TensorType, ValueRef};
use crate::tensor::{DType, Tensor};
use petgraph::stable_graph::NodeIndex;

const LAYOUT_STEPS: usize = 12;

/// What a matched region computes, before the numerical check.
struct Candidate {
    /// The q, k and v values as the region reads them, each traced up to an activation.
    q: (ValueRef, f64),
    k: (ValueRef, f64),
    v: (ValueRef, f64),
    /// Scale applied to the scores (besides the scalings found on q, k).
    scale: f64,
    heads: usize,
    /// The region's output: `[1, T, C]`, or `[T, C]` when the exporter merged the rows.
    out: ValueRef,
}

/// Runs the rule once over the graph. Returns the fused nodes.
pub(super) fn attention(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        let candidate = match graph.node(id).op {
            Op::Softmax { axis: -1 } | Op::Softmax { axis: 3 } => decomposed(graph, id),
            Op::OnnxAttention { .. } => standard(graph, id),
            _ => None,
        };
        let Some((out, qkv, heads, scale)) = candidate.and_then(|c| check(graph, c)) else {
            continue;
        };
        let fused = Op::Attention { heads, scale };
        fired.extend(if activation_width(graph.ty(out)).is_some() {
            replace(graph, out.node, fused, &[qkv])
        } else {
            rows_replace(graph, out, fused, qkv)
        });
    }
    fired
}

/// Replace `out`, a `[T, C]` value, by `Reshape(attention(qkv), [-1, C])`. Returns the
/// attention node; `None`, and nothing done, when nothing reads `out` any more (see
/// [`super::replace`]).
fn rows_replace(graph: &mut Graph, out: ValueRef, fused: Op, qkv: ValueRef) -> Option<NodeIndex> {
    if !super::in_use(graph, out) {
        return None;
    }
    let ty = graph.ty(out).cloned().expect("typed by the match");
    let name = graph.node(out.node).name.clone();
    let wide = TensorType::new(DType::F32, vec![Dim::known(1), Dim::SEQ, ty.shape[1]]);
    let a = graph.add(name.clone(), fused, &[qkv]);
    graph.g[a].outputs = vec![Some(wide)];
    let width = ty.shape[1].as_known().expect("known width");
    let shape = graph.add_const(format!("{name} (rows)"), Tensor::vec_i64(vec![-1, width]));
    let r = graph.add(
        format!("{name} (rows)"),
        Op::Reshape { allowzero: false },
        &[a.into(), shape.into()],
    );
    graph.g[r].outputs = vec![Some(ty)];
    graph.replace_uses(out, r.into());
    Some(a)
}

/// `[T, C]` with `C` known: the rows of an activation.
fn rows_width(ty: Option<&TensorType>) -> Option<i64> {
    let ty = ty?;
    (ty.dtype == DType::F32 && ty.rank() == 2 && ty.shape[0] == Dim::SEQ)
        .then(|| ty.shape[1].as_known())
        .flatten()
}

/// Walk up from `v` through layout ops and scalar scalings to an activation `[1, T, C]`.
/// Returns it and the product of the scalings.
fn layout_up(graph: &Graph, mut v: ValueRef) -> Option<(ValueRef, f64)> {
    let mut scale = 1.0f64;
    for _ in 0..LAYOUT_STEPS {
        if activation_width(graph.ty(v)).is_some() {
            return Some((v, scale));
        }
        let id = v.node;
        match op(graph, v) {
            Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Identity
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. } => {
                v = input(graph, id, 0)?;
            }
            Op::Mul | Op::Div => {
                let (a, b) = (input(graph, id, 0)?, input(graph, id, 1)?);
                if let Some(s) = scalar(graph, Some(b)) {
                    scale *= if matches!(op(graph, v), Op::Mul) {
                        s as f64
                    } else {
                        1.0 / s as f64
                    };
                    v = a;
                } else if let (Op::Mul, Some(s)) = (op(graph, v), scalar(graph, Some(a))) {
                    scale *= s as f64;
                    v = b;
                } else {
                    return None;
                }
            }
            _ => return None,
        }
    }
    None
}

/// Walk down from `v` through single-reader layout ops to an activation `[1, T, C]` or its
/// rows `[T, C]`.
fn layout_down(graph: &Graph, mut v: ValueRef) -> Option<ValueRef> {
    for _ in 0..LAYOUT_STEPS {
        if activation_width(graph.ty(v)).is_some() || rows_width(graph.ty(v)).is_some() {
            return Some(v);
        }
        let users = graph.users(v);
        let [(u, 0)] = users.as_slice() else {
            return None;
        };
        if !matches!(
            graph.node(*u).op,
            Op::Reshape { .. } | Op::Transpose { .. } | Op::Identity
        ) {
            return None;
        }
        v = ValueRef {
            node: *u,
            output: 0,
        };
    }
    None
}

/// `p`, or `Where(IsNaN(p), c, p)` when that guard is `p`'s only use (with its IsNaN).
fn skip_nan_guard(graph: &Graph, p: ValueRef) -> ValueRef {
    let users = graph.users(p);
    if users.len() != 2 {
        return p;
    }
    let guard = users.iter().find_map(|&(u, slot)| {
        let w = ValueRef { node: u, output: 0 };
        let cond = input(graph, u, 0)?;
        let is_guard = matches!(graph.node(u).op, Op::Where)
            && slot == 2
            && matches!(op(graph, cond), Op::IsNaN)
            && input(graph, cond.node, 0) == Some(p)
            && graph.const_value(input(graph, u, 1)?).is_some();
        is_guard.then_some(w)
    });
    guard.unwrap_or(p)
}

/// The decomposed form around `softmax`.
fn decomposed(graph: &Graph, softmax: NodeIndex) -> Option<Candidate> {
    // Masked scores: Add(scores, additive mask) or Where(mask, scores, fill).
    let m = input(graph, softmax, 0)?;
    let scores = match op(graph, m) {
        Op::Add => {
            let (a, b) = (input(graph, m.node, 0)?, input(graph, m.node, 1)?);
            let is_mask = |v: ValueRef| {
                matches!(
                    op(graph, v),
                    Op::CausalMask {
                        kind: MaskKind::Additive(_)
                    }
                )
            };
            if is_mask(b) {
                a
            } else if is_mask(a) {
                b
            } else {
                return None;
            }
        }
        Op::Where => {
            let c = input(graph, m.node, 0)?;
            match op(graph, c) {
                Op::CausalMask {
                    kind: MaskKind::Allowed,
                } => input(graph, m.node, 1)?,
                Op::CausalMask {
                    kind: MaskKind::Blocked,
                } => input(graph, m.node, 2)?,
                _ => return None,
            }
        }
        _ => return None,
    };
    // Scores: MatMul(q-side, k-side), possibly scaled after the product.
    let (mut mm, mut post) = (scores, 1.0f64);
    if let Op::Mul | Op::Div = op(graph, mm) {
        let s = scalar(graph, input(graph, mm.node, 1))?;
        post = if matches!(op(graph, mm), Op::Mul) {
            s as f64
        } else {
            1.0 / s as f64
        };
        mm = input(graph, mm.node, 0)?;
    }
    if !matches!(op(graph, mm), Op::MatMul) {
        return None;
    }
    let heads = graph.ty(mm)?.shape.get(1)?.as_known()? as usize;
    let p = skip_nan_guard(
        graph,
        ValueRef {
            node: softmax,
            output: 0,
        },
    );
    let users = graph.users(p);
    let [(pv, 0)] = users.as_slice() else {
        return None;
    };
    if !matches!(graph.node(*pv).op, Op::MatMul) {
        return None;
    }
    Some(Candidate {
        q: layout_up(graph, input(graph, mm.node, 0)?)?,
        k: layout_up(graph, input(graph, mm.node, 1)?)?,
        v: layout_up(graph, input(graph, *pv, 1)?)?,
        scale: post,
        heads,
        out: layout_down(
            graph,
            ValueRef {
                node: *pv,
                output: 0,
            },
        )?,
    })
}

/// The standard ONNX `Attention` node `id`, its mask a folded causal mask or absent.
fn standard(graph: &Graph, id: NodeIndex) -> Option<Candidate> {
    let Op::OnnxAttention { scale, q_heads, .. } = graph.node(id).op else {
        return None;
    };
    if let Some(mask) = input(graph, id, 3) {
        if !matches!(op(graph, mask), Op::CausalMask { .. }) {
            return None;
        }
    }
    let q = input(graph, id, 0)?;
    let qt = graph.ty(q)?;
    let (heads, d) = match qt.rank() {
        4 => (qt.shape[1].as_known()?, qt.shape[3].as_known()?),
        3 => {
            let h = q_heads? as i64;
            (h, qt.shape[2].as_known()? / h)
        }
        _ => return None,
    };
    let scale = scale.map_or(1.0 / (d as f64).sqrt(), f64::from);
    Some(Candidate {
        q: layout_up(graph, q)?,
        k: layout_up(graph, input(graph, id, 1)?)?,
        v: layout_up(graph, input(graph, id, 2)?)?,
        scale,
        heads: usize::try_from(heads).ok()?,
        out: layout_down(graph, id.into())?,
    })
}

/// Require q, k, v to be the three parts of one packed projection and the region to compute
/// `attention` on it. Returns (output, qkv, heads, scale).
fn check(graph: &Graph, c: Candidate) -> Option<(ValueRef, ValueRef, usize, f32)> {
    let ((q, sq), (k, sk), (v, sv)) = (c.q, c.k, c.v);
    let split = q.node;
    let Op::Split {
        axis, outputs: 3, ..
    } = graph.node(split).op
    else {
        return None;
    };
    if (q.output, k.node, k.output, v.node, v.output) != (0, split, 1, split, 2) || sv != 1.0 {
        return None;
    }
    let qkv = input(graph, split, 0)?;
    let c3 = activation_width(graph.ty(qkv))?;
    let width = activation_width(graph.ty(q))?;
    let heads = c.heads;
    if !(axis == -1 || axis == 2)
        || c3 != 3 * width
        || heads == 0
        || !(width as usize).is_multiple_of(heads)
    {
        return None;
    }
    let d = width as usize / heads;
    let scale = (sq * sk * c.scale) as f32;
    let standard = 1.0f32 / (d as f32).sqrt();
    let scale = if ((scale - standard) / standard).abs() < 1e-5 {
        standard
    } else {
        scale
    };
    // Check numerically: the region on random q, k, v against the definition.
    let cu = width as usize;
    let qkv_val = Tensor::f32_from(
        &[1, CHECK_LEN, 3 * cu],
        test_values(CHECK_LEN * 3 * cu, 11, 2.0),
    )?;
    let parts = kernels::eval(
        &Op::Split {
            axis: 2,
            split: None,
            outputs: 3,
        },
        &[Some(&qkv_val)],
    )
    .ok()?;
    let mut known = boundary_with_ids(graph);
    for (o, t) in parts.into_iter().enumerate() {
        known.insert(
            ValueRef {
                node: split,
                output: o,
            },
            t,
        );
    }
    let got = float::eval_value(graph, c.out, &mut known).ok()?;
    let want = kernels::eval(&Op::Attention { heads, scale }, &[Some(&qkv_val)])
        .ok()?
        .remove(0);
    let want = if got.shape().len() == 2 {
        Tensor::f32_from(&[CHECK_LEN, cu], want.as_f32()?.iter().copied().collect())?
    } else {
        want
    };
    close(&got, &want).then_some((c.out, qkv, heads, scale))
}
