//! End to end: the real page from the real server in a real headless Chromium. The
//! server runs on two worker threads, as the `socklab` binary does (on the test's own
//! single thread a link would wait for the page's traffic to be served, and the
//! screenshots would show it), except where a test needs the server unable to read.
//!
//! (Over 600 lines: each test drives one whole path through the page; a browser is
//! costly to start, so they share the helpers at the top and run three at a time.)

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use socklab_server::Config;
use socklab_tests::browser::Browser;
use socklab_tests::{TestServer, in_temp_store, web_dir};

/// Runs a scenario against a fresh server and browser; whatever happens in it, the
/// browser and the server are closed.
async fn with_browser<F, Fut>(scenario: F)
where
    F: FnOnce(String, &'static Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    with_browser_and(Config::default(), scenario).await;
}

/// [`with_browser`] with a server configured as `config` says (its web folder and
/// token aside).
async fn with_browser_and<F, Fut>(config: Config, scenario: F)
where
    F: FnOnce(String, &'static Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // The page must carry the launch token from the URL to its WebSocket.
    let server = TestServer::with_config(Config {
        web_dir: Some(web_dir()),
        token: Some(TOKEN.into()),
        ..config
    })
    .await;
    // Leaked for the scenario's sake: one small struct per test process.
    let browser: &'static Browser = Box::leak(Box::new(Browser::start().await));
    let url = format!("{}?token={TOKEN}", server.url());
    let outcome = AssertUnwindSafe(scenario(url, browser))
        .catch_unwind()
        .await;
    browser.shutdown().await;
    server.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// [`with_browser`] with a server that keeps recordings (in a directory of its own,
/// removed afterwards).
async fn with_browser_and_store<F, Fut>(scenario: F)
where
    F: FnOnce(String, &'static Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_dir, config) = in_temp_store(Config::default());
    with_browser_and(config, scenario).await;
}

/// The launch token of the servers these tests start.
const TOKEN: &str = "e2e-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_comes_back_to_the_same_session() {
    with_browser(|url, browser| async move { reload(&url, browser).await }).await;
}

