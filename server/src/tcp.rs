//! TCP sockets. A listening socket has a task that accepts connections, each one a
//! socket of its own (named after its listener: `s3.1`, `s3.2`, …); a connecting or
//! accepted socket has a task that writes what the session asks and logs every write
//! and every read, so a person sees what a byte stream does: two writes coming out of
//! one read, one write out of several, the end of the stream, a reset.
//!
//! (Over 600 lines: the listener, the connection's states and its bounded writes share
//! the records and refusals they log, and are read together.)

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::time::Instant;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use socklab_protocol::{Direction, Endpoint, ErrorCode, ShutdownHow, SocketId, StreamEndReason};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::budget::SendBudget;
use crate::error::CommandError;
use crate::log::{
    AcceptedRecord, EventLog, Record, SocketName, StreamEndRecord, StreamRecord, Tagged,
};
use crate::udp::{Clocks, ReplyTo, answer};

/// How many connections may wait to be accepted (listen's backlog).
const BACKLOG: i32 = 16;
/// How many operations (writes, a shutdown) may wait for a socket's task.
pub const OP_QUEUE: usize = 64;
/// How many bytes of writes the task holds while the send buffer is full (beyond
/// them, or beyond [`OP_QUEUE`] writes, writes wait in the operation queue, and
/// beyond that they are refused).
const MAX_PENDING_BYTES: usize = 1 << 20;
/// The most bytes one `send` on a TCP socket writes.
pub const MAX_WRITE: usize = 65_536;
/// How many reads one wake-up makes at most before the task lets its writes have a turn.
const READS_PER_WAKE: usize = 16;
/// The read size when the socket has none: what one read call asks for.
const DEFAULT_READ_SIZE: usize = 65_536;
/// How many accepted connections may wait for their session to take them in.
pub const ACCEPTED_QUEUE: usize = 64;

/// What a TCP socket is asked to do.
#[derive(Debug)]
pub enum Op {
    /// Open a connection to `to`.
    Connect {
        /// Where.
        to: SocketAddr,
        /// The command's `req`.
        req: Option<Tagged>,
        /// Where a failure is reported.
        reply: ReplyTo,
    },
    /// Write these bytes.
    Write {
        /// The bytes.
        payload: Vec<u8>,
        /// The command's `req`.
        req: Option<Tagged>,
        /// Where a failure is reported.
        reply: ReplyTo,
    },
    /// Shut down a half of the connection.
    Shutdown {
        /// Which half.
        how: ShutdownHow,
        /// The command's `req`.
        req: Option<Tagged>,
        /// Where a failure is reported.
        reply: ReplyTo,
    },
}

/// The options a TCP socket is opened with.
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    /// How many bytes one read asks for (None: 64 KiB).
    pub read_size: Option<u32>,
    /// TCP_NODELAY: no Nagle.
    pub nodelay: bool,
    /// SO_RCVBUF to ask for.
    pub recv_buffer: Option<u64>,
}

/// What a socket task needs from its session.
#[derive(Debug, Clone)]
pub struct TcpContext {
    /// The session's log.
    pub log: Arc<EventLog>,
    /// The session's send budget (writes count against it like datagrams).
    pub budget: Arc<SendBudget>,
    /// The server's socket slots (each accepted connection takes one).
    pub slots: Arc<crate::slots::SocketSlots>,
    /// Where a listener hands its accepted connections to the session.
    pub accepted: mpsc::Sender<TcpHandle>,
}

/// The session's handle on a TCP socket's task.
#[derive(Debug)]
pub struct TcpHandle {
    /// The socket's id in its session.
    pub id: SocketId,
    /// Its address.
    pub local: SocketAddr,
    /// Its peer, once connected (or accepted).
    pub peer: Option<SocketAddr>,
    /// A listening socket (it accepts; it neither connects nor writes).
    pub listening: bool,
    /// The receive buffer the kernel granted, bytes.
    pub recv_buffer_bytes: Option<u64>,
    ops: Option<mpsc::Sender<Op>>,
    /// Whether its task stops reading (`pause`).
    paused: tokio::sync::watch::Sender<bool>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    slot: Option<crate::slots::Slot>,
}

