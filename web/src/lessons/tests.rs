//! Unit tests of the parent module: each lesson's steps against the events a session
//! makes.

use socklab_protocol::flow::{Fate, FateKind, LossCause};
use socklab_protocol::link::{DropReason, Impairments, LinkId, LinkSettings};
use socklab_protocol::{
    Bound, Datagram, Direction, Endpoint, Event, EventId, LinkCreated, Proto, SocketId,
};

use super::*;
use crate::model::Action;

const LAB: &str = "127.0.0.1:40000";
const PROGRAM: &str = "127.0.0.1:9000";
const LINK: &str = "127.0.0.1:7000";

fn give(state: &mut State, event: Event) {
    state.apply(Action::Received(Box::new(event)));
}

fn datagram(id: u64, dir: Direction, peer: &str, t_ns: u64) -> Event {
    Event::Datagram(Datagram {
        id: EventId(id),
        socket: SocketId::new("s1"),
        dir,
        local: Endpoint::Ip(LAB.parse().unwrap()),
        peer: Endpoint::Ip(peer.parse().unwrap()),
        len: 5,
        payload_b64: socklab_protocol::payload::encode_base64(b"hello"),
        t_ns,
        req: None,
        truncated_from: None,
    })
}

fn fate(kind: FateKind, send: u64, recv: Option<u64>, cause: Option<LossCause>) -> Event {
    Event::Fate(Fate {
        id: EventId(0),
        fate: kind,
        send: EventId(send),
        recv: recv.map(EventId),
        src: Endpoint::Ip(LAB.parse().unwrap()),
        dst: Endpoint::Ip(PROGRAM.parse().unwrap()),
        latency_ns: recv.map(|_| 250_000),
        reordered_by: None,
        late: false,
        by_order: false,
        by_field: false,
        cause,
        reason: (cause == Some(LossCause::Link)).then_some(DropReason::RandomLoss),
        decision: None,
        t_ns: 1_000_000,
    })
}

fn by_id(id: &str) -> &'static Lesson {
    LESSONS
        .iter()
        .find(|l| l.id == id)
        .expect("a lesson of that id")
}

/// UDP socket `socket` bound at `local` with the receive buffer the kernel granted.
fn bound(id: u64, socket: &str, local: &str, recv_buffer_bytes: Option<u64>) -> Event {
    Event::Bound(Bound {
        id: EventId(id),
        socket: SocketId::new(socket),
        proto: Proto::Udp,
        local: Endpoint::Ip(local.parse().unwrap()),
        recv_buffer_bytes,
        recv_size: None,
        listening: false,
        multicast: false,
        t_ns: 0,
        req: None,
    })
}

fn bound_lab(state: &mut State) {
    give(state, bound(1, "s1", LAB, None));
}

#[test]
fn the_echo_lesson_follows_a_talk_with_the_persons_own_program() {
    let lesson = by_id("echo");
    let mut state = State::default();
    assert_eq!(lesson.progress(&Facts::of(&state)), [false, false, false]);
    bound_lab(&mut state);
    assert_eq!(lesson.progress(&Facts::of(&state)), [true, false, false]);
    // Sent to a port nobody listens on: refused, and the step says why.
    give(&mut state, datagram(2, Direction::Out, PROGRAM, 1_000));
    give(
        &mut state,
        fate(FateKind::Unanswered, 2, None, Some(LossCause::Refused)),
    );
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, false]);
    assert!(
        (lesson.steps[2].hint)(&facts).is_some_and(|h| h.contains("port unreachable")),
        "{facts:?}"
    );
    // The program runs: the next one is answered.
    give(&mut state, datagram(3, Direction::Out, PROGRAM, 2_000_000));
    give(&mut state, datagram(4, Direction::In, PROGRAM, 2_250_000));
    give(&mut state, fate(FateKind::Reply, 3, Some(4), None));
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, true]);
    assert_eq!(facts.sent_outside, 2);
    assert_eq!(
        facts.received_outside, 0,
        "an answer is not a program sending first"
    );
    let saw = (lesson.steps[2].saw)(&facts);
    assert!(saw.contains("0.250 ms"), "its own round trip: {saw}");
}

/// Link l1, listening at LINK, towards `target`, client → target impaired so.
fn link_to(target: &str, c2t: Impairments) -> Event {
    Event::LinkCreated(LinkCreated {
        id: EventId(2),
        link: LinkId::new("l1"),
        listen: LINK.parse().unwrap(),
        upstream: "127.0.0.1:7001".parse().unwrap(),
        target: target.parse().unwrap(),
        settings: LinkSettings {
            c2t,
            ..LinkSettings::default()
        },
        t_ns: 0,
        req: None,
    })
}

