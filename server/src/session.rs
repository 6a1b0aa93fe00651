//! One session's state and its commands: the sockets, links and generators it owns,
//! its event log, and what each command does to them. A session outlives any one
//! viewer: it is created for the first viewer and ends a grace period after its last
//! one leaves (`sessions.rs` keeps that time); its viewers' loops are in `viewer.rs`,
//! and the conversion of its log to wire events in `wire.rs`.
//!
//! (Over 600 lines: one place where every command is checked and carried out, so the
//! order of checks a refusal depends on can be read at once; the sockets, links and
//! generators themselves live in their own modules.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use socklab_protocol::flow::GeneratorSpec;
use socklab_protocol::link::{LinkId, LinkSettings};
use socklab_protocol::{
    BindSpec, Command, Endpoint, ErrorCode, GeneratorId, Proto, Request, SocketId, limits,
};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::CommandError;
use crate::generator::{self, GeneratorHandle, Plan};
use crate::link::LinkHandle;
use crate::log::{EventLog, LinkCreation, Record, Tagged};
use crate::policy::{AddressPolicy, SocketScope, parse_addr};
use crate::tcp::{Op, TcpContext, TcpHandle, TcpOptions};
use crate::udp::{ReplyTo, SendRequest, UdpHandle, UdpOptions, check_size};

/// A session's state: its sockets and its log.
#[derive(Debug)]
pub struct Session {
    id: String,
    log: Arc<EventLog>,
    /// Its datagrams counted per lane and time bucket (fed by the flow analysis).
    aggregates: Arc<std::sync::Mutex<crate::aggregate::Aggregates>>,
    sockets: BTreeMap<SocketId, UdpHandle>,
    /// Its TCP sockets (listeners and connections).
    streams: BTreeMap<SocketId, TcpHandle>,
    /// Where its listeners hand over the connections they accept.
    accepted_tx: tokio::sync::mpsc::Sender<TcpHandle>,
    accepted_rx: tokio::sync::mpsc::Receiver<TcpHandle>,
    next_socket: u64,
    links: BTreeMap<LinkId, LinkHandle>,
    next_link: u64,
    /// Its TCP links (`t1`, …).
    tcp_links: BTreeMap<LinkId, crate::tcplink::TcpLinkHandle>,
    next_tcp_link: u64,
    generators: BTreeMap<GeneratorId, GeneratorHandle>,
    next_generator: u64,
    /// The runs marked so far (`mark_run`, generators' starts).
    runs: u32,
    /// The flow analysis' loss timeout, ms (its task watches it).
    loss_timeout_ms: tokio::sync::watch::Sender<u64>,
    /// The flow analysis' match field (its task reads it from the log, in order).
    match_field: Option<socklab_protocol::flow::MatchField>,
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
    /// Where its Unix sockets are bound (a directory made on the first one).
    unix: crate::unix::SessionDir,
    /// Where recordings are kept.
    store: Arc<crate::store::StoreSlot>,
    /// Its recording, while one runs.
    recording: Option<crate::recorder::Recording>,
}

