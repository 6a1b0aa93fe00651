//! The recordings over HTTP, for the page's recordings view and for scripts (a test in
//! CI fetches them): list, look at one, rename, delete, read its events. Every route
//! needs the launch token (`?token=`) as `/ws` does, and a browser's request must come
//! from the server's own page.
//!
//! - `GET /api/recordings?offset=&limit=`: `{"total":N,"recordings":[…]}`, newest first
//!   (at most 500 a page).
//! - `GET /api/recordings/{id}`: one recording.
//! - `PATCH /api/recordings/{id}` with `{"name":"…"}`: renames it.
//! - `DELETE /api/recordings/{id}`: deletes it with its events.
//! - `GET /api/recordings/{id}/events?after=&limit=`: `{"events":[…],"more":bool}`, its
//!   events in id order after the id `after` (each as a viewer got it; at most 10,000).
//!   `before=` instead: the last `limit` events below that id (`more`: earlier ones
//!   exist). `outline=true`: only the events a view is built on, none about single
//!   datagrams (see `store::Kinds::Outline`).
//! - `GET /api/recordings/{id}/counts?from_ns=&to_ns=&buckets=`: an `aggregates` event
//!   of its datagrams counted per lane and time bucket; `…/window?from_ns=&to_ns=&limit=`:
//!   a `window` event of its events in that range (`recorded.rs`): a recording of any
//!   size opens in the page a part at a time. Both answer at most
//!   `--max-queries-per-sec` a second, all pages together (then 429, `limit_exceeded`).
//!
//! (Over 600 lines: every route under `/api`, each a few checks around a store call,
//! so the refusals they share read alike.)
//! - `GET /api/recordings/{id}/capture.pcapng`: the recording as a capture file
//!   (`pcapng.rs`), for recordings of at most [`MAX_EXPORT_EVENTS`] events.
//! - `POST /api/recordings/import?name=` with a pcap or pcapng file as the body: its
//!   UDP datagrams become a recording (`import.rs`); at most `--max-import-bytes`. A
//!   recording file (below) imports whole.
//! - `GET /api/compare?a=&b=`: two recordings of the same traffic compared
//!   (`compare.rs`): the datagrams whose fate changed, and both runs' figures.
//! - `GET /api/recordings/{id}/recording.socklab`: the recording as one file to share:
//!   a line of JSON saying what it is, then its events, a line each.
//! - `GET /api/recordings/{id}/fates.csv` and `fates.json`: what became of each
//!   datagram; `flows.csv` and `flows.json`: the flows' figures as the recording's last
//!   `flow_stats` gave them. For notebooks.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::error::CommandError;
use crate::http::{AppState, Refusal, check_origin, check_token};

/// The most events one page of `/events` holds.
pub const MAX_EVENTS_PAGE: u32 = 10_000;
/// The most events a recording exported as a file may have (the file is made in
/// memory: about 150 bytes a datagram).
pub const MAX_EXPORT_EVENTS: u64 = 2_000_000;

/// The routes under `/api`.
pub fn routes(state: &AppState) -> Router<AppState> {
    let light = Router::new()
        .route("/api/recordings", get(list))
        .route(
            "/api/recordings/{id}",
            get(one).patch(rename).delete(remove),
        )
        .route("/api/recordings/{id}/events", get(events))
        .route("/api/recordings/{id}/counts", get(counts))
        .route("/api/recordings/{id}/window", get(window));
    // What holds a whole recording in memory: at most --max-exports at once.
    let heavy = Router::new()
        .route(
            "/api/recordings/import",
            axum::routing::post(import).layer(axum::extract::DefaultBodyLimit::max(
                state.config().max_import_bytes,
            )),
        )
        .route("/api/compare", get(compare))
        .route("/api/recordings/{id}/capture.pcapng", get(capture))
        .route(
            "/api/recordings/{id}/recording.socklab",
            get(recording_file),
        )
        .route(
            "/api/recordings/{id}/fates.csv",
            get(|s, i, q, h| table(s, i, q, h, Table::Fates, Format::Csv)),
        )
        .route(
            "/api/recordings/{id}/fates.json",
            get(|s, i, q, h| table(s, i, q, h, Table::Fates, Format::Json)),
        )
        .route(
            "/api/recordings/{id}/flows.csv",
            get(|s, i, q, h| table(s, i, q, h, Table::Flows, Format::Csv)),
        )
        .route(
            "/api/recordings/{id}/flows.json",
            get(|s, i, q, h| table(s, i, q, h, Table::Flows, Format::Json)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            one_of_max_exports,
        ));
    light.merge(heavy)
}

