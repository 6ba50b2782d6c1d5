//! Text form of the IR: one operation per line, values numbered in topological order.
//!
//! ```text
//! %0 = input "input_ids" : i64[1,T]
//! %1 = const "transformer.wte.weight" : f32[256,128]
//! %3 = embedding(%0, %1, %2) : f32[1,T,128]
//! %4 = const [0.5] : f32[1]
//! output "logits" = %9
//! ```
//!
//! Names are quoted and escaped as Rust string literals; constants of up to
//! [`SHOW_VALUES_UP_TO`] elements print their values in their own element type, larger ones
//! their name only. The text reads back with [`super::parse`].

use super::{Graph, Op, ValueRef};
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::fmt::Write;

/// Constants with at most this many elements print their values.
const SHOW_VALUES_UP_TO: usize = 8;

/// The whole graph as text.
pub fn render(graph: &Graph) -> String {
    // Sources (inputs, constants) first, then the operations in topological order.
    let (sources, ops): (Vec<_>, Vec<_>) = graph
        .topo_order()
        .into_iter()
        .partition(|&id| matches!(graph.node(id).op, Op::Input { .. } | Op::Const(_)));
    let order: Vec<_> = sources.into_iter().chain(ops).collect();
    let mut number: HashMap<ValueRef, String> = HashMap::new();
    let mut next = 0usize;
    let mut out = String::new();
    for &id in &order {
        let node = graph.node(id);
        let mut lhs = Vec::new();
        for o in 0..node.outputs.len() {
            let name = format!("%{next}");
            next += 1;
            number.insert(
                ValueRef {
                    node: id,
                    output: o,
                },
                name.clone(),
            );
            lhs.push(name);
        }
        let tys: Vec<String> = node
            .outputs
            .iter()
            .map(|t| t.as_ref().map_or("?".to_string(), |t| t.to_string()))
            .collect();
        let rhs = match &node.op {
            Op::Input { name } => format!("input {name:?}"),
            Op::Const(t) if t.len() <= SHOW_VALUES_UP_TO => format!("const {}", literal(t)),
            Op::Const(_) => format!("const {:?}", node.name),
            op => {
                let args: Vec<String> = graph
                    .inputs(id)
                    .iter()
                    .map(|v| match v {
                        Some(v) => number.get(v).cloned().unwrap_or_else(|| "%?".into()),
                        None => "_".into(),
                    })
                    .collect();
                format!("{}({})", op, args.join(", "))
            }
        };
        let _ = writeln!(out, "{} = {} : {}", lhs.join(", "), rhs, tys.join(", "));
    }
    for (name, v) in &graph.outputs {
        let _ = writeln!(
            out,
            "output {name:?} = {}",
            number.get(v).cloned().unwrap_or_else(|| "%?".into())
        );
    }
    out
}

/// A tensor's elements in their own type, in logical order: `[0.5, -inf]`, `[3, -1]`,
/// `[true]`. f32 values print in their shortest form that reads back to the same bits (NaN
/// aside), i64 values exactly.
pub(crate) fn literal(t: &Tensor) -> String {
    match t {
        Tensor::F32(a) => format!("{:?}", a.iter().collect::<Vec<_>>()),
        Tensor::I64(a) => format!("{:?}", a.iter().collect::<Vec<_>>()),
        Tensor::Bool(a) => format!("{:?}", a.iter().collect::<Vec<_>>()),
    }
}

/// The operations of the graph other than inputs and constants, with attributes and output
/// types, in topological order: what two imports of the same model must agree on.
pub fn op_sequence(graph: &Graph) -> Vec<String> {
    graph
        .topo_order()
        .into_iter()
        .map(|id| graph.node(id))
        .filter(|n| !matches!(n.op, Op::Input { .. } | Op::Const(_)))
        .map(|n| {
            let tys: Vec<String> = n
                .outputs
                .iter()
                .map(|t| t.as_ref().map_or("?".to_string(), |t| t.to_string()))
                .collect();
            format!("{} : {}", n.op, tys.join(", "))
        })
        .collect()
}
