//! The timeline's model, with no drawing in it: lanes (one per endpoint), one arrow per
//! datagram from its send to its receive, marked with its fate; the view's time window;
//! hit testing. Built from the same events as everything else, so unit tests reach it
//! without a browser.
//!
//! (Over 600 lines: every event's effect on the arrows is in one `apply`, next to the
//! maps it keeps; the tests are in `tests.rs`.)

use std::collections::HashMap;
use std::net::SocketAddr;

use socklab_protocol::Endpoint;

use socklab_analysis::{End, Routes};
use socklab_protocol::flow::{Fate, FateKind, LossCause};
use socklab_protocol::link::{DropReason, LinkDir, LinkFate, LinkId};
use socklab_protocol::{Direction, Event, StreamEndReason};

/// How many arrows the page keeps; beyond it the oldest half is forgotten.
pub const ARROWS_KEPT: usize = 300_000;

/// What a lane stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneKind {
    /// A lab socket.
    Lab,
    /// A link (drawn between its clients and its target).
    Link,
    /// A program outside the lab.
    Outside,
}

/// One endpoint's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// What it is.
    pub kind: LaneKind,
    /// Its heading, such as `s1 127.0.0.1:4000`.
    pub label: String,
    /// Its heading when lanes are narrow, such as `s1`, `l1` or `:4000`.
    pub short: String,
    /// Its socket was closed or its link deleted.
    pub gone: bool,
    /// How many of the arrows kept start, end or pass on it (none: idle).
    pub arrows: u32,
}

/// An arrow's fate, as drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Sent, not received yet.
    Pending,
    /// Received in order.
    Delivered,
    /// Received after a later datagram of its flow (by this many).
    Reordered(u64),
    /// Received after it had been counted lost.
    Late,
    /// An extra copy.
    Duplicate,
    /// Lost, and why.
    Lost(LossWhy),
    /// A request to an echo-like peer (its reply is a separate arrow), and how the
    /// reply was paired with it.
    Request(Pairing),
    /// A reply from an echo-like peer.
    Reply,
    /// A request that got no reply, and why.
    Unanswered(LossWhy),
    /// A datagram from outside the lab, not (yet) matched to anything.
    Incoming,
    /// The analysis stopped following it (too many in flight, or its flow retired).
    Untracked,
    /// A TCP write: bytes into the stream, ending at the read that returned its last
    /// byte (several writes ending at one read came out of it together).
    Bytes,
    /// Something a TCP connection did, not bytes.
    Tcp(TcpMark),
}

/// What a TCP connection did, as the timeline draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpMark {
    /// The three-way handshake: connect, then accept.
    Handshake,
    /// The end of the stream reached the reader (the peer's FIN: a read returned 0).
    Fin,
    /// The connection was reset (an RST).
    Reset,
}

/// How a reply was paired with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// The same bytes.
    Bytes,
    /// The match field the person named is equal; the rest differs.
    Field,
    /// Its bytes equal no open request: it answers the oldest.
    Order,
}

/// One datagram (or copy) on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrow {
    /// The `out` event (0 for a datagram from outside).
    pub send: u64,
    /// The `in` event (0 when not received).
    pub recv: u64,
    /// Start time, ns.
    pub t0: u64,
    /// End time, ns (for a pending arrow, its start).
    pub t1: u64,
    /// Start lane.
    pub from: u16,
    /// End lane.
    pub to: u16,
    /// The link lane it crosses.
    pub via: Option<u16>,
    /// Its fate.
    pub mark: Mark,
    /// Its flow (index into [`Timeline::flows`]).
    pub flow: u16,
    /// The `link_packet` event with the link's decision about it (0: none).
    pub decision: u64,
}

/// Why a datagram was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossWhy {
    /// A link dropped it, for this reason.
    Link(DropReason),
    /// The kernel dropped it at the receiving lab socket (its receive buffer was full).
    Kernel,
    /// It was not received within the loss timeout.
    Timeout,
    /// Nobody is bound where it went: the kernel discarded it on arrival.
    NoListener,
    /// Nobody listens where it went, and the ICMP port unreachable that said so came
    /// back to the sending socket.
    Refused,
    /// Another ICMP error came back: the network could not deliver it.
    Unreachable,
}

impl LossWhy {
    /// From a `fate` event's cause and reason.
    pub fn of(cause: Option<LossCause>, reason: Option<DropReason>) -> LossWhy {
        match (cause, reason) {
            (Some(LossCause::Kernel), _) => LossWhy::Kernel,
            (Some(LossCause::NoListener), _) => LossWhy::NoListener,
            (Some(LossCause::Refused), _) => LossWhy::Refused,
            (Some(LossCause::Unreachable), _) => LossWhy::Unreachable,
            (_, Some(reason)) => LossWhy::Link(reason),
            _ => LossWhy::Timeout,
        }
    }

