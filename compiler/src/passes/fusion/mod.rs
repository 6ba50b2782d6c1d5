//! Fusion: ONNX-level subgraphs become the high-level ops that lowering consumes.
//!
//! Each rule finds an anchor (a Gemm between two reshapes, a Softmax, the Mul that ends a GELU,
//! the Add that ends a LayerNorm…) and the region of the graph that computes the candidate op.
//! Where exporters differ in how they spell an op (GELU's algebra, LayerNorm's decomposition,
//! the many reshapes and transposes around attention, where the `1/√d` scale is applied), the
//! rule does not match operator sequences: it evaluates the region on test inputs with the
//! float interpreter and fuses only if the region computes exactly the high-level op (to 1e-5
//! relative). A region that matches nothing is left as it is; lowering then names it.
//!
//! Rules, each named by a [`Rule`], applied in this order until none fires: `linear-gemm` (Gemm
//! between reshapes), `linear-matmul-add` (MatMul + Add), `layer-norm` (LayerNormalization),
//! `layer-norm-decomposed` (its decomposition), `gelu` (tanh and erf forms), `attention` (causal
//! multi-head self-attention on a packed qkv projection), `embedding` (token plus position),
//! `residual-add` (the sum of two activations), `logits` (the final vocabulary projection).
//! [`run_traced`] says which rule fired on which node.

mod attention;
mod rule;

pub use rule::{Fired, Rule};

use crate::interp::{float, kernels};
use crate::ir::{Dim, GeluForm, Graph, Op, TensorType, ValueRef};
use crate::tensor::{DType, Tensor};
use attention::attention;
use ndarray::{ArrayD, IxDyn};
use petgraph::stable_graph::NodeIndex;
use std::collections::{HashMap, HashSet};

/// Sequence length used when checking a region numerically.
const CHECK_LEN: usize = 5;
/// Relative tolerance of the numerical checks.
const CHECK_TOL: f32 = 1e-5;

/// Runs every rule until the graph stops changing. Returns the number of rewrites.
pub fn run(graph: &mut Graph) -> usize {
    run_traced(graph).len()
}

/// Runs every rule until the graph stops changing. Returns each rewrite, in order: which rule
/// fired and on which node.
pub fn run_traced(graph: &mut Graph) -> Vec<Fired> {
    run_rules(graph, &Rule::ALL)
}

/// Runs `rules`, in the order given, until none fires (a test can run one rule alone).
pub fn run_rules(graph: &mut Graph, rules: &[Rule]) -> Vec<Fired> {
    let mut trace = Vec::new();
    loop {
        let before = trace.len();
        for &rule in rules {
            for id in rule.apply(graph) {
                trace.push(Fired {
                    rule,
                    node: graph.node(id).name.clone(),
                });
            }
        }
        if trace.len() == before {
            return trace;
        }
    }
}

// ---------------------------------------------------------------- helpers

fn op(graph: &Graph, v: ValueRef) -> &Op {
    &graph.node(v.node).op
}

fn input(graph: &Graph, id: NodeIndex, slot: usize) -> Option<ValueRef> {
    graph.input(id, slot)
}

fn konst(graph: &Graph, v: Option<ValueRef>) -> Option<&Tensor> {
    v.and_then(|v| graph.const_value(v))
}

fn scalar(graph: &Graph, v: Option<ValueRef>) -> Option<f32> {
    konst(graph, v)
        .filter(|t| t.len() == 1)
        .map(|t| t.to_f64_vec()[0] as f32)
}

fn out_ty(graph: &Graph, id: NodeIndex) -> Option<TensorType> {
    graph.node(id).outputs.first().cloned().flatten()
}

/// An activation: f32 `[1, T, C]` with `C` known.
fn activation_width(ty: Option<&TensorType>) -> Option<i64> {
    let ty = ty?;
    (ty.dtype == DType::F32
        && ty.rank() == 3
        && ty.shape[0] == Dim::known(1)
        && ty.shape[1] == Dim::SEQ)
        .then(|| ty.shape[2].as_known())
        .flatten()
}

