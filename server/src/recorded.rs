//! A recording of any size, read a part at a time: what the page needs to open a
//! recording too big to read whole (a million datagrams) and still draw all of it.
//!
//! - Its datagrams counted per lane and time bucket ([`counts`]), the same counts a
//!   live session keeps (`aggregate.rs`), made once by reading the recording's chunks
//!   and kept in the store beside it, so that every later question costs a few
//!   milliseconds.
//! - The events of a time range ([`window_frame`]), as a live `window` answers them.
//!
//! Over HTTP (`api.rs`): `GET /api/recordings/{id}/counts?from_ns=&to_ns=&buckets=`
//! answers an `aggregates` event, `GET /api/recordings/{id}/window?from_ns=&to_ns=&limit=`
//! a `window` event, exactly as the session's viewer would.

use socklab_protocol::Event;

use crate::aggregate::{Aggregates, Counted};
use crate::error::CommandError;
use crate::query::MAX_WINDOW_BYTES;
use crate::store::Store;

/// How many chunks are read from the store at a time while counting (the store's
/// thread reads them; the counting runs off it, so recording never waits long).
const CHUNKS_AT_ONCE: u32 = 64;

/// Recording `id`'s counts as the store keeps them, if they were made.
pub async fn kept_counts(store: &Store, id: i64) -> Result<Option<Counted>, CommandError> {
    Ok(store
        .counts(id)
        .await?
        .and_then(|kept| serde_json::from_slice::<Counted>(&kept).ok()))
}

/// Recording `id`'s counts made by reading every chunk (and kept, once the recording
/// has stopped). `lanes` and `in_flight` bound them as `--max-aggregate-lanes` and
/// `--max-in-flight` bound a session's.
pub async fn make_counts(
    store: &Store,
    id: i64,
    (lanes, in_flight): (usize, usize),
) -> Result<Counted, CommandError> {
    let mut counting = Aggregates::of_recording(lanes, in_flight);
    let mut after = 0u64;
    loop {
        let (chunks, last) = store.chunks(id, after, CHUNKS_AT_ONCE).await?;
        if chunks.is_empty() {
            break;
        }
        after = last;
        counting = tokio::task::spawn_blocking(move || {
            for chunk in &chunks {
                crate::store::each_event(chunk, |id, t_ns, kind, json| {
                    counting.feed_stored(id, t_ns, kind, json);
                })?;
            }
            Ok::<_, String>(counting)
        })
        .await
        .map_err(|e| CommandError::new(socklab_protocol::ErrorCode::IoError, e.to_string()))?
        .map_err(|e| {
            CommandError::new(
                socklab_protocol::ErrorCode::IoError,
                format!("recording {id} does not read: {e}"),
            )
        })?;
    }
    let counted = counting.into_counted();
    if let Ok(kept) = serde_json::to_vec(&counted) {
        store.keep_counts(id, kept).await?;
    }
    Ok(counted)
}

/// The `aggregates` event of recording `id`'s counts over `from_ns..to_ns`.
pub fn aggregates_event(counted: &Counted, (from_ns, to_ns): (u64, u64), buckets: u32) -> String {
    Event::Aggregates(counted.answer(from_ns, to_ns, buckets, None)).to_json()
}

/// The `window` event of recording `id`'s events of `from_ns..=to_ns` (with the fates
/// of the datagrams sent in it): at most `limit` events and about 4 MB.
pub async fn window_frame(
    store: &Store,
    id: i64,
    range: (u64, u64),
    limit: u32,
) -> Result<String, CommandError> {
    let stored = store
        .window(id, range, u64::MAX, (limit as usize, MAX_WINDOW_BYTES))
        .await?;
    // A recording holds nothing before it began: only a cut or a gap makes it partial.
    let complete = !stored.cut;
    Ok(crate::query::window_frame(
        &stored.events,
        &[],
        range,
        complete,
        0,
        None,
    ))
}
