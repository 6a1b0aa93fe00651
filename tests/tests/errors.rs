//! Every refusal: a protocol error with a stable code and a plain message, after which
//! the session still works.
//!
//! (Over 600 lines: one file for every refusal keeps the codes and their messages in
//! one place to compare.)

use std::net::UdpSocket;

use socklab_protocol::{BindSpec, Command, ErrorCode, Event, Payload, SocketId};
use socklab_server::Config;
use socklab_tests::IpEndpoint as _;
use socklab_tests::isolated::{Isolation, rerun};
use socklab_tests::{Client, TestServer, expect_error, text};
use tokio_tungstenite::tungstenite::Message;

fn bind(addr: &str) -> Command {
    Command::Bind(BindSpec {
        addr: addr.into(),
        ..BindSpec::default()
    })
}

fn send(socket: &SocketId, to: &str, payload: Payload) -> Command {
    Command::Send {
        socket: socket.clone(),
        to: Some(to.into()),
        payload,
    }
}

/// Proves the session still works after a refusal: a send from `from` to itself arrives.
async fn still_works(client: &mut Client, from: &socklab_protocol::Bound) {
    client
        .send_datagram(&from.socket, from.local.addr(), text("still here"))
        .await;
    client.received_on(&from.socket).await;
}

#[tokio::test]
async fn receive_buffer_sizes_out_of_range_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for bytes in [0, socklab_protocol::limits::MAX_RECV_BUFFER_BYTES + 1] {
        let req = client
            .send(Command::Bind(BindSpec {
                recv_buffer_bytes: Some(bytes),
                ..BindSpec::default()
            }))
            .await;
        let error = expect_error(client.reply(req).await, ErrorCode::BadRequest);
        assert!(
            error.message.contains("recv_buffer_bytes"),
            "{}",
            error.message
        );
    }
    // The session carries on.
    client.bind("127.0.0.1:0").await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_messages_are_bad_requests() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let cases: &[(&str, Option<i64>, &str)] = &[
        ("{not json", None, "not valid JSON"),
        ("42", None, "must be a JSON object"),
        (r#"{"req":1}"#, Some(1), "\"type\""),
        (
            r#"{"req":2,"type":"teleport"}"#,
            Some(2),
            "unknown variant `teleport`",
        ),
        (
            r#"{"req":3,"type":"bind","proto":"udp"}"#,
            Some(3),
            "missing field `addr`",
        ),
        (
            r#"{"req":4,"type":"bind","proto":"udp","addr":7}"#,
            Some(4),
            "invalid type",
        ),
        (
            r#"{"req":5,"type":"send","socket":"s1","to":"127.0.0.1:9"}"#,
            Some(5),
            "missing field `payload`",
        ),
    ];
    for (text, req, needle) in cases {
        client.send_text(text).await;
        let error = expect_error(client.next_error().await, ErrorCode::BadRequest);
        assert_eq!(error.req, *req, "{text}");
        assert!(error.message.contains(needle), "{text}: {}", error.message);
        still_works(&mut client, &a).await;
    }
    client.send_message(Message::binary(vec![1u8, 2, 3])).await;
    let error = expect_error(client.next_error().await, ErrorCode::BadRequest);
    assert!(error.message.contains("binary frames"), "{}", error.message);
    still_works(&mut client, &a).await;
    server.stop().await;
}

