//! The timeline where the page was not sent every datagram: a page that falls behind a
//! fast session asks the server to spare it the events about single datagrams
//! (`keep_up`) and is told which time they covered (`thinned`). There it draws the
//! server's counts per lane and time bucket (`aggregate`), and, once the person has
//! zoomed in far enough, every arrow of the window in view, fetched from the server's
//! log (`window`).

use std::rc::Rc;

use socklab_protocol::{Aggregates, Command, Endpoint, Event, EventId, Thinned, Window};

use super::Timeline;

/// How many events behind the server may let the page fall before it thins: about a
/// second of what the page takes in.
pub const KEEP_UP_BEHIND: u64 = 10_000;
/// How many events a second the page asks to be sent at most: what it reads and draws
/// while keeping its frames short (a session of 5,000 datagrams a second, with their
/// receives and fates, fits; a faster one is drawn from the server's counts, its arrows
/// fetched where the person zooms in).
pub const KEEP_UP_RATE: u64 = 20_000;
/// How many thinned time ranges the page keeps (beyond it the two oldest merge).
const RANGES_KEPT: usize = 512;
/// Ranges closer than this merge into one, ns.
const MERGE_NS: u64 = 200_000_000;
/// The most datagrams a window in view may hold for the page to fetch its arrows (with
/// their receives, fates and a link's decisions, they fit one `window` answer).
pub const DETAIL_MAX: u64 = 2_000;

/// A delivery (every 16 to 250 ms, or as soon as 1,000 events are kept) of more events
/// than this means the page has fallen behind what it can draw: it then spares itself
/// the oldest events about single datagrams, as the server would, down to
/// [`EVENTS_KEPT`]. A hiccup at a moderate rate (a
/// garbage collection, a hidden tab) stays under it and loses nothing.
pub const EVENTS_BEHIND: usize = 5_000;
/// How many events a delivery keeps once the page has fallen behind: its work per
/// frame stays bounded whatever the WebSocket had buffered.
pub const EVENTS_KEPT: usize = 500;

/// Past `budget`, the oldest events about single datagrams (`datagram`s the page did
/// not ask for, `link_packet`, `link_sent`) are left out of `events`, and a `thinned`
/// event first in the batch says which, as the server's would. Everything else stays,
/// in order (a `fate` too: the page may hold its datagram's send). Nothing is left out
/// of a batch of at most `behind` events.
pub fn spare(events: Vec<Event>, behind: usize, budget: usize) -> Vec<Event> {
    if events.len() <= behind {
        return events;
    }
    let Some(cut) = events.len().checked_sub(budget).filter(|n| *n > 0) else {
        return events;
    };
    let mut kept = Vec::with_capacity(budget + 1);
    let (mut first, mut last, mut count) = (None, EventId(0), 0u64);
    let (mut from_ns, mut to_ns) = (u64::MAX, 0u64);
    for (i, event) in events.into_iter().enumerate() {
        let detail = i < cut
            && match &event {
                Event::Datagram(d) => d.req.is_none(),
                Event::LinkPacket(_) | Event::LinkSent(_) => true,
                _ => false,
            };
        if !detail {
            kept.push(event);
            continue;
        }
        if let (Some(id), Some(t)) = (event.id(), event.t_ns()) {
            first.get_or_insert(id);
            last = id;
            count += 1;
            from_ns = from_ns.min(t);
            to_ns = to_ns.max(t);
        }
    }
    if let Some(from) = first {
        kept.insert(
            0,
            Event::Thinned(Thinned {
                from,
                to: last,
                count,
                from_ns,
                to_ns,
            }),
        );
    }
    kept
}

/// What the page knows of the time it was not sent every datagram of.
#[derive(Debug, Default)]
pub struct Scale {
    /// The time ranges (ns, inclusive) the server thinned, oldest first, merged.
    pub thinned: Vec<(u64, u64)>,
    /// How many events it was not sent, all together.
    pub passed: u64,
    /// The server's latest counts.
    pub counts: Option<Rc<Aggregates>>,
    /// The arrows of the latest window fetched, with its range (ns) and whether the
    /// server's log still held all of it.
    pub detail: Option<Detail>,
}

/// The arrows of a window fetched from the server.
#[derive(Debug)]
pub struct Detail {
    /// Its range, ns.
    pub from: u64,
    /// See `from`.
    pub to: u64,
    /// Whether it holds every event of the range.
    pub complete: bool,
    /// Its arrows, on the page's own lanes.
    pub timeline: Box<Timeline>,
}

impl Scale {
    /// Notes a `thinned` event.
    pub fn thinned(&mut self, t: &Thinned) {
        self.passed = self.passed.saturating_add(t.count);
        match self.thinned.last_mut() {
            Some(last) if t.from_ns <= last.1.saturating_add(MERGE_NS) => {
                last.1 = last.1.max(t.to_ns);
                last.0 = last.0.min(t.from_ns);
            }
            _ => self.thinned.push((t.from_ns, t.to_ns)),
        }
        if self.thinned.len() > RANGES_KEPT {
            let second = self.thinned.remove(1);
            self.thinned[0].1 = self.thinned[0].1.max(second.1);
        }
    }

