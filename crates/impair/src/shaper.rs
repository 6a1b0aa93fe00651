//! One direction of a link: arrivals in, verdicts out.
//!
//! The order of decisions follows netem's, so its documentation's intuitions carry
//! over: MTU, then loss, then the bottleneck queue (rate), then corruption, delay and
//! jitter, duplication, and finally reordering. Unlike netem, reordering needs no
//! delay: a held-back datagram waits until `reorder_gap` later datagrams have passed
//! it (or until `reorder_timeout_ms`, so a lull never strands it).

use std::collections::VecDeque;

use socklab_protocol::link::{Impairments, JitterDist, Loss, MtuAction};

use crate::Nanos;
use crate::rng::Rng;

const NS_PER_MS: f64 = 1_000_000.0;
/// Normal jitter is cut at this many standard deviations.
const NORMAL_CUTOFF_SIGMAS: f64 = 3.0;

/// One byte changed: `payload[offset] ^= mask` (mask is never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// Which byte.
    pub offset: usize,
    /// The bits flipped.
    pub mask: u8,
}

/// What happens to a datagram that is not dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// When it leaves; `None` while it is held back (a [`Release`] gives the time later).
    pub departure: Option<Nanos>,
    /// Its planned time in the link (queue + delay + jitter), before any hold.
    pub delay_ns: Nanos,
    /// Of that, the time spent queued at the bottleneck.
    pub queue_ns: Nanos,
    /// When the extra copy leaves, if it is duplicated.
    pub duplicate: Option<Nanos>,
    /// The byte to change, if it is corrupted.
    pub corrupt: Option<Corruption>,
    /// The payload length it is cut to, if it exceeds the MTU and the link truncates.
    pub truncate_to: Option<usize>,
    /// Held back until this many later datagrams have passed it.
    pub held_for: Option<u32>,
}

/// Why the model dropped a datagram. (A relay has reasons of its own, decided before it
/// asks the model; the server maps these onto the wire's reasons.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Independent random loss (or Gilbert-Elliott loss in the good state).
    RandomLoss,
    /// Gilbert-Elliott loss in the bad state: part of a burst.
    BurstLoss,
    /// The bottleneck queue was full (tail drop).
    QueueFull,
    /// Larger than the MTU.
    Mtu,
}

/// The fate of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It never leaves.
    Dropped(DropReason),
    /// It leaves (possibly twice, possibly changed, possibly later).
    Forwarded(Forward),
}

/// A held-back datagram that may leave now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The datagram's sequence number in this direction.
    pub seq: u64,
    /// When it leaves.
    pub departure: Nanos,
    /// How many later datagrams left before it.
    pub overtaken_by: u32,
}

/// The decision on one arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The arrival's sequence number in this direction (0, 1, 2, ...).
    pub seq: u64,
    /// What happens to it.
    pub fate: Fate,
    /// Held-back datagrams this arrival was the last overtaker of.
    pub released: Vec<Release>,
}

/// Running totals of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams that arrived.
    pub arrived: u64,
    /// Datagrams forwarded (each once, however many copies).
    pub forwarded: u64,
    /// Dropped by random loss.
    pub dropped_random: u64,
    /// Dropped by burst loss.
    pub dropped_burst: u64,
    /// Dropped because the queue was full.
    pub dropped_queue: u64,
    /// Dropped for exceeding the MTU.
    pub dropped_mtu: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams with a changed byte.
    pub corrupted: u64,
    /// Datagrams held back to be overtaken.
    pub reordered: u64,
    /// Datagrams cut to the MTU.
    pub truncated: u64,
}

#[derive(Debug, Clone)]
struct Held {
    seq: u64,
    planned: Nanos,
    gap: u32,
    remaining: u32,
    deadline: Nanos,
}

/// One direction of a link.
#[derive(Debug, Clone)]
pub struct Shaper {
    settings: Impairments,
    rng: Rng,
    /// Gilbert-Elliott: in the bad state?
    bad: bool,
    next_seq: u64,
    /// When the bottleneck finishes sending what it has.
    link_free_at: Nanos,
    /// Datagrams at the bottleneck: (when they finish, bytes).
    queue: VecDeque<(Nanos, usize)>,
    queued_bytes: usize,
    last_departure: Nanos,
    held: Vec<Held>,
    counters: Counters,
}

