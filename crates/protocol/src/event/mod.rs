//! Events: what the server reports to a client.
//!
//! (Over 600 lines: every event of the wire contract in one place, each documented
//! field by field; its snapshots live in `tests.rs`.)

use std::fmt;
use std::net::SocketAddr;

use crate::endpoint::Endpoint;

use serde::{Deserialize, Serialize};

use crate::command::Proto;
use crate::flow::{Fate, FlowStats};
use crate::ids::{GeneratorId, LinkId, SessionId};
use crate::link::{DropReason, LinkCounters, LinkDir, LinkFate, LinkSettings};

pub use crate::ids::{EventId, SocketId};

/// Whether a socket sent or received a datagram.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received by the session's socket.
    In,
    /// Sent by the session's socket.
    Out,
}

/// The tag of an event written with its `"type"` first and no space (as a server
/// writes them), read without parsing the rest.
fn tag_first(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    let tag = &rest[..rest.find('"')?];
    // A tag with an escape in it is left to the full reader.
    (!tag.contains('\\')).then_some(tag)
}

/// One message from the server. On the wire: a JSON object whose `"type"` names the
/// variant in snake_case.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The server's first message on every connection.
    Hello(Hello),
    /// A socket was opened and bound.
    Bound(Bound),
    /// A socket was closed.
    Closed(Closed),
    /// A datagram was sent or received.
    Datagram(Datagram),
    /// The kernel dropped datagrams at a lab socket whose receive buffer was full.
    KernelDrops(KernelDrops),
    /// A lab socket was connected to a peer.
    Connected(Connected),
    /// A TCP listener accepted a connection: a new socket.
    Accepted(Accepted),
    /// Bytes a TCP socket wrote or read.
    Stream(Stream),
    /// A TCP connection's stream ended for the socket: end of stream, reset, refused.
    StreamEnd(StreamEnd),
    /// A TCP socket shut down one or both halves of its connection.
    ShutDown(ShutDown),
    /// A socket stopped or resumed reading (`pause`).
    Paused(Paused),
    /// A socket joined or left a multicast group.
    Membership(Membership),
    /// A datagram a lab socket sent could not be delivered, and the network said so
    /// (an ICMP error: most often "port unreachable", nobody is listening there).
    Unreachable(Unreachable),
    /// A link was created.
    LinkCreated(LinkCreated),
    /// A TCP link was created.
    TcpLinkCreated(TcpLinkCreated),
    /// A TCP link took a connection (or could not reach its target for it).
    TcpLinkConn(TcpLinkConn),
    /// A TCP link passed on a chunk of a stream: how late, in how many pieces.
    TcpLinkChunk(TcpLinkChunk),
    /// A TCP link passed on the end of a stream, or reset a connection.
    TcpLinkEnd(TcpLinkEnd),
    /// A link's settings changed.
    LinkUpdated(LinkUpdated),
    /// A link was deleted.
    LinkDeleted(LinkDeleted),
    /// A link's client (where the target's replies go) is a new address.
    LinkClient(LinkClient),
    /// A link's decision on one datagram.
    LinkPacket(LinkPacket),
    /// Datagrams a link sent on: when each really left, and how late against its plan.
    LinkSent(LinkSent),
    /// A link's counters (sent at most a few times a second, when they changed).
    LinkStats(LinkStats),
    /// What became of a datagram (flow analysis).
    Fate(Fate),
    /// Every flow's figures (sent at most twice a second, when they changed).
    FlowStats(FlowStats),
    /// A traffic generator started.
    GeneratorStarted(GeneratorStarted),
    /// A traffic generator finished (or was stopped, or failed).
    GeneratorDone(GeneratorDone),
    /// The flow analysis' settings changed.
    AnalysisConfig(AnalysisConfig),
    /// The session started being recorded into the server's store.
    RecordingStarted(RecordingStarted),
    /// The session's recording stopped; everything up to this event is stored.
    RecordingStopped(RecordingStopped),
    /// A new run of the session began (`mark_run`, or a generator's start).
    RunMarked(RunMarked),
    /// A command could not be carried out; the session stays usable.
    Error(ErrorEvent),
    /// Events this viewer never received because the session's log had already dropped
    /// them (it keeps a bounded history). The ids `from..=to` are gone for good.
    Gap(Gap),
    /// Events about single datagrams this viewer was not sent because it was behind
    /// (`keep_up`); the server still counts them (`aggregate`) and holds them while
    /// its log does (`window`).
    Thinned(Thinned),
    /// The reply to `keep_up`.
    KeepingUp(KeepingUp),
    /// The reply to `aggregate`.
    Aggregates(Aggregates),
    /// The reply to `window`.
    Window(Window),
    /// Several events in one frame, in id order.
    Batch {
        /// The events; never themselves batches.
        events: Vec<Event>,
    },
}

