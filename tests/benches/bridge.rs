//! socklab's bridge against the machine's own limit and against websocat: how many
//! datagrams a second get from a UDP socket to a WebSocket client, what each loses and
//! where, and the latency socklab adds. Run by `cargo xtask bench`; prints a table and
//! writes the figures to target/bench/bridge.json. Bounded in count and time; loopback
//! only.
//!
//! `cargo bench -p socklab-tests --bench bridge -- [--smoke] [--only CASE]…
//! [--tuned-peer]` where CASE is `loopback`, `socklab`, `websocat`, `paced` or
//! `latency`. `--tuned-peer` (root only) also steps websocat's paced rate with the
//! system's default receive buffer raised to 8 MiB (`net.core.rmem_default`, restored
//! afterwards), since websocat cannot set its own.
//!
//! (Over 600 lines: the peer program, socklab and the machine's own limit are measured
//! by the same code so that their figures are comparable.)

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use socklab_protocol::payload::decode_base64;
use socklab_tests::bench::{
    Median, Report, ServerProcess, Spread, Spreads, Usage, pace_until, udp_drops,
};
use socklab_tests::{Client, IpEndpoint as _};

const TOKEN: &str = "bridge-bench";
/// The receive buffer the plain receiver asks for (socklab asks for the same for its
/// sockets; websocat cannot ask and keeps the system's default).
const RCVBUF: usize = 4 * 1024 * 1024;
/// How long to wait for stragglers after the last datagram is sent.
const DRAIN: Duration = Duration::from_secs(2);
/// The paced rates tried, datagrams/s, in order, until one loses something.
const STEPS: [u64; 11] = [
    25_000, 50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000, 600_000, 800_000,
];
/// How long each paced step lasts.
const STEP_SECONDS: f64 = 1.0;

/// Paced rates above this are sent in groups, one GSO send per group, each group on
/// time: one thread cannot pace single `send_to` calls beyond about 200k/s here, and
/// the bridges' limits lie above that.
const GROUP_ABOVE: u64 = 50_000;
/// The most datagrams one GSO send may carry (the kernel's `UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;

/// Sends `count` datagrams of `size` bytes to `to`, paced at `rate` per second (0:
/// as fast as possible) with plain `send_to`, or in groups above [`GROUP_ABOVE`]/s;
/// each carries its index in its first 8 bytes. Returns the send instants.
fn blast(to: SocketAddr, count: usize, size: usize, rate: u64) -> Vec<Instant> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a sender");
    if rate > GROUP_ABOVE {
        return blast_grouped(&socket, to, count, size, rate);
    }
    let mut payload = vec![0u8; size.max(8)];
    let start = Instant::now();
    let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        if let Some(interval) = interval {
            pace_until(start + interval.mul_f64(i as f64));
        }
        payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
        sent.push(Instant::now());
        let _ = socket.send_to(&payload, to);
    }
    sent
}

/// [`blast`] in groups of `rate / GROUP_ABOVE` (rounded up) datagrams, a group every
/// `group / rate` seconds. Each group is one `sendmsg` with UDP GSO: the kernel cuts
/// the buffer into `size`-byte datagrams before they reach the receiving socket, which
/// gets them one by one as from any sender, but the sender spends a fraction of the CPU
/// a datagram otherwise costs it, so it can offer the rate asked even while a bridge
/// shares its two cores (with one `sendmmsg` per group it fell short from about 250k/s).
fn blast_grouped(
    socket: &UdpSocket,
    to: SocketAddr,
    count: usize,
    size: usize,
    rate: u64,
) -> Vec<Instant> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd as _;

    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn, sendmsg};

    let SocketAddr::V4(v4) = to else {
        panic!("the benchmark sends to IPv4 loopback")
    };
    let to = SockaddrIn::from(v4);
    let size = size.max(8);
    let group = (rate.div_ceil(GROUP_ABOVE) as usize).min(GSO_MAX_SEGMENTS);
    let interval = Duration::from_secs_f64(group as f64 / rate as f64);
    let segment = u16::try_from(size).expect("a datagram fits a GSO segment");
    let mut buffer = vec![0u8; group * size];
    let start = Instant::now();
    let mut sent = Vec::with_capacity(count);
    for (g, first) in (0..count).step_by(group).enumerate() {
        pace_until(start + interval.mul_f64(g as f64));
        let n = group.min(count - first);
        for (k, datagram) in buffer.chunks_mut(size).take(n).enumerate() {
            datagram[..8].copy_from_slice(&((first + k) as u64).to_le_bytes());
        }
        let now = Instant::now();
        sent.extend(std::iter::repeat_n(now, n));
        if let Err(e) = sendmsg(
            socket.as_raw_fd(),
            &[IoSlice::new(&buffer[..n * size])],
            &[ControlMessage::UdpGsoSegments(&segment)],
            MsgFlags::empty(),
            Some(&to),
        ) {
            panic!("the paced sender's GSO send failed (does this kernel have UDP GSO?): {e}");
        }
    }
    sent
}

