//! End to end: the real page from the real server in a real headless Chromium.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use socklab_server::Config;
use socklab_tests::browser::Browser;
use socklab_tests::{TestServer, web_dir};

#[tokio::test]
async fn bind_send_and_see_both_rows_then_an_error() {
    let server = TestServer::with_config(Config {
        web_dir: Some(web_dir()),
        ..Config::default()
    })
    .await;
    let browser = Browser::start().await;
    // Whatever happens in the scenario, the browser and the server are closed.
    let outcome = AssertUnwindSafe(scenario(&server.url(), &browser))
        .catch_unwind()
        .await;
    browser.close().await;
    server.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(url: &str, browser: &Browser) {
    browser.client().goto(url).await.expect("the page loads");
    browser
        .wait_text("#conn-status", |t| t == "connected")
        .await;

    // Bind two sockets through the form (port 0: any free port).
    browser.click("#bind-button").await;
    browser.wait_count(".socket-row", 1).await;
    browser.click("#bind-button").await;
    let rows = browser.wait_count(".socket-row", 2).await;
    let first_addr = rows[0]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .expect("the socket's address")
        .text()
        .await
        .unwrap();
    let second_addr = rows[1]
        .find(fantoccini::Locator::Css("code.addr"))
        .await
        .expect("the socket's address")
        .text()
        .await
        .unwrap();
    assert!(second_addr.starts_with("127.0.0.1:"), "{second_addr}");

    // Send "hello" from s1 to s2: the out row and the in row appear.
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
        in_row.contains("s2") && in_row.contains(&first_addr) && in_row.contains("\"hello\""),
        "{in_row}"
    );

    // Selecting a row shows the payload as hex and ASCII.
    rows[1].click().await.unwrap();
    let dump = browser.wait_text("#hexdump", |t| !t.is_empty()).await;
    assert!(
        dump.contains("68 65 6c 6c 6f") && dump.contains("|hello|"),
        "{dump}"
    );

    // A payload error is shown next to the field before anything is sent.
    browser.click("#notation-hex").await;
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
    browser
        .wait_text("#bind-error", |t| t.contains("already in use"))
        .await;

    // ...and the page keeps working: the hex datagram goes through.
    browser.click("#send-button").await;
    let rows = browser.wait_count("tr.packet-row", 4).await;
    assert!(rows[3].text().await.unwrap().contains("de ad be ef"));
    let shot = browser.screenshot("e2e-walking-skeleton.png").await;
    eprintln!("screenshot: {}", shot.display());
}