/// The greeting that opens every connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version, [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The session's id.
    pub session: SessionId,
    /// `"socklab <version>"`.
    pub server: String,
}

/// A socket was opened and bound: the reply to `bind`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The event's id in the session.
    pub id: EventId,
    /// The new socket's id.
    pub socket: SocketId,
    /// Its kind.
    pub proto: Proto,
    /// The address it is bound to, with the port the OS chose when port 0 was asked for
    /// (a Unix socket: its full name, `unix:/…` or `unix:@…`).
    pub local: Endpoint,
    /// The receive buffer the kernel granted (SO_RCVBUF as read back), bytes; absent
    /// where unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_buffer_bytes: Option<u64>,
    /// How many bytes each receive reads (`bind`'s `recv_size`); absent: datagrams
    /// are read whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_size: Option<u32>,
    /// A TCP socket listening for connections (`bind` with `listen`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listening: bool,
    /// A UDP socket bound with `multicast`: it may send to groups and join them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multicast: bool,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `bind` that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// The kernel dropped datagrams addressed to a lab socket because its receive buffer was
/// full: real loss on real traffic, before socklab could read them. The kernel's count
/// travels with each datagram the socket receives, so this event follows that
/// datagram's `datagram` event; drops after the last datagram are read from the
/// kernel's socket table once the socket has been quiet for 100 ms.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KernelDrops {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket.
    pub socket: SocketId,
    /// Datagrams dropped since the previous `kernel_drops` of this socket.
    pub dropped: u64,
    /// Datagrams dropped since the socket was bound.
    pub total: u64,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

/// A lab socket was connected (`connect`): its default destination, and the only
/// address it receives from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket.
    pub socket: SocketId,
    /// Its address.
    pub local: Endpoint,
    /// The peer it is connected to.
    pub peer: Endpoint,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `connect` that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A TCP listener accepted a connection: the reply-less event that a new socket
/// exists, named after its listener (`s3.1`, `s3.2`, … for listener `s3`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The event's id in the session.
    pub id: EventId,
    /// The new socket.
    pub socket: SocketId,
    /// The listener that accepted it.
    pub listener: SocketId,
    /// The new socket's address.
    pub local: SocketAddr,
    /// Who connected.
    pub peer: SocketAddr,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

/// Bytes a TCP socket wrote (`out`: what one write call handed the kernel) or read
/// (`in`: what one read call returned). A stream has no message boundaries: two
/// writes may come out of one read, one write out of several.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket.
    pub socket: SocketId,
    /// Written (`out`) or read (`in`).
    pub dir: Direction,
    /// The socket's address.
    pub local: SocketAddr,
    /// The other end of the connection.
    pub peer: SocketAddr,
    /// Where in that direction's stream these bytes start (0 for the first byte).
    pub offset: u64,
    /// How many bytes.
    pub len: usize,
    /// The bytes, standard base64.
    pub payload_b64: String,
    /// For an `out`, just before the write; for an `in`, the kernel's receive
    /// timestamp of the newest bytes read. Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `send` that caused an `out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// How a TCP stream ended for a socket.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum StreamEndReason {
    /// A read returned 0 bytes: the peer shut down its writing half (its FIN arrived).
    /// The socket may still write.
    Eof,
    /// The peer reset the connection (an RST): ECONNRESET.
    Reset,
    /// A connect was refused: nothing listens there (the SYN was answered with RST).
    Refused,
    /// Another error ended the connection (`error` says which).
    Error,
}

