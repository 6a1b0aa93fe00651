//! How precisely a link keeps its delay under load. Run by `cargo xtask bench`.
//! Prints a table (each figure the median of several runs, with min..max) and writes
//! target/bench/link_timing.json; asserts nothing (speed is measured, not asserted).

use std::time::Duration;

use serde_json::json;
use socklab_tests::bench::{Report, Spreads, link_timing};

const RATE: u32 = 10_000;
const SECONDS: u64 = 3;
const RUNS: usize = 3;

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (duration, runs) = if smoke {
        (Duration::from_millis(100), 1)
    } else {
        (Duration::from_secs(SECONDS), RUNS)
    };
    let mut report = Report::new("link_timing", smoke);
    println!(
        "link timing: {RATE} datagrams/s for {duration:?}, error = arrival - (send + delay), median of {runs} run(s) (min..max)"
    );
    for (name, delay_ms) in [("relay overhead (0 ms)", 0.0), ("delay 20 ms", 20.0)] {
        let mut spreads = Vec::new();
        let mut lost = 0;
        for _ in 0..runs {
            let (spread, l) = link_timing(RATE, duration, delay_ms).await;
            spreads.push(spread);
            lost = lost.max(l);
        }
        let s = Spreads::of(&spreads);
        println!(
            "{name:<22} {} datagrams/run, lost {lost}: {}",
            s.count,
            s.show_ms()
        );
        report.add(json!({
            "case": name, "delay_ms": delay_ms, "rate_per_sec": RATE, "lost": lost,
            "error": s.json(),
        }));
    }
    report.write();
}
