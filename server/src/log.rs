//! A session's event log: every event gets the next id and a timestamp, the log keeps a
//! bounded history, and viewers are woken when something new arrives.
//!
//! Writers (socket tasks, the session) never wait on a viewer: appending takes a short
//! lock and never blocks on I/O. A viewer reads at its own pace from its cursor; if the
//! log dropped events it had not read, [`EventLog::read_after`] says so explicitly.
//!
//! (Over 600 lines: about half are the records every event kind is stored as, and
//! the log's tests; the log itself is short.)

use std::collections::VecDeque;
use std::net::SocketAddr;

use socklab_protocol::Endpoint;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use socklab_protocol::link::{LinkCounters, LinkId, LinkSettings};
use socklab_protocol::{Direction, EventId, GeneratorId, Proto, SocketId};
use tokio::sync::watch;

/// A command's `req`, with the viewer that sent it: only that viewer is told the `req`
/// (another viewer of the session numbers its own commands independently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tagged {
    /// The viewer's number within its session (from 1: never zero, which lets an
    /// `Option<Tagged>` take no more room than a `Tagged`).
    pub viewer: std::num::NonZeroU64,
    /// The client's `req`.
    pub req: i64,
}

impl Tagged {
    /// The `req` to show `viewer`: its own, or none.
    pub fn for_viewer(tag: Option<Tagged>, viewer: u64) -> Option<i64> {
        tag.filter(|t| t.viewer.get() == viewer).map(|t| t.req)
    }
}

/// One logged event.
#[derive(Debug)]
pub struct Entry {
    /// Its id in the session.
    pub id: EventId,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// What happened.
    pub record: Record,
}

