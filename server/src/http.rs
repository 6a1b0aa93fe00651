//! The HTTP side: the built web app as static files, and `GET /ws` for sessions.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use socklab_protocol::{ErrorCode, ErrorEvent, EventId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::services::ServeDir;

use crate::config::Config;
use crate::sessions::Sessions;
use crate::viewer;

/// Host names always accepted (with any port).
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// What the page may load and connect to: its own scripts and styles, its wasm
/// (compiled by the browser: `'wasm-unsafe-eval'`), WebSockets and requests to this
/// server; nothing inline, no frames around it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// How long a content-hashed file may be cached: its name changes with its content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The WebSocket's read buffer. Commands are small; the library zeroes the spare part of
/// this buffer every time the viewer loop polls for a command, which at its default
/// (128 KiB) was the largest single cost in the server's profile at 200,000 datagrams
/// a second (5 %).
pub const WS_READ_BUFFER_BYTES: usize = 4096;

/// What every request handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    config: Arc<Config>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    pub(crate) sessions: Arc<Sessions>,
    /// Permits for the exports, imports and comparisons being made at once
    /// (`--max-exports`): each holds a whole recording in memory.
    pub(crate) exports: Arc<tokio::sync::Semaphore>,
    /// The questions of recordings' counts and windows over HTTP, all pages together
    /// (`--max-queries-per-sec`).
    pub(crate) queries: Arc<crate::budget::QueryBudget>,
}

impl AppState {
    /// The state of a server with `config`; sessions stop when `shutdown` is cancelled
    /// and their tasks are tracked by `tasks`.
    pub fn new(config: Config, shutdown: CancellationToken, tasks: TaskTracker) -> Self {
        let config = Arc::new(config);
        let sessions = Sessions::new(config.clone(), shutdown.clone(), tasks.clone());
        let exports = Arc::new(tokio::sync::Semaphore::new(config.max_exports.max(1)));
        let queries = Arc::new(crate::budget::QueryBudget::new(config.max_queries_per_sec));
        AppState {
            config,
            shutdown,
            tasks,
            sessions,
            exports,
            queries,
        }
    }

    /// The server's settings.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }
}

/// The query of `GET /ws`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// The launch token, when the server requires one.
    token: Option<String>,
    /// A session to come back to.
    session: Option<String>,
    /// The last event id the viewer has; it gets everything after it.
    since: Option<u64>,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    let web_dir = state
        .config
        .web_dir
        .clone()
        .filter(|dir| dir.join("index.html").is_file());
    let router = Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/ws/access", get(ws_access))
        .merge(crate::api::routes(&state));
    let router = match web_dir {
        // The web build writes a gzip copy of each text and wasm file next to it.
        Some(dir) => router.fallback_service(ServeDir::new(dir).precompressed_gzip()),
        None => router.fallback(get(not_built)),
    };
    // The headers go on every response, refusals included (the outer layer).
    router
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers every response carries, and how long each file may be cached: the page
/// itself never (it names the current build's files), a file whose name carries its
/// content's hash for a year, anything else after asking again.
async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, header::HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    let cache = if path == "/" || path.ends_with(".html") || path.starts_with("/ws") {
        "no-store"
    } else if is_content_hashed(&path) {
        IMMUTABLE
    } else {
        "no-cache"
    };
    set(headers, header::CACHE_CONTROL, cache);
    response
}

/// Whether a file name carries a content hash as the web build writes it:
/// `name-0123456789abcdef.ext` (16 hex digits before the first dot).
pub fn is_content_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    stem.rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Every request must name an allowed host: a page on another site that makes its own
/// name resolve to 127.0.0.1 (DNS rebinding) still sends its own name here.
async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = hosts
        .next()
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if hosts.next().is_some() {
        tracing::warn!("refused a request with two Host headers");
        return (
            StatusCode::BAD_REQUEST,
            "a request may name one Host; this one names several",
        )
            .into_response();
    }
    if host_allowed(host, &state.config.allow_hosts) {
        next.run(request).await
    } else {
        tracing::warn!(%host, "refused a request for a host that is not allowed");
        (
            StatusCode::FORBIDDEN,
            format!(
                "socklab does not answer requests for host {host:?}: only localhost, 127.0.0.1, [::1] and hosts given with --allow-host"
            ),
        )
            .into_response()
    }
}

