//! Per-flow figures.

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
    /// The sender is not a lab socket and the flow crosses a link: what the link saw
    /// (arrivals, drops, departures and the time in between).
    Link,
    /// A TCP connection's direction: bytes written and read, and each write's time
    /// until the arrival of its last byte at the reader.
    Stream,
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

/// Bits of a value kept below its leading bit: each power of two is split into
/// 2^SUB_BITS buckets, so a bucket is at most 1/256 of its values wide and its middle is
/// within 0.2 % of any sample in it.
const SUB_BITS: u32 = 8;
/// Buckets per power of two.
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Values from 2^MAX_EXPONENT ns (73 minutes) on share the top power of two's buckets
/// (the exact largest is kept apart): a latency that long only comes from a loss
/// timeout no one sets, and the cap bounds a histogram at 36 groups of 1 KiB.
const MAX_EXPONENT: u32 = 42;
/// Groups: the exact values below 2^SUB_BITS, then one per power of two up to the cap.
const GROUPS: usize = (MAX_EXPONENT - SUB_BITS + 2) as usize;

/// Latency samples as a log-linear histogram (the scheme of HdrHistogram): adding a
/// sample takes constant time and no allocation once its power of two has been seen,
/// and percentiles are read without sorting or copying anything. Values below 256 ns
/// are kept exactly; above, a percentile is the middle of its sample's bucket (within
/// 0.2 %). The smallest and largest are exact. A group of buckets is allocated when the
/// first sample falls in it, so a flow whose latencies span 10 µs to 10 ms holds about
/// ten groups of 1 KiB, and never more than 36.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    count: u64,
    min: u64,
    max: u64,
    groups: Vec<Option<Box<[u32; SUB_BUCKETS]>>>,
}

impl Histogram {
    /// The group and bucket of a value.
    fn place(v: u64) -> (usize, usize) {
        if v < SUB_BUCKETS as u64 {
            return (0, v as usize);
        }
        let exponent = (63 - v.leading_zeros()).min(MAX_EXPONENT);
        let v = v.min((1u64 << (MAX_EXPONENT + 1)) - 1);
        let shift = exponent - SUB_BITS;
        let bucket = ((v >> shift) as usize) - SUB_BUCKETS;
        ((exponent - SUB_BITS + 1) as usize, bucket)
    }

    /// The middle of a bucket.
    fn middle(group: usize, bucket: usize) -> u64 {
        if group == 0 {
            return bucket as u64;
        }
        let shift = group as u32 - 1;
        let low = ((SUB_BUCKETS + bucket) as u64) << shift;
        low + ((1u64 << shift) >> 1)
    }

    /// Adds a sample.
    pub fn add(&mut self, v: u64) {
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        if self.groups.is_empty() {
            self.groups.resize_with(GROUPS, || None);
        }
        let (group, bucket) = Self::place(v);
        let counts = self.groups[group].get_or_insert_with(|| Box::new([0; SUB_BUCKETS]));
        counts[bucket] = counts[bucket].saturating_add(1);
    }

    /// How many samples it holds.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The value at nearest rank `q` (0 < q ≤ 1).
    fn rank(&self, q: f64) -> u64 {
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (group, counts) in self.groups.iter().enumerate() {
            let Some(counts) = counts else { continue };
            for (bucket, &n) in counts.iter().enumerate() {
                seen += u64::from(n);
                if seen >= rank {
                    return Self::middle(group, bucket).clamp(self.min, self.max);
                }
            }
        }
        self.max
    }

    /// The values at nearest ranks `quantiles` (each 0 to 1, in increasing order; 0 is
    /// the smallest sample), in one pass over the buckets; empty when it holds no
    /// sample.
    pub fn quantiles(&self, quantiles: &[f64]) -> Vec<u64> {
        if self.count == 0 {
            return Vec::new();
        }
        let ranks: Vec<u64> = quantiles
            .iter()
            .map(|q| ((q * self.count as f64).ceil() as u64).clamp(1, self.count))
            .collect();
        let mut out = Vec::with_capacity(ranks.len());
        let mut seen = 0u64;
        'walk: for (group, counts) in self.groups.iter().enumerate() {
            let Some(counts) = counts else { continue };
            for (bucket, &n) in counts.iter().enumerate() {
                seen += u64::from(n);
                while let Some(&rank) = ranks.get(out.len()) {
                    if seen < rank {
                        break;
                    }
                    out.push(Self::middle(group, bucket).clamp(self.min, self.max));
                }
                if out.len() == ranks.len() {
                    break 'walk;
                }
            }
        }
        out.resize(ranks.len(), self.max);
        if let Some(first) = quantiles
            .first()
            .filter(|q| **q <= 0.0)
            .and(out.first_mut())
        {
            *first = self.min;
        }
        if let Some(last) = quantiles.last().filter(|q| **q >= 1.0).and(out.last_mut()) {
            *last = self.max;
        }
        out
    }

    /// Its percentiles; `None` when it holds no sample.
    pub fn percentiles(&self) -> Option<Percentiles> {
        (self.count > 0).then(|| Percentiles {
            min: self.min,
            p50: self.rank(0.5),
            p99: self.rank(0.99),
            max: self.max,
        })
    }
}