/// What happened, in the server's own terms; [`crate::session`] turns it into protocol
/// events at the edge.
#[derive(Debug)]
pub enum Record {
    /// A socket was bound (boxed: a rare record, larger than a datagram's).
    Bound(Box<BoundRecord>),
    /// A socket was closed.
    Closed {
        /// The socket.
        socket: SocketId,
        /// The `req` of the command that closed it.
        req: Option<Tagged>,
    },
    /// A datagram was sent or received.
    Datagram(DatagramRecord),
    /// The kernel dropped datagrams at a socket (its receive buffer was full).
    KernelDrops {
        /// The socket, with its address (shared like a datagram record's).
        socket: Arc<SocketName>,
        /// Dropped since the previous record of this socket.
        dropped: u64,
        /// Dropped since the socket was bound.
        total: u64,
    },
    /// A socket was connected to a peer.
    Connected {
        /// The socket, with its address.
        socket: Arc<SocketName>,
        /// Its peer (boxed: an IPv6 address would make every entry bigger).
        peer: Box<Endpoint>,
        /// The `req` of the command that connected it.
        req: Option<Tagged>,
    },
    /// An ICMP error about a datagram a socket sent (boxed: rare, and large).
    Unreachable(Box<UnreachableRecord>),
    /// A TCP listener accepted a connection (boxed: rare, and large).
    Accepted(Box<AcceptedRecord>),
    /// Bytes a TCP socket wrote or read (boxed: larger than a datagram record).
    Stream(Box<StreamRecord>),
    /// A TCP connection's stream ended for a socket.
    StreamEnd(Box<StreamEndRecord>),
    /// A socket joined or left a multicast group (boxed: rare, and large).
    Membership(Box<MembershipRecord>),
    /// A socket stopped or resumed reading.
    Paused {
        /// The socket.
        socket: SocketId,
        /// Not reading.
        paused: bool,
        /// The `req` of the command.
        req: Option<Tagged>,
    },
    /// A TCP socket shut down one or both halves of its connection.
    ShutDown {
        /// The socket.
        socket: SocketId,
        /// Which half.
        how: socklab_protocol::ShutdownHow,
        /// The `req` of the command.
        req: Option<Tagged>,
    },
    /// A link was created (boxed: a rare record, and every log entry is as big as the
    /// largest kind).
    LinkCreated(Box<LinkCreation>),
    /// A TCP link was created.
    TcpLinkCreated(Box<TcpLinkCreation>),
    /// A TCP link took a connection.
    TcpLinkConn(Box<TcpLinkConnRecord>),
    /// A TCP link decided on a chunk of a stream.
    TcpLinkChunk(Box<TcpLinkChunkRecord>),
    /// A TCP link passed on an end of stream, or reset a connection.
    TcpLinkEnd(Box<TcpLinkEndRecord>),
    /// A link's settings changed.
    LinkUpdated {
        /// The link.
        link: LinkId,
        /// The new settings (boxed, as above).
        settings: Box<LinkSettings>,
        /// The `req` of the command.
        req: Option<Tagged>,
    },
    /// A link's client changed (boxed: rare, and larger than a datagram record).
    LinkClient(Box<LinkClientChange>),
    /// A link was deleted.
    LinkDeleted {
        /// The link.
        link: LinkId,
        /// The `req` of the command.
        req: Option<Tagged>,
    },
    /// A link's decision on a datagram, and the datagram's bytes as they arrived.
    LinkPacket(Box<LinkPacketRecord>, Vec<u8>),
    /// Datagrams one direction of a link sent on (boxed: the list is on the heap anyway,
    /// and every log entry is as big as the largest kind).
    LinkSent(Box<LinkSentRecord>),
    /// A traffic generator started.
    GeneratorStarted(Box<GeneratorStartedRecord>),
    /// A traffic generator ended (by itself, stopped, or failing).
    GeneratorDone(Box<GeneratorDoneRecord>),
    /// The flow analysis' settings changed (its loss timeout, or its match field).
    AnalysisConfig {
        /// The loss timeout, ms.
        loss_timeout_ms: u64,
        /// The match field, if one is named.
        match_field: Option<socklab_protocol::flow::MatchField>,
        /// The `req` of the command.
        req: Option<Tagged>,
    },
    /// The session started being recorded (boxed: rare, and large).
    RecordingStarted(Box<RecordingStartedRecord>),
    /// A run began.
    RunMarked {
        /// Its number, from 1.
        run: u32,
        /// Its name.
        name: Box<str>,
        /// The `req` of the `mark_run`.
        req: Option<Tagged>,
    },
    /// The session's recording stopped.
    RecordingStopped {
        /// The recording's id in the store.
        recording: i64,
        /// Its events and datagrams.
        counts: (u64, u64),
        /// Why it stopped by itself (the store's refusal).
        reason: Option<Box<str>>,
        /// The `req` of the command.
        req: Option<Tagged>,
    },
    /// Every flow's figures.
    FlowStats(Box<FlowStatsRecord>),
    /// The flow analysis's conclusion about one datagram, stored inline: a busy session
    /// logs one per datagram (a boxed wire `Fate` cost 176 bytes more per datagram).
    Fate(FateRecord),
    /// A link's counters.
    LinkStats {
        /// The link.
        link: LinkId,
        /// Client → target and target → client (boxed, as above).
        counters: Box<(LinkCounters, LinkCounters)>,
    },
}

/// A flow's two ends, shared by the fate records of the flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowEnds {
    /// The original sender.
    pub src: Endpoint,
    /// The final receiver.
    pub dst: Endpoint,
}

/// What the flow analysis concluded about one datagram: the wire `fate` without the
/// entry's id and time, in 64 bytes.
#[derive(Debug, Clone)]
pub struct FateRecord {
    /// Its flow.
    pub flow: Arc<FlowEnds>,
    /// What became of it.
    pub kind: socklab_protocol::flow::FateKind,
    /// The `out` event (for replies and unanswered requests: the request).
    pub send: EventId,
    /// The `in` event, when there is one.
    pub recv: Option<std::num::NonZeroU64>,
    /// The link's `link_packet` about it, when it crossed a link.
    pub decision: Option<std::num::NonZeroU64>,
    /// One-way latency or round-trip time, ns.
    pub latency_ns: Option<u64>,
    /// How far out of place a reordered delivery was (0: in order; saturates).
    pub reordered_by: u32,
    /// Delivered after it had been counted lost.
    pub late: bool,
    /// A reply paired by order (its bytes equal no open request).
    pub by_order: bool,
    /// A reply paired by the match field.
    pub by_field: bool,
    /// Why it is lost or unanswered.
    pub cause: Option<socklab_protocol::flow::LossCause>,
    /// The link's reason, when a link dropped it.
    pub reason: Option<socklab_protocol::link::DropReason>,
}

