//! The page's state: actions (what a person did, and every event the server sent) are
//! applied to it in place. No DOM, no WebSocket, so tests reach it natively.
//!
//! It is not a pure reducer: the packet list ([`packets::PacketStore`]) and the
//! timeline ([`crate::timeline::Timeline`]) are shared, bounded stores that actions
//! mutate in place, each with a version counter that says when it changed; the state
//! itself is cheap to clone (a handful of `Rc`s and counters), so a burst of datagrams
//! never copies either, and a view redraws when the version it drew changes.
//!
//! (Over 600 lines: one `match` gives every event its effect on the page's state, and
//! is read as one; the packet list has its own module.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;

use socklab_protocol::Endpoint;
use std::rc::Rc;

use socklab_protocol::flow::FlowSummary;
use socklab_protocol::link::{LinkCounters, LinkId, LinkSettings};
use socklab_protocol::{Event, GeneratorStarted, ShutdownHow, SocketId, StreamEndReason};

mod packets;
mod rows;

pub use packets::{LinkDecision, Packet, PacketStore, Payload, TcpWhat, What};
pub use rows::{FateKind, RowFilter, RowKind, fate_words, search_bytes};

use crate::timeline::Timeline;
use yew::Reducible;

/// How many packets the page keeps; older ones leave the list (the server still has them).
pub const PACKETS_KEPT: usize = 20_000;
/// How many runs the page lists; beyond it the oldest is forgotten.
pub const RUNS_KEPT: usize = 500;
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
    /// The create-TCP-link form.
    CreateTcpLink,
    /// A link's card (its settings and delete button).
    Link(LinkId),
    /// The traffic generator's form.
    Generate,
    /// The flow analysis settings.
    Analysis,
    /// The record button.
    Record,
    /// The runs' "new run" form.
    Run,
    /// The packet list (rows it fetches from the server itself).
    Packets,
}

/// Rows of a stretch of time that the packet list fetched from the server itself
/// (`window`): what the page was spared, or has forgotten, of any time of the session.
#[derive(Debug)]
pub struct ListWindow {
    /// Where the stretch asked for begins, ns.
    pub from_ns: u64,
    /// Whether the answer holds all of it (else it stops at the answer's limit, or the
    /// log had dropped part of it and no recording held it).
    pub complete: bool,
    /// Its datagrams and link decisions.
    pub rows: Rc<RefCell<PacketStore>>,
    /// Its arrows, for what became of each datagram.
    pub timeline: Rc<RefCell<Timeline>>,
}

/// A bound socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    /// Its id.
    pub id: SocketId,
    /// Its real local address (a Unix socket's full name).
    pub local: Endpoint,
    /// The receive buffer the kernel granted, bytes.
    pub recv_buffer_bytes: Option<u64>,
    /// How many bytes of each datagram it reads (None: all).
    pub recv_size: Option<u32>,
    /// The peer it is connected to (`connect`), if any.
    pub peer: Option<Endpoint>,
    /// UDP, TCP or Unix.
    pub proto: socklab_protocol::Proto,
    /// A TCP listener.
    pub listening: bool,
    /// The listener that accepted it (a TCP connection).
    pub listener: Option<SocketId>,
    /// A TCP socket's state beyond connected: "write half shut", "stream ended (FIN)".
    pub state: Option<String>,
    /// Not reading (`pause`): what arrives waits in the kernel's receive buffer.
    pub paused: bool,
    /// The multicast groups it joined, with the interface given.
    pub groups: Vec<(std::net::IpAddr, Option<String>)>,
    /// Bound with multicast: it may join groups.
    pub multicast: bool,
    /// Datagrams the kernel dropped at it (receive buffer full), so far.
    pub kernel_drops: u64,
}

impl SocketInfo {
    /// A socket just bound (or accepted), with nothing set beyond its id, address and
    /// kind.
    pub fn new(id: SocketId, local: Endpoint, proto: socklab_protocol::Proto) -> Self {
        SocketInfo {
            id,
            local,
            recv_buffer_bytes: None,
            recv_size: None,
            peer: None,
            proto,
            listening: false,
            listener: None,
            state: None,
            paused: false,
            groups: Vec::new(),
            multicast: false,
            kernel_drops: 0,
        }
    }
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
    /// Its counters over time, oldest first: at most [`LINK_HISTORY_KEPT`] samples.
    pub history: Rc<std::collections::VecDeque<LinkSample>>,
}

