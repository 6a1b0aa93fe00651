//! The analyzer: fed a session's events in log order, it says what became of every
//! datagram and keeps per-flow figures.
//!
//! A **flow** is (source, destination) as the application sees it, by the one routing
//! rule of [`crate::routes`]: a datagram that a lab socket sends to a link's listen
//! address belongs to the flow towards the link's target, and one that arrives from a
//! link's upstream address belongs to the flow from the link's client (as the link
//! reported it). So a flow's figures span the link, and the link's decisions can be
//! matched to the datagrams they concern.
//!
//! Definitions:
//! - a receive matches the earliest unmatched send of its flow with the same bytes
//!   (first in, first out among equal payloads); bytes a link truncated or corrupted
//!   match the send the link said it changed;
//! - **lost**: dropped by a link (with the link's reason), or not received within the
//!   timeout; a datagram that arrives after its timeout stops being lost and is marked
//!   late;
//! - **reordered**: received after a datagram of the same flow that was sent later; how
//!   far out of place is the difference in send order;
//! - **duplicated**: a receive beyond the first for the same send;
//! - for flows whose destination is not a lab socket, a receive from that destination
//!   whose bytes equal an earlier unanswered request is its **reply** (RTT); else, when
//!   the person named a match field (a sequence number their protocol carries), one
//!   whose field equals an open request's answers it (**paired by field**); one that
//!   matches neither answers the oldest open request (**paired by order**: a server
//!   that acks or upper-cases); requests without a reply within the timeout are
//!   **unanswered**.
//!
//! Layout: [`input`] (what it takes in and what it concludes), `inflight` (a flow's
//! sends in flight and their fingerprint indexes, shared by matched and echo flows),
//! `matched` (what a receive does to a matched flow), `recent` (finished sends kept for
//! duplicates and late arrivals). This file (about 700 lines) keeps the handling of each
//! event in one place: the order in which an event touches routes, flows and limits is
//! what has to be checked when it changes. Latency percentiles come from a histogram
//! ([`crate::stats::Histogram`]), so a flow's figures cost the same at any count.

use std::collections::{BTreeMap, HashMap};

use socklab_protocol::flow::{LATENCY_CDF_QUANTILES, MatchField};
use socklab_protocol::link::{DropReason, LinkFate, LinkId};
use socklab_protocol::{Endpoint, EventId};

mod inflight;
pub mod input;
mod links;
mod matched;
mod recent;
mod streams;

use inflight::{Finished, InFlight, Pending};
pub use input::{FlowKey, Input, LossCause, Outcome};
use links::LinkFlows;
use matched::KeptBudget;
use recent::Recent;

use crate::jitter::Jitter;
use crate::routes::Routes;
use crate::seqhdr::SeqHeader;
use crate::sequenced::SeqReceiver;
use crate::stats::{FlowStats, Histogram, Method};
use crate::{DEFAULT_LOSS_TIMEOUT_NS, Nanos};

/// What the analyzer may hold; everything it keeps is bounded by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most sends followed in flight at once, all flows together; beyond it the
    /// oldest is given up ([`Outcome::Untracked`]).
    pub max_in_flight: usize,
    /// The most flows kept (matched, echo and sequenced together); beyond it the flow
    /// idle longest is retired (preferably one with nothing in flight).
    pub max_flows: usize,
    /// The most sends one [`Analyzer::tick`] concludes; the rest wait for the next tick,
    /// so a tick's work is bounded however much expires at once.
    pub max_conclusions_per_tick: usize,
    /// The most finished sends remembered (for duplicates and late arrivals), all
    /// flows together; beyond it the flow that finishes one forgets its oldest.
    pub max_finished: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_flows: DEFAULT_MAX_FLOWS,
            max_conclusions_per_tick: MAX_CONCLUSIONS_PER_TICK,
            max_finished: DEFAULT_MAX_FINISHED,
        }
    }
}

/// The most sends followed in flight by default: 2.5 s of the server's whole send
/// budget (200,000 datagrams/s), about 100 bytes each.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 500_000;
/// The most flows kept by default.
pub const DEFAULT_MAX_FLOWS: usize = 1_024;
/// The most finished sends remembered by default, all flows together: 48 MB of them,
/// five seconds of the server's whole send budget. (A flow keeps at most
/// [`MAX_FINISHED`] itself; with a long loss timeout and many flows, only this bounds
/// them all.)
pub const DEFAULT_MAX_FINISHED: usize = 1_000_000;
/// The most sends one tick concludes (a tick is 100 ms: twice the fastest generator).
pub const MAX_CONCLUSIONS_PER_TICK: usize = 20_000;