/// The size of the pieces a response's body is sent in: the next is made only once
/// the connection has taken the last, so a permit is held until the client has read
/// nearly all of it.
const PIECE: usize = 256 * 1024;

/// Lets the request through if fewer than `--max-exports` heavy ones are being made
/// (else `busy`, 503), and holds its permit until its answer has been sent.
async fn one_of_max_exports(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(permit) = state.exports.clone().try_acquire_owned() else {
        return Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} exports, imports or comparisons are being made, the most at once (--max-exports); try again when one is done",
                state.config().max_exports
            ),
        )
        .into_response();
    };
    let (mut parts, body) = next.run(request).await.into_parts();
    // Sent in pieces, still with its length (a client may read to its end without
    // undoing a chunked encoding).
    if let Some(len) = axum::body::HttpBody::size_hint(&body).exact() {
        parts.headers.insert(header::CONTENT_LENGTH, len.into());
    }
    use futures_util::StreamExt as _;
    let pieces = body.into_data_stream().flat_map(move |chunk| {
        // The permit lives as long as this stream: until the body is sent.
        let _held = &permit;
        let pieces: Vec<Result<axum::body::Bytes, axum::Error>> = match chunk {
            Ok(bytes) => (0..bytes.len())
                .step_by(PIECE)
                .map(|at| Ok(bytes.slice(at..(at + PIECE).min(bytes.len()))))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        futures_util::stream::iter(pieces)
    });
    Response::from_parts(parts, axum::body::Body::from_stream(pieces))
}

/// The query every route takes.
#[derive(Debug, Deserialize)]
struct Page {
    token: Option<String>,
    name: Option<String>,
    a: Option<i64>,
    b: Option<i64>,
    offset: Option<u32>,
    limit: Option<u32>,
    after: Option<u64>,
    before: Option<u64>,
    outline: Option<bool>,
    from_ns: Option<u64>,
    to_ns: Option<u64>,
    buckets: Option<u32>,
}

/// The token and the origin are right, and the store can be used.
fn admit(
    state: &AppState,
    page: &Page,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<crate::store::Store>, Refusal> {
    check_origin(headers).map_err(|e| Refusal::new(StatusCode::FORBIDDEN, "foreign_origin", e))?;
    check_token(state, page.token.as_deref())?;
    state.sessions.store().map_err(store_failed)
}

fn store_failed(e: CommandError) -> Refusal {
    if e.code == socklab_protocol::ErrorCode::LimitExceeded {
        return Refusal::new(StatusCode::CONFLICT, "limit_exceeded", e.message);
    }
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "store_failed", e.message)
}

fn failed(e: CommandError) -> Response {
    store_failed(e).into_response()
}

fn not_found(id: i64) -> Response {
    unknown(id).into_response()
}

fn unknown(id: i64) -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "unknown_recording",
        format!("there is no recording {id}"),
    )
}

/// Recording `id`, if there is one.
async fn find(
    store: &crate::store::Store,
    id: i64,
) -> Result<crate::store::RecordingInfo, Refusal> {
    match store.get(id).await {
        Ok(Some(info)) => Ok(info),
        Ok(None) => Err(unknown(id)),
        Err(e) => Err(store_failed(e)),
    }
}

