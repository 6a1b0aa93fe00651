//! One task per datagram socket (UDP, or Unix domain: `unix.rs` says where those may
//! be bound). The task owns the socket: it sends what the session asks and logs
//! everything it receives. Nothing else touches the socket.
//!
//! (Over 600 lines: the socket task, and the kernel interfaces it needs in one place:
//! batched receives with their timestamps and drop counts, the clocks, the socket table.)

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use socklab_protocol::{Direction, Endpoint, ErrorCode, ErrorEvent, SocketId, limits};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::budget::SendBudget;
use crate::error::CommandError;
use crate::log::{DatagramRecord, EventLog, Record, SocketName, Tagged};
use crate::policy::SocketScope;

/// The receive buffer each socket asks the kernel for. A burst on loopback overflows the
/// default (about 208 KiB) and the kernel drops datagrams silently; the kernel caps the
/// request at `net.core.rmem_max`.
pub const RECV_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// The largest datagram a socket can receive: a UDP length field's maximum.
const RECV_DATAGRAM_MAX: usize = 65_536;
/// How many datagrams one `recvmmsg` call takes at most.
const RECV_BATCH: usize = 32;
/// How many `recvmmsg` calls one wake-up makes at most before logging what they got
/// (and letting the socket's other work, its sends, have a turn).
const RECV_CALLS: usize = 8;
/// How long after a socket's last datagram its task reads the kernel's drop counter
/// once more, from the kernel's socket table: a datagram carries the counter only as it
/// was when that datagram was queued, so drops after the last one queued (the tail of a
/// burst into a full buffer) would otherwise wait for another datagram to be reported.
const SETTLE_DROPS_AFTER: std::time::Duration = std::time::Duration::from_millis(100);
/// How many multicast groups one socket may join (Linux's default limit,
/// `net.ipv4.igmp_max_memberships`, is 20 too).
pub const MAX_GROUPS: usize = 20;
/// How many ICMP errors one wake-up reads from a socket's error queue at most.
const ERRORS_PER_WAKE: usize = 64;
/// How many bytes of the datagram an ICMP error quotes that are kept (an ICMP error
/// quotes at most 576 bytes of IP packet anyway).
const ERROR_QUOTE_MAX: usize = 1024;
/// How long a Unix send first waits for a full receiver before trying again; each
/// wait doubles, up to [`UNIX_WAIT_MAX`].
const UNIX_WAIT_MIN: std::time::Duration = std::time::Duration::from_micros(200);
const UNIX_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(20);
/// How many sends may wait for a socket's task before the session is told to slow down.
pub const SEND_QUEUE: usize = 1024;

/// Where a socket task reports a failed send: the viewer that asked for it.
pub type ReplyTo = mpsc::UnboundedSender<ErrorEvent>;

/// Tells the viewer that asked (its `req`) that a command failed after it was taken:
/// a send the budget or the OS refused, a TCP write or connect that failed.
pub(crate) fn answer(reply: &ReplyTo, req: Option<Tagged>, err: CommandError) {
    // The viewer may be gone; then nobody is waiting for this answer.
    let _ = reply.send(ErrorEvent {
        req: req.map(|t| t.req),
        code: err.code,
        message: err.message,
    });
}

/// A lab datagram socket: UDP, or Unix domain. One kind of task carries either.
#[derive(Debug)]
pub(crate) enum DgramSocket {
    /// A UDP socket.
    Udp(UdpSocket),
    /// A Unix domain datagram socket.
    Unix(tokio::net::UnixDatagram),
}

impl DgramSocket {
    async fn readable(&self) -> io::Result<()> {
        match self {
            DgramSocket::Udp(s) => s.readable().await,
            DgramSocket::Unix(s) => s.readable().await,
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            DgramSocket::Udp(s) => s.writable().await,
            DgramSocket::Unix(s) => s.writable().await,
        }
    }

    async fn ready(&self, interest: Interest) -> io::Result<tokio::io::Ready> {
        match self {
            DgramSocket::Udp(s) => s.ready(interest).await,
            DgramSocket::Unix(s) => s.ready(interest).await,
        }
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            DgramSocket::Udp(s) => s.try_io(interest, f),
            DgramSocket::Unix(s) => s.try_io(interest, f),
        }
    }

    /// Sends without waiting (`WouldBlock` when it cannot now).
    fn try_send_to(&self, payload: &[u8], to: &Endpoint) -> io::Result<usize> {
        match (self, to) {
            (DgramSocket::Udp(s), Endpoint::Ip(addr)) => s.try_send_to(payload, *addr),
            (DgramSocket::Unix(s), Endpoint::Unix(_)) => {
                let addr = crate::unix::kernel_addr(to).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "a Unix socket with no name")
                })?;
                // Straight to the kernel, not through the runtime's readiness: a full
                // receiver is waited for by looking again later (see `send`), not by
                // this socket becoming writable.
                nix::sys::socket::sendto(s.as_raw_fd(), payload, &addr, MsgFlags::MSG_DONTWAIT)
                    .map_err(io::Error::from)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an address of another family",
            )),
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            DgramSocket::Udp(s) => s.as_raw_fd(),
            DgramSocket::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// A datagram the session wants sent.
#[derive(Debug)]
pub struct SendRequest {
    /// The destination, already checked against the policy.
    pub to: Endpoint,
    /// The bytes, already checked against the size limit.
    pub payload: Vec<u8>,
    /// The `req` of the `send` command.
    pub req: Option<Tagged>,
    /// Where to report a failure.
    pub reply: ReplyTo,
}

