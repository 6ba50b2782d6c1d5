//! Passes over the IR, one file each, run in the order of [`DEFAULT_PASSES`].

pub mod constant_folding;
pub mod dead_nodes;
pub mod fusion;
pub mod probe;
pub mod shape_inference;

use crate::error::{CompileError, Result};
use crate::ir::Graph;

/// A pass, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    ShapeInference,
    ConstantFolding,
    DeadNodes,
    Fusion,
}

impl Pass {
    pub fn name(self) -> &'static str {
        match self {
            Pass::ShapeInference => "shape-inference",
            Pass::ConstantFolding => "constant-folding",
            Pass::DeadNodes => "dead-nodes",
            Pass::Fusion => "fusion",
        }
    }

    pub fn run(self, graph: &mut Graph) -> Result<()> {
        match self {
            Pass::ShapeInference => shape_inference::run(graph),
            Pass::ConstantFolding => constant_folding::run(graph),
            Pass::DeadNodes => {
                dead_nodes::run(graph);
                Ok(())
            }
            Pass::Fusion => {
                fusion::run(graph);
                Ok(())
            }
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
    for p in passes {
        p.run(graph)?;
    }
    Ok(())
}

/// Run the default pipeline and require every operation to be high-level (what lowering takes).
pub fn run_default(graph: &mut Graph) -> Result<()> {
    run(graph, DEFAULT_PASSES)?;
    require_high_level(graph)
}

/// Error on the first operation that fusion left at ONNX level.
pub fn require_high_level(graph: &Graph) -> Result<()> {
    for id in graph.topo_order() {
        let n = graph.node(id);
        if !n.op.is_high_level() {
            return Err(CompileError::Unfused {
                source_file: graph.source.clone(),
                node: graph.describe(id),
                reason: "is not part of any GPT pattern ciphergpt recognises".into(),
                hint: "run `ciphergpt compile MODEL --emit ir` to see the graph after the passes; ciphergpt takes GPT-2-style decoders".into(),
            });
        }
    }
    Ok(())
}
