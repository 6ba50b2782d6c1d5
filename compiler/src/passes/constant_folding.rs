//! Constant folding: the shape-arithmetic and mask subgraphs disappear.
//!
//! Three kinds of work, in one pass:
//! 1. A node whose value does not depend on the input at all is evaluated once and becomes a
//!    constant (scales such as `1/√d`, transposed weight copies).
//! 2. A node whose value depends on the input's *length* only (shape arithmetic, position ids,
//!    the causal mask) is recognised from what the probes saw at several lengths, and the
//!    outermost node of each such chain is replaced by one canonical op: a constant, a
//!    `sym_shape` (an i64 vector affine in `T`), `positions` (`[0..T)`, `[1, T]`), or a
//!    `causal_mask` (`[1, 1, T, T]`, boolean or additive). Whatever operators an exporter used
//!    to build these (Range, CumSum, Trilu, Less, Where, Expand, Slice…), the result is the same.
//! 3. Operations that do nothing are bypassed: Identity, a Cast to the same type, a Reshape or
//!    Expand whose output type equals its input type.
//!
//! Dead nodes left behind are removed by `dead_nodes`.

use super::probe::{self, Dep, LENGTHS};
use crate::error::{CompileError, Result};
use crate::interp::kernels;
use crate::ir::{Dim, Graph, MaskKind, Op, ValueRef};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Values of an additive mask at or below this count as "masked".
const MASKED_BELOW: f32 = -1.0e4;

pub fn run(graph: &mut Graph) -> Result<()> {
    fold_constants(graph)?;
    fold_shape_only(graph)?;
    bypass_no_ops(graph);
    Ok(())
}

fn fold_constants(graph: &mut Graph) -> Result<()> {
    let dep = probe::dependence(graph);
    for id in graph.topo_order() {
        let node = graph.node(id);
        if dep[&id] != Dep::Constant
            || matches!(node.op, Op::Const(_))
            || node.op.num_outputs() != 1
        {
            continue;
        }
        let ins = graph.inputs(id);
        if ins
            .iter()
            .flatten()
            .any(|v| graph.const_value(*v).is_none())
        {
            continue;
        }
        let args: Vec<Option<Tensor>> = ins
            .iter()
            .map(|v| v.and_then(|v| graph.const_value(v).cloned()))
            .collect();
        let refs: Vec<Option<&Tensor>> = args.iter().map(Option::as_ref).collect();
        let out = kernels::eval(&node.op, &refs).map_err(|reason| CompileError::Eval {
            source_file: graph.source.clone(),
            node: graph.describe(id),
            reason,
        })?;
        let value = out.into_iter().next().expect("one output");
        let name = node.name.clone();
        let c = graph.add_const(name, value);
        graph.replace_uses(
            ValueRef {
                node: id,
                output: 0,
            },
            c.into(),
        );
    }
    Ok(())
}

/// A canonical op for a shape-only value.
enum Template {
    Const(Tensor),
    SymShape(Vec<Dim>, bool),
    Positions,
    Mask(MaskKind),
}