/// A TCP connection's stream ended for the socket.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket.
    pub socket: SocketId,
    /// How.
    pub reason: StreamEndReason,
    /// The OS's words, for a reset, a refusal or an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The bytes read in all, then.
    pub read: u64,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `connect` that was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A TCP socket shut down one or both halves of its connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShutDown {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket.
    pub socket: SocketId,
    /// Which half.
    pub how: crate::command::ShutdownHow,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `shutdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// The session started being recorded.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RecordingStarted {
    /// The event's id in the session.
    pub id: EventId,
    /// The recording's id in the store (`GET /api/recordings/{recording}`).
    pub recording: i64,
    /// Its name.
    pub name: String,
    /// The first event it holds (the oldest the session's log still had).
    pub from: EventId,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `record_start` (absent when the server records every session,
    /// `--record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A run began: the datagrams sent from this moment until the next run's mark are its
/// own, for the figures per run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RunMarked {
    /// The event's id in the session.
    pub id: EventId,
    /// The run's number in the session, from 1.
    pub run: u32,
    /// Its name.
    pub name: String,
    /// Nanoseconds since the session began: where the run starts.
    pub t_ns: u64,
    /// The `req` of the `mark_run` (absent for a run a generator's start marked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// The session's recording stopped: every event up to this one is in the store.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RecordingStopped {
    /// The event's id in the session.
    pub id: EventId,
    /// The recording's id in the store.
    pub recording: i64,
    /// How many events it holds.
    pub events: u64,
    /// How many of them are datagrams.
    pub datagrams: u64,
    /// Why it stopped when no one asked (the store reached `--max-store-bytes`, or
    /// failed); absent when it stopped because it was told to or the session ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `record_stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A socket stopped or resumed reading.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket.
    pub socket: SocketId,
    /// Not reading (true), or reading again (false).
    pub paused: bool,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `pause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A socket joined or left a multicast group.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket.
    pub socket: SocketId,
    /// The group.
    pub group: std::net::IpAddr,
    /// The interface, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Joined (true) or left (false).
    pub joined: bool,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// What an ICMP error said of a datagram.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum UnreachableReason {
    /// Nobody is listening on that port (ICMP type 3 code 3; ICMPv6 type 1 code 4):
    /// the kernel there refused it. A connected socket's next call fails with
    /// ECONNREFUSED.
    PortUnreachable,
    /// The host cannot be reached (ICMP type 3 code 1; ICMPv6 type 1 code 3).
    HostUnreachable,
    /// The network cannot be reached (ICMP type 3 code 0; ICMPv6 type 1 code 0).
    NetUnreachable,
    /// A firewall refused it (ICMP type 3 codes 9, 10, 13; ICMPv6 type 1 code 1).
    Prohibited,
    /// Too big for a link on the way (ICMP type 3 code 4; ICMPv6 type 2).
    TooBig,
    /// Another ICMP error (`icmp_type` and `icmp_code` say which).
    Other,
}

impl UnreachableReason {
    /// In plain words.
    pub fn describe(self) -> &'static str {
        match self {
            UnreachableReason::PortUnreachable => {
                "refused: nothing listens on that port, and its kernel answered with ICMP port unreachable"
            }
            UnreachableReason::HostUnreachable => {
                "the host cannot be reached (ICMP host unreachable)"
            }
            UnreachableReason::NetUnreachable => {
                "the network cannot be reached (ICMP network unreachable)"
            }
            UnreachableReason::Prohibited => {
                "a firewall refused it (ICMP administratively prohibited)"
            }
            UnreachableReason::TooBig => {
                "too big for a link on the way (ICMP fragmentation needed / packet too big)"
            }
            UnreachableReason::Other => "an ICMP error came back",
        }
    }

    /// A short name, for a table cell.
    pub fn short(self) -> &'static str {
        match self {
            UnreachableReason::PortUnreachable => "refused: port unreachable",
            UnreachableReason::HostUnreachable => "host unreachable",
            UnreachableReason::NetUnreachable => "network unreachable",
            UnreachableReason::Prohibited => "prohibited",
            UnreachableReason::TooBig => "too big",
            UnreachableReason::Other => "ICMP error",
        }
    }
}

/// A datagram a lab socket sent came back as an ICMP error, read from the socket's
/// error queue (IP_RECVERR): what a program only learns from a connected socket's
/// next call failing (ECONNREFUSED), or not at all.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket that sent the datagram.
    pub socket: SocketId,
    /// Its address.
    pub local: Endpoint,
    /// Where the datagram was sent.
    pub to: SocketAddr,
    /// What the error said.
    pub reason: UnreachableReason,
    /// The ICMP message's type and code.
    pub icmp_type: u8,
    /// See `icmp_type`.
    pub icmp_code: u8,
    /// Who sent the ICMP error (a router, or the destination host itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<std::net::IpAddr>,
    /// The OS's words for it (for port unreachable: "Connection refused").
    pub error: String,
    /// The start of the datagram, as the ICMP error quoted it.
    pub len: usize,
    /// Those bytes, standard base64.
    pub payload_b64: String,
    /// When the error reached the socket (the kernel's timestamp), nanoseconds since
    /// the session began.
    pub t_ns: u64,
}

/// A socket was closed: the reply to `close`, or the end of the socket for another reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The event's id in the session.
    pub id: EventId,
    /// The closed socket.
    pub socket: SocketId,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `close` that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// One datagram a session's socket sent or received.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The event's id in the session.
    pub id: EventId,
    /// The socket that sent or received it.
    pub socket: SocketId,
    /// Sent (`out`) or received (`in`).
    pub dir: Direction,
    /// The socket's own address.
    pub local: Endpoint,
    /// The other end: the destination of an `out`, the source of an `in` (`unix:` for
    /// a Unix sender that never bound a name: nothing can answer it).
    pub peer: Endpoint,
    /// The payload's length in bytes.
    pub len: usize,
    /// The payload, standard base64.
    pub payload_b64: String,
    /// Nanoseconds on the server's monotonic clock since the session began.
    pub t_ns: u64,
    /// The `req` of the `send` that caused an `out`; absent on `in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
    /// On an `in`: the datagram was longer than the socket's read size and was cut to
    /// `len` bytes (MSG_TRUNC); this is how long it was. The rest is gone, as with
    /// `recvfrom(bufsize)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_from: Option<usize>,
}

