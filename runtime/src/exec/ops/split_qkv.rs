//! `SplitQkv`'s two-party execution: local, on each party's shares. Its name, class, integer
//! semantics, cost and `inspect` line: `compiler/src/plan/ops/split_qkv.rs`.

use super::Step;
use crate::exec::Executor;
use crate::net::Channel;
use crate::protocols::ProtocolError;

impl Executor<'_> {
    /// `SplitQkv`: the three column blocks of each row.
    pub(super) fn split_qkv<C: Channel + ?Sized>(
        &self,
        s: &mut Step<'_, C>,
    ) -> Result<(), ProtocolError> {
        let x = self.input(s, 0)?;
        let c3 = self.cols(s.input_reg(0)?);
        let c = c3 / 3;
        for (part, &o) in s.ins.outputs.iter().enumerate() {
            let v: Vec<u64> = x
                .chunks(c3)
                .flat_map(|row| row[part * c..(part + 1) * c].to_vec())
                .collect();
            s.regs.insert(o, v);
        }
        Ok(())
    }
}
