//! `Gelu`'s two-party execution: the spline elementwise, in slices across the lanes, online or
//! on a prepared correlation. Its name, class, integer semantics, cost and `inspect` line:
//! `compiler/src/plan/ops/gelu.rs`.

use ciphergpt_compiler::fixed::convert;
use ciphergpt_compiler::plan;

use super::Step;
use crate::exec::lanes::elementwise_at;
use crate::exec::stock::Nonlinear;
use crate::exec::Executor;
use crate::net::Channel;
use crate::protocols::{gelu, ProtocolError};

impl Executor<'_> {
    /// `Gelu` elementwise, in slices that bound the lookups' memory (2·n·N words per call,
    /// `cost::GELU_CALL_WORDS`), each cut across the lanes; every call costs its ~16 flights,
    /// so a GPT-2-small prefill of up to 42 tokens makes one per layer. A prepared GELU of the
    /// decode program runs on its correlation while it lasts; the prefill's make theirs just
    /// before each call where the cost model finds that pays (`cost::prefill_gelu`).
    pub(super) fn gelu<C: Channel + ?Sized>(
        &mut self,
        s: &mut Step<'_, C>,
        g: &plan::Gelu,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let tables = convert::gelu_from_plan(g);
        let ring = self.ring;
        let stock = self.nonlinear(&s.ins.name, g.prepared, x.len(), Nonlinear::gelu);
        // The prefill's GELUs are prepared here, at the request, where the cost model finds
        // that pays for this many elements (both parties know the count).
        let here =
            !self.decoding && plan::cost::prefill_gelu(u64::from(ring.bits), g, x.len() as u64).1;
        let mut out = Vec::with_capacity(x.len());
        let slice = plan::cost::gelu_slice(g.pieces_log2) as usize;
        for (k, chunk) in x.chunks(slice).enumerate() {
            out.extend(elementwise_at(
                &mut s.party,
                s.lanes,
                chunk,
                |p, at, part| match stock {
                    Some((prep, used)) => {
                        let at = used + k * slice + at;
                        gelu::gelu_prepared(p, ring, &tables, part, prep, at)
                    }
                    None if here => {
                        let prep = gelu::prepare(p, ring, &tables, part.len())?;
                        gelu::gelu_prepared(p, ring, &tables, part, &prep, 0)
                    }
                    None => gelu::gelu(p, ring, &tables, part),
                },
            )?);
        }
        if stock.is_some() {
            self.stock.consume(&s.ins.name, x.len());
        }
        s.regs.insert(s.output(0)?, out);
        Ok(())
    }
}
