//! Unix domain datagram sockets (AF_UNIX, SOCK_DGRAM) through the real server: bound in
//! the session's own directory or to abstract names, talking to each other and to a
//! Python program, on the same timeline and with the same fates as UDP.

use std::time::Duration;

use socklab_protocol::flow::FateKind;
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{
    BindSpec, Bound, Command, Datagram, Direction, Endpoint, ErrorCode, Event, Proto,
};
use socklab_server::Config;
use socklab_tests::python::PythonUnixEcho;
use socklab_tests::{Client, TestServer, text};

/// A bind of a Unix socket at `addr` (`unix:name`, `unix:@name`, `unix:`).
fn unix(addr: &str) -> BindSpec {
    BindSpec {
        proto: Proto::Unix,
        addr: addr.into(),
        ..BindSpec::default()
    }
}

/// A server whose Unix directories are made in `dir`, allowing sends into `allow`.
async fn server_in(dir: &std::path::Path, allow: Vec<std::path::PathBuf>) -> TestServer {
    TestServer::with_config(Config {
        unix_dir: Some(dir.join("run")),
        allow_unix: allow,
        ..Config::default()
    })
    .await
}

fn send(socket: &Bound, to: &str, payload: &str) -> Command {
    Command::Send {
        socket: socket.socket.clone(),
        to: Some(to.into()),
        payload: text(payload),
    }
}

/// Every event until `n` fates have come, the datagrams and fates among them.
async fn until_fates(
    client: &mut Client,
    n: usize,
) -> (Vec<Datagram>, Vec<socklab_protocol::flow::Fate>) {
    let (mut datagrams, mut fates) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fates.len() < n {
        let event = tokio::time::timeout_at(deadline, client.next())
            .await
            .unwrap_or_else(|_| panic!("{n} fates in time; got {fates:?} after {datagrams:?}"));
        match event {
            Event::Datagram(d) => datagrams.push(d),
            Event::Fate(f) => fates.push(f),
            Event::Error(e) => panic!("no refusal expected: {e:?}"),
            _ => {}
        }
    }
    (datagrams, fates)
}

/// Two lab sockets, one named in the session's directory and one in the abstract
/// namespace, exchange datagrams; each is delivered with its latency, and closing a
/// socket removes its file.
#[tokio::test]
async fn two_lab_unix_sockets_talk_and_each_datagram_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), Vec::new()).await;
    let mut client = server.client().await;
    let a = client.bind_with(unix("unix:alice")).await;
    let b = client.bind_with(unix("unix:@socklab-test-bob")).await;
    assert_eq!(a.proto, Proto::Unix);
    let path = a.local.unix_name().expect("a Unix name").to_owned();
    assert!(
        path.starts_with(&dir.path().join("run").to_string_lossy().to_string()),
        "{path}"
    );
    assert!(path.ends_with("/alice"), "{path}");
    assert!(
        std::path::Path::new(&path).exists(),
        "the socket's file is there"
    );
    assert_eq!(b.local, Endpoint::unix("@socklab-test-bob"));

    client
        .send(send(&a, "unix:@socklab-test-bob", "hello bob"))
        .await;
    // By its short name in the session's directory, as a person types it.
    client.send(send(&b, "unix:alice", "hello alice")).await;
    let (datagrams, fates) = until_fates(&mut client, 2).await;
    let ins: Vec<(String, Endpoint, Vec<u8>)> = datagrams
        .iter()
        .filter(|d| d.dir == Direction::In)
        .map(|d| {
            (
                d.socket.to_string(),
                d.peer.clone(),
                decode_base64(&d.payload_b64).unwrap(),
            )
        })
        .collect();
    assert!(
        ins.contains(&(b.socket.to_string(), a.local.clone(), b"hello bob".to_vec())),
        "{ins:?}"
    );
    assert!(
        ins.contains(&(
            a.socket.to_string(),
            b.local.clone(),
            b"hello alice".to_vec()
        )),
        "{ins:?}"
    );
    for f in &fates {
        assert_eq!(f.fate, FateKind::Delivered, "{f:?}");
        assert!(f.latency_ns.is_some(), "{f:?}");
        assert!(f.src.is_unix() && f.dst.is_unix(), "{f:?}");
    }

    let req = client
        .send(Command::Close {
            socket: a.socket.clone(),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::Closed(_)));
    assert!(
        !std::path::Path::new(&path).exists(),
        "closing removes the file"
    );
    server.stop().await;
}

