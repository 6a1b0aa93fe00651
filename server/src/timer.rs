//! Small timing helpers shared by the session and the links.

/// Sleeps until `at`, or forever when there is nothing to wait for (so it can sit in a
/// `select!` next to the things that do happen). A time already past returns at once:
/// tokio's timer rounds every deadline up to its next millisecond, so asking it to wait
/// for "now" would cost up to a millisecond.
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) if at <= tokio::time::Instant::now() => {}
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
