use super::*;
use crate::ir::{render, Dim, GeluForm, MaskKind};

/// The operations without attributes.
fn plain_ops() -> Vec<Op> {
    vec![
        Op::Identity,
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::Div,
        Op::Pow,
        Op::Sqrt,
        Op::Tanh,
        Op::Erf,
        Op::Neg,
        Op::Exp,
        Op::Reciprocal,
        Op::Max,
        Op::Min,
        Op::Equal,
        Op::Less,
        Op::LessOrEqual,
        Op::Greater,
        Op::GreaterOrEqual,
        Op::And,
        Op::Or,
        Op::Not,
        Op::IsNaN,
        Op::Where,
        Op::MatMul,
        Op::Slice,
        Op::Expand,
        Op::Range,
        Op::Positions,
        Op::Embedding,
        Op::Linear,
        Op::ResidualAdd,
        Op::Logits,
    ]
}

/// ONNX-level operations with attributes, default and not.
fn onnx_ops_with_attributes() -> Vec<Op> {
    vec![
        Op::Cast { to: DType::Bool },
        Op::Gemm {
            alpha: 0.5,
            beta: 1e-7,
            trans_a: true,
            trans_b: false,
        },
        Op::Transpose {
            perm: Some(vec![1, 0]),
        },
        Op::Transpose { perm: None },
        Op::Reshape { allowzero: true },
        Op::Reshape { allowzero: false },
        Op::Unsqueeze {
            axes: Some(vec![0, -1]),
        },
        Op::Squeeze { axes: None },
        Op::Concat { axis: -2 },
        Op::Gather { axis: 1 },
        Op::GatherND { batch_dims: 1 },
        Op::Shape {
            start: -3,
            end: Some(2),
        },
        Op::Shape {
            start: 0,
            end: None,
        },
        Op::ConstantOfShape {
            value: Tensor::vec_i64(vec![7]),
        },
        Op::ConstantOfShape {
            value: Tensor::scalar_f32(-1.5),
        },
        Op::CumSum {
            exclusive: true,
            reverse: false,
        },
        Op::Trilu { upper: false },
        Op::ReduceMean {
            axes: Some(vec![-1]),
            keepdims: true,
        },
        Op::ReduceSum {
            axes: None,
            keepdims: false,
            noop_with_empty_axes: true,
        },
        Op::Softmax { axis: 3 },
        Op::LayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        },
        Op::OnnxAttention {
            is_causal: true,
            scale: Some(0.125),
            q_heads: Some(4),
            kv_heads: None,
        },
    ]
}

/// Shape-only and high-level operations with attributes.
fn high_level_ops_with_attributes() -> Vec<Op> {
    vec![
        Op::SymShape {
            dims: vec![Dim::known(1), Dim::SEQ, Dim { t: 2, c: -1 }],
            scalar: false,
        },
        Op::SymShape {
            dims: vec![Dim { t: -1, c: 3 }],
            scalar: true,
        },
        Op::CausalMask {
            kind: MaskKind::Allowed,
        },
        Op::CausalMask {
            kind: MaskKind::Blocked,
        },
        Op::CausalMask {
            kind: MaskKind::Additive(f32::MIN),
        },
        Op::LayerNorm { eps: 1e-6 },
        Op::Gelu {
            form: GeluForm::Erf,
        },
        Op::Gelu {
            form: GeluForm::Tanh,
        },
        Op::Attention {
            heads: 3,
            scale: 0.35355338,
        },
    ]
}

