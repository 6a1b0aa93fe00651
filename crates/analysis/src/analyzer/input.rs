//! What the analyzer takes in (a session's events, as it needs them) and what it
//! concludes.

use std::net::SocketAddr;

use socklab_protocol::link::{DropReason, LinkDir, LinkFate, LinkId};
use socklab_protocol::{Endpoint, EventId};

use crate::Nanos;

/// A flow: (source, destination) as the application sees them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The original sender.
    pub src: Endpoint,
    /// The final receiver.
    pub dst: Endpoint,
}

/// One event of the session, as the analyzer needs it.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A lab socket was bound at `addr`.
    Bound {
        /// Its address.
        addr: &'a Endpoint,
        /// How many bytes of each datagram it reads (`recv_size`; None: all): a
        /// longer one arrives cut to this length.
        read_size: Option<usize>,
    },
    /// The lab socket at `addr` was closed.
    Closed {
        /// Its address.
        addr: &'a Endpoint,
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
        local: &'a Endpoint,
        /// The destination.
        peer: &'a Endpoint,
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
        local: &'a Endpoint,
        /// The source.
        peer: &'a Endpoint,
        /// The payload.
        bytes: &'a [u8],
    },
    /// The kernel dropped datagrams at the lab socket at `addr` (its receive buffer was
    /// full).
    KernelDrops {
        /// The socket's address.
        addr: &'a Endpoint,
        /// How many, since the previous report.
        dropped: u64,
    },
    /// A lab TCP socket at `local` wrote (`out`) or read bytes of its connection to
    /// `peer`: `len` bytes at `offset` of that direction's stream.
    Stream {
        /// When (a read: the kernel's arrival stamp of its newest bytes).
        t_ns: Nanos,
        /// The socket's address.
        local: SocketAddr,
        /// The other end.
        peer: SocketAddr,
        /// Written (true) or read.
        out: bool,
        /// Where the bytes start in the stream.
        offset: u64,
        /// How many.
        len: usize,
    },
    /// An ICMP error came back to the lab socket at `local` about a datagram it sent
    /// to `to`.
    Unreachable {
        /// The socket's address.
        local: &'a Endpoint,
        /// Where the datagram went.
        to: SocketAddr,
        /// The start of the datagram, as the error quoted it.
        bytes: &'a [u8],
        /// Port unreachable (nobody listening there), not another error.
        refused: bool,
    },
    /// A link decided a datagram's fate.
    LinkDecision {
        /// The decision's event.
        id: EventId,
        /// When the datagram arrived at the link.
        t_ns: Nanos,
        /// The link.
        link: &'a LinkId,
        /// Which way it crosses.
        dir: LinkDir,
        /// Its number among the direction's arrivals.
        seq: u64,
        /// Sent twice.
        duplicated: bool,
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
    /// A link sent on (a copy of) the datagram it numbered `seq` in `dir`.
    LinkSent {
        /// The link.
        link: &'a LinkId,
        /// Which way it crossed.
        dir: LinkDir,
        /// Its number among the direction's arrivals.
        seq: u64,
        /// When it left.
        t_ns: Nanos,
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
    /// The destination refused it: an ICMP port unreachable came back.
    Refused,
    /// The network could not deliver it: another ICMP error came back.
    Unreachable,
}

/// What the analyzer concluded about a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        /// Paired by order: its bytes equal no open request, so it answers the oldest.
        by_order: bool,
        /// Paired by the match field: its bytes differ, the named field is equal.
        by_field: bool,
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