/// A link's decision on one datagram (the wire `link_packet` without what the entry
/// and the bytes give: id, time, length, base64).
#[derive(Debug, Clone)]
pub struct LinkPacketRecord {
    /// The link.
    pub link: LinkId,
    /// Which way it crossed.
    pub dir: socklab_protocol::link::LinkDir,
    /// Its number among that direction's arrivals.
    pub seq: u64,
    /// Its sender.
    pub from: SocketAddr,
    /// Where it goes (none for a reply with no client known).
    pub to: Option<SocketAddr>,
    /// Forwarded or dropped.
    pub fate: socklab_protocol::link::LinkFate,
    /// Why it was dropped.
    pub reason: Option<socklab_protocol::link::DropReason>,
    /// Planned time in the link, ns.
    pub delay_ns: Option<u64>,
    /// Of that, time queued at the bottleneck, ns.
    pub queue_ns: Option<u64>,
    /// Sent twice.
    pub duplicated: bool,
    /// The offset of the byte changed.
    pub corrupted_at: Option<usize>,
    /// The bits flipped in it.
    pub corrupt_mask: Option<u8>,
    /// The length it was cut to.
    pub truncated_to: Option<usize>,
    /// Held back until this many later datagrams overtook it.
    pub held_for: Option<u32>,
    /// What the OS said when the link could not send it on.
    pub error: Option<Box<str>>,
}

/// Datagrams one direction of a link sent on in one pass of its timer.
#[derive(Debug, Clone)]
pub struct LinkSentRecord {
    /// The link.
    pub link: LinkId,
    /// Which way they crossed.
    pub dir: socklab_protocol::link::LinkDir,
    /// When each left and how late, in the order they left.
    pub sent: Vec<socklab_protocol::Departure>,
}

/// A traffic generator started.
#[derive(Debug)]
pub struct GeneratorStartedRecord {
    /// Its id (`"g1"`).
    pub generator: GeneratorId,
    /// The sending socket.
    pub socket: SocketId,
    /// The destination.
    pub to: Endpoint,
    /// How many datagrams it sends.
    pub count: u64,
    /// Datagrams per second.
    pub rate: f64,
    /// The sequence header's flow id, if headers are on.
    pub seq_flow: Option<u32>,
    /// The `req` of the command.
    pub req: Option<Tagged>,
}

/// A traffic generator ended.
#[derive(Debug)]
pub struct GeneratorDoneRecord {
    /// Its id.
    pub generator: GeneratorId,
    /// How many datagrams it sent.
    pub sent: u64,
    /// It was stopped (or failed) before sending them all.
    pub stopped: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The `req` of the `generate_stop` that stopped it.
    pub req: Option<Tagged>,
}

/// Every flow's figures, as the analysis concluded them.
#[derive(Debug)]
pub struct FlowStatsRecord {
    /// Every flow.
    pub flows: Vec<socklab_protocol::flow::FlowSummary>,
    /// Flows retired so far.
    pub retired_flows: u64,
    /// Datagrams given up so far.
    pub untracked: u64,
    /// The runs whose figures changed since the last.
    pub runs: Vec<socklab_protocol::flow::RunFlows>,
}

/// The session started being recorded.
#[derive(Debug)]
pub struct RecordingStartedRecord {
    /// The recording's id in the store.
    pub recording: i64,
    /// Its name.
    pub name: String,
    /// The first event it holds.
    pub from: EventId,
    /// The `req` of the command.
    pub req: Option<Tagged>,
}

