//! How precisely a link keeps time, at the rates people use: from a few datagrams a
//! second (a game's 60 Hz is in between) to 100,000/s. At each rate the direct loopback
//! path is measured first, in the same run, as the floor; the link's error is reported
//! above it, with no delay (the relay's own overhead) and with 20 ms. The link runs in
//! the release server as its own process (`target/release/socklab`, which `cargo xtask
//! bench` builds), the sender and receiver in this one, each on its own thread. Run by
//! `cargo xtask bench` (`-- --rate N`, repeatable, measures only those rates). Prints a table (each figure the median of several runs, with
//! min..max) and writes target/bench/link_timing.json; asserts nothing (speed is
//! measured, not asserted).

use std::time::Duration;

use serde_json::json;
use socklab_tests::Client;
use socklab_tests::bench::{Report, ServerProcess, Spreads, direct_timing, link_timing_with};

const TOKEN: &str = "link-timing-bench";

const RATES: [u32; 5] = [10, 100, 1_000, 10_000, 100_000];
const SECONDS: u64 = 3;
const RUNS: usize = 3;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    // `--rate N` (repeatable) measures only those rates.
    let chosen: Vec<u32> = args
        .windows(2)
        .filter(|w| w[0] == "--rate")
        .filter_map(|w| w[1].parse().ok())
        .collect();
    let rates: Vec<u32> = if chosen.is_empty() {
        RATES.to_vec()
    } else {
        chosen
    };
    let (duration, runs) = if smoke {
        (Duration::from_millis(50), 1)
    } else {
        (Duration::from_secs(SECONDS), RUNS)
    };
    let mut report = Report::new("link_timing", smoke);
    let server = ServerProcess::start(TOKEN, &[]);
    println!(
        "link timing for {duration:?} per rate (at least 5 datagrams): error = arrival - (send + delay), median of {runs} run(s) (min..max); \"above\" = the link's p50/p99 less the direct path's"
    );
    for rate in rates {
        let mut floor = Vec::new();
        for _ in 0..runs {
            floor.push(direct_timing(rate, duration).await.0);
        }
        let floor = Spreads::of(&floor);
        println!("{rate:>7}/s  direct loopback        {}", floor.show_us());
        report.add(json!({
            "case": "direct", "rate_per_sec": rate, "error": floor.json(),
        }));
        for (name, delay_ms) in [("link, no delay", 0.0), ("link, delay 20 ms", 20.0)] {
            let mut spreads = Vec::new();
            let mut lost = 0;
            let mut views = Vec::new();
            for _ in 0..runs {
                // A session of its own for each run.
                let client = Client::connect_with(server.addr, &format!("token={TOKEN}"))
                    .await
                    .expect("a session");
                let timed = link_timing_with(client, rate, duration, delay_ms).await;
                spreads.push(timed.error);
                lost = lost.max(timed.lost);
                views.extend(timed.lab_view);
            }
            let s = Spreads::of(&spreads);
            let above_p50 = s.p50_us.median - floor.p50_us.median;
            let above_p99 = s.p99_us.median - floor.p99_us.median;
            println!(
                "{rate:>7}/s  {name:<22} {}  above: p50 {above_p50:.1} us, p99 {above_p99:.1} us, lost {lost}",
                s.show_us()
            );
            // The lab's own account: the flows table's time in the link, less the delay.
            let delay_us = delay_ms * 1e3;
            let view = |pick: fn(&socklab_protocol::flow::Latency) -> u64| {
                let mut v: Vec<f64> = views
                    .iter()
                    .map(|l| pick(l) as f64 / 1e3 - delay_us)
                    .collect();
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            };
            let (view_p50, view_p99) = (view(|l| l.p50), view(|l| l.p99));
            if let (Some(p50), Some(p99)) = (view_p50, view_p99) {
                println!(
                    "{:>9}  {:<22} the flows table's time in the link, less the delay: p50 {p50:.1} us, p99 {p99:.1} us",
                    "", "  lab's own view"
                );
            }
            report.add(json!({
                "case": name, "delay_ms": delay_ms, "rate_per_sec": rate, "lost": lost,
                "error": s.json(), "above_direct_p50_us": above_p50, "above_direct_p99_us": above_p99,
                "lab_view_above_delay_p50_us": view_p50, "lab_view_above_delay_p99_us": view_p99,
            }));
        }
    }
    drop(server);
    report.write();
}
