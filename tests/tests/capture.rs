//! A recording exported as pcapng and read back with tshark: every datagram on the
//! wire, with its addresses, ports, length, bytes and the lab's account as comment,
//! and what a link dropped on an interface of its own.

use std::collections::HashMap;

use socklab_protocol::link::{Impairments, LinkFate, LinkSettings, Loss};
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{Command, Direction, Event};
use socklab_server::Config;
use socklab_tests::python::PythonEcho;
use socklab_tests::{Client, IpEndpoint as _, TestServer, http, text};

const TOKEN: &str = "cap-token";

/// One packet as tshark prints it: interface, source, destination, UDP length, payload
/// (hex), comment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Frame {
    interface: String,
    src: String,
    dst: String,
    udp_len: usize,
    payload: String,
    comment: String,
    /// When, seconds since the Unix epoch (with nanoseconds).
    time: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `file` with tshark, a frame per line.
fn tshark(file: &std::path::Path) -> Vec<Frame> {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"])
        .args([
            "-e",
            "frame.interface_name",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
        ])
        .args(["-e", "ip.dst", "-e", "udp.dstport", "-e", "udp.length"])
        .args([
            "-e",
            "udp.payload",
            "-e",
            "frame.comment",
            "-e",
            "frame.time_epoch",
        ])
        // Ports a dissector claims would hide the payload field: decode none.
        .args([
            "--disable-protocol",
            "ALL",
            "--enable-protocol",
            "eth,ip,udp,frame",
        ])
        .output()
        .expect("tshark runs (cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            Frame {
                interface: f[0].into(),
                src: format!("{}:{}", f[1], f[2]),
                dst: format!("{}:{}", f[3], f[4]),
                udp_len: f[5].parse().unwrap(),
                payload: f[6].replace(':', ""),
                comment: f[7].into(),
                time: f[8].into(),
            }
        })
        .collect()
}

