//! The page's state as a pure reducer: no DOM, no WebSocket, so tests reach it natively.
//!
//! Packets live in a shared, bounded store that actions mutate in place; the state
//! itself is cheap to clone (a handful of `Rc`s and counters), so a burst of datagrams
//! never copies the packet list.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;

use socklab_protocol::flow::FlowSummary;
use socklab_protocol::link::{DropReason, LinkCounters, LinkDir, LinkFate, LinkId, LinkSettings};
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{Direction, Event, GeneratorStarted, LinkPacket, SocketId};

use crate::timeline::Timeline;
use yew::Reducible;

/// How many packets the page keeps; older ones leave the list (the server still has them).
pub const PACKETS_KEPT: usize = 20_000;
/// How many general notices (errors without a form, gaps) the page shows at most.
const NOTICES_KEPT: usize = 5;

/// The state of the connection to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The first attempt is under way.
    Connecting,
    /// The server said hello.
    Connected,
    /// The connection dropped; this many attempts to get it back have failed so far.
    Reconnecting {
        /// Failed attempts since the connection dropped.
        attempts: u32,
    },
    /// Nothing answers at the server's address (it stopped?); still trying, less and
    /// less often.
    Unreachable {
        /// Failed attempts so far.
        attempts: u32,
    },
    /// The server answers but refuses this page, for a reason that trying again cannot
    /// mend (no token, a wrong one): the page waits for the person.
    Refused {
        /// The server's code: `no_token`, `wrong_token`, `foreign_origin`.
        code: String,
        /// Its words.
        message: String,
    },
    /// The server is full (sessions or viewers); the page tries again now and then.
    Busy {
        /// The server's words.
        message: String,
    },
}

impl Connection {
    /// Whether the person must act (give the launch token) before the page can connect.
    pub fn needs_token(&self) -> bool {
        matches!(self, Connection::Refused { code, .. } if code == "no_token" || code == "wrong_token")
    }
}

/// The launch token in what a person pastes: the URL socklab printed (`…?token=T`) or
/// the token alone.
pub fn token_from(pasted: &str) -> Option<String> {
    let pasted = pasted.trim();
    let token = match pasted.find("token=") {
        Some(at) => pasted[at + "token=".len()..]
            .split(['&', '#', ' '])
            .next()
            .unwrap_or_default(),
        None if pasted.contains("://") || pasted.contains('/') => "",
        None => pasted,
    };
    (!token.is_empty()).then(|| token.to_string())
}

/// Which part of the page sent a command, so its error shows next to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The bind form.
    Bind,
    /// The send form.
    Send,
    /// A socket's row (its close button).
    Socket(SocketId),
    /// The create-link form.
    CreateLink,
    /// A link's card (its settings and delete button).
    Link(LinkId),
    /// The traffic generator's form.
    Generate,
    /// The flow analysis settings.
    Analysis,
}

/// A bound socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    /// Its id.
    pub id: SocketId,
    /// Its real local address.
    pub local: SocketAddr,
    /// The receive buffer the kernel granted, bytes.
    pub recv_buffer_bytes: Option<u64>,
    /// Datagrams the kernel dropped at it (receive buffer full), so far.
    pub kernel_drops: u64,
}

/// A link and its latest counters.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkInfo {
    /// Its id.
    pub id: LinkId,
    /// Where clients send to.
    pub listen: SocketAddr,
    /// The address it sends to the target from.
    pub upstream: SocketAddr,
    /// Where it forwards to.
    pub target: SocketAddr,
    /// The settings in force.
    pub settings: LinkSettings,
    /// Client → target counters.
    pub c2t: LinkCounters,
    /// Target → client counters.
    pub t2c: LinkCounters,
    /// Where the target's replies go: the last address that sent to `listen`.
    pub client: Option<SocketAddr>,
}

/// One row of the packet list: a datagram a lab socket sent or received, or a link's
/// decision on a datagram crossing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The event's id.
    pub id: u64,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The bytes (as they arrived, for a link decision).
    pub payload: Vec<u8>,
    /// What happened.
    pub what: What,
}