#[tokio::test]
async fn bad_payloads_are_refused_with_the_reason() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let to = a.local.to_string();
    let cases = [
        (
            Payload::Hex("abc".into()),
            ErrorCode::BadRequest,
            "odd number of digits",
        ),
        (
            Payload::Hex("zz".into()),
            ErrorCode::BadRequest,
            "not a hex digit",
        ),
        (
            Payload::Base64("@@@".into()),
            ErrorCode::BadRequest,
            "base64 payload is not valid",
        ),
        (
            Payload::Text("x".repeat(70_000)),
            ErrorCode::PayloadTooLarge,
            "UDP payload is 70000 bytes; the IPv4 limit is 65507",
        ),
        (
            Payload::Text("x".repeat(65_508)),
            ErrorCode::PayloadTooLarge,
            "the IPv4 limit is 65507",
        ),
    ];
    for (payload, code, needle) in cases {
        let error = client.refused(send(&a.socket, &to, payload), code).await;
        assert!(error.message.contains(needle), "{}", error.message);
        still_works(&mut client, &a).await;
    }
    let v6 = client.bind("[::1]:0").await;
    let error = client
        .refused(
            send(
                &v6.socket,
                &v6.local.to_string(),
                Payload::Text("x".repeat(65_528)),
            ),
            ErrorCode::PayloadTooLarge,
        )
        .await;
    assert!(
        error.message.contains("the IPv6 limit is 65527"),
        "{}",
        error.message
    );
    client
        .send_datagram(
            &v6.socket,
            v6.local.addr(),
            Payload::Text("x".repeat(65_527)),
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn bad_addresses_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    for addr in [
        "",
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:99999",
        "example.com:53",
    ] {
        client.refused(bind(addr), ErrorCode::BadAddress).await;
        client
            .refused(send(&a.socket, addr, text("x")), ErrorCode::BadAddress)
            .await;
        still_works(&mut client, &a).await;
    }
    // Port 0 cannot be a destination; an IPv4 socket cannot send to IPv6.
    client
        .refused(
            send(&a.socket, "127.0.0.1:0", text("x")),
            ErrorCode::BadAddress,
        )
        .await;
    let error = client
        .refused(send(&a.socket, "[::1]:9", text("x")), ErrorCode::BadAddress)
        .await;
    assert!(error.message.contains("same family"), "{}", error.message);
    still_works(&mut client, &a).await;
    server.stop().await;
}

/// The loopback network's broadcast address is allowed by the policy, and the kernel
/// refuses a socket without SO_BROADCAST (EACCES): the refusal says which switch to
/// tick, in words, not as an OS error number.
#[tokio::test]
async fn a_broadcast_without_the_switch_says_which_switch() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let plain = client.bind("127.0.0.1:0").await;
    let error = client
        .refused(
            send(&plain.socket, "127.255.255.255:9", text("to all")),
            ErrorCode::PermissionDenied,
        )
        .await;
    assert!(
        error.message.contains("\"broadcast\" ticked") && !error.message.contains("os error"),
        "{}",
        error.message
    );
    still_works(&mut client, &plain).await;
    server.stop().await;
}

#[tokio::test]
async fn address_in_use_is_reported() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let error = client
        .refused(bind(&a.local.to_string()), ErrorCode::AddressInUse)
        .await;
    assert!(
        error.message.contains("already in use"),
        "{}",
        error.message
    );
    // Also when another program holds the port.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .refused(
            bind(&other.local_addr().unwrap().to_string()),
            ErrorCode::AddressInUse,
        )
        .await;
    still_works(&mut client, &a).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_sockets_are_reported() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let ghost = SocketId::new("s99");
    let error = client
        .refused(
            Command::Close {
                socket: ghost.clone(),
            },
            ErrorCode::UnknownSocket,
        )
        .await;
    assert!(error.message.contains("s99"), "{}", error.message);
    client
        .refused(
            send(&ghost, &a.local.to_string(), text("x")),
            ErrorCode::UnknownSocket,
        )
        .await;
    // A closed socket is unknown afterwards.
    let b = client.bind("127.0.0.1:0").await;
    let req = client
        .send(Command::Close {
            socket: b.socket.clone(),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::Closed(_)));
    client
        .refused(
            Command::Close {
                socket: b.socket.clone(),
            },
            ErrorCode::UnknownSocket,
        )
        .await;
    // Another session's sockets are unknown too.
    let mut other = server.client().await;
    other
        .refused(
            send(&a.socket, &a.local.to_string(), text("x")),
            ErrorCode::UnknownSocket,
        )
        .await;
    still_works(&mut client, &a).await;
    server.stop().await;
}