/// The session's handle on a socket task. Closing it (or dropping the session) ends the
/// task, which closes the socket.
#[derive(Debug)]
pub struct UdpHandle {
    /// The socket's id in its session.
    pub id: SocketId,
    /// The address it is bound to.
    pub local: Endpoint,
    /// What it may send to beyond unicast.
    pub scope: SocketScope,
    /// The receive buffer the kernel granted, bytes (None where it cannot be read).
    pub recv_buffer_bytes: Option<u64>,
    /// How many bytes each receive reads (None: whole datagrams).
    pub recv_size: Option<u32>,
    /// The peer it is connected to, if any.
    pub peer: Option<Endpoint>,
    /// The socket, shared with its task for the calls that change it at once
    /// (`connect`); only the task sends and receives.
    socket: Arc<DgramSocket>,
    /// Its id and address, as its records name it.
    name: Arc<SocketName>,
    /// The multicast groups it joined, with the interface each was joined on.
    groups: Vec<(std::net::IpAddr, Option<String>)>,
    /// Whether its task stops reading (`pause`).
    paused: tokio::sync::watch::Sender<bool>,
    sends: mpsc::Sender<SendRequest>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    /// Its place among the server's sockets, given back when the handle goes.
    slot: Option<crate::slots::Slot>,
}

impl UdpHandle {
    /// Opens a UDP socket bound to `addr` with `options`, and starts its task, which
    /// logs into `log`. The caller has already checked `addr` against the policy and
    /// the options against their limits.
    pub fn bind(
        id: SocketId,
        addr: SocketAddr,
        scope: SocketScope,
        options: UdpOptions,
        log: Arc<EventLog>,
        budget: Arc<SendBudget>,
        parent: &CancellationToken,
    ) -> Result<Self, CommandError> {
        let UdpOptions {
            recv_buffer,
            recv_size,
            reuse_addr,
            multicast_ttl,
            multicast_loop,
        } = options;
        let (socket, recv_buffer_bytes) =
            open(addr, recv_buffer, reuse_addr).map_err(|e| CommandError::from_bind(&e, addr))?;
        let option_error = |e: io::Error| {
            CommandError::new(
                ErrorCode::IoError,
                format!("cannot set a multicast option: {e}"),
            )
        };
        if let Some(ttl) = multicast_ttl {
            if addr.is_ipv4() {
                socket.set_multicast_ttl_v4(ttl).map_err(option_error)?;
            } else {
                socket2::SockRef::from(&socket)
                    .set_multicast_hops_v6(ttl)
                    .map_err(option_error)?;
            }
        }
        if scope.multicast {
            // Only the groups this socket joined, as a person expects (and as other
            // systems do): Linux would otherwise hand it every group any socket on
            // the machine joined, on its port.
            let sock = socket2::SockRef::from(&socket);
            let all = if addr.is_ipv4() {
                sock.set_multicast_all_v4(false)
            } else {
                sock.set_multicast_all_v6(false)
            };
            if let Err(e) = all {
                tracing::debug!(error = %e, "cannot turn IP_MULTICAST_ALL off");
            }
        }
        if let Some(on) = multicast_loop {
            if addr.is_ipv4() {
                socket.set_multicast_loop_v4(on).map_err(option_error)?;
            } else {
                socket.set_multicast_loop_v6(on).map_err(option_error)?;
            }
        }
        if scope.broadcast {
            socket
                .set_broadcast(true)
                .map_err(|e| CommandError::from_bind(&e, addr))?;
        }
        let local = socket
            .local_addr()
            .map_err(|e| CommandError::from_bind(&e, addr))?;
        // ICMP errors about what it sends (port unreachable: nobody listens there) go
        // to its error queue, where the task reads them; without this only a connected
        // socket hears of them, as one failed call.
        let recverr = if addr.is_ipv4() {
            setsockopt(&socket, sockopt::Ipv4RecvErr, &true)
        } else {
            setsockopt(&socket, sockopt::Ipv6RecvErr, &true)
        };
        if let Err(e) = recverr {
            tracing::debug!(error = %e, "no ICMP errors for this socket (IP_RECVERR)");
        }
        Ok(Self::start(
            id,
            DgramSocket::Udp(socket),
            Endpoint::Ip(local),
            scope,
            recv_buffer_bytes,
            recv_size,
            log,
            budget,
            parent,
        ))
    }

    /// Opens a Unix domain datagram socket bound to `target` (`name`: the text the
    /// page gave) and starts its task, which logs into `log`.
    pub fn bind_unix(
        id: SocketId,
        target: &crate::unix::BindTarget,
        name: &str,
        recv_size: Option<u32>,
        log: Arc<EventLog>,
        budget: Arc<SendBudget>,
        parent: &CancellationToken,
    ) -> Result<Self, CommandError> {
        let (socket, local) =
            crate::unix::open(target).map_err(|e| crate::unix::bind_error(&e, name))?;
        Ok(Self::start(
            id,
            DgramSocket::Unix(socket),
            local,
            SocketScope::default(),
            None,
            recv_size,
            log,
            budget,
            parent,
        ))
    }

