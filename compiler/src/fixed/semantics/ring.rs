//! Ring and encoding helpers: signed representatives of `Z_2^ℓ`, fixed-point encoding,
//! truncation and rounding shifts.

use super::{SemResult, SemanticsError};

/// `v` if it is a signed representative of `Z_2^ring_bits`, i.e. `−2^(ℓ−1) ≤ v < 2^(ℓ−1)`;
/// an error otherwise (also when `ring_bits` is not in `1..=64`).
pub fn check_ring(v: i64, ring_bits: u32) -> SemResult<i64> {
    if ring_bits == 0 || ring_bits > 64 {
        return Err(SemanticsError::new(
            "check_ring",
            format!("ring width {ring_bits} is not in 1..=64"),
        ));
    }
    if ring_bits == 64 {
        return Ok(v);
    }
    let half = 1i64 << (ring_bits - 1);
    if v < -half || v >= half {
        return Err(SemanticsError::new(
            "check_ring",
            format!(
                "value {v} is outside the ring [-2^{0}, 2^{0})",
                ring_bits - 1
            ),
        ));
    }
    Ok(v)
}

/// The ring element (in `[0, 2^ℓ)`) of a signed representative; errors as [`check_ring`].
pub fn to_ring_u64(v: i64, ring_bits: u32) -> SemResult<u64> {
    check_ring(v, ring_bits)?;
    let mask = if ring_bits == 64 {
        u64::MAX
    } else {
        (1u64 << ring_bits) - 1
    };
    Ok((v as u64) & mask)
}

/// The signed representative of a ring element `u ∈ [0, 2^ℓ)` (errors when `u ≥ 2^ℓ`).
pub fn from_ring_u64(u: u64, ring_bits: u32) -> SemResult<i64> {
    if ring_bits == 0 || ring_bits > 64 {
        return Err(SemanticsError::new(
            "from_ring_u64",
            format!("ring width {ring_bits} is not in 1..=64"),
        ));
    }
    if ring_bits == 64 {
        return Ok(u as i64);
    }
    if u >> ring_bits != 0 {
        return Err(SemanticsError::new(
            "from_ring_u64",
            format!("ring element {u} is not below 2^{ring_bits}"),
        ));
    }
    let shift = 64 - ring_bits;
    Ok(((u << shift) as i64) >> shift)
}

/// `round(x·2^frac)`, half away from zero. Saturates at the `i64` range; NaN encodes as 0.
/// (Compile-time only: fitting tables and encoding weights and test inputs.)
pub fn encode(x: f64, frac: u32) -> i64 {
    libm::ldexp(x, frac.min(1000) as i32).round() as i64
}

/// `v / 2^frac` (exact when `|v| < 2^53`).
pub fn decode(v: i64, frac: u32) -> f64 {
    libm::ldexp(v as f64, -(frac.min(1000) as i32))
}

/// `floor(x / 2^s)` (the arithmetic shift; `s ≥ 64` gives 0 or −1).
pub fn trunc_floor(x: i64, s: u32) -> i64 {
    if s >= 64 {
        if x < 0 {
            -1
        } else {
            0
        }
    } else {
        x >> s
    }
}

/// `floor((x + 2^(s−1)) / 2^s)`: division by `2^s` rounding half up; `s = 0` is the identity.
/// Computed in `i128`, so it never overflows; the result always fits in `i64`.
pub fn round_shift(x: i64, s: u32) -> i64 {
    round_shift_i128(x as i128, s) as i64
}

/// [`round_shift`] on an `i128` (the caller bounds the input to `|x| < 2^126`).
pub(super) fn round_shift_i128(x: i128, s: u32) -> i128 {
    match s {
        0 => x,
        1..=126 => (x + (1i128 << (s - 1))) >> s,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_and_encoding() {
        assert_eq!(check_ring((1 << 36) - 1, 37), Ok((1 << 36) - 1));
        assert_eq!(check_ring(-(1 << 36), 37), Ok(-(1 << 36)));
        assert!(check_ring(1 << 36, 37).is_err());
        assert!(check_ring(-(1 << 36) - 1, 37).is_err());
        assert!(check_ring(0, 0).is_err());
        assert!(check_ring(0, 65).is_err());
        assert_eq!(check_ring(i64::MIN, 64), Ok(i64::MIN));
        for v in [-(1i64 << 36), -1, 0, 5, (1 << 36) - 1] {
            assert_eq!(from_ring_u64(to_ring_u64(v, 37).unwrap(), 37), Ok(v));
        }
        assert_eq!(to_ring_u64(-1, 37), Ok((1 << 37) - 1));
        assert!(from_ring_u64(1 << 37, 37).is_err());
        assert_eq!(from_ring_u64(u64::MAX, 64), Ok(-1));
        assert_eq!(encode(0.5 / 4096.0, 12), 1);
        assert_eq!(encode(-0.5 / 4096.0, 12), -1);
        assert_eq!(encode(1.25, 12), 5120);
        assert_eq!(encode(f64::NAN, 12), 0);
        assert_eq!(encode(1e300, 12), i64::MAX);
        assert_eq!(decode(-5120, 12), -1.25);
        assert_eq!(trunc_floor(-1, 3), -1);
        assert_eq!(trunc_floor(-9, 3), -2);
        assert_eq!(trunc_floor(9, 3), 1);
        assert_eq!(trunc_floor(i64::MIN, 64), -1);
        assert_eq!(trunc_floor(i64::MAX, 100), 0);
        assert_eq!(round_shift(5, 1), 3);
        assert_eq!(round_shift(-5, 1), -2);
        assert_eq!(round_shift(7, 0), 7);
        assert_eq!(round_shift(i64::MAX, 1), 1 << 62);
        assert_eq!(round_shift(i64::MIN, 64), 0);
        assert_eq!(round_shift(i64::MAX, 200), 0);
    }
}
