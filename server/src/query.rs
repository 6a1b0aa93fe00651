//! What a viewer asks of its session without changing it: the events of a time range
//! (`window`), and which events a viewer that keeps up may be spared (`keep_up`).

use std::collections::HashSet;

use socklab_protocol::EventId;

use std::sync::Arc;

use crate::error::CommandError;
use crate::log::{Entry, EventLog, Record, TIME_SLACK_NS, Tagged};
use crate::wire::write_event;

pub use socklab_protocol::limits::MAX_WINDOW_EVENTS;
/// A `window` answer stops taking events once it is this long.
pub const MAX_WINDOW_BYTES: usize = 4 * 1024 * 1024;
/// How many entries one read of the log takes (its lock is let go between reads).
const READ_PIECE: usize = 4096;

/// Checks an `aggregate`'s range and buckets (of a session, or of a recording).
pub fn check_aggregate(from_ns: u64, to_ns: u64, buckets: u32) -> Result<(), CommandError> {
    if from_ns >= to_ns {
        return Err(CommandError::bad_request(format!(
            "aggregate's `to_ns` ({to_ns}) must be after its `from_ns` ({from_ns})"
        )));
    }
    if !(1..=crate::aggregate::MAX_ANSWER_BUCKETS).contains(&buckets) {
        return Err(CommandError::bad_request(format!(
            "aggregate's `buckets` is 1 to {}; got {buckets}",
            crate::aggregate::MAX_ANSWER_BUCKETS
        )));
    }
    Ok(())
}

/// Checks a `window`'s range and limit (of a session, or of a recording); the limit
/// to use.
pub fn check_window(from_ns: u64, to_ns: u64, limit: Option<u32>) -> Result<u32, CommandError> {
    let limit = limit.unwrap_or(MAX_WINDOW_EVENTS);
    if from_ns > to_ns {
        return Err(CommandError::bad_request(format!(
            "window's `to_ns` ({to_ns}) must not be before its `from_ns` ({from_ns})"
        )));
    }
    if !(1..=MAX_WINDOW_EVENTS).contains(&limit) {
        return Err(CommandError::bad_request(format!(
            "window's `limit` is 1 to {MAX_WINDOW_EVENTS}; got {limit}"
        )));
    }
    Ok(limit)
}

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

/// Which events a `window` of `from_ns..=to_ns` holds, whatever they are read from (the
/// log, a recording), in id order: those with a time in the range (fates aside), then
/// the fates of the datagrams sent among them and of `sends` (however late the analysis
/// concluded them), and the receives those fates name. The last may have been read
/// before their fate said they were wanted: [`WindowRule::receives`] names them, for
/// the reader to look up.
#[derive(Debug)]
pub struct WindowRule {
    from_ns: u64,
    to_ns: u64,
    /// Sends whose fate is still wanted.
    sends: HashSet<u64>,
    /// Receives the fates taken name.
    receives: Vec<u64>,
    /// Read past the range (and its slack): only fates are still wanted.
    past: bool,
}

/// What a read event is, as far as a window cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A datagram a lab socket sent.
    Send,
    /// A fate: of which send, naming which receive, an extra copy's or not.
    Fate {
        send: u64,
        recv: Option<u64>,
        duplicate: bool,
    },
    /// Anything else.
    Other,
}

impl WindowRule {
    /// A window of `from_ns..=to_ns`, wanting the fates of `sends` too.
    pub fn new(from_ns: u64, to_ns: u64, sends: HashSet<u64>) -> WindowRule {
        WindowRule {
            from_ns,
            to_ns,
            sends,
            receives: Vec::new(),
            past: false,
        }
    }

    /// Whether the next event (in id order), logged at `t_ns`, belongs to the window.
    pub fn wants(&mut self, t_ns: u64, seen: Seen) -> bool {
        if !self.past && t_ns > self.to_ns.saturating_add(TIME_SLACK_NS) {
            self.past = true;
        }
        match seen {
            Seen::Fate { send, .. } => self.sends.contains(&send),
            _ => !self.past && (self.from_ns..=self.to_ns).contains(&t_ns),
        }
    }

    /// Notes an event the window took: a send's fate is now wanted; a fate's receive too.
    pub fn took(&mut self, id: u64, seen: Seen) {
        match seen {
            Seen::Send => {
                self.sends.insert(id);
            }
            Seen::Fate {
                send,
                recv,
                duplicate,
            } => {
                if !duplicate {
                    self.sends.remove(&send);
                }
                self.receives.extend(recv);
            }
            Seen::Other => {}
        }
    }

    /// Whether it has read past the range.
    pub fn past(&self) -> bool {
        self.past
    }

    /// Whether nothing more is wanted: past the range, every send's fate found.
    pub fn done(&self) -> bool {
        self.past && self.sends.is_empty()
    }

    /// The receives the fates taken name, to look up where the window lacks them.
    pub fn receives(self) -> Vec<u64> {
        self.receives
    }
}

/// What a log entry is, for a [`WindowRule`].
fn seen(record: &Record) -> Seen {
    match record {
        Record::Datagram(d) if d.dir == socklab_protocol::Direction::Out => Seen::Send,
        Record::Fate(f) => Seen::Fate {
            send: f.send.0,
            recv: f.recv.map(|r| r.get()),
            duplicate: f.kind == socklab_protocol::flow::FateKind::Duplicate,
        },
        _ => Seen::Other,
    }
}

/// The events the log holds of a `window` of `from_ns..=to_ns` (see [`WindowRule`];
/// the fates of `sends` too), in id order, at most `limit`.
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
    let mut rule = WindowRule::new(from_ns, to_ns, sends.clone());
    'reading: loop {
        let read = log.read_after(cursor, READ_PIECE);
        for entry in &read.entries {
            cursor = entry.id;
            let seen = seen(&entry.record);
            if !rule.wants(entry.t_ns, seen) {
                continue;
            }
            if found.len() >= limit {
                cut = true;
                break 'reading;
            }
            rule.took(entry.id.0, seen);
            found.push(entry.clone());
        }
        if !read.more || rule.done() {
            break;
        }
    }
    // The receives of its sends that came after the range (a link's delay), each
    // found by its id, so that every arrow of the range has its end.
    let have: HashSet<u64> = found.iter().map(|e| e.id.0).collect();
    for recv in rule.receives() {
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
