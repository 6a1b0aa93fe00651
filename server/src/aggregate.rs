//! The session's datagrams counted per lane and time bucket, from its start: what the
//! page draws when more datagrams share a pixel than it could take in one by one, and
//! what stays true of a viewer that was sent only some of them (`keep_up`).
//!
//! The flow analysis feeds it every entry of the log (it reads them all anyway) and
//! every fate it concludes. It is bounded by construction: at most [`MAX_BUCKETS`]
//! buckets a lane (when time runs past the last one, every bucket doubles in width)
//! and at most `--max-aggregate-lanes` lanes (addresses past it count in one `others`
//! figure); a lost datagram is counted where it was sent, which needs its send's time
//! until its fate comes: at most `--max-in-flight` of those are remembered (an extra
//! copy's send is looked up in the log).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;

use socklab_protocol::flow::FateKind;
use socklab_protocol::link::{LinkFate, LinkId};
use socklab_protocol::{Aggregates as Answer, Direction, Endpoint, EventId, LaneCounts};

use crate::log::{EventLog, Peer, Record};

/// The most buckets a lane keeps.
pub const MAX_BUCKETS: usize = 4096;
/// The narrowest bucket, ns (a session's first 4 s are counted to the millisecond).
pub const FIRST_BUCKET_NS: u64 = 1_000_000;
pub use socklab_protocol::limits::MAX_AGGREGATE_BUCKETS as MAX_ANSWER_BUCKETS;
/// The default of `--max-aggregate-lanes`.
pub const DEFAULT_MAX_LANES: usize = 256;

/// What is counted, in the order of [`Counts`].
#[derive(Debug, Clone, Copy)]
enum What {
    Sent = 0,
    Received,
    Lost,
    Reordered,
    Duplicated,
    Forwarded,
    Dropped,
}
const KINDS: usize = 7;

/// One bucket's counts, in [`What`]'s order.
type Counts = [u32; KINDS];

/// What has been counted: enough to answer an `aggregate`, and what a recording keeps
/// of its counts (the store saves it once made, see `api.rs`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Counted {
    bucket_ns: u64,
    lanes: Vec<(Endpoint, Vec<Counts>)>,
    /// Datagrams of addresses past the lane limit.
    others: u64,
}

/// The counts, and what it needs to know to place them.
#[derive(Debug)]
pub struct Aggregates {
    counted: Counted,
    lane_of: HashMap<Endpoint, usize>,
    max_lanes: usize,
    /// Lab sockets' addresses (a datagram they receive from each other is not
    /// counted again as sent).
    lab: HashSet<Endpoint>,
    /// Each link's listen address (its lane), and every address of a link.
    links: HashMap<LinkId, SocketAddr>,
    link_addrs: HashSet<SocketAddr>,
    /// Sends whose fate has not come yet: their lane and time (oldest first, at most
    /// `max_in_flight`).
    in_flight: BTreeMap<u64, (usize, u64)>,
    max_in_flight: usize,
    /// Counting a recording (no log to look an extra copy's send up in): the sends
    /// whose fate came, newest `max_in_flight` of them.
    concluded: Option<BTreeMap<u64, (usize, u64)>>,
}

/// Where a duplicate's send is found: the session's log, or (a recording) the sends
/// concluded lately.
enum Sends<'a> {
    Log(&'a EventLog),
    Concluded,
}

impl Aggregates {
    /// Counts nothing yet.
    pub fn new(max_lanes: usize, max_in_flight: usize) -> Self {
        Aggregates {
            counted: Counted {
                bucket_ns: FIRST_BUCKET_NS,
                lanes: Vec::new(),
                others: 0,
            },
            lane_of: HashMap::new(),
            max_lanes: max_lanes.max(1),
            lab: HashSet::new(),
            links: HashMap::new(),
            link_addrs: HashSet::new(),
            in_flight: BTreeMap::new(),
            max_in_flight: max_in_flight.max(1),
            concluded: None,
        }
    }

