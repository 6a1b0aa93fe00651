//! The `socklab` binary as a person runs it.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_socklab");

#[test]
fn help_explains_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--web-dir",
        "--max-sockets-per-session",
        "--log-max-events",
        "--log-max-bytes",
        "--no-token",
        "--allow-host",
        "--grace-secs",
        "--max-sessions",
        "--max-datagrams-per-sec",
        "--allow-net",
        "--max-message-bytes",
        "--flush-interval-us",
        "--max-bytes-per-sec",
        "--loss-timeout-ms",
        "--help",
        "--version",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}:\n{help}");
    }
    assert!(
        help.contains("127.0.0.1:7070"),
        "the default address is shown"
    );
}

#[test]
fn prints_the_url_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("the URL is printed: {line:?}"));
    let (address, token) = url
        .trim_start_matches("http://")
        .split_once("/?token=")
        .unwrap_or_else(|| panic!("the URL carries the launch token: {url}"));
    assert_eq!(token.len(), 32, "a 128-bit random token: {token}");
    let port: u16 = address.trim_start_matches("127.0.0.1:").parse().unwrap();
    assert_ne!(port, 0);
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server listens");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("socklab did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
}

#[test]
fn refuses_a_busy_listen_address_plainly() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn no_token_is_refused_beyond_loopback() {
    // Refused before anything is bound.
    let out = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0", "--no-token"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--no-token is only allowed when listening on loopback"),
        "{stderr}"
    );
}
