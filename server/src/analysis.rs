//! The session's flow analysis: a task that reads the session's log like a viewer,
//! feeds `socklab-analysis`, and logs what it concludes (`fate` events) and the flows'
//! figures (`flow_stats`, at a bounded rate).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socklab_analysis::{Analyzer, FlowKey, Input, Limits, LossCause, Outcome, RunFigures};
use socklab_protocol::flow::{self, DropCount, FateKind, FlowMethod, FlowSummary, Latency};
use socklab_protocol::{Direction, EventId, SocketId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::aggregate::Aggregates;
use crate::log::{EventLog, FateRecord, FlowEnds, FlowStatsRecord, Record};

/// How often in-flight datagrams are checked against the loss timeout.
pub const TICK: Duration = Duration::from_millis(100);
/// Flow figures are logged at most once per this many ticks (when they changed).
const STATS_EVERY_TICKS: u32 = 5;
/// How many log entries one pass reads.
const READ_BATCH: usize = 4096;
/// After a pass that found new entries, the analysis reads again this much later rather
/// than waking for every batch the socket tasks log. Under load it then reads many
/// entries per wake-up, and its wake-ups stop pulling a second worker thread onto the
/// packet path (the server's context switches per datagram fell by half, its
/// throughput rose about a fifth). A conclusion comes at most this much later; an idle
/// session goes back to waiting for the log.
const READ_EVERY: Duration = Duration::from_millis(10);

/// Runs until `cancel`; `timeout_ms` carries the loss timeout (adjustable live).
pub async fn run(
    log: Arc<EventLog>,
    aggregates: Arc<std::sync::Mutex<Aggregates>>,
    mut timeout_ms: watch::Receiver<u64>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let mut analyzer = Analyzer::with_limits(*timeout_ms.borrow_and_update() * 1_000_000, limits);
    let mut newest = log.subscribe();
    let mut cursor = EventId::BEFORE_FIRST;
    // When to read next; meanwhile the log is not watched. None: idle, wake on news.
    let mut next_read: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    let mut reported: Option<Vec<FlowSummary>> = None;
    let mut outcomes = Vec::new();
    let mut sockets = HashMap::new();
    let mut flows = FlowEndsCache::new();
    let mut listeners = crate::listeners::Listeners::default();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            changed = timeout_ms.changed() => {
                if changed.is_err() { break; }
                analyzer.set_timeout_ns(*timeout_ms.borrow_and_update() * 1_000_000);
            }
            changed = newest.changed(), if next_read.is_none() => {
                if changed.is_err() { break; }
                // Due at once: the timer helper returns at once for a time already past.
                next_read = Some(tokio::time::Instant::now());
            }
            () = crate::timer::sleep_until(next_read) => {
                // What is logged from here on is read now or by a later pass.
                newest.borrow_and_update();
                let before = cursor;
                cursor = read_new(&log, &aggregates, cursor, &mut analyzer, &mut sockets, &mut outcomes);
                next_read = (cursor != before).then(|| tokio::time::Instant::now() + READ_EVERY);
            }
            _ = tick.tick() => {
                cursor = read_new(&log, &aggregates, cursor, &mut analyzer, &mut sockets, &mut outcomes);
                analyzer.tick(log.t_ns(Instant::now()), &mut outcomes);
                ticks += 1;
                if ticks.is_multiple_of(STATS_EVERY_TICKS) {
                    let flows: Vec<FlowSummary> = analyzer.stats().iter().map(summary).collect();
                    // The runs' figures take a tick's conclusions after this (below), so
                    // they may change when the flows' no longer do.
                    if !flows.is_empty()
                        && (reported.as_ref() != Some(&flows) || analyzer.runs().has_changed())
                    {
                        reported = Some(flows.clone());
                        let runs = analyzer.runs().take_changed().iter().map(run_flows).collect();
                        log.append(Instant::now(), Record::FlowStats(Box::new(FlowStatsRecord {
                            flows,
                            retired_flows: analyzer.retired_flows(),
                            untracked: analyzer.untracked(),
                            runs,
                        })));
                    }
                }
            }
        }
        if !outcomes.is_empty() {
            let now = Instant::now();
            if flows.len() > MAX_FLOW_ENDS {
                flows.clear();
            }
            log.append_all(outcomes.drain(..).map(|o| {
                analyzer.runs().outcome(&o);
                let mut fate = fate(o, &mut flows);
                // A timeout towards a loopback port nobody is bound to: say so.
                if fate.cause == Some(flow::LossCause::Timeout)
                    && fate
                        .flow
                        .dst
                        .socket_addr()
                        .is_some_and(|dst| listeners.anybody_bound(dst) == Some(false))
                {
                    fate.cause = Some(flow::LossCause::NoListener);
                }
                if fate.kind != FateKind::Duplicate {
                    fate.decision = analyzer
                        .take_decision(fate.send)
                        .and_then(|d| std::num::NonZeroU64::new(d.0));
                }
                (now, Record::Fate(fate))
            }));
        }
    }
}

