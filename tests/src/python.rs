//! The classic Python UDP echo server as a fixture: `socket(AF_INET, SOCK_DGRAM)`,
//! `bind`, then a loop of `recvfrom` and `sendto`.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running `tests/fixtures/udp_echo.py`; killed on drop.
pub struct PythonEcho {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl PythonEcho {
    /// Starts the echo server on a free port of `host` and waits until it is bound.
    pub fn start(host: &str) -> Self {
        let script = crate::workspace_root().join("tests/fixtures/udp_echo.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(host)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (the interop tests need the machine's Python 3)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the echo server prints its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the echo server: {line:?}"));
        PythonEcho { child, addr }
    }
}

impl Drop for PythonEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