    /// The thinned ranges that meet `from..=to`, cut to it.
    pub fn thinned_in(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.thinned
            .iter()
            .filter(move |(a, b)| *a <= to && *b >= from)
            .map(move |(a, b)| ((*a).max(from), (*b).min(to)))
    }

    /// Whether `t` is in a thinned range.
    pub fn is_thinned(&self, t: u64) -> bool {
        self.thinned.iter().any(|(a, b)| (*a..=*b).contains(&t))
    }

    /// Whether the fetched window covers `from..=to` whole.
    pub fn detail_covers(&self, from: u64, to: u64) -> bool {
        self.detail
            .as_ref()
            .is_some_and(|d| d.from <= from && d.to >= to)
    }

    /// The fetched window, when it holds every event of `from..=to`: then it alone is
    /// drawn there (the page's own arrows near where it was thinned lack their fates
    /// or their sends).
    pub fn complete_detail(&self, from: u64, to: u64) -> Option<&Detail> {
        self.detail
            .as_ref()
            .filter(|d| d.complete && d.from <= from && d.to >= to)
    }

    /// How many datagrams the counts say were sent in `from..=to` (None: the counts
    /// do not cover it). A bucket the range covers in part counts its share: a view
    /// narrower than the server's buckets (a long session counted coarsely) is not
    /// taken to hold a whole bucket's burst.
    pub fn sent_in(&self, from: u64, to: u64) -> Option<u64> {
        let counts = self.counts.as_ref()?;
        let end = counts
            .from_ns
            .saturating_add(counts.bucket_ns.saturating_mul(u64::from(counts.buckets)));
        if counts.from_ns > from || end < to {
            return None;
        }
        let width = counts.bucket_ns.max(1);
        let mut sent = 0u64;
        for lane in &counts.lanes {
            for (i, n) in lane.sent.iter().enumerate() {
                let t0 = counts
                    .from_ns
                    .saturating_add(width.saturating_mul(i as u64));
                let t1 = t0.saturating_add(width);
                if *n == 0 || t0 > to || t1 <= from {
                    continue;
                }
                let overlap = t1.min(to.saturating_add(1)) - t0.max(from);
                let share = u128::from(*n) * u128::from(overlap) / u128::from(width);
                sent = sent.saturating_add(share.max(1) as u64);
            }
        }
        Some(sent)
    }

    /// The part of `from..=to` the thinned ranges in it span: from the first one's
    /// start to the last one's end, cut to it. None: nothing thinned there.
    pub fn thinned_span(&self, from: u64, to: u64) -> Option<(u64, u64)> {
        let mut ranges = self.thinned_in(from, to);
        let first = ranges.next()?;
        let last = ranges.last().unwrap_or(first);
        Some((first.0, last.1))
    }

    /// What to ask the server so that `from..=to` (ns), drawn `rows` pixels tall, can be
    /// drawn where it was thinned: counts that cover it, then its arrows once they are
    /// few enough. None: nothing (no thinned time in view, or the answers are there
    /// already). The caller ends the range at the newest time it knows (a replay's
    /// cursor: nothing after it is asked for).
    pub fn wanted(&self, from: u64, to: u64, rows: u32) -> Option<Command> {
        if to <= from {
            return None;
        }
        self.thinned_span(from, to)?;
        let buckets = rows.clamp(1, 4096);
        let fine_enough = self.counts.as_ref().is_some_and(|c| {
            let asked = (to - from).div_ceil(u64::from(buckets));
            c.bucket_ns <= asked.saturating_mul(2).max(c.resolution_ns)
        });
        match self.sent_in(from, to) {
            Some(sent) if fine_enough => (sent <= DETAIL_MAX && !self.detail_covers(from, to))
                .then_some(Command::Window {
                    from_ns: from,
                    to_ns: to,
                    limit: Some(socklab_protocol::limits::MAX_WINDOW_EVENTS),
                }),
            _ => Some(Command::Aggregate {
                from_ns: from,
                to_ns: to.saturating_add(1),
                buckets,
            }),
        }
    }
}

impl Timeline {
    /// The lane drawn for an address, if there is one.
    pub fn lane_index(&self, addr: &Endpoint) -> Option<u16> {
        self.lane_of.get(addr).copied()
    }

    /// A timeline of the window's events alone, on this one's lanes (the packet list's
    /// own window: what became of each of its datagrams).
    pub fn of_window(&self, window: &Window) -> Timeline {
        *self.detail_from(window).timeline
    }

    /// A timeline of the window's events alone, on this one's lanes.
    pub(super) fn detail_from(&self, window: &Window) -> Detail {
        let mut detail = Timeline {
            lanes: self.lanes.clone(),
            lane_of: self.lane_of.clone(),
            lab_labels: self.lab_labels.clone(),
            routes: self.routes.clone(),
            link_lanes: self.link_lanes.clone(),
            socket_lanes: self.socket_lanes.clone(),
            flows: self.flows.clone(),
            flow_of: self.flow_of.clone(),
            tcp: self.tcp.clone(),
            ..Timeline::default()
        };
        for event in &window.events {
            detail.apply(event);
        }
        Detail {
            from: window.from_ns,
            to: window.to_ns,
            complete: window.complete,
            timeline: Box::new(detail),
        }
    }
}