/// How long a finished send is remembered (to recognise duplicates and late arrivals),
/// at least; longer when the loss timeout is long.
const FINISHED_RETENTION_NS: Nanos = 5_000_000_000;
/// The most finished sends a flow remembers.
const MAX_FINISHED: usize = 200_000;

/// A flow whose both ends are lab sockets.
#[derive(Debug, Default)]
struct Flow {
    via: Option<LinkId>,
    sends: InFlight,
    /// Finished sends, for duplicates and late arrivals.
    finished: Recent,
    max_received: Option<u64>,
    sent: u64,
    delivered: u64,
    lost: u64,
    reordered: u64,
    duplicated: u64,
    latencies: Histogram,
    jitter: Jitter,
    /// The last time anything happened in it.
    last_ns: Nanos,
}

/// A flow towards a peer that is not a lab socket: requests awaiting replies.
#[derive(Debug, Default)]
struct EchoFlow {
    via: Option<LinkId>,
    sends: InFlight,
    sent: u64,
    replies: u64,
    unanswered: u64,
    rtts: Histogram,
    last_ns: Nanos,
}

/// A sequenced stream as its receiver sees it.
#[derive(Debug, Default)]
struct Sequenced {
    receiver: SeqReceiver,
    last_ns: Nanos,
}

/// Which table a flow is in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Table {
    Matched(FlowKey),
    Echo(FlowKey),
    Sequenced(FlowKey, u32),
}

/// The session's flow analysis.
#[derive(Debug)]
pub struct Analyzer {
    timeout: Nanos,
    /// The part of each payload that pairs replies with requests, if named.
    match_field: Option<MatchField>,
    limits: Limits,
    /// The lab sockets, with how many bytes of each datagram they read.
    lab: HashMap<Endpoint, usize>,
    routes: Routes,
    flows: BTreeMap<FlowKey, Flow>,
    echo: BTreeMap<FlowKey, EchoFlow>,
    sequenced: BTreeMap<(FlowKey, u32), Sequenced>,
    /// Flows through links whose sender is not a lab socket.
    links: LinkFlows,
    /// TCP connections' directions.
    streams: streams::StreamFlows,
    /// The link decision about each send, until [`Analyzer::take_decision`] asks.
    decisions: HashMap<EventId, EventId>,
    /// Drops the kernel reported at each lab socket that no lost datagram accounts for
    /// yet.
    kernel_drops: HashMap<Endpoint, u64>,
    /// Sends in flight, all flows together.
    in_flight: usize,
    /// Finished sends remembered, all flows together, and their limit.
    kept: KeptBudget,
    /// Flows retired to make room.
    retired: u64,
    /// Sends given up before a conclusion.
    untracked: u64,
    /// The newest time fed, for flows' idle times.
    now: Nanos,
    /// The figures of each run, counted as sends are routed here.
    runs: crate::runs::Runs,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(DEFAULT_LOSS_TIMEOUT_NS)
    }
}

/// Why a datagram that never reached the lab socket at `receiver` in time is lost: the
/// kernel, while that socket's reported drops last (each accounts for one datagram), or
/// else the timeout.
fn timed_out(kernel_drops: &mut HashMap<Endpoint, u64>, receiver: &Endpoint) -> LossCause {
    match kernel_drops.get_mut(receiver) {
        Some(n) if *n > 0 => {
            *n -= 1;
            LossCause::Kernel
        }
        _ => LossCause::Timeout,
    }
}

/// A payload's fingerprint (XXH3: the same bytes hash the same in every run, and it
/// runs at memory speed; the SipHash it replaced cost a twentieth of the server's time
/// at 1,200-byte datagrams). Two payloads are taken to be equal when their lengths and
/// fingerprints are: a chance collision of 64-bit fingerprints among the sends in
/// flight is about 1 in 10^8 even with a million of them.
fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The bytes a receiver gets from a link that cut `sent` to `truncated` and flipped
/// `mask` at `offset`.
fn as_altered(sent: &[u8], truncated: Option<usize>, corrupted: Option<(usize, u8)>) -> Vec<u8> {
    let mut bytes = sent[..truncated.unwrap_or(sent.len()).min(sent.len())].to_vec();
    if let Some((offset, mask)) = corrupted
        && let Some(b) = bytes.get_mut(offset)
    {
        *b ^= mask;
    }
    bytes
}

