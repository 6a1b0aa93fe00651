//! A timeline at any scale, as a client sees it over a real WebSocket: the server
//! counts every datagram per lane and time bucket (`aggregate`), a viewer that falls
//! behind can be spared the events about single datagrams and is told which
//! (`keep_up`, `thinned`), and the events of any time range come back on demand
//! (`window`), with the fates of its datagrams.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use socklab_protocol::link::{Impairments, LinkSettings, Loss};
use socklab_protocol::{Aggregates, Command, Endpoint, ErrorCode, Event, LaneCounts};
use socklab_server::Config;
use socklab_tests::IpEndpoint as _;
use socklab_tests::{Client, TestServer, generate, text};

async fn aggregate(client: &mut Client, from_ns: u64, to_ns: u64, buckets: u32) -> Aggregates {
    let req = client
        .send(Command::Aggregate {
            from_ns,
            to_ns,
            buckets,
        })
        .await;
    match client.reply(req).await {
        Event::Aggregates(a) => a,
        other => panic!("expected aggregates, got {other:?}"),
    }
}

async fn window(
    client: &mut Client,
    from_ns: u64,
    to_ns: u64,
    limit: Option<u32>,
) -> (Vec<Event>, bool) {
    let req = client
        .send(Command::Window {
            from_ns,
            to_ns,
            limit,
        })
        .await;
    match client.reply(req).await {
        Event::Window(w) => (w.events, w.complete),
        other => panic!("expected a window, got {other:?}"),
    }
}

fn lane<'a>(a: &'a Aggregates, addr: &Endpoint) -> &'a LaneCounts {
    a.lanes
        .iter()
        .find(|l| &l.lane == addr)
        .unwrap_or_else(|| panic!("no lane {addr} in {a:#?}"))
}

fn sum(counts: &[u32]) -> u64 {
    counts.iter().map(|n| u64::from(*n)).sum()
}

/// Asks for the whole session's counts until `done` says they are all in (the
/// analysis counts a fate once it has read it back from the log), or fails.
async fn aggregate_until(
    client: &mut Client,
    buckets: u32,
    done: impl Fn(&Aggregates) -> bool,
) -> Aggregates {
    let deadline = Instant::now() + socklab_tests::WAIT;
    loop {
        let a = aggregate(client, 0, 3_600_000_000_000, buckets).await;
        if done(&a) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "the counts never got there: {a:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_server_counts_every_datagram_per_lane_and_bucket_where_it_was_sent() {
    const N: u64 = 2_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 20.0 },
            duplicate_pct: 5.0,
            ..Impairments::default()
        },
        seed: 11,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let req = client
        .send(generate(&a.socket, link.listen, N, 4_000.0))
        .await;
    client.reply(req).await;
    // Every decision and fate, as this viewer (sent everything) sees them.
    let (mut dropped, mut duplicated, mut lost, mut received, mut concluded) = (0, 0, 0, 0, 0u64);
    let mut first_send = None;
    let mut last_send = 0;
    let deadline = Instant::now() + socklab_tests::WAIT;
    while concluded < N {
        assert!(Instant::now() < deadline, "the fates never all came");
        match client.next().await {
            Event::LinkPacket(p) => {
                dropped += u64::from(p.fate == socklab_protocol::link::LinkFate::Dropped);
                duplicated += u64::from(p.duplicated);
            }
            Event::Fate(f) => {
                concluded += u64::from(f.fate != socklab_protocol::flow::FateKind::Duplicate);
                lost += u64::from(f.fate == socklab_protocol::flow::FateKind::Lost);
            }
            Event::Datagram(d) if d.socket == b.socket => received += 1,
            Event::Datagram(d) if d.socket == a.socket => {
                first_send.get_or_insert(d.t_ns);
                last_send = d.t_ns;
            }
            _ => {}
        }
    }
    assert_eq!(lost, dropped);
    assert!(dropped > 0 && duplicated > 0);
    let counts = aggregate_until(&mut client, 200, |c| {
        c.lanes
            .iter()
            .find(|l| l.lane == a.local)
            .is_some_and(|l| sum(&l.lost) == dropped && sum(&l.sent) == N)
    })
    .await;
    let (sa, sb, sl) = (
        lane(&counts, &a.local),
        lane(&counts, &b.local),
        lane(&counts, &Endpoint::Ip(link.listen)),
    );
    assert_eq!(sum(&sa.sent), N);
    assert_eq!(sum(&sa.lost), dropped, "lost where they were sent");
    assert_eq!(sum(&sl.dropped), dropped, "dropped on the link's lane");
    assert_eq!(sum(&sl.forwarded), N - dropped);
    // The receives this viewer has seen so far, at most all of them.
    assert!(sum(&sb.received) >= received && sum(&sb.received) <= N - dropped + duplicated);
    // Extra copies, counted as their fates come (the analysis may still see some).
    assert!(sum(&sa.duplicated) <= duplicated);
    assert!(sa.received.is_empty(), "a sends only");
    // The losses sit in the buckets of the sends, not of the timeout 2 s later.
    let first = counts.from_ns;
    let bucket_of = |t: u64| ((t - first) / counts.bucket_ns) as usize;
    let (lo, hi) = (bucket_of(first_send.unwrap()), bucket_of(last_send));
    assert!(
        sa.lost
            .iter()
            .enumerate()
            .all(|(i, n)| *n == 0 || (lo..=hi).contains(&i))
    );
    assert_eq!(sa.sent.len(), counts.buckets as usize);

    // Narrower than the server counts: the answer's buckets are as wide as its own.
    let fine = aggregate(&mut client, 0, 1_000_000_000, 4_000).await;
    assert_eq!(fine.bucket_ns, socklab_server::aggregate::FIRST_BUCKET_NS);
    assert_eq!(fine.resolution_ns, fine.bucket_ns);
    assert_eq!(fine.buckets, 1000);
    server.stop().await;
}

