//! ONNX import: a GPT model as today's exporters write it, into the IR at ONNX level.
//!
//! Takes the torch.onnx dynamo exporter (opset 18–23) and the TorchScript exporter (opset 14–17),
//! with initializers inline or in external data files. Every node becomes one IR node with ONNX
//! semantics; folding and fusion happen in the passes. An operator outside the supported set is
//! a one-line error naming it, its node and a hint.
//!
//! The bytes pass [`super::wire_guard`] before the protobuf parser sees them (RUSTSEC-2024-0437).

use super::wire_guard;
use crate::error::{CompileError, Result};
use crate::ir::{Dim, Graph, Op, TensorType, ValueRef};
use crate::tensor::{DType, Tensor};
use ndarray::{ArrayD, IxDyn};
use onnx_protobuf::{AttributeProto, Message, ModelProto, NodeProto, TensorProto};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Oldest default-domain opset accepted (Softmax and Split changed meaning at 13).
pub const MIN_OPSET: i64 = 13;

/// ONNX operators the importer takes.
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "And",
    "Attention",
    "Cast",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "CumSum",
    "Div",
    "Dropout",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Gather",
    "GatherND",
    "Gemm",
    "Greater",
    "GreaterOrEqual",
    "Identity",
    "IsNaN",
    "LayerNormalization",
    "Less",
    "LessOrEqual",
    "MatMul",
    "Max",
    "Min",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceMean",
    "ReduceSum",
    "Reshape",
    "Shape",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Where",
];

/// Read an ONNX file into an IR graph.
pub fn load(path: &Path) -> Result<Graph> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CompileError::Io {
        path: shown.clone(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_bytes(&bytes, &shown, &base)
}

/// Read ONNX bytes; `base` is the folder that external data paths are relative to.
pub fn load_bytes(bytes: &[u8], shown: &str, base: &Path) -> Result<Graph> {
    let bad = |reason: String| CompileError::OnnxFormat {
        path: shown.to_string(),
        reason: printable(&reason),
    };
    wire_guard::check(bytes).map_err(&bad)?;
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        bad(format!(
            "{e} (is the file complete? hint: re-export the model)"
        ))
    })?;
    // Every exporter writes `opset_import` (the spec requires it), after the graph: a file
    // without any is cut short (a protobuf cut at a field boundary still parses) or not ONNX.
    if model.opset_import.is_empty() {
        return Err(bad(format!(
            "the file is truncated or not an ONNX protobuf: its {} bytes {} and no opset_import; hint: re-export the model",
            bytes.len(),
            if model.graph.is_some() {
                "hold a graph"
            } else {
                "hold no graph"
            }
        )));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| bad("no opset for the default ONNX domain".into()))?;
    if opset < MIN_OPSET {
        return Err(bad(format!(
            "opset {opset} is older than {MIN_OPSET}; hint: export with opset_version=14 or newer"
        )));
    }
    let graph_proto = model
        .graph
        .as_ref()
        .ok_or_else(|| bad("the model has no graph".into()))?;
    let mut imp = Importer {
        path: shown.to_string(),
        base: base.to_path_buf(),
        graph: Graph::new(shown),
        values: HashMap::new(),
        external: HashMap::new(),
    };
    for init in &graph_proto.initializer {
        let t = imp.tensor(init, &format!("initializer '{}'", init.name))?;
        let id = imp.graph.add_const(printable(&init.name), t);
        imp.values.insert(init.name.clone(), id.into());
    }
    for input in &graph_proto.input {
        if imp.values.contains_key(&input.name) {
            continue; // older exporters list initializers as inputs too
        }
        let ty = imp.input_type(input)?;
        let id = imp.graph.add_input(printable(&input.name), ty);
        imp.values.insert(input.name.clone(), id.into());
    }
    for (i, node) in graph_proto.node.iter().enumerate() {
        imp.node(node, i)?;
    }
    for out in &graph_proto.output {
        let v = imp.value(&out.name, "graph output")?;
        imp.graph.outputs.push((printable(&out.name), v));
    }
    if imp.graph.outputs.is_empty() {
        return Err(bad("the graph has no outputs".into()));
    }
    Ok(imp.graph)
}