impl Analyzer {
    /// An analyzer that counts a datagram lost after `loss_timeout_ns` in flight, with
    /// the default limits.
    pub fn new(loss_timeout_ns: Nanos) -> Self {
        Self::with_limits(loss_timeout_ns, Limits::default())
    }

    /// An analyzer with these limits.
    pub fn with_limits(loss_timeout_ns: Nanos, limits: Limits) -> Self {
        Analyzer {
            timeout: loss_timeout_ns,
            match_field: None,
            limits,
            streams: streams::StreamFlows::new(limits.max_flows, limits.max_in_flight),
            lab: HashMap::new(),
            routes: Routes::default(),
            flows: BTreeMap::new(),
            echo: BTreeMap::new(),
            sequenced: BTreeMap::new(),
            links: LinkFlows::new(limits.max_in_flight, limits.max_flows),
            decisions: HashMap::new(),
            kernel_drops: HashMap::new(),
            in_flight: 0,
            kept: KeptBudget {
                count: 0,
                max: limits.max_finished.max(1),
            },
            retired: 0,
            untracked: 0,
            now: 0,
            runs: crate::runs::Runs::new(limits.max_flows),
        }
    }

    /// The link decision (its event) about a send, once: the caller asks when it
    /// reports the send's outcome, and the analyzer forgets it then.
    pub fn take_decision(&mut self, send: EventId) -> Option<EventId> {
        self.decisions.remove(&send)
    }

    /// The loss timeout.
    pub fn timeout_ns(&self) -> Nanos {
        self.timeout
    }

    /// Changes the loss timeout from the next [`Analyzer::tick`] on.
    pub fn set_timeout_ns(&mut self, timeout: Nanos) {
        self.timeout = timeout;
    }

    /// Names the part of each payload that pairs a reply with its request (requests
    /// sent from now on are indexed by it), or none.
    pub fn set_match_field(&mut self, field: Option<MatchField>) {
        self.match_field = field;
    }

    /// Sends in flight now, all flows together.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Flows retired so far to make room for new ones.
    pub fn retired_flows(&self) -> u64 {
        self.streams.retired + self.retired + self.links.retired
    }

    /// Finished sends remembered now, all flows together.
    pub fn finished_kept(&self) -> usize {
        self.kept.count
    }

    /// Sends given up so far before a conclusion ([`Outcome::Untracked`]).
    pub fn untracked(&self) -> u64 {
        self.untracked + self.links.untracked
    }

    /// How many flows are kept (those through links followed from the link's account
    /// are kept within the same limit, separately).
    pub fn flow_count(&self) -> usize {
        self.flows.len() + self.echo.len() + self.sequenced.len()
    }

    /// How many flows through links are followed from the link's account.
    pub fn link_flow_count(&self) -> usize {
        self.links.len()
    }

    /// The runs' figures: runs are marked and conclusions handed to them by the caller
    /// (it reads the run marks and owns the outcomes); sends are counted here, as they
    /// are routed.
    pub fn runs(&mut self) -> &mut crate::runs::Runs {
        &mut self.runs
    }

    /// The flow a lab socket at `local` sending to `peer` sends on (across a link: to
    /// its target), and the link it crosses: as [`Input::Sent`] counts it.
    fn flow_of_send(&self, local: &Endpoint, peer: &Endpoint) -> (FlowKey, Option<LinkId>) {
        let end = self.routes.destination(peer);
        let key = FlowKey {
            src: local.clone(),
            dst: end.addr,
        };
        (key, end.via.cloned())
    }

