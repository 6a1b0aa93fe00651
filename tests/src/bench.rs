//! Measurements for `cargo xtask bench`. Each returns figures; nothing here asserts a
//! time. A smoke test runs them tiny to prove they work.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use socklab_protocol::link::{Impairments, LinkSettings};

use crate::TestServer;

/// Percentiles of a set of durations, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Spread {
    /// Summarises samples given in nanoseconds (sorted in place).
    pub fn of(samples: &mut [i64]) -> Spread {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return f64::NAN;
            }
            let i = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[i] as f64 / 1e3
        };
        Spread {
            count: samples.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }
}

/// How precisely a link honours its delay: datagrams are sent at `rate` per second for
/// `duration` through a link with `delay_ms` of delay to a plain socket; each one's
/// error is its arrival time minus (its send time + the delay). The figure includes two
/// loopback hops (tens of microseconds), so with `delay_ms` 0 it is the relay's own
/// overhead.
pub async fn link_timing(rate: u32, duration: Duration, delay_ms: f64) -> (Spread, usize) {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind the receiver");
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a read timeout");
    let settings = LinkSettings {
        c2t: Impairments {
            delay_ms,
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let link = client
        .link("127.0.0.1:0", receiver.local_addr().unwrap(), settings)
        .await;
    // The viewer reads events in the background, as a page would.
    let viewer = tokio::spawn(async move {
        loop {
            client.next_or_closed().await?;
        }
        #[allow(unreachable_code)]
        Some(())
    });

    let count = (rate as f64 * duration.as_secs_f64()) as usize;
    let started = Instant::now();
    let to = link.listen;
    let sender = tokio::task::spawn_blocking(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the sender");
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut sent_at = Vec::with_capacity(count);
        for i in 0..count {
            let due = started + interval * i as u32;
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            sent_at.push(Instant::now());
            socket.send_to(&(i as u64).to_le_bytes(), to).expect("send");
        }
        sent_at
    });
    let receive = tokio::task::spawn_blocking(move || {
        let mut got = Vec::with_capacity(count);
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + duration + Duration::from_secs(5);
        while got.len() < count && Instant::now() < deadline {
            match receiver.recv_from(&mut buf) {
                Ok((8, _)) => got.push((
                    u64::from_le_bytes(buf[..8].try_into().unwrap()),
                    Instant::now(),
                )),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got
    });
    // Awaited, not joined: on a single-threaded runtime the server must keep running.
    let sent_at = sender.await.expect("the sender finishes");
    let got = receive.await.expect("the receiver finishes");
    let delay = Duration::from_secs_f64(delay_ms / 1e3);
    let mut errors: Vec<i64> = got
        .iter()
        .map(|&(i, at)| {
            let due = sent_at[i as usize] + delay;
            if at >= due {
                (at - due).as_nanos() as i64
            } else {
                -((due - at).as_nanos() as i64)
            }
        })
        .collect();
    viewer.abort();
    server.stop().await;
    (Spread::of(&mut errors), count - got.len())
}

/// Frame figures of the timeline in headless Chromium.
#[derive(Debug, Clone)]
pub struct Frames {
    /// Datagrams in the session.
    pub datagrams: u64,
    /// Seconds the page took to take in the whole session.
    pub ingest_s: f64,
    /// Drawing time per frame, zoomed in (the newest ~50 ms of the session).
    pub zoomed_in: Spread,
    /// Drawing time per frame with the whole session in view.
    pub whole: Spread,
    /// From the wheel event to the finished drawing, whole session in view.
    pub input_to_drawn: Spread,
    /// Arrows drawn in the last frame with the whole session in view.
    pub arrows_drawn: u64,
    /// The page's JavaScript heap, MiB (Chromium's `performance.memory`).
    pub js_heap_mib: f64,
    /// The wasm module's linear memory, MiB.
    pub wasm_mib: f64,
}

/// Steps (pan and zoom, one wheel event each) measured per phase.
const FRAME_STEPS: usize = 40;

/// Runs the real page on `server` in `browser`, makes it generate `datagrams` datagrams
/// between two lab sockets, waits until the page has taken them all in, then pans and
/// zooms the timeline one wheel event at a time and reads how long each drawing took
/// (the page records it on the canvas as `data-draw-ms`).
pub async fn timeline_frames(
    browser: &crate::browser::Browser,
    url: &str,
    datagrams: u64,
    rate: u64,
) -> Frames {
    use fantoccini::Locator;
    let wait = Duration::from_secs(600);
    browser.client().goto(url).await.expect("the page loads");
    browser
        .wait_text("#conn-status", |t| t == "connected")
        .await;
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 1).await;
    browser.click("#bind-button").await;
    let rows = browser.wait_count(".socket-row", 2).await;
    let target = rows[1]
        .find(Locator::Css("code.addr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    browser.fill("#gen-to", &target).await;
    browser.fill("#gen-count", &datagrams.to_string()).await;
    browser.fill("#gen-rate", &rate.to_string()).await;
    let started = Instant::now();
    browser.click("#gen-start").await;
    let row = "tr.flow-row[data-method='matched']";
    browser
        .wait_text_for(
            &format!("{row} td.sent"),
            |t| t == datagrams.to_string(),
            wait,
        )
        .await;
    browser
        .wait_text_for(
            "#timeline-legend",
            |t| t.contains(&format!("delivered ({datagrams})")),
            wait,
        )
        .await;
    let ingest_s = started.elapsed().as_secs_f64();

    let script = r#"
        const [steps, zoomOutFirst, zoomEvery, done] = arguments;
        const c = document.getElementById('timeline-canvas');
        const r = c.getBoundingClientRect();
        const wheel = (deltaY, ctrlKey) => c.dispatchEvent(new WheelEvent('wheel', {
            deltaY, ctrlKey, clientX: r.left + r.width / 2, clientY: r.top + r.height / 2,
            bubbles: true, cancelable: true }));
        const frame = () => new Promise(res => requestAnimationFrame(() => requestAnimationFrame(res)));
        (async () => {
            wheel(-120, false); // panning pauses the live follow
            await frame();
            for (let i = 0; i < zoomOutFirst; i++) { wheel(120, true); await frame(); }
            const draw = [], latency = [];
            for (let i = 0; i < steps; i++) {
                const zoom = zoomEvery > 0 && i % zoomEvery === 0;
                const sent = performance.now();
                wheel((i % 4 < 2) ? 60 : -60, zoom);
                await frame();
                draw.push(parseFloat(c.dataset.drawMs));
                const at = parseFloat(c.dataset.drawnAt);
                if (at >= sent) latency.push(at - sent);
            }
            const heap = performance.memory ? performance.memory.usedJSHeapSize : 0;
            done({ draw, latency, heap, drawn: parseInt(c.dataset.drawn || '0') });
        })();
    "#;
    let run = |zoom_out: u64, zoom_every: u64| {
        browser.client().execute_async(
            script,
            vec![
                (FRAME_STEPS as u64).into(),
                zoom_out.into(),
                zoom_every.into(),
            ],
        )
    };
    let spread_ms = |v: &serde_json::Value, key: &str| {
        let mut ns: Vec<i64> = v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|ms| (ms * 1e6) as i64)
                    .collect()
            })
            .unwrap_or_default();
        Spread::of(&mut ns)
    };
    let zoomed = run(0, 0).await.expect("the zoomed-in run");
    // Out far enough to see the whole session: 1.25^30 ≈ 800 times the default scale.
    let whole = run(30, 4).await.expect("the whole-session run");
    let wasm_pages = browser
        .client()
        .execute(
            "return window.socklabWasm ? window.socklabWasm.memory.buffer.byteLength : 0;",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    Frames {
        datagrams,
        ingest_s,
        zoomed_in: spread_ms(&zoomed, "draw"),
        whole: spread_ms(&whole, "draw"),
        input_to_drawn: spread_ms(&whole, "latency"),
        arrows_drawn: whole["drawn"].as_u64().unwrap_or(0),
        js_heap_mib: whole["heap"].as_f64().unwrap_or(0.0) / 1048576.0,
        wasm_mib: wasm_pages / 1048576.0,
    }
}

/// The release `socklab` binary running as its own process (`$SOCKLAB_BIN`, or
/// target/release/socklab, which `cargo xtask bench` builds). Stopped on drop.
pub struct ServerProcess {
    child: std::process::Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
}

impl ServerProcess {
    /// Starts it on a free loopback port with this launch token and `extra` arguments.
    pub fn start(token: &str, extra: &[&str]) -> ServerProcess {
        use std::io::{BufRead as _, BufReader};
        use std::process::{Command, Stdio};
        let bin = std::env::var("SOCKLAB_BIN").unwrap_or_else(|_| {
            crate::workspace_root()
                .join("target/release/socklab")
                .display()
                .to_string()
        });
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--token", token])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin} (cargo xtask bench builds it): {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the server prints its URL");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("the server's URL: {line:?}"));
        ServerProcess { child, addr }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