/// A TCP link was created: the reply to `tcp_link_create`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TcpLinkCreated {
    /// The event's id in the session.
    pub id: EventId,
    /// The new link's id (`t1`, `t2`, …).
    pub link: LinkId,
    /// Where clients connect to.
    pub listen: SocketAddr,
    /// Where it connects for each client.
    pub target: SocketAddr,
    /// Its settings.
    pub settings: crate::link::TcpLinkSettings,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A TCP link accepted a client and connected to its target for it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TcpLinkConn {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// The connection's number on the link, from 1.
    pub conn: u64,
    /// The client.
    pub client: SocketAddr,
    /// The address the link connected to the target from (absent when it could not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<SocketAddr>,
    /// Why the target could not be reached (the client is then reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

/// A chunk of a stream a TCP link read and passed on.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TcpLinkChunk {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// The connection.
    pub conn: u64,
    /// Which way.
    pub dir: LinkDir,
    /// Where the chunk starts in that direction's stream.
    pub offset: u64,
    /// How many bytes.
    pub len: usize,
    /// How long the link holds it (latency, jitter and the bandwidth's queue).
    pub delay_ns: u64,
    /// In how many pieces it is written (1 unless sliced).
    pub pieces: u32,
    /// When the link read it (nanoseconds since the session began).
    pub t_ns: u64,
}

/// How a TCP link ended a direction of a connection.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TcpLinkEndHow {
    /// The end of the stream passed on (a FIN), after the close delay.
    Fin,
    /// The connection reset at both ends (`reset_after_bytes`, or an end that failed).
    Reset,
}

/// A TCP link passed on the end of a stream, or reset a connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TcpLinkEnd {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// The connection.
    pub conn: u64,
    /// Which way.
    pub dir: LinkDir,
    /// How.
    pub how: TcpLinkEndHow,
    /// Why, in words.
    pub reason: String,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

