//! The link model's promises, checked over many datagrams with fixed seeds, and its
//! invariants over random settings and traffic (proptest).

use std::collections::HashMap;

use proptest::prelude::*;
use socklab_impair::{DropReason, Fate, Nanos, Shaper, Verdict};
use socklab_protocol::link::{Impairments, JitterDist, Loss, MtuAction};

const N: usize = 100_000;
const MS: Nanos = 1_000_000;
const V4: usize = 28;

fn base() -> Impairments {
    Impairments::default()
}

/// Feeds `n` datagrams of `len` bytes, one every `gap_ns`, and returns the verdicts.
fn run(settings: Impairments, seed: u64, n: usize, gap_ns: Nanos, len: usize) -> Vec<Verdict> {
    let mut shaper = Shaper::new(settings, seed);
    (0..n)
        .map(|i| shaper.arrive(i as Nanos * gap_ns, len, V4))
        .collect()
}

fn rate(verdicts: &[Verdict], pick: impl Fn(&Verdict) -> bool) -> f64 {
    verdicts.iter().filter(|v| pick(v)).count() as f64 / verdicts.len() as f64 * 100.0
}

fn dropped(v: &Verdict) -> bool {
    matches!(v.fate, Fate::Dropped(_))
}

fn forward(v: &Verdict) -> Option<&socklab_impair::Forward> {
    match &v.fate {
        Fate::Forwarded(f) => Some(f),
        Fate::Dropped(_) => None,
    }
}

#[test]
fn random_loss_matches_the_setting() {
    for pct in [0.0, 1.0, 10.0, 50.0, 100.0] {
        let verdicts = run(
            Impairments {
                loss: Loss::Random { pct },
                ..base()
            },
            1,
            N,
            MS,
            100,
        );
        let observed = rate(&verdicts, dropped);
        assert!(
            (observed - pct).abs() <= 0.5,
            "setting {pct} %, observed {observed} %"
        );
        assert!(
            verdicts
                .iter()
                .all(|v| !matches!(v.fate, Fate::Dropped(r) if r != DropReason::RandomLoss))
        );
    }
}

#[test]
fn gilbert_elliott_bursts_have_the_expected_length() {
    // p = 2 %, r = 25 %: bad spells last 1/r = 4 datagrams; stationary loss p/(p+r).
    let (p, r) = (2.0, 25.0);
    let loss = Loss::GilbertElliott {
        p_pct: p,
        r_pct: r,
        loss_good_pct: 0.0,
        loss_bad_pct: 100.0,
    };
    let verdicts = run(Impairments { loss, ..base() }, 2, N, MS, 100);
    let mut bursts = Vec::new();
    let mut current = 0;
    for v in &verdicts {
        if dropped(v) {
            assert_eq!(v.fate, Fate::Dropped(DropReason::BurstLoss));
            current += 1;
        } else if current > 0 {
            bursts.push(current);
            current = 0;
        }
    }
    let mean = bursts.iter().sum::<usize>() as f64 / bursts.len() as f64;
    assert!(
        (mean - 100.0 / r).abs() / (100.0 / r) < 0.05,
        "mean burst {mean}"
    );
    let expected = p / (p + r) * 100.0;
    let observed = rate(&verdicts, dropped);
    assert!(
        (observed - expected).abs() <= 0.5,
        "loss {observed} % vs {expected} %"
    );
}

#[test]
fn delays_stay_in_bounds_with_the_right_mean() {
    for dist in [JitterDist::Uniform, JitterDist::Normal] {
        let settings = Impairments {
            delay_ms: 50.0,
            jitter_ms: 10.0,
            jitter_dist: dist,
            jitter_may_reorder: true,
            ..base()
        };
        let verdicts = run(settings, 3, N, MS, 100);
        let delays: Vec<f64> = verdicts
            .iter()
            .map(|v| forward(v).unwrap().delay_ns as f64 / MS as f64)
            .collect();
        let (lo, hi) = match dist {
            JitterDist::Uniform => (40.0, 60.0),
            JitterDist::Normal => (20.0, 80.0),
        };
        assert!(
            delays.iter().all(|d| (lo..=hi).contains(d)),
            "{dist:?} out of bounds"
        );
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 50.0).abs() / 50.0 < 0.05, "{dist:?} mean {mean}");
        let spread = delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64;
        let want = match dist {
            JitterDist::Uniform => 100.0 / 3.0,  // (2 * 10)^2 / 12
            JitterDist::Normal => 100.0 * 0.973, // cut at ±3 sigma
        };
        assert!(
            (spread - want).abs() / want < 0.05,
            "{dist:?} variance {spread} vs {want}"
        );
    }
}