/// A socket was bound.
#[derive(Debug)]
pub struct BoundRecord {
    /// The socket.
    pub socket: SocketId,
    /// Its kind.
    pub proto: Proto,
    /// Its actual local address.
    pub local: Endpoint,
    /// The receive buffer the kernel granted, bytes.
    pub recv_buffer_bytes: Option<u64>,
    /// How many bytes each receive reads (None: whole datagrams).
    pub recv_size: Option<u32>,
    /// A TCP listener.
    pub listening: bool,
    /// A UDP socket bound with multicast.
    pub multicast: bool,
    /// The `req` of the command that bound it.
    pub req: Option<Tagged>,
}

/// A datagram's other end in 16 bytes: an IPv4 address inline, an IPv6 one (with its
/// flow label and scope) or a Unix name boxed, so that every log entry is 16 bytes
/// smaller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An IPv4 peer.
    V4(std::net::SocketAddrV4),
    /// An IPv6 peer, or a Unix one.
    Other(Box<Endpoint>),
}

impl Peer {
    /// The address.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Peer::V4(a) => Endpoint::Ip(SocketAddr::V4(*a)),
            Peer::Other(e) => (**e).clone(),
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Ip(addr).into()
    }
}

impl From<Endpoint> for Peer {
    fn from(endpoint: Endpoint) -> Self {
        match endpoint {
            Endpoint::Ip(SocketAddr::V4(a)) => Peer::V4(a),
            other => Peer::Other(Box::new(other)),
        }
    }
}

/// A link's client changed.
#[derive(Debug)]
pub struct LinkClientChange {
    /// The link.
    pub link: LinkId,
    /// The new client.
    pub client: SocketAddr,
    /// The one before, if any.
    pub previous: Option<SocketAddr>,
}

/// A link's creation.
#[derive(Debug)]
pub struct LinkCreation {
    /// The link.
    pub link: LinkId,
    /// Its listen address.
    pub listen: SocketAddr,
    /// The address it sends to the target from.
    pub upstream: SocketAddr,
    /// Its target.
    pub target: SocketAddr,
    /// Its settings.
    pub settings: LinkSettings,
    /// The `req` of the command.
    pub req: Option<Tagged>,
}

/// A lab socket as its datagram records name it: one copy per socket, shared by all of
/// them (a pointer per record instead of the id and the address).
/// A TCP socket's records name it by its IP address (`SocketName<SocketAddr>`); a
/// datagram socket's by an [`Endpoint`] (IP or Unix).
#[derive(Debug)]
pub struct SocketName<A = Endpoint> {
    /// The socket's id.
    pub id: Box<str>,
    /// The address it is bound to.
    pub local: A,
}

/// A TCP link was created.
#[derive(Debug)]
pub struct TcpLinkCreation {
    /// The link.
    pub link: LinkId,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where it connects for them.
    pub target: SocketAddr,
    /// Its settings.
    pub settings: socklab_protocol::link::TcpLinkSettings,
    /// The `req` of the command.
    pub req: Option<Tagged>,
}

/// A TCP link took a connection (or could not reach its target for it).
#[derive(Debug)]
pub struct TcpLinkConnRecord {
    /// The link.
    pub link: LinkId,
    /// The connection's number.
    pub conn: u64,
    /// The client.
    pub client: SocketAddr,
    /// Where the link connected to the target from.
    pub upstream: Option<SocketAddr>,
    /// Why the target could not be reached.
    pub error: Option<String>,
}

/// A TCP link's decision on a chunk of a stream.
#[derive(Debug)]
pub struct TcpLinkChunkRecord {
    /// The link.
    pub link: LinkId,
    /// The connection.
    pub conn: u64,
    /// Which way.
    pub dir: socklab_protocol::link::LinkDir,
    /// Where it starts in the stream.
    pub offset: u64,
    /// Its length.
    pub len: usize,
    /// How long the link holds it.
    pub delay_ns: u64,
    /// In how many pieces it is written.
    pub pieces: u32,
}

