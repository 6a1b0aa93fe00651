//! Every event's JSON, as snapshots: a change to the wire shows in a diff.

use super::*;

fn datagram() -> Datagram {
    Datagram {
        id: EventId(17),
        socket: SocketId::new("s1"),
        dir: Direction::In,
        local: "127.0.0.1:40000".parse().unwrap(),
        peer: "127.0.0.1:40001".parse().unwrap(),
        len: 5,
        payload_b64: "aGVsbG8=".into(),
        t_ns: 1_234_567,
        req: None,
        truncated_from: None,
    }
}

/// The wire form of every event. A change here is a change of the contract.
#[test]
fn wire_form_snapshots() {
    let cases = [
        (
            Event::Hello(Hello {
                protocol: 1,
                session: SessionId::new("k3x9"),
                server: "socklab 0.1.0".into(),
            }),
            r#"{"type":"hello","protocol":1,"session":"k3x9","server":"socklab 0.1.0"}"#,
        ),
        (
            Event::Bound(Bound {
                id: EventId(1),
                socket: SocketId::new("s1"),
                proto: Proto::Udp,
                local: "[::1]:5000".parse().unwrap(),
                recv_buffer_bytes: Some(8_388_608),
                recv_size: Some(512),
                listening: false,
                multicast: false,
                t_ns: 10,
                req: Some(1),
            }),
            r#"{"type":"bound","id":1,"socket":"s1","proto":"udp","local":"[::1]:5000","recv_buffer_bytes":8388608,"recv_size":512,"t_ns":10,"req":1}"#,
        ),
        (
            Event::RecordingStarted(RecordingStarted {
                id: EventId(40),
                recording: 7,
                name: "run 1".into(),
                from: EventId(1),
                t_ns: 99,
                req: Some(4),
            }),
            r#"{"type":"recording_started","id":40,"recording":7,"name":"run 1","from":1,"t_ns":99,"req":4}"#,
        ),
        (
            Event::RecordingStopped(RecordingStopped {
                id: EventId(90),
                recording: 7,
                events: 49,
                datagrams: 20,
                reason: None,
                t_ns: 150,
                req: None,
            }),
            r#"{"type":"recording_stopped","id":90,"recording":7,"events":49,"datagrams":20,"t_ns":150}"#,
        ),
        (
            Event::RecordingStopped(RecordingStopped {
                id: EventId(91),
                recording: 8,
                events: 3,
                datagrams: 1,
                reason: Some("the store is full".into()),
                t_ns: 160,
                req: None,
            }),
            r#"{"type":"recording_stopped","id":91,"recording":8,"events":3,"datagrams":1,"reason":"the store is full","t_ns":160}"#,
        ),
        (
            Event::Datagram(Datagram {
                local: Endpoint::unix("/run/s/echo"),
                peer: Endpoint::unix(""),
                ..datagram()
            }),
            r#"{"type":"datagram","id":17,"socket":"s1","dir":"in","local":"unix:/run/s/echo","peer":"unix:","len":5,"payload_b64":"aGVsbG8=","t_ns":1234567}"#,
        ),
        (
            Event::Datagram(Datagram {
                len: 2,
                payload_b64: "aGU=".into(),
                truncated_from: Some(5),
                ..datagram()
            }),
            r#"{"type":"datagram","id":17,"socket":"s1","dir":"in","local":"127.0.0.1:40000","peer":"127.0.0.1:40001","len":2,"payload_b64":"aGU=","t_ns":1234567,"truncated_from":5}"#,
        ),
        (
            Event::Connected(Connected {
                id: EventId(3),
                socket: SocketId::new("s1"),
                local: "127.0.0.1:5000".parse().unwrap(),
                peer: "127.0.0.1:9".parse().unwrap(),
                t_ns: 40,
                req: Some(5),
            }),
            r#"{"type":"connected","id":3,"socket":"s1","local":"127.0.0.1:5000","peer":"127.0.0.1:9","t_ns":40,"req":5}"#,
        ),
        (
            Event::Unreachable(Unreachable {
                id: EventId(4),
                socket: SocketId::new("s1"),
                local: "127.0.0.1:5000".parse().unwrap(),
                to: "127.0.0.1:9".parse().unwrap(),
                reason: UnreachableReason::PortUnreachable,
                icmp_type: 3,
                icmp_code: 3,
                reporter: Some("127.0.0.1".parse().unwrap()),
                error: "Connection refused".into(),
                len: 2,
                payload_b64: "aGk=".into(),
                t_ns: 45,
            }),
            r#"{"type":"unreachable","id":4,"socket":"s1","local":"127.0.0.1:5000","to":"127.0.0.1:9","reason":"port_unreachable","icmp_type":3,"icmp_code":3,"reporter":"127.0.0.1","error":"Connection refused","len":2,"payload_b64":"aGk=","t_ns":45}"#,
        ),
        (
            Event::Accepted(Accepted {
                id: EventId(5),
                socket: SocketId::new("s3.1"),
                listener: SocketId::new("s3"),
                local: "127.0.0.1:7000".parse().unwrap(),
                peer: "127.0.0.1:40000".parse().unwrap(),
                t_ns: 50,
            }),
            r#"{"type":"accepted","id":5,"socket":"s3.1","listener":"s3","local":"127.0.0.1:7000","peer":"127.0.0.1:40000","t_ns":50}"#,
        ),
        (
            Event::Stream(Stream {
                id: EventId(6),
                socket: SocketId::new("s3.1"),
                dir: Direction::In,
                local: "127.0.0.1:7000".parse().unwrap(),
                peer: "127.0.0.1:40000".parse().unwrap(),
                offset: 5,
                len: 2,
                payload_b64: "aGk=".into(),
                t_ns: 60,
                req: None,
            }),
            r#"{"type":"stream","id":6,"socket":"s3.1","dir":"in","local":"127.0.0.1:7000","peer":"127.0.0.1:40000","offset":5,"len":2,"payload_b64":"aGk=","t_ns":60}"#,
        ),
        (
            Event::StreamEnd(StreamEnd {
                id: EventId(7),
                socket: SocketId::new("s3.1"),
                reason: StreamEndReason::Reset,
                error: Some("Connection reset by peer (os error 104)".into()),
                read: 7,
                t_ns: 70,
                req: None,
            }),
            r#"{"type":"stream_end","id":7,"socket":"s3.1","reason":"reset","error":"Connection reset by peer (os error 104)","read":7,"t_ns":70}"#,
        ),
        (
            Event::ShutDown(ShutDown {
                id: EventId(8),
                socket: SocketId::new("s4"),
                how: crate::command::ShutdownHow::Both,
                t_ns: 80,
                req: Some(9),
            }),
            r#"{"type":"shut_down","id":8,"socket":"s4","how":"both","t_ns":80,"req":9}"#,
        ),
        (
            Event::Paused(Paused {
                id: EventId(10),
                socket: SocketId::new("s2"),
                paused: true,
                t_ns: 90,
                req: None,
            }),
            r#"{"type":"paused","id":10,"socket":"s2","paused":true,"t_ns":90}"#,
        ),
        (
            Event::Membership(Membership {
                id: EventId(11),
                socket: SocketId::new("s2"),
                group: "239.1.2.3".parse().unwrap(),
                interface: None,
                joined: true,
                t_ns: 95,
                req: Some(3),
            }),
            r#"{"type":"membership","id":11,"socket":"s2","group":"239.1.2.3","joined":true,"t_ns":95,"req":3}"#,
        ),
        (
            Event::KernelDrops(KernelDrops {
                id: EventId(9),
                socket: SocketId::new("s1"),
                dropped: 12,
                total: 57,
                t_ns: 90,
            }),
            r#"{"type":"kernel_drops","id":9,"socket":"s1","dropped":12,"total":57,"t_ns":90}"#,
        ),
        (
            Event::Closed(Closed {
                id: EventId(2),
                socket: SocketId::new("s1"),
                t_ns: 20,
                req: None,
            }),
            r#"{"type":"closed","id":2,"socket":"s1","t_ns":20}"#,
        ),
        (
            Event::Datagram(datagram()),
            r#"{"type":"datagram","id":17,"socket":"s1","dir":"in","local":"127.0.0.1:40000","peer":"127.0.0.1:40001","len":5,"payload_b64":"aGVsbG8=","t_ns":1234567}"#,
        ),
        (
            Event::Datagram(Datagram {
                dir: Direction::Out,
                req: Some(3),
                ..datagram()
            }),
            r#"{"type":"datagram","id":17,"socket":"s1","dir":"out","local":"127.0.0.1:40000","peer":"127.0.0.1:40001","len":5,"payload_b64":"aGVsbG8=","t_ns":1234567,"req":3}"#,
        ),
        (
            Event::Error(ErrorEvent {
                req: Some(3),
                code: ErrorCode::PayloadTooLarge,
                message: "UDP payload is 70000 bytes; the IPv4 limit is 65507".into(),
            }),
            r#"{"type":"error","req":3,"code":"payload_too_large","message":"UDP payload is 70000 bytes; the IPv4 limit is 65507"}"#,
        ),
        (
            Event::LinkPacket(LinkPacket {
                id: EventId(30),
                link: LinkId::new("l1"),
                dir: LinkDir::C2t,
                seq: 4,
                from: "127.0.0.1:40000".parse().unwrap(),
                to: Some("127.0.0.1:5000".parse().unwrap()),
                len: 2,
                payload_b64: "aGk=".into(),
                fate: LinkFate::Dropped,
                reason: Some(DropReason::BurstLoss),
                delay_ns: None,
                queue_ns: None,
                duplicated: false,
                corrupted_at: None,
                corrupt_mask: None,
                truncated_to: None,
                held_for: None,
                error: None,
                t_ns: 99,
            }),
            r#"{"type":"link_packet","id":30,"link":"l1","dir":"c2t","seq":4,"from":"127.0.0.1:40000","to":"127.0.0.1:5000","len":2,"payload_b64":"aGk=","fate":"dropped","reason":"burst_loss","t_ns":99}"#,
        ),
        (
            Event::LinkPacket(LinkPacket {
                id: EventId(32),
                link: LinkId::new("l1"),
                dir: LinkDir::C2t,
                seq: 5,
                from: "[::1]:40000".parse().unwrap(),
                to: Some("127.0.0.1:5000".parse().unwrap()),
                len: 2,
                payload_b64: "aGk=".into(),
                fate: LinkFate::Dropped,
                reason: Some(DropReason::SendFailed),
                delay_ns: None,
                queue_ns: None,
                duplicated: false,
                corrupted_at: None,
                corrupt_mask: None,
                truncated_to: None,
                held_for: None,
                error: Some("Message too long (os error 90)".into()),
                t_ns: 120,
            }),
            r#"{"type":"link_packet","id":32,"link":"l1","dir":"c2t","seq":5,"from":"[::1]:40000","to":"127.0.0.1:5000","len":2,"payload_b64":"aGk=","fate":"dropped","reason":"send_failed","error":"Message too long (os error 90)","t_ns":120}"#,
        ),
        (
            Event::LinkDeleted(LinkDeleted {
                id: EventId(31),
                link: LinkId::new("l1"),
                t_ns: 100,
                req: Some(9),
            }),
            r#"{"type":"link_deleted","id":31,"link":"l1","t_ns":100,"req":9}"#,
        ),
        (
            Event::LinkClient(LinkClient {
                id: EventId(32),
                link: LinkId::new("l1"),
                client: "127.0.0.1:40002".parse().unwrap(),
                previous: Some("127.0.0.1:40000".parse().unwrap()),
                t_ns: 101,
            }),
            r#"{"type":"link_client","id":32,"link":"l1","client":"127.0.0.1:40002","previous":"127.0.0.1:40000","t_ns":101}"#,
        ),
        (
            Event::Fate(Fate {
                id: EventId(40),
                fate: crate::flow::FateKind::Lost,
                send: EventId(30),
                recv: None,
                src: "127.0.0.1:40000".parse().unwrap(),
                dst: "127.0.0.1:5000".parse().unwrap(),
                latency_ns: None,
                reordered_by: None,
                late: false,
                by_order: false,
                by_field: false,
                cause: Some(crate::flow::LossCause::Link),
                reason: Some(DropReason::BurstLoss),
                decision: Some(EventId(31)),
                t_ns: 120,
            }),
            r#"{"type":"fate","id":40,"fate":"lost","send":30,"src":"127.0.0.1:40000","dst":"127.0.0.1:5000","cause":"link","reason":"burst_loss","decision":31,"t_ns":120}"#,
        ),
        (
            Event::Gap(Gap {
                from: EventId(5),
                to: EventId(9),
                count: 5,
            }),
            r#"{"type":"gap","from":5,"to":9,"count":5}"#,
        ),
        (
            Event::Batch {
                events: vec![Event::Datagram(datagram())],
            },
            r#"{"type":"batch","events":[{"type":"datagram","id":17,"socket":"s1","dir":"in","local":"127.0.0.1:40000","peer":"127.0.0.1:40001","len":5,"payload_b64":"aGVsbG8=","t_ns":1234567}]}"#,
        ),
    ];
    for (event, json) in cases {
        assert_eq!(event.to_json(), json);
        assert_eq!(Event::from_json(json).unwrap(), event, "{json}");
    }
}

