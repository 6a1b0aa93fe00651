//! The store: recordings of sessions in SQLite (`<data dir>/socklab.db`), in WAL mode,
//! its schema brought up to date by numbered migrations when it opens.
//!
//! One thread owns the connection and runs the jobs sent to it in order, so no SQLite
//! call ever runs on the async runtime's threads and writes never contend. A recording
//! is written in batches, one transaction each (`recorder.rs` sends one about every
//! 100 ms), so a crash loses at most the batch being written and never leaves a
//! half-written one behind. Events are kept in chunks of hundreds (`chunk.rs`), not a
//! row each: SQLite's cost per row was more than the server's per datagram.
//!
//! (Over 600 lines: every SQL statement the server runs is here, next to the schema
//! it must agree with; the tests are in `tests.rs`.)

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension as _, params};
use socklab_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};

mod chunk;

use crate::error::CommandError;

/// The database file's name in the data directory.
pub const FILE: &str = "socklab.db";
/// How many jobs may wait for the store's thread before senders wait.
const JOBS: usize = 64;
/// The longest recording name.
pub const MAX_NAME: usize = 100;
/// The most recordings one page of the list holds.
pub const MAX_PAGE: u32 = 500;

/// The schema, one migration per version: version N is reached by running the N-th
/// (and, for version 4, [`chunk_events`] after it). A store at a version this build
/// does not know (newer) is refused.
const MIGRATIONS: &[&str] = &[
    // 1: recordings and their events, each event as the wire JSON a viewer got.
    "CREATE TABLE recordings (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        session TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        stopped_ms INTEGER,
        events INTEGER NOT NULL DEFAULT 0,
        datagrams INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        first_t_ns INTEGER,
        last_t_ns INTEGER
    );
    CREATE INDEX recordings_by_date ON recordings (created_ms DESC, id DESC);
    CREATE TABLE events (
        recording INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
        id INTEGER NOT NULL,
        t_ns INTEGER NOT NULL,
        kind TEXT NOT NULL,
        json TEXT NOT NULL,
        PRIMARY KEY (recording, id)
    ) WITHOUT ROWID;",
    // 2: when the recorded session began on the real-time clock (ns since the Unix
    // epoch): events' times are counted from it, and an export needs wall-clock times.
    "ALTER TABLE recordings ADD COLUMN epoch_ns INTEGER;",
    // 3: a note about how a recording was made (what an import skipped).
    "ALTER TABLE recordings ADD COLUMN note TEXT;",
    // 4: events in chunks (`chunk.rs`), a few hundred to a row, an event's bytes as
    // they are beside its JSON; the rows of before become chunks (in `chunk_events`).
    "CREATE TABLE chunks (
        recording INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        first_t_ns INTEGER NOT NULL,
        last_t_ns INTEGER NOT NULL,
        events INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE UNIQUE INDEX chunks_by_id ON chunks (recording, last_id);",
    // 5: a finished recording's datagrams counted per lane and time bucket
    // (`aggregate::Counted` as JSON), made the first time they are asked for.
    "CREATE TABLE counts (
        recording INTEGER PRIMARY KEY REFERENCES recordings (id) ON DELETE CASCADE,
        data BLOB NOT NULL
    );",
];

/// One event as stored: its id and time in the session, its kind (the wire `type`)
/// and its JSON; the bytes it carries may be kept apart (`payload`, with
/// `"payload_b64":""` in the JSON) when it is written. Read back, an event's JSON is
/// always whole and `payload` is None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event's id in the session (a gap's: the first id it stands for).
    pub id: u64,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The wire `type`: `datagram`, `fate`, `gap`, …
    pub kind: String,
    /// The event as a viewer got it (its bytes left out when `payload` holds them).
    pub json: String,
    /// The bytes the event carries, when kept apart from its JSON.
    pub payload: Option<Vec<u8>>,
}

impl StoredEvent {
    /// An event whose JSON is whole.
    pub fn whole(id: u64, t_ns: u64, kind: String, json: String) -> StoredEvent {
        StoredEvent {
            id,
            t_ns,
            kind,
            json,
            payload: None,
        }
    }
}

/// Where a stored event's bytes go back into its JSON.
const EMPTY_PAYLOAD: &str = r#""payload_b64":"""#;