impl TcpHandle {
    /// Opens a TCP socket bound to `addr` (checked against the policy by the caller):
    /// listening when `listen`, else ready to connect.
    pub fn bind(
        id: SocketId,
        addr: SocketAddr,
        listen: bool,
        options: TcpOptions,
        context: TcpContext,
        parent: &CancellationToken,
    ) -> Result<Self, CommandError> {
        let bind_error = |e: io::Error| CommandError::from_bind(&e, addr);
        let socket = open(addr, |socket| {
            if let Some(b) = options.recv_buffer
                && let Err(e) =
                    socket.set_recv_buffer_size(usize::try_from(b).unwrap_or(usize::MAX))
            {
                tracing::warn!(error = %e, "cannot set the receive buffer");
            }
            socket.set_tcp_nodelay(options.nodelay)
        })
        .map_err(bind_error)?;
        let recv_buffer_bytes = socket.recv_buffer_size().ok().map(|b| b as u64);
        let local = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| {
                CommandError::new(ErrorCode::IoError, "cannot read the bound address")
            })?;
        let name = Arc::new(SocketName {
            id: id.as_str().into(),
            local,
        });
        let cancel = parent.child_token();
        if listen {
            let listener = listening(socket).map_err(bind_error)?;
            let span = tracing::info_span!("tcp_listener", socket = %id, %local);
            let task = tokio::spawn(
                Listener {
                    id: id.clone(),
                    listener,
                    options,
                    context,
                    next: 1,
                }
                .run(cancel.clone())
                .instrument(span),
            );
            return Ok(TcpHandle {
                id,
                local,
                peer: None,
                listening: true,
                recv_buffer_bytes,
                ops: None,
                paused: tokio::sync::watch::channel(false).0,
                cancel,
                task,
                slot: None,
            });
        }
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
        let (ops, queue) = mpsc::channel(OP_QUEUE);
        let (paused, paused_rx) = tokio::sync::watch::channel(false);
        let span = tracing::info_span!("tcp", socket = %id, %local);
        let task = tokio::spawn(
            Connection::new(name, options, context.log, context.budget)
                .run_unconnected(socket, queue, paused_rx, cancel.clone())
                .instrument(span),
        );
        Ok(TcpHandle {
            id,
            local,
            peer: None,
            listening: false,
            recv_buffer_bytes,
            ops: Some(ops),
            paused,
            cancel,
            task,
            slot: None,
        })
    }

    /// Its queue of operations (a re-run takes steps on it as they fall due); None for
    /// a listener.
    pub fn ops(&self) -> Option<mpsc::Sender<Op>> {
        self.ops.clone()
    }

    /// Queues an operation without waiting.
    pub fn queue(&self, op: Op) -> Result<(), CommandError> {
        let Some(ops) = &self.ops else {
            return Err(CommandError::bad_request(format!(
                "socket {} is a TCP listener: it accepts connections, each a socket of its own ({}.1, {}.2, …); write to, connect or shut down those",
                self.id, self.id, self.id
            )));
        };
        ops.try_send(op).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "socket {} already has {OP_QUEUE} writes waiting (the peer is not reading); slow down",
                    self.id
                ),
            ),
            mpsc::error::TrySendError::Closed(_) => CommandError::new(
                ErrorCode::IoError,
                format!("socket {}'s connection has ended; close it", self.id),
            ),
        })
    }

    /// Stops or resumes its reading (a listener has none: refused).
    pub fn set_paused(&self, paused: bool) -> Result<(), CommandError> {
        if self.listening {
            return Err(CommandError::bad_request(format!(
                "socket {} is a TCP listener and reads nothing; pause one of its connections",
                self.id
            )));
        }
        self.paused.send_replace(paused);
        Ok(())
    }

    /// Keeps `slot` (its share of the server's socket limit) until this handle goes.
    pub fn holding(mut self, slot: crate::slots::Slot) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Stops the task and waits until the socket is closed (a connection's peer reads
    /// the end of the stream, or a reset when bytes were left unread).
    pub async fn close(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(socket = %self.id, error = %e, "tcp task failed");
        }
    }
}

