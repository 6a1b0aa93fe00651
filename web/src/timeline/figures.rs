//! The figures of a stretch of time, counted from the arrows the page holds: for a
//! run (from its mark to the next) or a range a person selects on the timeline. Each
//! datagram counts where it was sent, so a run's last losses, concluded after the next
//! run began, still count for the run that sent them.

use super::{Arrow, Mark, Timeline};

/// One flow's figures over a stretch of time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeFigures {
    /// The flow (an index into [`Timeline::flows`]).
    pub flow: u16,
    /// Datagrams sent in the stretch.
    pub sent: u64,
    /// Received, copies included, as the flows' figures count them (an echo request:
    /// answered).
    pub received: u64,
    /// Lost (an echo request: unanswered).
    pub lost: u64,
    /// Received after a later one of their flow, or late.
    pub reordered: u64,
    /// Extra copies received.
    pub duplicated: u64,
    /// Neither received nor lost yet.
    pub in_flight: u64,
    /// One-way latency of the received ones, ns, sorted.
    pub latencies: Vec<u64>,
}

impl RangeFigures {
    /// Lost as a percentage of sent, as the flows' figures give it.
    pub fn lost_pct(&self) -> f64 {
        socklab_analysis::stats::lost_pct(self.lost, self.sent)
    }

    /// The latency at quantile `q` (0 to 1), ns: the nearest rank.
    pub fn latency(&self, q: f64) -> Option<u64> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(self.latencies[rank - 1])
    }

    fn count(&mut self, a: &Arrow) {
        let latency = a.t1.saturating_sub(a.t0);
        match a.mark {
            Mark::Delivered => {
                self.sent += 1;
                self.received += 1;
                self.latencies.push(latency);
            }
            Mark::Reordered(_) | Mark::Late => {
                self.sent += 1;
                self.received += 1;
                self.reordered += 1;
                self.latencies.push(latency);
            }
            Mark::Lost(_) | Mark::Unanswered(_) => {
                self.sent += 1;
                self.lost += 1;
            }
            Mark::Request(_) => {
                self.sent += 1;
                self.received += 1;
            }
            Mark::Pending | Mark::Untracked => {
                self.sent += 1;
                self.in_flight += 1;
            }
            Mark::Duplicate => {
                self.received += 1;
                self.duplicated += 1;
            }
            // A reply is its request's answer; a datagram from outside was not sent by
            // the lab; TCP counts bytes, not datagrams.
            Mark::Reply | Mark::Incoming | Mark::Bytes | Mark::Tcp(_) => {}
        }
    }
}

/// What the page can say about a stretch of time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stretch {
    /// Each flow that sent in it, in the order flows appeared.
    pub flows: Vec<RangeFigures>,
    /// The page had forgotten datagrams of the stretch (it keeps the newest
    /// [`super::ARROWS_KEPT`]): the figures count only those it still holds.
    pub partial: bool,
}

impl Timeline {
    /// The figures of the datagrams sent from `from` (inclusive) to `to` (exclusive),
    /// ns since the session began, per flow.
    pub fn figures(&self, from: u64, to: u64) -> Stretch {
        self.stretches(&[from], to).pop().unwrap_or_default()
    }

    /// The figures of consecutive stretches in one pass over the arrows: the i-th from
    /// `starts[i]` to `starts[i + 1]` (the last to `end`); `starts` ascending.
    pub fn stretches(&self, starts: &[u64], end: u64) -> Vec<Stretch> {
        let mut tallies: Vec<Vec<Option<RangeFigures>>> =
            vec![vec![None; self.flows.len()]; starts.len()];
        for a in &self.arrows {
            if a.t0 >= end {
                continue;
            }
            let Some(i) = starts.partition_point(|&s| s <= a.t0).checked_sub(1) else {
                continue;
            };
            if let Some(slot) = tallies[i].get_mut(a.flow as usize) {
                slot.get_or_insert_with(|| RangeFigures {
                    flow: a.flow,
                    ..RangeFigures::default()
                })
                .count(a);
            }
        }
        let oldest_kept = self.arrows.first().map_or(u64::MAX, |a| a.t0);
        tallies
            .into_iter()
            .zip(starts)
            .map(|(flows, &from)| {
                let mut flows: Vec<RangeFigures> = flows
                    .into_iter()
                    .flatten()
                    .filter(|f| f.sent + f.duplicated > 0)
                    .collect();
                flows.iter_mut().for_each(|f| f.latencies.sort_unstable());
                Stretch {
                    flows,
                    partial: self.forgotten > 0 && from < oldest_kept,
                }
            })
            .collect()
    }
}
