//! socklab's bridge against the machine's own limit: how many datagrams a second get
//! from a UDP socket to a WebSocket viewer, what it loses and where, and the latency it
//! adds. Run by `cargo xtask bench`; prints figures and writes them as JSON to
//! target/bench/bridge.json. Bounded in count and time; loopback only.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use socklab_protocol::Event;
use socklab_protocol::payload::decode_base64;
use socklab_tests::Client;
use socklab_tests::bench::{ServerProcess, Spread};

const TOKEN: &str = "bridge-bench";
/// A log big enough for every run's events.
const BIG_LOG: [&str; 4] = [
    "--log-max-events",
    "1000000",
    "--log-max-bytes",
    "1073741824",
];
/// The receive buffer both sides get (socklab asks for the same for its sockets).
const RCVBUF: usize = 4 * 1024 * 1024;
/// How long to wait for stragglers after the last datagram is sent.
const DRAIN: Duration = Duration::from_secs(2);

/// Sends `count` datagrams of `size` bytes to `to`, paced at `rate` per second (0:
/// as fast as possible); each carries its index in its first 8 bytes. Returns the send
/// instants.
fn blast(to: SocketAddr, count: usize, size: usize, rate: u64) -> Vec<Instant> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a sender");
    let mut payload = vec![0u8; size.max(8)];
    let start = Instant::now();
    let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        if let Some(interval) = interval {
            let due = start + interval * i as u32;
            // Sleep through most of a long wait (the two cores are shared with the
            // server and the viewer), spin only through the last stretch.
            let now = Instant::now();
            if due > now + Duration::from_micros(300) {
                std::thread::sleep(due - now - Duration::from_micros(200));
            }
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
        sent.push(Instant::now());
        let _ = socket.send_to(&payload, to);
    }
    sent
}

/// The machine's own limit: a plain receiver with the same receive buffer.
fn loopback(count: usize, size: usize, rate: u64) -> (f64, usize) {
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
        let (mut got, mut first, mut last) = (0usize, None, Instant::now());
        while got < count {
            match receiver.recv_from(&mut buf) {
                Ok(_) => {
                    got += 1;
                    last = Instant::now();
                    first.get_or_insert(last);
                }
                Err(_) => break,
            }
        }
        (got, first, last)
    });
    let sent = blast(to, count, size, rate);
    let (got, _, last) = counter.join().unwrap();
    let secs = last
        .saturating_duration_since(sent[0])
        .as_secs_f64()
        .max(1e-9);
    (got as f64 / secs, count - got)
}

/// Figures of one socklab run.
struct Bridge {
    per_sec: f64,
    lost_at_socket: usize,
    lost_to_viewer: u64,
    latency: Spread,
}

