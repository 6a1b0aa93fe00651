//! TCP links: a proxy between clients and a target (as toxiproxy is) that delays,
//! throttles and slices the byte streams crossing it, holds back the end of a stream,
//! or resets a connection, and logs every decision, so a person can watch what a
//! stream does on a bad network: TCP repairs loss below the application, so what is
//! left to see is time, and how the bytes are cut.
//!
//! Each connection has, per direction, a reader (which timestamps and decides each
//! chunk) and a writer (which passes it on when it is due), joined by a bounded queue:
//! a reader that is ahead waits, and the sender's TCP window closes, as on a slow path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socklab_impair::rng::Rng;
use socklab_protocol::TcpLinkEndHow;
use socklab_protocol::link::{LinkDir, LinkId, TcpImpairments, TcpLinkSettings};
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::error::CommandError;
use crate::log::{EventLog, Record, TcpLinkChunkRecord, TcpLinkConnRecord, TcpLinkEndRecord};

/// The most bytes one read of a TCP link takes (one chunk, one decision).
const CHUNK: usize = 16 * 1024;
/// How many chunks may wait to be passed on, per direction (16 × 64 KiB = 1 MiB).
const QUEUE: usize = 64;
/// How many connections a TCP link carries at once; more clients are reset.
pub const MAX_CONNS: usize = 16;
/// The descriptors one carried connection holds, each one of the server's socket
/// slots: the client's and the target's sockets, and a timerfd per direction.
const CONN_DESCRIPTORS: usize = 4;
/// How long the link tries to reach its target for a client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The session's handle on a TCP link.
#[derive(Debug)]
pub struct TcpLinkHandle {
    /// Its id (`t1`, …).
    pub id: LinkId,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where it connects for them.
    pub target: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    slot: Option<crate::slots::Slot>,
}

impl TcpLinkHandle {
    /// Listens on `listen` (checked against the policy by the caller) and starts the
    /// link's accept loop.
    pub fn create(
        id: LinkId,
        listen: SocketAddr,
        target: SocketAddr,
        settings: TcpLinkSettings,
        log: Arc<EventLog>,
        slots: Arc<crate::slots::SocketSlots>,
        parent: &CancellationToken,
    ) -> Result<Self, CommandError> {
        if let Some(problem) = settings.problem() {
            return Err(CommandError::bad_request(problem));
        }
        let bind_error = |e: std::io::Error| CommandError::from_bind(&e, listen);
        let listener = crate::tcp::open(listen, |_| Ok(()))
            .and_then(crate::tcp::listening)
            .map_err(bind_error)?;
        let listen = listener.local_addr().map_err(bind_error)?;
        if target == listen {
            return Err(CommandError::bad_address(format!(
                "{target} is this link's own address; a link's target must be a program or a lab socket"
            )));
        }
        let cancel = parent.child_token();
        let span = tracing::info_span!("tcp_link", link = %id, %listen, %target);
        let task = tokio::spawn(
            Proxy {
                link: id.clone(),
                target,
                settings,
                log,
                slots,
                conns: Arc::new(AtomicU64::new(0)),
                next: 1,
            }
            .run(listener, cancel.clone())
            .instrument(span),
        );
        Ok(TcpLinkHandle {
            id,
            listen,
            target,
            cancel,
            task,
            slot: None,
        })
    }

    /// Keeps `slot` (its share of the server's socket limit) until this handle goes.
    pub fn holding(mut self, slot: crate::slots::Slot) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Stops the link and every connection it carries.
    pub async fn close(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(link = %self.id, error = %e, "tcp link task failed");
        }
    }
}

struct Proxy {
    link: LinkId,
    target: SocketAddr,
    settings: TcpLinkSettings,
    log: Arc<EventLog>,
    slots: Arc<crate::slots::SocketSlots>,
    /// Connections open now.
    conns: Arc<AtomicU64>,
    next: u64,
}

impl Proxy {
    async fn run(mut self, listener: TcpListener, cancel: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((client, peer)) = accepted else {
                tokio::task::yield_now().await;
                continue;
            };
            let conn = self.next;
            self.next += 1;
            let full = self.conns.load(Ordering::Relaxed) as usize >= MAX_CONNS;
            let slot = if full {
                None
            } else {
                self.slots.take(CONN_DESCRIPTORS).ok()
            };
            let Some(slot) = slot else {
                conn_record(
                    &self.log,
                    &self.link,
                    conn,
                    peer,
                    None,
                    Some(format!(
                        "refused: the link carries {MAX_CONNS} connections at most, or the server holds its most sockets; the client is reset"
                    )),
                );
                reset(client);
                continue;
            };
            self.conns.fetch_add(1, Ordering::Relaxed);
            let carried = Carried {
                link: self.link.clone(),
                conn,
                target: self.target,
                settings: self.settings,
                log: self.log.clone(),
                conns: self.conns.clone(),
                _slot: slot,
            };
            tokio::spawn(
                carried
                    .run(client, peer, cancel.child_token())
                    .in_current_span(),
            );
        }
    }
}