/// What a packet row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A lab socket sent or received it.
    Socket {
        /// The socket.
        socket: SocketId,
        /// Sent or received.
        dir: Direction,
        /// The socket's address.
        local: SocketAddr,
        /// The other end.
        peer: SocketAddr,
    },
    /// A link decided its fate.
    Link(LinkDecision),
    /// Not a datagram: the kernel dropped datagrams addressed to a lab socket (its
    /// receive buffer was full), counted when the socket next received one.
    KernelDrops {
        /// The socket.
        socket: SocketId,
        /// Its address, when the socket is known.
        local: Option<SocketAddr>,
        /// How many since the previous report.
        dropped: u64,
        /// How many since the socket was bound.
        total: u64,
    },
}

/// A link's decision, as shown in the list and the inspector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDecision {
    /// The link.
    pub link: LinkId,
    /// Which way.
    pub dir: LinkDir,
    /// Its number in that direction.
    pub seq: u64,
    /// Sender.
    pub from: SocketAddr,
    /// Destination, if known.
    pub to: Option<SocketAddr>,
    /// Forwarded or dropped.
    pub fate: LinkFate,
    /// Why it was dropped.
    pub reason: Option<DropReason>,
    /// Planned time in the link, ns.
    pub delay_ns: Option<u64>,
    /// Of that, queued at the bottleneck, ns.
    pub queue_ns: Option<u64>,
    /// Sent twice.
    pub duplicated: bool,
    /// Corrupted byte offset.
    pub corrupted_at: Option<usize>,
    /// Truncated length.
    pub truncated_to: Option<usize>,
    /// Held back for this many overtakers.
    pub held_for: Option<u32>,
    /// What the OS said when the link could not send it on.
    pub error: Option<String>,
}

impl LinkDecision {
    fn from_event(p: LinkPacket) -> (Self, Vec<u8>) {
        let payload = decode_base64(&p.payload_b64).unwrap_or_default();
        (
            LinkDecision {
                link: p.link,
                dir: p.dir,
                seq: p.seq,
                from: p.from,
                to: p.to,
                fate: p.fate,
                reason: p.reason,
                delay_ns: p.delay_ns,
                queue_ns: p.queue_ns,
                duplicated: p.duplicated,
                corrupted_at: p.corrupted_at,
                truncated_to: p.truncated_to,
                held_for: p.held_for,
                error: p.error,
            },
            payload,
        )
    }

    /// The decision in a few words: "dropped: random loss", "+20.1 ms, duplicated".
    pub fn summary(&self) -> String {
        if self.fate == LinkFate::Dropped {
            let reason = self.reason.map(DropReason::describe).unwrap_or("dropped");
            return match &self.error {
                Some(error) => format!("dropped: {reason}: {error}"),
                None => format!("dropped: {reason}"),
            };
        }
        let mut parts = vec![format!(
            "+{:.1} ms",
            self.delay_ns.unwrap_or(0) as f64 / 1e6
        )];
        if let Some(q) = self.queue_ns {
            parts.push(format!("{:.1} ms queued", q as f64 / 1e6));
        }
        if let Some(n) = self.held_for {
            parts.push(format!("held back for {n}"));
        }
        if self.duplicated {
            parts.push("duplicated".into());
        }
        if let Some(at) = self.corrupted_at {
            parts.push(format!("byte {at} corrupted"));
        }
        if let Some(len) = self.truncated_to {
            parts.push(format!("truncated to {len}"));
        }
        parts.join(", ")
    }
}

/// The bounded packet list.
#[derive(Debug, Default)]
pub struct PacketStore {
    packets: VecDeque<Packet>,
    /// Packets that left the list to keep it bounded.
    pub evicted: u64,
}

impl PacketStore {
    fn push(&mut self, packet: Packet) {
        if self.packets.len() == PACKETS_KEPT {
            self.packets.pop_front();
            self.evicted += 1;
        }
        self.packets.push_back(packet);
    }

    /// How many packets the list holds.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The newest `n` packets, oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Packet> {
        self.packets.range(self.packets.len().saturating_sub(n)..)
    }

    /// The packet with event id `id`.
    pub fn get(&self, id: u64) -> Option<&Packet> {
        // Ids increase but are not consecutive (binds and closes take ids too).
        let index = self.packets.binary_search_by_key(&id, |p| p.id).ok()?;
        self.packets.get(index)
    }

    fn clear(&mut self) {
        self.packets.clear();
        self.evicted = 0;
    }
}