    /// Takes the next event; conclusions it allows are appended to `out`.
    pub fn feed(&mut self, input: Input<'_>, out: &mut Vec<Outcome>) {
        match input {
            Input::Bound { addr, read_size } => {
                self.lab
                    .insert(addr.clone(), read_size.unwrap_or(usize::MAX));
            }
            Input::Closed { addr } => {
                self.lab.remove(addr);
                self.kernel_drops.remove(addr);
            }
            Input::KernelDrops { addr, dropped } => {
                let n = self.kernel_drops.entry(addr.clone()).or_default();
                *n = n.saturating_add(dropped);
            }
            Input::LinkCreated {
                link,
                listen,
                upstream,
                target,
            } => self.routes.link_created(link, listen, upstream, target),
            Input::LinkClient { link, client } => self.routes.link_client(link, client),
            Input::LinkDeleted { link } => {
                self.routes.link_deleted(link);
                self.links.link_deleted(link);
            }
            Input::LinkSent {
                link,
                dir,
                seq,
                t_ns,
            } => self.links.sent(link, dir, seq, t_ns),
            Input::Sent {
                id,
                t_ns,
                local,
                peer,
                bytes,
            } => {
                self.now = self.now.max(t_ns);
                self.sent(id, t_ns, local, peer, bytes, out)
            }
            Input::Received {
                id,
                t_ns,
                local,
                peer,
                bytes,
            } => {
                self.now = self.now.max(t_ns);
                self.received(id, t_ns, local, peer, bytes, out)
            }
            Input::Stream {
                t_ns,
                local,
                peer,
                out,
                offset,
                len,
            } => {
                if out {
                    self.streams.wrote(t_ns, local, peer, offset, len);
                } else {
                    self.streams.read(t_ns, local, peer, offset, len);
                }
            }
            Input::Unreachable {
                local,
                to,
                bytes,
                refused,
            } => {
                let cause = if refused {
                    LossCause::Refused
                } else {
                    LossCause::Unreachable
                };
                self.unreachable(
                    FlowKey {
                        src: local.clone(),
                        dst: Endpoint::Ip(to),
                    },
                    bytes,
                    cause,
                    out,
                );
            }
            Input::LinkDecision {
                id: decision,
                t_ns,
                link,
                dir,
                seq,
                duplicated,
                from,
                to,
                bytes,
                fate,
                reason,
                corrupted,
                truncated_to,
            } => {
                // A reply with no client to go to was sent to the upstream address,
                // which is what its flow is called until a client is known.
                let Some(to) = to.or_else(|| self.routes.upstream(link)) else {
                    return;
                };
                let (from, to) = (Endpoint::Ip(from), Endpoint::Ip(to));
                if !self.lab.contains_key(&from) {
                    // No `out` to follow: the link's own account is all there is.
                    self.links.decided(links::Decision {
                        link,
                        dir,
                        seq,
                        t_ns,
                        to_lab: self.lab.contains_key(&to),
                        flow: FlowKey { src: from, dst: to },
                        fate,
                        reason,
                        duplicated,
                        bytes,
                    });
                } else {
                    self.decided(
                        decision,
                        FlowKey { src: from, dst: to },
                        bytes,
                        fate,
                        reason,
                        (truncated_to, corrupted),
                        out,
                    );
                }
            }
        }
    }

    /// Makes room for one more flow: retires the flow idle longest, preferring one with
    /// nothing in flight (its sends in flight, if any, are given up).
    fn make_room(&mut self, out: &mut Vec<Outcome>) {
        if self.flow_count() < self.limits.max_flows.max(1) {
            return;
        }
        let candidates = self
            .flows
            .iter()
            .map(|(k, f)| {
                (
                    f.sends.pending.is_empty(),
                    f.last_ns,
                    Table::Matched(k.clone()),
                )
            })
            .chain(self.echo.iter().map(|(k, f)| {
                (
                    f.sends.pending.is_empty(),
                    f.last_ns,
                    Table::Echo(k.clone()),
                )
            }))
            .chain(
                self.sequenced
                    .iter()
                    .map(|((k, n), f)| (true, f.last_ns, Table::Sequenced(k.clone(), *n))),
            );
        // Idle ones first, then the longest idle.
        let Some((_, _, victim)) = candidates.min_by_key(|(idle, last, _)| (!idle, *last)) else {
            return;
        };
        let given_up = match victim {
            Table::Matched(key) => self.flows.remove(&key).map(|f| {
                self.kept.count -= f.finished.len();
                (key, f.sends)
            }),
            Table::Echo(key) => self.echo.remove(&key).map(|f| (key, f.sends)),
            Table::Sequenced(key, n) => {
                self.sequenced.remove(&(key, n));
                None
            }
        };
        if let Some((flow, sends)) = given_up {
            for p in sends.pending.values() {
                self.give_up(p.id, flow.clone(), out);
            }
        }
        self.retired += 1;
    }