/// Each flow's ends, shared by its fate records. Cleared when it holds more than
/// [`MAX_FLOW_ENDS`] (flows come and go; records keep their own `Arc`).
type FlowEndsCache = HashMap<FlowKey, Arc<FlowEnds>>;
const MAX_FLOW_ENDS: usize = 4096;

/// Lab sockets' addresses by id, so a `closed` event can name the address it frees.
type Sockets = HashMap<SocketId, socklab_protocol::Endpoint>;

/// Feeds every entry after `cursor` to the analyzer; returns the new cursor.
fn read_new(
    log: &EventLog,
    aggregates: &std::sync::Mutex<Aggregates>,
    mut cursor: EventId,
    analyzer: &mut Analyzer,
    sockets: &mut Sockets,
    out: &mut Vec<Outcome>,
) -> EventId {
    loop {
        let read = log.read_after(cursor, READ_BATCH);
        if let Some((from, to)) = read.gap {
            tracing::warn!(
                from = from.0,
                to = to.0,
                "flow analysis missed events the log dropped"
            );
        }
        let mut counts = aggregates.lock().unwrap_or_else(|e| e.into_inner());
        for entry in &read.entries {
            counts.feed(entry.id, entry.t_ns, &entry.record, log);
            feed(analyzer, sockets, &entry.record, entry.id, entry.t_ns, out);
            cursor = entry.id;
        }
        if !read.more {
            return cursor;
        }
    }
}

fn feed(
    analyzer: &mut Analyzer,
    sockets: &mut Sockets,
    record: &Record,
    id: EventId,
    t_ns: u64,
    out: &mut Vec<Outcome>,
) {
    // A datagram's sender or destination, as the analyzer borrows it.
    let peer;
    let closed;
    let input = match record {
        Record::Bound(b) => {
            sockets.insert(b.socket.clone(), b.local.clone());
            Input::Bound {
                addr: &b.local,
                read_size: b.recv_size.map(|n| n as usize),
            }
        }
        Record::Closed { socket, .. } => match sockets.remove(socket) {
            Some(addr) => {
                closed = addr;
                Input::Closed { addr: &closed }
            }
            None => return,
        },
        Record::Datagram(d) => {
            peer = d.peer.endpoint();
            match d.dir {
                Direction::Out => Input::Sent {
                    id,
                    t_ns,
                    local: &d.socket.local,
                    peer: &peer,
                    bytes: &d.payload,
                },
                Direction::In => Input::Received {
                    id,
                    t_ns,
                    local: &d.socket.local,
                    peer: &peer,
                    bytes: &d.payload,
                },
            }
        }
        Record::LinkCreated(c) => Input::LinkCreated {
            link: &c.link,
            listen: c.listen,
            upstream: c.upstream,
            target: c.target,
        },
        Record::LinkDeleted { link, .. } => Input::LinkDeleted { link },
        Record::LinkClient(change) => Input::LinkClient {
            link: &change.link,
            client: change.client,
        },
        Record::LinkPacket(p, bytes) => {
            analyzer.feed(
                Input::LinkDecision {
                    id,
                    t_ns,
                    link: &p.link,
                    dir: p.dir,
                    seq: p.seq,
                    duplicated: p.duplicated,
                    from: p.from,
                    to: p.to,
                    bytes,
                    fate: p.fate,
                    reason: p.reason,
                    corrupted: p.corrupted_at.zip(p.corrupt_mask),
                    truncated_to: p.truncated_to,
                },
                out,
            );
            return;
        }
        Record::LinkSent(sent) => {
            for d in &sent.sent {
                analyzer.feed(
                    Input::LinkSent {
                        link: &sent.link,
                        dir: sent.dir,
                        seq: d.seq,
                        t_ns: d.t_ns,
                    },
                    out,
                );
            }
            return;
        }
        Record::KernelDrops {
            socket, dropped, ..
        } => Input::KernelDrops {
            addr: &socket.local,
            dropped: *dropped,
        },
        Record::Stream(s) => Input::Stream {
            t_ns,
            local: s.socket.local,
            peer: s.peer,
            out: s.dir == Direction::Out,
            offset: s.offset,
            len: s.payload.len(),
        },
        Record::Unreachable(u) => Input::Unreachable {
            local: &u.socket.local,
            to: u.to,
            bytes: &u.payload,
            refused: u.reason == socklab_protocol::UnreachableReason::PortUnreachable,
        },
        Record::RunMarked { run, .. } => {
            // The sends after it are its own (the analyzer counts them as it routes them).
            analyzer.runs().mark(id, *run);
            return;
        }
        Record::AnalysisConfig { match_field, .. } => {
            // In log order, so requests logged after it are indexed by it.
            analyzer.set_match_field(*match_field);
            return;
        }
        Record::LinkUpdated { .. }
        | Record::Connected { .. }
        | Record::Accepted(_)
        | Record::StreamEnd(_)
        | Record::TcpLinkCreated(_)
        | Record::TcpLinkConn(_)
        | Record::TcpLinkChunk(_)
        | Record::TcpLinkEnd(_)
        | Record::ShutDown { .. }
        | Record::Paused { .. }
        | Record::Membership(_)
        | Record::LinkStats { .. }
        | Record::GeneratorStarted(_)
        | Record::GeneratorDone(_)
        | Record::FlowStats(_)
        | Record::RecordingStarted(_)
        | Record::RecordingStopped { .. }
        | Record::Fate(_) => return,
    };
    analyzer.feed(input, out);
}

