//! Unit tests of the parent module.
//!
//! (Over 600 lines: one test per way an event changes the arrows, each with the events
//! that make it; they share the builders at the top.)

use socklab_protocol::Endpoint;
use socklab_protocol::flow::LossCause;
use socklab_protocol::{Bound, Command, Datagram, EventId, LinkCreated, Proto, SocketId};

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn bound(id: u64, socket: &str, local: &str) -> Event {
    Event::Bound(Bound {
        id: EventId(id),
        socket: SocketId::new(socket),
        proto: Proto::Udp,
        local: Endpoint::Ip(addr(local)),
        recv_buffer_bytes: None,
        recv_size: None,
        listening: false,
        multicast: false,
        t_ns: 0,
        req: None,
    })
}

fn datagram(id: u64, t: u64, dir: Direction, local: &str, peer: &str) -> Event {
    Event::Datagram(Datagram {
        id: EventId(id),
        socket: SocketId::new("s"),
        dir,
        local: Endpoint::Ip(addr(local)),
        peer: Endpoint::Ip(addr(peer)),
        len: 1,
        payload_b64: "eA==".into(),
        t_ns: t,
        req: None,
        truncated_from: None,
    })
}

fn fate(kind: FateKind, send: u64, recv: Option<u64>, latency: Option<u64>, t: u64) -> Fate {
    Fate {
        id: EventId(0),
        fate: kind,
        send: EventId(send),
        recv: recv.map(EventId),
        src: Endpoint::Ip(addr("127.0.0.1:1")),
        dst: Endpoint::Ip(addr("127.0.0.1:2")),
        latency_ns: latency,
        reordered_by: None,
        late: false,
        by_order: false,
        by_field: false,
        cause: None,
        reason: None,
        decision: None,
        t_ns: t,
    }
}

/// Link l1's decision `id` on its client → target datagram `seq` from `from` to `to`,
/// arrived at `t_ns`: a forwarded one with 40 ms of delay, a dropped one for no reason.
fn link_packet(
    id: u64,
    seq: u64,
    (from, to): (&str, &str),
    fate: socklab_protocol::link::LinkFate,
    t_ns: u64,
) -> socklab_protocol::LinkPacket {
    use socklab_protocol::link::{LinkDir, LinkFate};
    socklab_protocol::LinkPacket {
        id: EventId(id),
        link: LinkId::new("l1"),
        dir: LinkDir::C2t,
        seq,
        from: addr(from),
        to: Some(addr(to)),
        len: 1,
        payload_b64: "eA==".into(),
        fate,
        reason: None,
        delay_ns: (fate == LinkFate::Forwarded).then_some(40_000_000),
        queue_ns: None,
        duplicated: false,
        corrupted_at: None,
        corrupt_mask: None,
        truncated_to: None,
        held_for: None,
        error: None,
        t_ns,
    }
}

#[test]
fn a_loss_says_who_dropped_it() {
    for (cause, reason, want, words) in [
        (
            Some(LossCause::Link),
            Some(DropReason::QueueFull),
            LossWhy::Link(DropReason::QueueFull),
            DropReason::QueueFull.describe(),
        ),
        (
            Some(LossCause::Kernel),
            None,
            LossWhy::Kernel,
            "dropped by the kernel at the receiving socket: its receive buffer was full",
        ),
        (
            Some(LossCause::Timeout),
            None,
            LossWhy::Timeout,
            "not received within the loss timeout",
        ),
        (
            None,
            None,
            LossWhy::Timeout,
            "not received within the loss timeout",
        ),
    ] {
        let why = LossWhy::of(cause, reason);
        assert_eq!((why, why.words()), (want, words));
    }
}

fn link_client(client: &str) -> Event {
    Event::LinkClient(socklab_protocol::LinkClient {
        id: EventId(90),
        link: LinkId::new("l1"),
        client: addr(client),
        previous: None,
        t_ns: 0,
    })
}

fn link_l1(listen: &str, upstream: &str, target: &str) -> Event {
    Event::LinkCreated(LinkCreated {
        id: EventId(3),
        link: LinkId::new("l1"),
        listen: addr(listen),
        upstream: addr(upstream),
        target: addr(target),
        settings: Default::default(),
        t_ns: 0,
        req: None,
    })
}