    /// Starts the task of a bound socket.
    #[allow(clippy::too_many_arguments)]
    fn start(
        id: SocketId,
        socket: DgramSocket,
        local: Endpoint,
        scope: SocketScope,
        recv_buffer_bytes: Option<u64>,
        recv_size: Option<u32>,
        log: Arc<EventLog>,
        budget: Arc<SendBudget>,
        parent: &CancellationToken,
    ) -> Self {
        let socket = Arc::new(socket);
        let name = Arc::new(SocketName {
            id: id.as_str().into(),
            local: local.clone(),
        });
        let (sends, queue) = mpsc::channel(SEND_QUEUE);
        let (paused, paused_rx) = tokio::sync::watch::channel(false);
        let cancel = parent.child_token();
        let span = tracing::info_span!("udp", socket = %id, %local);
        let task = tokio::spawn(
            SocketTask {
                name: name.clone(),
                socket: socket.clone(),
                read_size: recv_size.map_or(RECV_DATAGRAM_MAX, |n| n as usize),
                log,
                budget,
                drops_total: AtomicU64::new(0),
            }
            .run(queue, paused_rx, cancel.clone())
            .instrument(span),
        );
        UdpHandle {
            id,
            local,
            scope,
            recv_buffer_bytes,
            recv_size,
            peer: None,
            socket,
            name,
            groups: Vec::new(),
            paused,
            sends,
            cancel,
            task,
            slot: None,
        }
    }

