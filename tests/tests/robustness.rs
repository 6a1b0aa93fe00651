//! Hostile but local input, each case exactly as it was found to crash, freeze or
//! exhaust the server, sent to a real server: every one now gets a clear refusal (or is
//! bounded), and the server and its other sessions carry on.
//!
//! (Over 600 lines: each case is kept as it was found, with the numbers that broke
//! the server, so that none can quietly come back.)

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use socklab_protocol::link::{DropReason, Impairments, LinkSettings};
use socklab_protocol::{ErrorCode, Event};
use socklab_server::Config;
use socklab_tests::IpEndpoint as _;
use socklab_tests::{Client, TestServer, expect_error, text};
use tokio_tungstenite::tungstenite;

/// Sends a raw JSON command with `req` and returns the event that answers it.
async fn answer(client: &mut Client, req: i64, mut command: Value) -> Event {
    command["req"] = json!(req);
    client.send_text(&command.to_string()).await;
    client.reply(req).await
}

/// Proves the server still serves: a new session binds and hears itself.
async fn server_still_serves(server: &TestServer) {
    let mut fresh = server.client().await;
    let a = fresh.bind("127.0.0.1:0").await;
    fresh
        .send_datagram(&a.socket, a.local.addr(), text("alive"))
        .await;
    fresh.received_on(&a.socket).await;
}

#[tokio::test]
async fn a_petabyte_generator_payload_is_refused_before_anything_is_allocated() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    assert_eq!(a.socket.as_str(), "s1");
    // The exact command that aborted the process (it allocated 1 PiB first).
    let command = json!({"type":"generate","socket":"s1","to":"127.0.0.1:9","amount":{"count":1},"rate":1,"size":1125899906842624u64});
    let error = expect_error(
        answer(&mut client, 1, command).await,
        ErrorCode::PayloadTooLarge,
    );
    assert!(
        error.message.contains("1125899906842624") && error.message.contains("65507"),
        "{}",
        error.message
    );
    server_still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn generator_numbers_that_made_durations_panic_are_refused_by_name() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.bind("127.0.0.1:0").await;
    let base = json!({"type":"generate","socket":"s1","to":"127.0.0.1:9","size":32});
    let with = |extra: Value| {
        let mut c = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let cases = [
        (
            with(json!({"amount":{"count":1},"rate":1e-300})),
            "rate",
            ErrorCode::BadRequest,
        ),
        (
            with(json!({"amount":{"count":1},"interval_ms":1e306})),
            "interval_ms",
            ErrorCode::LimitExceeded,
        ),
        (
            with(json!({"amount":{"duration_ms":1000},"rate":1e-300})),
            "rate",
            ErrorCode::BadRequest,
        ),
        (
            with(json!({"amount":{"duration_ms":u64::MAX},"rate":1000})),
            "duration_ms",
            ErrorCode::LimitExceeded,
        ),
        (
            with(json!({"amount":{"count":u64::MAX},"rate":1000})),
            "datagrams at",
            ErrorCode::LimitExceeded,
        ),
        (
            with(json!({"amount":{"count":2},"interval_ms":5e-324})),
            "interval_ms",
            ErrorCode::LimitExceeded,
        ),
    ];
    for (i, (command, names, code)) in cases.into_iter().enumerate() {
        let error = expect_error(
            answer(&mut client, i as i64 + 1, command.clone()).await,
            code,
        );
        assert!(
            error.message.contains(names),
            "{command}: {:?} should name {names:?}",
            error.message
        );
    }
    server_still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_since_after_the_newest_event_is_refused_not_wrapped() {
    let server = TestServer::start().await;
    let mut first = server.client().await;
    let session = first.hello.session.clone();
    first.bind("127.0.0.1:0").await;
    for since in [u64::MAX.to_string(), "2".to_string()] {
        let refused =
            Client::connect_with(server.addr, &format!("session={session}&since={since}"))
                .await
                .err()
                .expect("a since after the newest event is refused");
        match refused {
            tungstenite::Error::Http(response) => {
                assert_eq!(response.status().as_u16(), 400);
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("newest event (1)"), "{body}");
            }
            other => panic!("expected an HTTP refusal, got {other:?}"),
        }
    }
    // The newest id itself is a correct cursor: nothing is missed, nothing repeated.
    let mut back = Client::connect_with(server.addr, &format!("session={session}&since=1"))
        .await
        .unwrap();
    back.bind("127.0.0.1:0").await;
    let mut again = Client::connect_with(server.addr, &format!("session={session}&since=0"))
        .await
        .unwrap();
    match again.next().await {
        Event::Bound(b) => assert_eq!(b.id.0, 1, "a replay starts at the first event"),
        other => panic!("a replay starts with the first bound, got {other:?}"),
    }
    server.stop().await;
}