#[test]
fn every_error_code_has_its_wire_name() {
    let codes = [
        ErrorCode::BadRequest,
        ErrorCode::BadAddress,
        ErrorCode::AddressInUse,
        ErrorCode::PermissionDenied,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnknownSocket,
        ErrorCode::UnknownLink,
        ErrorCode::UnknownGenerator,
        ErrorCode::UnknownSession,
        ErrorCode::Forbidden,
        ErrorCode::LimitExceeded,
        ErrorCode::IoError,
    ];
    for code in codes {
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
        assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
    }
    let newer: ErrorCode = serde_json::from_str("\"from_the_future\"").unwrap();
    assert_eq!(newer, ErrorCode::Unknown);
}

#[test]
fn flatten_unwraps_batches() {
    let one = Event::Datagram(datagram());
    let batch = Event::Batch {
        events: vec![one.clone(), one.clone()],
    };
    assert_eq!(batch.flatten().len(), 2);
    assert_eq!(one.clone().flatten(), vec![one]);
}

#[test]
fn the_quick_reader_reads_every_documented_event_as_the_derived_one_does() {
    let doc = include_str!("../../../../docs/protocol.md");
    // Each example starts a line; a long one is folded over the lines after it (joined
    // here without their breaks); one with "…" for what it leaves out is no JSON.
    let lines: Vec<&str> = doc.lines().collect();
    let examples: Vec<String> = (0..lines.len())
        .filter(|&i| lines[i].starts_with(r#"{"type":"#))
        .filter_map(|i| {
            (i..lines.len().min(i + 20))
                .map(|end| lines[i..=end].iter().map(|l| l.trim()).collect::<String>())
                .find(|text| serde_json::from_str::<serde_json::Value>(text).is_ok())
        })
        .chain([Event::Thinned(Thinned {
            from: EventId(3),
            to: EventId(9),
            count: 7,
            from_ns: 10,
            to_ns: 90,
        })
        .to_json()])
        .collect();
    assert!(
        examples.len() >= 15,
        "the document's examples: {}",
        examples.len()
    );
    let mut quick = 0;
    for text in examples.iter().map(String::as_str) {
        let derived: Event = serde_json::from_str(text).expect(text);
        assert_eq!(Event::from_json(text).expect(text), derived, "{text}");
        quick += usize::from(tag_first(text).is_some_and(|t| {
            [
                "batch",
                "datagram",
                "link_packet",
                "link_sent",
                "fate",
                "thinned",
            ]
            .contains(&t)
        }));
        // Written again with spaces (the tag no longer first): the derived path.
        let spaced = text.replacen(r#"{"type":"#, r#"{ "type" : "#, 1);
        assert_eq!(tag_first(&spaced), None);
        assert_eq!(Event::from_json(&spaced).expect(&spaced), derived);
    }
    assert!(quick >= 6, "the quick path was taken {quick} times");
    // A batch of the quick kinds and others, and one nested in another.
    let batch = format!(
        r#"{{"type":"batch","events":[{}]}}"#,
        examples
            .iter()
            .filter(|t| !t.contains(r#""type":"batch""#))
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    );
    let derived: Event = serde_json::from_str(&batch).unwrap();
    assert_eq!(Event::from_json(&batch).unwrap(), derived);
    let nested = format!(r#"{{"type":"batch","events":[{batch}]}}"#);
    assert_eq!(
        Event::from_json(&nested).unwrap(),
        serde_json::from_str::<Event>(&nested).unwrap()
    );
    // What one path refuses, the other does too.
    for bad in [
        r#"{"type":"datagram","id":1}"#,
        r#"{"type":"batch","events":[{"type":"datagram","id":1}]}"#,
        r#"{"type":"batch","events":{}}"#,
        r#"{"type":"fate","id":"x"}"#,
        r#"{"type":"thinned"} trailing"#,
        r#"{"type":"datagram"#,
        r#"{"type":"no_such_event"}"#,
    ] {
        assert!(Event::from_json(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<Event>(bad).is_err(), "{bad}");
    }
}
