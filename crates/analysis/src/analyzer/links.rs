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

/// The most sequenced streams followed per link flow.
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
    link: u32,
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
#[derive(Debug, Clone, Copy)]
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
    /// Links by index (a datagram's key holds the index, not the name).
    links: Vec<LinkId>,
    flows: Vec<Option<LinkFlow>>,
    by_key: HashMap<(u32, FlowKey), u32>,
    in_link: HashMap<(u32, LinkDir, u64), InLink>,
    max_in_link: usize,
    max_flows: usize,
    /// Datagrams not followed because `max_in_link` were in links already.
    pub untracked: u64,
    /// Flows retired to make room.
    pub retired: u64,
}

impl LinkFlows {
    pub(super) fn new(max_in_link: usize, max_flows: usize) -> Self {
        LinkFlows {
            links: Vec::new(),
            flows: Vec::new(),
            by_key: HashMap::new(),
            in_link: HashMap::new(),
            max_in_link: max_in_link.max(1),
            max_flows: max_flows.max(1),
            untracked: 0,
            retired: 0,
        }
    }

    /// How many flows are kept.
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    fn link_index(&mut self, link: &LinkId) -> u32 {
        match self.links.iter().position(|l| l == link) {
            Some(i) => i as u32,
            None => {
                self.links.push(link.clone());
                (self.links.len() - 1) as u32
            }
        }
    }

    fn flow(&mut self, link: u32, key: FlowKey, now: Nanos) -> &mut LinkFlow {
        let index = match self.by_key.get(&(link, key)) {
            Some(&i) => i,
            None => {
                if self.by_key.len() >= self.max_flows {
                    self.retire_idlest();
                }
                let flow = LinkFlow {
                    key,
                    link,
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
        flow
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
            if flow.in_link > 0 {
                self.in_link.retain(|_, d| d.flow != i as u32);
            }
        }
        self.retired += 1;
    }

    /// Takes a link's decision on a datagram whose sender is not a lab socket.
    pub(super) fn decided(&mut self, d: Decision<'_>) {
        let link = self.link_index(d.link);
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
        let flow = self.flow(link, d.flow, d.t_ns);
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
        let index = self.by_key[&(link, d.flow)];
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
        let Some(link) = self.links.iter().position(|l| l == link) else {
            return;
        };
        let key = (link as u32, dir, seq);
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
            let streams = flow.streams.len();
            if let Some(stream) = match flow.streams.entry(header.flow) {
                std::collections::btree_map::Entry::Occupied(e) => Some(e.into_mut()),
                std::collections::btree_map::Entry::Vacant(e) => {
                    (streams < MAX_STREAMS_PER_FLOW).then(|| e.insert(SeqReceiver::default()))
                }
            } {
                stream.arrive(header, t_ns);
            }
        }
    }

    /// A link was deleted: what was in it will not leave.
    pub(super) fn link_deleted(&mut self, link: &LinkId) {
        let Some(link) = self.links.iter().position(|l| l == link) else {
            return;
        };
        let link = link as u32;
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
        flows.sort_by_key(|f| (f.key, f.link));
        for f in flows {
            let via = Some(self.links[f.link as usize].clone());
            all.push(FlowStats {
                src: f.key.src,
                dst: f.key.dst,
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
                all.push(FlowStats {
                    src: f.key.src,
                    dst: f.key.dst,
                    via: via.clone(),
                    method: Method::Sequenced,
                    seq_flow: Some(*seq_flow),
                    sent: r.expected(),
                    received: r.received,
                    lost: r.lost,
                    reordered: r.out_of_order,
                    duplicated: r.duplicates,
                    in_flight: 0,
                    latency: None,
                    latency_cdf: Vec::new(),
                    jitter_ns: Some(r.jitter_ns()),
                    drops: Vec::new(),
                });
            }
        }
    }
}
