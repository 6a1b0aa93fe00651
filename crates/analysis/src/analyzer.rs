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
//!   whose bytes equal an earlier unanswered request is its **reply** (RTT); requests
//!   without a reply within the timeout are **unanswered**.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;

use socklab_protocol::EventId;
use socklab_protocol::link::{DropReason, LinkFate, LinkId};

use crate::jitter::Jitter;
use crate::routes::Routes;
use crate::seqhdr::SeqHeader;
use crate::sequenced::SeqReceiver;
use crate::stats::{FlowStats, Method, Percentiles};
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
/// The most latency samples all flows together keep (8 bytes each).
const MAX_SAMPLES_TOTAL: usize = 2_000_000;

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
    /// A link's client changed: the target's replies go to `client` from now on.
    LinkClient {
        /// The link.
        link: &'a LinkId,
        /// Its new client.
        client: SocketAddr,
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
        /// The byte the link changed: its offset and the bits it flipped.
        corrupted: Option<(usize, u8)>,
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
    /// A send the analysis stopped following before it could conclude: too many
    /// datagrams were in flight ([`Limits::max_in_flight`]), or its flow was retired to
    /// make room for a new one ([`Limits::max_flows`]).
    Untracked {
        /// The `out` event.
        send: EventId,
        /// Its flow.
        flow: FlowKey,
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

/// A send in flight. The analysis keeps its payload's fingerprint and length, never the
/// bytes: a session of large datagrams with a long timeout would otherwise hold every
/// payload in flight.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: EventId,
    t_ns: Nanos,
    /// The fingerprint of the bytes the receiver should get (after a link changed
    /// them, the changed bytes).
    hash: u64,
    len: usize,
}

impl Pending {
    fn is(&self, h: u64, len: usize) -> bool {
        self.hash == h && self.len == len
    }
}

#[derive(Debug, Clone, Copy)]
struct Finished {
    seq: u64,
    id: EventId,
    t_ns: Nanos,
    len: usize,
    lost_by_timeout: bool,
}

/// Sequence numbers by payload fingerprint, each list in increasing order (sends are
/// numbered in order, and a re-indexed one is inserted in place), so the oldest is at
/// the front and any one is found by binary search.
type Index = HashMap<u64, VecDeque<u64>>;

/// What every kind of flow shares: its sends in flight and how they are indexed.
#[derive(Debug, Default)]
struct InFlight {
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    /// Pending sends by the fingerprint the receiver should see.
    by_hash: Index,
    /// Pending sends crossing a link that has not decided on them yet, by the
    /// fingerprint of the bytes the link will see.
    undecided: Index,
}

impl InFlight {
    fn push(&mut self, pending: Pending, via_link: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(seq, pending);
        push_seq(&mut self.by_hash, pending.hash, seq);
        if via_link {
            push_seq(&mut self.undecided, pending.hash, seq);
        }
        seq
    }

    /// Removes a pending send from everything that indexes it.
    fn remove(&mut self, seq: u64) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        remove_seq(&mut self.by_hash, p.hash, seq);
        remove_seq(&mut self.undecided, p.hash, seq);
        Some(p)
    }

    /// Takes the oldest pending send the receiver could get as (`h`, `len`).
    fn take_received(&mut self, h: u64, len: usize) -> Option<(u64, Pending)> {
        let seq = take_matching(&mut self.by_hash, &self.pending, h, len)?;
        let p = self.remove(seq)?;
        Some((seq, p))
    }

    /// The oldest pending send a link decided on (`h`, `len` as the link saw it),
    /// taken out of the undecided index.
    fn take_undecided(&mut self, h: u64, len: usize) -> Option<u64> {
        take_matching(&mut self.undecided, &self.pending, h, len)
    }

    /// The link changed a pending send's bytes: the receiver will see `h`, `len`.
    fn altered(&mut self, seq: u64, h: u64, len: usize) {
        let Some(p) = self.pending.get_mut(&seq) else {
            return;
        };
        remove_seq(&mut self.by_hash, p.hash, seq);
        p.hash = h;
        p.len = len;
        push_seq(&mut self.by_hash, h, seq);
    }

    /// The oldest pending send.
    fn oldest(&self) -> Option<Nanos> {
        self.pending.first_key_value().map(|(_, p)| p.t_ns)
    }

    /// Removes and returns the oldest pending send, if it has been in flight for
    /// `timeout` at `now` (`None`: whatever its age).
    fn pop_oldest(&mut self, expired: Option<(Nanos, Nanos)>) -> Option<(u64, Pending)> {
        let (&seq, p) = self.pending.first_key_value()?;
        if let Some((timeout, now)) = expired
            && p.t_ns.saturating_add(timeout) > now
        {
            return None;
        }
        let p = self.remove(seq)?;
        Some((seq, p))
    }
}

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
    latencies: Vec<u64>,
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
    rtts: Vec<u64>,
    last_ns: Nanos,
}

