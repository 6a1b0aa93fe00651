//! A recording too big to read whole, read a part at a time over HTTP: its datagrams
//! counted per lane and time bucket (the same counts the live session kept), the
//! events of a time range with their fates, the events a view is built on without the
//! datagrams, and the last events before a point.

use std::time::Instant;

use socklab_protocol::link::{Impairments, LinkSettings, Loss};
use socklab_protocol::{Aggregates, Command, Event, Window};
use socklab_server::Config;
use socklab_tests::IpEndpoint as _;
use socklab_tests::{Client, TestServer, generate, http};

const TOKEN: &str = "big-token";
const WHOLE: &str = "from_ns=0&to_ns=3600000000000";

fn sum(counts: &[u32]) -> u64 {
    counts.iter().map(|n| u64::from(*n)).sum()
}

async fn get(server: &TestServer, path: &str) -> (u16, String) {
    let sep = if path.contains('?') { '&' } else { '?' };
    http(
        server.addr,
        "GET",
        &format!("{path}{sep}token={TOKEN}"),
        None,
    )
    .await
}

async fn get_event(server: &TestServer, path: &str) -> Event {
    let (status, body) = get(server, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    Event::from_json(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A server keeping recordings in a directory of its own (removed when the first is
/// dropped), with the tests' token.
async fn server_with_store() -> (tempfile::TempDir, TestServer) {
    TestServer::with_store(Config {
        token: Some(TOKEN.into()),
        ..Config::default()
    })
    .await
}

/// Records a run of `n` datagrams through a lossy link that duplicates; the
/// recording's id, the live session's counts of the whole run at its end (the same
/// question asked of the session), and the client.
async fn record_a_lossy_run(server: &TestServer, n: u64) -> (i64, Aggregates, Client) {
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 20.0 },
            duplicate_pct: 5.0,
            ..Impairments::default()
        },
        seed: 5,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let req = client.send(Command::RecordStart { name: None }).await;
    let id = match client.reply(req).await {
        Event::RecordingStarted(r) => r.recording,
        other => panic!("expected recording_started, got {other:?}"),
    };
    let req = client
        .send(generate(&a.socket, link.listen, n, 5_000.0))
        .await;
    client.reply(req).await;
    let (mut concluded, mut extra_fates, mut extra_copies) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + 3 * socklab_tests::WAIT;
    while concluded < n || extra_fates < extra_copies {
        assert!(Instant::now() < deadline, "the fates never all came");
        match client.next().await {
            Event::Fate(f) if f.fate == socklab_protocol::flow::FateKind::Duplicate => {
                extra_fates += 1;
            }
            Event::Fate(_) => concluded += 1,
            Event::LinkPacket(p) => extra_copies += u64::from(p.duplicated),
            _ => {}
        }
    }
    // The session's counts once they hold every fate (the analysis counts a fate
    // when it reads it back from the log, a moment after a viewer got it).
    let live = loop {
        let req = client
            .send(Command::Aggregate {
                from_ns: 0,
                to_ns: 3_600_000_000_000,
                buckets: 100,
            })
            .await;
        let live = match client.reply(req).await {
            Event::Aggregates(a) => a,
            other => panic!("expected aggregates, got {other:?}"),
        };
        let duplicated: u64 = live.lanes.iter().map(|l| sum(&l.duplicated)).sum();
        if duplicated == extra_fates {
            break live;
        }
        assert!(
            Instant::now() < deadline,
            "the session never counted every fate"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    client.send(Command::RecordStop).await;
    client
        .until(|e| matches!(e, Event::RecordingStopped(_)))
        .await;
    (id, live, client)
}

#[tokio::test]
async fn a_recordings_counts_and_windows_are_the_sessions() {
    const N: u64 = 3_000;
    let (_dir, server) = server_with_store().await;
    let (id, live, _client) = record_a_lossy_run(&server, N).await;

    // The recording's counts, made from its chunks, are the session's.
    let counts = match get_event(
        &server,
        &format!("/api/recordings/{id}/counts?{WHOLE}&buckets=100"),
    )
    .await
    {
        Event::Aggregates(a) => a,
        other => panic!("expected aggregates, got {other:?}"),
    };
    assert_eq!(
        (counts.from_ns, counts.bucket_ns, counts.buckets),
        (live.from_ns, live.bucket_ns, live.buckets)
    );
    let mut lanes = 0;
    for lane in &live.lanes {
        let recorded = counts
            .lanes
            .iter()
            .find(|l| l.lane == lane.lane)
            .unwrap_or_else(|| panic!("no lane {} in the recording's counts", lane.lane));
        assert_eq!(recorded, lane, "lane {}", lane.lane);
        lanes += 1;
    }
    assert_eq!(lanes, counts.lanes.len());
    let sent: u64 = counts.lanes.iter().map(|l| sum(&l.sent)).sum();
    let lost: u64 = counts.lanes.iter().map(|l| sum(&l.lost)).sum();
    let dropped: u64 = counts.lanes.iter().map(|l| sum(&l.dropped)).sum();
    assert_eq!(sent, N);
    assert!(
        lost > 0 && lost == dropped,
        "{lost} lost, {dropped} dropped"
    );
    assert!(counts.lanes.iter().any(|l| sum(&l.duplicated) > 0));
    // Asked again (now from the counts the store kept), the same.
    let again = get_event(
        &server,
        &format!("/api/recordings/{id}/counts?{WHOLE}&buckets=100"),
    )
    .await;
    assert_eq!(again, Event::Aggregates(counts.clone()));

    // A window of a tenth of a second: its sends, each with its fate, in id order.
    let fine = match get_event(
        &server,
        &format!("/api/recordings/{id}/counts?from_ns=0&to_ns=60000000000&buckets=4096"),
    )
    .await
    {
        Event::Aggregates(a) => a,
        other => panic!("expected aggregates, got {other:?}"),
    };
    assert!(
        fine.bucket_ns < 20_000_000,
        "as fine as the counts are kept"
    );
    let first = fine
        .lanes
        .iter()
        .filter_map(|l| l.sent.iter().position(|n| *n > 0))
        .min()
        .expect("sends counted");
    let from = fine.from_ns + fine.bucket_ns * first as u64 + 100_000_000;
    let to = from + 100_000_000;
    let window: Window = match get_event(
        &server,
        &format!("/api/recordings/{id}/window?from_ns={from}&to_ns={to}"),
    )
    .await
    {
        Event::Window(w) => w,
        other => panic!("expected a window, got {other:?}"),
    };
    assert!(window.complete);
    let sends: Vec<u64> = window
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Datagram(d) if d.dir == socklab_protocol::Direction::Out => {
                assert!((from..=to).contains(&d.t_ns));
                Some(d.id.0)
            }
            _ => None,
        })
        .collect();
    assert!(
        sends.len() > 100,
        "{} sends in 100 ms at 5,000/s",
        sends.len()
    );
    for send in &sends {
        assert!(
            window
                .events
                .iter()
                .any(|e| matches!(e, Event::Fate(f) if f.send.0 == *send)),
            "send {send} has its fate"
        );
    }
    let ids: Vec<u64> = window
        .events
        .iter()
        .filter_map(|e| e.id())
        .map(|i| i.0)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // A limit cuts it, and says so.
    let cut = get_event(
        &server,
        &format!("/api/recordings/{id}/window?from_ns={from}&to_ns={to}&limit=10"),
    )
    .await;
    assert!(matches!(cut, Event::Window(w) if !w.complete && w.events.len() == 10));

    // The outline: the sockets, the link, the figures; no datagram.
    let (status, body) = get(
        &server,
        &format!("/api/recordings/{id}/events?outline=true&limit=10000"),
    )
    .await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"bound") && kinds.contains(&"link_created"));
    assert!(kinds.contains(&"flow_stats"), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .all(|k| !matches!(*k, "datagram" | "fate" | "link_packet" | "link_sent"))
    );

    // The last events before a point, in order, and whether earlier ones exist.
    let before = sends[sends.len() / 2];
    let (status, body) = get(
        &server,
        &format!("/api/recordings/{id}/events?before={before}&limit=50"),
    )
    .await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(
        ids.last(),
        Some(&(before - 1)),
        "ids are the session's, without holes here"
    );
    assert!(ids.windows(2).all(|w| w[0] + 1 == w[1]));
    assert_eq!(page["more"], true);
    server.stop().await;
}