/// Whether something reads `v`: a node, or the graph's outputs.
fn in_use(graph: &Graph, v: ValueRef) -> bool {
    graph.outputs.iter().any(|(_, o)| *o == v)
        || graph
            .g
            .edges_directed(v.node, petgraph::Direction::Outgoing)
            .any(|e| e.weight().from_output == v.output)
}

/// Replace node `old` by a new node of `op` on `inputs` (taking its type) and rewire `old`'s
/// readers. `None`, and nothing done, when nothing reads `old` any more: a match can start from
/// a node that stays live through another output (a graph output inside an attention, in a
/// damaged file) and reach a region already rewritten; rewriting it again and again never ended
/// (a mutated ONNX file made `compile` spin in fusion).
fn replace(graph: &mut Graph, old: NodeIndex, op: Op, inputs: &[ValueRef]) -> Option<NodeIndex> {
    if !in_use(graph, old.into()) {
        return None;
    }
    let ty = out_ty(graph, old);
    let name = graph.node(old).name.clone();
    let id = graph.add(name, op, inputs);
    graph.g[id].outputs = vec![ty];
    graph.replace_uses(
        ValueRef {
            node: old,
            output: 0,
        },
        id.into(),
    );
    Some(id)
}

/// The two inputs of binary node `id`, ordered so that the first satisfies `first`: `(a, b)` or
/// `(b, a)`. `None` if neither does.
fn operands_where(
    graph: &Graph,
    id: NodeIndex,
    first: impl Fn(ValueRef) -> bool,
) -> Option<(ValueRef, ValueRef)> {
    let (a, b) = (input(graph, id, 0)?, input(graph, id, 1)?);
    if first(a) {
        Some((a, b))
    } else if first(b) {
        Some((b, a))
    } else {
        None
    }
}

fn live_nodes(graph: &Graph) -> Vec<NodeIndex> {
    // Only nodes some output still depends on (rules must not fire twice on dead copies).
    let mut live = HashSet::new();
    let mut stack: Vec<_> = graph.outputs.iter().map(|(_, v)| v.node).collect();
    while let Some(id) = stack.pop() {
        if live.insert(id) {
            stack.extend(graph.inputs(id).into_iter().flatten().map(|v| v.node));
        }
    }
    graph
        .topo_order()
        .into_iter()
        .filter(|n| live.contains(n))
        .collect()
}

/// Deterministic test values in [-r, r].
fn test_values(n: usize, seed: u64, r: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * r
        })
        .collect()
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    if a.shape() != b.shape() {
        return false;
    }
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    x.iter()
        .zip(&y)
        .all(|(p, q)| (p - q).abs() <= CHECK_TOL as f64 * (1.0 + p.abs().max(q.abs())))
}

/// The input ids at the check length, for regions that contain shape-only nodes.
fn boundary_with_ids(graph: &Graph) -> HashMap<ValueRef, Tensor> {
    let mut known = HashMap::new();
    for id in graph.input_nodes() {
        known.insert(
            id.into(),
            Tensor::I64(ArrayD::zeros(IxDyn(&[1, CHECK_LEN]))),
        );
    }
    known
}

/// The region computing `out` from one non-constant leaf through operators in `allowed`.
fn region(graph: &Graph, out: ValueRef, allowed: &dyn Fn(&Op) -> bool) -> Option<ValueRef> {
    let mut leaf = None;
    let mut seen = HashSet::new();
    let mut stack = vec![out];
    let mut size = 0;
    while let Some(v) = stack.pop() {
        if !seen.insert(v) || graph.const_value(v).is_some() {
            continue;
        }
        let o = op(graph, v);
        if v != out && !allowed(o) || v.output != 0 {
            match leaf {
                None => leaf = Some(v),
                Some(l) if l == v => {}
                Some(_) => return None,
            }
            continue;
        }
        if !allowed(o) {
            return None;
        }
        size += 1;
        if size > 32 {
            return None;
        }
        stack.extend(graph.inputs(v.node).into_iter().flatten());
    }
    leaf
}

// ---------------------------------------------------------------- linear

