//! Passes over the IR, one file each, run in the order of [`DEFAULT_PASSES`].

pub mod constant_folding;
pub mod dead_nodes;
pub mod fusion;
pub mod probe;
pub mod shape_inference;

use crate::error::{CompileError, Result};
use crate::ir::{Graph, Op};
use petgraph::stable_graph::NodeIndex;
use probe::Dep;

/// A pass, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    ShapeInference,
    ConstantFolding,
    DeadNodes,
    Fusion,
}

impl Pass {
    /// Every pass, for lookup by name.
    pub const ALL: [Pass; 4] = [
        Pass::ShapeInference,
        Pass::ConstantFolding,
        Pass::DeadNodes,
        Pass::Fusion,
    ];

    /// The pass named `name` (as [`Pass::name`] spells it).
    pub fn from_name(name: &str) -> Option<Pass> {
        Pass::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Pass::ShapeInference => "shape-inference",
            Pass::ConstantFolding => "constant-folding",
            Pass::DeadNodes => "dead-nodes",
            Pass::Fusion => "fusion",
        }
    }

    pub fn run(self, graph: &mut Graph) -> Result<()> {
        self.run_traced(graph).map(drop)
    }

    /// Run the pass; returns the fusion rewrites (empty for the other passes).
    pub fn run_traced(self, graph: &mut Graph) -> Result<Vec<fusion::Fired>> {
        match self {
            Pass::ShapeInference => shape_inference::run(graph).map(|()| Vec::new()),
            Pass::ConstantFolding => constant_folding::run(graph).map(|()| Vec::new()),
            Pass::DeadNodes => {
                dead_nodes::run(graph);
                Ok(Vec::new())
            }
            Pass::Fusion => Ok(fusion::run_traced(graph)),
        }
    }
}

/// The front-end pipeline: types, folding, clean-up, types again (folding bypasses no-ops by
/// type), fusion, clean-up, and final types.
pub const DEFAULT_PASSES: &[Pass] = &[
    Pass::ShapeInference,
    Pass::ConstantFolding,
    Pass::DeadNodes,
    Pass::ShapeInference,
    Pass::ConstantFolding,
    Pass::DeadNodes,
    Pass::Fusion,
    Pass::DeadNodes,
    Pass::ShapeInference,
];

/// Run `passes` in order.
pub fn run(graph: &mut Graph, passes: &[Pass]) -> Result<()> {
    run_traced(graph, passes).map(drop)
}

/// Run `passes` in order; returns the trace of every fusion rewrite, in order.
pub fn run_traced(graph: &mut Graph, passes: &[Pass]) -> Result<Vec<fusion::Fired>> {
    let mut trace = Vec::new();
    for p in passes {
        trace.extend(p.run_traced(graph)?);
    }
    Ok(trace)
}

/// Run the default pipeline and require every operation to be high-level (what lowering takes).
pub fn run_default(graph: &mut Graph) -> Result<()> {
    run(graph, DEFAULT_PASSES)?;
    require_high_level(graph)
}

/// Error on the first operation that fusion left at ONNX level, saying whether it computes on
/// a secret value (one that depends on the token ids) or on a public one folding could not reduce.
pub fn require_high_level(graph: &Graph) -> Result<()> {
    let dep = probe::dependence(graph);
    let left: Vec<_> = graph
        .topo_order()
        .into_iter()
        .filter(|&id| !graph.node(id).op.is_high_level())
        .collect();
    // Name the first operator that computes something, rather than the reshapes around it.
    let layout = |id: &NodeIndex| {
        matches!(
            graph.node(*id).op,
            Op::Split { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Squeeze { .. }
                | Op::Unsqueeze { .. }
                | Op::Identity
        )
    };
    if let Some(&id) = left.iter().find(|id| !layout(id)).or(left.first()) {
        let n = graph.node(id);
        let secret = graph
            .inputs(id)
            .into_iter()
            .enumerate()
            .find_map(|(slot, v)| v.filter(|v| dep[&v.node] == Dep::Value).map(|v| (slot, v)));
        let (reason, hint) = match secret {
            Some((slot, v)) => (
                format!(
                    "operator {} reads a secret value (input {slot}, from {}, depends on the token ids) but is not part of any GPT operation the plan can run: {HIGH_LEVEL}",
                    n.op.kind(),
                    graph.describe(v.node)
                ),
                "ciphergpt takes GPT-2-style decoders; docs/architecture.md lists the exports known to import",
            ),
            None => (
                format!(
                    "operator {} computes a public value (from the sequence length only) that folding could not reduce to a constant, a shape, the positions 0..T or the causal mask",
                    n.op.kind()
                ),
                "the plan takes positions 0..T and the causal mask of its length; other public inputs are not supported",
            ),
        };
        return Err(CompileError::Unfused {
            source_file: graph.source.clone(),
            node: graph.describe(id),
            reason,
            hint: hint.into(),
        });
    }
    Ok(())
}

/// What lowering takes, for error messages.
const HIGH_LEVEL: &str =
    "expected it inside embedding, layer_norm, linear, gelu, attention, residual_add or logits";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_found_by_name() {
        for p in Pass::ALL {
            assert_eq!(Pass::from_name(p.name()), Some(p));
        }
        assert!(DEFAULT_PASSES.iter().all(|p| Pass::ALL.contains(p)));
        assert_eq!(Pass::from_name("fold"), None);
    }
}
