//! Links: impairing UDP relays owned by a session.
//!
//! A link listens on one address and forwards what it receives to a target, and the
//! target's replies back to whoever last sent to the listen address (the client). Each
//! direction has a [`Shaper`] from `socklab-impair` that decides every datagram's fate;
//! the relay task carries the decisions out with its own timer queue and logs each
//! decision, so a person can see why a datagram never arrived.
//!
//! (Over 600 lines: the relay's loop, its decisions and its departures share the
//! relay's state and must be read together; the addresses and counters live apart.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socklab_impair::{Fate, Nanos, Shaper, Verdict};
use socklab_protocol::Departure;
use socklab_protocol::limits::MAX_LINK_SENT_PER_EVENT;
use socklab_protocol::link::{DropReason, LinkCounters, LinkDir, LinkFate, LinkId, LinkSettings};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

mod addrs;
mod counters;

pub use addrs::LinkAddrs;
use addrs::Registered;
use counters::{Refused, wire_counters, wire_reason};

use crate::budget::SendBudget;
use crate::error::CommandError;
use crate::log::{EventLog, Record};
use crate::udp;

/// How often a link's counters are logged (when they changed).
pub const STATS_INTERVAL: Duration = Duration::from_millis(250);
/// IPv4 + UDP header bytes, counted against the MTU and the rate.
const OVERHEAD_V4: usize = 28;
/// IPv6 + UDP header bytes.
const OVERHEAD_V6: usize = 48;
/// The file descriptors one link holds: its listen and upstream sockets, and the
/// timerfd its departures wait on. Each takes one of the server's socket slots.
pub const DESCRIPTORS: usize = 3;
/// A departure later than this after its plan counts as late in the link's counters.
const LATE_NS: Nanos = 1_000_000;
/// Seeds of the two directions differ so they do not make the same decisions.
const T2C_SEED_SALT: u64 = 0x7432_6321_5eed_5a17;

/// What a link may hold and forward, and where the server's links are.
#[derive(Debug, Clone)]
pub struct LinkLimits {
    /// The most payload bytes in the link at once.
    pub max_bytes: usize,
    /// The session's forwarding budget, shared by its links.
    pub forwarding: Arc<SendBudget>,
    /// Every link's addresses on this server.
    pub addrs: Arc<LinkAddrs>,
}

/// The session's handle on a link's relay task.
#[derive(Debug)]
pub struct LinkHandle {
    /// The link's id in its session.
    pub id: LinkId,
    /// Where clients send to.
    pub listen: SocketAddr,
    /// The address the link sends to the target from.
    pub upstream: SocketAddr,
    /// Where datagrams go.
    pub target: SocketAddr,
    /// The seed of its decisions, fixed when it was created.
    pub seed: u64,
    settings: watch::Sender<LinkSettings>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    _registered: Registered,
    /// Its two places among the server's sockets, given back when the handle goes.
    slot: Option<crate::slots::Slot>,
}

