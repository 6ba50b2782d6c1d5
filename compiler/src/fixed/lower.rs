//! Lowering: the fused IR becomes a plan of two-party primitives, plus the server's weights.
//!
//! One walk over the fused graph in topological order. Activations get registers at
//! `frac` fractional bits; weights are encoded at `weight_frac` bits and biases at
//! `frac + weight_frac` (added before the truncation that brings the product back to `frac`).
//! Two foldings happen on the server's side, at compile time, so that nothing is computed on
//! shares that need not be:
//! - a LayerNorm's γ and β go into every linear layer that reads it (`W' = diag(γ)·W`,
//!   `b' = b + β·W`), so the two-party LayerNorm only normalises;
//! - attention's `1/√d` goes into the q columns of the projection that produces `qkv`.
//!
//! The prefill and decode programs have the same instructions; their registers have `T` rows in
//! prefill and one row in a decode step, and attention reads the persistent KV cache.

use super::calibrate::Ranges;
use super::convert;
use super::semantics::{self, GeluForm as SemGeluForm};
use crate::error::{CompileError, Result};
use crate::ir::{GeluForm, Graph, Op, ValueRef};
use crate::plan::{
    self, instruction, Instruction, Plan, Program, Register, Rows, WeightInfo, WeightTensor,
};
use crate::tensor::Tensor;
use ndarray::{ArrayD, Ix2};
use petgraph::stable_graph::NodeIndex;
use std::collections::HashMap;

/// GELU spline pieces (log2): 128 pieces of width 1/16 on [−4, 4]. 64 pieces (CipherGPT's
/// choice) leave about 1e-3 of approximation error in real units, which dominated the plan's
/// logit error on the trained model; see docs/plan.md.
pub const GELU_PIECES_LOG2: u32 = 7;

/// Most fractional bits of the attention scores. Softmax's exponential splits the clipped distance
/// (16.0 at the scores' scale, `frac + 4` bits) into two table digits, and the two-party lookup
/// takes tables of at most 256 entries: 12 bits of fraction give the 8 + 8 split.
pub const SCORE_FRAC_MAX: u32 = 12;

/// Choices the compiler makes or the user overrides.
#[derive(Clone, Debug)]
pub struct Scales {
    /// Ring width ℓ.
    pub ring_bits: u32,
    /// Fractional bits of activations.
    pub frac: u32,
    /// Fractional bits of weights.
    pub weight_frac: u32,
}

/// The plan's default decoding: K (1 is greedy) and the temperature's 16-bit fixed-point
/// reciprocal ([`plan::Sample`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoding {
    pub top_k: u32,
    pub inv_temperature: u32,
}

impl Default for Decoding {
    /// Greedy.
    fn default() -> Self {
        Decoding {
            top_k: 1,
            inv_temperature: 1 << plan::Sample::TEMPERATURE_FRAC,
        }
    }
}

/// The result of lowering: the plan (not yet sealed) and the weights in plan order.
pub struct Lowered {
    pub plan: Plan,
    pub weights: Vec<WeightTensor>,
}

struct Lowerer<'g> {
    graph: &'g Graph,
    ranges: &'g Ranges,
    scales: Scales,
    registers: Vec<Register>,
    reg_of: HashMap<ValueRef, u32>,
    weight_infos: Vec<WeightInfo>,
    weights: Vec<WeightTensor>,
    program: Vec<Instruction>,
    layer: usize,
}

fn err(graph: &Graph, id: NodeIndex, reason: impl Into<String>) -> CompileError {
    CompileError::Unfused {
        source_file: graph.source.clone(),
        node: graph.describe(id),
        reason: reason.into(),
        hint: "ciphergpt lowers GPT-2-style decoders (see docs/plan.md)".into(),
    }
}