/// What one run through a receiver delivered.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    /// Datagrams delivered per second, from the first send to the last delivery.
    per_sec: f64,
    /// Datagrams sent per second: the load actually offered (a paced sender sharing the
    /// cores with the bridge may fall short of the rate asked).
    sent_per_sec: f64,
    /// Datagrams the receiver never got.
    lost: usize,
    /// Of those, dropped by the kernel at the receiving socket (its own counter).
    kernel_drops: Option<u64>,
    /// The bridge process's CPU time per datagram delivered, nanoseconds (all its
    /// threads; none for the in-process loopback receiver).
    cpu_ns: Option<f64>,
}

impl Delivery {
    /// `got` of `count` datagrams sent at `sent`, the last arriving at `last`; the
    /// bridge process used `used` CPU time meanwhile.
    fn new(
        count: usize,
        got: usize,
        sent: &[Instant],
        last: Instant,
        drops: Option<u64>,
        used: Option<Usage>,
    ) -> Self {
        let secs = last
            .saturating_duration_since(sent[0])
            .as_secs_f64()
            .max(1e-9);
        let sending = sent[sent.len() - 1]
            .saturating_duration_since(sent[0])
            .as_secs_f64()
            .max(1e-9);
        Delivery {
            per_sec: got as f64 / secs,
            sent_per_sec: sent.len().saturating_sub(1).max(1) as f64 / sending,
            lost: count - got,
            kernel_drops: drops,
            cpu_ns: used.map(|u| u.cpu_ns as f64 / got.max(1) as f64),
        }
    }
}

/// The machine's own limit: a plain receiver thread with `recv_from` and a 4 MiB
/// receive buffer.
fn loopback(count: usize, size: usize) -> Delivery {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    let _ = socket.set_recv_buffer_size(RCVBUF);
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let receiver: UdpSocket = socket.into();
    receiver.set_read_timeout(Some(DRAIN)).unwrap();
    let to = receiver.local_addr().unwrap();
    let counter = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let (mut got, mut last) = (0usize, Instant::now());
        while got < count {
            match receiver.recv_from(&mut buf) {
                Ok(_) => {
                    got += 1;
                    last = Instant::now();
                }
                Err(_) => break,
            }
        }
        (got, last, udp_drops(to))
    });
    let sent = blast(to, count, size, 0);
    let (got, last, drops) = counter.join().unwrap();
    Delivery::new(count, got, &sent, last, drops, None)
}

/// What the counting client reads of each event: like websocat's client, which only
/// counts messages, it parses no more than it needs (the type, the id, the payload's
/// first bytes), borrowing from the frame.
#[derive(serde::Deserialize)]
struct Counted<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: Option<u64>,
    payload_b64: Option<&'a str>,
    count: Option<u64>,
    total: Option<u64>,
    t_ns: Option<u64>,
    #[serde(borrow, default)]
    events: Vec<Counted<'a>>,
}