    /// Queues a datagram for sending without waiting.
    pub fn send(&self, request: SendRequest) -> Result<(), CommandError> {
        self.sends.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::new(
                socklab_protocol::ErrorCode::LimitExceeded,
                format!(
                    "socket {} already has {SEND_QUEUE} datagrams waiting to be sent; slow down",
                    self.id
                ),
            ),
            mpsc::error::TrySendError::Closed(_) => CommandError::new(
                socklab_protocol::ErrorCode::IoError,
                format!("socket {} has stopped", self.id),
            ),
        })
    }

    /// Joins (or leaves) the multicast group `group` on `interface` (IPv4: one of its
    /// addresses; IPv6: its name or index; None: the kernel's choice). The caller has
    /// checked the group against the policy.
    pub fn membership(
        &mut self,
        group: std::net::IpAddr,
        interface: Option<&str>,
        join: bool,
    ) -> Result<(), CommandError> {
        use std::net::IpAddr;
        if !self.scope.multicast {
            return Err(CommandError::bad_request(format!(
                "socket {} was bound without multicast; bind one with multicast enabled to join groups",
                self.id
            )));
        }
        let (DgramSocket::Udp(socket), Some(local)) = (&*self.socket, self.local.socket_addr())
        else {
            return Err(CommandError::bad_request(format!(
                "socket {} is a Unix socket; only UDP sockets join multicast groups",
                self.id
            )));
        };
        let key = (group, interface.map(str::to_owned));
        let known = self.groups.iter().position(|g| *g == key);
        match (join, known) {
            (true, Some(_)) => {
                return Err(CommandError::bad_request(format!(
                    "socket {} has already joined {group} there",
                    self.id
                )));
            }
            (true, None) if self.groups.len() >= MAX_GROUPS => {
                return Err(CommandError::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "socket {} has joined {MAX_GROUPS} groups, the most a socket may (the kernel's own limit is about that); leave one first",
                        self.id
                    ),
                ));
            }
            (false, None) => {
                return Err(CommandError::bad_request(format!(
                    "socket {} has not joined {group}{}",
                    self.id,
                    interface.map(|i| format!(" on {i}")).unwrap_or_default()
                )));
            }
            _ => {}
        }
        let failed = |e: io::Error| {
            let on = interface.map(|i| format!(" on {i}")).unwrap_or_default();
            match e.raw_os_error() {
                Some(nix::libc::EADDRNOTAVAIL) | Some(nix::libc::ENODEV) => {
                    CommandError::bad_address(format!(
                        "cannot join {group}{on}: no such interface, or it does not carry multicast ({e}); an interface needs the MULTICAST flag and a route for the group (for loopback: ip link set lo multicast on)"
                    ))
                }
                Some(nix::libc::ENOBUFS) => CommandError::new(
                    ErrorCode::LimitExceeded,
                    format!("the kernel refuses more group memberships for this socket ({e})"),
                ),
                _ => CommandError::new(
                    ErrorCode::IoError,
                    format!(
                        "cannot {} {group}{on}: {e}",
                        if join { "join" } else { "leave" }
                    ),
                ),
            }
        };
        match group {
            IpAddr::V4(g) => {
                if !local.is_ipv4() {
                    return Err(CommandError::bad_address(format!(
                        "{g} is an IPv4 group, and socket {} is an IPv6 socket",
                        self.id
                    )));
                }
                let iface = match interface {
                    None => std::net::Ipv4Addr::UNSPECIFIED,
                    Some(text) => text.trim().parse().map_err(|_| {
                        CommandError::bad_address(format!(
                            "{text:?} is not an IPv4 address; an IPv4 group is joined on one of an interface's addresses (or leave it out)"
                        ))
                    })?,
                };
                if join {
                    socket.join_multicast_v4(g, iface)
                } else {
                    socket.leave_multicast_v4(g, iface)
                }
                .map_err(failed)?;
            }
            IpAddr::V6(g) => {
                if local.is_ipv4() {
                    return Err(CommandError::bad_address(format!(
                        "{g} is an IPv6 group, and socket {} is an IPv4 socket",
                        self.id
                    )));
                }
                let index = match interface {
                    None => 0,
                    Some(text) => match text.trim().parse::<u32>() {
                        Ok(index) => index,
                        Err(_) => nix::net::if_::if_nametoindex(text.trim()).map_err(|_| {
                            CommandError::bad_address(format!(
                                "there is no interface {text:?} on this machine"
                            ))
                        })?,
                    },
                };
                if join {
                    socket.join_multicast_v6(&g, index)
                } else {
                    socket.leave_multicast_v6(&g, index)
                }
                .map_err(failed)?;
            }
        }
        match known {
            Some(i) => {
                self.groups.remove(i);
            }
            None => self.groups.push(key),
        }
        Ok(())
    }

    /// Stops or resumes its reading.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Its id and address, as its records name it.
    pub fn name(&self) -> Arc<SocketName> {
        self.name.clone()
    }

    /// Connects the socket to `to` (the caller has checked it against the policy): its
    /// default destination, and the only address it receives from. A UDP connect
    /// sends nothing; it completes at once.
    pub fn connect(&mut self, to: Endpoint) -> Result<(), CommandError> {
        match (&*self.socket, &to) {
            (DgramSocket::Udp(socket), Endpoint::Ip(addr)) => socket2::SockRef::from(socket)
                .connect(&(*addr).into())
                .map_err(|e| CommandError::from_send(&e, *addr))?,
            (DgramSocket::Unix(socket), Endpoint::Unix(_)) => {
                let addr = crate::unix::kernel_addr(&to)
                    .ok_or_else(|| CommandError::bad_address(format!("cannot connect to {to}")))?;
                nix::sys::socket::connect(socket.as_raw_fd(), &addr)
                    .map_err(|e| crate::unix::send_error(&io::Error::from(e), &to))?;
            }
            _ => {
                return Err(CommandError::bad_address(format!(
                    "socket {} is bound to {}, and cannot connect to {to}, an address of another family",
                    self.id, self.local
                )));
            }
        }
        self.peer = Some(to);
        Ok(())
    }

    /// Another way in to the socket's send queue, for a traffic generator (which waits
    /// for room instead of being refused).
    pub fn sender(&self) -> mpsc::Sender<SendRequest> {
        self.sends.clone()
    }

    /// Keeps `slot` (its share of the server's socket limit) until this handle goes.
    pub fn holding(mut self, slot: crate::slots::Slot) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Stops the task and waits until the socket is closed; a Unix socket's file goes
    /// with it (as a program's should: a name left behind refuses the next bind).
    pub async fn close(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(socket = %self.id, error = %e, "socket task failed");
        }
        if let Some(path) = self.local.unix_name().filter(|n| n.starts_with('/')) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The options of a lab UDP socket (`bind`'s fields that apply to it).
#[derive(Debug, Clone, Copy, Default)]
pub struct UdpOptions {
    /// SO_RCVBUF to ask for (None: [`RECV_BUFFER_BYTES`]).
    pub recv_buffer: Option<u64>,
    /// How many bytes of each datagram a receive reads (None: all).
    pub recv_size: Option<u32>,
    /// SO_REUSEADDR.
    pub reuse_addr: bool,
    /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (None: the OS's).
    pub multicast_ttl: Option<u32>,
    /// IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP (None: the OS's).
    pub multicast_loop: Option<bool>,
}

/// Opens the OS socket: nonblocking, a receive buffer of `recv_buffer` bytes (None: a
/// large one), IPv6 sockets IPv6 only, the kernel's drop counter on, SO_REUSEADDR when
/// `reuse_addr`. Returns it with the receive buffer the kernel granted.
pub(crate) fn open(
    addr: SocketAddr,
    recv_buffer: Option<u64>,
    reuse_addr: bool,
) -> io::Result<(UdpSocket, Option<u64>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_addr {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    let asked = recv_buffer.map_or(RECV_BUFFER_BYTES, |b| {
        usize::try_from(b).unwrap_or(usize::MAX)
    });
    if let Err(e) = socket.set_recv_buffer_size(asked) {
        tracing::warn!(error = %e, "cannot set the receive buffer");
    }
    // The kernel then tells, with each datagram received, how many it has dropped at
    // this socket so far (SO_RXQ_OVFL).
    // The kernel's receive time of every datagram: what the task reads later is when it
    // got the CPU, not when the datagram arrived.
    if let Err(e) = setsockopt(&socket, sockopt::ReceiveTimestampns, &true) {
        tracing::debug!(error = %e, "no kernel receive timestamps (SO_TIMESTAMPNS)");
    }
    if let Err(e) = setsockopt(&socket, sockopt::RxqOvfl, &1) {
        tracing::warn!(error = %e, "cannot count kernel drops");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size().ok().map(|b| b as u64);
    Ok((UdpSocket::from_std(socket.into())?, granted))
}

struct SocketTask {
    /// Its id and address, as its datagram records name it.
    name: Arc<SocketName>,
    socket: Arc<DgramSocket>,
    /// How many bytes of each datagram a receive reads.
    read_size: usize,
    log: Arc<EventLog>,
    budget: Arc<SendBudget>,
    /// Datagrams the kernel dropped at this socket so far. The kernel's own counter is
    /// the same number modulo 2^32 (it wraps), so its low 32 bits are the counter as
    /// last seen.
    drops_total: AtomicU64,
}

impl SocketTask {
    async fn run(
        self,
        mut queue: mpsc::Receiver<SendRequest>,
        mut paused: tokio::sync::watch::Receiver<bool>,
        cancel: CancellationToken,
    ) {
        tracing::debug!("socket open");
        let mut received = Vec::with_capacity(RECV_BATCH * RECV_CALLS);
        // The socket's inode, its key in the kernel's socket table (a Unix datagram
        // socket drops nothing: its sender waits).
        let inode = match &*self.socket {
            DgramSocket::Udp(socket) => socket_inode(socket),
            DgramSocket::Unix(_) => None,
        };
        // When to read the drop counter from that table (after a quiet spell).
        let mut settle_at = None;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                request = queue.recv() => match request {
                    Some(request) => self.send(request, &cancel).await,
                    None => break,
                },
                changed = paused.changed() => if changed.is_err() {
                    // The handle is gone, and the socket with it.
                    break;
                },
                ready = self.socket.readable(), if !*paused.borrow() => {
                    if let Err(e) = ready {
                        tracing::warn!(error = %e, "socket no longer readable");
                        break;
                    }
                    if self.drain(&mut received) > 0 && inode.is_some() {
                        settle_at = Some(tokio::time::Instant::now() + SETTLE_DROPS_AFTER);
                    }
                }
                ready = self.socket.ready(Interest::ERROR) => {
                    if let Err(e) = ready {
                        tracing::warn!(error = %e, "socket no longer reports errors");
                        break;
                    }
                    self.drain_errors(&mut received);
                }
                () = crate::timer::sleep_until(settle_at) => {
                    settle_at = None;
                    let counter = inode
                        .zip(self.name.local.socket_addr())
                        .and_then(|(inode, local)| kernel_drop_counter(local, inode));
                    if let Some(counter) = counter {
                        self.note_drops(counter, &mut received);
                        self.log.append_all(received.drain(..));
                    }
                }
            }
        }
        tracing::debug!("socket closed");
    }

    /// Sends one datagram and logs it. The send happens under the log's lock so that the
    /// `out` event precedes the `in` of any lab socket that receives it.
    async fn send(&self, request: SendRequest, cancel: &CancellationToken) {
        let SendRequest {
            to,
            payload,
            req,
            reply,
        } = request;
        if let Err(refused) = self.budget.take(payload.len()) {
            return answer(&reply, req, refused);
        }
        let mut payload = Some(payload);
        let mut unix_wait = UNIX_WAIT_MIN;
        loop {
            let attempt = self.log.append_with(|| {
                // The send's time is taken just before the syscall: on loopback the
                // receiver has the datagram (and its kernel timestamp) before the call
                // returns, so a time read after it could come after the arrival.
                let at = Instant::now();
                self.socket
                    .try_send_to(payload.as_deref().unwrap_or_default(), &to)?;
                Ok::<_, io::Error>((
                    at,
                    Record::Datagram(DatagramRecord {
                        socket: self.name.clone(),
                        dir: Direction::Out,
                        peer: to.clone().into(),
                        payload: payload.take().unwrap_or_default().into_boxed_slice(),
                        req,
                        truncated_from: None,
                    }),
                ))
            });
            match attempt {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let DgramSocket::Unix(_) = &*self.socket {
                        // The receiver's queue is full (net.unix.max_dgram_qlen): a Unix
                        // datagram is never dropped, its sender waits, as a blocking
                        // sendto would. The kernel does not say when the receiver
                        // has room to a socket that is not connected to it, so look
                        // again after a while.
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(unix_wait) => {}
                        }
                        unix_wait = (unix_wait * 2).min(UNIX_WAIT_MAX);
                    } else if let Err(e) = self.socket.writable().await {
                        // The send buffer is full: wait for room, outside the log's lock.
                        self.refuse(&reply, req, &e, &to);
                        return;
                    }
                }
                Err(e) => {
                    self.refuse(&reply, req, &e, &to);
                    return;
                }
            }
        }
    }

    fn refuse(&self, reply: &ReplyTo, req: Option<Tagged>, err: &io::Error, to: &Endpoint) {
        tracing::debug!(error = %err, %to, "send failed");
        let refusal = match to {
            Endpoint::Ip(addr) => CommandError::from_send(err, *addr),
            Endpoint::Unix(_) => crate::unix::send_error(err, to),
        };
        answer(reply, req, refusal);
    }

    /// Receives the datagrams that are ready (up to [`RECV_CALLS`] batches) and logs them
    /// together; returns how many.
    fn drain(&self, received: &mut Vec<(Instant, Record)>) -> usize {
        let mut datagrams = 0;
        for _ in 0..RECV_CALLS {
            let mut counter = None;
            let mut each = |at, peer: Endpoint, bytes: &[u8], len: usize| {
                received.push((
                    at,
                    Record::Datagram(DatagramRecord {
                        socket: self.name.clone(),
                        dir: Direction::In,
                        peer: peer.into(),
                        payload: Box::from(bytes),
                        req: None,
                        // A UDP datagram is at most 65,535 bytes long, a Unix one at
                        // most its sender's send buffer (a few hundred KiB).
                        truncated_from: (len > bytes.len()).then_some(len as u32),
                    }),
                ));
            };
            let (fd, read_size) = (self.socket.raw_fd(), self.read_size);
            let got = self
                .socket
                .try_io(Interest::READABLE, || match &*self.socket {
                    DgramSocket::Udp(_) => recv_batch_with(
                        fd,
                        read_size,
                        &mut counter,
                        |a: &SockaddrStorage| to_socket_addr(a).map(Endpoint::Ip),
                        &mut each,
                    ),
                    DgramSocket::Unix(_) => recv_batch_with(
                        fd,
                        read_size,
                        &mut counter,
                        |a: &nix::sys::socket::UnixAddr| Some(crate::unix::endpoint_of(a)),
                        &mut each,
                    ),
                });
            if let Some(counter) = counter {
                self.note_drops(counter, received);
            }
            match got {
                Ok(n) => {
                    datagrams += n;
                    if n < RECV_BATCH {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors reported on the socket (port unreachable after an earlier
                // send) must not stop it from receiving.
                Err(e) => {
                    tracing::debug!(error = %e, "receive error");
                    break;
                }
            }
        }
        if !received.is_empty() {
            self.log.append_all(received.drain(..));
        }
        datagrams
    }

    /// Reads the ICMP errors in the socket's error queue (at most [`ERRORS_PER_WAKE`])
    /// and logs each as an `unreachable` record.
    fn drain_errors(&self, received: &mut Vec<(Instant, Record)>) {
        for _ in 0..ERRORS_PER_WAKE {
            let got = self.socket.try_io(Interest::ERROR, || {
                recv_error(self.socket.raw_fd()).map(|report| {
                    let (at, record) = report.into_record(self.name.clone());
                    received.push((at, record));
                })
            });
            match got {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the error queue");
                    break;
                }
            }
        }
        if !received.is_empty() {
            self.log.append_all(received.drain(..));
        }
    }

    /// Logs a `kernel_drops` record when the kernel's drop counter moved.
    fn note_drops(&self, counter: u32, received: &mut Vec<(Instant, Record)>) {
        // Only this task touches the total; an atomic keeps the task's future `Send`.
        let total = self.drops_total.load(Ordering::Relaxed);
        let dropped = counter.wrapping_sub(total as u32);
        // The counter only grows, but a datagram carries it as it was when the datagram
        // was queued: one queued before the socket table was last read can carry a
        // smaller count, which wraps to more than half the range here and is stale.
        if dropped > 0 && dropped < 1 << 31 {
            let dropped = u64::from(dropped);
            self.drops_total.store(total + dropped, Ordering::Relaxed);
            tracing::debug!(dropped, "the kernel dropped datagrams: receive buffer full");
            received.push((
                Instant::now(),
                Record::KernelDrops {
                    socket: self.name.clone(),
                    dropped,
                    total: total + dropped,
                },
            ));
        }
    }
}

/// The inode of `socket`'s descriptor (what the kernel's socket tables list it by).
fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .map(|m| m.ino())
        .inspect_err(|e| tracing::debug!(error = %e, "cannot find the socket's inode"))
        .ok()
}

/// Each socket's drop counter by inode, as read from one of the kernel's tables.
type DropTable = std::collections::HashMap<u64, u32>;

/// How long a reading of the kernel's UDP tables serves every socket that asks: many
/// sockets going quiet together (a session's generators stopping) then cost one read
/// of the table, not one each (the kernel writes a line per socket on the machine).
const TABLE_FRESH: std::time::Duration = std::time::Duration::from_millis(20);

/// A reading of a table, with when it was taken.
type Reading = (Instant, Arc<DropTable>);

/// The latest reading of /proc/net/udp and of /proc/net/udp6.
static TABLES: std::sync::Mutex<[Option<Reading>; 2]> = std::sync::Mutex::new([None, None]);

/// The kernel's drop counter of the UDP socket with this inode, from the `drops` column
/// of /proc/net/udp (or udp6 for an IPv6 `local`), read afresh unless a reading less
/// than [`TABLE_FRESH`] old is at hand.
fn kernel_drop_counter(local: SocketAddr, inode: u64) -> Option<u32> {
    let (family, path) = if local.is_ipv4() {
        (0, "/proc/net/udp")
    } else {
        (1, "/proc/net/udp6")
    };
    let mut tables = TABLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let table = match &tables[family] {
        Some((at, table)) if at.elapsed() < TABLE_FRESH => table.clone(),
        _ => {
            let table = Arc::new(drop_table(&std::fs::read_to_string(path).ok()?));
            tables[family] = Some((Instant::now(), table.clone()));
            table
        }
    };
    table.get(&inode).copied()
}

/// A table's text read: the inode is the tenth column, the drops the last.
fn drop_table(text: &str) -> DropTable {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let inode = fields.clone().nth(9)?.parse().ok()?;
            let drops = fields.next_back()?.parse::<u64>().ok()?;
            // The kernel's counter is 32 bits wide, like the one datagrams carry.
            Some((inode, drops as u32))
        })
        .collect()
}

