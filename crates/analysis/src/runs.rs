//! The figures of each run of a session: the datagrams a lab socket sent from a run's
//! mark until the next, per flow, with what became of each however late the analysis
//! concludes it (a loss found after the next run began still counts for the run that
//! sent it). Fed the sends and run marks in log order and the analyzer's outcomes, it
//! counts every datagram, whatever a viewer was sent.
//!
//! Bounded: it remembers at most [`MAX_RUNS`] runs, and at most `max_entries` (run,
//! flow) figures together; past that the oldest runs are forgotten (their last figures
//! were reported already), and a run that alone holds them all counts no new flow (it
//! says so: [`RunFigures::partial`]).

use std::collections::{BTreeMap, BTreeSet};

use socklab_protocol::EventId;
use socklab_protocol::link::LinkId;

use crate::analyzer::{FlowKey, Outcome};
use crate::stats::{FlowStats, Histogram, Method};

/// The most runs whose sends are followed.
pub const MAX_RUNS: usize = 64;

/// One flow's figures within one run.
#[derive(Debug, Default)]
struct RunFlow {
    via: Option<LinkId>,
    /// Answered or unanswered (an echo-like peer), not received or lost.
    echo: bool,
    sent: u64,
    received: u64,
    lost: u64,
    reordered: u64,
    duplicated: u64,
    /// Sends with a conclusion (a duplicate aside).
    concluded: u64,
    latencies: Histogram,
}

/// One run's figures, as the analysis reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    /// The run's number, from 1.
    pub run: u32,
    /// Each flow that sent in it.
    pub flows: Vec<FlowStats>,
    /// Some of its flows were not counted ([`Runs`]' limit).
    pub partial: bool,
}

/// The runs' figures.
#[derive(Debug)]
pub struct Runs {
    /// Each run followed: its mark's event id and its number, oldest first.
    starts: Vec<(EventId, u32)>,
    figures: BTreeMap<(u32, FlowKey), RunFlow>,
    /// Runs whose figures changed since they were last taken.
    changed: BTreeSet<u32>,
    /// Runs that could not count a flow.
    partial: BTreeSet<u32>,
    max_entries: usize,
}

impl Runs {
    /// Runs holding at most `max_entries` (run, flow) figures together (at least one).
    pub fn new(max_entries: usize) -> Runs {
        Runs {
            starts: Vec::new(),
            figures: BTreeMap::new(),
            changed: BTreeSet::new(),
            partial: BTreeSet::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// Run `run` begins with event `id`: the sends after it are its own.
    pub fn mark(&mut self, id: EventId, run: u32) {
        if self.starts.len() == MAX_RUNS {
            let (_, oldest) = self.starts.remove(0);
            self.forget(oldest);
        }
        self.starts.push((id, run));
    }

    /// A lab socket sent datagram `id` on `flow` (through `via`).
    pub fn sent(&mut self, id: EventId, flow: &FlowKey, via: Option<&LinkId>) {
        let Some(run) = self.run_of(id) else { return };
        let key = (run, flow.clone());
        if !self.figures.contains_key(&key) && !self.make_room(run) {
            self.partial.insert(run);
            self.changed.insert(run);
            return;
        }
        let f = self.figures.entry(key).or_default();
        f.via = via.cloned().or(f.via.take());
        f.sent += 1;
        self.changed.insert(run);
    }

    /// What the analysis concluded about a send.
    pub fn outcome(&mut self, outcome: &Outcome) {
        let (send, flow) = match outcome {
            Outcome::Delivered { send, flow, .. }
            | Outcome::Duplicate { send, flow, .. }
            | Outcome::Lost { send, flow, .. }
            | Outcome::Untracked { send, flow } => (*send, flow),
            Outcome::Reply { request, flow, .. } | Outcome::Unanswered { request, flow, .. } => {
                (*request, flow)
            }
        };
        let Some(run) = self.run_of(send) else { return };
        // A flow it could not count, or a run forgotten since.
        let Some(f) = self.figures.get_mut(&(run, flow.clone())) else {
            return;
        };
        match outcome {
            Outcome::Delivered {
                latency_ns,
                reordered_by,
                late,
                ..
            } => {
                f.received += 1;
                f.latencies.add(*latency_ns);
                if *reordered_by > 0 || *late {
                    f.reordered += 1;
                }
                if *late {
                    // It was counted lost when its time ran out; it is not.
                    f.lost = f.lost.saturating_sub(1);
                } else {
                    f.concluded += 1;
                }
            }
            Outcome::Duplicate { .. } => {
                f.received += 1;
                f.duplicated += 1;
            }
            Outcome::Lost { .. } => {
                f.lost += 1;
                f.concluded += 1;
            }
            // Given up: neither received nor lost, as the page counts it.
            Outcome::Untracked { .. } => {}
            Outcome::Reply { rtt_ns, .. } => {
                f.echo = true;
                f.received += 1;
                f.concluded += 1;
                f.latencies.add(*rtt_ns);
            }
            Outcome::Unanswered { .. } => {
                f.echo = true;
                f.lost += 1;
                f.concluded += 1;
            }
        }
        self.changed.insert(run);
    }

    /// The figures of each run that changed since the last call, oldest run first.
    pub fn take_changed(&mut self) -> Vec<RunFigures> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|run| RunFigures {
                run,
                flows: self
                    .figures
                    .iter()
                    .filter(|((r, _), _)| *r == run)
                    .map(|((_, key), f)| stats(key, f))
                    .collect(),
                partial: self.partial.contains(&run),
            })
            .collect()
    }

    /// Whether some run's figures changed since they were last taken.
    pub fn has_changed(&self) -> bool {
        !self.changed.is_empty()
    }

