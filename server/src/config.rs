//! The command line and the settings the server runs with.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// How many sockets one session may have open at once.
pub const DEFAULT_MAX_SOCKETS_PER_SESSION: usize = 64;
/// How many links one session may have at once.
pub const DEFAULT_MAX_LINKS_PER_SESSION: usize = 16;
/// How long a datagram may be in flight before the flow analysis counts it lost.
pub const DEFAULT_LOSS_TIMEOUT_MS: u64 = 2_000;
/// How many events a session's log keeps before the oldest are dropped.
pub const DEFAULT_LOG_MAX_EVENTS: usize = 200_000;
/// How many payload bytes a session's log keeps before the oldest events are dropped.
pub const DEFAULT_LOG_MAX_BYTES: usize = 64 * 1024 * 1024;

/// socklab: a socket lab in the browser.
///
/// Binds real sockets on this machine at the request of the web page it serves, and
/// shows every datagram they send and receive. Open the printed URL in a browser.
#[derive(Parser, Debug, Clone)]
#[command(name = "socklab", version, about, long_about)]
pub struct Args {
    /// The address the web page and the WebSocket are served on. Keep it on loopback:
    /// whoever reaches this address can open sockets on this machine.
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,

    /// The folder with the built web app (index.html, the wasm and its JS glue).
    /// `cargo xtask run` builds it and passes it here.
    #[arg(long, env = "SOCKLAB_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,

    /// How many sockets one session may have open at once.
    #[arg(long, default_value_t = DEFAULT_MAX_SOCKETS_PER_SESSION, value_name = "N")]
    pub max_sockets_per_session: usize,

    /// How many links (impairing relays) one session may have at once.
    #[arg(long, default_value_t = DEFAULT_MAX_LINKS_PER_SESSION, value_name = "N")]
    pub max_links_per_session: usize,

    /// How long a datagram may be in flight before the flow analysis counts it lost
    /// (each session can change it with `set_loss_timeout`).
    #[arg(long, default_value_t = DEFAULT_LOSS_TIMEOUT_MS, value_name = "MS")]
    pub loss_timeout_ms: u64,

    /// How many events each session's log keeps; older ones are dropped and a viewer
    /// that had not seen them is told with a `gap` event.
    #[arg(long, default_value_t = DEFAULT_LOG_MAX_EVENTS, value_name = "N")]
    pub log_max_events: usize,

    /// How many payload bytes each session's log keeps (same rule as --log-max-events).
    #[arg(long, default_value_t = DEFAULT_LOG_MAX_BYTES, value_name = "BYTES")]
    pub log_max_bytes: usize,
}

/// The settings a running server uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder served as the web app; `None` serves a page that explains how to
    /// build it.
    pub web_dir: Option<PathBuf>,
    /// See [`Args::max_sockets_per_session`].
    pub max_sockets_per_session: usize,
    /// See [`Args::max_links_per_session`].
    pub max_links_per_session: usize,
    /// See [`Args::loss_timeout_ms`].
    pub loss_timeout_ms: u64,
    /// See [`Args::log_max_events`].
    pub log_max_events: usize,
    /// See [`Args::log_max_bytes`].
    pub log_max_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            web_dir: None,
            max_sockets_per_session: DEFAULT_MAX_SOCKETS_PER_SESSION,
            max_links_per_session: DEFAULT_MAX_LINKS_PER_SESSION,
            loss_timeout_ms: DEFAULT_LOSS_TIMEOUT_MS,
            log_max_events: DEFAULT_LOG_MAX_EVENTS,
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
        }
    }
}

impl From<&Args> for Config {
    fn from(args: &Args) -> Self {
        Config {
            web_dir: args.web_dir.clone(),
            max_sockets_per_session: args.max_sockets_per_session,
            max_links_per_session: args.max_links_per_session,
            loss_timeout_ms: args.loss_timeout_ms,
            log_max_events: args.log_max_events,
            log_max_bytes: args.log_max_bytes,
        }
    }
}