/// The learner's Python program, bound to a path in a directory the server allows
/// and to an abstract name, echoes what a lab socket sends: the echo is its reply.
#[tokio::test]
async fn a_python_unix_echo_server_answers_a_lab_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    let server = server_in(dir.path(), vec![mine.clone()]).await;
    let mut client = server.client().await;
    let on_path = PythonUnixEcho::start(&mine.join("echo.sock").to_string_lossy());
    let abstract_name = format!("@socklab-test-echo-{}", std::process::id());
    let on_name = PythonUnixEcho::start(&abstract_name);
    // A name the kernel picks, as port 0 is for UDP.
    let lab = client.bind_with(unix("unix:")).await;
    assert!(
        lab.local.unix_name().is_some_and(|n| n.starts_with('@')),
        "{:?}",
        lab.local
    );

    for (program, payload) in [
        (&on_path, "ping over a path"),
        (&on_name, "ping over a name"),
    ] {
        client.send(send(&lab, &program.endpoint, payload)).await;
    }
    let (datagrams, fates) = until_fates(&mut client, 2).await;
    for (program, payload) in [
        (&on_path, "ping over a path"),
        (&on_name, "ping over a name"),
    ] {
        let echoed = datagrams
            .iter()
            .find(|d| d.dir == Direction::In && d.peer.to_string() == program.endpoint)
            .unwrap_or_else(|| panic!("an answer from {}: {datagrams:?}", program.endpoint));
        assert_eq!(
            decode_base64(&echoed.payload_b64).unwrap(),
            payload.as_bytes()
        );
        let fate = fates
            .iter()
            .find(|f| f.dst.to_string() == program.endpoint)
            .expect("a fate for the flow");
        assert_eq!(
            (fate.fate, &fate.src),
            (FateKind::Reply, &lab.local),
            "{fate:?}"
        );
    }
    server.stop().await;
}

/// A program that never bound a name can send to a lab socket; the event says so
/// (`unix:`), and nothing can be sent back to it.
#[tokio::test]
async fn an_unnamed_sender_is_heard_but_cannot_be_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), Vec::new()).await;
    let mut client = server.client().await;
    let lab = client.bind_with(unix("unix:inbox")).await;
    let path = lab.local.unix_name().unwrap().to_owned();
    let unnamed = std::os::unix::net::UnixDatagram::unbound().unwrap();
    unnamed.send_to(b"who am I", &path).unwrap();
    let inbound = client.received_on(&lab.socket).await;
    assert_eq!(inbound.peer, Endpoint::unix(""));
    assert!(inbound.peer.is_unnamed());
    let refusal = client
        .refused(send(&lab, "unix:", "hello?"), ErrorCode::BadAddress)
        .await;
    assert!(
        refusal.message.contains("never bound a name"),
        "{}",
        refusal.message
    );
    server.stop().await;
}