/// An outside program sends to a link in front of a lab socket, which answers: the
/// arrows run between the program and the socket, across the link, because the
/// link said who its client is (nothing is inferred from lab sends alone).
#[test]
fn an_outside_program_as_a_links_client_is_an_end_of_its_arrows() {
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:2000"));
    tl.apply(&link_l1(
        "127.0.0.1:3000",
        "127.0.0.1:3001",
        "127.0.0.1:2000",
    ));
    tl.apply(&link_client("127.0.0.1:5555"));
    tl.apply(&datagram(
        5,
        100,
        Direction::In,
        "127.0.0.1:2000",
        "127.0.0.1:3001",
    ));
    tl.apply(&datagram(
        6,
        200,
        Direction::Out,
        "127.0.0.1:2000",
        "127.0.0.1:3001",
    ));
    let labels: Vec<&str> = tl.lanes.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "s1 127.0.0.1:2000",
            "l1 link 127.0.0.1:3000",
            "127.0.0.1:5555"
        ]
    );
    let ends: Vec<_> = tl.arrows.iter().map(|a| (a.from, a.to, a.via)).collect();
    assert_eq!(
        ends,
        [(2, 0, Some(1)), (0, 2, Some(1))],
        "in from the program, out to it, both across the link"
    );
    assert_eq!(
        tl.flows,
        [
            (
                Endpoint::Ip(addr("127.0.0.1:5555")),
                Endpoint::Ip(addr("127.0.0.1:2000"))
            ),
            (
                Endpoint::Ip(addr("127.0.0.1:2000")),
                Endpoint::Ip(addr("127.0.0.1:5555"))
            )
        ]
    );
}

#[test]
fn arrows_cross_a_link_and_get_their_fates() {
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    tl.apply(&bound(2, "s2", "127.0.0.1:2000"));
    tl.apply(&Event::LinkCreated(LinkCreated {
        id: EventId(3),
        link: socklab_protocol::link::LinkId::new("l1"),
        listen: addr("127.0.0.1:3000"),
        upstream: addr("127.0.0.1:3001"),
        target: addr("127.0.0.1:2000"),
        settings: Default::default(),
        t_ns: 0,
        req: None,
    }));
    tl.apply(&datagram(
        4,
        100,
        Direction::Out,
        "127.0.0.1:1000",
        "127.0.0.1:3000",
    ));
    // The link reports its client, as the server does before its decision.
    tl.apply(&link_client("127.0.0.1:1000"));
    tl.apply(&datagram(
        5,
        200,
        Direction::Out,
        "127.0.0.1:1000",
        "127.0.0.1:3000",
    ));
    tl.apply(&datagram(
        6,
        350,
        Direction::In,
        "127.0.0.1:2000",
        "127.0.0.1:3001",
    ));
    let labels: Vec<&str> = tl.lanes.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "s1 127.0.0.1:1000",
            "s2 127.0.0.1:2000",
            "l1 link 127.0.0.1:3000"
        ]
    );
    assert_eq!(
        tl.columns(),
        [0, 2, 1],
        "the link is drawn before its target"
    );
    assert_eq!(
        tl.arrows.len(),
        2,
        "a lab-to-lab receive draws no arrow of its own"
    );
    assert_eq!(
        (tl.arrows[0].from, tl.arrows[0].to, tl.arrows[0].via),
        (0, 1, Some(2))
    );
    tl.apply(&Event::Fate(Fate {
        reordered_by: Some(1),
        ..fate(FateKind::Delivered, 4, Some(6), Some(250), 360)
    }));
    assert_eq!(
        tl.arrow_of(6).map(|a| a.send),
        Some(4),
        "the receive finds its send's arrow (the inspector shows its fate)"
    );
    let mut lost = fate(FateKind::Lost, 5, None, None, 220);
    lost.cause = Some(LossCause::Link);
    lost.reason = Some(DropReason::RandomLoss);
    tl.apply(&Event::Fate(lost));
    tl.apply(&Event::Fate(fate(
        FateKind::Duplicate,
        4,
        Some(6),
        None,
        400,
    )));
    let marks: Vec<(Mark, u64)> = tl.arrows.iter().map(|a| (a.mark, a.t1)).collect();
    assert_eq!(
        marks,
        [
            (Mark::Reordered(1), 350),
            (Mark::Lost(LossWhy::Link(DropReason::RandomLoss)), 220),
            (Mark::Duplicate, 350)
        ]
    );
    let only_lost = Filter {
        delivered: false,
        reordered: false,
        duplicated: false,
        ..Filter::default()
    };
    assert_eq!(tl.visible(&only_lost, 0, 1000).count(), 1);
    assert_eq!(tl.counts, [0, 1, 1, 1]);
    assert_eq!(
        tl.visible(&Filter::default(), 0, 150).count(),
        2,
        "arrows spanning the window"
    );
    assert_eq!(tl.visible(&Filter::default(), 500, 900).count(), 0);
}

