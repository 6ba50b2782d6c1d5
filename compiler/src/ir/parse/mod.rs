//! Reading the IR text form back: the inverse of [`super::render`].
//!
//! [`parse`] reads exactly what `render` writes, one line at a time:
//!
//! ```text
//! %0 = input "input_ids" : i64[1,T]
//! %1 = const "transformer.wte.weight" : f32[256,32]
//! %2 = const [0.5, 1.0] : f32[2]
//! %3, %4 = Split {axis=2 split=[4, 4] outputs=2}(%7, _) : f32[1,T,4], f32[1,T,4]
//! output "logits" = %9
//! ```
//!
//! Blank lines and lines starting with `;` (comments) are skipped, so test files can annotate
//! their inputs. A value must be defined on a line above the lines that read it (render writes
//! them in topological order), so the graph read is acyclic. Types may be `?` (not inferred
//! yet). Nodes are added in the order of the lines, so rendering the parsed graph gives the
//! same text back.
//!
//! What the text does not hold:
//! - the values of large constants, printed by name only. [`parse_with`] asks a supplier for
//!   each by name (see [`named_constants`] to take them from another graph); [`parse`], and
//!   `parse_with` where the supplier has none, fill in [`placeholder`] values: deterministic
//!   pseudo-random numbers in [-1, 1) drawn from the name for f32, zeros for i64, `false` for
//!   bool;
//! - the names of operations and of small constants: a parsed node is named after the first
//!   value it defines (`%7`); inputs and named constants keep their names.
//!
//! Any malformed line is an error naming `line:col` and what was expected there; no input
//! text makes the parser panic.

mod attrs;
mod cursor;

use super::{Graph, Node, Op, Port, TensorType, ValueRef};
use crate::tensor::{DType, Tensor};
use attrs::Attrs;
use cursor::Cursor;
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// A placeholder holds at most this many elements; larger constants must be supplied.
const PLACEHOLDER_MAX: usize = 1 << 26;

/// Malformed IR text: where, and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    pub message: String,
}

/// Read IR text, with [`placeholder`] values for constants printed by name.
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    parse_with(text, &|_| None)
}

/// Read IR text; `constants` supplies the value of each constant printed by name (a
/// placeholder where it returns `None`). A supplied value must have the printed type.
pub fn parse_with(
    text: &str,
    constants: &dyn Fn(&str) -> Option<Tensor>,
) -> Result<Graph, ParseError> {
    let mut b = Builder {
        graph: Graph::new("<ir text>"),
        values: HashMap::new(),
        constants,
    };
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        b.line(&mut Cursor::new(i + 1, line))?;
    }
    Ok(b.graph)
}

/// The constants of `graph` by node name: a supplier for [`parse_with`] that gives back the
/// values `render` printed by name. Where two constants share a name, the first in node order
/// is kept.
pub fn named_constants(graph: &Graph) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for id in graph.g.node_indices() {
        let n = graph.node(id);
        if let Op::Const(t) = &n.op {
            out.entry(n.name.clone()).or_insert_with(|| t.clone());
        }
    }
    out
}

/// The stand-in value of a constant named `name` of type `ty`: f32 values pseudo-random in
/// [-1, 1), seeded by the name (the same name always gives the same values); i64 zeros;
/// bool `false`. `None` when the shape is not known or holds more than 2^26 elements.
pub fn placeholder(name: &str, ty: &TensorType) -> Option<Tensor> {
    let shape = attrs::known_shape(ty)?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= PLACEHOLDER_MAX)?;
    let t = match ty.dtype {
        DType::F32 => {
            // FNV-1a of the name seeds a xorshift generator.
            let mut s = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            }) | 1;
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            Tensor::F32(ArrayD::from_shape_vec(IxDyn(&shape), v).ok()?)
        }
        DType::I64 => Tensor::I64(ArrayD::zeros(IxDyn(&shape))),
        DType::Bool => Tensor::Bool(ArrayD::from_elem(IxDyn(&shape), false)),
    };
    Some(t)
}

/// The right-hand side of a definition, before its types are read.
enum Rhs {
    Input(String),
    /// A constant printed by name (with the column of the name).
    Named(String, usize),
    /// A constant printed by value: the literal's text and column.
    Literal(String, usize),
    Op(Op, Vec<Option<(u64, usize)>>),
}

struct Builder<'a> {
    graph: Graph,
    /// Value number → the output it names.
    values: HashMap<u64, ValueRef>,
    constants: &'a dyn Fn(&str) -> Option<Tensor>,
}