    /// Why, in a few words (a packet row's).
    pub fn short(self) -> &'static str {
        match self {
            LossWhy::Link(reason) => reason.describe(),
            LossWhy::Kernel => "the kernel's receive buffer was full",
            LossWhy::Timeout => "timed out",
            LossWhy::NoListener => "nobody bound there",
            LossWhy::Refused => "refused (ICMP port unreachable)",
            LossWhy::Unreachable => "unreachable (ICMP)",
        }
    }

    /// In plain words, for the inspector.
    pub fn words(self) -> &'static str {
        match self {
            LossWhy::Link(reason) => reason.describe(),
            LossWhy::Kernel => {
                "dropped by the kernel at the receiving socket: its receive buffer was full"
            }
            LossWhy::Timeout => "not received within the loss timeout",
            LossWhy::NoListener => {
                "nobody is bound to that port: the kernel discarded it on arrival (no ICMP error reached the sender)"
            }
            LossWhy::Refused => {
                "refused: nobody listens on that port, and the kernel there answered with ICMP port unreachable (see the ✕ icmp row); a connected socket's next call would fail with ECONNREFUSED"
            }
            LossWhy::Unreachable => {
                "the network could not deliver it: an ICMP error came back (see the ✕ icmp row)"
            }
        }
    }
}

/// The legend's groups: in order, delivered (and other plain arrows), lost, reordered
/// or late, duplicate.
pub fn category(mark: Mark) -> usize {
    match mark {
        Mark::Lost(_) | Mark::Unanswered(_) => 1,
        Mark::Reordered(_) | Mark::Late => 2,
        Mark::Duplicate => 3,
        Mark::Pending
        | Mark::Delivered
        | Mark::Request(_)
        | Mark::Reply
        | Mark::Incoming
        | Mark::Untracked
        | Mark::Bytes
        | Mark::Tcp(_) => 0,
    }
}

impl Arrow {
    /// Whether it ends in a cross (it never arrived).
    pub fn is_lost(&self) -> bool {
        matches!(self.mark, Mark::Lost(_) | Mark::Unanswered(_))
    }
}

/// Which arrows to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Delivered in order.
    pub delivered: bool,
    /// Lost or unanswered.
    pub lost: bool,
    /// Reordered or late.
    pub reordered: bool,
    /// Duplicate copies.
    pub duplicated: bool,
    /// Only this lane's datagrams (sent or received).
    pub lane: Option<u16>,
    /// Only this flow.
    pub flow: Option<u16>,
    /// Hide the lanes of closed sockets and deleted links, with their arrows.
    pub hide_gone: bool,
    /// Hide the lanes no kept arrow touches (a socket that never sent nor received).
    pub hide_idle: bool,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            delivered: true,
            lost: true,
            reordered: true,
            duplicated: true,
            lane: None,
            flow: None,
            hide_gone: false,
            hide_idle: false,
        }
    }
}

impl Filter {
    /// Whether the arrow passes.
    pub fn shows(&self, a: &Arrow) -> bool {
        let by_fate = match a.mark {
            Mark::Lost(_) | Mark::Unanswered(_) => self.lost,
            Mark::Reordered(_) | Mark::Late => self.reordered,
            Mark::Duplicate => self.duplicated,
            Mark::Pending
            | Mark::Delivered
            | Mark::Request(_)
            | Mark::Reply
            | Mark::Incoming
            | Mark::Untracked
            | Mark::Bytes
            | Mark::Tcp(_) => self.delivered,
        };
        by_fate
            && self.lane.is_none_or(|l| a.from == l || a.to == l)
            && self.flow.is_none_or(|f| a.flow == f)
    }
}

/// Everything the timeline draws.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The lanes, in order of first appearance.
    pub lanes: Vec<Lane>,
    lane_of: HashMap<Endpoint, u16>,
    lab_labels: HashMap<Endpoint, String>,
    /// The arrows, in order of their start event.
    pub arrows: Vec<Arrow>,
    by_send: HashMap<u64, u32>,
    by_recv: HashMap<u64, u32>,
    /// Arrows of datagrams that only a link saw (neither end a lab socket), by the
    /// event of its decision.
    by_decision: HashMap<u64, u32>,
    recv_times: HashMap<u64, u64>,
    /// Datagrams a link forwarded that have not left yet: (link, direction, seq) to
    /// their decision's event id, the copies still to leave, and whether one has left.
    /// At most [`ARROWS_KEPT`].
    in_link: HashMap<(LinkId, LinkDir, u64), (u64, u8, bool)>,
    /// The highest seq a link sent on per (link lane, direction, flow), for reordering
    /// of the datagrams only a link saw.
    link_sent_max: HashMap<(u16, LinkDir, u16), u64>,
    /// When each datagram a link forwarded was due to leave it (its decision's event
    /// id, and arrival + planned delay), oldest first: where a kernel drop at the
    /// receiver is drawn. At most [`ARROWS_KEPT`].
    departures: std::collections::VecDeque<(u64, u64)>,
    /// The one routing rule (shared with the server's analysis), fed the same events.
    routes: Routes,
    /// Each link's lane.
    link_lanes: HashMap<LinkId, u16>,
    /// Each lab socket's lane.
    socket_lanes: HashMap<socklab_protocol::SocketId, u16>,
    /// The flows seen: (source, destination).
    pub flows: Vec<(Endpoint, Endpoint)>,
    flow_of: HashMap<(Endpoint, Endpoint), u16>,
    /// The latest time any event carried, ns.
    pub latest_t: u64,
    /// Arrows forgotten to stay bounded.
    pub forgotten: u64,
    /// How many arrows are in each legend group ([`category`]), kept as arrows change
    /// so that drawing the legend never walks every arrow.
    pub counts: [usize; 4],
    /// TCP sockets: their address and, once connected, their peer.
    tcp: HashMap<socklab_protocol::SocketId, (SocketAddr, Option<SocketAddr>)>,
    /// TCP writes not read yet, per connection (writer, reader): where each ends in the
    /// stream, and its `out` event. At most [`ARROWS_KEPT`] in all.
    unread: HashMap<(SocketAddr, SocketAddr), std::collections::VecDeque<(u64, u64)>>,
    /// How many writes `unread` holds, all connections together.
    unread_count: usize,
    /// Where the page was not sent every datagram, and what it drew there instead.
    pub scale: scale::Scale,
}

