//! The HTTP side: the page, and who may open a WebSocket session.

use socklab_server::Config;
use socklab_tests::{TestServer, web_dir};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Sends a raw HTTP/1.1 request and returns the status line and everything read until
/// the server closes the connection or, for an upgrade request, until the headers end.
async fn raw(server: &TestServer, request: String) -> (String, String) {
    let is_upgrade = request.contains("Upgrade: websocket");
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(socklab_tests::WAIT, stream.read(&mut buf))
            .await
            .expect("the server answers in time")
            .unwrap();
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if n == 0 || (is_upgrade && text.contains("\r\n\r\n")) {
            let text = text.into_owned();
            return (text.lines().next().unwrap_or_default().to_string(), text);
        }
    }
}

/// A plain GET that asks the server to close the connection after answering.
fn get(server: &TestServer, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
        server.addr
    )
}

fn upgrade(host: &str, origin: Option<&str>) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

#[tokio::test]
async fn websocket_upgrades_check_the_origin() {
    let server = TestServer::start().await;
    let host = server.addr.to_string();
    let own = format!("http://{host}");
    let cases = [
        (None, "101"),
        (Some(own.as_str()), "101"),
        (Some("http://evil.example"), "403"),
        (Some("null"), "403"),
        (Some(&*format!("https://{host}")), "403"),
        (Some(&*format!("http://{host}.evil.example")), "403"),
    ];
    for (origin, status) in cases {
        let (line, _) = raw(&server, upgrade(&host, origin)).await;
        assert!(line.contains(status), "origin {origin:?}: {line}");
    }
    server.stop().await;
}

/// The built file whose name starts with `prefix` (names carry a content hash).
fn built(prefix: &str) -> String {
    std::fs::read_dir(web_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with(prefix) && !n.ends_with(".gz"))
        .unwrap_or_else(|| panic!("a built file {prefix}*"))
}

/// The value of a response header (names compared without case).
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response
        .split("\r\n\r\n")
        .next()?
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

#[tokio::test]
async fn serves_the_built_page() {
    let server = TestServer::with_config(Config {
        web_dir: Some(web_dir()),
        ..Config::default()
    })
    .await;
    let (line, body) = raw(&server, get(&server, "/", "")).await;
    assert!(line.contains("200"), "{line}");
    let boot = built("boot-");
    assert!(body.contains(&boot), "{body}");
    // The page is never cached and says what it may load.
    assert_eq!(header(&body, "cache-control"), Some("no-store"), "{body}");
    let csp = header(&body, "content-security-policy").expect("a CSP");
    for part in [
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&body, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&body, "referrer-policy"), Some("no-referrer"));
    // No CORS: another site's script may not read anything from this server.
    let (_, cross) = raw(
        &server,
        get(&server, "/", "Origin: http://evil.example\r\n"),
    )
    .await;
    assert!(
        !cross.to_ascii_lowercase().contains("access-control-allow"),
        "{cross}"
    );
    let wasm = built("socklab_web_bg-");
    let (line, body) = raw(
        &server,
        get(&server, &format!("/{wasm}"), "Range: bytes=0-3\r\n"),
    )
    .await;
    assert!(line.contains("206"), "{line}");
    assert!(body.contains("application/wasm"), "{body}");
    // Files named by their content are cached for good, and sent compressed to a
    // browser that accepts it.
    for file in [
        wasm.as_str(),
        &built("socklab_web-"),
        &boot,
        &built("style-"),
    ] {
        let (line, body) = raw(
            &server,
            get(
                &server,
                &format!("/{file}"),
                "Accept-Encoding: gzip, br\r\n",
            ),
        )
        .await;
        assert!(line.contains("200"), "{file}: {line}");
        assert_eq!(
            header(&body, "cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{file}"
        );
        assert_eq!(header(&body, "content-encoding"), Some("gzip"), "{file}");
    }
    // A favicon, so that no page load logs a 404.
    let (line, body) = raw(&server, get(&server, "/favicon.svg", "")).await;
    assert!(line.contains("200"), "{line}");
    assert_eq!(header(&body, "content-type"), Some("image/svg+xml"));
    server.stop().await;
}

#[tokio::test]
async fn the_host_header_is_parsed_strictly() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    for host in [
        format!("[::1]evil.example:{port}"),
        format!("::1:{port}"),
        "127.0.0.1:notaport".to_string(),
        format!("127.0.0.1:{port}.evil.example"),
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (line, _) = raw(&server, request).await;
        assert!(line.contains("403"), "{host}: {line}");
    }
    let twice = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    );
    let (line, body) = raw(&server, twice).await;
    assert!(line.contains("400"), "{line}");
    // Refusals carry the security headers too.
    assert!(header(&body, "content-security-policy").is_some(), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn without_a_built_page_explains_how_to_build_it() {
    let server = TestServer::start().await;
    let (line, body) = raw(&server, get(&server, "/", "")).await;
    assert!(line.contains("503"), "{line}");
    assert!(body.contains("cargo xtask run"), "{body}");
    server.stop().await;
}