/// Every numeric field of every command, set to each extreme: each command is answered
/// (a success or an error carrying its `req`), and the server carries on.
#[tokio::test]
async fn every_numeric_field_at_every_extreme_gets_an_answer() {
    let extremes: [Value; 9] = [
        json!(0),
        json!(-1),
        json!(1e-300),
        json!(1e300),
        json!("NaN"),
        json!(u64::MAX),
        json!(9_007_199_254_740_993u64),
        json!(-9_223_372_036_854_775_808i64),
        json!(0.5),
    ];
    let server = TestServer::with_config(Config {
        // Extremes that are valid create links; let the session have enough of them.
        max_links_per_session: 1_000,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let link = client
        .link("127.0.0.1:0", a.local.addr(), LinkSettings::default())
        .await;
    let impairments = |field: &str, v: &Value| {
        let mut c2t = json!({});
        match field {
            "loss.pct" => c2t["loss"] = json!({"model":"random","pct":v}),
            "loss.p_pct" | "loss.r_pct" | "loss.loss_good_pct" | "loss.loss_bad_pct" => {
                let mut ge = json!({"model":"gilbert_elliott","p_pct":1,"r_pct":1,"loss_good_pct":0,"loss_bad_pct":100});
                ge[&field[5..]] = v.clone();
                c2t["loss"] = ge;
            }
            f => c2t[f] = v.clone(),
        }
        json!({"c2t": c2t})
    };
    let link_fields = [
        "loss.pct",
        "loss.p_pct",
        "loss.r_pct",
        "loss.loss_good_pct",
        "loss.loss_bad_pct",
        "delay_ms",
        "jitter_ms",
        "reorder_pct",
        "reorder_gap",
        "reorder_timeout_ms",
        "duplicate_pct",
        "corrupt_pct",
        "rate_bps",
        "queue_packets",
        "queue_bytes",
        "mtu",
    ];
    let to = a.local.to_string();
    let mut commands: Vec<(String, Value)> = Vec::new();
    for v in &extremes {
        let gen_base = json!({"type":"generate","socket":"s1","to":to,"amount":{"count":1},"rate":1,"size":32});
        let mut cases = vec![
            (
                "bind.recv_buffer_bytes",
                json!({"type":"bind","proto":"udp","addr":"127.0.0.1:0","recv_buffer_bytes":v}),
            ),
            (
                "bind.recv_size",
                json!({"type":"bind","proto":"udp","addr":"127.0.0.1:0","recv_size":v}),
            ),
            (
                "bind(tcp).recv_size",
                json!({"type":"bind","proto":"tcp","addr":"127.0.0.1:0","recv_size":v}),
            ),
            (
                "bind.multicast_ttl",
                json!({"type":"bind","proto":"udp","addr":"127.0.0.1:0","multicast_ttl":v}),
            ),
            (
                "set_loss_timeout.ms",
                json!({"type":"set_loss_timeout","ms":v}),
            ),
            ("generate.amount.count", {
                let mut c = gen_base.clone();
                c["amount"] = json!({"count":v});
                c
            }),
            ("generate.amount.duration_ms", {
                let mut c = gen_base.clone();
                c["amount"] = json!({"duration_ms":v});
                c
            }),
            ("generate.rate", {
                let mut c = gen_base.clone();
                c["rate"] = v.clone();
                c
            }),
            ("generate.interval_ms", {
                let mut c = gen_base.clone();
                c["interval_ms"] = v.clone();
                c
            }),
            ("generate.size", {
                let mut c = gen_base.clone();
                c["size"] = v.clone();
                c
            }),
            (
                "link_create.seed",
                json!({"type":"link_create","listen":"127.0.0.1:0","target":to,"settings":{"seed":v}}),
            ),
        ];
        for field in link_fields {
            cases.push(("link_create", json!({"type":"link_create","listen":"127.0.0.1:0","target":to,"settings":impairments(field, v)})));
            cases.push((
                "link_update",
                json!({"type":"link_update","link":link.link,"settings":impairments(field, v)}),
            ));
        }
        for (name, c) in cases {
            commands.push((format!("{name} = {v}"), c));
        }
    }
    // A `req` itself at the extremes: an integer is echoed, anything else is refused.
    for v in &extremes {
        let mut c = json!({"type":"close","socket":"nope"});
        c["req"] = v.clone();
        client.send_text(&c.to_string()).await;
        let error = client.next_error().await;
        match (v.as_i64(), error) {
            (Some(req), Event::Error(e)) => {
                assert_eq!(e.req, Some(req), "req {v}");
                assert_eq!(e.code, ErrorCode::UnknownSocket, "req {v}");
            }
            (None, Event::Error(e)) => assert_eq!(e.code, ErrorCode::BadRequest, "req {v}"),
            (_, other) => panic!("req {v}: {other:?}"),
        }
    }
    let mut answered = 0;
    for (i, (what, command)) in commands.into_iter().enumerate() {
        let req = 1_000 + i as i64;
        match answer(&mut client, req, command).await {
            Event::Error(e) => {
                assert!(
                    matches!(
                        e.code,
                        ErrorCode::BadRequest
                            | ErrorCode::LimitExceeded
                            | ErrorCode::PayloadTooLarge
                    ),
                    "{what}: {e:?}"
                );
                assert!(!e.message.is_empty(), "{what}");
            }
            Event::Bound(_)
            | Event::AnalysisConfig(_)
            | Event::GeneratorStarted(_)
            | Event::LinkCreated(_)
            | Event::LinkUpdated(_) => {}
            other => panic!("{what}: unexpected answer {other:?}"),
        }
        answered += 1;
    }
    assert_eq!(answered, extremes.len() * (11 + 2 * link_fields.len()));
    // The session still works, and so does the server.
    client
        .send_datagram(&a.socket, a.local.addr(), text("still here"))
        .await;
    client.received_on(&a.socket).await;
    server_still_serves(&server).await;
    server.stop().await;
}

/// A free loopback UDP port (bound and released).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_link_may_not_target_itself_or_any_other_link() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let port = free_port();
    let own = format!("127.0.0.1:{port}");
    let refused = client
        .refused(
            socklab_protocol::Command::LinkCreate {
                listen: own.clone(),
                target: own.clone(),
                settings: LinkSettings::default(),
            },
            ErrorCode::BadAddress,
        )
        .await;
    assert!(
        refused.message.contains("link's address"),
        "{}",
        refused.message
    );
    // Its port was given back: a link may listen there now.
    let first = client
        .link(&own, a.local.addr(), LinkSettings::default())
        .await;
    // Neither its listen nor its upstream address may be a target, in this session or
    // another (two links pointing at each other would circulate a datagram for ever).
    let mut other = server.client().await;
    for target in [first.listen, first.upstream] {
        for c in [&mut client, &mut other] {
            c.refused(
                socklab_protocol::Command::LinkCreate {
                    listen: "127.0.0.1:0".into(),
                    target: target.to_string(),
                    settings: LinkSettings::default(),
                },
                ErrorCode::BadAddress,
            )
            .await;
        }
    }
    // Once it is deleted, its addresses are ordinary ones again.
    let req = client
        .send(socklab_protocol::Command::LinkDelete {
            link: first.link.clone(),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::LinkDeleted(_)));
    let b = other.bind(&own).await;
    other
        .link("127.0.0.1:0", b.local.addr(), LinkSettings::default())
        .await;
    server.stop().await;
}

/// A program that first sends one datagram to `kick`, then answers every datagram to
/// whoever sent it, for at most `max` datagrams or `for_how_long`. Behind a link whose
/// client it also is (it kicks the link's listen address), it makes a loop through the
/// link that nothing but the session's forwarding budget ends.
fn reflector(
    socket: UdpSocket,
    kick: SocketAddr,
    max: usize,
    for_how_long: Duration,
) -> std::thread::JoinHandle<usize> {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + for_how_long;
        socket.send_to(b"round and round", kick).unwrap();
        let mut buf = [0u8; 2048];
        let mut echoed = 0;
        while echoed < max && Instant::now() < deadline {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
                echoed += 1;
            }
        }
        echoed
    })
}