/// Whether a Host header names an allowed host. It is parsed strictly as an authority:
/// an allowed name (an IPv6 address in brackets), then nothing, or `:` and a port
/// number; anything else (`[::1]evil.example`, `::1:80`, `127.0.0.1:x`) is refused.
pub fn host_allowed(host: &str, extra: &[String]) -> bool {
    let (name, port) = if host.starts_with('[') {
        let Some(end) = host.find(']') else {
            return false;
        };
        let (name, rest) = host.split_at(end + 1);
        match rest {
            "" => (name, None),
            _ => match rest.strip_prefix(':') {
                Some(port) => (name, Some(port)),
                None => return false,
            },
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    port_ok
        && !name.is_empty()
        && (LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(name))
            || extra.iter().any(|h| h.eq_ignore_ascii_case(name)))
}

/// Compares two tokens in time that does not depend on where they differ.
fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Why a viewer may not open or join a session: an HTTP status, and a stable code and
/// a plain message as JSON (`{"code":"wrong_token","message":"…"}`), so a page can say
/// why it cannot connect (a browser's WebSocket never sees the refusal itself; the page
/// asks `GET /ws/access` with the same query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// `no_token`, `wrong_token`, `foreign_origin`, `bad_since`, `too_many_sessions`,
    /// `too_many_viewers`.
    pub code: &'static str,
    /// Plain words for the person.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

/// What `GET /ws` with this query would find, short of opening anything: the origin and
/// the token are right, and the session asked for is live (`Some`) or has ended (`None`
/// with a session asked for).
fn admit(
    state: &AppState,
    query: &WsQuery,
    headers: &HeaderMap,
) -> Result<Option<Arc<crate::sessions::Shared>>, Refusal> {
    check_origin(headers).map_err(|refusal| {
        tracing::warn!(%refusal, "refused a WebSocket upgrade");
        Refusal::new(StatusCode::FORBIDDEN, "foreign_origin", refusal)
    })?;
    check_token(state, query.token.as_deref())?;
    let Some(shared) = query
        .session
        .as_deref()
        .and_then(|id| state.sessions.find(id))
    else {
        return Ok(None);
    };
    // A viewer can only have seen events the session has logged; a larger `since` is a
    // mistake worth saying, not a cursor to compute with.
    let since = query.since.map_or(EventId::BEFORE_FIRST, EventId);
    let newest = shared.log().newest();
    if since > newest {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_since",
            format!(
                "since={} is after this session's newest event ({}); reconnect with the id of the last event you received",
                since.0, newest.0
            ),
        ));
    }
    Ok(Some(shared))
}

/// Whether `given` is the server's launch token (when it requires one).
pub(crate) fn check_token(state: &AppState, given: Option<&str>) -> Result<(), Refusal> {
    if let Some(expected) = &state.config.token {
        match given {
            None => {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "no_token",
                    "this socklab server needs its launch token: open the URL it printed at startup (it ends in ?token=...)",
                ));
            }
            Some(given) if !same_token(given, expected) => {
                tracing::warn!("refused a request with a wrong token");
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "wrong_token",
                    "wrong token: socklab prints a new token every time it starts, so this one is from another run (or mistyped); open the URL it printed this time",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn too_many_viewers(shared: &crate::sessions::Shared, n: usize) -> Refusal {
    Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_viewers",
        format!(
            "session {} already has {n} viewers, the most allowed (--max-viewers-per-session); close a page that watches it",
            shared.id()
        ),
    )
}

fn too_many_sessions(n: usize) -> Refusal {
    Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_sessions",
        format!(
            "socklab already has {n} sessions, its maximum (--max-sessions); close a page or wait for an idle session to end"
        ),
    )
}

/// `GET /ws/access`: what `GET /ws` with the same query would do, as JSON, without
/// opening anything: `{"ok":true,"session":"live"|"ended"|"new"}`, or a [`Refusal`].
async fn ws_access(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
) -> Response {
    let shared = match admit(&state, &query, &headers) {
        Ok(shared) => shared,
        Err(refusal) => return refusal.into_response(),
    };
    let session = match (&shared, &query.session) {
        (Some(shared), _) => {
            if let Err(full) = shared.has_room(state.config.max_viewers_per_session) {
                return too_many_viewers(shared, full.0).into_response();
            }
            "live"
        }
        (None, asked) => {
            if let Err(full) = state.sessions.has_room() {
                return too_many_sessions(full.0).into_response();
            }
            if asked.is_some() { "ended" } else { "new" }
        }
    };
    axum::Json(serde_json::json!({ "ok": true, "session": session })).into_response()
}