#[tokio::test]
async fn questions_about_a_recording_out_of_range_are_refused() {
    let (_dir, server) = server_with_store().await;
    let (id, _, _client) = record_a_lossy_run(&server, 100).await;
    for (path, code) in [
        (format!("/api/recordings/{id}/counts?buckets=10"), 400),
        (
            format!("/api/recordings/{id}/counts?from_ns=5&to_ns=5&buckets=10"),
            400,
        ),
        (
            format!("/api/recordings/{id}/counts?{WHOLE}&buckets=0"),
            400,
        ),
        (
            format!("/api/recordings/{id}/counts?{WHOLE}&buckets=4097"),
            400,
        ),
        (
            format!(
                "/api/recordings/{id}/counts?from_ns=0&to_ns=18446744073709551615&buckets=4096"
            ),
            200,
        ),
        (
            format!("/api/recordings/{id}/window?from_ns=9&to_ns=8"),
            400,
        ),
        (format!("/api/recordings/{id}/window?{WHOLE}&limit=0"), 400),
        (
            format!("/api/recordings/{id}/window?{WHOLE}&limit=10001"),
            400,
        ),
        (
            format!("/api/recordings/{}/counts?{WHOLE}&buckets=10", id + 100),
            404,
        ),
        (format!("/api/recordings/{}/window?{WHOLE}", id + 100), 404),
    ] {
        let (status, body) = get(&server, &path).await;
        assert_eq!(status, code, "{path}: {body}");
        if code != 200 {
            let refusal: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(
                refusal["code"].is_string() && refusal["message"].is_string(),
                "{body}"
            );
        }
    }
    // Without the token: refused.
    let (status, _) = http(
        server.addr,
        "GET",
        &format!("/api/recordings/{id}/counts?{WHOLE}&buckets=10"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    server.stop().await;
}

/// A window's sends arrive after it ends (a link's 40 ms delay): the session's log and
/// the recording give the same window, each send with its fate and its receive.
#[tokio::test]
async fn a_window_holds_the_late_receives_of_its_sends_live_and_recorded() {
    let (_dir, server) = server_with_store().await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            delay_ms: 40.0,
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let req = client.send(Command::RecordStart { name: None }).await;
    let id = match client.reply(req).await {
        Event::RecordingStarted(r) => r.recording,
        other => panic!("expected recording_started, got {other:?}"),
    };
    let req = client
        .send(generate(&a.socket, link.listen, 100, 1_000.0))
        .await;
    client.reply(req).await;
    let mut first_send = None;
    let mut concluded = 0;
    let deadline = Instant::now() + 3 * socklab_tests::WAIT;
    while concluded < 100 {
        assert!(Instant::now() < deadline, "the fates never all came");
        match client.next().await {
            Event::Datagram(d) if d.socket == a.socket => {
                first_send.get_or_insert(d.t_ns);
            }
            Event::Fate(_) => concluded += 1,
            _ => {}
        }
    }
    client.send(Command::RecordStop).await;
    client
        .until(|e| matches!(e, Event::RecordingStopped(_)))
        .await;
    // 20 ms of sends: every receive comes 40 ms later, after the range.
    let from = first_send.unwrap();
    let to = from + 20_000_000;
    let req = client
        .send(Command::Window {
            from_ns: from,
            to_ns: to,
            limit: None,
        })
        .await;
    let live = match client.reply(req).await {
        Event::Window(w) => w,
        other => panic!("expected a window, got {other:?}"),
    };
    let recorded = match get_event(
        &server,
        &format!("/api/recordings/{id}/window?from_ns={from}&to_ns={to}"),
    )
    .await
    {
        Event::Window(w) => w,
        other => panic!("expected a window, got {other:?}"),
    };
    for (source, w) in [("the log", &live), ("the recording", &recorded)] {
        assert!(w.complete, "{source}");
        let sends: Vec<u64> = w
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Datagram(d) if d.socket == a.socket => Some(d.id.0),
                _ => None,
            })
            .collect();
        assert!(sends.len() >= 5, "{source}: {} sends", sends.len());
        for send in &sends {
            let recv = w
                .events
                .iter()
                .find_map(|e| match e {
                    Event::Fate(f) if f.send.0 == *send => f.recv,
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{source}: send {send} has its fate, delivered"));
            let receive = w
                .events
                .iter()
                .find_map(|e| match e {
                    Event::Datagram(d) if d.id == recv => Some(d.t_ns),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{source}: send {send}'s receive {} is there", recv.0));
            assert!(receive > to, "{source}: received after the range");
        }
    }
    let ids = |w: &Window| w.events.iter().filter_map(Event::id).collect::<Vec<_>>();
    assert_eq!(ids(&live), ids(&recorded), "the same window from both");
    server.stop().await;
}

/// The recordings' counts and windows over HTTP answer `--max-queries-per-sec`
/// questions a second, all pages together: one more is refused with 429 and a
/// `limit_exceeded` in words, and a moment later they are answered again.
#[tokio::test]
async fn a_recordings_questions_past_the_limit_are_refused_then_answered_again() {
    const PER_SEC: u64 = 4;
    let (_dir, server) = TestServer::with_store(Config {
        token: Some(TOKEN.into()),
        max_queries_per_sec: PER_SEC,
        ..Config::default()
    })
    .await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let a = client.bind("127.0.0.1:0").await;
    let req = client.send(Command::RecordStart { name: None }).await;
    let id = match client.reply(req).await {
        Event::RecordingStarted(r) => r.recording,
        other => panic!("expected recording_started, got {other:?}"),
    };
    for i in 0..3 {
        client
            .send_datagram(
                &a.socket,
                a.local.addr(),
                socklab_tests::text(&format!("n{i}")),
            )
            .await;
        client.received_on(&a.socket).await;
    }
    client.send(Command::RecordStop).await;
    client
        .until(|e| matches!(e, Event::RecordingStopped(_)))
        .await;

    let paths = [
        format!("/api/recordings/{id}/counts?{WHOLE}&buckets=10"),
        format!("/api/recordings/{id}/window?{WHOLE}"),
    ];
    let started = Instant::now();
    let (mut answered, mut refused) = (0u64, 0u64);
    for i in 0..20 {
        let (status, body) = get(&server, &paths[i % 2]).await;
        match status {
            200 => answered += 1,
            429 => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["code"], "limit_exceeded", "{body}");
                let message = v["message"].as_str().unwrap();
                assert!(
                    message.contains("--max-queries-per-sec") && message.contains("at most 4"),
                    "{message}"
                );
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let refilled = (started.elapsed().as_secs_f64() * PER_SEC as f64).ceil() as u64;
    assert!(
        answered >= PER_SEC && answered <= PER_SEC + refilled && refused > 0,
        "answered {answered}, refused {refused} in {:?}",
        started.elapsed()
    );
    // What is not a question of counts or windows is not held to it.
    let (status, body) = get(&server, &format!("/api/recordings/{id}")).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1_000 / PER_SEC + 50)).await;
    let counts = get_event(&server, &paths[0]).await;
    assert!(matches!(counts, Event::Aggregates(_)), "{counts:?}");
    server.stop().await;
}