#[test]
fn echo_replies_turn_at_the_peer() {
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    tl.apply(&datagram(
        2,
        100,
        Direction::Out,
        "127.0.0.1:1000",
        "127.0.0.1:7",
    ));
    tl.apply(&datagram(
        3,
        300,
        Direction::In,
        "127.0.0.1:1000",
        "127.0.0.1:7",
    ));
    assert_eq!(tl.arrows[1].mark, Mark::Incoming);
    tl.apply(&Event::Fate(fate(
        FateKind::Reply,
        2,
        Some(3),
        Some(200),
        300,
    )));
    assert_eq!(
        (tl.arrows[0].mark, tl.arrows[0].t1),
        (Mark::Request(Pairing::Bytes), 200)
    );
    assert_eq!(
        (tl.arrows[1].mark, tl.arrows[1].t0, tl.arrows[1].t1),
        (Mark::Reply, 200, 300)
    );
    assert_eq!(tl.lanes[1].kind, LaneKind::Outside);
}

#[test]
fn stays_bounded() {
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    for i in 0..(ARROWS_KEPT as u64 + 10) {
        tl.apply(&datagram(
            10 + i,
            i,
            Direction::Out,
            "127.0.0.1:1000",
            "127.0.0.1:9",
        ));
    }
    assert!(tl.arrows.len() <= ARROWS_KEPT);
    assert_eq!(
        tl.forgotten + tl.arrows.len() as u64,
        ARROWS_KEPT as u64 + 10
    );
    tl.apply(&Event::Fate(fate(
        FateKind::Unanswered,
        10 + ARROWS_KEPT as u64 + 9,
        None,
        None,
        1,
    )));
    assert_eq!(
        tl.arrows.last().unwrap().mark,
        Mark::Unanswered(LossWhy::Timeout)
    );
}

/// A datagram the kernel dropped at the receiver ends there when it arrived (when the
/// link let it go), not when the analysis gave up waiting for it.
#[test]
fn a_kernel_drop_is_drawn_at_its_arrival_on_the_receivers_lane() {
    use socklab_protocol::link::LinkFate;
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    tl.apply(&bound(2, "s2", "127.0.0.1:2000"));
    tl.apply(&link_l1(
        "127.0.0.1:3000",
        "127.0.0.1:3001",
        "127.0.0.1:2000",
    ));
    tl.apply(&datagram(
        4,
        100,
        Direction::Out,
        "127.0.0.1:1000",
        "127.0.0.1:3000",
    ));
    tl.apply(&link_client("127.0.0.1:1000"));
    tl.apply(&Event::LinkPacket(link_packet(
        6,
        0,
        ("127.0.0.1:1000", "127.0.0.1:2000"),
        LinkFate::Forwarded,
        150,
    )));
    // And a direct send, dropped too.
    tl.apply(&datagram(
        7,
        500,
        Direction::Out,
        "127.0.0.1:1000",
        "127.0.0.1:2000",
    ));
    for (send, decision) in [(4, Some(6)), (7, None)] {
        let mut lost = fate(FateKind::Lost, send, None, None, 2_000_000_000);
        lost.cause = Some(LossCause::Kernel);
        lost.decision = decision.map(EventId);
        tl.apply(&Event::Fate(lost));
    }
    let ends: Vec<_> = tl.arrows.iter().map(|a| (a.to, a.t1, a.mark)).collect();
    assert_eq!(
        ends,
        [
            (1, 40_000_150, Mark::Lost(LossWhy::Kernel)),
            (1, 500, Mark::Lost(LossWhy::Kernel)),
        ]
    );
}

/// When the link says when a datagram really left, a kernel drop at its receiver is
/// drawn then, not at the plan.
#[test]
fn a_kernel_drop_after_a_link_is_drawn_when_the_datagram_really_left() {
    use socklab_protocol::link::{LinkDir, LinkFate};
    use socklab_protocol::{Departure, LinkSent};
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    tl.apply(&bound(2, "s2", "127.0.0.1:2000"));
    tl.apply(&link_l1(
        "127.0.0.1:3000",
        "127.0.0.1:3001",
        "127.0.0.1:2000",
    ));
    tl.apply(&datagram(
        4,
        100,
        Direction::Out,
        "127.0.0.1:1000",
        "127.0.0.1:3000",
    ));
    tl.apply(&link_client("127.0.0.1:1000"));
    tl.apply(&Event::LinkPacket(link_packet(
        6,
        0,
        ("127.0.0.1:1000", "127.0.0.1:2000"),
        LinkFate::Forwarded,
        150,
    )));
    // It left 2 ms late.
    tl.apply(&Event::LinkSent(LinkSent {
        id: EventId(7),
        link: LinkId::new("l1"),
        dir: LinkDir::C2t,
        sent: vec![Departure {
            seq: 0,
            t_ns: 42_000_150,
            late_ns: 2_000_000,
            copy: false,
        }],
        t_ns: 42_000_150,
    }));
    let mut lost = fate(FateKind::Lost, 4, None, None, 2_000_000_000);
    lost.cause = Some(LossCause::Kernel);
    lost.decision = Some(EventId(6));
    tl.apply(&Event::Fate(lost));
    assert_eq!(tl.arrows[0].t1, 42_000_150);
}