/// A Unix datagram is never dropped: when the receiver's queue is full (it is not
/// reading), the sender waits, and every datagram arrives in order once it reads.
#[tokio::test]
async fn a_full_receiver_makes_the_sender_wait_and_loses_nothing() {
    const COUNT: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), Vec::new()).await;
    let mut client = server.client().await;
    let sender = client.bind_with(unix("unix:sender")).await;
    let receiver = client.bind_with(unix("unix:receiver")).await;
    let req = client
        .send(Command::Pause {
            socket: receiver.socket.clone(),
            paused: true,
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::Paused(_)));
    for i in 0..COUNT {
        client
            .send(send(&sender, "unix:receiver", &format!("{i}")))
            .await;
    }
    // The kernel queues net.unix.max_dgram_qlen of them (10 here); the rest wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sent_while_paused = 0;
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(50), client.next()).await {
        match event {
            Event::Datagram(d) if d.dir == Direction::Out => sent_while_paused += 1,
            Event::Error(e) => panic!("no refusal expected: {e:?}"),
            _ => {}
        }
    }
    assert!(
        sent_while_paused < COUNT,
        "the sender waits for a full receiver: {sent_while_paused} sent"
    );
    let req = client
        .send(Command::Pause {
            socket: receiver.socket.clone(),
            paused: false,
        })
        .await;
    client.reply(req).await;
    let (datagrams, fates) = until_fates(&mut client, COUNT).await;
    let received: Vec<String> = datagrams
        .iter()
        .filter(|d| d.dir == Direction::In)
        .map(|d| String::from_utf8(decode_base64(&d.payload_b64).unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();
    assert_eq!(received, expected, "every datagram, in order");
    assert!(
        fates.iter().all(|f| f.fate == FateKind::Delivered),
        "{fates:?}"
    );
    server.stop().await;
}

/// A read size cuts a longer Unix datagram as it cuts a UDP one.
#[tokio::test]
async fn a_small_read_size_cuts_a_unix_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), Vec::new()).await;
    let mut client = server.client().await;
    let sender = client.bind_with(unix("unix:long")).await;
    let reader = client
        .bind_with(BindSpec {
            recv_size: Some(4),
            ..unix("unix:short")
        })
        .await;
    client
        .send(send(&sender, "unix:short", "hello world"))
        .await;
    let got = client.received_on(&reader.socket).await;
    assert_eq!(decode_base64(&got.payload_b64).unwrap(), b"hell");
    assert_eq!(got.truncated_from, Some(11));
    server.stop().await;
}

/// Where a Unix socket may not be bound or sent, and the other refusals, each in words;
/// the session carries on.
#[tokio::test]
async fn paths_outside_the_allowed_directories_and_mixed_families_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), Vec::new()).await;
    let mut client = server.client().await;
    for (spec, code, words) in [
        (
            unix("unix:/tmp/anywhere"),
            ErrorCode::Forbidden,
            "session's directory",
        ),
        (
            unix("unix:../up"),
            ErrorCode::BadAddress,
            "not a socket name",
        ),
        (
            unix("127.0.0.1:0"),
            ErrorCode::BadAddress,
            "binds to a name",
        ),
        (
            BindSpec {
                proto: Proto::Udp,
                ..unix("unix:x")
            },
            ErrorCode::BadAddress,
            "proto \"unix\"",
        ),
        (
            BindSpec {
                broadcast: true,
                ..unix("unix:x")
            },
            ErrorCode::BadRequest,
            "only a read size",
        ),
        (
            BindSpec {
                recv_buffer_bytes: Some(4096),
                ..unix("unix:x")
            },
            ErrorCode::BadRequest,
            "max_dgram_qlen",
        ),
    ] {
        let refusal = client.refused(Command::Bind(spec.clone()), code).await;
        assert!(
            refusal.message.contains(words),
            "{spec:?}: {}",
            refusal.message
        );
    }
    let lab = client.bind_with(unix("unix:ok")).await;
    let udp = client.bind("127.0.0.1:0").await;
    for (from, to, code, words) in [
        (
            &lab,
            "unix:/etc/hostname",
            ErrorCode::Forbidden,
            "--allow-unix",
        ),
        (
            &lab,
            "127.0.0.1:9",
            ErrorCode::BadAddress,
            "sends to Unix names",
        ),
        (&udp, "unix:ok", ErrorCode::BadAddress, "bind a Unix socket"),
    ] {
        let refusal = client.refused(send(from, to, "x"), code).await;
        assert!(refusal.message.contains(words), "{to}: {}", refusal.message);
    }
    // A name nobody holds: the kernel refuses the send at once (unlike UDP).
    let req = client.send(send(&lab, "unix:nobody", "anyone?")).await;
    match client.reply(req).await {
        Event::Error(e) => {
            assert_eq!(e.code, ErrorCode::BadAddress);
            assert!(e.message.contains("nothing is bound"), "{}", e.message);
        }
        other => panic!("a refusal, got {other:?}"),
    }
    // The session carries on.
    client.send(send(&lab, "unix:ok", "still here")).await;
    let got = client.received_on(&lab.socket).await;
    assert_eq!(decode_base64(&got.payload_b64).unwrap(), b"still here");
    server.stop().await;
}