    /// How many (run, flow) figures it holds.
    pub fn len(&self) -> usize {
        self.figures.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.figures.is_empty()
    }

    /// The run that sent event `id`: the last marked before it.
    fn run_of(&self, id: EventId) -> Option<u32> {
        let i = self.starts.partition_point(|(start, _)| *start < id);
        i.checked_sub(1).map(|i| self.starts[i].1)
    }

    /// Makes room for one more figure of `run` by forgetting the oldest other runs;
    /// false when `run` alone holds them all.
    fn make_room(&mut self, run: u32) -> bool {
        while self.figures.len() >= self.max_entries {
            let Some(&(oldest, _)) = self.figures.keys().next() else {
                break;
            };
            if oldest == run {
                return false;
            }
            self.forget(oldest);
        }
        true
    }

    /// Forgets a run's figures (its sends are no longer followed).
    fn forget(&mut self, run: u32) {
        self.figures.retain(|(r, _), _| *r != run);
        self.starts.retain(|(_, r)| *r != run);
        self.changed.remove(&run);
        self.partial.remove(&run);
    }
}

fn stats(key: &FlowKey, f: &RunFlow) -> FlowStats {
    FlowStats {
        src: key.src.clone(),
        dst: key.dst.clone(),
        via: f.via.clone(),
        method: if f.echo {
            Method::Echo
        } else {
            Method::Matched
        },
        seq_flow: None,
        sent: f.sent,
        received: f.received,
        lost: f.lost,
        reordered: f.reordered,
        duplicated: f.duplicated,
        in_flight: f.sent.saturating_sub(f.concluded),
        latency: f.latencies.percentiles(),
        latency_cdf: Vec::new(),
        jitter_ns: None,
        drops: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::LossCause;
    use socklab_protocol::Endpoint;

    fn key(src: u16, dst: u16) -> FlowKey {
        FlowKey {
            src: Endpoint::Ip(format!("127.0.0.1:{src}").parse().unwrap()),
            dst: Endpoint::Ip(format!("127.0.0.1:{dst}").parse().unwrap()),
        }
    }

    fn delivered(send: u64, flow: &FlowKey, latency_ns: u64, late: bool) -> Outcome {
        Outcome::Delivered {
            send: EventId(send),
            recv: EventId(send + 1000),
            flow: flow.clone(),
            latency_ns,
            reordered_by: 0,
            late,
        }
    }

    #[test]
    fn each_send_counts_for_the_run_that_sent_it_however_late_its_fate() {
        let flow = key(1, 2);
        let mut runs = Runs::new(100);
        // Sends before any run are nobody's.
        runs.sent(EventId(1), &flow, None);
        runs.mark(EventId(2), 1);
        for id in 3..=6 {
            runs.sent(EventId(id), &flow, None);
        }
        runs.mark(EventId(7), 2);
        runs.sent(EventId(8), &flow, None);
        // Run 1's fates come after run 2 began.
        runs.outcome(&delivered(1, &flow, 5, false));
        runs.outcome(&delivered(3, &flow, 10, false));
        runs.outcome(&Outcome::Duplicate {
            send: EventId(3),
            recv: EventId(2000),
            flow: flow.clone(),
        });
        runs.outcome(&Outcome::Lost {
            send: EventId(4),
            flow: flow.clone(),
            cause: LossCause::Timeout,
        });
        // Lost by timeout, then it came: late, and no longer lost.
        runs.outcome(&Outcome::Lost {
            send: EventId(5),
            flow: flow.clone(),
            cause: LossCause::Timeout,
        });
        runs.outcome(&delivered(5, &flow, 30, true));
        runs.outcome(&delivered(8, &flow, 20, false));
        let figures = runs.take_changed();
        assert_eq!(figures.len(), 2);
        let one = &figures[0].flows[0];
        assert_eq!(figures[0].run, 1);
        assert_eq!(
            (
                one.sent,
                one.received,
                one.lost,
                one.reordered,
                one.duplicated,
                one.in_flight
            ),
            (4, 3, 1, 1, 1, 1)
        );
        assert_eq!(one.latency.map(|l| (l.min, l.max)), Some((10, 30)));
        let two = &figures[1].flows[0];
        assert_eq!(
            (figures[1].run, two.sent, two.received, two.in_flight),
            (2, 1, 1, 0)
        );
        // Nothing changed since: nothing to say.
        assert!(!runs.has_changed());
        assert!(runs.take_changed().is_empty());
    }

    #[test]
    fn past_its_limits_it_forgets_the_oldest_runs_and_says_what_it_could_not_count() {
        let mut runs = Runs::new(3);
        let mut id = 0;
        for run in 1..=(MAX_RUNS as u32 + 10) {
            id += 1;
            runs.mark(EventId(id), run);
            id += 1;
            runs.sent(EventId(id), &key(1, 2), None);
            assert!(runs.len() <= 3);
        }
        assert!(runs.starts.len() <= MAX_RUNS);
        // The newest run, with more flows than the limit: it counts what fits.
        id += 1;
        runs.mark(EventId(id), 100);
        for dst in 0..5 {
            id += 1;
            runs.sent(EventId(id), &key(1, 10 + dst), None);
        }
        assert_eq!(runs.len(), 3);
        let newest = runs
            .take_changed()
            .into_iter()
            .find(|r| r.run == 100)
            .unwrap();
        assert_eq!(newest.flows.len(), 3);
        assert!(newest.partial);
        // A fate of a forgotten run's send is let go.
        runs.outcome(&delivered(2, &key(1, 2), 1, false));
        assert!(runs.take_changed().is_empty());
    }
}
