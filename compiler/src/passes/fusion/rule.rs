//! The fusion rules by name, and the trace of a fusion run.

use crate::ir::Graph;
use petgraph::stable_graph::NodeIndex;
use std::fmt;

/// One fusion rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `Reshape(Gemm(Reshape(x), W, b))` → `linear`.
    LinearGemm,
    /// `Add(MatMul(x, W), b)` → `linear`.
    LinearMatmulAdd,
    /// `LayerNormalization` → `layer_norm`.
    LayerNorm,
    /// A LayerNorm spelled out in elementwise ops and a ReduceMean → `layer_norm`.
    LayerNormDecomposed,
    /// An elementwise region equal to GELU → `gelu`.
    Gelu,
    /// Causal multi-head self-attention (decomposed, or ONNX `Attention`) → `attention`.
    Attention,
    /// Token plus position gathers → `embedding`.
    Embedding,
    /// The sum of two activations → `residual_add`.
    ResidualAdd,
    /// The final vocabulary projection → `logits`.
    Logits,
}

impl Rule {
    /// Every rule, in the order a fusion run applies them.
    pub const ALL: [Rule; 9] = [
        Rule::LinearGemm,
        Rule::LinearMatmulAdd,
        Rule::LayerNorm,
        Rule::LayerNormDecomposed,
        Rule::Gelu,
        Rule::Attention,
        Rule::Embedding,
        Rule::ResidualAdd,
        Rule::Logits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::LinearGemm => "linear-gemm",
            Rule::LinearMatmulAdd => "linear-matmul-add",
            Rule::LayerNorm => "layer-norm",
            Rule::LayerNormDecomposed => "layer-norm-decomposed",
            Rule::Gelu => "gelu",
            Rule::Attention => "attention",
            Rule::Embedding => "embedding",
            Rule::ResidualAdd => "residual-add",
            Rule::Logits => "logits",
        }
    }

    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Apply the rule once over the graph; returns the fused nodes it added.
    pub(super) fn apply(self, graph: &mut Graph) -> Vec<NodeIndex> {
        match self {
            Rule::LinearGemm => super::linear_gemm(graph),
            Rule::LinearMatmulAdd => super::linear_matmul_add(graph),
            Rule::LayerNorm => super::layer_norm(graph),
            Rule::LayerNormDecomposed => super::layer_norm_decomposed(graph),
            Rule::Gelu => super::gelu(graph),
            Rule::Attention => super::attention(graph),
            Rule::Embedding => super::embedding(graph),
            Rule::ResidualAdd => super::residual_add(graph),
            Rule::Logits => super::logits(graph),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rewrite of a fusion run: the rule that fired and the name of the node it fused (the
/// name of the node the fused op replaced, which it keeps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub rule: Rule,
    pub node: String,
}

impl fmt::Display for Fired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} fired on '{}'", self.rule, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_read_back() {
        for r in Rule::ALL {
            assert_eq!(Rule::from_name(r.name()), Some(r));
        }
        let mut names: Vec<_> = Rule::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Rule::ALL.len());
        assert_eq!(Rule::from_name("linear"), None);
        let f = Fired {
            rule: Rule::Gelu,
            node: "/mlp/act/Mul_3".into(),
        };
        assert_eq!(f.to_string(), "gelu fired on '/mlp/act/Mul_3'");
    }
}
