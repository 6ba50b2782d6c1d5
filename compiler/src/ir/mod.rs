//! The graph IR: a typed dataflow graph on petgraph.
//!
//! Nodes are operations; an edge carries one output of its source node to one input of its
//! destination node. Every node records the type (element type and symbolic shape) of each of its
//! outputs once shape inference has run. Shapes are affine in the symbolic sequence length `T`.
//!
//! The same graph holds ONNX-level operations (as the importer writes them) and the fused
//! high-level operations that the passes produce and the DSL writes directly; the float
//! interpreter runs either.

mod dim;
mod op;
pub mod parse;
mod print;

pub use dim::{Dim, TensorType};
pub use op::{GeluForm, MaskKind, Op};
pub use parse::{parse, parse_with, ParseError};
pub use print::{op_sequence, render};

use crate::tensor::{DType, Tensor};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

/// One operation in the graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// Where the node came from: ONNX node name, DSL statement, or the pass that made it.
    pub name: String,
    pub op: Op,
    /// Number of input slots (some may be absent: ONNX optional inputs).
    pub arity: usize,
    /// Types of the outputs; `None` until shape inference has seen the node.
    pub outputs: Vec<Option<TensorType>>,
}

/// An edge: output `from_output` of the source feeds input `to_input` of the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    pub from_output: usize,
    pub to_input: usize,
}

/// One output of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueRef {
    pub node: NodeIndex,
    pub output: usize,
}

impl From<NodeIndex> for ValueRef {
    fn from(node: NodeIndex) -> Self {
        ValueRef { node, output: 0 }
    }
}

/// A model: the graph, its named outputs, and a little metadata.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub g: StableDiGraph<Node, Port>,
    /// Named graph outputs, in order.
    pub outputs: Vec<(String, ValueRef)>,
    /// Where the model came from (file name), for messages.
    pub source: String,
}

impl Graph {
    pub fn new(source: impl Into<String>) -> Self {
        Graph {
            g: StableDiGraph::new(),
            outputs: Vec::new(),
            source: source.into(),
        }
    }

    /// Add a node whose inputs are all present.
    pub fn add(&mut self, name: impl Into<String>, op: Op, inputs: &[ValueRef]) -> NodeIndex {
        let opt: Vec<Option<ValueRef>> = inputs.iter().copied().map(Some).collect();
        self.add_opt(name, op, &opt)
    }

    /// Add a node with possibly absent inputs.
    pub fn add_opt(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[Option<ValueRef>],
    ) -> NodeIndex {
        let n_out = op.num_outputs();
        let id = self.g.add_node(Node {
            name: name.into(),
            op,
            arity: inputs.len(),
            outputs: vec![None; n_out],
        });
        for (i, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.g.add_edge(
                    v.node,
                    id,
                    Port {
                        from_output: v.output,
                        to_input: i,
                    },
                );
            }
        }
        id
    }

    /// Add a constant node holding `value`.
    pub fn add_const(&mut self, name: impl Into<String>, value: Tensor) -> NodeIndex {
        let ty = TensorType::known(value.dtype(), value.shape());
        let id = self.add(name, Op::Const(value), &[]);
        self.g[id].outputs = vec![Some(ty)];
        id
    }

    /// Add the graph input (token ids) with its type.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> NodeIndex {
        let name = name.into();
        let id = self.add(name.clone(), Op::Input { name }, &[]);
        self.g[id].outputs = vec![Some(ty)];
        id
    }

    pub fn node(&self, id: NodeIndex) -> &Node {
        &self.g[id]
    }

    /// The inputs of `id`, by slot.
    pub fn inputs(&self, id: NodeIndex) -> Vec<Option<ValueRef>> {
        let mut slots = vec![None; self.g[id].arity];
        for e in self.g.edges_directed(id, Direction::Incoming) {
            let p = e.weight();
            if p.to_input < slots.len() {
                slots[p.to_input] = Some(ValueRef {
                    node: e.source(),
                    output: p.from_output,
                });
            }
        }
        slots
    }

    /// Input `slot` of `id`, if present.
    pub fn input(&self, id: NodeIndex, slot: usize) -> Option<ValueRef> {
        self.g
            .edges_directed(id, Direction::Incoming)
            .find(|e| e.weight().to_input == slot)
            .map(|e| ValueRef {
                node: e.source(),
                output: e.weight().from_output,
            })
    }

    /// Nodes that read output `v` (with the slot they read it into).
    pub fn users(&self, v: ValueRef) -> Vec<(NodeIndex, usize)> {
        let mut out: Vec<(NodeIndex, usize)> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().from_output == v.output)
            .map(|e| (e.target(), e.weight().to_input))
            .collect();
        out.sort();
        out
    }

    /// Number of readers of `v`, counting graph outputs.
    pub fn use_count(&self, v: ValueRef) -> usize {
        self.users(v).len() + self.outputs.iter().filter(|(_, o)| *o == v).count()
    }

    /// The type of a value, if inferred.
    pub fn ty(&self, v: ValueRef) -> Option<&TensorType> {
        self.g[v.node]
            .outputs
            .get(v.output)
            .and_then(|t| t.as_ref())
    }

    /// The constant tensor behind `v`, if its node is a constant.
    pub fn const_value(&self, v: ValueRef) -> Option<&Tensor> {
        match &self.g[v.node].op {
            Op::Const(t) if v.output == 0 => Some(t),
            _ => None,
        }
    }

    /// Make every reader of `old` (and graph outputs) read `new` instead.
    pub fn replace_uses(&mut self, old: ValueRef, new: ValueRef) {
        let edges: Vec<_> = self
            .g
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().from_output == old.output)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        for (eid, target, port) in edges {
            self.g.remove_edge(eid);
            self.g.add_edge(
                new.node,
                target,
                Port {
                    from_output: new.output,
                    to_input: port.to_input,
                },
            );
        }
        for (_, o) in self.outputs.iter_mut() {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Nodes in a topological order (inputs before users). Ties are broken by node index, so the
    /// order is deterministic.
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        let mut indeg: std::collections::HashMap<NodeIndex, usize> = self
            .g
            .node_indices()
            .map(|n| (n, self.g.edges_directed(n, Direction::Incoming).count()))
            .collect();
        let mut ready: std::collections::BTreeSet<NodeIndex> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&n, _)| n)
            .collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg.get_mut(&e.target()).expect("edge target is a node");
                *d -= 1;
                if *d == 0 {
                    ready.insert(e.target());
                }
            }
        }
        order
    }

    /// The graph input nodes.
    pub fn input_nodes(&self) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .g
            .node_indices()
            .filter(|&n| matches!(self.g[n].op, Op::Input { .. }))
            .collect();
        v.sort();
        v
    }

    /// A short description of a node for error messages: `node 'name' (Op)`.
    pub fn describe(&self, id: NodeIndex) -> String {
        let n = &self.g[id];
        format!("node '{}' ({})", n.name, n.op.kind())
    }

    /// Total number of weight parameters held by constant nodes of floating type.
    pub fn parameter_count(&self) -> usize {
        self.g
            .node_weights()
            .filter_map(|n| match &n.op {
                Op::Const(t) if t.dtype() == DType::F32 => Some(t.len()),
                _ => None,
            })
            .sum()
    }
}