/// A graph holding every operation with non-default attributes, absent inputs, a multi-output
/// node, small constants of each element type and names that need escaping.
fn every_op() -> Graph {
    let mut g = Graph::new("test");
    let ids = g.add_input(
        "input \"ids\"",
        TensorType::new(DType::I64, vec![Dim::known(1), Dim::SEQ]),
    );
    let big = Tensor::F32(ArrayD::from_elem(IxDyn(&[3, 4]), 0.25));
    let w = g.add_const("w\\eight\n", big);
    let f = g.add_const(
        "f",
        Tensor::f32_from(&[3], vec![0.1, f32::NEG_INFINITY, -0.0]).unwrap(),
    );
    let i = g.add_const("i", Tensor::vec_i64(vec![i64::MAX, i64::MIN + 1, -1]));
    let b = g.add_const("b", Tensor::Bool(ArrayD::from_elem(IxDyn(&[]), true)));
    let x = ValueRef::from(w);
    let ops = plain_ops()
        .into_iter()
        .chain(onnx_ops_with_attributes())
        .chain(high_level_ops_with_attributes());
    for op in ops {
        let n = g.add_opt("n", op, &[Some(x), None, Some(f.into())]);
        g.g[n].outputs = vec![Some(TensorType::new(
            DType::F32,
            vec![Dim::SEQ, Dim::known(4)],
        ))];
    }
    let split = Op::Split {
        axis: 1,
        split: Some(vec![1, 3]),
        outputs: 2,
    };
    let s = g.add("s", split, &[x, i.into()]);
    g.g[s].outputs[1] = Some(TensorType::new(
        DType::F32,
        vec![Dim::known(3), Dim::known(3)],
    ));
    let last = g.add(
        "last",
        Op::Add,
        &[ValueRef { node: s, output: 1 }, b.into(), ids.into()],
    );
    g.outputs.push(("out \"a\"".into(), last.into()));
    g.outputs
        .push(("second".into(), ValueRef { node: s, output: 0 }));
    g
}

#[test]
fn every_op_reads_back_as_printed() {
    let g = every_op();
    let text = render(&g);
    let back = parse_with(&text, &|n| named_constants(&g).remove(n)).unwrap();
    assert_eq!(render(&back), text);
    // The ops themselves (attributes, constant values) are equal, in the same order.
    let ops = |g: &Graph| -> Vec<Op> {
        g.topo_order()
            .iter()
            .map(|&i| g.node(i).op.clone())
            .collect()
    };
    let (a, b) = (ops(&g), ops(&back));
    assert_eq!(a.len(), b.len());
    for op in &a {
        assert!(b.contains(op), "{op:?} lost in\n{text}");
    }
    assert_eq!(back.outputs.len(), 2);
    assert_eq!(back.outputs[0].0, "out \"a\"");
}

#[test]
fn constants_printed_by_name_take_supplied_values_or_placeholders() {
    let text = "%0 = const \"w\" : f32[2,3]\n%1 = const \"k\" : i64[9]\n%2 = Add(%0, %0) : ?\noutput \"y\" = %2\n";
    let g = parse(text).unwrap();
    let w = g.const_value(ValueRef::from(g.topo_order()[0])).unwrap();
    assert_eq!(w.shape(), [2, 3]);
    assert!(w.as_f32().unwrap().iter().all(|v| (-1.0..1.0).contains(v)));
    assert_eq!(
        Some(w),
        placeholder("w", &TensorType::known(DType::F32, &[2, 3])).as_ref()
    );
    assert_ne!(
        placeholder("v", &TensorType::known(DType::F32, &[2, 3])).as_ref(),
        Some(w)
    );
    let k = g.const_value(ValueRef::from(g.topo_order()[1])).unwrap();
    assert_eq!(k.to_i64_vec(), vec![0; 9]);
    let ones = Tensor::F32(ArrayD::ones(IxDyn(&[2, 3])));
    let supplied = parse_with(text, &|n| (n == "w").then(|| ones.clone())).unwrap();
    assert_eq!(
        supplied.const_value(ValueRef::from(supplied.topo_order()[0])),
        Some(&ones)
    );
    let wrong = parse_with(text, &|_| Some(Tensor::scalar_f32(1.0))).unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "1:12: constant \"w\" was supplied as f32[] but the text says f32[2,3]"
    );
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let g =
        parse("; a test\n\n%0 = input \"ids\" : i64[1,T]\n  ; more\noutput \"o\" = %0\n").unwrap();
    assert_eq!(
        render(&g),
        "%0 = input \"ids\" : i64[1,T]\noutput \"o\" = %0\n"
    );
}

