//! Recordings: a session recorded into the server's SQLite store on demand, listed,
//! read back, renamed and deleted over HTTP.

use socklab_protocol::{Command, Event};
use socklab_server::Config;
use socklab_tests::{Client, TestServer, http, text};

const TOKEN: &str = "rec-token";

async fn server_in(dir: &std::path::Path) -> TestServer {
    server_with(dir, Config::default()).await
}

/// A server with `config`, its store in `dir` and the tests' token.
async fn server_with(dir: &std::path::Path, config: Config) -> TestServer {
    TestServer::with_config(Config {
        data_dir: Some(dir.to_path_buf()),
        token: Some(TOKEN.into()),
        ..config
    })
    .await
}

/// A client of `server` (with the token) and two sockets it bound.
async fn client_with_two(
    server: &TestServer,
) -> (Client, socklab_protocol::Bound, socklab_protocol::Bound) {
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    (client, a, b)
}

/// Starts recording `client`'s session; the recording's id.
async fn start_recording(client: &mut Client) -> i64 {
    client.send(Command::RecordStart { name: None }).await;
    until(client, |e| match e {
        Event::RecordingStarted(r) => Some(r.recording),
        _ => None,
    })
    .await
    .0
}

/// Deletes recording `id`, after which the store takes a new one again.
async fn delete_then_record_again(server: &TestServer, client: &mut Client, id: i64) {
    let (status, _) = http(
        server.addr,
        "DELETE",
        &format!("/api/recordings/{id}?token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    start_recording(client).await;
}

/// Every event until one the pick accepts.
async fn until<T>(
    client: &mut Client,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> (T, Vec<Event>) {
    let mut seen = Vec::new();
    loop {
        let event = client.next().await;
        if let Some(found) = pick(&event) {
            return (found, seen);
        }
        if let Event::Error(e) = &event {
            panic!("no refusal expected: {e:?}");
        }
        seen.push(event);
    }
}

/// Stops the session's recording; its id.
async fn stop_recording(client: &mut Client) -> i64 {
    client.send(Command::RecordStop).await;
    until(client, |e| match e {
        Event::RecordingStopped(r) => Some(r.recording),
        _ => None,
    })
    .await
    .0
}

/// A recording started mid-session holds what the session's log still had (the
/// sockets), every datagram and fate after, and nothing after its stop; the list
/// says its counts, and its events read back as the viewer got them.
#[tokio::test]
async fn a_recording_holds_every_event_of_the_session_up_to_its_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path()).await;
    let (mut client, a, b) = client_with_two(&server).await;
    client
        .send(Command::RecordStart {
            name: Some("ten pings".into()),
        })
        .await;
    let (started, _) = until(&mut client, |e| match e {
        Event::RecordingStarted(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!((started.name.as_str(), started.from.0), ("ten pings", 1));
    for i in 0..10 {
        client
            .send(Command::Send {
                socket: a.socket.clone(),
                to: Some(b.local.to_string()),
                payload: text(&format!("ping {i}")),
            })
            .await;
    }
    let mut fates = 0;
    let (_, seen) = until(&mut client, |e| {
        fates += usize::from(matches!(e, Event::Fate(_)));
        (fates == 10).then_some(())
    })
    .await;
    let datagrams_seen = seen
        .iter()
        .filter(|e| matches!(e, Event::Datagram(_)))
        .count();
    assert_eq!(datagrams_seen, 20);
    // The flows' figures with all ten in them (they come at most twice a second).
    until(&mut client, |e| match e {
        Event::FlowStats(s) if s.flows.iter().any(|f| f.sent == 10 && f.received == 10) => Some(()),
        _ => None,
    })
    .await;
    client.send(Command::RecordStop).await;
    let (stopped, _) = until(&mut client, |e| match e {
        Event::RecordingStopped(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(stopped.recording, started.recording);
    assert_eq!(stopped.datagrams, 20, "{stopped:?}");
    // After the stop, nothing more goes in.
    client
        .send(Command::Send {
            socket: a.socket.clone(),
            to: Some(b.local.to_string()),
            payload: text("not recorded"),
        })
        .await;
    client.received_on(&b.socket).await;

    let (status, list) = http(
        server.addr,
        "GET",
        &format!("/api/recordings?token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["total"], 1);
    let info = &list["recordings"][0];
    assert_eq!(info["name"], "ten pings");
    assert_eq!(info["datagrams"], 20);
    assert_eq!(info["events"], stopped.events);
    assert!(info["stopped_ms"].is_number());

    let id = stopped.recording;
    let (status, body) = http(
        server.addr,
        "GET",
        &format!("/api/recordings/{id}/events?token={TOKEN}&limit=10000"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events: Vec<Event> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    assert_eq!(page["more"], false);
    assert_eq!(events.len() as u64, stopped.events);
    assert!(
        matches!(&events[0], Event::Bound(bound) if bound.socket == a.socket),
        "{:?}",
        events[0]
    );
    let ids: Vec<u64> = events.iter().filter_map(|e| e.id()).map(|i| i.0).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "every id, in order: {ids:?}"
    );
    assert!(
        ids.last().unwrap() < &stopped.id.0,
        "nothing after the stop"
    );
    let payloads: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Datagram(d) if d.dir == socklab_protocol::Direction::In => Some(
                String::from_utf8(
                    socklab_protocol::payload::decode_base64(&d.payload_b64).unwrap(),
                )
                .unwrap(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(payloads.len(), 10);
    assert!(
        payloads.iter().all(|p| p.starts_with("ping")),
        "{payloads:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Fate(_)))
            .count(),
        10
    );

    // The fates and the flows' figures as CSV and JSON, for a notebook.
    let get = |file: &str| format!("/api/recordings/{id}/{file}?token={TOKEN}");
    let (status, csv) = http(server.addr, "GET", &get("fates.csv"), None).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 11, "a header and ten fates: {csv}");
    assert!(
        lines[0].starts_with("send,recv,fate,src,dst,latency_ns"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1..].iter().all(|l| l.contains(",delivered,")),
        "{csv}"
    );
    let (_, json) = http(server.addr, "GET", &get("fates.json"), None).await;
    let fates: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(fates["fates"].as_array().unwrap().len(), 10);
    assert_eq!(fates["fates"][0]["src"], a.local.to_string());
    let (_, json) = http(server.addr, "GET", &get("flows.json"), None).await;
    let flows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let flow = &flows["flows"][0];
    assert_eq!(
        (flow["sent"].as_u64(), flow["received"].as_u64()),
        (Some(10), Some(10)),
        "{flows}"
    );
    let (_, csv) = http(server.addr, "GET", &get("flows.csv"), None).await;
    assert!(
        csv.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&format!("{},{}", a.local, b.local))),
        "{csv}"
    );

    // One file to share: it imports back as a recording with the same events.
    let (status, file) = http(server.addr, "GET", &get("recording.socklab"), None).await;
    assert_eq!(status, 200);
    assert!(
        file.starts_with(r#"{"socklab_recording":1,"name":"ten pings""#),
        "{}",
        &file[..80.min(file.len())]
    );
    assert_eq!(file.lines().count() as u64, 1 + stopped.events);
    let (status, body) = socklab_tests::http_bytes(
        server.addr,
        "POST",
        &format!("/api/recordings/import?token={TOKEN}&name=shared"),
        file.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (made["events"].as_u64(), made["datagrams"].as_u64()),
        (Some(stopped.events), Some(20))
    );
    let copy = made["recording"].as_i64().unwrap();
    let events_of = |id: i64| format!("/api/recordings/{id}/events?token={TOKEN}&limit=10000");
    let (_, original) = http(server.addr, "GET", &events_of(id), None).await;
    let (_, imported) = http(server.addr, "GET", &events_of(copy), None).await;
    assert_eq!(imported, original, "the same events, byte for byte");
    let (_, list) = http(
        server.addr,
        "GET",
        &format!("/api/recordings?token={TOKEN}"),
        None,
    )
    .await;
    assert!(list.contains(r#""name":"shared""#), "{list}");
    server.stop().await;
}

/// Paging through the events, renaming and deleting, and the refusals, each with a
/// status and a code.
#[tokio::test]
async fn recordings_are_paged_renamed_deleted_and_guarded_by_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path()).await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    client.bind("127.0.0.1:0").await;
    client.send(Command::RecordStart { name: None }).await;
    let (started, _) = until(&mut client, |e| match e {
        Event::RecordingStarted(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert!(started.name.starts_with("session "), "{}", started.name);
    // Starting twice is refused; the session carries on.
    let refusal = client
        .refused(
            Command::RecordStart { name: None },
            socklab_protocol::ErrorCode::BadRequest,
        )
        .await;
    assert!(
        refusal.message.contains("already being recorded"),
        "{}",
        refusal.message
    );
    for _ in 0..5 {
        client.bind("127.0.0.1:0").await;
    }
    client.send(Command::RecordStop).await;
    until(&mut client, |e| {
        matches!(e, Event::RecordingStopped(_)).then_some(())
    })
    .await;
    let id = started.recording;

    let mut after = 0;
    let mut pages = 0;
    loop {
        let (status, body) = http(
            server.addr,
            "GET",
            &format!("/api/recordings/{id}/events?token={TOKEN}&after={after}&limit=2"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let events = page["events"].as_array().unwrap();
        pages += 1;
        if let Some(last) = events.last() {
            after = last["id"].as_u64().unwrap();
        }
        if page["more"] == false {
            break;
        }
        assert_eq!(events.len(), 2);
    }
    assert!(pages >= 4, "{pages} pages of two");

    let path = format!("/api/recordings/{id}?token={TOKEN}");
    let (status, _) = http(server.addr, "PATCH", &path, Some(r#"{"name":"renamed"}"#)).await;
    assert_eq!(status, 204);
    let (_, body) = http(server.addr, "GET", &path, None).await;
    assert!(body.contains(r#""name":"renamed""#), "{body}");
    let (status, body) = http(server.addr, "PATCH", &path, Some(r#"{"name":"  "}"#)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_name"), "{body}");
    let (status, body) = http(server.addr, "GET", &format!("/api/recordings/{id}"), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = http(server.addr, "GET", "/api/recordings?token=nope", None).await;
    assert_eq!(status, 403);
    let (status, _) = http(server.addr, "DELETE", &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = http(server.addr, "GET", &path, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("unknown_recording"), "{body}");
    let (status, _) = http(server.addr, "DELETE", &path, None).await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// A session's recording is completed when the session ends.
#[tokio::test]
async fn the_end_of_a_session_completes_its_recording() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        Config {
            record: true,
            ..Config::default()
        },
    )
    .await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let (started, _) = until(&mut client, |e| match e {
        Event::RecordingStarted(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(started.req, None, "--record started it");
    let a = client.bind("127.0.0.1:0").await;
    client
        .send(Command::Send {
            socket: a.socket.clone(),
            to: Some(a.local.to_string()),
            payload: text("to myself"),
        })
        .await;
    client.received_on(&a.socket).await;
    drop(client);
    server.stop().await;
    let server = server_in(dir.path()).await;
    let (status, body) = http(
        server.addr,
        "GET",
        &format!("/api/recordings?token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let info = &list["recordings"][0];
    assert_eq!(info["datagrams"], 2, "{info}");
    assert!(
        info["stopped_ms"].is_number(),
        "stopped with the session: {info}"
    );
    server.stop().await;
}

/// Two runs of the same twenty datagrams, through a lossy link and then a clean one,
/// compared: every datagram the first lost is listed as changed, with both fates.
#[tokio::test]
async fn two_runs_of_the_same_traffic_compare_by_fate() {
    use socklab_protocol::link::LinkSettings;
    use socklab_tests::IpEndpoint as _;
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path()).await;
    let (mut client, a, b) = client_with_two(&server).await;
    let link = client
        .link(
            "127.0.0.1:0",
            b.local.addr(),
            socklab_tests::lossy_link(40.0, 11),
        )
        .await;
    client.send(Command::SetLossTimeout { ms: 300 }).await;
    let to = link.listen.to_string();
    let lossy = socklab_tests::record_run(&mut client, "lossy", &a, &to, 20, "n").await;
    client
        .send(Command::LinkUpdate {
            link: link.link.clone(),
            settings: LinkSettings::default(),
        })
        .await;
    let clean = socklab_tests::record_run(&mut client, "clean", &a, &to, 20, "n").await;
    let runs = [lossy, clean];
    let ((first, lost), (second, clean_lost)) = (runs[0], runs[1]);
    assert!(lost > 0, "the lossy run lost some");
    assert_eq!(clean_lost, 0);
    let (status, body) = http(
        server.addr,
        "GET",
        &format!("/api/compare?a={first}&b={second}&token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = &v["comparison"];
    assert_eq!(
        (v["a"]["name"].as_str(), v["b"]["name"].as_str()),
        (Some("lossy"), Some("clean"))
    );
    assert_eq!(c["paired"], 20);
    assert_eq!(c["changed_count"].as_u64(), Some(lost as u64), "{c}");
    assert_eq!(c["a"]["fates"]["lost"].as_u64(), Some(lost as u64));
    assert_eq!(c["b"]["fates"]["delivered"], 20);
    for changed in c["changed"].as_array().unwrap() {
        let fates = changed["fate"].as_array().unwrap();
        assert!(
            fates[0]
                .as_str()
                .unwrap()
                .starts_with("lost (link: random_loss)"),
            "{changed}"
        );
        assert!(
            fates[1].as_str().unwrap().starts_with("delivered"),
            "{changed}"
        );
    }
    let (status, _) = http(
        server.addr,
        "GET",
        &format!("/api/compare?a={first}&token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    server.stop().await;
}

/// A recording run again: fresh sockets, the link made again with its seed, the same
/// datagrams with their timing ten times faster, into a new recording; the link decides
/// each the same way, so comparing the two runs finds no datagram whose fate changed.
#[tokio::test]
async fn a_run_again_with_the_same_seed_gets_the_same_fates() {
    use socklab_protocol::link::{Impairments, LinkSettings, Loss};
    use socklab_tests::IpEndpoint as _;
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path()).await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    client.send(Command::SetLossTimeout { ms: 300 }).await;
    client
        .send(Command::RecordStart {
            name: Some("original".into()),
        })
        .await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 35.0 },
            delay_ms: 2.0,
            ..Impairments::default()
        },
        seed: 99,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    for i in 0..20 {
        client
            .send(Command::Send {
                socket: a.socket.clone(),
                to: Some(link.listen.to_string()),
                payload: text(&format!("again {i}")),
            })
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let count_fates = |from: socklab_protocol::Endpoint| {
        let mut n = 0;
        move |e: &Event| {
            if let Event::Fate(f) = e
                && f.src == from
            {
                n += 1;
            }
            (n == 20).then_some(())
        }
    };
    until(&mut client, count_fates(a.local.clone())).await;
    let original = stop_recording(&mut client).await;

    client
        .send(Command::RunAgain {
            recording: original,
            speed: Some(10.0),
        })
        .await;
    // The new recording's start, its first fresh socket and the fates of that socket's
    // 20 sends, in whichever order: the store makes the recording while the sends go
    // (a fate may come before `recording_started` on a busy machine).
    let (mut again, mut fresh, mut fates) = (None, None, 0);
    let deadline = std::time::Instant::now() + 3 * socklab_tests::WAIT;
    while again.is_none() || fates < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run again's start and 20 fates: {again:?}, {fresh:?}, {fates}"
        );
        match client.next().await {
            Event::RecordingStarted(r) => again = Some(r),
            Event::Bound(bound) if fresh.is_none() => fresh = Some(bound),
            Event::Fate(f)
                if fresh
                    .as_ref()
                    .is_some_and(|b: &socklab_protocol::Bound| f.src == b.local) =>
            {
                fates += 1
            }
            Event::Error(e) => panic!("no refusal expected: {e:?}"),
            _ => {}
        }
    }
    let (again, fresh) = (again.unwrap(), fresh.unwrap());
    assert_eq!(again.name, "again: original");
    assert_ne!(fresh.local, a.local, "a socket of its own");
    client.send(Command::RecordStop).await;
    until(&mut client, |e| {
        matches!(e, Event::RecordingStopped(_)).then_some(())
    })
    .await;

    let (status, body) = http(
        server.addr,
        "GET",
        &format!(
            "/api/compare?a={original}&b={}&token={TOKEN}",
            again.recording
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = &v["comparison"];
    assert_eq!(c["paired"], 20, "{c}");
    let lost = c["a"]["fates"]["lost"].as_u64().unwrap_or(0);
    assert!(lost > 0, "the link lost some: {c}");
    assert_eq!(c["b"]["fates"]["lost"].as_u64().unwrap_or(0), lost);
    assert_eq!(
        c["changed_count"], 0,
        "the same seed, the same decisions: {c}"
    );
    // Refusals in words.
    let refusal = client
        .refused(
            Command::RunAgain {
                recording: original,
                speed: Some(0.0),
            },
            socklab_protocol::ErrorCode::BadRequest,
        )
        .await;
    assert!(refusal.message.contains("speed"), "{}", refusal.message);
    server.stop().await;
}

/// A capture larger than --max-import-bytes is refused before it is read; a smaller
/// one goes through.
#[tokio::test]
async fn an_import_over_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        Config {
            max_import_bytes: 1024,
            ..Config::default()
        },
    )
    .await;
    let path = format!("/api/recordings/import?token={TOKEN}");
    let (status, _) = socklab_tests::http_bytes(server.addr, "POST", &path, &[0u8; 4096]).await;
    assert_eq!(status, 413, "over the limit");
    let (status, body) = socklab_tests::http_bytes(server.addr, "POST", &path, b"small").await;
    assert_eq!(status, 400, "read, and refused as no capture: {body}");
    server.stop().await;
}

/// The store keeps at most --max-recordings: one more (a recording, an import) is
/// refused in words until one is deleted.
#[tokio::test]
async fn recordings_past_the_limit_are_refused_until_one_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        Config {
            max_recordings: 1,
            ..Config::default()
        },
    )
    .await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let first = start_recording(&mut client).await;
    client.send(Command::RecordStop).await;
    until(&mut client, |e| {
        matches!(e, Event::RecordingStopped(_)).then_some(())
    })
    .await;
    let req = client.send(Command::RecordStart { name: None }).await;
    let refusal = socklab_tests::expect_error(
        client.reply(req).await,
        socklab_protocol::ErrorCode::LimitExceeded,
    );
    assert!(
        refusal.message.contains("--max-recordings"),
        "{}",
        refusal.message
    );
    let (status, body) = socklab_tests::http_bytes(
        server.addr,
        "POST",
        &format!("/api/recordings/import?token={TOKEN}"),
        b"{\"socklab_recording\":1,\"name\":\"x\"}\n",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("limit_exceeded"), "{body}");
    delete_then_record_again(&server, &mut client, first).await;
    server.stop().await;
}

/// The store grows to at most --max-store-bytes: a recording that would take it past
/// stops by itself, keeping what it holds and saying why; new recordings are refused
/// in words until one is deleted; the session carries on throughout.
#[tokio::test]
async fn a_full_store_stops_the_recording_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        Config {
            max_store_bytes: 300_000,
            ..Config::default()
        },
    )
    .await;
    let (mut client, a, b) = client_with_two(&server).await;
    let first = start_recording(&mut client).await;
    // A kilobyte a datagram, sent and received: past 300 kB well before the end.
    let kilobyte = "k".repeat(1000);
    for _ in 0..600 {
        client
            .send(Command::Send {
                socket: a.socket.clone(),
                to: Some(b.local.to_string()),
                payload: text(&kilobyte),
            })
            .await;
    }
    let (stopped, _) = until(&mut client, |e| match e {
        Event::RecordingStopped(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(stopped.recording, first);
    let reason = stopped.reason.clone().expect("it says why it stopped");
    assert!(reason.contains("--max-store-bytes"), "{reason}");
    assert!(stopped.datagrams > 0, "it keeps what it had: {stopped:?}");
    assert!(stopped.datagrams < 1200, "{stopped:?}");
    let (status, body) = http(
        server.addr,
        "GET",
        &format!("/api/recordings/{first}?token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let kept: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(kept["datagrams"], stopped.datagrams);
    assert!(kept["stopped_ms"].is_number(), "marked stopped: {body}");

    let req = client.send(Command::RecordStart { name: None }).await;
    let refusal = socklab_tests::expect_error(
        client.reply(req).await,
        socklab_protocol::ErrorCode::LimitExceeded,
    );
    assert!(
        refusal.message.contains("--max-store-bytes"),
        "{}",
        refusal.message
    );
    // The session carries on.
    client
        .send(Command::Send {
            socket: a.socket.clone(),
            to: Some(b.local.to_string()),
            payload: text("still here"),
        })
        .await;
    let mut got = client.received_on(&b.socket).await;
    while got.payload_b64 != socklab_protocol::payload::encode_base64(b"still here") {
        got = client.received_on(&b.socket).await;
    }
    delete_then_record_again(&server, &mut client, first).await;
    server.stop().await;
}

/// At most --max-exports answers that hold a recording in memory are made at once:
/// while a client has not read a large one, another is refused in words (503, busy);
/// once it has, the next is made.
#[tokio::test]
async fn exports_past_the_limit_wait_their_turn() {
    use socklab_protocol::flow::{Amount, GeneratorPace, GeneratorPayload, GeneratorSpec};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        dir.path(),
        Config {
            max_exports: 1,
            ..Config::default()
        },
    )
    .await;
    let (mut client, a, b) = client_with_two(&server).await;
    let id = start_recording(&mut client).await;
    // 10,000 datagrams of 1,200 bytes: a recording file of tens of megabytes, more
    // than the connection's buffers hold.
    client
        .send(Command::Generate(GeneratorSpec {
            socket: a.socket.clone(),
            to: b.local.to_string(),
            amount: Amount::Count(10_000),
            pace: GeneratorPace::Rate(50_000.0),
            payload: GeneratorPayload::Size(1200),
            sequence: false,
        }))
        .await;
    until(&mut client, |e| {
        matches!(e, Event::GeneratorDone(_)).then_some(())
    })
    .await;
    client.send(Command::RecordStop).await;
    until(&mut client, |e| {
        matches!(e, Event::RecordingStopped(_)).then_some(())
    })
    .await;

    // A client asks for the whole recording and reads only the head of the answer.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(
        format!(
            "GET /api/recordings/{id}/recording.socklab?token={TOKEN} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 4096];
    let n = slow.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: u64 = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("its length");
    assert!(length > 16 << 20, "larger than the buffers: {length}");

    let fates = format!("/api/recordings/{id}/fates.csv?token={TOKEN}");
    let (status, body) = socklab_tests::http_raw(server.addr, "GET", &fates, b"").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"busy\"") && body.contains("--max-exports"),
        "{body}"
    );
    // Listing and reading events are not exports: they go on.
    let (status, _) = http(
        server.addr,
        "GET",
        &format!("/api/recordings?token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // The slow client reads the rest; then the next export is made.
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest).await.unwrap();
    assert!(rest.len() as u64 + n as u64 > length, "all of it arrived");
    let (status, body) = socklab_tests::http_raw(server.addr, "GET", &fates, b"").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    server.stop().await;
}

/// A recorded TCP conversation through a TCP link runs again: a listener and a client
/// bound afresh, the link made again with its settings and seed, the client connects
/// to the new link and writes the same bytes, the connection the new listener accepts
/// writes the same answer, and the client's shutdown ends the stream as before.
#[tokio::test]
async fn a_run_again_connects_and_writes_again_over_tcp_through_a_tcp_link() {
    use socklab_protocol::link::{TcpImpairments, TcpLinkSettings};
    use socklab_protocol::payload::decode_base64;
    use socklab_protocol::{BindSpec, Direction, Proto, ShutdownHow, SocketId};
    use socklab_tests::IpEndpoint as _;
    let tcp = |listen: bool| BindSpec {
        proto: Proto::Tcp,
        listen,
        ..socklab_tests::bind_command("127.0.0.1:0")
    };
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path()).await;
    let mut client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    client
        .send(Command::RecordStart {
            name: Some("tcp".into()),
        })
        .await;
    let listener = client.bind_with(tcp(true)).await;
    let req = client
        .send(Command::TcpLinkCreate {
            listen: "127.0.0.1:0".into(),
            target: listener.local.to_string(),
            settings: TcpLinkSettings {
                c2t: TcpImpairments {
                    latency_ms: 5.0,
                    slice_bytes: 4,
                    slice_delay_ms: 2.0,
                    ..TcpImpairments::default()
                },
                seed: 7,
                ..TcpLinkSettings::default()
            },
        })
        .await;
    let Event::TcpLinkCreated(link) = client.reply(req).await else {
        panic!("tcp_link_create should succeed");
    };
    let lab = client.bind_with(tcp(false)).await;
    client
        .send(Command::Connect {
            socket: lab.socket.clone(),
            to: link.listen.to_string(),
        })
        .await;
    let accepted = until(&mut client, |e| match e {
        Event::Accepted(a) => Some(a.socket.clone()),
        _ => None,
    })
    .await
    .0;
    for part in ["hello ", "world"] {
        client
            .send(Command::Send {
                socket: lab.socket.clone(),
                to: None,
                payload: text(part),
            })
            .await;
    }
    /// What a socket read, all of it so far, until it is `want`.
    async fn reads(client: &mut Client, socket: &SocketId, want: &str) {
        let mut got = Vec::new();
        until(client, |e| {
            if let Event::Stream(s) = e
                && &s.socket == socket
                && s.dir == Direction::In
            {
                got.extend(decode_base64(&s.payload_b64).unwrap());
            }
            (got == want.as_bytes()).then_some(())
        })
        .await;
    }
    reads(&mut client, &accepted, "hello world").await;
    client
        .send(Command::Send {
            socket: accepted.clone(),
            to: None,
            payload: text("answer"),
        })
        .await;
    reads(&mut client, &lab.socket, "answer").await;
    client
        .send(Command::Shutdown {
            socket: lab.socket.clone(),
            how: ShutdownHow::Write,
        })
        .await;
    until(&mut client, |e| {
        matches!(e, Event::StreamEnd(end) if end.socket == accepted).then_some(())
    })
    .await;
    let original = stop_recording(&mut client).await;

    client
        .send(Command::RunAgain {
            recording: original,
            speed: Some(2.0),
        })
        .await;
    // The fresh listener, link and client, in the order they were made.
    let mut fresh = Vec::new();
    let new_link = until(&mut client, |e| match e {
        Event::Bound(b) => {
            fresh.push(b.clone());
            None
        }
        Event::TcpLinkCreated(l) => Some(l.clone()),
        Event::Error(e) => panic!("no refusal expected: {e:?}"),
        _ => None,
    })
    .await
    .0;
    let new_listener = fresh.pop().expect("the listener bound afresh");
    assert!(new_listener.listening && new_listener.socket != listener.socket);
    assert_ne!(new_link.listen, link.listen);
    assert_eq!(new_link.target, new_listener.local.addr());
    assert_eq!(new_link.settings, link.settings, "its settings and seed");
    let new_lab = until(&mut client, |e| match e {
        Event::Bound(b) => Some(b.clone()),
        _ => None,
    })
    .await
    .0;
    let connected = until(&mut client, |e| match e {
        Event::Connected(c) if c.socket == new_lab.socket => Some(c.clone()),
        _ => None,
    })
    .await
    .0;
    assert_eq!(
        connected.peer.addr(),
        new_link.listen,
        "through the new link"
    );
    // What each end reads, and the end of the stream the client's shutdown makes
    // (their events interleave: the answer is written at its time, not after the read).
    let new_accepted = SocketId::new(format!("{}.1", new_listener.socket));
    let (mut at_listener, mut at_client, mut ended) = (Vec::new(), Vec::new(), false);
    until(&mut client, |e| {
        match e {
            Event::Stream(s) if s.dir == Direction::In && s.socket == new_accepted => {
                at_listener.extend(decode_base64(&s.payload_b64).unwrap());
            }
            Event::Stream(s) if s.dir == Direction::In && s.socket == new_lab.socket => {
                at_client.extend(decode_base64(&s.payload_b64).unwrap());
            }
            Event::StreamEnd(end) if end.socket == new_accepted => ended = true,
            _ => {}
        }
        (ended && at_client == b"answer").then_some(())
    })
    .await;
    assert_eq!(at_listener, b"hello world");
    server.stop().await;
}
