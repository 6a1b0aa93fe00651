//! Measurements for `cargo xtask bench`. Each returns figures; nothing here asserts a
//! time. A smoke test runs them tiny to prove they work.
//!
//! (Over 600 lines: the measurements share their drivers and report format, and a
//! benchmark is easier to trust when its setup and its figures read together.)

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use socklab_protocol::link::{Impairments, LinkSettings};

use crate::{Client, TestServer};

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

/// Waits until `due` the way a paced sender should on a machine it shares with what it
/// measures: it sleeps through most of the wait (a spinning sender would take a whole
/// core from the server) and spins only through the last stretch, since a sleep
/// overshoots by up to the timer slack (50 µs).
pub fn pace_until(due: Instant) {
    let now = Instant::now();
    if due > now + Duration::from_micros(80) {
        std::thread::sleep(due - now - Duration::from_micros(70));
    }
    while Instant::now() < due {
        std::hint::spin_loop();
    }
}

/// How precisely a link honours its delay: datagrams are sent at `rate` per second for
/// `duration` through a link with `delay_ms` of delay to a plain socket; each one's
/// error is its arrival time minus (its send time + the delay). The figure includes two
/// loopback hops (tens of microseconds), so with `delay_ms` 0 it is the relay's own
/// overhead; [`direct_timing`] measures one hop in the same way, the floor.
pub async fn link_timing(rate: u32, duration: Duration, delay_ms: f64) -> (Spread, usize) {
    let server = TestServer::start().await;
    let client = server.client().await;
    let timed = link_timing_with(client, rate, duration, delay_ms).await;
    server.stop().await;
    (timed.error, timed.lost)
}

/// What [`link_timing_with`] measured.
#[derive(Debug, Clone)]
pub struct LinkTiming {
    /// Each arrival's error against (send + delay), as the receiver saw it.
    pub error: Spread,
    /// Datagrams that never came.
    pub lost: usize,
    /// The lab's own account of the same datagrams: the `link` flow's time in the link
    /// (departure less kernel arrival stamp), as its flows table last said.
    pub lab_view: Option<socklab_protocol::flow::Latency>,
}

/// [`link_timing`] through the server `client` is connected to: the benchmark's own
/// server process, so that the sender and receiver (here) and the link (there) share
/// no process.
pub async fn link_timing_with(
    mut client: Client,
    rate: u32,
    duration: Duration,
    delay_ms: f64,
) -> LinkTiming {
    use socklab_protocol::Event;
    use socklab_protocol::flow::FlowMethod;
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind the receiver");
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
    // The viewer reads events in the background, as a page would, and keeps what the
    // flows table last said of the link's flow.
    let lab_view = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = lab_view.clone();
    let viewer = tokio::spawn(async move {
        while let Some(event) = client.next_or_closed().await {
            if let Event::FlowStats(stats) = event
                && let Some(flow) = stats.flows.iter().find(|f| f.method == FlowMethod::Link)
            {
                *seen.lock().unwrap() = Some((flow.sent, flow.in_flight, flow.latency_ns));
            }
        }
    });
    let delay = Duration::from_secs_f64(delay_ms / 1e3);
    let (error, lost) = time_path(link.listen, receiver, rate, duration, delay).await;
    // The flows table's figures come twice a second: wait for one that has them all.
    let count = ((rate as f64 * duration.as_secs_f64()) as u64).max(5);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline
        && !lab_view
            .lock()
            .unwrap()
            .is_some_and(|(sent, in_flight, _)| sent >= count && in_flight == 0)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    viewer.abort();
    let lab_view = lab_view.lock().unwrap().and_then(|(_, _, latency)| latency);
    LinkTiming {
        error,
        lost,
        lab_view,
    }
}

/// The floor under [`link_timing`]: the same sender and receiver, straight to each
/// other over loopback, with no link in between.
pub async fn direct_timing(rate: u32, duration: Duration) -> (Spread, usize) {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind the receiver");
    let to = receiver.local_addr().unwrap();
    time_path(to, receiver, rate, duration, Duration::ZERO).await
}