/// A nonblocking TCP socket bound to `addr` (IPv6 sockets IPv6 only; SO_REUSEADDR, so
/// a port a closed connection left in TIME_WAIT can be bound again at once), with
/// `before_bind` applied first (options the kernel reads at bind or listen).
pub(crate) fn open(
    addr: SocketAddr,
    before_bind: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    before_bind(&socket)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// `socket` listening (backlog [`BACKLOG`]), on tokio's reactor.
pub(crate) fn listening(socket: Socket) -> io::Result<TcpListener> {
    socket.listen(BACKLOG)?;
    TcpListener::from_std(std::net::TcpListener::from(socket))
}

struct Listener {
    id: SocketId,
    listener: TcpListener,
    options: TcpOptions,
    context: TcpContext,
    /// The number of the next accepted connection.
    next: u64,
}

impl Listener {
    async fn run(mut self, cancel: CancellationToken) {
        tracing::debug!("listening");
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.take(stream, peer, &cancel),
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was
                    // accepted: the listener carries on.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::task::yield_now().await;
                }
            }
        }
        tracing::debug!("listener closed");
    }

    /// Makes an accepted connection a socket of the session, or closes it at once when
    /// the server has no room for it.
    fn take(&mut self, stream: TcpStream, peer: SocketAddr, cancel: &CancellationToken) {
        let id = SocketId::new(format!("{}.{}", self.id, self.next));
        self.next += 1;
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let name = Arc::new(SocketName {
            id: id.as_str().into(),
            local,
        });
        let log = &self.context.log;
        log.append(
            Instant::now(),
            Record::Accepted(Box::new(AcceptedRecord {
                socket: name.clone(),
                listener: self.id.clone(),
                peer,
            })),
        );
        let refuse = |why: String| {
            log.append(
                Instant::now(),
                Record::StreamEnd(Box::new(StreamEndRecord {
                    socket: id.clone(),
                    reason: StreamEndReason::Error,
                    error: Some(why),
                    read: 0,
                    req: None,
                })),
            );
        };
        let slot = match self.context.slots.take(1) {
            Ok(slot) => slot,
            Err(e) => return refuse(format!("closed at once: {}", e.message)),
        };
        if let Err(e) = stream.set_nodelay(self.options.nodelay) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (ops, queue) = mpsc::channel(OP_QUEUE);
        let (paused, paused_rx) = tokio::sync::watch::channel(false);
        let child = cancel.child_token();
        let span = tracing::info_span!("tcp", socket = %id, %local, %peer);
        let task = tokio::spawn(
            Connection::new(name, self.options, log.clone(), self.context.budget.clone())
                .run_connected(stream, peer, queue, paused_rx, child.clone())
                .instrument(span),
        );
        let handle = TcpHandle {
            id: id.clone(),
            local,
            peer: Some(peer),
            listening: false,
            recv_buffer_bytes: None,
            ops: Some(ops),
            paused,
            cancel: child,
            task,
            slot: Some(slot),
        };
        if let Err(refused) = self.context.accepted.try_send(handle) {
            let handle = refused.into_inner();
            handle.cancel.cancel();
            refuse(format!(
                "closed at once: {ACCEPTED_QUEUE} accepted connections are already waiting for the session"
            ));
        }
    }
}

/// The writes a connection holds while its send buffer is full: at most
/// [`OP_QUEUE`] of them and about [`MAX_PENDING_BYTES`] bytes (the byte count is kept,
/// not summed).
#[derive(Default)]
struct Held {
    writes: VecDeque<Pending>,
    /// Bytes still to write, all writes together.
    bytes: usize,
}

impl Held {
    /// Whether another write may be taken from the queue.
    fn has_room(&self) -> bool {
        self.writes.len() < OP_QUEUE && self.bytes < MAX_PENDING_BYTES
    }