struct Importer {
    path: String,
    base: PathBuf,
    graph: Graph,
    values: HashMap<String, ValueRef>,
    /// External data files, read once each.
    external: HashMap<String, Vec<u8>>,
}

impl Importer {
    fn format_err(&self, reason: String) -> CompileError {
        CompileError::OnnxFormat {
            path: self.path.clone(),
            reason: printable(&reason),
        }
    }

    fn node_err(&self, node: &NodeProto, name: &str, reason: impl Into<String>) -> CompileError {
        CompileError::OnnxNode {
            path: self.path.clone(),
            node: printable(name),
            op_type: printable(&node.op_type),
            reason: printable(&reason.into()),
        }
    }

    fn value(&self, name: &str, what: &str) -> Result<ValueRef> {
        self.values
            .get(name)
            .copied()
            .ok_or_else(|| self.format_err(format!("{what} '{name}' is never produced")))
    }

    fn input_type(&self, input: &onnx_protobuf::ValueInfoProto) -> Result<TensorType> {
        use onnx_protobuf::tensor_shape_proto::dimension::Value as D;
        use onnx_protobuf::type_proto::Value;
        let err = |r: String| self.format_err(format!("graph input '{}': {r}", input.name));
        let tt = match input.type_.as_ref().and_then(|t| t.value.as_ref()) {
            Some(Value::TensorType(t)) => t,
            _ => return Err(err("not a tensor".into())),
        };
        let dtype = match tt.elem_type {
            7 | 6 => DType::I64,
            other => {
                return Err(err(format!(
                    "element type {} is not token ids; hint: ciphergpt takes models whose one input is int64 token ids [1, seq]",
                    dtype_name(other)
                )))
            }
        };
        let dims = tt.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
        if dims.len() != 2 {
            return Err(err(format!(
                "rank {} where [batch, seq] token ids were expected",
                dims.len()
            )));
        }
        let batch_ok = matches!(
            dims[0].value,
            Some(D::DimValue(1)) | Some(D::DimParam(_)) | None
        );
        if !batch_ok {
            return Err(err("batch size must be 1 (or symbolic)".into()));
        }
        Ok(TensorType::new(dtype, vec![Dim::known(1), Dim::SEQ]))
    }