#[tokio::test]
async fn socket_limit_is_enforced() {
    let server = TestServer::with_config(Config {
        max_sockets_per_session: 2,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let error = client
        .refused(bind("127.0.0.1:0"), ErrorCode::LimitExceeded)
        .await;
    assert!(
        error.message.contains("--max-sockets-per-session"),
        "{}",
        error.message
    );
    still_works(&mut client, &a).await;
    // Closing one makes room again.
    let req = client.send(Command::Close { socket: b.socket }).await;
    assert!(matches!(client.reply(req).await, Event::Closed(_)));
    client.bind("127.0.0.1:0").await;
    server.stop().await;
}

#[tokio::test]
async fn link_limit_is_enforced() {
    let server = TestServer::with_config(Config {
        max_links_per_session: 1,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    client
        .link("127.0.0.1:0", a.local.addr(), Default::default())
        .await;
    let error = client
        .refused(
            Command::LinkCreate {
                listen: "127.0.0.1:0".into(),
                target: a.local.to_string(),
                settings: Default::default(),
            },
            ErrorCode::LimitExceeded,
        )
        .await;
    assert!(
        error.message.contains("--max-links-per-session"),
        "{}",
        error.message
    );
    still_works(&mut client, &a).await;
    server.stop().await;
}

/// Runs inside a user namespace, where this process is "root" without privileges over
/// the machine's network: with socklab's own refusal lifted, ports below 1024 are
/// refused by the OS itself, and the error still says why.
#[tokio::test]
async fn privileged_ports_are_permission_denied() {
    if rerun(
        Isolation::Unprivileged,
        "privileged_ports_are_permission_denied",
    ) {
        return;
    }
    let server = TestServer::with_config(Config {
        allow_privileged_ports: true,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let error = client
        .refused(bind("127.0.0.1:81"), ErrorCode::PermissionDenied)
        .await;
    assert!(
        error.message.contains("CAP_NET_BIND_SERVICE"),
        "the OS refused: {}",
        error.message
    );
    let a = client.bind("127.0.0.1:0").await;
    still_works(&mut client, &a).await;
    server.stop().await;
}

/// Runs inside a network namespace with nothing but its own loopback, so even a wrong
/// policy could not send anything off the machine.
#[tokio::test]
async fn non_loopback_addresses_are_forbidden() {
    if rerun(Isolation::Network, "non_loopback_addresses_are_forbidden") {
        return;
    }
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for addr in [
        "0.0.0.0:0",
        "[::]:0",
        "10.1.2.3:0",
        "192.0.2.1:0",
        "[2001:db8::1]:0",
    ] {
        let error = client.refused(bind(addr), ErrorCode::Forbidden).await;
        assert!(error.message.contains("loopback"), "{}", error.message);
    }
    let a = client.bind("127.0.0.1:0").await;
    let v6 = client.bind("[::1]:0").await;
    for to in [
        "10.0.0.1:9",
        "192.0.2.1:53",
        "255.255.255.255:9",
        "224.0.0.1:9",
        "8.8.8.8:53",
    ] {
        let error = client
            .refused(send(&a.socket, to, text("x")), ErrorCode::Forbidden)
            .await;
        assert!(error.message.contains("loopback"), "{}", error.message);
    }
    client
        .refused(
            send(&v6.socket, "[2001:db8::1]:9", text("x")),
            ErrorCode::Forbidden,
        )
        .await;
    client
        .refused(
            send(&v6.socket, "[ff02::1]:9", text("x")),
            ErrorCode::Forbidden,
        )
        .await;
    still_works(&mut client, &a).await;
    server.stop().await;
}

#[tokio::test]
async fn a_refusal_in_one_session_leaves_others_alone() {
    let server = TestServer::start().await;
    let mut one = server.client().await;
    let mut two = server.client().await;
    let a = two.bind("127.0.0.1:0").await;
    one.send_text("garbage").await;
    expect_error(one.next_error().await, ErrorCode::BadRequest);
    still_works(&mut two, &a).await;
    let b = one.bind("127.0.0.1:0").await;
    still_works(&mut one, &b).await;
    server.stop().await;
}

#[tokio::test]
async fn send_rates_are_limited_per_session() {
    let server = TestServer::with_config(Config {
        max_datagrams_per_sec: 20,
        max_bytes_per_sec: 100_000,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let mut refused = 0;
    let mut sent = 0;
    for _ in 0..40 {
        let req = client
            .send(send(&a.socket, &a.local.to_string(), text("tick")))
            .await;
        match client.reply(req).await {
            Event::Datagram(_) => sent += 1,
            Event::Error(e) => {
                assert_eq!(e.code, ErrorCode::LimitExceeded);
                assert!(
                    e.message.contains("--max-datagrams-per-sec"),
                    "{}",
                    e.message
                );
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(refused > 0 && sent >= 20, "sent {sent}, refused {refused}");
    // A generator faster than the budget is refused up front.
    let fast = Command::Generate(socklab_protocol::flow::GeneratorSpec {
        socket: a.socket.clone(),
        to: a.local.to_string(),
        amount: socklab_protocol::flow::Amount::Count(10),
        pace: socklab_protocol::flow::GeneratorPace::Rate(100.0),
        payload: socklab_protocol::flow::GeneratorPayload::Size(64),
        sequence: true,
    });
    client.refused(fast, ErrorCode::LimitExceeded).await;
    // Another session has its own budget.
    let mut other = server.client().await;
    let b = other.bind("127.0.0.1:0").await;
    other
        .send_datagram(&b.socket, b.local.addr(), text("fresh budget"))
        .await;
    server.stop().await;
}

/// `--allow-net` widens the policy, inside a network namespace of the test's own: the
/// allowed network's address lives on that namespace's loopback interface.
#[tokio::test]
async fn allow_net_widens_the_policy_in_a_namespace() {
    if rerun(
        Isolation::Network,
        "allow_net_widens_the_policy_in_a_namespace",
    ) {
        return;
    }
    let added = std::process::Command::new("ip")
        .args(["addr", "add", "10.99.0.1/32", "dev", "lo"])
        .status()
        .expect("ip runs");
    assert!(added.success(), "an address of the namespace's own");
    let server = TestServer::with_config(Config {
        allow_net: vec![
            "10.99.0.0/24".parse().unwrap(),
            "255.255.255.255/32".parse().unwrap(),
        ],
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let inside = client.bind("10.99.0.1:0").await;
    client
        .send_datagram(&inside.socket, inside.local.addr(), text("allowed network"))
        .await;
    client.received_on(&inside.socket).await;
    for addr in ["10.98.0.1:0", "0.0.0.0:0"] {
        let error = client.refused(bind(addr), ErrorCode::Forbidden).await;
        assert!(error.message.contains("--allow-net"), "{}", error.message);
    }
    let error = client
        .refused(
            send(&inside.socket, "10.98.0.5:9", text("x")),
            ErrorCode::Forbidden,
        )
        .await;
    assert!(error.message.contains("10.99.0.0/24"), "{}", error.message);
    // Broadcast needs the socket's consent as well as the policy's.
    let error = client
        .refused(
            send(&inside.socket, "255.255.255.255:9", text("x")),
            ErrorCode::Forbidden,
        )
        .await;
    assert!(
        error.message.contains("broadcast enabled"),
        "{}",
        error.message
    );
    let req = client
        .send(Command::Bind(BindSpec {
            addr: "10.99.0.1:0".into(),
            broadcast: true,
            ..BindSpec::default()
        }))
        .await;
    let Event::Bound(caster) = client.reply(req).await else {
        panic!("bound")
    };
    let req = client
        .send(send(&caster.socket, "255.255.255.255:9", text("to all")))
        .await;
    match client.reply(req).await {
        // The namespace has no broadcast-capable interface: the OS may refuse, the
        // policy does not.
        Event::Datagram(_) => {}
        Event::Error(e) => assert_ne!(e.code, ErrorCode::Forbidden, "{}", e.message),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

/// `--allow-net ::ffff:10.99.0.1` (an IPv4-mapped address) allows that one IPv4 address,
/// not all of IPv4: checked inside a network namespace of the test's own, where the
/// addresses live on its loopback interface.
#[tokio::test]
async fn an_ipv4_mapped_allow_net_allows_that_address_only() {
    if rerun(
        Isolation::Network,
        "an_ipv4_mapped_allow_net_allows_that_address_only",
    ) {
        return;
    }
    for addr in ["10.99.0.1/32", "10.99.0.2/32"] {
        let added = std::process::Command::new("ip")
            .args(["addr", "add", addr, "dev", "lo"])
            .status()
            .expect("ip runs");
        assert!(added.success(), "an address of the namespace's own");
    }
    let server = TestServer::with_config(Config {
        allow_net: vec!["::ffff:10.99.0.1".parse().unwrap()],
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let inside = client.bind("10.99.0.1:0").await;
    client
        .send_datagram(&inside.socket, inside.local.addr(), text("the one address"))
        .await;
    client.received_on(&inside.socket).await;
    for addr in ["10.99.0.2:0", "10.98.0.1:0"] {
        let error = client.refused(bind(addr), ErrorCode::Forbidden).await;
        assert!(error.message.contains("10.99.0.1/32"), "{}", error.message);
    }
    client
        .refused(
            send(&inside.socket, "10.99.0.2:9", text("x")),
            ErrorCode::Forbidden,
        )
        .await;
    server.stop().await;
}

/// Ports below 1024 are refused by socklab's own policy even where the OS would allow
/// them (root; here the root of a user and network namespace of the test's own, which
/// may bind them on its loopback), unless the server allows them.
#[tokio::test]
async fn privileged_ports_are_refused_even_as_root_unless_allowed() {
    if rerun(
        Isolation::Network,
        "privileged_ports_are_refused_even_as_root_unless_allowed",
    ) {
        return;
    }
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let error = client
        .refused(bind("127.0.0.1:81"), ErrorCode::PermissionDenied)
        .await;
    assert!(
        error.message.contains("--allow-privileged-ports"),
        "{}",
        error.message
    );
    let a = client.bind("127.0.0.1:0").await;
    let error = client
        .refused(
            Command::LinkCreate {
                listen: "127.0.0.1:82".into(),
                target: a.local.to_string(),
                settings: Default::default(),
            },
            ErrorCode::PermissionDenied,
        )
        .await;
    assert!(error.message.contains("below 1024"), "{}", error.message);
    server.stop().await;

    let server = TestServer::with_config(Config {
        allow_privileged_ports: true,
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let low = client.bind("127.0.0.1:81").await;
    assert_eq!(low.local.addr().port(), 81);
    still_works(&mut client, &low).await;
    server.stop().await;
}

#[tokio::test]
async fn denied_ports_are_refused_as_destinations() {
    let server = TestServer::with_config(Config {
        deny_ports: vec![53],
        ..Config::default()
    })
    .await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    for to in ["127.0.0.53:53", "[::1]:53"] {
        let error = client
            .refused(send(&a.socket, to, text("x")), ErrorCode::Forbidden)
            .await;
        assert!(
            error.message.contains("--deny-port 53"),
            "{}",
            error.message
        );
    }
    let error = client
        .refused(
            Command::LinkCreate {
                listen: "127.0.0.1:0".into(),
                target: "127.0.0.53:53".into(),
                settings: Default::default(),
            },
            ErrorCode::Forbidden,
        )
        .await;
    assert!(error.message.contains("--deny-port"), "{}", error.message);
    still_works(&mut client, &a).await;
    server.stop().await;
}

/// A link listening on an --allow-net address (reachable from the network) may not
/// forward into a loopback service unless the server allows it; inside a namespace of
/// the test's own.
#[tokio::test]
async fn a_link_from_the_network_into_loopback_needs_its_flag() {
    if rerun(
        Isolation::Network,
        "a_link_from_the_network_into_loopback_needs_its_flag",
    ) {
        return;
    }
    let added = std::process::Command::new("ip")
        .args(["addr", "add", "10.99.0.1/32", "dev", "lo"])
        .status()
        .expect("ip runs");
    assert!(added.success());
    for allow in [false, true] {
        let server = TestServer::with_config(Config {
            allow_net: vec!["10.99.0.0/24".parse().unwrap()],
            allow_link_into_loopback: allow,
            ..Config::default()
        })
        .await;
        let mut client = server.client().await;
        let service = client.bind("127.0.0.1:0").await;
        let create = Command::LinkCreate {
            listen: "10.99.0.1:0".into(),
            target: service.local.to_string(),
            settings: Default::default(),
        };
        if allow {
            let req = client.send(create).await;
            assert!(matches!(client.reply(req).await, Event::LinkCreated(_)));
        } else {
            let error = client.refused(create, ErrorCode::Forbidden).await;
            assert!(
                error.message.contains("--allow-link-into-loopback"),
                "{}",
                error.message
            );
            // Loopback to loopback is the ordinary case.
            client
                .link("127.0.0.1:0", service.local.addr(), Default::default())
                .await;
        }
        server.stop().await;
    }
}