/// Lower a fused graph.
pub fn lower(
    graph: &Graph,
    ranges: &Ranges,
    scales: Scales,
    decoding: Decoding,
) -> Result<Lowered> {
    let mut l = Lowerer {
        graph,
        ranges,
        scales,
        registers: Vec::new(),
        reg_of: HashMap::new(),
        weight_infos: Vec::new(),
        weights: Vec::new(),
        program: Vec::new(),
        layer: 0,
    };
    let mut model = plan::ModelInfo::default();
    for id in graph.topo_order() {
        l.node(id, &mut model)?;
    }
    let [(_, out)] = graph.outputs.as_slice() else {
        return Err(CompileError::Input(format!(
            "{}: expected one output (the logits)",
            graph.source
        )));
    };
    let logits = *l
        .reg_of
        .get(out)
        .ok_or_else(|| err(graph, out.node, "the output is not computed by the plan"))?;
    let token = l.register("next_token", Rows::One, 1, 0, false);
    let sample = l.sample(logits, decoding, &graph.source)?;
    l.program.push(Instruction {
        name: "sample".into(),
        inputs: vec![logits],
        outputs: vec![token],
        op: Some(instruction::Op::Sample(sample)),
    });
    model.layers = l.layer as u64;
    let program = Program {
        instructions: l.program,
    };
    let plan = Plan {
        source: graph
            .source
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        model: Some(model),
        ring_bits: l.scales.ring_bits,
        frac_bits: l.scales.frac,
        weights: l.weight_infos,
        registers: l.registers,
        prefill: Some(program.clone()),
        decode: Some(program),
        ..Default::default()
    };
    Ok(Lowered {
        plan,
        weights: l.weights,
    })
}

