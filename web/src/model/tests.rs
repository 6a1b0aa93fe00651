//! Unit tests of the parent module.

use socklab_protocol::Endpoint;
use socklab_protocol::link::{DropReason, LinkDir, LinkFate};
use socklab_protocol::{
    Bound, Closed, Datagram, Direction, ErrorCode, ErrorEvent, EventId, Gap, Hello, LinkPacket,
    Proto,
};

use super::*;

fn hello(session: &str) -> Event {
    Event::Hello(Hello {
        protocol: 1,
        session: socklab_protocol::SessionId::new(session),
        server: "socklab test".into(),
    })
}

fn bound(id: u64, socket: &str, port: u16, req: Option<i64>) -> Event {
    Event::Bound(Bound {
        id: EventId(id),
        socket: SocketId::new(socket),
        proto: Proto::Udp,
        local: Endpoint::Ip(SocketAddr::from(([127, 0, 0, 1], port))),
        recv_buffer_bytes: Some(425_984),
        recv_size: None,
        listening: false,
        multicast: false,
        t_ns: 0,
        req,
    })
}

fn datagram(id: u64, dir: Direction, text: &str) -> Event {
    Event::Datagram(Datagram {
        id: EventId(id),
        socket: SocketId::new("s1"),
        dir,
        local: "127.0.0.1:1000".parse().unwrap(),
        peer: "127.0.0.1:2000".parse().unwrap(),
        len: text.len(),
        payload_b64: socklab_protocol::payload::encode_base64(text.as_bytes()),
        t_ns: id * 1000,
        req: None,
        truncated_from: None,
    })
}

#[test]
fn tokens_are_found_in_what_people_paste() {
    let cases = [
        ("http://127.0.0.1:7070/?token=abc123", Some("abc123")),
        ("  http://127.0.0.1:7070/?token=abc123&x=1 ", Some("abc123")),
        (
            "socklab is running: open http://127.0.0.1:7070/?token=ff00 in a browser",
            Some("ff00"),
        ),
        ("abc123", Some("abc123")),
        ("http://127.0.0.1:7070/", None),
        ("", None),
    ];
    for (pasted, token) in cases {
        assert_eq!(token_from(pasted).as_deref(), token, "{pasted}");
    }
}

#[test]
fn a_wrong_token_after_a_session_means_the_server_restarted() {
    let mut state = State::default();
    state.apply(Action::Received(Box::new(hello("a"))));
    state.apply(Action::Disconnected);
    state.apply(Action::Refused {
        code: "wrong_token".into(),
        message: "wrong token".into(),
    });
    assert!(state.connection.needs_token());
    assert!(state.ended.as_deref().unwrap().contains("restarted"));
    // Another failed attempt does not forget why.
    state.apply(Action::Disconnected);
    assert!(state.connection.needs_token());
    state.apply(Action::Received(Box::new(hello("b"))));
    assert_eq!(
        (state.connection, state.ended),
        (Connection::Connected, None)
    );
}

#[test]
fn connection_states() {
    let mut state = State::default();
    assert_eq!(state.connection, Connection::Connecting);
    state.apply(Action::Received(Box::new(hello("a"))));
    assert_eq!(state.connection, Connection::Connected);
    state.apply(Action::Disconnected);
    state.apply(Action::Disconnected);
    assert_eq!(state.connection, Connection::Reconnecting { attempts: 1 });
    state.apply(Action::Received(Box::new(hello("a"))));
    assert_eq!(state.connection, Connection::Connected);
    assert!(state.notices.is_empty());
}

#[test]
fn a_new_session_forgets_old_sockets() {
    let mut state = State::default();
    state.apply(Action::Received(Box::new(hello("a"))));
    state.apply(Action::Received(Box::new(bound(1, "s1", 4000, None))));
    state.apply(Action::Disconnected);
    state.apply(Action::Received(Box::new(hello("b"))));
    assert!(state.sockets.is_empty());
    assert_eq!(state.notices.len(), 1);
}