/// `Reshape(Gemm(Reshape(x, [-1, K]), W, b), [1, T, N])` → `linear(x, W, b)`.
fn linear_gemm(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        if !matches!(graph.node(id).op, Op::Reshape { .. }) {
            continue;
        }
        let Some(g) = input(graph, id, 0) else {
            continue;
        };
        let Op::Gemm {
            alpha,
            beta,
            trans_a: false,
            trans_b,
        } = *op(graph, g)
        else {
            continue;
        };
        if alpha != 1.0 || graph.use_count(g) != 1 {
            continue;
        }
        let (Some(r1), Some(w)) = (
            input(graph, g.node, 0),
            konst(graph, input(graph, g.node, 1)),
        ) else {
            continue;
        };
        if !matches!(op(graph, r1), Op::Reshape { .. }) {
            continue;
        }
        let Some(x) = input(graph, r1.node, 0) else {
            continue;
        };
        let (Some(k), Some(nn)) = (
            activation_width(graph.ty(x)),
            activation_width(out_ty(graph, id).as_ref()),
        ) else {
            continue;
        };
        let w = if trans_b {
            kernels::eval(&Op::Transpose { perm: None }, &[Some(w)])
                .ok()
                .map(|mut v| v.remove(0))
        } else {
            Some(w.clone())
        };
        let Some(w) = w.filter(|w| w.shape() == [k as usize, nn as usize]) else {
            continue;
        };
        // A bias must be a constant [N] added once (beta = 1); none is fine too.
        let bias = input(graph, g.node, 2);
        match bias.and_then(|b| graph.const_value(b)) {
            Some(b) if beta == 1.0 && b.shape() == [nn as usize] => {}
            Some(_) => continue,
            None if bias.is_some() => continue,
            None => {}
        }
        let wname = graph
            .node(input(graph, g.node, 1).expect("weight").node)
            .name
            .clone();
        let wid = graph.add_const(wname, w);
        let mut ins = vec![x, wid.into()];
        ins.extend(bias);
        fired.extend(replace(graph, id, Op::Linear, &ins));
    }
    fired
}

/// `Add(MatMul(x, W), b)` with constant `W` `[K, N]` and `b` `[N]` → `linear(x, W, b)`.
fn linear_matmul_add(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        if !matches!(graph.node(id).op, Op::Add) {
            continue;
        }
        let Some((mm, bias)) = operands_where(graph, id, |v| matches!(op(graph, v), Op::MatMul))
        else {
            continue;
        };
        if graph.use_count(mm) != 1 {
            continue;
        }
        let (Some(x), Some(w), Some(bt)) = (
            input(graph, mm.node, 0),
            konst(graph, input(graph, mm.node, 1)),
            graph.const_value(bias),
        ) else {
            continue;
        };
        let Some(k) = activation_width(graph.ty(x)) else {
            continue;
        };
        if w.shape().len() != 2 || w.shape()[0] != k as usize || bt.shape() != [w.shape()[1]] {
            continue;
        }
        let wv = input(graph, mm.node, 1).expect("weight");
        fired.extend(replace(graph, id, Op::Linear, &[x, wv, bias]));
    }
    fired
}

/// The final `MatMul(x, W)` with constant `W` `[C, V]` producing a graph output → `logits(x, Wᵀ)`.
fn logits(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    let outs: Vec<ValueRef> = graph.outputs.iter().map(|(_, v)| *v).collect();
    for v in outs {
        if !matches!(op(graph, v), Op::MatMul) {
            continue;
        }
        let (Some(x), Some(w)) = (
            input(graph, v.node, 0),
            konst(graph, input(graph, v.node, 1)),
        ) else {
            continue;
        };
        let Some(c) = activation_width(graph.ty(x)) else {
            continue;
        };
        if w.shape().len() != 2 || w.shape()[0] != c as usize {
            continue;
        }
        let Ok(mut wt) = kernels::eval(&Op::Transpose { perm: None }, &[Some(w)]) else {
            continue;
        };
        let name = graph
            .node(input(graph, v.node, 1).expect("weight").node)
            .name
            .clone();
        let wid = graph.add_const(name, wt.remove(0));
        fired.extend(replace(graph, v.node, Op::Logits, &[x, wid.into()]));
    }
    fired
}