async fn reload(url: &str, browser: &Browser) {
    browser.open(url).await;
    let session = browser
        .wait_text(".session", |t| t.starts_with("session "))
        .await;
    // Once stored, the token leaves the address bar (bookmarks, screenshots, a
    // projected screen).
    let shown = browser
        .client()
        .current_url()
        .await
        .expect("the page's URL");
    assert!(!shown.as_str().contains("token"), "{shown}");
    let (first, second) = bind_two(browser).await;
    browser.fill("#send-to", &second).await;
    browser.click("#send-button").await;
    browser.click("#tab-packets").await;
    browser.wait_count("tr.packet-row", 2).await;

    // Reload without the token in the address: the tab remembers it and its session.
    let bare = url.split('?').next().unwrap().to_string();
    browser
        .client()
        .goto(&bare)
        .await
        .expect("the page reloads");
    browser
        .wait_text("#conn-status", |t| t == "connected")
        .await;
    browser.wait_text(".session", |t| t == session).await;
    let rows = browser.wait_count(".socket-row", 2).await;
    let mut addrs = Vec::new();
    for row in rows {
        addrs.push(
            row.find(fantoccini::Locator::Css("code.addr"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        addrs,
        [first, second],
        "the same sockets, replayed from the session's log"
    );
    browser.click("#tab-packets").await;
    browser.wait_count("tr.packet-row", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_send_and_see_both_rows_then_an_error() {
    with_browser(|url, browser| async move { walking_skeleton(&url, browser).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_link_shows_why_datagrams_never_arrived() {
    with_browser(|url, browser| async move { lossy_link(&url, browser).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_outside_programs_through_a_link_get_a_flow_arrows_and_the_links_account() {
    with_browser(|url, browser| async move { outside_programs(&url, browser).await }).await;
}

/// A learner's Python sender and receiver, neither a lab socket, talking through a
/// lossy link made in the page: the page shows their flow from the link's account.
async fn outside_programs(url: &str, browser: &Browser) {
    use socklab_tests::python::{PythonReceiver, send_numbered};
    const N: u64 = 60;
    let receiver = PythonReceiver::start(N);
    browser.open(url).await;
    browser
        .fill("#link-target", &receiver.addr.to_string())
        .await;
    browser.click("#link-create").await;
    let cards = browser.wait_count(".link-card", 1).await;
    let listen: std::net::SocketAddr = cards[0]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    browser.click(".link-card button.small").await;
    browser
        .click("#l1-c2t-imp-loss-model option[value='random']")
        .await;
    browser.fill("#l1-c2t-imp-loss", "30").await;
    browser.fill("#l1-c2t-imp-delay", "20").await;
    browser.click(".link-apply").await;
    browser
        .wait_text(".link-card p.hint", |t| t.contains("30 % loss"))
        .await;
    send_numbered(listen, N, 200.0).await;
    let counted = receiver.counted().await;

    // One flow row, from the link's account, agreeing with the receiver's own count.
    let row = "tr.flow-row[data-method='link']";
    browser
        .wait_text(&format!("{row} td.sent"), |t| t == N.to_string())
        .await;
    browser
        .wait_text(&format!("{row} td.in-flight"), |t| t == "0")
        .await;
    let lost = browser
        .wait_text(&format!("{row} td.lost"), |t| !t.is_empty())
        .await;
    assert!(
        lost.starts_with(&format!("{} ", counted.missing)),
        "the page says {lost} lost; the receiver missed {}",
        counted.missing
    );
    browser
        .wait_text("#flow-table tr.link-drops", |t| {
            t.starts_with("dropped by link l1: random loss")
        })
        .await;
    // Their arrows: one per datagram, the dropped ones ending at the link.
    browser
        .wait_text("#timeline-legend", |t| {
            t.contains(&format!("✕ lost ({})", counted.missing))
        })
        .await;
    browser.click("#tl-follow").await;
    // The flow's statistics: its loss in bursts adds up to the loss, the plots have
    // values under the pointer, and the link's own history is drawn.
    browser.click(row).await;
    browser
        .wait_attr("#loss-bursts", "data-lost", |n| {
            n == counted.missing.to_string()
        })
        .await;
    browser
        .client()
        .execute(
            "const c = document.getElementById('latency-plot'); const r = c.getBoundingClientRect();
             c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width / 2, clientY: r.top + 20, bubbles: true}));",
            vec![],
        )
        .await
        .expect("point at the latency plot");
    browser
        .wait_text("#latency-hover", |t| t.starts_with("sent at "))
        .await;
    browser.wait_count("#l1-history", 1).await;
    browser.wait_count("#latency-cdf", 1).await;
    browser.scroll_to("#latency-cdf").await;
    let shot = browser.screenshot("e2e-outside-programs.png").await;
    eprintln!("screenshot: {}", shot.display());

    // The packet list gives each decision its plan and its outcome.
    browser.click("#tab-packets").await;
    browser
        .wait_text("tr.packet-row[data-fate='forwarded']", |t| {
            t.contains("planned +20.0 ms; left after ")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_match_field_pairs_out_of_order_acks_and_the_inspector_says_so() {
    with_browser(|url, browser| async move { match_field(&url, browser).await }).await;
}

/// A numbered protocol whose server acks two requests at a time, the second first:
/// with the number's place named in the Flows tab, each ack answers its own request.
async fn match_field(url: &str, browser: &Browser) {
    let acker = socklab_tests::python::PythonEcho::start_acking("127.0.0.1");
    browser.open(url).await;
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 1).await;
    browser
        .wait_text("#match-now", |t| t.starts_with("now: none"))
        .await;
    browser.fill("#match-offset", "4").await;
    browser.fill("#match-len", "4").await;
    browser.click("#match-set").await;
    browser
        .wait_text("#match-now", |t| t.starts_with("now: bytes 4–7"))
        .await;
    browser.fill("#send-to", &acker.addr.to_string()).await;
    browser.fill("#send-payload", "REQ:000{n} please").await;
    browser.fill("#send-count", "2").await;
    browser.click("#send-button").await;
    let row = "tr.flow-row[data-method='echo']";
    browser
        .wait_text(&format!("{row} td.received"), |t| t == "2")
        .await;
    browser
        .wait_text(&format!("{row} td.lost"), |t| t.starts_with("0 "))
        .await;
    browser.click("#tab-packets").await;
    browser.click("tr.packet-row[data-dir='out']").await;
    browser
        .wait_text("#inspector-fate", |t| {
            t.contains("answered after") && t.contains("the match field (Flows tab) is equal")
        })
        .await;
    let shot = browser.screenshot("e2e-match-field.png").await;
    eprintln!("screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_ticks_each_step_as_the_learner_talks_to_their_own_program() {
    with_browser(|url, browser| async move { lesson(&url, browser).await }).await;
}

/// The first lesson, with a Python echo server as the learner's program: each step is
/// ticked when the session shows it (never by a click on "done"), and then says what
/// was seen, with the learner's own round trip. Then the next lesson, with a program
/// that sends first and gets the learner's answer.
async fn lesson(url: &str, browser: &Browser) {
    let echo = socklab_tests::python::PythonEcho::start("127.0.0.1");
    browser.open(url).await;
    browser.click("#lessons-toggle").await;
    let step = lesson_step;
    browser.wait_count("#lesson-steps li", 3).await;
    for n in 1..=3 {
        browser
            .wait_attr(&step(n), "data-done", |d| d == "false")
            .await;
    }
    // "show me" brings the form the step is done with into view, marked.
    browser
        .click(&format!("{} button.lesson-look", step(1)))
        .await;
    browser
        .wait_attr("#bind-button", "data-look", |_| true)
        .await;
    let shot = browser.screenshot("e2e-lesson-show-me.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser.click("#bind-button").await;
    browser
        .wait_attr(&step(1), "data-done", |d| d == "true")
        .await;
    // The next step shows how, with the program to run.
    browser
        .wait_text(&format!("{} pre.code", step(2)), |t| {
            t.contains("recvfrom") && t.contains("sendto")
        })
        .await;
    browser.fill("#send-to", &echo.addr.to_string()).await;
    browser.fill("#send-payload", "hello").await;
    browser.click("#send-button").await;
    browser
        .wait_attr(&step(2), "data-done", |d| d == "true")
        .await;
    browser
        .wait_attr(&step(3), "data-done", |d| d == "true")
        .await;
    let saw = browser
        .wait_text(&format!("{} p.saw", step(3)), |t| {
            t.contains("round trip took")
        })
        .await;
    assert!(saw.contains(" ms"), "{saw}");
    browser
        .wait_text("#lesson-choice option[value='echo']", |t| {
            t.starts_with("✓ 1. ")
        })
        .await;
    browser.scroll_to("#lessons").await;
    let shot = browser.screenshot("e2e-lessons.png").await;
    eprintln!("screenshot: {}", shot.display());
    // On to the next lesson: the socket bound already counts; the program that sends
    // first is still to run, and the step shows it.
    browser.click("#lesson-next").await;
    browser
        .wait_text(&format!("{} strong", step(2)), |t| {
            t.contains("Run a client that sends to it")
        })
        .await;
    browser
        .wait_attr(&step(1), "data-done", |d| d == "true")
        .await;
    browser
        .wait_attr(&step(2), "data-done", |d| d == "false")
        .await;
    browser
        .wait_text(&format!("{} pre.code", step(2)), |t| t.contains("9001"))
        .await;
    // A program outside sends first (here a plain socket of the test's, as client.py
    // would), and the learner answers it with the send form.
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(socklab_tests::WAIT)).unwrap();
    let lab: std::net::SocketAddr = browser
        .wait_text(".socket-row[data-socket='s1'] code.addr", |t| !t.is_empty())
        .await
        .parse()
        .unwrap();
    client.send_to(b"hello from python", lab).unwrap();
    browser
        .wait_attr(&step(2), "data-done", |d| d == "true")
        .await;
    let from = client.local_addr().unwrap().to_string();
    browser
        .wait_text(&format!("{} p.saw", step(2)), |t| t.contains(&from))
        .await;
    browser.fill("#send-to", &from).await;
    browser.fill("#send-payload", "hello, client").await;
    browser.click("#send-button").await;
    browser
        .wait_attr(&step(3), "data-done", |d| d == "true")
        .await;
    let mut answer = [0u8; 64];
    let (n, _) = client.recv_from(&mut answer).unwrap();
    assert_eq!(&answer[..n], b"hello, client");
    // Started over: what was sent before no longer counts; the socket still does.
    browser.click("#lesson-start-over").await;
    browser
        .wait_attr(&step(3), "data-done", |d| d == "false")
        .await;
    browser
        .wait_attr(&step(2), "data-done", |d| d == "false")
        .await;
    browser
        .wait_attr(&step(1), "data-done", |d| d == "true")
        .await;
    // The page opened again keeps the lesson the learner was on.
    browser.open(url).await;
    browser
        .wait_text(&format!("{} strong", step(2)), |t| {
            t.contains("Run a client that sends to it")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lesson_on_a_slow_reader_ends_with_what_the_kernel_dropped() {
    with_browser(|url, browser| async move { slow_reader_lesson(&url, browser).await }).await;
}

/// The lesson on a slow reader, done as a learner would: a socket with a tiny buffer,
/// paused, sent 200 datagrams by the generator, resumed; the last step says how many the
/// kernel dropped, as the socket's row does.
async fn slow_reader_lesson(url: &str, browser: &Browser) {
    browser.open(url).await;
    browser.click("#lessons-toggle").await;
    browser.click("#lesson-choice option[value='buffer']").await;
    let step = lesson_step;
    browser.wait_count("#lesson-steps li", 4).await;
    browser.fill("#bind-rcvbuf", "4k").await;
    browser.click("#bind-button").await;
    browser
        .wait_attr(&step(1), "data-done", |d| d == "true")
        .await;
    let rows = browser.wait_count(".socket-row", 1).await;
    let addr = rows[0]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    browser.click("#pause-s1").await;
    browser
        .wait_attr(&step(2), "data-done", |d| d == "true")
        .await;
    // The generator sends from the socket itself to its own address.
    browser.fill("#gen-to", &addr).await;
    browser.fill("#gen-count", "200").await;
    browser.fill("#gen-rate", "20000").await;
    browser.click("#gen-start").await;
    browser
        .wait_attr(&step(3), "data-done", |d| d == "true")
        .await;
    browser
        .wait_text(&format!("{} p.hint", step(4)), |t| t.contains("resume"))
        .await;
    browser.click("#pause-s1").await;
    let saw = browser
        .wait_text(&format!("{} p.saw", step(4)), |t| {
            t.contains("dropped the rest")
        })
        .await;
    let shown = browser
        .wait_text(".socket-row .kernel-drops", |t| {
            t.starts_with("kernel dropped ")
        })
        .await;
    eprintln!("{saw} / {shown}");
    let dropped: u64 = shown
        .trim_start_matches("kernel dropped ")
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the row's count");
    assert!(
        saw.contains(&format!(": {dropped} datagram(s)")),
        "the lesson says the socket's own count: {saw} / {shown}"
    );
}

/// A lesson's step `n` (from 1), as a CSS selector.
fn lesson_step(n: usize) -> String {
    format!("#lesson-steps li:nth-child({n})")
}

/// Opens the Learn card on lesson `id`, waits until its last step (`steps`) says what
/// was seen (`saw` checks the words) and the lesson is ticked in the choice, and folds
/// the card again.
async fn lesson_saw(browser: &Browser, id: &str, steps: usize, saw: impl Fn(&str) -> bool) {
    let choice = format!("#lesson-choice option[value='{id}']");
    browser.click("#lessons-toggle").await;
    browser.click(&choice).await;
    browser
        .wait_text(&format!("{} p.saw", lesson_step(steps)), saw)
        .await;
    browser.wait_text(&choice, |t| t.starts_with("✓ ")).await;
    browser.click("#lessons-toggle").await;
}

async fn bind_two(browser: &Browser) -> (String, String) {
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 1).await;
    browser.click("#bind-button").await;
    let rows = browser.wait_count(".socket-row", 2).await;
    let mut addrs = Vec::new();
    for row in rows {
        addrs.push(
            row.find(fantoccini::Locator::Css("code.addr"))
                .await
                .expect("the socket's address")
                .text()
                .await
                .unwrap(),
        );
    }
    (addrs[0].clone(), addrs[1].clone())
}

async fn lossy_link(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, second) = bind_two(browser).await;

    // A link in front of s2, made lossy through its settings form.
    browser.fill("#link-target", &second).await;
    browser.click("#link-create").await;
    let cards = browser.wait_count(".link-card", 1).await;
    let listen = cards[0]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    browser.click(".link-card button.small").await;
    browser
        .click("#l1-c2t-imp-loss-model option[value='random']")
        .await;
    browser.fill("#l1-c2t-imp-loss", "50").await;
    browser.click(".link-apply").await;
    browser
        .wait_text(".link-card p.hint", |t| {
            t.contains("client→target: 50 % loss")
        })
        .await;

    // A burst of 40 numbered datagrams to the link.
    browser.click("#tab-packets").await;
    browser.fill("#send-to", &listen).await;
    browser.fill("#send-payload", "n{n}").await;
    browser.fill("#send-count", "40").await;
    browser.click("#send-button").await;
    browser
        .wait_text(".counters tbody tr", |t| {
            t.starts_with("client → target 40 ")
        })
        .await;
    // Read in one go: the list may draw again between finding a row and reading it.
    let dropped = browser
        .client()
        .execute(
            "return [...document.querySelectorAll(\"tr.packet-row[data-fate='dropped']\")].map(r => r.innerText)",
            vec![],
        )
        .await
        .unwrap();
    let dropped: Vec<&str> = dropped
        .as_array()
        .expect("the rows' texts")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        !dropped.is_empty(),
        "50 % loss over 40 datagrams drops some"
    );
    for text in &dropped {
        assert!(text.contains("dropped: random loss"), "{text}");
    }
    // The lesson on loss sees every one of its steps here, with the link's reason.
    lesson_saw(browser, "loss", 3, |t| {
        t.contains("the link dropped them (random loss)")
    })
    .await;
    // Every datagram is accounted for: 40 outs, 40 link decisions, and an in for each
    // forwarded one.
    let outs = browser
        .wait_count("tr.packet-row[data-dir='out']", 40)
        .await
        .len();
    let decisions = browser
        .wait_count("tr.packet-row[data-dir='link']", 40)
        .await
        .len();
    let ins = browser
        .wait_count("tr.packet-row[data-dir='in']", 40 - dropped.len())
        .await
        .len();
    assert_eq!((outs, decisions, ins + dropped.len()), (40, 40, 40));

    // The inspector names the link's decision.
    browser.click("#follow").await;
    browser
        .scroll_to("tr.packet-row[data-fate='dropped']")
        .await;
    browser.click("tr.packet-row[data-fate='dropped']").await;
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains("decision: dropped: random loss")
        })
        .await;
    // The forms column scrolls on its own: bring the link's card (settings folded) into
    // the picture.
    browser.click(".link-card button.small").await;
    browser.scroll_to(".link-card").await;
    let shot = browser.screenshot("e2e-lossy-link.png").await;
    eprintln!("screenshot: {}", shot.display());
}

async fn walking_skeleton(url: &str, browser: &Browser) {
    browser.open(url).await;

    // Bind two sockets through the form (port 0: any free port).
    let (first_addr, second_addr) = bind_two(browser).await;
    assert!(second_addr.starts_with("127.0.0.1:"), "{second_addr}");

    // Send "hello" from s1 to s2: the out row and the in row appear.
    browser.click("#tab-packets").await;
    browser.fill("#send-to", &second_addr).await;
    browser.fill("#send-payload", "hello").await;
    browser.click("#send-button").await;
    let rows = browser.wait_count("tr.packet-row", 2).await;
    assert_eq!(
        rows[0].attr("data-dir").await.unwrap().as_deref(),
        Some("out")
    );
    assert_eq!(
        rows[1].attr("data-dir").await.unwrap().as_deref(),
        Some("in")
    );
    let in_row = rows[1].text().await.unwrap();
    assert!(
        in_row.contains("s2 s1") && in_row.contains("\"hello\""),
        "rows name endpoints by their short names: {in_row}"
    );
    let peer = rows[1]
        .find(fantoccini::Locator::Css("td:nth-child(5)"))
        .await
        .unwrap();
    assert_eq!(
        peer.attr("title").await.unwrap().as_deref(),
        Some(first_addr.as_str()),
        "with the full address on hover"
    );

    // Selecting a row shows the payload as hex and ASCII.
    rows[1].click().await.unwrap();
    let dump = browser.wait_text("#hexdump", |t| !t.is_empty()).await;
    assert!(
        dump.contains("68 65 6c 6c 6f") && dump.contains("|hello|"),
        "{dump}"
    );

    // Switching to hex converts the text instead of reading it as bad hex.
    browser.click("#notation-hex").await;
    let typed = browser
        .client()
        .execute(
            "return document.querySelector('#send-payload').value",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(typed, serde_json::json!("68 65 6c 6c 6f"));

    // A payload error is shown next to the field before anything is sent.
    browser.fill("#send-payload", "abc").await;
    browser
        .wait_text("#payload-error", |t| t.contains("odd number of digits"))
        .await;
    browser.fill("#send-payload", "de ad be ef").await;

    // A refused bind shows the server's plain-language error...
    browser
        .fill("#bind-port", first_addr.rsplit(':').next().unwrap())
        .await;
    browser.click("#bind-button").await;
    let refusal = browser
        .wait_text("#bind-error", |t| t.contains("already in use"))
        .await;
    assert!(
        !refusal.contains("address_in_use"),
        "words, not codes: {refusal}"
    );
    // It goes away once the form changes: it spoke of the port that was there.
    browser.fill("#bind-port", "0").await;
    browser.wait_count("#bind-error", 0).await;

    // ...and the page keeps working: the hex datagram goes through.
    browser.click("#send-button").await;
    let rows = browser.wait_count("tr.packet-row", 4).await;
    assert!(rows[3].text().await.unwrap().contains("de ad be ef"));
    let shot = browser.screenshot("e2e-walking-skeleton.png").await;
    eprintln!("screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_size_a_connect_and_a_refusal_show_on_the_page() {
    with_browser(|url, browser| async move { socket_options(&url, browser).await }).await;
}

async fn socket_options(url: &str, browser: &Browser) {
    browser.open(url).await;
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 1).await;
    // A read size out of range is explained next to the form.
    browser.fill("#bind-read-size", "0").await;
    browser.click("#bind-button").await;
    browser
        .wait_text("#bind-error", |t| t.contains("is not a read size"))
        .await;
    browser.fill("#bind-read-size", "4").await;
    browser.click("#bind-button").await;
    let rows = browser.wait_count(".socket-row", 2).await;
    let reader = rows[1]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    browser
        .wait_text(".socket-row[data-socket='s2'] .read-size", |t| {
            t == "reads 4 B"
        })
        .await;
    browser.click("#tab-packets").await;
    browser.fill("#send-to", &reader).await;
    browser.fill("#send-payload", "hello world").await;
    browser.click("#send-button").await;
    browser.wait_count("tr.packet-row", 2).await;
    let row = "tr.packet-row[data-dir='in']";
    browser
        .wait_text(&format!("{row} td.truncated"), |t| {
            t == "cut: 11 bytes sent, 4 read"
        })
        .await;
    browser.click(row).await;
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains("4 bytes · cut from 11 bytes") && t.contains("MSG_TRUNC")
        })
        .await;
    browser
        .wait_text("#inspector-fate", |t| t.contains("delivered"))
        .await;
    let dump = browser.wait_text("#hexdump", |t| !t.is_empty()).await;
    assert!(dump.contains("|hell|"), "{dump}");
    // The lesson on read sizes sees both of its steps here.
    lesson_saw(browser, "cut", 2, |t| {
        t.contains("had 11 bytes; the read returned 4")
    })
    .await;
    let shot = browser.screenshot("e2e-read-size.png").await;
    eprintln!("screenshot: {}", shot.display());

    // Where nobody listens, the ICMP error comes back as its own row, and the request
    // is refused at once.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    browser.fill("#send-to", &nobody.to_string()).await;
    browser.fill("#send-payload", "anyone?").await;
    browser.click("#send-button").await;
    let icmp = "tr.packet-row[data-dir='icmp']";
    browser
        .wait_text(&format!("{icmp} td.note"), |t| {
            t == "refused: port unreachable"
        })
        .await;
    browser.click(icmp).await;
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains("nothing listens on that port") && t.contains("Connection refused")
        })
        .await;
    // The send it answers: the newest `out` row.
    browser
        .client()
        .execute(
            "const rows = document.querySelectorAll(\"tr.packet-row[data-dir='out']\"); rows[rows.length - 1].click();",
            vec![],
        )
        .await
        .unwrap();
    browser
        .wait_text("#inspector-fate", |t| t.contains("refused: nobody listens"))
        .await;
    // The lesson on sending where nobody listens sees it here.
    lesson_saw(browser, "nobody", 2, |t| t.contains("ECONNREFUSED")).await;

    // Connect s1 to s2: the row says so, and a send may leave the address out.
    browser.fill("#send-to", &reader).await;
    browser.click("#send-connect").await;
    browser
        .wait_text(".socket-row[data-socket='s1'] .peer", |t| {
            t == "connected to s2"
        })
        .await;
    browser.fill("#send-to", "").await;
    browser.fill("#send-payload", "to my peer").await;
    browser.click("#send-button").await;
    browser
        .wait_text("tr.packet-row[data-dir='in']:last-child", |t| {
            t.contains("\"to m")
        })
        .await;
    let shot = browser.screenshot("e2e-connect-refused.png").await;
    eprintln!("screenshot: {}", shot.display());

    // A socket bound with multicast offers to join groups; outside --allow-net the
    // server refuses, in words, next to the socket.
    browser.fill("#bind-read-size", "").await;
    browser.click("#bind-multicast").await;
    browser.click("#bind-button").await;
    browser.wait_count("#join-s3", 1).await;
    browser.fill("#join-s3", "239.1.2.3").await;
    browser.click("#join-button-s3").await;
    browser
        .wait_text("#close-error-s3", |t| t.contains("--allow-net"))
        .await;
    let shot = browser.screenshot("e2e-multicast-join.png").await;
    eprintln!("screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_three_messages_are_three_datagrams_over_udp_and_one_read_over_tcp() {
    with_browser(|url, browser| async move { udp_and_tcp(&url, browser).await }).await;
}

async fn udp_and_tcp(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, udp_to) = bind_two(browser).await;
    // A TCP listener, and a TCP socket (no Nagle) to connect from.
    browser.click("#bind-kind option[value='tcp-listen']").await;
    browser.click("#bind-button").await;
    browser
        .wait_text(".socket-row[data-socket='s3'] .peer", |t| t == "listening")
        .await;
    let listener = browser
        .wait_text(".socket-row[data-socket='s3'] code.addr", |t| !t.is_empty())
        .await;
    browser
        .click("#bind-kind option[value='tcp-connect']")
        .await;
    browser.click("#bind-nodelay").await;
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 4).await;
    browser.click("#send-from option[value='s4']").await;
    browser.fill("#send-to", &listener).await;
    browser.click("#send-connect").await;
    browser
        .wait_text(".socket-row[data-socket='s3.1'] .peer", |t| {
            t == "accepted by s3"
        })
        .await;
    // Neither receiver reads while the messages arrive: first the UDP ones...
    browser.click("#pause-s2").await;
    browser.wait_count(".socket-row .kernel-drops", 1).await;
    browser.click("#tab-packets").await;
    browser.fill("#send-payload", "msg {n}").await;
    browser.fill("#send-count", "3").await;
    browser.click("#send-from option[value='s1']").await;
    browser.fill("#send-to", &udp_to).await;
    browser.click("#send-button").await;
    browser.wait_count("tr.packet-row[data-dir='out']", 3).await;
    browser.click("#pause-s2").await;
    browser.wait_count("tr.packet-row[data-dir='in']", 3).await;
    browser.wait_count(".socket-row .kernel-drops", 0).await;
    // ...then the same over TCP.
    browser.click("[id='pause-s3.1']").await;
    browser.wait_count(".socket-row .kernel-drops", 1).await;
    browser.click("#send-from option[value='s4']").await;
    browser.click("#send-button").await;
    browser
        .wait_count("tr.packet-row[data-dir='write']", 3)
        .await;
    browser.click("[id='pause-s3.1']").await;
    let reads = browser
        .wait_count("tr.packet-row[data-dir='read']", 1)
        .await;
    let read = reads[0].text().await.unwrap();
    assert!(read.contains("\"msg 1msg 2msg 3\""), "{read}");
    // The lesson on TCP's missing boundaries sees every one of its steps here.
    lesson_saw(browser, "stream", 4, |t| {
        t.contains("the bytes of 3 writes")
    })
    .await;
    reads[0].click().await.unwrap();
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains("3 write(s) in this one read")
        })
        .await;
    let shot = browser.screenshot("e2e-udp-and-tcp.png").await;
    eprintln!("screenshot: {}", shot.display());
    // On the timeline the three writes end together, at the one read.
    browser.click("#inspector-close").await;
    browser.click("#tab-timeline").await;
    browser.click("#tl-zoom-out").await;
    let shot = browser.screenshot("e2e-udp-and-tcp-timeline.png").await;
    eprintln!("screenshot: {}", shot.display());

    // A TCP link in front of the listener cuts what a client sends into 3-byte pieces
    // 20 ms apart: the listener's new connection reads pieces.
    browser.fill("#tcp-link-target", &listener).await;
    browser.fill("#tcp-link-latency", "50").await;
    browser.fill("#tcp-link-slice", "3").await;
    browser.fill("#tcp-link-slice-delay", "20").await;
    browser.click("#tcp-link-create").await;
    let link = browser
        .wait_text("#tcp-link-list li code.addr", |t| t.contains(" → "))
        .await;
    let link_listen = link.split(" → ").next().unwrap().to_string();
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row[data-socket='s5']", 1).await;
    browser.click("#send-from option[value='s5']").await;
    browser.fill("#send-to", &link_listen).await;
    browser.click("#send-connect").await;
    browser
        .wait_text(".socket-row[data-socket='s3.2'] .peer", |t| {
            t == "accepted by s3"
        })
        .await;
    browser.fill("#send-payload", "hello world").await;
    browser.fill("#send-count", "1").await;
    browser.click("#send-button").await;
    browser.click("#tab-packets").await;
    // Every row of the link's decisions and of s3.2's reads, until the pieces are in.
    let mut seen = (false, 0);
    for _ in 0..100 {
        let found = browser
            .client()
            .execute(
                "const rows = [...document.querySelectorAll('tr.packet-row')]; return [rows.some(r => r.dataset.dir === 'tcp-link' && r.textContent.includes('written in 4 pieces')), rows.filter(r => r.dataset.dir === 'read' && r.textContent.includes('s3.2')).length]",
                vec![],
            )
            .await
            .unwrap();
        seen = (
            found[0].as_bool().unwrap_or(false),
            found[1].as_u64().unwrap_or(0),
        );
        if seen.0 && seen.1 >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let shot = browser.screenshot("e2e-tcp-link.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser
        .client()
        .execute(
            "document.getElementById('tcp-links-title').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    let shot = browser.screenshot("e2e-tcp-link-panel.png").await;
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(
        seen,
        (true, 4),
        "the link's decision names 4 pieces, and s3.2 reads them apart"
    );
}

/// The learner's Python AF_UNIX echo server, and the page's own Unix sockets: bound by
/// name, sent to by name, the echo shown as the reply, the inspector saying what a
/// Unix datagram is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_talks_to_a_python_program_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let echo = socklab_tests::python::PythonUnixEcho::start(
        &dir.path().join("echo.sock").to_string_lossy(),
    );
    let config = Config {
        unix_dir: Some(dir.path().join("run")),
        allow_unix: vec![dir.path().to_path_buf()],
        ..Config::default()
    };
    let to = echo.endpoint.clone();
    with_browser_and(config, |url, browser| async move {
        unix_sockets(&url, browser, &to).await
    })
    .await;
}

async fn unix_sockets(url: &str, browser: &Browser, echo: &str) {
    browser.open(url).await;
    browser.click("#bind-kind option[value='unix']").await;
    browser
        .wait_text("#unix-hint", |t| t.contains("never lost"))
        .await;
    browser.fill("#bind-unix-name", "alice").await;
    browser.click("#bind-button").await;
    let alice = browser
        .wait_text(".socket-row[data-socket='s1'] code.addr", |t| {
            t.ends_with("/alice")
        })
        .await;
    assert!(alice.starts_with("unix:/"), "{alice}");
    browser
        .wait_text(".socket-row[data-socket='s1'] .proto", |t| t == "Unix")
        .await;
    browser.fill("#bind-unix-name", "@bob").await;
    browser.click("#bind-button").await;
    browser
        .wait_text(".socket-row[data-socket='s2'] code.addr", |t| {
            t == "unix:@bob"
        })
        .await;
    // A UDP socket too: the chips of a Unix sender offer only Unix places.
    browser.click("#bind-kind option[value='udp']").await;
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 3).await;
    browser.click("#send-from option[value='s1']").await;
    let chips = browser.wait_count("#send-chips .chip", 1).await;
    let chip = chips[0].text().await.unwrap();
    assert!(
        chip.contains("unix:@bob"),
        "only bob is offered to alice: {chip}"
    );

    browser.click("#tab-packets").await;
    browser.fill("#send-to", echo).await;
    browser.fill("#send-payload", "hello from the page").await;
    browser.click("#send-button").await;
    browser.wait_count("tr.packet-row[data-dir='in']", 1).await;
    browser.click("#send-chips .chip").await;
    browser.fill("#send-payload", "hi bob").await;
    browser.click("#send-button").await;
    let ins = browser.wait_count("tr.packet-row[data-dir='in']", 2).await;
    let mut texts = Vec::new();
    for row in &ins {
        texts.push(row.text().await.unwrap());
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains("echo.sock") && t.contains("hello from the page")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("s1") && t.contains("hi bob")),
        "{texts:?}"
    );
    // The echo's row: the inspector says what it is, and that it answered.
    let echoed = ins
        .iter()
        .zip(&texts)
        .find(|(_, t)| t.contains("echo.sock"))
        .map(|(row, _)| row.clone())
        .unwrap();
    echoed.click().await.unwrap();
    browser
        .wait_text("#inspector .meta", |t| t.contains("a Unix datagram"))
        .await;
    let shot = browser.screenshot("e2e-unix.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser.click("#inspector-close").await;
    browser.click("#tab-timeline").await;
    // A lane for each end, named as the sockets are.
    browser
        .wait_text("#tl-lane", |t| {
            t.contains("/alice") && t.contains("echo.sock") && t.contains("unix:@bob")
        })
        .await;
    let shot = browser.screenshot("e2e-unix-timeline.png").await;
    eprintln!("screenshot: {}", shot.display());
}

/// The record button keeps the session in the server's store and says how much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_button_keeps_the_session() {
    with_browser_and_store(|url, browser| async move { record(&url, browser).await }).await;
}

async fn record(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, to) = bind_two(browser).await;
    browser.click("#record-button").await;
    browser
        .wait_text("#recording", |t| t.contains("recording"))
        .await;
    browser
        .wait_text("#record-button", |t| t.contains("stop"))
        .await;
    browser.click("#tab-packets").await;
    browser.fill("#send-to", &to).await;
    browser.fill("#send-payload", "kept {n}").await;
    browser.fill("#send-count", "3").await;
    browser.click("#send-button").await;
    browser.wait_count("tr.packet-row[data-dir='in']", 3).await;
    browser.click("#record-button").await;
    let said = browser
        .wait_text("#recorded", |t| t.contains("6 datagrams"))
        .await;
    assert!(said.contains("events"), "{said}");
    let shot = browser.screenshot("e2e-record.png").await;
    eprintln!("screenshot: {}", shot.display());
    // The recordings view lists it with its counts and files; it can be renamed and
    // deleted.
    browser.click("#tab-recordings").await;
    let row = browser
        .wait_text("#recordings-list tr.recording-row", |t| {
            t.contains("session ")
        })
        .await;
    assert!(row.contains("pcapng") && row.contains("fates.csv"), "{row}");
    browser
        .wait_text("#recordings-range", |t| t == "1–1 of 1")
        .await;
    let href = browser
        .wait_attr("#recordings-list .files a", "href", |h| {
            h.contains("capture.pcapng")
        })
        .await;
    assert!(
        href.contains("token="),
        "the file's link carries the token: {href}"
    );
    let sideways = browser
        .client()
        .execute(
            "const e = document.querySelector('.workspace-body'); return e.scrollWidth - e.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        sideways,
        serde_json::json!(0),
        "the list fits: nothing scrolls sideways"
    );
    browser.click("[id^='rename-button-']").await;
    browser
        .fill("[id^='rename-']:not([id^='rename-button'])", "my first run")
        .await;
    browser.click("#recordings-list form button").await;
    browser
        .wait_text("#recordings-list tr.recording-row", |t| {
            t.contains("my first run")
        })
        .await;
    // Its file, shared and imported back: a second row.
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let id = href
        .split("/api/recordings/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let (status, file) = socklab_tests::http(
        addr,
        "GET",
        &format!("/api/recordings/{id}/recording.socklab?token={TOKEN}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.socklab");
    std::fs::write(&path, file).unwrap();
    browser
        .client()
        .find(fantoccini::Locator::Css("#import-file"))
        .await
        .unwrap()
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
    browser
        .wait_text("#import-done", |t| {
            t.contains("shared.socklab: 6 datagrams imported")
        })
        .await;
    browser
        .wait_text("#recordings-range", |t| t == "1–2 of 2")
        .await;
    let shot = browser.screenshot("e2e-recordings.png").await;
    eprintln!("screenshot: {}", shot.display());
    // Opened: read-only, stepped through datagram by datagram, the inspector following.
    let open = format!("#open-{id}");
    browser.click(&open).await;
    browser
        .wait_text("#replay-name", |t| t.contains("my first run"))
        .await;
    browser
        .wait_text("#replay-cursor", |t| t.starts_with("datagram 0 of 6"))
        .await;
    for n in 1..=3 {
        browser.click("#replay-forward").await;
        browser
            .wait_text("#replay-cursor", |t| {
                t.starts_with(&format!("datagram {n} of 6"))
            })
            .await;
    }
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains("kept 2") || t.contains("sent") || t.contains("received")
        })
        .await;
    let shot = browser.screenshot("e2e-replay.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser.click("#tab-packets").await;
    browser
        .wait_count(
            "tr.packet-row[data-dir='out'], tr.packet-row[data-dir='in']",
            3,
        )
        .await;
    browser.click("#replay-back").await;
    browser
        .wait_text("#replay-cursor", |t| t.starts_with("datagram 2 of 6"))
        .await;
    browser
        .wait_count(
            "tr.packet-row[data-dir='out'], tr.packet-row[data-dir='in']",
            2,
        )
        .await;
    browser.click("#replay-close").await;
    browser.wait_count("#bind-button", 1).await;
    browser.click("#tab-recordings").await;
    // The tab reads its list afresh when it opens: wait for it before deleting.
    browser
        .wait_count("#recordings-list tr.recording-row", 2)
        .await;
    for left in [1, 0] {
        browser.click("[id^='delete-']").await;
        if left > 0 {
            browser
                .wait_text("#recordings-range", |t| t == "1–1 of 1")
                .await;
        }
    }
    browser
        .wait_text("#page-recordings", |t| t.contains("No recordings yet"))
        .await;
}

/// Two runs of the same traffic, one through a lossy link and one through a clean one
/// (recorded by a script's session), compared in the page: the datagrams whose fate
/// changed are listed with both fates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_compared_show_the_changed_fates() {
    with_browser_and_store(|url, browser| async move { compare(&url, browser).await }).await;
}