/// Each bad line gives one line naming the place and what was expected.
#[test]
fn errors_name_line_column_and_expectation() {
    let cases = [
        ("%0 = input \"x\" : i64[1,T]\n%1 = Frob(%0) : ?", "2:6: expected an operation name, found `Frob`"),
        ("%0 = Add(%1, %1) : ?", "1:10: value %1 is not defined on a line above"),
        ("%0 = input \"x\" : i64[1,T]\n%0 = Neg(%0) : ?", "2:1: value %0 is defined twice"),
        ("%0 = Add(%0 : ?", "1:13: expected `,` or `)` after an argument, found `:`"),
        ("%0 = input \"x : i64[1]", "1:23: expected `\"` to close the name, found end of line"),
        ("%0 = input \"x\" : f16[1]", "1:18: expected an element type (f32, i64, bool), found `f16`"),
        ("%0 = input \"x\" : i64[1,Q]", "1:24: expected a dimension such as `64`, `T` or `2T+1`"),
        ("%0 = const [1.0, 2.0] : f32[3]", "1:12: the literal has 2 values but its type f32[3] holds Some(3)"),
        ("%0 = const [1.0] : f32[T]", "1:12: a constant needs a known shape, found f32[T]: no `T`, no negative sizes"),
        ("%0 = const [x] : f32[1]", "1:13: expected an f32 number, found `x`"),
        ("%0 = const \"w\" : ?", "1:12: a constant needs its type, not `?`"),
        ("%0 = const \"w\" : f32[100000,100000]", "1:12: constant \"w\" of type f32[100000,100000]: no value supplied, and a placeholder needs a known shape of at most 67108864 elements"),
        ("%0 = Softmax {axis=1 axes=1}() : ?", "1:22: operation Softmax has no attribute `axes`"),
        ("%0 = Softmax {axes=1}() : ?", "1:14: expected attribute `axis=…`"),
        ("%0 = Softmax() : ?", "1:13: expected attribute `axis=…`"),
        ("%0 = Softmax {axis=one}() : ?", "1:20: expected an integer for `axis`, found `one`"),
        ("%0 = Softmax {axis=1 axis=2}() : ?", "1:22: attribute `axis` given twice"),
        ("%0, %1 = Add() : ?, ?", "1:1: Add defines 1 values, found 2 names"),
        ("%0 = Split {axis=0 split=input outputs=2}() : ?", "1:1: Split defines 2 values, found 1 names"),
        ("%0 = Neg() : ?, ?", "1:1: 1 values defined but 2 types given"),
        ("%0 = Neg() : ? junk", "1:16: expected `,` and another type, or the end of the line, found `j`"),
        ("%0 Neg() : ?", "1:4: expected `=` after the value names, found `N`"),
        ("0 = Neg() : ?", "1:1: expected a value name such as `%3`, found `0`"),
        ("outp \"x\" = %0", "1:1: expected a value name such as `%3` or `output`"),
        ("%0 = Transpose {perm=sideways}() : ?", "1:22: expected a list or `reverse`, found `sideways`"),
        ("%0 = Shape {start=0 end=Maybe(1)}() : ?", "1:25: expected `Some(an integer)` or `None`"),
        ("%0 = causal_mask {allowed=1}() : ?", "1:27: attribute `allowed` is a flag: no `=` value"),
        ("%0 = ConstantOfShape {value=[1]:i64[2]}() : ?", "1:29: the literal has 1 values but its type i64[2] holds Some(2)"),
        ("%0 = input \"x\" : i64[99999999999999999999]", "1:22: dimension `99999999999999999999` is out of range"),
        ("%0 = input \"a\\qb\" : ?", "1:14: unknown escape in a quoted name"),
    ];
    for (text, want) in cases {
        let got = parse(text).expect_err(text).to_string();
        assert_eq!(got, want, "for {text:?}");
        assert!(!got.contains('\n'));
    }
}

/// Every prefix of a valid text, and every single-character corruption of it, parses or
/// fails with an error; none panics.
#[test]
fn no_input_panics() {
    let text = render(&every_op());
    let chars: Vec<char> = text.chars().collect();
    for cut in 0..chars.len() {
        let s: String = chars[..cut].iter().collect();
        let _ = parse(&s);
    }
    for (i, _) in chars.iter().enumerate().step_by(3) {
        for r in [
            '%', '"', '[', ']', '{', '}', '(', ')', '_', '-', 'T', '9', ' ', ',', ':', '\\', 'é',
        ] {
            let mut v = chars.clone();
            v[i] = r;
            let s: String = v.into_iter().collect();
            if let Err(e) = parse(&s) {
                assert!(e.line >= 1 && e.col >= 1 && !e.to_string().contains('\n'));
            }
        }
    }
}
