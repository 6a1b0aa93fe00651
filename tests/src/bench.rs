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