/// The session's directory goes when the session ends, with the server's.
#[tokio::test]
async fn the_sessions_directory_is_removed_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), Vec::new()).await;
    let mut client = server.client().await;
    let lab = client.bind_with(unix("unix:temp")).await;
    let path = std::path::PathBuf::from(lab.local.unix_name().unwrap());
    let session_dir = path.parent().unwrap().to_path_buf();
    assert!(session_dir.is_dir());
    drop(client);
    server.stop().await;
    assert!(!session_dir.exists(), "{} is gone", session_dir.display());
    let left: Vec<_> = std::fs::read_dir(dir.path().join("run")).unwrap().collect();
    assert!(left.is_empty(), "nothing is left: {left:?}");
}

/// Unix sockets count against the session's socket limit like any other.
#[tokio::test]
async fn unix_sockets_count_against_the_sessions_socket_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with_config(Config {
        unix_dir: Some(dir.path().join("run")),
        max_sockets_per_session: 2,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    client.bind_with(unix("unix:one")).await;
    client.bind("127.0.0.1:0").await;
    let refusal = client
        .refused(Command::Bind(unix("unix:three")), ErrorCode::LimitExceeded)
        .await;
    assert!(
        refusal.message.contains("--max-sockets-per-session"),
        "{}",
        refusal.message
    );
    assert!(
        !std::fs::read_dir(dir.path().join("run"))
            .unwrap()
            .flatten()
            .any(|server_dir| server_dir
                .path()
                .join(".")
                .read_dir()
                .unwrap()
                .flatten()
                .any(|s| s.path().join("three").exists())),
        "nothing was made for the refused socket"
    );
    server.stop().await;
}

/// The time of a Unix datagram's `in` is the kernel's, when it reached the socket, not
/// when the lab read it: read 300 ms late (the socket paused), it still shows within a
/// few milliseconds of its send.
#[tokio::test]
async fn a_unix_datagram_read_late_keeps_its_arrival_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), Vec::new()).await;
    let mut client = server.client().await;
    let sender = client.bind_with(unix("unix:early")).await;
    let receiver = client.bind_with(unix("unix:late")).await;
    let req = client
        .send(Command::Pause {
            socket: receiver.socket.clone(),
            paused: true,
        })
        .await;
    client.reply(req).await;
    client.send(send(&sender, "unix:late", "when?")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .send(Command::Pause {
            socket: receiver.socket.clone(),
            paused: false,
        })
        .await;
    let (datagrams, _) = until_fates(&mut client, 1).await;
    let t = |dir: Direction| {
        datagrams
            .iter()
            .find(|d| d.dir == dir)
            .map(|d| d.t_ns)
            .unwrap()
    };
    let (sent, arrived) = (t(Direction::Out), t(Direction::In));
    assert!(
        arrived >= sent && arrived - sent < 50_000_000,
        "arrival {arrived} ns against send {sent} ns: the kernel's stamp, not the late read"
    );
    server.stop().await;
}