impl Shaper {
    /// A direction with these settings, its random decisions seeded by `seed`.
    pub fn new(settings: Impairments, seed: u64) -> Self {
        Shaper {
            settings,
            rng: Rng::new(seed),
            bad: false,
            next_seq: 0,
            link_free_at: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_departure: 0,
            held: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Changes the settings from now on. Queued and held-back datagrams keep the
    /// decisions already made for them.
    pub fn set_settings(&mut self, settings: Impairments) {
        self.settings = settings;
    }

    /// The current settings.
    pub fn settings(&self) -> &Impairments {
        &self.settings
    }

    /// The running totals.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Datagrams at the bottleneck at `now` (queued or being sent).
    pub fn queue_depth(&mut self, now: Nanos) -> usize {
        self.drain_queue(now);
        self.queue.len()
    }

    /// Datagrams held back, waiting to be overtaken.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Decides the fate of a datagram of `payload_len` bytes arriving at `now`.
    /// `overhead` is the header bytes counted against the MTU and the rate (28 for
    /// IPv4 + UDP, 48 for IPv6 + UDP). Arrival times must not decrease.
    pub fn arrive(&mut self, now: Nanos, payload_len: usize, overhead: usize) -> Verdict {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.counters.arrived += 1;
        let s = self.settings;
        let fate = self.decide(now, payload_len, overhead, &s);
        let mut released = Vec::new();
        if let Fate::Forwarded(forward) = &fate {
            self.counters.forwarded += 1;
            match forward.departure {
                None => {
                    self.counters.reordered += 1;
                    self.held.push(Held {
                        seq,
                        planned: now.saturating_add(forward.delay_ns),
                        gap: s.reorder_gap,
                        remaining: s.reorder_gap,
                        deadline: now.saturating_add(ms_to_ns(s.reorder_timeout_ms)),
                    });
                }
                Some(departure) => released = self.overtake(departure),
            }
        }
        Verdict {
            seq,
            fate,
            released,
        }
    }

    fn decide(&mut self, now: Nanos, payload_len: usize, overhead: usize, s: &Impairments) -> Fate {
        // MTU.
        let mut truncate_to = None;
        if s.mtu != 0 && payload_len + overhead > s.mtu as usize {
            match s.mtu_action {
                MtuAction::Drop => return self.drop(DropReason::Mtu),
                MtuAction::Truncate => {
                    truncate_to = Some((s.mtu as usize).saturating_sub(overhead));
                    self.counters.truncated += 1;
                }
            }
        }
        let len = truncate_to.unwrap_or(payload_len);
        let size = len + overhead;

        // Loss.
        match s.loss {
            Loss::None => {}
            Loss::Random { pct } => {
                if self.rng.chance_pct(pct) {
                    return self.drop(DropReason::RandomLoss);
                }
            }
            Loss::GilbertElliott {
                p_pct,
                r_pct,
                loss_good_pct,
                loss_bad_pct,
            } => {
                let was_bad = self.bad;
                let lost = self
                    .rng
                    .chance_pct(if was_bad { loss_bad_pct } else { loss_good_pct });
                self.bad = if was_bad {
                    !self.rng.chance_pct(r_pct)
                } else {
                    self.rng.chance_pct(p_pct)
                };
                if lost {
                    return self.drop(if was_bad {
                        DropReason::BurstLoss
                    } else {
                        DropReason::RandomLoss
                    });
                }
            }
        }

        // The bottleneck: a FIFO that sends `rate_bps`; tail drop when full.
        let mut leave = now;
        if s.rate_bps > 0 {
            self.drain_queue(now);
            let full_packets = s.queue_packets != 0 && self.queue.len() >= s.queue_packets as usize;
            let full_bytes =
                s.queue_bytes != 0 && (self.queued_bytes + size) as u64 > s.queue_bytes;
            if full_packets || full_bytes {
                return self.drop(DropReason::QueueFull);
            }
            let start = self.link_free_at.max(now);
            // Saturating: a rate of 1 bit/s with an unlimited queue would otherwise run
            // the clock past u64 in a few tens of thousands of datagrams.
            let tx_ns =
                Nanos::try_from((size as u128 * 8 * 1_000_000_000).div_ceil(s.rate_bps as u128))
                    .unwrap_or(Nanos::MAX);
            leave = start.saturating_add(tx_ns);
            self.link_free_at = leave;
            self.queue.push_back((leave, size));
            self.queued_bytes += size;
        }
        let queue_ns = leave - now;

        // Corruption.
        let corrupt = if s.corrupt_pct > 0.0 && self.rng.chance_pct(s.corrupt_pct) && len > 0 {
            self.counters.corrupted += 1;
            Some(Corruption {
                offset: self.rng.below(len as u64) as usize,
                mask: 1 + self.rng.below(255) as u8,
            })
        } else {
            None
        };

        // Delay and jitter.
        let mut delay = ms_to_ns(s.delay_ms) as f64;
        if s.jitter_ms > 0.0 {
            let jitter = s.jitter_ms * NS_PER_MS;
            delay += match s.jitter_dist {
                JitterDist::Uniform => (self.rng.unit() * 2.0 - 1.0) * jitter,
                JitterDist::Normal => {
                    self.rng
                        .normal()
                        .clamp(-NORMAL_CUTOFF_SIGMAS, NORMAL_CUTOFF_SIGMAS)
                        * jitter
                }
            };
        }
        let mut departure = leave.saturating_add(delay.max(0.0).round() as Nanos);
        if !s.jitter_may_reorder {
            departure = departure.max(self.last_departure);
        }
        self.last_departure = self.last_departure.max(departure);

        // Duplication.
        let duplicate = if s.duplicate_pct > 0.0 && self.rng.chance_pct(s.duplicate_pct) {
            self.counters.duplicated += 1;
            Some(departure)
        } else {
            None
        };

        // Reordering: hold back to be overtaken.
        let held = s.reorder_pct > 0.0 && self.rng.chance_pct(s.reorder_pct);
        Fate::Forwarded(Forward {
            departure: (!held).then_some(departure),
            delay_ns: departure - now,
            queue_ns,
            duplicate,
            corrupt,
            truncate_to,
            held_for: held.then_some(s.reorder_gap),
        })
    }

    fn drop(&mut self, reason: DropReason) -> Fate {
        let counter = match reason {
            DropReason::RandomLoss => &mut self.counters.dropped_random,
            DropReason::BurstLoss => &mut self.counters.dropped_burst,
            DropReason::QueueFull => &mut self.counters.dropped_queue,
            DropReason::Mtu => &mut self.counters.dropped_mtu,
        };
        *counter += 1;
        Fate::Dropped(reason)
    }

    /// A datagram leaving at `departure` overtakes every held one; those it was the
    /// last overtaker of leave just after it.
    fn overtake(&mut self, departure: Nanos) -> Vec<Release> {
        let mut released = Vec::new();
        self.held.retain_mut(|h| {
            h.remaining -= 1;
            if h.remaining > 0 {
                return true;
            }
            released.push(Release {
                seq: h.seq,
                departure: h.planned.max(departure + 1),
                overtaken_by: h.gap,
            });
            false
        });
        for r in &released {
            self.last_departure = self.last_departure.max(r.departure);
        }
        released
    }

    /// Releases held-back datagrams whose wait ended by `now`.
    pub fn expire(&mut self, now: Nanos) -> Vec<Release> {
        let mut released = Vec::new();
        self.held.retain(|h| {
            if h.deadline > now {
                return true;
            }
            released.push(Release {
                seq: h.seq,
                departure: h.planned.max(h.deadline),
                overtaken_by: h.gap - h.remaining,
            });
            false
        });
        released
    }

    /// When the next held-back datagram's wait ends.
    pub fn next_expiry(&self) -> Option<Nanos> {
        self.held.iter().map(|h| h.deadline).min()
    }

    fn drain_queue(&mut self, now: Nanos) {
        while let Some(&(done, size)) = self.queue.front() {
            if done > now {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= size;
        }
    }
}

fn ms_to_ns(ms: f64) -> Nanos {
    (ms * NS_PER_MS).round() as Nanos
}