/// A recording as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordingInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The session it recorded.
    pub session: String,
    /// When it started, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it stopped (absent: still recording, or the server stopped without saying).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_ms: Option<i64>,
    /// How many events it holds.
    pub events: u64,
    /// How many of them are datagrams.
    pub datagrams: u64,
    /// The bytes of their JSON.
    pub bytes: u64,
    /// From its first event to its last, ns.
    pub duration_ns: u64,
    /// How it was made, when that needs saying (what an import skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The store, shared by the server's sessions and its HTTP routes.
#[derive(Debug)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
    limits: Limits,
}

/// How much a store keeps at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Recordings (`--max-recordings`): a new one beyond them is refused until some
    /// are deleted.
    pub recordings: u64,
    /// Bytes of the database in use (`--max-store-bytes`): a batch of events that
    /// would take it past them is refused (the recording stops), and so is a new
    /// recording once it is there.
    pub bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            recordings: crate::config::DEFAULT_MAX_RECORDINGS,
            bytes: crate::config::DEFAULT_MAX_STORE_BYTES,
        }
    }
}

impl Store {
    /// Opens (or makes) the store in `dir`, brings its schema up to date, and starts
    /// its thread.
    pub fn open(dir: &Path) -> Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot make the data directory {}: {e}", dir.display()))?;
        let path = dir.join(FILE);
        let mut conn = Connection::open(&path)
            .map_err(|e| format!("cannot open the store {}: {e}", path.display()))?;
        prepare(&mut conn)
            .map_err(|e| format!("the store {} cannot be used: {e}", path.display()))?;
        let (jobs, mut queue) = mpsc::channel::<Job>(JOBS);
        std::thread::Builder::new()
            .name("socklab-store".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| format!("cannot start the store's thread: {e}"))?;
        Ok(Store {
            jobs,
            path,
            limits: Limits::default(),
        })
    }

    /// The same store keeping at most what `limits` say.
    pub fn with_limits(mut self, limits: Limits) -> Store {
        self.limits = limits;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `job` on the store's thread and returns what it returns.
    pub async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = tx.send(job(conn));
            }))
            .await
            .map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(|e| CommandError::new(ErrorCode::IoError, format!("the store failed: {e}")))
    }

    /// Makes a recording of `session` named `name`, whose events' times count from
    /// `epoch_ns` (ns since the Unix epoch); returns its id.
    pub async fn create(
        &self,
        name: String,
        session: String,
        epoch_ns: Option<u64>,
    ) -> Result<i64, CommandError> {
        let limits = self.limits;
        self.call(move |conn| {
            let count: i64 = conn.query_row("SELECT COUNT(*) FROM recordings", [], |r| r.get(0))?;
            if count as u64 >= limits.recordings {
                return Ok(Err(CommandError::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "the store already keeps {} recordings, the most allowed (--max-recordings); delete some first",
                        limits.recordings
                    ),
                )));
            }
            if let Err(full) = room_for(conn, 0, limits) {
                return Ok(Err(full));
            }
            conn.execute(
                "INSERT INTO recordings (name, session, created_ms, epoch_ns) VALUES (?1, ?2, ?3, ?4)",
                params![name, session, now_ms(), epoch_ns.map(|e| e as i64)],
            )?;
            Ok(Ok(conn.last_insert_rowid()))
        })
        .await?
    }

    /// Appends `events` to recording `id` in one transaction, with its counts.
    pub async fn append(&self, id: i64, events: Vec<StoredEvent>) -> Result<(), CommandError> {
        self.append_made(id, move || events).await
    }

    /// Appends the events `make` makes to recording `id` in one transaction, with its
    /// counts; `make` runs on the store's thread (the recorder's JSON is written there,
    /// not on the threads that carry packets).
    pub async fn append_made(
        &self,
        id: i64,
        make: impl FnOnce() -> Vec<StoredEvent> + Send + 'static,
    ) -> Result<(), CommandError> {
        let limits = self.limits;
        self.call(move |conn| {
            let mut events = make();
            // What fits under the limit is stored; past it, the rest is refused.
            let room = match used_bytes(conn) {
                Ok(used) => limits.bytes.saturating_sub(used),
                Err(e) => return Ok(Err(e)),
            };
            let mut fits = 0u64;
            let whole = events.len();
            events.retain(|e| {
                fits = fits
                    .saturating_add((e.json.len() + e.payload.as_ref().map_or(0, Vec::len)) as u64);
                fits <= room
            });
            let refused = events.len() < whole;
            let tx = conn.transaction()?;
            {
                // In id order, each id once, and only ids after those stored (an id
                // already stored keeps its first event, as a row's key did).
                events.sort_by_key(|e| e.id);
                events.dedup_by_key(|e| e.id);
                let stored: Option<i64> = tx.query_row(
                    "SELECT MAX(last_id) FROM chunks WHERE recording = ?1",
                    params![id],
                    |row| row.get(0),
                )?;
                if let Some(stored) = stored {
                    events.retain(|e| e.id as i64 > stored);
                }
                let bytes = insert_chunks(&tx, id, &events)?;
                let datagrams = events.iter().filter(|e| e.kind == "datagram").count();
                let (first, last) = (events.first(), events.last());
                tx.execute(
                    "UPDATE recordings SET events = events + ?2, datagrams = datagrams + ?3,
                        bytes = bytes + ?4, first_t_ns = COALESCE(first_t_ns, ?5),
                        last_t_ns = MAX(COALESCE(last_t_ns, 0), COALESCE(?6, 0))
                     WHERE id = ?1",
                    params![
                        id,
                        events.len() as i64,
                        datagrams as i64,
                        bytes as i64,
                        first.map(|e| e.t_ns as i64),
                        last.map(|e| e.t_ns as i64)
                    ],
                )?;
            }
            tx.commit()?;
            Ok(if refused {
                room_for(conn, u64::MAX, limits)
            } else {
                Ok(())
            })
        })
        .await?
    }

    /// Marks recording `id` stopped; returns its counts (events, datagrams).
    pub async fn finish(&self, id: i64) -> Result<(u64, u64), CommandError> {
        self.call(move |conn| {
            conn.execute(
                "UPDATE recordings SET stopped_ms = ?2 WHERE id = ?1",
                params![id, now_ms()],
            )?;
            conn.query_row(
                "SELECT events, datagrams FROM recordings WHERE id = ?1",
                params![id],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
            )
        })
        .await
    }

    /// A page of the recordings, newest first: `limit` of them after the first
    /// `offset`, and how many there are in all.
    pub async fn list(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<(u64, Vec<RecordingInfo>), CommandError> {
        let limit = limit.min(MAX_PAGE);
        self.call(move |conn| {
            let total: i64 = conn.query_row("SELECT COUNT(*) FROM recordings", [], |r| r.get(0))?;
            let mut query = conn.prepare_cached(
                "SELECT id, name, session, created_ms, stopped_ms, events, datagrams, bytes,
                        COALESCE(last_t_ns - first_t_ns, 0), note
                 FROM recordings ORDER BY created_ms DESC, id DESC LIMIT ?1 OFFSET ?2",
            )?;
            let rows = query
                .query_map(params![limit, offset], info_of)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((total as u64, rows))
        })
        .await
    }

    /// One recording, if there is one of that id.
    pub async fn get(&self, id: i64) -> Result<Option<RecordingInfo>, CommandError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT id, name, session, created_ms, stopped_ms, events, datagrams, bytes,
                        COALESCE(last_t_ns - first_t_ns, 0), note
                 FROM recordings WHERE id = ?1",
                params![id],
                info_of,
            )
            .optional()
        })
        .await
    }

    /// Notes how recording `id` was made.
    pub async fn set_note(&self, id: i64, note: String) -> Result<(), CommandError> {
        self.call(move |conn| {
            conn.execute(
                "UPDATE recordings SET note = ?2 WHERE id = ?1",
                params![id, note],
            )?;
            Ok(())
        })
        .await
    }

    /// Renames recording `id`; false if there is none.
    pub async fn rename(&self, id: i64, name: String) -> Result<bool, CommandError> {
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE recordings SET name = ?2 WHERE id = ?1",
                params![id, name],
            )? > 0)
        })
        .await
    }

    /// Deletes recording `id` and its events; false if there is none.
    pub async fn delete(&self, id: i64) -> Result<bool, CommandError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM chunks WHERE recording = ?1", params![id])?;
            tx.execute("DELETE FROM counts WHERE recording = ?1", params![id])?;
            let gone = tx.execute("DELETE FROM recordings WHERE id = ?1", params![id])? > 0;
            tx.commit()?;
            Ok(gone)
        })
        .await
    }

    /// When recording `id`'s session began, ns since the Unix epoch (None: unknown).
    pub async fn epoch_ns(&self, id: i64) -> Result<Option<u64>, CommandError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT epoch_ns FROM recordings WHERE id = ?1",
                params![id],
                |row| row.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|e| e.flatten().map(|n| n.max(0) as u64))
        })
        .await
    }

    /// Up to `limit` events of recording `id` of kind `kind` (the wire `type`) with ids
    /// after `after`, in id order.
    pub async fn events_of_kind(
        &self,
        id: i64,
        kind: &'static str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, CommandError> {
        self.call(move |conn| read_events(conn, id, after, limit, Kinds::Only(kind)))
            .await
    }

    /// What recording `id` holds of `from_ns..=to_ns` below event `below` (at most
    /// `limit` events, and about `max_bytes` of their JSON): see [`StoredWindow`].
    pub async fn window(
        &self,
        id: i64,
        (from_ns, to_ns): (u64, u64),
        below: u64,
        (limit, max_bytes): (usize, usize),
    ) -> Result<StoredWindow, CommandError> {
        self.call(move |conn| read_window(conn, id, (from_ns, to_ns), below, (limit, max_bytes)))
            .await
    }

    /// Up to `limit` events of recording `id` with ids after `after`, in id order.
    pub async fn events(
        &self,
        id: i64,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, CommandError> {
        self.call(move |conn| read_events(conn, id, after, limit, Kinds::All))
            .await
    }

    /// Up to `limit` events of recording `id` of `kinds` with ids after `after`, in id
    /// order.
    pub async fn events_of(
        &self,
        id: i64,
        after: u64,
        limit: u32,
        kinds: Kinds,
    ) -> Result<Vec<StoredEvent>, CommandError> {
        self.call(move |conn| read_events(conn, id, after, limit, kinds))
            .await
    }

    /// The last `limit` events of recording `id` with ids below `before`, in id order.
    pub async fn events_before(
        &self,
        id: i64,
        before: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, CommandError> {
        self.call(move |conn| read_events_before(conn, id, before, limit))
            .await
    }

    /// Up to `max` chunks of recording `id` after event `after`, as they are stored
    /// (read them with [`each_event`]), and the last event id of the last.
    pub async fn chunks(
        &self,
        id: i64,
        after: u64,
        max: u32,
    ) -> Result<(Vec<Vec<u8>>, u64), CommandError> {
        self.call(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT last_id, data FROM chunks WHERE recording = ?1 AND last_id > ?2
                 ORDER BY last_id LIMIT ?3",
            )?;
            let mut rows = query.query(params![id, after.min(i64::MAX as u64) as i64, max])?;
            let (mut out, mut last) = (Vec::new(), after);
            while let Some(row) = rows.next()? {
                last = row.get::<_, i64>(0)?.max(0) as u64;
                out.push(row.get::<_, Vec<u8>>(1)?);
            }
            Ok((out, last))
        })
        .await
    }

    /// The counts kept of recording `id` (see migration 5), if they were made.
    pub async fn counts(&self, id: i64) -> Result<Option<Vec<u8>>, CommandError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT data FROM counts WHERE recording = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    /// Keeps recording `id`'s counts, if it has stopped (one still being made would
    /// count more later).
    pub async fn keep_counts(&self, id: i64, data: Vec<u8>) -> Result<(), CommandError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO counts (recording, data)
                 SELECT ?1, ?2 WHERE EXISTS
                   (SELECT 1 FROM recordings WHERE id = ?1 AND stopped_ms IS NOT NULL)",
                params![id, data],
            )?;
            Ok(())
        })
        .await
    }
}