#[test]
fn sockets_come_and_go() {
    let mut state = State::default();
    state.apply(Action::Received(Box::new(Event::Batch {
        events: vec![bound(1, "s1", 4000, None), bound(2, "s2", 4001, None)],
    })));
    let ids: Vec<&str> = state.sockets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2"]);
    state.apply(Action::Received(Box::new(Event::Closed(Closed {
        id: EventId(3),
        socket: SocketId::new("s1"),
        t_ns: 0,
        req: None,
    }))));
    let ids: Vec<&str> = state.sockets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s2"]);
}

#[test]
fn kernel_drops_are_counted_on_their_socket() {
    let mut state = State::default();
    state.apply(Action::Received(Box::new(bound(1, "s1", 4000, None))));
    assert_eq!(state.sockets[0].recv_buffer_bytes, Some(425_984));
    for (id, dropped, total) in [(2, 12, 12), (3, 5, 17)] {
        state.apply(Action::Received(Box::new(Event::KernelDrops(
            socklab_protocol::KernelDrops {
                id: EventId(id),
                socket: SocketId::new("s1"),
                dropped,
                total,
                t_ns: 0,
            },
        ))));
    }
    assert_eq!(state.sockets[0].kernel_drops, 17);
    // Each report is also a row of the packet list, in id order.
    let rows: Vec<(u64, u64)> = state
        .packets
        .borrow()
        .newest(10)
        .map(|p| match p.what {
            What::KernelDrops { dropped, total, .. } => (dropped, total),
            _ => panic!("only kernel drops were reported"),
        })
        .collect();
    assert_eq!(rows, [(12, 12), (5, 17)]);
}

#[test]
fn errors_land_next_to_the_form_that_caused_them() {
    let mut state = State::default();
    state.apply(Action::Sent {
        req: 7,
        origin: Origin::Bind,
    });
    state.apply(Action::Received(Box::new(Event::Error(ErrorEvent {
        req: Some(7),
        code: ErrorCode::AddressInUse,
        message: "127.0.0.1:5000 is already in use".into(),
    }))));
    assert_eq!(
        state.error(&Origin::Bind),
        Some("127.0.0.1:5000 is already in use"),
        "words for the person"
    );
    assert_eq!(
        state.error_code(&Origin::Bind),
        Some("address_in_use"),
        "the code beside them, for scripts"
    );
    // The next successful bind clears it.
    state.apply(Action::Sent {
        req: 8,
        origin: Origin::Bind,
    });
    assert_eq!(state.error(&Origin::Bind), None);
    // An error nobody asked for becomes a notice.
    state.apply(Action::Received(Box::new(Event::Error(ErrorEvent {
        req: None,
        code: ErrorCode::BadRequest,
        message: "bad".into(),
    }))));
    assert_eq!(*state.notices, vec!["bad".to_string()]);
}

#[test]
fn packets_are_kept_in_order_and_bounded() {
    let mut state = State::default();
    let before = state.clone();
    state.apply(Action::Received(Box::new(datagram(
        5,
        Direction::Out,
        "hello",
    ))));
    state.apply(Action::Received(Box::new(datagram(
        6,
        Direction::In,
        "hello",
    ))));
    assert_eq!(state.packets_version, 2);
    // Cloning the state shares the store instead of copying it.
    assert!(Rc::ptr_eq(&before.packets, &state.packets));
    {
        let store = state.packets.borrow();
        let got: Vec<(u64, Direction, &[u8])> = store
            .newest(10)
            .map(|p| match &p.what {
                What::Socket { dir, .. } => (p.id, *dir, p.payload.as_slice()),
                What::Link(_)
                | What::KernelDrops { .. }
                | What::Unreachable { .. }
                | What::Stream { .. }
                | What::Tcp { .. }
                | What::TcpLink { .. } => {
                    panic!("only datagrams were received")
                }
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (5, Direction::Out, &b"hello"[..]),
                (6, Direction::In, &b"hello"[..])
            ]
        );
        assert_eq!(store.get(6).map(|p| p.id), Some(6));
        assert_eq!(store.get(7).map(|p| p.id), None);
    }
    for id in 100..(100 + PACKETS_KEPT as u64) {
        state.apply(Action::Received(Box::new(datagram(id, Direction::In, "x"))));
    }
    let store = state.packets.borrow();
    assert_eq!(store.len(), PACKETS_KEPT);
    assert_eq!(store.evicted, 2);
    // Rows are numbered in the order the list got them, without the ids' gaps, and
    // keep their numbers when older rows leave.
    let rows: Vec<(u64, u64)> = store.newest_numbered(2).map(|(n, p)| (n, p.id)).collect();
    let last = PACKETS_KEPT as u64 + 2;
    assert_eq!(
        rows,
        [
            (last - 1, 100 + PACKETS_KEPT as u64 - 2),
            (last, 100 + PACKETS_KEPT as u64 - 1)
        ]
    );
    assert_eq!(store.row_of(100), Some(3), "ids 5 and 6 were rows 1 and 2");
}