/// A link was created: the reply to `link_create`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LinkCreated {
    /// The event's id in the session.
    pub id: EventId,
    /// The new link's id.
    pub link: LinkId,
    /// The address clients send to (the real port when 0 was asked for).
    pub listen: SocketAddr,
    /// The address the link sends from towards the target.
    pub upstream: SocketAddr,
    /// Where datagrams go.
    pub target: SocketAddr,
    /// Its settings.
    pub settings: LinkSettings,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A link's settings changed: the reply to `link_update`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LinkUpdated {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// The settings now in force.
    pub settings: LinkSettings,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A link was deleted: the reply to `link_delete`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LinkDeleted {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A link's client changed: a datagram came to its listen address from an address other
/// than the last one, and the target's replies go there from now on. Logged before that
/// datagram's `link_packet`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LinkClient {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// The new client.
    pub client: SocketAddr,
    /// The client before it, absent for the link's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<SocketAddr>,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

/// A link's decision on one datagram, made when it arrived at the link.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LinkPacket {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// Which way it crosses.
    pub dir: LinkDir,
    /// Its number among this direction's arrivals (0, 1, 2, ...).
    pub seq: u64,
    /// Who sent it.
    pub from: SocketAddr,
    /// Where it goes (for `t2c`, the client; absent when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<SocketAddr>,
    /// Its payload length as it arrived.
    pub len: usize,
    /// Its payload as it arrived, standard base64.
    pub payload_b64: String,
    /// Forwarded or dropped.
    pub fate: LinkFate,
    /// Why it was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DropReason>,
    /// Planned time in the link (queue + delay + jitter), nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ns: Option<u64>,
    /// Of that, time queued at the bottleneck, nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ns: Option<u64>,
    /// Sent twice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicated: bool,
    /// The offset of the byte changed, if corrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupted_at: Option<usize>,
    /// The bits flipped in that byte (the byte that left is the one that arrived XOR
    /// this), if corrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_mask: Option<u8>,
    /// The length it was cut to, if truncated to the MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_to: Option<usize>,
    /// Held back until this many later datagrams have overtaken it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for: Option<u32>,
    /// What the OS said when the link could not send it (reason `send_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Nanoseconds since the session began, at arrival (for `send_failed`, when the
    /// send failed).
    pub t_ns: u64,
}

/// Datagrams one direction of a link sent on in one pass of its timer: the outcome
/// beside each `link_packet`'s plan.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LinkSent {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// Which way they crossed.
    pub dir: LinkDir,
    /// Each datagram sent, in the order they left (at most
    /// [`crate::limits::MAX_LINK_SENT_PER_EVENT`]).
    pub sent: Vec<Departure>,
    /// Nanoseconds since the session began, when the first of them left.
    pub t_ns: u64,
}

/// One datagram a link sent on.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    /// Its `seq` in the direction (the `link_packet` that decided it).
    pub seq: u64,
    /// Nanoseconds since the session began, read just before the send syscall.
    pub t_ns: u64,
    /// How much later than planned it left, nanoseconds (0: on time).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late_ns: u64,
    /// The second copy of a duplicated datagram.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A link's counters.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// The event's id in the session.
    pub id: EventId,
    /// The link.
    pub link: LinkId,
    /// Client → target.
    pub c2t: LinkCounters,
    /// Target → client.
    pub t2c: LinkCounters,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

/// A traffic generator started: the reply to `generate`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GeneratorStarted {
    /// The event's id in the session.
    pub id: EventId,
    /// The generator's id (`"g1"`, ...), for `generate_stop`.
    pub generator: GeneratorId,
    /// The sending socket.
    pub socket: SocketId,
    /// The destination.
    pub to: Endpoint,
    /// How many datagrams it will send.
    pub count: u64,
    /// Datagrams per second.
    pub rate: f64,
    /// The sequence header's flow id (absent without a header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_flow: Option<u32>,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A traffic generator finished.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GeneratorDone {
    /// The event's id in the session.
    pub id: EventId,
    /// The generator.
    pub generator: GeneratorId,
    /// How many datagrams it handed to its socket.
    pub sent: u64,
    /// Whether it was stopped early (by `generate_stop` or the socket closing).
    pub stopped: bool,
    /// Why it stopped early, when something failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of a `generate_stop` that stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// The flow analysis' settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AnalysisConfig {
    /// The event's id in the session.
    pub id: EventId,
    /// How long a datagram may be in flight before it counts as lost, ms.
    pub loss_timeout_ms: u64,
    /// The part of each payload that pairs replies with requests, if one is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_field: Option<crate::flow::MatchField>,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// Events a viewer missed for good: the ids `from..=to`, `count` of them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The first missing id.
    pub from: EventId,
    /// The last missing id.
    pub to: EventId,
    /// How many events are missing (`to - from + 1`).
    pub count: u64,
}

