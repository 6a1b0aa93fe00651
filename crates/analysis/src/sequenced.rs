//! Receiver statistics from sequence numbers alone, with iperf3's definitions:
//! - the expected count is the highest sequence number seen plus one;
//! - a gap in the numbers counts its datagrams as lost;
//! - a datagram that arrives after a higher number is **out of order**, and since it was
//!   counted lost when the gap opened, it is no longer lost;
//! - jitter is RFC 3550 interarrival jitter over the header's send times.
//!
//! Unlike iperf3, a number seen twice counts as a **duplicate** (iperf3 would count it
//! out of order and lower the loss below the truth).

use std::collections::HashSet;

use crate::jitter::Jitter;
use crate::seqhdr::SeqHeader;

/// One sequenced stream as its receiver sees it.
#[derive(Debug, Clone, Default)]
pub struct SeqReceiver {
    next: u64,
    seen: HashSet<u64>,
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

impl SeqReceiver {
    /// Takes one datagram's header, received at `received_ns` (same clock as the
    /// header's send time).
    pub fn arrive(&mut self, header: SeqHeader, received_ns: u64) {
        self.received += 1;
        if !self.seen.insert(header.seq) {
            self.duplicates += 1;
            return;
        }
        self.jitter.arrive(header.sent_ns, received_ns);
        if header.seq >= self.next {
            self.lost += header.seq - self.next;
            self.next = header.seq + 1;
        } else {
            self.out_of_order += 1;
            self.lost = self.lost.saturating_sub(1);
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
                    sent_ns: seq * 1000,
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
}