impl Session {
    /// A new, empty session, with its flow analysis running (on the current runtime).
    pub fn new(
        config: Arc<Config>,
        link_addrs: Arc<crate::link::LinkAddrs>,
        slots: Arc<crate::slots::SocketSlots>,
        unix: Arc<crate::unix::UnixRoot>,
        store: Arc<crate::store::StoreSlot>,
        cancel: CancellationToken,
    ) -> Self {
        let id = format!("{:016x}", rand::random::<u64>());
        let log = Arc::new(EventLog::new(config.log_max_events, config.log_max_bytes));
        let (loss_timeout_ms, timeout_rx) = tokio::sync::watch::channel(config.loss_timeout_ms);
        let (accepted_tx, accepted_rx) = tokio::sync::mpsc::channel(crate::tcp::ACCEPTED_QUEUE);
        let aggregates = Arc::new(std::sync::Mutex::new(crate::aggregate::Aggregates::new(
            config.max_aggregate_lanes,
            config.max_in_flight,
        )));
        tokio::spawn(crate::analysis::run(
            log.clone(),
            aggregates.clone(),
            timeout_rx,
            socklab_analysis::Limits {
                max_in_flight: config.max_in_flight,
                max_flows: config.max_flows,
                max_finished: config.max_finished,
                ..socklab_analysis::Limits::default()
            },
            cancel.child_token(),
        ));
        let recording = config.record.then(|| match store.get() {
            Ok(opened) => Some(crate::recorder::Recording::start(
                opened,
                log.clone(),
                id.clone(),
                format!("session {id}"),
                None,
                None,
            )),
            Err(e) => {
                tracing::error!(error = %e, "cannot record the session");
                None
            }
        });
        Session {
            recording: recording.flatten(),
            store,
            unix: crate::unix::SessionDir::new(unix, &id),
            id,
            log,
            aggregates,
            sockets: BTreeMap::new(),
            streams: BTreeMap::new(),
            accepted_tx,
            accepted_rx,
            next_socket: 1,
            links: BTreeMap::new(),
            next_link: 1,
            tcp_links: BTreeMap::new(),
            next_tcp_link: 1,
            generators: BTreeMap::new(),
            next_generator: 1,
            runs: 0,
            loss_timeout_ms,
            match_field: None,
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

    /// The store and the id there of the recording running, if one is.
    pub fn recording_store(&self) -> Option<(Arc<crate::store::Store>, i64)> {
        self.recording.as_ref().and_then(|r| r.stored())
    }

    /// Its datagrams counted per lane and time bucket.
    pub fn aggregates(&self) -> &Arc<std::sync::Mutex<crate::aggregate::Aggregates>> {
        &self.aggregates
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
        // Connections accepted since the last command become sockets of the session
        // before any command can name them.
        self.take_accepted();
        let join = matches!(request.command, Command::Join { .. });
        match request.command {
            Command::Bind(spec) => self.bind(spec, req),
            Command::Send {
                socket,
                to,
                payload,
            } if self.streams.contains_key(&socket) => {
                let handle = &self.streams[&socket];
                if let Some(to) = to {
                    return Err(CommandError::bad_request(format!(
                        "socket {socket} is a TCP socket: its bytes go to the other end of its connection, not to an address (leave `to` out; got {to})"
                    )));
                }
                let payload = payload
                    .decode()
                    .map_err(|e| CommandError::bad_request(e.to_string()))?;
                if payload.len() > crate::tcp::MAX_WRITE {
                    return Err(CommandError::new(
                        ErrorCode::PayloadTooLarge,
                        format!(
                            "one send writes at most {} bytes; this one is {} (send it in parts: a stream does not care)",
                            crate::tcp::MAX_WRITE,
                            payload.len()
                        ),
                    ));
                }
                handle.queue(Op::Write {
                    payload,
                    req,
                    reply: reply.clone(),
                })
            }
            Command::Connect { socket, to } if self.streams.contains_key(&socket) => {
                let handle = &self.streams[&socket];
                let to = self.peer_for(
                    &socket,
                    handle.local,
                    &to,
                    SocketScope::default(),
                    "connect to",
                )?;
                handle.queue(Op::Connect {
                    to,
                    req,
                    reply: reply.clone(),
                })
            }
            Command::Pause { socket, paused } => {
                if let Some(handle) = self.streams.get(&socket) {
                    handle.set_paused(paused)?;
                } else {
                    self.sockets
                        .get(&socket)
                        .ok_or_else(|| unknown_socket(&socket))?
                        .set_paused(paused);
                }
                self.log.append(
                    Instant::now(),
                    Record::Paused {
                        socket,
                        paused,
                        req,
                    },
                );
                Ok(())
            }
            Command::Join {
                socket,
                group,
                interface,
            }
            | Command::Leave {
                socket,
                group,
                interface,
            } => {
                let group: std::net::IpAddr = group.trim().parse().map_err(|_| {
                    CommandError::bad_address(format!(
                        "{group:?} is not a group address, such as 239.1.2.3 or ff02::1:3"
                    ))
                })?;
                self.policy.check_group(group)?;
                let handle = match self.sockets.get_mut(&socket) {
                    Some(handle) => handle,
                    None if self.streams.contains_key(&socket) => {
                        return Err(CommandError::bad_request(format!(
                            "socket {socket} is a TCP socket; only UDP sockets join multicast groups"
                        )));
                    }
                    None => return Err(unknown_socket(&socket)),
                };
                handle.membership(group, interface.as_deref(), join)?;
                self.log.append(
                    Instant::now(),
                    Record::Membership(Box::new(crate::log::MembershipRecord {
                        socket,
                        group,
                        interface,
                        joined: join,
                        req,
                    })),
                );
                Ok(())
            }
            Command::Shutdown { socket, how } => {
                let Some(handle) = self.streams.get(&socket) else {
                    return Err(if self.sockets.contains_key(&socket) {
                        CommandError::bad_request(format!(
                            "socket {socket} is a UDP socket: shutdown ends a half of a TCP connection, and UDP has none (close the socket instead)"
                        ))
                    } else {
                        unknown_socket(&socket)
                    });
                };
                handle.queue(Op::Shutdown {
                    how,
                    req,
                    reply: reply.clone(),
                })
            }
            Command::Close { socket } => self.close(socket, req).await,
            Command::Send {
                socket,
                to,
                payload,
            } => {
                let to = match to {
                    Some(to) => self.destination(&socket, &to)?,
                    None => self.socket(&socket)?.peer.clone().ok_or_else(|| {
                        CommandError::bad_request(format!(
                            "socket {socket} is not connected, so a send needs `to`; give one, or connect the socket first"
                        ))
                    })?,
                };
                let payload = payload
                    .decode()
                    .map_err(|e| CommandError::bad_request(e.to_string()))?;
                check_size(payload.len(), &to)?;
                let handle = self.socket(&socket)?;
                handle.send(SendRequest {
                    to,
                    payload,
                    req,
                    reply: reply.clone(),
                })
            }
            Command::Connect { socket, to } => {
                let to = self.destination(&socket, &to)?;
                let handle = self
                    .sockets
                    .get_mut(&socket)
                    .ok_or_else(|| unknown_socket(&socket))?;
                handle.connect(to.clone())?;
                tracing::info!(%socket, peer = %to, "connected");
                self.log.append(
                    Instant::now(),
                    Record::Connected {
                        socket: handle.name(),
                        peer: Box::new(to),
                        req,
                    },
                );
                Ok(())
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
                        match_field: self.match_field,
                        req,
                    },
                );
                Ok(())
            }
            Command::SetMatchField { field } => {
                if let Some(f) = field {
                    f.check().map_err(CommandError::bad_request)?;
                }
                self.match_field = field;
                self.log.append(
                    Instant::now(),
                    Record::AnalysisConfig {
                        loss_timeout_ms: *self.loss_timeout_ms.borrow(),
                        match_field: field,
                        req,
                    },
                );
                Ok(())
            }
            Command::TcpLinkCreate {
                listen,
                target,
                settings,
            } => self.create_tcp_link(&listen, &target, settings, req),
            Command::RecordStart { name } => {
                if self.recording.as_ref().is_some_and(|r| !r.is_finished()) {
                    return Err(CommandError::bad_request(
                        "this session is already being recorded; stop that recording first",
                    ));
                }
                let name = match name.map(|n| n.trim().to_owned()) {
                    Some(n) if n.chars().count() > crate::store::MAX_NAME => {
                        return Err(CommandError::bad_request(format!(
                            "a recording's name has at most {} characters",
                            crate::store::MAX_NAME
                        )));
                    }
                    Some(n) if !n.is_empty() => n,
                    _ => format!("session {}", self.id),
                };
                let store = self.store.get()?;
                self.recording = Some(crate::recorder::Recording::start(
                    store,
                    self.log.clone(),
                    self.id.clone(),
                    name,
                    req,
                    Some(reply.clone()),
                ));
                Ok(())
            }
            Command::KeepUp { .. } | Command::Aggregate { .. } | Command::Window { .. } => {
                // Answered by the viewer that asked (see `crate::viewer`), never here.
                Err(CommandError::bad_request(
                    "this command is answered by a viewer's connection, not by the session",
                ))
            }
            Command::MarkRun { name } => {
                let name = match name.map(|n| n.trim().to_owned()) {
                    Some(n) if n.chars().count() > MAX_RUN_NAME => {
                        return Err(CommandError::bad_request(format!(
                            "a run's name has at most {MAX_RUN_NAME} characters"
                        )));
                    }
                    Some(n) if !n.is_empty() => n,
                    _ => format!("run {}", self.runs.saturating_add(1)),
                };
                self.mark_run(name, req);
                Ok(())
            }
            Command::RunAgain { recording, speed } => {
                self.run_again(recording, speed.unwrap_or(1.0), req, reply)
                    .await
            }
            Command::RecordStop => {
                let Some(recording) = self.recording.take() else {
                    return Err(CommandError::bad_request(
                        "this session is not being recorded",
                    ));
                };
                self.stop_recording(recording, req).await
            }
            Command::LinkDelete { link } => {
                if let Some(handle) = self.tcp_links.remove(&link) {
                    handle.close().await;
                } else {
                    let handle = self
                        .links
                        .remove(&link)
                        .ok_or_else(|| unknown_link(&link))?;
                    handle.close().await;
                }
                tracing::info!(%link, "link deleted");
                self.log
                    .append(Instant::now(), Record::LinkDeleted { link, req });
                Ok(())
            }
        }
    }

