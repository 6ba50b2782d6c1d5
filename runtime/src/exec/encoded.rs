//! The model as a party holds it for its sessions, made once from the plan (and, at the
//! server, the weights file): the packing of each weight product and the server's weights in the
//! forms the products read them.

use std::collections::HashMap;

use ciphergpt_compiler::plan::{instruction::Op, Plan, WeightsFile};

use super::stock::prepared_products;
use crate::protocols::linear::{EncodedWeights, Packing};
use crate::protocols::shares::Ring;
use crate::protocols::ProtocolError;

/// What a party prepares from the plan once, before any session: the packing of every weight
/// product (both parties, from public shapes and weight widths) and, at the server, the weights
/// pre-encoded for it and the signed biases and position tables.
pub struct EncodedModel {
    /// Per weight id used as a product's right operand.
    packing: HashMap<u32, Packing>,
    /// The server's pre-encoded weights, per weight id.
    encoded: HashMap<u32, EncodedWeights>,
    /// The server's biases and position tables as signed integers, per weight id (empty for
    /// the weights used only through their encodings; no entries at the client).
    signed: Vec<Vec<i64>>,
    /// The server's weights of the decode program's prepared products ([`masked_matmul`]), as
    /// 32-bit integers (the online product is local to it), per weight id.
    plain: HashMap<u32, Vec<i32>>,
}

impl EncodedModel {
    /// Packings for `plan`'s weight products and, when `weights` is given (the server), their
    /// encodings. The token table's product is the one-hot row of a token times the table.
    pub fn new(plan: &Plan, weights: Option<&WeightsFile>) -> Result<EncodedModel, ProtocolError> {
        let ring = Ring::new(plan.ring_bits)?;
        if let Some(w) = weights {
            if w.tensors.len() != plan.weights.len() {
                return Err(ProtocolError::Invalid(format!(
                    "the weights file has {} tensors, the plan {}",
                    w.tensors.len(),
                    plan.weights.len()
                )));
            }
        }
        // Weights read as signed integers during a run: biases and position tables. The others
        // are only used through their encodings (the server's memory: 8 bytes per weight as
        // signed integers, 1 GB for GPT-2 small).
        let mut read = std::collections::HashSet::new();
        let programs = || plan.prefill.iter().chain(plan.decode.iter());
        for ins in programs().flat_map(|p| p.instructions.iter()) {
            match &ins.op {
                Some(Op::Linear(l)) | Some(Op::Logits(l)) => read.extend(l.bias),
                Some(Op::Embed(e)) => {
                    read.insert(e.position_table);
                }
                _ => {}
            }
        }
        let signed: Vec<Vec<i64>> = match weights {
            Some(w) => (0..w.tensors.len() as u32)
                .map(|id| {
                    if read.contains(&id) {
                        w.tensors[id as usize].values()
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let mut packing = HashMap::new();
        let mut encoded = HashMap::new();
        for ins in programs().flat_map(|p| p.instructions.iter()) {
            let id = match &ins.op {
                Some(Op::Linear(l)) | Some(Op::Logits(l)) => l.weight,
                Some(Op::Embed(e)) => e.token_table,
                _ => continue,
            };
            if packing.contains_key(&id) {
                continue;
            }
            let info = plan.weights.get(id as usize).ok_or_else(|| {
                ProtocolError::Invalid(format!("instruction '{}': no weight {id}", ins.name))
            })?;
            let (k, n) = match info.shape.as_slice() {
                [k, n] => (*k as usize, *n as usize),
                other => {
                    return Err(ProtocolError::Invalid(format!(
                        "weight '{}' has shape {other:?}, not a matrix",
                        info.name
                    )))
                }
            };
            let p = Packing::new(ring, k, n, info.bits.max(1), 1)?;
            if let Some(w) = weights.and_then(|w| w.tensors.get(id as usize)) {
                encoded.insert(id, EncodedWeights::new(&p, &w.values())?);
            }
            packing.insert(id, p);
        }
        let mut plain = HashMap::new();
        if let Some(w) = weights {
            for (id, _) in prepared_products(plan) {
                if let Some(t) = w.tensors.get(id as usize) {
                    let v = t.values();
                    if v.iter().any(|&x| i32::try_from(x).is_err()) {
                        return Err(ProtocolError::Invalid(format!(
                            "weight {id}: values beyond 32 bits cannot be prepared"
                        )));
                    }
                    plain.insert(id, v.into_iter().map(|x| x as i32).collect());
                }
            }
        }
        Ok(EncodedModel {
            packing,
            encoded,
            signed,
            plain,
        })
    }

    /// Bytes of pre-encoded weights held (and of the prepared products' integer weights).
    pub fn encoded_bytes(&self) -> usize {
        self.encoded.values().map(|e| e.bytes()).sum::<usize>()
            + self.plain.values().map(|v| 4 * v.len()).sum::<usize>()
    }

    /// The packing of weight `w`'s products.
    pub(super) fn packing(&self, w: u32) -> Result<&Packing, ProtocolError> {
        self.packing.get(&w).ok_or_else(|| {
            ProtocolError::Invalid(format!("weight {w} was not prepared for a product"))
        })
    }

    /// The server's encoding of weight `w`.
    pub(super) fn encoding(&self, w: u32) -> Result<&EncodedWeights, ProtocolError> {
        self.encoded
            .get(&w)
            .ok_or_else(|| ProtocolError::Invalid(format!("weight {w} is not encoded")))
    }

    /// The server's integer weights of a prepared product.
    pub(super) fn plain_weights(&self, w: u32) -> Result<&[i32], ProtocolError> {
        self.plain.get(&w).map(|v| &v[..]).ok_or_else(|| {
            ProtocolError::Invalid(format!("weight {w} is not held for a prepared product"))
        })
    }

    /// The server's signed values of weight `id` (a bias or a position table), when it holds
    /// them.
    pub(super) fn signed(&self, id: u32) -> Option<&[i64]> {
        self.signed.get(id as usize).map(|v| &v[..])
    }

    /// Whether the weights are held (the server's model), for a plan of `weights` tensors.
    pub(super) fn holds_weights(&self, weights: usize) -> bool {
        self.signed.len() == weights
    }
}