fn fold_shape_only(graph: &mut Graph) -> Result<()> {
    let dep = probe::dependence(graph);
    if !dep.values().any(|d| *d == Dep::ShapeOnly) {
        return Ok(());
    }
    let seen = probe::run(graph, &dep)?;
    let input = graph.input_nodes()[0];
    let mut templates: HashMap<ValueRef, Template> = HashMap::new();
    for (v, samples) in &seen.samples {
        if matches!(
            graph.node(v.node).op,
            Op::SymShape { .. } | Op::Positions | Op::CausalMask { .. } | Op::Input { .. }
        ) {
            continue;
        }
        if let Some(t) = classify(samples) {
            templates.insert(*v, t);
        }
    }
    // Replace the outermost recognised value of each chain: one with a reader that is not
    // itself recognised (or that is a graph output).
    let mut order: Vec<ValueRef> = templates.keys().copied().collect();
    order.sort();
    for v in order {
        let readers = graph.users(v);
        let outer = readers.iter().any(|(u, _)| {
            (0..graph.node(*u).outputs.len()).all(|o| {
                !templates.contains_key(&ValueRef {
                    node: *u,
                    output: o,
                })
            })
        }) || graph.outputs.iter().any(|(_, o)| *o == v);
        if !outer {
            continue;
        }
        let name = format!("{} (folded)", graph.node(v.node).name);
        let ty = graph.ty(v).cloned();
        let new = match templates.remove(&v).expect("template present") {
            Template::Const(t) => graph.add_const(name, t),
            Template::SymShape(dims, scalar) => {
                graph.add(name, Op::SymShape { dims, scalar }, &[input.into()])
            }
            Template::Positions => graph.add(name, Op::Positions, &[input.into()]),
            Template::Mask(kind) => graph.add(name, Op::CausalMask { kind }, &[input.into()]),
        };
        if graph.node(new).outputs[0].is_none() {
            graph.g[new].outputs[0] = ty;
        }
        graph.replace_uses(v, new.into());
    }
    Ok(())
}

fn classify(samples: &[Tensor]) -> Option<Template> {
    if samples.len() != LENGTHS.len() {
        return None;
    }
    if samples.iter().all(|s| s == &samples[0]) {
        return Some(Template::Const(samples[0].clone()));
    }
    let rank = samples[0].shape().len();
    // Shape arithmetic: i64 vectors of fixed length, each entry affine in T.
    if rank <= 1
        && samples
            .iter()
            .all(|s| s.as_i64().is_some() && s.shape() == samples[0].shape())
    {
        let n = samples[0].len();
        let cols: Vec<Vec<i64>> = samples.iter().map(|s| s.to_i64_vec()).collect();
        let dims: Option<Vec<Dim>> = (0..n)
            .map(|i| probe::fit(&cols.iter().map(|c| c[i]).collect::<Vec<_>>()))
            .collect();
        return dims.map(|d| Template::SymShape(d, rank == 0));
    }
    let at = |i: usize| (LENGTHS[i], &samples[i]);
    // Position ids.
    if (0..samples.len()).all(|i| {
        let (t, s) = at(i);
        s.as_i64().is_some()
            && s.shape() == [1, t]
            && s.to_i64_vec() == (0..t as i64).collect::<Vec<_>>()
    }) {
        return Some(Template::Positions);
    }
    // Causal masks.
    for kind in [MaskKind::Allowed, MaskKind::Blocked] {
        if (0..samples.len()).all(|i| {
            let (t, s) = at(i);
            s == &kernels::causal_mask(t, kind)
        }) {
            return Some(Template::Mask(kind));
        }
    }
    let mut fill = None;
    let additive = (0..samples.len()).all(|i| {
        let (t, s) = at(i);
        let Some(a) = s.as_f32() else { return false };
        if a.shape() != [1, 1, t, t] {
            return false;
        }
        a.indexed_iter().all(|(ix, &x)| {
            if ix[3] <= ix[2] {
                x == 0.0
            } else {
                x <= MASKED_BELOW && *fill.get_or_insert(x) == x
            }
        })
    });
    if additive {
        return Some(Template::Mask(MaskKind::Additive(fill.unwrap_or(f32::MIN))));
    }
    None
}

fn bypass_no_ops(graph: &mut Graph) {
    for id in graph.topo_order() {
        let node = graph.node(id);
        let Some(Some(x)) = graph.inputs(id).first().copied() else {
            continue;
        };
        let same_type = match (graph.ty(x), node.outputs.first().and_then(|t| t.as_ref())) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        let no_op = match &node.op {
            Op::Identity => true,
            Op::Cast { .. } | Op::Reshape { .. } | Op::Expand => same_type,
            _ => false,
        };
        if no_op {
            graph.replace_uses(
                ValueRef {
                    node: id,
                    output: 0,
                },
                x,
            );
        }
    }
}
