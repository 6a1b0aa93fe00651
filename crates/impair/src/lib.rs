//! socklab's link model: given a direction's settings, a seeded random source and each
//! datagram's arrival time and size, it decides what happens to the datagram: dropped
//! (and why), corrupted, duplicated, held back for reordering, and when each copy
//! leaves. No clock, no sockets, no async: the server's relay feeds it arrivals and
//! carries out its verdicts, and tests replay it exactly.
//!
//! # Layout
//! - [`rng`]: a small, stable, seedable generator (xoshiro256++), so a seed means the
//!   same decisions on every machine and every version of this crate's dependencies.
//! - [`shaper`]: [`Shaper`], one direction of a link: its state (Gilbert-Elliott state,
//!   bottleneck queue, held-back datagrams) and its decisions.
#![forbid(unsafe_code)]

pub mod rng;
pub mod shaper;

pub use shaper::{Corruption, Counters, DropReason, Fate, Forward, Release, Shaper, Verdict};

/// Nanoseconds on the caller's clock.
pub type Nanos = u64;