/// Which events to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    /// Every one.
    All,
    /// Those of one wire `type`.
    Only(&'static str),
    /// All but those about single datagrams (`datagram`, `fate`, `link_packet`,
    /// `link_sent`): the sockets, links, figures and runs a recording's view is built
    /// on, however many datagrams it holds.
    Outline,
}

impl Kinds {
    fn takes(self, kind: &str) -> bool {
        match self {
            Kinds::All => true,
            Kinds::Only(k) => k == kind,
            Kinds::Outline => !matches!(kind, "datagram" | "fate" | "link_packet" | "link_sent"),
        }
    }
}

/// Calls `f` with each event of chunk `data` (from [`Store::chunks`]): its id, time,
/// kind and JSON (without the bytes kept apart: `"payload_b64":""`). An error where the
/// chunk does not read as events.
pub fn each_event(data: &[u8], mut f: impl FnMut(u64, u64, &str, &str)) -> Result<(), String> {
    for item in chunk::items(data) {
        let item = item?;
        f(item.id, item.t_ns, item.kind, item.json);
    }
    Ok(())
}

/// What a recording holds of a time range, for a `window` the session's log can no
/// longer answer whole.
#[derive(Debug, Default)]
pub struct StoredWindow {
    /// Its events with ids below the one asked for, in id order: those with a time in
    /// the range, and the fates of the datagrams sent among them.
    pub events: Vec<StoredEvent>,
    /// Whether the recording holds the range from its start (it began before it).
    pub from_start: bool,
    /// Whether `events` stopped at the limit, or hold a `gap` (events the recording
    /// missed because the log dropped them first).
    pub cut: bool,
}

