//! Dense tensors of the three element types the IR knows (f32, i64, bool).
//!
//! Used for constants in the graph, for weights, and by the float interpreter.

use ndarray::{ArrayD, IxDyn};
use std::fmt;

/// Element type of a tensor value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    F32,
    I64,
    Bool,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        })
    }
}

/// A dense tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    Bool(ArrayD<bool>),
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::I64(_) => DType::I64,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(a) => a.shape(),
            Tensor::I64(a) => a.shape(),
            Tensor::Bool(a) => a.shape(),
        }
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor::F32(ArrayD::from_elem(IxDyn(&[]), v))
    }

    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor::I64(ArrayD::from_elem(IxDyn(&[]), v))
    }

    pub fn vec_i64(v: Vec<i64>) -> Tensor {
        let n = v.len();
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("1-D shape matches length"))
    }

    pub fn f32_from(shape: &[usize], data: Vec<f32>) -> Option<Tensor> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(Tensor::F32)
    }

    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match self {
            Tensor::I64(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<&ArrayD<bool>> {
        match self {
            Tensor::Bool(a) => Some(a),
            _ => None,
        }
    }

    /// Every element as f64 (bool as 0/1), in logical order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Tensor::F32(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::I64(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect(),
        }
    }

    /// Every element as i64 (f32 truncated toward zero, bool as 0/1), in logical order.
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self {
            Tensor::F32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::I64(a) => a.iter().copied().collect(),
            Tensor::Bool(a) => a.iter().map(|&v| v as i64).collect(),
        }
    }

    /// Whether all elements equal the first one (true for empty tensors).
    pub fn is_uniform(&self) -> bool {
        match self {
            Tensor::F32(a) => a
                .iter()
                .all(|v| v.to_bits() == a.iter().next().unwrap().to_bits()),
            Tensor::I64(a) => a.iter().all(|v| Some(v) == a.iter().next()),
            Tensor::Bool(a) => a.iter().all(|v| Some(v) == a.iter().next()),
        }
    }
}
