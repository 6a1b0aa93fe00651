//! The soak: every hostile pattern of the robustness issue at once against one
//! `socklab` process, for a bounded time, while a well-behaved session streams 1,000
//! datagrams a second. It passes (exit 0) when the server never exits, `GET /` answers
//! throughout, the well-behaved session misses nothing (no hole in its event ids, no
//! `gap`, every datagram it sent also received) and the server's memory stays below
//! [`RSS_BOUND_MIB`]. It prints peak memory and the worst `GET /` latency; those are
//! figures, not pass conditions (tests never fail on wall-clock time). Loopback only;
//! every loop is bounded in count and time. `cargo xtask bench --smoke` (part of the
//! test command) runs it for 20 s, `cargo xtask bench` for 120 s.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use socklab_protocol::flow::{Amount, GeneratorPace, GeneratorPayload, GeneratorSpec};
use socklab_protocol::link::{Impairments, LinkSettings};
use socklab_protocol::{BindSpec, Command, Event};
use socklab_tests::bench::{Report, ServerProcess};
use socklab_tests::{Client, IpEndpoint as _};

const TOKEN: &str = "soak";
/// The server's resident memory must stay below this (documented in
/// docs/benchmarks.md): the sessions' logs (at most 64 MiB of payloads and 200,000
/// events each), links (16 MiB each) and the analysis' bounded tables.
const RSS_BOUND_MIB: u64 = 1_536;
/// How long `GET /` may take before it counts as not answering.
const GET_TIMEOUT: Duration = Duration::from_secs(5);
/// The well-behaved session's rate.
const GOOD_RATE: f64 = 1_000.0;

/// A session that is told to stop.
fn stopping(until: Instant) -> bool {
    Instant::now() >= until
}

async fn connect(addr: SocketAddr) -> Client {
    Client::connect_with(addr, &format!("token={TOKEN}"))
        .await
        .expect("a session")
}

fn generate(socket: &str, to: SocketAddr, count: u64, rate: f64, size: usize) -> Command {
    Command::Generate(GeneratorSpec {
        socket: socklab_protocol::SocketId::new(socket),
        to: to.to_string(),
        amount: Amount::Count(count),
        pace: GeneratorPace::Rate(rate),
        payload: GeneratorPayload::Size(size),
        sequence: size >= 24,
    })
}

/// Reads and drops whatever the server sends until `until`, so that a hostile
/// session's own viewer is not what slows it down.
async fn drain(client: &mut Client, until: Instant) {
    while !stopping(until) {
        if tokio::time::timeout(Duration::from_millis(200), client.next_text())
            .await
            .is_ok_and(|frame| frame.is_none())
        {
            return;
        }
    }
}