#[test]
fn lanes_of_closed_sockets_and_deleted_links_can_be_hidden() {
    use socklab_protocol::{Closed, LinkDeleted, SocketId};
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    tl.apply(&bound(2, "s2", "127.0.0.1:2000"));
    tl.apply(&link_l1(
        "127.0.0.1:3000",
        "127.0.0.1:3001",
        "127.0.0.1:2000",
    ));
    tl.apply(&datagram(
        4,
        100,
        Direction::Out,
        "127.0.0.1:1000",
        "127.0.0.1:2000",
    ));
    tl.apply(&Event::Closed(Closed {
        id: EventId(5),
        socket: SocketId::new("s2"),
        t_ns: 200,
        req: None,
    }));
    tl.apply(&Event::LinkDeleted(LinkDeleted {
        id: EventId(6),
        link: LinkId::new("l1"),
        t_ns: 300,
        req: None,
    }));
    let heads: Vec<_> = tl
        .lanes
        .iter()
        .map(|l| (l.short.as_str(), l.gone))
        .collect();
    assert_eq!(heads, [("s1", false), ("s2", true), ("l1", true)]);
    let shown = Filter::default();
    assert_eq!(
        tl.lanes_shown(&shown),
        [true, true, true],
        "kept by default"
    );
    assert!(tl.shows(&shown, &tl.arrows[0]));
    let hidden = Filter {
        hide_gone: true,
        ..Filter::default()
    };
    assert_eq!(tl.lanes_shown(&hidden), [true, false, false]);
    assert!(!tl.shows(&hidden, &tl.arrows[0]), "its arrows go with it");
}

/// Two programs outside the lab talking through a link: only the link sees them, and
/// its account draws them (dropped at the link, sent on when it really left, out of
/// order, and the extra copy).
#[test]
fn datagrams_only_a_link_saw_are_drawn_from_its_account() {
    use socklab_protocol::link::{DropReason, LinkDir, LinkFate};
    use socklab_protocol::{Departure, LinkPacket, LinkSent};
    let mut tl = Timeline::default();
    tl.apply(&link_l1(
        "127.0.0.1:3000",
        "127.0.0.1:3001",
        "127.0.0.1:6000",
    ));
    let decision = |id: u64, seq: u64, fate: LinkFate, duplicated: bool| {
        Event::LinkPacket(LinkPacket {
            reason: (fate == LinkFate::Dropped).then_some(DropReason::BurstLoss),
            delay_ns: (fate == LinkFate::Forwarded).then_some(1_000),
            duplicated,
            ..link_packet(
                id,
                seq,
                ("127.0.0.1:5000", "127.0.0.1:6000"),
                fate,
                100 * seq,
            )
        })
    };
    let sent = |seq: u64, t_ns: u64| {
        Event::LinkSent(LinkSent {
            id: EventId(100 + t_ns),
            link: LinkId::new("l1"),
            dir: LinkDir::C2t,
            sent: vec![Departure {
                seq,
                t_ns,
                late_ns: 0,
                copy: false,
            }],
            t_ns,
        })
    };
    assert!(tl.apply(&decision(10, 0, LinkFate::Dropped, false)));
    assert!(tl.apply(&decision(11, 1, LinkFate::Forwarded, false)));
    assert!(tl.apply(&decision(12, 2, LinkFate::Forwarded, true)));
    assert_eq!(tl.arrow_of(11).unwrap().mark, Mark::Pending);
    assert!(tl.apply(&sent(2, 1_200)));
    assert!(tl.apply(&sent(1, 1_300)));
    assert!(tl.apply(&sent(2, 1_400)));
    let drawn: Vec<_> = tl
        .arrows
        .iter()
        .map(|a| (a.decision, a.t0, a.t1, a.mark, a.via.is_some()))
        .collect();
    assert_eq!(
        drawn,
        [
            (
                10,
                0,
                0,
                Mark::Lost(LossWhy::Link(DropReason::BurstLoss)),
                true
            ),
            (11, 100, 1_300, Mark::Reordered(1), true),
            (12, 200, 1_200, Mark::Delivered, true),
            (12, 200, 1_400, Mark::Duplicate, true),
        ]
    );
    let lanes: Vec<_> = tl.lanes.iter().map(|l| l.kind.clone()).collect();
    assert_eq!(
        lanes,
        [LaneKind::Link, LaneKind::Outside, LaneKind::Outside]
    );
    assert_eq!(tl.counts, [1, 1, 1, 1]);
}