fn conn_record(
    log: &EventLog,
    link: &LinkId,
    conn: u64,
    client: SocketAddr,
    upstream: Option<SocketAddr>,
    error: Option<String>,
) {
    log.append(
        Instant::now(),
        Record::TcpLinkConn(Box::new(TcpLinkConnRecord {
            link: link.clone(),
            conn,
            client,
            upstream,
            error,
        })),
    );
}

/// Closes a connection with a reset (SO_LINGER 0) instead of a FIN.
fn reset(stream: TcpStream) {
    if let Err(e) = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)) {
        tracing::debug!(error = %e, "cannot set SO_LINGER");
    }
    drop(stream);
}

/// One connection the link carries.
struct Carried {
    link: LinkId,
    conn: u64,
    target: SocketAddr,
    settings: TcpLinkSettings,
    log: Arc<EventLog>,
    conns: Arc<AtomicU64>,
    _slot: crate::slots::Slot,
}

/// A chunk on its way: when it is due, and its bytes.
enum Chunk {
    Bytes(Instant, Vec<u8>),
    /// The end of the stream.
    End,
}

impl Carried {
    async fn run(self, client: TcpStream, peer: SocketAddr, cancel: CancellationToken) {
        let upstream = tokio::select! {
            _ = cancel.cancelled() => Err(std::io::Error::other("the link was deleted")),
            connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.target)) => {
                connected.unwrap_or_else(|_| Err(std::io::Error::other("no answer within 5 s")))
            }
        };
        let upstream = match upstream {
            Ok(upstream) => upstream,
            Err(e) => {
                conn_record(
                    &self.log,
                    &self.link,
                    self.conn,
                    peer,
                    None,
                    Some(format!(
                        "cannot reach {}: {e}; the client is reset",
                        self.target
                    )),
                );
                reset(client);
                self.conns.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        };
        for stream in [&client, &upstream] {
            let _ = stream.set_nodelay(true);
            // The kernel's arrival time of what the link reads.
            if let Err(e) = nix::sys::socket::setsockopt(
                stream,
                nix::sys::socket::sockopt::ReceiveTimestampns,
                &true,
            ) {
                tracing::debug!(error = %e, "no kernel receive timestamps on the link");
            }
        }
        conn_record(
            &self.log,
            &self.link,
            self.conn,
            peer,
            upstream.local_addr().ok(),
            None,
        );
        let crossed = Arc::new(AtomicU64::new(0));
        let reset_now = CancellationToken::new();
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        let direction = |dir: LinkDir, impair: TcpImpairments, seed_salt: u64| Direction {
            link: self.link.clone(),
            conn: self.conn,
            dir,
            impair,
            close_delay: Duration::from_secs_f64(self.settings.close_delay_ms / 1e3),
            reset_after: self.settings.reset_after_bytes,
            seed: self.settings.seed ^ seed_salt ^ self.conn,
            log: self.log.clone(),
            crossed: crossed.clone(),
            reset_now: reset_now.clone(),
        };
        let c2t = direction(LinkDir::C2t, self.settings.c2t, 0x7463_7032);
        let t2c = direction(LinkDir::T2c, self.settings.t2c, 0x7432_6363);
        let (a, b) = tokio::join!(
            c2t.run(client_read, upstream_write, cancel.clone()),
            t2c.run(upstream_read, client_write, cancel.clone()),
        );
        // A reset closes both ends with RST: each half was handed back for that.
        if let (Some((r1, w1)), Some((r2, w2))) = (a, b) {
            for (read, write) in [(r1, w2), (r2, w1)] {
                if let Ok(stream) = read.reunite(write) {
                    reset(stream);
                }
            }
        }
        self.conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One direction of a carried connection.
struct Direction {
    link: LinkId,
    conn: u64,
    dir: LinkDir,
    impair: TcpImpairments,
    close_delay: Duration,
    reset_after: u64,
    /// The seed of its jitter.
    seed: u64,
    log: Arc<EventLog>,
    /// Bytes passed on so far, both directions.
    crossed: Arc<AtomicU64>,
    /// Cancelled when the connection is to be reset.
    reset_now: CancellationToken,
}

impl Direction {
    /// Reads, decides and passes on until the stream ends or the connection is reset;
    /// returns the halves when it was reset, for the caller to reset both ends.
    async fn run(
        self,
        mut from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
        cancel: CancellationToken,
    ) -> Option<(OwnedReadHalf, OwnedWriteHalf)> {
        let (chunks, mut queue) = mpsc::channel::<Chunk>(QUEUE);
        let (impair, log, link, conn, dir) = (
            self.impair,
            self.log.clone(),
            self.link.clone(),
            self.conn,
            self.dir,
        );
        let reset_now = self.reset_now.clone();
        let mut rng = Rng::new(self.seed);
        let from_ref = &mut from;
        let reading = async move {
            let mut buf = vec![0u8; CHUNK];
            let mut offset = 0u64;
            // When the previous chunk is due, and when the bottleneck is free again.
            let (mut due, mut free) = (Instant::now(), Instant::now());
            loop {
                let ready = tokio::select! {
                    _ = reset_now.cancelled() => return,
                    ready = from_ref.readable() => ready,
                };
                // Read with the kernel's time of the bytes' arrival: the delay is
                // planned from when they reached the link, not from when it read them.
                let stream = from_ref.as_ref();
                let got = ready.and_then(|()| {
                    stream.try_io(tokio::io::Interest::READABLE, || {
                        crate::tcp::read_one(stream, &mut buf)
                    })
                });
                let (now, bytes) = match got {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Ok((at, bytes)) if !bytes.is_empty() => (at, bytes),
                    // The end of the stream, or an error that ends it.
                    _ => {
                        let _ = chunks.send(Chunk::End).await;
                        return;
                    }
                };
                let n = bytes.len();
                let jitter = if impair.jitter_ms > 0.0 {
                    (rng.unit() * 2.0 - 1.0) * impair.jitter_ms
                } else {
                    0.0
                };
                let delay = Duration::from_secs_f64(((impair.latency_ms + jitter) / 1e3).max(0.0));
                // A stream stays in order: no chunk overtakes the one before it.
                let mut at = (now + delay).max(due);
                if impair.rate_bps > 0 {
                    let send_time =
                        Duration::from_secs_f64(n as f64 * 8.0 / impair.rate_bps as f64);
                    let start = at.max(free);
                    free = start + send_time;
                    at = free;
                }
                due = at;
                let pieces = if impair.slice_bytes > 0 {
                    n.div_ceil(impair.slice_bytes as usize) as u32
                } else {
                    1
                };
                log.append(
                    now,
                    Record::TcpLinkChunk(Box::new(TcpLinkChunkRecord {
                        link: link.clone(),
                        conn,
                        dir,
                        offset,
                        len: n,
                        delay_ns: at.duration_since(now).as_nanos() as u64,
                        pieces,
                    })),
                );
                offset += n as u64;
                if chunks.send(Chunk::Bytes(at, bytes)).await.is_err() {
                    return;
                }
            }
        };
        let slice = self.impair.slice_bytes as usize;
        let slice_delay = Duration::from_secs_f64(self.impair.slice_delay_ms / 1e3);
        let writing = async {
            // Chunks leave when due to the nanosecond (a timerfd, as a UDP link's
            // departures), not on tokio's millisecond wheel.
            let mut timer = crate::timer::HiResTimer::new();
            while let Some(chunk) = queue.recv().await {
                match chunk {
                    Chunk::Bytes(at, bytes) => {
                        timer.sleep_until(Some(at)).await;
                        let piece_len = if slice > 0 { slice } else { bytes.len().max(1) };
                        for (i, piece) in bytes.chunks(piece_len).enumerate() {
                            if i > 0 && !slice_delay.is_zero() {
                                timer.sleep_until(Some(Instant::now() + slice_delay)).await;
                            }
                            if to.write_all(piece).await.is_err() {
                                self.end(
                                    TcpLinkEndHow::Reset,
                                    "the other end is gone: reset".into(),
                                );
                                self.reset_now.cancel();
                                return;
                            }
                            let total = self
                                .crossed
                                .fetch_add(piece.len() as u64, Ordering::Relaxed)
                                + piece.len() as u64;
                            if self.reset_after > 0 && total >= self.reset_after {
                                self.end(
                                    TcpLinkEndHow::Reset,
                                    format!("{total} bytes crossed the link, its reset_after_bytes is {}: both ends reset", self.reset_after),
                                );
                                self.reset_now.cancel();
                                return;
                            }
                        }
                    }
                    Chunk::End => {
                        if !self.close_delay.is_zero() {
                            tokio::time::sleep(self.close_delay).await;
                        }
                        let _ = to.shutdown().await;
                        self.end(
                            TcpLinkEndHow::Fin,
                            format!(
                                "the end of the stream passed on{}",
                                if self.close_delay.is_zero() {
                                    String::new()
                                } else {
                                    format!(", held {} ms", self.close_delay.as_millis())
                                }
                            ),
                        );
                        return;
                    }
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = async { tokio::join!(reading, writing) } => {}
        }
        self.reset_now.is_cancelled().then_some((from, to))
    }

    fn end(&self, how: TcpLinkEndHow, reason: String) {
        self.log.append(
            Instant::now(),
            Record::TcpLinkEnd(Box::new(TcpLinkEndRecord {
                link: self.link.clone(),
                conn: self.conn,
                dir: self.dir,
                how,
                reason,
            })),
        );
    }
}
