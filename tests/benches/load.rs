//! The load driver: many concurrent sessions, each with 4 sockets exchanging datagrams
//! through server-side generators, against a separate `socklab` process. Prints event
//! delivery latency, completeness and the server's peak memory. Bounded in count and
//! time; loopback only. Run by `cargo xtask bench` (which builds the server binary and
//! passes it as SOCKLAB_BIN).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use socklab_protocol::Event;
use socklab_protocol::flow::{Amount, GeneratorPace, GeneratorPayload, GeneratorSpec};
use socklab_protocol::{Command, SocketId};
use socklab_tests::Client;
use socklab_tests::bench::{Median, Report, ServerProcess, Spread, Spreads};

const TOKEN: &str = "load-bench";

struct Outcome {
    events: u64,
    holes: u64,
    gaps: u64,
    /// Delivery latency samples, ns, above the best one seen in the session.
    latencies: Vec<i64>,
}

async fn session(addr: SocketAddr, seconds: u64, per_session_rate: f64) -> Outcome {
    let mut client = Client::connect_with(addr, &format!("token={TOKEN}"))
        .await
        .expect("a session");
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(client.bind("127.0.0.1:0").await);
    }
    for i in 0..4 {
        let to = sockets[(i + 1) % 4].local.clone();
        client
            .send(Command::Generate(GeneratorSpec {
                socket: SocketId::new(sockets[i].socket.as_str()),
                to: to.to_string(),
                amount: Amount::DurationMs(seconds * 1000),
                pace: GeneratorPace::Rate(per_session_rate / 4.0),
                payload: GeneratorPayload::Size(64),
                sequence: true,
            }))
            .await;
    }
    let started = Instant::now();
    let mut outcome = Outcome {
        events: 0,
        holes: 0,
        gaps: 0,
        latencies: Vec::new(),
    };
    let mut last_id = sockets[3].id.0;
    let mut done = 0;
    let mut raw = Vec::new();
    let deadline = started + Duration::from_secs(seconds + 30);
    while done < 4 && Instant::now() < deadline {
        let Some(event) = client.next_or_closed().await else {
            break;
        };
        let arrived = started.elapsed().as_nanos() as i64;
        if let Some(id) = event.id() {
            if id.0 != last_id + 1 {
                outcome.holes += 1;
            }
            last_id = id.0;
            outcome.events += 1;
        }
        match &event {
            Event::Gap(_) => outcome.gaps += 1,
            Event::GeneratorDone(_) => done += 1,
            Event::Datagram(d) => raw.push(arrived - d.t_ns as i64),
            _ => {}
        }
    }
    // The session's clock started a little before ours: measure above the best sample.
    let best = raw.iter().copied().min().unwrap_or(0);
    outcome.latencies = raw.into_iter().map(|l| l - best).collect();
    outcome
}

/// A memory figure of a process from /proc, KiB (`VmHWM` peak, `VmRSS` now).
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn peak_memory_kib(pid: u32) -> u64 {
    memory_kib(pid, "VmHWM:")
}

/// Memory per idle session, and per 100,000 logged events, from the server's RSS.
async fn memory_costs(addr: SocketAddr, pid: u32, idle: usize, datagrams: u64) -> (f64, f64) {
    let before = memory_kib(pid, "VmRSS:");
    let mut clients = Vec::new();
    for _ in 0..idle {
        clients.push(
            Client::connect_with(addr, &format!("token={TOKEN}"))
                .await
                .expect("a session"),
        );
    }
    let per_idle = (memory_kib(pid, "VmRSS:").saturating_sub(before)) as f64 / idle as f64;
    drop(clients);
    // One session logs `datagrams` datagrams between two sockets (out, in and fate: three
    // events each), with a viewer reading them all.
    let mut client = Client::connect_with(addr, &format!("token={TOKEN}"))
        .await
        .expect("a session");
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let before = memory_kib(pid, "VmRSS:");
    client
        .send(Command::Generate(GeneratorSpec {
            socket: SocketId::new(a.socket.as_str()),
            to: b.local.to_string(),
            amount: Amount::Count(datagrams),
            pace: GeneratorPace::Rate(50_000.0),
            payload: GeneratorPayload::Size(64),
            sequence: true,
        }))
        .await;
    let mut events = 0u64;
    while let Some(event) = client.next_or_closed().await {
        if event.id().is_some() {
            events += 1;
        }
        if matches!(event, Event::GeneratorDone(_)) {
            break;
        }
    }
    let grown = memory_kib(pid, "VmRSS:").saturating_sub(before) as f64;
    (per_idle, grown / events.max(1) as f64 * 100_000.0)
}