#[test]
fn tcp_writes_end_at_the_read_that_returned_their_last_byte() {
    use socklab_protocol::{Accepted, Stream, StreamEnd, StreamEndReason};
    let (dialer, listener) = (addr("127.0.0.1:4000"), addr("127.0.0.1:5000"));
    let stream = |id: u64, t: u64, dir, offset: u64, len: usize| {
        let (local, peer) = match dir {
            Direction::Out => (dialer, listener),
            Direction::In => (listener, dialer),
        };
        Event::Stream(Stream {
            id: EventId(id),
            socket: SocketId::new(if dir == Direction::Out { "s2" } else { "s1.1" }),
            dir,
            local,
            peer,
            offset,
            len,
            payload_b64: String::new(),
            t_ns: t,
            req: None,
        })
    };
    let mut tl = Timeline::default();
    let mut tcp_bound = |id, socket: &str, local: &str| {
        let Event::Bound(mut b) = bound(id, socket, local) else {
            unreachable!()
        };
        b.proto = Proto::Tcp;
        tl.apply(&Event::Bound(b));
    };
    tcp_bound(1, "s1", "127.0.0.1:5000");
    tcp_bound(2, "s2", "127.0.0.1:4000");
    tl.apply(&Event::Accepted(Accepted {
        id: EventId(3),
        socket: SocketId::new("s1.1"),
        listener: SocketId::new("s1"),
        local: listener,
        peer: dialer,
        t_ns: 50,
    }));
    // Two writes, then one read of both, then a write read in two pieces.
    tl.apply(&stream(4, 100, Direction::Out, 0, 5));
    tl.apply(&stream(5, 110, Direction::Out, 5, 5));
    tl.apply(&stream(6, 300, Direction::In, 0, 10));
    tl.apply(&stream(7, 400, Direction::Out, 10, 8));
    tl.apply(&stream(8, 450, Direction::In, 10, 4));
    tl.apply(&stream(9, 460, Direction::In, 14, 4));
    tl.apply(&Event::StreamEnd(StreamEnd {
        id: EventId(10),
        socket: SocketId::new("s1.1"),
        reason: StreamEndReason::Eof,
        error: None,
        read: 18,
        t_ns: 500,
        req: None,
    }));
    let drawn: Vec<(u64, u64, u64, Mark)> = tl
        .arrows
        .iter()
        .map(|a| (a.send, a.t0, a.t1, a.mark))
        .collect();
    assert_eq!(
        drawn,
        [
            (3, 50, 50, Mark::Tcp(TcpMark::Handshake)),
            (4, 100, 300, Mark::Bytes),
            (5, 110, 300, Mark::Bytes),
            (7, 400, 460, Mark::Bytes),
            (10, 500, 500, Mark::Tcp(TcpMark::Fin)),
        ]
    );
    assert_eq!(
        (tl.arrows[1].from, tl.arrows[1].to),
        (1, 0),
        "from the dialer's lane to the listener's"
    );
    assert_eq!(
        tl.arrow_of(6).map(|a| a.send),
        Some(5),
        "a read finds a write it ended"
    );
}

#[test]
fn unix_endpoints_are_named_by_their_file_where_space_is_short() {
    let path = Endpoint::unix("/run/user/1000/socklab/1-2/abc/alice");
    assert_eq!(super::compact(&path), "unix:…/alice");
    assert_eq!(super::short_name(&path), "alice");
    assert_eq!(super::compact(&Endpoint::unix("@bob")), "unix:@bob");
    assert_eq!(super::short_name(&Endpoint::unix("@bob")), "@bob");
    assert_eq!(super::short_name(&Endpoint::unix("")), "unnamed");
    let ip = Endpoint::Ip(addr("127.0.0.1:4000"));
    assert_eq!(
        (
            super::compact(&ip).as_str(),
            super::short_name(&ip).as_str()
        ),
        ("127.0.0.1:4000", ":4000")
    );
}