#[test]
fn without_jitter_reordering_datagrams_leave_in_order() {
    let settings = Impairments {
        delay_ms: 20.0,
        jitter_ms: 15.0,
        ..base()
    };
    let verdicts = run(settings, 4, 10_000, MS / 10, 100);
    let departures: Vec<Nanos> = verdicts
        .iter()
        .map(|v| forward(v).unwrap().departure.unwrap())
        .collect();
    assert!(departures.windows(2).all(|w| w[0] <= w[1]));
    // And with it allowed, 15 ms of jitter at 10,000 datagrams/s does reorder.
    let verdicts = run(
        Impairments {
            jitter_may_reorder: true,
            ..settings
        },
        4,
        10_000,
        MS / 10,
        100,
    );
    let departures: Vec<Nanos> = verdicts
        .iter()
        .map(|v| forward(v).unwrap().departure.unwrap())
        .collect();
    assert!(departures.windows(2).any(|w| w[0] > w[1]));
}

#[test]
fn held_back_datagrams_are_overtaken_by_exactly_the_gap() {
    let settings = Impairments {
        reorder_pct: 10.0,
        reorder_gap: 3,
        ..base()
    };
    let mut shaper = Shaper::new(settings, 5);
    let mut departure_of: HashMap<u64, Nanos> = HashMap::new();
    let mut held = 0;
    for i in 0..N as u64 {
        let v = shaper.arrive(i * MS, 100, V4);
        let f = forward(&v).unwrap();
        match f.departure {
            Some(d) => {
                departure_of.insert(v.seq, d);
            }
            None => held += 1,
        }
        for r in v.released {
            assert_eq!(r.overtaken_by, 3);
            departure_of.insert(r.seq, r.departure);
        }
    }
    for r in shaper.expire(Nanos::MAX) {
        departure_of.insert(r.seq, r.departure);
    }
    let observed = held as f64 / N as f64 * 100.0;
    assert!((observed - 10.0).abs() <= 0.5, "held {observed} %");
    assert_eq!(departure_of.len(), N, "every datagram leaves exactly once");
    assert_eq!(shaper.counters().reordered, held);
}

#[test]
fn reordering_needs_no_delay_and_a_lull_does_not_strand_anything() {
    let settings = Impairments {
        reorder_pct: 100.0,
        reorder_gap: 5,
        reorder_timeout_ms: 50.0,
        ..base()
    };
    let mut shaper = Shaper::new(settings, 6);
    let v = shaper.arrive(0, 10, V4);
    assert_eq!(forward(&v).unwrap().held_for, Some(5));
    assert_eq!(shaper.next_expiry(), Some(50 * MS));
    assert!(shaper.expire(49 * MS).is_empty());
    let released = shaper.expire(50 * MS);
    assert_eq!(
        (released.len(), released[0].seq, released[0].overtaken_by),
        (1, 0, 0)
    );
}

#[test]
fn duplication_and_corruption_match_their_settings() {
    let settings = Impairments {
        duplicate_pct: 5.0,
        corrupt_pct: 3.0,
        ..base()
    };
    let verdicts = run(settings, 7, N, MS, 200);
    let dup = rate(&verdicts, |v| forward(v).unwrap().duplicate.is_some());
    let cor = rate(&verdicts, |v| forward(v).unwrap().corrupt.is_some());
    assert!((dup - 5.0).abs() <= 0.5, "duplicated {dup} %");
    assert!((cor - 3.0).abs() <= 0.5, "corrupted {cor} %");
    for v in &verdicts {
        if let Some(c) = forward(v).unwrap().corrupt {
            assert!(c.offset < 200 && c.mask != 0);
        }
    }
}

#[test]
fn the_rate_limit_holds_over_every_one_second_window() {
    // 1 Mbit/s; datagrams of 972 + 28 = 1000 bytes offered at 200/s = 1.6 Mbit/s.
    let rate_bps = 1_000_000;
    let settings = Impairments {
        rate_bps,
        queue_packets: 50,
        ..base()
    };
    let verdicts = run(settings, 8, 20_000, 5 * MS, 972);
    let mut departures: Vec<Nanos> = verdicts
        .iter()
        .filter_map(|v| forward(v).and_then(|f| f.departure))
        .collect();
    departures.sort_unstable();
    let per_window_max = rate_bps / 8 + 1000; // one second's bytes plus one datagram in flight
    let mut start = 0;
    for end in 0..departures.len() {
        while departures[end] - departures[start] >= 1_000_000_000 {
            start += 1;
        }
        let bytes = (end - start + 1) as u64 * 1000;
        assert!(bytes <= per_window_max, "{bytes} bytes within one second");
    }
    // Offered 1.6x the rate with a 50-packet queue: the excess is tail-dropped.
    let queue_drops = verdicts
        .iter()
        .filter(|v| v.fate == Fate::Dropped(DropReason::QueueFull))
        .count();
    let expected = 20_000.0 * (1.0 - 1.0 / 1.6);
    assert!(
        (queue_drops as f64 - expected).abs() / expected < 0.02,
        "{queue_drops} queue drops"
    );
}

