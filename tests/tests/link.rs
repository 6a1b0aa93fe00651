//! Real datagrams through a real link: every datagram either arrives or has a drop
//! event with a reason; nothing is invented or silently lost.

use std::collections::HashMap;

use socklab_protocol::flow::{FateKind, LossCause};
use socklab_protocol::link::{
    DropReason, Impairments, LinkDir, LinkFate, LinkSettings, Loss, MtuAction,
};
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{Command, Direction, ErrorCode, Event, LinkPacket};
use socklab_tests::IpEndpoint as _;
use socklab_tests::python::PythonEcho;
use socklab_tests::{Client, TestServer, text};

/// Reads events until `wanted` returns true, gathering link decisions and the datagrams
/// received by lab sockets.
#[derive(Default)]
struct Seen {
    decisions: Vec<LinkPacket>,
    received: Vec<(String, Vec<u8>)>,
}

impl Seen {
    async fn until(&mut self, client: &mut Client, wanted: impl Fn(&Seen) -> bool) {
        while !wanted(self) {
            match client.next().await {
                Event::LinkPacket(p) => self.decisions.push(p),
                Event::Datagram(d) if d.dir == Direction::In => self
                    .received
                    .push((d.socket.to_string(), decode_base64(&d.payload_b64).unwrap())),
                _ => {}
            }
        }
    }

    /// How many datagrams the decisions so far will deliver (copies included).
    fn deliverable(&self) -> usize {
        self.decisions
            .iter()
            .filter(|p| p.fate == LinkFate::Forwarded)
            .map(|p| 1 + p.duplicated as usize)
            .sum()
    }
}