/// The whole page state.
#[derive(Debug, Clone)]
pub struct State {
    /// The connection to the server.
    pub connection: Connection,
    /// Why the session this page shows is known to be over (its sockets, links and
    /// generators are gone), until a session says hello.
    pub ended: Option<String>,
    /// The session id from the server's hello.
    pub session: Option<String>,
    /// The server's name and version.
    pub server: Option<String>,
    /// Bound sockets, in the order they were bound.
    pub sockets: Rc<Vec<SocketInfo>>,
    /// Links, in the order they were created.
    pub links: Rc<Vec<LinkInfo>>,
    /// Every datagram (bounded), shared and mutated in place.
    pub packets: Rc<RefCell<PacketStore>>,
    /// Bumped whenever `packets` changes, so views know to redraw.
    pub packets_version: u64,
    /// The selected packet's event id.
    pub selected: Option<u64>,
    /// The timeline's lanes and arrows, shared and mutated in place.
    pub timeline: Rc<RefCell<Timeline>>,
    /// Bumped whenever `timeline` changes.
    pub timeline_version: u64,
    /// The latest figures of every flow.
    pub flows: Rc<Vec<FlowSummary>>,
    /// From the latest figures: flows retired to keep the analysis' table bounded, and
    /// datagrams it stopped following.
    pub flows_dropped: (u64, u64),
    /// Running generators.
    pub generators: Rc<Vec<GeneratorStarted>>,
    /// The flow analysis' loss timeout, once the server has said it.
    pub loss_timeout_ms: Option<u64>,
    /// Which part of the page sent each unanswered command.
    pub pending: Rc<HashMap<i64, Origin>>,
    /// The latest refusal for each part of the page.
    pub errors: Rc<HashMap<Origin, String>>,
    /// Messages that belong to no form: refusals without a `req`, missed events.
    pub notices: Rc<Vec<String>>,
}

/// States are equal when a view would draw them the same. The shared collections compare
/// by identity (every change replaces or versions them), so comparing is cheap.
impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.connection == other.connection
            && self.ended == other.ended
            && self.session == other.session
            && self.server == other.server
            && Rc::ptr_eq(&self.sockets, &other.sockets)
            && Rc::ptr_eq(&self.links, &other.links)
            && Rc::ptr_eq(&self.packets, &other.packets)
            && self.packets_version == other.packets_version
            && self.selected == other.selected
            && Rc::ptr_eq(&self.timeline, &other.timeline)
            && self.timeline_version == other.timeline_version
            && Rc::ptr_eq(&self.flows, &other.flows)
            && self.flows_dropped == other.flows_dropped
            && Rc::ptr_eq(&self.generators, &other.generators)
            && self.loss_timeout_ms == other.loss_timeout_ms
            && Rc::ptr_eq(&self.pending, &other.pending)
            && Rc::ptr_eq(&self.errors, &other.errors)
            && Rc::ptr_eq(&self.notices, &other.notices)
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            connection: Connection::Connecting,
            ended: None,
            session: None,
            server: None,
            sockets: Rc::default(),
            links: Rc::default(),
            packets: Rc::default(),
            packets_version: 0,
            selected: None,
            timeline: Rc::default(),
            timeline_version: 0,
            flows: Rc::default(),
            flows_dropped: (0, 0),
            generators: Rc::default(),
            loss_timeout_ms: None,
            pending: Rc::default(),
            errors: Rc::default(),
            notices: Rc::default(),
        }
    }
}