/// The figures of one run, each against a fresh server process.
struct Run {
    per_idle_kib: f64,
    per_100k_kib: f64,
    events: u64,
    events_per_sec: f64,
    holes: u64,
    gaps: u64,
    latency: Spread,
    peak_kib: u64,
    idle_kib: u64,
}

async fn run(smoke: bool, sessions: usize, seconds: u64, per_session_rate: f64) -> Run {
    let server = ServerProcess::start(TOKEN, &["--max-sessions", "1000"]);
    let addr = server.addr;
    let idle_kib = peak_memory_kib(server.pid());
    let (per_idle_kib, per_100k_kib) = memory_costs(
        addr,
        server.pid(),
        if smoke { 5 } else { 50 },
        if smoke { 5_000 } else { 50_000 },
    )
    .await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..sessions)
        .map(|_| tokio::spawn(session(addr, seconds, per_session_rate)))
        .collect();
    let mut latencies = Vec::new();
    let (mut events, mut holes, mut gaps) = (0, 0, 0);
    for task in tasks {
        let o = task.await.expect("a session task");
        events += o.events;
        holes += o.holes;
        gaps += o.gaps;
        latencies.extend(o.latencies);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let peak_kib = peak_memory_kib(server.pid());
    drop(server);
    Run {
        per_idle_kib,
        per_100k_kib,
        events,
        events_per_sec: events as f64 / elapsed,
        holes,
        gaps,
        latency: Spread::of(&mut latencies),
        peak_kib,
        idle_kib,
    }
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (sessions, seconds, runs) = if smoke { (10, 1, 1) } else { (200, 10, 3) };
    let per_session_rate = 100.0;
    println!(
        "load: {sessions} sessions x 4 sockets, {per_session_rate} datagrams/s per session, {seconds} s; median of {runs} run(s) (min..max), a fresh server each"
    );
    let mut all = Vec::new();
    for _ in 0..runs {
        all.push(run(smoke, sessions, seconds, per_session_rate).await);
    }
    let median = |f: fn(&Run) -> f64| Median::of(all.iter().map(f));
    let (per_idle, per_100k, rate, peak, idle) = (
        median(|r| r.per_idle_kib),
        median(|r| r.per_100k_kib / 1024.0),
        median(|r| r.events_per_sec),
        median(|r| r.peak_kib as f64 / 1024.0),
        median(|r| r.idle_kib as f64 / 1024.0),
    );
    let latency = Spreads::of(&all.iter().map(|r| r.latency).collect::<Vec<_>>());
    let holes = all.iter().map(|r| r.holes).max().unwrap_or(0);
    let gaps = all.iter().map(|r| r.gaps).max().unwrap_or(0);
    let events = all.iter().map(|r| r.events).min().unwrap_or(0);
    println!(
        "memory                per idle session {} KiB; per 100,000 logged events {} MiB",
        per_idle.show(0),
        per_100k.show(1)
    );
    println!(
        "events delivered      at least {events} per run, {} /s",
        rate.show(0)
    );
    println!("holes in id order     {holes}   gap events {gaps} (worst run)");
    println!(
        "delivery latency      {}  (datagram event, above the best in its session)",
        latency.show_ms()
    );
    println!(
        "server peak memory    {} MiB (idle {} MiB)",
        peak.show(1),
        idle.show(1)
    );
    let mut report = Report::new("load", smoke);
    report.add(json!({
        "sessions": sessions, "seconds": seconds, "datagrams_per_sec_per_session": per_session_rate,
        "memory_per_idle_session_kib": per_idle.json(), "memory_per_100k_events_mib": per_100k.json(),
        "events_per_run_min": events, "events_per_sec": rate.json(), "holes": holes, "gaps": gaps,
        "latency": latency.json(), "peak_memory_mib": peak.json(), "idle_memory_mib": idle.json(),
    }));
    report.write();
}