/// Sends numbered datagrams to `to` at `rate` for `duration` (at least 5) from a thread
/// of its own, receives them on `receiver` on another, and returns each arrival's
/// error against (send + `delay`) and how many never came.
async fn time_path(
    to: std::net::SocketAddr,
    receiver: UdpSocket,
    rate: u32,
    duration: Duration,
    delay: Duration,
) -> (Spread, usize) {
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a read timeout");
    let count = ((rate as f64 * duration.as_secs_f64()) as usize).max(5);
    let started = Instant::now() + Duration::from_millis(5);
    let sender = tokio::task::spawn_blocking(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the sender");
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut sent_at = Vec::with_capacity(count);
        for i in 0..count {
            pace_until(started + interval * i as u32);
            sent_at.push(Instant::now());
            socket.send_to(&(i as u64).to_le_bytes(), to).expect("send");
        }
        sent_at
    });
    let run_for = Duration::from_secs_f64(count as f64 / rate as f64);
    let receive = tokio::task::spawn_blocking(move || {
        let mut got = Vec::with_capacity(count);
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + run_for + delay + Duration::from_secs(5);
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

/// The spread of the milliseconds a page script returned under `key`.
fn spread_of_ms(v: &serde_json::Value, key: &str) -> Spread {
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
}

/// Sends [`FRAME_STEPS`] wheel events to the timeline, one a frame (first `zoom_out`
/// zooming out; then panning, every `zoom_every`-th zooming), and reads each drawing's
/// time and the time from the wheel event to the finished drawing: `{draw, latency,
/// heap, drawn}`.
async fn wheel_run(
    browser: &crate::browser::Browser,
    zoom_out: u64,
    zoom_every: u64,
) -> Result<serde_json::Value, fantoccini::error::CmdError> {
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
    browser
        .client()
        .execute_async(
            script,
            vec![
                (FRAME_STEPS as u64).into(),
                zoom_out.into(),
                zoom_every.into(),
            ],
        )
        .await
}

/// A recording too big to read whole, opened in the page and panned and zoomed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded {
    /// Datagrams sent in it.
    pub datagrams: u64,
    /// Events it holds.
    pub events: u64,
    /// Seconds from "open" to the replay shown (its outline and last page read).
    pub open_s: f64,
    /// Seconds from "fit all" to the recording's counts drawn (the first time: the
    /// server makes them from the whole recording).
    pub counts_s: f64,
    /// Seconds the same took once more (the counts kept in the store).
    pub counts_again_s: f64,
    /// Draw time per frame with the whole recording in view, panned and zoomed.
    pub whole: Spread,
    /// Wheel to drawn, whole recording in view.
    pub whole_input: Spread,
    /// Draw time per frame zoomed in to about 1,500 datagrams of the run, its arrows read from the store.
    pub zoomed_in: Spread,
    /// Wheel to drawn, zoomed in.
    pub zoomed_input: Spread,
    /// Arrows read from the store for the zoomed-in view.
    pub fetched: u64,
    /// The page's JavaScript heap, MiB, and the wasm module's memory, MiB.
    pub js_heap_mib: f64,
    /// See `js_heap_mib`.
    pub wasm_mib: f64,
}

/// Records `datagrams` datagrams sent at `rate` per second between two lab sockets
/// (by a script's session), opens the recording in the page, and measures opening it,
/// drawing its counts, and frames while panning and zooming it whole and zoomed in.
pub async fn timeline_recorded(
    browser: &crate::browser::Browser,
    server: &TestServer,
    datagrams: u64,
    rate: u64,
    query: &str,
) -> Recorded {
    use socklab_protocol::{Command, Event};
    // The run and its recording take as long as they take; the page, a minute at most
    // for each thing it shows (a page that never shows it fails the bench, not hangs).
    let wait = Duration::from_secs(900);
    let page_wait = Duration::from_secs(60);
    let mut client = server.client().await;
    // This client only waits for the generator's end and the recording's: it is spared
    // the millions of events about single datagrams (reading them all, it would fall
    // behind and be let go).
    let req = client
        .send(Command::KeepUp {
            behind: Some(socklab_protocol::limits::MIN_KEEP_UP),
            rate: None,
        })
        .await;
    client.reply(req).await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let req = client
        .send(Command::RecordStart {
            name: Some("bench".into()),
        })
        .await;
    let id = match client.reply(req).await {
        Event::RecordingStarted(r) => r.recording,
        other => panic!("expected recording_started, got {other:?}"),
    };
    let to = b.local.socket_addr().expect("a UDP socket");
    let req = client
        .send(crate::generate(&a.socket, to, datagrams, rate as f64))
        .await;
    client.reply(req).await;
    // Until the generator is done and its last datagrams concluded (the fate timeout).
    let deadline = Instant::now() + wait;
    loop {
        assert!(Instant::now() < deadline, "the generator never finished");
        if let Event::GeneratorDone(_) = client.next().await {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.send(Command::RecordStop).await;
    let events = loop {
        assert!(Instant::now() < deadline, "the recording never stopped");
        if let Event::RecordingStopped(r) = client.next().await {
            break r.events;
        }
    };
    drop(client);

    browser.open(&format!("{}{query}", server.url())).await;
    browser.click("#tab-recordings").await;
    let open = format!("#open-{id}");
    browser.wait_count(&open, 1).await;
    let started = Instant::now();
    browser.click(&open).await;
    browser
        .wait_text_for("#replay-cursor", |t| t.starts_with("event #"), page_wait)
        .await;
    let open_s = started.elapsed().as_secs_f64();
    browser.click("#tab-timeline").await;
    let counts_s = counts_drawn(browser, page_wait).await;
    // Once more, from a fresh start of the replay (the counts now kept in the store).
    browser.click("#replay-close").await;
    browser.click("#tab-recordings").await;
    browser.wait_count(&open, 1).await;
    browser.click(&open).await;
    browser
        .wait_text_for("#replay-cursor", |t| t.starts_with("event #"), page_wait)
        .await;
    browser.click("#tab-timeline").await;
    // The inspector (following the cursor) closed: the timeline gets its height.
    browser.click("#inspector-close").await;
    let counts_again_s = counts_drawn(browser, page_wait).await;
    let whole = wheel_run(browser, 0, 4)
        .await
        .expect("the whole-recording run");
    // Zoomed in to about 1,500 datagrams in the middle of the time before the page.
    browser.click("#tl-fit").await;
    let at = browser
        .wait_attr("#timeline-canvas", "data-thinned-at", |_| true)
        .await;
    let (a, b) = at.split_once(',').unwrap_or(("0", "0"));
    let middle = (a.parse::<u64>().unwrap_or(0) + b.parse::<u64>().unwrap_or(0)) / 2;
    browser.fill("#tl-goto", "").await;
    browser
        .press("#tl-goto", &format!("{:.3}\u{E007}", middle as f64 / 1e6))
        .await;
    for _ in 0..60 {
        let w = browser
            .wait_attr("#timeline-canvas", "data-window", |_| true)
            .await;
        let (a, b) = w.split_once(',').unwrap_or(("0", "0"));
        let span = b.parse::<f64>().unwrap_or(0.0) - a.parse::<f64>().unwrap_or(0.0);
        // Fewer datagrams in view than the page fetches arrows for (2,000): about 1,500
        // at the run's rate (30 ms of a 50,000/s run, 15 ms of a 100,000/s one).
        if span <= 1e9 * 1_500.0 / rate as f64 {
            break;
        }
        browser.click("#tl-zoom-in").await;
        browser
            .wait_attr("#timeline-canvas", "data-window", |w| {
                let (a, b) = w.split_once(',').unwrap_or(("0", "0"));
                b.parse::<f64>().unwrap_or(0.0) - a.parse::<f64>().unwrap_or(0.0) < span
            })
            .await;
    }
    let fetched = browser
        .wait_attr_for(
            "#timeline-canvas",
            "data-detail",
            |n| n.parse::<u64>().is_ok_and(|n| n > 0),
            page_wait,
        )
        .await
        .parse()
        .unwrap_or(0);
    let zoomed = wheel_run(browser, 0, 0).await.expect("the zoomed-in run");
    let wasm_mib = wasm_mib(browser).await;
    Recorded {
        datagrams,
        events,
        open_s,
        counts_s,
        counts_again_s,
        whole: spread_of_ms(&whole, "draw"),
        whole_input: spread_of_ms(&whole, "latency"),
        zoomed_in: spread_of_ms(&zoomed, "draw"),
        zoomed_input: spread_of_ms(&zoomed, "latency"),
        fetched,
        js_heap_mib: zoomed["heap"].as_f64().unwrap_or(0.0) / 1048576.0,
        wasm_mib,
    }
}

/// The page's wasm module's linear memory, MiB.
async fn wasm_mib(browser: &crate::browser::Browser) -> f64 {
    browser
        .client()
        .execute(
            "return window.socklabWasm ? window.socklabWasm.memory.buffer.byteLength : 0;",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
        / 1048576.0
}

/// Fits the whole replay in view; seconds until its counts are drawn.
async fn counts_drawn(browser: &crate::browser::Browser, wait: Duration) -> f64 {
    let started = Instant::now();
    browser.click("#tl-fit").await;
    browser
        .wait_attr_for(
            "#timeline-canvas",
            "data-counted",
            |n| n.parse::<u64>().is_ok_and(|n| n > 0),
            wait,
        )
        .await;
    started.elapsed().as_secs_f64()
}

/// Opens the page at `url`, binds two sockets, and fills the generator's form to send
/// `datagrams` at `rate` per second from the first to the second (not started).
async fn generator_ready(browser: &crate::browser::Browser, url: &str, datagrams: u64, rate: u64) {
    use fantoccini::Locator;
    browser.open(url).await;
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
}

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
    let wait = Duration::from_secs(600);
    // Every event, however far behind: this measures the page drawing all of them.
    let url = format!(
        "{url}{}keep_up=0",
        if url.contains('?') { '&' } else { '?' }
    );
    generator_ready(browser, &url, datagrams, rate).await;
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

    let run = |zoom_out: u64, zoom_every: u64| wheel_run(browser, zoom_out, zoom_every);
    let zoomed = run(0, 0).await.expect("the zoomed-in run");
    // Out far enough to see the whole session: 1.25^30 ≈ 800 times the default scale.
    let whole = run(30, 4).await.expect("the whole-session run");
    let wasm_mib = wasm_mib(browser).await;
    Frames {
        datagrams,
        ingest_s,
        zoomed_in: spread_of_ms(&zoomed, "draw"),
        whole: spread_of_ms(&whole, "draw"),
        input_to_drawn: spread_of_ms(&whole, "latency"),
        arrows_drawn: whole["drawn"].as_u64().unwrap_or(0),
        js_heap_mib: whole["heap"].as_f64().unwrap_or(0.0) / 1048576.0,
        wasm_mib,
    }
}

/// What the page keeps up with while a generator runs at a high rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    /// Datagrams the generator sent.
    pub sent: u64,
    /// Arrows the page's timeline holds when the run has been over for a while.
    pub arrows: u64,
    /// Rows its packet list holds (out and in: two per datagram, at most 20,000).
    pub rows: u64,
    /// Events the server spared it (`thinned`) to keep it current.
    pub passed: u64,
    /// With the whole run in view: arrows drawn.
    pub drawn: u64,
    /// With the whole run in view: datagrams drawn as the server's counts.
    pub counted: u64,
    /// With the whole run in view: datagrams the server counted sent in the part of it
    /// where the page was spared events (from the first such stretch to the last; by
    /// the end of the measurement, and a generator slowed by the machine may not have
    /// sent all).
    pub server_sent: u64,
    /// Frame intervals during the run (requestAnimationFrame to the next).
    pub frames: Spread,
    /// Draw time per frame during the run.
    pub draw: Spread,
    /// The page's long tasks during the run (the browser's `longtask` entries, 50 ms
    /// and over): how many, their total and the longest, ms.
    pub long_tasks: (u64, f64, f64),
    /// CPU used during the run, in cores: by this process (the server under test, in
    /// process, and the benchmark's WebDriver client), and by the whole machine.
    pub cores: (f64, f64),
}

/// The machine's CPU time so far, busy and in all, in clock ticks (`/proc/stat`).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let all: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// Runs the real page, has it generate `datagrams` datagrams at `rate` per second
/// between two lab sockets, and measures the page's frames while they come and what it
/// holds `settle_s` seconds after the generator is done.
pub async fn timeline_live(
    browser: &crate::browser::Browser,
    url: &str,
    datagrams: u64,
    rate: u64,
    settle_s: f64,
) -> Live {
    generator_ready(browser, url, datagrams, rate).await;
    let run_ms = (datagrams as f64 / rate as f64 + settle_s) * 1000.0;
    let script = r#"
        const [runMs, done] = arguments;
        const c = document.getElementById('timeline-canvas');
        const frames = [], draw = [], long = [];
        const observer = new PerformanceObserver((list) => {
            for (const e of list.getEntries()) long.push(e.duration);
        });
        try { observer.observe({ type: 'longtask' }); } catch (e) {}
        let last = performance.now();
        const started = last;
        document.getElementById('gen-start').click();
        const tick = (now) => {
            frames.push(now - last);
            last = now;
            const d = parseFloat(c.dataset.drawMs);
            if (!isNaN(d)) draw.push(d);
            if (now - started < runMs) { requestAnimationFrame(tick); }
            else {
                const count = document.getElementById('packet-count');
                observer.disconnect();
                const held = { frames, draw, long,
                    arrows: parseInt(c.dataset.shown || '0'),
                    rows: parseInt(count ? count.dataset.total : '0'),
                    passed: parseInt(c.dataset.passed || '0') };
                // The whole run in view: how many datagrams it shows as arrows, and
                // as the server's counts where the page was spared them (read once
                // the counts have come and stayed the same for half a second).
                document.getElementById('tl-fit').click();
                let seen = null, same = 0, polls = 0;
                const poll = () => {
                    const now = c.dataset.drawn + ',' + c.dataset.counted + ',' + c.dataset.serverSent;
                    same = now === seen ? same + 1 : 0;
                    seen = now;
                    polls += 1;
                    if (same >= 5 || polls > 100) {
                        done(Object.assign(held, {
                            drawn: parseInt(c.dataset.drawn || '0'),
                            counted: parseInt(c.dataset.counted || '0'),
                            serverSent: parseInt(c.dataset.serverSent || '0') }));
                    } else { setTimeout(poll, 100); }
                };
                setTimeout(poll, 100);
            }
        };
        requestAnimationFrame(tick);
    "#;
    let (process, machine) = (Usage::of(std::process::id()), machine_ticks());
    let started = std::time::Instant::now();
    let out = browser
        .client()
        .execute_async(script, vec![run_ms.into()])
        .await
        .expect("the live run");
    // Over the run and the wait for the whole run's counts after it.
    let wall_ns = started.elapsed().as_nanos() as f64;
    let process = Usage::of(std::process::id()).since(process).cpu_ns as f64 / wall_ns;
    let (busy, all) = machine_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine = (busy - machine.0) as f64 / (all - machine.1).max(1) as f64 * cores;
    let long: Vec<f64> = out["long"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    Live {
        sent: datagrams,
        arrows: out["arrows"].as_u64().unwrap_or(0),
        rows: out["rows"].as_u64().unwrap_or(0),
        passed: out["passed"].as_u64().unwrap_or(0),
        drawn: out["drawn"].as_u64().unwrap_or(0),
        counted: out["counted"].as_u64().unwrap_or(0),
        server_sent: out["serverSent"].as_u64().unwrap_or(0),
        frames: spread_of_ms(&out, "frames"),
        draw: spread_of_ms(&out, "draw"),
        long_tasks: (
            long.len() as u64,
            long.iter().sum(),
            long.iter().copied().fold(0.0, f64::max),
        ),
        cores: (process, machine),
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
            crate::target_dir()
                .join("release/socklab")
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

    /// The CPU time and context switches its threads have used so far.
    pub fn usage(&self) -> Usage {
        Usage::of(self.pid())
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

/// CPU time and context switches of a process, summed over its threads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Time on a CPU, nanoseconds (`/proc/PID/task/*/schedstat`).
    pub cpu_ns: u64,
    /// Voluntary and involuntary context switches (`/proc/PID/task/*/status`).
    pub switches: u64,
}

impl Usage {
    /// Reads it for process `pid`; threads that end while it reads count as nothing.
    pub fn of(pid: u32) -> Usage {
        let mut usage = Usage::default();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return usage;
        };
        for task in tasks.flatten() {
            let dir = task.path();
            if let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) {
                usage.cpu_ns += stat
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
                usage.switches += status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>();
            }
        }
        usage
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            switches: self.switches.saturating_sub(earlier.switches),
        }
    }
}

/// A figure measured in several runs: the median, with the smallest and largest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Median {
    /// The middle run (the upper middle for an even count).
    pub median: f64,
    /// The smallest run.
    pub min: f64,
    /// The largest run.
    pub max: f64,
}

impl Median {
    /// Summarises runs (NaN for none).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Median {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Median {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        Median {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    /// `median (min..max)` with `decimals` digits after the point.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}..{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }

    /// `{"median":…,"min":…,"max":…}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

/// Percentiles over several runs: the median of each run's p50, p99 and max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spreads {
    /// Samples per run (the smallest run).
    pub count: usize,
    /// Each run's median.
    pub p50_us: Median,
    /// Each run's 99th percentile.
    pub p99_us: Median,
    /// Each run's largest.
    pub max_us: Median,
}

impl Spreads {
    /// Summarises the runs' spreads.
    pub fn of(runs: &[Spread]) -> Spreads {
        Spreads {
            count: runs.iter().map(|s| s.count).min().unwrap_or(0),
            p50_us: Median::of(runs.iter().map(|s| s.p50_us)),
            p99_us: Median::of(runs.iter().map(|s| s.p99_us)),
            max_us: Median::of(runs.iter().map(|s| s.max_us)),
        }
    }

    /// `p50 … p99 … max …` in milliseconds, each as a median (min..max).
    pub fn show_ms(&self) -> String {
        let ms = |m: &Median| {
            Median {
                median: m.median / 1e3,
                min: m.min / 1e3,
                max: m.max / 1e3,
            }
            .show(3)
        };
        format!(
            "p50 {}  p99 {}  max {} ms",
            ms(&self.p50_us),
            ms(&self.p99_us),
            ms(&self.max_us)
        )
    }

    /// `p50 … p99 … max …` in microseconds, each as a median (min..max).
    pub fn show_us(&self) -> String {
        format!(
            "p50 {}  p99 {}  max {} us",
            self.p50_us.show(1),
            self.p99_us.show(1),
            self.max_us.show(1)
        )
    }

    /// The spreads as JSON, in microseconds.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "samples": self.count,
            "p50_us": self.p50_us.json(),
            "p99_us": self.p99_us.json(),
            "max_us": self.max_us.json(),
        })
    }
}

