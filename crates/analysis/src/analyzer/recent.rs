//! A flow's finished sends, remembered for a while to recognise duplicates and late
//! arrivals.

use std::collections::{HashMap, VecDeque};

use socklab_protocol::EventId;

use super::inflight::Finished;
use crate::Nanos;

/// A finished send as [`Recent`] keeps it: 48 bytes (a kept send is the analysis'
/// largest per-datagram cost).
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept {
    pub(super) seq: u64,
    pub(super) id: EventId,
    pub(super) t_ns: Nanos,
    /// When it finished.
    pub(super) at: Nanos,
    pub(super) hash: u64,
    /// How many positions further the next kept send with the same fingerprint is
    /// (0: none). Kept sends span at most [`super::MAX_FINISHED`] positions.
    pub(super) next: u32,
    /// The payload's length, saturated (UDP payloads are below 65,536 bytes).
    pub(super) len: u16,
    pub(super) lost_by_timeout: bool,
}

pub(super) fn short_len(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// A flow's finished sends, oldest first, each fingerprint's sends chained from its
/// oldest to its newest. Adding one, finding the oldest with a fingerprint and
/// forgetting the oldest of all take constant time, and a finished send costs no
/// allocation of its own (a map of per-fingerprint queues cost about 250 bytes per
/// datagram, most of the analysis' memory).
#[derive(Debug, Default)]
pub(super) struct Recent {
    /// The position of `kept[0]`; positions count every send ever kept.
    pub(super) base: u64,
    pub(super) kept: VecDeque<Kept>,
    /// Fingerprint → positions of its oldest and newest kept send.
    pub(super) chains: HashMap<u64, (u64, u64)>,
}

impl Recent {
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }

    pub(super) fn get_mut(&mut self, position: u64) -> Option<&mut Kept> {
        let index = usize::try_from(position.checked_sub(self.base)?).ok()?;
        self.kept.get_mut(index)
    }

    pub(super) fn push(&mut self, finished: Finished, hash: u64, at: Nanos) {
        let position = self.base + self.kept.len() as u64;
        self.kept.push_back(Kept {
            seq: finished.seq,
            id: finished.id,
            t_ns: finished.t_ns,
            at,
            hash,
            next: 0,
            len: short_len(finished.len),
            lost_by_timeout: finished.lost_by_timeout,
        });
        match self.chains.get_mut(&hash) {
            Some((_, newest)) => {
                let before = *newest;
                *newest = position;
                if let Some(k) = self.get_mut(before) {
                    k.next = u32::try_from(position - before).unwrap_or(0);
                }
            }
            None => {
                self.chains.insert(hash, (position, position));
            }
        }
    }

    /// The oldest kept send with fingerprint `hash` and length `len`.
    pub(super) fn oldest_mut(&mut self, hash: u64, len: usize) -> Option<&mut Kept> {
        let len = short_len(len);
        let mut position = self.chains.get(&hash)?.0;
        // Equal fingerprints have equal lengths but for a chance collision: the first
        // is nearly always the one.
        loop {
            let k = self.get_mut(position)?;
            if k.len == len {
                break;
            }
            if k.next == 0 {
                return None;
            }
            position += u64::from(k.next);
        }
        self.get_mut(position)
    }

    /// When the oldest kept send finished.
    pub(super) fn oldest_at(&self) -> Option<Nanos> {
        self.kept.front().map(|k| k.at)
    }

    /// Forgets the oldest kept send (the oldest of its fingerprint's chain too).
    pub(super) fn forget_oldest(&mut self) {
        let Some(k) = self.kept.pop_front() else {
            return;
        };
        let position = self.base;
        self.base += 1;
        if k.next == 0 {
            self.chains.remove(&k.hash);
        } else if let Some((oldest, _)) = self.chains.get_mut(&k.hash) {
            *oldest = position + u64::from(k.next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn finished(seq: u64, len: usize) -> Finished {
        Finished {
            seq,
            id: EventId(seq),
            t_ns: seq,
            len,
            lost_by_timeout: false,
        }
    }

    #[test]
    pub(super) fn recent_sends_are_found_oldest_first_and_forgotten_in_order() {
        let mut recent = Recent::default();
        // Fingerprints 7 and 9 interleaved; one 7 of another length (a collision).
        for (seq, hash, len) in [(0, 7, 4), (1, 9, 4), (2, 7, 5), (3, 7, 4), (4, 9, 4)] {
            recent.push(finished(seq, len), hash, seq * 10);
        }
        assert_eq!(recent.oldest_mut(7, 4).map(|f| f.seq), Some(0));
        assert_eq!(recent.oldest_mut(7, 5).map(|f| f.seq), Some(2));
        assert_eq!(recent.oldest_mut(9, 4).map(|f| f.seq), Some(1));
        assert!(recent.oldest_mut(8, 4).is_none() && recent.oldest_mut(9, 5).is_none());
        recent.forget_oldest();
        recent.forget_oldest();
        assert_eq!(recent.oldest_at(), Some(20));
        assert_eq!(recent.oldest_mut(7, 4).map(|f| f.seq), Some(3));
        assert_eq!(recent.oldest_mut(9, 4).map(|f| f.seq), Some(4));
        for _ in 0..3 {
            recent.forget_oldest();
        }
        assert_eq!((recent.len(), recent.chains.len()), (0, 0));
        assert_eq!(std::mem::size_of::<Kept>(), 48);
        recent.push(finished(5, 4), 7, 50);
        assert_eq!(recent.oldest_mut(7, 4).map(|f| f.seq), Some(5));
    }
}