impl Timeline {
    fn lane(&mut self, addr: impl Into<Endpoint>, kind: LaneKind) -> u16 {
        let addr = addr.into();
        if let Some(&i) = self.lane_of.get(&addr) {
            return i;
        }
        let label = match kind {
            LaneKind::Lab => self
                .lab_labels
                .get(&addr)
                .cloned()
                .unwrap_or_else(|| addr.to_string()),
            LaneKind::Link | LaneKind::Outside => addr.to_string(),
        };
        let i = self.lanes.len() as u16;
        self.lanes.push(Lane {
            kind,
            label,
            short: short_name(&addr),
            gone: false,
            arrows: 0,
        });
        self.lane_of.insert(addr, i);
        i
    }

    fn kind_of(&self, addr: impl Into<Endpoint>) -> LaneKind {
        if self.lab_labels.contains_key(&addr.into()) {
            LaneKind::Lab
        } else {
            LaneKind::Outside
        }
    }

    fn flow(&mut self, src: impl Into<Endpoint>, dst: impl Into<Endpoint>) -> u16 {
        let key = (src.into(), dst.into());
        if let Some(&i) = self.flow_of.get(&key) {
            return i;
        }
        let next = self.flows.len() as u16;
        self.flows.push(key.clone());
        self.flow_of.insert(key, next);
        next
    }

    fn push(&mut self, arrow: Arrow) -> u32 {
        if self.arrows.len() >= ARROWS_KEPT {
            self.forget_oldest_half();
        }
        self.counts[category(arrow.mark)] += 1;
        self.count_lanes(&arrow, true);
        self.arrows.push(arrow);
        (self.arrows.len() - 1) as u32
    }

    fn forget_oldest_half(&mut self) {
        let cut = self.arrows.len() / 2;
        let forgotten: Vec<Arrow> = self.arrows.drain(..cut).collect();
        for a in &forgotten {
            self.counts[category(a.mark)] -= 1;
            self.count_lanes(a, false);
        }
        self.forgotten += cut as u64;
        let reindex = |map: &mut HashMap<u64, u32>| {
            map.retain(|_, i| *i as usize >= cut);
            map.values_mut().for_each(|i| *i -= cut as u32);
        };
        reindex(&mut self.by_send);
        reindex(&mut self.by_recv);
        reindex(&mut self.by_decision);
        let oldest = self.arrows.first().map_or(0, |a| a.t0);
        self.recv_times.retain(|_, t| *t >= oldest);
    }

    /// The column each lane is drawn in: a link's lane sits just before its target's, so
    /// arrows through it pass over it; everything else in order of appearance.
    pub fn columns(&self) -> Vec<u16> {
        let mut order: Vec<u16> = Vec::with_capacity(self.lanes.len());
        let link_before = |lane: u16| {
            self.routes
                .links()
                .filter(move |l| {
                    self.routes
                        .target(l)
                        .is_some_and(|t| self.lane_of.get(&Endpoint::Ip(t)) == Some(&lane))
                })
                .filter_map(|l| self.link_lanes.get(l).copied())
        };
        for (i, lane) in self.lanes.iter().enumerate() {
            if lane.kind == LaneKind::Link {
                continue;
            }
            let links: Vec<u16> = link_before(i as u16)
                .filter(|l| !order.contains(l))
                .collect();
            order.extend(links);
            order.push(i as u16);
        }
        for (i, lane) in self.lanes.iter().enumerate() {
            if lane.kind == LaneKind::Link && !order.contains(&(i as u16)) {
                order.push(i as u16);
            }
        }
        let mut columns = vec![0u16; self.lanes.len()];
        for (column, lane) in order.into_iter().enumerate() {
            columns[lane as usize] = column as u16;
        }
        columns
    }

    /// Counts an arrow on the lanes it touches (or takes it off them).
    fn count_lanes(&mut self, arrow: &Arrow, add: bool) {
        let mut lanes = [Some(arrow.from), Some(arrow.to), arrow.via];
        // An arrow that starts and ends on one lane counts once.
        if lanes[1] == lanes[0] {
            lanes[1] = None;
        }
        for lane in lanes.into_iter().flatten() {
            if let Some(l) = self.lanes.get_mut(lane as usize) {
                l.arrows = if add {
                    l.arrows.saturating_add(1)
                } else {
                    l.arrows.saturating_sub(1)
                };
            }
        }
    }