#[test]
fn rows_are_numbered_without_the_gaps_of_event_ids() {
    let mut state = State::default();
    for id in [3, 4, 7, 8] {
        state.apply(Action::Received(Box::new(datagram(
            id,
            Direction::Out,
            "x",
        ))));
    }
    let numbered: Vec<(u64, u64)> = state
        .packets
        .borrow()
        .newest_numbered(10)
        .map(|(n, p)| (n, p.id))
        .collect();
    assert_eq!(numbered, [(1, 3), (2, 4), (3, 7), (4, 8)]);
}

#[test]
fn addresses_have_short_names_that_outlive_their_socket() {
    let mut state = State::default();
    state.apply(Action::Received(Box::new(bound(1, "s1", 4000, None))));
    let s1: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(state.name_of(&Endpoint::Ip(s1)), "s1");
    state.apply(Action::Received(Box::new(Event::Closed(Closed {
        id: EventId(2),
        socket: SocketId::new("s1"),
        t_ns: 0,
        req: None,
    }))));
    assert_eq!(
        state.name_of(&Endpoint::Ip(s1)),
        "s1",
        "older rows still read"
    );
    let outside: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(state.name_of(&Endpoint::Ip(outside)), "127.0.0.1:9");
}

#[test]
fn links_and_their_decisions() {
    use socklab_protocol::{LinkCreated, LinkStats};
    let mut state = State::default();
    state.apply(Action::Received(Box::new(Event::LinkCreated(
        LinkCreated {
            id: EventId(1),
            link: LinkId::new("l1"),
            listen: "127.0.0.1:7000".parse().unwrap(),
            upstream: "127.0.0.1:7001".parse().unwrap(),
            target: "127.0.0.1:9000".parse().unwrap(),
            settings: LinkSettings::default(),
            t_ns: 0,
            req: None,
        },
    ))));
    assert_eq!(state.links.len(), 1);
    state.apply(Action::Received(Box::new(Event::LinkStats(LinkStats {
        id: EventId(2),
        link: LinkId::new("l1"),
        c2t: LinkCounters {
            arrived: 3,
            dropped_random: 1,
            ..LinkCounters::default()
        },
        t2c: LinkCounters::default(),
        t_ns: 0,
    }))));
    assert_eq!(state.links[0].c2t.arrived, 3);
    let packet = LinkPacket {
        id: EventId(3),
        link: LinkId::new("l1"),
        dir: LinkDir::C2t,
        seq: 0,
        from: "127.0.0.1:1".parse().unwrap(),
        to: Some("127.0.0.1:9000".parse().unwrap()),
        len: 2,
        payload_b64: "aGk=".into(),
        fate: LinkFate::Dropped,
        reason: Some(DropReason::RandomLoss),
        delay_ns: None,
        queue_ns: None,
        duplicated: false,
        corrupted_at: None,
        corrupt_mask: None,
        truncated_to: None,
        held_for: None,
        error: None,
        t_ns: 5,
    };
    state.apply(Action::Received(Box::new(Event::LinkPacket(
        packet.clone(),
    ))));
    state.apply(Action::Received(Box::new(Event::LinkPacket(LinkPacket {
        id: EventId(4),
        fate: LinkFate::Forwarded,
        reason: None,
        delay_ns: Some(20_100_000),
        duplicated: true,
        held_for: Some(2),
        ..packet.clone()
    }))));
    let store = state.packets.borrow();
    let summaries: Vec<String> = store
        .newest(2)
        .map(|p| match &p.what {
            What::Link(d) => d.summary(),
            What::Socket { .. }
            | What::KernelDrops { .. }
            | What::Unreachable { .. }
            | What::Stream { .. }
            | What::Tcp { .. }
            | What::TcpLink { .. } => {
                panic!("link rows")
            }
        })
        .collect();
    assert_eq!(
        summaries,
        [
            "dropped: random loss",
            "planned +20.1 ms, held back for 2, duplicated; not left yet"
        ]
    );
    drop(store);
    // The plan, then the outcome: held back, it really left 67.1 ms after it arrived.
    let left = |late_ns| {
        Event::LinkSent(socklab_protocol::LinkSent {
            id: EventId(6),
            link: LinkId::new("l1"),
            dir: LinkDir::C2t,
            sent: vec![socklab_protocol::Departure {
                seq: 0,
                t_ns: 5 + 67_100_000,
                late_ns,
                copy: false,
            }],
            t_ns: 5 + 67_100_000,
        })
    };
    state.apply(Action::Received(Box::new(left(20_000))));
    let summary = |state: &State| match &state.packets.borrow().get(4).unwrap().what {
        What::Link(d) => d.summary(),
        What::Socket { .. }
        | What::KernelDrops { .. }
        | What::Unreachable { .. }
        | What::Stream { .. }
        | What::Tcp { .. }
        | What::TcpLink { .. } => {
            panic!("a link row")
        }
    };
    assert_eq!(
        summary(&state),
        "planned +20.1 ms, held back for 2, duplicated; left after 67.100 ms"
    );
    // The second copy leaving changes nothing.
    state.apply(Action::Received(Box::new(left(3_000_000))));
    assert_eq!(
        summary(&state),
        "planned +20.1 ms, held back for 2, duplicated; left after 67.100 ms"
    );
    // A late departure says by how much.
    state.apply(Action::Received(Box::new(Event::LinkPacket(LinkPacket {
        id: EventId(7),
        seq: 1,
        fate: LinkFate::Forwarded,
        reason: None,
        delay_ns: Some(10_000_000),
        ..packet
    }))));
    state.apply(Action::Received(Box::new(Event::LinkSent(
        socklab_protocol::LinkSent {
            id: EventId(8),
            link: LinkId::new("l1"),
            dir: LinkDir::C2t,
            sent: vec![socklab_protocol::Departure {
                seq: 1,
                t_ns: 5 + 13_000_000,
                late_ns: 3_000_000,
                copy: false,
            }],
            t_ns: 5 + 13_000_000,
        },
    ))));
    let late = match &state.packets.borrow().get(7).unwrap().what {
        What::Link(d) => d.summary(),
        What::Socket { .. }
        | What::KernelDrops { .. }
        | What::Unreachable { .. }
        | What::Stream { .. }
        | What::Tcp { .. }
        | What::TcpLink { .. } => {
            panic!("a link row")
        }
    };
    assert_eq!(
        late,
        "planned +10.0 ms; left after 13.000 ms (3.000 ms late)"
    );
    state.apply(Action::Received(Box::new(Event::LinkDeleted(
        socklab_protocol::LinkDeleted {
            id: EventId(5),
            link: LinkId::new("l1"),
            t_ns: 0,
            req: None,
        },
    ))));
    assert!(state.links.is_empty());
}