/// A TCP link passed on an end of stream, or reset a connection.
#[derive(Debug)]
pub struct TcpLinkEndRecord {
    /// The link.
    pub link: LinkId,
    /// The connection.
    pub conn: u64,
    /// Which way.
    pub dir: socklab_protocol::link::LinkDir,
    /// How.
    pub how: socklab_protocol::TcpLinkEndHow,
    /// Why.
    pub reason: String,
}

/// A socket joined or left a multicast group.
#[derive(Debug)]
pub struct MembershipRecord {
    /// The socket.
    pub socket: SocketId,
    /// The group.
    pub group: std::net::IpAddr,
    /// The interface, as given.
    pub interface: Option<String>,
    /// Joined, or left.
    pub joined: bool,
    /// The `req` of the command.
    pub req: Option<Tagged>,
}

/// A TCP listener accepted a connection.
#[derive(Debug)]
pub struct AcceptedRecord {
    /// The new socket, with its address.
    pub socket: Arc<SocketName<SocketAddr>>,
    /// The listener.
    pub listener: SocketId,
    /// Who connected.
    pub peer: SocketAddr,
}

/// Bytes a TCP socket wrote or read.
#[derive(Debug)]
pub struct StreamRecord {
    /// The socket, with its address.
    pub socket: Arc<SocketName<SocketAddr>>,
    /// Written or read.
    pub dir: Direction,
    /// The other end.
    pub peer: SocketAddr,
    /// Where in that direction's stream the bytes start.
    pub offset: u64,
    /// The bytes.
    pub payload: Box<[u8]>,
    /// The `req` of the `send` that caused an `out`.
    pub req: Option<Tagged>,
}

/// A TCP stream ended for a socket.
#[derive(Debug)]
pub struct StreamEndRecord {
    /// The socket.
    pub socket: SocketId,
    /// How.
    pub reason: socklab_protocol::StreamEndReason,
    /// The OS's words.
    pub error: Option<String>,
    /// The bytes read in all.
    pub read: u64,
    /// The `req` of a refused `connect`.
    pub req: Option<Tagged>,
}

/// An ICMP error about a datagram a socket sent, from its error queue.
#[derive(Debug)]
pub struct UnreachableRecord {
    /// The socket that sent the datagram.
    pub socket: Arc<SocketName>,
    /// Where it was sent.
    pub to: SocketAddr,
    /// What the error said.
    pub reason: socklab_protocol::UnreachableReason,
    /// The ICMP type and code.
    pub icmp: (u8, u8),
    /// Who sent the error.
    pub reporter: Option<std::net::IpAddr>,
    /// The error number the kernel gives it (ECONNREFUSED for port unreachable).
    pub errno: i32,
    /// The start of the datagram, as the error quoted it.
    pub payload: Box<[u8]>,
}

/// A datagram a session's socket sent or received.
#[derive(Debug)]
pub struct DatagramRecord {
    /// The socket, with its address.
    pub socket: Arc<SocketName>,
    /// Sent or received.
    pub dir: Direction,
    /// The other end.
    pub peer: Peer,
    /// The bytes (a boxed slice: 8 bytes less in every entry than a `Vec`).
    pub payload: Box<[u8]>,
    /// The `req` of the `send` that caused an `out`.
    pub req: Option<Tagged>,
    /// How long a received datagram was that the socket's read size cut to `payload`.
    pub truncated_from: Option<u32>,
}

/// What one flow of a `flow_stats` record counts for in the log's byte budget: about
/// its size in memory and on the wire. A session with many flows logs a large record
/// twice a second, and those records must not escape the budget.
const FLOW_SUMMARY_BYTES: usize = 512;

/// What one departure of a `link_sent` record counts for in the log's byte budget.
const DEPARTURE_BYTES: usize = std::mem::size_of::<socklab_protocol::Departure>();

