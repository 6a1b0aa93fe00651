//! Flows through a link whose sender is not a lab socket: what the link saw of them.
//!
//! A lab socket's sends are followed end to end (matched or echo flows). A datagram
//! that an outside program (a learner's Python client, any UDP tool) sends through a
//! link has no `out` event, and its receiver may not be a lab socket either; but the
//! link reports each arrival (`link_packet`, with its decision) and each departure
//! (`link_sent`). Per flow (sender, final receiver, link) this counts:
//! - **sent**: datagrams that arrived at the link;
//! - **received**: datagrams the link sent on, copies included;
//! - **lost**: dropped by the link (per reason), a failed send on included;
//! - **reordered**: sent on after a datagram of the flow that arrived later;
//! - **duplicated**: extra copies sent on;
//! - latency: the time each spent in the link (departure − arrival, both measured:
//!   the kernel's arrival stamp and the clock read before the send), and RFC 3550
//!   jitter of those times;
//! - when a datagram carries socklab's sequence header and its receiver is not a lab
//!   socket (a lab socket's receives are analysed there): the sequenced figures as the
//!   link sent them on.

use std::collections::{BTreeMap, HashMap};

use socklab_protocol::flow::LATENCY_CDF_QUANTILES;
use socklab_protocol::link::{DropReason, LinkDir, LinkFate, LinkId};

use super::input::FlowKey;
use crate::Nanos;
use crate::jitter::Jitter;
use crate::seqhdr::SeqHeader;
use crate::sequenced::SeqReceiver;
use crate::stats::{FlowStats, Histogram, Method};

/// The most sequenced streams followed per link flow (all link flows together follow
/// at most as many streams as there may be flows).
const MAX_STREAMS_PER_FLOW: usize = 4;

/// A datagram in a link, waiting to be sent on.
#[derive(Debug, Clone, Copy)]
struct InLink {
    flow: u32,
    arrived_ns: Nanos,
    /// Copies still to leave (2 for a duplicated datagram).
    copies: u8,
    /// Whether a copy has left.
    sent_any: bool,
    header: Option<SeqHeader>,
}

/// One flow through one link.
#[derive(Debug)]
struct LinkFlow {
    key: FlowKey,
    /// The link's number in [`LinkFlows::links`], and its name.
    link: u64,
    via: LinkId,
    arrived: u64,
    sent_on: u64,
    dropped: BTreeMap<DropReason, u64>,
    duplicated: u64,
    reordered: u64,
    /// The highest `seq` (arrival order in the direction) sent on so far.
    max_sent: Option<u64>,
    in_link: u64,
    delays: Histogram,
    jitter: Jitter,
    streams: BTreeMap<u32, SeqReceiver>,
    last_ns: Nanos,
}

/// A decision on a datagram from a sender that is not a lab socket.
#[derive(Debug, Clone)]
pub(super) struct Decision<'a> {
    pub link: &'a LinkId,
    pub dir: LinkDir,
    pub seq: u64,
    pub t_ns: Nanos,
    pub flow: FlowKey,
    pub to_lab: bool,
    pub fate: LinkFate,
    pub reason: Option<DropReason>,
    pub duplicated: bool,
    pub bytes: &'a [u8],
}

/// Every flow through a link that the analyzer follows this way.
#[derive(Debug)]
pub(super) struct LinkFlows {
    /// The links that exist, by name, with a number that is never reused (a
    /// datagram's key holds the number, not the name); forgotten when deleted.
    links: HashMap<LinkId, u64>,
    next_link: u64,
    flows: Vec<Option<LinkFlow>>,
    by_key: HashMap<(u64, FlowKey), u32>,
    in_link: HashMap<(u64, LinkDir, u64), InLink>,
    max_in_link: usize,
    max_flows: usize,
    /// Sequenced streams followed, all flows together (at most `max_flows`).
    streams: usize,
    /// Datagrams not followed because `max_in_link` were in links already.
    pub untracked: u64,
    /// Flows retired to make room.
    pub retired: u64,
}

impl LinkFlows {
    pub(super) fn new(max_in_link: usize, max_flows: usize) -> Self {
        LinkFlows {
            links: HashMap::new(),
            next_link: 0,
            flows: Vec::new(),
            by_key: HashMap::new(),
            in_link: HashMap::new(),
            max_in_link: max_in_link.max(1),
            max_flows: max_flows.max(1),
            streams: 0,
            untracked: 0,
            retired: 0,
        }
    }

    /// How many flows are kept.
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    fn link_number(&mut self, link: &LinkId) -> u64 {
        if let Some(&n) = self.links.get(link) {
            return n;
        }
        let n = self.next_link;
        self.next_link += 1;
        self.links.insert(link.clone(), n);
        n
    }