/// How many chunks past a window a stored window reads for the fates of its sends.
const FATE_CHUNKS: usize = 256;

/// Up to `limit` events of recording `id` after `after` (of kind `kind` only, if
/// given), read from the chunks that hold them.
fn read_events(
    conn: &mut Connection,
    id: i64,
    after: u64,
    limit: u32,
    kinds: Kinds,
) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut query = conn.prepare_cached(
        "SELECT data FROM chunks WHERE recording = ?1 AND last_id > ?2 ORDER BY last_id",
    )?;
    let mut rows = query.query(params![id, after.min(i64::MAX as u64) as i64])?;
    let mut out = Vec::new();
    while out.len() < limit as usize
        && let Some(row) = rows.next()?
    {
        let data = row.get_ref(0)?.as_blob()?;
        for item in chunk::items(data) {
            let item = item.map_err(rusqlite::Error::InvalidParameterName)?;
            if item.id <= after || !kinds.takes(item.kind) {
                continue;
            }
            out.push(whole(item));
            if out.len() == limit as usize {
                break;
            }
        }
    }
    Ok(out)
}

/// The last `limit` events of recording `id` below id `before`, in id order.
fn read_events_before(
    conn: &mut Connection,
    id: i64,
    before: u64,
    limit: u32,
) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut query = conn.prepare_cached(
        "SELECT data FROM chunks WHERE recording = ?1 AND first_id < ?2 ORDER BY last_id DESC",
    )?;
    let mut rows = query.query(params![id, before.min(i64::MAX as u64) as i64])?;
    // Chunks newest first; each one's events in order, newest kept.
    let mut out: std::collections::VecDeque<StoredEvent> = std::collections::VecDeque::new();
    while out.len() < limit as usize
        && let Some(row) = rows.next()?
    {
        let data = row.get_ref(0)?.as_blob()?;
        let mut items = Vec::new();
        for item in chunk::items(data) {
            let item = item.map_err(rusqlite::Error::InvalidParameterName)?;
            if item.id < before {
                items.push(item);
            }
        }
        for item in items.into_iter().rev() {
            if out.len() == limit as usize {
                break;
            }
            out.push_front(whole(item));
        }
    }
    Ok(out.into())
}

