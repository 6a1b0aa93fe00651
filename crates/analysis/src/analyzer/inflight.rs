//! A flow's sends in flight, and the fingerprint indexes that find them: what every
//! kind of flow (matched and echo) shares.

use std::collections::{BTreeMap, HashMap, VecDeque};

use socklab_protocol::EventId;

use crate::Nanos;

/// A send in flight. The analysis keeps its payload's fingerprint and length, never the
/// bytes: a session of large datagrams with a long timeout would otherwise hold every
/// payload in flight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) id: EventId,
    pub(super) t_ns: Nanos,
    /// The fingerprint of the bytes the receiver should get (after a link changed
    /// them, the changed bytes).
    pub(super) hash: u64,
    pub(super) len: usize,
    /// The fingerprint of its match field (echo flows, when one is named and the
    /// payload is long enough).
    pub(super) field: Option<u64>,
}

impl Pending {
    pub(super) fn is(&self, h: u64, len: usize) -> bool {
        self.hash == h && self.len == len
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Finished {
    pub(super) seq: u64,
    pub(super) id: EventId,
    pub(super) t_ns: Nanos,
    pub(super) len: usize,
    pub(super) lost_by_timeout: bool,
}

/// Sequence numbers by payload fingerprint, each list in increasing order (sends are
/// numbered in order, and a re-indexed one is inserted in place), so the oldest is at
/// the front and any one is found by binary search.
pub(super) type Index = HashMap<u64, VecDeque<u64>>;

/// What every kind of flow shares: its sends in flight and how they are indexed.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    pub(super) next_seq: u64,
    pub(super) pending: BTreeMap<u64, Pending>,
    /// Pending sends by the fingerprint the receiver should see.
    pub(super) by_hash: Index,
    /// Pending sends crossing a link that has not decided on them yet, by the
    /// fingerprint of the bytes the link will see.
    pub(super) undecided: Index,
    /// Pending sends by the fingerprint of their match field.
    pub(super) by_field: Index,
}

impl InFlight {
    pub(super) fn push(&mut self, pending: Pending, via_link: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(seq, pending);
        push_seq(&mut self.by_hash, pending.hash, seq);
        if via_link {
            push_seq(&mut self.undecided, pending.hash, seq);
        }
        if let Some(f) = pending.field {
            push_seq(&mut self.by_field, f, seq);
        }
        seq
    }

    /// Removes a pending send from everything that indexes it.
    pub(super) fn remove(&mut self, seq: u64) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        remove_seq(&mut self.by_hash, p.hash, seq);
        remove_seq(&mut self.undecided, p.hash, seq);
        if let Some(f) = p.field {
            remove_seq(&mut self.by_field, f, seq);
        }
        Some(p)
    }

    /// Takes the oldest pending send whose match field has the fingerprint `f`.
    pub(super) fn take_by_field(&mut self, f: u64) -> Option<(u64, Pending)> {
        let seq = *self.by_field.get(&f)?.front()?;
        let p = self.remove(seq)?;
        Some((seq, p))
    }

    /// Takes the oldest pending send the receiver could get as (`h`, `len`).
    pub(super) fn take_received(&mut self, h: u64, len: usize) -> Option<(u64, Pending)> {
        let seq = take_matching(&mut self.by_hash, &self.pending, h, len)?;
        let p = self.remove(seq)?;
        Some((seq, p))
    }

    /// The oldest pending send a link decided on (`h`, `len` as the link saw it),
    /// taken out of the undecided index.
    pub(super) fn take_undecided(&mut self, h: u64, len: usize) -> Option<u64> {
        take_matching(&mut self.undecided, &self.pending, h, len)
    }

    /// The link changed a pending send's bytes: the receiver will see `h`, `len`.
    pub(super) fn altered(&mut self, seq: u64, h: u64, len: usize) {
        let Some(p) = self.pending.get_mut(&seq) else {
            return;
        };
        remove_seq(&mut self.by_hash, p.hash, seq);
        p.hash = h;
        p.len = len;
        push_seq(&mut self.by_hash, h, seq);
    }

    /// The oldest pending send.
    pub(super) fn oldest(&self) -> Option<Nanos> {
        self.pending.first_key_value().map(|(_, p)| p.t_ns)
    }

    /// Removes and returns the oldest pending send, if it has been in flight for
    /// `timeout` at `now` (`None`: whatever its age).
    pub(super) fn pop_oldest(&mut self, expired: Option<(Nanos, Nanos)>) -> Option<(u64, Pending)> {
        let (&seq, p) = self.pending.first_key_value()?;
        if let Some((timeout, now)) = expired
            && p.t_ns.saturating_add(timeout) > now
        {
            return None;
        }
        let p = self.remove(seq)?;
        Some((seq, p))
    }
}

pub(super) fn push_seq(index: &mut Index, h: u64, seq: u64) {
    let queue = index.entry(h).or_default();
    // Sends are numbered in order, so this is nearly always the end.
    let at = queue.partition_point(|&s| s < seq);
    queue.insert(at, seq);
}

/// Takes the oldest sequence number indexed under `h` whose pending send is (`h`,
/// `len`).
pub(super) fn take_matching(
    index: &mut Index,
    pending: &BTreeMap<u64, Pending>,
    h: u64,
    len: usize,
) -> Option<u64> {
    let queue = index.get_mut(&h)?;
    let position = queue
        .iter()
        .position(|seq| pending.get(seq).is_some_and(|p| p.is(h, len)))?;
    let seq = queue.remove(position);
    if queue.is_empty() {
        index.remove(&h);
    }
    seq
}

pub(super) fn remove_seq(index: &mut Index, h: u64, seq: u64) {
    if let Some(queue) = index.get_mut(&h) {
        // Sorted: a binary search, and the oldest (the usual case) is at the front.
        if let Ok(at) = queue.binary_search(&seq) {
            queue.remove(at);
        }
        if queue.is_empty() {
            index.remove(&h);
        }
    }
}