thread_local! {
    /// One buffer per datagram of a batch, each big enough for the largest, kept per
    /// thread: a batch is received and copied out without ever waiting. Pages are only
    /// touched where datagrams land.
    static BUFFERS: RefCell<Vec<u8>> = RefCell::new(vec![0; RECV_BATCH * RECV_DATAGRAM_MAX]);
}

/// Receives up to [`RECV_BATCH`] datagrams with one `recvmmsg` call and hands each to
/// `each` with the kernel's time of its arrival (SO_TIMESTAMPNS; the time the call
/// returned when the socket has no stamps), its first `read_size` bytes at most and
/// its whole length (MSG_TRUNC: a longer datagram's rest is gone, as with
/// `recvfrom(bufsize)`); returns how many, and sets `drops` to the kernel's drop
/// counter as the last of them carried it. Never waits: `WouldBlock` when none is ready.
pub(crate) fn recv_batch(
    socket: &UdpSocket,
    read_size: usize,
    drops: &mut Option<u32>,
    each: impl FnMut(Instant, SocketAddr, &[u8], usize),
) -> io::Result<usize> {
    recv_batch_with(socket.as_raw_fd(), read_size, drops, to_socket_addr, each)
}

/// [`recv_batch`] on any datagram socket, its senders' addresses read by `peer_of`
/// (datagrams whose sender it cannot read are skipped).
///
/// `S` is the kind of address the socket's senders have: `SockaddrStorage` for IP,
/// `UnixAddr` for Unix (nix sets a Unix address's length only in a `UnixAddr`: in a
/// `SockaddrStorage` it would stay unset, and no sender could be read).
fn recv_batch_with<S: nix::sys::socket::SockaddrLike + Copy, P>(
    fd: std::os::fd::RawFd,
    read_size: usize,
    drops: &mut Option<u32>,
    peer_of: impl Fn(&S) -> Option<P>,
    mut each: impl FnMut(Instant, P, &[u8], usize),
) -> io::Result<usize> {
    let read_size = read_size.clamp(1, RECV_DATAGRAM_MAX);
    // Fresh headers for every call: the kernel shortens each header's address and
    // control lengths to what it filled in, and nix does not restore them.
    let mut headers = MultiHeaders::<S>::preallocate(
        RECV_BATCH,
        Some(nix::cmsg_space!(u32, nix::sys::time::TimeSpec)),
    );
    BUFFERS.with_borrow_mut(|buffers| {
        // Each datagram's sender and length, read while the buffers are lent to the
        // call; the bytes are handed out after.
        let mut got: [(Option<P>, usize, Option<nix::sys::time::TimeSpec>); RECV_BATCH] =
            std::array::from_fn(|_| (None, 0, None));
        let count = {
            let mut chunks = buffers.chunks_mut(RECV_DATAGRAM_MAX);
            let mut slots: [[IoSliceMut<'_>; 1]; RECV_BATCH] = std::array::from_fn(|_| {
                let chunk = chunks.next().expect("one buffer per slot");
                [IoSliceMut::new(&mut chunk[..read_size])]
            });
            let results = recvmmsg(
                fd,
                &mut headers,
                slots.iter_mut(),
                // With MSG_TRUNC the kernel reports each datagram's whole length.
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
                None,
            )
            .map_err(io::Error::from)?;
            let mut count = 0;
            for (m, slot) in results.zip(got.iter_mut()) {
                let mut stamp = None;
                if let Ok(cmsgs) = m.cmsgs() {
                    for cmsg in cmsgs {
                        match cmsg {
                            ControlMessageOwned::RxqOvfl(n) => *drops = Some(n),
                            ControlMessageOwned::ScmTimestampns(ts) => stamp = Some(ts),
                            _ => {}
                        }
                    }
                }
                *slot = (m.address.as_ref().and_then(&peer_of), m.bytes, stamp);
                count += 1;
            }
            count
        };
        let clocks = Clocks::now();
        for (i, (peer, len, stamp)) in got[..count].iter_mut().enumerate() {
            if let Some(peer) = peer.take() {
                let start = i * RECV_DATAGRAM_MAX;
                let at = stamp.map_or(clocks.mono, |ts| clocks.at(ts));
                each(
                    at,
                    peer,
                    &buffers[start..start + (*len).min(read_size)],
                    *len,
                );
            }
        }
        Ok(count)
    })
}

