//! Dead-node elimination: drop every node that no graph output depends on.

use crate::ir::Graph;
use std::collections::HashSet;

/// Returns the number of nodes removed.
pub fn run(graph: &mut Graph) -> usize {
    let mut live = HashSet::new();
    let mut stack: Vec<_> = graph.outputs.iter().map(|(_, v)| v.node).collect();
    while let Some(id) = stack.pop() {
        if live.insert(id) {
            stack.extend(graph.inputs(id).into_iter().flatten().map(|v| v.node));
        }
    }
    let dead: Vec<_> = graph
        .g
        .node_indices()
        .filter(|n| !live.contains(n))
        .collect();
    for &id in &dead {
        graph.g.remove_node(id);
    }
    dead.len()
}
