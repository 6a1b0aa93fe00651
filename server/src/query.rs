//! What a viewer asks of its session without changing it: the events of a time range
//! (`window`), and which events a viewer that keeps up may be spared (`keep_up`).

use std::collections::HashSet;

use socklab_protocol::EventId;

use std::sync::Arc;

use crate::log::{Entry, EventLog, Record, TIME_SLACK_NS, Tagged};
use crate::wire::write_event;

pub use socklab_protocol::limits::MAX_WINDOW_EVENTS;
/// A `window` answer stops taking events once it is this long.
pub const MAX_WINDOW_BYTES: usize = 4 * 1024 * 1024;
/// How many entries one read of the log takes (its lock is let go between reads).
const READ_PIECE: usize = 4096;

/// Whether an event is about one datagram, and so may be left out for a viewer that
/// keeps up (`viewer`'s own sends are never left out: its forms wait for them).
pub fn is_detail(record: &Record, viewer: u64) -> bool {
    match record {
        Record::Datagram(d) => Tagged::for_viewer(d.req, viewer).is_none(),
        Record::LinkPacket(..) | Record::LinkSent(_) | Record::Fate(_) => true,
        _ => false,
    }
}

/// What the session's log holds of a `window`'s range.
#[derive(Debug)]
pub struct LogWindow {
    /// Its events, in id order.
    pub entries: Vec<Arc<Entry>>,
    /// Whether the log held the range from its start.
    pub from_start: bool,
    /// Whether the entries stopped at the limit.
    pub cut: bool,
    /// The oldest id the log held.
    pub oldest: EventId,
}

/// The events the log holds with a time in `from_ns..=to_ns`, then the fates of the
/// datagrams sent among them and of `sends` (concluded later) and the receives those
/// fates name, in id order, at most `limit`.
pub fn log_window(
    log: &EventLog,
    from_ns: u64,
    to_ns: u64,
    limit: usize,
    sends: &HashSet<u64>,
) -> LogWindow {
    let mut found: Vec<Arc<Entry>> = Vec::new();
    let (mut cursor, from_start, oldest) = log.cursor_at(from_ns);
    let mut cut = false;
    let mut sends = sends.clone();
    // Receives a fate names that were logged after the range.
    let mut receives: Vec<u64> = Vec::new();
    // Past the range (and its slack), only fates of its sends are still wanted.
    let mut past = false;
    'reading: loop {
        let read = log.read_after(cursor, READ_PIECE);
        for entry in &read.entries {
            cursor = entry.id;
            let wanted = if past {
                matches!(&entry.record, Record::Fate(f) if sends.contains(&f.send.0))
            } else {
                if entry.t_ns > to_ns.saturating_add(TIME_SLACK_NS) {
                    past = true;
                }
                match &entry.record {
                    Record::Fate(f) => sends.contains(&f.send.0),
                    _ => (from_ns..=to_ns).contains(&entry.t_ns),
                }
            };
            if !wanted {
                continue;
            }
            if found.len() >= limit {
                cut = true;
                break 'reading;
            }
            match &entry.record {
                Record::Datagram(d) if d.dir == socklab_protocol::Direction::Out => {
                    sends.insert(entry.id.0);
                }
                Record::Fate(f) => {
                    if f.kind != socklab_protocol::flow::FateKind::Duplicate {
                        sends.remove(&f.send.0);
                    }
                    if let Some(recv) = f.recv {
                        receives.push(recv.get());
                    }
                }
                _ => {}
            }
            found.push(entry.clone());
        }
        // Done when the log is read to its end, or past the range with every send's
        // fate found.
        if !read.more || (past && sends.is_empty()) {
            break;
        }
    }
    // The receives of its sends that came after the range (a link's delay), each
    // found by its id, so that every arrow of the range has its end.
    let have: HashSet<u64> = found.iter().map(|e| e.id.0).collect();
    for recv in receives {
        if have.contains(&recv) || found.len() >= limit {
            continue;
        }
        if let Some(entry) = log.read_after(EventId(recv - 1), 1).entries.first()
            && entry.id.0 == recv
        {
            found.push(entry.clone());
        }
    }
    found.sort_by_key(|e| e.id);
    found.dedup_by_key(|e| e.id);
    LogWindow {
        entries: found,
        from_start,
        cut,
        oldest,
    }
}

/// The `window` answer's text: what a recording held (`stored`, older), then what the
/// log held, at most [`MAX_WINDOW_BYTES`].
pub fn window_frame(
    stored: &[crate::store::StoredEvent],
    logged: &[Arc<Entry>],
    (from_ns, to_ns): (u64, u64),
    mut complete: bool,
    viewer: u64,
    req: Option<i64>,
) -> String {
    let mut events = String::new();
    let mut count = stored.len() + logged.len();
    for (i, e) in stored.iter().enumerate() {
        if events.len() >= MAX_WINDOW_BYTES {
            count = i;
            break;
        }
        if i > 0 {
            events.push(',');
        }
        events.push_str(&e.json);
    }
    if count > stored.len() {
        for (i, entry) in logged.iter().enumerate() {
            if events.len() >= MAX_WINDOW_BYTES {
                count = stored.len() + i;
                break;
            }
            if !events.is_empty() {
                events.push(',');
            }
            write_event(&mut events, entry, viewer);
        }
    }
    complete &= count == stored.len() + logged.len();
    let req = req.map(|r| format!(",\"req\":{r}")).unwrap_or_default();
    format!(
        "{{\"type\":\"window\",\"from_ns\":{from_ns},\"to_ns\":{to_ns},\"complete\":{complete}{req},\"events\":[{events}]}}"
    )
}

/// What a viewer that thins was not sent: the ids and times it passed over.
#[derive(Debug, Default)]
pub struct Passed {
    /// The first and last ids.
    pub ids: Option<(EventId, EventId)>,
    /// How many.
    pub count: u64,
    /// The earliest and latest times.
    pub from_ns: u64,
    /// See `from_ns`.
    pub to_ns: u64,
}

impl Passed {
    /// Counts one event passed over.
    pub fn pass(&mut self, id: EventId, t_ns: u64) {
        match &mut self.ids {
            Some((_, last)) => {
                *last = id;
                self.from_ns = self.from_ns.min(t_ns);
                self.to_ns = self.to_ns.max(t_ns);
            }
            None => {
                self.ids = Some((id, id));
                self.from_ns = t_ns;
                self.to_ns = t_ns;
            }
        }
        self.count += 1;
    }

    /// The `thinned` event, if anything was passed over.
    pub fn event(&self) -> Option<socklab_protocol::Event> {
        let (from, to) = self.ids?;
        Some(socklab_protocol::Event::Thinned(
            socklab_protocol::Thinned {
                from,
                to,
                count: self.count,
                from_ns: self.from_ns,
                to_ns: self.to_ns,
            },
        ))
    }
}