/// Lab to lab, lab to a Python echo server and back, and through a lossy link: the
/// file holds exactly the packets the lab's events say were on the wire.
#[tokio::test]
async fn an_exported_recording_reads_in_tshark_as_the_lab_logged_it() {
    let (dir, server) = TestServer::with_store(Config {
        token: Some(TOKEN.into()),
        ..Config::default()
    })
    .await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let echo = PythonEcho::start("127.0.0.1");
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let link = client
        .link(
            "127.0.0.1:0",
            b.local.addr(),
            LinkSettings {
                c2t: Impairments {
                    loss: Loss::Random { pct: 40.0 },
                    delay_ms: 5.0,
                    ..Impairments::default()
                },
                seed: 7,
                ..LinkSettings::default()
            },
        )
        .await;
    client.send(Command::SetLossTimeout { ms: 300 }).await;
    client
        .send(Command::RecordStart {
            name: Some("capture".into()),
        })
        .await;
    let send = |to: String, payload: String| Command::Send {
        socket: a.socket.clone(),
        to: Some(to),
        payload: text(&payload),
    };
    for i in 0..3 {
        client
            .send(send(b.local.to_string(), format!("direct {i}")))
            .await;
    }
    for i in 0..2 {
        client
            .send(send(echo.addr.to_string(), format!("echo {i}")))
            .await;
    }
    for i in 0..12 {
        client
            .send(send(
                link.listen.to_string(),
                format!("through the link {i}"),
            ))
            .await;
    }
    // Every event until all 17 sends have their fate.
    let mut events: Vec<Event> = Vec::new();
    let mut fates = 0;
    while fates < 17 {
        let event = client.next().await;
        if let Event::Error(e) = &event {
            panic!("no refusal expected: {e:?}");
        }
        fates += usize::from(matches!(&event, Event::Fate(f) if f.src == a.local));
        events.push(event);
    }
    client.send(Command::RecordStop).await;
    let recording = loop {
        match client.next().await {
            Event::RecordingStopped(r) => break r.recording,
            other => events.push(other),
        }
    };

    let (status, bytes) = socklab_tests::http_raw(
        server.addr,
        "GET",
        &format!("/api/recordings/{recording}/capture.pcapng?token={TOKEN}"),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert!(!bytes.is_empty());
    let file = dir.path().join("capture.pcapng");
    std::fs::write(&file, &bytes).unwrap();
    let mut frames = tshark(&file);

    // What the lab's events say was on the wire.
    let lab_addr = |e: &socklab_protocol::Endpoint| e.to_string();
    let mut expected = Vec::new();
    let departures: HashMap<u64, usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::LinkSent(s) => Some(s.sent.iter().map(|d| d.seq).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .fold(HashMap::new(), |mut m, seq| {
            *m.entry(seq).or_default() += 1;
            m
        });
    for event in &events {
        match event {
            Event::Datagram(d) if d.socket == a.socket || d.socket == b.socket => {
                let payload = decode_base64(&d.payload_b64).unwrap();
                let frame = |src: String, dst: String| Frame {
                    interface: "lo".into(),
                    src,
                    dst,
                    udp_len: payload.len() + 8,
                    payload: hex(&payload),
                    comment: String::new(),
                    time: String::new(),
                };
                match d.dir {
                    Direction::Out => expected.push(frame(lab_addr(&d.local), lab_addr(&d.peer))),
                    // From the Python program: its send is on the wire only as this.
                    Direction::In if d.peer == echo.addr => {
                        expected.push(frame(lab_addr(&d.peer), lab_addr(&d.local)))
                    }
                    Direction::In => {}
                }
            }
            Event::LinkPacket(p) => {
                let payload = decode_base64(&p.payload_b64).unwrap();
                let frame = |interface: &str, src: String, dst: String| Frame {
                    interface: interface.into(),
                    src,
                    dst,
                    udp_len: payload.len() + 8,
                    payload: hex(&payload),
                    comment: String::new(),
                    time: String::new(),
                };
                let to = p.to.expect("a client is known").to_string();
                if p.fate == LinkFate::Dropped {
                    expected.push(frame(&format!("{} drops", p.link), p.from.to_string(), to));
                } else {
                    for _ in 0..departures.get(&p.seq).copied().unwrap_or(0) {
                        expected.push(frame("lo", link.upstream.to_string(), to.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    let dropped = expected
        .iter()
        .filter(|f| f.interface.ends_with("drops"))
        .count();
    assert!(
        dropped > 0 && dropped < 12,
        "a lossy link dropped some: {dropped}"
    );
    assert_eq!(
        frames.len(),
        expected.len(),
        "one frame per packet on the wire: {frames:#?}"
    );
    // The comments: the lab's account of each.
    for f in &frames {
        assert!(!f.comment.is_empty(), "{f:?}");
        if f.interface.ends_with("drops") {
            assert!(
                f.comment.contains("dropped by link l1: random loss"),
                "{f:?}"
            );
        }
        if f.interface == "lo" && f.src == a.local.to_string() && f.dst == b.local.to_string() {
            assert!(f.comment.contains("delivered"), "{f:?}");
        }
        if f.dst == echo.addr.to_string() {
            assert!(f.comment.contains("answered"), "{f:?}");
        }
    }
    let lost = frames
        .iter()
        .filter(|f| f.src == a.local.to_string() && f.comment.contains("lost: link (random loss)"))
        .count();
    assert_eq!(lost, dropped, "each send the link dropped says so");
    // Wall-clock times of this run, to the nanosecond, in order.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let times: Vec<f64> = frames.iter().map(|f| f.time.parse().unwrap()).collect();
    assert!(
        times.iter().all(|t| (now - t).abs() < 300.0),
        "{times:?} vs {now}"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    assert!(
        frames[0]
            .time
            .split('.')
            .nth(1)
            .is_some_and(|ns| ns.len() == 9),
        "{}",
        frames[0].time
    );
    for f in frames.iter_mut() {
        f.comment.clear();
        f.time.clear();
    }
    frames.sort();
    expected.sort();
    assert_eq!(frames, expected);
    server.stop().await;
}

/// A capture tshark writes on the loopback interface during a session (in a network
/// namespace of the test's own, so it holds only the test's traffic) imports as a
/// recording with the datagrams the lab logged: the same ends, bytes and spacing.
#[tokio::test]
async fn a_capture_tshark_writes_on_loopback_imports_with_the_datagrams_the_lab_logged() {
    use socklab_tests::isolated::{Isolation, rerun};
    if rerun(
        Isolation::Network,
        "a_capture_tshark_writes_on_loopback_imports_with_the_datagrams_the_lab_logged",
    ) {
        return;
    }
    let (dir, server) = TestServer::with_store(Config {
        token: Some(TOKEN.into()),
        ..Config::default()
    })
    .await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let file = dir.path().join("lo.pcapng");
    let mut tshark = std::process::Command::new("tshark")
        .args(["-i", "lo", "-f", "udp", "-l", "-P", "-w"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tshark runs (cargo xtask test installs it)");
    // It prints a line for each packet it captures: warm-up datagrams to a socket of
    // their own until one shows, then the capture holds everything after.
    let (shown_tx, mut shown) = tokio::sync::mpsc::unbounded_channel();
    let stdout = tshark.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = shown_tx.send(line);
        }
    });
    let warm = client.bind("127.0.0.1:0").await;
    let mut capturing = false;
    for _ in 0..200 {
        client
            .send(Command::Send {
                socket: warm.socket.clone(),
                to: Some(warm.local.to_string()),
                payload: text("warm-up"),
            })
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if shown.try_recv().is_ok() {
            capturing = true;
            break;
        }
    }
    assert!(capturing, "tshark captures on lo");
    for i in 0..5 {
        client
            .send(Command::Send {
                socket: a.socket.clone(),
                to: Some(b.local.to_string()),
                payload: text(&format!("on the wire {i}")),
            })
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Every event until the five have arrived: the sends are what the lab logged.
    let (mut sent, mut arrived) = (Vec::new(), 0);
    while arrived < 5 {
        match client.next().await {
            Event::Datagram(d) if d.dir == Direction::Out && d.socket == a.socket => sent.push(d),
            Event::Datagram(d) if d.socket == b.socket => arrived += 1,
            Event::Error(e) => panic!("no refusal expected: {e:?}"),
            _ => {}
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let stop = std::process::Command::new("kill")
        .args(["-INT", &tshark.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    tshark.wait().unwrap();

    let bytes = std::fs::read(&file).unwrap();
    let (status, body) = socklab_tests::http_bytes(
        server.addr,
        "POST",
        &format!("/api/recordings/import?token={TOKEN}&name=tshark"),
        &bytes,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(made["datagrams"].as_u64().unwrap() >= 5, "{made}");
    let id = made["recording"].as_i64().unwrap();
    let (_, body) = http(
        server.addr,
        "GET",
        &format!("/api/recordings/{id}/events?token={TOKEN}"),
        None,
    )
    .await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let imported: Vec<socklab_protocol::Datagram> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match serde_json::from_value(e.clone()).unwrap() {
            Event::Datagram(d) => d,
            other => panic!("a datagram, not {other:?}"),
        })
        // The warm-up datagrams aside.
        .filter(|d| d.local == a.local)
        .collect();
    let ends = |d: &socklab_protocol::Datagram| {
        (
            d.local.clone(),
            d.peer.clone(),
            decode_base64(&d.payload_b64).unwrap(),
        )
    };
    assert_eq!(
        imported.iter().map(ends).collect::<Vec<_>>(),
        sent.iter().map(ends).collect::<Vec<_>>(),
        "the same datagrams, in order"
    );
    // The same spacing, within a millisecond (the kernel's stamps against the lab's).
    for (i, (cap, lab)) in imported.windows(2).zip(sent.windows(2)).enumerate() {
        let gap_cap = cap[1].t_ns as i64 - cap[0].t_ns as i64;
        let gap_lab = lab[1].t_ns as i64 - lab[0].t_ns as i64;
        assert!(
            (gap_cap - gap_lab).abs() < 1_000_000,
            "gap {i}: capture {gap_cap} ns, lab {gap_lab} ns"
        );
    }
    // Not a capture: refused in words.
    let (status, body) = socklab_tests::http_bytes(
        server.addr,
        "POST",
        &format!("/api/recordings/import?token={TOKEN}"),
        b"hello",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("neither a pcap nor a pcapng"), "{body}");
    server.stop().await;
}
