//! The link's own account: when each datagram really left (`link_sent`), and the flows
//! of programs that are not lab sockets, analysed from what the link saw.

use std::collections::HashMap;
use std::time::Duration;

use socklab_protocol::flow::{FlowMethod, FlowSummary};
use socklab_protocol::link::{DropReason, Impairments, LinkDir, LinkFate, LinkSettings, Loss};
use socklab_protocol::{Command, Direction, Event};
use socklab_tests::IpEndpoint as _;
use socklab_tests::python::{PythonReceiver, send_numbered};
use socklab_tests::{Client, TestServer, text};

/// A datagram's departures: when, how late, whether the copy.
type Departures = Vec<(u64, u64, bool)>;

/// Gathers `link_packet` arrivals and `link_sent` departures by (direction, seq).
#[derive(Default)]
struct Account {
    /// Forwarded decisions: arrival time and planned delay.
    forwarded: HashMap<(LinkDir, u64), (u64, u64)>,
    /// Departures: time, lateness, copy.
    departures: HashMap<(LinkDir, u64), Departures>,
    dropped: u64,
}

impl Account {
    fn take(&mut self, event: &Event) {
        match event {
            Event::LinkPacket(p) if p.fate == LinkFate::Forwarded => {
                self.forwarded
                    .insert((p.dir, p.seq), (p.t_ns, p.delay_ns.unwrap_or(0)));
            }
            Event::LinkPacket(_) => self.dropped += 1,
            Event::LinkSent(sent) => {
                assert!(!sent.sent.is_empty(), "an empty link_sent: {sent:?}");
                assert_eq!(
                    sent.t_ns, sent.sent[0].t_ns,
                    "the event is timed at its first departure"
                );
                for d in &sent.sent {
                    self.departures
                        .entry((sent.dir, d.seq))
                        .or_default()
                        .push((d.t_ns, d.late_ns, d.copy));
                }
            }
            Event::Batch { events } => events.iter().for_each(|e| self.take(e)),
            _ => {}
        }
    }
}

#[tokio::test]
async fn every_forwarded_datagram_has_a_departure_after_its_delay_and_before_its_arrival() {
    const N: usize = 40;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            delay_ms: 5.0,
            duplicate_pct: 20.0,
            ..Impairments::default()
        },
        seed: 3,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let mut account = Account::default();
    let mut arrivals = Vec::new();
    // Sent without waiting for each reply, so that no event is skipped.
    for i in 0..N {
        client
            .send(Command::Send {
                socket: a.socket.clone(),
                to: Some(link.listen.to_string()),
                payload: text(&format!("d{i}")),
            })
            .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let copies = |account: &Account| {
        account
            .forwarded
            .keys()
            .map(|k| account.departures.get(k).map_or(0, Vec::len))
            .sum::<usize>()
    };
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still waiting: {} decisions, {} departures, {} arrivals",
            account.forwarded.len(),
            copies(&account),
            arrivals.len()
        );
        let event = client.next().await;
        account.take(&event);
        if let Event::Datagram(d) = &event
            && d.dir == Direction::In
            && d.socket == b.socket
        {
            arrivals.push(d.t_ns);
        }
        if account.forwarded.len() == N
            && account
                .forwarded
                .keys()
                .all(|k| account.departures.contains_key(k))
            && arrivals.len() >= copies(&account)
        {
            break;
        }
    }
    let mut duplicated = 0;
    for (key, (arrived, delay)) in &account.forwarded {
        let left = &account.departures[key];
        duplicated += usize::from(left.len() == 2);
        for &(t, late, _) in left {
            assert!(
                t >= arrived + delay,
                "{key:?} left {} ns after it arrived, before its {delay} ns delay",
                t - arrived
            );
            assert_eq!(
                t - arrived - delay,
                late,
                "{key:?}: late_ns is the departure less the plan"
            );
        }
    }
    assert!(
        duplicated > 0,
        "20 % duplication over {N} datagrams made no copy"
    );
    // Each receive at b comes after some departure: the k-th arrival after the k-th
    // departure (loopback keeps the link's order).
    let mut left: Vec<u64> = account.departures.values().flatten().map(|d| d.0).collect();
    left.sort_unstable();
    arrivals.sort_unstable();
    assert_eq!(left.len(), arrivals.len());
    for (k, (l, r)) in left.iter().zip(&arrivals).enumerate() {
        assert!(
            l <= r,
            "arrival {k} at {r} ns precedes departure {k} at {l} ns"
        );
    }
    server.stop().await;
}

/// The flows table's `link` row for `src → dst`, once every datagram it counts has
/// left or been dropped.
async fn settled_link_flow(
    client: &mut Client,
    src: std::net::SocketAddr,
    sent: u64,
) -> FlowSummary {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the link flow from {src} never settled at {sent} sent"
        );
        let stats = client
            .next_where(|e| match e {
                Event::FlowStats(s) => Some(s),
                _ => None,
            })
            .await;
        if let Some(f) = stats
            .flows
            .into_iter()
            .find(|f| f.method == FlowMethod::Link && f.src == src)
            && f.sent == sent
            && f.in_flight == 0
        {
            return f;
        }
    }
}

#[tokio::test]
async fn two_python_programs_through_a_lossy_reordering_link_are_counted_as_their_receiver_counts()
{
    const N: u64 = 400;
    let receiver = PythonReceiver::start(N);
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 10.0 },
            delay_ms: 2.0,
            reorder_pct: 10.0,
            reorder_gap: 2,
            ..Impairments::default()
        },
        seed: 11,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", receiver.addr, settings).await;
    let sender = tokio::spawn(send_numbered(link.listen, N, 1_000.0));
    // The sender's address is known once it has sent: read the link's events meanwhile
    // (the client must keep reading, as a page does).
    let mut account = Account::default();
    while !sender.is_finished() {
        if let Ok(event) = tokio::time::timeout(Duration::from_millis(50), client.next()).await {
            account.take(&event);
        }
    }
    let from = sender.await.expect("the sender task");
    let flow = settled_link_flow(&mut client, from, N).await;
    let receiver_addr = receiver.addr;
    let counted = receiver.counted().await;
    assert_eq!(flow.dst, receiver_addr);
    assert_eq!(
        flow.via.as_ref().map(ToString::to_string).as_deref(),
        Some(link.link.as_str())
    );
    assert!(
        counted.missing > 0 && counted.reordered > 0,
        "the link lost and reordered nothing, so this test proves nothing: {counted:?}"
    );
    assert_eq!(
        (flow.lost, flow.reordered, flow.received, flow.duplicated),
        (
            counted.missing,
            counted.reordered,
            counted.received,
            counted.duplicates
        ),
        "the link's account against the Python receiver's own count"
    );
    assert_eq!(
        flow.drops.iter().map(|d| d.count).sum::<u64>(),
        flow.lost,
        "every loss has its reason"
    );
    assert!(
        flow.drops
            .iter()
            .all(|d| d.reason == DropReason::RandomLoss)
    );
    let latency = flow.latency_ns.expect("times in the link");
    assert!(
        latency.min >= 2_000_000,
        "a datagram spent {} ns in a link with a 2 ms delay",
        latency.min
    );
    server.stop().await;
}