#[tokio::test]
async fn numbered_datagrams_through_a_lossy_link_are_all_accounted_for() {
    const N: usize = 300;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 30.0 },
            delay_ms: 5.0,
            jitter_ms: 3.0,
            jitter_may_reorder: true,
            reorder_pct: 10.0,
            reorder_gap: 2,
            duplicate_pct: 5.0,
            ..Impairments::default()
        },
        seed: 1,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    assert_eq!(link.target, b.local.addr());
    assert_ne!(link.listen.port(), 0);

    for i in 0..N {
        client
            .send(Command::Send {
                socket: a.socket.clone(),
                to: Some(link.listen.to_string()),
                payload: text(&format!("n:{i}")),
            })
            .await;
    }
    let mut seen = Seen::default();
    seen.until(&mut client, |s| {
        s.decisions.len() == N && s.received.len() == s.deliverable()
    })
    .await;

    // Every datagram has exactly one decision, in arrival order, with a reason if dropped.
    let mut decided: HashMap<Vec<u8>, &LinkPacket> = HashMap::new();
    for (seq, p) in seen.decisions.iter().enumerate() {
        assert_eq!(
            (p.link.as_str(), p.dir, p.seq),
            (link.link.as_str(), LinkDir::C2t, seq as u64)
        );
        assert_eq!((p.from, p.to), (a.local.addr(), Some(b.local.addr())));
        match p.fate {
            LinkFate::Dropped => assert_eq!(p.reason, Some(DropReason::RandomLoss)),
            LinkFate::Forwarded => assert!(p.reason.is_none() && p.delay_ns.is_some()),
        }
        assert!(
            decided
                .insert(decode_base64(&p.payload_b64).unwrap(), p)
                .is_none()
        );
    }
    assert_eq!(decided.len(), N);
    // What the receiver got is exactly what the decisions say: nothing invented, nothing lost.
    let mut arrivals: HashMap<Vec<u8>, usize> = HashMap::new();
    for (socket, bytes) in &seen.received {
        assert_eq!(socket, b.socket.as_str());
        *arrivals.entry(bytes.clone()).or_default() += 1;
    }
    for (bytes, p) in &decided {
        let expected = match p.fate {
            LinkFate::Dropped => 0,
            LinkFate::Forwarded => 1 + p.duplicated as usize,
        };
        assert_eq!(
            arrivals.get(bytes).copied().unwrap_or(0),
            expected,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let dropped = seen
        .decisions
        .iter()
        .filter(|p| p.fate == LinkFate::Dropped)
        .count();
    let held = seen
        .decisions
        .iter()
        .filter(|p| p.held_for.is_some())
        .count();
    let duplicated = seen.decisions.iter().filter(|p| p.duplicated).count();
    assert!(
        (40..140).contains(&dropped),
        "about 30 % of {N} dropped: {dropped}"
    );
    assert!(
        held > 0 && duplicated > 0,
        "held {held}, duplicated {duplicated}"
    );

    // Nothing else trickles in: with the link made perfect, a last datagram arrives and
    // is the only new one.
    let req = client
        .send(Command::LinkUpdate {
            link: link.link.clone(),
            settings: LinkSettings::default(),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::LinkUpdated(_)));
    let before = seen.received.len();
    client
        .send(Command::Send {
            socket: a.socket.clone(),
            to: Some(link.listen.to_string()),
            payload: text("end"),
        })
        .await;
    seen.until(&mut client, |s| {
        s.received.last().is_some_and(|(_, b)| b == b"end")
    })
    .await;
    assert_eq!(seen.received.len(), before + 1);

    // The counters agree with the decisions.
    let (stats, _) = client
        .until(|e| matches!(e, Event::LinkStats(s) if s.c2t.arrived == N as u64 + 1))
        .await;
    let Event::LinkStats(stats) = stats else {
        unreachable!()
    };
    assert_eq!(stats.c2t.dropped_random, dropped as u64);
    assert_eq!(stats.c2t.forwarded, (N - dropped + 1) as u64);
    assert_eq!(stats.c2t.reordered, held as u64);
    assert_eq!(stats.c2t.duplicated, duplicated as u64);
    server.stop().await;
}

#[tokio::test]
async fn the_same_seed_makes_the_same_decisions() {
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 50.0 },
            ..Impairments::default()
        },
        seed: 99,
        ..LinkSettings::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let server = TestServer::start().await;
        let mut client = server.client().await;
        let a = client.bind("127.0.0.1:0").await;
        let b = client.bind("127.0.0.1:0").await;
        let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
        for i in 0..50 {
            client
                .send(Command::Send {
                    socket: a.socket.clone(),
                    to: Some(link.listen.to_string()),
                    payload: text(&i.to_string()),
                })
                .await;
        }
        let mut seen = Seen::default();
        seen.until(&mut client, |s| s.decisions.len() == 50).await;
        runs.push(seen.decisions.iter().map(|p| p.fate).collect::<Vec<_>>());
        server.stop().await;
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn a_python_echo_server_behind_a_link_sees_delay_both_ways() {
    let echo = PythonEcho::start("127.0.0.1");
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let delayed = Impairments {
        delay_ms: 20.0,
        ..Impairments::default()
    };
    let link = client
        .link(
            "127.0.0.1:0",
            echo.addr,
            LinkSettings {
                c2t: delayed,
                t2c: delayed,
                seed: 0,
            },
        )
        .await;
    for message in ["one", "two", "three"] {
        let out = client
            .send_datagram(&a.socket, link.listen, text(message))
            .await;
        let echoed = client.received_on(&a.socket).await;
        assert_eq!(
            echoed.peer, link.listen,
            "the reply comes back through the link"
        );
        assert_eq!(
            decode_base64(&echoed.payload_b64).unwrap(),
            message.as_bytes()
        );
        let rtt_ms = (echoed.t_ns - out.t_ns) as f64 / 1e6;
        assert!(rtt_ms >= 40.0, "20 ms each way: RTT {rtt_ms} ms");
    }
    server.stop().await;
}

#[tokio::test]
async fn corruption_and_truncation_change_what_arrives() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            corrupt_pct: 100.0,
            mtu: 100,
            mtu_action: MtuAction::Truncate,
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let sent = "x".repeat(200);
    client
        .send_datagram(&a.socket, link.listen, text(&sent))
        .await;
    let mut seen = Seen::default();
    seen.until(&mut client, |s| {
        !s.received.is_empty() && !s.decisions.is_empty()
    })
    .await;
    let decision = &seen.decisions[0];
    assert_eq!(
        decision.truncated_to,
        Some(72),
        "MTU 100 minus 28 bytes of headers"
    );
    let at = decision.corrupted_at.expect("corrupted");
    let got = &seen.received[0].1;
    assert_eq!(got.len(), 72);
    let changed: Vec<usize> = (0..72).filter(|&i| got[i] != b'x').collect();
    assert_eq!(changed, vec![at], "exactly the byte the decision names");
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_drops_with_its_reason() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            rate_bps: 8_000,
            queue_packets: 3,
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    for _ in 0..10 {
        client
            .send(Command::Send {
                socket: a.socket.clone(),
                to: Some(link.listen.to_string()),
                payload: text("0123456789"),
            })
            .await;
    }
    let mut seen = Seen::default();
    seen.until(&mut client, |s| s.decisions.len() == 10).await;
    let queue_drops = seen
        .decisions
        .iter()
        .filter(|p| p.reason == Some(DropReason::QueueFull))
        .count();
    assert!(
        queue_drops >= 5,
        "8 kbit/s with a 3-datagram queue drops most of a burst: {queue_drops}"
    );
    server.stop().await;
}

