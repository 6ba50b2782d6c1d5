//! Text form of the IR: one operation per line, values numbered in topological order.
//!
//! ```text
//! %0 = input "input_ids" : i64[1,T]
//! %1 = const "transformer.wte.weight" : f32[256,128]
//! %3 = embedding(%0, %1, %2) : f32[1,T,128]
//! ```

use super::{Graph, Op, ValueRef};
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
            Op::Input { name } => format!("input \"{name}\""),
            Op::Const(t) if t.len() <= SHOW_VALUES_UP_TO => {
                format!("const {:?}", t.to_f64_vec())
            }
            Op::Const(_) => format!("const \"{}\"", node.name),
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
            "output \"{name}\" = {}",
            number.get(v).cloned().unwrap_or_else(|| "%?".into())
        );
    }
    out
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
