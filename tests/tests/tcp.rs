//! TCP sockets through the real server: listeners, connections, byte streams, their
//! ends, with lab sockets and with Python's `socket` module on either side.

use socklab_protocol::payload::decode_base64;
use socklab_protocol::{
    BindSpec, Command, Direction, ErrorCode, Event, Proto, ShutdownHow, SocketId, Stream,
    StreamEnd, StreamEndReason,
};
use socklab_tests::IpEndpoint as _;
use socklab_tests::python::{PythonTcpServer, tcp_client};
use socklab_tests::{Client, TestServer, bind_command, text};

fn tcp(addr: &str, listen: bool) -> BindSpec {
    BindSpec {
        proto: Proto::Tcp,
        listen,
        ..bind_command(addr)
    }
}

/// Events until `socket`'s stream ends: its reads and writes, and the end.
async fn stream_of(client: &mut Client, socket: &SocketId) -> (Vec<Stream>, StreamEnd) {
    let mut data = Vec::new();
    loop {
        match client.next().await {
            Event::Stream(s) if &s.socket == socket => data.push(s),
            Event::StreamEnd(e) if &e.socket == socket => return (data, e),
            _ => {}
        }
    }
}

fn bytes(s: &Stream) -> Vec<u8> {
    decode_base64(&s.payload_b64).unwrap()
}

async fn connect(client: &mut Client, socket: &SocketId, to: std::net::SocketAddr) -> i64 {
    client
        .send(Command::Connect {
            socket: socket.clone(),
            to: to.to_string(),
        })
        .await
}

async fn write(client: &mut Client, socket: &SocketId, payload: &str) -> Stream {
    let req = client
        .send(Command::Send {
            socket: socket.clone(),
            to: None,
            payload: text(payload),
        })
        .await;
    match client.reply(req).await {
        Event::Stream(s) => s,
        other => panic!("a write to {socket} should succeed, got {other:?}"),
    }
}

/// A Python client sends "hello" and "world" with two send() calls before the lab
/// listener gets to read: one read returns both (a stream keeps no boundaries), then
/// the end of the stream.
#[tokio::test]
async fn two_sends_from_python_come_out_of_one_read() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let listener = client.bind_with(tcp("127.0.0.1:0", true)).await;
    assert_eq!((listener.proto, listener.listening), (Proto::Tcp, true));
    // Blocking: the server shares this thread, so it reads nothing until the client
    // has sent both and gone.
    let from = tcp_client(listener.local.addr(), &["hello", "world"]);
    let accepted = client
        .next_where(|e| match e {
            Event::Accepted(a) => Some(a),
            _ => None,
        })
        .await;
    assert_eq!(accepted.listener, listener.socket);
    assert_eq!(accepted.socket.as_str(), format!("{}.1", listener.socket));
    assert_eq!(accepted.peer, from);
    let (reads, end) = stream_of(&mut client, &accepted.socket).await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(bytes(&reads[0]), b"helloworld");
    assert_eq!(
        (reads[0].dir, reads[0].offset, reads[0].peer),
        (Direction::In, 0, from)
    );
    assert_eq!((end.reason, end.read), (StreamEndReason::Eof, 10));
    server.stop().await;
}

/// A lab client against a Python server: what the lab writes arrives; the answer,
/// read 4 bytes at a time, comes out of three reads; the stream ends when Python
/// closes.
#[tokio::test]
async fn a_lab_client_talks_to_a_python_server_and_reads_its_answer_in_pieces() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let python = PythonTcpServer::start("127.0.0.1", "0123456789");
    let lab = client
        .bind_with(BindSpec {
            recv_size: Some(4),
            ..tcp("127.0.0.1:0", false)
        })
        .await;
    let req = connect(&mut client, &lab.socket, python.addr).await;
    match client.reply(req).await {
        Event::Connected(c) => {
            assert_eq!((c.socket, c.peer), (lab.socket.clone(), python.addr.into()))
        }
        other => panic!("connect should succeed, got {other:?}"),
    }
    let first = write(&mut client, &lab.socket, "hello").await;
    let second = write(&mut client, &lab.socket, "world").await;
    assert_eq!(
        (first.dir, first.offset, second.offset),
        (Direction::Out, 0, 5)
    );
    let req = client
        .send(Command::Shutdown {
            socket: lab.socket.clone(),
            how: ShutdownHow::Write,
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::ShutDown(s) if s.how == ShutdownHow::Write));
    let (reads, end) = stream_of(&mut client, &lab.socket).await;
    let pieces: Vec<(u64, Vec<u8>)> = reads.iter().map(|r| (r.offset, bytes(r))).collect();
    assert_eq!(
        pieces,
        [
            (0, b"0123".to_vec()),
            (4, b"4567".to_vec()),
            (8, b"89".to_vec())
        ]
    );
    assert_eq!((end.reason, end.read), (StreamEndReason::Eof, 10));
    assert_eq!(python.reads().concat(), "helloworld");
    server.stop().await;
}

