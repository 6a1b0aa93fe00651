//! Who gets in, and sessions that outlive their viewers: the launch token, the Host
//! allowlist, coming back with `since`, several viewers, the grace period, a stalled
//! viewer's `gap`, and the server's limits.

use std::time::Duration;

use socklab_protocol::flow::{Amount, GeneratorPace, GeneratorPayload, GeneratorSpec};
use socklab_protocol::{Command, ErrorCode, Event, EventId};
use socklab_server::Config;
use socklab_tests::IpEndpoint as _;
use socklab_tests::{Client, TestServer, expect_error, text};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite;

fn status_of(err: tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_launch_token_is_required() {
    let server = TestServer::with_config(Config {
        token: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let missing = Client::connect_with(server.addr, "")
        .await
        .err()
        .expect("refused");
    assert_eq!(status_of(missing), 401);
    let wrong = Client::connect_with(server.addr, "token=guess")
        .await
        .err()
        .expect("refused");
    assert_eq!(status_of(wrong), 403);
    let mut client = Client::connect_with(server.addr, "token=s3cret")
        .await
        .expect("let in");
    let a = client.bind("127.0.0.1:0").await;
    client
        .send_datagram(&a.socket, a.local.addr(), text("in"))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn foreign_hosts_are_refused_everywhere() {
    let server = TestServer::with_config(Config {
        allow_hosts: vec!["lab.test".into()],
        ..Config::default()
    })
    .await;
    for (host, path, status) in [
        ("evil.example", "/", "403"),
        ("evil.example:80", "/ws", "403"),
        ("127.0.0.1.nip.example", "/", "403"),
        ("lab.test", "/", "503"), // allowed; the web app is not built in this server
        ("localhost", "/", "503"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let line = response.lines().next().unwrap_or_default();
        assert!(line.contains(status), "{host}{path}: {line}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_viewer_comes_back_with_since_and_misses_nothing() {
    let server = TestServer::start().await;
    let mut first = server.client().await;
    let session = first.hello.session.clone();
    let a = first.bind("127.0.0.1:0").await;
    let seen = first
        .send_datagram(&a.socket, a.local.addr(), text("before"))
        .await;
    first.received_on(&a.socket).await;
    drop(first);

    // While nobody watches, the socket keeps receiving.
    let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5 {
        plain
            .send_to(format!("while away {i}").as_bytes(), a.local.addr())
            .unwrap();
    }

    let mut back = Client::connect_with(
        server.addr,
        &format!("session={session}&since={}", seen.id.0),
    )
    .await
    .unwrap();
    assert_eq!(back.hello.session, session, "the same session");
    let mut ids = Vec::new();
    let mut payloads = Vec::new();
    while payloads.len() < 6 {
        match back.next().await {
            Event::Datagram(d) => {
                ids.push(d.id.0);
                payloads.push(socklab_protocol::payload::decode_base64(&d.payload_b64).unwrap());
            }
            other => ids.extend(other.id().map(|i| i.0)),
        }
    }
    assert!(
        ids.iter().all(|&i| i > seen.id.0),
        "only events after since: {ids:?}"
    );
    assert_eq!(
        payloads[0], b"before",
        "the receive of the datagram sent before leaving"
    );
    for (i, p) in payloads[1..].iter().enumerate() {
        assert_eq!(p, format!("while away {i}").as_bytes());
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "in order");
    // The socket is still the session's, and live events follow.
    back.send_datagram(&a.socket, a.local.addr(), text("after"))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn two_viewers_of_one_session_see_the_same_events() {
    let server = TestServer::start().await;
    let mut teacher = server.client().await;
    let mut student =
        Client::connect_with(server.addr, &format!("session={}", teacher.hello.session))
            .await
            .unwrap();
    assert_eq!(student.hello.session, teacher.hello.session);
    let a = teacher.bind("127.0.0.1:0").await;
    let (bound, _) = student.until(|e| matches!(e, Event::Bound(_))).await;
    assert_eq!(
        bound.id(),
        Some(a.id),
        "the student sees the teacher's bind, with its id"
    );
    assert_eq!(
        bound.req(),
        None,
        "but not the teacher's req: the student numbers its own"
    );
    // The student's commands act on the same session; the teacher sees them too.
    let out = student
        .send_datagram(&a.socket, a.local.addr(), text("from the student"))
        .await;
    let seen_by_teacher = teacher.received_on(&a.socket).await;
    assert!(seen_by_teacher.id > out.id);
    server.stop().await;
}

#[tokio::test]
async fn a_session_ends_after_its_grace_period() {
    let server = TestServer::with_config(Config {
        grace: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let session = client.hello.session.clone();
    let a = client.bind("127.0.0.1:0").await;
    drop(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(a.local.addr()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the session ends and frees its socket"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut late = Client::connect_with(server.addr, &format!("session={session}&since=3"))
        .await
        .unwrap();
    assert_ne!(late.hello.session, session, "a new session");
    let notice = expect_error(late.next().await, ErrorCode::UnknownSession);
    assert!(
        notice.message.contains(session.as_str()),
        "{}",
        notice.message
    );
    late.bind("127.0.0.1:0").await;
    server.stop().await;
}

/// A viewer that stops reading falls behind; once the log no longer holds what it
/// missed, it is told exactly which events are gone, while another viewer of the same
/// session misses nothing.
#[tokio::test]
async fn a_stalled_viewer_gets_a_gap_and_the_other_misses_nothing() {
    const LOG: usize = 15_000;
    let server = TestServer::with_config(Config {
        log_max_events: LOG,
        ..Config::default()
    })
    .await;
    let mut active = server.client().await;
    let mut stalled =
        Client::connect_with(server.addr, &format!("session={}", active.hello.session))
            .await
            .unwrap();
    let a = active.bind("127.0.0.1:0").await;
    let b = active.bind("127.0.0.1:0").await;
    // Big datagrams fill the stalled viewer's TCP buffers quickly.
    let req = active
        .send(Command::Generate(GeneratorSpec {
            socket: a.socket.clone(),
            to: b.local.to_string(),
            amount: Amount::Count(16_000),
            pace: GeneratorPace::Rate(4_000.0),
            payload: GeneratorPayload::Size(1_400),
            sequence: true,
        }))
        .await;
    let (started, skipped) = active.until(|e| e.req() == Some(req)).await;
    // The active viewer reads everything until the generator is done.
    let mut ids = vec![b.id.0];
    ids.extend(
        skipped
            .iter()
            .chain([&started])
            .filter_map(|e| e.id())
            .map(|i| i.0),
    );
    loop {
        let event = active.next().await;
        assert!(
            !matches!(event, Event::Gap(_)),
            "the active viewer never misses anything"
        );
        if let Some(id) = event.id() {
            ids.push(id.0);
        }
        if matches!(event, Event::GeneratorDone(_)) {
            break;
        }
    }
    let contiguous = ids.windows(2).all(|w| w[1] == w[0] + 1);
    assert!(contiguous, "the active viewer's ids have no hole");
    let last = *ids.last().unwrap();

    // Now the stalled one reads: some events, a gap naming what is gone, then the rest.
    let mut gap = None;
    let mut expected_next = 1u64;
    let mut reached = 0;
    while reached < last {
        match stalled.next().await {
            Event::Gap(g) => {
                assert!(gap.is_none(), "one gap");
                assert_eq!(
                    g.from.0, expected_next,
                    "the gap starts right after what it got"
                );
                assert_eq!(g.count, g.to.0 - g.from.0 + 1);
                expected_next = g.to.0 + 1;
                gap = Some(g);
            }
            event => {
                if let Some(EventId(id)) = event.id() {
                    assert_eq!(id, expected_next, "nothing missing outside the gap");
                    expected_next = id + 1;
                    reached = id;
                }
            }
        }
    }
    let gap = gap.expect("the stalled viewer was told what it missed");
    assert!(gap.count > 0 && gap.to.0 < last);
    server.stop().await;
}

#[tokio::test]
async fn the_number_of_sessions_is_limited() {
    let server = TestServer::with_config(Config {
        max_sessions: 1,
        ..Config::default()
    })
    .await;
    let mut only = server.client().await;
    let refused = Client::connect_with(server.addr, "")
        .await
        .err()
        .expect("refused");
    assert_eq!(status_of(refused), 429);
    // A second viewer of the existing session is not a new session.
    Client::connect_with(server.addr, &format!("session={}", only.hello.session))
        .await
        .unwrap();
    let a = only.bind("127.0.0.1:0").await;
    only.send_datagram(&a.socket, a.local.addr(), text("still fine"))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_message_closes_that_connection_only() {
    let server = TestServer::start().await;
    let mut other = server.client().await;
    let mut big = server.client().await;
    big.send_text(&"x".repeat(2 * 1024 * 1024)).await;
    let close = big.closed().await;
    assert_eq!(close, Some(1009), "message too big");
    let a = other.bind("127.0.0.1:0").await;
    other
        .send_datagram(&a.socket, a.local.addr(), text("others carry on"))
        .await;
    let mut again = server.client().await;
    again.bind("127.0.0.1:0").await;
    server.stop().await;
}

/// `GET /ws/access` answers what `GET /ws` would do with the same query, so that a page
/// (whose WebSocket never sees an HTTP refusal) can say why it cannot connect.
#[tokio::test]
async fn the_access_check_says_why_a_connection_would_fail() {
    let server = TestServer::with_config(Config {
        token: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let live = Client::connect_with(server.addr, "token=s3cret")
        .await
        .unwrap();
    let session = live.hello.session.clone();
    let cases = [
        ("", "401", r#""code":"no_token""#),
        ("token=old", "403", r#""code":"wrong_token""#),
        ("token=s3cret", "200", r#""session":"new""#),
        (
            &*format!("token=s3cret&session={session}&since=0"),
            "200",
            r#""session":"live""#,
        ),
        (
            "token=s3cret&session=0123456789abcdef",
            "200",
            r#""session":"ended""#,
        ),
        (
            &*format!("token=s3cret&session={session}&since=99"),
            "400",
            r#""code":"bad_since""#,
        ),
    ];
    for (query, status, body) in cases {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "GET /ws/access?{query} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    server.addr
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{query}: {response}"
        );
        assert!(response.contains(body), "{query}: {response}");
    }
    drop(live);
    server.stop().await;
}
