//! The analyzer's definitions, checked on hand-made cases and on random traffic.
//!
//! (Over 600 lines: one case per definition of the analysis, each small; they share
//! the `Run` driver above.)

use std::net::SocketAddr;

use proptest::prelude::*;
use socklab_analysis::seqhdr::SeqHeader;
use socklab_analysis::{Analyzer, FlowKey, FlowStats, Input, Limits, LossCause, Method, Outcome};
use socklab_protocol::link::{DropReason, LinkDir, LinkFate, LinkId};
use socklab_protocol::{Endpoint, EventId};

const A: &str = "127.0.0.1:1000";
const B: &str = "127.0.0.1:2000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

/// The flow from A to B.
fn a_to_b() -> FlowKey {
    FlowKey {
        src: ep(A),
        dst: ep(B),
    }
}

/// Feeds events and collects outcomes, with event ids handed out in order.
struct Run {
    analyzer: Analyzer,
    out: Vec<Outcome>,
    next_id: u64,
}

impl Run {
    fn new(lab: &[&str]) -> Run {
        let mut run = Run {
            analyzer: Analyzer::new(1_000),
            out: Vec::new(),
            next_id: 1,
        };
        for a in lab {
            run.feed(Input::Bound {
                addr: &ep(a),
                read_size: None,
            });
        }
        run
    }

    fn feed(&mut self, input: Input<'_>) {
        self.analyzer.feed(input, &mut self.out);
    }

    fn id(&mut self) -> EventId {
        self.next_id += 1;
        EventId(self.next_id)
    }

    fn send(&mut self, t: u64, from: &str, to: &str, bytes: &[u8]) -> EventId {
        let id = self.id();
        self.feed(Input::Sent {
            id,
            t_ns: t,
            local: &ep(from),
            peer: &ep(to),
            bytes,
        });
        id
    }

    fn recv(&mut self, t: u64, at: &str, from: &str, bytes: &[u8]) -> EventId {
        let id = self.id();
        self.feed(Input::Received {
            id,
            t_ns: t,
            local: &ep(at),
            peer: &ep(from),
            bytes,
        });
        id
    }

    fn finish(&mut self) {
        self.analyzer.tick(u64::MAX / 2, &mut self.out);
    }

    fn flow(&self, method: Method) -> FlowStats {
        self.analyzer
            .stats()
            .into_iter()
            .find(|s| s.method == method)
            .expect("a flow of that kind")
    }
}

#[test]
fn losses_the_receiving_socket_reported_as_kernel_drops_are_the_kernels() {
    let mut run = Run::new(&[A, B]);
    let flow = a_to_b();
    let sends: Vec<EventId> = (0..4u8)
        .map(|i| run.send(u64::from(i) * 10, A, B, &[i]))
        .collect();
    // Datagrams 1 and 2 never arrive; 3 does, with the kernel's count of 1 drop; the
    // other one is unexplained.
    run.recv(5, B, A, &[0]);
    run.recv(40, B, A, &[3]);
    run.feed(Input::KernelDrops {
        addr: &ep(B),
        dropped: 1,
    });
    run.out.clear();
    run.finish();
    let causes: Vec<(EventId, LossCause)> = run
        .out
        .iter()
        .filter_map(|o| match o {
            Outcome::Lost {
                send,
                flow: f,
                cause,
            } if *f == flow => Some((*send, *cause)),
            _ => None,
        })
        .collect();
    assert_eq!(
        causes,
        [
            (sends[1], LossCause::Kernel),
            (sends[2], LossCause::Timeout)
        ],
        "each reported drop explains one loss, oldest first"
    );
    // Drops reported at another socket explain nothing here, and a closed socket's
    // unexplained drops are forgotten.
    let s = run.send(100, A, B, b"x");
    run.feed(Input::KernelDrops {
        addr: &ep(A),
        dropped: 5,
    });
    run.feed(Input::Closed { addr: &ep(A) });
    run.out.clear();
    run.finish();
    assert_eq!(
        run.out,
        [Outcome::Lost {
            send: s,
            flow: flow.clone(),
            cause: LossCause::Timeout
        }]
    );
}

#[test]
fn in_order_delivery_gives_latency_and_no_loss() {
    let mut run = Run::new(&[A, B]);
    let s1 = run.send(0, A, B, b"one");
    let s2 = run.send(10, A, B, b"two");
    let r1 = run.recv(25, B, A, b"one");
    let r2 = run.recv(40, B, A, b"two");
    run.finish();
    let flow = a_to_b();
    assert_eq!(
        run.out,
        vec![
            Outcome::Delivered {
                send: s1,
                recv: r1,
                flow: flow.clone(),
                latency_ns: 25,
                reordered_by: 0,
                late: false
            },
            Outcome::Delivered {
                send: s2,
                recv: r2,
                flow: flow.clone(),
                latency_ns: 30,
                reordered_by: 0,
                late: false
            },
        ]
    );
    let stats = run.flow(Method::Matched);
    assert_eq!(
        (
            stats.sent,
            stats.received,
            stats.lost,
            stats.reordered,
            stats.duplicated
        ),
        (2, 2, 0, 0, 0)
    );
    let lat = stats.latency.unwrap();
    assert_eq!((lat.min, lat.p50, lat.max), (25, 25, 30));
    // RFC 3550: transits 25 then 30: D = 5, J = 5/16.
    assert_eq!(stats.jitter_ns, Some(5.0 / 16.0));
}

