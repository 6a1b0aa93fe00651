//! socklab's wire protocol: the only types that cross the WebSocket between the server
//! and its clients (the web app, scripts, tests).
//!
//! # Layout
//! - [`command`]: what a client asks for ([`Command`], wrapped in a [`Request`] that may
//!   carry a `req` number), and [`decode_request`], the one place incoming text becomes a
//!   command.
//! - [`event`]: what the server reports ([`Event`]): the greeting, replies, datagrams,
//!   errors with stable [`ErrorCode`]s, and batches of events.
//! - [`flow`]: flow analysis and the traffic generator: what became of each datagram
//!   ([`flow::Fate`]), per-flow figures ([`flow::FlowStats`]), generator settings.
//! - [`endpoint`]: where a datagram socket is ([`Endpoint`]): an IP socket address or
//!   a Unix domain name, one string on the wire.
//! - [`ids`]: every id on the wire ([`EventId`], [`SocketId`], [`LinkId`],
//!   [`GeneratorId`], [`SessionId`]), each a newtype.
//! - [`payload`]: how a datagram's bytes are written in a command (text, hex or base64)
//!   and how they are decoded, with errors a person can act on.
//! - [`fast`]: the JSON of `datagram` events and of batches written straight into a
//!   frame, the same text serde writes (the server's hot path).
//! - [`limits`]: the numbers both sides must agree on (payload sizes).
//!
//! Everything here compiles for native targets and for `wasm32-unknown-unknown`; it has
//! no I/O and no async runtime.
#![forbid(unsafe_code)]

pub mod command;
pub mod endpoint;
pub mod event;
pub mod fast;
pub mod flow;
pub mod ids;
pub mod limits;
pub mod link;
pub mod payload;

pub use command::{BindSpec, Command, DecodeError, Proto, Request, ShutdownHow, decode_request};
pub use endpoint::Endpoint;
pub use event::{
    Accepted, Aggregates, AnalysisConfig, Bound, Closed, Connected, Datagram, Departure, Direction,
    ErrorCode, ErrorEvent, Event, Gap, GeneratorDone, GeneratorStarted, Hello, KeepingUp,
    KernelDrops, LaneCounts, LinkClient, LinkCreated, LinkDeleted, LinkPacket, LinkSent, LinkStats,
    LinkUpdated, Membership, Paused, RecordingStarted, RecordingStopped, RunMarked, ShutDown,
    Stream, StreamEnd, StreamEndReason, TcpLinkChunk, TcpLinkConn, TcpLinkCreated, TcpLinkEnd,
    TcpLinkEndHow, Thinned, Unreachable, UnreachableReason, Window,
};
pub use ids::{EventId, GeneratorId, LinkId, SessionId, SocketId};
pub use payload::{Payload, PayloadError};

/// The protocol version the server announces in its `hello`. Renaming or removing
/// anything in the core contract, or changing its meaning, needs a new version.
pub const PROTOCOL_VERSION: u32 = 1;