/// A sequenced stream as its receiver sees it.
#[derive(Debug, Default)]
struct Sequenced {
    receiver: SeqReceiver,
    last_ns: Nanos,
}

/// Which table a flow is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Matched(FlowKey),
    Echo(FlowKey),
    Sequenced(FlowKey, u32),
}

/// The session's flow analysis.
#[derive(Debug)]
pub struct Analyzer {
    timeout: Nanos,
    limits: Limits,
    lab: HashSet<SocketAddr>,
    routes: Routes,
    flows: BTreeMap<FlowKey, Flow>,
    echo: BTreeMap<FlowKey, EchoFlow>,
    sequenced: BTreeMap<(FlowKey, u32), Sequenced>,
    /// The link decision about each send, until [`Analyzer::take_decision`] asks.
    decisions: HashMap<EventId, EventId>,
    /// Drops the kernel reported at each lab socket that no lost datagram accounts for
    /// yet.
    kernel_drops: HashMap<SocketAddr, u64>,
    /// Sends in flight, all flows together.
    in_flight: usize,
    /// Latency samples kept, all flows together.
    samples: usize,
    /// Finished sends remembered, all flows together, and their limit.
    kept: KeptBudget,
    /// Flows retired to make room.
    retired: u64,
    /// Sends given up before a conclusion.
    untracked: u64,
    /// The newest time fed, for flows' idle times.
    now: Nanos,
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
            limits,
            lab: HashSet::new(),
            routes: Routes::default(),
            flows: BTreeMap::new(),
            echo: BTreeMap::new(),
            sequenced: BTreeMap::new(),
            decisions: HashMap::new(),
            kernel_drops: HashMap::new(),
            in_flight: 0,
            samples: 0,
            kept: KeptBudget {
                count: 0,
                max: limits.max_finished.max(1),
            },
            retired: 0,
            untracked: 0,
            now: 0,
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

    /// Sends in flight now, all flows together.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Flows retired so far to make room for new ones.
    pub fn retired_flows(&self) -> u64 {
        self.retired
    }

    /// Finished sends remembered now, all flows together.
    pub fn finished_kept(&self) -> usize {
        self.kept.count
    }