    /// Forgets every arrow (lanes and routes stay).
    pub fn clear_arrows(&mut self) {
        self.forgotten += self.arrows.len() as u64;
        self.arrows.clear();
        self.counts = [0; 4];
        self.lanes.iter_mut().for_each(|l| l.arrows = 0);
        self.by_send.clear();
        self.by_recv.clear();
        self.by_decision.clear();
        self.recv_times.clear();
        self.unread.clear();
        self.unread_count = 0;
    }

    /// The arrow of a datagram, by its `out` or `in` event id (one drawn from a window
    /// fetched from the server too).
    pub fn arrow_of(&self, event: u64) -> Option<&Arrow> {
        let i = self
            .by_send
            .get(&event)
            .or_else(|| self.by_recv.get(&event))
            .or_else(|| self.by_decision.get(&event));
        match i {
            Some(i) => self.arrows.get(*i as usize),
            None => self.scale.detail.as_ref()?.timeline.arrow_of(event),
        }
    }

    /// Takes one event (any event: it uses what it draws). Returns whether anything it
    /// draws may have changed.
    pub fn apply(&mut self, event: &Event) -> bool {
        match event {
            Event::Bound(b) => {
                if let (socklab_protocol::Proto::Tcp, Some(local)) =
                    (b.proto, b.local.socket_addr())
                {
                    self.tcp.insert(b.socket.clone(), (local, None));
                }
                self.lab_labels.insert(
                    b.local.clone(),
                    format!("{} {}", b.socket, compact(&b.local)),
                );
                let lane = self.lane(b.local.clone(), LaneKind::Lab);
                let arrows = self.lanes[lane as usize].arrows;
                self.lanes[lane as usize] = Lane {
                    kind: LaneKind::Lab,
                    label: format!("{} {}", b.socket, compact(&b.local)),
                    short: b.socket.to_string(),
                    gone: false,
                    arrows,
                };
                self.socket_lanes.insert(b.socket.clone(), lane);
                self.latest_t = self.latest_t.max(b.t_ns);
            }
            Event::LinkCreated(l) => {
                let lane = self.lane(l.listen, LaneKind::Link);
                let heading = &mut self.lanes[lane as usize];
                heading.label = format!("{} link {}", l.link, l.listen);
                heading.short = l.link.to_string();
                heading.gone = false;
                self.lane_of.insert(Endpoint::Ip(l.upstream), lane);
                self.link_lanes.insert(l.link.clone(), lane);
                self.routes
                    .link_created(&l.link, l.listen, l.upstream, l.target);
            }
            Event::LinkClient(c) => {
                self.routes.link_client(&c.link, c.client);
                return false;
            }
            Event::LinkDeleted(d) => {
                self.routes.link_deleted(&d.link);
                if let Some(&lane) = self.link_lanes.get(&d.link) {
                    self.lanes[lane as usize].gone = true;
                }
            }
            Event::Closed(c) => {
                if let Some(&lane) = self.socket_lanes.get(&c.socket) {
                    self.lanes[lane as usize].gone = true;
                }
            }
            Event::LinkPacket(p) => {
                if let Some(delay) = p.delay_ns {
                    if self.departures.len() >= ARROWS_KEPT {
                        self.departures.pop_front();
                    }
                    self.departures
                        .push_back((p.id.0, p.t_ns.saturating_add(delay)));
                    if self.in_link.len() >= ARROWS_KEPT {
                        self.in_link.clear();
                    }
                    let copies = if p.duplicated { 2 } else { 1 };
                    self.in_link
                        .insert((p.link.clone(), p.dir, p.seq), (p.id.0, copies, false));
                }
                return self.link_only(p);
            }
            Event::LinkSent(sent) => {
                let mut changed = false;
                for d in &sent.sent {
                    changed |= self.link_sent(&sent.link, sent.dir, d);
                }
                return changed;
            }
            Event::Accepted(a) => {
                self.tcp.insert(a.socket.clone(), (a.local, Some(a.peer)));
                self.latest_t = self.latest_t.max(a.t_ns);
                self.tcp_arrow(
                    a.id.0,
                    a.t_ns,
                    a.peer,
                    a.local,
                    Mark::Tcp(TcpMark::Handshake),
                );
            }
            Event::Connected(c) => {
                let Some(entry) = self.tcp.get_mut(&c.socket) else {
                    return false; // a datagram socket's connect draws nothing
                };
                let (Some(local), Some(peer)) = (c.local.socket_addr(), c.peer.socket_addr())
                else {
                    return false;
                };
                entry.1 = Some(peer);
                self.latest_t = self.latest_t.max(c.t_ns);
                // A lab listener's `accepted` draws the handshake; an outside server
                // accepts unseen, so the connect does.
                if self.kind_of(peer) == LaneKind::Lab {
                    return false;
                }
                self.tcp_arrow(c.id.0, c.t_ns, local, peer, Mark::Tcp(TcpMark::Handshake));
            }
            Event::Stream(s) => {
                self.latest_t = self.latest_t.max(s.t_ns);
                self.stream(s);
            }
            Event::StreamEnd(e) => {
                let mark = match e.reason {
                    StreamEndReason::Eof => TcpMark::Fin,
                    StreamEndReason::Reset => TcpMark::Reset,
                    StreamEndReason::Refused | StreamEndReason::Error => return false,
                };
                let Some(&(local, Some(peer))) = self.tcp.get(&e.socket) else {
                    return false;
                };
                self.latest_t = self.latest_t.max(e.t_ns);
                self.tcp_arrow(e.id.0, e.t_ns, peer, local, Mark::Tcp(mark));
            }
            Event::Datagram(d) => {
                self.latest_t = self.latest_t.max(d.t_ns);
                match d.dir {
                    Direction::Out => self.sent(d.id.0, d.t_ns, &d.local, &d.peer),
                    Direction::In => self.received(d.id.0, d.t_ns, &d.local, &d.peer),
                }
            }
            Event::Fate(f) => {
                self.latest_t = self.latest_t.max(f.t_ns);
                self.fate(f);
            }
            Event::Thinned(t) => {
                self.scale.thinned(t);
                self.latest_t = self.latest_t.max(t.to_ns);
            }
            Event::Aggregates(a) => self.scale.counts = Some(std::rc::Rc::new(a.clone())),
            Event::Window(w) => self.scale.detail = Some(self.detail_from(w)),
            Event::Batch { events } => {
                let mut changed = false;
                for e in events {
                    changed |= self.apply(e);
                }
                return changed;
            }
            // What the timeline does not draw (lanes stay when sockets close and links
            // go; decisions reach it through fates).
            Event::Hello(_)
            | Event::KernelDrops(_)
            | Event::Unreachable(_)
            | Event::ShutDown(_)
            | Event::Paused(_)
            | Event::Membership(_)
            | Event::TcpLinkCreated(_)
            | Event::TcpLinkConn(_)
            | Event::TcpLinkChunk(_)
            | Event::TcpLinkEnd(_)
            | Event::LinkUpdated(_)
            | Event::LinkStats(_)
            | Event::FlowStats(_)
            | Event::GeneratorStarted(_)
            | Event::GeneratorDone(_)
            | Event::AnalysisConfig(_)
            | Event::RecordingStarted(_)
            | Event::RecordingStopped(_)
            | Event::RunMarked(_)
            | Event::Error(_)
            | Event::KeepingUp(_)
            | Event::Gap(_) => return false,
        }
        true
    }