/// How many `link_stats` samples a link's history keeps (a minute at four a second).
pub const LINK_HISTORY_KEPT: usize = 240;

/// A link's counters at one moment, for its plots over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSample {
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// Datagrams sent on so far, client → target and target → client.
    pub forwarded: [u64; 2],
    /// Datagrams waiting at the bottleneck then, each way.
    pub queue_depth: [u64; 2],
}

/// Where to show an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Its row in the packet list.
    List,
    /// Its arrow on the timeline.
    Timeline,
}

/// The last request to show an event somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reveal {
    /// The event.
    pub id: u64,
    /// Where.
    pub place: Place,
    /// Which request this is (each one moves the view, even to the same event).
    pub asked: u64,
}

/// A recording that stopped, as the page last heard of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Its id in the store.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// How many events and datagrams it holds.
    pub events: u64,
    /// How many of them are datagrams.
    pub datagrams: u64,
    /// Why it stopped by itself (the store was full), if it did.
    pub reason: Option<String>,
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
    /// The TCP links: each one's creation event.
    pub tcp_links: Rc<Vec<socklab_protocol::TcpLinkCreated>>,
    /// Every datagram (bounded), shared and mutated in place.
    pub packets: Rc<RefCell<PacketStore>>,
    /// Bumped whenever `packets` changes, so views know to redraw.
    pub packets_version: u64,
    /// The datagrams and link decisions of the latest window fetched from the server
    /// (`window`), for the inspector of an arrow drawn from it.
    pub window_packets: Rc<RefCell<PacketStore>>,
    /// The rows the packet list fetched from the server itself, if it did.
    pub list_window: Option<Rc<ListWindow>>,
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
    /// The flow analysis' match field, as the server last said.
    pub match_field: Option<socklab_protocol::flow::MatchField>,
    /// Events the server's log dropped before this page received them, and in how many
    /// gaps.
    pub gaps: (u64, u64),
    /// Events about single datagrams left out of this page (by the server, or by the
    /// page itself) so that it kept up with a fast session (`thinned`), all together.
    pub thinned: u64,
    /// The session's recording, while one runs: its id in the store and its name.
    pub recording: Option<(i64, String)>,
    /// The last request to show an event in the list or on the timeline.
    pub reveal: Option<Reveal>,
    /// The session's runs, in order: (number, name, start ns).
    pub runs: Rc<Vec<(u32, String, u64)>>,
    /// Each run's figures as the server last counted them (every datagram it sent,
    /// whatever this page was sent), by run number; at most [`RUNS_KEPT`].
    pub run_flows: Rc<std::collections::BTreeMap<u32, socklab_protocol::flow::RunFlows>>,
    /// The last recording that stopped.
    pub recorded: Option<Recorded>,
    /// Which part of the page sent each unanswered command.
    pub pending: Rc<HashMap<i64, Origin>>,
    /// The latest refusal for each part of the page.
    pub errors: Rc<HashMap<Origin, Problem>>,
    /// Messages that belong to no form: refusals without a `req`, missed events.
    pub notices: Rc<Vec<String>>,
    /// Short names of the session's addresses (`s1`, `l1`), kept after a socket closes
    /// or a link goes so that older rows still read.
    pub names: Rc<HashMap<Endpoint, String>>,
    /// Programs outside the lab that lab sockets exchanged datagrams with, the most
    /// recent first (at most [`RECENT_PEERS`]).
    pub recent_peers: Rc<Vec<Endpoint>>,
}

/// A refusal shown next to the form that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What went wrong and what to do, in words.
    pub message: String,
    /// The server's stable error code, for those who script (the page itself found
    /// the problems without one).
    pub code: Option<&'static str>,
}

/// How many outside peers the page offers as destinations.
pub const RECENT_PEERS: usize = 4;