/// Each `flow_stats` brings the runs whose figures changed; the page keeps the latest
/// of every run.
#[test]
fn the_servers_figures_of_each_run_are_kept_as_they_change() {
    use socklab_protocol::flow::{FlowMethod, FlowStats, FlowSummary, RunFlows};
    let flow = |sent: u64| FlowSummary {
        src: Endpoint::Ip("127.0.0.1:1000".parse().unwrap()),
        dst: Endpoint::Ip("127.0.0.1:2000".parse().unwrap()),
        via: None,
        method: FlowMethod::Matched,
        seq_flow: None,
        sent,
        received: sent,
        lost: 0,
        lost_pct: 0.0,
        reordered: 0,
        duplicated: 0,
        in_flight: 0,
        latency_ns: None,
        jitter_ns: None,
        latency_cdf_ns: Vec::new(),
        drops: Vec::new(),
    };
    let stats = |id: u64, runs: Vec<(u32, u64)>| {
        Event::FlowStats(FlowStats {
            id: EventId(id),
            flows: vec![flow(100)],
            retired_flows: 0,
            untracked: 0,
            runs: runs
                .into_iter()
                .map(|(run, sent)| RunFlows {
                    run,
                    flows: vec![flow(sent)],
                    partial: false,
                })
                .collect(),
            t_ns: id,
        })
    };
    let mut state = State::default();
    state.apply(Action::Received(Box::new(stats(1, vec![(1, 10), (2, 5)]))));
    state.apply(Action::Received(Box::new(stats(2, vec![(2, 90)]))));
    state.apply(Action::Received(Box::new(stats(3, vec![]))));
    let sent: Vec<(u32, u64)> = state
        .run_flows
        .values()
        .map(|r| (r.run, r.flows[0].sent))
        .collect();
    assert_eq!(sent, vec![(1, 10), (2, 90)]);
}