#[tokio::test]
async fn link_commands_refuse_what_they_cannot_do() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let ghost = socklab_protocol::link::LinkId::new("l9");
    client
        .refused(
            Command::LinkDelete {
                link: ghost.clone(),
            },
            ErrorCode::UnknownLink,
        )
        .await;
    client
        .refused(
            Command::LinkUpdate {
                link: ghost,
                settings: LinkSettings::default(),
            },
            ErrorCode::UnknownLink,
        )
        .await;
    let bad = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 150.0 },
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let error = client
        .refused(
            Command::LinkCreate {
                listen: "127.0.0.1:0".into(),
                target: a.local.to_string(),
                settings: bad,
            },
            ErrorCode::BadRequest,
        )
        .await;
    assert!(error.message.contains("loss pct"), "{}", error.message);
    client
        .refused(
            Command::LinkCreate {
                listen: a.local.to_string(),
                target: a.local.to_string(),
                settings: LinkSettings::default(),
            },
            ErrorCode::AddressInUse,
        )
        .await;
    client
        .refused(
            Command::LinkCreate {
                listen: "127.0.0.1:0".into(),
                target: "nowhere".into(),
                settings: LinkSettings::default(),
            },
            ErrorCode::BadAddress,
        )
        .await;
    // Deleting frees the listen port; the session goes on.
    let link = client
        .link("127.0.0.1:0", a.local.addr(), LinkSettings::default())
        .await;
    let req = client
        .send(Command::LinkDelete {
            link: link.link.clone(),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::LinkDeleted(d) if d.link == link.link));
    std::net::UdpSocket::bind(link.listen).expect("the link's port is free again");
    client
        .send_datagram(&a.socket, a.local.addr(), text("still here"))
        .await;
    server.stop().await;
}

/// The link-timing benchmark works (tiny run; its figures are not judged here).
#[tokio::test]
async fn link_timing_benchmark_runs() {
    let (spread, lost) =
        socklab_tests::bench::link_timing(1_000, std::time::Duration::from_millis(50), 5.0).await;
    assert_eq!(lost, 0, "every datagram crosses a perfect link");
    assert_eq!(spread.count, 50);
    assert!(
        spread.p50_us >= 0.0,
        "nothing arrives before its delay: {spread:?}"
    );
}

#[tokio::test]
async fn an_update_keeps_the_seed_the_link_was_created_with() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let b = client.bind("127.0.0.1:0").await;
    let link = client
        .link(
            "127.0.0.1:0",
            b.local.addr(),
            LinkSettings {
                seed: 7,
                ..LinkSettings::default()
            },
        )
        .await;
    // The update leaves the seed out (it would read as 0).
    client
        .send_text(&format!(
            r#"{{"req":99,"type":"link_update","link":"{}","settings":{{"c2t":{{"delay_ms":5}}}}}}"#,
            link.link
        ))
        .await;
    match client.reply(99).await {
        Event::LinkUpdated(updated) => {
            assert_eq!(updated.settings.seed, 7, "the seed in force is reported");
            assert_eq!(updated.settings.c2t.delay_ms, 5.0);
        }
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_link_reports_its_client_and_every_change_of_it() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let c = client.bind("127.0.0.1:0").await;
    let link = client
        .link("127.0.0.1:0", b.local.addr(), LinkSettings::default())
        .await;
    let mut clients = Vec::new();
    for (from, n) in [(&a, 2), (&c, 1)] {
        for _ in 0..n {
            client
                .send(Command::Send {
                    socket: from.socket.clone(),
                    to: Some(link.listen.to_string()),
                    payload: text("hi"),
                })
                .await;
        }
    }
    while clients.len() < 2 {
        if let Event::LinkClient(change) = client.next().await {
            assert_eq!(change.link, link.link);
            clients.push((change.client, change.previous));
        }
    }
    assert_eq!(
        clients,
        [
            (a.local.addr(), None),
            (c.local.addr(), Some(a.local.addr()))
        ],
        "a second datagram from the same client is no change"
    );
    server.stop().await;
}