// ---------------------------------------------------------------- layer norm

/// `LayerNormalization` over the last axis with constant scale and bias → `layer_norm`.
fn layer_norm(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        let Op::LayerNormalization { axis, epsilon } = graph.node(id).op else {
            continue;
        };
        let Some(x) = input(graph, id, 0) else {
            continue;
        };
        let Some(c) = activation_width(graph.ty(x)) else {
            continue;
        };
        if axis != -1 && axis != 2 {
            continue;
        }
        let Some(g) = input(graph, id, 1)
            .filter(|g| konst(graph, Some(*g)).is_some_and(|t| t.shape() == [c as usize]))
        else {
            continue;
        };
        let b = match input(graph, id, 2) {
            Some(b) if konst(graph, Some(b)).is_some_and(|t| t.shape() == [c as usize]) => b,
            Some(_) => continue,
            None => graph
                .add_const(
                    format!("{} (zero bias)", graph.node(id).name),
                    Tensor::F32(ArrayD::zeros(IxDyn(&[c as usize]))),
                )
                .into(),
        };
        fired.extend(replace(
            graph,
            id,
            Op::LayerNorm { eps: epsilon },
            &[x, g, b],
        ));
    }
    fired
}

/// A LayerNorm spelled out (ReduceMean, Sub, Pow, Add ε, Sqrt, Div, then Mul γ and Add β),
/// recognised by evaluating the normalisation region against the definition.
fn layer_norm_decomposed(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        if !matches!(graph.node(id).op, Op::Add) {
            continue;
        }
        let Some((mul, beta)) = operands_where(graph, id, |v| matches!(op(graph, v), Op::Mul))
        else {
            continue;
        };
        if graph.const_value(beta).is_none() {
            continue;
        }
        let Some((gamma, y)) = operands_where(graph, mul.node, |v| graph.const_value(v).is_some())
        else {
            continue;
        };
        let allowed = |o: &Op| {
            matches!(
                o,
                Op::ReduceMean { .. }
                    | Op::Sub
                    | Op::Pow
                    | Op::Add
                    | Op::Sqrt
                    | Op::Div
                    | Op::Mul
                    | Op::Reciprocal
            )
        };
        let Some(x) = region(graph, y, &allowed) else {
            continue;
        };
        let Some(c) = activation_width(graph.ty(x)) else {
            continue;
        };
        let cu = c as usize;
        let (Some(gt), Some(bt)) = (graph.const_value(gamma), graph.const_value(beta)) else {
            continue;
        };
        if gt.shape() != [cu] || bt.shape() != [cu] || !matches!(op(graph, y), Op::Div | Op::Mul) {
            continue;
        }
        // ε is the scalar added inside the region; check the whole normalisation numerically.
        let Some(eps) = region_scalars(graph, y, x)
            .into_iter()
            .find(|&e| e > 0.0 && e < 1e-2)
        else {
            continue;
        };
        let xs = Tensor::f32_from(&[1, CHECK_LEN, cu], test_values(CHECK_LEN * cu, 7, 3.0))
            .expect("shape");
        let mut known = boundary_with_ids(graph);
        known.insert(x, xs.clone());
        let Ok(got) = float::eval_value(graph, y, &mut known) else {
            continue;
        };
        let ones = Tensor::F32(ArrayD::ones(IxDyn(&[cu])));
        let zeros = Tensor::F32(ArrayD::zeros(IxDyn(&[cu])));
        let Ok(want) = kernels::eval(
            &Op::LayerNorm { eps },
            &[Some(&xs), Some(&ones), Some(&zeros)],
        ) else {
            continue;
        };
        if !close(&got, &want[0]) {
            continue;
        }
        fired.extend(replace(graph, id, Op::LayerNorm { eps }, &[x, gamma, beta]));
    }
    fired
}

/// The scalar constants read by the region between `leaf` and `out`.
fn region_scalars(graph: &Graph, out: ValueRef, leaf: ValueRef) -> Vec<f32> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![out];
    while let Some(v) = stack.pop() {
        if v == leaf || !seen.insert(v) {
            continue;
        }
        if let Some(s) = scalar(graph, Some(v)) {
            found.push(s);
            continue;
        }
        if graph.const_value(v).is_none() {
            stack.extend(graph.inputs(v.node).into_iter().flatten());
        }
    }
    found
}

