//! Fixed-point compilation: calibration and scale selection.

pub mod calibrate;