#[test]
fn gaps_are_announced() {
    let mut state = State::default();
    state.apply(Action::Received(Box::new(Event::Gap(Gap {
        from: EventId(3),
        to: EventId(9),
        count: 7,
    }))));
    state.apply(Action::Received(Box::new(Event::Gap(Gap {
        from: EventId(20),
        to: EventId(21),
        count: 2,
    }))));
    assert_eq!(state.gaps, (9, 2), "counted together, once");
    assert!(state.notices.is_empty(), "not a line per gap");
}

#[test]
fn every_form_offers_the_same_destinations() {
    use socklab_protocol::LinkCreated;
    let mut state = State::default();
    state.apply(Action::Received(Box::new(bound(1, "s1", 4000, None))));
    state.apply(Action::Received(Box::new(Event::LinkCreated(
        LinkCreated {
            id: EventId(2),
            link: LinkId::new("l1"),
            listen: "127.0.0.1:7000".parse().unwrap(),
            upstream: "127.0.0.1:7001".parse().unwrap(),
            target: "127.0.0.1:4000".parse().unwrap(),
            settings: LinkSettings::default(),
            t_ns: 0,
            req: None,
        },
    ))));
    // Datagrams with an echo server outside the lab, and with the link (not outside).
    for (id, peer) in [
        (3, "127.0.0.1:9"),
        (4, "127.0.0.1:7000"),
        (5, "127.0.0.1:8"),
        (6, "127.0.0.1:9"),
    ] {
        let mut d = datagram(id, Direction::Out, "x");
        if let Event::Datagram(d) = &mut d {
            d.peer = peer.parse().unwrap();
        }
        state.apply(Action::Received(Box::new(d)));
    }
    let labels: Vec<String> = state.destinations().into_iter().map(|d| d.label).collect();
    assert_eq!(
        labels,
        [
            "s1 127.0.0.1:4000",
            "l1 listen 127.0.0.1:7000",
            "outside 127.0.0.1:9",
            "outside 127.0.0.1:8"
        ]
    );
}

#[test]
fn a_tcp_read_names_the_writes_its_bytes_came_from() {
    use socklab_protocol::{Accepted, StreamEnd, StreamEndReason};
    let (dialer, listener) = (
        "127.0.0.1:4000".parse::<SocketAddr>().unwrap(),
        "127.0.0.1:5000".parse::<SocketAddr>().unwrap(),
    );
    let stream = |id: u64, socket: &str, dir, offset: u64, text: &str| {
        crate::testing::stream((dialer, listener), id, socket, dir, offset, text)
    };
    let mut state = State::default();
    for event in [
        Event::Accepted(Accepted {
            id: EventId(1),
            socket: SocketId::new("s1.1"),
            listener: SocketId::new("s1"),
            local: listener,
            peer: dialer,
            t_ns: 500,
        }),
        stream(2, "s2", Direction::Out, 0, "hello"),
        stream(3, "s2", Direction::Out, 5, "world"),
        stream(4, "s1.1", Direction::In, 0, "hellowo"),
        stream(5, "s1.1", Direction::In, 7, "rld"),
        Event::StreamEnd(StreamEnd {
            id: EventId(6),
            socket: SocketId::new("s1.1"),
            reason: StreamEndReason::Eof,
            error: None,
            read: 10,
            t_ns: 7000,
            req: None,
        }),
    ] {
        state.apply(Action::Received(Box::new(event)));
    }
    let accepted = state
        .sockets
        .iter()
        .find(|s| s.id.as_str() == "s1.1")
        .unwrap();
    assert_eq!(
        (
            accepted.listener.as_ref().map(SocketId::as_str),
            accepted.peer.clone()
        ),
        (Some("s1"), Some(Endpoint::Ip(dialer)))
    );
    assert_eq!(accepted.state.as_deref(), Some("stream ended (FIN read)"));
    let store = state.packets.borrow();
    assert_eq!(
        store.writes_into(store.get(4).unwrap()),
        vec![(2, 0, 5), (3, 5, 7)],
        "one read, two writes"
    );
    assert_eq!(store.writes_into(store.get(5).unwrap()), vec![(3, 7, 10)]);
    assert!(
        store.writes_into(store.get(2).unwrap()).is_empty(),
        "a write has no sources"
    );
    match &store.get(6).unwrap().what {
        What::Tcp { what, .. } => assert_eq!(
            what.note(),
            "end of stream: a read returned 0 (FIN); 10 bytes read in all"
        ),
        other => panic!("{other:?}"),
    }
}