    fn push(&mut self, write: Pending) {
        self.bytes += write.bytes.len();
        self.writes.push_back(write);
    }
}

/// A write waiting for room in the socket's send buffer.
struct Pending {
    bytes: Vec<u8>,
    /// How much of it is written.
    done: usize,
    req: Option<Tagged>,
    reply: ReplyTo,
}

/// A connecting or connected socket's task.
struct Connection {
    name: Arc<SocketName<SocketAddr>>,
    log: Arc<EventLog>,
    budget: Arc<SendBudget>,
    /// Bytes written so far (the next write's offset).
    written: u64,
    /// Bytes read so far.
    read: u64,
    /// Where reads land (the read size long).
    buf: Vec<u8>,
}

/// What a read pass found.
enum Read {
    /// It read what there was (or nothing); the stream goes on.
    More,
    /// The peer ended its half: no more reads.
    End,
    /// The connection is gone (a reset, an error).
    Dead,
}

impl Connection {
    fn new(
        name: Arc<SocketName<SocketAddr>>,
        options: TcpOptions,
        log: Arc<EventLog>,
        budget: Arc<SendBudget>,
    ) -> Self {
        let read_size = options
            .read_size
            .map_or(DEFAULT_READ_SIZE, |n| n as usize)
            .clamp(1, DEFAULT_READ_SIZE);
        Connection {
            name,
            log,
            budget,
            written: 0,
            read: 0,
            buf: vec![0; read_size],
        }
    }

    fn id(&self) -> SocketId {
        SocketId::new(&*self.name.id)
    }

    /// Before a connection: waits for `connect`; refuses the rest.
    async fn run_unconnected(
        self,
        socket: TcpSocket,
        mut queue: mpsc::Receiver<Op>,
        paused: tokio::sync::watch::Receiver<bool>,
        cancel: CancellationToken,
    ) {
        let (to, req, reply) = loop {
            let op = tokio::select! {
                _ = cancel.cancelled() => return,
                op = queue.recv() => op,
            };
            match op {
                None => return,
                Some(Op::Connect { to, req, reply }) => break (to, req, reply),
                Some(Op::Write { req, reply, .. } | Op::Shutdown { req, reply, .. }) => {
                    answer(
                        &reply,
                        req,
                        CommandError::bad_request(format!(
                            "socket {} is not connected: connect it first",
                            self.name.id
                        )),
                    );
                }
            }
        };
        let connected = tokio::select! {
            _ = cancel.cancelled() => return,
            connected = socket.connect(to) => connected,
        };
        match connected {
            Ok(stream) => {
                self.log.append(
                    Instant::now(),
                    Record::Connected {
                        // Named as a datagram socket's records name it.
                        socket: Arc::new(SocketName {
                            id: self.name.id.clone(),
                            local: Endpoint::Ip(self.name.local),
                        }),
                        peer: Box::new(Endpoint::Ip(to)),
                        req,
                    },
                );
                self.run_connected(stream, to, queue, paused, cancel).await;
            }
            Err(e) => {
                let refused = e.kind() == io::ErrorKind::ConnectionRefused;
                let message = if refused {
                    format!(
                        "connection to {to} refused: nothing listens there (the SYN was answered with a reset)"
                    )
                } else {
                    format!("cannot connect to {to}: {e}")
                };
                self.end(
                    if refused {
                        StreamEndReason::Refused
                    } else {
                        StreamEndReason::Error
                    },
                    Some(e.to_string()),
                    req,
                );
                answer(&reply, req, CommandError::new(ErrorCode::IoError, message));
                // A socket whose connect failed cannot connect again: say so to
                // whatever comes next, until it is closed.
                while let Some(op) = tokio::select! {
                    _ = cancel.cancelled() => None,
                    op = queue.recv() => op,
                } {
                    let (Op::Connect { req, reply, .. }
                    | Op::Write { req, reply, .. }
                    | Op::Shutdown { req, reply, .. }) = op;
                    answer(
                        &reply,
                        req,
                        CommandError::bad_request(format!(
                            "socket {}'s connection attempt failed, and a TCP socket cannot try again: close it and bind a new one",
                            self.name.id
                        )),
                    );
                }
            }
        }
    }