/// A datagram that reaches a link's upstream socket from anyone but the target is not
/// relayed; it gets a decision with its own reason, so nothing vanishes unexplained.
#[tokio::test]
async fn a_datagram_from_anyone_but_the_target_is_dropped_with_its_reason() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let b = client.bind("127.0.0.1:0").await;
    let link = client
        .link("127.0.0.1:0", b.local.addr(), LinkSettings::default())
        .await;
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"who is there?", link.upstream).unwrap();
    let p = client
        .next_where(|e| match e {
            Event::LinkPacket(p) if p.dir == LinkDir::T2c => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(
        (p.fate, p.reason, p.from, p.to),
        (
            LinkFate::Dropped,
            Some(DropReason::NotFromTarget),
            stranger.local_addr().unwrap(),
            None
        ),
        "no client yet, and from a stranger: the stranger is the reason"
    );
    assert_eq!(decode_base64(&p.payload_b64).unwrap(), b"who is there?");
    let stats = client
        .next_where(|e| match e {
            Event::LinkStats(stats) if stats.t2c.dropped_not_from_target > 0 => Some(stats),
            _ => None,
        })
        .await;
    assert_eq!(
        (stats.t2c.arrived, stats.t2c.dropped_not_from_target),
        (1, 1)
    );
    server.stop().await;
}

/// A link listening on IPv6 in front of an IPv4 target takes a 65,527-byte datagram
/// (the IPv6 limit) that it cannot send on over IPv4 (whose limit is 65,507): the OS
/// refuses the send after the link decided to forward it. That failure is a decision
/// of its own, and the flow analysis blames the link for the loss, not the timeout.
#[tokio::test]
async fn a_send_the_link_could_not_make_is_a_decision_and_the_loss_is_the_links() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("[::1]:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let link = client
        .link("[::1]:0", b.local.addr(), LinkSettings::default())
        .await;
    let big = "x".repeat(socklab_protocol::limits::max_udp_payload(true));
    let sent = client
        .send_datagram(&a.socket, link.listen, text(&big))
        .await;
    let mut decisions = Vec::new();
    let fate = loop {
        match client.next().await {
            Event::LinkPacket(p) => decisions.push(p),
            Event::Fate(f) if f.send == sent.id => break f,
            _ => {}
        }
    };
    let summary: Vec<_> = decisions
        .iter()
        .map(|p| (p.dir, p.seq, p.fate, p.reason))
        .collect();
    assert_eq!(
        summary,
        [
            (LinkDir::C2t, 0, LinkFate::Forwarded, None),
            (
                LinkDir::C2t,
                0,
                LinkFate::Dropped,
                Some(DropReason::SendFailed)
            ),
        ],
        "the decision to forward, then the failed send of the same datagram"
    );
    let failed = &decisions[1];
    assert_eq!(
        (failed.from, failed.to),
        (a.local.addr(), Some(b.local.addr()))
    );
    assert_eq!(failed.len, big.len());
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("too long"),
        "the OS's words are kept: {error:?}"
    );
    assert_eq!(
        (fate.fate, fate.cause, fate.reason, fate.decision),
        (
            FateKind::Lost,
            Some(LossCause::Link),
            Some(DropReason::SendFailed),
            Some(failed.id)
        )
    );
    let stats = client
        .next_where(|e| match e {
            Event::LinkStats(stats) if stats.c2t.send_failed > 0 => Some(stats),
            _ => None,
        })
        .await;
    assert_eq!((stats.c2t.forwarded, stats.c2t.send_failed), (1, 1));
    // The plan (arrival + delay) and the outcome: its departure's lateness is measured
    // (the kernel stamped its arrival before the link read it).
    assert!(stats.c2t.late_max_ns > 0, "{:?}", stats.c2t);
    assert!(stats.c2t.departed_late <= stats.c2t.forwarded);
    server.stop().await;
}