/// The packet list's filters and its search by bytes.
#[test]
fn rows_are_filtered_by_kind_place_fate_flow_and_bytes() {
    use super::{RowFilter, RowKind, search_bytes};
    assert_eq!(search_bytes("SLQ1"), Ok(b"SLQ1".to_vec()));
    assert_eq!(search_bytes("hex 53 4c 51"), Ok(vec![0x53, 0x4c, 0x51]));
    assert_eq!(search_bytes("0x534C"), Ok(vec![0x53, 0x4c]));
    assert_eq!(search_bytes("hex:00ff"), Ok(vec![0, 0xff]));
    assert!(search_bytes("hex 5").unwrap_err().contains("odd number"));
    assert!(
        search_bytes("0xzz")
            .unwrap_err()
            .contains("not a hex digit")
    );
    assert!(
        search_bytes("hex aé1").unwrap_err().contains("“é”"),
        "no panic on a letter of two bytes"
    );
    assert_eq!(search_bytes(""), Ok(Vec::new()));

    let mut state = State::default();
    state.receive(bound(1, "s1", 1000, None));
    state.receive(bound(2, "s2", 2000, None));
    for (id, dir, socket, payload) in [
        (3, Direction::Out, "s1", "ping 1"),
        (4, Direction::In, "s2", "ping 1"),
        (5, Direction::Out, "s2", "pong"),
    ] {
        let mut event = datagram(id, dir, payload);
        if let Event::Datagram(d) = &mut event {
            d.socket = SocketId::new(socket);
        }
        state.receive(event);
    }
    // What became of them: the first delivered, the second lost.
    let fate = |send: u64, kind, recv: Option<u64>| {
        Event::Fate(socklab_protocol::flow::Fate {
            id: EventId(0),
            fate: kind,
            send: EventId(send),
            recv: recv.map(EventId),
            src: Endpoint::Ip("127.0.0.1:1000".parse().unwrap()),
            dst: Endpoint::Ip("127.0.0.1:2000".parse().unwrap()),
            latency_ns: recv.map(|_| 1_000),
            reordered_by: None,
            late: false,
            by_order: false,
            by_field: false,
            cause: recv
                .is_none()
                .then_some(socklab_protocol::flow::LossCause::Timeout),
            reason: None,
            decision: None,
            t_ns: 9_000,
        })
    };
    use socklab_protocol::flow::FateKind as Fate;
    state.receive(fate(3, Fate::Delivered, Some(4)));
    state.receive(fate(5, Fate::Lost, None));
    let store = state.packets.borrow();
    let timeline = state.timeline.borrow();
    let matching = |filter: &RowFilter| store.matching(filter, &timeline);
    let by_fate = |fate| RowFilter {
        fate,
        ..RowFilter::default()
    };
    assert_eq!(matching(&by_fate(super::FateKind::Delivered)), [0, 1]);
    assert_eq!(matching(&by_fate(super::FateKind::Lost)), [2]);
    assert_eq!(
        matching(&by_fate(super::FateKind::Reordered)),
        Vec::<u32>::new()
    );
    let flow = timeline.arrow_of(3).map(|a| a.flow);
    let of_flow = |flow| RowFilter {
        flow,
        ..RowFilter::default()
    };
    assert_eq!(matching(&of_flow(flow)), [0, 1, 2]);
    assert_eq!(matching(&of_flow(flow.map(|f| f + 1))), Vec::<u32>::new());
    assert_eq!(
        timeline.arrow_of(5).and_then(super::fate_words).as_deref(),
        Some("lost: timed out")
    );
    let all = matching(&RowFilter::default());
    assert_eq!(all, [0, 1, 2]);
    let sent = RowFilter {
        kind: RowKind::Out,
        ..RowFilter::default()
    };
    assert_eq!(matching(&sent), [0, 2]);
    let s2_sent = RowFilter {
        place: Some("s2".into()),
        ..sent.clone()
    };
    assert_eq!(matching(&s2_sent), [2]);
    let ping = RowFilter {
        bytes: b"ping".to_vec(),
        ..RowFilter::default()
    };
    assert_eq!(matching(&ping), [0, 1]);
    let longer_than_any = RowFilter {
        bytes: b"ping 1 and more".to_vec(),
        ..RowFilter::default()
    };
    assert_eq!(matching(&longer_than_any), Vec::<u32>::new());
    assert_eq!(store.numbered(2).map(|(row, p)| (row, p.id)), Some((3, 5)));
    assert_eq!(store.position_of(4), Some(1));
    assert_eq!(store.position_of(99), None);
}

