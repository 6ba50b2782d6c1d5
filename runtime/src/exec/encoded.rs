//! The model as a party holds it for its sessions, made once from the plan (and, at the
//! server, the weights file): the packing of each weight product and the server's weights in the
//! forms the products read them.

use std::collections::{HashMap, HashSet};

use ciphergpt_compiler::plan::{instruction::Op, Linear, Plan, WeightsFile};

use super::stock::decode_products;
use crate::protocols::linear::{EncodedWeights, Packing, ServerWeights};
use crate::protocols::shares::Ring;
use crate::protocols::ProtocolError;

/// What a party prepares from the plan once, before any session: the packing of every weight
/// product (both parties, from public shapes and weight widths) and, at the server, every
/// product's weights as integers, the decode step's RLWE products' weights pre-encoded, and the
/// signed biases and position tables.
pub struct EncodedModel {
    /// Per weight id used as a product's right operand.
    packing: HashMap<u32, Packing>,
    /// The server's pre-encoded weights of the decode program's products that run under RLWE
    /// ([`Linear::ONLINE`]), per weight id.
    encoded: HashMap<u32, EncodedWeights>,
    /// The server's biases and position tables as signed integers, per weight id (empty for
    /// the weights used only through their encodings; no entries at the client).
    signed: Vec<Vec<i64>>,
    /// The server's weights of every product as 32-bit integers, per weight id: a prepared
    /// product's online part is local to them ([`crate::protocols::masked_matmul`]), and the
    /// products that pack several rows per ciphertext encode them on the way.
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
        let mut read = HashSet::new();
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
        // Pre-encoded: only the weights of products that run under RLWE in a decode step, in
        // the decode packing. Every other product (the prefill's, on its rows; a preparation's,
        // on its batch) packs several rows per ciphertext and encodes the weight on the way from
        // its integers, which the server holds for every product.
        let online: HashSet<u32> = decode_products(plan)
            .filter(|&(_, method)| method == Linear::ONLINE)
            .map(|(w, _)| w)
            .collect();
        let mut packing = HashMap::new();
        let mut encoded = HashMap::new();
        let mut plain = HashMap::new();
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
                let v = w.values();
                if online.contains(&id) {
                    encoded.insert(id, EncodedWeights::new(&p, &v)?);
                }
                if v.iter().any(|&x| i32::try_from(x).is_err()) {
                    return Err(ProtocolError::Invalid(format!(
                        "weight '{}': values beyond 32 bits cannot be multiplied",
                        info.name
                    )));
                }
                plain.insert(id, v.into_iter().map(|x| x as i32).collect());
            }
            packing.insert(id, p);
        }
        Ok(EncodedModel {
            packing,
            encoded,
            signed,
            plain,
        })
    }

    /// Bytes of pre-encoded weights held and of the products' integer weights.
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

    /// The packing of weight `w`'s product on `rows` rows: the decode packing for one row, else
    /// the one [`Packing::new`] chooses for `rows` (several rows per ciphertext). Both parties
    /// choose it from public values.
    pub(super) fn packing_for(&self, w: u32, rows: usize) -> Result<Packing, ProtocolError> {
        let p = self.packing(w)?;
        if rows <= 1 {
            return Ok(*p);
        }
        let ring = Ring::new(p.ring_bits)?;
        Packing::new(ring, p.k, p.n, p.weight_bits, rows)
    }

    /// The server's weight `w` for a product in `packing`: its encoding when it is held for
    /// that packing, else its integers, encoded on the way.
    pub(super) fn server_weights(
        &self,
        w: u32,
        packing: &Packing,
    ) -> Result<ServerWeights<'_>, ProtocolError> {
        match self.encoded.get(&w) {
            Some(e) if e.packing() == packing => Ok(ServerWeights::Encoded(e)),
            _ => self.plain_weights(w).map(ServerWeights::Plain),
        }
    }

    /// The server's integer weights of a product.
    pub(super) fn plain_weights(&self, w: u32) -> Result<&[i32], ProtocolError> {
        self.plain
            .get(&w)
            .map(|v| &v[..])
            .ok_or_else(|| ProtocolError::Invalid(format!("weight {w} is not held")))
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