/// The store and recording `id`, once the request is admitted and the recording is
/// there.
async fn admit_recording(
    state: &AppState,
    page: &Page,
    headers: &HeaderMap,
    id: i64,
) -> Result<
    (
        std::sync::Arc<crate::store::Store>,
        crate::store::RecordingInfo,
    ),
    Refusal,
> {
    let store = admit(state, page, headers)?;
    let info = find(&store, id).await?;
    Ok((store, info))
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let store = match admit(&state, &page, &headers) {
        Ok(store) => store,
        Err(refused) => return refused.into_response(),
    };
    match store
        .list(page.offset.unwrap_or(0), page.limit.unwrap_or(50))
        .await
    {
        Ok((total, recordings)) => {
            Json(serde_json::json!({ "total": total, "recordings": recordings })).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    match admit_recording(&state, &page, &headers, id).await {
        Ok((_, info)) => Json(info).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// The body of a rename.
#[derive(Debug, Deserialize)]
struct Rename {
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
    Json(body): Json<Rename>,
) -> Response {
    let store = match admit(&state, &page, &headers) {
        Ok(store) => store,
        Err(refused) => return refused.into_response(),
    };
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > crate::store::MAX_NAME {
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_name",
            format!(
                "a recording's name has 1 to {} characters",
                crate::store::MAX_NAME
            ),
        )
        .into_response();
    }
    match store.rename(id, name).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => not_found(id),
        Err(e) => failed(e),
    }
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let store = match admit(&state, &page, &headers) {
        Ok(store) => store,
        Err(refused) => return refused.into_response(),
    };
    match store.delete(id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => not_found(id),
        Err(e) => failed(e),
    }
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let store = match admit_recording(&state, &page, &headers, id).await {
        Ok((store, _)) => store,
        Err(refused) => return refused.into_response(),
    };
    let limit = page.limit.unwrap_or(1000).clamp(1, MAX_EVENTS_PAGE);
    let kinds = if page.outline == Some(true) {
        crate::store::Kinds::Outline
    } else {
        crate::store::Kinds::All
    };
    // One more than asked says whether more follow (or, with `before`, precede).
    let got = match page.before {
        Some(before) => store.events_before(id, before, limit + 1).await,
        None => {
            store
                .events_of(id, page.after.unwrap_or(0), limit + 1, kinds)
                .await
        }
    };
    let mut got = match got {
        Ok(got) => got,
        Err(e) => return failed(e),
    };
    let more = got.len() > limit as usize;
    if page.before.is_some() && more {
        got.remove(0);
    }
    got.truncate(limit as usize);
    // The stored JSON goes out as it is, each event as a viewer got it.
    let mut body = String::from(r#"{"events":["#);
    for (i, e) in got.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.json);
    }
    body.push_str(r#"],"more":"#);
    body.push_str(if more { "true" } else { "false" });
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A request's `from_ns` and `to_ns`, both needed.
fn range(page: &Page) -> Result<(u64, u64), Refusal> {
    match (page.from_ns, page.to_ns) {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "say which time range: from_ns=…&to_ns=… (ns since the recording's session began)",
        )),
    }
}

/// A question past `--max-queries-per-sec`: 429, `limit_exceeded`, and when to ask again.
fn too_many_queries(e: CommandError) -> Response {
    let mut response =
        Refusal::new(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", e.message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

fn bad(e: CommandError) -> Response {
    Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.message).into_response()
}

async fn counts(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let (from_ns, to_ns) = match range(&page) {
        Ok(range) => range,
        Err(refused) => return refused.into_response(),
    };
    let buckets = page.buckets.unwrap_or(1000);
    if let Err(e) = crate::query::check_aggregate(from_ns, to_ns, buckets) {
        return bad(e);
    }
    let store = match admit_recording(&state, &page, &headers, id).await {
        Ok((store, _)) => store,
        Err(refused) => return refused.into_response(),
    };
    if let Err(e) = state.queries.take("the recordings' pages together") {
        return too_many_queries(e);
    }
    let counted = match crate::recorded::kept_counts(&store, id).await {
        Ok(Some(counted)) => Ok(counted),
        Ok(None) => {
            // Made once, reading the whole recording: one of --max-exports.
            let Ok(_permit) = state.exports.clone().try_acquire_owned() else {
                return Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "recording {id}'s counts are being made, or {} exports, imports or comparisons are (--max-exports); ask again in a moment",
                        state.config().max_exports
                    ),
                )
                .into_response();
            };
            let config = state.config();
            let bounds = (config.max_aggregate_lanes, config.max_in_flight);
            crate::recorded::make_counts(&store, id, bounds).await
        }
        Err(e) => Err(e),
    };
    match counted {
        Ok(counted) => (
            [(header::CONTENT_TYPE, "application/json")],
            crate::recorded::aggregates_event(&counted, (from_ns, to_ns), buckets),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

async fn window(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let (from_ns, to_ns) = match range(&page) {
        Ok(range) => range,
        Err(refused) => return refused.into_response(),
    };
    let limit = match crate::query::check_window(from_ns, to_ns, page.limit) {
        Ok(limit) => limit,
        Err(e) => return bad(e),
    };
    let store = match admit_recording(&state, &page, &headers, id).await {
        Ok((store, _)) => store,
        Err(refused) => return refused.into_response(),
    };
    if let Err(e) = state.queries.take("the recordings' pages together") {
        return too_many_queries(e);
    }
    match crate::recorded::window_frame(&store, id, (from_ns, to_ns), limit).await {
        Ok(frame) => ([(header::CONTENT_TYPE, "application/json")], frame).into_response(),
        Err(e) => failed(e),
    }
}

async fn capture(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let (store, info) = match admit_recording(&state, &page, &headers, id).await {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    if info.events > MAX_EXPORT_EVENTS {
        return Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!(
                "recording {id} has {} events; a capture file is made of at most {MAX_EXPORT_EVENTS}",
                info.events
            ),
        )
        .into_response();
    }
    let epoch_ns = match store.epoch_ns(id).await {
        Ok(epoch) => epoch.unwrap_or((info.created_ms.max(0) as u64).saturating_mul(1_000_000)),
        Err(e) => return failed(e),
    };
    let events: Vec<socklab_protocol::Event> = match all_events(&store, id).await {
        Ok(stored) => stored
            .iter()
            .filter_map(|e| socklab_protocol::Event::from_json(&e.json).ok())
            .collect(),
        Err(refused) => return refused,
    };
    let made = tokio::task::spawn_blocking(move || crate::pcapng::export(&events, epoch_ns)).await;
    match made {
        Ok(Ok(capture)) => (
            [
                (header::CONTENT_TYPE, "application/x-pcapng".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"socklab-recording-{id}.pcapng\""),
                ),
                (
                    header::HeaderName::from_static("x-socklab-packets"),
                    capture.packets.to_string(),
                ),
                (
                    header::HeaderName::from_static("x-socklab-left-out"),
                    capture.left_out.to_string(),
                ),
            ],
            capture.bytes,
        )
            .into_response(),
        Ok(Err(e)) => {
            Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "export_failed", e).into_response()
        }
        Err(e) => Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export_failed",
            e.to_string(),
        )
        .into_response(),
    }
}

