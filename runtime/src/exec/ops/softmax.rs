//! `Softmax`'s two-party execution: the causal softmax of the score rows, on the lanes, online
//! or on a prepared correlation. Its name, class, integer semantics, cost and `inspect` line:
//! `compiler/src/plan/ops/softmax.rs`.

use ciphergpt_compiler::fixed::convert;
use ciphergpt_compiler::plan;

use super::{causal_entries, Step};
use crate::exec::lanes::{balanced_cuts, on_lanes, parts_for};
use crate::exec::stock::Nonlinear;
use crate::exec::Executor;
use crate::net::Channel;
use crate::protocols::{softmax, ProtocolError};

impl Executor<'_> {
    /// `Softmax` over the causal entries of each head's rows, the rows in contiguous groups of
    /// about equal elements, one per lane; a prepared softmax of the decode program runs on its
    /// correlation while it lasts, each lane from its first score's place.
    pub(super) fn softmax<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        sm: &plan::Softmax,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let tables = convert::softmax_from_plan(sm);
        let (t, past, heads) = (s.t, self.positions, sm.heads as usize);
        let ring = self.ring;
        let causal = causal_entries(heads, t, past);
        let row: Vec<u64> = causal.iter().map(|&i| x[i]).collect();
        let lens: Vec<usize> = (0..heads)
            .flat_map(|_| (0..t).map(|r| past + r + 1))
            .collect();
        let parts = parts_for(s.lane_count(), row.len(), lens.len());
        let cuts = balanced_cuts(&lens, parts);
        let mut starts = vec![0usize];
        for w in cuts.windows(2) {
            let last = starts[starts.len() - 1];
            starts.push(last + lens[w[0]..w[1]].iter().sum::<usize>());
        }
        let stock = self.nonlinear(&s.ins.name, sm.prepared, row.len(), Nonlinear::softmax);
        let p = on_lanes(&mut s.party, s.lanes, parts, |p, i| {
            let (a, b) = (cuts[i], cuts[i + 1]);
            let v = &row[starts[i]..starts[i + 1]];
            match stock {
                Some((prep, used)) => softmax::softmax_prepared(
                    p,
                    ring,
                    &tables,
                    v,
                    &lens[a..b],
                    prep,
                    used + starts[i],
                ),
                None => softmax::softmax(p, ring, &tables, v, &lens[a..b]),
            }
        })?
        .concat();
        if stock.is_some() {
            self.stock.consume(&s.ins.name, row.len());
        }
        let mut out = vec![0u64; x.len()];
        for (&i, v) in causal.iter().zip(p) {
            out[i] = v;
        }
        s.regs.insert(s.output(0)?, out);
        Ok(())
    }
}