/// Events about single datagrams a viewer that fell behind was not sent: `count` of
/// the ids `from..=to` (the others in that range were sent), logged between `from_ns`
/// and `to_ns`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Thinned {
    /// The first id passed over.
    pub from: EventId,
    /// The last id passed over.
    pub to: EventId,
    /// How many events were not sent.
    pub count: u64,
    /// The earliest time among them, ns since the session began.
    pub from_ns: u64,
    /// The latest time among them, ns.
    pub to_ns: u64,
}

/// How the viewer is sent events now (`keep_up`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KeepingUp {
    /// How far behind it may fall before it is thinned (0: never thinned).
    pub behind: u64,
    /// How many events a second it takes at most (0: as many as come).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate: u64,
    /// The `req` of the `keep_up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// The session's datagrams counted per lane and time bucket (`aggregate`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Aggregates {
    /// Where the first bucket begins, ns since the session began.
    pub from_ns: u64,
    /// Each bucket's width, ns (at least the width the server counts in).
    pub bucket_ns: u64,
    /// The width the server counts in, ns: no answer is finer (it starts at a
    /// millisecond and doubles whenever a session outgrows its buckets).
    pub resolution_ns: u64,
    /// How many buckets each lane's counts hold.
    pub buckets: u32,
    /// The lanes with anything in the range.
    pub lanes: Vec<LaneCounts>,
    /// Datagrams the server counted in one lane standing for every address past its
    /// lane limit (`--max-aggregate-lanes`), if any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub others: u64,
    /// The `req` of the `aggregate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// One lane's counts per bucket (each list has `buckets` entries; a list of zeros is
/// left out).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LaneCounts {
    /// The lane: a lab socket's or an outside program's address, or a link's listen
    /// address.
    pub lane: Endpoint,
    /// Datagrams sent from it (an outside program's: received by a lab socket from it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<u32>,
    /// Datagrams a lab socket received.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub received: Vec<u32>,
    /// Datagrams sent from it that were lost or went unanswered (counted where they
    /// were sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<u32>,
    /// Datagrams sent from it that arrived out of order or late.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reordered: Vec<u32>,
    /// Extra copies of datagrams sent from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicated: Vec<u32>,
    /// Datagrams a link (this lane) passed on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded: Vec<u32>,
    /// Datagrams a link (this lane) dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<u32>,
}

/// The events of a time range (`window`), as a viewer gets them, in id order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Window {
    /// The range asked for, ns.
    pub from_ns: u64,
    /// Its end (inclusive), ns.
    pub to_ns: u64,
    /// The events.
    pub events: Vec<Event>,
    /// Whether these are all of the range's events: false when the log had already
    /// dropped some of them, or the answer reached its limit (of events, or 4 MB).
    pub complete: bool,
    /// The `req` of the `window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
}

/// A refused command.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorEvent {
    /// The `req` of the refused command, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<i64>,
    /// A stable, machine-readable code.
    pub code: ErrorCode,
    /// What went wrong, in plain words.
    pub message: String,
}

