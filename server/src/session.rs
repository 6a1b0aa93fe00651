//! One browser session: it owns its sockets and its event log, carries out the
//! commands its viewer sends, and streams the log to the viewer in batches.
//!
//! In this version a session lives as long as its WebSocket: when the viewer goes, the
//! session closes its sockets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use socklab_protocol::fast;
use socklab_protocol::flow::GeneratorSpec;
use socklab_protocol::link::{LinkId, LinkSettings};
use socklab_protocol::payload::encode_base64;
use socklab_protocol::{
    AnalysisConfig, Bound, Closed, Command, Datagram, ErrorCode, ErrorEvent, Event, EventId, Gap,
    GeneratorDone, GeneratorStarted, Hello, KernelDrops, LinkClient, LinkCreated, LinkDeleted,
    LinkPacket, LinkStats, LinkUpdated, Proto, Request, SocketId, decode_request, limits,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::Config;
use crate::error::CommandError;
use crate::generator::{self, GeneratorHandle, Plan};
use crate::link::LinkHandle;
use crate::log::{EventLog, LinkCreation, Record, Tagged};
use crate::policy::{AddressPolicy, SocketScope, parse_addr};
use crate::timer::sleep_until;
use crate::udp::{ReplyTo, SendRequest, UdpHandle};

/// The most events one frame carries.
pub const MAX_BATCH: usize = 512;
/// The longest the server waits to send a viewer its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// A frame stops taking events once it is this long (it always carries at least one).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// The least time between two frames of events while events keep coming, by default
/// (`--flush-interval-us`): none. Events go out as soon as they are logged; while a frame
/// is being written, the next events gather and go out together in the next one, so
/// batches grow with the load by themselves. (A 2 ms window cost every event 1 to 3 ms
/// of latency and spared a browser taking in 150,000 events a second only 8 % of its
/// ingest time; see docs/benchmarks.md.)
pub const FLUSH_INTERVAL: Duration = Duration::ZERO;

/// A session's state: its sockets and its log.
#[derive(Debug)]
pub struct Session {
    id: String,
    log: Arc<EventLog>,
    sockets: BTreeMap<SocketId, UdpHandle>,
    next_socket: u64,
    links: BTreeMap<LinkId, LinkHandle>,
    next_link: u64,
    generators: BTreeMap<String, GeneratorHandle>,
    next_generator: u64,
    /// The flow analysis' loss timeout, ms (its task watches it).
    loss_timeout_ms: tokio::sync::watch::Sender<u64>,
    policy: AddressPolicy,
    config: Arc<Config>,
    /// What the session's sockets may send per second.
    budget: Arc<crate::budget::SendBudget>,
    /// What its links may hold and forward.
    link_limits: crate::link::LinkLimits,
    /// The server-wide socket slots (each socket and link holds its own).
    slots: Arc<crate::slots::SocketSlots>,
    /// Cancelled when the server shuts down; socket tasks hang off it.
    cancel: CancellationToken,
}

impl Session {
    /// A new, empty session, with its flow analysis running (on the current runtime).
    pub fn new(
        config: Arc<Config>,
        link_addrs: Arc<crate::link::LinkAddrs>,
        slots: Arc<crate::slots::SocketSlots>,
        cancel: CancellationToken,
    ) -> Self {
        let log = Arc::new(EventLog::new(config.log_max_events, config.log_max_bytes));
        let (loss_timeout_ms, timeout_rx) = tokio::sync::watch::channel(config.loss_timeout_ms);
        tokio::spawn(crate::analysis::run(
            log.clone(),
            timeout_rx,
            socklab_analysis::Limits {
                max_in_flight: config.max_in_flight,
                max_flows: config.max_flows,
                max_finished: config.max_finished,
                ..socklab_analysis::Limits::default()
            },
            cancel.child_token(),
        ));
        Session {
            id: format!("{:016x}", rand::random::<u64>()),
            log,
            sockets: BTreeMap::new(),
            next_socket: 1,
            links: BTreeMap::new(),
            next_link: 1,
            generators: BTreeMap::new(),
            next_generator: 1,
            loss_timeout_ms,
            budget: Arc::new(crate::budget::SendBudget::new(
                config.max_datagrams_per_sec,
                config.max_bytes_per_sec,
            )),
            link_limits: crate::link::LinkLimits {
                max_bytes: config.max_link_bytes,
                forwarding: Arc::new(crate::budget::SendBudget::new(
                    config.max_forwarded_per_sec,
                    config.max_bytes_per_sec,
                )),
                addrs: link_addrs,
            },
            slots,
            policy: AddressPolicy::new(config.allow_net.clone())
                .allow_privileged_ports(config.allow_privileged_ports)
                .deny_ports(config.deny_ports.clone()),
            config,
            cancel,
        }
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's log.
    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    /// Carries out one command. Success shows up in the log; a refusal is returned.
    /// Failures that happen later (a send the OS refuses) go to `reply`.
    /// `viewer` is the number of the viewer that sent it (its `req` goes back to it alone).
    pub async fn handle(
        &mut self,
        request: Request,
        reply: &ReplyTo,
        viewer: u64,
    ) -> Result<(), CommandError> {
        let req = request
            .req
            .zip(std::num::NonZeroU64::new(viewer))
            .map(|(req, viewer)| Tagged { viewer, req });
        match request.command {
            Command::Bind {
                proto,
                addr,
                broadcast,
                multicast,
                recv_buffer_bytes,
            } => self.bind(
                proto,
                &addr,
                SocketScope {
                    broadcast,
                    multicast,
                },
                recv_buffer_bytes,
                req,
            ),
            Command::Close { socket } => self.close(socket, req).await,
            Command::Send {
                socket,
                to,
                payload,
            } => {
                let (handle, to) = self.destination(&socket, &to)?;
                let payload = payload
                    .decode()
                    .map_err(|e| CommandError::bad_request(e.to_string()))?;
                check_size(payload.len(), to)?;
                handle.send(SendRequest {
                    to,
                    payload,
                    req,
                    reply: reply.clone(),
                })
            }
            Command::LinkCreate {
                listen,
                target,
                settings,
            } => self.create_link(&listen, &target, settings, req),
            Command::LinkUpdate { link, settings } => {
                let handle = self.links.get(&link).ok_or_else(|| unknown_link(&link))?;
                check_settings(&settings)?;
                // The seed is fixed at creation; what is logged is what is in force.
                let settings = LinkSettings {
                    seed: handle.seed,
                    ..settings
                };
                handle.update(settings);
                self.log.append(
                    Instant::now(),
                    Record::LinkUpdated {
                        link,
                        settings: Box::new(settings),
                        req,
                    },
                );
                Ok(())
            }
            Command::Generate(spec) => self.generate(spec, req),
            Command::GenerateStop { generator } => {
                let handle = self
                    .generators
                    .remove(&generator)
                    .ok_or_else(|| unknown_generator(&generator))?;
                let Some(sent) = handle.stop().await else {
                    return Err(CommandError::new(
                        ErrorCode::UnknownGenerator,
                        format!("generator {generator} had already finished"),
                    ));
                };
                self.log.append(
                    Instant::now(),
                    Record::GeneratorDone(Box::new(crate::log::GeneratorDoneRecord {
                        generator,
                        sent,
                        stopped: true,
                        error: None,
                        req,
                    })),
                );
                Ok(())
            }
            Command::SetLossTimeout { ms } => {
                if !(1..=MAX_LOSS_TIMEOUT_MS).contains(&ms) {
                    return Err(CommandError::bad_request(format!(
                        "the loss timeout must be from 1 to {MAX_LOSS_TIMEOUT_MS} ms, not {ms}"
                    )));
                }
                self.loss_timeout_ms.send_replace(ms);
                self.log.append(
                    Instant::now(),
                    Record::AnalysisConfig {
                        loss_timeout_ms: ms,
                        req,
                    },
                );
                Ok(())
            }
            Command::LinkDelete { link } => {
                let handle = self
                    .links
                    .remove(&link)
                    .ok_or_else(|| unknown_link(&link))?;
                handle.close().await;
                tracing::info!(%link, "link deleted");
                self.log
                    .append(Instant::now(), Record::LinkDeleted { link, req });
                Ok(())
            }
        }
    }

    fn create_link(
        &mut self,
        listen: &str,
        target: &str,
        settings: LinkSettings,
        req: Option<Tagged>,
    ) -> Result<(), CommandError> {
        let listen = parse_addr(listen)?;
        let target = parse_addr(target)?;
        self.policy.check_bind(listen)?;
        // A link forwards to one address; it is never a broadcast or multicast sender.
        self.policy
            .check_destination(target, SocketScope::default())?;
        if !listen.ip().to_canonical().is_loopback()
            && target.ip().to_canonical().is_loopback()
            && !self.config.allow_link_into_loopback
        {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "a link listening on {listen} can be reached from the network, and its target {target} is a loopback service: the link would open that service to the network (start socklab with --allow-link-into-loopback to allow this)"
                ),
            ));
        }
        check_settings(&settings)?;
        if self.links.len() >= self.config.max_links_per_session {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this session already has {} links, the most allowed (--max-links-per-session); delete one first",
                    self.links.len()
                ),
            ));
        }
        let id = LinkId::new(format!("l{}", self.next_link));
        let slot = self.slots.take(2)?;
        let handle = LinkHandle::create(
            id.clone(),
            listen,
            target,
            settings,
            self.log.clone(),
            self.link_limits.clone(),
            &self.cancel,
        )?;
        self.next_link += 1;
        tracing::info!(link = %id, listen = %handle.listen, %target, "link created");
        self.log.append(
            Instant::now(),
            Record::LinkCreated(Box::new(LinkCreation {
                link: id.clone(),
                listen: handle.listen,
                upstream: handle.upstream,
                target,
                settings,
                req,
            })),
        );
        self.links.insert(id, handle.holding(slot));
        Ok(())
    }

    fn socket(&self, id: &SocketId) -> Result<&UdpHandle, CommandError> {
        self.sockets.get(id).ok_or_else(|| unknown_socket(id))
    }

    /// The socket `id` and the address `to` it may send to (policy and family checked).
    fn destination(
        &self,
        id: &SocketId,
        to: &str,
    ) -> Result<(&UdpHandle, std::net::SocketAddr), CommandError> {
        let handle = self.socket(id)?;
        let to = parse_addr(to)?;
        self.policy.check_destination(to, handle.scope)?;
        if to.is_ipv4() != handle.local.is_ipv4() {
            return Err(CommandError::bad_address(format!(
                "socket {id} is bound to {}, an {} address, and cannot send to {to}; bind a socket of the same family",
                handle.local,
                if handle.local.is_ipv4() {
                    "IPv4"
                } else {
                    "IPv6"
                },
            )));
        }
        Ok((handle, to))
    }

    fn generate(&mut self, spec: GeneratorSpec, req: Option<Tagged>) -> Result<(), CommandError> {
        let (handle, to) = self.destination(&spec.socket, &spec.to)?;
        let sends = handle.sender();
        let pace = generator::Pace::check(&spec)?;
        let header = if spec.sequence {
            socklab_analysis::seqhdr::LEN
        } else {
            0
        };
        // The size is checked before anything is allocated for it.
        let body = match &spec.pattern {
            Some(pattern) => pattern
                .decode()
                .map_err(|e| CommandError::bad_request(e.to_string()))?,
            None => {
                check_size(spec.size, to)?;
                let Some(body_len) = spec.size.checked_sub(header) else {
                    return Err(CommandError::bad_request(format!(
                        "with the sequence header a payload has at least {header} bytes, not {}",
                        spec.size
                    )));
                };
                vec![0; body_len]
            }
        };
        check_size(header.saturating_add(body.len()), to)?;
        let (rate, count) = (pace.rate, pace.count);
        self.budget.fits(rate, header + body.len())?;
        self.generators.retain(|_, g| !g.is_finished());
        if self.generators.len() >= generator::MAX_RUNNING {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "{} generators are already running in this session, the most allowed; stop one first",
                    self.generators.len()
                ),
            ));
        }
        let number = self.next_generator;
        self.next_generator += 1;
        let id = format!("g{number}");
        let seq_flow = spec.sequence.then_some(number as u32);
        let plan = Plan {
            id: id.clone(),
            socket: spec.socket.clone(),
            sends,
            to,
            count,
            interval: pace.interval,
            body,
            seq_flow,
        };
        self.log.append(
            Instant::now(),
            Record::GeneratorStarted(Box::new(crate::log::GeneratorStartedRecord {
                generator: id.clone(),
                socket: spec.socket,
                to,
                count,
                rate,
                seq_flow,
                req,
            })),
        );
        let handle = GeneratorHandle::start(plan, self.log.clone(), &self.cancel);
        self.generators.insert(id, handle);
        Ok(())
    }

    fn bind(
        &mut self,
        proto: Proto,
        addr: &str,
        scope: SocketScope,
        recv_buffer: Option<u64>,
        req: Option<Tagged>,
    ) -> Result<(), CommandError> {
        let addr = parse_addr(addr)?;
        if let Some(bytes) = recv_buffer
            && !(1..=limits::MAX_RECV_BUFFER_BYTES).contains(&bytes)
        {
            return Err(CommandError::bad_request(format!(
                "recv_buffer_bytes is {bytes}; give 1 to {} bytes (the kernel rounds it to what it allows)",
                limits::MAX_RECV_BUFFER_BYTES
            )));
        }
        self.policy.check_bind(addr)?;
        if self.sockets.len() >= self.config.max_sockets_per_session {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this session already has {} sockets open, the most allowed (--max-sockets-per-session); close one first",
                    self.sockets.len()
                ),
            ));
        }
        let id = SocketId::new(format!("s{}", self.next_socket));
        let slot = self.slots.take(1)?;
        let handle = match proto {
            Proto::Udp => UdpHandle::bind(
                id.clone(),
                addr,
                scope,
                recv_buffer,
                self.log.clone(),
                self.budget.clone(),
                &self.cancel,
            )?,
        };
        self.next_socket += 1;
        tracing::info!(socket = %id, local = %handle.local, "bound");
        self.log.append(
            Instant::now(),
            Record::Bound(Box::new(crate::log::BoundRecord {
                socket: id.clone(),
                proto,
                local: handle.local,
                recv_buffer_bytes: handle.recv_buffer_bytes,
                req,
            })),
        );
        self.sockets.insert(id, handle.holding(slot));
        Ok(())
    }

    async fn close(&mut self, id: SocketId, req: Option<Tagged>) -> Result<(), CommandError> {
        let handle = self
            .sockets
            .remove(&id)
            .ok_or_else(|| unknown_socket(&id))?;
        handle.close().await;
        tracing::info!(socket = %id, "closed");
        self.log
            .append(Instant::now(), Record::Closed { socket: id, req });
        Ok(())
    }

    /// Stops every generator, closes every socket and link, and waits until they are
    /// closed.
    pub async fn close_all(&mut self) {
        for (_, handle) in std::mem::take(&mut self.generators) {
            handle.stop().await;
        }
        for (_, handle) in std::mem::take(&mut self.links) {
            handle.close().await;
        }
        for (_, handle) in std::mem::take(&mut self.sockets) {
            handle.close().await;
        }
    }
}