    /// Counts nothing yet, for a recording's events read from the store
    /// ([`Aggregates::feed_stored`]).
    pub fn of_recording(max_lanes: usize, max_in_flight: usize) -> Self {
        Aggregates {
            concluded: Some(BTreeMap::new()),
            ..Aggregates::new(max_lanes, max_in_flight)
        }
    }

    /// What has been counted.
    pub fn counted(&self) -> &Counted {
        &self.counted
    }

    /// What has been counted, kept.
    pub fn into_counted(self) -> Counted {
        self.counted
    }

    /// Counts one logged entry of `log`.
    pub fn feed(&mut self, id: EventId, t_ns: u64, record: &Record, log: &EventLog) {
        match record {
            Record::Bound(b) => {
                self.lab.insert(b.local.clone());
            }
            Record::LinkCreated(c) => self.link(&c.link, c.listen, c.upstream),
            Record::Datagram(d) => {
                // Borrowed, not copied: a Unix peer's name is a string.
                let v4;
                let peer = match &d.peer {
                    Peer::V4(a) => {
                        v4 = Endpoint::Ip(SocketAddr::V4(*a));
                        &v4
                    }
                    Peer::Other(e) => &**e,
                };
                self.datagram(id, t_ns, d.dir, &d.socket.local, peer);
            }
            Record::LinkPacket(p, _) => self.link_packet(&p.link, p.fate, t_ns),
            Record::Fate(fate) => self.fate(
                (fate.kind, fate.reordered_by > 0 || fate.late),
                fate.send,
                Sends::Log(log),
            ),
            _ => {}
        }
    }

    /// Counts one event of a recording as the store keeps it: its kind (the wire
    /// `type`) and JSON. Events it does not count, or cannot read, are passed over.
    pub fn feed_stored(&mut self, id: u64, t_ns: u64, kind: &str, json: &str) {
        use socklab_protocol::event::{Bound, Datagram, LinkCreated, LinkPacket};
        match kind {
            "bound" => {
                if let Ok(b) = serde_json::from_str::<Bound>(json) {
                    self.lab.insert(b.local);
                }
            }
            "link_created" => {
                if let Ok(c) = serde_json::from_str::<LinkCreated>(json) {
                    self.link(&c.link, c.listen, c.upstream);
                }
            }
            "datagram" => {
                if let Ok(d) = serde_json::from_str::<Datagram>(json) {
                    self.datagram(EventId(id), t_ns, d.dir, &d.local, &d.peer);
                }
            }
            "link_packet" => {
                if let Ok(p) = serde_json::from_str::<LinkPacket>(json) {
                    self.link_packet(&p.link, p.fate, t_ns);
                }
            }
            "fate" => {
                if let Ok(f) = serde_json::from_str::<socklab_protocol::flow::Fate>(json) {
                    let reordered = f.reordered_by.is_some_and(|n| n > 0) || f.late;
                    self.fate((f.fate, reordered), f.send, Sends::Concluded);
                }
            }
            _ => {}
        }
    }

    fn link(&mut self, link: &LinkId, listen: SocketAddr, upstream: SocketAddr) {
        self.links.insert(link.clone(), listen);
        self.link_addrs.extend([listen, upstream]);
    }

    fn datagram(
        &mut self,
        id: EventId,
        t_ns: u64,
        dir: Direction,
        local: &Endpoint,
        peer: &Endpoint,
    ) {
        match dir {
            Direction::Out => {
                if let Some(lane) = self.count(local, t_ns, What::Sent) {
                    self.remember(id, lane, t_ns);
                }
            }
            Direction::In => {
                self.count(local, t_ns, What::Received);
                let from_lab = self.lab.contains(peer)
                    || peer
                        .socket_addr()
                        .is_some_and(|a| self.link_addrs.contains(&a));
                if !from_lab {
                    self.count(peer, t_ns, What::Sent);
                }
            }
        }
    }

    fn link_packet(&mut self, link: &LinkId, fate: LinkFate, t_ns: u64) {
        if let Some(&listen) = self.links.get(link) {
            let what = match fate {
                LinkFate::Dropped => What::Dropped,
                _ => What::Forwarded,
            };
            self.count(&Endpoint::Ip(listen), t_ns, what);
        }
    }