/// Two lab sockets: connect, accept, both directions, the writer's bytes before the
/// reader's, each end's half closed in turn; and a connect where nobody listens is
/// refused.
#[tokio::test]
async fn two_lab_sockets_hold_a_conversation_and_end_it() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let listener = client.bind_with(tcp("127.0.0.1:0", true)).await;
    let dialer = client
        .bind_with(BindSpec {
            nodelay: true,
            ..tcp("127.0.0.1:0", false)
        })
        .await;
    let req = connect(&mut client, &dialer.socket, listener.local.addr()).await;
    let (mut connected, mut accepted) = (None, None);
    while connected.is_none() || accepted.is_none() {
        match client.next().await {
            Event::Connected(c) if c.req == Some(req) => connected = Some(c),
            Event::Accepted(a) => accepted = Some(a),
            _ => {}
        }
    }
    let accepted = accepted.unwrap();
    assert_eq!(accepted.peer, dialer.local.addr());
    let out = write(&mut client, &dialer.socket, "abc").await;
    let read = client
        .next_where(|e| match e {
            Event::Stream(s) if s.socket == accepted.socket => Some(s),
            _ => None,
        })
        .await;
    assert_eq!(bytes(&read), b"abc");
    assert!(
        out.id < read.id && out.t_ns < read.t_ns,
        "the write comes before the read"
    );
    write(&mut client, &accepted.socket, "xyz").await;
    let back = client
        .next_where(|e| match e {
            Event::Stream(s) if s.socket == dialer.socket && s.dir == Direction::In => Some(s),
            _ => None,
        })
        .await;
    assert_eq!(bytes(&back), b"xyz");
    // The dialer ends its half: the accepted socket reads the end of the stream, and
    // can still write.
    let req = client
        .send(Command::Shutdown {
            socket: dialer.socket.clone(),
            how: ShutdownHow::Write,
        })
        .await;
    client.reply(req).await;
    let (_, end) = stream_of(&mut client, &accepted.socket).await;
    assert_eq!((end.reason, end.read), (StreamEndReason::Eof, 3));
    write(&mut client, &accepted.socket, "last").await;
    // Not waiting for the close's reply: the dialer may read the end of the stream
    // before the close is logged, and waiting would skip that.
    client
        .send(Command::Close {
            socket: accepted.socket.clone(),
        })
        .await;
    // "xyz" and "last" were read (the read of "last" may come before the close's
    // reply), then the end of the stream.
    let (_, end) = stream_of(&mut client, &dialer.socket).await;
    assert_eq!((end.reason, end.read), (StreamEndReason::Eof, 7));

    // Nobody listens: the SYN is answered with a reset.
    let lonely = client.bind_with(tcp("127.0.0.1:0", false)).await;
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let req = connect(&mut client, &lonely.socket, nobody).await;
    let (mut error, mut end) = (None, None);
    while error.is_none() || end.is_none() {
        match client.next().await {
            Event::Error(e) if e.req == Some(req) => error = Some(e),
            Event::StreamEnd(e) if e.socket == lonely.socket => end = Some(e),
            _ => {}
        }
    }
    assert!(error.unwrap().message.contains("refused"));
    assert_eq!(end.unwrap().reason, StreamEndReason::Refused);
    server.stop().await;
}

