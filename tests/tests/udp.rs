//! Real UDP through the real server, driven by a real WebSocket client.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use socklab_protocol::payload::{decode_base64, encode_base64};
use socklab_protocol::{Command, Direction, Event, Payload, SocketId};
use socklab_tests::IpEndpoint as _;
use socklab_tests::{TestServer, text};

#[tokio::test]
async fn hello_names_protocol_session_and_server() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    assert_eq!(a.hello.protocol, 1);
    assert!(a.hello.server.starts_with("socklab "), "{}", a.hello.server);
    assert!(!a.hello.session.as_str().is_empty());
    assert_ne!(
        a.hello.session, b.hello.session,
        "each connection is its own session"
    );
    server.stop().await;
}

#[tokio::test]
async fn two_lab_sockets_exchange_a_datagram() {
    for host in ["127.0.0.1", "[::1]"] {
        let server = TestServer::start().await;
        let mut client = server.client().await;
        let a = client.bind(&format!("{host}:0")).await;
        let b = client.bind(&format!("{host}:0")).await;
        assert_eq!((a.socket.as_str(), b.socket.as_str()), ("s1", "s2"));
        assert_ne!(a.local.addr().port(), 0, "the real port the OS chose");
        assert!(b.id > a.id);

        let out = client
            .send_datagram(&a.socket, b.local.addr(), text("hello"))
            .await;
        let inbound = client.received_on(&b.socket).await;

        assert_eq!(
            (out.dir, out.local, out.peer, out.len),
            (Direction::Out, a.local.clone(), b.local.clone(), 5)
        );
        assert_eq!(out.payload_b64, "aGVsbG8=");
        assert!(out.req.is_some(), "the out event carries the send's req");
        assert_eq!(
            (inbound.dir, inbound.local, inbound.peer, inbound.len),
            (Direction::In, b.local, a.local, 5)
        );
        assert_eq!(decode_base64(&inbound.payload_b64).unwrap(), b"hello");
        assert_eq!(inbound.req, None, "in events carry no req");
        assert!(inbound.id > out.id, "the send is logged before its receipt");
        assert!(inbound.t_ns >= out.t_ns);
        server.stop().await;
    }
}

#[tokio::test]
async fn payload_notations_send_the_same_bytes() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let binary: Vec<u8> = vec![0x00, 0xff, 0x10, 0x80];
    let cases = [
        (Payload::Hex("00 ff 10 80".into()), binary.clone()),
        (Payload::Base64(encode_base64(&binary)), binary.clone()),
        (Payload::Text("héllo".into()), "héllo".as_bytes().to_vec()),
        (Payload::Text(String::new()), Vec::new()),
        (Payload::Text("x".repeat(65_507)), vec![b'x'; 65_507]),
    ];
    for (payload, bytes) in cases {
        let out = client
            .send_datagram(&a.socket, b.local.addr(), payload)
            .await;
        let inbound = client.received_on(&b.socket).await;
        assert_eq!(out.len, bytes.len());
        assert_eq!(decode_base64(&inbound.payload_b64).unwrap(), bytes);
    }
    server.stop().await;
}

#[tokio::test]
async fn talks_to_a_plain_os_socket_both_ways() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let lab = client.bind("127.0.0.1:0").await;
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let plain_addr = plain.local_addr().unwrap();

    client
        .send_datagram(&lab.socket, plain_addr, text("ping"))
        .await;
    let mut buf = [0u8; 64];
    let (n, from) = plain.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], lab.local.addr()));

    plain.send_to(b"pong", lab.local.addr()).unwrap();
    let inbound = client.received_on(&lab.socket).await;
    assert_eq!(inbound.peer, plain_addr);
    assert_eq!(decode_base64(&inbound.payload_b64).unwrap(), b"pong");
    server.stop().await;
}

#[tokio::test]
async fn localhost_is_accepted_as_a_destination() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("localhost:0").await;
    assert_eq!(a.local.addr().ip().to_string(), "127.0.0.1");
    let req = client
        .send(Command::Send {
            socket: a.socket.clone(),
            to: Some(format!("localhost:{}", a.local.addr().port())),
            payload: text("self"),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::Datagram(d) if d.peer == a.local));
    let inbound = client.received_on(&a.socket).await;
    assert_eq!(inbound.peer, a.local, "a socket can send to itself");
    server.stop().await;
}

#[tokio::test]
async fn events_arrive_in_batches_with_increasing_ids() {
    const COUNT: usize = 500;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    let frames_before = client.frames;
    for i in 0..COUNT {
        plain
            .send_to(format!("{i}").as_bytes(), a.local.addr())
            .unwrap();
    }
    let mut last = a.id;
    for i in 0..COUNT {
        let d = client.received_on(&a.socket).await;
        assert!(d.id > last, "ids strictly increase");
        last = d.id;
        assert_eq!(
            decode_base64(&d.payload_b64).unwrap(),
            format!("{i}").as_bytes(),
            "in order on loopback"
        );
    }
    let frames = client.frames - frames_before;
    assert!(
        frames < COUNT,
        "{COUNT} datagrams should not take {frames} frames: events are batched"
    );
    server.stop().await;
}