fn read_window(
    conn: &mut Connection,
    id: i64,
    (from_ns, to_ns): (u64, u64),
    below: u64,
    (limit, max_bytes): (usize, usize),
) -> rusqlite::Result<StoredWindow> {
    let mut bytes = 0usize;
    let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
    let slack = crate::log::TIME_SLACK_NS;
    let from_start: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM chunks WHERE recording = ?1 AND first_t_ns <= ?2)",
        )?
        .query_row(params![id, clamp(from_ns)], |r| r.get(0))?;
    let mut out = StoredWindow {
        from_start,
        ..StoredWindow::default()
    };
    let mut rule = crate::query::WindowRule::new(from_ns, to_ns, Default::default());
    {
        let mut query = conn.prepare_cached(
            "SELECT data FROM chunks WHERE recording = ?1 AND first_id < ?2 AND last_t_ns >= ?3
             ORDER BY last_id",
        )?;
        let mut rows = query.query(params![
            id,
            clamp(below),
            clamp(from_ns.saturating_sub(slack))
        ])?;
        // Chunks read past the range, for fates only.
        let mut past = 0usize;
        'chunks: while let Some(row) = rows.next()? {
            let data = row.get_ref(0)?.as_blob()?;
            for item in chunk::items(data) {
                let item = item.map_err(rusqlite::Error::InvalidParameterName)?;
                if item.id >= below {
                    break 'chunks;
                }
                let seen = stored_seen(&item);
                if !rule.wants(item.t_ns, seen) {
                    continue;
                }
                if out.events.len() >= limit || bytes >= max_bytes {
                    out.cut = true;
                    break 'chunks;
                }
                if item.kind == "gap" && (from_ns..=to_ns).contains(&item.t_ns) {
                    out.cut = true;
                }
                rule.took(item.id, seen);
                let event = whole(item);
                bytes += event.json.len();
                out.events.push(event);
            }
            if rule.past() {
                past += 1;
                if past > FATE_CHUNKS || rule.done() {
                    break;
                }
            }
        }
    }
    // The receives its fates name that came after the range (a link's delay), each
    // read by its id.
    let have: std::collections::HashSet<u64> = out.events.iter().map(|e| e.id).collect();
    for recv in rule.receives() {
        if have.contains(&recv) || recv >= below || out.cut {
            continue;
        }
        if out.events.len() >= limit || bytes >= max_bytes {
            out.cut = true;
            break;
        }
        if let Some(event) = read_events(conn, id, recv.saturating_sub(1), 1, Kinds::All)?
            .into_iter()
            .find(|e| e.id == recv)
        {
            bytes += event.json.len();
            out.events.push(event);
        }
    }
    out.events.sort_by_key(|e| e.id);
    Ok(out)
}

