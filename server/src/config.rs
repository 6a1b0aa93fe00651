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
/// How many datagrams per second one session may send.
pub const DEFAULT_MAX_DATAGRAMS_PER_SEC: u64 = 200_000;
/// How many payload bytes per second one session may send.
pub const DEFAULT_MAX_BYTES_PER_SEC: u64 = 256 * 1024 * 1024;
/// How many sessions the server keeps at once.
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// How long a session outlives its last viewer, seconds.
pub const DEFAULT_GRACE_SECS: u64 = 60;
/// How many events a session's log keeps before the oldest are dropped.
pub const DEFAULT_LOG_MAX_EVENTS: usize = 200_000;
/// How many payload bytes a session's log keeps before the oldest events are dropped.
pub const DEFAULT_LOG_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How many viewers (pages, scripts) may watch one session at once.
pub const DEFAULT_MAX_VIEWERS_PER_SESSION: usize = 8;
/// How long a frame to a viewer may take to be written before the viewer is
/// disconnected (it can come back with `since`), seconds.
pub const DEFAULT_WRITE_TIMEOUT_SECS: u64 = 10;
/// How many datagrams per second a session's links may forward, together.
pub const DEFAULT_MAX_FORWARDED_PER_SEC: u64 = 200_000;
/// The largest WebSocket message the server accepts by default: a command with the
/// largest payload (65,527 bytes, about 87 KiB as base64) fits many times over.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The least time between two frames of events while events keep coming, by default
/// (`--flush-interval-us`): none. Events go out as soon as they are logged; while a frame
/// is being written, the next events gather and go out together in the next one, so
/// batches grow with the load by themselves. (A 2 ms window cost every event 1 to 3 ms
/// of latency and spared a browser taking in 150,000 events a second only 8 % of its
/// ingest time; see docs/benchmarks.md.)
pub const DEFAULT_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::ZERO;
/// The largest number of payload bytes one link holds by default (`--max-link-bytes`):
/// its delay line, bottleneck queue and held-back datagrams together. 60 s of delay at
/// a generator's 100,000 datagrams/s of 64 bytes is 384 MB; a lab link holds a few
/// seconds of that and drops the rest with `queue_full`.
pub const DEFAULT_MAX_LINK_BYTES: usize = 16 * 1024 * 1024;

/// How many recordings the store keeps at most, by default.
pub const DEFAULT_MAX_RECORDINGS: u64 = 10_000;
/// The default for `--max-exports`.
pub const DEFAULT_MAX_EXPORTS: u16 = 2;
/// The default for `--max-queries-per-sec`: five times what a page asks.
pub const DEFAULT_MAX_QUERIES_PER_SEC: u64 = 20;
/// The default for `--max-store-bytes`: 20 GB.
pub const DEFAULT_MAX_STORE_BYTES: u64 = 20_000_000_000;