/// A benchmark's figures as JSON: each row is added as it is measured, and the whole is
/// written to target/bench/NAME.json with the machine it ran on.
#[derive(Debug)]
pub struct Report {
    name: &'static str,
    smoke: bool,
    rows: Vec<serde_json::Value>,
}

impl Report {
    /// An empty report for the benchmark `name`.
    pub fn new(name: &'static str, smoke: bool) -> Report {
        Report {
            name,
            smoke,
            rows: Vec::new(),
        }
    }

    /// Adds one row of figures.
    pub fn add(&mut self, row: serde_json::Value) {
        self.rows.push(row);
    }

    /// Writes the report and says where.
    pub fn write(self) {
        let dir = crate::target_dir().join("bench");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}.json", self.name));
        let unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let report = serde_json::json!({
            "bench": self.name,
            "smoke": self.smoke,
            "unix_time_s": unix_s,
            "machine": machine(),
            "rows": self.rows,
        });
        match std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        ) {
            Ok(()) => println!("figures written to {}", path.display()),
            Err(e) => println!("cannot write {}: {e}", path.display()),
        }
    }
}

/// What the figures were measured on: cores, CPU model, kernel.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .ok();
    serde_json::json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "kernel": kernel,
    })
}

/// How many datagrams the kernel has dropped at the UDP socket bound to `local` (on this
/// machine's network namespace) because its receive buffer was full: the `drops` column
/// of /proc/net/udp (or udp6). None when the socket is not found.
pub fn udp_drops(local: std::net::SocketAddr) -> Option<u64> {
    let (file, want) = match local {
        std::net::SocketAddr::V4(a) => (
            "/proc/net/udp",
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(a.ip().octets()),
                a.port()
            ),
        ),
        std::net::SocketAddr::V6(a) => {
            // Four 32-bit words, each in host (little-endian) order.
            let o = a.ip().octets();
            let words: String = o
                .chunks(4)
                .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
                .collect();
            ("/proc/net/udp6", format!("{words}:{:04X}", a.port()))
        }
    };
    let table = std::fs::read_to_string(file).ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&want.as_str()))
            .then(|| fields.last()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_drops_are_read_from_the_socket_counters() {
        // A receiver with the smallest buffer that never reads: most of a burst of
        // 2,000 datagrams must be dropped, and what it then reads plus the drops is
        // everything sent.
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        socket.set_recv_buffer_size(1).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        let receiver: UdpSocket = socket.into();
        let local = receiver.local_addr().unwrap();
        assert_eq!(udp_drops(local), Some(0));
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..2_000 {
            sender.send_to(&[0u8; 64], local).unwrap();
        }
        receiver.set_nonblocking(true).unwrap();
        let mut read = 0u64;
        while receiver.recv_from(&mut [0u8; 64]).is_ok() {
            read += 1;
        }
        let drops = udp_drops(local).expect("the socket is listed");
        assert!(drops > 1_000, "drops {drops}");
        assert_eq!(read + drops, 2_000);
        assert_eq!(udp_drops("127.0.0.1:1".parse().unwrap()), None);
    }

    #[test]
    fn usage_counts_this_process_cpu_time() {
        // This thread's own figures, from /proc/thread-self: the process's sum must
        // include them. (Comparing two sums of the whole process failed when another
        // test's thread ended in between and took its CPU time out of the sum.)
        let this_thread = || {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
            let cpu: u64 = stat.split_whitespace().next().unwrap().parse().unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            let switches: u64 = status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            Usage {
                cpu_ns: cpu,
                switches,
            }
        };
        // Work until this thread has used 10 ms of CPU (on a busy machine that takes
        // longer than 10 ms), then sleep once: a context switch.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut x = 0u64;
        while this_thread().cpu_ns < 10_000_000 && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
        let mine = this_thread();
        let all = Usage::of(std::process::id());
        assert!(mine.cpu_ns >= 10_000_000, "{mine:?}");
        assert!(mine.switches >= 1, "{mine:?}");
        assert!(
            all.cpu_ns >= mine.cpu_ns && all.switches >= mine.switches,
            "the process's {all:?} includes this thread's {mine:?}"
        );
        assert_eq!(Usage::of(u32::MAX), Usage::default());
    }

    #[test]
    fn medians_take_the_middle_run() {
        let m = Median::of([3.0, 1.0, 2.0]);
        assert_eq!((m.median, m.min, m.max), (2.0, 1.0, 3.0));
        assert_eq!(m.show(1), "2.0 (1.0..3.0)");
        assert!(Median::of([]).median.is_nan());
    }
}