/// Showing an event somewhere selects it, and each request is a new one.
#[test]
fn a_reveal_selects_and_counts_each_request() {
    use super::{Action, Place};
    let state = Rc::new(State::default());
    let state = state.reduce(Action::Reveal(7, Place::List));
    assert_eq!(state.selected, Some(7));
    let first = state.reveal.unwrap();
    let state = state.reduce(Action::Reveal(7, Place::List));
    let second = state.reveal.unwrap();
    assert_eq!((first.id, first.place), (second.id, second.place));
    assert_ne!(
        first.asked, second.asked,
        "the same row again still moves the list"
    );
}

#[test]
fn a_rows_bytes_are_decoded_when_read() {
    use super::Payload;
    let kept = Payload::base64("aGVsbG8=".into());
    assert_eq!(kept.as_slice(), b"hello");
    assert_eq!(kept.len(), 5);
    assert_eq!(kept, Payload::from(b"hello".to_vec()));
    assert_ne!(kept, Payload::from(b"hellO".to_vec()));
    // Text that is not base64 reads as no bytes (the server never sends it).
    assert!(Payload::base64("not base64!".into()).is_empty());
    assert!(Payload::default().is_empty());
}

/// A window the packet list asked for is the list's alone: the timeline's view, which
/// did not ask, keeps its own; one the timeline asked for (no `req`) is the timeline's.
#[test]
fn the_packet_lists_own_window_is_its_alone() {
    let window = |req: Option<i64>, text: &str| {
        Event::Window(socklab_protocol::Window {
            from_ns: 0,
            to_ns: 10_000,
            events: vec![datagram(3, Direction::Out, text)],
            complete: false,
            req,
        })
    };
    let mut state = State::default();
    state.apply(Action::Sent {
        req: 7,
        origin: Origin::Packets,
    });
    state.apply(Action::Received(Box::new(window(Some(7), "for the list"))));
    let list = state.list_window.clone().expect("the list's window");
    assert!(!list.complete);
    assert_eq!(list.rows.borrow().len(), 1);
    assert_eq!(state.window_packets.borrow().len(), 0, "not the timeline's");
    assert!(state.timeline.borrow().scale.detail.is_none());
    assert!(state.pending.is_empty(), "answered");
    // Over HTTP (a recording's), the same.
    state.apply(Action::ListWindow(Box::new(socklab_protocol::Window {
        from_ns: 5,
        to_ns: 6,
        events: Vec::new(),
        complete: true,
        req: None,
    })));
    assert_eq!(state.list_window.as_ref().map(|w| w.from_ns), Some(5));
    // The timeline's own.
    state.apply(Action::Received(Box::new(window(None, "for the view"))));
    assert_eq!(state.window_packets.borrow().len(), 1);
    assert!(state.timeline.borrow().scale.detail.is_some());
    assert_eq!(state.list_window.as_ref().map(|w| w.from_ns), Some(5));
}