/// A place a datagram can be sent to, as the forms offer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// What the chip says: `s2 127.0.0.1:4000`, `l1 listen 127.0.0.1:7000`.
    pub label: String,
    /// The address.
    pub addr: Endpoint,
    /// It is a link's listen address.
    pub is_link: bool,
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
            && Rc::ptr_eq(&self.window_packets, &other.window_packets)
            && match (&self.list_window, &other.list_window) {
                (Some(a), Some(b)) => Rc::ptr_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
            && self.packets_version == other.packets_version
            && self.selected == other.selected
            && Rc::ptr_eq(&self.timeline, &other.timeline)
            && self.timeline_version == other.timeline_version
            && Rc::ptr_eq(&self.flows, &other.flows)
            && self.flows_dropped == other.flows_dropped
            && Rc::ptr_eq(&self.generators, &other.generators)
            && self.loss_timeout_ms == other.loss_timeout_ms
            && self.match_field == other.match_field
            && self.gaps == other.gaps
            && self.thinned == other.thinned
            && self.recording == other.recording
            && self.recorded == other.recorded
            && Rc::ptr_eq(&self.runs, &other.runs)
            && Rc::ptr_eq(&self.run_flows, &other.run_flows)
            && self.reveal == other.reveal
            && Rc::ptr_eq(&self.pending, &other.pending)
            && Rc::ptr_eq(&self.errors, &other.errors)
            && Rc::ptr_eq(&self.notices, &other.notices)
            && Rc::ptr_eq(&self.names, &other.names)
            && Rc::ptr_eq(&self.recent_peers, &other.recent_peers)
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
            tcp_links: Rc::default(),
            packets: Rc::default(),
            window_packets: Rc::default(),
            list_window: None,
            packets_version: 0,
            selected: None,
            timeline: Rc::default(),
            timeline_version: 0,
            flows: Rc::default(),
            flows_dropped: (0, 0),
            generators: Rc::default(),
            loss_timeout_ms: None,
            match_field: None,
            gaps: (0, 0),
            thinned: 0,
            recording: None,
            recorded: None,
            runs: Rc::default(),
            run_flows: Rc::default(),
            reveal: None,
            pending: Rc::default(),
            errors: Rc::default(),
            notices: Rc::default(),
            names: Rc::default(),
            recent_peers: Rc::default(),
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
    /// Show event `id` (selected) in the packet list or on the timeline: the view
    /// there goes to it.
    Reveal(u64, Place),
    /// The person cleared the packet list.
    ClearPackets,
    /// Rows the packet list asked of a recording (over HTTP): its window.
    ListWindow(Box<socklab_protocol::Window>),
    /// The person cleared the timeline's arrows.
    ClearTimeline,
    /// The person dismissed the notices.
    DismissNotices,
    /// Back to nothing (a recording's view starts again from its first event).
    Reset,
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
    /// Every place the forms offer to send to, in one list: lab sockets, links' listen
    /// addresses, then programs outside the lab seen recently.
    pub fn destinations(&self) -> Vec<Destination> {
        let sockets = self.sockets.iter().map(|s| Destination {
            label: format!("{} {}", s.id, s.local),
            addr: s.local.clone(),
            is_link: false,
        });
        let links = self.links.iter().map(|l| Destination {
            label: format!("{} listen {}", l.id, l.listen),
            addr: Endpoint::Ip(l.listen),
            is_link: true,
        });
        let outside = self.recent_peers.iter().map(|addr| Destination {
            label: format!("outside {addr}"),
            addr: addr.clone(),
            is_link: false,
        });
        sockets.chain(links).chain(outside).collect()
    }

    /// Notes the peer of a datagram: one outside the lab becomes the most recent.
    /// (A Unix sender that never bound a name cannot be answered, so it is not offered.)
    fn saw_peer(&mut self, peer: Endpoint) {
        if self.recent_peers.first() == Some(&peer)
            || self.names.contains_key(&peer)
            || peer.is_unnamed()
        {
            return;
        }
        let recent = Rc::make_mut(&mut self.recent_peers);
        recent.retain(|p| *p != peer);
        recent.insert(0, peer);
        recent.truncate(RECENT_PEERS);
    }

    /// An address by its short name in this session (`s1`, `l1`, `l1 upstream`), or
    /// the address itself for a program outside the lab.
    pub fn name_of(&self, addr: &Endpoint) -> String {
        self.names
            .get(addr)
            .cloned()
            .unwrap_or_else(|| addr.to_string())
    }

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
                    Some(message) => errors.insert(
                        origin,
                        Problem {
                            message,
                            code: None,
                        },
                    ),
                    None => errors.remove(&origin),
                };
            }
            Action::Select(id) => self.selected = id,
            Action::Reveal(id, place) => {
                self.selected = Some(id);
                let asked = self.reveal.map_or(1, |r| r.asked + 1);
                self.reveal = Some(Reveal { id, place, asked });
            }
            Action::ClearPackets => {
                self.packets.borrow_mut().clear();
                self.packets_version += 1;
                self.selected = None;
            }
            Action::ListWindow(w) => self.take_list_window(*w),
            Action::ClearTimeline => {
                self.timeline.borrow_mut().clear_arrows();
                self.timeline_version += 1;
            }
            Action::DismissNotices => self.notices = Rc::default(),
            Action::Reset => *self = State::default(),
        }
    }

    fn receive(&mut self, event: Event) {
        // The packet list's own window is its alone (the timeline's view did not ask).
        let event = match event {
            Event::Window(w)
                if w.req
                    .is_some_and(|r| self.pending.get(&r) == Some(&Origin::Packets)) =>
            {
                self.settle(w.req);
                self.take_list_window(w);
                return;
            }
            event => event,
        };
        if self.timeline.borrow_mut().apply(&event) {
            self.timeline_version += 1;
        }
        match event {
            Event::Hello(hello) => {
                let resumed = self.session.as_deref() == Some(hello.session.as_str());
                if !resumed && self.session.is_some() {
                    // A new session: the old one's sockets were closed with it.
                    self.sockets = Rc::default();
                    self.names = Rc::default();
                    self.recent_peers = Rc::default();
                    self.links = Rc::default();
                    self.generators = Rc::default();
                    self.flows = Rc::default();
                    self.flows_dropped = (0, 0);
                    self.timeline = Rc::default();
                    self.timeline_version += 1;
                    self.list_window = None;
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
                Rc::make_mut(&mut self.names).insert(bound.local.clone(), bound.socket.to_string());
                self.add_socket(SocketInfo {
                    recv_buffer_bytes: bound.recv_buffer_bytes,
                    recv_size: bound.recv_size,
                    listening: bound.listening,
                    multicast: bound.multicast,
                    ..SocketInfo::new(bound.socket, bound.local, bound.proto)
                });
            }
            Event::Closed(closed) => {
                self.settle(closed.req);
                Rc::make_mut(&mut self.errors).remove(&Origin::Socket(closed.socket.clone()));
                Rc::make_mut(&mut self.sockets).retain(|s| s.id != closed.socket);
            }
            Event::Datagram(d) => {
                self.settle(d.req);
                self.saw_peer(d.peer.clone());
                self.push_packet(Packet::of_datagram(d));
            }
            Event::LinkPacket(p) => self.push_packet(Packet::of_link_packet(p)),
            Event::LinkSent(sent) => {
                let mut packets = self.packets.borrow_mut();
                for d in &sent.sent {
                    packets.departed(&sent.link, sent.dir, d);
                }
                self.packets_version += 1;
            }
            Event::LinkCreated(created) => {
                self.settle(created.req);
                let names = Rc::make_mut(&mut self.names);
                names.insert(Endpoint::Ip(created.listen), created.link.to_string());
                names.insert(
                    Endpoint::Ip(created.upstream),
                    format!("{} upstream", created.link),
                );
                Rc::make_mut(&mut self.links).push(LinkInfo {
                    id: created.link,
                    listen: created.listen,
                    upstream: created.upstream,
                    target: created.target,
                    settings: created.settings,
                    c2t: LinkCounters::default(),
                    t2c: LinkCounters::default(),
                    client: None,
                    history: Rc::default(),
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
                Rc::make_mut(&mut self.tcp_links).retain(|l| l.link != deleted.link);
            }
            Event::TcpLinkCreated(created) => {
                self.settle(created.req);
                Rc::make_mut(&mut self.names)
                    .insert(Endpoint::Ip(created.listen), created.link.to_string());
                let links = Rc::make_mut(&mut self.tcp_links);
                links.retain(|l| l.link != created.link);
                links.push(created);
            }
            Event::TcpLinkConn(c) => {
                let what = match (&c.upstream, &c.error) {
                    (_, Some(error)) => format!("connection {} from {}: {error}", c.conn, c.client),
                    (Some(up), None) => format!(
                        "connection {} from {}: connected to the target from {up}",
                        c.conn, c.client
                    ),
                    (None, None) => format!("connection {} from {}", c.conn, c.client),
                };
                self.tcp_link_row(c.id.0, c.t_ns, c.link, what);
            }
            Event::TcpLinkChunk(c) => {
                let what = format!(
                    "conn {} {}: bytes {}–{} held {:.1} ms{}",
                    c.conn,
                    match c.dir {
                        socklab_protocol::link::LinkDir::C2t => "client → target",
                        socklab_protocol::link::LinkDir::T2c => "target → client",
                    },
                    c.offset,
                    (c.offset + c.len as u64).saturating_sub(1),
                    c.delay_ns as f64 / 1e6,
                    if c.pieces > 1 {
                        format!(", written in {} pieces", c.pieces)
                    } else {
                        String::new()
                    }
                );
                self.tcp_link_row(c.id.0, c.t_ns, c.link, what);
            }
            Event::TcpLinkEnd(e) => {
                let what = format!("conn {}: {}", e.conn, e.reason);
                self.tcp_link_row(e.id.0, e.t_ns, e.link, what);
            }
            Event::LinkStats(stats) => {
                if let Some(link) = Rc::make_mut(&mut self.links)
                    .iter_mut()
                    .find(|l| l.id == stats.link)
                {
                    link.c2t = stats.c2t;
                    link.t2c = stats.t2c;
                    let history = Rc::make_mut(&mut link.history);
                    if history.len() == LINK_HISTORY_KEPT {
                        history.pop_front();
                    }
                    history.push_back(LinkSample {
                        t_ns: stats.t_ns,
                        forwarded: [stats.c2t.forwarded, stats.t2c.forwarded],
                        queue_depth: [stats.c2t.queue_depth, stats.t2c.queue_depth],
                    });
                }
            }
            Event::Error(error) => {
                let origin = error
                    .req
                    .and_then(|req| Rc::make_mut(&mut self.pending).remove(&req));
                // The message says what to do; the code goes beside it, for scripts.
                match origin {
                    Some(origin) => {
                        Rc::make_mut(&mut self.errors).insert(
                            origin,
                            Problem {
                                message: error.message,
                                code: Some(error.code.as_str()),
                            },
                        );
                    }
                    None => self.notice(error.message),
                }
            }
            Event::Gap(gap) => {
                // One line for them all, not one per gap.
                self.gaps = (self.gaps.0.saturating_add(gap.count), self.gaps.1 + 1);
            }
            Event::KernelDrops(drops) => {
                let socket = Rc::make_mut(&mut self.sockets)
                    .iter_mut()
                    .find(|s| s.id == drops.socket);
                let local = socket.map(|s| {
                    s.kernel_drops = drops.total;
                    s.local.clone()
                });
                self.push_packet(Packet {
                    id: drops.id.0,
                    t_ns: drops.t_ns,
                    payload: Payload::default(),
                    what: What::KernelDrops {
                        socket: drops.socket,
                        local,
                        dropped: drops.dropped,
                        total: drops.total,
                    },
                });
            }
            Event::Connected(c) => {
                self.settle(c.req);
                self.saw_peer(c.peer.clone());
                let tcp = self.socket_mut(&c.socket).is_some_and(|s| {
                    s.peer = Some(c.peer.clone());
                    s.proto == socklab_protocol::Proto::Tcp
                });
                if tcp {
                    self.tcp_row(c.id.0, c.t_ns, c.socket, Some(c.peer), TcpWhat::Connected);
                }
            }
            Event::Accepted(a) => {
                // Its address is its listener's: that name stays (a connection is told
                // apart by its peer).
                self.saw_peer(Endpoint::Ip(a.peer));
                self.add_socket(SocketInfo {
                    peer: Some(Endpoint::Ip(a.peer)),
                    listener: Some(a.listener.clone()),
                    ..SocketInfo::new(
                        a.socket.clone(),
                        Endpoint::Ip(a.local),
                        socklab_protocol::Proto::Tcp,
                    )
                });
                self.tcp_row(
                    a.id.0,
                    a.t_ns,
                    a.socket,
                    Some(Endpoint::Ip(a.peer)),
                    TcpWhat::Accepted(a.listener),
                );
            }
            Event::Stream(s) => {
                self.settle(s.req);
                let payload = Payload::base64(s.payload_b64);
                self.push_packet(Packet {
                    id: s.id.0,
                    t_ns: s.t_ns,
                    payload,
                    what: What::Stream {
                        socket: s.socket,
                        dir: s.dir,
                        local: s.local,
                        peer: s.peer,
                        offset: s.offset,
                    },
                });
            }
            Event::StreamEnd(e) => {
                self.settle(e.req);
                let state = match e.reason {
                    StreamEndReason::Eof => "stream ended (FIN read)",
                    StreamEndReason::Reset => "reset by the peer",
                    StreamEndReason::Refused => "connection refused",
                    StreamEndReason::Error => "connection failed",
                };
                if let Some(s) = self.socket_mut(&e.socket) {
                    s.state = Some(state.to_string());
                }
                let peer = self.socket_mut(&e.socket).and_then(|s| s.peer.clone());
                self.tcp_row(
                    e.id.0,
                    e.t_ns,
                    e.socket,
                    peer,
                    TcpWhat::Ended(e.reason, e.read, e.error),
                );
            }
            Event::Membership(m) => {
                self.settle(m.req);
                if let Some(s) = self.socket_mut(&m.socket) {
                    let key = (m.group, m.interface);
                    s.groups.retain(|g| *g != key);
                    if m.joined {
                        s.groups.push(key);
                    }
                }
            }
            Event::Paused(p) => {
                self.settle(p.req);
                if let Some(s) = self.socket_mut(&p.socket) {
                    s.paused = p.paused;
                }
            }
            Event::ShutDown(d) => {
                self.settle(d.req);
                let half = match d.how {
                    ShutdownHow::Read => "read half shut",
                    ShutdownHow::Write => "write half shut (FIN sent)",
                    ShutdownHow::Both => "both halves shut",
                };
                if let Some(s) = self.socket_mut(&d.socket) {
                    s.state = Some(half.to_string());
                }
                let peer = self.socket_mut(&d.socket).and_then(|s| s.peer.clone());
                self.tcp_row(d.id.0, d.t_ns, d.socket, peer, TcpWhat::ShutDown(d.how));
            }
            Event::Unreachable(u) => {
                let payload = Payload::base64(u.payload_b64);
                self.push_packet(Packet {
                    id: u.id.0,
                    t_ns: u.t_ns,
                    payload,
                    what: What::Unreachable {
                        socket: u.socket,
                        local: u.local,
                        to: u.to,
                        reason: u.reason,
                        icmp: (u.icmp_type, u.icmp_code),
                        error: u.error,
                    },
                });
            }
            Event::Fate(_) => {}
            Event::FlowStats(stats) => {
                self.flows_dropped = (stats.retired_flows, stats.untracked);
                self.flows = Rc::new(stats.flows);
                if !stats.runs.is_empty() {
                    let runs = Rc::make_mut(&mut self.run_flows);
                    for run in stats.runs {
                        runs.insert(run.run, run);
                    }
                    while runs.len() > RUNS_KEPT {
                        runs.pop_first();
                    }
                }
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
                self.match_field = config.match_field;
            }
            Event::RunMarked(r) => {
                self.settle(r.req);
                let runs = Rc::make_mut(&mut self.runs);
                if runs.len() >= RUNS_KEPT {
                    runs.remove(0);
                }
                runs.push((r.run, r.name, r.t_ns));
            }
            Event::RecordingStarted(r) => {
                self.settle(r.req);
                self.recording = Some((r.recording, r.name));
            }
            Event::RecordingStopped(r) => {
                self.settle(r.req);
                let name = self
                    .recording
                    .take()
                    .map(|(_, name)| name)
                    .unwrap_or_default();
                self.recorded = Some(Recorded {
                    id: r.recording,
                    name,
                    events: r.events,
                    datagrams: r.datagrams,
                    reason: r.reason,
                });
            }
            Event::Thinned(t) => self.thinned = self.thinned.saturating_add(t.count),
            Event::Window(w) => {
                self.window_packets = Rc::new(RefCell::new(rows_of(w.events)));
            }
            // The timeline took them (above).
            Event::KeepingUp(_) | Event::Aggregates(_) => {}
            Event::Batch { events } => {
                for event in events {
                    self.receive(event);
                }
            }
        }
    }

    /// Adds a socket to the list (in place of one with the same id).
    fn add_socket(&mut self, socket: SocketInfo) {
        let sockets = Rc::make_mut(&mut self.sockets);
        sockets.retain(|s| s.id != socket.id);
        sockets.push(socket);
    }

    /// The socket `id`, to change.
    fn socket_mut(&mut self, id: &SocketId) -> Option<&mut SocketInfo> {
        Rc::make_mut(&mut self.sockets)
            .iter_mut()
            .find(|s| &s.id == id)
    }

    /// Adds a row to the packet list.
    fn push_packet(&mut self, packet: Packet) {
        self.packets.borrow_mut().push(packet);
        self.packets_version += 1;
    }

    /// A packet-list row for a TCP link's decision.
    fn tcp_link_row(&mut self, id: u64, t_ns: u64, link: socklab_protocol::LinkId, what: String) {
        self.push_packet(Packet {
            id,
            t_ns,
            payload: Payload::default(),
            what: What::TcpLink { link, what },
        });
    }

    /// A packet-list row for something that happened to a TCP connection.
    fn tcp_row(
        &mut self,
        id: u64,
        t_ns: u64,
        socket: SocketId,
        peer: Option<Endpoint>,
        what: TcpWhat,
    ) {
        self.push_packet(Packet {
            id,
            t_ns,
            payload: Payload::default(),
            what: What::Tcp { socket, peer, what },
        });
    }

    /// A command succeeded: its form's error (if any) is stale now.
    /// Keeps a window the packet list asked for: its rows, and its arrows drawn on the
    /// session's lanes (for what became of each).
    fn take_list_window(&mut self, w: socklab_protocol::Window) {
        let timeline = self.timeline.borrow().of_window(&w);
        self.list_window = Some(Rc::new(ListWindow {
            from_ns: w.from_ns,
            complete: w.complete,
            rows: Rc::new(RefCell::new(rows_of(w.events))),
            timeline: Rc::new(RefCell::new(timeline)),
        }));
    }

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
        self.errors.get(origin).map(|p| p.message.as_str())
    }

    /// The server's code for that refusal, if the server made it.
    pub fn error_code(&self, origin: &Origin) -> Option<&'static str> {
        self.errors.get(origin).and_then(|p| p.code)
    }
}

/// The rows of a window's events: its datagrams and link decisions (with when they
/// really left the link).
fn rows_of(events: Vec<Event>) -> PacketStore {
    let mut store = PacketStore::default();
    for event in events {
        match event {
            Event::Datagram(d) => store.push(Packet::of_datagram(d)),
            Event::LinkPacket(p) => store.push(Packet::of_link_packet(p)),
            Event::LinkSent(sent) => {
                for d in &sent.sent {
                    store.departed(&sent.link, sent.dir, d);
                }
            }
            _ => {}
        }
    }
    store
}

#[cfg(test)]
mod tests;
