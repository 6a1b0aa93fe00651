//! A session's recording: a task that reads the session's log as a viewer does and
//! writes its events into the store, in batches about [`BATCH_EVERY`] apart: every
//! event from the recording's start on, and before it the session's setup as the log
//! still holds it (its sockets, links and analysis settings, so the recording can be
//! read alone; with `--record`, the start is the session's). It never touches the packet path: sockets and
//! links only append to the log, and if the store falls so far behind that the log
//! drops events before they are read, the recording holds a `gap` saying which.

use std::sync::Arc;
use std::time::{Duration, Instant};

use socklab_protocol::{Event, EventId, Gap};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::CommandError;
use crate::log::{Entry, EventLog, Record, Tagged};
use crate::store::{Store, StoredEvent};
use crate::udp::{ReplyTo, answer};

/// How long events gather before they are written in one transaction: what a crash
/// of the server can lose at most (with the batch being written).
pub const BATCH_EVERY: Duration = Duration::from_millis(100);
/// How many events one read of the log takes.
const READ_MAX: usize = 4096;
/// How many events one transaction holds at most.
const BATCH_MAX: usize = 20_000;

/// A running recording.
#[derive(Debug)]
pub struct Recording {
    /// The last event to record, once it is to stop.
    stop_at: watch::Sender<Option<EventId>>,
    /// The store and the recording's id there, once it is made.
    made: Arc<std::sync::OnceLock<(Arc<Store>, i64)>>,
    task: JoinHandle<Result<Option<i64>, CommandError>>,
}

impl Recording {
    /// Starts recording `log` (of session `session`) as `name` into `store`; a refusal
    /// (the store cannot make the recording) goes to `reply` for `req`.
    pub fn start(
        store: Arc<Store>,
        log: Arc<EventLog>,
        session: String,
        name: String,
        req: Option<Tagged>,
        reply: Option<ReplyTo>,
    ) -> Recording {
        // The session's own recording (`--record`, started with the session) holds
        // everything; one started later, the setup before it and all after.
        let whole = reply.is_none() && req.is_none();
        // The start is the command's moment: what is logged after it is recorded
        // whole, even before the store has made the recording.
        let all_from = if whole {
            EventId::BEFORE_FIRST
        } else {
            EventId(log.newest().0.saturating_add(1))
        };
        let (stop_at, stop_rx) = watch::channel(None);
        let made = Arc::new(std::sync::OnceLock::new());
        let made_in_task = made.clone();
        let task = tokio::spawn(async move {
            // The session's start on the real-time clock, as exports need it.
            let now_real = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let epoch_ns = now_real.saturating_sub(log.t_ns(Instant::now()));
            let made = store.create(name.clone(), session, Some(epoch_ns)).await;
            let id = match made {
                Ok(id) => {
                    let _ = made_in_task.set((store.clone(), id));
                    id
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a recording");
                    if let Some(reply) = &reply {
                        answer(reply, req, e);
                    }
                    return Ok(None);
                }
            };
            let from = log
                .read_after(EventId::BEFORE_FIRST, 1)
                .entries
                .first()
                .map_or(EventId(1), |e| e.id);
            log.append(
                Instant::now(),
                Record::RecordingStarted(Box::new(crate::log::RecordingStartedRecord {
                    recording: id,
                    name,
                    from,
                    req,
                })),
            );
            tracing::info!(recording = id, "recording");
            if let Err(e) = copy(&store, &log, id, all_from, stop_rx).await {
                // The store refused a batch (full, or failing): the recording ends
                // here, with what it holds, and the session's viewers are told why.
                tracing::warn!(recording = id, error = %e, "the recording stopped");
                let counts = store.finish(id).await.unwrap_or((0, 0));
                log.append(
                    Instant::now(),
                    Record::RecordingStopped {
                        recording: id,
                        counts,
                        reason: Some(e.message.clone().into()),
                        req: None,
                    },
                );
                return Err(e);
            }
            Ok(Some(id))
        });
        Recording {
            stop_at,
            made,
            task,
        }
    }

    /// The store and the recording's id there, once it is made.
    pub fn stored(&self) -> Option<(Arc<Store>, i64)> {
        self.made.get().cloned()
    }

    /// Stops after the newest event logged so far, once everything up to it is stored;
    /// returns the recording's id and counts (events, datagrams), or None when it never
    /// started (its refusal went to whoever asked).
    pub async fn stop(
        self,
        store: &Store,
        log: &EventLog,
    ) -> Result<Option<(i64, u64, u64)>, CommandError> {
        self.stop_at.send_replace(Some(log.newest()));
        let id = match self.task.await {
            Ok(result) => result?,
            Err(e) => {
                return Err(CommandError::new(
                    socklab_protocol::ErrorCode::IoError,
                    format!("the recording failed: {e}"),
                ));
            }
        };
        let Some(id) = id else {
            return Ok(None);
        };
        let (events, datagrams) = store.finish(id).await?;
        Ok(Some((id, events, datagrams)))
    }

