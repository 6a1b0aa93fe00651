//! How precisely a link keeps its delay under load. Run by `cargo xtask bench`.
//! Prints figures; asserts nothing (speed is measured, not asserted).

use std::time::Duration;

use socklab_tests::bench::link_timing;

const RATE: u32 = 10_000;
const SECONDS: u64 = 3;

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let duration = if smoke {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(SECONDS)
    };
    println!("link timing: {RATE} datagrams/s for {duration:?}, error = arrival - (send + delay)");
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>10} {:>6}",
        "case", "count", "p50 µs", "p99 µs", "max µs", "lost"
    );
    for (name, delay_ms) in [("relay overhead (0 ms)", 0.0), ("delay 20 ms", 20.0)] {
        let (spread, lost) = link_timing(RATE, duration, delay_ms).await;
        println!(
            "{name:<28} {:>8} {:>10.1} {:>10.1} {:>10.1} {lost:>6}",
            spread.count, spread.p50_us, spread.p99_us, spread.max_us
        );
    }
}
