//! The store survives the server being killed mid-recording: the real `socklab`
//! binary records a steady stream, is killed with SIGKILL, and after a restart the
//! store opens and its recording holds every event up to at most one second before the
//! kill.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt as _;
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

/// The binary, started on a free loopback port without a token, recording every
/// session into `data`. Killed on drop if still running.
struct Server {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Server {
    fn start(data: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_socklab"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-token",
                "--record",
                "--data",
            ])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socklab");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the server prints its URL");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("the server's URL: {line:?}"));
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("an event")
}

#[tokio::test]
async fn a_sigkill_mid_recording_loses_at_most_the_last_second() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .expect("a session");
    let send = |v: serde_json::Value| Message::Text(v.to_string().into());
    ws.send(send(
        serde_json::json!({"type":"bind","proto":"udp","addr":"127.0.0.1:0"}),
    ))
    .await
    .unwrap();
    ws.send(send(
        serde_json::json!({"type":"bind","proto":"udp","addr":"127.0.0.1:0"}),
    ))
    .await
    .unwrap();
    // Every event as it comes (batches opened), with the ids and times seen.
    let mut seen: Vec<(u64, u64)> = Vec::new();
    let mut locals = Vec::new();
    let mut recording = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut started = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the stream ran: {} events",
            seen.len()
        );
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("events keep coming")
            .expect("the connection stays")
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let value = event(&text);
        let events = match value["type"].as_str() {
            Some("batch") => value["events"].as_array().unwrap().clone(),
            _ => vec![value],
        };
        for e in events {
            if let (Some(id), Some(t)) = (e["id"].as_u64(), e["t_ns"].as_u64()) {
                seen.push((id, t));
            }
            match e["type"].as_str() {
                Some("recording_started") => recording = e["recording"].as_i64(),
                Some("bound") => locals.push(e["local"].as_str().unwrap().to_owned()),
                _ => {}
            }
        }
        if locals.len() == 2 && started.is_none() {
            // A steady stream: 2,000 datagrams a second from one to the other.
            ws.send(send(serde_json::json!({
                "type":"generate","socket":"s1","to":locals[1],"amount":{"count":100000},"rate":2000,"size":64
            })))
            .await
            .unwrap();
            started = Some(Instant::now());
        }
        if started.is_some_and(|s| s.elapsed() > Duration::from_secs(3)) {
            break;
        }
    }
    // The kill, with the newest event this viewer had seen just before it.
    let &(last_id, last_t) = seen.iter().max().unwrap();
    let kill = Command::new("kill")
        .args(["-KILL", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    server.child.wait().unwrap();
    drop(ws);
    let recording = recording.expect("--record started a recording");

    // After a restart, the store opens, and the recording is there.
    let server = Server::start(data.path());
    let conn = rusqlite::Connection::open(data.path().join("socklab.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let store = socklab_server::store::Store::open(data.path()).unwrap();
    let mut stored: Vec<(u64, u64)> = Vec::new();
    loop {
        let after = stored.last().map_or(0, |e| e.0);
        let page = store.events(recording, after, 10_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        stored.extend(page.iter().map(|e| (e.id, e.t_ns)));
    }
    let ids: Vec<u64> = stored.iter().map(|e| e.0).collect();
    assert_eq!(ids[0], 1, "from the session's first event");
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no event is missing in between"
    );
    let (newest_id, newest_t) = *stored.last().unwrap();
    let lost_ns = last_t.saturating_sub(newest_t);
    eprintln!(
        "kill after event {last_id} (t = {last_t} ns); stored up to {newest_id} (t = {newest_t} ns): {:.1} ms lost, {} events",
        lost_ns as f64 / 1e6,
        stored.len()
    );
    assert!(
        stored.len() > 4000,
        "the stream was recorded: {} events",
        stored.len()
    );
    assert!(
        lost_ns <= 1_000_000_000,
        "at most the last second is lost: {:.1} ms",
        lost_ns as f64 / 1e6
    );
    // Every event the viewer saw up to a second before the kill is stored.
    let cutoff = last_t.saturating_sub(1_000_000_000);
    for (id, t) in seen.iter().filter(|(_, t)| *t <= cutoff) {
        assert!(
            ids.binary_search(id).is_ok(),
            "event {id} (t = {t}) is stored"
        );
    }
    // The restarted server lists it.
    let list = http_get(server.addr, "/api/recordings").await;
    assert!(list.contains(&format!("\"id\":{recording}")), "{list}");
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}