    /// Counts a fate (its kind, and whether it came out of order) where its datagram
    /// was sent.
    fn fate(&mut self, (kind, reordered): (FateKind, bool), send: EventId, sends: Sends<'_>) {
        let what = match kind {
            FateKind::Lost | FateKind::Unanswered => Some(What::Lost),
            FateKind::Delivered if reordered => Some(What::Reordered),
            FateKind::Duplicate => Some(What::Duplicated),
            _ => None,
        };
        let sent = match (kind, sends) {
            // Its first copy's fate took the send from those in flight: the log tells
            // where and when it was sent, while it still holds it.
            (FateKind::Duplicate, Sends::Log(log)) => log
                .read_after(EventId(send.0.saturating_sub(1)), 1)
                .entries
                .first()
                .filter(|e| e.id == send)
                .and_then(|e| match &e.record {
                    Record::Datagram(d) => self
                        .lane_of
                        .get(&d.socket.local)
                        .map(|&lane| (lane, e.t_ns)),
                    _ => None,
                }),
            (FateKind::Duplicate, Sends::Concluded) => self
                .concluded
                .as_ref()
                .and_then(|c| c.get(&send.0).copied()),
            _ => {
                let sent = self.in_flight.remove(&send.0);
                if let (Some(concluded), Some(sent)) = (self.concluded.as_mut(), sent) {
                    if concluded.len() >= self.max_in_flight {
                        concluded.pop_first();
                    }
                    concluded.insert(send.0, sent);
                }
                sent
            }
        };
        if let (Some(what), Some((lane, t_ns))) = (what, sent) {
            self.counted.add(lane, t_ns, what);
        }
    }

    fn remember(&mut self, send: EventId, lane: usize, t_ns: u64) {
        if self.in_flight.len() >= self.max_in_flight {
            self.in_flight.pop_first();
        }
        self.in_flight.insert(send.0, (lane, t_ns));
    }

    /// Counts one on `addr`'s lane; returns the lane (none past the lane limit).
    fn count(&mut self, addr: &Endpoint, t_ns: u64, what: What) -> Option<usize> {
        let lane = match self.lane_of.get(addr) {
            Some(&lane) => lane,
            None if self.counted.lanes.len() < self.max_lanes => {
                self.counted.lanes.push((addr.clone(), Vec::new()));
                self.lane_of
                    .insert(addr.clone(), self.counted.lanes.len() - 1);
                self.counted.lanes.len() - 1
            }
            None => {
                self.counted.others = self.counted.others.saturating_add(1);
                return None;
            }
        };
        self.counted.add(lane, t_ns, what);
        Some(lane)
    }
}

impl Counted {
    fn add(&mut self, lane: usize, t_ns: u64, what: What) {
        while t_ns / self.bucket_ns >= MAX_BUCKETS as u64 {
            self.widen();
        }
        let bucket = (t_ns / self.bucket_ns) as usize;
        let counts = &mut self.lanes[lane].1;
        if counts.len() <= bucket {
            counts.resize(bucket + 1, [0; KINDS]);
        }
        let n = &mut counts[bucket][what as usize];
        *n = n.saturating_add(1);
    }

    /// Doubles every bucket's width, merging neighbours.
    fn widen(&mut self) {
        self.bucket_ns = self.bucket_ns.saturating_mul(2);
        for (_, counts) in &mut self.lanes {
            let merged: Vec<Counts> = counts
                .chunks(2)
                .map(|pair| {
                    let mut sum = pair[0];
                    if let Some(second) = pair.get(1) {
                        for (s, n) in sum.iter_mut().zip(second) {
                            *s = s.saturating_add(*n);
                        }
                    }
                    sum
                })
                .collect();
            *counts = merged;
        }
    }