#[test]
fn a_receiver_that_reads_fewer_bytes_gets_its_datagrams_cut_and_delivered() {
    // B reads 4 bytes of each datagram, as `recvfrom(4)` does; the rest is gone.
    let mut run = Run::new(&[A]);
    run.feed(Input::Bound {
        addr: &ep(B),
        read_size: Some(4),
    });
    let s1 = run.send(0, A, B, b"hello world");
    let s2 = run.send(1, A, B, b"hi");
    let r1 = run.recv(5, B, A, b"hell");
    let r2 = run.recv(6, B, A, b"hi");
    // Through a link that cuts nothing, the cut is made at the receiver all the same.
    let (listen, upstream) = ("127.0.0.1:3000", "127.0.0.1:3001");
    let link = LinkId::new("l1");
    run.feed(Input::LinkCreated {
        link: &link,
        listen: addr(listen),
        upstream: addr(upstream),
        target: addr(B),
    });
    run.feed(Input::LinkClient {
        link: &link,
        client: addr(A),
    });
    let s3 = run.send(10, A, listen, b"abcdefgh");
    run.feed(Input::LinkDecision {
        id: EventId(900),
        t_ns: 10,
        link: &link,
        dir: LinkDir::C2t,
        seq: 0,
        duplicated: false,
        from: addr(A),
        to: Some(addr(B)),
        bytes: b"abcdefgh",
        fate: LinkFate::Forwarded,
        reason: None,
        corrupted: None,
        truncated_to: None,
    });
    let r3 = run.recv(20, B, upstream, b"abcd");
    run.finish();
    let delivered = |send, recv, latency_ns| Outcome::Delivered {
        send,
        recv,
        flow: a_to_b(),
        latency_ns,
        reordered_by: 0,
        late: false,
    };
    assert_eq!(
        run.out,
        vec![
            delivered(s1, r1, 5),
            delivered(s2, r2, 5),
            delivered(s3, r3, 10)
        ]
    );
    assert_eq!(run.flow(Method::Matched).lost, 0);
}

#[test]
fn equal_payloads_match_first_in_first_out() {
    let mut run = Run::new(&[A, B]);
    let s1 = run.send(0, A, B, b"same");
    let s2 = run.send(5, A, B, b"same");
    let r1 = run.recv(20, B, A, b"same");
    let r2 = run.recv(21, B, A, b"same");
    let r3 = run.recv(22, B, A, b"same");
    let flow = a_to_b();
    assert_eq!(
        run.out,
        vec![
            Outcome::Delivered {
                send: s1,
                recv: r1,
                flow: flow.clone(),
                latency_ns: 20,
                reordered_by: 0,
                late: false
            },
            Outcome::Delivered {
                send: s2,
                recv: r2,
                flow: flow.clone(),
                latency_ns: 16,
                reordered_by: 0,
                late: false
            },
            Outcome::Duplicate {
                send: s1,
                recv: r3,
                flow: flow.clone(),
            },
        ]
    );
}