#[tokio::test]
async fn a_viewer_that_keeps_up_is_spared_single_datagrams_and_told_which() {
    const N: u64 = 30_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let req = client
        .send(Command::KeepUp {
            behind: Some(1_000),
            rate: None,
        })
        .await;
    match client.reply(req).await {
        Event::KeepingUp(k) => assert_eq!(k.behind, 1_000),
        other => panic!("expected keeping_up, got {other:?}"),
    }
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let req = client
        .send(generate(&a.socket, b.local.addr(), N, 30_000.0))
        .await;
    let started = client.reply(req).await;
    assert!(matches!(started, Event::GeneratorStarted(_)), "{started:?}");
    // Read nothing for a while: the server's writes back up behind this viewer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = started.id().expect("logged").0;
    let mut ids = BTreeSet::from([first]);
    let mut thinned: Vec<socklab_protocol::Thinned> = Vec::new();
    let mut datagrams = 0u64;
    let (mut outs, mut fates) = (BTreeSet::new(), BTreeSet::new());
    // A loaded machine (CI runs the browser tests beside this one) sends slower.
    let deadline = Instant::now() + 3 * socklab_tests::WAIT;
    loop {
        assert!(Instant::now() < deadline, "the generator never finished");
        let event = client.next().await;
        if let Some(id) = event.id() {
            ids.insert(id.0);
        }
        match event {
            Event::Thinned(t) => thinned.push(t),
            Event::Datagram(d) => {
                datagrams += 1;
                if d.dir == socklab_protocol::Direction::Out {
                    outs.insert(d.id.0);
                }
            }
            Event::Fate(f) => {
                fates.insert(f.send.0);
            }
            Event::GeneratorDone(_) => break,
            _ => {}
        }
    }
    // Every datagram it was sent gets its fate, however late the analysis concluded it
    // (a thinned viewer is still sent the fates of what it was sent whole).
    while outs.iter().any(|s| !fates.contains(s)) {
        assert!(
            Instant::now() < deadline,
            "{} sends it was sent never got their fates",
            outs.iter().filter(|s| !fates.contains(s)).count()
        );
        if let Event::Fate(f) = client.next().await {
            fates.insert(f.send.0);
        }
    }
    assert!(!thinned.is_empty(), "a viewer this far behind is thinned");
    assert!(
        datagrams < 2 * N,
        "it was not sent every datagram ({datagrams})"
    );
    // Every id from the generator's start to its end was sent or named as passed over.
    let last = *ids.last().unwrap();
    let passed: u64 = thinned.iter().map(|t| t.count).sum();
    let covered =
        |id: u64| ids.contains(&id) || thinned.iter().any(|t| (t.from.0..=t.to.0).contains(&id));
    let missing: Vec<u64> = (first..=last).filter(|id| !covered(*id)).take(5).collect();
    assert!(
        missing.is_empty(),
        "ids neither sent nor passed over: {missing:?}; thinned {thinned:?}"
    );
    assert!(passed >= 2 * N - datagrams - 10_000, "passed over {passed}");
    for t in &thinned {
        assert!(t.from <= t.to && t.from_ns <= t.to_ns && t.count >= 1);
        assert!(t.count <= t.to.0 - t.from.0 + 1);
    }
    // Nothing is lost to the counts: the server counted every datagram.
    let counts = aggregate_until(&mut client, 10, |c| {
        c.lanes
            .iter()
            .find(|l| l.lane == a.local)
            .is_some_and(|l| sum(&l.sent) == N)
    })
    .await;
    assert_eq!(sum(&lane(&counts, &b.local).received), N);

    // Its own sends are never passed over, and it can stop keeping up.
    let req = client
        .send(Command::KeepUp {
            behind: Some(0),
            rate: None,
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::KeepingUp(k) if k.behind == 0));
    client
        .send_datagram(&a.socket, b.local.addr(), text("still here"))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_window_holds_the_events_of_a_range_with_the_fates_of_its_sends() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            delay_ms: 80.0,
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let mut sends = Vec::new();
    for i in 0..8 {
        let d = client
            .send_datagram(&a.socket, link.listen, text(&format!("w{i}")))
            .await;
        sends.push(d);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Until the last one has its fate.
    let last = sends.last().unwrap().id;
    client
        .until(|e| matches!(e, Event::Fate(f) if f.send == last))
        .await;
    let (from, to) = (sends[2].t_ns, sends[5].t_ns);
    let (events, complete) = window(&mut client, from, to, None).await;
    assert!(complete);
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| e.id())
        .map(|id| id.0)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
    let outs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Datagram(d) if d.socket == a.socket => Some(d.id),
            _ => None,
        })
        .collect();
    assert_eq!(outs, sends[2..=5].iter().map(|d| d.id).collect::<Vec<_>>());
    for d in &sends[2..=5] {
        let fate = events
            .iter()
            .find_map(|e| match e {
                Event::Fate(f) if f.send == d.id => Some(f),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no fate for {} in the window", d.id.0));
        // The receive 80 ms later (after the range) comes with it.
        let recv = fate.recv.expect("delivered");
        assert!(events.iter().any(|e| e.id() == Some(recv)), "its receive");
        assert!(events.iter().any(|e| e.t_ns().is_some_and(|t| t > to)));
    }
    // A limit cuts it short, and says so.
    let (events, complete) = window(&mut client, from, to, Some(2)).await;
    assert_eq!((events.len(), complete), (2, false));
    server.stop().await;
}

#[tokio::test]
async fn a_window_the_log_has_partly_dropped_is_not_complete() {
    let server = TestServer::with_config(Config {
        log_max_events: 100,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    for i in 0..120 {
        client
            .send_datagram(&a.socket, a.local.addr(), text(&format!("{i}")))
            .await;
    }
    let (events, complete) = window(&mut client, 0, u64::MAX, None).await;
    assert!(!complete, "the first events are gone");
    assert!(!events.is_empty() && events.len() <= 100);
    server.stop().await;
}

#[tokio::test]
async fn addresses_past_the_lane_limit_are_counted_together() {
    let server = TestServer::with_config(Config {
        max_aggregate_lanes: 4,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let b = client.bind("127.0.0.1:0").await;
    // Ten programs outside the lab send one datagram each.
    for _ in 0..10 {
        let outside = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        outside.send_to(b"hi", b.local.addr()).unwrap();
        client.received_on(&b.socket).await;
    }
    let counts = aggregate_until(&mut client, 1, |c| {
        c.lanes
            .iter()
            .map(|l| sum(&l.sent) + sum(&l.received))
            .sum::<u64>()
            + c.others
            == 20
    })
    .await;
    assert_eq!(counts.lanes.len(), 4, "{counts:#?}");
    assert_eq!(
        counts.others,
        20 - 10 - 3,
        "b's receives and three programs have lanes"
    );
    server.stop().await;
}

/// A viewer that asked for at most 2,000 events a second, reading as fast as it can
/// while 20,000 datagrams go by at 10,000 a second (with their receives and fates,
/// some 60,000 events a second): it is sent no more single datagrams than its rate
/// allows, is told of the rest, and every id is accounted for.
#[tokio::test]
async fn a_viewer_is_sent_no_more_events_a_second_than_it_asked_for() {
    const N: u64 = 20_000;
    const RATE: u64 = 2_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let req = client
        .send(Command::KeepUp {
            behind: Some(10_000),
            rate: Some(RATE),
        })
        .await;
    match client.reply(req).await {
        Event::KeepingUp(k) => assert_eq!((k.behind, k.rate), (10_000, RATE)),
        other => panic!("expected keeping_up, got {other:?}"),
    }
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let began = Instant::now();
    let req = client
        .send(generate(&a.socket, b.local.addr(), N, 10_000.0))
        .await;
    let started = client.reply(req).await;
    let first = started.id().expect("logged").0;
    let (mut ids, mut thinned, mut sent) = (BTreeSet::from([first]), Vec::new(), 0u64);
    let deadline = Instant::now() + 3 * socklab_tests::WAIT;
    loop {
        assert!(Instant::now() < deadline, "the generator never finished");
        let event = client.next().await;
        if let Some(id) = event.id() {
            ids.insert(id.0);
        }
        match event {
            Event::Thinned(t) => thinned.push(t),
            Event::Datagram(_) | Event::Fate(_) | Event::LinkPacket(_) => sent += 1,
            Event::GeneratorDone(_) => break,
            _ => {}
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    // Its budget: the rate for as long as the run took (measured here, so at least as
    // long as the server's), a quarter of a second's worth to start with, and what it
    // is sent while thinned (the fates of datagrams it was sent whole) beyond them: a
    // debt paid before the next stretch it is sent whole, at most a frame's worth
    // outstanding at the end.
    let allowed = (RATE as f64 * (elapsed + 0.25)) as u64 + 2 * 512;
    assert!(
        sent <= allowed,
        "sent {sent} events about single datagrams in {elapsed:.2} s; at most {allowed}"
    );
    eprintln!("sent {sent} events about single datagrams in {elapsed:.2} s (at most {allowed})");
    assert!(!thinned.is_empty(), "the rest was thinned");
    let last = *ids.last().unwrap();
    let covered = |id: u64| {
        ids.contains(&id)
            || thinned
                .iter()
                .any(|t: &socklab_protocol::Thinned| (t.from.0..=t.to.0).contains(&id))
    };
    let missing: Vec<u64> = (first..=last).filter(|id| !covered(*id)).take(5).collect();
    assert!(
        missing.is_empty(),
        "ids neither sent nor passed over: {missing:?}"
    );
    server.stop().await;
}

/// A viewer that asks counts and windows in a loop is answered `--max-queries-per-sec`
/// times a second and refused in words past that; another viewer of the session, with
/// a budget of its own, is still answered, and the session carries on.
#[tokio::test]
async fn questions_past_the_limit_are_refused_and_the_session_carries_on() {
    const PER_SEC: u64 = 5;
    const ASKED: usize = 30;
    let server = TestServer::with_config(Config {
        max_queries_per_sec: PER_SEC,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let started = Instant::now();
    let mut asked = Vec::new();
    for i in 0..ASKED {
        let command = if i % 2 == 0 {
            Command::Aggregate {
                from_ns: 0,
                to_ns: u64::MAX,
                buckets: 4_096,
            }
        } else {
            Command::Window {
                from_ns: 0,
                to_ns: u64::MAX,
                limit: None,
            }
        };
        asked.push(client.send(command).await);
    }
    let (mut answered, mut refused) = (0u64, 0u64);
    for req in asked {
        match client.reply(req).await {
            Event::Aggregates(_) | Event::Window(_) => answered += 1,
            Event::Error(e) => {
                assert_eq!(e.code, ErrorCode::LimitExceeded, "{e:?}");
                assert!(
                    e.message.contains("--max-queries-per-sec") && e.message.contains("at most 5"),
                    "{}",
                    e.message
                );
                refused += 1;
            }
            other => panic!("expected an answer or a refusal, got {other:?}"),
        }
    }
    // A second's worth at once, and what refilled while the questions came.
    let refilled = (started.elapsed().as_secs_f64() * PER_SEC as f64).ceil() as u64;
    assert!(
        answered >= PER_SEC && answered <= PER_SEC + refilled,
        "answered {answered} of {ASKED} in {:?}",
        started.elapsed()
    );
    assert_eq!(answered + refused, ASKED as u64);

    // Another viewer of the same session has a budget of its own.
    let mut other = Client::connect_with(server.addr, &format!("session={}", client.hello.session))
        .await
        .unwrap();
    assert_eq!(other.hello.session, client.hello.session);
    aggregate(&mut other, 0, u64::MAX, 10).await;
    // A moment later the first is answered again, and its session carries on.
    tokio::time::sleep(Duration::from_millis(1_000 / PER_SEC + 50)).await;
    aggregate(&mut client, 0, u64::MAX, 10).await;
    client
        .send_datagram(&a.socket, a.local.addr(), text("alive"))
        .await;
    client.received_on(&a.socket).await;
    server.stop().await;
}

#[tokio::test]
async fn queries_out_of_range_are_refused_and_the_session_carries_on() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let cases = [
        Command::KeepUp {
            behind: Some(10),
            rate: None,
        },
        Command::KeepUp {
            behind: Some(10_000),
            rate: Some(999),
        },
        Command::KeepUp {
            behind: None,
            rate: Some(20_000),
        },
        Command::Aggregate {
            from_ns: 5,
            to_ns: 5,
            buckets: 10,
        },
        Command::Aggregate {
            from_ns: 0,
            to_ns: u64::MAX,
            buckets: 0,
        },
        Command::Aggregate {
            from_ns: 0,
            to_ns: u64::MAX,
            buckets: 5_000,
        },
        Command::Window {
            from_ns: 10,
            to_ns: 9,
            limit: None,
        },
        Command::Window {
            from_ns: 0,
            to_ns: 9,
            limit: Some(0),
        },
        Command::Window {
            from_ns: 0,
            to_ns: 9,
            limit: Some(10_001),
        },
    ];
    for command in cases {
        let e = client.refused(command.clone(), ErrorCode::BadRequest).await;
        assert!(!e.message.is_empty(), "{command:?}");
    }
    // The widest range there is, in as many buckets as allowed: no overflow.
    let all = aggregate(&mut client, 0, u64::MAX, 4_096).await;
    assert!(all.buckets <= 4_097 && all.lanes.is_empty());
    let a = client.bind("127.0.0.1:0").await;
    client
        .send_datagram(&a.socket, a.local.addr(), text("alive"))
        .await;
    client.received_on(&a.socket).await;
    server.stop().await;
}

#[tokio::test]
async fn a_window_the_log_dropped_comes_from_the_recording_running() {
    // The log keeps about a hundred datagrams' events; the recorder (every 100 ms)
    // keeps up with two sends a millisecond apart.
    let (_dir, server) = TestServer::with_store(Config {
        log_max_events: 300,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let req = client.send(Command::RecordStart { name: None }).await;
    assert!(matches!(
        client.reply(req).await,
        Event::RecordingStarted(_)
    ));
    let mut sends = Vec::new();
    for i in 0..150 {
        let d = client
            .send_datagram(&a.socket, a.local.addr(), text(&format!("{i}")))
            .await;
        sends.push(d);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last = sends.last().unwrap().id;
    client
        .until(|e| matches!(e, Event::Fate(f) if f.send == last))
        .await;
    let (from, to) = (sends[0].t_ns, sends[149].t_ns);
    // Until the recorder has stored what the log dropped (it writes every 100 ms).
    let deadline = Instant::now() + socklab_tests::WAIT;
    let (events, complete) = loop {
        let (events, complete) = window(&mut client, from, to, None).await;
        if complete || Instant::now() > deadline {
            break (events, complete);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        complete,
        "the recording holds what the log dropped: {} events",
        events.len()
    );
    let outs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Datagram(d) if d.dir == socklab_protocol::Direction::Out => Some(d.id),
            _ => None,
        })
        .collect();
    assert_eq!(outs, sends.iter().map(|d| d.id).collect::<Vec<_>>());
    let fates = events
        .iter()
        .filter(|e| matches!(e, Event::Fate(_)))
        .count();
    assert_eq!(fates, 150, "each send with its fate");
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| e.id())
        .map(|id| id.0)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");
    server.stop().await;
}

#[tokio::test]
async fn a_window_stops_at_four_megabytes_and_says_it_is_not_whole() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let big = "x".repeat(60_000);
    let mut first = None;
    // 40 datagrams of 60,000 bytes, sent and received: 6.4 MB of base64.
    for _ in 0..40 {
        let d = client
            .send_datagram(&a.socket, a.local.addr(), text(&big))
            .await;
        first.get_or_insert(d.t_ns);
        client.received_on(&a.socket).await;
    }
    let req = client
        .send(Command::Window {
            from_ns: first.unwrap(),
            to_ns: u64::MAX,
            limit: None,
        })
        .await;
    let text = loop {
        let frame = client.next_text().await.expect("a frame");
        if frame.contains("\"type\":\"window\"") && frame.contains(&format!("\"req\":{req}")) {
            break frame;
        }
    };
    let window = match Event::from_json(&text).unwrap() {
        Event::Window(w) => w,
        other => panic!("expected a window, got {other:?}"),
    };
    assert!(!window.complete, "cut short, and it says so");
    assert!(!window.events.is_empty());
    // At most one event past the bound.
    assert!(
        text.len() < 4 * 1024 * 1024 + 100_000,
        "{} bytes",
        text.len()
    );
    server.stop().await;
}

/// A viewer that asked for a `rate` is sent fewer, fuller frames: at most one every
/// 10 ms while it keeps up (a frame sent sooner carries a full batch of a backlog).
#[tokio::test]
async fn a_viewer_with_a_rate_is_sent_a_frame_at_most_every_ten_milliseconds() {
    const N: u64 = 2_000;
    let server = TestServer::start().await;
    let mut paced = server.client().await;
    let req = paced
        .send(Command::KeepUp {
            behind: Some(10_000),
            rate: Some(20_000),
        })
        .await;
    paced.reply(req).await;
    // Another viewer of the same session, asking nothing: a frame as soon as events come.
    let mut eager = Client::connect_with(server.addr, &format!("session={}", paced.hello.session))
        .await
        .expect("a second viewer of the session");
    let a = paced.bind("127.0.0.1:0").await;
    let b = paced.bind("127.0.0.1:0").await;
    let req = paced
        .send(generate(&a.socket, b.local.addr(), N, 2_000.0))
        .await;
    paced.reply(req).await;
    let frames_before = paced.frames;
    let began = Instant::now();
    let mut events = 0u64;
    let deadline = Instant::now() + 3 * socklab_tests::WAIT;
    loop {
        assert!(Instant::now() < deadline, "the generator never finished");
        let event = paced.next().await;
        events += 1;
        if let Event::GeneratorDone(_) = event {
            break;
        }
    }
    let (frames, elapsed_ms) = (
        (paced.frames - frames_before) as u64,
        began.elapsed().as_millis() as u64,
    );
    // Paced frames over the time measured here (at least the server's), and frames of a
    // full batch (512 events) wherever it had fallen behind.
    let most = elapsed_ms / 10 + events / 512 + 2;
    assert!(
        frames <= most,
        "{frames} frames of {events} events in {elapsed_ms} ms: at most {most}"
    );
    // The same events to the viewer that asked nothing came in more frames.
    let eager_before = eager.frames;
    eager
        .next_where(|e| matches!(e, Event::GeneratorDone(_)).then_some(()))
        .await;
    assert!(
        eager.frames - eager_before > frames as usize,
        "unpaced: {} frames; paced: {frames}",
        eager.frames - eager_before
    );
}