/// What does not apply to a kind of socket is refused in words, and nothing is lost.
#[tokio::test]
async fn options_and_commands_of_the_other_kind_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let udp = client.bind("127.0.0.1:0").await;
    let listener = client.bind_with(tcp("127.0.0.1:0", true)).await;
    let cases = [
        Command::Bind(BindSpec {
            listen: true,
            ..bind_command("127.0.0.1:0")
        }),
        Command::Bind(BindSpec {
            broadcast: true,
            ..tcp("127.0.0.1:0", false)
        }),
        Command::Shutdown {
            socket: udp.socket.clone(),
            how: ShutdownHow::Both,
        },
        Command::Send {
            socket: listener.socket.clone(),
            to: None,
            payload: text("to whom?"),
        },
        Command::Send {
            socket: listener.socket.clone(),
            to: Some("127.0.0.1:9".into()),
            payload: text("a stream has no address per send"),
        },
    ];
    for command in cases {
        let error = client.refused(command, ErrorCode::BadRequest).await;
        assert!(!error.message.is_empty());
    }
    client
        .refused(
            Command::Shutdown {
                socket: SocketId::new("s99"),
                how: ShutdownHow::Write,
            },
            ErrorCode::UnknownSocket,
        )
        .await;
    // The session carries on.
    client.bind("127.0.0.1:0").await;
    server.stop().await;
}

async fn pause(client: &mut Client, socket: &SocketId, paused: bool) {
    let req = client
        .send(Command::Pause {
            socket: socket.clone(),
            paused,
        })
        .await;
    match client.reply(req).await {
        Event::Paused(p) => assert_eq!((&p.socket, p.paused), (socket, paused)),
        other => panic!("pause should succeed, got {other:?}"),
    }
}

/// The same three messages over UDP and over TCP, to receivers that are not reading
/// while they arrive (paused): three datagrams come out of three receives, the three
/// writes out of one read.
#[tokio::test]
async fn three_messages_are_three_datagrams_over_udp_and_one_read_over_tcp() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let udp_from = client.bind("127.0.0.1:0").await;
    let udp_to = client.bind("127.0.0.1:0").await;
    let listener = client.bind_with(tcp("127.0.0.1:0", true)).await;
    let dialer = client
        .bind_with(BindSpec {
            nodelay: true,
            ..tcp("127.0.0.1:0", false)
        })
        .await;
    connect(&mut client, &dialer.socket, listener.local.addr()).await;
    let accepted = client
        .next_where(|e| match e {
            Event::Accepted(a) => Some(a),
            _ => None,
        })
        .await;
    pause(&mut client, &udp_to.socket, true).await;
    pause(&mut client, &accepted.socket, true).await;
    for message in ["one", "two", "three"] {
        client
            .send_datagram(&udp_from.socket, udp_to.local.addr(), text(message))
            .await;
        write(&mut client, &dialer.socket, message).await;
    }
    // Resumed together: the events that follow are all looked at (waiting for one
    // reply would skip the reads the other resume caused).
    for socket in [&udp_to.socket, &accepted.socket] {
        client
            .send(Command::Pause {
                socket: socket.clone(),
                paused: false,
            })
            .await;
    }
    let (mut datagrams, mut reads): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    while datagrams.len() < 3 || reads.concat().len() < 11 {
        match client.next().await {
            Event::Datagram(d) if d.socket == udp_to.socket => {
                datagrams.push(decode_base64(&d.payload_b64).unwrap());
            }
            Event::Stream(s) if s.socket == accepted.socket => reads.push(bytes(&s)),
            _ => {}
        }
    }
    assert_eq!(
        datagrams,
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    assert_eq!(reads, [b"onetwothree".to_vec()]);
    // A listener reads nothing, so it cannot be paused.
    client
        .refused(
            Command::Pause {
                socket: listener.socket.clone(),
                paused: true,
            },
            ErrorCode::BadRequest,
        )
        .await;
    server.stop().await;
}