impl Record {
    /// The bytes this record holds, for the log's byte budget.
    fn size(&self) -> usize {
        match self {
            Record::Datagram(d) => d.payload.len(),
            Record::LinkPacket(_, payload) => payload.len(),
            Record::Unreachable(u) => u.payload.len(),
            Record::Stream(s) => s.payload.len(),
            Record::LinkSent(sent) => sent.sent.len().saturating_mul(DEPARTURE_BYTES),
            Record::FlowStats(stats) => stats
                .runs
                .iter()
                .map(|r| r.flows.len())
                .fold(stats.flows.len(), usize::saturating_add)
                .saturating_mul(FLOW_SUMMARY_BYTES),
            Record::Bound(_)
            | Record::Closed { .. }
            | Record::KernelDrops { .. }
            | Record::Connected { .. }
            | Record::TcpLinkCreated(_)
            | Record::TcpLinkConn(_)
            | Record::TcpLinkChunk(_)
            | Record::TcpLinkEnd(_)
            | Record::Accepted(_)
            | Record::StreamEnd(_)
            | Record::ShutDown { .. }
            | Record::Paused { .. }
            | Record::Membership(_)
            | Record::LinkCreated { .. }
            | Record::LinkUpdated { .. }
            | Record::LinkDeleted { .. }
            | Record::LinkClient(_)
            | Record::LinkStats { .. }
            | Record::GeneratorStarted(_)
            | Record::GeneratorDone(_)
            | Record::AnalysisConfig { .. }
            | Record::RecordingStarted(_)
            | Record::RunMarked { .. }
            | Record::RecordingStopped { .. }
            | Record::Fate(_) => 0,
        }
    }
}

/// What a viewer gets from [`EventLog::read_after`].
#[derive(Debug, Default)]
pub struct Read {
    /// Ids the viewer has not seen and the log no longer holds (`from..=to`).
    pub gap: Option<(EventId, EventId)>,
    /// The next entries, in id order.
    pub entries: Vec<Arc<Entry>>,
    /// Whether more entries follow these.
    pub more: bool,
}

/// How much earlier than the entries logged around it an entry's time may be (a
/// kernel stamp against the moment it was logged), at most, for reading by time.
pub const TIME_SLACK_NS: u64 = 100_000_000;