/// One ICMP error from a socket's error queue.
struct ErrorReport {
    at: Instant,
    to: SocketAddr,
    errno: i32,
    origin_icmp6: bool,
    icmp: (u8, u8),
    reporter: Option<std::net::IpAddr>,
    quoted: Vec<u8>,
}

impl ErrorReport {
    fn into_record(self, socket: Arc<SocketName>) -> (Instant, Record) {
        use socklab_protocol::UnreachableReason as R;
        let reason = match (self.origin_icmp6, self.icmp) {
            (false, (3, 3)) | (true, (1, 4)) => R::PortUnreachable,
            (false, (3, 1)) | (true, (1, 3)) => R::HostUnreachable,
            (false, (3, 0)) | (true, (1, 0)) => R::NetUnreachable,
            (false, (3, 9 | 10 | 13)) | (true, (1, 1)) => R::Prohibited,
            (false, (3, 4)) | (true, (2, _)) => R::TooBig,
            _ => R::Other,
        };
        (
            self.at,
            Record::Unreachable(Box::new(crate::log::UnreachableRecord {
                socket,
                to: self.to,
                reason,
                icmp: self.icmp,
                reporter: self.reporter,
                errno: self.errno,
                payload: self.quoted.into_boxed_slice(),
            })),
        )
    }
}

