//! The WebSocket side of a session: one viewer's loop. It reads commands and hands
//! them to the session, and streams the session's log to the viewer in frames, from
//! the viewer's own cursor (a `gap` first when the bounded log dropped events the
//! viewer had not been sent).

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use socklab_protocol::fast;
use socklab_protocol::{ErrorEvent, Event, EventId, Gap, Hello, decode_request};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::error::CommandError;
use crate::log::EventLog;
use crate::query::{MAX_WINDOW_BYTES, Passed, is_detail, log_window, window_frame};
use crate::timer::sleep_until;
use crate::wire::{error_event, write_event};

/// The most events one frame carries.
pub const MAX_BATCH: usize = 512;
pub use socklab_protocol::limits::{MIN_KEEP_UP, MIN_KEEP_UP_RATE};
/// The longest the server waits to send a viewer its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// A frame stops taking events once it is this long (it always carries at least one).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Serves one viewer of `shared` on `ws` until it leaves or the server shuts down,
/// starting after event `since` (0: from the start of the log). `notice` is sent right
/// after the greeting (for example: the session asked for has ended).
pub async fn serve(
    ws: WebSocket,
    attached: crate::sessions::Attached,
    since: EventId,
    notice: Option<ErrorEvent>,
    pace: Pace,
    shutdown: CancellationToken,
) {
    let shared = attached.shared().clone();
    let span = tracing::info_span!("viewer", session = %shared.id());
    async {
        tracing::info!(since = since.0, "viewer connected");
        let viewer = Viewer {
            ws,
            cursor: since,
            number: attached.number(),
            flush_interval: pace.flush_interval,
            configured_flush: pace.flush_interval,
            write_timeout: pace.write_timeout,
            shutdown: shutdown.clone(),
            keep_up: 0,
            rate: Budget::default(),
            whole: std::collections::VecDeque::new(),
            queries: crate::budget::QueryBudget::new(pace.queries_per_sec),
        };
        if let Err(e) = viewer.run(&shared, notice, &shutdown).await {
            tracing::debug!(error = %e, "viewer connection ended with an error");
        }
        drop(attached);
        tracing::info!("viewer left");
    }
    .instrument(span)
    .await
}

/// How a viewer's frames are paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The least time between two frames while events keep coming.
    pub flush_interval: Duration,
    /// The longest one frame may take to be written; a viewer slower than that is
    /// disconnected (it can come back with `since`).
    pub write_timeout: Duration,
    /// How many `aggregate`s and `window`s it may ask a second (`--max-queries-per-sec`).
    pub queries_per_sec: u64,
}

/// The WebSocket side of a session.
struct Viewer {
    ws: WebSocket,
    /// The id of the last event this viewer was sent.
    cursor: EventId,
    /// Its number within the session.
    number: u64,
    /// The least time between two frames while events keep coming.
    flush_interval: Duration,
    /// The server's least time between frames (`--flush-interval-us`), which a `keep_up`
    /// with a `rate` raises to [`KEEP_UP_FLUSH`] for this viewer.
    configured_flush: Duration,
    /// See [`Pace::write_timeout`].
    write_timeout: Duration,
    /// The server's shutdown: a frame being written gives way to it.
    shutdown: CancellationToken,
    /// How far behind it may fall before it is thinned (`keep_up`; 0: never).
    keep_up: u64,
    /// How many events a second it takes before it is thinned (`keep_up`'s `rate`).
    rate: Budget,
    /// The latest stretches of ids it was sent whole, oldest first: a thinned viewer
    /// is still sent the fates of the datagrams sent in them (the analysis may
    /// conclude a fate long after the send, when the viewer has fallen behind).
    whole: std::collections::VecDeque<(EventId, EventId)>,
    /// The `aggregate`s and `window`s it may still ask.
    queries: crate::budget::QueryBudget,
}

