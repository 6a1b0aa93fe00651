//! The classic Python UDP echo server as a fixture: `socket(AF_INET, SOCK_DGRAM)`,
//! `bind`, then a loop of `recvfrom` and `sendto`.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running `tests/fixtures/udp_echo.py` (or another server script); killed on drop.
pub struct PythonEcho {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl PythonEcho {
    /// Starts the echo server on a free port of `host` and waits until it is bound.
    pub fn start(host: &str) -> Self {
        Self::start_script("udp_echo.py", host)
    }

    /// Starts `tests/fixtures/udp_ack_server.py` instead: it answers "REQ:NNNN …" with
    /// "ACK:NNNN", two requests at a time, the second first.
    pub fn start_acking(host: &str) -> Self {
        Self::start_script("udp_ack_server.py", host)
    }

    fn start_script(name: &str, host: &str) -> Self {
        let (child, _, addr) = spawn_listening(name, &[host]);
        PythonEcho { child, addr }
    }
}

/// Starts `tests/fixtures/<script>` with `args` and reads the address it says it is
/// listening on (its first line: "listening on ADDR:PORT"); the rest of its output
/// stays to be read.
fn spawn_listening(
    script: &str,
    args: &[&str],
) -> (Child, BufReader<std::process::ChildStdout>, SocketAddr) {
    let path = crate::workspace_root().join("tests/fixtures").join(script);
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (the interop tests need the machine's Python 3)");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    lines
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{script} prints its address: {e}"));
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from {script}: {line:?}"));
    (child, lines, addr)
}

impl Drop for PythonEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `tests/fixtures/udp_numbered_receiver.py`: counts numbered datagrams the
/// way a learner would; killed on drop.
pub struct PythonReceiver {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// What a [`PythonReceiver`] counted from its own numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Counted {
    /// Datagrams received, duplicates included.
    pub received: u64,
    /// Different numbers received.
    pub distinct: u64,
    /// Numbers never received.
    pub missing: u64,
    /// Received after a higher number.
    pub reordered: u64,
    /// A number received again.
    pub duplicates: u64,
}

impl PythonReceiver {
    /// Starts the receiver on a free loopback port, expecting `expected` numbers.
    pub fn start(expected: u64) -> Self {
        let expected = expected.to_string();
        let (child, lines, addr) =
            spawn_listening("udp_numbered_receiver.py", &["127.0.0.1", &expected]);
        PythonReceiver { child, lines, addr }
    }

    /// Waits (on a blocking thread) until it has counted, and returns its counts.
    pub async fn counted(mut self) -> Counted {
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            self.lines
                .read_line(&mut line)
                .expect("the receiver prints its counts");
            serde_json::from_str(line.trim())
                .unwrap_or_else(|e| panic!("the receiver's counts {line:?}: {e}"))
        })
        .await
        .expect("the reading thread")
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/fixtures/udp_numbered_sender.py` to the end: `count` numbered datagrams
/// to `to` at `rate` per second from a socket of its own. Returns the address it sent
/// from.
pub async fn send_numbered(to: SocketAddr, count: u64, rate: f64) -> SocketAddr {
    let script = crate::workspace_root().join("tests/fixtures/udp_numbered_sender.py");
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(&script)
        .arg(to.ip().to_string())
        .arg(to.port().to_string())
        .arg(count.to_string())
        .arg(rate.to_string())
        .kill_on_drop(true);
    let output = command
        .output()
        .await
        .expect("python3 runs (the interop tests need the machine's Python 3)");
    assert!(output.status.success(), "the sender failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .rsplit(" from ")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output from the sender: {text:?}"))
}

/// A running `tests/fixtures/tcp_server.py`: accepts one connection, reads it to its
/// end, answers `answer`, and says what each `recv` returned; killed on drop.
pub struct PythonTcpServer {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl PythonTcpServer {
    /// Starts the server on a free port of `host`, to answer `answer`.
    pub fn start(host: &str, answer: &str) -> Self {
        let (child, lines, addr) = spawn_listening("tcp_server.py", &[host, answer]);
        PythonTcpServer { child, lines, addr }
    }

    /// What each of its reads returned, once it has answered and closed (blocking:
    /// call it when the connection is over).
    pub fn reads(mut self) -> Vec<String> {
        let mut line = String::new();
        self.lines
            .read_line(&mut line)
            .expect("tcp_server.py prints its reads");
        let parsed: serde_json::Value =
            serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        parsed["reads"]
            .as_array()
            .expect("a list of reads")
            .iter()
            .map(|r| r.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for PythonTcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/fixtures/tcp_client.py` to the end, blocking the calling thread (so a
/// server on this thread's runtime does nothing meanwhile): it connects to `to`, sends
/// each message with a send() of its own, ends its stream and closes. Returns the
/// address it connected from.
pub fn tcp_client(to: SocketAddr, messages: &[&str]) -> SocketAddr {
    let script = crate::workspace_root().join("tests/fixtures/tcp_client.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(to.ip().to_string())
        .arg(to.port().to_string())
        .args(messages)
        .output()
        .expect("python3 runs (the interop tests need the machine's Python 3)");
    assert!(output.status.success(), "the client failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let from = text.trim().rsplit(" from ").next().unwrap_or_default();
    // An IPv6 address is printed without brackets.
    from.parse()
        .or_else(|_| {
            let (ip, port) = from.rsplit_once(':').unwrap_or_default();
            format!("[{ip}]:{port}").parse()
        })
        .unwrap_or_else(|_| panic!("unexpected output from the client: {text:?}"))
}

/// A running `tests/fixtures/unix_echo.py`: a Unix domain datagram echo server; killed
/// on drop.
pub struct PythonUnixEcho {
    child: Child,
    /// Where it listens, as the lab writes it: `unix:/path` or `unix:@name`.
    pub endpoint: String,
}

impl PythonUnixEcho {
    /// Starts it bound to `name` (a path, or `@name` for an abstract name) and waits
    /// until it is bound.
    pub fn start(name: &str) -> Self {
        let path = crate::workspace_root().join("tests/fixtures/unix_echo.py");
        let mut child = Command::new("python3")
            .arg(&path)
            .arg(name)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (the interop tests need the machine's Python 3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("unix_echo.py prints its address");
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from unix_echo.py: {line:?}"))
            .to_owned();
        PythonUnixEcho { child, endpoint }
    }
}

impl Drop for PythonUnixEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