    /// A connection: writes what is asked, reads what arrives, until it is closed or
    /// dies.
    async fn run_connected(
        mut self,
        stream: TcpStream,
        peer: SocketAddr,
        mut queue: mpsc::Receiver<Op>,
        mut paused: tokio::sync::watch::Receiver<bool>,
        cancel: CancellationToken,
    ) {
        // The kernel's time of the bytes each read returns.
        if let Err(e) = setsockopt(&stream, sockopt::ReceiveTimestampns, &true) {
            tracing::debug!(error = %e, "no kernel receive timestamps on this connection");
        }
        let mut pending = Held::default();
        let mut reading = true;
        // A shutdown waiting for the writes before it.
        let mut shutdown = None;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                op = queue.recv(), if shutdown.is_none() && pending.has_room() => match op {
                    None => break,
                    Some(Op::Write { payload, req, reply }) => {
                        if let Err(refused) = self.budget.take(payload.len()) {
                            answer(&reply, req, refused);
                            continue;
                        }
                        pending.push(Pending { bytes: payload, done: 0, req, reply });
                        if !self.write(&stream, peer, &mut pending) {
                            break;
                        }
                    }
                    // A shutdown comes after the writes asked for before it, as the
                    // kernel sends its FIN after the bytes in its buffer.
                    Some(Op::Shutdown { how, req, reply }) => shutdown = Some((how, req, reply)),
                    Some(Op::Connect { req, reply, .. }) => answer(&reply, req, CommandError::bad_request(format!(
                        "socket {} is already connected to {peer}; a TCP socket connects once", self.name.id
                    ))),
                },
                changed = paused.changed() => if changed.is_err() {
                    // The handle is gone, and the socket with it.
                    break;
                },
                ready = stream.readable(), if reading && !*paused.borrow() => {
                    if ready.is_err() {
                        break;
                    }
                    match self.read_some(&stream, peer) {
                        Read::More => {}
                        Read::End => reading = false,
                        Read::Dead => break,
                    }
                }
                ready = stream.writable(), if !pending.writes.is_empty() => {
                    if ready.is_err() || !self.write(&stream, peer, &mut pending) {
                        break;
                    }
                }
            }
            if pending.writes.is_empty()
                && let Some((how, req, reply)) = shutdown.take()
            {
                let std_how = match how {
                    ShutdownHow::Read => std::net::Shutdown::Read,
                    ShutdownHow::Write => std::net::Shutdown::Write,
                    ShutdownHow::Both => std::net::Shutdown::Both,
                };
                match socket2::SockRef::from(&stream).shutdown(std_how) {
                    Ok(()) => {
                        // After SHUT_RD a read returns 0 at once, which is not the peer's
                        // end of stream: stop reading instead.
                        reading &= how == ShutdownHow::Write;
                        self.log.append(
                            Instant::now(),
                            Record::ShutDown {
                                socket: self.id(),
                                how,
                                req,
                            },
                        );
                    }
                    Err(e) => answer(
                        &reply,
                        req,
                        CommandError::new(
                            ErrorCode::IoError,
                            format!("cannot shut down socket {}: {e}", self.name.id),
                        ),
                    ),
                }
            }
        }
        tracing::debug!("connection closed");
    }

    /// Writes what the send buffer takes of the waiting writes, logging each write
    /// call's bytes. Returns false when the connection is gone.
    fn write(&mut self, stream: &TcpStream, peer: SocketAddr, pending: &mut Held) -> bool {
        while let Some(first) = pending.writes.front_mut() {
            let mut n = 0;
            let attempt = self.log.append_with(|| {
                // The write's time is taken just before the syscall, as a send's.
                let at = Instant::now();
                n = stream.try_write(&first.bytes[first.done..])?;
                let record = StreamRecord {
                    socket: self.name.clone(),
                    dir: Direction::Out,
                    peer,
                    offset: self.written,
                    payload: first.bytes[first.done..first.done + n].into(),
                    // The `req` goes with the first bytes of the send.
                    req: if first.done == 0 { first.req } else { None },
                };
                Ok::<_, io::Error>((at, Record::Stream(Box::new(record))))
            });
            match attempt {
                Ok(_) => {
                    self.written += n as u64;
                    pending.bytes -= n;
                    first.done += n;
                    if first.done == first.bytes.len() {
                        pending.writes.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) => {
                    pending.bytes = 0;
                    let Pending { req, reply, .. } =
                        pending.writes.pop_front().expect("the front write");
                    answer(
                        &reply,
                        req,
                        CommandError::new(
                            ErrorCode::IoError,
                            format!("cannot write to {peer}: {e}"),
                        ),
                    );
                    let reason = if e.kind() == io::ErrorKind::ConnectionReset
                        || e.kind() == io::ErrorKind::BrokenPipe
                    {
                        StreamEndReason::Reset
                    } else {
                        StreamEndReason::Error
                    };
                    self.end(reason, Some(e.to_string()), None);
                    for Pending { req, reply, .. } in pending.writes.drain(..) {
                        answer(
                            &reply,
                            req,
                            CommandError::new(
                                ErrorCode::IoError,
                                format!("not written: the connection to {peer} has ended"),
                            ),
                        );
                    }
                    return false;
                }
            }
        }
        true
    }

    /// Reads what has arrived, a read size at a time, up to [`READS_PER_WAKE`] reads.
    fn read_some(&mut self, stream: &TcpStream, peer: SocketAddr) -> Read {
        let mut records = Vec::new();
        let mut outcome = Read::More;
        for _ in 0..READS_PER_WAKE {
            let buf = &mut self.buf;
            let got = stream.try_io(Interest::READABLE, || read_one(stream, buf));
            match got {
                Ok((_, bytes)) if bytes.is_empty() => {
                    outcome = Read::End;
                    break;
                }
                Ok((at, bytes)) => {
                    let offset = self.read;
                    self.read += bytes.len() as u64;
                    records.push((
                        at,
                        Record::Stream(Box::new(StreamRecord {
                            socket: self.name.clone(),
                            dir: Direction::In,
                            peer,
                            offset,
                            payload: bytes.into_boxed_slice(),
                            req: None,
                        })),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    outcome = Read::Dead;
                    self.log.append_all(records.drain(..));
                    let reason = if e.kind() == io::ErrorKind::ConnectionReset {
                        StreamEndReason::Reset
                    } else {
                        StreamEndReason::Error
                    };
                    self.end(reason, Some(e.to_string()), None);
                    break;
                }
            }
        }
        self.log.append_all(records);
        if let Read::End = outcome {
            self.end(StreamEndReason::Eof, None, None);
        }
        outcome
    }

    fn end(&self, reason: StreamEndReason, error: Option<String>, req: Option<Tagged>) {
        self.log.append(
            Instant::now(),
            Record::StreamEnd(Box::new(StreamEndRecord {
                socket: self.id(),
                reason,
                error,
                read: self.read,
                req,
            })),
        );
    }
}

/// One read of at most `buf.len()` bytes into `buf` (kept by the connection, so a
/// read allocates only what it returns), with the kernel's time of the newest of them
/// (SO_TIMESTAMPNS; now when there is none). Empty: the end of the stream.
pub(crate) fn read_one(stream: &TcpStream, buf: &mut [u8]) -> io::Result<(Instant, Vec<u8>)> {
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let n = msg.bytes;
    let mut stamp = None;
    for c in msg.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmTimestampns(ts) = c {
            stamp = Some(ts);
        }
    }
    let clocks = Clocks::now();
    let at = stamp.map_or(clocks.mono, |ts| clocks.at(ts));
    Ok((at, buf[..n].to_vec()))
}