#[tokio::test]
async fn a_loop_through_a_program_is_bounded_by_the_forwarding_budget() {
    const BUDGET: u64 = 500;
    let server = TestServer::with_config(Config {
        max_forwarded_per_sec: BUDGET,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let program = UdpSocket::bind("127.0.0.1:0").unwrap();
    let link = client
        .link(
            "127.0.0.1:0",
            program.local_addr().unwrap(),
            LinkSettings::default(),
        )
        .await;
    let thread = reflector(program, link.listen, 100_000, Duration::from_secs(3));
    let (mut forwarded, mut rate_limited) = (0u64, 0u64);
    // The first decision's time and the first refusal's, on the server's clock.
    let (mut first, mut last) = (None, 0);
    while rate_limited == 0 {
        if let Event::LinkPacket(p) = client.next().await {
            first.get_or_insert(p.t_ns);
            last = p.t_ns;
            match p.reason {
                None => forwarded += 1,
                Some(DropReason::RateLimit) => rate_limited += 1,
                Some(other) => panic!("unexpected drop {other:?}"),
            }
        }
    }
    // The bucket holds one second's worth and refills at the budget's rate while the
    // loop runs it dry: what got through is that second's worth plus the refill over
    // the time the loop took (however busy the machine made it), and no more.
    let took_s = last.saturating_sub(first.unwrap_or(last)) as f64 / 1e9;
    let most = BUDGET + (BUDGET as f64 * took_s).ceil() as u64 + 5;
    assert!(
        (BUDGET - 5..=most).contains(&forwarded),
        "{forwarded} forwarded in {took_s:.3} s before the budget of {BUDGET}/s stopped the loop (at most {most})"
    );
    let echoed = thread.join().unwrap();
    assert_eq!(echoed as u64, forwarded, "the program answered each one");
    server_still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_link_holds_at_most_its_byte_limit_and_drops_the_rest_as_queue_full() {
    const LIMIT: usize = 20_000;
    let server = TestServer::with_config(Config {
        max_link_bytes: LIMIT,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    // A minute of delay and no rate limit: before the cap, everything stayed in memory.
    let link = client
        .link(
            "127.0.0.1:0",
            b.local.addr(),
            LinkSettings::symmetric(Impairments {
                delay_ms: 60_000.0,
                ..Impairments::default()
            }),
        )
        .await;
    let payload = "x".repeat(1_000);
    for _ in 0..50 {
        client
            .send(socklab_protocol::Command::Send {
                socket: a.socket.clone(),
                to: Some(link.listen.to_string()),
                payload: text(&payload),
            })
            .await;
    }
    let (mut forwarded, mut full) = (0, 0);
    while forwarded + full < 50 {
        if let Event::LinkPacket(p) = client.next().await {
            match p.reason {
                None => forwarded += 1,
                Some(DropReason::QueueFull) => full += 1,
                Some(other) => panic!("unexpected drop {other:?}"),
            }
        }
    }
    assert_eq!((forwarded, full), (LIMIT / 1_000, 50 - LIMIT / 1_000));
    let (stats, _) = client
        .until(|e| matches!(e, Event::LinkStats(s) if s.c2t.arrived == 50))
        .await;
    let Event::LinkStats(stats) = stats else {
        unreachable!()
    };
    assert_eq!(stats.c2t.dropped_queue, 30, "{:?}", stats.c2t);
    server.stop().await;
}

#[tokio::test]
async fn a_program_making_up_flow_ids_cannot_grow_the_flow_table() {
    const MAX_FLOWS: usize = 64;
    let server = TestServer::with_config(Config {
        max_flows: MAX_FLOWS,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    // A local program (it needs no token) sends sequenced datagrams, each with a flow
    // id of its own.
    let program = UdpSocket::bind("127.0.0.1:0").unwrap();
    const N: u32 = 2_000;
    for flow in 0..N {
        let mut bytes = vec![0u8; 32];
        socklab_analysis::seqhdr::SeqHeader {
            flow,
            seq: 0,
            sent_ns: 0,
        }
        .write(&mut bytes);
        program.send_to(&bytes, a.local.addr()).unwrap();
        if flow % 200 == 199 {
            // Paced a little, so the socket's receive buffer never overflows.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let (stats, _) = client
        .until(|e| {
            matches!(e, Event::FlowStats(s) if s.retired_flows + s.flows.len() as u64 >= u64::from(N))
        })
        .await;
    let Event::FlowStats(stats) = stats else {
        unreachable!()
    };
    assert_eq!(stats.flows.len(), MAX_FLOWS);
    assert_eq!(stats.retired_flows, u64::from(N) - MAX_FLOWS as u64);
    // The newest flows are the ones kept.
    assert!(
        stats
            .flows
            .iter()
            .all(|f| f.seq_flow.unwrap() >= N - MAX_FLOWS as u32)
    );
    server_still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn viewers_of_a_session_are_limited_and_one_that_stops_reading_is_let_go() {
    let server = TestServer::with_config(Config {
        max_viewers_per_session: 2,
        write_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    let mut good = server.client().await;
    let session = good.hello.session.clone();
    // A second viewer that reads the greeting and then nothing more.
    let stalled = Client::connect_with(server.addr, &format!("session={session}&since=0"))
        .await
        .unwrap();
    let third = Client::connect_with(server.addr, &format!("session={session}&since=0"))
        .await
        .err()
        .expect("a third viewer is one too many");
    match third {
        tungstenite::Error::Http(response) => {
            assert_eq!(response.status().as_u16(), 429);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("--max-viewers-per-session"), "{body}");
        }
        other => panic!("expected HTTP 429, got {other:?}"),
    }
    // Large datagrams fill the stalled viewer's connection until a frame cannot be
    // written within the timeout; the good viewer reads along.
    let a = good.bind("127.0.0.1:0").await;
    let b = good.bind("127.0.0.1:0").await;
    let req = good
        .send(socklab_protocol::Command::Generate(
            socklab_protocol::flow::GeneratorSpec {
                socket: a.socket.clone(),
                to: b.local.to_string(),
                amount: socklab_protocol::flow::Amount::Count(3_000),
                pace: socklab_protocol::flow::GeneratorPace::Rate(1_000.0),
                payload: socklab_protocol::flow::GeneratorPayload::Size(60_000),
                sequence: true,
            },
        ))
        .await;
    assert!(matches!(good.reply(req).await, Event::GeneratorStarted(_)));
    // Once the stalled viewer is let go its place is free again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let back = loop {
        assert!(
            Instant::now() < deadline,
            "the stalled viewer is never let go"
        );
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(10), good.next_text()).await
        {}
        if let Ok(c) =
            Client::connect_with(server.addr, &format!("session={session}&since=0")).await
        {
            break c;
        }
    };
    assert_eq!(back.hello.session, session);
    drop(stalled);
    server.stop().await;
}

/// 200 datagrams of 60,000 bytes from `a` to `b`, generated at 4,000/s: about 30 MB
/// of frames for a viewer that reads them all.
fn big_datagrams(
    a: &socklab_protocol::Bound,
    b: &socklab_protocol::Bound,
    sequence: bool,
) -> socklab_protocol::Command {
    socklab_protocol::Command::Generate(socklab_protocol::flow::GeneratorSpec {
        socket: a.socket.clone(),
        to: b.local.to_string(),
        amount: socklab_protocol::flow::Amount::Count(200),
        pace: socklab_protocol::flow::GeneratorPace::Rate(4_000.0),
        payload: socklab_protocol::flow::GeneratorPayload::Size(60_000),
        sequence,
    })
}

#[tokio::test]
async fn a_frame_stops_growing_at_its_byte_limit() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let session = client.hello.session.clone();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let req = client.send(big_datagrams(&a, &b, true)).await;
    assert!(matches!(
        client.reply(req).await,
        Event::GeneratorStarted(_)
    ));
    client.until(|e| matches!(e, Event::GeneratorDone(_))).await;
    // A viewer that comes in now finds 200 sends (and their receives) of 60,000 bytes
    // waiting: 512 events to a frame would make one frame of about 30 MB.
    let mut late = Client::connect_with(server.addr, &format!("session={session}&since=0"))
        .await
        .unwrap();
    let (mut largest, mut sent, mut frames) = (0, 0, 0);
    while sent < 200 {
        let frame = tokio::time::timeout(socklab_tests::WAIT, late.next_text())
            .await
            .expect("frames keep coming")
            .expect("the connection stays open");
        largest = largest.max(frame.len());
        frames += 1;
        sent += frame.matches("\"dir\":\"out\"").count();
    }
    // One event of 60,000 bytes is about 80 KB of JSON.
    let limit = socklab_server::viewer::MAX_FRAME_BYTES;
    assert!(largest <= limit + 100_000, "a frame of {largest} bytes");
    assert!(
        largest > limit / 2,
        "frames were batched ({largest} bytes at most)"
    );
    assert!(
        frames >= 200 * 80_000 / (limit + 100_000),
        "{frames} frames"
    );
    server.stop().await;
}

#[tokio::test]
async fn sockets_are_limited_across_all_sessions() {
    let server = TestServer::with_config(Config {
        max_sockets: Some(5),
        ..Config::default()
    })
    .await;
    let mut one = server.client().await;
    let mut two = server.client().await;
    for _ in 0..3 {
        one.bind("127.0.0.1:0").await;
    }
    let b = two.bind("127.0.0.1:0").await;
    // A link needs three descriptors (two sockets and a timer); only one is left.
    let refused = two
        .refused(
            socklab_protocol::Command::LinkCreate {
                listen: "127.0.0.1:0".into(),
                target: b.local.to_string(),
                settings: LinkSettings::default(),
            },
            ErrorCode::LimitExceeded,
        )
        .await;
    assert!(
        refused.message.contains("--max-sockets 5"),
        "{}",
        refused.message
    );
    two.bind("127.0.0.1:0").await;
    let bind = socklab_protocol::Command::Bind(socklab_protocol::BindSpec::default());
    one.refused(bind.clone(), ErrorCode::LimitExceeded).await;
    // Closing one gives its slot back, to any session.
    let req = two
        .send(socklab_protocol::Command::Close {
            socket: b.socket.clone(),
        })
        .await;
    assert!(matches!(two.reply(req).await, Event::Closed(_)));
    one.bind("127.0.0.1:0").await;
    // The page is still served while the sockets are all taken.
    let page = tokio::time::timeout(socklab_tests::WAIT, http_get(server.addr))
        .await
        .expect("GET / answers");
    assert!(page.starts_with("HTTP/1.1 "), "{page}");
    server.stop().await;
}

/// `GET /` over a raw connection; returns the response's text.
async fn http_get(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A viewer that stopped reading in the middle of a large frame does not hold up the
/// server's shutdown, even with a write timeout far longer than the tests wait for a
/// stop (the frame being written gives way to the shutdown).
#[tokio::test]
async fn a_viewer_that_stopped_reading_does_not_hold_up_the_shutdown() {
    let server = TestServer::with_config(Config {
        write_timeout: std::time::Duration::from_secs(600),
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let session = client.hello.session.clone();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    client.send(big_datagrams(&a, &b, false)).await;
    client.until(|e| matches!(e, Event::GeneratorDone(_))).await;
    // A second viewer asks for everything (about 30 MB of frames) and reads none of it.
    let stalled = Client::connect_with(server.addr, &format!("session={session}&since=0"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Within the tests' wait (10 s), not the viewer's write timeout (600 s).
    server.stop().await;
    drop(stalled);
}