impl LinkHandle {
    /// Opens the link's two sockets and starts its relay. The caller has checked both
    /// addresses against the policy and validated the settings; this refuses a target
    /// that is a link (this one's own listen address included).
    pub fn create(
        id: LinkId,
        listen: SocketAddr,
        target: SocketAddr,
        settings: LinkSettings,
        log: Arc<EventLog>,
        limits: LinkLimits,
        parent: &CancellationToken,
    ) -> Result<Self, CommandError> {
        let to_a_link = || {
            CommandError::bad_address(format!(
                "{target} is a link's address; a link's target must be a socket or a program, not a link (a datagram would go round the links for ever)"
            ))
        };
        if limits.addrs.reaches_a_link(target) {
            return Err(to_a_link());
        }
        let listen_socket = udp::open(listen, None, false)
            .map(|(s, _)| s)
            .map_err(|e| CommandError::from_bind(&e, listen))?;
        let listen = listen_socket
            .local_addr()
            .map_err(|e| CommandError::from_bind(&e, listen))?;
        let upstream_addr: SocketAddr = if target.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let upstream_socket = udp::open(upstream_addr, None, false)
            .map(|(s, _)| s)
            .map_err(|e| CommandError::from_bind(&e, upstream_addr))?;
        let upstream = upstream_socket
            .local_addr()
            .map_err(|e| CommandError::from_bind(&e, upstream_addr))?;
        if target == listen || (listen.ip().is_unspecified() && target.port() == listen.port()) {
            return Err(to_a_link());
        }
        let registered = limits.addrs.add([listen, upstream]);
        let (settings_tx, settings_rx) = watch::channel(settings);
        let cancel = parent.child_token();
        let overhead = if target.is_ipv4() {
            OVERHEAD_V4
        } else {
            OVERHEAD_V6
        };
        let relay = Relay {
            id: id.clone(),
            listen: listen_socket,
            upstream: upstream_socket,
            target,
            upstream_addr: upstream,
            client: None,
            log,
            epoch: Instant::now(),
            c2t: Shaper::new(settings.c2t, settings.seed),
            t2c: Shaper::new(settings.t2c, settings.seed ^ T2C_SEED_SALT),
            overhead,
            timers: BinaryHeap::new(),
            next_order: 0,
            held: HashMap::new(),
            no_client: 0,
            refused: Refused::default(),
            in_link_bytes: 0,
            max_bytes: limits.max_bytes,
            forwarding: limits.forwarding,
            reported: None,
            unannounced: false,
        };
        let span = tracing::info_span!("link", link = %id, %listen, %target);
        let task = tokio::spawn(relay.run(settings_rx, cancel.clone()).instrument(span));
        Ok(LinkHandle {
            id,
            listen,
            upstream,
            target,
            seed: settings.seed,
            settings: settings_tx,
            cancel,
            task,
            _registered: registered,
            slot: None,
        })
    }

    /// Applies new settings from the next datagram on; datagrams already in the link
    /// keep their decisions. The seed is fixed when the link is created.
    pub fn update(&self, settings: LinkSettings) {
        self.settings.send_replace(settings);
    }

    /// Keeps `slot` (its share of the server's socket limit) until this handle goes.
    pub fn holding(mut self, slot: crate::slots::Slot) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Stops the relay and waits until its sockets are closed. Datagrams still in the
    /// link are discarded with it.
    pub async fn close(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(link = %self.id, error = %e, "link task failed");
        }
    }
}

/// A datagram waiting in the link.
#[derive(Debug)]
struct Pending {
    dir: LinkDir,
    /// Its number among the direction's arrivals (a failed send names it).
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    /// The bytes to send (as the link changed them).
    payload: Vec<u8>,
    /// The second copy of a duplicated datagram.
    copy: bool,
}

/// What one pass of the timer sent, per direction, with the instant each left.
#[derive(Debug, Default)]
struct Sent {
    c2t: Vec<(Instant, Departure)>,
    t2c: Vec<(Instant, Departure)>,
}

impl Sent {
    fn of(&mut self, dir: LinkDir) -> &mut Vec<(Instant, Departure)> {
        match dir {
            LinkDir::C2t => &mut self.c2t,
            LinkDir::T2c => &mut self.t2c,
        }
    }

    /// `link_sent` records into `out`: per direction, at most
    /// [`MAX_LINK_SENT_PER_EVENT`] departures each, logged at the time the first of
    /// them left.
    fn records_into(self, link: &LinkId, out: &mut Vec<(Instant, Record)>) {
        for (dir, sent) in [(LinkDir::C2t, self.c2t), (LinkDir::T2c, self.t2c)] {
            for chunk in sent.chunks(MAX_LINK_SENT_PER_EVENT) {
                let record = crate::log::LinkSentRecord {
                    link: link.clone(),
                    dir,
                    sent: chunk.iter().map(|(_, d)| *d).collect(),
                };
                out.push((chunk[0].0, Record::LinkSent(Box::new(record))));
            }
        }
    }
}