/// The keys' answers: the whole run's span, the next and previous loss in time (one
/// after another even at the same time), and which lanes are idle.
#[test]
fn the_run_spans_its_arrows_and_losses_are_found_in_time_order() {
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    tl.apply(&bound(2, "s2", "127.0.0.1:2000"));
    tl.apply(&bound(3, "s3", "127.0.0.1:3000"));
    assert_eq!(tl.span(&Filter::default()), None);
    // Four sends from s1 to s2 at 100, 200, 200 and 300 ns; the 2nd and 3rd are lost.
    for (id, t) in [(10, 100), (11, 200), (12, 200), (13, 300)] {
        tl.apply(&datagram(
            id,
            t,
            Direction::Out,
            "127.0.0.1:1000",
            "127.0.0.1:2000",
        ));
    }
    tl.apply(&datagram(
        14,
        150,
        Direction::In,
        "127.0.0.1:2000",
        "127.0.0.1:1000",
    ));
    tl.apply(&Event::Fate(fate(
        FateKind::Delivered,
        10,
        Some(14),
        Some(50),
        150,
    )));
    for send in [11, 12] {
        tl.apply(&Event::Fate(fate(FateKind::Lost, send, None, None, 900)));
    }
    let all = Filter::default();
    // To where the losses were concluded (their crosses are drawn there).
    assert_eq!(tl.span(&all), Some((100, 900)));
    let index_of = |send: u64| tl.arrows.iter().position(|a| a.send == send).unwrap();
    let (first, second) = (index_of(11), index_of(12));
    assert_eq!(tl.next_loss(&all, 0, None, true), Some(first));
    assert_eq!(
        tl.next_loss(&all, 200, None, true),
        Some(first),
        "at t itself"
    );
    assert_eq!(tl.next_loss(&all, 200, Some(first), true), Some(second));
    assert_eq!(tl.next_loss(&all, 200, Some(second), true), None);
    assert_eq!(tl.next_loss(&all, 200, Some(second), false), Some(first));
    assert_eq!(tl.next_loss(&all, 200, Some(first), false), None);
    assert_eq!(tl.next_loss(&all, 1_000, None, false), Some(second));
    let no_losses = Filter {
        lost: false,
        ..Filter::default()
    };
    assert_eq!(tl.next_loss(&no_losses, 0, None, true), None);
    assert_eq!(tl.span(&no_losses), Some((100, 300)));

    let arrows: Vec<u32> = tl.lanes.iter().map(|l| l.arrows).collect();
    assert_eq!(arrows, [4, 4, 0], "s3 never sent nor received");
    let idle_hidden = Filter {
        hide_idle: true,
        ..Filter::default()
    };
    assert_eq!(tl.lanes_shown(&idle_hidden), [true, true, false]);
    tl.clear_arrows();
    assert_eq!(tl.lanes_shown(&idle_hidden), [false, false, false]);
}

/// A run's figures count the datagrams sent in it, wherever their fate was concluded:
/// a loss concluded after the next run began still counts for the run that sent it.
#[test]
fn a_runs_figures_count_what_it_sent() {
    let mut tl = Timeline::default();
    tl.apply(&bound(1, "s1", "127.0.0.1:1000"));
    tl.apply(&bound(2, "s2", "127.0.0.1:2000"));
    let send = |tl: &mut Timeline, id: u64, t: u64| {
        tl.apply(&datagram(
            id,
            t,
            Direction::Out,
            "127.0.0.1:1000",
            "127.0.0.1:2000",
        ));
    };
    let receive = |tl: &mut Timeline, id: u64, send: u64, t: u64, sent_at: u64| {
        tl.apply(&datagram(
            id,
            t,
            Direction::In,
            "127.0.0.1:2000",
            "127.0.0.1:1000",
        ));
        tl.apply(&Event::Fate(fate(
            FateKind::Delivered,
            send,
            Some(id),
            Some(t - sent_at),
            t,
        )));
    };
    // Run 1 from 0: three sends, two received after 10 and 30 ns, one lost.
    send(&mut tl, 10, 100);
    receive(&mut tl, 11, 10, 110, 100);
    send(&mut tl, 12, 200);
    receive(&mut tl, 13, 12, 230, 200);
    send(&mut tl, 14, 300);
    // Run 2 from 1,000: one send, still in flight; then run 1's loss is concluded.
    send(&mut tl, 20, 1_100);
    tl.apply(&Event::Fate(fate(FateKind::Lost, 14, None, None, 2_300)));

    let runs = tl.stretches(&[0, 1_000], u64::MAX);
    assert_eq!(runs.len(), 2);
    let first = &runs[0].flows[0];
    assert_eq!(
        (first.sent, first.received, first.lost, first.in_flight),
        (3, 2, 1, 0)
    );
    assert_eq!(first.latencies, [10, 30]);
    assert_eq!(
        (first.latency(0.5), first.latency(0.99)),
        (Some(10), Some(30))
    );
    assert!((first.lost_pct() - 100.0 / 3.0).abs() < 1e-9);
    let second = &runs[1].flows[0];
    assert_eq!((second.sent, second.lost, second.in_flight), (1, 0, 1));
    assert!(!runs[0].partial);
    // A range: only the second send.
    let range = tl.figures(150, 250);
    assert_eq!(range.flows[0].sent, 1);
    assert_eq!(range.flows[0].latencies, [30]);
    assert_eq!(tl.figures(5_000, 6_000).flows, []);
    assert_eq!(tl.stretches(&[], u64::MAX), []);
}