#[test]
fn mtu_drops_or_truncates() {
    let settings = Impairments {
        mtu: 1500,
        ..base()
    };
    let mut shaper = Shaper::new(settings, 9);
    assert!(
        forward(&shaper.arrive(0, 1472, V4)).is_some(),
        "1472 + 28 fits"
    );
    assert_eq!(
        shaper.arrive(0, 1473, V4).fate,
        Fate::Dropped(DropReason::Mtu)
    );
    shaper.set_settings(Impairments {
        mtu_action: MtuAction::Truncate,
        ..settings
    });
    let v = shaper.arrive(0, 4000, V4);
    assert_eq!(forward(&v).unwrap().truncate_to, Some(1472));
    assert_eq!(shaper.counters().dropped_mtu, 1);
    assert_eq!(shaper.counters().truncated, 1);
}

#[test]
fn the_same_seed_gives_the_same_decisions() {
    let settings = Impairments {
        loss: Loss::Random { pct: 20.0 },
        delay_ms: 10.0,
        jitter_ms: 5.0,
        reorder_pct: 5.0,
        duplicate_pct: 5.0,
        corrupt_pct: 5.0,
        ..base()
    };
    let a = run(settings, 42, 10_000, MS, 100);
    assert_eq!(a, run(settings, 42, 10_000, MS, 100));
    assert_ne!(a, run(settings, 43, 10_000, MS, 100));
}

#[test]
fn live_changes_keep_datagrams_in_flight() {
    let mut shaper = Shaper::new(
        Impairments {
            reorder_pct: 100.0,
            reorder_gap: 2,
            ..base()
        },
        10,
    );
    shaper.arrive(0, 10, V4);
    assert_eq!(shaper.held(), 1);
    shaper.set_settings(base());
    assert!(shaper.arrive(MS, 10, V4).released.is_empty());
    let v = shaper.arrive(2 * MS, 10, V4);
    assert_eq!(
        v.released.len(),
        1,
        "the held datagram still leaves after its overtakers"
    );
}

fn any_settings() -> impl Strategy<Value = Impairments> {
    (
        0.0..60.0f64,
        0.0..30.0f64,
        0.0..20.0f64,
        any::<bool>(),
        0.0..50.0f64,
        1..5u32,
        0.0..20.0f64,
        0.0..20.0f64,
        prop_oneof![Just(0u64), 100_000..10_000_000u64],
        0..20u32,
    )
        .prop_map(
            |(loss, delay, jitter, may_reorder, reorder, gap, dup, corrupt, rate, queue)| {
                Impairments {
                    loss: Loss::Random { pct: loss },
                    delay_ms: delay,
                    jitter_ms: jitter,
                    jitter_may_reorder: may_reorder,
                    reorder_pct: reorder,
                    reorder_gap: gap,
                    reorder_timeout_ms: 30.0,
                    duplicate_pct: dup,
                    corrupt_pct: corrupt,
                    rate_bps: rate,
                    queue_packets: queue,
                    ..Impairments::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the settings and the traffic: every datagram is either dropped with a
    /// reason or leaves exactly once (plus its copy), never before it arrived, and no
    /// datagram is invented.
    #[test]
    fn nothing_is_lost_or_invented(settings in any_settings(), seed in any::<u64>(),
                                   gaps in prop::collection::vec(0..3_000_000u64, 1..400),
                                   lens in prop::collection::vec(0..1500usize, 1..400)) {
        let mut shaper = Shaper::new(settings, seed);
        let mut now = 0;
        let mut arrivals = HashMap::new();
        let mut departures: HashMap<u64, Nanos> = HashMap::new();
        let mut dropped_count = 0;
        let leave = |seq: u64, at: Nanos, departures: &mut HashMap<u64, Nanos>| {
            prop_assert!(departures.insert(seq, at).is_none(), "seq {} left twice", seq);
            Ok(())
        };
        for (i, gap) in gaps.iter().enumerate() {
            now += gap;
            for r in shaper.expire(now) {
                leave(r.seq, r.departure, &mut departures)?;
            }
            let v = shaper.arrive(now, lens[i % lens.len()], 28);
            arrivals.insert(v.seq, now);
            match v.fate {
                Fate::Dropped(_) => dropped_count += 1,
                Fate::Forwarded(f) => {
                    if let Some(d) = f.departure {
                        leave(v.seq, d, &mut departures)?;
                    }
                    if let Some(d) = f.duplicate {
                        prop_assert!(d >= now);
                    }
                }
            }
            for r in v.released {
                leave(r.seq, r.departure, &mut departures)?;
            }
        }
        for r in shaper.expire(Nanos::MAX) {
            leave(r.seq, r.departure, &mut departures)?;
        }
        prop_assert_eq!(departures.len() + dropped_count, gaps.len());
        for (seq, at) in &departures {
            prop_assert!(at >= &arrivals[seq], "seq {} left before it arrived", seq);
        }
        let c = shaper.counters();
        prop_assert_eq!(c.arrived as usize, gaps.len());
        prop_assert_eq!(c.forwarded as usize, departures.len());
        prop_assert_eq!(shaper.held(), 0);
    }
}