    fn give_up(&mut self, send: EventId, flow: FlowKey, out: &mut Vec<Outcome>) {
        self.in_flight -= 1;
        self.untracked += 1;
        out.push(Outcome::Untracked { send, flow });
    }

    /// Keeps the sends in flight within the limit: gives up the oldest of `key`'s
    /// (matched or echo) if it has any, else the oldest of any flow.
    fn keep_in_flight_bounded(&mut self, key: &FlowKey, out: &mut Vec<Outcome>) {
        while self.in_flight >= self.limits.max_in_flight.max(1) {
            let own = self
                .flows
                .get(key)
                .filter(|f| !f.sends.pending.is_empty())
                .map(|_| Table::Matched(key.clone()))
                .or_else(|| {
                    self.echo
                        .get(key)
                        .filter(|f| !f.sends.pending.is_empty())
                        .map(|_| Table::Echo(key.clone()))
                });
            let victim = own.or_else(|| {
                let matched = self
                    .flows
                    .iter()
                    .filter_map(|(k, f)| Some((f.sends.oldest()?, Table::Matched(k.clone()))));
                let echo = self
                    .echo
                    .iter()
                    .filter_map(|(k, f)| Some((f.sends.oldest()?, Table::Echo(k.clone()))));
                matched.chain(echo).min_by_key(|(t, _)| *t).map(|(_, t)| t)
            });
            let popped = match victim {
                Some(Table::Matched(k)) => self
                    .flows
                    .get_mut(&k)
                    .and_then(|f| f.sends.pop_oldest(None))
                    .map(|(_, p)| (k, p)),
                Some(Table::Echo(k)) => self
                    .echo
                    .get_mut(&k)
                    .and_then(|f| f.sends.pop_oldest(None))
                    .map(|(_, p)| (k, p)),
                Some(Table::Sequenced(..)) | None => None,
            };
            let Some((flow, p)) = popped else {
                return;
            };
            self.give_up(p.id, flow, out);
        }
    }

    fn sent(
        &mut self,
        id: EventId,
        t_ns: Nanos,
        local: &Endpoint,
        peer: &Endpoint,
        bytes: &[u8],
        out: &mut Vec<Outcome>,
    ) {
        let (key, via) = self.flow_of_send(local, peer);
        self.runs.sent(id, &key, via.as_ref());
        let matched = self.lab.contains_key(&key.dst);
        // What the receiver will read: all of it, or (a lab socket with a read size,
        // no link in between to follow first) the first bytes.
        let read = match self.lab.get(&key.dst) {
            Some(&size) if via.is_none() => &bytes[..size.min(bytes.len())],
            _ => bytes,
        };
        let pending = Pending {
            id,
            t_ns,
            hash: hash(read),
            len: read.len(),
            field: self
                .match_field
                .filter(|_| !matched)
                .and_then(|f| f.of(bytes))
                .map(hash),
        };
        let known = if matched {
            self.flows.contains_key(&key)
        } else {
            self.echo.contains_key(&key)
        };
        if !known {
            self.make_room(out);
        }
        self.keep_in_flight_bounded(&key, out);
        self.in_flight += 1;
        let via_link = via.is_some();
        if matched {
            let flow = self.flows.entry(key).or_default();
            flow.via = via.or(flow.via.take());
            flow.sent += 1;
            flow.last_ns = t_ns;
            flow.sends.push(pending, via_link);
        } else {
            let flow = self.echo.entry(key).or_default();
            flow.via = via.or(flow.via.take());
            flow.sent += 1;
            flow.last_ns = t_ns;
            flow.sends.push(pending, via_link);
        }
    }