    /// Draws a link's decision on a datagram neither of whose ends is a lab socket (an
    /// outside program talking to another through a link): nothing else shows it.
    /// Returns whether it drew anything.
    fn link_only(&mut self, p: &socklab_protocol::LinkPacket) -> bool {
        let Some(to) = p.to.or_else(|| self.routes.upstream(&p.link)) else {
            return false;
        };
        if self.kind_of(p.from) == LaneKind::Lab || self.kind_of(to) == LaneKind::Lab {
            return false;
        }
        let Some(&via) = self.link_lanes.get(&p.link) else {
            return false;
        };
        if p.reason == Some(DropReason::SendFailed) {
            // The second word on a datagram it had forwarded: it never left.
            let Some((decision, _, _)) = self.in_link.remove(&(p.link.clone(), p.dir, p.seq))
            else {
                return false;
            };
            let Some(&i) = self.by_decision.get(&decision) else {
                return false;
            };
            let was = category(self.arrows[i as usize].mark);
            let a = &mut self.arrows[i as usize];
            a.t1 = p.t_ns.max(a.t0);
            a.mark = Mark::Lost(LossWhy::Link(DropReason::SendFailed));
            self.counts[was] -= 1;
            self.counts[category(Mark::Lost(LossWhy::Link(DropReason::SendFailed)))] += 1;
            return true;
        }
        self.latest_t = self.latest_t.max(p.t_ns);
        let from = self.lane(p.from, LaneKind::Outside);
        let to_lane = self.lane(to, LaneKind::Outside);
        let flow = self.flow(p.from, to);
        let mark = match (p.fate, p.reason) {
            (LinkFate::Dropped, reason) => {
                Mark::Lost(LossWhy::Link(reason.unwrap_or(DropReason::RandomLoss)))
            }
            (LinkFate::Forwarded, _) => Mark::Pending,
        };
        let i = self.push(Arrow {
            send: 0,
            recv: 0,
            t0: p.t_ns,
            t1: p.t_ns,
            from,
            to: to_lane,
            via: Some(via),
            mark,
            flow,
            decision: p.id.0,
        });
        self.by_decision.insert(p.id.0, i);
        true
    }

