//! The HTTP side: the built web app as static files, and `GET /ws` for sessions.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::services::ServeDir;

use crate::config::Config;
use crate::session;

/// The largest WebSocket message the server accepts: a command with the largest payload
/// (65,527 bytes, about 87 KiB as base64) fits many times over.
pub const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;

/// What every request handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    config: Arc<Config>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
}

impl AppState {
    /// The state of a server with `config`; sessions stop when `shutdown` is cancelled
    /// and are tracked by `sessions`.
    pub fn new(config: Config, shutdown: CancellationToken, sessions: TaskTracker) -> Self {
        AppState {
            config: Arc::new(config),
            shutdown,
            sessions,
        }
    }
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    let web_dir = state
        .config
        .web_dir
        .clone()
        .filter(|dir| dir.join("index.html").is_file());
    let router = Router::new().route("/ws", get(ws_upgrade));
    let router = match web_dir {
        Some(dir) => router.fallback_service(ServeDir::new(dir)),
        None => router.fallback(get(not_built)),
    };
    router.with_state(state)
}

async fn ws_upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(refusal) = check_origin(&headers) {
        tracing::warn!(%refusal, "refused a WebSocket upgrade");
        return (StatusCode::FORBIDDEN, refusal).into_response();
    }
    let AppState {
        config,
        shutdown,
        sessions,
    } = state;
    upgrade
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        .on_upgrade(move |ws| sessions.track_future(session::serve(ws, config, shutdown)))
}

/// A browser always sends `Origin` on a WebSocket upgrade. Only a page this server
/// served may open a session, so the origin must name the host the request was sent to;
/// another site's page would be cross-site WebSocket hijacking. Clients that are not
/// browsers send no `Origin` and are let through.
fn check_origin(headers: &HeaderMap) -> Result<(), String> {
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
