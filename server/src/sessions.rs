//! The server's sessions: a registry by id, so a viewer can come back to its session
//! (`/ws?session=<id>&since=<last id>`) and several viewers can watch one session; and
//! each session's lifetime, which outlasts its viewers by a grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::log::EventLog;
use crate::session::Session;

/// One session, shared by its viewers.
#[derive(Debug)]
pub struct Shared {
    id: String,
    log: Arc<EventLog>,
    aggregates: Arc<std::sync::Mutex<crate::aggregate::Aggregates>>,
    session: tokio::sync::Mutex<Session>,
    /// How many viewers are attached.
    viewers: watch::Sender<usize>,
    /// The number the next viewer gets.
    next_viewer: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's log.
    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    /// Its datagrams counted per lane and time bucket.
    pub fn aggregates(&self) -> &Arc<std::sync::Mutex<crate::aggregate::Aggregates>> {
        &self.aggregates
    }

    /// The session's sockets, links and generators, for carrying out a command.
    pub fn session(&self) -> &tokio::sync::Mutex<Session> {
        &self.session
    }

    /// Whether one more viewer would fit under `max` (the rule [`Shared::attach`]
    /// applies); otherwise how many there are.
    pub fn has_room(&self, max: usize) -> Result<(), TooMany> {
        let n = *self.viewers.borrow();
        if n >= max { Err(TooMany(n)) } else { Ok(()) }
    }

    /// Counts a viewer in until the returned guard is dropped, unless the session
    /// already has `max` viewers (then it says how many it has).
    pub fn attach(self: &Arc<Self>, max: usize) -> Result<Attached, TooMany> {
        let mut room = Ok(());
        self.viewers.send_if_modified(|n| {
            room = if *n >= max { Err(TooMany(*n)) } else { Ok(()) };
            *n += usize::from(room.is_ok());
            room.is_ok()
        });
        room?;
        let number = self
            .next_viewer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Attached(self.clone(), number))
    }
}

/// A viewer's presence in a session.
#[derive(Debug)]
pub struct Attached(Arc<Shared>, u64);

impl Attached {
    /// The session.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.0
    }

    /// The viewer's number within the session (replies' `req`s go to it alone).
    pub fn number(&self) -> u64 {
        self.1
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.0.viewers.send_modify(|n| *n -= 1);
    }
}

/// Why a new session or viewer was not let in: how many there already are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany(pub usize);

/// Every live session.
#[derive(Debug)]
pub struct Sessions {
    config: Arc<Config>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    live: Mutex<HashMap<String, Arc<Shared>>>,
    /// Every link's addresses, server-wide.
    link_addrs: Arc<crate::link::LinkAddrs>,
    /// Slots for sockets, server-wide.
    slots: Arc<crate::slots::SocketSlots>,
    /// Where the sessions' Unix sockets are bound.
    unix: Arc<crate::unix::UnixRoot>,
    /// Where recordings are kept.
    store: Arc<crate::store::StoreSlot>,
}

impl Sessions {
    /// No sessions yet. Sessions end when `shutdown` is cancelled; their lifetimes are
    /// tracked by `tasks`.
    pub fn new(config: Arc<Config>, shutdown: CancellationToken, tasks: TaskTracker) -> Arc<Self> {
        let max_sockets = config.max_sockets.unwrap_or_else(|| {
            crate::slots::default_max_sockets(
                config
                    .max_sessions
                    .saturating_mul(config.max_viewers_per_session),
            )
        });
        tracing::info!(max_sockets, "socket limit");
        Arc::new(Sessions {
            slots: crate::slots::SocketSlots::new(max_sockets),
            unix: Arc::new(crate::unix::UnixRoot::new(
                config.unix_dir.clone(),
                config.allow_unix.clone(),
            )),
            store: Arc::new(crate::store::StoreSlot::new(
                config.data_dir.clone(),
                crate::store::Limits {
                    recordings: config.max_recordings,
                    bytes: config.max_store_bytes,
                },
            )),
            config,
            shutdown,
            tasks,
            live: Mutex::new(HashMap::new()),
            link_addrs: Arc::default(),
        })
    }

    /// The store of recordings.
    pub fn store(&self) -> Result<Arc<crate::store::Store>, crate::error::CommandError> {
        self.store.get()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Shared>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live session with this id.
    pub fn find(&self, id: &str) -> Option<Arc<Shared>> {
        self.live().get(id).cloned()
    }

    /// How many sessions are live.
    pub fn count(&self) -> usize {
        self.live().len()
    }

    /// Whether one more session would fit (the rule [`Sessions::open`] applies);
    /// otherwise how many there are.
    pub fn has_room(&self) -> Result<(), TooMany> {
        Self::room_in(&self.live(), self.config.max_sessions)
    }

    fn room_in(live: &HashMap<String, Arc<Shared>>, max: usize) -> Result<(), TooMany> {
        if live.len() >= max {
            Err(TooMany(live.len()))
        } else {
            Ok(())
        }
    }

    /// Opens a new session with its first viewer counted in, unless the server already
    /// has its maximum.
    pub fn open(self: &Arc<Self>) -> Result<Attached, TooMany> {
        let mut live = self.live();
        Self::room_in(&live, self.config.max_sessions)?;
        let session = Session::new(
            self.config.clone(),
            self.link_addrs.clone(),
            self.slots.clone(),
            self.unix.clone(),
            self.store.clone(),
            self.shutdown.child_token(),
        );
        let shared = Arc::new(Shared {
            id: session.id().to_owned(),
            log: session.log().clone(),
            aggregates: session.aggregates().clone(),
            session: tokio::sync::Mutex::new(session),
            viewers: watch::Sender::new(0),
            next_viewer: std::sync::atomic::AtomicU64::new(1),
        });
        live.insert(shared.id.clone(), shared.clone());
        drop(live);
        tracing::info!(session = %shared.id, "session opened");
        // Counted in before its lifetime starts, so a zero grace cannot end it at once.
        let attached = shared
            .attach(usize::MAX)
            .expect("a new session has no viewers yet");
        self.tasks.spawn(self.clone().linger(shared));
        Ok(attached)
    }

    /// Keeps a session while it has viewers, and for the grace period after the last
    /// one leaves; then closes its sockets, links and generators.
    async fn linger(self: Arc<Self>, shared: Arc<Shared>) {
        let grace = self.config.grace;
        let mut viewers = shared.viewers.subscribe();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = viewers.wait_for(|n| *n == 0) => {}
            }
            let back = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                back = tokio::time::timeout(grace, viewers.wait_for(|n| *n > 0)) => back,
            };
            if back.is_err() {
                break;
            }
        }
        self.live().remove(&shared.id);
        shared.session.lock().await.close_all().await;
        tracing::info!(session = %shared.id, "session ended");
    }
}
