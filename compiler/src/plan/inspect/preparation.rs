//! The cost model's choice per decode layer kind, printed by `inspect`: each kind that can be
//! prepared (weight products, GELU, LayerNorm, softmax) with its decode step online alone, its
//! prepared online part and its share of the preparation, their link time on the LAN, and what
//! the plan records (`fixed::prepare::choose`, `cost::choice`).

use super::{bytes, table, Report};
use crate::plan::cost::{self, Cost, MAX_ROWS_PER_CT};
use serde::Serialize;
use std::fmt::Write;

/// One kind of the decode program, summed over its instructions.
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct ChoiceRow {
    pub kind: &'static str,
    pub count: u64,
    /// How many of them the plan marks prepared.
    pub prepared: u64,
    /// How many of them the cost model prepares at the report's sizes.
    pub model_prepares: u64,
    pub online: Cost,
    pub prepared_online: Cost,
    pub preparation: Cost,
    pub online_lan_s: f64,
    pub prepared_lan_s: f64,
}

impl Report<'_> {
    /// The decode program's choices by kind, at the decode step's sizes, for batches of 16
    /// steps or more (the rows an RLWE preparation packs per ciphertext).
    pub(super) fn choices(&self) -> Vec<ChoiceRow> {
        let Some(p) = self.programs.iter().find(|p| p.key == "decode") else {
            return Vec::new();
        };
        let mut rows: Vec<ChoiceRow> = Vec::new();
        for ins in p.instructions {
            let Some(c) = cost::choice(self.plan, ins, p.sizes, MAX_ROWS_PER_CT) else {
                continue;
            };
            let kind = cost::op_name(&ins.op);
            let at = match rows.iter().position(|r| r.kind == kind) {
                Some(i) => i,
                None => {
                    rows.push(ChoiceRow {
                        kind,
                        ..ChoiceRow::default()
                    });
                    rows.len() - 1
                }
            };
            let r = &mut rows[at];
            r.count += 1;
            r.prepared += u64::from(ins.op.as_ref().is_some_and(cost::is_prepared));
            r.model_prepares += u64::from(c.prepare());
            r.online = r.online.add(&c.online);
            r.prepared_online = r.prepared_online.add(&c.prepared_online);
            r.preparation = r.preparation.add(&c.preparation);
            r.online_lan_s += c.online_seconds();
            r.prepared_lan_s += c.prepared_seconds();
        }
        rows
    }

    /// The text table of [`Self::choices`].
    pub(super) fn choices_text(&self) -> String {
        let rows = self.choices();
        if rows.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "\nprepared or online, per decode step (cost model: prepared when the step, its share of the preparation included, takes less link time on lan; batches of 16 steps or more)\n",
        );
        let mut t = vec![[
            "kind",
            "count",
            "plan",
            "online alone",
            "rounds",
            "LAN s",
            "prepared online",
            "rounds",
            "+ preparation",
            "LAN s",
        ]
        .map(String::from)];
        for r in &rows {
            let plan = match r.prepared {
                0 => "online".to_string(),
                n if n == r.count => "prepared".to_string(),
                n => format!("{n} prepared"),
            };
            let plan = if r.model_prepares == r.prepared {
                plan
            } else {
                format!("{plan} (model at P: {} prepared)", r.model_prepares)
            };
            t.push([
                r.kind.to_string(),
                r.count.to_string(),
                plan,
                bytes(r.online.bytes()),
                r.online.rounds.to_string(),
                format!("{:.3}", r.online_lan_s),
                bytes(r.prepared_online.bytes()),
                r.prepared_online.rounds.to_string(),
                bytes(r.preparation.bytes()),
                format!("{:.3}", r.prepared_lan_s),
            ]);
        }
        let right = [false, true, false, true, true, true, true, true, true, true];
        let _ = write!(out, "{}", table(&t, &right));
        out
    }
}
