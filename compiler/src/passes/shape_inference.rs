//! Shape inference: give every value its element type and symbolic shape.
//!
//! The shapes come from [`super::probe`]: the graph runs at several sequence lengths and each
//! dimension is fitted as `t·T + c`. A graph that cannot run (a shape mismatch, a bad reshape)
//! fails here with the interpreter's error, which names the node and both shapes; a dimension
//! that is not affine in `T` is an error naming the node too. Nodes that the probes never
//! reach (dead code) keep no type.

use super::probe;
use crate::error::Result;
use crate::ir::{Graph, ValueRef};

pub fn run(graph: &mut Graph) -> Result<()> {
    let dep = probe::dependence(graph);
    let seen = probe::run(graph, &dep)?;
    let ids: Vec<_> = graph.g.node_indices().collect();
    for id in ids {
        for o in 0..graph.node(id).outputs.len() {
            let v = ValueRef {
                node: id,
                output: o,
            };
            if let Some(ty) = seen.ty(graph, v)? {
                graph.g[id].outputs[o] = Some(ty);
            }
        }
    }
    Ok(())
}
