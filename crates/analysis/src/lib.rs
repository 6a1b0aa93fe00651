//! socklab's flow analysis: pure logic over the session's events, no I/O.
//!
//! # Layout
//! - [`seqhdr`]: the optional sequence header the traffic generator puts in front of a
//!   payload (magic, flow id, sequence number, send timestamp).
//! - [`jitter`]: RFC 3550 interarrival jitter.
//! - [`sequenced`]: iperf3-style receiver statistics from sequence numbers alone, for
//!   traffic whose sender the lab may not see.
//! - [`stats`]: latency percentiles and the per-flow figures.
//! - [`routes`]: [`Routes`], the one rule for which flow a datagram crossing a link
//!   belongs to; the page's timeline uses it too.
//! - [`analyzer`]: [`Analyzer`], fed the session's events in order: it follows links,
//!   matches each receive to its send, decides lost / reordered / duplicated, matches
//!   echo replies to requests, and keeps per-flow statistics.
//! - [`runs`]: [`Runs`], the same figures per run of the session (each datagram where
//!   it was sent), from the sends and the analyzer's conclusions.
#![forbid(unsafe_code)]

pub mod analyzer;
pub mod jitter;
pub mod routes;
pub mod runs;
pub mod seqhdr;
pub mod sequenced;
pub mod stats;

pub use analyzer::{Analyzer, FlowKey, Input, Limits, LossCause, Outcome};
pub use routes::{End, Routes};
pub use runs::{RunFigures, Runs};
pub use stats::{FlowStats, Method, Percentiles};

/// Nanoseconds since the session began.
pub type Nanos = u64;

/// How long a datagram may be in flight before it counts as lost.
pub const DEFAULT_LOSS_TIMEOUT_NS: Nanos = 2_000_000_000;