#[tokio::test]
async fn close_frees_the_port_and_a_closed_session_frees_its_sockets() {
    // No grace period: the session ends as soon as its viewer goes.
    let server = TestServer::with_config(socklab_server::Config {
        grace: Duration::ZERO,
        ..socklab_server::Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let req = client
        .send(Command::Close {
            socket: a.socket.clone(),
        })
        .await;
    match client.reply(req).await {
        Event::Closed(c) => assert_eq!((c.socket, c.id > a.id), (a.socket.clone(), true)),
        other => panic!("expected closed, got {other:?}"),
    }
    // The port is free again: the same session binds it anew.
    let again = client.bind(&a.local.to_string()).await;
    assert_eq!(again.local, a.local);
    assert_eq!(
        again.socket,
        SocketId::new("s2"),
        "socket ids are never reused"
    );

    // When the viewer goes, its session's sockets are closed: the port can be bound.
    drop(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if UdpSocket::bind(again.local.addr()).is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session closes its sockets"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_every_session() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let local: SocketAddr = a.local.addr();
    server.stop().await;
    // After stop() returns, every socket is closed.
    UdpSocket::bind(local).expect("the server closed its sockets on shutdown");
}

/// Sends `count` datagrams, each its index, to `to` from a plain socket, which it
/// returns. The test's runtime also runs the server: while this loop runs nothing reads
/// the lab socket, so a small buffer fills and the kernel drops the rest.
fn burst(to: SocketAddr, count: usize) -> UdpSocket {
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..count {
        plain.send_to(&(i as u64).to_le_bytes(), to).unwrap();
    }
    plain
}

/// What a lab socket received and what the kernel reported dropping there, as the
/// events tell it.
#[derive(Debug, Default)]
struct DropTally {
    received: u64,
    /// The latest report's total.
    total: u64,
    reports: u64,
}

impl DropTally {
    /// Counts `event` if it concerns `socket`; returns the bytes of a datagram it
    /// received. Each report's total must be the previous one plus what it adds.
    fn take(&mut self, event: Event, socket: &SocketId) -> Option<Vec<u8>> {
        match event {
            Event::Datagram(d) if &d.socket == socket && d.dir == Direction::In => {
                self.received += 1;
                Some(decode_base64(&d.payload_b64).unwrap())
            }
            Event::KernelDrops(k) => {
                assert_eq!(&k.socket, socket);
                assert_eq!(k.total, self.total + k.dropped, "totals add up");
                self.total = k.total;
                self.reports += 1;
                None
            }
            _ => None,
        }
    }
}

#[tokio::test]
async fn drops_at_the_end_of_a_burst_are_reported_without_another_datagram() {
    // Each datagram carries the kernel's drop count as it was when it was queued, so
    // the drops after the last one queued (the tail of a burst into a full buffer) are
    // read from the kernel's socket table once the socket has been quiet a while.
    const BURST: usize = 2_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let lab = client.bind_with_buffer("127.0.0.1:0", Some(1)).await;
    burst(lab.local.addr(), BURST);
    let mut tally = DropTally::default();
    while tally.received + tally.total < BURST as u64 {
        tally.take(client.next().await, &lab.socket);
    }
    let DropTally {
        received, total, ..
    } = tally;
    assert!(
        total > 0,
        "the burst overflowed the buffer: {received} received"
    );
    assert_eq!(
        received + total,
        BURST as u64,
        "every datagram was either received or counted as dropped by the kernel"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_receive_buffer_is_reported_as_kernel_drops() {
    const BURST: usize = 2_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let lab = client.bind_with_buffer("127.0.0.1:0", Some(1)).await;
    // The kernel raises a tiny request to its minimum and says what it granted.
    let granted = lab
        .recv_buffer_bytes
        .expect("the granted buffer is reported");
    assert!(
        (1..65_536).contains(&granted),
        "a tiny request gets a tiny buffer: {granted}"
    );
    let plain = burst(lab.local.addr(), BURST);
    tokio::time::sleep(Duration::from_millis(50)).await;
    plain.send_to(b"last", lab.local.addr()).unwrap();
    // The kernel's count travels with the next datagram received after the drops:
    // "last" (or one of the burst), and its report follows that datagram's event.
    let (mut tally, mut last_seen) = (DropTally::default(), false);
    while !(last_seen && tally.received + tally.total == BURST as u64 + 1) {
        if let Some(bytes) = tally.take(client.next().await, &lab.socket) {
            last_seen |= bytes == b"last";
        }
    }
    let DropTally {
        received,
        total,
        reports,
    } = tally;
    assert!(
        reports >= 1 && total > 0,
        "the drops were reported: {received} received, {reports} reports"
    );
    assert_eq!(
        received + total,
        BURST as u64 + 1,
        "every datagram was either received or counted as dropped by the kernel"
    );
    server.stop().await;
}