#[test]
fn the_loss_lesson_sees_what_the_link_lost() {
    let lesson = by_id("loss");
    let mut state = State::default();
    bound_lab(&mut state);
    give(
        &mut state,
        link_to(
            PROGRAM,
            Impairments {
                loss: Loss::Random { pct: 30.0 },
                ..Impairments::default()
            },
        ),
    );
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, false, false]);
    assert!(
        (lesson.steps[1].hint)(&facts).is_some_and(|h| h.starts_with("Send to 127.0.0.1:7000")),
        "where to send: {facts:?}"
    );
    // Ten through the link: not yet, and the hint counts them.
    for i in 0..10 {
        give(
            &mut state,
            datagram(10 + i, Direction::Out, LINK, 1_000 + i),
        );
    }
    let facts = Facts::of(&state);
    assert_eq!(facts.sent_through_links, 10, "{facts:?}");
    assert_eq!(
        facts.sent_outside, 0,
        "to the link, not to the program itself"
    );
    assert_eq!(
        (lesson.steps[1].hint)(&facts).as_deref(),
        Some("10 so far: send 10 more to 127.0.0.1:7000.")
    );
    for i in 10..20 {
        give(
            &mut state,
            datagram(10 + i, Direction::Out, LINK, 1_000 + i),
        );
    }
    give(
        &mut state,
        fate(FateKind::Unanswered, 12, None, Some(LossCause::Link)),
    );
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, true]);
    assert!((lesson.steps[2].saw)(&facts).contains("random loss"));
    // Started over after all that: the link still counts, the datagrams do not.
    assert_eq!(
        lesson.progress(&Facts::since(&state, 29)),
        [true, false, false]
    );
    assert_eq!(Facts::since(&state, 19).sent_through_links, 10);
    // The lesson on order needs a link that reorders: this one does not.
    assert_eq!(by_id("order").progress(&facts), [false, false, false]);
}

#[test]
fn the_nobody_lesson_sees_a_send_nobody_took() {
    let lesson = by_id("nobody");
    let mut state = State::default();
    bound_lab(&mut state);
    give(
        &mut state,
        datagram(2, Direction::Out, "127.0.0.1:9999", 1_000),
    );
    assert_eq!(lesson.progress(&Facts::of(&state)), [true, false]);
    give(
        &mut state,
        fate(FateKind::Lost, 2, None, Some(LossCause::Refused)),
    );
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true]);
    assert!((lesson.steps[1].saw)(&facts).contains("ECONNREFUSED"));
}

#[test]
fn the_buffer_lesson_follows_a_buffer_that_overflows() {
    let lesson = by_id("buffer");
    let mut state = State::default();
    bound_lab(&mut state);
    const SLOW: &str = "127.0.0.1:41000";
    give(&mut state, bound(2, "s2", SLOW, Some(8_192)));
    assert_eq!(
        lesson.progress(&Facts::of(&state)),
        [true, false, false, false]
    );
    give(
        &mut state,
        Event::Paused(socklab_protocol::Paused {
            id: EventId(3),
            socket: SocketId::new("s2"),
            paused: true,
            t_ns: 10,
            req: None,
        }),
    );
    for i in 0..199 {
        give(&mut state, datagram(10 + i, Direction::Out, SLOW, 100 + i));
    }
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, false, false]);
    assert!((lesson.steps[2].hint)(&facts).is_some_and(|h| h.contains("send 1 more")));
    give(&mut state, datagram(300, Direction::Out, SLOW, 400));
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, true, false]);
    assert!((lesson.steps[3].hint)(&facts).is_some_and(|h| h.contains("resume")));
    give(
        &mut state,
        Event::KernelDrops(socklab_protocol::KernelDrops {
            id: EventId(301),
            socket: SocketId::new("s2"),
            dropped: 150,
            total: 150,
            t_ns: 500,
        }),
    );
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, true, true]);
    assert!((lesson.steps[3].saw)(&facts).contains("150 datagram(s)"));
}

#[test]
fn the_client_lesson_sees_the_program_send_first_and_the_answer_go_back() {
    let lesson = by_id("client");
    let mut state = State::default();
    bound_lab(&mut state);
    const CLIENT: &str = "127.0.0.1:51234";
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, false, false]);
    assert_eq!((lesson.steps[2].hint)(&facts), None, "nobody to answer yet");
    give(&mut state, datagram(2, Direction::In, CLIENT, 1_000));
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, false]);
    assert!((lesson.steps[1].saw)(&facts).contains(CLIENT));
    assert!((lesson.steps[2].hint)(&facts).is_some_and(|h| h.contains(CLIENT)));
    // A send elsewhere is not the answer; one to the client is.
    give(&mut state, datagram(3, Direction::Out, PROGRAM, 2_000));
    assert_eq!(lesson.progress(&Facts::of(&state)), [true, true, false]);
    give(&mut state, datagram(4, Direction::Out, CLIENT, 3_000));
    assert_eq!(lesson.progress(&Facts::of(&state)), [true, true, true]);
}