fn fate(outcome: Outcome, flows: &mut FlowEndsCache) -> FateRecord {
    let id = |e: EventId| std::num::NonZeroU64::new(e.0);
    let by_order = matches!(outcome, Outcome::Reply { by_order: true, .. });
    let by_field = matches!(outcome, Outcome::Reply { by_field: true, .. });
    let (kind, send, recv, latency_ns, reordered_by, late, cause_of, flow) = match outcome {
        Outcome::Delivered {
            send,
            recv,
            flow,
            latency_ns,
            reordered_by,
            late,
        } => (
            FateKind::Delivered,
            send,
            id(recv),
            Some(latency_ns),
            reordered_by,
            late,
            None,
            flow,
        ),
        Outcome::Duplicate { send, recv, flow } => (
            FateKind::Duplicate,
            send,
            id(recv),
            None,
            0,
            false,
            None,
            flow,
        ),
        Outcome::Lost { send, flow, cause } => (
            FateKind::Lost,
            send,
            None,
            None,
            0,
            false,
            Some(cause),
            flow,
        ),
        Outcome::Untracked { send, flow } => {
            (FateKind::Untracked, send, None, None, 0, false, None, flow)
        }
        Outcome::Reply {
            request,
            response,
            flow,
            rtt_ns,
            by_order: _,
            by_field: _,
        } => (
            FateKind::Reply,
            request,
            id(response),
            Some(rtt_ns),
            0,
            false,
            None,
            flow,
        ),
        Outcome::Unanswered {
            request,
            flow,
            cause,
        } => (
            FateKind::Unanswered,
            request,
            None,
            None,
            0,
            false,
            Some(cause),
            flow,
        ),
    };
    let (cause, reason) = match cause_of {
        Some(LossCause::Link(reason)) => (Some(flow::LossCause::Link), Some(reason)),
        Some(LossCause::Kernel) => (Some(flow::LossCause::Kernel), None),
        Some(LossCause::Timeout) => (Some(flow::LossCause::Timeout), None),
        Some(LossCause::Refused) => (Some(flow::LossCause::Refused), None),
        Some(LossCause::Unreachable) => (Some(flow::LossCause::Unreachable), None),
        None => (None, None),
    };
    FateRecord {
        flow: match flows.get(&flow) {
            Some(ends) => ends.clone(),
            None => {
                let ends = Arc::new(FlowEnds {
                    src: flow.src.clone(),
                    dst: flow.dst.clone(),
                });
                flows.insert(flow, ends.clone());
                ends
            }
        },
        kind,
        send,
        recv,
        decision: None,
        latency_ns,
        reordered_by: u32::try_from(reordered_by).unwrap_or(u32::MAX),
        late,
        by_order,
        by_field,
        cause,
        reason,
    }
}

fn run_flows(r: &RunFigures) -> flow::RunFlows {
    flow::RunFlows {
        run: r.run,
        flows: r.flows.iter().map(summary).collect(),
        partial: r.partial,
    }
}

fn summary(s: &socklab_analysis::FlowStats) -> FlowSummary {
    FlowSummary {
        src: s.src.clone(),
        dst: s.dst.clone(),
        via: s.via.clone(),
        method: match s.method {
            socklab_analysis::Method::Matched => FlowMethod::Matched,
            socklab_analysis::Method::Sequenced => FlowMethod::Sequenced,
            socklab_analysis::Method::Echo => FlowMethod::Echo,
            socklab_analysis::Method::Link => FlowMethod::Link,
            socklab_analysis::Method::Stream => FlowMethod::Stream,
        },
        seq_flow: s.seq_flow,
        sent: s.sent,
        received: s.received,
        lost: s.lost,
        lost_pct: (s.lost_pct() * 100.0).round() / 100.0,
        reordered: s.reordered,
        duplicated: s.duplicated,
        in_flight: s.in_flight,
        latency_ns: s.latency.map(|p| Latency {
            min: p.min,
            p50: p.p50,
            p99: p.p99,
            max: p.max,
        }),
        jitter_ns: s.jitter_ns.map(|j| j.round()),
        latency_cdf_ns: s.latency_cdf.clone(),
        drops: s
            .drops
            .iter()
            .map(|&(reason, count)| DropCount { reason, count })
            .collect(),
    }
}