/// Which figures a table export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// Every `fate`.
    Fates,
    /// The last `flow_stats`' flows.
    Flows,
}

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

async fn table(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
    table: Table,
    format: Format,
) -> Response {
    let store = match admit_recording(&state, &page, &headers, id).await {
        Ok((store, _)) => store,
        Err(refused) => return refused.into_response(),
    };
    let kind = match table {
        Table::Fates => "fate",
        Table::Flows => "flow_stats",
    };
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let got = match store.events_of_kind(id, kind, after, MAX_EVENTS_PAGE).await {
            Ok(got) => got,
            Err(e) => return failed(e),
        };
        let Some(last) = got.last() else { break };
        after = last.id;
        if rows.len() as u64 + got.len() as u64 > MAX_EXPORT_EVENTS {
            return Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                format!("recording {id} has more than {MAX_EXPORT_EVENTS} of them"),
            )
            .into_response();
        }
        rows.extend(got);
    }
    let (body, content_type) = match table {
        Table::Fates => {
            let fates: Vec<socklab_protocol::flow::Fate> = rows
                .iter()
                .filter_map(|e| match socklab_protocol::Event::from_json(&e.json) {
                    Ok(socklab_protocol::Event::Fate(f)) => Some(f),
                    _ => None,
                })
                .collect();
            match format {
                Format::Json => (
                    serde_json::json!({ "fates": fates }).to_string(),
                    "application/json",
                ),
                Format::Csv => (crate::tables::fates_csv(&fates), "text/csv"),
            }
        }
        Table::Flows => {
            let flows = rows
                .last()
                .and_then(|e| match socklab_protocol::Event::from_json(&e.json) {
                    Ok(socklab_protocol::Event::FlowStats(s)) => Some(s.flows),
                    _ => None,
                })
                .unwrap_or_default();
            match format {
                Format::Json => (
                    serde_json::json!({ "flows": flows }).to_string(),
                    "application/json",
                ),
                Format::Csv => (crate::tables::flows_csv(&flows), "text/csv"),
            }
        }
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn import(
    State(state): State<AppState>,
    Query(page): Query<Page>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let store = match admit(&state, &page, &headers) {
        Ok(store) => store,
        Err(refused) => return refused.into_response(),
    };
    let name = page
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("imported capture");
    if name.chars().count() > crate::store::MAX_NAME {
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_name",
            format!(
                "a recording's name has 1 to {} characters",
                crate::store::MAX_NAME
            ),
        )
        .into_response();
    }
    if body.starts_with(crate::import::RECORDING_MAGIC.as_bytes()) {
        return import_recording(&store, page.name.as_deref(), &body).await;
    }
    let read = tokio::task::spawn_blocking(move || crate::import::read(&body)).await;
    let imported = match read {
        Ok(Ok(imported)) => imported,
        Ok(Err(e)) => {
            return Refusal::new(StatusCode::BAD_REQUEST, "bad_capture", e).into_response();
        }
        Err(e) => {
            return Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "import_failed",
                e.to_string(),
            )
            .into_response();
        }
    };
    let (events, epoch_ns) = imported.events();
    let note = imported.note();
    let id = match store
        .create(name.to_owned(), "import".into(), Some(epoch_ns))
        .await
    {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    let count = events.len();
    let mut rows = events.into_iter().map(|e| {
        crate::store::StoredEvent::whole(
            e.id().map_or(0, |i| i.0),
            e.t_ns().unwrap_or(0),
            "datagram".into(),
            e.to_json(),
        )
    });
    loop {
        let batch: Vec<_> = rows.by_ref().take(20_000).collect();
        if batch.is_empty() {
            break;
        }
        if let Err(e) = store.append(id, batch).await {
            return failed(e);
        }
    }
    let finished = if note.is_empty() {
        store.finish(id).await.map(|_| ())
    } else {
        match store.set_note(id, note.clone()).await {
            Ok(()) => store.finish(id).await.map(|_| ()),
            Err(e) => Err(e),
        }
    };
    if let Err(e) = finished {
        return failed(e);
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "recording": id,
            "datagrams": count,
            "skipped": imported.skipped.values().sum::<u64>(),
            "note": note,
        })),
    )
        .into_response()
}

