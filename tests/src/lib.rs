//! Test harness for socklab's workspace tests: the real server in-process on port 0, a
//! real WebSocket client, namespaced re-runs, and a real headless Chromium.
//!
//! # Layout
//! - [`TestServer`]: the server, started on a free loopback port, stopped on drop.
//! - [`Client`]: a WebSocket client that speaks the protocol and waits with deadlines.
//! - [`isolated`]: re-running one test inside a user or network namespace.
//! - [`browser`]: ChromeDriver + headless Chromium with guaranteed cleanup.
//! - [`python`]: a Python UDP echo server fixture.
//! - [`bench`]: the measurements `cargo xtask bench` prints.

pub mod bench;
pub mod browser;
pub mod isolated;
pub mod python;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use socklab_protocol::link::LinkSettings;
use socklab_protocol::{
    BindSpec, Bound, Command, Datagram, ErrorCode, ErrorEvent, Event, Hello, LinkCreated, Payload,
    Request, SocketId,
};
use socklab_server::Config;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen at once on loopback.
pub const WAIT: Duration = Duration::from_secs(10);

/// `config` with a store of its own: a new temporary directory as its data directory,
/// removed when the returned guard drops (keep it as long as the server).
pub fn in_temp_store(config: Config) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let config = Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..config
    };
    (dir, config)
}