/// A session's bounded event log.
#[derive(Debug)]
pub struct EventLog {
    epoch: Instant,
    inner: Mutex<Inner>,
    /// The id of the newest entry (0 before the first); viewers wait on changes.
    newest: watch::Sender<u64>,
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<Arc<Entry>>,
    next_id: u64,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

impl EventLog {
    /// An empty log that keeps at most `max_events` entries and `max_bytes` payload bytes
    /// (it always keeps the newest entry, however large).
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        EventLog {
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                next_id: 1,
                bytes: 0,
                max_events: max_events.max(1),
                max_bytes,
            }),
            newest: watch::Sender::new(0),
        }
    }

    /// Nanoseconds from the session's start to `at`.
    pub fn t_ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Appends one event that happened at `at`.
    pub fn append(&self, at: Instant, record: Record) -> EventId {
        let mut inner = self.lock();
        let id = inner.push(self.t_ns(at), record);
        drop(inner);
        self.newest.send_replace(id.0);
        id
    }

    /// Appends several events at once (one lock, one wake-up).
    pub fn append_all(&self, records: impl IntoIterator<Item = (Instant, Record)>) {
        if let Some(id) = self.append_all_quietly(records) {
            self.newest.send_replace(id.0);
        }
    }

    /// Appends several events at once without waking anyone yet: their ids are given
    /// now (so what the caller does next is logged after them), and the readers are
    /// woken by the caller's next append or [`EventLog::wake_readers`]. A link logs its
    /// decisions so before it sends the datagrams on: waking another thread is not on
    /// their way. Returns the last id given.
    pub fn append_all_quietly(
        &self,
        records: impl IntoIterator<Item = (Instant, Record)>,
    ) -> Option<EventId> {
        let mut inner = self.lock();
        let mut last = None;
        for (at, record) in records {
            last = Some(inner.push(self.t_ns(at), record));
        }
        last
    }

    /// Wakes the readers for everything appended so far.
    pub fn wake_readers(&self) {
        let newest = self.lock().next_id.saturating_sub(1);
        self.newest.send_if_modified(|n| {
            let changed = *n != newest;
            *n = newest;
            changed
        });
    }

    /// Runs `act` under the log's lock and appends the record it returns, at the time it
    /// returns with it (for a send: just before the syscall). An action that causes
    /// another event (a send that a lab socket receives) thus always gets the smaller
    /// id, whichever task logs the effect.
    pub fn append_with<E>(
        &self,
        act: impl FnOnce() -> Result<(Instant, Record), E>,
    ) -> Result<EventId, E> {
        let mut inner = self.lock();
        let (at, record) = act()?;
        let id = inner.push(self.t_ns(at), record);
        drop(inner);
        self.newest.send_replace(id.0);
        Ok(id)
    }

    /// Up to `max` entries with ids after `cursor` (the last id the viewer has), and the
    /// ids it can no longer get.
    pub fn read_after(&self, cursor: EventId, max: usize) -> Read {
        let inner = self.lock();
        let Some(oldest) = inner.entries.front().map(|e| e.id) else {
            return Read::default();
        };
        // The cursor may come from a client (`?since=`): no arithmetic on it may wrap.
        let first_wanted = cursor.0.saturating_add(1);
        let gap = (first_wanted < oldest.0).then(|| (EventId(first_wanted), EventId(oldest.0 - 1)));
        // Ids are consecutive in the deque, so the cursor's position is arithmetic.
        let start = usize::try_from(first_wanted.saturating_sub(oldest.0)).unwrap_or(usize::MAX);
        let end = inner.entries.len().min(start.saturating_add(max));
        let entries = inner.entries.range(start.min(end)..end).cloned().collect();
        Read {
            gap,
            entries,
            more: end < inner.entries.len(),
        }
    }

    /// A cursor before every entry the log still holds whose time is `t_ns` or later
    /// (so `read_after` from it reads them). Entries are in id order and all but in
    /// time order: a datagram's time is the kernel's stamp, a little before it is
    /// logged; the cursor steps back [`TIME_SLACK_NS`] to take in those logged late.
    /// Also says whether the log still holds everything from `t_ns` on (it has
    /// dropped none, or some it holds are older), and the oldest id it holds.
    pub fn cursor_at(&self, t_ns: u64) -> (EventId, bool, EventId) {
        let inner = self.lock();
        let Some(oldest) = inner.entries.front().map(|e| e.id) else {
            let next = EventId(inner.next_id);
            return (EventId(inner.next_id.saturating_sub(1)), true, next);
        };
        let from = t_ns.saturating_sub(TIME_SLACK_NS);
        let at = inner.entries.partition_point(|e| e.t_ns < from);
        let whole = oldest.0 == 1 || inner.entries[0].t_ns < t_ns;
        (
            EventId((oldest.0 + at as u64).saturating_sub(1)),
            whole,
            oldest,
        )
    }

    /// The id of the newest entry ever appended (0 before the first).
    pub fn newest(&self) -> EventId {
        EventId(*self.newest.borrow())
    }

    /// A receiver that changes whenever an entry is appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the deque consistent (each push is
        // complete or not started), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn push(&mut self, t_ns: u64, record: Record) -> EventId {
        let id = EventId(self.next_id);
        self.next_id += 1;
        self.bytes += record.size();
        self.entries.push_back(Arc::new(Entry { id, t_ns, record }));
        while self.entries.len() > self.max_events
            || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.record.size();
            }
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(len: usize) -> Record {
        Record::Datagram(DatagramRecord {
            socket: Arc::new(SocketName {
                id: "s1".into(),
                local: "127.0.0.1:1".parse().unwrap(),
            }),
            dir: Direction::In,
            peer: "127.0.0.1:2".parse::<SocketAddr>().unwrap().into(),
            payload: vec![0; len].into_boxed_slice(),
            req: None,
            truncated_from: None,
        })
    }

    fn ids(read: &Read) -> Vec<u64> {
        read.entries.iter().map(|e| e.id.0).collect()
    }

    #[test]
    fn ids_increase_and_reads_page() {
        let log = EventLog::new(100, 1 << 20);
        for _ in 0..5 {
            log.append(Instant::now(), datagram(1));
        }
        let first = log.read_after(EventId(0), 3);
        assert_eq!(
            (ids(&first), first.more, first.gap),
            (vec![1, 2, 3], true, None)
        );
        let rest = log.read_after(EventId(3), 3);
        assert_eq!((ids(&rest), rest.more), (vec![4, 5], false));
        assert!(log.read_after(EventId(5), 3).entries.is_empty());
    }

    #[test]
    fn dropping_old_entries_reports_a_gap() {
        let log = EventLog::new(3, 1 << 20);
        log.append_all((0..10).map(|_| (Instant::now(), datagram(1))));
        let read = log.read_after(EventId(2), 10);
        assert_eq!(read.gap, Some((EventId(3), EventId(7))));
        assert_eq!(ids(&read), vec![8, 9, 10]);
        // A viewer that already saw everything the log dropped sees no gap.
        assert_eq!(log.read_after(EventId(7), 10).gap, None);
    }

    /// Quiet appends give ids at once and wake readers only when asked (a link's
    /// decisions, before it sends the datagrams on).
    #[test]
    fn quiet_appends_wake_readers_only_when_asked() {
        let log = EventLog::new(10, 1 << 20);
        let mut readers = log.subscribe();
        readers.borrow_and_update();
        let last =
            log.append_all_quietly([(Instant::now(), datagram(1)), (Instant::now(), datagram(1))]);
        assert_eq!(last, Some(EventId(2)));
        assert!(!readers.has_changed().unwrap(), "nobody woken yet");
        assert_eq!(log.read_after(EventId::BEFORE_FIRST, 10).entries.len(), 2);
        log.wake_readers();
        assert!(readers.has_changed().unwrap());
        assert_eq!(log.newest(), EventId(2));
        readers.borrow_and_update();
        log.wake_readers();
        assert!(!readers.has_changed().unwrap(), "no news, no wake-up");
    }

    #[test]
    fn byte_budget_drops_oldest_but_keeps_newest() {
        let log = EventLog::new(100, 10);
        log.append(Instant::now(), datagram(6));
        log.append(Instant::now(), datagram(6));
        assert_eq!(ids(&log.read_after(EventId(0), 10)), vec![2]);
        log.append(Instant::now(), datagram(50));
        assert_eq!(ids(&log.read_after(EventId(0), 10)), vec![3]);
    }

    #[test]
    fn a_cursor_from_a_client_never_wraps() {
        let log = EventLog::new(3, 1 << 20);
        log.append_all((0..5).map(|_| (Instant::now(), datagram(1))));
        let read = log.read_after(EventId(u64::MAX), 10);
        assert_eq!((read.gap, ids(&read), read.more), (None, vec![], false));
        assert_eq!(log.newest(), EventId(5));
    }

    #[test]
    fn failed_actions_log_nothing() {
        let log = EventLog::new(10, 100);
        let r: Result<EventId, &str> = log.append_with(|| Err("no"));
        assert_eq!(r, Err("no"));
        assert_eq!(*log.subscribe().borrow(), 0);
        assert_eq!(
            log.append_with::<()>(|| Ok((Instant::now(), datagram(1)))),
            Ok(EventId(1))
        );
        assert_eq!(*log.subscribe().borrow(), 1);
    }
}

#[cfg(test)]
mod size {
    /// Every log entry is as big as the largest kind of record; keep them small (the
    /// log holds up to hundreds of thousands per session): a kind with large fields
    /// boxes them, as `Bound`, `LinkCreated`, `LinkClient` and `Event` do, and a datagram's
    /// IPv6 peer is boxed ([`Peer`]).
    #[test]
    fn entries_stay_small() {
        assert!(
            std::mem::size_of::<super::Entry>() <= 88,
            "{}",
            std::mem::size_of::<super::Entry>()
        );
    }
}