/// Reads one report from the socket's error queue (MSG_ERRQUEUE): the original
/// destination in the address, the quoted start of the datagram as data, and the
/// ICMP error's type, code and sender in a control message. `WouldBlock` when the
/// queue is empty; reports that are not ICMP errors are read and skipped.
fn recv_error(fd: std::os::fd::RawFd) -> io::Result<ErrorReport> {
    use nix::sys::socket::recvmsg;
    loop {
        let mut data = [0u8; ERROR_QUOTE_MAX];
        let mut cmsg = nix::cmsg_space!(
            nix::libc::sock_extended_err,
            nix::libc::sockaddr_in6,
            nix::sys::time::TimeSpec
        );
        let mut iov = [IoSliceMut::new(&mut data)];
        let msg = recvmsg::<SockaddrStorage>(
            fd,
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let (len, to) = (msg.bytes, msg.address.as_ref().and_then(to_socket_addr));
        let (mut stamp, mut error) = (None, None);
        for c in msg.cmsgs().into_iter().flatten() {
            match c {
                ControlMessageOwned::ScmTimestampns(ts) => stamp = Some(ts),
                ControlMessageOwned::Ipv4RecvErr(e, from) => {
                    let reporter = from.map(|a| {
                        std::net::IpAddr::from(std::net::Ipv4Addr::from(u32::from_be(
                            a.sin_addr.s_addr,
                        )))
                    });
                    error = Some((e, false, reporter));
                }
                ControlMessageOwned::Ipv6RecvErr(e, from) => {
                    let reporter = from.map(|a| {
                        std::net::IpAddr::from(std::net::Ipv6Addr::from(a.sin6_addr.s6_addr))
                    });
                    error = Some((e, true, reporter));
                }
                _ => {}
            }
        }
        let Some((e, icmp6, reporter)) = error else {
            continue;
        };
        let icmp_origin = if icmp6 {
            nix::libc::SO_EE_ORIGIN_ICMP6
        } else {
            nix::libc::SO_EE_ORIGIN_ICMP
        };
        let Some(to) = to.filter(|_| e.ee_origin == icmp_origin) else {
            continue;
        };
        let clocks = Clocks::now();
        return Ok(ErrorReport {
            at: stamp.map_or(clocks.mono, |ts| clocks.at(ts)),
            to,
            errno: e.ee_errno as i32,
            origin_icmp6: icmp6,
            icmp: (e.ee_type, e.ee_code),
            reporter,
            quoted: data[..len.min(ERROR_QUOTE_MAX)].to_vec(),
        });
    }
}

/// The two clocks read together: the kernel stamps datagrams on the real-time clock,
/// the log counts on the monotonic one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clocks {
    /// The monotonic clock.
    pub mono: Instant,
    /// The real-time clock, nanoseconds since the Unix epoch.
    real_ns: i128,
}