    /// Sends given up so far before a conclusion ([`Outcome::Untracked`]).
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// How many flows are kept.
    pub fn flow_count(&self) -> usize {
        self.flows.len() + self.echo.len() + self.sequenced.len()
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
                let n = self.kernel_drops.entry(addr).or_default();
                *n = n.saturating_add(dropped);
            }
            Input::LinkCreated {
                link,
                listen,
                upstream,
                target,
            } => self.routes.link_created(link, listen, upstream, target),
            Input::LinkClient { link, client } => self.routes.link_client(link, client),
            Input::LinkDeleted { link } => self.routes.link_deleted(link),
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
            Input::LinkDecision {
                id: decision,
                link,
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
                if let Some(to) = to.or_else(|| self.routes.upstream(link)) {
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
            .map(|(k, f)| (f.sends.pending.is_empty(), f.last_ns, Table::Matched(*k)))
            .chain(
                self.echo
                    .iter()
                    .map(|(k, f)| (f.sends.pending.is_empty(), f.last_ns, Table::Echo(*k))),
            )
            .chain(
                self.sequenced
                    .iter()
                    .map(|((k, n), f)| (true, f.last_ns, Table::Sequenced(*k, *n))),
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
                self.give_up(p.id, flow, out);
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
    fn keep_in_flight_bounded(&mut self, key: FlowKey, out: &mut Vec<Outcome>) {
        while self.in_flight >= self.limits.max_in_flight.max(1) {
            let own = self
                .flows
                .get(&key)
                .filter(|f| !f.sends.pending.is_empty())
                .map(|_| Table::Matched(key))
                .or_else(|| {
                    self.echo
                        .get(&key)
                        .filter(|f| !f.sends.pending.is_empty())
                        .map(|_| Table::Echo(key))
                });
            let victim = own.or_else(|| {
                let matched = self
                    .flows
                    .iter()
                    .filter_map(|(k, f)| Some((f.sends.oldest()?, Table::Matched(*k))));
                let echo = self
                    .echo
                    .iter()
                    .filter_map(|(k, f)| Some((f.sends.oldest()?, Table::Echo(*k))));
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
        local: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<Outcome>,
    ) {
        let end = self.routes.destination(peer);
        let (dst, via) = (end.addr, end.via.cloned());
        let key = FlowKey { src: local, dst };
        let pending = Pending {
            id,
            t_ns,
            hash: hash(bytes),
            len: bytes.len(),
        };
        let matched = self.lab.contains(&dst);
        let known = if matched {
            self.flows.contains_key(&key)
        } else {
            self.echo.contains_key(&key)
        };
        if !known {
            self.make_room(out);
        }
        self.keep_in_flight_bounded(key, out);
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
        local: SocketAddr,
        peer: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<Outcome>,
    ) {
        let key = FlowKey {
            src: self.routes.source(peer).addr,
            dst: local,
        };
        if let Some(header) = SeqHeader::read(bytes) {
            if !self.sequenced.contains_key(&(key, header.flow)) {
                self.make_room(out);
            }
            let stream = self.sequenced.entry((key, header.flow)).or_default();
            stream.receiver.arrive(header, t_ns);
            stream.last_ns = t_ns;
        }
        let h = hash(bytes);
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.last_ns = t_ns;
            let room = self.samples < MAX_SAMPLES_TOTAL;
            let outcome = flow.receive(key, id, t_ns, h, bytes.len(), room, &mut self.kept, out);
            if outcome.consumed {
                self.in_flight -= 1;
            }
            if outcome.sampled {
                self.samples += 1;
            }
            return;
        }
        // A reply from an echo-like peer: the reverse flow has a request with these bytes.
        let request_key = FlowKey {
            src: local,
            dst: key.src,
        };
        if let Some(flow) = self.echo.get_mut(&request_key)
            && let Some((_, request)) = flow.sends.take_received(h, bytes.len())
        {
            self.in_flight -= 1;
            flow.replies += 1;
            flow.last_ns = t_ns;
            let rtt_ns = t_ns.saturating_sub(request.t_ns);
            if flow.rtts.len() < MAX_SAMPLES && self.samples < MAX_SAMPLES_TOTAL {
                flow.rtts.push(rtt_ns);
                self.samples += 1;
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
        } else if matched && (corrupted.is_some() || truncated_to.is_some()) {
            // The receiver will get the changed bytes: follow those.
            let changed = as_altered(bytes, truncated_to, corrupted);
            sends.altered(seq, hash(&changed), changed.len());
        }
    }

    /// Concludes a send (already taken out of its flow's sends in flight) that a link
    /// dropped.
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
                    flow: *key,
                    cause: timed_out(&mut self.kernel_drops, key.dst),
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
                in_flight: flow.sends.pending.len() as u64,
                latency: Percentiles::of(&mut flow.latencies.clone()),
                jitter_ns: (flow.delivered > 1).then(|| flow.jitter.value()),
            });
        }
        for ((key, seq_flow), s) in &self.sequenced {
            let r = &s.receiver;
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
                in_flight: flow.sends.pending.len() as u64,
                latency: Percentiles::of(&mut flow.rtts.clone()),
                jitter_ns: None,
            });
        }
        all
    }
}

fn push_seq(index: &mut Index, h: u64, seq: u64) {
    let queue = index.entry(h).or_default();
    // Sends are numbered in order, so this is nearly always the end.
    let at = queue.partition_point(|&s| s < seq);
    queue.insert(at, seq);
}

/// Takes the oldest sequence number indexed under `h` whose pending send is (`h`,
/// `len`).
fn take_matching(
    index: &mut Index,
    pending: &BTreeMap<u64, Pending>,
    h: u64,
    len: usize,
) -> Option<u64> {
    let queue = index.get_mut(&h)?;
    let position = queue
        .iter()
        .position(|seq| pending.get(seq).is_some_and(|p| p.is(h, len)))?;
    let seq = queue.remove(position);
    if queue.is_empty() {
        index.remove(&h);
    }
    seq
}

fn remove_seq(index: &mut Index, h: u64, seq: u64) {
    if let Some(queue) = index.get_mut(&h) {
        // Sorted: a binary search, and the oldest (the usual case) is at the front.
        if let Ok(at) = queue.binary_search(&seq) {
            queue.remove(at);
        }
        if queue.is_empty() {
            index.remove(&h);
        }
    }
}

/// How many finished sends all flows remember, and the most they may.
#[derive(Debug)]
struct KeptBudget {
    count: usize,
    max: usize,
}

/// What a receive did to a matched flow.
#[derive(Debug, Default)]
struct Received {
    /// It concluded a send in flight.
    consumed: bool,
    /// It added a latency sample.
    sampled: bool,
}

