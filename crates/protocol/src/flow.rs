//! Flow analysis on the wire: what became of each datagram, and per-flow figures.
//! The definitions are in `socklab-analysis` and docs/protocol.md.

use crate::endpoint::Endpoint;

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, LinkId, SocketId};
use crate::link::DropReason;
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
    /// Not received within the loss timeout, and no socket on this machine is bound to
    /// the (loopback) address it was sent to: the kernel discarded it on arrival, and
    /// UDP does not tell an unconnected sender.
    NoListener,
    /// Refused by the destination: nobody is listening on that port, and its kernel
    /// answered with an ICMP error (port unreachable) that reached the sending socket
    /// (an `unreachable` event).
    Refused,
    /// The network said the destination cannot be reached (another ICMP error than
    /// port unreachable: an `unreachable` event says which).
    Unreachable,
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
    /// The sender is not a lab socket and the flow crosses a link: the link's account
    /// (`sent`: arrived at the link; `received`: sent on; `lost`: dropped; latency: the
    /// time in the link, measured).
    Link,
    /// A TCP connection's direction (lab sockets' writes and reads): `sent` and
    /// `received` are bytes written and read, `in_flight` bytes written and not read
    /// yet, latency each write's time until its last byte reached the reader.
    Stream,
}

/// The part of each payload that identifies a datagram (a sequence number a protocol
/// carries): `len` bytes from `offset`. A reply whose part equals an open request's
/// answers that request, even when the rest of its bytes differ.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatchField {
    /// Where it starts, bytes from the start of the payload.
    pub offset: u32,
    /// How long it is, bytes (1 to [`MatchField::MAX_LEN`]).
    pub len: u32,
}

impl MatchField {
    /// The longest field.
    pub const MAX_LEN: u32 = 64;

    /// Checks the field fits in a UDP payload; the error says what is wrong in plain
    /// words.
    pub fn check(self) -> Result<(), String> {
        if !(1..=Self::MAX_LEN).contains(&self.len) {
            return Err(format!(
                "the match field's length must be from 1 to {} bytes, not {}",
                Self::MAX_LEN,
                self.len
            ));
        }
        let end = u64::from(self.offset) + u64::from(self.len);
        let max = crate::limits::MAX_UDP_PAYLOAD_V6 as u64;
        if end > max {
            return Err(format!(
                "the match field ends at byte {end}, past the largest UDP payload ({max} bytes)"
            ));
        }
        Ok(())
    }

    /// The field's bytes in `payload`, if it is long enough.
    pub fn of(self, payload: &[u8]) -> Option<&[u8]> {
        let start = self.offset as usize;
        payload.get(start..start.checked_add(self.len as usize)?)
    }
}

/// How many datagrams of a flow a link dropped for one reason.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropCount {
    /// Why.
    pub reason: DropReason,
    /// How many.
    pub count: u64,
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
    pub src: Endpoint,
    /// The flow's destination (the final receiver, also across a link).
    pub dst: Endpoint,
    /// One-way latency (`delivered`) or round-trip time (`reply`), nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<u64>,
    /// For a reordered delivery: how far out of place, in datagrams of the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reordered_by: Option<u64>,
    /// The delivery came after its loss timeout (it had been counted lost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// A `reply` paired by order: its bytes equal no open request (an ack, an
    /// upper-cased echo), so it answers the oldest one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_order: bool,
    /// A `reply` paired by the match field (`set_match_field`): its bytes differ from
    /// the request's, but the field is equal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_field: bool,
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

/// The quantiles of a flow's `latency_cdf_ns`: its latency distribution in sixteen
/// points, finer in the tail.
pub const LATENCY_CDF_QUANTILES: [f64; 16] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0,
];

/// The figures of one flow.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FlowSummary {
    /// Source.
    pub src: Endpoint,
    /// Destination.
    pub dst: Endpoint,
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
    /// The latency (as `latency_ns`) at each of [`LATENCY_CDF_QUANTILES`]: the
    /// distribution, for a CDF plot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_cdf_ns: Vec<u64>,
    /// What a link dropped, per reason (`link` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<DropCount>,
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
    /// The figures of each run (`mark_run`) whose figures changed since the last
    /// `flow_stats`: the datagrams sent in it, however late their fates came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunFlows>,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
}