    /// A link sent on a datagram: kernel drops at its receiver are drawn when it really
    /// left, and a datagram only the link saw gets its end. Returns whether anything
    /// drawn changed.
    fn link_sent(&mut self, link: &LinkId, dir: LinkDir, d: &socklab_protocol::Departure) -> bool {
        let key = (link.clone(), dir, d.seq);
        let Some(waiting) = self.in_link.get_mut(&key) else {
            return false;
        };
        let decision = waiting.0;
        waiting.1 = waiting.1.saturating_sub(1);
        let first = !waiting.2;
        waiting.2 = true;
        if waiting.1 == 0 {
            self.in_link.remove(&key);
        }
        if let Ok(at) = self
            .departures
            .binary_search_by_key(&decision, |&(id, _)| id)
            && first
        {
            self.departures[at].1 = d.t_ns;
        }
        let Some(&i) = self.by_decision.get(&decision) else {
            return false;
        };
        let arrow = self.arrows[i as usize];
        if !first {
            // The second copy of a duplicated datagram to leave.
            self.push(Arrow {
                t1: d.t_ns.max(arrow.t0),
                mark: Mark::Duplicate,
                ..arrow
            });
            return true;
        }
        let lane = arrow.via.unwrap_or(arrow.to);
        let max = self
            .link_sent_max
            .entry((lane, dir, arrow.flow))
            .or_insert(d.seq);
        let mark = if *max > d.seq {
            Mark::Reordered(*max - d.seq)
        } else {
            *max = d.seq;
            Mark::Delivered
        };
        let a = &mut self.arrows[i as usize];
        a.t1 = d.t_ns.max(a.t0);
        a.mark = mark;
        self.counts[category(Mark::Pending)] -= 1;
        self.counts[category(mark)] += 1;
        self.latest_t = self.latest_t.max(d.t_ns);
        true
    }

    /// A link end as the timeline draws it: the address, and the lane of the link
    /// crossed.
    fn via(&self, end: End<'_>) -> (Endpoint, Option<u16>) {
        let lane = end.via.and_then(|l| self.link_lanes.get(l).copied());
        (end.addr, lane)
    }

    /// An arrow for something a TCP connection did (`id` is its event) from `from` to
    /// `to` at `t`.
    fn tcp_arrow(&mut self, id: u64, t: u64, from: SocketAddr, to: SocketAddr, mark: Mark) {
        let (kind_from, kind_to) = (self.kind_of(from), self.kind_of(to));
        let from_lane = self.lane(from, kind_from);
        let to_lane = self.lane(to, kind_to);
        let flow = self.flow(from, to);
        let i = self.push(Arrow {
            send: id,
            recv: id,
            t0: t,
            t1: t,
            from: from_lane,
            to: to_lane,
            via: None,
            mark,
            flow,
            decision: 0,
        });
        self.by_send.insert(id, i);
    }

    /// A TCP write starts an arrow; a read ends the arrows of the writes whose last
    /// byte it returned. A read from outside the lab draws its own arrow.
    fn stream(&mut self, s: &socklab_protocol::Stream) {
        let id = s.id.0;
        let end = s.offset.saturating_add(s.len as u64);
        match s.dir {
            Direction::Out => {
                let kind = self.kind_of(s.peer);
                let to_lab = kind == LaneKind::Lab;
                let from = self.lane(s.local, LaneKind::Lab);
                let to = self.lane(s.peer, kind);
                let flow = self.flow(s.local, s.peer);
                let i = self.push(Arrow {
                    send: id,
                    recv: 0,
                    t0: s.t_ns,
                    t1: s.t_ns,
                    from,
                    to,
                    via: None,
                    mark: Mark::Pending,
                    flow,
                    decision: 0,
                });
                self.by_send.insert(id, i);
                if to_lab {
                    if self.unread_count >= ARROWS_KEPT {
                        self.unread.clear();
                        self.unread_count = 0;
                    }
                    self.unread_count += 1;
                    self.unread
                        .entry((s.local, s.peer))
                        .or_default()
                        .push_back((end, id));
                }
            }
            Direction::In => {
                let Some(queue) = self.unread.get_mut(&(s.peer, s.local)) else {
                    // From outside the lab: drawn at once, as an incoming datagram is.
                    let from = self.lane(s.peer, LaneKind::Outside);
                    let to = self.lane(s.local, LaneKind::Lab);
                    let flow = self.flow(s.peer, s.local);
                    let i = self.push(Arrow {
                        send: 0,
                        recv: id,
                        t0: s.t_ns,
                        t1: s.t_ns,
                        from,
                        to,
                        via: None,
                        mark: Mark::Bytes,
                        flow,
                        decision: 0,
                    });
                    self.by_recv.insert(id, i);
                    return;
                };
                let mut done = Vec::new();
                while queue
                    .front()
                    .is_some_and(|&(write_end, _)| write_end <= end)
                {
                    done.extend(queue.pop_front().map(|(_, write)| write));
                }
                self.unread_count -= done.len();
                for write in done {
                    let Some(&i) = self.by_send.get(&write) else {
                        continue;
                    };
                    let before = category(self.arrows[i as usize].mark);
                    let a = &mut self.arrows[i as usize];
                    a.t1 = s.t_ns.max(a.t0);
                    a.recv = id;
                    a.mark = Mark::Bytes;
                    self.counts[before] -= 1;
                    self.counts[category(Mark::Bytes)] += 1;
                    self.by_recv.insert(id, i);
                }
            }
        }
    }