impl Clocks {
    /// Both clocks, now: the monotonic clock read between two reads of the real-time
    /// clock, and paired with their midpoint. A task preempted between two reads would
    /// otherwise pair clocks read far apart, and every stamp converted with them would
    /// be off by the preemption (an arrival before its own send); so the tightest of a
    /// few tries is kept, and the pairing is off by at most half its gap.
    pub fn now() -> Self {
        let real = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128)
        };
        let mut best: Option<(i128, Clocks)> = None;
        for _ in 0..CLOCK_PAIR_TRIES {
            let before = real();
            let mono = Instant::now();
            let after = real();
            let gap = after - before;
            let pair = Clocks {
                mono,
                real_ns: before + gap / 2,
            };
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, pair));
            }
            if gap <= CLOCK_PAIR_GOOD_NS {
                break;
            }
        }
        best.map(|(_, pair)| pair).expect("at least one try")
    }

    /// The monotonic time of a kernel timestamp taken a moment ago: now less its age.
    /// A stamp from the future (the real-time clock was stepped back meanwhile) or from
    /// too long ago to be true counts as now.
    pub fn at(&self, stamp: nix::sys::time::TimeSpec) -> Instant {
        let stamp_ns = i128::from(stamp.tv_sec()) * 1_000_000_000 + i128::from(stamp.tv_nsec());
        let age = self.real_ns - stamp_ns;
        if !(0..=MAX_STAMP_AGE_NS).contains(&age) {
            return self.mono;
        }
        self.mono
            .checked_sub(std::time::Duration::from_nanos(age as u64))
            .unwrap_or(self.mono)
    }
}

/// How many times [`Clocks::now`] tries for a tight pair.
const CLOCK_PAIR_TRIES: usize = 4;
/// A pair read within this is tight enough (a few clock reads take well under it).
const CLOCK_PAIR_GOOD_NS: i128 = 1_000;

/// The oldest a kernel receive timestamp is believed (a datagram waits in the receive
/// buffer at most this long before the task reads it, or the clock was stepped).
const MAX_STAMP_AGE_NS: i128 = 10_000_000_000;

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    a.as_sockaddr_in()
        .map(|a| SocketAddr::from(*a))
        .or_else(|| a.as_sockaddr_in6().map(|a| SocketAddr::from(*a)))
}

/// Refuses a payload longer than the largest datagram to `to` can carry.
pub fn check_size(len: usize, to: &Endpoint) -> Result<(), CommandError> {
    if to.is_unix() {
        if len > limits::MAX_UNIX_PAYLOAD {
            return Err(CommandError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the payload is {len} bytes; the lab's limit for a Unix datagram is {}",
                    limits::MAX_UNIX_PAYLOAD
                ),
            ));
        }
        return Ok(());
    }
    let max = limits::max_udp_payload(to.is_ipv6());
    if len > max {
        return Err(CommandError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "UDP payload is {len} bytes; the {} limit is {max}",
                if to.is_ipv6() { "IPv6" } else { "IPv4" }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_counter_is_read_from_the_socket_table_by_inode() {
        let table = "\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
11027: 0100007F:E340 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 928301 2 000000008a1a664a 0
11028: 0100007F:E341 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 928302 2 000000008a1a664b 4294967297
";
        let table = drop_table(table);
        assert_eq!(table.get(&928301), Some(&0));
        // Cut to 32 bits, as the counter datagrams carry.
        assert_eq!(table.get(&928302), Some(&1));
        assert_eq!(table.get(&11027), None);
        assert_eq!(table.len(), 2);
        assert!(drop_table("").is_empty());
    }

    #[tokio::test]
    async fn a_real_socket_is_found_in_the_kernel_table() {
        let sockets: Vec<UdpSocket> = ["127.0.0.1:0", "[::1]:0"]
            .iter()
            .map(|addr| open(addr.parse().unwrap(), None, false).unwrap().0)
            .collect();
        // Any reading of the tables from before the sockets existed has gone stale.
        tokio::time::sleep(TABLE_FRESH).await;
        for socket in &sockets {
            let inode = socket_inode(socket).expect("an inode");
            let local = socket.local_addr().unwrap();
            assert_eq!(kernel_drop_counter(local, inode), Some(0), "{local}");
        }
    }
}
