//! socklab's server: it owns real sockets on this machine and bridges them over a
//! WebSocket to the browser.
//!
//! # Layout
//! - [`config`]: the command line ([`config::Args`]) and the settings the server runs
//!   with ([`Config`]).
//! - [`http`]: the axum router: the built web app as static files and `GET /ws`.
//! - [`api`]: the recordings over HTTP (`/api/recordings`).
//! - [`pcapng`]: a recording as a pcapng file, the lab's account in each comment.
//! - [`tables`]: fates and flow figures as CSV.
//! - [`import`]: a pcap or pcapng capture's UDP datagrams as a recording.
//! - [`compare`]: two runs of the same traffic, the datagrams whose fate changed.
//! - [`rerun`]: a recording's sends sent again, with its timing.
//! - [`session`]: one session's state and commands: the sockets, links and
//!   generators it owns, and its event log.
//! - [`viewer`]: one viewer's WebSocket loop: commands in, the session's log out in
//!   frames, from the viewer's own cursor.
//! - [`wire`]: the edge: log entries become protocol events in one exhaustive
//!   function.
//! - [`sessions`]: the registry of live sessions, so viewers can come back and several
//!   can watch one session, and each session's lifetime (a grace period after its last
//!   viewer leaves).
//! - [`udp`]: one task per datagram socket (UDP or Unix); the only code that touches
//!   the socket.
//! - [`unix`]: where Unix domain sockets may be bound and sent to (a directory per
//!   session), and their names in the kernel's form.
//! - [`link`]: links, impairing UDP relays: one task per link owns its two sockets and
//!   carries out the decisions of `socklab-impair`.
//! - [`analysis`]: the session's flow analysis task: reads the log, feeds
//!   `socklab-analysis`, logs each datagram's fate and the flows' figures.
//! - [`generator`]: the server-side traffic generator.
//! - [`listeners`]: whether any program is bound where a datagram went (the kernel's
//!   socket tables), so a loss to a port nobody listens on says so.
//! - [`log`]: the session's event log: ids, timestamps, a bounded history, and a
//!   wake-up for viewers.
//! - [`policy`]: which addresses sockets may bind to and send to.
//! - [`budget`]: a session's send budget (datagrams and bytes per second).
//! - [`slots`]: the server-wide limit on open sockets, from the open-file limit.
//! - [`store`]: recordings in SQLite, one thread owning the connection.
//! - [`recorded`]: a recording of any size read a part at a time: its counts per lane
//!   and time bucket, the events of a time range.
//! - [`recorder`]: a session's recording: its log, read like a viewer's, into the store.
//! - [`error`]: refusals a client sees, each with a stable protocol error code.
//!
//! [`run`] is the entry point: it takes an already-bound listener and a shutdown future,
//! so tests run the real server in-process on port 0.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod analysis;
pub mod api;
pub mod budget;
pub mod compare;
pub mod config;
pub mod error;
pub mod generator;
pub mod http;
pub mod import;
pub mod link;
pub mod listeners;
pub mod log;
pub mod pcapng;
pub mod policy;
pub mod query;
pub mod recorded;
pub mod recorder;
pub mod rerun;
pub mod session;
pub mod sessions;
pub mod slots;
pub mod store;
pub mod tables;
pub mod tcp;
pub mod tcplink;
mod timer;
pub mod udp;
pub mod unix;
pub mod viewer;
pub mod wire;

use std::future::Future;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// The server's name and version, as announced in `hello`.
pub const SERVER_NAME: &str = concat!("socklab ", env!("CARGO_PKG_VERSION"));

/// Serves HTTP and WebSocket sessions on `listener` until `shutdown` completes, then
/// closes every session (and so every socket) and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = CancellationToken::new();
    let sessions = TaskTracker::new();
    let app = http::router(http::AppState::new(
        config,
        cancel.clone(),
        sessions.clone(),
    ));

    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });

    // Events are small frames sent as they happen: without TCP_NODELAY, Nagle's
    // algorithm holds them back for tens of milliseconds.
    let listener =
        axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.clone().cancelled_owned())
        .await;
    // Sessions watch the same token; wait until each has closed its sockets.
    cancel.cancel();
    sessions.close();
    sessions.wait().await;
    result
}