    /// A link's listen and target addresses, parsed and checked against the policy
    /// (UDP and TCP links alike).
    fn link_addrs(
        &self,
        listen: &str,
        target: &str,
    ) -> Result<(std::net::SocketAddr, std::net::SocketAddr), CommandError> {
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
        Ok((listen, target))
    }

    fn create_tcp_link(
        &mut self,
        listen: &str,
        target: &str,
        settings: socklab_protocol::link::TcpLinkSettings,
        req: Option<Tagged>,
    ) -> Result<(), CommandError> {
        let (listen, target) = self.link_addrs(listen, target)?;
        let links = self.links.len() + self.tcp_links.len();
        if links >= self.config.max_links_per_session {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this session already has {links} links, the most allowed (--max-links-per-session); delete one first"
                ),
            ));
        }
        let id = LinkId::new(format!("t{}", self.next_tcp_link));
        let slot = self.slots.take(1)?;
        let handle = crate::tcplink::TcpLinkHandle::create(
            id.clone(),
            listen,
            target,
            settings,
            self.log.clone(),
            self.slots.clone(),
            &self.cancel,
        )?;
        self.next_tcp_link += 1;
        tracing::info!(link = %id, listen = %handle.listen, %target, "tcp link created");
        self.log.append(
            Instant::now(),
            Record::TcpLinkCreated(Box::new(crate::log::TcpLinkCreation {
                link: id.clone(),
                listen: handle.listen,
                target,
                settings,
                req,
            })),
        );
        self.tcp_links.insert(id, handle.holding(slot));
        Ok(())
    }

    fn create_link(
        &mut self,
        listen: &str,
        target: &str,
        settings: LinkSettings,
        req: Option<Tagged>,
    ) -> Result<(), CommandError> {
        let (listen, target) = self.link_addrs(listen, target)?;
        check_settings(&settings)?;
        if self.links.len() + self.tcp_links.len() >= self.config.max_links_per_session {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this session already has {} links, the most allowed (--max-links-per-session); delete one first",
                    self.links.len() + self.tcp_links.len()
                ),
            ));
        }
        let id = LinkId::new(format!("l{}", self.next_link));
        let slot = self.slots.take(crate::link::DESCRIPTORS)?;
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
        self.sockets.get(id).ok_or_else(|| {
            if self.streams.contains_key(id) {
                CommandError::bad_request(format!(
                    "socket {id} is a TCP socket; this needs a UDP socket (the generator sends datagrams)"
                ))
            } else {
                unknown_socket(id)
            }
        })
    }

    /// The address `to` that datagram socket `id` may send to (policy and family
    /// checked): an IP address for a UDP socket, a Unix name for a Unix one.
    fn destination(&mut self, id: &SocketId, to: &str) -> Result<Endpoint, CommandError> {
        let handle = self.socket(id)?;
        let (local, scope) = (handle.local.clone(), handle.scope);
        let to_unix = to
            .trim()
            .strip_prefix(socklab_protocol::endpoint::UNIX_PREFIX);
        match (&local, to_unix) {
            (Endpoint::Ip(local), None) => self
                .peer_for(id, *local, to, scope, "send to")
                .map(Endpoint::Ip),
            (Endpoint::Unix(_), Some(name)) => self.unix.destination(name),
            (Endpoint::Unix(_), None) => Err(CommandError::bad_address(format!(
                "socket {id} is a Unix socket ({local}) and sends to Unix names (unix:name, unix:@name or unix:/path), not to {to}"
            ))),
            (Endpoint::Ip(_), Some(_)) => Err(CommandError::bad_address(format!(
                "socket {id} is bound to {local}, an {} address, and cannot send to {to}; bind a Unix socket to talk to Unix sockets",
                local.family()
            ))),
        }
    }

    /// The address `to` that socket `id`, bound to `local`, may send to or connect to
    /// (`verb`): parsed, allowed by the policy for `scope`, of the socket's family.
    fn peer_for(
        &self,
        id: &SocketId,
        local: std::net::SocketAddr,
        to: &str,
        scope: SocketScope,
        verb: &str,
    ) -> Result<std::net::SocketAddr, CommandError> {
        let to = parse_addr(to)?;
        self.policy.check_destination(to, scope)?;
        if to.is_ipv4() != local.is_ipv4() {
            return Err(CommandError::bad_address(format!(
                "socket {id} is bound to {local}, an {} address, and cannot {verb} {to}; bind a socket of the same family",
                if local.is_ipv4() { "IPv4" } else { "IPv6" },
            )));
        }
        Ok(to)
    }

    fn generate(&mut self, spec: GeneratorSpec, req: Option<Tagged>) -> Result<(), CommandError> {
        let to = self.destination(&spec.socket, &spec.to)?;
        let sends = self.socket(&spec.socket)?.sender();
        let checked = generator::check(&spec, &to)?;
        let (rate, count) = (checked.pace.rate, checked.pace.count);
        self.budget.fits(rate, checked.datagram_len())?;
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
        let id = GeneratorId::new(format!("g{number}"));
        let seq_flow = spec.sequence.then_some(number as u32);
        let plan = Plan {
            id: id.clone(),
            socket: spec.socket.clone(),
            sends,
            to: to.clone(),
            count,
            interval: checked.pace.interval,
            body: checked.body,
            seq_flow,
        };
        // A generator's traffic is a run of its own.
        self.mark_run(
            format!(
                "{id}: {count} to {to} at {}/s",
                if rate.fract() == 0.0 {
                    format!("{rate:.0}")
                } else {
                    format!("{rate}")
                }
            ),
            None,
        );
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

    /// Begins run `name`: the datagrams sent from now on are its own.
    fn mark_run(&mut self, name: String, req: Option<Tagged>) {
        self.runs = self.runs.saturating_add(1);
        self.log.append(
            Instant::now(),
            Record::RunMarked {
                run: self.runs,
                name: name.into(),
                req,
            },
        );
    }

    fn bind(&mut self, spec: BindSpec, req: Option<Tagged>) -> Result<(), CommandError> {
        let accepted = self.accepted_tx.clone();
        self.bind_handing_to(spec, req, accepted)
    }

    /// [`Session::bind`], a TCP listener handing the connections it accepts to
    /// `accepted` (a re-run's listeners hand them through the re-run, which takes its
    /// steps on them: `rerun::forward_accepted`).
    fn bind_handing_to(
        &mut self,
        spec: BindSpec,
        req: Option<Tagged>,
        accepted: tokio::sync::mpsc::Sender<TcpHandle>,
    ) -> Result<(), CommandError> {
        let BindSpec {
            proto,
            addr,
            broadcast,
            multicast,
            recv_buffer_bytes: recv_buffer,
            recv_size,
            listen,
            nodelay,
            reuse_addr,
            multicast_ttl,
            multicast_loop,
        } = spec;
        let unix_name = addr
            .trim()
            .strip_prefix(socklab_protocol::endpoint::UNIX_PREFIX);
        match (proto, unix_name) {
            (Proto::Unix, None) => {
                return Err(CommandError::bad_address(format!(
                    "a Unix socket binds to a name: unix:echo (a file in this session's directory), unix:@echo (an abstract name) or unix: (one the kernel picks), not {addr:?}"
                )));
            }
            (Proto::Udp | Proto::Tcp, Some(_)) => {
                return Err(CommandError::bad_address(format!(
                    "{addr} is a Unix name; bind it with proto \"unix\" (a Unix datagram socket)"
                )));
            }
            _ => {}
        }
        if let Some(size) = recv_size
            && !(1..=limits::MAX_RECV_SIZE).contains(&size)
        {
            return Err(CommandError::bad_request(format!(
                "recv_size is {size}; give 1 to {} bytes (how many bytes each receive reads)",
                limits::MAX_RECV_SIZE
            )));
        }
        if let Some(bytes) = recv_buffer
            && !(1..=limits::MAX_RECV_BUFFER_BYTES).contains(&bytes)
        {
            return Err(CommandError::bad_request(format!(
                "recv_buffer_bytes is {bytes}; give 1 to {} bytes (the kernel rounds it to what it allows)",
                limits::MAX_RECV_BUFFER_BYTES
            )));
        }
        match proto {
            Proto::Udp if listen || nodelay => {
                return Err(CommandError::bad_request(
                    "listen and nodelay are TCP options; a UDP socket has no connections to listen for and no Nagle",
                ));
            }
            Proto::Tcp
                if broadcast
                    || multicast
                    || multicast_ttl.is_some()
                    || multicast_loop.is_some() =>
            {
                return Err(CommandError::bad_request(
                    "broadcast and the multicast options are UDP options: a TCP connection has exactly two ends",
                ));
            }
            Proto::Unix
                if listen
                    || nodelay
                    || broadcast
                    || multicast
                    || reuse_addr
                    || multicast_ttl.is_some()
                    || multicast_loop.is_some() =>
            {
                return Err(CommandError::bad_request(
                    "a Unix datagram socket takes only a read size: listen and nodelay are TCP options, broadcast, multicast and reuse_addr IP ones",
                ));
            }
            Proto::Unix if recv_buffer.is_some() => {
                return Err(CommandError::bad_request(
                    "a Unix datagram socket's queue is counted in datagrams (net.unix.max_dgram_qlen), not bytes: leave recv_buffer_bytes out",
                ));
            }
            _ => {}
        }
        if let Some(ttl) = multicast_ttl
            && ttl > 255
        {
            return Err(CommandError::bad_request(format!(
                "multicast_ttl is {ttl}; give 0 to 255 (how many routers a multicast datagram may cross)"
            )));
        }
        let addr = match unix_name {
            Some(_) => None,
            None => {
                let addr = parse_addr(&addr)?;
                self.policy.check_bind(addr)?;
                Some(addr)
            }
        };
        let open = self.sockets.len() + self.streams.len();
        if open >= self.config.max_sockets_per_session {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this session already has {open} sockets open, the most allowed (--max-sockets-per-session); close one first"
                ),
            ));
        }
        let id = SocketId::new(format!("s{}", self.next_socket));
        let slot = self.slots.take(1)?;
        // No IP address: a Unix socket (the kinds and addresses were matched above).
        let (local, recv_buffer_bytes) = match addr {
            None => {
                let name = unix_name.unwrap_or_default();
                let target = self.unix.bind_target(name)?;
                let handle = UdpHandle::bind_unix(
                    id.clone(),
                    &target,
                    name,
                    recv_size,
                    self.log.clone(),
                    self.budget.clone(),
                    &self.cancel,
                )?;
                let bound = (handle.local.clone(), None);
                self.sockets.insert(id.clone(), handle.holding(slot));
                bound
            }
            Some(addr) if proto == Proto::Udp => {
                let handle = UdpHandle::bind(
                    id.clone(),
                    addr,
                    SocketScope {
                        broadcast,
                        multicast,
                    },
                    UdpOptions {
                        recv_buffer,
                        recv_size,
                        reuse_addr,
                        multicast_ttl,
                        multicast_loop,
                    },
                    self.log.clone(),
                    self.budget.clone(),
                    &self.cancel,
                )?;
                let bound = (handle.local.clone(), handle.recv_buffer_bytes);
                self.sockets.insert(id.clone(), handle.holding(slot));
                bound
            }
            Some(addr) => {
                let handle = TcpHandle::bind(
                    id.clone(),
                    addr,
                    listen,
                    TcpOptions {
                        read_size: recv_size,
                        nodelay,
                        recv_buffer,
                    },
                    self.tcp_context(accepted),
                    &self.cancel,
                )?;
                let bound = (Endpoint::Ip(handle.local), handle.recv_buffer_bytes);
                self.streams.insert(id.clone(), handle.holding(slot));
                bound
            }
        };
        self.next_socket += 1;
        tracing::info!(socket = %id, %local, "bound");
        self.log.append(
            Instant::now(),
            Record::Bound(Box::new(crate::log::BoundRecord {
                socket: id,
                proto,
                local,
                recv_buffer_bytes,
                recv_size,
                listening: listen,
                multicast,
                req,
            })),
        );
        Ok(())
    }

    /// What a TCP socket's task needs from the session; a listener hands what it
    /// accepts to `accepted`.
    fn tcp_context(&self, accepted: tokio::sync::mpsc::Sender<TcpHandle>) -> TcpContext {
        TcpContext {
            log: self.log.clone(),
            budget: self.budget.clone(),
            slots: self.slots.clone(),
            accepted,
        }
    }

    /// Takes in the connections the session's listeners accepted since the last
    /// command: each is a socket of the session from now on. Over the session's socket
    /// limit, one is closed at once (its task logs why).
    fn take_accepted(&mut self) {
        while let Ok(handle) = self.accepted_rx.try_recv() {
            if self.sockets.len() + self.streams.len() >= self.config.max_sockets_per_session {
                let id = handle.id.clone();
                tracing::info!(socket = %id, "accepted over the session's limit: closed");
                let log = self.log.clone();
                tokio::spawn(async move {
                    handle.close().await;
                    log.append(
                        Instant::now(),
                        Record::Closed {
                            socket: id,
                            req: None,
                        },
                    );
                });
                continue;
            }
            self.streams.insert(handle.id.clone(), handle);
        }
    }

    async fn close(&mut self, id: SocketId, req: Option<Tagged>) -> Result<(), CommandError> {
        if let Some(handle) = self.streams.remove(&id) {
            handle.close().await;
        } else {
            let handle = self
                .sockets
                .remove(&id)
                .ok_or_else(|| unknown_socket(&id))?;
            handle.close().await;
        }
        tracing::info!(socket = %id, "closed");
        self.log
            .append(Instant::now(), Record::Closed { socket: id, req });
        Ok(())
    }

    /// Runs recording `id` again (`run_again`): a new recording, its UDP and Unix
    /// sockets bound afresh, its links made again with their settings and seeds
    /// (pointed at the new sockets), and its sends sent again `speed` times faster.
    async fn run_again(
        &mut self,
        id: i64,
        speed: f64,
        req: Option<Tagged>,
        reply: &ReplyTo,
    ) -> Result<(), CommandError> {
        if !(0.01..=100.0).contains(&speed) {
            return Err(CommandError::bad_request(format!(
                "speed is {speed}; give 0.01 to 100 (times the recording's own pace)"
            )));
        }
        if self.recording.as_ref().is_some_and(|r| !r.is_finished()) {
            return Err(CommandError::bad_request(
                "this session is being recorded; stop that recording first (a run again makes its own)",
            ));
        }
        let store = self.store.get()?;
        let Some(info) = store.get(id).await? else {
            return Err(CommandError::bad_request(format!(
                "there is no recording {id}"
            )));
        };
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let got = store.events(id, after, 10_000).await?;
            let Some(last) = got.last() else { break };
            after = last.id;
            events.extend(
                got.iter()
                    .filter_map(|e| socklab_protocol::Event::from_json(&e.json).ok()),
            );
            if events.len() > 4 * crate::rerun::MAX_SENDS {
                return Err(CommandError::new(
                    ErrorCode::LimitExceeded,
                    format!("recording {id} is too long to run again here"),
                ));
            }
        }
        let plan = crate::rerun::sends(&events, speed);
        if plan.len() > crate::rerun::MAX_SENDS {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "recording {id} has {} datagrams, TCP writes and connects to do again; a run again does at most {}",
                    plan.len(),
                    crate::rerun::MAX_SENDS
                ),
            ));
        }
        self.recording = Some(crate::recorder::Recording::start(
            store,
            self.log.clone(),
            self.id.clone(),
            format!("again: {}", info.name),
            req,
            Some(reply.clone()),
        ));
        // The old sockets and links, made again; what stands for what. The connections
        // the new listeners accept pass through the re-run on their way to the session.
        let mut sockets: HashMap<SocketId, SocketId> = HashMap::new();
        let mut targets = crate::rerun::Targets::default();
        let accepted = crate::rerun::Accepted::default();
        let (tap, tapped) = tokio::sync::mpsc::channel(crate::tcp::ACCEPTED_QUEUE);
        crate::rerun::forward_accepted(
            tapped,
            self.accepted_tx.clone(),
            std::sync::Arc::downgrade(&accepted),
        );
        for event in &events {
            match event {
                socklab_protocol::Event::Bound(b) => {
                    let addr = match &b.local {
                        Endpoint::Ip(a) => std::net::SocketAddr::new(a.ip(), 0).to_string(),
                        Endpoint::Unix(_) => socklab_protocol::endpoint::UNIX_PREFIX.to_string(),
                    };
                    let spec = BindSpec {
                        proto: b.proto,
                        addr,
                        recv_size: b.recv_size,
                        multicast: b.multicast,
                        listen: b.listening,
                        ..BindSpec::default()
                    };
                    self.bind_handing_to(spec, None, tap.clone())?;
                    let new = SocketId::new(format!("s{}", self.next_socket - 1));
                    if let Some(handle) = self.sockets.get(&new) {
                        targets.peers.insert(b.local.clone(), handle.local.clone());
                    } else if let Some(handle) = self.streams.get(&new) {
                        targets
                            .peers
                            .insert(b.local.clone(), Endpoint::Ip(handle.local));
                        match handle.ops() {
                            Some(ops) => {
                                targets.streams.insert(b.socket.clone(), ops);
                            }
                            None => {
                                targets.listeners.insert(b.socket.clone(), new.clone());
                            }
                        }
                    }
                    sockets.insert(b.socket.clone(), new);
                }
                socklab_protocol::Event::TcpLinkCreated(l) => {
                    let (listen, target) = targets.link_ends(l.listen, l.target);
                    self.create_tcp_link(&listen, &target, l.settings, None)?;
                    let new = LinkId::new(format!("t{}", self.next_tcp_link - 1));
                    if let Some(handle) = self.tcp_links.get(&new) {
                        targets
                            .peers
                            .insert(Endpoint::Ip(l.listen), Endpoint::Ip(handle.listen));
                    }
                }
                socklab_protocol::Event::LinkCreated(l) => {
                    let (listen, target) = targets.link_ends(l.listen, l.target);
                    self.create_link(&listen, &target, l.settings, None)?;
                    let new = LinkId::new(format!("l{}", self.next_link - 1));
                    if let Some(handle) = self.links.get(&new) {
                        let peers = &mut targets.peers;
                        peers.insert(Endpoint::Ip(l.listen), Endpoint::Ip(handle.listen));
                        peers.insert(Endpoint::Ip(l.upstream), Endpoint::Ip(handle.upstream));
                    }
                }
                _ => {}
            }
        }
        accepted.lock().unwrap_or_else(|e| e.into_inner()).wanted =
            crate::rerun::wanted(&plan, &targets.listeners);
        targets.datagrams = sockets
            .iter()
            .filter_map(|(old, new)| Some((old.clone(), self.sockets.get(new)?.sender())))
            .collect();
        tracing::info!(
            recording = id,
            sends = plan.len(),
            speed,
            "running a recording again"
        );
        crate::rerun::start(
            plan,
            targets,
            accepted,
            reply.clone(),
            self.cancel.child_token(),
        );
        Ok(())
    }

    /// Stops `recording` once everything logged so far is stored, and says so.
    async fn stop_recording(
        &mut self,
        recording: crate::recorder::Recording,
        req: Option<Tagged>,
    ) -> Result<(), CommandError> {
        let store = self.store.get()?;
        let Some((id, events, datagrams)) = recording.stop(&store, &self.log).await? else {
            return Err(CommandError::bad_request(
                "this session's recording never started (its refusal said why)",
            ));
        };
        tracing::info!(recording = id, events, "recording stopped");
        self.log.append(
            Instant::now(),
            Record::RecordingStopped {
                recording: id,
                counts: (events, datagrams),
                reason: None,
                req,
            },
        );
        Ok(())
    }

    /// Stops every generator, closes every socket and link, and waits until they are
    /// closed; a recording stops last, with all of it.
    pub async fn close_all(&mut self) {
        for (_, handle) in std::mem::take(&mut self.generators) {
            handle.stop().await;
        }
        for (_, handle) in std::mem::take(&mut self.links) {
            handle.close().await;
        }
        for (_, handle) in std::mem::take(&mut self.tcp_links) {
            handle.close().await;
        }
        for (_, handle) in std::mem::take(&mut self.sockets) {
            handle.close().await;
        }
        self.take_accepted();
        for (_, handle) in std::mem::take(&mut self.streams) {
            handle.close().await;
        }
        if let Some(recording) = self.recording.take()
            && let Err(e) = self.stop_recording(recording, None).await
        {
            tracing::warn!(error = %e, "the recording did not end well");
        }
    }
}

/// The longest name a run may have, in characters.
pub const MAX_RUN_NAME: usize = 100;

/// The longest loss timeout a session may set, ms.
pub const MAX_LOSS_TIMEOUT_MS: u64 = 600_000;

fn unknown_generator(id: &GeneratorId) -> CommandError {
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
