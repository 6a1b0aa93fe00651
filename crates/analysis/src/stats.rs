//! Per-flow figures.

use std::net::SocketAddr;

use socklab_protocol::link::LinkId;

/// How a flow's figures were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Both ends are lab sockets: every receive matched to its send.
    Matched,
    /// From the sequence header alone, as the receiver sees it (iperf3's definitions).
    Sequenced,
    /// Only the sender is a lab socket: replies matched to requests (an echo-like peer).
    Echo,
}

/// Latency percentiles, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// Of a set of samples (sorted in place); `None` when empty.
    pub fn of(samples: &mut [u64]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |q: f64| {
            samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Some(Percentiles {
            min: samples[0],
            p50: rank(0.5),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        })
    }
}

/// The figures of one flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowStats {
    /// Source address (the original sender, also across a link).
    pub src: SocketAddr,
    /// Destination address (the final receiver, also across a link).
    pub dst: SocketAddr,
    /// The link it crosses, if any.
    pub via: Option<LinkId>,
    /// How the figures were obtained.
    pub method: Method,
    /// The sequenced stream's id ([`Method::Sequenced`] only).
    pub seq_flow: Option<u32>,
    /// Datagrams sent (for [`Method::Sequenced`]: expected, the highest number + 1).
    pub sent: u64,
    /// Datagrams received, duplicates included (for [`Method::Echo`]: replies).
    pub received: u64,
    /// Lost: never received (matched: within the timeout or dropped by a link;
    /// sequenced: sequence gaps not filled later; echo: unanswered requests).
    pub lost: u64,
    /// Received after a datagram of the same flow that was sent later.
    pub reordered: u64,
    /// Extra copies received.
    pub duplicated: u64,
    /// Sent but neither received nor lost yet.
    pub in_flight: u64,
    /// One-way latency (matched) or round-trip time (echo).
    pub latency: Option<Percentiles>,
    /// RFC 3550 interarrival jitter, nanoseconds.
    pub jitter_ns: Option<f64>,
}

impl FlowStats {
    /// Lost as a percentage of sent (0 when nothing was sent).
    pub fn lost_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.sent as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(
            Percentiles::of(&mut samples),
            Some(Percentiles {
                min: 1,
                p50: 50,
                p99: 99,
                max: 100
            })
        );
        assert_eq!(
            Percentiles::of(&mut [7]),
            Some(Percentiles {
                min: 7,
                p50: 7,
                p99: 7,
                max: 7
            })
        );
        assert_eq!(Percentiles::of(&mut []), None);
    }
}
