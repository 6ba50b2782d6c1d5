//! The float reference interpreter: runs any IR graph (ONNX-level or fused) on token ids.
//!
//! Values are freed after their last reader, so a full GPT-2 run holds little more than its
//! weights. Constant nodes are read in place, never copied.

use super::kernels;
use crate::error::{CompileError, Result};
use crate::ir::{Graph, Op, ValueRef};
use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;

/// Run the graph on one sequence of token ids (batch 1) and return its named outputs.
pub fn run(graph: &Graph, tokens: &[i64]) -> Result<Vec<(String, Tensor)>> {
    run_with(graph, token_feed(graph, tokens)?)
}

/// The feed for a graph's one input, the token ids, as a `[1, T]` tensor. Errors if the graph
/// has another number of inputs.
pub fn token_feed(graph: &Graph, tokens: &[i64]) -> Result<HashMap<NodeIndex, Tensor>> {
    let inputs = graph.input_nodes();
    let [input] = inputs.as_slice() else {
        return Err(CompileError::Input(format!(
            "{}: the model has {} inputs; ciphergpt takes models whose only input is the token ids",
            graph.source,
            inputs.len()
        )));
    };
    let ids = Tensor::I64(
        ArrayD::from_shape_vec(IxDyn(&[1, tokens.len()]), tokens.to_vec())
            .map_err(|e| CompileError::Input(e.to_string()))?,
    );
    Ok(HashMap::from([(*input, ids)]))
}

/// The logits of every position, one row each (the graph's first output, `[1, T, V]`).
pub fn logit_rows(graph: &Graph, tokens: &[i64]) -> Result<Vec<Vec<f32>>> {
    let out = run(graph, tokens)?;
    let logits = out.first().and_then(|(_, t)| t.as_f32()).ok_or_else(|| {
        CompileError::Input(format!("{}: the output is not f32 logits", graph.source))
    })?;
    let v = (*logits.shape().last().unwrap_or(&1)).max(1);
    Ok(logits
        .iter()
        .copied()
        .collect::<Vec<_>>()
        .chunks(v)
        .map(<[f32]>::to_vec)
        .collect())
}

/// The first index of the largest value (`torch.argmax`); NaN never wins.
pub fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Run the graph with the given values for its input nodes.
pub fn run_with(graph: &Graph, feeds: HashMap<NodeIndex, Tensor>) -> Result<Vec<(String, Tensor)>> {
    run_observed(graph, feeds, &mut |_, _| {})
}

/// Run the graph, showing every computed value (inputs included, constants not) to `observe`.
pub fn run_observed(
    graph: &Graph,
    mut feeds: HashMap<NodeIndex, Tensor>,
    observe: &mut dyn FnMut(ValueRef, &Tensor),
) -> Result<Vec<(String, Tensor)>> {
    let order = graph.topo_order();
    // Remaining readers of each value, so that it can be dropped after the last one.
    let mut readers: HashMap<ValueRef, usize> = HashMap::new();
    for &id in &order {
        for v in graph.inputs(id).into_iter().flatten() {
            *readers.entry(v).or_default() += 1;
        }
    }
    for (_, v) in &graph.outputs {
        *readers.entry(*v).or_default() += 1;
    }
    let mut values: HashMap<ValueRef, Tensor> = HashMap::new();
    for &id in &order {
        let node = graph.node(id);
        match &node.op {
            Op::Const(_) => continue,
            Op::Input { name } => {
                let t = feeds.remove(&id).ok_or_else(|| {
                    eval_err(graph, id, format!("no value given for input '{name}'"))
                })?;
                observe(
                    ValueRef {
                        node: id,
                        output: 0,
                    },
                    &t,
                );
                values.insert(
                    ValueRef {
                        node: id,
                        output: 0,
                    },
                    t,
                );
                continue;
            }
            _ => {}
        }
        let ins = graph.inputs(id);
        let outs = {
            let args: Vec<Option<&Tensor>> = ins
                .iter()
                .map(|v| v.map(|v| fetch(graph, &values, v)).transpose())
                .collect::<Result<_>>()?;
            kernels::eval(&node.op, &args).map_err(|r| eval_err(graph, id, r))?
        };
        for v in ins.into_iter().flatten() {
            if let Some(n) = readers.get_mut(&v) {
                *n -= 1;
                if *n == 0 {
                    values.remove(&v);
                }
            }
        }
        for (o, t) in outs.into_iter().enumerate() {
            let v = ValueRef {
                node: id,
                output: o,
            };
            observe(v, &t);
            if readers.get(&v).copied().unwrap_or(0) > 0 {
                values.insert(v, t);
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|(name, v)| Ok((name.clone(), fetch(graph, &values, *v)?.clone())))
        .collect()
}

fn fetch<'a>(
    graph: &'a Graph,
    values: &'a HashMap<ValueRef, Tensor>,
    v: ValueRef,
) -> Result<&'a Tensor> {
    if let Some(t) = graph.const_value(v) {
        return Ok(t);
    }
    values
        .get(&v)
        .ok_or_else(|| eval_err(graph, v.node, "value used before it was computed".into()))
}

fn eval_err(graph: &Graph, id: NodeIndex, reason: String) -> CompileError {
    CompileError::Eval {
        source_file: graph.source.clone(),
        node: graph.describe(id),
        reason,
    }
}

/// Evaluate one value of the graph from the given boundary values: everything `target` depends
/// on is computed, except what `known` already holds (which is extended as it goes). Used by the
/// passes to evaluate a region of the graph in isolation. Iterative, so deep graphs are fine.
pub fn eval_value(
    graph: &Graph,
    target: ValueRef,
    known: &mut HashMap<ValueRef, Tensor>,
) -> std::result::Result<Tensor, String> {
    let mut stack = vec![(target.node, false)];
    while let Some((id, expanded)) = stack.pop() {
        if known.contains_key(&ValueRef {
            node: id,
            output: 0,
        }) {
            continue;
        }
        let ins = graph.inputs(id);
        let fetch = |v: &ValueRef, known: &HashMap<ValueRef, Tensor>| -> Option<Tensor> {
            graph
                .const_value(*v)
                .cloned()
                .or_else(|| known.get(v).cloned())
        };
        if !expanded {
            stack.push((id, true));
            for v in ins.iter().flatten() {
                if graph.const_value(*v).is_none() && !known.contains_key(v) {
                    if matches!(graph.node(v.node).op, Op::Input { .. }) {
                        return Err(format!("{} has no value", graph.describe(v.node)));
                    }
                    stack.push((v.node, false));
                }
            }
            continue;
        }
        let args: Vec<Option<Tensor>> = ins
            .iter()
            .map(|v| v.as_ref().map(|v| fetch(v, known)).unwrap_or(None))
            .collect();
        let refs: Vec<Option<&Tensor>> = args.iter().map(|a| a.as_ref()).collect();
        let outs = kernels::eval(&graph.node(id).op, &refs)
            .map_err(|r| format!("{}: {r}", graph.describe(id)))?;
        for (o, t) in outs.into_iter().enumerate() {
            known.insert(
                ValueRef {
                    node: id,
                    output: o,
                },
                t,
            );
        }
    }
    graph
        .const_value(target)
        .cloned()
        .or_else(|| known.get(&target).cloned())
        .ok_or_else(|| "value not computed".to_string())
}
