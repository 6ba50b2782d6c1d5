//! `LayerNorm`'s two-party execution: by rows on the lanes, online or on a prepared
//! correlation. Its name, class, integer semantics, cost and `inspect` line:
//! `compiler/src/plan/ops/layernorm.rs`.

use ciphergpt_compiler::fixed::convert;
use ciphergpt_compiler::plan;

use super::Step;
use crate::exec::lanes::{even_cuts, on_lanes, parts_for};
use crate::exec::stock::Nonlinear;
use crate::exec::Executor;
use crate::net::Channel;
use crate::protocols::{layernorm, ProtocolError};

impl Executor<'_> {
    /// `LayerNorm` by whole rows, in contiguous groups, one per lane; a prepared LayerNorm of
    /// the decode program runs on its correlation while it lasts, each lane from its first
    /// row's place.
    pub(super) fn layernorm<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        l: &plan::LayerNorm,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let p = convert::layernorm_from_plan(l);
        let ring = self.ring;
        let n = p.n.max(1);
        let rows = x.len() / n;
        let parts = match x.len() % n {
            0 => parts_for(s.lane_count(), x.len(), rows),
            _ => 1,
        };
        let cuts = even_cuts(rows, parts);
        let stock = self.nonlinear(&s.ins.name, l.prepared, rows, Nonlinear::layernorm);
        let y = if parts == 1 {
            // Unsplit (and the protocol checks the shape).
            match stock {
                Some((prep, used)) => {
                    layernorm::layernorm_prepared(&mut s.party, ring, &p, &x, prep, used)
                }
                None => layernorm::layernorm(&mut s.party, ring, &p, &x),
            }?
        } else {
            on_lanes(&mut s.party, s.lanes, parts, |party, i| {
                let v = &x[cuts[i] * n..cuts[i + 1] * n];
                match stock {
                    Some((prep, used)) => {
                        layernorm::layernorm_prepared(party, ring, &p, v, prep, used + cuts[i])
                    }
                    None => layernorm::layernorm(party, ring, &p, v),
                }
            })?
            .concat()
        };
        if stock.is_some() {
            self.stock.consume(&s.ins.name, rows);
        }
        s.regs.insert(s.output(0)?, y);
        Ok(())
    }
}
