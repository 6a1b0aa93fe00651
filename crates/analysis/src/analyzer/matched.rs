//! A matched flow's own bookkeeping: a receive concludes the send it matches (or is a
//! duplicate, or a late arrival), and finished sends are remembered within bounds.

use socklab_protocol::EventId;

use super::inflight::Finished;
use super::{Flow, FlowKey, MAX_FINISHED, Outcome};
use crate::Nanos;

/// How many finished sends all flows remember, and the most they may.
#[derive(Debug)]
pub(super) struct KeptBudget {
    pub(super) count: usize,
    pub(super) max: usize,
}

impl Flow {
    /// Takes a receive; returns whether it concluded a send in flight.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive(
        &mut self,
        key: FlowKey,
        id: EventId,
        t_ns: Nanos,
        h: u64,
        len: usize,
        kept: &mut KeptBudget,
        out: &mut Vec<Outcome>,
    ) -> bool {
        if let Some((seq, p)) = self.sends.take_received(h, len) {
            self.deliver(key, seq, p.id, p.t_ns, id, t_ns, false, out);
            self.finish(
                Finished {
                    seq,
                    id: p.id,
                    t_ns: p.t_ns,
                    len: p.len,
                    lost_by_timeout: false,
                },
                t_ns,
                p.hash,
                kept,
            );
            return true;
        }
        // Not pending: a copy of a finished send, or a late arrival of a lost one.
        let Some(done) = self.finished.oldest_mut(h, len) else {
            return false;
        };
        if done.lost_by_timeout {
            done.lost_by_timeout = false;
            let (seq, send, sent_at) = (done.seq, done.id, done.t_ns);
            self.lost -= 1;
            self.deliver(key, seq, send, sent_at, id, t_ns, true, out);
        } else {
            self.duplicated += 1;
            out.push(Outcome::Duplicate {
                send: done.id,
                recv: id,
                flow: key,
            });
        }
        false
    }

    /// Reports a delivery.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver(
        &mut self,
        key: FlowKey,
        seq: u64,
        send: EventId,
        sent_at: Nanos,
        recv: EventId,
        t_ns: Nanos,
        late: bool,
        out: &mut Vec<Outcome>,
    ) {
        let reordered_by = match self.max_received {
            Some(max) if max > seq => max - seq,
            _ => 0,
        };
        if reordered_by > 0 {
            self.reordered += 1;
        }
        self.max_received = Some(self.max_received.map_or(seq, |m| m.max(seq)));
        self.delivered += 1;
        let latency_ns = t_ns.saturating_sub(sent_at);
        self.latencies.add(latency_ns);
        self.jitter.arrive(sent_at, t_ns);
        out.push(Outcome::Delivered {
            send,
            recv,
            flow: key,
            latency_ns,
            reordered_by,
            late,
        });
    }

    pub(super) fn finish(&mut self, finished: Finished, now: Nanos, h: u64, kept: &mut KeptBudget) {
        self.finished.push(finished, h, now);
        kept.count += 1;
        while self.finished.len() > MAX_FINISHED
            || (kept.count > kept.max && self.finished.len() > 0)
        {
            self.finished.forget_oldest();
            kept.count -= 1;
        }
    }

    /// Forgets finished sends that finished before `horizon`.
    pub(super) fn forget_before(&mut self, horizon: Nanos, kept: &mut KeptBudget) {
        while self.finished.oldest_at().is_some_and(|at| at < horizon) {
            self.finished.forget_oldest();
            kept.count -= 1;
        }
    }
}