/// Events a viewer may still be sent before it is thinned, refilled at its `rate` a
/// second up to a quarter of a second's worth: a page that asked for at most 20,000
/// events a second is never handed more than 5,000 at once (a faster session thins
/// them, and the page draws the server's counts instead), and the bursts of a moderate
/// session (a generator's, a program's) arrive whole.
#[derive(Debug, Default)]
struct Budget {
    /// Events a second (0: no limit).
    rate: u64,
    /// Events it may be sent now.
    left: f64,
    /// When it was last refilled.
    at: Option<Instant>,
}

impl Budget {
    fn new(rate: u64) -> Budget {
        Budget {
            rate,
            left: Budget::most(rate),
            at: Some(Instant::now()),
        }
    }

    fn most(rate: u64) -> f64 {
        rate as f64 / 4.0
    }

    /// Whether `pending` events may be sent whole now.
    fn allows(&mut self, pending: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let now = Instant::now();
        let elapsed = self.at.map_or(0.0, |at| (now - at).as_secs_f64());
        self.at = Some(now);
        self.left = (self.left + elapsed * self.rate as f64).min(Budget::most(self.rate));
        pending as f64 <= self.left
    }

    /// Counts `n` events sent. What a thinned viewer is still sent (its own sends, the
    /// fates of datagrams it was sent) may take it below nothing: that debt (up to a
    /// second's worth) is paid before it is sent a stretch whole again.
    fn spend(&mut self, n: usize) {
        self.left = (self.left - n as f64).max(-(self.rate as f64));
    }
}

/// The `gap` for ids `from..=to` the log dropped before a viewer was sent them.
fn gap_event(from: EventId, to: EventId) -> Event {
    tracing::warn!(
        from = from.0,
        to = to.0,
        "viewer missed events the log dropped"
    );
    Event::Gap(Gap {
        from,
        to,
        count: to.0 - from.0 + 1,
    })
}

/// The least time between two frames for a viewer that asked `keep_up` with a `rate`.
/// A page reads each frame as a task of its own. At 20,000 events a second, frames sent
/// as soon as events came were 2,300 a second of about nine events each, and their
/// overhead took more of the page's time than their contents. The page updates at most
/// every 16 ms, so frames every 10 ms add nothing it shows late.
pub const KEEP_UP_FLUSH: Duration = Duration::from_millis(10);

/// How many stretches sent whole a viewer remembers.
const WHOLE_KEPT: usize = 64;