/// Everything that changes the state.
#[derive(Debug, Clone)]
pub enum Action {
    /// An attempt to connect failed or the connection dropped.
    Disconnected,
    /// After a failed attempt: nothing answered at the server's address.
    Unreachable,
    /// The person gave a token; the page is trying it.
    Retrying,
    /// After a failed attempt: the server refused the page (its code and words).
    Refused {
        /// The server's code.
        code: String,
        /// Its words.
        message: String,
    },
    /// A frame from the server (possibly a batch), boxed: events are large.
    Received(Box<Event>),
    /// A command was sent with this `req` from this part of the page.
    Sent {
        /// The command's `req`.
        req: i64,
        /// Where it came from.
        origin: Origin,
    },
    /// A part of the page found a problem before sending (or the person fixed it).
    LocalError {
        /// Which part.
        origin: Origin,
        /// The problem, or `None` to clear it.
        message: Option<String>,
    },
    /// The person selected a packet (or cleared the selection).
    Select(Option<u64>),
    /// The person cleared the packet list.
    ClearPackets,
    /// The person cleared the timeline's arrows.
    ClearTimeline,
    /// The person dismissed the notices.
    DismissNotices,
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        next.apply(action);
        Rc::new(next)
    }
}

impl State {
    /// Applies one action in place.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Disconnected => {
                self.connection = match &self.connection {
                    Connection::Reconnecting { attempts } => Connection::Reconnecting {
                        attempts: attempts + 1,
                    },
                    // What the last check found stands until a check finds otherwise.
                    other @ (Connection::Unreachable { .. }
                    | Connection::Refused { .. }
                    | Connection::Busy { .. }) => other.clone(),
                    Connection::Connected | Connection::Connecting => {
                        Connection::Reconnecting { attempts: 0 }
                    }
                };
                Rc::make_mut(&mut self.pending).clear();
            }
            Action::Retrying => self.connection = Connection::Connecting,
            Action::Unreachable => {
                self.connection = match &self.connection {
                    Connection::Unreachable { attempts } => Connection::Unreachable {
                        attempts: attempts + 1,
                    },
                    _ => Connection::Unreachable { attempts: 1 },
                };
            }
            Action::Refused { code, message } => {
                // A token from another run of the server: that server, and every
                // session of it, is gone.
                if code == "wrong_token" && self.session.is_some() {
                    self.ended = Some(
                        "socklab was restarted (its token changed): this session ended with it, and its sockets, links and generators are gone".into(),
                    );
                    self.generators = Rc::default();
                }
                self.connection = if code.starts_with("too_many") {
                    Connection::Busy { message }
                } else {
                    Connection::Refused { code, message }
                };
            }
            Action::Received(event) => {
                for event in event.flatten() {
                    self.receive(event);
                }
            }
            Action::Sent { req, origin } => {
                Rc::make_mut(&mut self.errors).remove(&origin);
                Rc::make_mut(&mut self.pending).insert(req, origin);
            }
            Action::LocalError { origin, message } => {
                let errors = Rc::make_mut(&mut self.errors);
                match message {
                    Some(m) => errors.insert(origin, m),
                    None => errors.remove(&origin),
                };
            }
            Action::Select(id) => self.selected = id,
            Action::ClearPackets => {
                self.packets.borrow_mut().clear();
                self.packets_version += 1;
                self.selected = None;
            }
            Action::ClearTimeline => {
                self.timeline.borrow_mut().clear_arrows();
                self.timeline_version += 1;
            }
            Action::DismissNotices => self.notices = Rc::default(),
        }
    }

    fn receive(&mut self, event: Event) {
        if self.timeline.borrow_mut().apply(&event) {
            self.timeline_version += 1;
        }
        match event {
            Event::Hello(hello) => {
                let resumed = self.session.as_deref() == Some(hello.session.as_str());
                if !resumed && self.session.is_some() {
                    // A new session: the old one's sockets were closed with it.
                    self.sockets = Rc::default();
                    self.links = Rc::default();
                    self.generators = Rc::default();
                    self.flows = Rc::default();
                    self.flows_dropped = (0, 0);
                    self.timeline = Rc::default();
                    self.timeline_version += 1;
                    self.notice(
                        "reconnected with a new session; the previous session's sockets and links were closed"
                            .into(),
                    );
                }
                self.connection = Connection::Connected;
                self.ended = None;
                self.session = Some(hello.session.0);
                self.server = Some(hello.server);
            }
            Event::Bound(bound) => {
                self.settle(bound.req);
                let sockets = Rc::make_mut(&mut self.sockets);
                sockets.retain(|s| s.id != bound.socket);
                sockets.push(SocketInfo {
                    id: bound.socket,
                    local: bound.local,
                    recv_buffer_bytes: bound.recv_buffer_bytes,
                    kernel_drops: 0,
                });
            }
            Event::Closed(closed) => {
                self.settle(closed.req);
                Rc::make_mut(&mut self.errors).remove(&Origin::Socket(closed.socket.clone()));
                Rc::make_mut(&mut self.sockets).retain(|s| s.id != closed.socket);
            }
            Event::Datagram(d) => {
                self.settle(d.req);
                let payload = decode_base64(&d.payload_b64).unwrap_or_default();
                self.packets.borrow_mut().push(Packet {
                    id: d.id.0,
                    t_ns: d.t_ns,
                    payload,
                    what: What::Socket {
                        socket: d.socket,
                        dir: d.dir,
                        local: d.local,
                        peer: d.peer,
                    },
                });
                self.packets_version += 1;
            }
            Event::LinkPacket(p) => {
                let (id, t_ns) = (p.id.0, p.t_ns);
                let (decision, payload) = LinkDecision::from_event(p);
                self.packets.borrow_mut().push(Packet {
                    id,
                    t_ns,
                    payload,
                    what: What::Link(decision),
                });
                self.packets_version += 1;
            }
            Event::LinkCreated(created) => {
                self.settle(created.req);
                Rc::make_mut(&mut self.links).push(LinkInfo {
                    id: created.link,
                    listen: created.listen,
                    upstream: created.upstream,
                    target: created.target,
                    settings: created.settings,
                    c2t: LinkCounters::default(),
                    t2c: LinkCounters::default(),
                    client: None,
                });
            }
            Event::LinkClient(change) => {
                if let Some(link) = Rc::make_mut(&mut self.links)
                    .iter_mut()
                    .find(|l| l.id == change.link)
                {
                    link.client = Some(change.client);
                }
                if let Some(previous) = change.previous {
                    self.notice(format!(
                        "link {}: {} sent to it, so the target's replies now go there instead of to {}",
                        change.link, change.client, previous
                    ));
                }
            }
            Event::LinkUpdated(updated) => {
                self.settle(updated.req);
                if let Some(link) = Rc::make_mut(&mut self.links)
                    .iter_mut()
                    .find(|l| l.id == updated.link)
                {
                    link.settings = updated.settings;
                }
            }
            Event::LinkDeleted(deleted) => {
                self.settle(deleted.req);
                Rc::make_mut(&mut self.errors).remove(&Origin::Link(deleted.link.clone()));
                Rc::make_mut(&mut self.links).retain(|l| l.id != deleted.link);
            }
            Event::LinkStats(stats) => {
                if let Some(link) = Rc::make_mut(&mut self.links)
                    .iter_mut()
                    .find(|l| l.id == stats.link)
                {
                    link.c2t = stats.c2t;
                    link.t2c = stats.t2c;
                }
            }
            Event::Error(error) => {
                let origin = error
                    .req
                    .and_then(|req| Rc::make_mut(&mut self.pending).remove(&req));
                let text = format!("{} ({})", error.message, error.code.as_str());
                match origin {
                    Some(origin) => {
                        Rc::make_mut(&mut self.errors).insert(origin, text);
                    }
                    None => self.notice(text),
                }
            }
            Event::Gap(gap) => self.notice(format!(
                "{} events (ids {} to {}) were dropped by the server's log before this page received them",
                gap.count, gap.from.0, gap.to.0
            )),
            Event::KernelDrops(drops) => {
                let socket = Rc::make_mut(&mut self.sockets)
                    .iter_mut()
                    .find(|s| s.id == drops.socket);
                let local = socket.map(|s| {
                    s.kernel_drops = drops.total;
                    s.local
                });
                self.packets.borrow_mut().push(Packet {
                    id: drops.id.0,
                    t_ns: drops.t_ns,
                    payload: Vec::new(),
                    what: What::KernelDrops {
                        socket: drops.socket,
                        local,
                        dropped: drops.dropped,
                        total: drops.total,
                    },
                });
                self.packets_version += 1;
            }
            Event::Fate(_) => {}
            Event::FlowStats(stats) => {
                self.flows_dropped = (stats.retired_flows, stats.untracked);
                self.flows = Rc::new(stats.flows);
            }
            Event::GeneratorStarted(started) => {
                self.settle(started.req);
                Rc::make_mut(&mut self.generators).push(started);
            }
            Event::GeneratorDone(done) => {
                self.settle(done.req);
                Rc::make_mut(&mut self.generators).retain(|g| g.generator != done.generator);
                if let Some(error) = done.error {
                    self.notice(format!(
                        "generator {} stopped after {} datagrams: {error}",
                        done.generator, done.sent
                    ));
                }
            }
            Event::AnalysisConfig(config) => {
                self.settle(config.req);
                self.loss_timeout_ms = Some(config.loss_timeout_ms);
            }
            Event::Batch { events } => {
                for event in events {
                    self.receive(event);
                }
            }
        }
    }

    /// A command succeeded: its form's error (if any) is stale now.
    fn settle(&mut self, req: Option<i64>) {
        if let Some(origin) = req.and_then(|r| Rc::make_mut(&mut self.pending).remove(&r)) {
            Rc::make_mut(&mut self.errors).remove(&origin);
        }
    }

    fn notice(&mut self, text: String) {
        let notices = Rc::make_mut(&mut self.notices);
        notices.push(text);
        let excess = notices.len().saturating_sub(NOTICES_KEPT);
        notices.drain(..excess);
    }

    /// The latest refusal shown for a part of the page.
    pub fn error(&self, origin: &Origin) -> Option<&str> {
        self.errors.get(origin).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use socklab_protocol::{
        Bound, Closed, Datagram, ErrorCode, ErrorEvent, EventId, Gap, Hello, Proto,
    };

    use super::*;

    fn hello(session: &str) -> Event {
        Event::Hello(Hello {
            protocol: 1,
            session: socklab_protocol::SessionId::new(session),
            server: "socklab test".into(),
        })
    }

    fn bound(id: u64, socket: &str, port: u16, req: Option<i64>) -> Event {
        Event::Bound(Bound {
            id: EventId(id),
            socket: SocketId::new(socket),
            proto: Proto::Udp,
            local: SocketAddr::from(([127, 0, 0, 1], port)),
            recv_buffer_bytes: Some(425_984),
            t_ns: 0,
            req,
        })
    }

    fn datagram(id: u64, dir: Direction, text: &str) -> Event {
        Event::Datagram(Datagram {
            id: EventId(id),
            socket: SocketId::new("s1"),
            dir,
            local: "127.0.0.1:1000".parse().unwrap(),
            peer: "127.0.0.1:2000".parse().unwrap(),
            len: text.len(),
            payload_b64: socklab_protocol::payload::encode_base64(text.as_bytes()),
            t_ns: id * 1000,
            req: None,
        })
    }

    #[test]
    fn tokens_are_found_in_what_people_paste() {
        let cases = [
            ("http://127.0.0.1:7070/?token=abc123", Some("abc123")),
            ("  http://127.0.0.1:7070/?token=abc123&x=1 ", Some("abc123")),
            (
                "socklab is running: open http://127.0.0.1:7070/?token=ff00 in a browser",
                Some("ff00"),
            ),
            ("abc123", Some("abc123")),
            ("http://127.0.0.1:7070/", None),
            ("", None),
        ];
        for (pasted, token) in cases {
            assert_eq!(token_from(pasted).as_deref(), token, "{pasted}");
        }
    }

    #[test]
    fn a_wrong_token_after_a_session_means_the_server_restarted() {
        let mut state = State::default();
        state.apply(Action::Received(Box::new(hello("a"))));
        state.apply(Action::Disconnected);
        state.apply(Action::Refused {
            code: "wrong_token".into(),
            message: "wrong token".into(),
        });
        assert!(state.connection.needs_token());
        assert!(state.ended.as_deref().unwrap().contains("restarted"));
        // Another failed attempt does not forget why.
        state.apply(Action::Disconnected);
        assert!(state.connection.needs_token());
        state.apply(Action::Received(Box::new(hello("b"))));
        assert_eq!(
            (state.connection, state.ended),
            (Connection::Connected, None)
        );
    }

    #[test]
    fn connection_states() {
        let mut state = State::default();
        assert_eq!(state.connection, Connection::Connecting);
        state.apply(Action::Received(Box::new(hello("a"))));
        assert_eq!(state.connection, Connection::Connected);
        state.apply(Action::Disconnected);
        state.apply(Action::Disconnected);
        assert_eq!(state.connection, Connection::Reconnecting { attempts: 1 });
        state.apply(Action::Received(Box::new(hello("a"))));
        assert_eq!(state.connection, Connection::Connected);
        assert!(state.notices.is_empty());
    }

    #[test]
    fn a_new_session_forgets_old_sockets() {
        let mut state = State::default();
        state.apply(Action::Received(Box::new(hello("a"))));
        state.apply(Action::Received(Box::new(bound(1, "s1", 4000, None))));
        state.apply(Action::Disconnected);
        state.apply(Action::Received(Box::new(hello("b"))));
        assert!(state.sockets.is_empty());
        assert_eq!(state.notices.len(), 1);
    }

    #[test]
    fn sockets_come_and_go() {
        let mut state = State::default();
        state.apply(Action::Received(Box::new(Event::Batch {
            events: vec![bound(1, "s1", 4000, None), bound(2, "s2", 4001, None)],
        })));
        let ids: Vec<&str> = state.sockets.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2"]);
        state.apply(Action::Received(Box::new(Event::Closed(Closed {
            id: EventId(3),
            socket: SocketId::new("s1"),
            t_ns: 0,
            req: None,
        }))));
        let ids: Vec<&str> = state.sockets.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s2"]);
    }

    #[test]
    fn kernel_drops_are_counted_on_their_socket() {
        let mut state = State::default();
        state.apply(Action::Received(Box::new(bound(1, "s1", 4000, None))));
        assert_eq!(state.sockets[0].recv_buffer_bytes, Some(425_984));
        for (id, dropped, total) in [(2, 12, 12), (3, 5, 17)] {
            state.apply(Action::Received(Box::new(Event::KernelDrops(
                socklab_protocol::KernelDrops {
                    id: EventId(id),
                    socket: SocketId::new("s1"),
                    dropped,
                    total,
                    t_ns: 0,
                },
            ))));
        }
        assert_eq!(state.sockets[0].kernel_drops, 17);
        // Each report is also a row of the packet list, in id order.
        let rows: Vec<(u64, u64)> = state
            .packets
            .borrow()
            .newest(10)
            .map(|p| match p.what {
                What::KernelDrops { dropped, total, .. } => (dropped, total),
                _ => panic!("only kernel drops were reported"),
            })
            .collect();
        assert_eq!(rows, [(12, 12), (5, 17)]);
    }

    #[test]
    fn errors_land_next_to_the_form_that_caused_them() {
        let mut state = State::default();
        state.apply(Action::Sent {
            req: 7,
            origin: Origin::Bind,
        });
        state.apply(Action::Received(Box::new(Event::Error(ErrorEvent {
            req: Some(7),
            code: ErrorCode::AddressInUse,
            message: "127.0.0.1:5000 is already in use".into(),
        }))));
        assert_eq!(
            state.error(&Origin::Bind),
            Some("127.0.0.1:5000 is already in use (address_in_use)")
        );
        // The next successful bind clears it.
        state.apply(Action::Sent {
            req: 8,
            origin: Origin::Bind,
        });
        assert_eq!(state.error(&Origin::Bind), None);
        // An error nobody asked for becomes a notice.
        state.apply(Action::Received(Box::new(Event::Error(ErrorEvent {
            req: None,
            code: ErrorCode::BadRequest,
            message: "bad".into(),
        }))));
        assert_eq!(*state.notices, vec!["bad (bad_request)".to_string()]);
    }

    #[test]
    fn packets_are_kept_in_order_and_bounded() {
        let mut state = State::default();
        let before = state.clone();
        state.apply(Action::Received(Box::new(datagram(
            5,
            Direction::Out,
            "hello",
        ))));
        state.apply(Action::Received(Box::new(datagram(
            6,
            Direction::In,
            "hello",
        ))));
        assert_eq!(state.packets_version, 2);
        // Cloning the state shares the store instead of copying it.
        assert!(Rc::ptr_eq(&before.packets, &state.packets));
        {
            let store = state.packets.borrow();
            let got: Vec<(u64, Direction, &[u8])> = store
                .newest(10)
                .map(|p| match &p.what {
                    What::Socket { dir, .. } => (p.id, *dir, p.payload.as_slice()),
                    What::Link(_) | What::KernelDrops { .. } => {
                        panic!("only datagrams were received")
                    }
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (5, Direction::Out, &b"hello"[..]),
                    (6, Direction::In, &b"hello"[..])
                ]
            );
            assert_eq!(store.get(6).map(|p| p.id), Some(6));
            assert_eq!(store.get(7).map(|p| p.id), None);
        }
        for id in 100..(100 + PACKETS_KEPT as u64) {
            state.apply(Action::Received(Box::new(datagram(id, Direction::In, "x"))));
        }
        let store = state.packets.borrow();
        assert_eq!(store.len(), PACKETS_KEPT);
        assert_eq!(store.evicted, 2);
    }

    #[test]
    fn links_and_their_decisions() {
        use socklab_protocol::{LinkCreated, LinkStats};
        let mut state = State::default();
        state.apply(Action::Received(Box::new(Event::LinkCreated(
            LinkCreated {
                id: EventId(1),
                link: LinkId::new("l1"),
                listen: "127.0.0.1:7000".parse().unwrap(),
                upstream: "127.0.0.1:7001".parse().unwrap(),
                target: "127.0.0.1:9000".parse().unwrap(),
                settings: LinkSettings::default(),
                t_ns: 0,
                req: None,
            },
        ))));
        assert_eq!(state.links.len(), 1);
        state.apply(Action::Received(Box::new(Event::LinkStats(LinkStats {
            id: EventId(2),
            link: LinkId::new("l1"),
            c2t: LinkCounters {
                arrived: 3,
                dropped_random: 1,
                ..LinkCounters::default()
            },
            t2c: LinkCounters::default(),
            t_ns: 0,
        }))));
        assert_eq!(state.links[0].c2t.arrived, 3);
        let packet = LinkPacket {
            id: EventId(3),
            link: LinkId::new("l1"),
            dir: LinkDir::C2t,
            seq: 0,
            from: "127.0.0.1:1".parse().unwrap(),
            to: Some("127.0.0.1:9000".parse().unwrap()),
            len: 2,
            payload_b64: "aGk=".into(),
            fate: LinkFate::Dropped,
            reason: Some(DropReason::RandomLoss),
            delay_ns: None,
            queue_ns: None,
            duplicated: false,
            corrupted_at: None,
            corrupt_mask: None,
            truncated_to: None,
            held_for: None,
            error: None,
            t_ns: 5,
        };
        state.apply(Action::Received(Box::new(Event::LinkPacket(
            packet.clone(),
        ))));
        state.apply(Action::Received(Box::new(Event::LinkPacket(LinkPacket {
            id: EventId(4),
            fate: LinkFate::Forwarded,
            reason: None,
            delay_ns: Some(20_100_000),
            duplicated: true,
            held_for: Some(2),
            ..packet
        }))));
        let store = state.packets.borrow();
        let summaries: Vec<String> = store
            .newest(2)
            .map(|p| match &p.what {
                What::Link(d) => d.summary(),
                What::Socket { .. } | What::KernelDrops { .. } => panic!("link rows"),
            })
            .collect();
        assert_eq!(
            summaries,
            [
                "dropped: random loss",
                "+20.1 ms, held back for 2, duplicated"
            ]
        );
        drop(store);
        state.apply(Action::Received(Box::new(Event::LinkDeleted(
            socklab_protocol::LinkDeleted {
                id: EventId(5),
                link: LinkId::new("l1"),
                t_ns: 0,
                req: None,
            },
        ))));
        assert!(state.links.is_empty());
    }

    #[test]
    fn gaps_are_announced() {
        let mut state = State::default();
        state.apply(Action::Received(Box::new(Event::Gap(Gap {
            from: EventId(3),
            to: EventId(9),
            count: 7,
        }))));
        assert!(state.notices[0].starts_with("7 events (ids 3 to 9)"));
    }
}
