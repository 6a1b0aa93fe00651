//! The timeline's frame budget in headless Chromium: a session of N datagrams, then pan
//! and zoom one wheel event at a time. Run by `cargo xtask bench`. Prints figures;
//! asserts nothing.

use serde_json::json;
use socklab_server::Config;
use socklab_tests::bench::{
    Frames, Median, Report, Spread, Spreads, timeline_frames, timeline_live, timeline_recorded,
};
use socklab_tests::browser::Browser;
use socklab_tests::{TestServer, web_dir};

/// Runs per size (each with a fresh server and browser).
const RUNS: usize = 3;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    // `--size N`: only the frames case of N datagrams (and no live case).
    let only: Option<u64> = args
        .windows(2)
        .find(|w| w[0] == "--size")
        .and_then(|w| w[1].parse().ok());
    // `--live`: only the live cases; `--recorded`: only the recorded ones.
    let live_only = args.iter().any(|a| a == "--live");
    let recorded_only = args.iter().any(|a| a == "--recorded");
    let sizes: Vec<(u64, u64)> = if smoke {
        vec![(2_000, 20_000)]
    } else if live_only || recorded_only {
        Vec::new()
    } else if let Some(n) = only {
        vec![(n, 50_000)]
    } else {
        vec![(10_000, 50_000), (100_000, 50_000)]
    };
    let runs = if smoke { 1 } else { RUNS };
    let mut report = Report::new("timeline_frames", smoke);
    println!(
        "timeline frames (headless Chromium), ms, median of {runs} run(s) (min..max): draw time per frame and wheel-to-drawn latency"
    );
    for &(datagrams, rate) in &sizes {
        let mut all = Vec::new();
        for _ in 0..runs {
            // A log big enough to hold the whole session, so the page sees all of it.
            let server = TestServer::with_config(Config {
                web_dir: Some(web_dir()),
                log_max_events: 2_000_000,
                log_max_bytes: 1 << 30,
                ..Config::default()
            })
            .await;
            let browser = Browser::start().await;
            all.push(timeline_frames(&browser, &server.url(), datagrams, rate).await);
            browser.close().await;
            server.stop().await;
        }
        let spreads =
            |f: fn(&Frames) -> Spread| Spreads::of(&all.iter().map(f).collect::<Vec<_>>());
        let median = |f: fn(&Frames) -> f64| Median::of(all.iter().map(f));
        let (zoomed, whole, input) = (
            spreads(|f| f.zoomed_in),
            spreads(|f| f.whole),
            spreads(|f| f.input_to_drawn),
        );
        let (ingest, heap, wasm, arrows) = (
            median(|f| f.ingest_s),
            median(|f| f.js_heap_mib),
            median(|f| f.wasm_mib),
            median(|f| f.arrows_drawn as f64),
        );
        println!("{datagrams} datagrams (generated at {rate}/s):");
        println!("  page ingest            {} s", ingest.show(1));
        println!("  draw, zoomed in        {}", zoomed.show_ms());
        println!(
            "  draw, all in view      {}  ({} arrows)",
            whole.show_ms(),
            arrows.show(0)
        );
        println!("  wheel → drawn          {}", input.show_ms());
        println!(
            "  JS heap {} MiB, wasm memory {} MiB",
            heap.show(1),
            wasm.show(1)
        );
        report.add(json!({
            "datagrams": datagrams, "rate_per_sec": rate, "ingest_s": ingest.json(),
            "draw_zoomed_in": zoomed.json(), "draw_all_in_view": whole.json(),
            "wheel_to_drawn": input.json(), "arrows_drawn": arrows.json(),
            "js_heap_mib": heap.json(), "wasm_mib": wasm.json(),
        }));
    }
    // Live: the page while a generator runs fast (the page does not wait for the end;
    // it is measured as the datagrams come and a few seconds after).
    let live: &[(u64, u64)] = if smoke {
        &[(5_000, 5_000)]
    } else if only.is_some() || recorded_only {
        &[]
    } else {
        &[(250_000, 50_000), (1_000_000, 100_000)]
    };
    println!(
        "live (headless Chromium): frame interval and draw time, ms, while the generator runs and 5 s after"
    );
    for &(datagrams, rate) in live {
        let server = TestServer::with_config(Config {
            web_dir: Some(web_dir()),
            ..Config::default()
        })
        .await;
        let browser = Browser::start().await;
        // `--keep-up-rate N`: the page asks for at most N events a second (0: none).
        let url = match args.windows(2).find(|w| w[0] == "--keep-up-rate") {
            Some(w) => format!("{}?keep_up_rate={}", server.url(), w[1]),
            None => server.url(),
        };
        let l = timeline_live(&browser, &url, datagrams, rate, 5.0).await;
        browser.close().await;
        server.stop().await;
        println!("{datagrams} datagrams at {rate}/s:");
        println!(
            "  held by the page       {} arrows of {} sent ({:.1} %), {} packet rows",
            l.arrows,
            l.sent,
            l.arrows as f64 * 100.0 / l.sent as f64,
            l.rows
        );
        let ms = |s: &Spread| {
            format!(
                "p50 {:.1}, p99 {:.1}, max {:.1} ({} frames)",
                s.p50_us / 1e3,
                s.p99_us / 1e3,
                s.max_us / 1e3,
                s.count
            )
        };
        println!(
            "  spared by the server   {} events (the page stays current)",
            l.passed
        );
        println!(
            "  whole run in view      {} arrows, and the server's counts (bars) where the page was spared them: {} datagrams in those buckets; the counts over the spared part of the view total {} ({:.1} % of the {} to send)",
            l.drawn,
            l.counted,
            l.server_sent,
            l.server_sent as f64 * 100.0 / l.sent as f64,
            l.sent
        );
        println!("  frame interval         {}", ms(&l.frames));
        println!("  draw                   {}", ms(&l.draw));
        println!(
            "  page's long tasks      {} ({:.0} ms in all, longest {:.0} ms)",
            l.long_tasks.0, l.long_tasks.1, l.long_tasks.2
        );
        println!(
            "  CPU, cores             {:.2} the server (with the benchmark's client), {:.2} the whole machine",
            l.cores.0, l.cores.1
        );
        report.add(json!({
            "case": "live", "datagrams": datagrams, "rate_per_sec": rate,
            "arrows_held": l.arrows, "packet_rows": l.rows, "events_spared": l.passed,
            "fitted_arrows": l.drawn, "fitted_counted": l.counted,
            "fitted_server_sent": l.server_sent,
            "frame_interval_p50_ms": l.frames.p50_us / 1e3,
            "frame_interval_p99_ms": l.frames.p99_us / 1e3,
            "draw_p50_ms": l.draw.p50_us / 1e3, "draw_p99_ms": l.draw.p99_us / 1e3,
            "long_tasks": l.long_tasks.0, "long_tasks_ms": l.long_tasks.1,
            "server_cores": l.cores.0, "machine_cores": l.cores.1,
        }));
    }
    // Recorded: a recording too big to read whole, opened, panned and zoomed (the smoke
    // run reads a small one a page at a time).
    let recorded: &[(u64, u64)] = if smoke {
        // More events than a page holds (10,000), so part of it is drawn as counts.
        &[(6_000, 20_000)]
    } else if only.is_some() || live_only {
        &[]
    } else {
        &[(100_000, 50_000), (1_000_000, 100_000)]
    };
    println!(
        "recorded (headless Chromium): a recording opened a page at a time, its counts drawn, panned and zoomed; ms"
    );
    for &(datagrams, rate) in recorded {
        let (_dir, server) = TestServer::with_store(Config {
            web_dir: Some(web_dir()),
            ..Config::default()
        })
        .await;
        let browser = Browser::start().await;
        let query = if smoke { "?replay_whole=1000" } else { "" };
        let r = timeline_recorded(&browser, &server, datagrams, rate, query).await;
        browser.close().await;
        server.stop().await;
        let ms = |s: &Spread| format!("p50 {:.1} / p99 {:.1} ms", s.p50_us / 1e3, s.p99_us / 1e3);
        println!(
            "{datagrams} datagrams recorded at {rate}/s ({} events):",
            r.events
        );
        println!("  open (outline and last page read)   {:.2} s", r.open_s);
        println!(
            "  counts drawn, first time / again     {:.2} s / {:.2} s",
            r.counts_s, r.counts_again_s
        );
        println!(
            "  whole recording in view: draw {}, wheel → drawn {}",
            ms(&r.whole),
            ms(&r.whole_input)
        );
        println!(
            "  zoomed in ({} arrows read from the store): draw {}, wheel → drawn {}",
            r.fetched,
            ms(&r.zoomed_in),
            ms(&r.zoomed_input)
        );
        println!(
            "  JS heap {:.1} MiB, wasm memory {:.1} MiB",
            r.js_heap_mib, r.wasm_mib
        );
        report.add(json!({
            "case": "recorded", "datagrams": datagrams, "rate_per_sec": rate,
            "events": r.events, "open_s": r.open_s, "counts_s": r.counts_s,
            "counts_again_s": r.counts_again_s,
            "whole_draw_p50_ms": r.whole.p50_us / 1e3, "whole_draw_p99_ms": r.whole.p99_us / 1e3,
            "whole_wheel_p50_ms": r.whole_input.p50_us / 1e3,
            "whole_wheel_p99_ms": r.whole_input.p99_us / 1e3,
            "zoomed_draw_p50_ms": r.zoomed_in.p50_us / 1e3,
            "zoomed_draw_p99_ms": r.zoomed_in.p99_us / 1e3,
            "zoomed_wheel_p50_ms": r.zoomed_input.p50_us / 1e3,
            "zoomed_wheel_p99_ms": r.zoomed_input.p99_us / 1e3,
            "fetched": r.fetched, "js_heap_mib": r.js_heap_mib, "wasm_mib": r.wasm_mib,
        }));
    }
    report.write();
}