/// Commands that once crashed the server or panicked a connection, over and over.
async fn crashers(addr: SocketAddr, until: Instant) -> u64 {
    let mut client = connect(addr).await;
    client.bind("127.0.0.1:0").await;
    let commands = [
        r#"{"type":"generate","socket":"s1","to":"127.0.0.1:9","amount":{"count":1},"rate":1,"size":1125899906842624}"#,
        r#"{"type":"generate","socket":"s1","to":"127.0.0.1:9","amount":{"count":1},"rate":1e-300}"#,
        r#"{"type":"generate","socket":"s1","to":"127.0.0.1:9","amount":{"count":1},"interval_ms":1e306}"#,
        r#"{"type":"generate","socket":"s1","to":"127.0.0.1:9","amount":{"duration_ms":1000},"rate":1e-300}"#,
        r#"{"type":"link_create","listen":"127.0.0.1:0","target":"127.0.0.1:9","settings":{"c2t":{"rate_bps":1,"queue_packets":0}}}"#,
        r#"{"type":"set_loss_timeout","ms":18446744073709551615}"#,
    ];
    let mut answered = 0;
    let mut req = 0i64;
    while !stopping(until) {
        for c in commands {
            req += 1;
            let mut v: serde_json::Value = serde_json::from_str(c).unwrap();
            v["req"] = json!(req);
            client.send_text(&v.to_string()).await;
            client.reply(req).await;
            answered += 1;
        }
        // A `since` that once wrapped.
        let _ = Client::connect_with(
            addr,
            &format!(
                "token={TOKEN}&session={}&since={}",
                client.hello.session,
                u64::MAX
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answered
}

/// A generator at the fastest rate to a port where nothing listens: the analysis
/// follows every datagram in flight until the timeout (once quadratic).
async fn silent_flood(addr: SocketAddr, until: Instant, seconds: u64) {
    let mut client = connect(addr).await;
    let a = client.bind("127.0.0.1:0").await;
    let silent = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Under 24 bytes there is no sequence header: every payload is the same zero bytes.
    client
        .send(generate(
            a.socket.as_str(),
            silent,
            (100_000 * seconds).min(1_000_000),
            100_000.0,
            20,
        ))
        .await;
    drain(&mut client, until).await;
}

/// Links that would circulate a datagram for ever: at itself (refused), at another link
/// (refused), and through a program that answers whoever sends (bounded by the
/// forwarding budget).
async fn loops(addr: SocketAddr, until: Instant) {
    let mut client = connect(addr).await;
    let program = UdpSocket::bind("127.0.0.1:0").unwrap();
    program
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let link = client
        .link(
            "127.0.0.1:0",
            program.local_addr().unwrap(),
            LinkSettings::default(),
        )
        .await;
    client
        .send(Command::LinkCreate {
            listen: "127.0.0.1:0".into(),
            target: link.listen.to_string(),
            settings: LinkSettings::default(),
        })
        .await;
    let listen = link.listen;
    let reflector = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut echoed = 0u64;
        while Instant::now() < until {
            // Restart the loop whenever the budget has ended it.
            let _ = program.send_to(b"round", listen);
            while let Ok((n, from)) = program.recv_from(&mut buf) {
                let _ = program.send_to(&buf[..n], from);
                echoed += 1;
                if Instant::now() >= until {
                    break;
                }
            }
        }
        echoed
    });
    drain(&mut client, until).await;
    let _ = tokio::task::spawn_blocking(move || reflector.join()).await;
}

/// Large datagrams with the longest loss timeout: the analysis once kept every payload.
async fn big_payloads(addr: SocketAddr, until: Instant) {
    let mut client = connect(addr).await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    client.send(Command::SetLossTimeout { ms: 600_000 }).await;
    client
        .send(generate(
            a.socket.as_str(),
            b.local.addr(),
            10_000,
            1_000.0,
            60_000,
        ))
        .await;
    drain(&mut client, until).await;
}

/// A local program (no token needed) making up a new sequenced flow per datagram.
fn flow_ids(target: SocketAddr, until: Instant) -> u64 {
    let program = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0u64;
    let mut bytes = vec![0u8; 32];
    while Instant::now() < until && sent < 5_000_000 {
        for _ in 0..200 {
            socklab_analysis::seqhdr::SeqHeader {
                flow: sent as u32,
                seq: 0,
                sent_ns: 0,
            }
            .write(&mut bytes);
            let _ = program.send_to(&bytes, target);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sent
}

async fn made_up_flows(addr: SocketAddr, until: Instant) {
    let mut client = connect(addr).await;
    let a = client.bind("127.0.0.1:0").await;
    let target = a.local;
    let program = tokio::task::spawn_blocking(move || flow_ids(target.addr(), until));
    drain(&mut client, until).await;
    let _ = program.await;
}

/// A link with a minute of delay, pushed full of large datagrams.
async fn delay_line(addr: SocketAddr, until: Instant) {
    let mut client = connect(addr).await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let link = client
        .link(
            "127.0.0.1:0",
            b.local.addr(),
            LinkSettings::symmetric(Impairments {
                delay_ms: 60_000.0,
                queue_packets: 0,
                ..Impairments::default()
            }),
        )
        .await;
    client
        .send(generate(
            a.socket.as_str(),
            link.listen,
            20_000,
            2_000.0,
            60_000,
        ))
        .await;
    drain(&mut client, until).await;
}

/// Viewers of one session that never read, more than it may have.
async fn stalled_viewers(addr: SocketAddr, until: Instant) -> usize {
    let mut owner = connect(addr).await;
    let a = owner.bind("127.0.0.1:0").await;
    let b = owner.bind("127.0.0.1:0").await;
    owner
        .send(generate(
            a.socket.as_str(),
            b.local.addr(),
            100_000,
            2_000.0,
            1_000,
        ))
        .await;
    let mut stalled = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        match Client::connect_with(
            addr,
            &format!("token={TOKEN}&session={}&since=0", owner.hello.session),
        )
        .await
        {
            Ok(c) => stalled.push(c),
            Err(_) => refused += 1,
        }
    }
    drain(&mut owner, until).await;
    drop(stalled);
    refused
}

/// Sessions binding sockets until the server's limit refuses them.
async fn socket_hoarders(addr: SocketAddr, until: Instant) -> u64 {
    let mut refusals = 0;
    let mut sessions = Vec::new();
    'outer: for _ in 0..20 {
        let Ok(mut client) = Client::connect_with(addr, &format!("token={TOKEN}")).await else {
            break;
        };
        for _ in 0..64 {
            let req = client.send(Command::Bind(BindSpec::default())).await;
            if let Event::Error(_) = client.reply(req).await {
                refusals += 1;
                if refusals > 3 {
                    sessions.push(client);
                    break 'outer;
                }
            }
        }
        sessions.push(client);
    }
    while !stopping(until) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refusals
}

/// What the well-behaved session saw.
#[derive(Debug, Default)]
struct Good {
    events: u64,
    holes: u64,
    gaps: u64,
    sent: u64,
    received: u64,
}

async fn good_session(client: &mut Client, seconds: u64, until: Instant) -> Good {
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let count = (GOOD_RATE as u64) * seconds;
    let req = client
        .send(generate(
            a.socket.as_str(),
            b.local.addr(),
            count,
            GOOD_RATE,
            64,
        ))
        .await;
    let mut good = Good::default();
    let mut last_id = b.id.0;
    let deadline = until + Duration::from_secs(30);
    let mut done = false;
    // The generator's `generator_done` may come before its last datagrams' events (it
    // is logged when the last one is queued): wait for all of them.
    while Instant::now() < deadline && !(done && good.sent >= count && good.received >= count) {
        let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), client.next_or_closed()).await
        else {
            break;
        };
        if let Some(id) = event.id() {
            if id.0 != last_id + 1 {
                good.holes += 1;
            }
            last_id = id.0;
            good.events += 1;
        }
        match &event {
            Event::Gap(_) => good.gaps += 1,
            Event::GeneratorDone(d) if d.req.is_none() || d.req == Some(req) => {
                if let Some(error) = &d.error {
                    println!("  the good session's generator stopped: {error}");
                }
                done = true
            }
            Event::Datagram(d) if d.dir == socklab_protocol::Direction::Out => good.sent += 1,
            Event::Datagram(d) if d.dir == socklab_protocol::Direction::In => good.received += 1,
            _ => {}
        }
    }
    good
}

fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `GET /` every 100 ms until `until`: the worst time to an answer, and the requests
/// that got none within [`GET_TIMEOUT`].
async fn page_prober(addr: SocketAddr, until: Instant) -> (Duration, u64, u64) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut worst, mut failed, mut asked) = (Duration::ZERO, 0, 0);
    while !stopping(until) {
        let started = Instant::now();
        let answer = tokio::time::timeout(GET_TIMEOUT, async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream
                .write_all(
                    format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .ok()?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await.ok()?;
            Some(head)
        })
        .await;
        asked += 1;
        match answer {
            Ok(Some(head)) if head.starts_with(b"HTTP/1.1 ") => {
                worst = worst.max(started.elapsed())
            }
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (worst, failed, asked)
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let seconds: u64 = if smoke { 20 } else { 120 };
    println!(
        "soak: every hostile pattern at once for {seconds} s against one socklab process, while a session streams {GOOD_RATE} datagrams/s"
    );
    let server = ServerProcess::start(TOKEN, &["--max-sockets", "600"]);
    let addr = server.addr;
    let pid = server.pid();

    // The well-behaved session starts first: the hoarders must not take its sockets.
    let mut good_client = connect(addr).await;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let peak_rss = Arc::new(AtomicU64::new(0));
    let alive = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (peak_rss, alive) = (peak_rss.clone(), alive.clone());
        tokio::spawn(async move {
            while !stopping(until + Duration::from_secs(5)) {
                match memory_kib(pid, "VmRSS:") {
                    Some(kib) => {
                        peak_rss.fetch_max(kib, Ordering::Relaxed);
                    }
                    None => alive.store(false, Ordering::Relaxed),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let prober = tokio::spawn(page_prober(addr, until));
    let hostile = vec![
        tokio::spawn(async move {
            let n = crashers(addr, until).await;
            println!("  crashing commands answered: {n}");
        }),
        tokio::spawn(silent_flood(addr, until, seconds)),
        tokio::spawn(silent_flood(addr, until, seconds)),
        tokio::spawn(loops(addr, until)),
        tokio::spawn(big_payloads(addr, until)),
        tokio::spawn(made_up_flows(addr, until)),
        tokio::spawn(delay_line(addr, until)),
        tokio::spawn(async move {
            let refused = stalled_viewers(addr, until).await;
            println!("  viewers refused beyond the limit: {refused}");
        }),
        tokio::spawn(async move {
            let refused = socket_hoarders(addr, until).await;
            println!("  binds refused at the socket limit: {refused}");
        }),
    ];
    let good = good_session(&mut good_client, seconds, until).await;
    for task in hostile {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let (worst_get, failed_gets, gets) = prober.await.unwrap_or_default();
    let _ = watcher.await;
    let alive = alive.load(Ordering::Relaxed) && memory_kib(pid, "VmRSS:").is_some();
    let peak_mib = peak_rss.load(Ordering::Relaxed) / 1024;
    drop(server);

    println!("server alive throughout   {alive}");
    println!(
        "GET / answered            {} of {gets}; worst {:.1} ms",
        gets - failed_gets,
        worst_get.as_secs_f64() * 1e3
    );
    println!(
        "good session              {} events, {} holes, {} gaps; sent {}, received {}",
        good.events, good.holes, good.gaps, good.sent, good.received
    );
    println!("server peak memory        {peak_mib} MiB (bound {RSS_BOUND_MIB} MiB)");
    let mut report = Report::new("soak", smoke);
    report.add(json!({
        "seconds": seconds, "alive": alive, "gets": gets, "gets_failed": failed_gets,
        "worst_get_ms": worst_get.as_secs_f64() * 1e3, "good_events": good.events,
        "good_holes": good.holes, "good_gaps": good.gaps, "good_sent": good.sent,
        "good_received": good.received, "peak_rss_mib": peak_mib, "rss_bound_mib": RSS_BOUND_MIB,
    }));
    report.write();
    let expected = GOOD_RATE as u64 * seconds;
    let passed = alive
        && failed_gets == 0
        && good.holes == 0
        && good.gaps == 0
        && good.sent == expected
        && good.received == expected
        && peak_mib < RSS_BOUND_MIB;
    if !passed {
        eprintln!("soak FAILED");
        std::process::exit(1);
    }
    println!("soak passed");
}