/// The figures of one flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowStats {
    /// Source address (the original sender, also across a link).
    pub src: socklab_protocol::Endpoint,
    /// Destination address (the final receiver, also across a link).
    pub dst: socklab_protocol::Endpoint,
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
    /// The latency at each of [`socklab_protocol::flow::LATENCY_CDF_QUANTILES`] (empty
    /// when there is no sample).
    pub latency_cdf: Vec<u64>,
    /// How many a link dropped, per reason ([`Method::Link`] only).
    pub drops: Vec<(socklab_protocol::link::DropReason, u64)>,
}

/// `lost` as a percentage of `sent` (0 when nothing was sent): the one definition the
/// server's figures and the page's figures of a stretch share.
pub fn lost_pct(lost: u64, sent: u64) -> f64 {
    if sent == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / sent as f64
    }
}

impl FlowStats {
    /// Lost as a percentage of sent (0 when nothing was sent).
    pub fn lost_pct(&self) -> f64 {
        lost_pct(self.lost, self.sent)
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

    /// The histogram's percentiles agree with the exact ones: equal below 256 ns,
    /// within 0.2 % above, and the smallest and largest exact.
    #[test]
    fn a_histogram_agrees_with_sorting_within_its_precision() {
        let mut seed = 0x5eed_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let sets: Vec<Vec<u64>> = vec![
            (1..=100).collect(),
            vec![7],
            vec![255, 256, 257, 511, 512, 513],
            (0..10_000).map(|_| 3_000_000 + next() % 200_000).collect(),
            (0..10_000).map(|_| 10_000 + next() % 50_000_000).collect(),
            vec![u64::MAX, 1, 1 << 50],
        ];
        for samples in sets {
            let mut h = Histogram::default();
            samples.iter().for_each(|&v| h.add(v));
            let exact = Percentiles::of(&mut samples.clone()).unwrap();
            let got = h.percentiles().unwrap();
            assert_eq!((got.min, got.max), (exact.min, exact.max));
            for (got, exact) in [(got.p50, exact.p50), (got.p99, exact.p99)] {
                if exact < 256 {
                    assert_eq!(got, exact);
                } else if exact < 1 << 42 {
                    let error = got.abs_diff(exact) as f64 / exact as f64;
                    assert!(error <= 1.0 / 512.0, "{got} for {exact}: {error}");
                }
            }
        }
        assert_eq!(Histogram::default().percentiles(), None);
    }

    /// The quantiles read in one pass equal the ones read one by one.
    #[test]
    fn quantiles_in_one_pass_equal_each_rank() {
        let mut h = Histogram::default();
        for v in (0..5_000u64).map(|i| 1_000 + (i * 7_919) % 3_000_000) {
            h.add(v);
        }
        let qs = [0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0];
        let got = h.quantiles(&qs);
        let each: Vec<u64> = qs
            .iter()
            .map(|&q| if q == 0.0 { h.min } else { h.rank(q) })
            .collect();
        assert_eq!(got, each);
        assert_eq!(got[7], h.max);
        assert!(got.windows(2).all(|w| w[0] <= w[1]));
        assert!(Histogram::default().quantiles(&qs).is_empty());
    }

    #[test]
    fn every_value_has_a_bucket_and_buckets_are_in_order() {
        let mut last = (0, 0);
        for v in (0..20_000u64)
            .chain((40..64).map(|e| 1u64 << e))
            .chain([u64::MAX])
        {
            let place = Histogram::place(v);
            assert!(place >= last, "{v}: {place:?} after {last:?}");
            assert!(place.0 < GROUPS && place.1 < SUB_BUCKETS);
            last = place;
        }
    }
}
