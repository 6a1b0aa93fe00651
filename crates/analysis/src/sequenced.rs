//! Receiver statistics from sequence numbers alone, with iperf3's definitions:
//! - the expected count is the highest sequence number seen plus one;
//! - a gap in the numbers counts its datagrams as lost;
//! - a datagram that arrives after a higher number is **out of order**, and since it was
//!   counted lost when the gap opened, it is no longer lost;
//! - jitter is RFC 3550 interarrival jitter over the header's send times.
//!
//! Unlike iperf3, a number seen twice counts as a **duplicate** (iperf3 would count it
//! out of order and lower the loss below the truth), within the last [`WINDOW`]
//! numbers: older ones are out of order, as iperf3 counts them. The window keeps the
//! memory per stream fixed whatever numbers a sender makes up.

/// How many of the most recent sequence numbers are remembered to recognise duplicates.
pub const WINDOW: u64 = 1 << 16;

use crate::jitter::Jitter;
use crate::seqhdr::SeqHeader;

/// One sequenced stream as its receiver sees it.
#[derive(Debug, Clone)]
pub struct SeqReceiver {
    next: u64,
    /// One bit per number in `next - WINDOW .. next`: seen or not (bit `seq % WINDOW`).
    seen: Box<[u64]>,
    /// Datagrams received (duplicates included).
    pub received: u64,
    /// Currently lost: opened by gaps, closed by late arrivals.
    pub lost: u64,
    /// Arrived after a higher sequence number.
    pub out_of_order: u64,
    /// Arrived more than once.
    pub duplicates: u64,
    jitter: Jitter,
}

impl Default for SeqReceiver {
    fn default() -> Self {
        SeqReceiver {
            next: 0,
            seen: vec![0; (WINDOW / 64) as usize].into_boxed_slice(),
            received: 0,
            lost: 0,
            out_of_order: 0,
            duplicates: 0,
            jitter: Jitter::default(),
        }
    }
}

impl SeqReceiver {
    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    /// Marks `seq` seen; returns whether it already was.
    fn mark(&mut self, seq: u64) -> bool {
        let (word, mask) = Self::bit(seq);
        let was = self.seen[word] & mask != 0;
        self.seen[word] |= mask;
        was
    }

    /// Takes one datagram's header, received at `received_ns` (same clock as the
    /// header's send time). Numbers come from anyone who sends to a lab socket, so all
    /// arithmetic on them saturates.
    pub fn arrive(&mut self, header: SeqHeader, received_ns: u64) {
        self.received += 1;
        let seq = header.seq;
        if seq >= self.next {
            // Forget the numbers the window slides past (at most the whole window).
            let slide = (seq - self.next).saturating_add(1);
            if slide >= WINDOW {
                self.seen.fill(0);
            } else {
                for old in self.next..=seq {
                    let (word, mask) = Self::bit(old);
                    self.seen[word] &= !mask;
                }
            }
            self.mark(seq);
            self.jitter.arrive(header.sent_ns, received_ns);
            self.lost = self.lost.saturating_add(seq - self.next);
            self.next = seq.saturating_add(1);
        } else if self.next - seq <= WINDOW && self.mark(seq) {
            self.duplicates += 1;
        } else {
            self.jitter.arrive(header.sent_ns, received_ns);
            self.out_of_order += 1;
            self.lost = self.lost.saturating_sub(1);
        }
    }

    /// Its figures as a flow's: stream `seq_flow` from `key.src` to `key.dst`, through
    /// `via` if the figures are as a link sent it on.
    pub fn stats(
        &self,
        key: crate::FlowKey,
        seq_flow: u32,
        via: Option<socklab_protocol::link::LinkId>,
    ) -> crate::FlowStats {
        crate::FlowStats {
            src: key.src,
            dst: key.dst,
            via,
            method: crate::Method::Sequenced,
            seq_flow: Some(seq_flow),
            sent: self.expected(),
            received: self.received,
            lost: self.lost,
            reordered: self.out_of_order,
            duplicated: self.duplicates,
            in_flight: 0,
            latency: None,
            latency_cdf: Vec::new(),
            jitter_ns: Some(self.jitter_ns()),
            drops: Vec::new(),
        }
    }

    /// The datagrams the sender must have sent so far (highest number + 1).
    pub fn expected(&self) -> u64 {
        self.next
    }

    /// RFC 3550 jitter in nanoseconds.
    pub fn jitter_ns(&self) -> f64 {
        self.jitter.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u64]) -> SeqReceiver {
        let mut r = SeqReceiver::default();
        for (i, &seq) in seqs.iter().enumerate() {
            r.arrive(
                SeqHeader {
                    flow: 1,
                    seq,
                    sent_ns: seq.wrapping_mul(1000),
                },
                i as u64 * 1000 + 500,
            );
        }
        r
    }

    /// Hand-computed with iperf3's rules.
    #[test]
    fn counts_like_iperf3() {
        // (arrivals, expected, lost, out of order, duplicates)
        let cases: &[(&[u64], u64, u64, u64, u64)] = &[
            (&[0, 1, 2, 3], 4, 0, 0, 0),
            (&[0, 1, 3, 4], 5, 1, 0, 0), // 2 never came
            (&[0, 2, 1, 3], 4, 0, 1, 0), // 1 came late: out of order, not lost
            (&[0, 3, 1, 2], 4, 0, 2, 0),
            (&[0, 1, 1, 2], 3, 0, 0, 1), // a duplicate is neither lost nor late
            (&[5, 6], 7, 5, 0, 0),       // 0..4 missing at the start
            (&[0, 4, 2], 5, 2, 1, 0),    // 1 and 3 lost, 2 late
        ];
        for &(seqs, expected, lost, ooo, dup) in cases {
            let r = feed(seqs);
            assert_eq!(
                (
                    r.expected(),
                    r.lost,
                    r.out_of_order,
                    r.duplicates,
                    r.received
                ),
                (expected, lost, ooo, dup, seqs.len() as u64),
                "{seqs:?}"
            );
        }
    }

    #[test]
    fn steady_stream_has_no_jitter() {
        assert_eq!(feed(&[0, 1, 2, 3, 4]).jitter_ns(), 0.0);
    }

    #[test]
    fn numbers_anyone_makes_up_never_overflow_and_memory_stays_fixed() {
        let r = feed(&[0, u64::MAX, u64::MAX - 1, 5, u64::MAX]);
        assert_eq!(r.expected(), u64::MAX);
        assert_eq!(
            r.lost,
            u64::MAX - 1 - 2,
            "saturated, then two late arrivals"
        );
        assert_eq!(r.received, 5);
        assert_eq!(r.seen.len() as u64 * 64, WINDOW);
        // Beyond the window a repeat can no longer be told from a late arrival.
        let mut seqs: Vec<u64> = (0..WINDOW + 10).collect();
        seqs.push(3);
        seqs.push(WINDOW + 5);
        let r = feed(&seqs);
        assert_eq!((r.out_of_order, r.duplicates), (1, 1));
    }
}