/// A peer that does not read: the writes fill the kernel's buffers, then what the
/// socket holds (1 MiB), then its queue of 64 writes; the next write is refused in
/// words. Nothing accepted is lost: once the reader resumes, every byte of every
/// accepted write arrives, and the shutdown asked for behind them comes after them.
#[tokio::test]
async fn writes_to_a_peer_that_does_not_read_are_bounded_and_none_accepted_is_lost() {
    const WRITE: usize = 65_536;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // A small receive buffer on the listener, which its connections inherit.
    let listener = client
        .bind_with(BindSpec {
            recv_buffer_bytes: Some(16 * 1024),
            ..tcp("127.0.0.1:0", true)
        })
        .await;
    let dialer = client.bind_with(tcp("127.0.0.1:0", false)).await;
    connect(&mut client, &dialer.socket, listener.local.addr()).await;
    let accepted = client
        .next_where(|e| match e {
            Event::Accepted(a) => Some(a),
            _ => None,
        })
        .await;
    pause(&mut client, &accepted.socket, true).await;
    let chunk = "x".repeat(WRITE);
    let (mut accepted_writes, mut refusal) = (0u64, None);
    for _ in 0..1_000 {
        let req = client
            .send(Command::Send {
                socket: dialer.socket.clone(),
                to: None,
                payload: text(&chunk),
            })
            .await;
        // The reply to a queued write is its first bytes' event, or, while the
        // buffers are full, nothing yet: the refusal is what is waited for.
        let reply =
            tokio::time::timeout(std::time::Duration::from_millis(10), client.reply(req)).await;
        match reply {
            Ok(Event::Error(e)) => {
                refusal = Some(e);
                break;
            }
            Ok(_) | Err(_) => accepted_writes += 1,
        }
    }
    let refusal = refusal.expect("the writes are bounded");
    assert_eq!(refusal.code, ErrorCode::LimitExceeded, "{refusal:?}");
    assert!(
        refusal.message.contains("writes waiting"),
        "{}",
        refusal.message
    );
    client
        .send(Command::Pause {
            socket: accepted.socket.clone(),
            paused: false,
        })
        .await;
    // The shutdown goes behind the waiting writes once there is room in the queue.
    let mut end = None;
    while end.is_none() {
        let req = client
            .send(Command::Shutdown {
                socket: dialer.socket.clone(),
                how: ShutdownHow::Write,
            })
            .await;
        loop {
            match client.next().await {
                Event::Error(e) if e.req == Some(req) => break,
                Event::StreamEnd(e) if e.socket == accepted.socket => {
                    end = Some(e);
                    break;
                }
                _ => {}
            }
        }
    }
    let end = end.unwrap();
    assert_eq!(
        (end.reason, end.read),
        (StreamEndReason::Eof, accepted_writes * WRITE as u64),
        "{accepted_writes} writes accepted, every byte read, then the end"
    );
    server.stop().await;
}

/// IPv6 as IPv4: a Python client over ::1 to a lab listener, and a lab client over ::1
/// to a Python server.
#[tokio::test]
async fn tcp_works_over_ipv6_both_ways() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let listener = client.bind_with(tcp("[::1]:0", true)).await;
    let from = tcp_client(listener.local.addr(), &["over", "six"]);
    let accepted = client
        .next_where(|e| match e {
            Event::Accepted(a) => Some(a),
            _ => None,
        })
        .await;
    assert_eq!(accepted.peer, from);
    let (reads, end) = stream_of(&mut client, &accepted.socket).await;
    assert_eq!(
        reads.iter().map(bytes).collect::<Vec<_>>().concat(),
        b"oversix"
    );
    assert_eq!(end.reason, StreamEndReason::Eof);

    let python = PythonTcpServer::start("::1", "ok");
    let lab = client.bind_with(tcp("[::1]:0", false)).await;
    let req = connect(&mut client, &lab.socket, python.addr).await;
    assert!(matches!(client.reply(req).await, Event::Connected(c) if c.peer == python.addr));
    write(&mut client, &lab.socket, "ping6").await;
    let req = client
        .send(Command::Shutdown {
            socket: lab.socket.clone(),
            how: ShutdownHow::Write,
        })
        .await;
    client.reply(req).await;
    let (reads, _) = stream_of(&mut client, &lab.socket).await;
    assert_eq!(reads.iter().map(bytes).collect::<Vec<_>>().concat(), b"ok");
    assert_eq!(python.reads().concat(), "ping6");
    server.stop().await;
}

