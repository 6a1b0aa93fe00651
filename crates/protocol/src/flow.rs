//! Flow analysis on the wire: what became of each datagram, and per-flow figures.
//! The definitions are in `socklab-analysis` and docs/protocol.md.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::event::{EventId, SocketId};
use crate::link::{DropReason, LinkId};
use crate::payload::Payload;

/// What became of a datagram.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FateKind {
    /// Received (the first copy).
    Delivered,
    /// An extra copy of a datagram already received.
    Duplicate,
    /// It will not be received.
    Lost,
    /// A reply from an echo-like peer matched to its request.
    Reply,
    /// A request no reply came for.
    Unanswered,
    /// The analysis stopped following it before it could conclude: too many datagrams
    /// were in flight at once, or its flow was retired to make room for a new one.
    Untracked,
}

/// Why a datagram counts as lost (or a request unanswered).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LossCause {
    /// A link dropped it (see `reason`).
    Link,
    /// Not received within the loss timeout, and the receiving lab socket reported that
    /// the kernel dropped datagrams (its receive buffer was full): the kernel dropped it.
    Kernel,
    /// Not received within the loss timeout.
    Timeout,
}

/// How a flow's figures were obtained.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FlowMethod {
    /// Both ends are lab sockets: every receive matched to its send.
    Matched,
    /// From the sequence header, as the receiver sees it (iperf3's definitions).
    Sequenced,
    /// Replies from an echo-like peer matched to requests.
    Echo,
}

/// A conclusion about one datagram.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Fate {
    /// The event's id in the session.
    pub id: EventId,
    /// What became of it.
    pub fate: FateKind,
    /// The `out` event (for `reply` and `unanswered`: the request).
    pub send: EventId,
    /// The `in` event (for `reply`: the response), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv: Option<EventId>,
    /// The flow's source (the original sender, also across a link).
    pub src: SocketAddr,
    /// The flow's destination (the final receiver, also across a link).
    pub dst: SocketAddr,
    /// One-way latency (`delivered`) or round-trip time (`reply`), nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<u64>,
    /// For a reordered delivery: how far out of place, in datagrams of the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reordered_by: Option<u64>,
    /// The delivery came after its loss timeout (it had been counted lost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// Why it is lost or unanswered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<LossCause>,
    /// The link's reason, when a link dropped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DropReason>,
    /// The `link_packet` event in which a link decided this datagram's fate, when it
    /// crossed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<EventId>,
    /// Nanoseconds since the session began, when the conclusion was reached.
    pub t_ns: u64,
}

/// Latency percentiles, nanoseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// The figures of one flow.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FlowSummary {
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// The link the flow crosses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<LinkId>,
    /// How the figures were obtained.
    pub method: FlowMethod,
    /// The sequenced stream's id (`sequenced` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_flow: Option<u32>,
    /// Sent (sequenced: highest sequence number + 1).
    pub sent: u64,
    /// Received, duplicates included (echo: replies).
    pub received: u64,
    /// Lost (echo: unanswered).
    pub lost: u64,
    /// `lost` as a percentage of `sent`.
    pub lost_pct: f64,
    /// Received after a datagram of the flow sent later.
    pub reordered: u64,
    /// Extra copies received.
    pub duplicated: u64,
    /// Sent, neither received nor lost yet.
    pub in_flight: u64,
    /// One-way latency (echo: round-trip time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<Latency>,
    /// RFC 3550 interarrival jitter, nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ns: Option<f64>,
}

/// The figures of every flow of the session.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FlowStats {
    /// The event's id in the session.
    pub id: EventId,
    /// Every flow.
    pub flows: Vec<FlowSummary>,
    /// Flows retired so far to keep the table within its limit (the idle longest go
    /// first); their figures are no longer listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retired_flows: u64,
    /// Datagrams the analysis stopped following before a conclusion (`untracked`
    /// fates).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untracked: u64,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How much traffic a generator sends.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// This many datagrams.
    Count(u64),
    /// For this many milliseconds.
    DurationMs(u64),
}

/// What a generator sends: the settings of the `generate` command.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GeneratorSpec {
    /// The sending socket.
    pub socket: SocketId,
    /// The destination, `"host:port"`.
    pub to: String,
    /// How much: `{"count": N}` or `{"duration_ms": N}`.
    pub amount: Amount,
    /// Datagrams per second (or give `interval_ms` instead).
    #[serde(default)]
    pub rate: f64,
    /// Milliseconds between datagrams; when present it sets the rate (1000 / interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<f64>,
    /// Payload size in bytes (with `sequence`, at least the 24-byte header).
    #[serde(default = "default_size")]
    pub size: usize,
    /// A fixed payload instead of `size` zero bytes (after the header, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Payload>,
    /// Put the sequence header in front of each payload.
    #[serde(default = "default_true")]
    pub sequence: bool,
}

fn default_size() -> usize {
    64
}

fn default_true() -> bool {
    true
}