async fn ws_upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let resumed = match admit(&state, &query, &headers) {
        Ok(resumed) => resumed,
        Err(refusal) => return refusal.into_response(),
    };
    // Come back to a live session, or open a new one.
    let notice = match (&resumed, &query.session) {
        (None, Some(id)) => Some(ErrorEvent {
            req: None,
            code: ErrorCode::UnknownSession,
            message: format!(
                "session {id} has ended (no viewer came back within the grace period); this is a new session"
            ),
        }),
        _ => None,
    };
    let (attached, since) = match resumed {
        Some(shared) => match shared.attach(state.config.max_viewers_per_session) {
            Ok(attached) => (attached, query.since.map_or(EventId::BEFORE_FIRST, EventId)),
            Err(full) => return too_many_viewers(&shared, full.0).into_response(),
        },
        None => match state.sessions.open() {
            Ok(attached) => (attached, EventId::BEFORE_FIRST),
            Err(full) => return too_many_sessions(full.0).into_response(),
        },
    };
    let limit = state.config.max_message_bytes;
    let pace = viewer::Pace {
        flush_interval: state.config.flush_interval,
        write_timeout: state.config.write_timeout,
        queries_per_sec: state.config.max_queries_per_sec,
    };
    let AppState {
        shutdown, tasks, ..
    } = state;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .on_upgrade(move |ws| {
            tasks.track_future(viewer::serve(ws, attached, since, notice, pace, shutdown))
        })
}

/// A browser always sends `Origin` on a WebSocket upgrade. Only a page this server
/// served may open a session, so the origin must name the host the request was sent to;
/// another site's page would be cross-site WebSocket hijacking. Clients that are not
/// browsers send no `Origin` and are let through.
pub(crate) fn check_origin(headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !host.is_empty() && origin == format!("http://{host}") {
        Ok(())
    } else {
        Err(format!(
            "origin {origin:?} may not open a socklab session on {host:?}; only pages served by this socklab server may"
        ))
    }
}

async fn not_built(State(state): State<AppState>) -> impl IntoResponse {
    let dir = state
        .config
        .web_dir
        .as_ref()
        .map(|d: &PathBuf| d.display().to_string())
        .unwrap_or_else(|| "(none given)".into());
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(format!(
            "<!doctype html><title>socklab</title><h1>socklab is running, but its web app is not built</h1>\
             <p>Web app folder: <code>{dir}</code>. Start socklab with <code>cargo xtask run</code>, \
             which builds the web app and passes <code>--web-dir</code>. The WebSocket at <code>/ws</code> works regardless.</p>"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_allowlist() {
        let extra = vec!["lab.example".to_string()];
        let cases = [
            ("localhost:7070", true),
            ("LOCALHOST", true),
            ("127.0.0.1:7070", true),
            ("[::1]:7070", true),
            ("[::1]", true),
            ("lab.example:7070", true),
            ("evil.example:7070", false),
            ("127.0.0.1.evil.example", false),
            ("localhost.evil.example:7070", false),
            ("10.0.0.5:7070", false),
            ("", false),
            // Strict authority: a name and at most a numeric port.
            ("[::1]evil.example:7070", false),
            ("[::1]:7070:1", false),
            ("::1:7070", false),
            ("::1", false),
            ("127.0.0.1:notaport", false),
            ("127.0.0.1:", false),
            ("127.0.0.1:70000", false),
            ("127.0.0.1:+80", false),
            ("localhost:80:80", false),
            ("[::1", false),
        ];
        for (host, allowed) in cases {
            assert_eq!(host_allowed(host, &extra), allowed, "{host}");
        }
        assert!(same_token("abc", "abc") && !same_token("abd", "abc") && !same_token("ab", "abc"));
    }

    #[test]
    fn content_hashed_names() {
        for (path, hashed) in [
            ("/socklab_web-0123456789abcdef.js", true),
            ("/socklab_web_bg-0123456789abcdef.wasm", true),
            ("/style-fedcba9876543210.css", true),
            ("/socklab_web.js", false),
            ("/index.html", false),
            ("/favicon.svg", false),
            ("/a-0123456789abcdeg.js", false),
        ] {
            assert_eq!(is_content_hashed(path), hashed, "{path}");
        }
    }
}
