//! Small timing helpers shared by the session and the links.

/// Sleeps until `at`, or forever when there is nothing to wait for (so it can sit in a
/// `select!` next to the things that do happen).
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
