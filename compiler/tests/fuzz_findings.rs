//! What `ciphergpt fuzz` found in the ONNX importer, each as the smallest input that shows it:
//! every one failed (a panic, or an error of several lines) before its fix.

use ciphergpt_compiler::frontend::onnx;
use ciphergpt_compiler::passes;
use onnx_protobuf::{
    tensor_shape_proto, type_proto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// `input_ids : int64[1, T]`.
fn token_input() -> ValueInfoProto {
    let dim = |v| {
        let mut d = tensor_shape_proto::Dimension::new();
        d.value = Some(v);
        d
    };
    let mut shape = TensorShapeProto::new();
    shape.dim = vec![
        dim(tensor_shape_proto::dimension::Value::DimValue(1)),
        dim(tensor_shape_proto::dimension::Value::DimParam("T".into())),
    ];
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = 7;
    tt.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = "input_ids".into();
    vi.type_ = Some(ty).into();
    vi
}

/// A model of the given nodes over `input_ids`, with output `y`.
fn model(nodes: Vec<NodeProto>) -> Vec<u8> {
    let mut graph = GraphProto::new();
    graph.input = vec![token_input()];
    graph.node = nodes;
    let mut out = ValueInfoProto::new();
    out.name = "y".into();
    graph.output = vec![out];
    let mut opset = OperatorSetIdProto::new();
    opset.version = 17;
    let mut m = ModelProto::new();
    m.ir_version = 8;
    m.opset_import = vec![opset];
    m.graph = Some(graph).into();
    m.write_to_bytes().unwrap()
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n
}

/// Import and the default passes: the error, which must be one line.
fn error_of(bytes: &[u8]) -> String {
    let dir = std::env::temp_dir();
    let e = onnx::load_bytes(bytes, "found.onnx", &dir)
        .and_then(|mut g| passes::run(&mut g, passes::DEFAULT_PASSES))
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
    e
}

/// Names are the file's: one with a newline byte (a flipped bit in a name) is escaped in the
/// message, which stays one line.
#[test]
fn names_with_a_newline_are_escaped() {
    let e = error_of(&model(vec![node(
        "Identity",
        "id\nentity",
        &["input\n_ids"],
        "y",
    )]));
    assert!(
        e.contains("ONNX node 'id\\nentity' (Identity): ") && e.contains("'input\\n_ids'"),
        "{e}"
    );
    let e = error_of(&model(vec![node("Co\nnv", "c", &["input_ids"], "y")]));
    assert!(e.contains("uses operator Co\\nnv"), "{e}");
}

/// A Concat of the `[1, T]` ids and their `[2]`-shaped shape's slice along axis 1: shape
/// inference reached ndarray's assertion on the vector's axes (a panic).
#[test]
fn concat_of_different_ranks_is_refused() {
    let mut cat = node("Concat", "cat", &["input_ids", "s"], "y");
    let mut axis = onnx_protobuf::AttributeProto::new();
    axis.name = "axis".into();
    axis.i = 1;
    axis.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
    cat.attribute = vec![axis];
    let e = error_of(&model(vec![
        node("Shape", "shape", &["input_ids"], "s"),
        cat,
    ]));
    assert!(e.contains("Concat of tensors of ranks 2 and 1"), "{e}");
}

/// An int64 constant node.
fn constant(name: &str, dims: &[i64], values: &[i64]) -> NodeProto {
    let mut t = onnx_protobuf::TensorProto::new();
    t.data_type = 7;
    t.dims = dims.to_vec();
    t.int64_data = values.to_vec();
    let mut value = onnx_protobuf::AttributeProto::new();
    value.name = "value".into();
    value.type_ = onnx_protobuf::attribute_proto::AttributeType::TENSOR.into();
    value.t = Some(t).into();
    let mut n = node("Constant", name, &[], name);
    n.attribute = vec![value];
    n
}

/// Shapes and ranges read from the file are values, not sizes to trust: a 100-byte model asked
/// shape inference for 10^12 elements (4 TB), and the failed allocation aborted the process.
#[test]
fn tensors_sized_by_values_are_bounded() {
    let e = error_of(&model(vec![
        constant("s", &[2], &[1_000_000, 1_000_000]),
        node("ConstantOfShape", "big", &["s"], "y"),
    ]));
    assert!(
        e.contains("'big'") && e.contains("shape [1000000, 1000000] of 1000000000000 elements"),
        "{e}"
    );
    let e = error_of(&model(vec![
        constant("a", &[], &[0]),
        constant("b", &[], &[i64::MAX]),
        constant("d", &[], &[1]),
        node("Range", "r", &["a", "b", "d"], "y"),
    ]));
    assert!(e.contains("'r'") && e.contains("elements"), "{e}");
    let e = error_of(&model(vec![
        constant("s", &[3], &[65536, 65536, 1]),
        node("Expand", "x", &["input_ids", "s"], "y"),
    ]));
    assert!(e.contains("'x'") && e.contains("elements"), "{e}");
}

/// An f32 initializer of the given shape, all ones.
fn ones(name: &str, dims: &[i64]) -> onnx_protobuf::TensorProto {
    let mut t = onnx_protobuf::TensorProto::new();
    t.name = name.into();
    t.data_type = 1;
    t.dims = dims.to_vec();
    t.float_data = vec![1.0; dims.iter().product::<i64>() as usize];
    t
}

/// Broadcasting and matrix products square a length: a column and a row of 2^20 elements (8 MB
/// of file) made a 2^40-element sum or product, and the process aborted.
#[test]
fn outer_products_are_bounded() {
    for (op, want) in [
        ("Add", "broadcast of [1048576, 1] and [1, 1048576]"),
        ("MatMul", "MatMul of [1048576, 1] by [1, 1048576]"),
    ] {
        let bytes = model(vec![node(op, "outer", &["col", "row"], "y")]);
        let mut m = ModelProto::parse_from_bytes(&bytes).unwrap();
        let g = m.graph.as_mut().unwrap();
        g.initializer = vec![ones("col", &[1 << 20, 1]), ones("row", &[1, 1 << 20])];
        let e = error_of(&m.write_to_bytes().unwrap());
        assert!(
            e.contains("'outer'") && e.contains(want) && e.contains("1099511627776 elements"),
            "{e}"
        );
    }
}