impl Lowerer<'_> {
    fn register(&mut self, name: &str, rows: Rows, cols: u64, frac: u32, persistent: bool) -> u32 {
        self.registers.push(Register {
            name: name.into(),
            rows: rows as i32,
            cols,
            frac_bits: frac,
            persistent,
        });
        (self.registers.len() - 1) as u32
    }

    fn activation(&mut self, v: ValueRef, name: &str, cols: usize) -> u32 {
        let r = self.register(name, Rows::Tokens, cols as u64, self.scales.frac, false);
        self.reg_of.insert(v, r);
        r
    }

    fn weight(&mut self, name: &str, shape: &[usize], frac: u32, values: &[f32]) -> Result<u32> {
        let ints: Vec<i64> = values
            .iter()
            .map(|&x| semantics::encode(x as f64, frac))
            .collect();
        let t = WeightTensor::from_values(name.into(), &ints);
        self.weights.push(t);
        // Smallest signed width holding every value.
        let bits = ints
            .iter()
            .map(|&v| 65 - if v < 0 { !v } else { v }.leading_zeros())
            .max()
            .unwrap_or(1);
        self.weight_infos.push(WeightInfo {
            name: name.into(),
            shape: shape.iter().map(|&d| d as u64).collect(),
            frac_bits: frac,
            bits,
        });
        Ok((self.weights.len() - 1) as u32)
    }

    fn input_reg(&self, id: NodeIndex, slot: usize) -> Result<u32> {
        let v = self
            .graph
            .input(id, slot)
            .ok_or_else(|| err(self.graph, id, format!("input {slot} missing")))?;
        self.reg_of.get(&v).copied().ok_or_else(|| {
            err(
                self.graph,
                id,
                format!("input {slot} is not a secret-shared activation"),
            )
        })
    }

    fn const_input(&self, id: NodeIndex, slot: usize) -> Result<&ArrayD<f32>> {
        self.graph
            .input(id, slot)
            .and_then(|v| self.graph.const_value(v))
            .and_then(Tensor::as_f32)
            .ok_or_else(|| {
                err(
                    self.graph,
                    id,
                    format!("input {slot} must be a constant f32 weight"),
                )
            })
    }

    /// An instruction from register `x` to a new activation register of the same width, which
    /// becomes the value of node `id`.
    fn same_width(&mut self, id: NodeIndex, x: u32, op: instruction::Op) {
        let cols = self.registers[x as usize].cols as usize;
        let name = format!("{}.out", self.graph.node(id).name);
        let r = self.activation(
            ValueRef {
                node: id,
                output: 0,
            },
            &name,
            cols,
        );
        self.push(id, vec![x], vec![r], op);
    }

    fn push(&mut self, id: NodeIndex, inputs: Vec<u32>, outputs: Vec<u32>, op: instruction::Op) {
        self.program.push(Instruction {
            name: self.graph.node(id).name.clone(),
            inputs,
            outputs,
            op: Some(op),
        });
    }

    /// The instructions of one node of the fused graph: none for inputs and constants, an error
    /// for an operation that is not a GPT operation.
    fn node(&mut self, id: NodeIndex, model: &mut plan::ModelInfo) -> Result<()> {
        let g = self.graph;
        match &g.node(id).op {
            Op::Input { .. } | Op::Const(_) => Ok(()),
            Op::Embedding => self.embedding(id, model),
            Op::LayerNorm { eps } => self.layer_norm(id, *eps),
            Op::Linear | Op::Logits => self.linear(id, matches!(g.node(id).op, Op::Logits), model),
            Op::Gelu { form } => self.gelu(id, *form),
            Op::ResidualAdd => self.residual_add(id),
            Op::Attention { heads, .. } => self.attention(id, *heads, model),
            other => Err(err(
                g,
                id,
                format!("{} is not a high-level operation", other.kind()),
            )),
        }
    }

    /// The token and position tables as weights, and the `Embed` instruction; records the
    /// vocabulary, width and positions in `model`.
    fn embedding(&mut self, id: NodeIndex, model: &mut plan::ModelInfo) -> Result<()> {
        let out = ValueRef {
            node: id,
            output: 0,
        };
        let name = self.graph.node(id).name.clone();
        let (wte, wpe) = (
            self.const_input(id, 1)?.clone(),
            self.const_input(id, 2)?.clone(),
        );
        let (v, c) = (wte.shape()[0], wte.shape()[1]);
        model.vocab = v as u64;
        model.width = c as u64;
        model.positions = wpe.shape()[0] as u64;
        let f = self.scales.frac;
        let te = self.weight(
            "token_table",
            wte.shape(),
            f,
            wte.as_slice()
                .unwrap_or(&wte.iter().copied().collect::<Vec<_>>()),
        )?;
        let pe = self.weight(
            "position_table",
            wpe.shape(),
            f,
            &wpe.iter().copied().collect::<Vec<_>>(),
        )?;
        let r = self.activation(out, &format!("{name}.out"), c);
        self.push(
            id,
            vec![],
            vec![r],
            instruction::Op::Embed(plan::Embed {
                token_table: te,
                position_table: pe,
                prepared: plan::Linear::ONLINE,
            }),
        );
        Ok(())
    }

    /// The `LayerNorm` instruction; the linear layers that read it fold in its γ and β.
    fn layer_norm(&mut self, id: NodeIndex, eps: f32) -> Result<()> {
        let g = self.graph;
        let out = ValueRef {
            node: id,
            output: 0,
        };
        let x = self.input_reg(id, 0)?;
        let c = self.registers[x as usize].cols as usize;
        // γ and β must fold into every reader.
        for (u, _) in g.users(out) {
            if !matches!(g.node(u).op, Op::Linear | Op::Logits) {
                return Err(err(g, id, "LayerNorm output read by something other than a linear layer; γ and β cannot be folded"));
            }
        }
        let input = g.input(id, 0).expect("checked");
        let spread = 2.0 * self.ranges.of(input) as f64;
        let p = semantics::layernorm_params(c, eps as f64, self.scales.frac, spread.max(1.0))
            .map_err(|e| err(g, id, e.to_string()))?;
        self.same_width(
            id,
            x,
            instruction::Op::LayerNorm(convert::layernorm_to_plan(&p)),
        );
        Ok(())
    }

    /// The `Gelu` instruction, its spline fitted to `form`.
    fn gelu(&mut self, id: NodeIndex, form: GeluForm) -> Result<()> {
        let g = self.graph;
        let x = self.input_reg(id, 0)?;
        let sem_form = match form {
            GeluForm::Tanh => SemGeluForm::Tanh,
            GeluForm::Erf => SemGeluForm::Erf,
        };
        let t = semantics::fit_gelu(self.scales.frac, 2, GELU_PIECES_LOG2, sem_form)
            .map_err(|e| err(g, id, e.to_string()))?;
        self.same_width(id, x, instruction::Op::Gelu(convert::gelu_to_plan(&t)));
        Ok(())
    }

    /// The `Add` instruction of a residual connection.
    fn residual_add(&mut self, id: NodeIndex) -> Result<()> {
        let out = ValueRef {
            node: id,
            output: 0,
        };
        let name = self.graph.node(id).name.clone();
        let (a, b) = (self.input_reg(id, 0)?, self.input_reg(id, 1)?);
        let c = self.registers[a as usize].cols as usize;
        let r = self.activation(out, &format!("{name}.out"), c);
        self.push(id, vec![a, b], vec![r], instruction::Op::Add(plan::Add {}));
        Ok(())
    }

    /// Causal attention: `SplitQkv` into q, k and v, `CacheAppend` of k and v to this layer's
    /// caches, the scores `QkT`, their `Softmax` and the product `Pv`; records the head count in
    /// `model`.
    fn attention(
        &mut self,
        id: NodeIndex,
        heads: usize,
        model: &mut plan::ModelInfo,
    ) -> Result<()> {
        let g = self.graph;
        let out = ValueRef {
            node: id,
            output: 0,
        };
        let name = g.node(id).name.clone();
        let qkv = self.input_reg(id, 0)?;
        let c3 = self.registers[qkv as usize].cols;
        let c = c3 / 3;
        model.heads = heads as u64;
        let layer = self.layer;
        self.layer += 1;
        let f = self.scales.frac;
        let q = self.register(&format!("{name}.q"), Rows::Tokens, c, f, false);
        let k = self.register(&format!("{name}.k"), Rows::Tokens, c, f, false);
        let v = self.register(&format!("{name}.v"), Rows::Tokens, c, f, false);
        let kc = self.register(
            &format!("layer{layer}.k_cache"),
            Rows::Positions,
            c,
            f,
            true,
        );
        let vc = self.register(
            &format!("layer{layer}.v_cache"),
            Rows::Positions,
            c,
            f,
            true,
        );
        self.push(
            id,
            vec![qkv],
            vec![q, k, v],
            instruction::Op::SplitQkv(plan::SplitQkv {}),
        );
        self.push(
            id,
            vec![k],
            vec![kc],
            instruction::Op::CacheAppend(plan::CacheAppend {}),
        );
        self.push(
            id,
            vec![v],
            vec![vc],
            instruction::Op::CacheAppend(plan::CacheAppend {}),
        );
        let fs = f.min(SCORE_FRAC_MAX);
        let scores = self.register(&format!("{name}.scores"), Rows::Tokens, 0, fs, false);
        self.push(
            id,
            vec![q, kc],
            vec![scores],
            instruction::Op::QkT(plan::HeadProduct {
                heads: heads as u32,
                shift: 2 * f - fs,
            }),
        );
        let t = semantics::fit_exp_tables(fs, f + 2, f).map_err(|e| err(g, id, e.to_string()))?;
        let probs = self.register(&format!("{name}.probs"), Rows::Tokens, 0, f, false);
        self.push(
            id,
            vec![scores],
            vec![probs],
            instruction::Op::Softmax(convert::softmax_to_plan(&t, heads as u32)),
        );
        let r = self.activation(out, &format!("{name}.out"), c as usize);
        self.push(
            id,
            vec![probs, vc],
            vec![r],
            instruction::Op::Pv(plan::HeadProduct {
                heads: heads as u32,
                shift: t.frac_out,
            }),
        );
        Ok(())
    }

    /// The token choice from the `logits` register: the decoding mode, and the softmax over the
    /// top-K survivors at the attention scores' scale (at most [`SCORE_FRAC_MAX`] fractional
    /// bits, so the same 8 + 8 exp digits); the temperature step's shift also brings the logits'
    /// `f + f_w` fractional bits down to it.
    fn sample(&self, logits: u32, d: Decoding, source: &str) -> Result<plan::Sample> {
        let f = self.scales.frac;
        let f_logits = self.registers[logits as usize].frac_bits;
        let vocab = self.registers[logits as usize].cols;
        plan::Sample::check_decoding(d.top_k, d.inv_temperature, vocab)
            .map_err(|e| CompileError::Input(format!("{source}: {e}")))?;
        let fs = f_logits.min(SCORE_FRAC_MAX);
        let t = semantics::fit_exp_tables(fs, f + 2, f)
            .map_err(|e| CompileError::Input(format!("{source}: sampling softmax: {e}")))?;
        Ok(plan::Sample {
            top_k: d.top_k,
            inv_temperature: d.inv_temperature,
            shift: plan::Sample::TEMPERATURE_FRAC + f_logits - fs,
            softmax: Some(convert::softmax_to_plan(&t, 1)),
        })
    }

    /// `linear(x, W, b)` or `logits(x, wte)`, folding a preceding LayerNorm's γ, β and, for the
    /// projection that feeds attention, the `1/√d` scale into the q columns.
    fn linear(&mut self, id: NodeIndex, logits: bool, _model: &mut plan::ModelInfo) -> Result<()> {
        let g = self.graph;
        let out = ValueRef {
            node: id,
            output: 0,
        };
        let name = g.node(id).name.clone();
        let x = self.input_reg(id, 0)?;
        // W as [K, N]; logits store the table as [V, C].
        let w0 = self.const_input(id, 1)?;
        let mut w: ndarray::Array2<f32> = w0
            .clone()
            .into_dimensionality::<Ix2>()
            .map_err(|_| err(g, id, "weight must be a matrix"))?;
        if logits {
            w = w.t().to_owned();
        }
        let (k, n) = (w.nrows(), w.ncols());
        let mut b: Vec<f32> = match (logits, g.input(id, 2).and_then(|v| g.const_value(v))) {
            (false, Some(t)) => t
                .as_f32()
                .map(|a| a.iter().copied().collect())
                .unwrap_or_default(),
            _ => vec![0.0; n],
        };
        let mut has_bias = !logits && g.input(id, 2).is_some();
        // Fold the LayerNorm that produced x.
        let xv = g.input(id, 0).expect("input present");
        if let Op::LayerNorm { .. } = g.node(xv.node).op {
            let gamma = self.const_input(xv.node, 1)?.clone();
            let beta = self.const_input(xv.node, 2)?.clone();
            for j in 0..n {
                let mut extra = 0.0f64;
                for i in 0..k {
                    extra += beta[i] as f64 * w[[i, j]] as f64;
                    w[[i, j]] *= gamma[i];
                }
                b[j] += extra as f32;
            }
            has_bias = true;
        }
        // Fold attention's scale into the q columns.
        let users = g.users(out);
        if let [(u, 0)] = users.as_slice() {
            if let Op::Attention { scale, .. } = g.node(*u).op {
                for j in 0..n / 3 {
                    for i in 0..k {
                        w[[i, j]] *= scale;
                    }
                    b[j] *= scale;
                }
            }
        }
        let (f, fw) = (self.scales.frac, self.scales.weight_frac);
        let wid = self.weight(
            &format!("{name}.weight"),
            &[k, n],
            fw,
            &w.iter().copied().collect::<Vec<_>>(),
        )?;
        let bid = if has_bias {
            Some(self.weight(&format!("{name}.bias"), &[n], f + fw, &b)?)
        } else {
            None
        };
        let r = self.activation(out, &format!("{name}.out"), n);
        if logits {
            self.registers[r as usize].rows = Rows::One as i32;
            self.registers[r as usize].frac_bits = f + fw;
            self.push(
                id,
                vec![x],
                vec![r],
                instruction::Op::Logits(plan::Linear {
                    weight: wid,
                    bias: bid,
                    shift: 0,
                    prepared: plan::Linear::ONLINE,
                }),
            );
        } else {
            self.push(
                id,
                vec![x],
                vec![r],
                instruction::Op::Linear(plan::Linear {
                    weight: wid,
                    bias: bid,
                    shift: fw,
                    prepared: plan::Linear::ONLINE,
                }),
            );
        }
        Ok(())
    }
}