    /// Whether the task has ended (the store failed, or the recording never started).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Copies the log into recording `id` until told where to stop and past it.
/// Before `all_from`, only the setup.
async fn copy(
    store: &Store,
    log: &EventLog,
    id: i64,
    all_from: EventId,
    mut stop_rx: watch::Receiver<Option<EventId>>,
) -> Result<(), CommandError> {
    let mut newest = log.subscribe();
    let mut cursor = EventId::BEFORE_FIRST;
    // Whether the last batch took everything the log had: only then is there reason to
    // wait. Behind (a batch full), the next batch is read at once: waiting a batch's
    // time after every full batch held the recorder to 200,000 events a second, and at
    // 100,000 datagrams a second (300,000 events) the log let go of 43 % of them before
    // they were stored.
    let mut caught_up = true;
    loop {
        let stop_at = *stop_rx.borrow_and_update();
        if stop_at.is_none() && caught_up {
            // Wait for news, then let a batch's worth gather.
            tokio::select! {
                _ = newest.changed() => {}
                _ = stop_rx.changed() => {}
            }
            tokio::select! {
                () = tokio::time::sleep(BATCH_EVERY) => {}
                _ = stop_rx.changed() => {}
            }
        }
        // The entries to store (shared with the log: no copy), written as JSON on
        // the store's thread; a gap the log made, as its event.
        let mut batch: Vec<Arc<Entry>> = Vec::new();
        let mut gaps = Vec::new();
        while batch.len() < BATCH_MAX {
            let read = log.read_after(cursor, READ_MAX);
            if let Some((from, to)) = read.gap.filter(|(_, to)| *to >= all_from) {
                tracing::warn!(
                    recording = id,
                    from = from.0,
                    to = to.0,
                    "the log dropped events before they were recorded"
                );
                let gap = Event::Gap(Gap {
                    from,
                    to,
                    count: to.0 - from.0 + 1,
                });
                gaps.push(StoredEvent::whole(
                    from.0,
                    read.entries.first().map_or(0, |e| e.t_ns),
                    "gap".into(),
                    gap.to_json(),
                ));
            }
            for entry in read.entries {
                cursor = entry.id;
                if entry.id >= all_from || is_setup(&entry.record) {
                    batch.push(entry);
                }
            }
            if !read.more {
                break;
            }
        }
        caught_up = batch.len() < BATCH_MAX;
        if !batch.is_empty() || !gaps.is_empty() {
            store
                .append_made(id, move || {
                    let mut events = gaps;
                    events.extend(batch.iter().map(|entry| stored(entry)));
                    events.sort_by_key(|e| e.id);
                    events
                })
                .await?;
        }
        if stop_at.is_some_and(|end| cursor >= end) {
            return Ok(());
        }
    }
}

/// An entry as the store keeps it: its JSON, with its bytes apart.
fn stored(entry: &Entry) -> StoredEvent {
    let mut json = String::with_capacity(256);
    let payload = crate::wire::write_stored(&mut json, entry).map(<[u8]>::to_vec);
    StoredEvent {
        id: entry.id.0,
        t_ns: entry.t_ns,
        kind: kind_of(&json).to_owned(),
        json,
        payload,
    }
}

/// Whether a record sets the session up (sockets, links, settings) rather than being
/// its traffic: what a recording started mid-session keeps from before its start.
fn is_setup(record: &Record) -> bool {
    matches!(
        record,
        Record::Bound(_)
            | Record::Closed { .. }
            | Record::Connected { .. }
            | Record::Accepted(_)
            | Record::Membership(_)
            | Record::Paused { .. }
            | Record::ShutDown { .. }
            | Record::LinkCreated(_)
            | Record::LinkUpdated { .. }
            | Record::LinkDeleted { .. }
            | Record::LinkClient(_)
            | Record::TcpLinkCreated(_)
            | Record::AnalysisConfig { .. }
            | Record::RunMarked { .. }
    )
}

/// The wire `type` of an event's JSON (it always comes first).
pub(crate) fn kind_of(json: &str) -> &str {
    json.strip_prefix(r#"{"type":""#)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_kind_is_its_wire_type() {
        assert_eq!(kind_of(r#"{"type":"datagram","id":1}"#), "datagram");
        assert_eq!(kind_of("{}"), "unknown");
    }
}