    fn sent(&mut self, id: u64, t: u64, local: &Endpoint, peer: &Endpoint) {
        let (dst, via) = self.via(self.routes.destination(peer));
        let from = self.lane(local.clone(), LaneKind::Lab);
        let kind = self.kind_of(dst.clone());
        let to = self.lane(dst.clone(), kind);
        let flow = self.flow(local.clone(), dst);
        let i = self.push(Arrow {
            send: id,
            recv: 0,
            t0: t,
            t1: t,
            from,
            to,
            via,
            mark: Mark::Pending,
            flow,
            decision: 0,
        });
        self.by_send.insert(id, i);
    }

    fn received(&mut self, id: u64, t: u64, local: &Endpoint, peer: &Endpoint) {
        self.recv_times.insert(id, t);
        let (src, via) = self.via(self.routes.source(peer));
        if self.lab_labels.contains_key(&src) {
            return; // a lab-to-lab datagram: its send's arrow gets its fate
        }
        // From outside: drawn at once; a `reply` fate may later say what it answered.
        let from = self.lane(src.clone(), LaneKind::Outside);
        let to = self.lane(local.clone(), LaneKind::Lab);
        let flow = self.flow(src, local.clone());
        let i = self.push(Arrow {
            send: 0,
            recv: id,
            t0: t,
            t1: t,
            from,
            to,
            via,
            mark: Mark::Incoming,
            flow,
            decision: 0,
        });
        self.by_recv.insert(id, i);
    }

    fn fate(&mut self, f: &Fate) {
        let Some(&i) = self.by_send.get(&f.send.0) else {
            return;
        };
        let before = category(self.arrows[i as usize].mark);
        let reply_before = f
            .recv
            .filter(|_| f.fate == FateKind::Reply)
            .and_then(|r| self.by_recv.get(&r.0))
            .map(|&r| (r, category(self.arrows[r as usize].mark)));
        self.apply_fate(i, f);
        self.counts[before] -= 1;
        self.counts[category(self.arrows[i as usize].mark)] += 1;
        if let Some((r, was)) = reply_before {
            self.counts[was] -= 1;
            self.counts[category(self.arrows[r as usize].mark)] += 1;
        }
    }

    fn apply_fate(&mut self, i: u32, f: &Fate) {
        let arrow = self.arrows[i as usize];
        let recv = f.recv.map_or(0, |r| r.0);
        if let Some(decision) = f.decision {
            self.arrows[i as usize].decision = decision.0;
        }
        match f.fate {
            FateKind::Delivered => {
                if recv != 0 {
                    // Selecting the receive finds its arrow too.
                    self.by_recv.insert(recv, i);
                }
                let a = &mut self.arrows[i as usize];
                a.recv = recv;
                a.t1 = a.t0 + f.latency_ns.unwrap_or(0);
                a.mark = match (f.late, f.reordered_by) {
                    (true, _) => Mark::Late,
                    (false, Some(n)) => Mark::Reordered(n),
                    (false, None) => Mark::Delivered,
                };
            }
            FateKind::Duplicate => {
                let t1 = self.recv_times.get(&recv).copied().unwrap_or(f.t_ns);
                let copy = self.push(Arrow {
                    recv,
                    t1,
                    mark: Mark::Duplicate,
                    ..arrow
                });
                if recv != 0 {
                    self.by_recv.insert(recv, copy);
                }
            }
            FateKind::Lost => {
                let why = LossWhy::of(f.cause, f.reason);
                // A kernel drop (a full buffer, or nobody bound there) happened when the
                // datagram reached the receiver: when the link let it go, or at once on
                // a direct send over loopback. The loss timeout is only when the
                // analysis gave up waiting.
                let t1 = match why {
                    LossWhy::Kernel
                    | LossWhy::NoListener
                    | LossWhy::Refused
                    | LossWhy::Unreachable => f
                        .decision
                        .and_then(|d| self.departure(d.0))
                        .unwrap_or(arrow.t0),
                    LossWhy::Link(_) | LossWhy::Timeout => f.t_ns,
                };
                let a = &mut self.arrows[i as usize];
                a.t1 = t1.max(a.t0);
                a.mark = Mark::Lost(why);
            }
            FateKind::Reply => {
                let rtt = f.latency_ns.unwrap_or(0);
                let turn = arrow.t0 + rtt / 2;
                let a = &mut self.arrows[i as usize];
                a.t1 = turn;
                a.mark = Mark::Request(if f.by_field {
                    Pairing::Field
                } else if f.by_order {
                    Pairing::Order
                } else {
                    Pairing::Bytes
                });
                a.recv = recv;
                if let Some(&r) = self.by_recv.get(&recv) {
                    let reply = &mut self.arrows[r as usize];
                    reply.t0 = turn;
                    reply.send = f.send.0;
                    reply.mark = Mark::Reply;
                }
            }
            FateKind::Unanswered => {
                let why = LossWhy::of(f.cause, f.reason);
                // A request to a port nobody is bound to ended on arrival.
                let t1 = match why {
                    LossWhy::NoListener | LossWhy::Refused | LossWhy::Unreachable => f
                        .decision
                        .and_then(|d| self.departure(d.0))
                        .unwrap_or(arrow.t0),
                    LossWhy::Link(_) | LossWhy::Kernel | LossWhy::Timeout => f.t_ns,
                };
                let a = &mut self.arrows[i as usize];
                a.t1 = t1.max(a.t0);
                a.mark = Mark::Unanswered(why);
            }
            FateKind::Untracked => self.arrows[i as usize].mark = Mark::Untracked,
        }
    }