/// A scheduled departure; ordered by time, then by scheduling order.
#[derive(Debug)]
struct Scheduled {
    at: Nanos,
    order: u64,
    pending: Pending,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

struct Relay {
    id: LinkId,
    listen: UdpSocket,
    upstream: UdpSocket,
    target: SocketAddr,
    /// The upstream socket's address: a datagram from it to the listen socket is a loop.
    upstream_addr: SocketAddr,
    /// The last address that sent to the listen socket: replies go there.
    client: Option<SocketAddr>,
    log: Arc<EventLog>,
    epoch: Instant,
    c2t: Shaper,
    t2c: Shaper,
    overhead: usize,
    timers: BinaryHeap<Reverse<Scheduled>>,
    next_order: u64,
    /// Held-back datagrams by direction and sequence number.
    held: HashMap<(LinkDir, u64), Pending>,
    /// Replies dropped because no client was known yet.
    no_client: u64,
    /// Datagrams refused before the model saw them.
    refused: Refused,
    /// Payload bytes in the link now (scheduled or held back).
    in_link_bytes: usize,
    /// The most it may hold.
    max_bytes: usize,
    /// The session's forwarding budget.
    forwarding: Arc<SendBudget>,
    /// The counters last logged.
    reported: Option<(LinkCounters, LinkCounters)>,
    /// Decisions logged whose readers have not been woken yet.
    unannounced: bool,
}

impl Relay {
    async fn run(mut self, mut settings: watch::Receiver<LinkSettings>, cancel: CancellationToken) {
        tracing::debug!("link open");
        let mut stats = tokio::time::interval(STATS_INTERVAL);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Departures are due to the nanosecond: a timerfd, not tokio's wheel.
        let mut timer = crate::timer::HiResTimer::new();
        let mut received = Vec::new();
        loop {
            let wake = self
                .next_wake()
                .map(|at| self.epoch + Duration::from_nanos(at));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                changed = settings.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let new = *settings.borrow_and_update();
                    self.c2t.set_settings(new.c2t);
                    self.t2c.set_settings(new.t2c);
                }
                _ = timer.sleep_until(wake) => {}
                ready = self.listen.readable() => {
                    if ready.is_err() { break; }
                    self.drain(LinkDir::C2t, &mut received);
                }
                ready = self.upstream.readable() => {
                    if ready.is_err() { break; }
                    self.drain(LinkDir::T2c, &mut received);
                }
                _ = stats.tick() => self.report(),
            }
            self.depart_due();
            if std::mem::take(&mut self.unannounced) {
                self.log.wake_readers();
            }
        }
        self.report();
        tracing::debug!("link closed");
    }

    fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    fn next_wake(&self) -> Option<Nanos> {
        let timer = self.timers.peek().map(|Reverse(d)| d.at);
        [timer, self.c2t.next_expiry(), self.t2c.next_expiry()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Receives what is ready on one side, decides each datagram's fate, and logs the
    /// decisions together.
    fn drain(&mut self, dir: LinkDir, received: &mut Vec<(Instant, SocketAddr, Vec<u8>)>) {
        let mut records = Vec::new();
        received.clear();
        // One recvmmsg: each datagram with the kernel's time of its arrival, which its
        // departure is planned from (not when this task got round to reading it).
        let socket = match dir {
            LinkDir::C2t => &self.listen,
            LinkDir::T2c => &self.upstream,
        };
        let got = socket.try_io(tokio::io::Interest::READABLE, || {
            udp::recv_batch(socket, usize::MAX, &mut None, |at, from, bytes, _| {
                received.push((at, from, bytes.to_vec()));
            })
        });
        if let Err(e) = got
            && e.kind() != io::ErrorKind::WouldBlock
        {
            tracing::debug!(error = %e, "receive error");
        }
        for (at, from, payload) in received.drain(..) {
            let to = match dir {
                LinkDir::C2t => {
                    // A datagram from its own upstream is a loop, not a new client.
                    if self.client != Some(from) && from != self.upstream_addr {
                        records.push((
                            at,
                            Record::LinkClient(Box::new(crate::log::LinkClientChange {
                                link: self.id.clone(),
                                client: from,
                                previous: self.client,
                            })),
                        ));
                        self.client = Some(from);
                    }
                    Some(self.target)
                }
                LinkDir::T2c => {
                    if from != self.target {
                        self.refused.t2c.not_from_target += 1;
                        let mut packet = self.packet(dir, from, self.client);
                        packet.reason = Some(DropReason::NotFromTarget);
                        records.push((at, Record::LinkPacket(Box::new(packet), payload)));
                        continue;
                    }
                    self.client
                }
            };
            records.push((at, self.arrive(dir, payload, from, to, at)));
        }
        if !records.is_empty() {
            // The readers are woken after the due departures have left (`run`).
            self.log.append_all_quietly(records);
            self.unannounced = true;
        }
    }

    /// A decision on a datagram from `from` to `to`, dropped for no reason yet (the
    /// caller fills in what was decided).
    fn packet(
        &self,
        dir: LinkDir,
        from: SocketAddr,
        to: Option<SocketAddr>,
    ) -> crate::log::LinkPacketRecord {
        crate::log::LinkPacketRecord {
            link: self.id.clone(),
            dir,
            seq: 0,
            from,
            to,
            fate: LinkFate::Dropped,
            reason: None,
            delay_ns: None,
            queue_ns: None,
            duplicated: false,
            corrupted_at: None,
            corrupt_mask: None,
            truncated_to: None,
            held_for: None,
            error: None,
        }
    }

    /// Decides an arrival's fate. `payload` (as it arrived) goes into the decision's
    /// record; a forwarded datagram's own copy is the only other allocation.
    fn arrive(
        &mut self,
        dir: LinkDir,
        payload: Vec<u8>,
        from: SocketAddr,
        to: Option<SocketAddr>,
        at: Instant,
    ) -> Record {
        let now = at.saturating_duration_since(self.epoch).as_nanos() as Nanos;
        let mut packet = self.packet(dir, from, to);
        let Some(to) = to else {
            self.no_client += 1;
            packet.reason = Some(DropReason::NoClient);
            return Record::LinkPacket(Box::new(packet), payload);
        };
        // The relay's own limits come before the model's decisions (which they would
        // otherwise have to undo): nothing the link holds or sends is unbounded.
        let refusal = if dir == LinkDir::C2t && from == self.upstream_addr {
            self.refused.of(dir).looped += 1;
            Some(DropReason::Loop)
        } else if self.in_link_bytes.saturating_add(payload.len()) > self.max_bytes {
            self.refused.of(dir).full += 1;
            Some(DropReason::QueueFull)
        } else if self.forwarding.take(payload.len()).is_err() {
            self.refused.of(dir).rate_limit += 1;
            Some(DropReason::RateLimit)
        } else {
            None
        };
        if let Some(reason) = refusal {
            packet.reason = Some(reason);
            return Record::LinkPacket(Box::new(packet), payload);
        }
        let shaper = match dir {
            LinkDir::C2t => &mut self.c2t,
            LinkDir::T2c => &mut self.t2c,
        };
        let Verdict {
            seq,
            fate,
            released,
        } = shaper.arrive(now, payload.len(), self.overhead);
        packet.seq = seq;
        match fate {
            Fate::Dropped(reason) => packet.reason = Some(wire_reason(reason)),
            Fate::Forwarded(f) => {
                packet.fate = LinkFate::Forwarded;
                packet.delay_ns = Some(f.delay_ns);
                packet.queue_ns = (f.queue_ns > 0).then_some(f.queue_ns);
                packet.duplicated = f.duplicate.is_some();
                packet.corrupted_at = f.corrupt.map(|c| c.offset);
                packet.corrupt_mask = f.corrupt.map(|c| c.mask);
                packet.truncated_to = f.truncate_to;
                packet.held_for = f.held_for;
                let mut bytes = payload.clone();
                if let Some(len) = f.truncate_to {
                    bytes.truncate(len);
                }
                if let Some(c) = f.corrupt {
                    bytes[c.offset] ^= c.mask;
                }
                if let Some(at) = f.duplicate {
                    self.schedule(
                        at,
                        Pending {
                            dir,
                            seq,
                            from,
                            to,
                            payload: bytes.clone(),
                            copy: true,
                        },
                    );
                }
                let pending = Pending {
                    dir,
                    seq,
                    from,
                    to,
                    payload: bytes,
                    copy: false,
                };
                match f.departure {
                    Some(at) => self.schedule(at, pending),
                    None => {
                        self.in_link_bytes += pending.payload.len();
                        self.held.insert((dir, seq), pending);
                    }
                }
            }
        }
        self.release(dir, released);
        Record::LinkPacket(Box::new(packet), payload)
    }

    fn schedule(&mut self, at: Nanos, pending: Pending) {
        self.in_link_bytes += pending.payload.len();
        let order = self.next_order;
        self.next_order += 1;
        self.timers.push(Reverse(Scheduled { at, order, pending }));
    }

    fn release(&mut self, dir: LinkDir, released: Vec<socklab_impair::Release>) {
        for r in released {
            if let Some(pending) = self.held.remove(&(dir, r.seq)) {
                self.in_link_bytes -= pending.payload.len();
                self.schedule(r.departure, pending);
            }
        }
    }

    /// Sends every datagram whose time has come, releasing expired holds first, and
    /// logs when each left (and how late against its plan) beside any failed send.
    fn depart_due(&mut self) {
        let now = self.now();
        let expired = self.c2t.expire(now);
        self.release(LinkDir::C2t, expired);
        let expired = self.t2c.expire(now);
        self.release(LinkDir::T2c, expired);
        if self.timers.peek().is_none_or(|Reverse(d)| d.at > now) {
            return;
        }
        let mut sent = Sent::default();
        let mut failed = Vec::new();
        while self.timers.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(departure)) = self.timers.pop() else {
                break;
            };
            let Pending {
                dir,
                seq,
                from,
                to,
                payload,
                copy,
            } = departure.pending;
            self.in_link_bytes -= payload.len();
            let socket = match dir {
                LinkDir::C2t => &self.upstream,
                LinkDir::T2c => &self.listen,
            };
            // The plan and the outcome: how late it leaves, read just before the send.
            let leaving = Instant::now();
            let late_ns = (leaving.saturating_duration_since(self.epoch).as_nanos() as Nanos)
                .saturating_sub(departure.at);
            let counts = self.refused.of(dir);
            if late_ns > LATE_NS {
                counts.late += 1;
            }
            counts.late_max_ns = counts.late_max_ns.max(late_ns);
            match socket.try_send_to(&payload, to) {
                Ok(_) => sent.of(dir).push((
                    leaving,
                    Departure {
                        seq,
                        t_ns: self.log.t_ns(leaving),
                        late_ns,
                        copy,
                    },
                )),
                Err(e) => {
                    // The datagram is lost after the link said it was forwarded: say
                    // so, or the analysis would blame the loss timeout. (A full send
                    // buffer counts too: on loopback it means the receiver is not
                    // reading.)
                    tracing::debug!(error = %e, %to, "link could not send");
                    self.refused.of(dir).send_failed += 1;
                    let mut packet = self.packet(dir, from, Some(to));
                    packet.seq = seq;
                    packet.reason = Some(DropReason::SendFailed);
                    packet.error = Some(e.to_string().into());
                    failed.push((leaving, Record::LinkPacket(Box::new(packet), payload)));
                }
            }
        }
        let mut records = Vec::new();
        sent.records_into(&self.id, &mut records);
        records.append(&mut failed);
        self.log.append_all(records);
    }

    fn counters(&mut self) -> (LinkCounters, LinkCounters) {
        let now = self.now();
        let held = |dir: LinkDir, held: &HashMap<(LinkDir, u64), Pending>| {
            held.keys().filter(|(d, _)| *d == dir).count() as u64
        };
        let c2t = wire_counters(
            &mut self.c2t,
            now,
            0,
            self.refused.c2t,
            held(LinkDir::C2t, &self.held),
        );
        let t2c = wire_counters(
            &mut self.t2c,
            now,
            self.no_client,
            self.refused.t2c,
            held(LinkDir::T2c, &self.held),
        );
        (c2t, t2c)
    }

    /// Logs the counters if they changed since the last report.
    fn report(&mut self) {
        let counters = self.counters();
        if self.reported == Some(counters) {
            return;
        }
        self.reported = Some(counters);
        self.log.append(
            Instant::now(),
            Record::LinkStats {
                link: self.id.clone(),
                counters: Box::new(counters),
            },
        );
    }
}