/// What a stored event is, for a window's rule.
fn stored_seen(item: &chunk::Item<'_>) -> crate::query::Seen {
    use crate::query::Seen;
    match item.kind {
        "datagram" if item.json.contains("\"dir\":\"out\"") => Seen::Send,
        "fate" => match number_after(item.json, "\"send\":") {
            Some(send) => Seen::Fate {
                send,
                recv: number_after(item.json, "\"recv\":"),
                duplicate: item.json.contains("\"fate\":\"duplicate\""),
            },
            None => Seen::Other,
        },
        _ => Seen::Other,
    }
}

/// The number after `key` in a JSON text.
fn number_after(json: &str, key: &str) -> Option<u64> {
    let at = json.find(key)? + key.len();
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A stored event as a viewer got it: its bytes, when kept apart, back in its JSON.
fn whole(item: chunk::Item<'_>) -> StoredEvent {
    let mut json = item.json.to_owned();
    if let Some(bytes) = item.payload
        && let Some(at) = json.find(EMPTY_PAYLOAD)
    {
        let at = at + EMPTY_PAYLOAD.len() - 1;
        json.insert_str(at, &socklab_protocol::payload::encode_base64(bytes));
    }
    StoredEvent::whole(item.id, item.t_ns, item.kind.to_owned(), json)
}

fn info_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordingInfo> {
    Ok(RecordingInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        session: row.get(2)?,
        created_ms: row.get(3)?,
        stopped_ms: row.get(4)?,
        events: row.get::<_, i64>(5)? as u64,
        datagrams: row.get::<_, i64>(6)? as u64,
        bytes: row.get::<_, i64>(7)? as u64,
        duration_ns: row.get::<_, i64>(8)?.max(0) as u64,
        note: row.get(9)?,
    })
}

/// WAL (readers never block the writer; a crash never corrupts), foreign keys, and the
/// schema migrated to this build's version.
fn prepare(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode a commit is durable against a crash of the process with NORMAL; only
    // a power loss can take the newest transactions.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(conn)
}

/// Runs the migrations the store has not had yet, each in its own transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "it has schema version {version}, newer than this socklab knows ({known}); use a newer socklab or another --data directory"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if i + 1 == CHUNKS_FROM {
            chunk_events(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store migrated");
    }
    Ok(())
}

/// The version from which events are kept in chunks.
const CHUNKS_FROM: usize = 4;

