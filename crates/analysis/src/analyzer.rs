//! The analyzer: fed a session's events in log order, it says what became of every
//! datagram and keeps per-flow figures.
//!
//! A **flow** is (source, destination) as the application sees it: a datagram that a
//! lab socket sends to a link's listen address belongs to the flow towards the link's
//! target, and one that arrives from a link's upstream address belongs to the flow from
//! the link's client. So a flow's figures span the link, and the link's decisions can be
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
//!   whose bytes equal an earlier unanswered request is its **reply** (RTT); requests
//!   without a reply within the timeout are **unanswered**.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;

use socklab_protocol::EventId;
use socklab_protocol::link::{DropReason, LinkFate, LinkId};

use crate::jitter::Jitter;
use crate::seqhdr::SeqHeader;
use crate::sequenced::SeqReceiver;
use crate::stats::{FlowStats, Method, Percentiles};
use crate::{DEFAULT_LOSS_TIMEOUT_NS, Nanos};

/// How long a finished send is remembered (to recognise duplicates and late arrivals),
/// at least; longer when the loss timeout is long.
const FINISHED_RETENTION_NS: Nanos = 5_000_000_000;
/// The most finished sends a flow remembers.
const MAX_FINISHED: usize = 200_000;
/// The most latency samples a flow keeps for its percentiles (the newest are dropped
/// beyond it, so the figures describe the flow's first million datagrams).
const MAX_SAMPLES: usize = 1_000_000;

/// A flow: (source, destination) as the application sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The original sender.
    pub src: SocketAddr,
    /// The final receiver.
    pub dst: SocketAddr,
}

/// One event of the session, as the analyzer needs it.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A lab socket was bound at `addr`.
    Bound {
        /// Its address.
        addr: SocketAddr,
    },
    /// The lab socket at `addr` was closed.
    Closed {
        /// Its address.
        addr: SocketAddr,
    },
    /// A link was created.
    LinkCreated {
        /// The link.
        link: &'a LinkId,
        /// Where clients send to.
        listen: SocketAddr,
        /// Where it sends to the target from.
        upstream: SocketAddr,
        /// Where it forwards to.
        target: SocketAddr,
    },
    /// A link was deleted.
    LinkDeleted {
        /// The link.
        link: &'a LinkId,
    },
    /// A lab socket sent a datagram.
    Sent {
        /// The event.
        id: EventId,
        /// When.
        t_ns: Nanos,
        /// The socket's address.
        local: SocketAddr,
        /// The destination.
        peer: SocketAddr,
        /// The payload.
        bytes: &'a [u8],
    },
    /// A lab socket received a datagram.
    Received {
        /// The event.
        id: EventId,
        /// When.
        t_ns: Nanos,
        /// The socket's address.
        local: SocketAddr,
        /// The source.
        peer: SocketAddr,
        /// The payload.
        bytes: &'a [u8],
    },
    /// The kernel dropped datagrams at the lab socket at `addr` (its receive buffer was
    /// full).
    KernelDrops {
        /// The socket's address.
        addr: SocketAddr,
        /// How many, since the previous report.
        dropped: u64,
    },
    /// A link decided a datagram's fate.
    LinkDecision {
        /// The decision's event.
        id: EventId,
        /// The link.
        link: &'a LinkId,
        /// The datagram's sender.
        from: SocketAddr,
        /// Where it goes.
        to: Option<SocketAddr>,
        /// The payload as it arrived at the link.
        bytes: &'a [u8],
        /// Forwarded or dropped.
        fate: LinkFate,
        /// Why it was dropped.
        reason: Option<DropReason>,
        /// The offset of a byte the link changed.
        corrupted_at: Option<usize>,
        /// The length the link cut it to.
        truncated_to: Option<usize>,
    },
}

/// Why a datagram counts as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// A link dropped it, for this reason.
    Link(DropReason),
    /// It was not received within the timeout, and the receiving lab socket had
    /// reported kernel drops not yet accounted for: the kernel dropped it because that
    /// socket's receive buffer was full.
    Kernel,
    /// It was not received within the timeout.
    Timeout,
}