impl Builder<'_> {
    fn line(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        c.skip_ws();
        if c.peek() == Some('o') {
            return self.output(c);
        }
        let mut lhs = vec![c.value()?];
        while c.eat(',') {
            lhs.push(c.value()?);
        }
        c.expect('=', "after the value names")?;
        let rhs = self.rhs(c)?;
        c.expect(':', "before the output types")?;
        let mut types = vec![c.ty()?];
        while c.eat(',') {
            types.push(c.ty()?);
        }
        if !c.at_end() {
            return Err(c.expected("`,` and another type, or the end of the line"));
        }
        if types.len() != lhs.len() {
            return Err(c.error_at(
                lhs[0].1,
                format!(
                    "{} values defined but {} types given",
                    lhs.len(),
                    types.len()
                ),
            ));
        }
        self.define(c, lhs, rhs, types)
    }

    /// `output "name" = %N`.
    fn output(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        let col = c.col();
        if c.word() != "output" {
            return Err(c.error_at(col, "expected a value name such as `%3` or `output`"));
        }
        let name = c.string()?;
        c.expect('=', "after the output's name")?;
        let n = c.value()?;
        let v = self.use_value(c, n)?;
        if !c.at_end() {
            return Err(c.expected("the end of the line"));
        }
        self.graph.outputs.push((name, v));
        Ok(())
    }

    fn use_value(&self, c: &Cursor, (n, col): (u64, usize)) -> Result<ValueRef, ParseError> {
        self.values
            .get(&n)
            .copied()
            .ok_or_else(|| c.error_at(col, format!("value %{n} is not defined on a line above")))
    }

    fn rhs(&mut self, c: &mut Cursor) -> Result<Rhs, ParseError> {
        c.skip_ws();
        let col = c.col();
        let kind = c.word();
        match kind.as_str() {
            "" => Err(c.expected("an operation name, `input` or `const`")),
            "input" => Ok(Rhs::Input(c.string()?)),
            "const" => {
                c.skip_ws();
                let col = c.col();
                if c.peek() == Some('[') {
                    let text = c.take_while(|ch| ch != ']');
                    c.expect(']', "to close the constant's values")?;
                    Ok(Rhs::Literal(format!("{text}]"), col))
                } else {
                    Ok(Rhs::Named(c.string()?, col))
                }
            }
            _ => {
                let mut a = Attrs::read(c)?;
                let op = attrs::build(&kind, &mut a)?.ok_or_else(|| {
                    c.error_at(col, format!("expected an operation name, found `{kind}`"))
                })?;
                a.finish(&kind)?;
                c.expect('(', "to open the operation's arguments")?;
                let mut args = Vec::new();
                if !c.eat(')') {
                    loop {
                        args.push(if c.eat('_') { None } else { Some(c.value()?) });
                        if c.eat(')') {
                            break;
                        }
                        c.expect(',', "or `)` after an argument")?;
                    }
                }
                Ok(Rhs::Op(op, args))
            }
        }
    }

    /// Add the node a definition line describes and number its outputs.
    fn define(
        &mut self,
        c: &Cursor,
        lhs: Vec<(u64, usize)>,
        rhs: Rhs,
        types: Vec<Option<TensorType>>,
    ) -> Result<(), ParseError> {
        let first = lhs[0];
        let one = |what: &str| -> Result<(), ParseError> {
            if lhs.len() == 1 {
                Ok(())
            } else {
                Err(c.error_at(lhs[1].1, format!("{what} defines one value")))
            }
        };
        let (name, op, args) = match rhs {
            Rhs::Input(name) => {
                one("an input")?;
                (name.clone(), Op::Input { name }, Vec::new())
            }
            Rhs::Named(name, col) => {
                one("a constant")?;
                let t = self.named(c, &name, types[0].as_ref(), col)?;
                (name, Op::Const(t), Vec::new())
            }
            Rhs::Literal(text, col) => {
                one("a constant")?;
                let ty = types[0]
                    .as_ref()
                    .ok_or_else(|| c.error_at(col, "a constant needs its type, not `?`"))?;
                let mut lit = Cursor::within(c.line(), col - 1, &text);
                let t = attrs::tensor(&mut lit, ty, col)?;
                (format!("%{}", first.0), Op::Const(t), Vec::new())
            }
            Rhs::Op(op, args) => {
                if op.num_outputs() != lhs.len() {
                    return Err(c.error_at(
                        first.1,
                        format!(
                            "{} defines {} values, found {} names",
                            op.kind(),
                            op.num_outputs(),
                            lhs.len()
                        ),
                    ));
                }
                let args = args
                    .into_iter()
                    .map(|a| a.map(|a| self.use_value(c, a)).transpose())
                    .collect::<Result<Vec<_>, _>>()?;
                (format!("%{}", first.0), op, args)
            }
        };
        for (i, &(n, col)) in lhs.iter().enumerate() {
            if self.values.contains_key(&n) || lhs[..i].iter().any(|&(m, _)| m == n) {
                return Err(c.error_at(col, format!("value %{n} is defined twice")));
            }
        }
        let id = self.graph.g.add_node(Node {
            name,
            op,
            arity: args.len(),
            outputs: types,
        });
        for (slot, a) in args.iter().enumerate() {
            if let Some(v) = a {
                let port = Port {
                    from_output: v.output,
                    to_input: slot,
                };
                self.graph.g.add_edge(v.node, id, port);
            }
        }
        for (output, &(n, _)) in lhs.iter().enumerate() {
            self.values.insert(n, ValueRef { node: id, output });
        }
        Ok(())
    }

    /// The value of a constant printed by name: supplied, or a placeholder.
    fn named(
        &self,
        c: &Cursor,
        name: &str,
        ty: Option<&TensorType>,
        col: usize,
    ) -> Result<Tensor, ParseError> {
        let ty = ty.ok_or_else(|| c.error_at(col, "a constant needs its type, not `?`"))?;
        match (self.constants)(name) {
            Some(t) => {
                let got = TensorType::known(t.dtype(), t.shape());
                if &got != ty {
                    return Err(c.error_at(
                        col,
                        format!("constant {name:?} was supplied as {got} but the text says {ty}"),
                    ));
                }
                Ok(t)
            }
            None => placeholder(name, ty).ok_or_else(|| {
                c.error_at(
                    col,
                    format!(
                        "constant {name:?} of type {ty}: no value supplied, and a placeholder needs a known shape of at most {PLACEHOLDER_MAX} elements"
                    ),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests;
