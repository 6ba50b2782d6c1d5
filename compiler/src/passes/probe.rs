//! Probing: run the graph at a few concrete sequence lengths and keep what the passes need.
//!
//! A GPT graph's shapes are affine in the sequence length `T`, and its shape arithmetic and mask
//! construction depend on `T` only. Running the float interpreter at several lengths therefore
//! tells each value's symbolic shape (fit `t·T + c` through the observed sizes and check the fit
//! on every length), and lets constant folding recognise what a shape-only subgraph computes,
//! whatever operators the exporter used to compute it. Token values are irrelevant to both, so
//! the probes use token id 0.

use crate::error::{CompileError, Result};
use crate::interp::float;
use crate::ir::{Dim, Graph, Op, TensorType, ValueRef};
use crate::tensor::{DType, Tensor};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;

/// The sequence lengths probed. Four points over-determine an affine fit (two unknowns).
pub const LENGTHS: [usize; 4] = [2, 3, 4, 6];

/// Values of shape-only nodes up to this many elements keep their contents.
const KEEP_UP_TO: usize = 1 << 16;

/// How a node's value depends on the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dep {
    /// Not at all: a function of constants.
    Constant,
    /// On the input's shape only (the sequence length).
    ShapeOnly,
    /// On the token values.
    Value,
}

/// The dependence of every node, in one forward sweep.
pub fn dependence(graph: &Graph) -> HashMap<NodeIndex, Dep> {
    let mut dep = HashMap::new();
    for id in graph.topo_order() {
        let node = graph.node(id);
        let d = match &node.op {
            Op::Input { .. } => Dep::Value,
            Op::Const(_) => Dep::Constant,
            op if op.reads_only_shape() => {
                let inner = graph
                    .inputs(id)
                    .iter()
                    .flatten()
                    .map(|v| dep[&v.node])
                    .max()
                    .unwrap_or(Dep::Constant);
                inner.min(Dep::ShapeOnly)
            }
            _ => graph
                .inputs(id)
                .iter()
                .flatten()
                .map(|v| dep[&v.node])
                .max()
                .unwrap_or(Dep::Constant),
        };
        dep.insert(id, d);
    }
    dep
}

/// What the probes saw.
pub struct Probe {
    /// Shape of every computed value at each of [`LENGTHS`].
    pub shapes: HashMap<ValueRef, Vec<Vec<usize>>>,
    pub dtypes: HashMap<ValueRef, DType>,
    /// Contents of small shape-only values at each of [`LENGTHS`].
    pub samples: HashMap<ValueRef, Vec<Tensor>>,
}

/// Run the graph at every probe length.
pub fn run(graph: &Graph, dep: &HashMap<NodeIndex, Dep>) -> Result<Probe> {
    let mut probe = Probe {
        shapes: HashMap::new(),
        dtypes: HashMap::new(),
        samples: HashMap::new(),
    };
    for &t in &LENGTHS {
        let feeds = float::token_feed(graph, &vec![0; t])?;
        let mut observe = |v: ValueRef, x: &Tensor| {
            probe.shapes.entry(v).or_default().push(x.shape().to_vec());
            probe.dtypes.insert(v, x.dtype());
            if dep.get(&v.node) == Some(&Dep::ShapeOnly) && x.len() <= KEEP_UP_TO {
                probe.samples.entry(v).or_default().push(x.clone());
            }
        };
        float::run_observed(graph, feeds, &mut observe)?;
    }
    Ok(probe)
}

/// Fit `t·T + c` through `(T, value)` observations at [`LENGTHS`]; `None` if no line fits.
pub fn fit(values: &[i64]) -> Option<Dim> {
    if values.len() != LENGTHS.len() {
        return None;
    }
    let (t0, t1) = (LENGTHS[0] as i64, LENGTHS[1] as i64);
    let slope = values[1] - values[0];
    if slope % (t1 - t0) != 0 {
        return None;
    }
    let t = slope / (t1 - t0);
    let c = values[0] - t * t0;
    let d = Dim { t, c };
    LENGTHS
        .iter()
        .zip(values)
        .all(|(&len, &v)| d.at(len as i64) == v)
        .then_some(d)
}

impl Probe {
    /// The symbolic type of a value, from its shapes at every length.
    pub fn ty(&self, graph: &Graph, v: ValueRef) -> Result<Option<TensorType>> {
        let (Some(shapes), Some(&dtype)) = (self.shapes.get(&v), self.dtypes.get(&v)) else {
            return Ok(None);
        };
        let rank = shapes[0].len();
        if shapes.iter().any(|s| s.len() != rank) || shapes.len() != LENGTHS.len() {
            return Err(self.shape_err(graph, v, "its rank changes with the sequence length"));
        }
        let mut dims = Vec::with_capacity(rank);
        for i in 0..rank {
            let vals: Vec<i64> = shapes.iter().map(|s| s[i] as i64).collect();
            let d = fit(&vals).ok_or_else(|| {
                self.shape_err(
                    graph,
                    v,
                    &format!("dimension {i} takes sizes {vals:?} at lengths {LENGTHS:?}, not affine in T"),
                )
            })?;
            dims.push(d);
        }
        Ok(Some(TensorType::new(dtype, dims)))
    }

    fn shape_err(&self, graph: &Graph, v: ValueRef, reason: &str) -> CompileError {
        CompileError::Shape {
            source_file: graph.source.clone(),
            node: graph.describe(v.node),
            reason: format!("output {}: {reason}", v.output),
        }
    }
}