/// What the analyzer concluded about a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A send was received (the first copy).
    Delivered {
        /// The `out` event.
        send: EventId,
        /// The `in` event.
        recv: EventId,
        /// Its flow.
        flow: FlowKey,
        /// One-way latency.
        latency_ns: Nanos,
        /// 0 when in order; otherwise how many datagrams of the flow sent after it
        /// arrived before it (in send order, the distance to the latest one).
        reordered_by: u64,
        /// It had already been counted lost by timeout.
        late: bool,
    },
    /// An extra copy of a send that was already received.
    Duplicate {
        /// The `out` event.
        send: EventId,
        /// The extra `in` event.
        recv: EventId,
        /// Its flow.
        flow: FlowKey,
    },
    /// A send that will not be received.
    Lost {
        /// The `out` event.
        send: EventId,
        /// Its flow.
        flow: FlowKey,
        /// Why.
        cause: LossCause,
    },
    /// A reply from an echo-like peer to an earlier request.
    Reply {
        /// The request's `out` event.
        request: EventId,
        /// The reply's `in` event.
        response: EventId,
        /// The request's flow.
        flow: FlowKey,
        /// Round-trip time.
        rtt_ns: Nanos,
    },
    /// A request no reply came for.
    Unanswered {
        /// The request's `out` event.
        request: EventId,
        /// Its flow.
        flow: FlowKey,
        /// Why: a link dropped the request, or no reply came within the timeout.
        cause: LossCause,
    },
}

#[derive(Debug)]
struct Route {
    link: LinkId,
    listen: SocketAddr,
    upstream: SocketAddr,
    target: SocketAddr,
    /// The last lab address that sent to the listen address: replies go there.
    client: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
struct Pending {
    id: EventId,
    t_ns: Nanos,
    bytes: Arc<[u8]>,
    /// The link changed the bytes: (truncated length, corrupted offset).
    altered: Option<(Option<usize>, Option<usize>)>,
}

#[derive(Debug, Clone)]
struct Finished {
    seq: u64,
    id: EventId,
    t_ns: Nanos,
    bytes: Arc<[u8]>,
    lost_by_timeout: bool,
}

/// A flow whose both ends are lab sockets.
#[derive(Debug, Default)]
struct Flow {
    via: Option<LinkId>,
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    /// Pending sends by payload hash, oldest first.
    by_hash: HashMap<u64, VecDeque<u64>>,
    /// Pending sends the link changed.
    altered: BTreeSet<u64>,
    /// Finished sends by payload hash, for duplicates and late arrivals.
    finished: HashMap<u64, VecDeque<Finished>>,
    /// When each finished send finished, to forget them after a while.
    finished_order: VecDeque<(Nanos, u64)>,
    max_received: Option<u64>,
    sent: u64,
    delivered: u64,
    lost: u64,
    reordered: u64,
    duplicated: u64,
    latencies: Vec<u64>,
    jitter: Jitter,
}

/// A flow towards a peer that is not a lab socket: requests awaiting replies.
#[derive(Debug, Default)]
struct EchoFlow {
    via: Option<LinkId>,
    pending: BTreeMap<u64, Pending>,
    by_hash: HashMap<u64, VecDeque<u64>>,
    undecided: HashMap<u64, VecDeque<u64>>,
    next_seq: u64,
    sent: u64,
    replies: u64,
    unanswered: u64,
    rtts: Vec<u64>,
}

/// The session's flow analysis.
#[derive(Debug)]
pub struct Analyzer {
    timeout: Nanos,
    lab: HashSet<SocketAddr>,
    routes: Vec<Route>,
    flows: BTreeMap<FlowKey, Flow>,
    echo: BTreeMap<FlowKey, EchoFlow>,
    sequenced: BTreeMap<(FlowKey, u32), SeqReceiver>,
    /// Undecided sends per flow by hash (for matching link decisions).
    undecided: HashMap<FlowKey, HashMap<u64, VecDeque<u64>>>,
    /// The link decision about each send, until [`Analyzer::take_decision`] asks.
    decisions: HashMap<EventId, EventId>,
    /// Drops the kernel reported at each lab socket that no lost datagram accounts for
    /// yet.
    kernel_drops: HashMap<SocketAddr, u64>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new(DEFAULT_LOSS_TIMEOUT_NS)
    }
}

