//! Lanes: a session's further channels, each with its own OT extension, and the cutting of an
//! instruction's independent work into contiguous parts that run on them at once. Both parties
//! cut alike, from public shapes; with one lane the messages are exactly those of one channel.

use crate::crypto::iknp::{CotBackend, OtPair};
use crate::crypto::Prg;
use crate::net::{scoped, Channel, Counters, NetError, Role};
use crate::protocols::{Party, ProtocolError};

/// One lane of a session beyond lane 0: its own channel to the peer and its own OT extension,
/// set up on that channel ([`Lane::setup_all`]).
pub struct Lane {
    pub ot: OtPair,
    pub ch: Box<dyn Channel>,
}

impl Lane {
    /// Set up the OT extension `backend` (both directions) on each channel, all at once, under
    /// the scope `"setup"`. Returns the lanes and their cost: the bytes of all of them, the most
    /// flights of any one (they run at once).
    pub fn setup_all(
        chans: Vec<Box<dyn Channel>>,
        role: Role,
        backend: CotBackend,
    ) -> Result<(Vec<Lane>, Counters), NetError> {
        let results: Vec<Result<(Lane, Counters), NetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = chans
                .into_iter()
                .map(|mut ch| {
                    s.spawn(move || {
                        let before = ch.stats().total;
                        let mut rng = Prg::from_entropy();
                        let ot = scoped(ch.as_mut(), "setup", |c| {
                            OtPair::setup_with(c, role, backend, &mut rng)
                        })?;
                        let cost = ch.stats().total.since(&before);
                        Ok((Lane { ot, ch }, cost))
                    })
                })
                .collect();
            handles.into_iter().map(join).collect()
        });
        let mut lanes = Vec::with_capacity(results.len());
        let mut cost = Vec::with_capacity(results.len());
        for r in results {
            let (l, c) = r?;
            lanes.push(l);
            cost.push(c);
        }
        Ok((lanes, concurrent(cost)))
    }
}

/// Counters of lanes that ran at once: their bytes summed, the most rounds of any one.
pub fn concurrent(parts: impl IntoIterator<Item = Counters>) -> Counters {
    parts
        .into_iter()
        .fold(Counters::default(), |a, c| Counters {
            bytes_sent: a.bytes_sent + c.bytes_sent,
            bytes_received: a.bytes_received + c.bytes_received,
            rounds: a.rounds.max(c.rounds),
        })
}

/// A scoped thread's result; a panic in it goes on in this thread.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Inputs of fewer elements than this run on lane 0 alone: below it a part's fixed costs (a
/// thread, each protocol's flights on one more channel) outweigh its share of the work.
pub const MIN_SPLIT: usize = 1024;

/// How many parts an input of `elements` elements in `units` separable units (elements or rows)
/// is cut into on `lanes` lanes.
pub(super) fn parts_for(lanes: usize, elements: usize, units: usize) -> usize {
    if elements < MIN_SPLIT {
        1
    } else {
        lanes.min(units).max(1)
    }
}

/// The bounds of `parts` contiguous near-equal parts of `n` units (parts + 1 offsets).
pub(super) fn even_cuts(n: usize, parts: usize) -> Vec<usize> {
    (0..=parts).map(|i| i * n / parts).collect()
}

/// The bounds of `parts` contiguous groups of the rows of lengths `lens` (rows ≥ parts), each
/// of at least one row, holding about equal numbers of elements (parts + 1 row offsets).
pub(super) fn balanced_cuts(lens: &[usize], parts: usize) -> Vec<usize> {
    let rows = lens.len();
    let mut prefix = Vec::with_capacity(rows + 1);
    prefix.push(0usize);
    for &l in lens {
        prefix.push(prefix[prefix.len() - 1] + l);
    }
    let total = prefix[rows];
    let mut cuts = vec![0];
    for k in 1..parts {
        let target = total * k / parts;
        let c = prefix.partition_point(|&p| p < target);
        let prev = cuts[cuts.len() - 1];
        cuts.push(c.clamp(prev + 1, rows - (parts - k)));
    }
    cuts.push(rows);
    cuts
}

/// Run `f` on `parts` parts at once: part 0 on lane 0 (`party`) in this thread, part i on
/// `lanes[i − 1]` in a scoped thread, whose channel takes lane 0's current scope for it (so the
/// instruction's accounting finds every lane's traffic). Returns the parts' results in order, or
/// the first error (lane 0's first: a vanished peer fails every lane alike).
pub(super) fn on_lanes<C, R, F>(
    party: &mut Party<'_, C>,
    lanes: &mut [Lane],
    parts: usize,
    f: F,
) -> Result<Vec<R>, ProtocolError>
where
    C: Channel + ?Sized,
    R: Send,
    F: Fn(&mut Party<'_, dyn Channel + '_>, usize) -> Result<R, ProtocolError> + Sync,
{
    let role = party.role;
    let mut lane0: &mut C = &mut *party.ch;
    let parts = parts.clamp(1, lanes.len() + 1);
    if parts == 1 {
        return Ok(vec![f(&mut Party::new(party.ot, &mut lane0, role), 0)?]);
    }
    let scope = lane0.scope().to_string();
    // Each lane's part runs alongside lane 0's: its first flight continues lane 0's last.
    let last = lane0.accounting_ref().last_flight();
    for lane in lanes[..parts - 1].iter_mut() {
        lane.ch.accounting().resume_flight(last);
    }
    let results: Vec<Result<R, ProtocolError>> = std::thread::scope(|s| {
        let (f, scope) = (&f, scope.as_str());
        let handles: Vec<_> = lanes[..parts - 1]
            .iter_mut()
            .enumerate()
            .map(|(i, lane)| {
                s.spawn(move || {
                    scoped(lane.ch.as_mut(), scope, |c| {
                        f(&mut Party::new(&mut lane.ot, c, role), i + 1)
                    })
                })
            })
            .collect();
        let mut all = vec![f(&mut Party::new(party.ot, &mut lane0, role), 0)];
        all.extend(handles.into_iter().map(join));
        all
    });
    results.into_iter().collect()
}

/// `f` elementwise over `v`: contiguous parts on the lanes at once, concatenated.
pub(super) fn elementwise<C, F>(
    party: &mut Party<'_, C>,
    lanes: &mut [Lane],
    v: &[u64],
    f: F,
) -> Result<Vec<u64>, ProtocolError>
where
    C: Channel + ?Sized,
    F: Fn(&mut Party<'_, dyn Channel + '_>, &[u64]) -> Result<Vec<u64>, ProtocolError> + Sync,
{
    elementwise_at(party, lanes, v, |p, _, part| f(p, part))
}

/// [`elementwise`], `f` also told where its part starts in `v`.
pub(super) fn elementwise_at<C, F>(
    party: &mut Party<'_, C>,
    lanes: &mut [Lane],
    v: &[u64],
    f: F,
) -> Result<Vec<u64>, ProtocolError>
where
    C: Channel + ?Sized,
    F: Fn(&mut Party<'_, dyn Channel + '_>, usize, &[u64]) -> Result<Vec<u64>, ProtocolError>
        + Sync,
{
    let parts = parts_for(lanes.len() + 1, v.len(), v.len());
    let cuts = even_cuts(v.len(), parts);
    let out = on_lanes(party, lanes, parts, |p, i| {
        f(p, cuts[i], &v[cuts[i]..cuts[i + 1]])
    })?;
    Ok(out.concat())
}