/// Stable error codes. Clients switch on these; the messages are for people.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, unknown type, missing or mistyped field.
    BadRequest,
    /// An address that cannot be parsed or used.
    BadAddress,
    /// The address is already bound by another socket.
    AddressInUse,
    /// The OS refused, for example a port below 1024 without privileges.
    PermissionDenied,
    /// The payload is larger than a UDP datagram can carry.
    PayloadTooLarge,
    /// No socket with that id in this session.
    UnknownSocket,
    /// No link with that id in this session.
    UnknownLink,
    /// No running generator with that id in this session.
    UnknownGenerator,
    /// The session a viewer asked to come back to has ended; it got a new one.
    UnknownSession,
    /// The server's address policy refuses this address.
    Forbidden,
    /// A server limit (sockets per session, ...) would be exceeded.
    LimitExceeded,
    /// Any other failure reported by the operating system.
    IoError,
    /// A code this client does not know yet (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadAddress => "bad_address",
            ErrorCode::AddressInUse => "address_in_use",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnknownSocket => "unknown_socket",
            ErrorCode::UnknownLink => "unknown_link",
            ErrorCode::UnknownGenerator => "unknown_generator",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::IoError => "io_error",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// The event's JSON text, as the server sends it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event always serializes")
    }

    /// Parses one frame from the server.
    pub fn from_json(text: &str) -> Result<Event, serde_json::Error> {
        // The derived reader of a tagged enum copies each event into a buffer of its
        // own (serde's `Content`) to find the tag, then reads the buffer. The events a
        // fast session sends most, which a server writes with their tag first, are read
        // straight into their type; anything else takes the derived path. Both read an
        // event the same (a test holds them to it on every example in the protocol's
        // document and on generated datagrams).
        #[derive(Deserialize)]
        struct RawBatch<'a> {
            #[serde(borrow)]
            events: Vec<&'a serde_json::value::RawValue>,
        }
        match tag_first(text) {
            Some("batch") => {
                let raw: RawBatch = serde_json::from_str(text)?;
                let events = raw
                    .events
                    .into_iter()
                    .map(|e| Event::from_json(e.get()))
                    .collect::<Result<_, _>>()?;
                Ok(Event::Batch { events })
            }
            Some("datagram") => serde_json::from_str(text).map(Event::Datagram),
            Some("link_packet") => serde_json::from_str(text).map(Event::LinkPacket),
            Some("link_sent") => serde_json::from_str(text).map(Event::LinkSent),
            Some("fate") => serde_json::from_str(text).map(Event::Fate),
            Some("thinned") => serde_json::from_str(text).map(Event::Thinned),
            _ => serde_json::from_str(text),
        }
    }

    /// The events a frame carries: the events of a batch, or the event itself.
    pub fn flatten(self) -> Vec<Event> {
        match self {
            Event::Batch { events } => events,
            other => vec![other],
        }
    }

    /// The `req` of the command that caused the event, if any.
    pub fn req(&self) -> Option<i64> {
        match self {
            Event::Bound(e) => e.req,
            Event::Closed(e) => e.req,
            Event::Datagram(e) => e.req,
            Event::Connected(e) => e.req,
            Event::Stream(e) => e.req,
            Event::StreamEnd(e) => e.req,
            Event::ShutDown(e) => e.req,
            Event::Paused(e) => e.req,
            Event::Membership(e) => e.req,
            Event::LinkCreated(e) => e.req,
            Event::TcpLinkCreated(e) => e.req,
            Event::LinkUpdated(e) => e.req,
            Event::LinkDeleted(e) => e.req,
            Event::GeneratorStarted(e) => e.req,
            Event::GeneratorDone(e) => e.req,
            Event::AnalysisConfig(e) => e.req,
            Event::RecordingStarted(e) => e.req,
            Event::RunMarked(e) => e.req,
            Event::RecordingStopped(e) => e.req,
            Event::Error(e) => e.req,
            Event::KeepingUp(e) => e.req,
            Event::Aggregates(e) => e.req,
            Event::Window(e) => e.req,
            Event::Hello(_)
            | Event::Gap(_)
            | Event::Thinned(_)
            | Event::LinkPacket(_)
            | Event::LinkSent(_)
            | Event::LinkClient(_)
            | Event::KernelDrops(_)
            | Event::Unreachable(_)
            | Event::Accepted(_)
            | Event::TcpLinkConn(_)
            | Event::TcpLinkChunk(_)
            | Event::TcpLinkEnd(_)
            | Event::LinkStats(_)
            | Event::Fate(_)
            | Event::FlowStats(_)
            | Event::Batch { .. } => None,
        }
    }

    /// The event's id in the session's log, for the kinds that are logged.
    pub fn id(&self) -> Option<EventId> {
        match self {
            Event::Bound(e) => Some(e.id),
            Event::Closed(e) => Some(e.id),
            Event::Datagram(e) => Some(e.id),
            Event::KernelDrops(e) => Some(e.id),
            Event::Connected(e) => Some(e.id),
            Event::Unreachable(e) => Some(e.id),
            Event::Accepted(e) => Some(e.id),
            Event::Stream(e) => Some(e.id),
            Event::StreamEnd(e) => Some(e.id),
            Event::ShutDown(e) => Some(e.id),
            Event::Paused(e) => Some(e.id),
            Event::Membership(e) => Some(e.id),
            Event::LinkCreated(e) => Some(e.id),
            Event::TcpLinkCreated(e) => Some(e.id),
            Event::TcpLinkConn(e) => Some(e.id),
            Event::TcpLinkChunk(e) => Some(e.id),
            Event::TcpLinkEnd(e) => Some(e.id),
            Event::LinkUpdated(e) => Some(e.id),
            Event::LinkDeleted(e) => Some(e.id),
            Event::LinkClient(e) => Some(e.id),
            Event::LinkPacket(e) => Some(e.id),
            Event::LinkSent(e) => Some(e.id),
            Event::LinkStats(e) => Some(e.id),
            Event::Fate(e) => Some(e.id),
            Event::FlowStats(e) => Some(e.id),
            Event::GeneratorStarted(e) => Some(e.id),
            Event::GeneratorDone(e) => Some(e.id),
            Event::AnalysisConfig(e) => Some(e.id),
            Event::RecordingStarted(e) => Some(e.id),
            Event::RunMarked(e) => Some(e.id),
            Event::RecordingStopped(e) => Some(e.id),
            Event::Hello(_)
            | Event::Error(_)
            | Event::Gap(_)
            | Event::Thinned(_)
            | Event::KeepingUp(_)
            | Event::Aggregates(_)
            | Event::Window(_)
            | Event::Batch { .. } => None,
        }
    }

    /// When the event happened, ns since the session began, for the kinds that are
    /// logged (the kernel's stamp where the event has one).
    pub fn t_ns(&self) -> Option<u64> {
        match self {
            Event::Bound(e) => Some(e.t_ns),
            Event::Closed(e) => Some(e.t_ns),
            Event::Datagram(e) => Some(e.t_ns),
            Event::KernelDrops(e) => Some(e.t_ns),
            Event::Connected(e) => Some(e.t_ns),
            Event::Unreachable(e) => Some(e.t_ns),
            Event::Accepted(e) => Some(e.t_ns),
            Event::Stream(e) => Some(e.t_ns),
            Event::StreamEnd(e) => Some(e.t_ns),
            Event::ShutDown(e) => Some(e.t_ns),
            Event::Paused(e) => Some(e.t_ns),
            Event::Membership(e) => Some(e.t_ns),
            Event::LinkCreated(e) => Some(e.t_ns),
            Event::TcpLinkCreated(e) => Some(e.t_ns),
            Event::TcpLinkConn(e) => Some(e.t_ns),
            Event::TcpLinkChunk(e) => Some(e.t_ns),
            Event::TcpLinkEnd(e) => Some(e.t_ns),
            Event::LinkUpdated(e) => Some(e.t_ns),
            Event::LinkDeleted(e) => Some(e.t_ns),
            Event::LinkClient(e) => Some(e.t_ns),
            Event::LinkPacket(e) => Some(e.t_ns),
            Event::LinkSent(e) => Some(e.t_ns),
            Event::LinkStats(e) => Some(e.t_ns),
            Event::Fate(e) => Some(e.t_ns),
            Event::FlowStats(e) => Some(e.t_ns),
            Event::GeneratorStarted(e) => Some(e.t_ns),
            Event::GeneratorDone(e) => Some(e.t_ns),
            Event::AnalysisConfig(e) => Some(e.t_ns),
            Event::RecordingStarted(e) => Some(e.t_ns),
            Event::RunMarked(e) => Some(e.t_ns),
            Event::RecordingStopped(e) => Some(e.t_ns),
            Event::Hello(_)
            | Event::Error(_)
            | Event::Gap(_)
            | Event::Thinned(_)
            | Event::KeepingUp(_)
            | Event::Aggregates(_)
            | Event::Window(_)
            | Event::Batch { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests;
