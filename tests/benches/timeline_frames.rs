//! The timeline's frame budget in headless Chromium: a session of N datagrams, then pan
//! and zoom one wheel event at a time. Run by `cargo xtask bench`. Prints figures;
//! asserts nothing.

use socklab_server::Config;
use socklab_tests::bench::timeline_frames;
use socklab_tests::browser::Browser;
use socklab_tests::{TestServer, web_dir};

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let sizes: &[(u64, u64)] = if smoke {
        &[(2_000, 20_000)]
    } else {
        &[(10_000, 50_000), (100_000, 50_000)]
    };
    println!("timeline frames (headless Chromium): draw time per frame and wheel-to-drawn latency");
    println!(
        "{:>10} {:>9} | {:>22} | {:>22} | {:>22} | {:>8} {:>8} {:>8}",
        "datagrams",
        "ingest s",
        "zoomed in p50/p99/max",
        "all in view p50/p99/max",
        "input→drawn p50/p99/max",
        "arrows",
        "JS MiB",
        "wasm MiB"
    );
    for &(datagrams, rate) in sizes {
        // A log big enough to hold the whole session, so the page sees all of it.
        let server = TestServer::with_config(Config {
            web_dir: Some(web_dir()),
            log_max_events: 2_000_000,
            log_max_bytes: 1 << 30,
            ..Config::default()
        })
        .await;
        let browser = Browser::start().await;
        let f = timeline_frames(&browser, &server.url(), datagrams, rate).await;
        let ms = |s: &socklab_tests::bench::Spread| {
            format!(
                "{:.2}/{:.2}/{:.2}",
                s.p50_us / 1e3,
                s.p99_us / 1e3,
                s.max_us / 1e3
            )
        };
        println!(
            "{:>10} {:>9.1} | {:>22} | {:>22} | {:>22} | {:>8} {:>8.1} {:>8.1}",
            f.datagrams,
            f.ingest_s,
            ms(&f.zoomed_in),
            ms(&f.whole),
            ms(&f.input_to_drawn),
            f.arrows_drawn,
            f.js_heap_mib,
            f.wasm_mib
        );
        browser.close().await;
        server.stop().await;
    }
}