/// The server's counts: `buckets` of `bucket_ns` from `from_ns`, counted in
/// `resolution_ns`.
fn counts(
    from_ns: u64,
    (bucket_ns, resolution_ns, buckets): (u64, u64, u32),
    lanes: Vec<socklab_protocol::LaneCounts>,
) -> Event {
    Event::Aggregates(socklab_protocol::Aggregates {
        from_ns,
        bucket_ns,
        resolution_ns,
        buckets,
        lanes,
        others: 0,
        req: None,
    })
}

fn thinned(from_ns: u64, to_ns: u64, count: u64) -> Event {
    Event::Thinned(socklab_protocol::Thinned {
        from: EventId(1),
        to: EventId(count),
        count,
        from_ns,
        to_ns,
    })
}

#[test]
fn where_the_page_was_thinned_it_asks_for_counts_then_for_the_arrows() {
    let mut t = Timeline::default();
    t.apply(&bound(1, "s1", "127.0.0.1:4000"));
    t.apply(&bound(2, "s2", "127.0.0.1:5000"));
    assert!(
        t.scale.wanted(0, 10_000_000_000, 500).is_none(),
        "nothing thinned"
    );
    t.apply(&thinned(1_000_000_000, 2_000_000_000, 90_000));
    // Close ranges merge; the page follows the newest time it was told of.
    t.apply(&thinned(2_100_000_000, 3_000_000_000, 30_000));
    assert_eq!(t.scale.thinned, vec![(1_000_000_000, 3_000_000_000)]);
    assert_eq!(t.scale.passed, 120_000);
    assert_eq!(t.latest_t, 3_000_000_000);
    // First the counts of the view.
    let Some(Command::Aggregate {
        from_ns,
        to_ns,
        buckets,
    }) = t.scale.wanted(0, 4_000_000_000, 400)
    else {
        panic!("counts first");
    };
    assert_eq!((from_ns, to_ns, buckets), (0, 4_000_000_001, 400));
    let lane = |sent: Vec<u32>| socklab_protocol::LaneCounts {
        lane: Endpoint::Ip(addr("127.0.0.1:4000")),
        sent,
        received: Vec::new(),
        lost: Vec::new(),
        reordered: Vec::new(),
        duplicated: Vec::new(),
        forwarded: Vec::new(),
        dropped: Vec::new(),
    };
    // 40,000 sent in the thinned second: too many for arrows.
    let mut sent = vec![0u32; 400];
    for n in &mut sent[100..300] {
        *n = 200;
    }
    t.apply(&counts(0, (10_000_000, 1_000_000, 400), vec![lane(sent)]));
    assert_eq!(t.scale.sent_in(0, 4_000_000_000), Some(40_000));
    assert!(
        t.scale.wanted(0, 3_999_999_999, 400).is_none(),
        "counts are enough"
    );
    assert_eq!(t.lane_index(&Endpoint::Ip(addr("127.0.0.1:4000"))), Some(0));
    // Zoomed in to 20 ms: 400 datagrams, so their arrows are asked for (after counts
    // as fine as the view).
    match t.scale.wanted(1_500_000_000, 1_520_000_000, 400) {
        Some(Command::Aggregate { .. }) => {}
        other => panic!("finer counts first, got {other:?}"),
    }
    let mut fine = vec![0u32; 400];
    fine[..].fill(1);
    t.apply(&counts(
        1_500_000_000,
        (50_000, 50_000, 400),
        vec![lane(fine)],
    ));
    let Some(Command::Window { from_ns, to_ns, .. }) =
        t.scale.wanted(1_500_000_000, 1_519_999_999, 400)
    else {
        panic!("then the window's arrows");
    };
    // The window's events become arrows on the page's own lanes.
    t.apply(&Event::Window(socklab_protocol::Window {
        from_ns,
        to_ns,
        events: vec![
            datagram(
                50,
                1_510_000_000,
                Direction::Out,
                "127.0.0.1:4000",
                "127.0.0.1:5000",
            ),
            datagram(
                51,
                1_510_050_000,
                Direction::In,
                "127.0.0.1:5000",
                "127.0.0.1:4000",
            ),
            Event::Fate(fate(
                FateKind::Delivered,
                50,
                Some(51),
                Some(50_000),
                1_510_060_000,
            )),
        ],
        complete: true,
        req: None,
    }));
    let detail = t.scale.detail.as_ref().expect("a detail");
    assert!(detail.complete);
    let arrows = &detail.timeline.arrows;
    assert_eq!(arrows.len(), 1);
    assert_eq!(
        (arrows[0].from, arrows[0].to, arrows[0].mark),
        (0, 1, Mark::Delivered)
    );
    assert!(t.arrows.is_empty(), "the page's own arrows are untouched");
    assert!(
        t.scale.wanted(1_500_000_000, 1_519_999_999, 400).is_none(),
        "all there"
    );
}