/// Moves the events a store kept a row each (versions 1 to 3) into chunks.
fn chunk_events(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    {
        let mut rows = tx
            .prepare("SELECT recording, id, t_ns, kind, json FROM events ORDER BY recording, id")?;
        let mut rows = rows.query([])?;
        let mut batch: Vec<StoredEvent> = Vec::new();
        let mut of = None;
        while let Some(row) = rows.next()? {
            let recording: i64 = row.get(0)?;
            if of != Some(recording) {
                if let Some(of) = of {
                    insert_chunks(tx, of, &std::mem::take(&mut batch))?;
                }
                of = Some(recording);
            }
            batch.push(StoredEvent::whole(
                row.get::<_, i64>(1)? as u64,
                row.get::<_, i64>(2)? as u64,
                row.get(3)?,
                row.get(4)?,
            ));
        }
        if let Some(of) = of {
            insert_chunks(tx, of, &batch)?;
        }
    }
    tx.execute_batch("DROP TABLE events;")
}

/// Writes `events` (in id order, none stored yet) as chunks of recording `id`;
/// returns the bytes written.
fn insert_chunks(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    events: &[StoredEvent],
) -> rusqlite::Result<u64> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO chunks (recording, first_id, last_id, first_t_ns, last_t_ns, events, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut written = 0u64;
    let mut rest = events;
    while let Some(first) = rest.first() {
        let mut data = Vec::new();
        let mut n = 0;
        while n < rest.len() && n < chunk::MAX_EVENTS && data.len() < chunk::MAX_BYTES {
            chunk::push(&mut data, &rest[n]);
            n += 1;
        }
        let last = &rest[n - 1];
        insert.execute(params![
            id,
            first.id as i64,
            last.id as i64,
            first.t_ns as i64,
            last.t_ns as i64,
            n as i64,
            data
        ])?;
        written += data.len() as u64;
        rest = &rest[n..];
    }
    Ok(written)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The bytes of the store in use: its pages, less those freed by deleted recordings
/// (which SQLite reuses).
fn used_bytes(conn: &Connection) -> Result<u64, CommandError> {
    (|| -> rusqlite::Result<u64> {
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        let size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok((pages.saturating_sub(free).max(0) as u64).saturating_mul(size.max(0) as u64))
    })()
    .map_err(|e| CommandError::new(ErrorCode::IoError, format!("the store failed: {e}")))
}

/// Whether `incoming` more bytes fit in the store under `limits`; if not, the refusal.
fn room_for(conn: &Connection, incoming: u64, limits: Limits) -> Result<(), CommandError> {
    let used = used_bytes(conn)?;
    if used.saturating_add(incoming) > limits.bytes {
        return Err(CommandError::new(
            ErrorCode::LimitExceeded,
            format!(
                "the store holds {:.1} MB, and its limit is {:.1} MB (--max-store-bytes); delete some recordings to make room",
                used as f64 / 1e6,
                limits.bytes as f64 / 1e6
            ),
        ));
    }
    Ok(())
}

fn stopped() -> CommandError {
    CommandError::new(ErrorCode::IoError, "the store has stopped")
}

/// The server's store, opened on first use (or at start with `--record`): the data
/// directory may never be needed.
#[derive(Debug)]
pub struct StoreSlot {
    dir: Option<PathBuf>,
    limits: Limits,
    store: std::sync::OnceLock<Result<std::sync::Arc<Store>, String>>,
}

impl StoreSlot {
    /// The store in `dir` (None: this server keeps no recordings).
    pub fn new(dir: Option<PathBuf>, limits: Limits) -> Self {
        StoreSlot {
            dir,
            limits,
            store: std::sync::OnceLock::new(),
        }
    }

    /// The store, opened now if it was not yet.
    pub fn get(&self) -> Result<std::sync::Arc<Store>, CommandError> {
        let Some(dir) = &self.dir else {
            return Err(CommandError::new(
                ErrorCode::IoError,
                "this server keeps no recordings (it was started without a data directory)",
            ));
        };
        self.store
            .get_or_init(|| {
                Store::open(dir).map(|s| std::sync::Arc::new(s.with_limits(self.limits)))
            })
            .clone()
            .map_err(|e| CommandError::new(ErrorCode::IoError, e))
    }
}

/// The platform's data directory for socklab: `$XDG_DATA_HOME/socklab`, else
/// `~/.local/share/socklab`, else `./socklab-data`.
pub fn default_dir() -> PathBuf {
    match (std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME")) {
        (Some(data), _) if !data.is_empty() => PathBuf::from(data).join("socklab"),
        (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".local/share/socklab"),
        _ => PathBuf::from("socklab-data"),
    }
}

#[cfg(test)]
mod tests;