    /// The flow `key` through `link` (named `via`), made if new; with its index.
    fn flow(
        &mut self,
        (link, via): (u64, &LinkId),
        key: FlowKey,
        now: Nanos,
    ) -> (u32, &mut LinkFlow) {
        let index = match self.by_key.get(&(link, key.clone())) {
            Some(&i) => i,
            None => {
                if self.by_key.len() >= self.max_flows {
                    self.retire_idlest();
                }
                let flow = LinkFlow {
                    key: key.clone(),
                    link,
                    via: via.clone(),
                    arrived: 0,
                    sent_on: 0,
                    dropped: BTreeMap::new(),
                    duplicated: 0,
                    reordered: 0,
                    max_sent: None,
                    in_link: 0,
                    delays: Histogram::default(),
                    jitter: Jitter::default(),
                    streams: BTreeMap::new(),
                    last_ns: now,
                };
                let free = self.flows.iter().position(Option::is_none);
                let i = match free {
                    Some(i) => {
                        self.flows[i] = Some(flow);
                        i as u32
                    }
                    None => {
                        self.flows.push(Some(flow));
                        (self.flows.len() - 1) as u32
                    }
                };
                self.by_key.insert((link, key), i);
                i
            }
        };
        let flow = self.flows[index as usize]
            .as_mut()
            .expect("by_key names only kept flows");
        flow.last_ns = flow.last_ns.max(now);
        (index, flow)
    }