/// The largest capture that may be imported, by default: a few million datagrams.
pub const DEFAULT_MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

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

    /// How many datagrams per second one session may send (commands and generators).
    #[arg(long, default_value_t = DEFAULT_MAX_DATAGRAMS_PER_SEC, value_name = "N")]
    pub max_datagrams_per_sec: u64,

    /// How many payload bytes per second one session may send.
    #[arg(long, default_value_t = DEFAULT_MAX_BYTES_PER_SEC, value_name = "BYTES")]
    pub max_bytes_per_sec: u64,

    /// The largest WebSocket message accepted; a bigger one closes that connection with
    /// code 1009.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: usize,

    /// The least time between two frames of events to a viewer while events keep coming,
    /// microseconds. 0 (the default) sends every event as soon as it is logged, batching
    /// only what gathers while the previous frame is written; a window (e.g. 2000) trades
    /// latency for fewer, bigger frames.
    #[arg(long, default_value_t = DEFAULT_FLUSH_INTERVAL.as_micros() as u64, value_name = "MICROSECONDS")]
    pub flush_interval_us: u64,

    /// How many sessions the server keeps at once; a new viewer beyond them gets HTTP 429.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS, value_name = "N")]
    pub max_sessions: usize,

    /// How long a session (and its sockets) outlives its last viewer, so a page reload or
    /// a dropped connection can come back to it.
    #[arg(long, default_value_t = DEFAULT_GRACE_SECS, value_name = "SECONDS")]
    pub grace_secs: u64,

    /// Serve without the launch token (allowed only when listening on loopback). Any
    /// program or page on this machine can then open sessions.
    #[arg(long)]
    pub no_token: bool,

    /// Use this launch token instead of a random one (scripts that start socklab).
    #[arg(
        long,
        env = "SOCKLAB_TOKEN",
        value_name = "TOKEN",
        conflicts_with = "no_token"
    )]
    pub token: Option<String>,

    /// Let sockets and links bind to and send to this network too (repeatable), such as
    /// 192.168.1.0/24 or fd00::/8; loopback is always allowed. Broadcast and multicast
    /// also need the socket bound with broadcast or multicast enabled.
    #[arg(long = "allow-net", value_name = "CIDR")]
    pub allow_net: Vec<crate::policy::Cidr>,

    /// Also accept requests whose Host is this name (repeatable). By default only
    /// localhost, 127.0.0.1 and [::1] are accepted, which defeats DNS rebinding.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,

    /// How many events each session's log keeps; older ones are dropped and a viewer
    /// that had not seen them is told with a `gap` event.
    #[arg(long, default_value_t = DEFAULT_LOG_MAX_EVENTS, value_name = "N")]
    pub log_max_events: usize,

    /// How many payload bytes each session's log keeps (same rule as --log-max-events).
    #[arg(long, default_value_t = DEFAULT_LOG_MAX_BYTES, value_name = "BYTES")]
    pub log_max_bytes: usize,

    /// How many payload bytes one link may hold at once (its delay line, queue and
    /// held-back datagrams together); what would go over is dropped with `queue_full`.
    #[arg(long, default_value_t = DEFAULT_MAX_LINK_BYTES, value_name = "BYTES")]
    pub max_link_bytes: usize,

    /// How many datagrams per second a session's links may forward, together (and
    /// --max-bytes-per-sec bytes); beyond it they drop with `rate_limit`. Every loop
    /// through a program outside the lab is bounded by it.
    #[arg(long, default_value_t = DEFAULT_MAX_FORWARDED_PER_SEC, value_name = "N")]
    pub max_forwarded_per_sec: u64,

    /// How many datagrams each session's flow analysis follows in flight at once;
    /// beyond it the oldest is given up (an `untracked` fate) instead of being held.
    #[arg(long, default_value_t = socklab_analysis::analyzer::DEFAULT_MAX_IN_FLIGHT, value_name = "N")]
    pub max_in_flight: usize,

    /// How many addresses each session counts datagrams for per time bucket (what the
    /// page draws when zoomed out, `aggregate`); the datagrams of addresses past it are
    /// counted together as `others`.
    #[arg(long, default_value_t = crate::aggregate::DEFAULT_MAX_LANES, value_name = "N")]
    pub max_aggregate_lanes: usize,

    /// How many flows each session's analysis keeps; beyond it the flow idle longest
    /// is retired (flow_stats counts them in `retired_flows`).
    #[arg(long, default_value_t = socklab_analysis::analyzer::DEFAULT_MAX_FLOWS, value_name = "N")]
    pub max_flows: usize,

    /// How many finished datagrams each session's analysis remembers to recognise
    /// duplicates and late arrivals (all flows together; 48 bytes each).
    #[arg(long, default_value_t = socklab_analysis::analyzer::DEFAULT_MAX_FINISHED, value_name = "N")]
    pub max_finished: usize,

    /// How many viewers may watch one session at once; one more gets HTTP 429.
    #[arg(long, default_value_t = DEFAULT_MAX_VIEWERS_PER_SESSION, value_name = "N")]
    pub max_viewers_per_session: usize,

    /// How long one frame to a viewer may take to be written; a viewer that does not
    /// read for that long is disconnected (it may come back with `since`).
    #[arg(long, default_value_t = DEFAULT_WRITE_TIMEOUT_SECS, value_name = "SECONDS")]
    pub write_timeout_secs: u64,

    /// How many sockets all sessions together may have open (a link counts three: its
    /// two sockets and its timer).
    /// By default: the process's open-file limit less a reserve for connections.
    #[arg(long, value_name = "N")]
    pub max_sockets: Option<usize>,

    /// Let sockets and links bind ports below 1024 (privileged ports). Without it they
    /// are refused even when socklab runs as root.
    #[arg(long)]
    pub allow_privileged_ports: bool,

    /// Refuse sending to this destination port on any address (repeatable), such as 53
    /// to keep pages away from a local DNS resolver. Loopback UDP services are otherwise
    /// reachable from the page by design.
    #[arg(long = "deny-port", value_name = "PORT")]
    pub deny_ports: Vec<u16>,

    /// Let a link listen on an --allow-net address (reachable from the network) and
    /// forward into a loopback service. Without it such a link is refused: it would
    /// open a service meant for this machine only to the network.
    #[arg(long)]
    pub allow_link_into_loopback: bool,

    /// Where the sessions' Unix socket directories are made (each session binds its
    /// Unix sockets in a directory of its own there, removed when it ends). By
    /// default $XDG_RUNTIME_DIR/socklab, else /tmp/socklab-<uid>.
    #[arg(long, value_name = "DIR")]
    pub unix_dir: Option<PathBuf>,

    /// Let sockets send Unix datagrams to sockets inside this directory too
    /// (repeatable), such as the folder where your own program binds its socket.
    /// Abstract names (unix:@name) and the session's own directory are always allowed.
    #[arg(long = "allow-unix", value_name = "DIR")]
    pub allow_unix: Vec<PathBuf>,

    /// Where recordings are kept (an SQLite file, socklab.db, in this directory). By
    /// default $XDG_DATA_HOME/socklab, else ~/.local/share/socklab.
    #[arg(long = "data", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Record every session from its start (each page can also start and stop a
    /// recording itself).
    #[arg(long)]
    pub record: bool,

    /// The largest capture file (pcap or pcapng) that may be imported as a recording.
    #[arg(long, default_value_t = DEFAULT_MAX_IMPORT_BYTES, value_name = "BYTES")]
    pub max_import_bytes: usize,

    /// How many recordings the store keeps at most; a new one beyond them (a recording,
    /// an import, a run again) is refused until some are deleted.
    #[arg(long, default_value_t = DEFAULT_MAX_RECORDINGS, value_name = "N")]
    pub max_recordings: u64,

    /// How large the store may grow: a recording that would take it past this stops
    /// (saying why), and new recordings and imports are refused, until some recordings
    /// are deleted.
    #[arg(long, default_value_t = DEFAULT_MAX_STORE_BYTES, value_name = "BYTES")]
    pub max_store_bytes: u64,

    /// How many exports (capture files, recording files, tables), imports and
    /// comparisons are made at once; each holds a recording in memory. One more is
    /// refused (503, `busy`) until one is done.
    #[arg(long, default_value_t = DEFAULT_MAX_EXPORTS, value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..))]
    pub max_exports: u16,

    /// How many questions of counts and windows (`aggregate` and `window`) one viewer
    /// may ask a second, and the recordings' pages together over HTTP (`…/counts`,
    /// `…/window`); one more is refused (`limit_exceeded`; HTTP 429). The page asks at
    /// most four a second.
    #[arg(long, default_value_t = DEFAULT_MAX_QUERIES_PER_SEC, value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_queries_per_sec: u64,
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
    /// See [`Args::max_sessions`].
    pub max_sessions: usize,
    /// See [`Args::max_message_bytes`].
    pub max_message_bytes: usize,
    /// See [`Args::flush_interval_us`].
    pub flush_interval: std::time::Duration,
    /// See [`Args::max_datagrams_per_sec`].
    pub max_datagrams_per_sec: u64,
    /// See [`Args::max_bytes_per_sec`].
    pub max_bytes_per_sec: u64,
    /// See [`Args::grace_secs`].
    pub grace: std::time::Duration,
    /// The token a WebSocket must present (`?token=`); `None`: no token needed.
    pub token: Option<String>,
    /// Host names accepted besides localhost, 127.0.0.1 and [::1].
    pub allow_hosts: Vec<String>,
    /// Networks sockets may use besides loopback.
    pub allow_net: Vec<crate::policy::Cidr>,
    /// See [`Args::log_max_events`].
    pub log_max_events: usize,
    /// See [`Args::log_max_bytes`].
    pub log_max_bytes: usize,
    /// See [`Args::max_link_bytes`].
    pub max_link_bytes: usize,
    /// See [`Args::max_forwarded_per_sec`].
    pub max_forwarded_per_sec: u64,
    /// See [`Args::max_in_flight`].
    pub max_in_flight: usize,
    /// See [`Args::max_aggregate_lanes`].
    pub max_aggregate_lanes: usize,
    /// See [`Args::max_flows`].
    pub max_flows: usize,
    /// See [`Args::max_finished`].
    pub max_finished: usize,
    /// See [`Args::max_viewers_per_session`].
    pub max_viewers_per_session: usize,
    /// See [`Args::write_timeout_secs`].
    pub write_timeout: std::time::Duration,
    /// See [`Args::max_sockets`]; `None`: derived from the open-file limit when the
    /// server starts.
    pub max_sockets: Option<usize>,
    /// See [`Args::allow_privileged_ports`].
    pub allow_privileged_ports: bool,
    /// See [`Args::deny_ports`].
    pub deny_ports: Vec<u16>,
    /// See [`Args::allow_link_into_loopback`].
    pub allow_link_into_loopback: bool,
    /// See [`Args::unix_dir`].
    pub unix_dir: Option<PathBuf>,
    /// See [`Args::allow_unix`].
    pub allow_unix: Vec<PathBuf>,
    /// Where the store is; `None`: no recordings (the binary always has one: its
    /// `--data` or the platform's data directory).
    pub data_dir: Option<PathBuf>,
    /// See [`Args::record`].
    pub record: bool,
    /// See [`Args::max_import_bytes`].
    pub max_import_bytes: usize,
    /// See [`Args::max_recordings`].
    pub max_recordings: u64,
    /// See [`Args::max_store_bytes`].
    pub max_store_bytes: u64,
    /// See [`Args::max_exports`].
    pub max_exports: usize,
    /// See [`Args::max_queries_per_sec`].
    pub max_queries_per_sec: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            web_dir: None,
            max_sockets_per_session: DEFAULT_MAX_SOCKETS_PER_SESSION,
            max_links_per_session: DEFAULT_MAX_LINKS_PER_SESSION,
            loss_timeout_ms: DEFAULT_LOSS_TIMEOUT_MS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_datagrams_per_sec: DEFAULT_MAX_DATAGRAMS_PER_SEC,
            max_bytes_per_sec: DEFAULT_MAX_BYTES_PER_SEC,
            grace: std::time::Duration::from_secs(DEFAULT_GRACE_SECS),
            token: None,
            allow_hosts: Vec::new(),
            allow_net: Vec::new(),
            log_max_events: DEFAULT_LOG_MAX_EVENTS,
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
            max_link_bytes: DEFAULT_MAX_LINK_BYTES,
            max_forwarded_per_sec: DEFAULT_MAX_FORWARDED_PER_SEC,
            max_in_flight: socklab_analysis::analyzer::DEFAULT_MAX_IN_FLIGHT,
            max_aggregate_lanes: crate::aggregate::DEFAULT_MAX_LANES,
            max_flows: socklab_analysis::analyzer::DEFAULT_MAX_FLOWS,
            max_finished: socklab_analysis::analyzer::DEFAULT_MAX_FINISHED,
            max_viewers_per_session: DEFAULT_MAX_VIEWERS_PER_SESSION,
            write_timeout: std::time::Duration::from_secs(DEFAULT_WRITE_TIMEOUT_SECS),
            max_sockets: None,
            allow_privileged_ports: false,
            deny_ports: Vec::new(),
            allow_link_into_loopback: false,
            unix_dir: None,
            allow_unix: Vec::new(),
            data_dir: None,
            record: false,
            max_import_bytes: DEFAULT_MAX_IMPORT_BYTES,
            max_recordings: DEFAULT_MAX_RECORDINGS,
            max_store_bytes: DEFAULT_MAX_STORE_BYTES,
            max_exports: DEFAULT_MAX_EXPORTS as usize,
            max_queries_per_sec: DEFAULT_MAX_QUERIES_PER_SEC,
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
            max_sessions: args.max_sessions,
            max_message_bytes: args.max_message_bytes,
            flush_interval: std::time::Duration::from_micros(args.flush_interval_us),
            max_datagrams_per_sec: args.max_datagrams_per_sec,
            max_bytes_per_sec: args.max_bytes_per_sec,
            grace: std::time::Duration::from_secs(args.grace_secs),
            // The token itself is decided by `main` (random unless given).
            token: args.token.clone(),
            allow_hosts: args.allow_hosts.clone(),
            allow_net: args.allow_net.clone(),
            log_max_events: args.log_max_events,
            log_max_bytes: args.log_max_bytes,
            max_link_bytes: args.max_link_bytes,
            max_forwarded_per_sec: args.max_forwarded_per_sec,
            max_in_flight: args.max_in_flight,
            max_aggregate_lanes: args.max_aggregate_lanes,
            max_flows: args.max_flows,
            max_finished: args.max_finished,
            max_viewers_per_session: args.max_viewers_per_session,
            write_timeout: std::time::Duration::from_secs(args.write_timeout_secs),
            max_sockets: args.max_sockets,
            allow_privileged_ports: args.allow_privileged_ports,
            deny_ports: args.deny_ports.clone(),
            allow_link_into_loopback: args.allow_link_into_loopback,
            unix_dir: args.unix_dir.clone(),
            allow_unix: args.allow_unix.clone(),
            data_dir: Some(
                args.data_dir
                    .clone()
                    .unwrap_or_else(crate::store::default_dir),
            ),
            record: args.record,
            max_import_bytes: args.max_import_bytes,
            max_recordings: args.max_recordings,
            max_store_bytes: args.max_store_bytes,
            max_exports: usize::from(args.max_exports),
            max_queries_per_sec: args.max_queries_per_sec,
        }
    }
}