/// The flows table counts a TCP connection in bytes: written, read, and the time
/// from each write to its last byte's arrival.
#[tokio::test]
async fn a_connection_is_a_flow_of_bytes() {
    use socklab_protocol::flow::FlowMethod;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let listener = client.bind_with(tcp("127.0.0.1:0", true)).await;
    let dialer = client.bind_with(tcp("127.0.0.1:0", false)).await;
    connect(&mut client, &dialer.socket, listener.local.addr()).await;
    write(&mut client, &dialer.socket, "hello").await;
    write(&mut client, &dialer.socket, "world").await;
    let flow = client
        .next_where(|e| match e {
            Event::FlowStats(stats) => stats
                .flows
                .into_iter()
                .find(|f| f.method == FlowMethod::Stream && f.received == 10),
            _ => None,
        })
        .await;
    assert_eq!(
        (flow.src, flow.dst, flow.sent, flow.in_flight, flow.lost),
        (dialer.local, listener.local, 10, 0, 0)
    );
    assert!(flow.latency_ns.is_some(), "each write's time to its reader");
    server.stop().await;
}

/// A TCP link between a lab client and a Python server: the client's bytes are held
/// 50 ms and cut into 3-byte pieces 20 ms apart, so the server's reads return pieces;
/// the end of the stream is passed on after them; the answer comes back. A second
/// link resets both ends once 5 bytes crossed it.
#[tokio::test]
async fn a_tcp_link_delays_and_slices_a_stream_passes_its_end_and_can_reset_it() {
    use socklab_protocol::TcpLinkEndHow;
    use socklab_protocol::link::{LinkDir, TcpImpairments, TcpLinkSettings};
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let python = PythonTcpServer::start("127.0.0.1", "answer");
    let settings = TcpLinkSettings {
        c2t: TcpImpairments {
            latency_ms: 50.0,
            slice_bytes: 3,
            slice_delay_ms: 20.0,
            ..TcpImpairments::default()
        },
        ..TcpLinkSettings::default()
    };
    let create = |target: std::net::SocketAddr, settings| Command::TcpLinkCreate {
        listen: "127.0.0.1:0".into(),
        target: target.to_string(),
        settings,
    };
    let req = client.send(create(python.addr, settings)).await;
    let Event::TcpLinkCreated(link) = client.reply(req).await else {
        panic!("tcp_link_create should succeed");
    };
    assert_eq!(link.link.as_str(), "t1");
    let lab = client.bind_with(tcp("127.0.0.1:0", false)).await;
    connect(&mut client, &lab.socket, link.listen).await;
    write(&mut client, &lab.socket, "hello world").await;
    client
        .send(Command::Shutdown {
            socket: lab.socket.clone(),
            how: ShutdownHow::Write,
        })
        .await;
    let (mut chunk, mut fin, mut answer, mut end) = (None, None, Vec::new(), None);
    while end.is_none() {
        match client.next().await {
            Event::TcpLinkConn(c) => {
                assert_eq!((c.conn, c.client, c.error), (1, lab.local.addr(), None));
            }
            Event::TcpLinkChunk(c) if c.dir == LinkDir::C2t => chunk = Some(c),
            Event::TcpLinkEnd(e) if e.dir == LinkDir::C2t => fin = Some(e),
            Event::Stream(s) if s.socket == lab.socket && s.dir == Direction::In => {
                answer.extend(bytes(&s));
            }
            Event::StreamEnd(e) if e.socket == lab.socket => end = Some(e),
            _ => {}
        }
    }
    let chunk = chunk.expect("the link's decision on the client's bytes");
    assert_eq!((chunk.offset, chunk.len, chunk.pieces), (0, 11, 4));
    assert!(chunk.delay_ns >= 50_000_000, "{chunk:?}");
    assert_eq!(fin.expect("the end passed on").how, TcpLinkEndHow::Fin);
    assert_eq!(answer, b"answer");
    assert_eq!(end.unwrap().reason, StreamEndReason::Eof);
    let reads = python.reads();
    assert_eq!(reads.concat(), "hello world");
    assert!(
        reads.len() >= 2,
        "pieces 20 ms apart are read apart: {reads:?}"
    );

    // Reset after 5 bytes: the target never reads (its kernel accepts for it).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let req = client
        .send(create(
            silent.local_addr().unwrap(),
            TcpLinkSettings {
                reset_after_bytes: 5,
                ..TcpLinkSettings::default()
            },
        ))
        .await;
    let Event::TcpLinkCreated(resetting) = client.reply(req).await else {
        panic!("tcp_link_create should succeed");
    };
    let lab = client.bind_with(tcp("127.0.0.1:0", false)).await;
    connect(&mut client, &lab.socket, resetting.listen).await;
    write(&mut client, &lab.socket, "hello world").await;
    let (mut reset, mut end) = (None, None);
    while reset.is_none() || end.is_none() {
        match client.next().await {
            Event::TcpLinkEnd(e) if e.link == resetting.link => reset = Some(e),
            Event::StreamEnd(e) if e.socket == lab.socket => end = Some(e),
            _ => {}
        }
    }
    assert_eq!(reset.unwrap().how, TcpLinkEndHow::Reset);
    assert_eq!(end.unwrap().reason, StreamEndReason::Reset);
    // Deleting a TCP link works as for any link.
    let req = client
        .send(Command::LinkDelete {
            link: resetting.link.clone(),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::LinkDeleted(d) if d.link == resetting.link));
    server.stop().await;
}