/// Why a datagram that never reached the lab socket at `receiver` in time is lost: the
/// kernel, while that socket's reported drops last (each accounts for one datagram), or
/// else the timeout.
fn timed_out(kernel_drops: &mut HashMap<SocketAddr, u64>, receiver: SocketAddr) -> LossCause {
    match kernel_drops.get_mut(&receiver) {
        Some(n) if *n > 0 => {
            *n -= 1;
            LossCause::Kernel
        }
        _ => LossCause::Timeout,
    }
}

/// A payload's fingerprint (XXH3: the same bytes hash the same in every run, and it
/// runs at memory speed; the SipHash it replaced cost a twentieth of the server's time
/// at 1,200-byte datagrams).
fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Does `got` match `sent` as changed by a link (cut to a length, one byte changed)?
fn matches_altered(
    sent: &[u8],
    got: &[u8],
    truncated: Option<usize>,
    corrupted: Option<usize>,
) -> bool {
    let expected = &sent[..truncated.unwrap_or(sent.len()).min(sent.len())];
    expected.len() == got.len()
        && expected
            .iter()
            .zip(got)
            .enumerate()
            .all(|(i, (a, b))| a == b || Some(i) == corrupted)
}

impl Analyzer {
    /// An analyzer that counts a datagram lost after `loss_timeout_ns` in flight.
    pub fn new(loss_timeout_ns: Nanos) -> Self {
        Analyzer {
            timeout: loss_timeout_ns,
            lab: HashSet::new(),
            routes: Vec::new(),
            flows: BTreeMap::new(),
            echo: BTreeMap::new(),
            sequenced: BTreeMap::new(),
            undecided: HashMap::new(),
            decisions: HashMap::new(),
            kernel_drops: HashMap::new(),
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

    /// Takes the next event; conclusions it allows are appended to `out`.
    pub fn feed(&mut self, input: Input<'_>, out: &mut Vec<Outcome>) {
        match input {
            Input::Bound { addr } => {
                self.lab.insert(addr);
            }
            Input::Closed { addr } => {
                self.lab.remove(&addr);
                self.kernel_drops.remove(&addr);
            }
            Input::KernelDrops { addr, dropped } => {
                *self.kernel_drops.entry(addr).or_default() += dropped;
            }
            Input::LinkCreated {
                link,
                listen,
                upstream,
                target,
            } => self.routes.push(Route {
                link: link.clone(),
                listen,
                upstream,
                target,
                client: None,
            }),
            Input::LinkDeleted { link } => self.routes.retain(|r| &r.link != link),
            Input::Sent {
                id,
                t_ns,
                local,
                peer,
                bytes,
            } => self.sent(id, t_ns, local, peer, bytes),
            Input::Received {
                id,
                t_ns,
                local,
                peer,
                bytes,
            } => self.received(id, t_ns, local, peer, bytes, out),
            Input::LinkDecision {
                id: decision,
                from,
                to,
                bytes,
                fate,
                reason,
                corrupted_at,
                truncated_to,
                ..
            } => {
                if let Some(to) = to {
                    self.decided(
                        decision,
                        FlowKey { src: from, dst: to },
                        bytes,
                        fate,
                        reason,
                        corrupted_at,
                        truncated_to,
                        out,
                    );
                }
            }
        }
    }

    /// The application-level destination of a send to `peer` from `local`, and the
    /// link it crosses.
    fn destination(&mut self, local: SocketAddr, peer: SocketAddr) -> (SocketAddr, Option<LinkId>) {
        for route in &mut self.routes {
            if peer == route.listen {
                route.client = Some(local);
                return (route.target, Some(route.link.clone()));
            }
            if peer == route.upstream
                && let Some(client) = route.client
            {
                return (client, Some(route.link.clone()));
            }
        }
        (peer, None)
    }

    /// The application-level source of a datagram received from `peer`.
    fn source(&self, peer: SocketAddr) -> SocketAddr {
        for route in &self.routes {
            if peer == route.listen {
                return route.target;
            }
            if peer == route.upstream
                && let Some(client) = route.client
            {
                return client;
            }
        }
        peer
    }

    fn sent(
        &mut self,
        id: EventId,
        t_ns: Nanos,
        local: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
    ) {
        let (dst, via) = self.destination(local, peer);
        let key = FlowKey { src: local, dst };
        let h = hash(bytes);
        let pending = Pending {
            id,
            t_ns,
            bytes: bytes.into(),
            altered: None,
        };
        if self.lab.contains(&dst) {
            let flow = self.flows.entry(key).or_default();
            flow.via = via.or(flow.via.take());
            let seq = flow.next_seq;
            flow.next_seq += 1;
            flow.sent += 1;
            flow.pending.insert(seq, pending);
            flow.by_hash.entry(h).or_default().push_back(seq);
            self.undecided
                .entry(key)
                .or_default()
                .entry(h)
                .or_default()
                .push_back(seq);
        } else {
            let flow = self.echo.entry(key).or_default();
            flow.via = via.or(flow.via.take());
            let seq = flow.next_seq;
            flow.next_seq += 1;
            flow.sent += 1;
            flow.pending.insert(seq, pending);
            flow.by_hash.entry(h).or_default().push_back(seq);
            flow.undecided.entry(h).or_default().push_back(seq);
        }
    }

    fn received(
        &mut self,
        id: EventId,
        t_ns: Nanos,
        local: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<Outcome>,
    ) {
        let key = FlowKey {
            src: self.source(peer),
            dst: local,
        };
        if let Some(header) = SeqHeader::read(bytes) {
            self.sequenced
                .entry((key, header.flow))
                .or_default()
                .arrive(header, t_ns);
        }
        let h = hash(bytes);
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.receive(key, id, t_ns, bytes, h, out);
            return;
        }
        // A reply from an echo-like peer: the reverse flow has a request with these bytes.
        let request_key = FlowKey {
            src: local,
            dst: key.src,
        };
        if let Some(flow) = self.echo.get_mut(&request_key)
            && let Some(seq) = take_matching(&mut flow.by_hash, &flow.pending, h, bytes)
            && let Some(request) = flow.pending.remove(&seq)
        {
            flow.replies += 1;
            let rtt_ns = t_ns.saturating_sub(request.t_ns);
            if flow.rtts.len() < MAX_SAMPLES {
                flow.rtts.push(rtt_ns);
            }
            out.push(Outcome::Reply {
                request: request.id,
                response: id,
                flow: request_key,
                rtt_ns,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decided(
        &mut self,
        decision: EventId,
        key: FlowKey,
        bytes: &[u8],
        fate: LinkFate,
        reason: Option<DropReason>,
        corrupted_at: Option<usize>,
        truncated_to: Option<usize>,
        out: &mut Vec<Outcome>,
    ) {
        let h = hash(bytes);
        if let Some(flow) = self.flows.get_mut(&key) {
            let Some(undecided) = self.undecided.get_mut(&key) else {
                return;
            };
            let Some(seq) = take_matching(undecided, &flow.pending, h, bytes) else {
                return;
            };
            let Some(pending) = flow.pending.get_mut(&seq) else {
                return;
            };
            self.decisions.insert(pending.id, decision);
            if fate == LinkFate::Dropped {
                let pending = flow.pending.remove(&seq).expect("present");
                remove_seq(&mut flow.by_hash, h, seq);
                flow.lost += 1;
                out.push(Outcome::Lost {
                    send: pending.id,
                    flow: key,
                    cause: LossCause::Link(reason.unwrap_or(DropReason::RandomLoss)),
                });
            } else if corrupted_at.is_some() || truncated_to.is_some() {
                pending.altered = Some((truncated_to, corrupted_at));
                remove_seq(&mut flow.by_hash, h, seq);
                flow.altered.insert(seq);
            }
        } else if let Some(flow) = self.echo.get_mut(&key) {
            let Some(seq) = take_matching(&mut flow.undecided, &flow.pending, h, bytes) else {
                return;
            };
            if let Some(pending) = flow.pending.get(&seq) {
                self.decisions.insert(pending.id, decision);
            }
            if fate == LinkFate::Dropped
                && let Some(pending) = flow.pending.remove(&seq)
            {
                remove_seq(&mut flow.by_hash, h, seq);
                flow.unanswered += 1;
                out.push(Outcome::Unanswered {
                    request: pending.id,
                    flow: key,
                    cause: LossCause::Link(reason.unwrap_or(DropReason::RandomLoss)),
                });
            }
        }
    }

    /// Declares lost what has been in flight longer than the timeout at `now`, and
    /// forgets finished datagrams old enough that no copy can still be expected.
    pub fn tick(&mut self, now: Nanos, out: &mut Vec<Outcome>) {
        let timeout = self.timeout;
        for (key, flow) in &mut self.flows {
            for (seq, p) in expired(&mut flow.pending, timeout, now) {
                let h = hash(&p.bytes);
                remove_seq(&mut flow.by_hash, h, seq);
                flow.altered.remove(&seq);
                if let Some(undecided) = self.undecided.get_mut(key) {
                    remove_seq(undecided, h, seq);
                }
                flow.lost += 1;
                out.push(Outcome::Lost {
                    send: p.id,
                    flow: *key,
                    cause: timed_out(&mut self.kernel_drops, key.dst),
                });
                flow.finish(
                    Finished {
                        seq,
                        id: p.id,
                        t_ns: p.t_ns,
                        bytes: p.bytes,
                        lost_by_timeout: true,
                    },
                    now,
                    h,
                );
            }
            flow.forget_before(
                now.saturating_sub(timeout.saturating_mul(4).max(FINISHED_RETENTION_NS)),
            );
        }
        for (key, flow) in &mut self.echo {
            for (seq, p) in expired(&mut flow.pending, timeout, now) {
                let h = hash(&p.bytes);
                remove_seq(&mut flow.by_hash, h, seq);
                remove_seq(&mut flow.undecided, h, seq);
                flow.unanswered += 1;
                // The reply, had there been one, would have come back to the sender.
                out.push(Outcome::Unanswered {
                    request: p.id,
                    flow: *key,
                    cause: timed_out(&mut self.kernel_drops, key.src),
                });
            }
        }
    }

    /// The figures of every flow, matched flows first.
    pub fn stats(&self) -> Vec<FlowStats> {
        let mut all = Vec::new();
        for (key, flow) in &self.flows {
            all.push(FlowStats {
                src: key.src,
                dst: key.dst,
                via: flow.via.clone(),
                method: Method::Matched,
                seq_flow: None,
                sent: flow.sent,
                received: flow.delivered + flow.duplicated,
                lost: flow.lost,
                reordered: flow.reordered,
                duplicated: flow.duplicated,
                in_flight: flow.pending.len() as u64,
                latency: Percentiles::of(&mut flow.latencies.clone()),
                jitter_ns: (flow.delivered > 1).then(|| flow.jitter.value()),
            });
        }
        for ((key, seq_flow), r) in &self.sequenced {
            all.push(FlowStats {
                src: key.src,
                dst: key.dst,
                via: None,
                method: Method::Sequenced,
                seq_flow: Some(*seq_flow),
                sent: r.expected(),
                received: r.received,
                lost: r.lost,
                reordered: r.out_of_order,
                duplicated: r.duplicates,
                in_flight: 0,
                latency: None,
                jitter_ns: Some(r.jitter_ns()),
            });
        }
        for (key, flow) in &self.echo {
            all.push(FlowStats {
                src: key.src,
                dst: key.dst,
                via: flow.via.clone(),
                method: Method::Echo,
                seq_flow: None,
                sent: flow.sent,
                received: flow.replies,
                lost: flow.unanswered,
                reordered: 0,
                duplicated: 0,
                in_flight: flow.pending.len() as u64,
                latency: Percentiles::of(&mut flow.rtts.clone()),
                jitter_ns: None,
            });
        }
        all
    }
}

/// Removes and returns, oldest first, the pending sends in flight for `timeout` by `now`.
fn expired(
    pending: &mut BTreeMap<u64, Pending>,
    timeout: Nanos,
    now: Nanos,
) -> Vec<(u64, Pending)> {
    let mut out = Vec::new();
    while let Some(entry) = pending.first_entry() {
        if entry.get().t_ns.saturating_add(timeout) > now {
            break;
        }
        out.push(entry.remove_entry());
    }
    out
}

/// Takes the oldest pending send with hash `h` whose bytes equal `bytes`.
fn take_matching(
    index: &mut HashMap<u64, VecDeque<u64>>,
    pending: &BTreeMap<u64, Pending>,
    h: u64,
    bytes: &[u8],
) -> Option<u64> {
    let queue = index.get_mut(&h)?;
    let position = queue
        .iter()
        .position(|seq| pending.get(seq).is_some_and(|p| &*p.bytes == bytes))?;
    let seq = queue.remove(position);
    if queue.is_empty() {
        index.remove(&h);
    }
    seq
}

fn remove_seq(index: &mut HashMap<u64, VecDeque<u64>>, h: u64, seq: u64) {
    if let Some(queue) = index.get_mut(&h) {
        queue.retain(|s| *s != seq);
        if queue.is_empty() {
            index.remove(&h);
        }
    }
}

impl Flow {
    fn receive(
        &mut self,
        key: FlowKey,
        id: EventId,
        t_ns: Nanos,
        bytes: &[u8],
        h: u64,
        out: &mut Vec<Outcome>,
    ) {
        let exact = take_matching(&mut self.by_hash, &self.pending, h, bytes);
        let seq = exact.or_else(|| {
            let seq = self.altered.iter().copied().find(|seq| {
                self.pending.get(seq).is_some_and(|p| {
                    p.altered.is_some_and(|(cut, corrupt)| {
                        matches_altered(&p.bytes, bytes, cut, corrupt)
                    })
                })
            })?;
            self.altered.remove(&seq);
            Some(seq)
        });
        if let Some(seq) = seq {
            let p = self.pending.remove(&seq).expect("matched a pending send");
            self.deliver(key, seq, p.id, p.t_ns, id, t_ns, false, out);
            let ph = hash(&p.bytes);
            self.finish(
                Finished {
                    seq,
                    id: p.id,
                    t_ns: p.t_ns,
                    bytes: p.bytes,
                    lost_by_timeout: false,
                },
                t_ns,
                ph,
            );
            return;
        }
        // Not pending: a copy of a finished send, or a late arrival of a lost one.
        let Some(queue) = self.finished.get_mut(&h) else {
            return;
        };
        let Some(done) = queue.iter_mut().find(|f| &*f.bytes == bytes) else {
            return;
        };
        if done.lost_by_timeout {
            done.lost_by_timeout = false;
            let (seq, send, sent_at) = (done.seq, done.id, done.t_ns);
            self.lost -= 1;
            self.deliver(key, seq, send, sent_at, id, t_ns, true, out);
        } else {
            self.duplicated += 1;
            out.push(Outcome::Duplicate {
                send: done.id,
                recv: id,
                flow: key,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        key: FlowKey,
        seq: u64,
        send: EventId,
        sent_at: Nanos,
        recv: EventId,
        t_ns: Nanos,
        late: bool,
        out: &mut Vec<Outcome>,
    ) {
        let reordered_by = match self.max_received {
            Some(max) if max > seq => max - seq,
            _ => 0,
        };
        if reordered_by > 0 {
            self.reordered += 1;
        }
        self.max_received = Some(self.max_received.map_or(seq, |m| m.max(seq)));
        self.delivered += 1;
        let latency_ns = t_ns.saturating_sub(sent_at);
        if self.latencies.len() < MAX_SAMPLES {
            self.latencies.push(latency_ns);
        }
        self.jitter.arrive(sent_at, t_ns);
        out.push(Outcome::Delivered {
            send,
            recv,
            flow: key,
            latency_ns,
            reordered_by,
            late,
        });
    }

    fn finish(&mut self, finished: Finished, now: Nanos, h: u64) {
        self.finished.entry(h).or_default().push_back(finished);
        self.finished_order.push_back((now, h));
        if self.finished_order.len() > MAX_FINISHED {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, h)) = self.finished_order.pop_front()
            && let Some(queue) = self.finished.get_mut(&h)
        {
            queue.pop_front();
            if queue.is_empty() {
                self.finished.remove(&h);
            }
        }
    }

    /// Forgets finished sends that finished before `horizon`.
    fn forget_before(&mut self, horizon: Nanos) {
        while self
            .finished_order
            .front()
            .is_some_and(|&(at, _)| at < horizon)
        {
            self.forget_oldest();
        }
    }
}