/// Through socklab: a lab socket receives the burst, a WebSocket viewer counts the
/// events. Loss on the way to the viewer shows as holes in the ids or `gap` events.
async fn bridge(addr: SocketAddr, count: usize, size: usize, rate: u64) -> Bridge {
    let mut client = Client::connect_with(addr, &format!("token={TOKEN}"))
        .await
        .expect("a session");
    let lab = client.bind("127.0.0.1:0").await;
    let to = lab.local;
    let sender = tokio::task::spawn_blocking(move || blast(to, count, size, rate));
    let mut arrived = vec![None; count];
    let (mut got, mut last_id, mut lost_to_viewer, mut last) =
        (0usize, lab.id.0, 0u64, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < count && Instant::now() < deadline {
        let event = match tokio::time::timeout(DRAIN, client.next_or_closed()).await {
            Ok(Some(event)) => event,
            _ => break,
        };
        if let Some(id) = event.id() {
            if id.0 != last_id + 1 {
                lost_to_viewer += id.0 - last_id - 1;
            }
            last_id = id.0;
        }
        match event {
            Event::Gap(g) => lost_to_viewer += g.count,
            Event::Datagram(d) => {
                let bytes = decode_base64(&d.payload_b64).unwrap_or_default();
                if bytes.len() >= 8 {
                    let i = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
                    if i < count && arrived[i].is_none() {
                        last = Instant::now();
                        arrived[i] = Some(last);
                        got += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let sent = sender.await.unwrap();
    let mut latencies: Vec<i64> = sent
        .iter()
        .zip(&arrived)
        .filter_map(|(s, a)| a.map(|a| a.saturating_duration_since(*s).as_nanos() as i64))
        .collect();
    let secs = last
        .saturating_duration_since(sent[0])
        .as_secs_f64()
        .max(1e-9);
    Bridge {
        per_sec: got as f64 / secs,
        lost_at_socket: count - got,
        lost_to_viewer,
        latency: Spread::of(&mut latencies),
    }
}

/// websocat, the peer bridge: found on PATH, or installed from crates.io into
/// target/bench/tools the first time.
fn websocat() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("websocat"))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let root = socklab_tests::workspace_root().join("target/bench/tools");
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
async fn peer(websocat: &std::path::Path, count: usize, size: usize, rate: u64) -> (f64, usize) {
    use futures_util::StreamExt as _;
    let (ws_port, udp_port) = (free_port(), free_port());
    let mut child = Process::new(websocat)
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
            Err(e) => panic!("websocat did not accept a WebSocket: {e}"),
        }
    };
    // websocat opens its UDP side when the WebSocket connects; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let to: SocketAddr = format!("127.0.0.1:{udp_port}").parse().unwrap();
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
    let sent = sender.await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let secs = last
        .saturating_duration_since(sent[0])
        .as_secs_f64()
        .max(1e-9);
    (got as f64 / secs, count - got)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (count, runs) = if smoke { (5_000, 1) } else { (200_000, 3) };
    let server = ServerProcess::start(TOKEN, &BIG_LOG);
    let addr = server.addr;
    let mut json = Vec::new();
    let websocat = if smoke { None } else { websocat() };
    println!("bridge: {count} datagrams per run, median of {runs} run(s) (min..max)");
    println!("{:<34} {:>26} {:>10}", "case", "datagrams/s", "lost");
    for size in [64usize, 1200] {
        let base: Vec<(f64, usize)> = (0..runs).map(|_| loopback(count, size, 0)).collect();
        let (b, bmin, bmax) = median(base.iter().map(|r| r.0).collect());
        let base_lost = base.iter().map(|r| r.1).max().unwrap_or(0);
        println!(
            "{:<34} {:>10.0} ({:.0}..{:.0}) {:>10}",
            format!("loopback limit, {size} B, unpaced"),
            b,
            bmin,
            bmax,
            base_lost
        );
        let mut lab = Vec::new();
        for _ in 0..runs {
            lab.push(bridge(addr, count, size, 0).await);
        }
        let (s, smin, smax) = median(lab.iter().map(|r| r.per_sec).collect());
        let lost_socket = lab.iter().map(|r| r.lost_at_socket).max().unwrap_or(0);
        let lost_viewer = lab.iter().map(|r| r.lost_to_viewer).max().unwrap_or(0);
        println!(
            "{:<34} {:>10.0} ({:.0}..{:.0}) {:>10}   to the viewer: {lost_viewer}",
            format!("socklab bridge, {size} B, unpaced"),
            s,
            smin,
            smax,
            lost_socket
        );
        println!(
            "{:<34} {:>10.2}",
            format!("ratio socklab / loopback, {size} B"),
            s / b
        );
        // The peer: websocat, not measured in smoke mode (installing it takes minutes).
        let peer_rate = match (smoke, &websocat) {
            (false, Some(bin)) => {
                let mut runs_w = Vec::new();
                for _ in 0..runs {
                    runs_w.push(peer(bin, count, size, 0).await);
                }
                let (w, wmin, wmax) = median(runs_w.iter().map(|r| r.0).collect());
                let lost = runs_w.iter().map(|r| r.1).max().unwrap_or(0);
                println!(
                    "{:<34} {:>10.0} ({:.0}..{:.0}) {:>10}",
                    format!("websocat bridge, {size} B, unpaced"),
                    w,
                    wmin,
                    wmax,
                    lost
                );
                println!(
                    "{:<34} {:>10.2}",
                    format!("ratio socklab / websocat, {size} B"),
                    s / w
                );
                w
            }
            _ => 0.0,
        };
        json.push(format!(
            "{{\"size\":{size},\"loopback_per_sec\":{b:.0},\"socklab_per_sec\":{s:.0},\"socklab_lost_at_socket\":{lost_socket},\"socklab_lost_to_viewer\":{lost_viewer},\"ratio\":{:.3},\"websocat_per_sec\":{peer_rate:.0}}}",
            s / b
        ));
    }
    // The highest paced rate at which every datagram reaches the viewer.
    let steps: &[u64] = if smoke {
        &[5_000]
    } else {
        &[25_000, 50_000, 100_000, 150_000, 200_000, 300_000]
    };
    let mut best = 0;
    for &rate in steps {
        let n = if smoke {
            count
        } else {
            (rate as usize).min(count)
        };
        let r = bridge(addr, n, 64, rate).await;
        let ok = r.lost_at_socket == 0 && r.lost_to_viewer == 0;
        println!(
            "{:<34} {:>10.0}   lost {} / viewer {}",
            format!("paced {rate}/s, 64 B"),
            r.per_sec,
            r.lost_at_socket,
            r.lost_to_viewer
        );
        if ok {
            // What was achieved counts, not what was asked (the sender may not keep up).
            best = best.max(r.per_sec as u64);
        } else {
            break;
        }
    }
    println!("{:<34} {:>10}", "highest lossless rate achieved", best);
    // Latency the bridge adds: UDP send to WebSocket event at the viewer, with the
    // default batching and with every event sent at once.
    drop(server);
    for (policy, extra) in [
        ("batched (2 ms)", &[][..]),
        ("immediate", &["--flush-interval-us", "0"][..]),
    ] {
        let server = ServerProcess::start(TOKEN, &[&BIG_LOG[..], extra].concat());
        let addr = server.addr;
        for rate in [1_000u64, 10_000] {
            let n = if smoke { 500 } else { (rate * 3) as usize };
            let r = bridge(addr, n, 64, rate).await;
            let l = r.latency;
            println!(
                "{:<34} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
                format!("latency at {rate}/s, {policy}"),
                l.p50_us / 1e3,
                l.p99_us / 1e3,
                l.max_us / 1e3
            );
            json.push(format!(
                "{{\"latency_rate\":{rate},\"flush\":\"{policy}\",\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
                l.p50_us, l.p99_us, l.max_us
            ));
        }
        drop(server);
    }
    json.push(format!("{{\"highest_lossless_paced_rate\":{best}}}"));
    let dir = socklab_tests::workspace_root().join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("bridge.json");
    let _ = std::fs::write(&path, format!("[{}]\n", json.join(",\n")));
    println!("figures written to {}", path.display());
}