/// A TCP link's bandwidth holds a chunk for its sending time (1,000 bytes at 80 kbit/s:
/// 100 ms), and its close delay holds the end of the stream (100 ms after the client
/// shut its half).
#[tokio::test]
async fn a_tcp_links_bandwidth_and_close_delay_hold_bytes_and_the_end_of_stream() {
    use socklab_protocol::TcpLinkEndHow;
    use socklab_protocol::link::{LinkDir, TcpImpairments, TcpLinkSettings};
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let python = PythonTcpServer::start("127.0.0.1", "ok");
    let req = client
        .send(Command::TcpLinkCreate {
            listen: "127.0.0.1:0".into(),
            target: python.addr.to_string(),
            settings: TcpLinkSettings {
                c2t: TcpImpairments {
                    rate_bps: 80_000,
                    ..TcpImpairments::default()
                },
                close_delay_ms: 100.0,
                ..TcpLinkSettings::default()
            },
        })
        .await;
    let Event::TcpLinkCreated(link) = client.reply(req).await else {
        panic!("tcp_link_create should succeed");
    };
    let lab = client.bind_with(tcp("127.0.0.1:0", false)).await;
    connect(&mut client, &lab.socket, link.listen).await;
    write(&mut client, &lab.socket, &"x".repeat(1_000)).await;
    let req = client
        .send(Command::Shutdown {
            socket: lab.socket.clone(),
            how: ShutdownHow::Write,
        })
        .await;
    let (mut held, mut shut_at, mut fin) = (0u64, None, None);
    while fin.is_none() {
        match client.next().await {
            Event::TcpLinkChunk(c) if c.dir == LinkDir::C2t => held = held.max(c.delay_ns),
            Event::ShutDown(s) if s.req == Some(req) => shut_at = Some(s.t_ns),
            Event::TcpLinkEnd(e) if e.dir == LinkDir::C2t => fin = Some(e),
            _ => {}
        }
    }
    let fin = fin.unwrap();
    assert!(
        held >= 99_000_000,
        "1,000 bytes at 80 kbit/s take 100 ms: held {held} ns"
    );
    assert_eq!(fin.how, TcpLinkEndHow::Fin);
    let shut_at = shut_at.expect("the client's shutdown");
    assert!(
        fin.t_ns >= shut_at + 100_000_000,
        "the end of the stream was held 100 ms: shut at {shut_at}, passed on at {}",
        fin.t_ns
    );
    assert_eq!(python.reads().concat().len(), 1_000);
    server.stop().await;
}