    /// The counts from `from_ns` to `to_ns` (exclusive) in `buckets` buckets, or in as
    /// many of the width counted as fit when that is wider. The caller has checked
    /// that `from_ns < to_ns` and `buckets` is 1 to [`MAX_ANSWER_BUCKETS`].
    pub fn answer(&self, from_ns: u64, to_ns: u64, buckets: u32, req: Option<i64>) -> Answer {
        let span = to_ns - from_ns;
        let asked = span.div_ceil(u64::from(buckets.max(1))).max(1);
        // A bucket is never narrower than the width counted, and starts on one of its
        // boundaries so that a counted bucket never falls in two.
        let width = asked
            .div_ceil(self.bucket_ns)
            .max(1)
            .saturating_mul(self.bucket_ns);
        let first = from_ns / self.bucket_ns * self.bucket_ns;
        let n = (to_ns - first).div_ceil(width).max(1) as usize;
        let lanes = self
            .lanes
            .iter()
            .filter_map(|(lane, counts)| {
                let mut out = [(); KINDS].map(|()| vec![0u32; n]);
                let mut any = false;
                let lo = (first / self.bucket_ns) as usize;
                let hi = (to_ns.div_ceil(self.bucket_ns) as usize).min(counts.len());
                for (i, c) in counts.iter().enumerate().take(hi).skip(lo) {
                    let at = ((i as u64 * self.bucket_ns - first) / width) as usize;
                    for (kind, n) in c.iter().enumerate() {
                        if *n > 0 {
                            any = true;
                            out[kind][at] = out[kind][at].saturating_add(*n);
                        }
                    }
                }
                any.then(|| {
                    let [
                        sent,
                        received,
                        lost,
                        reordered,
                        duplicated,
                        forwarded,
                        dropped,
                    ] = out.map(|v| {
                        if v.iter().all(|n| *n == 0) {
                            Vec::new()
                        } else {
                            v
                        }
                    });
                    LaneCounts {
                        lane: lane.clone(),
                        sent,
                        received,
                        lost,
                        reordered,
                        duplicated,
                        forwarded,
                        dropped,
                    }
                })
            })
            .collect();
        Answer {
            from_ns: first,
            bucket_ns: width,
            resolution_ns: self.bucket_ns,
            buckets: n as u32,
            lanes,
            others: self.others,
            req,
        }
    }
}

impl Aggregates {
    /// See [`Counted::answer`].
    pub fn answer(&self, from_ns: u64, to_ns: u64, buckets: u32, req: Option<i64>) -> Answer {
        self.counted.answer(from_ns, to_ns, buckets, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(port: u16) -> Endpoint {
        Endpoint::Ip(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn buckets_widen_and_keep_every_count() {
        let mut a = Aggregates::new(4, 100);
        let lane = lane(4000);
        for i in 0..10_000u64 {
            // One every 2 ms for 20 s: past 4,096 buckets of a millisecond.
            a.count(&lane, i * 2_000_000, What::Sent);
        }
        assert!(a.counted.bucket_ns > FIRST_BUCKET_NS);
        assert!(a.counted.lanes[0].1.len() <= MAX_BUCKETS);
        let answer = a.answer(0, 20_000_000_000, 100, None);
        let total: u64 = answer.lanes[0].sent.iter().map(|n| u64::from(*n)).sum();
        assert_eq!(total, 10_000);
        assert_eq!(answer.buckets, 100);
        assert_eq!(answer.bucket_ns, 200_000_000);
    }

    #[test]
    fn an_answer_is_never_finer_than_what_is_counted() {
        let mut a = Aggregates::new(4, 100);
        let lane = lane(4000);
        a.count(&lane, 1_500_000, What::Sent);
        a.count(&lane, 1_700_000, What::Sent);
        // 10 buckets of 100 µs asked for; the count is per millisecond.
        let answer = a.answer(1_000_000, 2_000_000, 10, None);
        assert_eq!(answer.bucket_ns, FIRST_BUCKET_NS);
        assert_eq!(answer.buckets, 1);
        assert_eq!(answer.lanes[0].sent, vec![2]);
        assert!(answer.lanes[0].lost.is_empty());
    }

    #[test]
    fn lanes_past_the_limit_count_as_others() {
        let mut a = Aggregates::new(2, 100);
        for port in 0..5u16 {
            a.count(&lane(4000 + port), 0, What::Sent);
        }
        let answer = a.answer(0, 1_000_000, 1, None);
        assert_eq!(answer.lanes.len(), 2);
        assert_eq!(answer.others, 3);
    }
}