    fn tensor(&mut self, t: &TensorProto, what: &str) -> Result<Tensor> {
        let shape: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| self.format_err(format!("{what}: negative dimension in {:?}", t.dims)))?;
        let n: usize = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.format_err(format!("{what}: shape {shape:?} overflows")))?;
        let external = t.data_location.value() == 1 || !t.external_data.is_empty();
        let raw: Option<Vec<u8>> = if external {
            Some(self.external_bytes(t, what)?)
        } else if !t.raw_data.is_empty() {
            Some(t.raw_data.clone())
        } else {
            None
        };
        let arr = |v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(&shape), v);
        let bad_len = |got: usize| {
            self.format_err(format!(
                "{what}: {got} elements stored for shape {shape:?} ({n} expected)"
            ))
        };
        let tensor = match (t.data_type, raw) {
            (1, Some(r)) => {
                let v: Vec<f32> = r
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Tensor::F32(arr(v).map_err(|_| bad_len(r.len() / 4))?)
            }
            (1, None) => Tensor::F32(arr(t.float_data.clone()).map_err(|_| bad_len(t.float_data.len()))?),
            (11, Some(r)) => {
                let v: Vec<f32> = r
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
                    .collect();
                Tensor::F32(arr(v).map_err(|_| bad_len(r.len() / 8))?)
            }
            (11, None) => {
                let v: Vec<f32> = t.double_data.iter().map(|&d| d as f32).collect();
                Tensor::F32(arr(v).map_err(|_| bad_len(t.double_data.len()))?)
            }
            (7, Some(r)) => {
                let v: Vec<i64> = r
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                    .collect();
                Tensor::I64(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|_| bad_len(r.len() / 8))?)
            }
            (7, None) => Tensor::I64(
                ArrayD::from_shape_vec(IxDyn(&shape), t.int64_data.clone())
                    .map_err(|_| bad_len(t.int64_data.len()))?,
            ),
            (6, Some(r)) => {
                let v: Vec<i64> = r
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().expect("4-byte chunk")) as i64)
                    .collect();
                Tensor::I64(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|_| bad_len(r.len() / 4))?)
            }
            (6, None) => {
                let v: Vec<i64> = t.int32_data.iter().map(|&d| d as i64).collect();
                Tensor::I64(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|_| bad_len(t.int32_data.len()))?)
            }
            (9, Some(r)) => {
                let v: Vec<bool> = r.iter().map(|&b| b != 0).collect();
                Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|_| bad_len(r.len()))?)
            }
            (9, None) => {
                let v: Vec<bool> = t.int32_data.iter().map(|&b| b != 0).collect();
                Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|_| bad_len(t.int32_data.len()))?)
            }
            (other, _) => {
                return Err(self.format_err(format!(
                    "{what}: element type {} is not supported (f32, f64, i64, i32, bool are); hint: export in float32",
                    dtype_name(other)
                )))
            }
        };
        Ok(tensor)
    }

    fn external_bytes(&mut self, t: &TensorProto, what: &str) -> Result<Vec<u8>> {
        let mut location = None;
        let (mut offset, mut length) = (0usize, None);
        for e in &t.external_data {
            match e.key.as_str() {
                "location" => location = Some(e.value.clone()),
                "offset" => offset = e.value.parse().unwrap_or(usize::MAX),
                "length" => length = Some(e.value.parse().unwrap_or(usize::MAX)),
                _ => {}
            }
        }
        let loc = location
            .ok_or_else(|| self.format_err(format!("{what}: external data without a location")))?;
        let rel = Path::new(&loc);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(self.format_err(format!(
                "{what}: external data location '{loc}' leaves the model's folder"
            )));
        }
        if !self.external.contains_key(&loc) {
            let p = self.base.join(rel);
            let data = std::fs::read(&p).map_err(|e| {
                self.format_err(format!(
                    "{what}: cannot read external data '{}': {e}; hint: keep the data file beside the .onnx file",
                    p.display()
                ))
            })?;
            self.external.insert(loc.clone(), data);
        }
        let data = &self.external[&loc];
        let len = length.unwrap_or(data.len().saturating_sub(offset));
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                self.format_err(format!(
                    "{what}: external data range {offset}+{len} lies outside '{loc}' ({} bytes)",
                    data.len()
                ))
            })?;
        Ok(data[offset..end].to_vec())
    }

    fn node(&mut self, node: &NodeProto, index: usize) -> Result<()> {
        // The IR node's name, in errors too: control characters escaped, so that every
        // message naming it stays on one line.
        let name = printable(&if node.name.is_empty() {
            format!("{}_{index}", node.op_type)
        } else {
            node.name.clone()
        });
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(self.unsupported(node, &name));
        }
        let attrs: HashMap<&str, &AttributeProto> = node
            .attribute
            .iter()
            .map(|a| (a.name.as_str(), a))
            .collect();
        if node.op_type == "Constant" {
            let t = self.constant_attr(node, &name, &attrs)?;
            let id = self.graph.add_const(name.clone(), t);
            let out = node
                .output
                .first()
                .ok_or_else(|| self.node_err(node, &name, "no output"))?;
            self.values.insert(out.clone(), id.into());
            return Ok(());
        }
        let op = self.op(node, &name, &attrs)?;
        self.wire(node, &name, op)
    }

    /// The IR operation of a default-domain node (not `Constant`).
    fn op(
        &mut self,
        node: &NodeProto,
        name: &str,
        attrs: &HashMap<&str, &AttributeProto>,
    ) -> Result<Op> {
        let name = name.to_string();
        let int = |k: &str, d: i64| attrs.get(k).map_or(d, |a| a.i);
        let float = |k: &str, d: f32| attrs.get(k).map_or(d, |a| a.f);
        let ints = |k: &str| attrs.get(k).map(|a| a.ints.clone());
        let op = match node.op_type.as_str() {
            "Identity" | "Dropout" => Op::Identity,
            "Add" => Op::Add,
            "Sub" => Op::Sub,
            "Mul" => Op::Mul,
            "Div" => Op::Div,
            "Pow" => Op::Pow,
            "Sqrt" => Op::Sqrt,
            "Tanh" => Op::Tanh,
            "Erf" => Op::Erf,
            "Neg" => Op::Neg,
            "Exp" => Op::Exp,
            "Reciprocal" => Op::Reciprocal,
            "Max" | "Min" if node.input.len() != 2 => {
                return Err(self.node_err(node, &name, "only the two-input form is supported"))
            }
            "Max" => Op::Max,
            "Min" => Op::Min,
            "Equal" => Op::Equal,
            "Less" => Op::Less,
            "LessOrEqual" => Op::LessOrEqual,
            "Greater" => Op::Greater,
            "GreaterOrEqual" => Op::GreaterOrEqual,
            "And" => Op::And,
            "Or" => Op::Or,
            "Not" => Op::Not,
            "IsNaN" => Op::IsNaN,
            "Where" => Op::Where,
            "Cast" => {
                let to = int("to", 1) as i32;
                let to = match to {
                    1 | 10 | 11 | 16 => DType::F32,
                    6 | 7 => DType::I64,
                    9 => DType::Bool,
                    other => {
                        return Err(self.node_err(
                            node,
                            &name,
                            format!("cast to {} is not supported", dtype_name(other)),
                        ))
                    }
                };
                Op::Cast { to }
            }
            "MatMul" => Op::MatMul,
            "Gemm" => Op::Gemm {
                alpha: float("alpha", 1.0),
                beta: float("beta", 1.0),
                trans_a: int("transA", 0) != 0,
                trans_b: int("transB", 0) != 0,
            },
            "Transpose" => Op::Transpose {
                perm: ints("perm").map(|p| p.iter().map(|&v| v.max(0) as usize).collect()),
            },
            "Reshape" => Op::Reshape {
                allowzero: int("allowzero", 0) != 0,
            },
            "Unsqueeze" => Op::Unsqueeze { axes: ints("axes") },
            "Squeeze" => Op::Squeeze { axes: ints("axes") },
            "Concat" => Op::Concat {
                axis: int("axis", 0),
            },
            "Split" => Op::Split {
                axis: int("axis", 0),
                split: ints("split"),
                outputs: node.output.len(),
            },
            "Slice" => Op::Slice,
            "Gather" => Op::Gather {
                axis: int("axis", 0),
            },
            "GatherND" => Op::GatherND {
                batch_dims: int("batch_dims", 0),
            },
            "Shape" => Op::Shape {
                start: int("start", 0),
                end: attrs.get("end").map(|a| a.i),
            },
            "ConstantOfShape" => Op::ConstantOfShape {
                value: match attrs.get("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => self.tensor(t, &format!("node '{name}' value"))?,
                    None => Tensor::scalar_f32(0.0),
                },
            },
            "Expand" => Op::Expand,
            "Range" => Op::Range,
            "CumSum" => Op::CumSum {
                exclusive: int("exclusive", 0) != 0,
                reverse: int("reverse", 0) != 0,
            },
            "Trilu" => Op::Trilu {
                upper: int("upper", 1) != 0,
            },
            "ReduceMean" => Op::ReduceMean {
                axes: ints("axes"),
                keepdims: int("keepdims", 1) != 0,
            },
            "ReduceSum" => Op::ReduceSum {
                axes: ints("axes"),
                keepdims: int("keepdims", 1) != 0,
                noop_with_empty_axes: int("noop_with_empty_axes", 0) != 0,
            },
            "Softmax" => Op::Softmax {
                axis: int("axis", -1),
            },
            "LayerNormalization" => Op::LayerNormalization {
                axis: int("axis", -1),
                epsilon: float("epsilon", 1e-5),
            },
            "Attention" => self.attention(node, &name, attrs)?,
            _ => return Err(self.unsupported(node, &name)),
        };
        Ok(op)
    }

    /// Add the node for `op` with the node's inputs, and record its outputs.
    fn wire(&mut self, node: &NodeProto, name: &str, op: Op) -> Result<()> {
        let name = name.to_string();
        let mut inputs = Vec::with_capacity(node.input.len());
        for input in &node.input {
            if input.is_empty() {
                inputs.push(None);
            } else {
                let v = self.values.get(input).copied().ok_or_else(|| {
                    self.node_err(
                        node,
                        &name,
                        format!("input '{input}' is never produced (nodes out of order?)"),
                    )
                })?;
                inputs.push(Some(v));
            }
        }
        // Dropout's mask output and the like are not supported: only the first output is used.
        let n_out = op.num_outputs();
        let id = self.graph.add_opt(name.clone(), op, &inputs);
        for (o, out) in node.output.iter().enumerate() {
            if out.is_empty() {
                continue;
            }
            if o >= n_out {
                return Err(self.node_err(
                    node,
                    &name,
                    format!("output {o} ('{out}') is not supported"),
                ));
            }
            self.values.insert(
                out.clone(),
                ValueRef {
                    node: id,
                    output: o,
                },
            );
        }
        Ok(())
    }

    fn constant_attr(
        &mut self,
        node: &NodeProto,
        name: &str,
        attrs: &HashMap<&str, &AttributeProto>,
    ) -> Result<Tensor> {
        if let Some(t) = attrs.get("value").and_then(|a| a.t.as_ref()) {
            return self.tensor(t, &format!("node '{name}' value"));
        }
        if let Some(a) = attrs.get("value_float") {
            return Ok(Tensor::scalar_f32(a.f));
        }
        if let Some(a) = attrs.get("value_floats") {
            let n = a.floats.len();
            return Tensor::f32_from(&[n], a.floats.clone())
                .ok_or_else(|| self.node_err(node, name, "bad value_floats"));
        }
        if let Some(a) = attrs.get("value_int") {
            return Ok(Tensor::scalar_i64(a.i));
        }
        if let Some(a) = attrs.get("value_ints") {
            return Ok(Tensor::vec_i64(a.ints.clone()));
        }
        Err(self.node_err(node, name, "Constant without a supported value attribute"))
    }

    /// The standard `Attention` operator (opset 23): the attributes its float semantics needs.
    fn attention(
        &self,
        node: &NodeProto,
        name: &str,
        attrs: &HashMap<&str, &AttributeProto>,
    ) -> Result<Op> {
        let int = |k: &str| attrs.get(k).map(|a| a.i);
        if let Some(c) = attrs.get("softcap").map(|a| a.f).filter(|&c| c != 0.0) {
            return Err(self.node_err(
                node,
                name,
                format!("softcap {c} is not supported (GPT-2-family attention has none)"),
            ));
        }
        if node.input.len() > 4 && node.input[4..].iter().any(|i| !i.is_empty()) {
            return Err(self.node_err(
                node,
                name,
                "past key/value inputs are not supported; hint: export with use_cache=False",
            ));
        }
        let heads = |k: &str| -> Result<Option<usize>> {
            int(k)
                .map(|h| {
                    usize::try_from(h)
                        .ok()
                        .filter(|&h| h > 0)
                        .ok_or_else(|| self.node_err(node, name, format!("{k} = {h}")))
                })
                .transpose()
        };
        Ok(Op::OnnxAttention {
            is_causal: int("is_causal").unwrap_or(0) != 0,
            scale: attrs.get("scale").map(|a| a.f),
            q_heads: heads("q_num_heads")?,
            kv_heads: heads("kv_num_heads")?,
        })
    }

    fn unsupported(&self, node: &NodeProto, name: &str) -> CompileError {
        let ort_domain = node.domain == "com.microsoft";
        let hint = match node.op_type.as_str() {
            "Attention" | "MultiHeadAttention" | "SkipLayerNormalization" | "FastGelu"
            | "BiasGelu" | "EmbedLayerNormalization"
                if ort_domain =>
            {
                "this is an onnxruntime fusion (domain com.microsoft); export the plain model without running the onnxruntime transformer optimizer".to_string()
            }
            "If" | "Loop" | "Scan" => {
                "control flow is not supported; export without past key values (use_cache=False)".to_string()
            }
            _ => format!(
                "ciphergpt imports GPT-2-style decoders exported with opset 14–23; supported operators: {}",
                SUPPORTED_OPS.join(", ")
            ),
        };
        CompileError::UnsupportedOp {
            path: self.path.clone(),
            node: printable(name),
            op_type: printable(&node.op_type),
            domain: if node.domain.is_empty() {
                "ai.onnx".into()
            } else {
                printable(&node.domain)
            },
            hint,
        }
    }
}

/// A name or message from the file with its control characters escaped (`\n` for a newline):
/// one line, whatever the file holds.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn dtype_name(code: i32) -> String {
    let s = match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => return format!("#{code}"),
    };
    s.to_string()
}