/// One run's figures: each flow that sent in it, counted by the server whatever a
/// viewer was sent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunFlows {
    /// The run's number (its `run_marked`'s `run`).
    pub run: u32,
    /// Each flow that sent in it (`matched` or `echo`; `latency_ns` without a CDF, no
    /// jitter).
    pub flows: Vec<FlowSummary>,
    /// Some of its flows were not counted: the server follows at most `--max-flows`
    /// (run, flow) figures together.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
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

/// How fast a generator sends: a rate, or the time between two datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeneratorPace {
    /// Datagrams per second (`"rate"` on the wire).
    Rate(f64),
    /// Milliseconds between datagrams (`"interval_ms"`).
    IntervalMs(f64),
}

/// What each datagram of a generator carries (after the sequence header, if any).
#[derive(Debug, Clone, PartialEq)]
pub enum GeneratorPayload {
    /// This many bytes in all, zeros after the header (`"size"`; 64 when the command
    /// gives neither).
    Size(usize),
    /// These bytes after the header (`"pattern"`).
    Pattern(Payload),
}

/// What a generator sends: the settings of the `generate` command.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(from = "GeneratorSpecWire", into = "GeneratorSpecWire")]
pub struct GeneratorSpec {
    /// The sending socket.
    pub socket: SocketId,
    /// The destination, `"host:port"`.
    pub to: String,
    /// How much: `{"count": N}` or `{"duration_ms": N}`.
    pub amount: Amount,
    /// How fast.
    pub pace: GeneratorPace,
    /// What each datagram carries.
    pub payload: GeneratorPayload,
    /// Put the sequence header in front of each payload.
    pub sequence: bool,
}

/// The `generate` command as written on the wire: either/or fields side by side.
/// `interval_ms`, when present, sets the pace (a `rate` beside it is ignored, as
/// clients written before the pace was one field send `"rate":0` with it); `pattern`,
/// when present, the payload.
#[derive(Serialize, Deserialize)]
struct GeneratorSpecWire {
    socket: SocketId,
    to: String,
    amount: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<Payload>,
    #[serde(default = "default_true")]
    sequence: bool,
}

/// The payload size when a `generate` command gives neither `size` nor `pattern`.
pub const DEFAULT_GENERATOR_SIZE: usize = 64;

impl From<GeneratorSpecWire> for GeneratorSpec {
    fn from(w: GeneratorSpecWire) -> Self {
        GeneratorSpec {
            socket: w.socket,
            to: w.to,
            amount: w.amount,
            // No pace at all is a rate of 0, which the server refuses by name.
            pace: match w.interval_ms {
                Some(ms) => GeneratorPace::IntervalMs(ms),
                None => GeneratorPace::Rate(w.rate.unwrap_or(0.0)),
            },
            payload: match w.pattern {
                Some(p) => GeneratorPayload::Pattern(p),
                None => GeneratorPayload::Size(w.size.unwrap_or(DEFAULT_GENERATOR_SIZE)),
            },
            sequence: w.sequence,
        }
    }
}

impl From<GeneratorSpec> for GeneratorSpecWire {
    fn from(s: GeneratorSpec) -> Self {
        let (rate, interval_ms) = match s.pace {
            GeneratorPace::Rate(r) => (Some(r), None),
            GeneratorPace::IntervalMs(ms) => (None, Some(ms)),
        };
        let (size, pattern) = match s.payload {
            GeneratorPayload::Size(n) => (Some(n), None),
            GeneratorPayload::Pattern(p) => (None, Some(p)),
        };
        GeneratorSpecWire {
            socket: s.socket,
            to: s.to,
            amount: s.amount,
            rate,
            interval_ms,
            size,
            pattern,
            sequence: s.sequence,
        }
    }
}

fn default_true() -> bool {
    true
}