/// The real server, running in this process on a free loopback port.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with the default settings.
    pub async fn start() -> Self {
        Self::with_config(Config::default()).await
    }

    /// Starts a server with `config`.
    pub async fn with_config(config: Config) -> Self {
        Self::with_config_on("127.0.0.1:0".parse().expect("an address"), config).await
    }

    /// Starts a server with `config` and a store of its own: a new temporary directory
    /// as its data directory, removed when the returned guard drops (keep it as long as
    /// the server).
    pub async fn with_store(config: Config) -> (tempfile::TempDir, Self) {
        let (dir, config) = in_temp_store(config);
        (dir, Self::with_config(config).await)
    }

    /// Starts a server with `config` on `addr` (a restart on the address of a server
    /// that stopped: a page open on it sees the new one).
    pub async fn with_config_on(addr: SocketAddr, config: Config) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind the address");
        let addr = listener.local_addr().expect("listener address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(socklab_server::run(listener, config, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Connects a new WebSocket client (a new session).
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Stops the server and waits until every session has closed its sockets.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the server stops in time")
                .expect("the server task does not panic")
                .expect("the server exits cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The built web app for browser tests: `$SOCKLAB_WEB_DIR`, or `target/web`.
pub fn web_dir() -> PathBuf {
    let dir = std::env::var_os("SOCKLAB_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("web"));
    assert!(
        dir.join("index.html").is_file(),
        "the web app is not built in {}: run the tests with `cargo xtask test` (or build it with `cargo xtask build-web`)",
        dir.display()
    );
    dir
}

/// Where tests put what a person may want to look at afterwards (screenshots).
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("SOCKLAB_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("test-artifacts"));
    std::fs::create_dir_all(&dir).expect("create the artifacts folder");
    dir
}

/// A thread that keeps one CPU busy until it is dropped (30 s at most), so that what
/// must hold on a busy machine is checked on one.
pub struct CpuBurner {
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl CpuBurner {
    /// Starts burning.
    pub fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let busy = std::sync::Arc::new(AtomicBool::new(true));
        let flag = busy.clone();
        let thread = std::thread::spawn(move || {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut x = 0u64;
            while flag.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            x
        });
        CpuBurner {
            busy,
            thread: Some(thread),
        }
    }
}

impl Drop for CpuBurner {
    fn drop(&mut self) {
        self.busy.store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Cargo's target folder: `$CARGO_TARGET_DIR` when set (relative to the workspace),
/// else `target` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The workspace's top folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// A protocol client on a real WebSocket.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Events received but not yet taken by the test.
    queue: VecDeque<Event>,
    /// Frames received so far (a batch counts once).
    pub frames: usize,
    /// The server's greeting.
    pub hello: Hello,
    next_req: i64,
}

impl Client {
    /// Connects to the server at `addr` and reads its `hello`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, "")
            .await
            .expect("WebSocket connects")
    }

    /// Connects with a query string (`token=...&session=...&since=...`, without `?`);
    /// returns the handshake's error when the server refuses.
    pub async fn connect_with(
        addr: SocketAddr,
        query: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?{query}")).await?;
        let mut client = Client {
            ws,
            queue: VecDeque::new(),
            frames: 0,
            hello: Hello {
                protocol: 0,
                session: socklab_protocol::SessionId::new(""),
                server: String::new(),
            },
            next_req: 0,
        };
        match client.next().await {
            Event::Hello(hello) => client.hello = hello,
            other => panic!("the server must speak first with hello, got {other:?}"),
        }
        Ok(client)
    }

    /// Sends a raw WebSocket message.
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("WebSocket send");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.send_message(Message::text(text)).await;
    }

    /// Sends a command with a fresh `req` and returns the `req`.
    pub async fn send(&mut self, command: Command) -> i64 {
        self.next_req += 1;
        let req = self.next_req;
        self.send_text(&Request::with_req(req, command).to_json())
            .await;
        req
    }

    /// The next event (batches are unpacked), waiting at most [`WAIT`].
    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return event;
            }
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("an event arrives in time")
                .expect("the connection stays open")
                .expect("a valid WebSocket frame");
            match frame {
                Message::Text(text) => {
                    self.frames += 1;
                    let event = Event::from_json(&text)
                        .unwrap_or_else(|e| panic!("unreadable event {text}: {e}"));
                    if let Event::Batch { events } = &event {
                        assert!(
                            events.iter().all(|e| !matches!(e, Event::Batch { .. })),
                            "batches are never nested"
                        );
                        assert!(events.len() > 1, "a batch carries more than one event");
                    }
                    self.queue.extend(event.flatten());
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next event, or `None` once the server closed the connection (for clients
    /// that read in the background until the end).
    pub async fn next_or_closed(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            match self.ws.next().await? {
                Ok(Message::Text(text)) => {
                    self.frames += 1;
                    self.queue.extend(Event::from_json(&text).ok()?.flatten());
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next text frame as it came (not copied), for a client that parses only what
    /// it needs (benchmarks); None when the connection ends. Events already taken into
    /// the queue are not returned again.
    pub async fn next_text(&mut self) -> Option<tokio_tungstenite::tungstenite::Utf8Bytes> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => {
                    self.frames += 1;
                    return Some(text);
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads until the server closes the connection; returns its close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server closes in time");
            match frame {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Reads events until one matches, and returns it; the skipped ones are returned too.
    pub async fn until(&mut self, mut wanted: impl FnMut(&Event) -> bool) -> (Event, Vec<Event>) {
        let mut skipped = Vec::new();
        loop {
            let event = self.next().await;
            if wanted(&event) {
                return (event, skipped);
            }
            skipped.push(event);
        }
    }

    /// Reads events until `pick` takes one, and returns what it made of it (the others
    /// are skipped): `client.next_where(|e| match e { Event::Fate(f) if … => Some(f),
    /// _ => None })`.
    pub async fn next_where<T>(&mut self, mut pick: impl FnMut(Event) -> Option<T>) -> T {
        loop {
            if let Some(found) = pick(self.next().await) {
                return found;
            }
        }
    }

    /// The next `error` event (other events before it are skipped: the session's
    /// analysis may report on earlier datagrams at any time).
    pub async fn next_error(&mut self) -> Event {
        self.until(|e| matches!(e, Event::Error(_))).await.0
    }

    /// The reply to the command with this `req`: the first event that carries it.
    pub async fn reply(&mut self, req: i64) -> Event {
        self.until(|e| e.req() == Some(req)).await.0
    }

    /// Binds a UDP socket and returns the `bound` event, failing the test on refusal.
    pub async fn bind(&mut self, addr: &str) -> Bound {
        self.bind_with_buffer(addr, None).await
    }

    /// Binds a UDP socket asking for a receive buffer of `recv_buffer_bytes` (None: the
    /// server's default) and returns the `bound` event, failing the test on refusal.
    pub async fn bind_with_buffer(&mut self, addr: &str, recv_buffer_bytes: Option<u64>) -> Bound {
        self.bind_with(BindSpec {
            recv_buffer_bytes,
            ..bind_command(addr)
        })
        .await
    }

    /// Binds a socket as `spec` says and returns the `bound` event, failing the test
    /// on refusal.
    pub async fn bind_with(&mut self, spec: BindSpec) -> Bound {
        let req = self.send(Command::Bind(spec.clone())).await;
        match self.reply(req).await {
            Event::Bound(bound) => bound,
            other => panic!("{spec:?} should succeed, got {other:?}"),
        }
    }

    /// Sends a datagram and returns its `out` event, failing the test on refusal.
    pub async fn send_datagram(
        &mut self,
        socket: &SocketId,
        to: SocketAddr,
        payload: Payload,
    ) -> Datagram {
        let req = self
            .send(Command::Send {
                socket: socket.clone(),
                to: Some(to.to_string()),
                payload,
            })
            .await;
        match self.reply(req).await {
            Event::Datagram(d) => d,
            other => panic!("send to {to} should succeed, got {other:?}"),
        }
    }

    /// Sends a command that must be refused, and returns the error.
    pub async fn refused(&mut self, command: Command, code: ErrorCode) -> ErrorEvent {
        let req = self.send(command).await;
        expect_error(self.reply(req).await, code)
    }

    /// Creates a link and returns its `link_created` event, failing the test on refusal.
    pub async fn link(
        &mut self,
        listen: &str,
        target: SocketAddr,
        settings: LinkSettings,
    ) -> LinkCreated {
        let req = self
            .send(Command::LinkCreate {
                listen: listen.into(),
                target: target.to_string(),
                settings,
            })
            .await;
        match self.reply(req).await {
            Event::LinkCreated(created) => created,
            other => panic!("link_create should succeed, got {other:?}"),
        }
    }

    /// The next `in` datagram on `socket`.
    pub async fn received_on(&mut self, socket: &SocketId) -> Datagram {
        match self
            .until(|e| matches!(e, Event::Datagram(d) if &d.socket == socket && d.dir == socklab_protocol::Direction::In))
            .await
            .0
        {
            Event::Datagram(d) => d,
            _ => unreachable!("until returns a matching event"),
        }
    }
}

/// A plain UDP `bind` of `addr`: the options a test changes with `..bind_command(addr)`.
pub fn bind_command(addr: &str) -> BindSpec {
    BindSpec {
        addr: addr.into(),
        ..BindSpec::default()
    }
}

/// Checks that `event` is an error with `code` and returns it.
pub fn expect_error(event: Event, code: ErrorCode) -> ErrorEvent {
    match event {
        Event::Error(error) if error.code == code => {
            assert!(!error.message.is_empty(), "an error explains itself");
            error
        }
        other => panic!("expected a {code} error, got {other:?}"),
    }
}

/// A text payload.
pub fn text(s: &str) -> Payload {
    Payload::Text(s.into())
}

/// A `generate` command: `count` sequenced datagrams of 64 bytes from `socket` to `to`
/// at `rate` per second.
pub fn generate(
    socket: &socklab_protocol::SocketId,
    to: SocketAddr,
    count: u64,
    rate: f64,
) -> Command {
    use socklab_protocol::flow::{Amount, GeneratorPace, GeneratorPayload, GeneratorSpec};
    Command::Generate(GeneratorSpec {
        socket: socket.clone(),
        to: to.to_string(),
        amount: Amount::Count(count),
        pace: GeneratorPace::Rate(rate),
        payload: GeneratorPayload::Size(64),
        sequence: true,
    })
}

/// An endpoint the test knows is an IP one (a UDP or TCP socket's), as a socket
/// address.
pub trait IpEndpoint {
    /// The socket address; panics for a Unix endpoint.
    fn addr(&self) -> SocketAddr;
}

impl IpEndpoint for socklab_protocol::Endpoint {
    fn addr(&self) -> SocketAddr {
        self.socket_addr()
            .unwrap_or_else(|| panic!("{self} is not an IP endpoint"))
    }
}

/// Sends one HTTP/1.1 request (`body` as JSON, if any) to `addr` and returns the status
/// and the body. The server is asked to close the connection after answering.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    http_bytes(addr, method, path, body.unwrap_or_default().as_bytes()).await
}

/// [`http`] with any bytes as the body.
pub async fn http_bytes(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let (status, body) = http_raw(addr, method, path, body).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// [`http_bytes`] with the answer's body as bytes (a capture file, say).
pub async fn http_raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.write_all(body).await.expect("send the body");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the server answers in time")
        .expect("read");
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP answer: {:?}", String::from_utf8_lossy(&response)));
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP status: {head:?}"));
    (status, response.split_off(end + 4))
}

/// Records one run as recording `name`: `count` datagrams `prefix0`, `prefix1`, … sent
/// from socket `from` to `to`, every event read until each has its fate, then the
/// recording stopped. Returns the recording's id and how many of them were lost.
pub async fn record_run(
    client: &mut Client,
    name: &str,
    from: &Bound,
    to: &str,
    count: usize,
    prefix: &str,
) -> (i64, usize) {
    client
        .send(Command::RecordStart {
            name: Some(name.into()),
        })
        .await;
    for i in 0..count {
        client
            .send(Command::Send {
                socket: from.socket.clone(),
                to: Some(to.into()),
                payload: text(&format!("{prefix}{i}")),
            })
            .await;
    }
    let (mut fates, mut lost) = (0, 0);
    while fates < count {
        match client.next().await {
            Event::Fate(f) if f.src == from.local => {
                fates += 1;
                lost += usize::from(f.fate == socklab_protocol::flow::FateKind::Lost);
            }
            Event::Error(e) => panic!("no refusal expected: {e:?}"),
            _ => {}
        }
    }
    client.send(Command::RecordStop).await;
    loop {
        if let Event::RecordingStopped(r) = client.next().await {
            return (r.recording, lost);
        }
    }
}

/// Link settings that lose `pct` % of what the client sends, at random from `seed`.
pub fn lossy_link(pct: f64, seed: u64) -> LinkSettings {
    LinkSettings {
        c2t: socklab_protocol::link::Impairments {
            loss: socklab_protocol::link::Loss::Random { pct },
            ..socklab_protocol::link::Impairments::default()
        },
        seed,
        ..LinkSettings::default()
    }
}