#[test]
fn thinned_ranges_stay_bounded() {
    let mut t = Timeline::default();
    for i in 0..2_000u64 {
        // A second apart: none merge.
        t.apply(&thinned(i * 1_000_000_000, i * 1_000_000_000 + 1_000, 5));
    }
    assert!(t.scale.thinned.len() <= 512);
    assert_eq!(t.scale.thinned[0].0, 0);
    assert_eq!(t.scale.thinned.last().unwrap().1, 1_999_000_001_000);
    assert_eq!(t.scale.passed, 10_000);
}

#[test]
fn counts_as_fine_as_the_server_keeps_are_enough_to_ask_for_arrows() {
    let mut t = Timeline::default();
    t.apply(&thinned(1_000_000_000, 2_000_000_000, 9_000));
    // A long session: the server counts in 2 ms buckets, coarser than the view's rows.
    t.apply(&counts(
        1_500_000_000,
        (2_000_000, 2_000_000, 10),
        Vec::new(),
    ));
    assert!(matches!(
        t.scale.wanted(1_500_000_000, 1_519_999_999, 400),
        Some(Command::Window { .. })
    ));
}

#[test]
fn a_view_narrower_than_a_counted_bucket_counts_its_share_of_it() {
    let mut t = Timeline::default();
    t.apply(&bound(1, "s1", "127.0.0.1:4000"));
    t.apply(&thinned(1_000_000_000, 2_000_000_000, 9_000));
    // A burst of 6,000 in one 2 ms bucket (a generator catching up on a busy machine):
    // a view of a fifth of it holds about 1,200, few enough to fetch.
    let lane = socklab_protocol::LaneCounts {
        lane: Endpoint::Ip(addr("127.0.0.1:4000")),
        sent: vec![6_000],
        received: Vec::new(),
        lost: Vec::new(),
        reordered: Vec::new(),
        duplicated: Vec::new(),
        forwarded: Vec::new(),
        dropped: Vec::new(),
    };
    t.apply(&counts(
        1_500_000_000,
        (2_000_000, 2_000_000, 1),
        vec![lane],
    ));
    assert_eq!(t.scale.sent_in(1_500_000_000, 1_502_000_000), Some(6_000));
    assert_eq!(t.scale.sent_in(1_500_000_000, 1_500_399_999), Some(1_200));
    assert!(matches!(
        t.scale.wanted(1_500_000_000, 1_500_399_999, 400),
        Some(Command::Window { .. })
    ));
    // The whole bucket in view: too many for arrows; the counts stand.
    assert!(t.scale.wanted(1_500_000_000, 1_501_999_999, 400).is_none());
}

#[test]
fn a_delivery_past_its_budget_spares_the_oldest_single_datagrams_and_says_so() {
    let mut events = vec![bound(1, "s1", "127.0.0.1:4000")];
    for i in 0..10u64 {
        events.push(datagram(
            10 + i,
            1_000 * i,
            Direction::Out,
            "127.0.0.1:4000",
            "127.0.0.1:5000",
        ));
    }
    let mut own = datagram(
        30,
        20_000,
        Direction::Out,
        "127.0.0.1:4000",
        "127.0.0.1:5000",
    );
    if let Event::Datagram(d) = &mut own {
        d.req = Some(7);
    }
    events.insert(2, own);
    events.push(Event::Fate(fate(
        FateKind::Delivered,
        10,
        None,
        Some(5),
        9_500,
    )));
    // 13 events, a budget of 5: the 8 oldest are looked at, and their datagrams go.
    let kept = scale::spare(events.clone(), 12, 5);
    let Event::Thinned(t) = &kept[0] else {
        panic!("a thinned event first: {kept:?}");
    };
    // The bound, the page's own send and the fate stay; of the ten sends, the first
    // six (among the 8 oldest events) go.
    assert_eq!((t.from, t.to, t.count), (EventId(10), EventId(15), 6));
    assert_eq!((t.from_ns, t.to_ns), (0, 5_000));
    assert_eq!(kept.len(), 1 + 13 - 6);
    assert!(matches!(kept[1], Event::Bound(_)));
    assert!(
        kept.iter().any(|e| e.req() == Some(7)),
        "its own send stays"
    );
    assert!(kept.iter().any(|e| matches!(e, Event::Fate(_))));
    // Not behind: untouched.
    assert_eq!(scale::spare(events.clone(), 13, 5), events);
}