impl Flow {
    #[allow(clippy::too_many_arguments)]
    fn receive(
        &mut self,
        key: FlowKey,
        id: EventId,
        t_ns: Nanos,
        h: u64,
        len: usize,
        room_for_sample: bool,
        kept: &mut KeptBudget,
        out: &mut Vec<Outcome>,
    ) -> Received {
        if let Some((seq, p)) = self.sends.take_received(h, len) {
            let sampled = self.deliver(
                key,
                seq,
                p.id,
                p.t_ns,
                id,
                t_ns,
                false,
                room_for_sample,
                out,
            );
            self.finish(
                Finished {
                    seq,
                    id: p.id,
                    t_ns: p.t_ns,
                    len: p.len,
                    lost_by_timeout: false,
                },
                t_ns,
                p.hash,
                kept,
            );
            return Received {
                consumed: true,
                sampled,
            };
        }
        // Not pending: a copy of a finished send, or a late arrival of a lost one.
        let Some(done) = self.finished.oldest_mut(h, len) else {
            return Received::default();
        };
        if done.lost_by_timeout {
            done.lost_by_timeout = false;
            let (seq, send, sent_at) = (done.seq, done.id, done.t_ns);
            self.lost -= 1;
            let sampled = self.deliver(
                key,
                seq,
                send,
                sent_at,
                id,
                t_ns,
                true,
                room_for_sample,
                out,
            );
            Received {
                consumed: false,
                sampled,
            }
        } else {
            self.duplicated += 1;
            out.push(Outcome::Duplicate {
                send: done.id,
                recv: id,
                flow: key,
            });
            Received::default()
        }
    }

    /// Reports a delivery; returns whether it kept a latency sample.
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
        room_for_sample: bool,
        out: &mut Vec<Outcome>,
    ) -> bool {
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
        let sampled = room_for_sample && self.latencies.len() < MAX_SAMPLES;
        if sampled {
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
        sampled
    }

    fn finish(&mut self, finished: Finished, now: Nanos, h: u64, kept: &mut KeptBudget) {
        self.finished.push(finished, h, now);
        kept.count += 1;
        while self.finished.len() > MAX_FINISHED
            || (kept.count > kept.max && self.finished.len() > 0)
        {
            self.finished.forget_oldest();
            kept.count -= 1;
        }
    }

    /// Forgets finished sends that finished before `horizon`.
    fn forget_before(&mut self, horizon: Nanos, kept: &mut KeptBudget) {
        while self.finished.oldest_at().is_some_and(|at| at < horizon) {
            self.finished.forget_oldest();
            kept.count -= 1;
        }
    }
}

/// A finished send as [`Recent`] keeps it: 48 bytes (a kept send is the analysis'
/// largest per-datagram cost).
#[derive(Debug, Clone, Copy)]
struct Kept {
    seq: u64,
    id: EventId,
    t_ns: Nanos,
    /// When it finished.
    at: Nanos,
    hash: u64,
    /// How many positions further the next kept send with the same fingerprint is
    /// (0: none). Kept sends span at most [`MAX_FINISHED`] positions.
    next: u32,
    /// The payload's length, saturated (UDP payloads are below 65,536 bytes).
    len: u16,
    lost_by_timeout: bool,
}

fn short_len(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// A flow's finished sends, oldest first, each fingerprint's sends chained from its
/// oldest to its newest. Adding one, finding the oldest with a fingerprint and
/// forgetting the oldest of all take constant time, and a finished send costs no
/// allocation of its own (a map of per-fingerprint queues cost about 250 bytes per
/// datagram, most of the analysis' memory).
#[derive(Debug, Default)]
struct Recent {
    /// The position of `kept[0]`; positions count every send ever kept.
    base: u64,
    kept: VecDeque<Kept>,
    /// Fingerprint → positions of its oldest and newest kept send.
    chains: HashMap<u64, (u64, u64)>,
}

impl Recent {
    fn len(&self) -> usize {
        self.kept.len()
    }

    fn get_mut(&mut self, position: u64) -> Option<&mut Kept> {
        let index = usize::try_from(position.checked_sub(self.base)?).ok()?;
        self.kept.get_mut(index)
    }

    fn push(&mut self, finished: Finished, hash: u64, at: Nanos) {
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
    fn oldest_mut(&mut self, hash: u64, len: usize) -> Option<&mut Kept> {
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
    fn oldest_at(&self) -> Option<Nanos> {
        self.kept.front().map(|k| k.at)
    }

    /// Forgets the oldest kept send (the oldest of its fingerprint's chain too).
    fn forget_oldest(&mut self) {
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

    fn finished(seq: u64, len: usize) -> Finished {
        Finished {
            seq,
            id: EventId(seq),
            t_ns: seq,
            len,
            lost_by_timeout: false,
        }
    }

    #[test]
    fn recent_sends_are_found_oldest_first_and_forgotten_in_order() {
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