    /// When the datagram a link decided on in event `decision` was due to leave it.
    fn departure(&self, decision: u64) -> Option<u64> {
        let at = self
            .departures
            .binary_search_by_key(&decision, |&(id, _)| id)
            .ok()?;
        Some(self.departures[at].1)
    }

    /// The arrow nearest to the point (lane position x, time t), within `max_dist`
    /// (both measured by `dist`, which maps an arrow to its distance from the point).
    pub fn nearest(
        &self,
        filter: &Filter,
        t_from: u64,
        t_to: u64,
        dist: impl Fn(&Arrow) -> f64,
        max_dist: f64,
    ) -> Option<usize> {
        self.visible(filter, t_from, t_to)
            .map(|(i, a)| (i, dist(a)))
            .filter(|(_, d)| *d <= max_dist)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// The arrows that pass the filter and touch the time window.
    pub fn visible<'a>(
        &'a self,
        filter: &'a Filter,
        t_from: u64,
        t_to: u64,
    ) -> impl Iterator<Item = (usize, &'a Arrow)> + 'a {
        self.arrows
            .iter()
            .enumerate()
            .filter(move |(_, a)| a.t0 <= t_to && a.t1.max(a.t0) >= t_from && self.shows(filter, a))
    }

    /// Which lanes are drawn under `filter`.
    pub fn lanes_shown(&self, filter: &Filter) -> Vec<bool> {
        self.lanes
            .iter()
            .map(|l| !((filter.hide_gone && l.gone) || (filter.hide_idle && l.arrows == 0)))
            .collect()
    }

    /// From the start of the first arrow shown to the end of the last: the whole run,
    /// as far as the page keeps it, with the time where the server's counts stand in
    /// for arrows (None: no arrow shows, nothing was thinned).
    pub fn span(&self, filter: &Filter) -> Option<(u64, u64)> {
        let arrows = self
            .arrows
            .iter()
            .filter(|a| self.shows(filter, a))
            .map(|a| (a.t0, a.t1.max(a.t0)));
        arrows
            .chain(self.scale.thinned.iter().copied())
            .fold(None, |span, (t0, t1)| {
                Some(span.map_or((t0, t1), |(from, to): (u64, u64)| {
                    (from.min(t0), to.max(t1))
                }))
            })
    }

    /// The lost datagram shown next after the point (`t`, and the arrow at `at`, if
    /// one is selected there) going forward in time, or before it going back: its
    /// arrow's index. Arrows go in (start time, index) order, so stepping from one loss
    /// reaches the next even at the same time; with no arrow selected, a loss at `t`
    /// itself is the next one forward.
    pub fn next_loss(
        &self,
        filter: &Filter,
        t: u64,
        at: Option<usize>,
        forward: bool,
    ) -> Option<usize> {
        let lost = self
            .arrows
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_lost() && self.shows(filter, a))
            .map(|(i, a)| (a.t0, i));
        if forward {
            let from = (t, at.map_or(0, |i| i.saturating_add(1)));
            lost.filter(|k| *k >= from).min().map(|(_, i)| i)
        } else {
            let from = (t, at.unwrap_or(usize::MAX));
            lost.filter(|k| *k < from).max().map(|(_, i)| i)
        }
    }

    /// Whether an arrow is drawn under `filter`: its fate passes, and no lane it
    /// touches is hidden.
    pub fn shows(&self, filter: &Filter, a: &Arrow) -> bool {
        let gone = |lane: u16| {
            self.lanes
                .get(lane as usize)
                .is_some_and(|l| l.gone && filter.hide_gone)
        };
        filter.shows(a) && !gone(a.from) && !gone(a.to) && !a.via.is_some_and(gone)
    }
}

mod figures;
pub mod scale;
pub use figures::{RangeFigures, Stretch};

#[cfg(test)]
mod tests;

/// An endpoint in few characters where space is short: an IP address whole, a Unix
/// path by its file name (`unix:…/alice`); the socket list shows the whole name.
pub fn compact(addr: &Endpoint) -> String {
    match addr.unix_name() {
        Some(path) if path.starts_with('/') => {
            format!("unix:…/{}", path.rsplit('/').next().unwrap_or(path))
        }
        _ => addr.to_string(),
    }
}

/// A lane's short name: an IP socket's port, a Unix socket's file name or abstract
/// name.
pub fn short_name(addr: &Endpoint) -> String {
    match addr {
        Endpoint::Ip(a) => format!(":{}", a.port()),
        Endpoint::Unix(name) if name.is_empty() => "unnamed".into(),
        Endpoint::Unix(name) => name.rsplit('/').next().unwrap_or(name).to_string(),
    }
}
