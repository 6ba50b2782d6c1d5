//! Weights for the DSL front end: tensors read from a safetensors file, or generated from a seed.
//!
//! Seeded weights are reproducible and independent of thread count: each tensor is cut into
//! fixed-size chunks, and chunk `i` of tensor `name` is drawn from a ChaCha8 stream keyed by
//! `(seed, name)` with stream number `i`. Chunks are generated in parallel (rayon).

use crate::error::{CompileError, Result};
use crate::tensor::Tensor;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// How a seeded weight is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    /// Independent samples of `N(mean, std²)`.
    Normal {
        mean: f32,
        std: f32,
    },
}

impl Init {
    /// GPT-2's initialisation of weight matrices: `N(0, 0.02²)`.
    pub const GPT2: Init = Init::Normal {
        mean: 0.0,
        std: 0.02,
    };
}

/// Elements per independently seeded chunk.
const CHUNK: usize = 1 << 16;

/// The values of a seeded weight of `len` elements.
pub fn seeded_values(seed: u64, name: &str, len: usize, init: Init) -> Vec<f32> {
    match init {
        Init::Zeros => vec![0.0; len],
        Init::Ones => vec![1.0; len],
        Init::Normal { mean, std } => {
            let key = chacha_key(seed, name);
            let mut out = vec![0.0f32; len];
            out.par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(i, chunk)| fill_normal(&key, i as u64, chunk, mean, std));
            out
        }
    }
}

/// A seeded weight as a tensor of the given shape.
pub fn seeded_tensor(seed: u64, name: &str, shape: &[usize], init: Init) -> Tensor {
    let len = shape.iter().product();
    let values = seeded_values(seed, name, len, init);
    Tensor::f32_from(shape, values).expect("length is the product of the shape")
}

/// A 256-bit ChaCha key from the seed and the tensor name (FNV-1a of the name, mixed with the
/// seed through SplitMix64).
fn chacha_key(seed: u64, name: &str) -> [u8; 32] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut s = seed;
    let mut state = splitmix64(&mut s) ^ h;
    let mut key = [0u8; 32];
    for word in key.chunks_exact_mut(8) {
        word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    key
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fill `out` with `N(mean, std²)` samples (Box–Muller) from stream `stream` of the key.
fn fill_normal(key: &[u8; 32], stream: u64, out: &mut [f32], mean: f32, std: f32) {
    let mut rng = ChaCha8Rng::from_seed(*key);
    rng.set_stream(stream);
    const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
    let (mean, std) = (mean as f64, std as f64);
    let mut pairs = out.chunks_exact_mut(2);
    let draw = |rng: &mut ChaCha8Rng| {
        // u1 in (0, 1] so that ln(u1) is finite; u2 in [0, 1).
        let u1 = ((rng.next_u64() >> 11) + 1) as f64 * TWO_POW_M53;
        let u2 = (rng.next_u64() >> 11) as f64 * TWO_POW_M53;
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        ((mean + std * r * c) as f32, (mean + std * r * s) as f32)
    };
    for pair in &mut pairs {
        let (a, b) = draw(&mut rng);
        pair[0] = a;
        pair[1] = b;
    }
    if let [last] = pairs.into_remainder() {
        *last = draw(&mut rng).0;
    }
}

/// An opened safetensors file.
pub struct WeightFile {
    path: String,
    bytes: Vec<u8>,
    /// Offset of the data section in `bytes`.
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

impl WeightFile {
    pub fn open(path: &Path) -> Result<WeightFile> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CompileError::Io {
            path: shown.clone(),
            source,
        })?;
        WeightFile::from_bytes(&shown, bytes)
    }

    /// A safetensors file already in memory; `path` is used in messages.
    pub fn from_bytes(path: &str, bytes: Vec<u8>) -> Result<WeightFile> {
        let (header_len, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| CompileError::Weights {
                path: path.to_string(),
                reason: format!("not a valid safetensors file: {e:?}"),
            })?;
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.clone()))
            .collect();
        Ok(WeightFile {
            path: path.to_string(),
            data_start: 8 + header_len,
            bytes,
            tensors,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The shape of a tensor, if the file holds it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|i| i.shape.as_slice())
    }

    /// Whether the tensor's element type can be read as f32 (F32, or converted from F16, BF16,
    /// F64); `Err` names the type otherwise.
    pub fn check_float(&self, name: &str) -> std::result::Result<(), String> {
        match self.tensors.get(name).map(|i| i.dtype) {
            Some(Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64) | None => Ok(()),
            Some(d) => Err(format!("{d:?}")),
        }
    }

    /// The tensor's values as f32, in row-major order.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let err = |reason: String| CompileError::Weights {
            path: self.path.clone(),
            reason,
        };
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| err(format!("no tensor named \"{name}\"")))?;
        let (lo, hi) = info.data_offsets;
        let data = lo
            .checked_add(self.data_start)
            .zip(hi.checked_add(self.data_start))
            .and_then(|(lo, hi)| self.bytes.get(lo..hi))
            .ok_or_else(|| err(format!("tensor \"{name}\": data offsets out of range")))?;
        let count: usize = info.shape.iter().product();
        let width = match info.dtype {
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            d => {
                return Err(err(format!(
                    "tensor \"{name}\" holds {d:?} values; ciphergpt reads F32, F16, BF16 or F64"
                )))
            }
        };
        if count.checked_mul(width) != Some(data.len()) {
            return Err(err(format!(
                "tensor \"{name}\": {} bytes of data for shape {:?}",
                data.len(),
                info.shape
            )));
        }
        Ok(match info.dtype {
            Dtype::F32 => data
                .par_chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => data
                .par_chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
                .collect(),
            Dtype::BF16 => data
                .par_chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            _ => data
                .par_chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        })
    }
}

/// IEEE binary16 to binary32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as u32;
    match exp {
        0 => sign * mant as f32 * (2.0f32).powi(-24),
        31 if mant == 0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => {
            let bits = ((h as u32 & 0x8000) << 16) | (((exp + 112) as u32) << 23) | (mant << 13);
            f32::from_bits(bits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn seeded_normal_is_reproducible_and_chunk_independent() {
        let a = seeded_values(7, "w", 3 * CHUNK + 5, Init::GPT2);
        let b = seeded_values(7, "w", 3 * CHUNK + 5, Init::GPT2);
        assert_eq!(a, b);
        // A shorter tensor of the same name is a prefix: chunks do not depend on the length.
        let c = seeded_values(7, "w", CHUNK + 1, Init::GPT2);
        assert_eq!(&a[..CHUNK], &c[..CHUNK]);
        assert_ne!(a, seeded_values(7, "v", 3 * CHUNK + 5, Init::GPT2));
        assert_ne!(a, seeded_values(8, "w", 3 * CHUNK + 5, Init::GPT2));
        // Chunks are different streams.
        assert_ne!(&a[..16], &a[CHUNK..CHUNK + 16]);
    }
}