/// Every stored event of recording `id`, in id order, refused past
/// [`MAX_EXPORT_EVENTS`].
async fn all_events(
    store: &crate::store::Store,
    id: i64,
) -> Result<Vec<crate::store::StoredEvent>, Response> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let got = store
            .events(id, after, MAX_EVENTS_PAGE)
            .await
            .map_err(failed)?;
        let Some(last) = got.last() else { break };
        after = last.id;
        if all.len() as u64 + got.len() as u64 > MAX_EXPORT_EVENTS {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                format!("recording {id} has more than {MAX_EXPORT_EVENTS} events"),
            )
            .into_response());
        }
        all.extend(got);
    }
    Ok(all)
}

async fn recording_file(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let (store, info) = match admit_recording(&state, &page, &headers, id).await {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let epoch_ns = match store.epoch_ns(id).await {
        Ok(epoch) => epoch,
        Err(e) => return failed(e),
    };
    let events = match all_events(&store, id).await {
        Ok(events) => events,
        Err(refused) => return refused,
    };
    let mut body = crate::import::recording_header(&info, epoch_ns);
    body.push('\n');
    for e in &events {
        body.push_str(&e.json);
        body.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"socklab-recording-{id}.socklab\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Stores a recording file as a new recording.
async fn import_recording(
    store: &crate::store::Store,
    name: Option<&str>,
    body: &[u8],
) -> Response {
    let file = match crate::import::read_recording(body) {
        Ok(file) => file,
        Err(e) => return Refusal::new(StatusCode::BAD_REQUEST, "bad_recording", e).into_response(),
    };
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map_or(file.name.clone(), str::to_owned);
    let id = match store
        .create(name, file.session.clone(), file.epoch_ns)
        .await
    {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    let count = file.events.len();
    let mut rows = file.events.into_iter();
    loop {
        let batch: Vec<_> = rows.by_ref().take(20_000).collect();
        if batch.is_empty() {
            break;
        }
        if let Err(e) = store.append(id, batch).await {
            return failed(e);
        }
    }
    if let Some(note) = file.note
        && let Err(e) = store.set_note(id, note).await
    {
        return failed(e);
    }
    let counts = match store.finish(id).await {
        Ok(counts) => counts,
        Err(e) => return failed(e),
    };
    (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "recording": id,
            "events": count,
            "datagrams": counts.1,
        })),
    )
        .into_response()
}

async fn compare(
    State(state): State<AppState>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    let store = match admit(&state, &page, &headers) {
        Ok(store) => store,
        Err(refused) => return refused.into_response(),
    };
    let (Some(a), Some(b)) = (page.a, page.b) else {
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_compare",
            "name the two recordings to compare: /api/compare?a=ID&b=ID",
        )
        .into_response();
    };
    let mut runs = Vec::new();
    for id in [a, b] {
        let info = match find(&store, id).await {
            Ok(info) => info,
            Err(refused) => return refused.into_response(),
        };
        let events: Vec<socklab_protocol::Event> = match all_events(&store, id).await {
            Ok(stored) => stored
                .iter()
                .filter(|e| matches!(e.kind.as_str(), "datagram" | "fate" | "flow_stats"))
                .filter_map(|e| socklab_protocol::Event::from_json(&e.json).ok())
                .collect(),
            Err(refused) => return refused,
        };
        runs.push((info, events));
    }
    let (info_b, events_b) = runs.pop().expect("two runs");
    let (info_a, events_a) = runs.pop().expect("two runs");
    let made =
        tokio::task::spawn_blocking(move || crate::compare::compare(&events_a, &events_b)).await;
    match made {
        Ok(comparison) => Json(serde_json::json!({
            "a": { "id": info_a.id, "name": info_a.name },
            "b": { "id": info_b.id, "name": info_b.name },
            "comparison": comparison,
        }))
        .into_response(),
        Err(e) => Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "compare_failed",
            e.to_string(),
        )
        .into_response(),
    }
}