/// What a listener and a TCP link take in is bounded: connections past the session's
/// socket limit are closed (and say so), and a TCP link resets its seventeenth client
/// while sixteen are open, with the reason in its event.
#[tokio::test]
async fn accepted_connections_and_a_tcp_links_clients_are_bounded() {
    use socklab_protocol::link::TcpLinkSettings;
    let server = TestServer::with_config(socklab_server::Config {
        max_sockets_per_session: 3,
        ..socklab_server::Config::default()
    })
    .await;
    let mut client = server.client().await;
    let listener = client.bind_with(tcp("127.0.0.1:0", true)).await;
    // Five clients of the test's own; the kernel accepts them for the listener.
    let _clients: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(listener.local.addr()).unwrap())
        .collect();
    let mut accepted = Vec::new();
    while accepted.len() < 5 {
        if let Event::Accepted(a) = client.next().await {
            accepted.push(a.socket);
        }
    }
    // The next command takes them in: two fit beside the listener, three are closed.
    client
        .refused(
            Command::Shutdown {
                socket: SocketId::new("s99"),
                how: ShutdownHow::Write,
            },
            ErrorCode::UnknownSocket,
        )
        .await;
    let mut closed = 0;
    while closed < 3 {
        if let Event::Closed(c) = client.next().await {
            assert!(accepted.contains(&c.socket), "{c:?}");
            closed += 1;
        }
    }

    // A TCP link with sixteen clients holding connections resets the seventeenth.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server2 = TestServer::start().await;
    let mut other = server2.client().await;
    let req = other
        .send(Command::TcpLinkCreate {
            listen: "127.0.0.1:0".into(),
            target: target.local_addr().unwrap().to_string(),
            settings: TcpLinkSettings::default(),
        })
        .await;
    let Event::TcpLinkCreated(link) = other.reply(req).await else {
        panic!("tcp_link_create should succeed");
    };
    let _held: Vec<std::net::TcpStream> = (0..17)
        .map(|_| std::net::TcpStream::connect(link.listen).unwrap())
        .collect();
    let mut refused = None;
    let mut carried = 0;
    while refused.is_none() {
        if let Event::TcpLinkConn(c) = other.next().await {
            match c.error {
                Some(e) => refused = Some((c.conn, e)),
                None => carried += 1,
            }
        }
    }
    let (conn, why) = refused.unwrap();
    assert_eq!(conn, 17, "{carried} carried before: {why}");
    assert!(why.contains("16 connections"), "{why}");
    server2.stop().await;
    server.stop().await;
}

/// Held writes are bounded in number as well as in bytes: once the kernel's buffers
/// are full, one-byte writes (far below the byte limit) are refused after the socket
/// holds 64 and queues 64 more.
#[tokio::test]
async fn many_tiny_writes_to_a_peer_that_does_not_read_are_bounded_in_number() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let listener = client
        .bind_with(BindSpec {
            recv_buffer_bytes: Some(16 * 1024),
            ..tcp("127.0.0.1:0", true)
        })
        .await;
    let dialer = client.bind_with(tcp("127.0.0.1:0", false)).await;
    connect(&mut client, &dialer.socket, listener.local.addr()).await;
    let accepted = client
        .next_where(|e| match e {
            Event::Accepted(a) => Some(a),
            _ => None,
        })
        .await;
    pause(&mut client, &accepted.socket, true).await;
    let send = |payload: String| Command::Send {
        socket: dialer.socket.clone(),
        to: None,
        payload: text(&payload),
    };
    // Big writes until one is not written: the kernel's buffers are full. (A write
    // the kernel takes is answered at once; half a second without an answer is not
    // a busy machine's delay but a write held back.)
    let chunk = "x".repeat(65_536);
    for _ in 0..1_000 {
        let req = client.send(send(chunk.clone())).await;
        let reply =
            tokio::time::timeout(std::time::Duration::from_millis(500), client.reply(req)).await;
        if reply.is_err() {
            break;
        }
    }
    // Then one byte at a time.
    let mut tiny = 0;
    let refusal = loop {
        assert!(tiny < 10_000, "one-byte writes are never refused");
        tiny += 1;
        let req = client.send(send("y".into())).await;
        let reply =
            tokio::time::timeout(std::time::Duration::from_millis(10), client.reply(req)).await;
        if let Ok(Event::Error(e)) = reply {
            break e;
        }
    };
    assert_eq!(refusal.code, ErrorCode::LimitExceeded, "{refusal:?}");
    assert!(
        tiny <= 2 * 64 + 1,
        "{tiny} one-byte writes before the refusal: at most 64 held and 64 queued"
    );
    server.stop().await;
}