// ---------------------------------------------------------------- GELU

/// An elementwise region of one input that equals GELU (tanh or erf form) → `gelu`.
fn gelu(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        if !matches!(graph.node(id).op, Op::Mul) {
            continue;
        }
        let out = ValueRef {
            node: id,
            output: 0,
        };
        let allowed = |o: &Op| {
            matches!(
                o,
                Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Tanh | Op::Erf | Op::Sqrt
            )
        };
        let Some(x) = region(graph, out, &allowed) else {
            continue;
        };
        let Some(ty) = graph.ty(x).cloned() else {
            continue;
        };
        if ty.dtype != DType::F32 || graph.ty(out) != Some(&ty) {
            continue;
        }
        // Probe with a 1-D ramp across GELU's curved range.
        let probe: Vec<f32> = (0..161).map(|i| -8.0 + i as f32 * 0.1).collect();
        let xs = Tensor::f32_from(&[probe.len()], probe.clone()).expect("shape");
        let mut known = boundary_with_ids(graph);
        known.insert(x, xs);
        let Ok(got) = float::eval_value(graph, out, &mut known) else {
            continue;
        };
        let form = [GeluForm::Tanh, GeluForm::Erf].into_iter().find(|&f| {
            let want: Vec<f32> = probe.iter().map(|&v| kernels::gelu(v, f)).collect();
            close(
                &got,
                &Tensor::f32_from(&[probe.len()], want).expect("shape"),
            )
        });
        if let Some(form) = form {
            fired.extend(replace(graph, id, Op::Gelu { form }, &[x]));
        }
    }
    fired
}

// ---------------------------------------------------------------- embedding, residual

/// `Add(Gather(wte, ids), Gather(wpe, positions))` → `embedding(ids, wte, wpe)`.
fn embedding(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        if !matches!(graph.node(id).op, Op::Add) {
            continue;
        }
        let (Some(a), Some(b)) = (input(graph, id, 0), input(graph, id, 1)) else {
            continue;
        };
        let gather = |v: ValueRef| -> Option<(ValueRef, ValueRef)> {
            if !matches!(op(graph, v), Op::Gather { axis: 0 }) {
                return None;
            }
            let table = input(graph, v.node, 0)?;
            let idx = input(graph, v.node, 1)?;
            konst(graph, Some(table)).filter(|t| t.shape().len() == 2)?;
            Some((table, idx))
        };
        let (Some((ta, ia)), Some((tb, ib))) = (gather(a), gather(b)) else {
            continue;
        };
        let is_ids = |v: ValueRef| matches!(op(graph, v), Op::Input { .. });
        let is_pos = |v: ValueRef| matches!(op(graph, v), Op::Positions);
        let (wte, wpe, ids) = if is_ids(ia) && is_pos(ib) {
            (ta, tb, ia)
        } else if is_ids(ib) && is_pos(ia) {
            (tb, ta, ib)
        } else {
            continue;
        };
        fired.extend(replace(graph, id, Op::Embedding, &[ids, wte, wpe]));
    }
    fired
}

/// `Add(a, b)` of two activations of the same type → `residual_add(a, b)`.
fn residual_add(graph: &mut Graph) -> Vec<NodeIndex> {
    let mut fired = Vec::new();
    for id in live_nodes(graph) {
        if !matches!(graph.node(id).op, Op::Add) {
            continue;
        }
        let (Some(a), Some(b)) = (input(graph, id, 0), input(graph, id, 1)) else {
            continue;
        };
        let fused = |v: ValueRef| op(graph, v).is_high_level() && graph.const_value(v).is_none();
        if activation_width(graph.ty(a)).is_none()
            || graph.ty(a) != graph.ty(b)
            || !fused(a)
            || !fused(b)
        {
            continue;
        }
        fired.extend(replace(graph, id, Op::ResidualAdd, &[a, b]));
    }
    fired
}