    fn received(
        &mut self,
        id: EventId,
        t_ns: Nanos,
        local: &Endpoint,
        peer: &Endpoint,
        bytes: &[u8],
        out: &mut Vec<Outcome>,
    ) {
        let key = FlowKey {
            src: self.routes.source(peer).addr,
            dst: local.clone(),
        };
        if let Some(header) = SeqHeader::read(bytes) {
            let stream_key = (key.clone(), header.flow);
            if !self.sequenced.contains_key(&stream_key) {
                self.make_room(out);
            }
            let stream = self.sequenced.entry(stream_key).or_default();
            stream.receiver.arrive(header, t_ns);
            stream.last_ns = t_ns;
        }
        let h = hash(bytes);
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.last_ns = t_ns;
            if flow.receive(key, id, t_ns, h, bytes.len(), &mut self.kept, out) {
                self.in_flight -= 1;
            }
            return;
        }
        // A reply from an echo-like peer: the reverse flow has a request with these bytes.
        let request_key = FlowKey {
            src: local.clone(),
            dst: key.src,
        };
        let Some(flow) = self.echo.get_mut(&request_key) else {
            return;
        };
        // The same bytes are the strongest evidence; then the field the person named
        // (a sequence number their protocol carries); a peer that answers with other
        // bytes (an ack, an upper-cased echo) otherwise answers its oldest open request.
        let by_bytes = flow.sends.take_received(h, bytes.len());
        let by_field = by_bytes.is_none().then(|| {
            self.match_field
                .and_then(|f| f.of(bytes))
                .and_then(|field| flow.sends.take_by_field(hash(field)))
        });
        let (request, by_order, by_field) = match (by_bytes, by_field.flatten()) {
            (Some((_, request)), _) => (request, false, false),
            (None, Some((_, request))) => (request, false, true),
            (None, None) => match flow.sends.pop_oldest(None) {
                Some((_, request)) => (request, true, false),
                None => return,
            },
        };
        self.in_flight -= 1;
        flow.replies += 1;
        flow.last_ns = t_ns;
        let rtt_ns = t_ns.saturating_sub(request.t_ns);
        flow.rtts.add(rtt_ns);
        out.push(Outcome::Reply {
            request: request.id,
            response: id,
            flow: request_key,
            rtt_ns,
            by_order,
            by_field,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn decided(
        &mut self,
        decision: EventId,
        key: FlowKey,
        bytes: &[u8],
        fate: LinkFate,
        reason: Option<DropReason>,
        (truncated_to, corrupted): (Option<usize>, Option<(usize, u8)>),
        out: &mut Vec<Outcome>,
    ) {
        let h = hash(bytes);
        let cause = LossCause::Link(reason.unwrap_or(DropReason::RandomLoss));
        let (sends, matched) = if let Some(flow) = self.flows.get_mut(&key) {
            (&mut flow.sends, true)
        } else if let Some(flow) = self.echo.get_mut(&key) {
            (&mut flow.sends, false)
        } else {
            return;
        };
        if reason == Some(DropReason::SendFailed) {
            // A second word on a datagram the link had forwarded: its bytes are the
            // ones the receiver would have got.
            let Some((_, pending)) = sends.take_received(h, bytes.len()) else {
                return;
            };
            self.decisions.insert(pending.id, decision);
            self.link_lost(key, matched, pending.id, cause, out);
            return;
        }
        let Some(seq) = sends.take_undecided(h, bytes.len()) else {
            return;
        };
        let Some(&pending) = sends.pending.get(&seq) else {
            return;
        };
        self.decisions.insert(pending.id, decision);
        if fate == LinkFate::Dropped {
            sends.remove(seq);
            self.link_lost(key, matched, pending.id, cause, out);
        } else if matched {
            // The receiver will get the changed bytes, and only as many as it reads:
            // follow those.
            let read_size = self.lab.get(&key.dst).copied().unwrap_or(usize::MAX);
            if corrupted.is_some() || truncated_to.is_some() || bytes.len() > read_size {
                let changed = as_altered(bytes, truncated_to, corrupted);
                let read = &changed[..read_size.min(changed.len())];
                sends.altered(seq, hash(read), read.len());
            }
        }
    }

    /// An ICMP error came back about a send of `key` (sent straight to its
    /// destination: through a link, the error goes to the link): the send whose bytes
    /// the error quotes whole, or else (a long datagram, quoted in part) the flow's
    /// oldest in flight, is lost for `cause`.
    fn unreachable(
        &mut self,
        key: FlowKey,
        quoted: &[u8],
        cause: LossCause,
        out: &mut Vec<Outcome>,
    ) {
        let (sends, matched) = if let Some(flow) = self.flows.get_mut(&key) {
            (&mut flow.sends, true)
        } else if let Some(flow) = self.echo.get_mut(&key) {
            (&mut flow.sends, false)
        } else {
            return;
        };
        let taken = sends
            .take_received(hash(quoted), quoted.len())
            .or_else(|| sends.pop_oldest(None));
        if let Some((_, pending)) = taken {
            self.link_lost(key, matched, pending.id, cause, out);
        }
    }

    /// Concludes a send (already taken out of its flow's sends in flight) that a link
    /// dropped, or the network refused.
    fn link_lost(
        &mut self,
        key: FlowKey,
        matched: bool,
        send: EventId,
        cause: LossCause,
        out: &mut Vec<Outcome>,
    ) {
        self.in_flight -= 1;
        if matched {
            if let Some(flow) = self.flows.get_mut(&key) {
                flow.lost += 1;
            }
            out.push(Outcome::Lost {
                send,
                flow: key,
                cause,
            });
        } else {
            if let Some(flow) = self.echo.get_mut(&key) {
                flow.unanswered += 1;
            }
            out.push(Outcome::Unanswered {
                request: send,
                flow: key,
                cause,
            });
        }
    }

    /// Declares lost what has been in flight longer than the timeout at `now`, and
    /// forgets finished datagrams old enough that no copy can still be expected. At
    /// most [`Limits::max_conclusions_per_tick`] sends are concluded; the rest are
    /// concluded by the next ticks.
    pub fn tick(&mut self, now: Nanos, out: &mut Vec<Outcome>) {
        let timeout = self.timeout;
        let mut budget = self.limits.max_conclusions_per_tick.max(1);
        for (key, flow) in &mut self.flows {
            while budget > 0
                && let Some((seq, p)) = flow.sends.pop_oldest(Some((timeout, now)))
            {
                budget -= 1;
                self.in_flight -= 1;
                flow.lost += 1;
                out.push(Outcome::Lost {
                    send: p.id,
                    flow: key.clone(),
                    cause: timed_out(&mut self.kernel_drops, &key.dst),
                });
                flow.finish(
                    Finished {
                        seq,
                        id: p.id,
                        t_ns: p.t_ns,
                        len: p.len,
                        lost_by_timeout: true,
                    },
                    now,
                    p.hash,
                    &mut self.kept,
                );
            }
            flow.forget_before(
                now.saturating_sub(timeout.saturating_mul(4).max(FINISHED_RETENTION_NS)),
                &mut self.kept,
            );
        }
        for (key, flow) in &mut self.echo {
            while budget > 0
                && let Some((_, p)) = flow.sends.pop_oldest(Some((timeout, now)))
            {
                budget -= 1;
                self.in_flight -= 1;
                flow.unanswered += 1;
                // The reply, had there been one, would have come back to the sender.
                out.push(Outcome::Unanswered {
                    request: p.id,
                    flow: key.clone(),
                    cause: timed_out(&mut self.kernel_drops, &key.src),
                });
            }
        }
    }

    /// The figures of every flow, matched flows first.
    pub fn stats(&self) -> Vec<FlowStats> {
        let mut all = Vec::new();
        for (key, flow) in &self.flows {
            all.push(FlowStats {
                src: key.src.clone(),
                dst: key.dst.clone(),
                via: flow.via.clone(),
                method: Method::Matched,
                seq_flow: None,
                sent: flow.sent,
                received: flow.delivered + flow.duplicated,
                lost: flow.lost,
                reordered: flow.reordered,
                duplicated: flow.duplicated,
                in_flight: flow.sends.pending.len() as u64,
                latency: flow.latencies.percentiles(),
                latency_cdf: flow.latencies.quantiles(&LATENCY_CDF_QUANTILES),
                jitter_ns: (flow.delivered > 1).then(|| flow.jitter.value()),
                drops: Vec::new(),
            });
        }
        for ((key, seq_flow), s) in &self.sequenced {
            all.push(s.receiver.stats(key.clone(), *seq_flow, None));
        }
        for (key, flow) in &self.echo {
            all.push(FlowStats {
                src: key.src.clone(),
                dst: key.dst.clone(),
                via: flow.via.clone(),
                method: Method::Echo,
                seq_flow: None,
                sent: flow.sent,
                received: flow.replies,
                lost: flow.unanswered,
                reordered: 0,
                duplicated: 0,
                in_flight: flow.sends.pending.len() as u64,
                latency: flow.rtts.percentiles(),
                latency_cdf: flow.rtts.quantiles(&LATENCY_CDF_QUANTILES),
                jitter_ns: None,
                drops: Vec::new(),
            });
        }
        self.links.stats(&mut all);
        self.streams.stats(&mut all);
        all
    }

    /// A TCP connection direction's write and read calls, if it is known.
    pub fn stream_calls(&self, key: &FlowKey) -> Option<(u64, u64)> {
        self.streams.calls(key)
    }
}
