//! Symbolic dimensions and tensor types.

use crate::tensor::DType;
use std::fmt;

/// A dimension `t·T + c`, affine in the sequence length `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dim {
    pub t: i64,
    pub c: i64,
}

impl Dim {
    /// The sequence length `T`.
    pub const SEQ: Dim = Dim { t: 1, c: 0 };

    pub const fn known(c: i64) -> Dim {
        Dim { t: 0, c }
    }

    /// The value when it does not depend on `T`.
    pub fn as_known(self) -> Option<i64> {
        (self.t == 0).then_some(self.c)
    }

    pub fn is_seq(self) -> bool {
        self == Dim::SEQ
    }

    /// The value at a concrete sequence length.
    pub fn at(self, seq: i64) -> i64 {
        self.t * seq + self.c
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.t, self.c) {
            (0, c) => write!(f, "{c}"),
            (1, 0) => write!(f, "T"),
            (t, 0) => write!(f, "{t}T"),
            (1, c) if c > 0 => write!(f, "T+{c}"),
            (1, c) => write!(f, "T{c}"),
            (t, c) if c > 0 => write!(f, "{t}T+{c}"),
            (t, c) => write!(f, "{t}T{c}"),
        }
    }
}

/// Element type and symbolic shape of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> Self {
        TensorType { dtype, shape }
    }

    pub fn known(dtype: DType, shape: &[usize]) -> Self {
        TensorType {
            dtype,
            shape: shape.iter().map(|&d| Dim::known(d as i64)).collect(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The concrete shape at sequence length `seq`.
    pub fn shape_at(&self, seq: usize) -> Vec<usize> {
        self.shape
            .iter()
            .map(|d| d.at(seq as i64).max(0) as usize)
            .collect()
    }

    pub fn last(&self) -> Option<Dim> {
        self.shape.last().copied()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}