    /// Retires the flow idle longest, preferring one with nothing in a link; its
    /// datagrams in links are no longer followed.
    fn retire_idlest(&mut self) {
        let victim = self
            .flows
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (f.in_link > 0, f.last_ns, i)))
            .min();
        let Some((_, _, i)) = victim else {
            return;
        };
        if let Some(flow) = self.flows[i].take() {
            self.by_key.remove(&(flow.link, flow.key));
            self.streams -= flow.streams.len();
            if flow.in_link > 0 {
                self.in_link.retain(|_, d| d.flow != i as u32);
            }
        }
        self.retired += 1;
    }

    /// Takes a link's decision on a datagram whose sender is not a lab socket.
    pub(super) fn decided(&mut self, d: Decision<'_>) {
        let link = self.link_number(d.link);
        if d.reason == Some(DropReason::SendFailed) {
            // A second word on a datagram the link had forwarded: this copy never left.
            let key = (link, d.dir, d.seq);
            let Some(waiting) = self.in_link.get_mut(&key) else {
                return;
            };
            waiting.copies = waiting.copies.saturating_sub(1);
            if waiting.copies > 0 {
                return;
            }
            // Its last copy: lost unless another copy left.
            let InLink { flow, sent_any, .. } = *waiting;
            self.in_link.remove(&key);
            if let Some(f) = self.flows.get_mut(flow as usize).and_then(Option::as_mut) {
                f.in_link = f.in_link.saturating_sub(1);
                if !sent_any {
                    *f.dropped.entry(DropReason::SendFailed).or_default() += 1;
                }
            }
            return;
        }
        let tracked = self.in_link.len() < self.max_in_link;
        let (index, flow) = self.flow((link, d.link), d.flow, d.t_ns);
        flow.arrived += 1;
        if d.fate == LinkFate::Dropped {
            let reason = d.reason.unwrap_or(DropReason::RandomLoss);
            *flow.dropped.entry(reason).or_default() += 1;
            return;
        }
        if !tracked {
            self.untracked += 1;
            return;
        }
        flow.in_link += 1;
        let header = if d.to_lab {
            None
        } else {
            SeqHeader::read(d.bytes)
        };
        self.in_link.insert(
            (link, d.dir, d.seq),
            InLink {
                flow: index,
                arrived_ns: d.t_ns,
                copies: if d.duplicated { 2 } else { 1 },
                sent_any: false,
                header,
            },
        );
    }

    /// Takes a link's departure of the datagram it numbered `seq` in `dir` (either
    /// copy of a duplicated one: the first to leave is the delivery, the second the
    /// extra copy).
    pub(super) fn sent(&mut self, link: &LinkId, dir: LinkDir, seq: u64, t_ns: Nanos) {
        let Some(&link) = self.links.get(link) else {
            return;
        };
        let key = (link, dir, seq);
        let Some(waiting) = self.in_link.get_mut(&key) else {
            return;
        };
        waiting.copies = waiting.copies.saturating_sub(1);
        let first = !waiting.sent_any;
        waiting.sent_any = true;
        let waiting = *waiting;
        if waiting.copies == 0 {
            self.in_link.remove(&key);
        }
        let Some(flow) = self
            .flows
            .get_mut(waiting.flow as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        flow.last_ns = flow.last_ns.max(t_ns);
        flow.sent_on += 1;
        if waiting.copies == 0 {
            flow.in_link = flow.in_link.saturating_sub(1);
        }
        if !first {
            flow.duplicated += 1;
            return;
        }
        let delay = t_ns.saturating_sub(waiting.arrived_ns);
        flow.delays.add(delay);
        flow.jitter.arrive(waiting.arrived_ns, t_ns);
        match flow.max_sent {
            Some(max) if max > seq => flow.reordered += 1,
            _ => flow.max_sent = Some(seq),
        }
        if let Some(header) = waiting.header {
            let room = flow.streams.len() < MAX_STREAMS_PER_FLOW && self.streams < self.max_flows;
            let stream = match flow.streams.entry(header.flow) {
                std::collections::btree_map::Entry::Occupied(e) => Some(e.into_mut()),
                std::collections::btree_map::Entry::Vacant(e) if room => {
                    self.streams += 1;
                    Some(e.insert(SeqReceiver::default()))
                }
                std::collections::btree_map::Entry::Vacant(_) => None,
            };
            if let Some(stream) = stream {
                stream.arrive(header, t_ns);
            }
        }
    }

    /// A link was deleted: what was in it will not leave, and its name is forgotten
    /// (its flows keep their figures).
    pub(super) fn link_deleted(&mut self, link: &LinkId) {
        let Some(link) = self.links.remove(link) else {
            return;
        };
        self.in_link.retain(|(l, _, _), _| *l != link);
        for flow in self.flows.iter_mut().flatten() {
            if flow.link == link {
                flow.in_link = 0;
            }
        }
    }

    /// The figures of every flow (and of the sequenced streams in them).
    pub(super) fn stats(&self, all: &mut Vec<FlowStats>) {
        let mut flows: Vec<&LinkFlow> = self.flows.iter().flatten().collect();
        flows.sort_by(|a, b| (&a.key, a.link).cmp(&(&b.key, b.link)));
        for f in flows {
            let via = Some(f.via.clone());
            all.push(FlowStats {
                src: f.key.src.clone(),
                dst: f.key.dst.clone(),
                via: via.clone(),
                method: Method::Link,
                seq_flow: None,
                sent: f.arrived,
                received: f.sent_on,
                lost: f.dropped.values().sum(),
                reordered: f.reordered,
                duplicated: f.duplicated,
                in_flight: f.in_link,
                latency: f.delays.percentiles(),
                latency_cdf: f.delays.quantiles(&LATENCY_CDF_QUANTILES),
                jitter_ns: (f.delays.len() > 1).then(|| f.jitter.value()),
                drops: f.dropped.iter().map(|(r, n)| (*r, *n)).collect(),
            });
            for (seq_flow, r) in &f.streams {
                all.push(r.stats(f.key.clone(), *seq_flow, via.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision<'a>(link: &'a LinkId, seq: u64, src_port: u16, bytes: &'a [u8]) -> Decision<'a> {
        Decision {
            link,
            dir: LinkDir::C2t,
            seq,
            t_ns: seq,
            flow: FlowKey {
                src: socklab_protocol::Endpoint::Ip(([127, 0, 0, 1], src_port).into()),
                dst: socklab_protocol::Endpoint::Ip(([127, 0, 0, 1], 9).into()),
            },
            to_lab: false,
            fate: LinkFate::Forwarded,
            reason: None,
            duplicated: false,
            bytes,
        }
    }

    /// Links come and go for as long as a session lasts: a deleted link's name is not
    /// kept, while its flows keep their figures.
    #[test]
    fn deleted_links_are_forgotten_but_their_flows_keep_their_figures() {
        let mut flows = LinkFlows::new(100, 100);
        for n in 0..50 {
            let link = LinkId::new(format!("l{n}"));
            flows.decided(decision(&link, 0, 5000, b"x"));
            flows.link_deleted(&link);
        }
        assert!(flows.links.is_empty());
        assert!(flows.in_link.is_empty());
        let mut all = Vec::new();
        flows.stats(&mut all);
        assert_eq!(all.len(), 50);
        assert!(all.iter().all(|f| f.sent == 1 && f.in_flight == 0));
    }

    /// Sequenced streams as the links sent them on count against the flow limit, all
    /// flows together, whatever flow ids a program writes into its headers.
    #[test]
    fn sequenced_streams_are_bounded_across_flows() {
        let mut flows = LinkFlows::new(1_000, 3);
        let link = LinkId::new("l1");
        let mut seq = 0;
        for port in [5000, 5001] {
            for stream in 0..4 {
                let mut bytes = vec![0; crate::seqhdr::LEN];
                SeqHeader {
                    flow: stream,
                    seq: 0,
                    sent_ns: 0,
                }
                .write(&mut bytes);
                flows.decided(decision(&link, seq, port, &bytes));
                flows.sent(&link, LinkDir::C2t, seq, seq + 10);
                seq += 1;
            }
        }
        let mut all = Vec::new();
        flows.stats(&mut all);
        let streams = all
            .iter()
            .filter(|f| f.method == crate::Method::Sequenced)
            .count();
        assert_eq!((streams, flows.streams), (3, 3));
        // Retiring a flow gives its streams' room back.
        for port in 6000..6003 {
            flows.decided(decision(&link, seq, port, b"x"));
            seq += 1;
        }
        assert_eq!(flows.streams, 0);
    }
}