#[test]
fn the_stream_lesson_sees_three_writes_come_out_of_one_read() {
    use socklab_protocol::{Accepted, Connected, Paused};
    let lesson = by_id("stream");
    let (dialer, listener, accepted_at) = (
        "127.0.0.1:4000".parse::<std::net::SocketAddr>().unwrap(),
        "127.0.0.1:5000".parse::<std::net::SocketAddr>().unwrap(),
        "127.0.0.1:5000".parse::<std::net::SocketAddr>().unwrap(),
    );
    let mut state = State::default();
    let tcp = |id: u64, socket: &str, local: std::net::SocketAddr, listening: bool| {
        Event::Bound(Bound {
            id: EventId(id),
            socket: SocketId::new(socket),
            proto: Proto::Tcp,
            local: Endpoint::Ip(local),
            recv_buffer_bytes: None,
            recv_size: None,
            listening,
            multicast: false,
            t_ns: 0,
            req: None,
        })
    };
    give(&mut state, tcp(1, "s1", listener, true));
    give(&mut state, tcp(2, "s2", dialer, false));
    assert_eq!(lesson.progress(&Facts::of(&state)), [false; 4]);
    give(
        &mut state,
        Event::Connected(Connected {
            id: EventId(3),
            socket: SocketId::new("s2"),
            local: Endpoint::Ip(dialer),
            peer: Endpoint::Ip(listener),
            t_ns: 10,
            req: None,
        }),
    );
    give(
        &mut state,
        Event::Accepted(Accepted {
            id: EventId(4),
            socket: SocketId::new("s1.1"),
            listener: SocketId::new("s1"),
            local: accepted_at,
            peer: dialer,
            t_ns: 11,
        }),
    );
    give(
        &mut state,
        Event::Paused(Paused {
            id: EventId(5),
            socket: SocketId::new("s1.1"),
            paused: true,
            t_ns: 12,
            req: None,
        }),
    );
    let stream = |id: u64, socket: &str, dir, offset: u64, text: &str| {
        crate::testing::stream((dialer, listener), id, socket, dir, offset, text)
    };
    give(&mut state, stream(6, "s2", Direction::Out, 0, "hello"));
    give(&mut state, stream(7, "s2", Direction::Out, 5, "world"));
    give(&mut state, stream(8, "s2", Direction::Out, 10, "!"));
    let facts = Facts::of(&state);
    assert_eq!(
        lesson.progress(&facts),
        [true, true, true, false],
        "{facts:?}"
    );
    assert!((lesson.steps[3].hint)(&facts).is_some_and(|h| h.contains("resume")));
    give(
        &mut state,
        stream(9, "s1.1", Direction::In, 0, "helloworld!"),
    );
    let facts = Facts::of(&state);
    assert_eq!(facts.writes_in_one_read, 3, "{facts:?}");
    assert_eq!(lesson.progress(&facts), [true; 4]);
    assert!((lesson.steps[3].saw)(&facts).contains("bytes of 3 writes"));
}

#[test]
fn the_order_lesson_sees_a_datagram_overtaken_between_two_lab_sockets() {
    let lesson = by_id("order");
    const SECOND: &str = "127.0.0.1:40001";
    let mut state = State::default();
    bound_lab(&mut state);
    give(&mut state, bound(3, "s2", SECOND, None));
    give(
        &mut state,
        link_to(
            SECOND,
            Impairments {
                reorder_pct: 20.0,
                ..Impairments::default()
            },
        ),
    );
    for i in 0..100 {
        give(
            &mut state,
            datagram(10 + i, Direction::Out, LINK, 1_000 + i),
        );
    }
    assert_eq!(lesson.progress(&Facts::of(&state)), [true, true, false]);
    // The first one arrives after the second: out of order, by one.
    let mut overtaken = fate(FateKind::Delivered, 10, Some(500), None);
    if let Event::Fate(f) = &mut overtaken {
        f.dst = Endpoint::Ip(SECOND.parse().unwrap());
        f.reordered_by = Some(1);
    }
    give(&mut state, overtaken);
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true, true], "{facts:?}");
    assert!((lesson.steps[2].saw)(&facts).contains("the newest by 1"));
}

#[test]
fn the_cut_lesson_sees_a_read_size_cut_a_datagram() {
    let lesson = by_id("cut");
    let mut state = State::default();
    bound_lab(&mut state);
    assert_eq!(lesson.progress(&Facts::of(&state)), [false, false]);
    let mut reader = bound(2, "s2", "127.0.0.1:40001", None);
    if let Event::Bound(b) = &mut reader {
        b.recv_size = Some(4);
    }
    give(&mut state, reader);
    assert_eq!(lesson.progress(&Facts::of(&state)), [true, false]);
    let mut cut = datagram(3, Direction::In, LAB, 1_000);
    if let Event::Datagram(d) = &mut cut {
        d.socket = SocketId::new("s2");
        d.local = Endpoint::Ip("127.0.0.1:40001".parse().unwrap());
        d.payload_b64 = socklab_protocol::payload::encode_base64(b"hell");
        d.len = 4;
        d.truncated_from = Some(11);
    }
    give(&mut state, cut);
    let facts = Facts::of(&state);
    assert_eq!(lesson.progress(&facts), [true, true]);
    let saw = (lesson.steps[1].saw)(&facts);
    assert!(saw.contains("had 11 bytes; the read returned 4"), "{saw}");
    assert!(saw.contains("the other 7 away"), "{saw}");
}