/// The longest loss timeout a session may set, ms.
pub const MAX_LOSS_TIMEOUT_MS: u64 = 600_000;

fn check_size(len: usize, to: std::net::SocketAddr) -> Result<(), CommandError> {
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

fn unknown_generator(id: &str) -> CommandError {
    CommandError::new(
        ErrorCode::UnknownGenerator,
        format!("there is no running generator {id} in this session"),
    )
}

fn check_settings(settings: &LinkSettings) -> Result<(), CommandError> {
    settings.validate().map_err(CommandError::bad_request)
}

fn unknown_link(id: &LinkId) -> CommandError {
    CommandError::new(
        ErrorCode::UnknownLink,
        format!("there is no link {id} in this session; it may have been deleted"),
    )
}

fn unknown_socket(id: &SocketId) -> CommandError {
    CommandError::new(
        ErrorCode::UnknownSocket,
        format!("there is no socket {id} in this session; it may have been closed"),
    )
}

/// Appends a logged event's JSON for `viewer`: datagrams (most of any session) through
/// the protocol's direct writer, everything else through its event.
fn write_event(out: &mut String, entry: &crate::log::Entry, viewer: u64) {
    match &entry.record {
        Record::Datagram(d) => fast::DatagramRef {
            id: entry.id,
            socket: &d.socket.id,
            dir: d.dir,
            local: d.socket.local,
            peer: d.peer.addr(),
            payload: &d.payload,
            t_ns: entry.t_ns,
            req: Tagged::for_viewer(d.req, viewer),
        }
        .write_json(out),
        _ => out.push_str(&to_event(entry, viewer).to_json()),
    }
}

/// Turns a log entry into the protocol event a viewer receives. (Frames carry datagrams
/// through [`write_event`]'s direct writer; the datagram case here is what that writer
/// must equal, which a test checks.)
fn to_event(entry: &crate::log::Entry, viewer: u64) -> Event {
    let id = entry.id;
    let t_ns = entry.t_ns;
    match &entry.record {
        Record::Bound(b) => Event::Bound(Bound {
            id,
            socket: b.socket.clone(),
            proto: b.proto,
            local: b.local,
            recv_buffer_bytes: b.recv_buffer_bytes,
            t_ns,
            req: Tagged::for_viewer(b.req, viewer),
        }),
        Record::KernelDrops {
            socket,
            dropped,
            total,
        } => Event::KernelDrops(KernelDrops {
            id,
            socket: SocketId::new(&*socket.id),
            dropped: *dropped,
            total: *total,
            t_ns,
        }),
        Record::Closed { socket, req } => Event::Closed(Closed {
            id,
            socket: socket.clone(),
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::Datagram(d) => Event::Datagram(Datagram {
            id,
            socket: SocketId::new(&*d.socket.id),
            dir: d.dir,
            local: d.socket.local,
            peer: d.peer.addr(),
            len: d.payload.len(),
            payload_b64: encode_base64(&d.payload),
            t_ns,
            req: Tagged::for_viewer(d.req, viewer),
        }),
        Record::LinkCreated(c) => Event::LinkCreated(LinkCreated {
            id,
            link: c.link.clone(),
            listen: c.listen,
            upstream: c.upstream,
            target: c.target,
            settings: c.settings,
            t_ns,
            req: Tagged::for_viewer(c.req, viewer),
        }),
        Record::LinkUpdated {
            link,
            settings,
            req,
        } => Event::LinkUpdated(LinkUpdated {
            id,
            link: link.clone(),
            settings: **settings,
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::LinkClient(change) => Event::LinkClient(LinkClient {
            id,
            link: change.link.clone(),
            client: change.client,
            previous: change.previous,
            t_ns,
        }),
        Record::LinkDeleted { link, req } => Event::LinkDeleted(LinkDeleted {
            id,
            link: link.clone(),
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::LinkPacket(p, payload) => Event::LinkPacket(LinkPacket {
            id,
            link: p.link.clone(),
            dir: p.dir,
            seq: p.seq,
            from: p.from,
            to: p.to,
            len: payload.len(),
            payload_b64: encode_base64(payload),
            fate: p.fate,
            reason: p.reason,
            delay_ns: p.delay_ns,
            queue_ns: p.queue_ns,
            duplicated: p.duplicated,
            corrupted_at: p.corrupted_at,
            corrupt_mask: p.corrupt_mask,
            truncated_to: p.truncated_to,
            held_for: p.held_for,
            error: p.error.as_deref().map(str::to_owned),
            t_ns,
        }),
        Record::GeneratorStarted(g) => Event::GeneratorStarted(GeneratorStarted {
            id,
            generator: g.generator.clone(),
            socket: g.socket.clone(),
            to: g.to,
            count: g.count,
            rate: g.rate,
            seq_flow: g.seq_flow,
            t_ns,
            req: Tagged::for_viewer(g.req, viewer),
        }),
        Record::GeneratorDone(g) => Event::GeneratorDone(GeneratorDone {
            id,
            generator: g.generator.clone(),
            sent: g.sent,
            stopped: g.stopped,
            error: g.error.clone(),
            t_ns,
            req: Tagged::for_viewer(g.req, viewer),
        }),
        Record::AnalysisConfig {
            loss_timeout_ms,
            req,
        } => Event::AnalysisConfig(AnalysisConfig {
            id,
            loss_timeout_ms: *loss_timeout_ms,
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::FlowStats(f) => Event::FlowStats(socklab_protocol::flow::FlowStats {
            id,
            flows: f.flows.clone(),
            retired_flows: f.retired_flows,
            untracked: f.untracked,
            t_ns,
        }),
        Record::Fate(f) => Event::Fate(socklab_protocol::flow::Fate {
            id,
            fate: f.kind,
            send: f.send,
            recv: f.recv.map(|r| EventId(r.get())),
            src: f.flow.src,
            dst: f.flow.dst,
            latency_ns: f.latency_ns,
            reordered_by: (f.reordered_by > 0).then_some(u64::from(f.reordered_by)),
            late: f.late,
            cause: f.cause,
            reason: f.reason,
            decision: f.decision.map(|d| EventId(d.get())),
            t_ns,
        }),
        Record::LinkStats { link, counters } => Event::LinkStats(LinkStats {
            id,
            link: link.clone(),
            c2t: counters.0,
            t2c: counters.1,
            t_ns,
        }),
    }
}

/// Serves one viewer of `shared` on `ws` until it leaves or the server shuts down,
/// starting after event `since` (0: from the start of the log). `notice` is sent right
/// after the greeting (for example: the session asked for has ended).
pub async fn serve(
    ws: WebSocket,
    attached: crate::sessions::Attached,
    since: EventId,
    notice: Option<ErrorEvent>,
    pace: Pace,
    shutdown: CancellationToken,
) {
    let shared = attached.shared().clone();
    let span = tracing::info_span!("viewer", session = %shared.id());
    async {
        tracing::info!(since = since.0, "viewer connected");
        let viewer = Viewer {
            ws,
            cursor: since,
            number: attached.number(),
            flush_interval: pace.flush_interval,
            write_timeout: pace.write_timeout,
        };
        if let Err(e) = viewer.run(&shared, notice, &shutdown).await {
            tracing::debug!(error = %e, "viewer connection ended with an error");
        }
        drop(attached);
        tracing::info!("viewer left");
    }
    .instrument(span)
    .await
}

/// How a viewer's frames are paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The least time between two frames while events keep coming.
    pub flush_interval: Duration,
    /// The longest one frame may take to be written; a viewer slower than that is
    /// disconnected (it can come back with `since`).
    pub write_timeout: Duration,
}

/// The WebSocket side of a session.
struct Viewer {
    ws: WebSocket,
    /// The id of the last event this viewer was sent.
    cursor: EventId,
    /// Its number within the session.
    number: u64,
    /// The least time between two frames while events keep coming.
    flush_interval: Duration,
    /// See [`Pace::write_timeout`].
    write_timeout: Duration,
}

impl Viewer {
    async fn run(
        mut self,
        shared: &crate::sessions::Shared,
        notice: Option<ErrorEvent>,
        shutdown: &CancellationToken,
    ) -> Result<(), axum::Error> {
        self.send(&Event::Hello(Hello {
            protocol: socklab_protocol::PROTOCOL_VERSION,
            session: shared.id().to_owned(),
            server: crate::SERVER_NAME.to_owned(),
        }))
        .await?;
        if let Some(notice) = notice {
            self.send(&Event::Error(notice)).await?;
        }

        let log = shared.log().clone();
        let mut newest = log.subscribe();
        let (reply, mut replies) = mpsc::unbounded_channel::<ErrorEvent>();
        let mut last_flush = Instant::now() - self.flush_interval;
        // Whatever the log already holds after the cursor goes out at once.
        let mut flush_at: Option<tokio::time::Instant> = Some(tokio::time::Instant::now());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.close(axum::extract::ws::close_code::AWAY, "socklab is shutting down").await;
                    return Ok(());
                }
                message = self.ws.recv() => {
                    let Some(message) = message else { return Ok(()) };
                    let message = match message {
                        Ok(message) => message,
                        Err(e) => {
                            // The WebSocket library reports an oversized frame as an error of
                            // its own; the close code tells the client why it is cut off.
                            let too_big = e.to_string().contains("too long");
                            let (code, reason) = if too_big {
                                (axum::extract::ws::close_code::SIZE, "message too big (--max-message-bytes)")
                            } else {
                                (axum::extract::ws::close_code::PROTOCOL, "WebSocket protocol error")
                            };
                            tracing::debug!(error = %e, "closing a viewer's connection");
                            self.close(code, reason).await;
                            return Err(e);
                        }
                    };
                    match message {
                        Message::Text(text) => {
                            let outcome = match decode_request(&text) {
                                Ok(request) => {
                                    let req = request.req;
                                    let mut session = shared.session().lock().await;
                                    session.handle(request, &reply, self.number).await.map_err(|e| (req, e))
                                }
                                Err(e) => Err((e.req, CommandError::bad_request(e.message))),
                            };
                            if let Err((req, e)) = outcome {
                                tracing::debug!(code = %e.code, message = %e.message, "refused");
                                self.send(&error_event(req, e)).await?;
                            }
                        }
                        Message::Binary(_) => {
                            let e = CommandError::bad_request(
                                "binary frames are not accepted; send each command as a JSON text frame",
                            );
                            self.send(&error_event(None, e)).await?;
                        }
                        Message::Close(_) => return Ok(()),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                Some(error) = replies.recv() => self.send(&Event::Error(error)).await?,
                changed = newest.changed(), if flush_at.is_none() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    // An idle viewer's frame is due at once: the timer helper returns
                    // at once for a time already past.
                    flush_at = Some((last_flush + self.flush_interval).into());
                }
                _ = sleep_until(flush_at), if flush_at.is_some() => {
                    let more = self.flush(&log).await?;
                    last_flush = Instant::now();
                    flush_at = more.then(tokio::time::Instant::now);
                }
            }
        }
    }

    /// Sends the next batch of logged events (and a `gap` first if some are gone).
    /// Returns whether more are waiting.
    async fn flush(&mut self, log: &EventLog) -> Result<bool, axum::Error> {
        let read = log.read_after(self.cursor, MAX_BATCH);
        let gap = read.gap.map(|(from, to)| {
            tracing::warn!(
                from = from.0,
                to = to.0,
                "viewer missed events the log dropped"
            );
            Event::Gap(Gap {
                from,
                to,
                count: to.0 - from.0 + 1,
            })
        });
        let count = read.entries.len() + usize::from(gap.is_some());
        if count == 0 {
            return Ok(read.more);
        }
        // The frame's text is written in one go: an event alone, or a batch.
        let mut frame = String::with_capacity(256 * count);
        if count > 1 {
            frame.push_str(fast::BATCH_OPEN);
        }
        if let Some(gap) = &gap {
            frame.push_str(&gap.to_json());
        }
        let mut written = 0;
        for (i, entry) in read.entries.iter().enumerate() {
            // A frame stops growing at MAX_FRAME_BYTES (after at least one event):
            // 512 datagrams of 64 KiB would otherwise make one 44 MB frame.
            if written > 0 && frame.len() >= MAX_FRAME_BYTES {
                break;
            }
            if i > 0 || gap.is_some() {
                frame.push(',');
            }
            write_event(&mut frame, entry, self.number);
            written += 1;
        }
        if count > 1 {
            frame.push_str(fast::BATCH_CLOSE);
        }
        if let Some((_, to)) = read.gap {
            self.cursor = to;
        }
        if let Some(last) = read.entries[..written].last() {
            self.cursor = last.id;
        }
        self.send_text(frame).await?;
        Ok(read.more || written < read.entries.len())
    }

    /// Says goodbye with a close frame, but never waits longer than the write timeout
    /// for it: a viewer that stopped reading must not hold up the server's shutdown.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let wait = self.write_timeout.min(CLOSE_TIMEOUT);
        let _ = tokio::time::timeout(wait, self.ws.send(frame)).await;
    }

    async fn send(&mut self, event: &Event) -> Result<(), axum::Error> {
        self.send_text(event.to_json()).await
    }

    /// Writes one frame, or gives up on a viewer that has not taken it within the
    /// write timeout: a page that stopped reading must not hold its frames (and the
    /// session's attention) for ever. It can come back with `since`.
    async fn send_text(&mut self, text: String) -> Result<(), axum::Error> {
        match tokio::time::timeout(self.write_timeout, self.ws.send(Message::Text(text.into())))
            .await
        {
            Ok(sent) => sent,
            Err(_) => {
                tracing::info!(
                    timeout_ms = self.write_timeout.as_millis() as u64,
                    "disconnecting a viewer that stopped reading"
                );
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the viewer did not read a frame within the write timeout",
                )))
            }
        }
    }
}

fn error_event(req: Option<i64>, e: CommandError) -> Event {
    Event::Error(ErrorEvent {
        req,
        code: e.code,
        message: e.message,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use socklab_protocol::Direction;

    use super::*;
    use crate::log::{DatagramRecord, Entry, SocketName};

    #[test]
    fn frames_carry_the_same_text_as_the_events() {
        let entry = |record| Entry {
            id: EventId(7),
            t_ns: 1_234_567,
            record,
        };
        let sent = entry(Record::Datagram(DatagramRecord {
            socket: Arc::new(SocketName {
                id: "s1".into(),
                local: "127.0.0.1:5000".parse().unwrap(),
            }),
            dir: Direction::Out,
            peer: "[::1]:9".parse::<std::net::SocketAddr>().unwrap().into(),
            payload: b"hello\x00\xff".to_vec().into_boxed_slice(),
            req: Some(Tagged {
                viewer: std::num::NonZeroU64::new(2).unwrap(),
                req: 41,
            }),
        }));
        let closed = entry(Record::Closed {
            socket: SocketId::new("s1"),
            req: None,
        });
        // The viewer that sent the command sees its `req`; another does not.
        for viewer in [1, 2] {
            for e in [&sent, &closed] {
                let mut text = String::new();
                write_event(&mut text, e, viewer);
                assert_eq!(text, to_event(e, viewer).to_json());
            }
        }
    }

    #[test]
    fn a_fate_record_goes_out_as_the_wire_fate() {
        use crate::log::{FateRecord, FlowEnds};
        use socklab_protocol::flow::{FateKind, LossCause};
        use socklab_protocol::link::DropReason;
        let flow = Arc::new(FlowEnds {
            src: "127.0.0.1:1000".parse().unwrap(),
            dst: "127.0.0.1:2000".parse().unwrap(),
        });
        let record = |f: FateRecord| Entry {
            id: EventId(9),
            t_ns: 77,
            record: Record::Fate(f),
        };
        let delivered = record(FateRecord {
            flow: flow.clone(),
            kind: FateKind::Delivered,
            send: EventId(3),
            recv: std::num::NonZeroU64::new(5),
            decision: std::num::NonZeroU64::new(4),
            latency_ns: Some(1_500),
            reordered_by: 2,
            late: true,
            cause: None,
            reason: None,
        });
        let lost = record(FateRecord {
            flow,
            kind: FateKind::Lost,
            send: EventId(6),
            recv: None,
            decision: None,
            latency_ns: None,
            reordered_by: 0,
            late: false,
            cause: Some(LossCause::Link),
            reason: Some(DropReason::RandomLoss),
        });
        assert_eq!(
            to_event(&delivered, 1).to_json(),
            r#"{"type":"fate","id":9,"fate":"delivered","send":3,"recv":5,"src":"127.0.0.1:1000","dst":"127.0.0.1:2000","latency_ns":1500,"reordered_by":2,"late":true,"decision":4,"t_ns":77}"#
        );
        assert_eq!(
            to_event(&lost, 1).to_json(),
            r#"{"type":"fate","id":9,"fate":"lost","send":6,"src":"127.0.0.1:1000","dst":"127.0.0.1:2000","cause":"link","reason":"random_loss","t_ns":77}"#
        );
    }
}