/// Figures of one socklab run.
struct Bridge {
    delivery: Delivery,
    /// Events the viewer should have had and did not (holes in the ids, `gap` events).
    lost_to_viewer: u64,
    /// UDP send to WebSocket event, per datagram.
    latency: Spread,
    /// The lab's own view against the outside clock: each `in` event's `t_ns` less its
    /// send time on this process' clock, above the smallest such difference (the two
    /// clocks' offset and the loopback floor). A receive time read late (after a
    /// batch, or when the task got the CPU back) shows here as spread.
    lab_view: Spread,
    /// Datagram events per WebSocket frame, on average.
    per_frame: f64,
    /// Kernel drops as socklab itself reported them (`kernel_drops` events).
    reported_drops: u64,
    /// The server's context switches per 1,000 datagrams delivered.
    server_switches: f64,
}

/// Through socklab: a lab socket receives the burst, a WebSocket viewer counts the
/// events. Loss on the way to the viewer shows as holes in the ids or `gap` events.
async fn socklab(server: &ServerProcess, count: usize, size: usize, rate: u64) -> Bridge {
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .expect("a session");
    let lab = client.bind("127.0.0.1:0").await;
    let to = lab.local.addr();
    let frames_before = client.frames;
    let mut reported_drops = 0;
    let usage_before = server.usage();
    let sender = tokio::task::spawn_blocking(move || blast(to, count, size, rate));
    let mut arrived = vec![None; count];
    let mut stamped: Vec<Option<u64>> = vec![None; count];
    let (mut got, mut last_id, mut lost_to_viewer, mut last) =
        (0usize, lab.id.0, 0u64, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < count && Instant::now() < deadline {
        let text = match tokio::time::timeout(DRAIN, client.next_text()).await {
            Ok(Some(text)) => text,
            _ => break,
        };
        let Ok(frame) = serde_json::from_str::<Counted>(&text) else {
            continue;
        };
        let now = Instant::now();
        let events = if frame.kind == "batch" {
            frame.events
        } else {
            vec![frame]
        };
        for event in events {
            if let Some(id) = event.id {
                if id != last_id + 1 {
                    lost_to_viewer += id - last_id - 1;
                }
                last_id = id;
            }
            match (event.kind, event.payload_b64) {
                ("gap", _) => lost_to_viewer += event.count.unwrap_or(0),
                ("kernel_drops", _) => reported_drops = event.total.unwrap_or(reported_drops),
                ("datagram", Some(b64)) if b64.len() >= 12 => {
                    // The index is in the first 8 bytes: the first 12 characters.
                    let bytes = decode_base64(&b64[..12]).unwrap_or_default();
                    let i = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
                    if i < count && arrived[i].is_none() {
                        last = now;
                        arrived[i] = Some(now);
                        stamped[i] = event.t_ns;
                        got += 1;
                    }
                }
                _ => {}
            }
        }
    }
    let used = server.usage().since(usage_before);
    let sent = sender.await.unwrap();
    // Read while the lab socket is still open (the session ends with the client).
    let drops = udp_drops(to);
    let mut latencies: Vec<i64> = sent
        .iter()
        .zip(&arrived)
        .filter_map(|(s, a)| a.map(|a| a.saturating_duration_since(*s).as_nanos() as i64))
        .collect();
    let first = sent.first().copied();
    let offsets: Vec<i64> = sent
        .iter()
        .zip(&stamped)
        .filter_map(|(s, t)| {
            let since_first = s.saturating_duration_since(first?).as_nanos() as i64;
            Some(t.map(|t| t as i64)? - since_first)
        })
        .collect();
    let floor = offsets.iter().copied().min().unwrap_or(0);
    let mut lab_view: Vec<i64> = offsets.iter().map(|o| o - floor).collect();
    Bridge {
        delivery: Delivery::new(count, got, &sent, last, drops, Some(used)),
        lost_to_viewer,
        latency: Spread::of(&mut latencies),
        lab_view: Spread::of(&mut lab_view),
        per_frame: got as f64 / (client.frames - frames_before).max(1) as f64,
        reported_drops,
        server_switches: used.switches as f64 * 1000.0 / got.max(1) as f64,
    }
}

/// websocat, the peer bridge: found on PATH, or installed from crates.io into
/// target/bench/tools the first time.
fn websocat_binary() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("websocat"))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let root = socklab_tests::target_dir().join("bench/tools");
    let bin = root.join("bin/websocat");
    if !bin.is_file() {
        println!("installing websocat (cargo install websocat) for the peer comparison…");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ok = Process::new(cargo)
            .args(["install", "websocat", "--root"])
            .arg(&root)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    Some(bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The same burst through websocat (`websocat -b ws-l:… udp-l:…`) to a WebSocket client
/// that counts binary messages.
async fn websocat(bin: &std::path::Path, count: usize, size: usize, rate: u64) -> Delivery {
    use futures_util::StreamExt as _;
    let (ws_port, udp_port) = (free_port(), free_port());
    let mut child = Process::new(bin)
        .args([
            "-b",
            &format!("ws-l:127.0.0.1:{ws_port}"),
            &format!("udp-l:127.0.0.1:{udp_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("websocat starts");
    let url = format!("ws://127.0.0.1:{ws_port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ws = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((ws, _)) => break ws,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("websocat did not accept a WebSocket: {e}")
            }
        }
    };
    // websocat opens its UDP side when the WebSocket connects; wait until it is bound.
    let to: SocketAddr = format!("127.0.0.1:{udp_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while udp_drops(to).is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let usage_before = Usage::of(child.id());
    let sender = tokio::task::spawn_blocking(move || blast(to, count, size, rate));
    let mut seen = vec![false; count];
    let (mut got, mut last) = (0usize, Instant::now());
    while got < count {
        match tokio::time::timeout(DRAIN, ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(bytes))))
                if bytes.len() >= 8 =>
            {
                let i = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
                if i < count && !seen[i] {
                    seen[i] = true;
                    got += 1;
                    last = Instant::now();
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    let used = Usage::of(child.id()).since(usage_before);
    let sent = sender.await.unwrap();
    let drops = udp_drops(to);
    let _ = child.kill();
    let _ = child.wait();
    Delivery::new(count, got, &sent, last, drops, Some(used))
}

/// The default receive buffer of every socket on a "tuned system", bytes (the
/// benchmarks issue's websocat figures were taken with it).
const TUNED_RMEM_DEFAULT: u64 = 8 * 1024 * 1024;
const RMEM_DEFAULT: &str = "/proc/sys/net/core/rmem_default";

/// `net.core.rmem_default` raised for as long as this lives; the old value comes back on
/// drop, panic included.
struct Tuned {
    old: String,
}

impl Tuned {
    fn rmem_default(bytes: u64) -> std::io::Result<Tuned> {
        let old = std::fs::read_to_string(RMEM_DEFAULT)?;
        std::fs::write(RMEM_DEFAULT, bytes.to_string())?;
        println!("net.core.rmem_default raised to {bytes} for the tuned websocat runs");
        Ok(Tuned { old })
    }
}

impl Drop for Tuned {
    fn drop(&mut self) {
        match std::fs::write(RMEM_DEFAULT, self.old.trim()) {
            Ok(()) => println!("net.core.rmem_default back to {}", self.old.trim()),
            Err(e) => println!(
                "could not restore net.core.rmem_default ({}): {e}",
                self.old.trim()
            ),
        }
    }
}

/// What a bridge with a viewer adds to its row: the events the viewer missed, a note,
/// and JSON fields of its own.
struct Viewer {
    lost: u64,
    note: String,
    fields: serde_json::Value,
}

/// Prints and reports one unpaced case over its runs: the median delivery rate, the
/// worst losses (and the viewer's, for a bridge that has one); returns the median rate
/// and CPU time per datagram.
fn unpaced_row(
    report: &mut Report,
    case: &str,
    size: usize,
    runs: &[Delivery],
    viewer: Option<Viewer>,
) -> (f64, f64) {
    let rate = Median::of(runs.iter().map(|r| r.per_sec));
    let lost = runs.iter().map(|r| r.lost).max().unwrap_or(0);
    let drops = runs.iter().filter_map(|r| r.kernel_drops).max();
    let cpu = Median::of(runs.iter().filter_map(|r| r.cpu_ns));
    let mut row = json!({
        "case": case, "size": size, "per_sec": rate.json(), "lost": lost, "kernel_drops": drops,
        "cpu_ns_per_datagram": cpu.json(),
    });
    let (viewer_lost, note) = match viewer {
        Some(v) => {
            if let (Some(row), Some(fields)) = (row.as_object_mut(), v.fields.as_object()) {
                row.extend(fields.clone());
            }
            (v.lost.to_string(), format!("   {}", v.note))
        }
        None => (String::new(), String::new()),
    };
    println!(
        "{:<36} {:>28} {:>10} {:>8} {:>8} {:>8}{note}",
        format!("{case}, {size} B"),
        rate.show(0),
        lost,
        drops_text(drops),
        viewer_lost,
        cpu_text(Some(cpu.median))
    );
    report.add(row);
    (rate.median, cpu.median)
}

/// A bridge's CPU time per datagram, or nothing when not measured.
fn cpu_text(ns: Option<f64>) -> String {
    ns.filter(|ns| ns.is_finite())
        .map_or_else(String::new, |ns| format!("{ns:.0}"))
}

fn drops_text(drops: Option<u64>) -> String {
    drops.map_or_else(|| "?".to_owned(), |d| d.to_string())
}

/// Steps the paced rate up until a run loses a datagram; returns the highest rate
/// offered (sent, which counts rather than the rate asked) at which every datagram
/// reached the client, and the rate they were delivered at in that step.
async fn highest_lossless<F, Fut>(
    name: &str,
    report: &mut Report,
    steps: &[u64],
    run: F,
) -> (f64, f64)
where
    F: Fn(usize, u64) -> Fut,
    Fut: std::future::Future<Output = (Delivery, u64)>,
{
    let mut best = (0.0f64, 0.0f64);
    for &rate in steps {
        let n = ((rate as f64 * STEP_SECONDS) as usize).max(1);
        let (d, lost_to_viewer) = run(n, rate).await;
        println!(
            "{:<36} {:>28} {:>10} {:>8} {:>8} {:>8}   sent at {:.0}/s",
            format!("{name} paced {rate}/s, 64 B"),
            format!("{:.0}", d.per_sec),
            d.lost,
            drops_text(d.kernel_drops),
            lost_to_viewer,
            cpu_text(d.cpu_ns),
            d.sent_per_sec,
        );
        report.add(json!({
            "case": format!("{name} paced"), "size": 64, "asked_per_sec": rate,
            "sent_per_sec": d.sent_per_sec, "delivered_per_sec": d.per_sec, "lost": d.lost,
            "kernel_drops": d.kernel_drops, "lost_to_viewer": lost_to_viewer,
            "cpu_ns_per_datagram": d.cpu_ns,
        }));
        if d.lost > 0 || lost_to_viewer > 0 {
            break;
        }
        if d.sent_per_sec > best.0 {
            best = (d.sent_per_sec, d.per_sec);
        }
    }
    println!(
        "{:<36} {:>28}   (delivered at {:.0}/s)",
        format!("{name}: highest lossless rate"),
        format!("{:.0}", best.0),
        best.1
    );
    report.add(json!({
        "case": format!("{name} highest lossless paced rate"),
        "sent_per_sec": best.0, "delivered_per_sec": best.1,
    }));
    best
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();
    let wants = |case: &str| only.is_empty() || only.contains(&case);
    let tuned_peer = args.iter().any(|a| a == "--tuned-peer");
    let (count, runs) = if smoke { (5_000, 1) } else { (200_000, 3) };
    let mut report = Report::new("bridge", smoke);
    // socklab as shipped: its default settings (a session's log keeps the latest
    // 200,000 events; a viewer that keeps up loses none of them).
    let server = ServerProcess::start(TOKEN, &[]);
    // The peer: websocat, not run in smoke mode (installing it takes minutes).
    let websocat_bin = if smoke || !wants("websocat") {
        None
    } else {
        websocat_binary()
    };
    println!("bridge: {count} datagrams per unpaced run, median of {runs} run(s) (min..max)");
    println!(
        "{:<36} {:>28} {:>10} {:>8} {:>8} {:>8}",
        "case", "datagrams/s", "lost", "kernel", "viewer", "CPU ns"
    );
    println!(
        "(kernel: dropped at the receiving socket; viewer: lost between socklab's socket and \
         its viewer; CPU ns: the bridge process's CPU time per datagram delivered)"
    );
    for size in [64usize, 1200] {
        let mut loop_rate = f64::NAN;
        if wants("loopback") {
            let runs: Vec<Delivery> = (0..runs).map(|_| loopback(count, size)).collect();
            (loop_rate, _) = unpaced_row(&mut report, "loopback limit", size, &runs, None);
        }
        let (mut lab_rate, mut lab_cpu) = (f64::NAN, f64::NAN);
        if wants("socklab") {
            let mut lab = Vec::new();
            for _ in 0..runs {
                lab.push(socklab(&server, count, size, 0).await);
            }
            let deliveries: Vec<Delivery> = lab.iter().map(|b| b.delivery).collect();
            let to_viewer = lab.iter().map(|b| b.lost_to_viewer).max().unwrap_or(0);
            let per_frame = Median::of(lab.iter().map(|b| b.per_frame));
            let switches = Median::of(lab.iter().map(|b| b.server_switches));
            let reported = lab.iter().map(|b| b.reported_drops).max().unwrap_or(0);
            let viewer = Viewer {
                lost: to_viewer,
                note: format!(
                    "{:.0} events/frame; socklab reported {reported} kernel drops; \
                     {:.0} context switches per 1,000 datagrams",
                    per_frame.median, switches.median
                ),
                fields: json!({
                    "lost_to_viewer": to_viewer, "events_per_frame": per_frame.json(),
                    "kernel_drops_reported": reported,
                    "server_switches_per_1000_datagrams": switches.json(),
                }),
            };
            (lab_rate, lab_cpu) = unpaced_row(
                &mut report,
                "socklab bridge",
                size,
                &deliveries,
                Some(viewer),
            );
        }
        // The same with every session recorded into the store: the recorder reads
        // the log as a viewer does and writes batches on the store's own thread, so
        // the rate and the CPU per datagram should not move.
        let (mut rec_rate, mut rec_cpu) = (f64::NAN, f64::NAN);
        if wants("recording") {
            let data = tempfile::tempdir().expect("a data directory");
            let data_arg = data.path().display().to_string();
            let recording = ServerProcess::start(TOKEN, &["--record", "--data", &data_arg]);
            let mut lab = Vec::new();
            for _ in 0..runs {
                lab.push(socklab(&recording, count, size, 0).await);
            }
            drop(recording);
            let deliveries: Vec<Delivery> = lab.iter().map(|b| b.delivery).collect();
            let to_viewer = lab.iter().map(|b| b.lost_to_viewer).max().unwrap_or(0);
            let stored = std::fs::metadata(data.path().join("socklab.db")).map_or(0, |m| m.len())
                + std::fs::metadata(data.path().join("socklab.db-wal")).map_or(0, |m| m.len());
            let viewer = Viewer {
                lost: to_viewer,
                note: format!("store {:.1} MB after the runs", stored as f64 / 1e6),
                fields: json!({ "lost_to_viewer": to_viewer, "store_bytes": stored }),
            };
            (rec_rate, rec_cpu) = unpaced_row(
                &mut report,
                "socklab bridge, recording",
                size,
                &deliveries,
                Some(viewer),
            );
        }
        let (mut peer_rate, mut peer_cpu) = (f64::NAN, f64::NAN);
        if let Some(bin) = &websocat_bin {
            let mut peer = Vec::new();
            for _ in 0..runs {
                peer.push(websocat(bin, count, size, 0).await);
            }
            (peer_rate, peer_cpu) = unpaced_row(&mut report, "websocat bridge", size, &peer, None);
        }
        for (name, ratio) in [
            ("socklab / loopback", lab_rate / loop_rate),
            ("socklab / websocat", lab_rate / peer_rate),
            ("CPU socklab / websocat", lab_cpu / peer_cpu),
            ("recording on / off", rec_rate / lab_rate),
            ("CPU recording on / off", rec_cpu / lab_cpu),
        ] {
            if ratio.is_finite() {
                println!("{:<36} {:>28.2}", format!("ratio {name}, {size} B"), ratio);
                report
                    .add(json!({ "case": format!("ratio {name}"), "size": size, "ratio": ratio }));
            }
        }
    }

    // The highest paced rate at which every datagram reaches the client, for both
    // bridges, at the system's default settings.
    // The smoke run also takes a step above GROUP_ABOVE, to try the GSO sender.
    let steps: &[u64] = if smoke { &[5_000, 60_000] } else { &STEPS };
    if wants("paced") {
        let server = &server;
        let lab = highest_lossless("socklab", &mut report, steps, |n, rate| async move {
            let b = socklab(server, n, 64, rate).await;
            (b.delivery, b.lost_to_viewer)
        })
        .await;
        if let Some(bin) = &websocat_bin {
            let peer = highest_lossless("websocat", &mut report, steps, |n, rate| async move {
                (websocat(bin, n, 64, rate).await, 0)
            })
            .await;
            if peer.0 > 0.0 {
                println!("{:<36} {:>28.2}", "ratio of lossless rates", lab.0 / peer.0);
            }
            // websocat cannot set its socket's receive buffer; on a tuned system (a
            // bigger default for every socket) it does better. Only on request, and only
            // as root: this changes a system-wide setting for the length of these runs.
            if tuned_peer {
                match Tuned::rmem_default(TUNED_RMEM_DEFAULT) {
                    Ok(_tuned) => {
                        let peer = highest_lossless(
                            "websocat tuned",
                            &mut report,
                            steps,
                            |n, rate| async move { (websocat(bin, n, 64, rate).await, 0) },
                        )
                        .await;
                        if peer.0 > 0.0 {
                            println!(
                                "{:<36} {:>28.2}",
                                "ratio of lossless rates, tuned peer",
                                lab.0 / peer.0
                            );
                        }
                    }
                    Err(e) => println!("cannot tune the system for websocat: {e}"),
                }
            }
        }
    }
    drop(server);

    // Latency socklab adds: UDP send to WebSocket event at the viewer, with the
    // default (events go out as soon as they are logged) and with a batching window.
    if wants("latency") {
        for (policy, extra) in [
            ("default", &[][..]),
            (
                "--flush-interval-us 2000",
                &["--flush-interval-us", "2000"][..],
            ),
        ] {
            let server = ServerProcess::start(TOKEN, extra);
            for rate in [10u64, 1_000, 10_000, 100_000] {
                // Three seconds' worth (a tenth of a second, at most 500, for a smoke run).
                let n = if smoke {
                    (rate / 10).clamp(5, 500) as usize
                } else {
                    (rate * 3).max(30) as usize
                };
                let (mut spreads, mut views) = (Vec::new(), Vec::new());
                for _ in 0..runs {
                    let run = socklab(&server, n, 64, rate).await;
                    spreads.push(run.latency);
                    views.push(run.lab_view);
                }
                let l = Spreads::of(&spreads);
                let v = Spreads::of(&views);
                println!(
                    "{:<36} {}",
                    format!("latency at {rate}/s, {policy}"),
                    l.show_ms()
                );
                println!(
                    "{:<36} {}",
                    "  lab's in stamps vs outside clock",
                    v.show_us()
                );
                report.add(json!({
                    "case": "latency", "rate_per_sec": rate, "flush": policy, "latency": l.json(),
                    "lab_view_above_floor": v.json(),
                }));
            }
            drop(server);
        }
    }
    report.write();
}