impl Viewer {
    async fn run(
        mut self,
        shared: &crate::sessions::Shared,
        notice: Option<ErrorEvent>,
        shutdown: &CancellationToken,
    ) -> Result<(), axum::Error> {
        self.send(&Event::Hello(Hello {
            protocol: socklab_protocol::PROTOCOL_VERSION,
            session: socklab_protocol::SessionId::new(shared.id()),
            server: crate::SERVER_NAME.to_owned(),
        }))
        .await?;
        if let Some(notice) = notice {
            self.send(&Event::Error(notice)).await?;
        }

        let log = shared.log().clone();
        let mut newest = log.subscribe();
        let (reply, mut replies) = mpsc::unbounded_channel::<ErrorEvent>();
        let mut last_flush = Instant::now() - self.flush_interval;
        // Whatever the log already holds after the cursor goes out at once.
        let mut flush_at: Option<tokio::time::Instant> = Some(tokio::time::Instant::now());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.close(axum::extract::ws::close_code::AWAY, "socklab is shutting down").await;
                    return Ok(());
                }
                message = self.ws.recv() => {
                    let Some(message) = message else { return Ok(()) };
                    let message = match message {
                        Ok(message) => message,
                        Err(e) => {
                            // The WebSocket library reports an oversized frame as an error of
                            // its own; the close code tells the client why it is cut off.
                            let too_big = e.to_string().contains("too long");
                            let (code, reason) = if too_big {
                                (axum::extract::ws::close_code::SIZE, "message too big (--max-message-bytes)")
                            } else {
                                (axum::extract::ws::close_code::PROTOCOL, "WebSocket protocol error")
                            };
                            tracing::debug!(error = %e, "closing a viewer's connection");
                            self.close(code, reason).await;
                            return Err(e);
                        }
                    };
                    match message {
                        Message::Text(text) => {
                            let outcome = match decode_request(&text) {
                                Ok(request) => {
                                    let req = request.req;
                                    match self.answer(&request, shared).await {
                                        Some(Ok(text)) => {
                                            self.send_text(text).await?;
                                            Ok(())
                                        }
                                        Some(Err(e)) => Err((req, e)),
                                        None => {
                                            let mut session = shared.session().lock().await;
                                            session.handle(request, &reply, self.number).await.map_err(|e| (req, e))
                                        }
                                    }
                                }
                                Err(e) => Err((e.req, CommandError::bad_request(e.message))),
                            };
                            if let Err((req, e)) = outcome {
                                tracing::debug!(code = %e.code, message = %e.message, "refused");
                                self.send(&error_event(req, e)).await?;
                            }
                        }
                        Message::Binary(_) => {
                            let e = CommandError::bad_request(
                                "binary frames are not accepted; send each command as a JSON text frame",
                            );
                            self.send(&error_event(None, e)).await?;
                        }
                        Message::Close(_) => return Ok(()),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                Some(error) = replies.recv() => self.send(&Event::Error(error)).await?,
                changed = newest.changed(), if flush_at.is_none() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    // An idle viewer's frame is due at once: the timer helper returns
                    // at once for a time already past.
                    flush_at = Some((last_flush + self.flush_interval).into());
                }
                _ = sleep_until(flush_at), if flush_at.is_some() => {
                    let more = self.flush(&log).await?;
                    last_flush = Instant::now();
                    flush_at = more.then(tokio::time::Instant::now);
                }
            }
        }
    }

    /// Sends the next batch of logged events (and a `gap` first if some are gone).
    /// Returns whether more are waiting.
    async fn flush(&mut self, log: &EventLog) -> Result<bool, axum::Error> {
        let pending = log.newest().0.saturating_sub(self.cursor.0);
        if self.keep_up > 0 && (pending > self.keep_up || !self.rate.allows(pending)) {
            return self.flush_thinned(log).await;
        }
        let read = log.read_after(self.cursor, MAX_BATCH);
        let gap = read.gap.map(|(from, to)| gap_event(from, to));
        let count = read.entries.len() + usize::from(gap.is_some());
        if count == 0 {
            return Ok(read.more);
        }
        // The frame's text is written in one go: an event alone, or a batch.
        let mut frame = String::with_capacity(256 * count);
        if count > 1 {
            frame.push_str(fast::BATCH_OPEN);
        }
        if let Some(gap) = &gap {
            frame.push_str(&gap.to_json());
        }
        let mut written = 0;
        for (i, entry) in read.entries.iter().enumerate() {
            // A frame stops growing at MAX_FRAME_BYTES (after at least one event):
            // 512 datagrams of 64 KiB would otherwise make one 44 MB frame.
            if written > 0 && frame.len() >= MAX_FRAME_BYTES {
                break;
            }
            if i > 0 || gap.is_some() {
                frame.push(',');
            }
            write_event(&mut frame, entry, self.number);
            written += 1;
        }
        if count > 1 {
            frame.push_str(fast::BATCH_CLOSE);
        }
        if let Some((_, to)) = read.gap {
            self.cursor = to;
        }
        if let Some(last) = read.entries[..written].last() {
            let first = read.entries[0].id;
            match self.whole.back_mut() {
                Some(stretch) if stretch.1 == self.cursor => stretch.1 = last.id,
                _ => {
                    if self.whole.len() >= WHOLE_KEPT {
                        self.whole.pop_front();
                    }
                    self.whole.push_back((first, last.id));
                }
            }
            self.cursor = last.id;
        }
        self.rate.spend(written);
        self.send_text(frame).await?;
        Ok(read.more || written < read.entries.len())
    }

    /// Sends a viewer that fell behind what it is behind on except the events about
    /// single datagrams, which a `thinned` event names instead (it comes first in the
    /// frame). Returns whether more are waiting.
    async fn flush_thinned(&mut self, log: &EventLog) -> Result<bool, axum::Error> {
        let target = log.newest();
        let mut passed = Passed::default();
        // The events sent, written one after another into the frame's body.
        let mut body = String::new();
        let mut kept = 0usize;
        let mut gap = None;
        let mut full = false;
        'reading: while self.cursor < target {
            let read = log.read_after(self.cursor, MAX_BATCH * 8);
            if let Some((from, to)) = read.gap {
                gap.get_or_insert((from, to)).1 = to;
                self.cursor = to;
            }
            for entry in &read.entries {
                if entry.id > target {
                    break 'reading;
                }
                if self.spared(&entry.record) {
                    passed.pass(entry.id, entry.t_ns);
                } else {
                    if kept >= MAX_BATCH || body.len() >= MAX_FRAME_BYTES {
                        full = true;
                        break 'reading;
                    }
                    if kept > 0 {
                        body.push(',');
                    }
                    write_event(&mut body, entry, self.number);
                    kept += 1;
                }
                self.cursor = entry.id;
            }
            if !read.more {
                break;
            }
        }
        // The gap and the `thinned` first, then what was sent.
        let head: Vec<String> = gap
            .map(|(from, to)| gap_event(from, to))
            .into_iter()
            .chain(passed.event())
            .map(|e| e.to_json())
            .collect();
        let count = head.len() + kept;
        if count > 0 {
            let mut frame = String::with_capacity(body.len() + 256);
            if count > 1 {
                frame.push_str(fast::BATCH_OPEN);
            }
            frame.push_str(&head.join(","));
            if !head.is_empty() && kept > 0 {
                frame.push(',');
            }
            frame.push_str(&body);
            if count > 1 {
                frame.push_str(fast::BATCH_CLOSE);
            }
            self.rate.spend(kept);
            self.send_text(frame).await?;
        }
        Ok(full || self.cursor < log.newest())
    }

    /// Whether a thinned viewer is spared this event: one about a single datagram,
    /// except the fate of a datagram it was sent (in a stretch it was sent whole).
    fn spared(&self, record: &crate::log::Record) -> bool {
        match record {
            crate::log::Record::Fate(f) => {
                !self.whole.iter().any(|(a, b)| (*a..=*b).contains(&f.send))
            }
            other => is_detail(other, self.number),
        }
    }

    /// Answers the commands a viewer asks of its own connection (`keep_up`,
    /// `aggregate`, `window`): the frame to send, or the refusal. None: a command for
    /// the session.
    async fn answer(
        &mut self,
        request: &socklab_protocol::Request,
        shared: &crate::sessions::Shared,
    ) -> Option<Result<String, CommandError>> {
        use socklab_protocol::Command;
        let req = request.req;
        Some(match request.command {
            Command::KeepUp { behind, rate } => {
                let behind = behind.unwrap_or(0);
                if behind != 0 && behind < MIN_KEEP_UP {
                    return Some(Err(CommandError::bad_request(format!(
                        "keep_up's `behind` is 0 (every event) or at least {MIN_KEEP_UP} events; got {behind}"
                    ))));
                }
                let rate = rate.unwrap_or(0);
                if rate != 0 && (rate < MIN_KEEP_UP_RATE || behind == 0) {
                    return Some(Err(CommandError::bad_request(format!(
                        "keep_up's `rate` is 0 (as many as come) or at least {MIN_KEEP_UP_RATE} events a second, with a `behind`; got {rate}"
                    ))));
                }
                self.keep_up = behind;
                self.rate = Budget::new(rate);
                self.flush_interval = if rate > 0 {
                    self.configured_flush.max(KEEP_UP_FLUSH)
                } else {
                    self.configured_flush
                };
                Ok(Event::KeepingUp(socklab_protocol::KeepingUp { behind, rate, req }).to_json())
            }
            Command::Aggregate {
                from_ns,
                to_ns,
                buckets,
            } => {
                if let Err(e) = crate::query::check_aggregate(from_ns, to_ns, buckets)
                    .and_then(|()| self.queries.take("this viewer"))
                {
                    return Some(Err(e));
                }
                let counts = shared
                    .aggregates()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                Ok(Event::Aggregates(counts.answer(from_ns, to_ns, buckets, req)).to_json())
            }
            Command::Window {
                from_ns,
                to_ns,
                limit,
            } => {
                let limit = match crate::query::check_window(from_ns, to_ns, limit)
                    .and_then(|limit| self.queries.take("this viewer").map(|()| limit))
                {
                    Ok(limit) => limit,
                    Err(e) => return Some(Err(e)),
                };
                Self::window(self.number, shared, (from_ns, to_ns), limit as usize, req).await
            }
            _ => return None,
        })
    }

    /// The `window` answer: what the log holds of the range, and, where it no longer
    /// holds its start, what a recording running holds of it.
    async fn window(
        viewer: u64,
        shared: &crate::sessions::Shared,
        range: (u64, u64),
        limit: usize,
        req: Option<i64>,
    ) -> Result<String, CommandError> {
        let log = shared.log();
        let none = std::collections::HashSet::new();
        let logged = log_window(log, range.0, range.1, limit, &none);
        if logged.from_start {
            let complete = !logged.cut;
            return Ok(window_frame(
                &[],
                &logged.entries,
                range,
                complete,
                viewer,
                req,
            ));
        }
        let recording = shared.session().lock().await.recording_store();
        let Some((store, id)) = recording else {
            return Ok(window_frame(
                &[],
                &logged.entries,
                range,
                false,
                viewer,
                req,
            ));
        };
        let stored = store
            .window(id, range, logged.oldest.0, (limit, MAX_WINDOW_BYTES))
            .await?;
        // The log's part again, with the fates of the sends the store had.
        let sends = stored
            .events
            .iter()
            .filter(|e| e.kind == "datagram" && e.json.contains("\"dir\":\"out\""))
            .map(|e| e.id)
            .collect();
        let rest = limit.saturating_sub(stored.events.len());
        let logged = log_window(log, range.0, range.1, rest, &sends);
        let complete = stored.from_start && !stored.cut && !logged.cut;
        Ok(window_frame(
            &stored.events,
            &logged.entries,
            range,
            complete,
            viewer,
            req,
        ))
    }

    /// Says goodbye with a close frame, but never waits longer than the write timeout
    /// for it: a viewer that stopped reading must not hold up the server's shutdown.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let wait = self.write_timeout.min(CLOSE_TIMEOUT);
        let _ = tokio::time::timeout(wait, self.ws.send(frame)).await;
    }

    async fn send(&mut self, event: &Event) -> Result<(), axum::Error> {
        self.send_text(event.to_json()).await
    }

    /// Writes one frame, or gives up on a viewer that has not taken it within the
    /// write timeout: a page that stopped reading must not hold its frames (and the
    /// session's attention) for ever. It can come back with `since`.
    async fn send_text(&mut self, text: String) -> Result<(), axum::Error> {
        // A frame a slow viewer has not taken does not hold up the server's shutdown
        // either (it waited for the write timeout, as long as a test waits for a stop).
        let shutdown = self.shutdown.clone();
        let sending =
            tokio::time::timeout(self.write_timeout, self.ws.send(Message::Text(text.into())));
        let sent = tokio::select! {
            sent = sending => sent,
            () = shutdown.cancelled() => {
                return Err(axum::Error::new(std::io::Error::other(
                    "the server is shutting down",
                )));
            }
        };
        match sent {
            Ok(sent) => sent,
            Err(_) => {
                tracing::info!(
                    timeout_ms = self.write_timeout.as_millis() as u64,
                    "disconnecting a viewer that stopped reading"
                );
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the viewer did not read a frame within the write timeout",
                )))
            }
        }
    }
}
