//! Exact integer semantics ("the oracle") of the nonlinear fixed-point primitives.
//!
//! Every function here defines, bit for bit, what the corresponding two-party protocol must
//! compute. The cleartext simulator calls these functions, and every protocol test compares its
//! reconstructed output against them.
//!
//! Rules of this module:
//! - Evaluation is pure integer code (`i64`, with `i128` for intermediates): deterministic, no
//!   floating point. Floating point is used only when *fitting* the public tables (at compile
//!   time, with `libm` so the fitted integers do not depend on the platform's math library), in
//!   the float references, and in the error-measurement helpers.
//! - Nothing overflows, wraps or panics: when a value leaves its documented bound the function
//!   returns a [`SemanticsError`] naming the function and the value.
//!
//! Conventions: a fixed-point value with `f` fractional bits is an `i64` holding `round(x·2^f)`
//! (or `floor`, as each primitive states); ring width `ℓ ≤ 64`, ring values are the signed
//! representatives in `[−2^(ℓ−1), 2^(ℓ−1))` (see [`check_ring`]); `>>` is the arithmetic shift
//! (floor division by a power of two). The default activation scale is `f = 12`.
//!
//! The public tables ([`GeluTables`], [`ExpTables`], [`LayerNormParams`]) are plain integers that
//! go into the plan, so bit-exactness never depends on a math library at run time.
//!
//! One submodule per family, all re-exported here: [`ring`] (ring representatives, encoding,
//! truncation and rounding), [`gelu`](mod@gelu) (the spline), [`softmax`] (exponential tables, one row),
//! [`inverse`] (reciprocal and inverse square root), [`layernorm`] and [`sampling`] (argmax,
//! top-K, temperature and the draw).

pub mod gelu;
pub mod inverse;
pub mod layernorm;
pub mod ring;
pub mod sampling;
pub mod softmax;

pub use gelu::*;
pub use inverse::{inv_pow, inv_tables, InvPower, InvTables};
pub use layernorm::*;
pub use ring::*;
pub use sampling::*;
pub use softmax::*;

/// Default number of fractional bits of activations.
pub const DEFAULT_FRAC: u32 = 12;

/// A value left its documented bound, or the parameters are malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{func}: {msg}")]
pub struct SemanticsError {
    /// The primitive (or helper) that refused.
    pub func: &'static str,
    /// What was out of bounds, with the value.
    pub msg: String,
}

impl SemanticsError {
    pub fn new(func: &'static str, msg: impl Into<String>) -> Self {
        SemanticsError {
            func,
            msg: msg.into(),
        }
    }
}

/// Result of this module.
pub type SemResult<T> = std::result::Result<T, SemanticsError>;

fn to_i64(func: &'static str, what: &str, v: i128) -> SemResult<i64> {
    i64::try_from(v)
        .map_err(|_| SemanticsError::new(func, format!("{what} = {v} does not fit in i64")))
}
