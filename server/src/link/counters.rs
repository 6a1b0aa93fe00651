//! A link's counters: what its model counted and what its relay refused or failed to
//! send, as the wire's counters of each direction.

use socklab_impair::{Nanos, Shaper};
use socklab_protocol::link::{DropReason, LinkCounters, LinkDir};

/// Datagrams the relay refused before its model saw them, per direction.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RefusedCounts {
    /// Over the link's byte limit (reported as `queue_full`).
    pub full: u64,
    /// From the link's own upstream address.
    pub looped: u64,
    /// Over the session's forwarding budget.
    pub rate_limit: u64,
    /// From someone other than the target (target → client only).
    pub not_from_target: u64,
    /// Forwarded, but the OS refused to send them.
    pub send_failed: u64,
    /// Left more than a millisecond after their planned departure.
    pub late: u64,
    /// The latest any left after its planned departure, ns.
    pub late_max_ns: u64,
}

#[derive(Debug, Default)]
pub(super) struct Refused {
    pub c2t: RefusedCounts,
    pub t2c: RefusedCounts,
}

impl Refused {
    pub(super) fn of(&mut self, dir: LinkDir) -> &mut RefusedCounts {
        match dir {
            LinkDir::C2t => &mut self.c2t,
            LinkDir::T2c => &mut self.t2c,
        }
    }
}

/// The model's reason as the wire names it.
pub(super) fn wire_reason(reason: socklab_impair::DropReason) -> DropReason {
    match reason {
        socklab_impair::DropReason::RandomLoss => DropReason::RandomLoss,
        socklab_impair::DropReason::BurstLoss => DropReason::BurstLoss,
        socklab_impair::DropReason::QueueFull => DropReason::QueueFull,
        socklab_impair::DropReason::Mtu => DropReason::Mtu,
    }
}

/// The model's counters and the relay's own, as the wire's counters of one direction.
pub(super) fn wire_counters(
    shaper: &mut Shaper,
    now: Nanos,
    no_client: u64,
    refused: RefusedCounts,
    held: u64,
) -> LinkCounters {
    let c = shaper.counters();
    LinkCounters {
        arrived: c.arrived
            + no_client
            + refused.full
            + refused.looped
            + refused.rate_limit
            + refused.not_from_target,
        forwarded: c.forwarded,
        dropped_random: c.dropped_random,
        dropped_burst: c.dropped_burst,
        dropped_queue: c.dropped_queue + refused.full,
        dropped_mtu: c.dropped_mtu,
        dropped_no_client: no_client,
        dropped_loop: refused.looped,
        dropped_rate_limit: refused.rate_limit,
        dropped_not_from_target: refused.not_from_target,
        send_failed: refused.send_failed,
        departed_late: refused.late,
        late_max_ns: refused.late_max_ns,
        duplicated: c.duplicated,
        corrupted: c.corrupted,
        reordered: c.reordered,
        truncated: c.truncated,
        queue_depth: shaper.queue_depth(now) as u64,
        held,
    }
}