#[test]
fn reordering_says_how_far() {
    let mut run = Run::new(&[A, B]);
    for (i, b) in [b"0", b"1", b"2", b"3"].iter().enumerate() {
        run.send(i as u64, A, B, *b);
    }
    for b in [b"0", b"3", b"1", b"2"] {
        run.recv(100, B, A, b);
    }
    let by: Vec<u64> = run
        .out
        .iter()
        .map(|o| match o {
            Outcome::Delivered { reordered_by, .. } => *reordered_by,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(by, vec![0, 0, 2, 1]);
    assert_eq!(run.flow(Method::Matched).reordered, 2);
}

#[test]
fn timeouts_make_loss_and_late_arrivals_undo_it() {
    let mut run = Run::new(&[A, B]);
    let s1 = run.send(0, A, B, b"slow");
    run.analyzer.tick(999, &mut run.out);
    assert!(run.out.is_empty(), "not yet");
    run.analyzer.tick(1_000, &mut run.out);
    let flow = a_to_b();
    assert_eq!(
        run.out,
        vec![Outcome::Lost {
            send: s1,
            flow: flow.clone(),
            cause: LossCause::Timeout
        }]
    );
    assert_eq!(run.flow(Method::Matched).lost, 1);
    let r1 = run.recv(1_500, B, A, b"slow");
    assert_eq!(
        run.out[1],
        Outcome::Delivered {
            send: s1,
            recv: r1,
            flow: flow.clone(),
            latency_ns: 1_500,
            reordered_by: 0,
            late: true
        }
    );
    assert_eq!(run.flow(Method::Matched).lost, 0);
}

#[test]
fn a_link_between_lab_sockets_is_seen_through() {
    let (listen, upstream) = ("127.0.0.1:3000", "127.0.0.1:3001");
    let mut run = Run::new(&[A, B]);
    let link = LinkId::new("l1");
    run.feed(Input::LinkCreated {
        link: &link,
        listen: addr(listen),
        upstream: addr(upstream),
        target: addr(B),
    });
    let decide = |run: &mut Run, bytes: &[u8], fate, reason, corrupted, truncated_to| {
        run.feed(Input::LinkDecision {
            id: EventId(900),
            t_ns: 0,
            link: &link,
            dir: LinkDir::C2t,
            seq: 0,
            duplicated: false,
            from: addr(A),
            to: Some(addr(B)),
            bytes,
            fate,
            reason,
            corrupted,
            truncated_to,
        })
    };
    let s1 = run.send(0, A, listen, b"dropped");
    // The link reports its first client before its first decision, as the server does.
    run.feed(Input::LinkClient {
        link: &link,
        client: addr(A),
    });
    decide(
        &mut run,
        b"dropped",
        LinkFate::Dropped,
        Some(DropReason::BurstLoss),
        None,
        None,
    );
    let s2 = run.send(1, A, listen, b"abcdef");
    decide(
        &mut run,
        b"abcdef",
        LinkFate::Forwarded,
        None,
        // 'b' became 'X'.
        Some((1, b'b' ^ b'X')),
        Some(4),
    );
    let r2 = run.recv(9, B, upstream, b"aXcd");
    let flow = a_to_b();
    assert_eq!(
        run.out,
        vec![
            Outcome::Lost {
                send: s1,
                flow: flow.clone(),
                cause: LossCause::Link(DropReason::BurstLoss)
            },
            Outcome::Delivered {
                send: s2,
                recv: r2,
                flow: flow.clone(),
                latency_ns: 8,
                reordered_by: 0,
                late: false
            },
        ]
    );
    let stats = run.flow(Method::Matched);
    assert_eq!(stats.via, Some(link.clone()));
    assert_eq!(
        run.analyzer.take_decision(s2),
        Some(EventId(900)),
        "the link's decision is named"
    );
    assert_eq!(run.analyzer.take_decision(s2), None, "once");
    // The reply goes back through the link: B sends to the upstream address, A receives
    // from the listen address; the flow is B -> A.
    let s3 = run.send(20, B, upstream, b"reply");
    let r3 = run.recv(30, A, listen, b"reply");
    assert_eq!(
        run.out[2],
        Outcome::Delivered {
            send: s3,
            recv: r3,
            flow: FlowKey {
                src: ep(B),
                dst: ep(A)
            },
            latency_ns: 10,
            reordered_by: 0,
            late: false
        }
    );
}

#[test]
fn an_echo_peer_gives_rtt_and_unanswered_requests() {
    let echo = "127.0.0.1:7";
    let mut run = Run::new(&[A]);
    let q1 = run.send(0, A, echo, b"ping 1");
    let q2 = run.send(10, A, echo, b"ping 2");
    let r1 = run.recv(30, A, echo, b"ping 1");
    run.finish();
    let flow = FlowKey {
        src: ep(A),
        dst: ep(echo),
    };
    assert_eq!(
        run.out,
        vec![
            Outcome::Reply {
                request: q1,
                response: r1,
                flow: flow.clone(),
                rtt_ns: 30,
                by_order: false,
                by_field: false,
            },
            Outcome::Unanswered {
                request: q2,
                flow: flow.clone(),
                cause: LossCause::Timeout
            },
        ]
    );
    let stats = run.flow(Method::Echo);
    assert_eq!((stats.sent, stats.received, stats.lost), (2, 1, 1));
    assert_eq!(stats.latency.unwrap().p50, 30);
}

#[test]
fn an_icmp_error_refuses_the_send_it_quotes_or_else_the_oldest() {
    let nobody = "127.0.0.1:9";
    let mut run = Run::new(&[A]);
    let q1 = run.send(0, A, nobody, b"first");
    let q2 = run.send(1, A, nobody, b"second");
    let q3 = run.send(2, A, nobody, b"third");
    let flow = FlowKey {
        src: ep(A),
        dst: ep(nobody),
    };
    let icmp = |run: &mut Run, bytes: &[u8], refused| {
        run.feed(Input::Unreachable {
            local: &ep(A),
            to: addr(nobody),
            bytes,
            refused,
        })
    };
    // The error quotes the second datagram whole: that one is refused.
    icmp(&mut run, b"second", true);
    // A quote that matches no send (a long datagram quoted in part): the oldest.
    icmp(&mut run, b"fir", false);
    assert_eq!(
        run.out,
        vec![
            Outcome::Unanswered {
                request: q2,
                flow: flow.clone(),
                cause: LossCause::Refused
            },
            Outcome::Unanswered {
                request: q1,
                flow: flow.clone(),
                cause: LossCause::Unreachable
            },
        ]
    );
    // An error about a flow with nothing in flight concludes nothing.
    run.out.clear();
    run.feed(Input::Unreachable {
        local: &ep(A),
        to: addr("127.0.0.1:10"),
        bytes: b"third",
        refused: true,
    });
    assert!(run.out.is_empty());
    assert_eq!(run.analyzer.in_flight(), 1, "{q3:?} is still in flight");
}

#[test]
fn sequenced_traffic_is_read_from_its_header() {
    let outside = "127.0.0.1:9999"; // a sender the lab does not own
    let mut run = Run::new(&[B]);
    for (i, seq) in [0u64, 1, 3, 2, 2].into_iter().enumerate() {
        let mut payload = [0u8; 30];
        SeqHeader {
            flow: 4,
            seq,
            sent_ns: seq * 100,
        }
        .write(&mut payload);
        run.recv(seq * 100 + 50 + i as u64, B, outside, &payload);
    }
    let stats = run.flow(Method::Sequenced);
    assert_eq!(stats.seq_flow, Some(4));
    assert_eq!(
        (
            stats.sent,
            stats.received,
            stats.lost,
            stats.reordered,
            stats.duplicated
        ),
        (4, 5, 0, 1, 1)
    );
}

/// The reordered count by the definition, computed independently: a first arrival is
/// reordered when a datagram sent later arrived before it.
fn reordered_by_definition(first_arrivals: &[usize]) -> u64 {
    let mut max: Option<usize> = None;
    let mut count = 0;
    for &seq in first_arrivals {
        if max.is_some_and(|m| m > seq) {
            count += 1;
        }
        max = Some(max.map_or(seq, |m| m.max(seq)));
    }
    count
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random traffic with random drops, duplicates and permutations: the analyzer counts
    /// exactly what was done to it.
    #[test]
    fn counts_exactly_what_was_applied(
        n in 1..200usize,
        drops in prop::collection::vec(any::<bool>(), 200),
        dups in prop::collection::vec(prop::bool::weighted(0.1), 200),
        order in prop::collection::vec(any::<u32>(), 400),
        distinct in any::<bool>(),
    ) {
        let mut run = Run::new(&[A, B]);
        let payload = |i: usize| if distinct { format!("d{i}").into_bytes() } else { format!("p{}", i % 3).into_bytes() };
        for i in 0..n {
            run.send(i as u64, A, B, &payload(i));
        }
        // The copies that arrive: each kept datagram once, plus its duplicate.
        let mut arrivals: Vec<(u32, usize)> = Vec::new();
        for i in 0..n {
            if drops[i] { continue; }
            arrivals.push((order[2 * i], i));
            if dups[i] { arrivals.push((order[2 * i + 1], i)); }
        }
        arrivals.sort();
        for (_, i) in &arrivals {
            run.recv(n as u64 + 10, B, A, &payload(*i));
        }
        run.finish();
        let stats = run.flow(Method::Matched);
        let dropped = drops[..n].iter().filter(|d| **d).count() as u64;
        let duplicated = (0..n).filter(|&i| !drops[i] && dups[i]).count() as u64;
        prop_assert_eq!(stats.sent, n as u64);
        prop_assert_eq!(stats.received, arrivals.len() as u64);
        prop_assert_eq!(stats.in_flight, 0);
        // With equal payloads, a copy of one datagram is indistinguishable from the
        // arrival of another with the same bytes: only the balance is determined.
        prop_assert_eq!(stats.lost as i64 - stats.duplicated as i64, dropped as i64 - duplicated as i64);
        if distinct {
            prop_assert_eq!(stats.lost, dropped);
            prop_assert_eq!(stats.duplicated, duplicated);
            let mut seen = std::collections::HashSet::new();
            let firsts: Vec<usize> = arrivals.iter().map(|(_, i)| *i).filter(|i| seen.insert(*i)).collect();
            prop_assert_eq!(stats.reordered, reordered_by_definition(&firsts));
        }
    }
}

/// A silent peer (not a lab socket): every send stays in flight until the timeout.
const SILENT: &str = "127.0.0.1:9";

#[test]
fn sends_in_flight_are_bounded_and_the_oldest_is_given_up() {
    let mut run = Run::new(&[A]);
    run.analyzer = Analyzer::with_limits(
        1_000,
        Limits {
            max_in_flight: 3,
            ..Limits::default()
        },
    );
    run.feed(Input::Bound {
        addr: &ep(A),
        read_size: None,
    });
    let sends: Vec<EventId> = (0..5)
        .map(|i| run.send(i, A, SILENT, format!("q{i}").as_bytes()))
        .collect();
    let flow = FlowKey {
        src: ep(A),
        dst: ep(SILENT),
    };
    assert_eq!(
        run.out,
        vec![
            Outcome::Untracked {
                send: sends[0],
                flow: flow.clone(),
            },
            Outcome::Untracked {
                send: sends[1],
                flow: flow.clone(),
            },
        ]
    );
    assert_eq!((run.analyzer.in_flight(), run.analyzer.untracked()), (3, 2));
    run.out.clear();
    run.finish();
    assert_eq!(run.out.len(), 3, "the three followed are concluded");
    assert_eq!(run.analyzer.in_flight(), 0);
}

#[test]
fn the_flow_table_is_bounded_and_idle_flows_retire_first() {
    let mut run = Run::new(&[A, B]);
    run.analyzer = Analyzer::with_limits(
        1_000,
        Limits {
            max_flows: 4,
            ..Limits::default()
        },
    );
    for a in [A, B] {
        run.feed(Input::Bound {
            addr: &ep(a),
            read_size: None,
        });
    }
    // A flow with a datagram in flight, then many sequenced streams from a program
    // outside the lab, each with an id of its own.
    let busy = run.send(0, A, B, b"in flight");
    for flow in 0..50u32 {
        let mut bytes = vec![0; 32];
        SeqHeader {
            flow,
            seq: 0,
            sent_ns: 0,
        }
        .write(&mut bytes);
        run.recv(10 + u64::from(flow), B, "127.0.0.1:7777", &bytes);
    }
    assert_eq!(run.analyzer.flow_count(), 4);
    assert_eq!(run.analyzer.retired_flows(), 47);
    // The flow with a datagram in flight was kept: idle flows retire first.
    let stats = run.analyzer.stats();
    assert!(
        stats
            .iter()
            .any(|s| s.method == Method::Matched && s.in_flight == 1)
    );
    assert!(
        !run.out
            .iter()
            .any(|o| matches!(o, Outcome::Untracked { send, .. } if *send == busy))
    );
}

#[test]
fn a_tick_concludes_a_bounded_number_and_many_equal_payloads_cost_no_more_than_few() {
    const N: u64 = 200_000;
    let mut run = Run::new(&[A]);
    // The same payload every time, to a silent peer: the case that was quadratic.
    for i in 0..N {
        run.send(i, A, SILENT, &[0; 64]);
    }
    let mut ticks = 0;
    let mut concluded = 0;
    while concluded < N as usize {
        run.analyzer.tick(N + 10_000, &mut run.out);
        assert!(run.out.len() <= socklab_analysis::analyzer::MAX_CONCLUSIONS_PER_TICK);
        concluded += run.out.len();
        run.out.clear();
        ticks += 1;
    }
    assert_eq!(
        ticks,
        N.div_ceil(socklab_analysis::analyzer::MAX_CONCLUSIONS_PER_TICK as u64)
    );
    assert_eq!(run.analyzer.in_flight(), 0);
}

#[test]
fn finished_sends_are_bounded_across_flows() {
    const C: &str = "127.0.0.1:3000";
    let mut run = Run::new(&[A, B, C]);
    run.analyzer = Analyzer::with_limits(
        1_000,
        Limits {
            max_finished: 10,
            ..Limits::default()
        },
    );
    for a in [A, B, C] {
        run.feed(Input::Bound {
            addr: &ep(a),
            read_size: None,
        });
    }
    // Two flows deliver 20 each: far more than the 10 remembered between them.
    let mut last = Vec::new();
    for i in 0..20u64 {
        for from in [A, C] {
            let bytes = format!("{from} {i}");
            run.send(i * 10, from, B, bytes.as_bytes());
            run.recv(i * 10 + 1, B, from, bytes.as_bytes());
            if i == 19 {
                last.push(bytes);
            }
        }
    }
    assert_eq!(run.analyzer.finished_kept(), 10);
    // The newest are still recognised: a copy of one is a duplicate.
    run.out.clear();
    run.recv(300, B, A, last[0].as_bytes());
    assert!(
        matches!(run.out[..], [Outcome::Duplicate { .. }]),
        "{:?}",
        run.out
    );
    run.finish();
    assert_eq!(run.analyzer.finished_kept(), 0, "all forgotten in time");
}

#[test]
fn a_send_the_link_could_not_make_is_lost_to_the_link_not_the_timeout() {
    let (listen, upstream) = ("127.0.0.1:3000", "127.0.0.1:3001");
    let mut run = Run::new(&[A, B]);
    let link = LinkId::new("l1");
    run.feed(Input::LinkCreated {
        link: &link,
        listen: addr(listen),
        upstream: addr(upstream),
        target: addr(B),
    });
    let decide = |run: &mut Run, id: u64, bytes: &[u8], fate, reason| {
        run.feed(Input::LinkDecision {
            id: EventId(id),
            t_ns: 0,
            link: &link,
            dir: LinkDir::C2t,
            seq: 0,
            duplicated: false,
            from: addr(A),
            to: Some(addr(B)),
            bytes,
            fate,
            reason,
            corrupted: None,
            truncated_to: Some(2),
        })
    };
    let sent = run.send(0, A, listen, b"too big");
    decide(&mut run, 900, b"too big", LinkFate::Forwarded, None);
    // The link cut it to two bytes and then failed to send those.
    decide(
        &mut run,
        901,
        b"to",
        LinkFate::Dropped,
        Some(DropReason::SendFailed),
    );
    run.finish();
    assert_eq!(
        run.out,
        vec![Outcome::Lost {
            send: sent,
            flow: a_to_b(),
            cause: LossCause::Link(DropReason::SendFailed)
        }],
        "lost once, to the failed send, and not again to the timeout"
    );
    assert_eq!(run.analyzer.take_decision(sent), Some(EventId(901)));
    assert_eq!(run.flow(Method::Matched).lost, 1);
    assert_eq!(run.analyzer.in_flight(), 0);
}

/// A server that answers with other bytes (it upper-cases what it gets, or acks) still
/// answers: its replies pair with the oldest open request, in order; the same bytes,
/// when they come, are still the strongest evidence.
#[test]
fn replies_with_other_bytes_pair_with_requests_by_order() {
    let server = "127.0.0.1:7";
    let mut run = Run::new(&[A]);
    let q1 = run.send(0, A, server, b"hello");
    let q2 = run.send(5, A, server, b"world");
    let q3 = run.send(6, A, server, b"same");
    let r1 = run.recv(20, A, server, b"HELLO");
    // The same bytes as q3: q3, not q2, however old q2 is.
    let r3 = run.recv(25, A, server, b"same");
    let r2 = run.recv(30, A, server, b"WORLD");
    run.finish();
    let flow = FlowKey {
        src: ep(A),
        dst: ep(server),
    };
    let reply = |request, response, rtt_ns, by_order| Outcome::Reply {
        request,
        response,
        flow: flow.clone(),
        rtt_ns,
        by_order,
        by_field: false,
    };
    assert_eq!(
        run.out,
        vec![
            reply(q1, r1, 20, true),
            reply(q3, r3, 19, false),
            reply(q2, r2, 25, true)
        ]
    );
    let stats = run.flow(Method::Echo);
    assert_eq!((stats.sent, stats.received, stats.lost), (3, 3, 0));
}

/// A protocol that numbers its messages: with the number's place named, a reply is
/// paired with the request of the same number, whatever order the replies come in and
/// whatever else they carry; the same bytes still come first, and a reply without the
/// field falls back to order.
#[test]
fn a_named_sequence_field_pairs_replies_with_their_requests() {
    use socklab_protocol::flow::MatchField;
    let server = "127.0.0.1:7";
    let mut run = Run::new(&[A]);
    // Bytes 4..6 are the message's number: "REQ:01 hello" → "ACK:01".
    run.analyzer
        .set_match_field(Some(MatchField { offset: 4, len: 2 }));
    let q1 = run.send(0, A, server, b"REQ:01 hello");
    let q2 = run.send(1, A, server, b"REQ:02 world");
    let q3 = run.send(2, A, server, b"REQ:03 again");
    let q4 = run.send(3, A, server, b"REQ:04 last");
    // Answered out of order, with other bytes.
    let r2 = run.recv(10, A, server, b"ACK:02");
    let r1 = run.recv(11, A, server, b"ACK:01");
    // The same bytes beat the field.
    let r4 = run.recv(12, A, server, b"REQ:04 last");
    // Too short for the field: the oldest open request.
    let r3 = run.recv(13, A, server, b"ok");
    run.finish();
    let flow = FlowKey {
        src: ep(A),
        dst: ep(server),
    };
    let reply = |request, response, rtt_ns, by_order, by_field| Outcome::Reply {
        request,
        response,
        flow: flow.clone(),
        rtt_ns,
        by_order,
        by_field,
    };
    assert_eq!(
        run.out,
        vec![
            reply(q2, r2, 9, false, true),
            reply(q1, r1, 11, false, true),
            reply(q4, r4, 9, false, false),
            reply(q3, r3, 11, true, false),
        ]
    );
    // Without the field, the first ack would have answered the oldest request.
    let mut plain = Run::new(&[A]);
    let p1 = plain.send(0, A, server, b"REQ:01 hello");
    plain.send(1, A, server, b"REQ:02 world");
    let a2 = plain.recv(10, A, server, b"ACK:02");
    assert_eq!(
        plain.out,
        [Outcome::Reply {
            request: p1,
            response: a2,
            flow: flow.clone(),
            rtt_ns: 10,
            by_order: true,
            by_field: false,
        }]
    );
}

/// Two programs that are not lab sockets, talking through link l1: the link's account
/// is all there is, and it is enough for the flow's figures.
mod through_a_link_between_outside_programs {
    use super::*;

    const CLIENT: &str = "127.0.0.1:5000";
    const SERVER: &str = "127.0.0.1:6000";
    const LISTEN: &str = "127.0.0.1:3000";
    const UPSTREAM: &str = "127.0.0.1:3001";

    struct Link {
        run: Run,
        link: LinkId,
    }

    impl Link {
        fn new(lab: &[&str]) -> Link {
            let mut run = Run::new(lab);
            let link = LinkId::new("l1");
            run.feed(Input::LinkCreated {
                link: &link,
                listen: addr(LISTEN),
                upstream: addr(UPSTREAM),
                target: addr(SERVER),
            });
            Link { run, link }
        }

        #[allow(clippy::too_many_arguments)]
        fn decide(
            &mut self,
            t: u64,
            dir: LinkDir,
            seq: u64,
            (from, to): (&str, &str),
            bytes: &[u8],
            fate: LinkFate,
            reason: Option<DropReason>,
            duplicated: bool,
        ) {
            let id = self.run.id();
            self.run.analyzer.feed(
                Input::LinkDecision {
                    id,
                    t_ns: t,
                    link: &self.link,
                    dir,
                    seq,
                    duplicated,
                    from: addr(from),
                    to: Some(addr(to)),
                    bytes,
                    fate,
                    reason,
                    corrupted: None,
                    truncated_to: None,
                },
                &mut self.run.out,
            );
        }

        fn forward(&mut self, t: u64, seq: u64, bytes: &[u8]) {
            self.decide(
                t,
                LinkDir::C2t,
                seq,
                (CLIENT, SERVER),
                bytes,
                LinkFate::Forwarded,
                None,
                false,
            );
        }

        fn sent(&mut self, t: u64, dir: LinkDir, seq: u64) {
            self.run.analyzer.feed(
                Input::LinkSent {
                    link: &self.link,
                    dir,
                    seq,
                    t_ns: t,
                },
                &mut self.run.out,
            );
        }

        fn flows(&self, method: Method) -> Vec<FlowStats> {
            self.run
                .analyzer
                .stats()
                .into_iter()
                .filter(|s| s.method == method)
                .collect()
        }
    }

    #[test]
    fn arrivals_drops_departures_and_the_time_between_make_the_figures() {
        let mut l = Link::new(&[]);
        l.forward(0, 0, b"zero");
        l.decide(
            10,
            LinkDir::C2t,
            1,
            (CLIENT, SERVER),
            b"one",
            LinkFate::Dropped,
            Some(DropReason::RandomLoss),
            false,
        );
        l.forward(20, 2, b"two"); // held back: leaves after 3
        l.decide(
            30,
            LinkDir::C2t,
            3,
            (CLIENT, SERVER),
            b"three",
            LinkFate::Forwarded,
            None,
            true,
        );
        l.forward(40, 4, b"four");
        l.sent(1_000, LinkDir::C2t, 0);
        l.sent(1_030, LinkDir::C2t, 3);
        l.sent(1_040, LinkDir::C2t, 3); // the copy
        l.sent(1_050, LinkDir::C2t, 2); // after 3: out of order
        // Four never left: the send failed.
        l.decide(
            1_041,
            LinkDir::C2t,
            4,
            (CLIENT, SERVER),
            b"four",
            LinkFate::Dropped,
            Some(DropReason::SendFailed),
            false,
        );
        let flows = l.flows(Method::Link);
        assert_eq!(flows.len(), 1, "{flows:?}");
        let f = &flows[0];
        assert_eq!((&f.src, &f.dst), (&ep(CLIENT), &ep(SERVER)));
        assert_eq!(f.via, Some(LinkId::new("l1")));
        assert_eq!(
            (
                f.sent,
                f.received,
                f.lost,
                f.reordered,
                f.duplicated,
                f.in_flight
            ),
            (5, 4, 2, 1, 1, 0)
        );
        assert_eq!(
            f.drops,
            [(DropReason::RandomLoss, 1), (DropReason::SendFailed, 1)]
        );
        let latency = f.latency.expect("times in the link");
        assert_eq!((latency.min, latency.max), (1_000, 1_030));
        assert!(f.jitter_ns.is_some());
    }

    #[test]
    fn replies_are_a_flow_of_their_own_and_in_flight_counts_what_has_not_left() {
        let mut l = Link::new(&[]);
        l.forward(0, 0, b"ping");
        l.sent(500, LinkDir::C2t, 0);
        l.decide(
            600,
            LinkDir::T2c,
            0,
            (SERVER, CLIENT),
            b"PONG",
            LinkFate::Forwarded,
            None,
            false,
        );
        let flows = l.flows(Method::Link);
        let back = flows
            .iter()
            .find(|f| f.src == addr(SERVER))
            .expect("the replies' flow");
        assert_eq!(
            (back.dst.clone(), back.sent, back.received, back.in_flight),
            (ep(CLIENT), 1, 0, 1)
        );
        l.sent(700, LinkDir::T2c, 0);
        let back = l
            .flows(Method::Link)
            .into_iter()
            .find(|f| f.src == addr(SERVER))
            .unwrap();
        assert_eq!((back.received, back.in_flight), (1, 0));
        assert_eq!(back.latency.unwrap().p50, 100);
    }

    #[test]
    fn a_lab_sockets_sends_are_followed_end_to_end_not_twice() {
        // The client is a lab socket: its sends are an echo flow, not a link flow.
        let mut l = Link::new(&[CLIENT]);
        let id = l.run.id();
        l.run.feed(Input::Sent {
            id,
            t_ns: 0,
            local: &ep(CLIENT),
            peer: &ep(LISTEN),
            bytes: b"ping",
        });
        l.run.feed(Input::LinkClient {
            link: &LinkId::new("l1"),
            client: addr(CLIENT),
        });
        l.forward(1, 0, b"ping");
        l.sent(100, LinkDir::C2t, 0);
        assert!(l.flows(Method::Link).is_empty());
        assert_eq!(l.flows(Method::Echo).len(), 1);
    }

    #[test]
    fn a_sequence_header_gives_the_sequenced_figures_as_the_link_sent_them_on() {
        let mut l = Link::new(&[]);
        let datagram = |seq: u64| {
            let mut bytes = vec![0u8; socklab_analysis::seqhdr::LEN];
            SeqHeader {
                flow: 7,
                seq,
                sent_ns: seq * 10,
            }
            .write(&mut bytes);
            bytes
        };
        l.forward(0, 0, &datagram(0));
        l.decide(
            10,
            LinkDir::C2t,
            1,
            (CLIENT, SERVER),
            &datagram(1),
            LinkFate::Dropped,
            Some(DropReason::BurstLoss),
            false,
        );
        l.forward(20, 2, &datagram(2));
        l.sent(100, LinkDir::C2t, 0);
        l.sent(120, LinkDir::C2t, 2);
        let seq = l.flows(Method::Sequenced);
        assert_eq!(seq.len(), 1, "{seq:?}");
        assert_eq!(seq[0].via, Some(LinkId::new("l1")));
        assert_eq!(
            (seq[0].seq_flow, seq[0].sent, seq[0].received, seq[0].lost),
            (Some(7), 3, 2, 1)
        );
    }

    #[test]
    fn datagrams_followed_in_links_are_bounded_by_the_in_flight_limit() {
        let limits = Limits {
            max_in_flight: 2,
            ..Limits::default()
        };
        let mut l = Link::new(&[]);
        l.run.analyzer = Analyzer::with_limits(1_000, limits);
        let link = LinkId::new("l1");
        l.run.feed(Input::LinkCreated {
            link: &link,
            listen: addr(LISTEN),
            upstream: addr(UPSTREAM),
            target: addr(SERVER),
        });
        for seq in 0..3 {
            l.forward(seq, seq, b"x");
        }
        // The third is counted as arrived but not followed to its departure.
        assert_eq!(l.run.analyzer.untracked(), 1);
        let f = &l.flows(Method::Link)[0];
        assert_eq!((f.sent, f.in_flight), (3, 2));
        for seq in 0..3 {
            l.sent(100 + seq, LinkDir::C2t, seq);
        }
        let f = &l.flows(Method::Link)[0];
        assert_eq!((f.received, f.in_flight), (2, 0));
    }

    #[test]
    fn link_flows_are_bounded_by_the_flow_limit() {
        let limits = Limits {
            max_flows: 2,
            ..Limits::default()
        };
        let mut l = Link::new(&[]);
        l.run.analyzer = Analyzer::with_limits(1_000, limits);
        let link = LinkId::new("l1");
        l.run.feed(Input::LinkCreated {
            link: &link,
            listen: addr(LISTEN),
            upstream: addr(UPSTREAM),
            target: addr(SERVER),
        });
        for port in 0..5u16 {
            let from = format!("127.0.0.1:{}", 7000 + port);
            l.decide(
                u64::from(port),
                LinkDir::C2t,
                u64::from(port),
                (&from, SERVER),
                b"x",
                LinkFate::Forwarded,
                None,
                false,
            );
        }
        assert_eq!(l.run.analyzer.link_flow_count(), 2);
        assert_eq!(l.run.analyzer.retired_flows(), 3);
        // The newest two are kept.
        let kept: Vec<u16> = l
            .flows(Method::Link)
            .iter()
            .map(|f| f.src.socket_addr().unwrap().port())
            .collect();
        assert_eq!(kept, [7003, 7004]);
    }
}

#[test]
fn a_tcp_stream_counts_bytes_and_each_writes_time_to_its_last_bytes_arrival() {
    let mut run = Run::new(&[A, B]);
    let stream = |run: &mut Run, t_ns, local: &str, peer: &str, out, offset, len| {
        run.feed(Input::Stream {
            t_ns,
            local: addr(local),
            peer: addr(peer),
            out,
            offset,
            len,
        })
    };
    // A writes "hello" and "world"; B reads both at once, arrived at 30; A writes 8
    // more, B reads 4 of them.
    stream(&mut run, 10, A, B, true, 0, 5);
    stream(&mut run, 20, A, B, true, 5, 5);
    stream(&mut run, 30, B, A, false, 0, 10);
    stream(&mut run, 40, A, B, true, 10, 8);
    stream(&mut run, 50, B, A, false, 10, 4);
    let flow = run.flow(Method::Stream);
    assert_eq!(
        (
            flow.src,
            flow.dst,
            flow.sent,
            flow.received,
            flow.in_flight,
            flow.lost
        ),
        (ep(A), ep(B), 18, 14, 4, 0)
    );
    let latency = flow.latency.unwrap();
    assert_eq!(
        (latency.min, latency.max),
        (10, 20),
        "two writes read, 20 and 10 ns"
    );
    assert_eq!(
        run.analyzer.stream_calls(&a_to_b()),
        Some((3, 2)),
        "three writes, two reads"
    );
    assert!(run.out.is_empty(), "a stream has no datagram fates");
}