async fn compare(url: &str, browser: &Browser) {
    use socklab_protocol::Command;
    use socklab_protocol::link::LinkSettings;
    use socklab_tests::IpEndpoint as _;
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut client = socklab_tests::Client::connect_with(addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let link = client
        .link(
            "127.0.0.1:0",
            b.local.addr(),
            socklab_tests::lossy_link(40.0, 11),
        )
        .await;
    client.send(Command::SetLossTimeout { ms: 300 }).await;
    let to = link.listen.to_string();
    let (_, lost_first) = socklab_tests::record_run(&mut client, "lossy", &a, &to, 20, "n").await;
    client
        .send(Command::LinkUpdate {
            link: link.link.clone(),
            settings: LinkSettings::default(),
        })
        .await;
    socklab_tests::record_run(&mut client, "clean", &a, &to, 20, "n").await;
    assert!(lost_first > 0);

    browser.open(url).await;
    browser.click("#tab-recordings").await;
    browser
        .wait_count("#recordings-list tr.recording-row", 2)
        .await;
    browser.click("[id^='pick-']:not(:checked)").await;
    browser.click("[id^='pick-']:not(:checked)").await;
    browser.click("#compare-button").await;
    browser
        .wait_text("#comparison h3", |t| t.contains("“lossy” against “clean”"))
        .await;
    let changed = browser
        .wait_count("#comparison-changed tbody tr", lost_first)
        .await;
    let first = changed[0].text().await.unwrap();
    assert!(
        first.contains("lost (link: random_loss)") && first.contains("delivered"),
        "{first}"
    );
    browser.scroll_to("#comparison").await;
    let shot = browser.screenshot("e2e-compare.png").await;
    eprintln!("screenshot: {}", shot.display());
    // Run the lossy one again: a new recording, stopped from the top bar, listed.
    let lossy_id = browser
        .wait_attr(
            "#recordings-list tr.recording-row:last-child",
            "data-recording",
            |v| !v.is_empty(),
        )
        .await;
    let again = format!("#again-{lossy_id}");
    browser.scroll_to(&again).await;
    browser.click(&again).await;
    browser
        .wait_text("#recording", |t| t.contains("again: lossy"))
        .await;
    browser.wait_count(".socket-row", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    browser.click("#record-button").await;
    browser
        .wait_text("#recordings-list", |t| t.contains("again: lossy"))
        .await;
}

/// When the server's log drops events before the page has them (a tiny log, a fast
/// generator), the page says so once, with how many, and offers to record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_log_dropped_are_said_once_with_an_offer_to_record() {
    let (_dir, config) = in_temp_store(Config {
        log_max_events: 40,
        ..Config::default()
    });
    with_browser_and(
        config,
        |url, browser| async move { gaps(&url, browser).await },
    )
    .await;
}

async fn gaps(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, to) = bind_two(browser).await;
    browser.click("#gen-from option[value='s1']").await;
    browser.fill("#gen-to", &to).await;
    browser.fill("#gen-count", "5000").await;
    browser.fill("#gen-rate", "100000").await;
    browser.click("#gen-start").await;
    let said = browser
        .wait_text("#gaps", |t| t.contains("were dropped"))
        .await;
    assert!(said.contains("A recording keeps every event"), "{said}");
    assert_eq!(
        browser.wait_count("#gaps p", 1).await.len(),
        1,
        "one line, however many gaps"
    );
    let shot = browser.screenshot("e2e-gaps.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser.click("#gaps-record").await;
    browser
        .wait_text("#gaps", |t| {
            t.contains("The recording running keeps every event")
        })
        .await;
}

/// Where an arrow is drawn whole in the timeline's view (`x,y`): zoomed out a step at
/// a time (up to 15 times wider) while none is (on a loaded machine a datagram can take longer to arrive
/// than a zoomed-in view spans).
async fn an_arrow_in_view(browser: &Browser) -> String {
    for _ in 0..12 {
        for _ in 0..20 {
            let at = browser
                .client()
                .execute(
                    "return document.getElementById('timeline-canvas').dataset.arrowAt || ''",
                    vec![],
                )
                .await
                .unwrap();
            if let Some(at) = at.as_str().filter(|a| a.contains(',')) {
                return at.to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        browser.click("#tl-zoom-out").await;
    }
    let shot = browser.screenshot("e2e-no-arrow.png").await;
    let attrs = browser
        .client()
        .execute(
            "const d = document.getElementById('timeline-canvas').dataset; return JSON.stringify(d)",
            vec![],
        )
        .await
        .unwrap();
    panic!(
        "no arrow drawn whole in the timeline's view, zoomed out twelve times: {attrs}; screenshot {}",
        shot.display()
    );
}

/// Goes to the middle of the first stretch the page was not sent (or holds no page
/// of), and zooms in around it (to 40 ms or less, and on while the window holds too
/// many datagrams for the page to fetch them: a generator sends in bursts on a busy
/// machine) until their arrows come from the server. The middle, ns, and how many
/// arrows were fetched.
async fn zoom_into_thinned(browser: &Browser) -> (u64, String) {
    let at = browser
        .wait_attr("#timeline-canvas", "data-thinned-at", |_| true)
        .await;
    let (a, b) = at.split_once(',').unwrap();
    let middle = (a.parse::<u64>().unwrap() + b.parse::<u64>().unwrap()) / 2;
    browser.fill("#tl-goto", "").await;
    browser
        .press("#tl-goto", &format!("{:.3}\u{E007}", middle as f64 / 1e6))
        .await;
    for _ in 0..40 {
        let (from, to) = window(browser).await;
        let span = to - from;
        if span <= 40e6 {
            let mut drawn = false;
            // Up to 5 s for the counts, then the window, to come on a loaded machine.
            for _ in 0..50 {
                let detail = browser
                    .wait_attr("#timeline-canvas", "data-detail", |_| true)
                    .await;
                if detail != "0" {
                    drawn = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if drawn || span < 1e6 {
                break;
            }
        }
        browser.click("#tl-zoom-in").await;
        browser
            .wait_attr("#timeline-canvas", "data-window", |w| {
                let (a, b) = w.split_once(',').unwrap();
                b.parse::<f64>().unwrap() - a.parse::<f64>().unwrap() < span
            })
            .await;
    }
    for _ in 0..100 {
        let detail = browser
            .wait_attr("#timeline-canvas", "data-detail", |_| true)
            .await;
        if detail.parse::<u64>().is_ok_and(|n| n > 0) {
            return (middle, detail);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let shot = browser.screenshot("e2e-no-detail.png").await;
    let attrs = browser
        .client()
        .execute(
            "const d = document.getElementById('timeline-canvas').dataset; return JSON.stringify(d)",
            vec![],
        )
        .await
        .unwrap();
    panic!(
        "no arrows fetched for the view: {attrs}; screenshot {}",
        shot.display()
    );
}

/// A recording too big to read whole (here: more than `?replay_whole=5000` events)
/// opens a page at a time: the recording's counts before the page, arrows read from
/// the store where the person zooms in, and the cursor stepping across pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_too_big_to_read_whole_opens_a_page_at_a_time() {
    with_browser_and_store(|url, browser| async move { paged_replay(&url, browser).await }).await;
}

async fn paged_replay(url: &str, browser: &Browser) {
    use socklab_protocol::{Command, Event};
    use socklab_tests::IpEndpoint as _;
    const N: u64 = 20_000;
    // Recorded by a script's session: 20,000 datagrams through a link that loses some.
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut client = socklab_tests::Client::connect_with(addr, &format!("token={TOKEN}"))
        .await
        .unwrap();
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = socklab_protocol::link::LinkSettings {
        c2t: socklab_protocol::link::Impairments {
            loss: socklab_protocol::link::Loss::Random { pct: 10.0 },
            ..Default::default()
        },
        seed: 3,
        ..Default::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let req = client
        .send(Command::RecordStart {
            name: Some("big run".into()),
        })
        .await;
    let id = match client.reply(req).await {
        Event::RecordingStarted(r) => r.recording,
        other => panic!("expected recording_started, got {other:?}"),
    };
    let req = client
        .send(socklab_tests::generate(&a.socket, link.listen, N, 10_000.0))
        .await;
    client.reply(req).await;
    let mut concluded = 0;
    while concluded < N {
        if let Event::Fate(f) = client.next().await
            && f.fate != socklab_protocol::flow::FateKind::Duplicate
        {
            concluded += 1;
        }
    }
    client.send(Command::RecordStop).await;
    client
        .until(|e| matches!(e, Event::RecordingStopped(_)))
        .await;

    browser.open(&format!("{url}&replay_whole=5000")).await;
    browser.click("#tab-recordings").await;
    // The tab reads its list when it opens.
    browser.wait_count(&format!("#open-{id}"), 1).await;
    browser.click(&format!("#open-{id}")).await;
    let said = browser
        .wait_text("#replay-paged", |t| t.contains("Too big to read whole"))
        .await;
    eprintln!("{said}");
    // Opened at its end: the cursor on its last event.
    browser
        .wait_text("#replay-cursor", |t| t.starts_with("event #"))
        .await;
    browser.click("#tab-timeline").await;
    browser.click("#tl-fit").await;
    let counted = browser
        .wait_attr("#timeline-canvas", "data-counted", |n| {
            n.parse::<u64>().is_ok_and(|n| n > 0)
        })
        .await;
    let server_sent = browser
        .wait_attr("#timeline-canvas", "data-server-sent", |n| {
            n.parse::<u64>().is_ok_and(|n| n > 0)
        })
        .await;
    eprintln!(
        "before the page, drawn as the recording's counts: {counted} datagrams ({server_sent} sent)"
    );
    let shot = browser.screenshot("e2e-replay-paged.png").await;
    eprintln!("screenshot: {}", shot.display());
    // Zoomed into the time before the page: arrows read from the recording (the
    // inspector, following the cursor, closed to give the timeline its height).
    browser.click("#inspector-close").await;
    let (_, detail) = zoom_into_thinned(browser).await;
    let asked = browser
        .wait_attr("#timeline-canvas", "data-asked", |_| true)
        .await;
    eprintln!("arrows read from the recording: {detail} ({asked})");
    let at = an_arrow_in_view(browser).await;
    click_canvas_at(browser, &at).await;
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains("sent") && t.contains("bytes")
        })
        .await;
    let shot = browser.screenshot("e2e-replay-paged-detail.png").await;
    eprintln!("screenshot: {}", shot.display());
    // To its start (a page read), then three datagrams on, the inspector following.
    browser.click("#replay-start").await;
    let mut last = browser
        .wait_text("#replay-cursor", |t| t.starts_with("event #0 "))
        .await;
    for _ in 0..3 {
        browser.click("#replay-forward").await;
        let before = last.clone();
        last = browser
            .wait_text("#replay-cursor", |t| t != before && !t.contains("reading"))
            .await;
    }
    eprintln!("three datagrams on: {last}");
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains("sent") || t.contains("received")
        })
        .await;
    // Back to the end, and one datagram back.
    browser.click("#replay-end").await;
    let end = browser
        .wait_text("#replay-cursor", |t| t != last && !t.contains("reading"))
        .await;
    browser.click("#replay-back").await;
    browser
        .wait_text("#replay-cursor", |t| t != end && !t.contains("reading"))
        .await;
    // The packet list reads any time of the recording from the store, over HTTP.
    browser.click("#tab-packets").await;
    browser
        .click("#packets-source option[value='server']")
        .await;
    browser.fill("#packets-at", "0").await;
    browser.click("#packets-go").await;
    let range = browser
        .wait_text("#packets-range", |t| t.contains("fetched from the server"))
        .await;
    eprintln!("the recording's first rows: {range}");
    browser
        .wait_attr("tr.packet-row", "data-dir", |d| d == "out" || d == "link")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_too_fast_for_the_page_shows_the_servers_counts_then_every_arrow_zoomed_in() {
    with_browser(|url, browser| async move { at_any_scale(&url, browser).await }).await;
}

/// 60,000 datagrams at 30,000/s: more than the page takes in. It is spared single
/// datagrams, says so once, draws the server's counts where it was, and the arrows of
/// a window fetched from the server once zoomed in.
async fn at_any_scale(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, second) = bind_two(browser).await;
    browser.fill("#gen-to", &second).await;
    browser.fill("#gen-count", "60000").await;
    browser.fill("#gen-rate", "30000").await;
    browser.click("#gen-start").await;
    let said = browser
        .wait_text("#thinned", |t| t.contains("left out of this page"))
        .await;
    assert!(said.contains("counts"), "{said}");
    // The server's figures count every datagram, whatever the page was sent.
    browser
        .wait_text("#flow-table", |t| t.contains("60000"))
        .await;
    // So do the run's figures: the server counts them too.
    browser
        .wait_text("#run-table tr.stretch-row td.sent", |t| t == "60000")
        .await;
    browser
        .wait_text("#run-table tr.stretch-row td.in-flight", |t| t == "0")
        .await;
    // The packet list says what it lacks.
    browser.click("#tab-packets").await;
    browser
        .wait_text("#packets-thinned", |t| t.contains("not in this list"))
        .await;
    browser.click("#tab-timeline").await;
    // The whole run in view: counts where arrows are missing.
    browser.click("#tl-fit").await;
    let counted = browser
        .wait_attr("#timeline-canvas", "data-counted", |n| {
            n.parse::<u64>().is_ok_and(|n| n > 0)
        })
        .await;
    eprintln!("drawn as the server's counts: {counted} datagrams");
    let shot = browser.screenshot("e2e-scale-counts.png").await;
    eprintln!("screenshot: {}", shot.display());
    // Into the middle of a thinned stretch, until its arrows come from the server.
    let (middle, detail) = zoom_into_thinned(browser).await;
    let asked = browser
        .wait_attr("#timeline-canvas", "data-asked", |_| true)
        .await;
    eprintln!("asked: {asked}");
    // The view lies in time the page was not sent: what it draws came from the server.
    let (from, to) = window(browser).await;
    let thinned = browser
        .wait_attr("#timeline-canvas", "data-thinned-at", |_| true)
        .await;
    assert!(to - from <= 40e6, "zoomed in: {from}..{to}");
    let off = (middle as f64 - (from + to) / 2.0).abs();
    assert!(
        off < (to - from) * 0.05,
        "zoomed in around the middle: {from}..{to}, {middle}"
    );
    eprintln!("arrows fetched for the window {from}..{to} (thinned: {thinned}): {detail}");
    // One of them in the inspector: its fate, and its bytes, which came with the window.
    let at = an_arrow_in_view(browser).await;
    click_canvas_at(browser, &at).await;
    let meta = browser
        .wait_text("#inspector .meta", |t| {
            t.contains("sent") && t.contains("bytes")
        })
        .await;
    browser
        .wait_text("#inspector-fate", |t| t.contains("delivered"))
        .await;
    eprintln!("inspector: {meta}");
    let shot = browser.screenshot("e2e-scale-detail.png").await;
    eprintln!("screenshot: {}", shot.display());
    // The packet list shows the window's rows too, fetched with it.
    browser.click("#tab-packets").await;
    browser
        .click("#packets-source option[value='timeline']")
        .await;
    let rows = browser
        .wait_attr("#packet-count", "data-total", |n| {
            n.parse::<u64>().is_ok_and(|n| n > 0)
        })
        .await;
    let shown = browser
        .client()
        .execute(
            "return document.querySelectorAll('tr.packet-row').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(shown > 0, "the window's rows are drawn");
    let shot = browser.screenshot("e2e-scale-packets.png").await;
    eprintln!(
        "the window's rows in the packet list: {rows}; screenshot: {}",
        shot.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_lost_arrows_and_figures_that_agree() {
    with_browser(|url, browser| async move { timeline(&url, browser).await }).await;
}

async fn timeline(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, second) = bind_two(browser).await;

    // A "very lossy" link in front of s2, from its preset.
    browser.fill("#link-target", &second).await;
    browser
        .click("#link-preset option[value='very lossy']")
        .await;
    browser.click("#link-create").await;
    let cards = browser.wait_count(".link-card", 1).await;
    let listen = cards[0]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // The server-side generator sends 200 sequenced datagrams through it.
    browser.fill("#gen-to", &listen).await;
    browser.fill("#gen-count", "200").await;
    browser.fill("#gen-rate", "2000").await;
    browser.click("#gen-start").await;
    let row = "tr.flow-row[data-method='matched']";
    browser
        .wait_text(&format!("{row} td.sent"), |t| t == "200")
        .await;
    browser
        .wait_text(&format!("{row} td.in-flight"), |t| t == "0")
        .await;
    let lost_cell = browser
        .wait_text(&format!("{row} td.lost"), |t| !t.is_empty())
        .await;
    let lost: usize = lost_cell
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(lost > 20, "30 % loss over 200 datagrams: {lost_cell}");
    // The stream is one row: its receiver's own count (from the sequence header) is a
    // detail under it, not a second flow.
    browser.wait_count("#flow-table tr.flow-row", 1).await;
    browser
        .wait_text("#flow-table tr.flow-detail", |t| {
            t.starts_with("as its receiver counts it (sequence header #1)")
        })
        .await;

    // The timeline draws exactly as many lost arrows as the server's figures count.
    browser
        .wait_text("#timeline-legend", |t| {
            t.contains(&format!("✕ lost ({lost})"))
        })
        .await;
    // The flow's statistics: its loss bursts add up to its losses, and its latency
    // distribution is drawn.
    browser.click(row).await;
    browser
        .wait_attr("#loss-bursts", "data-lost", |n| n == lost.to_string())
        .await;
    browser.wait_count("#loss-bursts-plot", 1).await;
    browser.scroll_to("#latency-cdf").await;
    let shot = browser.screenshot("e2e-flow-statistics.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser.scroll_to("#timeline-canvas").await;

    // Pause and show only the lost arrows, then click one: the inspector says why it
    // never arrived.
    browser.click("#tl-follow").await;
    browser.screenshot("e2e-timeline.png").await;
    show_only_lost(browser).await;
    browser
        .wait_attr("#timeline-canvas", "data-shown", |n| n == lost.to_string())
        .await;
    browser
        .wait_attr("#timeline-canvas", "data-follow", |f| f == "false")
        .await;
    click_a_lost_arrow(browser).await;
    browser
        .wait_text("#inspector-fate", |t| t.contains("lost: random loss"))
        .await;
    browser
        .wait_text("#inspector-decision", |t| {
            t.contains("link l1 (client→target") && t.ends_with("dropped: random loss")
        })
        .await;
    let shot = browser.screenshot("e2e-timeline-lost-only.png").await;
    eprintln!("screenshot: {}", shot.display());
    timeline_keys(browser, lost).await;
    runs(browser, lost).await;
    // The lesson on order sees it here: the "very lossy" link reorders too.
    browser.scroll_to("#lessons").await;
    lesson_saw(browser, "order", 3, |t| {
        t.contains("arrived after one that was sent later")
    })
    .await;
}

/// The generator's run has its own figures, the same as the flow's (the only traffic),
/// and a new run starts empty.
async fn runs(browser: &Browser, lost: usize) {
    browser.scroll_to("#runs").await;
    let row = "#run-table tr.stretch-row";
    browser
        .wait_text(&format!("{row} .run-name"), |t| {
            t.starts_with("g1: 200 to ") && t.ends_with(" at 2000/s")
        })
        .await;
    browser
        .wait_text(&format!("{row} td.sent"), |t| t == "200")
        .await;
    browser
        .wait_text(&format!("{row} td.lost"), |t| {
            t.starts_with(&format!("{lost} ("))
        })
        .await;
    browser.fill("#run-name", "after the change").await;
    browser.click("#run-mark").await;
    browser.wait_count(row, 2).await;
    browser
        .wait_text(&format!("{row}:nth-child(2)"), |t| {
            t.contains("after the change") && t.contains("nothing sent")
        })
        .await;
    let shot = browser.screenshot("e2e-runs.png").await;
    eprintln!("screenshot: {}", shot.display());
}

/// Drags on the timeline with Shift held, from `from` to `to` of the height below its
/// lane headings (0: the top, 1: the bottom), as a mouse would.
async fn shift_drag(browser: &Browser, from: f64, to: f64) {
    let script = "const c = document.getElementById('timeline-canvas');
        const r = c.getBoundingClientRect();
        const head = 34;
        const at = f => r.top + head + f * (r.height - head);
        const x = r.left + r.width / 2;
        const fire = (kind, y) => c.dispatchEvent(new MouseEvent(kind,
            { bubbles: true, shiftKey: true, clientX: x, clientY: y }));
        fire('mousedown', at(arguments[0]));
        fire('mousemove', at((arguments[0] + arguments[1]) / 2));
        fire('mousemove', at(arguments[1]));
        fire('mouseup', at(arguments[1]));";
    browser
        .client()
        .execute(script, vec![from.into(), to.into()])
        .await
        .expect("a shift + drag on the timeline");
}

/// The times at the top and the bottom of the timeline's window, ns.
async fn window(browser: &Browser) -> (f64, f64) {
    let w = browser
        .wait_attr("#timeline-canvas", "data-window", |_| true)
        .await;
    let (a, b) = w.split_once(',').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// Fit the whole run, step from loss to loss, go to a time (after the lossy run above,
/// only lost arrows shown).
async fn timeline_keys(browser: &Browser, lost: usize) {
    // Zoomed far in, then "fit all": every lost arrow of the run in the window, and the
    // run filling most of it.
    for _ in 0..12 {
        browser.click("#tl-zoom-in").await;
    }
    browser.click("#tl-fit").await;
    let (from, to) = window(browser).await;
    let shown: usize = browser
        .wait_attr("#timeline-canvas", "data-shown", |_| true)
        .await
        .parse()
        .unwrap();
    let drawn = browser
        .wait_attr("#timeline-canvas", "data-drawn", |n| n == shown.to_string())
        .await;
    eprintln!("fit: window {from:.0}..{to:.0} ns, {drawn} of {shown} arrows drawn");
    // Shift + drag over the whole window, zoomed out from the fit (which fitted the
    // lost arrows shown): the range's figures are the whole run's.
    for _ in 0..3 {
        browser.click("#tl-zoom-out").await;
    }
    shift_drag(browser, 0.01, 0.99).await;
    browser
        .wait_text("#tl-range-table td.sent", |t| t == "200")
        .await;
    let range_lost = browser
        .wait_text("#tl-range-table td.lost", |t| {
            t.starts_with(&format!("{lost} ("))
        })
        .await;
    let shot = browser.screenshot("e2e-timeline-range.png").await;
    eprintln!("range: lost {range_lost}; screenshot: {}", shot.display());
    browser.press("#timeline-canvas", "\u{E00C}").await;
    browser.wait_count("#tl-range", 0).await;
    // Next loss with n, from the one selected: another lost datagram, selected and in
    // the middle of the window; back with p.
    // From no selection at the session's start: n selects the run's first loss, n
    // again the second, p the first again, and the button the second.
    browser.click("#inspector-close").await;
    browser.fill("#tl-goto", "").await;
    browser.press("#tl-goto", "0\u{E007}").await;
    let head = "#inspector .inspector-head";
    browser.press("#timeline-canvas", "n").await;
    let first = browser.wait_text(head, |_| true).await;
    browser
        .wait_text("#inspector-fate", |t| t.contains("lost"))
        .await;
    browser.press("#timeline-canvas", "n").await;
    let next = browser.wait_text(head, |t| t != first).await;
    browser
        .wait_text("#inspector-fate", |t| t.contains("lost"))
        .await;
    browser.press("#timeline-canvas", "p").await;
    browser.wait_text(head, |t| t == first).await;
    browser.click("#tl-next-loss").await;
    browser.wait_text(head, |t| t == next).await;
    eprintln!("from loss to loss: {first} → {next}");
    // Go to a time: words for what is not one; 50 ms in the middle of the window.
    browser.press("#tl-goto", "soon\u{E007}").await;
    browser
        .wait_text("#tl-goto-error", |t| t.contains("not a number"))
        .await;
    browser.fill("#tl-goto", "").await;
    browser.press("#tl-goto", "50\u{E007}").await;
    browser.wait_count("#tl-goto-error", 0).await;
    let (from, to) = window(browser).await;
    assert!(
        ((from + to) / 2.0 - 50e6).abs() < (to - from) * 0.05,
        "50 ms in the middle: {from}..{to}"
    );
    let shot = browser.screenshot("e2e-timeline-keys.png").await;
    eprintln!("screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packet_list_holds_every_row_and_finds_them() {
    with_browser(|url, browser| async move { packet_list(&url, browser).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packet_list_fetches_the_rows_the_page_forgot_from_the_server() {
    with_browser(|url, browser| async move { forgotten_rows(&url, browser).await }).await;
}

/// 12,000 datagrams are 24,000 rows, more than the page keeps: the list fetches the
/// first ones from the server by time, with their fates, and pages on and back.
async fn forgotten_rows(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, second) = bind_two(browser).await;
    browser.fill("#gen-to", &second).await;
    browser.fill("#gen-count", "12000").await;
    browser.fill("#gen-rate", "5000").await;
    browser.click("#gen-start").await;
    browser.click("#tab-packets").await;
    browser
        .wait_text("#page-packets .panel-head .hint", |t| {
            t.contains("left the page")
        })
        .await;
    browser
        .click("#packets-source option[value='server']")
        .await;
    browser
        .wait_text("#packets-range", |t| t.contains("Give a time"))
        .await;
    // A time that is not one is refused in words.
    browser.fill("#packets-at", "soon").await;
    browser.click("#packets-go").await;
    browser
        .wait_text("#packets-error", |t| t.contains("not a time"))
        .await;
    browser.fill("#packets-at", "0").await;
    browser.click("#packets-go").await;
    let range = browser
        .wait_text("#packets-range", |t| t.contains("fetched from the server"))
        .await;
    eprintln!("{range}");
    // Read in one go: the rows are drawn again as fates come.
    let first = |script: &'static str| async move {
        browser
            .client()
            .execute(script, vec![])
            .await
            .expect("read the first row")
    };
    const FIRST_ROW: &str = "const r = document.querySelector('tr.packet-row');
        return r ? [r.dataset.dir, r.children[1].textContent, r.querySelector('td.fate') ? r.querySelector('td.fate').textContent : ''] : null;";
    let row = first(FIRST_ROW).await;
    assert_eq!(row[0], "out", "the first datagram sent: {row}");
    assert!(
        row[2].as_str().is_some_and(|t| t.starts_with("delivered")),
        "with its fate: {row}"
    );
    let t0: f64 = row[1].as_str().unwrap().parse().unwrap();
    // Later, then back.
    browser.click("#packets-later").await;
    let later = browser
        .wait_text("#packets-range", |t| t != range && t.contains("fetched"))
        .await;
    let t1: f64 = first(FIRST_ROW).await[1].as_str().unwrap().parse().unwrap();
    assert!(t1 > t0, "{t1} after {t0}: {later}");
    browser.click("#packets-earlier").await;
    browser
        .wait_text("#packets-range", |t| t != later && t.contains("fetched"))
        .await;
    let t2: f64 = first(FIRST_ROW).await[1].as_str().unwrap().parse().unwrap();
    assert!(t2 < t1, "{t2} before {t1}");
    // A fetched row in the inspector: its bytes and its fate.
    browser.click("tr.packet-row").await;
    browser
        .wait_text("#inspector-fate", |t| t.contains("delivered in order"))
        .await;
    let shot = browser.screenshot("e2e-packets-from-server.png").await;
    eprintln!("screenshot: {}", shot.display());
}

/// Scrolls the packet list to `where_` (`0` the top, `1e9` the bottom) and tells the
/// page, as a person's scrolling would.
async fn scroll_list(browser: &Browser, to: f64) {
    browser
        .client()
        .execute(
            "const e = document.querySelector('#page-packets .table-scroll');
             e.scrollTop = arguments[0];
             e.dispatchEvent(new Event('scroll'));",
            vec![to.into()],
        )
        .await
        .expect("scroll the packet list");
}

/// 3,000 datagrams from s1 to s2 are 6,000 rows: all of them in the list (drawn a
/// screenful at a time), the first reachable, filtered by kind, socket, fate and flow,
/// searched by bytes, each saying what became of it; a row's arrow shown on the
/// timeline and back.
async fn packet_list(url: &str, browser: &Browser) {
    browser.open(url).await;
    let (_, second) = bind_two(browser).await;
    browser.fill("#gen-to", &second).await;
    browser.fill("#gen-count", "3000").await;
    browser.fill("#gen-rate", "5000").await;
    browser.click("#gen-start").await;
    browser.click("#tab-packets").await;
    browser
        .wait_attr("#packet-count", "data-total", |n| n == "6000")
        .await;
    let drawn = browser
        .client()
        .execute(
            "return document.querySelectorAll('tr.packet-row').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(
        (10..400).contains(&drawn),
        "a screenful and some either side, not 6,000: {drawn}"
    );

    // The very first row is there to scroll to.
    scroll_list(browser, 0.0).await;
    browser
        .wait_text("tr.packet-row:first-of-type td.num", |t| t == "1")
        .await;
    // Filters: received ones only; then only s1's received ones (none: s1 only sends).
    browser.click("#packet-kind option[value='received']").await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "3000")
        .await;
    browser.click("#packet-place option[value='s1']").await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "0")
        .await;
    browser
        .wait_text("#page-packets p.empty", |t| t.contains("No row matches"))
        .await;
    browser.click("#packet-place option[value='']").await;
    browser
        .click("#packet-kind option[value='every row']")
        .await;
    // Search by bytes: every generated datagram starts with its sequence header
    // "SLQ1"; text nobody sent finds nothing; half a byte of hex is refused in words.
    browser.fill("#packet-search", "hex 53 4c 51 31").await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "6000")
        .await;
    browser.fill("#packet-search", "nobody sent this").await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "0")
        .await;
    browser.fill("#packet-search", "hex 5").await;
    browser
        .wait_text("#packet-search-error", |t| t.contains("odd number"))
        .await;
    browser.fill("#packet-search", "").await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "6000")
        .await;
    // By what became of them (every one delivered, each row says so) and by flow.
    browser
        .wait_text("tr.packet-row:first-of-type td.fate", |t| {
            t.starts_with("delivered, ") && t.ends_with(" ms")
        })
        .await;
    browser
        .click("#packet-fate option[value='delivered in order']")
        .await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "6000")
        .await;
    browser
        .click("#packet-fate option[value='lost or unanswered']")
        .await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "0")
        .await;
    browser.click("#packet-fate option[value='any fate']").await;
    let flow = browser
        .wait_text("#packet-flow option[value='0']", |t| t.contains(" → "))
        .await;
    assert!(flow.starts_with("s1") && flow.ends_with("s2"), "{flow}");
    browser.click("#packet-flow option[value='0']").await;
    browser
        .wait_attr("#packet-count", "data-shown", |n| n == "6000")
        .await;
    browser.click("#packet-flow option[value='']").await;

    // Row 1 on the timeline, then back to its row from the bottom of the list.
    scroll_list(browser, 0.0).await;
    browser
        .wait_text("tr.packet-row:first-of-type td.num", |t| t == "1")
        .await;
    browser.click("tr.packet-row:first-of-type").await;
    browser.click("#inspector-to-timeline").await;
    browser
        .wait_attr("#tab-timeline", "aria-selected", |s| s == "true")
        .await;
    let t = browser
        .wait_text("#inspector .meta", |t| t.contains("t = "))
        .await;
    let at: f64 = t
        .split("t = ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("the inspector gives the time");
    let (from, to) = window(browser).await;
    assert!(
        ((from + to) / 2.0 - at * 1e9).abs() < (to - from) * 0.05,
        "row 1 ({at} s) in the middle of {from}..{to}"
    );
    // The whole run fitted: 3,000 arrows in a few hundred pixel rows are drawn by
    // density (brighter where more of them share a line).
    browser.press("#timeline-canvas", "0").await;
    browser
        .wait_attr("#timeline-canvas", "data-dense", |d| d == "true")
        .await;
    let shot = browser.screenshot("e2e-timeline-density.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser.click("#tab-packets").await;
    scroll_list(browser, 1e9).await;
    browser.click("#inspector-to-list").await;
    browser
        .wait_text("tr.packet-row.selected td.num", |t| t == "1")
        .await;
    let in_view = browser
        .client()
        .execute(
            "const s = document.querySelector('#page-packets .table-scroll').getBoundingClientRect();
             const r = document.querySelector('tr.packet-row.selected').getBoundingClientRect();
             return r.top >= s.top && r.bottom <= s.bottom;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(in_view, serde_json::json!(true), "the row is in view");
    let shot = browser.screenshot("e2e-packet-list.png").await;
    eprintln!("screenshot: {}", shot.display());
}

// On the test's single thread on purpose: the burst below is sent while the server
// cannot read, so the tiny buffer overflows every time.
#[tokio::test]
async fn a_small_receive_buffer_shows_what_the_kernel_dropped() {
    with_browser(|url, browser| async move { kernel_drops(&url, browser).await }).await;
}

async fn kernel_drops(url: &str, browser: &Browser) {
    const BURST: usize = 2_000;
    browser.open(url).await;
    // A wrong size is explained next to the form, and nothing is bound.
    browser.fill("#bind-rcvbuf", "lots").await;
    browser.click("#bind-button").await;
    browser
        .wait_text("#bind-error", |t| t.contains("is not a buffer size"))
        .await;
    // The smallest buffer: the kernel grants its minimum, and the row says how much.
    browser.fill("#bind-rcvbuf", "1").await;
    browser.click("#bind-button").await;
    let rows = browser.wait_count(".socket-row", 1).await;
    let addr: std::net::SocketAddr = rows[0]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    browser
        .wait_text(".socket-row .rcvbuf", |t| {
            t.starts_with("buffer ") && t.ends_with("KiB")
        })
        .await;
    // A burst from a plain socket while this test's runtime (which also runs the
    // server) is busy sending: the buffer overflows; then one more datagram carries
    // the kernel's count.
    let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..BURST {
        plain.send_to(&(i as u64).to_le_bytes(), addr).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    plain.send_to(b"last", addr).unwrap();
    let shown = browser
        .wait_text(".socket-row .kernel-drops", |t| {
            t.starts_with("kernel dropped ")
        })
        .await;
    let dropped: usize = shown
        .trim_start_matches("kernel dropped ")
        .parse()
        .expect("a count");
    assert!(
        dropped > BURST / 2 && dropped <= BURST,
        "most of the burst was dropped: {shown}"
    );
    // The packet list has a row for the report, in line with the datagrams.
    browser.click("#tab-packets").await;
    let row = "tr.packet-row[data-dir='kernel']";
    browser
        .wait_text(&format!("{row} td.note"), |t| {
            t == format!("kernel dropped {dropped}: receive buffer full")
        })
        .await;
    browser.click(row).await;
    browser
        .wait_text("#inspector .meta", |t| {
            t.contains(&format!(
                "the kernel dropped {dropped} datagram(s) addressed to socket s1"
            ))
        })
        .await;
    let shot = browser.screenshot("e2e-kernel-drops.png").await;
    eprintln!("screenshot: {}", shot.display());
    browser.click("#tab-timeline").await;

    // Between lab sockets, the flow analysis blames the kernel for such losses: a
    // second socket's generator floods the first one. A short loss timeout keeps each
    // lost arrow (send to verdict) short enough to be on screen whole.
    browser.fill("#loss-timeout", "30").await;
    browser.click("#loss-timeout-set").await;
    browser
        .wait_text(".generator span.hint", |t| t.contains("(now 30 ms)"))
        .await;
    browser.fill("#bind-rcvbuf", "").await;
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 2).await;
    browser.click("#gen-from option[value='s2']").await;
    browser.fill("#gen-to", &addr.to_string()).await;
    browser.fill("#gen-count", "2000").await;
    browser.fill("#gen-rate", "100000").await;
    browser.click("#gen-start").await;
    browser
        .wait_text("#timeline-legend", |t| {
            t.split("✕ lost (")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
        .await;
    // A lost arrow runs from the send to the verdict (the timeout, checked every
    // 100 ms): zoom out until such arrows fit, then pause and show only them.
    for _ in 0..8 {
        browser.click("#tl-zoom-out").await;
    }
    // Zooming pauses, so that what is being studied stays in view.
    browser
        .wait_attr("#timeline-canvas", "data-follow", |f| f == "false")
        .await;
    show_only_lost(browser).await;
    click_a_lost_arrow(browser).await;
    browser
        .wait_text("#inspector-fate", |t| {
            t.contains("lost: dropped by the kernel at the receiving socket")
        })
        .await;
    // It is drawn where it happened: at its arrival on the receiver's lane (over
    // loopback, at once), not at the end of the 2 s loss timeout (thousands of pixels
    // down at this scale).
    let tall: f64 = browser
        .wait_attr("#timeline-canvas", "data-lost-tall", |_| true)
        .await
        .parse()
        .unwrap();
    assert!(
        tall.abs() < 3.0,
        "a kernel drop's arrow runs {tall} px down"
    );
    let shot = browser.screenshot("e2e-kernel-lost.png").await;
    eprintln!("screenshot: {}", shot.display());
}

/// Unticks every fate but "lost" in the timeline's filters.
async fn show_only_lost(browser: &Browser) {
    for fate in ["delivered", "reordered", "duplicated"] {
        browser.click(&format!("#tl-show-{fate}")).await;
    }
}

/// Clicks a lost arrow the timeline has drawn whole on screen (the page names one in
/// the canvas' `data-lost-at`), which opens it in the inspector.
async fn click_a_lost_arrow(browser: &Browser) {
    // The paused view shows where following left it: the last arrivals, which a slow
    // run may leave without a whole lost arrow in view. Zoom out until one is.
    for _ in 0..8 {
        let lost_at = browser
            .client()
            .find(fantoccini::Locator::Css("#timeline-canvas"))
            .await
            .expect("the timeline")
            .attr("data-lost-at")
            .await
            .expect("its attributes");
        if lost_at.is_some() {
            break;
        }
        browser.click("#tl-zoom-out").await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let at = browser
        .wait_attr("#timeline-canvas", "data-lost-at", |a| a.contains(','))
        .await;
    click_canvas_at(browser, &at).await;
}

/// Clicks the timeline's canvas at `at` ("x,y" in its own pixels, as its `data-…-at`
/// attributes say).
async fn click_canvas_at(browser: &Browser, at: &str) {
    let (x, y) = at.split_once(',').unwrap();
    let script = format!(
        "const c = document.getElementById('timeline-canvas'); const r = c.getBoundingClientRect();
         for (const type of ['mousedown', 'mouseup']) {{
           c.dispatchEvent(new MouseEvent(type, {{clientX: r.left + {x}, clientY: r.top + {y}, bubbles: true}}));
         }}"
    );
    browser
        .client()
        .execute(&script, vec![])
        .await
        .expect("click the canvas");
}

/// Runs a scenario that starts its own servers; the browser is closed whatever happens.
async fn with_browser_alone<F, Fut>(scenario: F)
where
    F: FnOnce(&'static Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let browser: &'static Browser = Box::leak(Box::new(Browser::start().await));
    let outcome = AssertUnwindSafe(scenario(browser)).catch_unwind().await;
    browser.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn token_server(token: &str) -> Config {
    Config {
        web_dir: Some(web_dir()),
        token: Some(token.into()),
        ..Config::default()
    }
}

/// The page says why it cannot connect: no token (the address a person types), a wrong
/// one; it stops trying and offers to take the printed address; given it, it connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_the_page_says_so_and_takes_the_printed_address() {
    with_browser_alone(|browser| async move {
        let server = TestServer::with_config(token_server(TOKEN)).await;
        browser
            .client()
            .goto(&server.url())
            .await
            .expect("the page loads");
        browser
            .wait_text("#conn-status", |t| t == "needs the launch token")
            .await;
        browser
            .wait_text("#access-panel", |t| t.contains("launch token"))
            .await;
        // A paste without a token is explained, not sent.
        browser.fill("#access-token", &server.url()).await;
        browser.click("#access-connect").await;
        browser
            .wait_text("#access-error", |t| t.contains("no token in it"))
            .await;
        let printed = format!(
            "socklab is running: open {}?token={TOKEN} in a browser",
            server.url()
        );
        browser.fill("#access-token", &printed).await;
        browser.click("#access-connect").await;
        browser
            .wait_text("#conn-status", |t| t == "connected")
            .await;
        browser.wait_count("#access-panel", 0).await;

        // A wrong token is called what it is.
        browser
            .client()
            .goto(&format!("{}?token=not-the-token", server.url()))
            .await
            .expect("the page loads");
        browser
            .wait_text("#conn-status", |t| t == "wrong token")
            .await;
        browser
            .wait_text("#access-panel", |t| t.contains("not this server's"))
            .await;
        browser.screenshot("wrong-token.png").await;
        server.stop().await;
    })
    .await;
}

/// socklab restarted (a new token): the open page says so, shows the old session's
/// sockets and links as gone, and stops retrying until given the new address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_page_shows_the_old_session_as_gone() {
    with_browser_alone(|browser| async move {
        let first = TestServer::with_config(token_server("first-run")).await;
        let addr = first.addr;
        browser
            .open(&format!("{}?token=first-run", first.url()))
            .await;
        let (_, second) = bind_two(browser).await;
        browser.fill("#link-target", &second).await;
        browser.click("#link-create").await;
        browser.wait_count(".link-card", 1).await;
        first.stop().await;
        let restarted = TestServer::with_config_on(addr, token_server("second-run")).await;
        browser
            .wait_text("#conn-status", |t| t == "wrong token")
            .await;
        browser
            .wait_text("#session-ended", |t| t.contains("restarted"))
            .await;
        browser.wait_count(".socket-row.gone", 2).await;
        browser.wait_count(".link-card.gone", 1).await;
        browser.screenshot("restarted.png").await;
        // Given the new address, it starts a new session.
        browser
            .fill(
                "#access-token",
                &format!("{}?token=second-run", restarted.url()),
            )
            .await;
        browser.click("#access-connect").await;
        browser
            .wait_text("#conn-status", |t| t == "connected")
            .await;
        browser.wait_count(".socket-row", 0).await;
        browser.wait_count("#session-ended", 0).await;
        restarted.stop().await;
    })
    .await;
}

/// A session that ended while no page watched it (its grace period ran out): coming
/// back, the page says so and shows a new, empty session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coming_back_after_the_grace_period_the_page_says_the_session_ended() {
    with_browser_alone(|browser| async move {
        let server = TestServer::with_config(Config {
            grace: std::time::Duration::from_millis(300),
            ..token_server(TOKEN)
        })
        .await;
        browser
            .open(&format!("{}?token={TOKEN}", server.url()))
            .await;
        bind_two(browser).await;
        browser
            .client()
            .goto("about:blank")
            .await
            .expect("leave the page");
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        // The tab kept the token and the session id; the session is gone.
        browser
            .client()
            .goto(&server.url())
            .await
            .expect("come back");
        browser
            .wait_text("#conn-status", |t| t == "connected")
            .await;
        browser
            .wait_text(".notices", |t| t.contains("has ended"))
            .await;
        browser.wait_count(".socket-row", 0).await;
        server.stop().await;
    })
    .await;
}

/// Two link editors open at once share no element id, and a link shows its upstream
/// (where a target's replies must go) and its client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_cards_show_both_ends_and_their_editors_share_no_id() {
    with_browser(|url, browser| async move {
        browser.open(&url).await;
        let (first, second) = bind_two(browser).await;
        for target in [&first, &second] {
            browser.fill("#link-target", target).await;
            browser.click("#link-create").await;
        }
        let cards = browser.wait_count(".link-card", 2).await;
        for card in &cards {
            card.find(fantoccini::Locator::Css("button.small"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
        browser.wait_count(".link-card .editor", 2).await;
        let duplicates = browser
            .client()
            .execute(
                "const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
                 return ids.filter((id, i) => ids.indexOf(id) !== i);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(duplicates, serde_json::json!([]), "duplicate ids");
        let upstream = browser
            .wait_text(".link-card code.upstream", |t| t.starts_with("127.0.0.1:"))
            .await;
        assert_ne!(upstream, first);
        browser
            .wait_text(".link-card code.client", |t| t.starts_with("none yet"))
            .await;
        // The editor writes a number of the right kind back, and ignores one of the
        // wrong kind (a queue of 1.5 datagrams); applying shows the new settings.
        browser.fill("#l1-c2t-imp-delay", "25").await;
        browser.fill("#l1-c2t-imp-queue", "1.5").await;
        browser
            .click(".link-card[data-link='l1'] .link-apply")
            .await;
        browser
            .wait_text(".link-card[data-link='l1'] p.hint", |t| {
                t.starts_with("client→target: 25 ms ± 0 ms · target→client: perfect")
            })
            .await;
        let queue = browser
            .client()
            .execute(
                "return document.querySelector('#l1-c2t-imp-queue').value",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            queue,
            serde_json::json!("1000"),
            "the refused number left the setting as it was"
        );
        browser.screenshot("e2e-link-editor.png").await;
    })
    .await;
}

/// What a learner sees at 1280 × 800 with a link and an echo server in the session:
/// the inspector opens in view, the tables fit without sideways scrolling, every form
/// offers the same destinations, and switching tabs keeps the zoom and the forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_1280_the_answer_is_in_view_and_tabs_keep_their_place() {
    with_browser(|url, browser| async move {
        let echo = socklab_tests::python::PythonEcho::start("127.0.0.1");
        browser
            .client()
            .set_window_size(1280, 800)
            .await
            .expect("a 1280 × 800 window");
        browser.open(&url).await;
        let (_, second) = bind_two(browser).await;
        browser.fill("#link-target", &second).await;
        browser.click("#link-create").await;
        let listen = browser
            .wait_text(".link-card code.addr", |t| t.starts_with("127.0.0.1:"))
            .await;
        // Through the link to s2, and straight to the echo server.
        for to in [listen.as_str(), &echo.addr.to_string()] {
            browser.fill("#send-to", to).await;
            browser.click("#send-button").await;
        }
        browser.wait_count("#flow-table tbody tr", 2).await;

        // The same destinations in every form that sends: the lab sockets but the
        // sender, the link, and the echo server once it answered.
        let chips = |css: &'static str| async move {
            let mut labels = Vec::new();
            for chip in browser
                .client()
                .find_all(fantoccini::Locator::Css(css))
                .await
                .unwrap()
            {
                labels.push(chip.text().await.unwrap());
            }
            labels
        };
        browser
            .wait_text("#send-chips", |t| t.contains("outside"))
            .await;
        let send = chips("#send-chips .chip").await;
        assert_eq!(send, chips("#gen-chips .chip").await, "one chip list");
        assert!(
            send.iter().any(|c| c.starts_with("l1 listen"))
                && send.iter().any(|c| c == &format!("outside {}", echo.addr)),
            "{send:?}"
        );

        // Zoom and a half-filled generator form survive a trip to the other tab.
        browser.click("#tl-zoom-in").await;
        browser.click("#tl-zoom-in").await;
        let scale = browser
            .wait_text("#tl-scale", |t| t.contains("ms / 100 px"))
            .await;
        browser.fill("#gen-count", "123").await;
        browser.click("#tab-packets").await;
        browser.click("#tab-timeline").await;
        assert_eq!(browser.wait_text("#tl-scale", |_| true).await, scale);
        let count = browser
            .client()
            .execute("return document.querySelector('#gen-count').value", vec![])
            .await
            .unwrap();
        assert_eq!(count, serde_json::json!("123"));

        // Neither table scrolls sideways.
        let overflow = |css: &'static str| async move {
            browser
                .client()
                .execute(
                    "const e = document.querySelector(arguments[0]);
                     return e.scrollWidth - e.clientWidth;",
                    vec![css.into()],
                )
                .await
                .unwrap()
        };
        assert_eq!(
            overflow("#page-timeline .table-wrap").await,
            serde_json::json!(0),
            "flows"
        );
        browser.click("#tab-packets").await;
        browser.wait_count("tr.packet-row", 5).await;
        assert_eq!(
            overflow("#page-packets .table-scroll").await,
            serde_json::json!(0),
            "packets"
        );

        // A click on a row opens the inspector where the eye is.
        browser.click("tr.packet-row[data-dir='link']").await;
        let heading = browser
            .wait_text("#inspector h3", |t| t.contains("link decision"))
            .await;
        assert!(
            heading.contains("row ") && heading.contains("event #"),
            "{heading}"
        );
        let in_view = browser
            .client()
            .execute(
                "const r = document.querySelector('#inspector').getBoundingClientRect();
                 return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 40;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(in_view, serde_json::json!(true), "the inspector is in view");
        browser.screenshot("e2e-1280-inspector.png").await;
    })
    .await;
}
