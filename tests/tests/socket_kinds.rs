//! The socket kinds and receive options beyond a plain UDP socket reading whole
//! datagrams: real sockets through the real server, driven by a real WebSocket client.

use std::net::UdpSocket;
use std::time::Duration;

use socklab_protocol::flow::FateKind;
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{BindSpec, Command, ErrorCode, Event};
use socklab_tests::IpEndpoint as _;
use socklab_tests::{TestServer, bind_command, text};

/// A socket that reads 4 bytes at a time gets a longer datagram cut to 4 (MSG_TRUNC),
/// as `recvfrom(4)` does, and the event says how long it was; the cut datagram is still
/// delivered, not lost.
#[tokio::test]
async fn a_small_read_size_cuts_datagrams_as_recvfrom_does() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let sender = client.bind("127.0.0.1:0").await;
    let reader = client
        .bind_with(BindSpec {
            recv_size: Some(4),
            ..bind_command("127.0.0.1:0")
        })
        .await;
    assert_eq!(reader.recv_size, Some(4), "bound says the read size");

    // Every event from here on is looked at: the sends, the receives and the fates
    // that pair them (a helper waiting for one kind would skip the others).
    for payload in ["hello world", "hi"] {
        client
            .send(Command::Send {
                socket: sender.socket.clone(),
                to: Some(reader.local.to_string()),
                payload: text(payload),
            })
            .await;
    }
    let (mut sent, mut received, mut delivered) = (Vec::new(), Vec::new(), Vec::new());
    while sent.len() < 2 || received.len() < 2 || delivered.len() < 2 {
        match client.next().await {
            Event::Datagram(d) if d.socket == sender.socket => sent.push(d),
            Event::Datagram(d) if d.socket == reader.socket => received.push(d),
            Event::Fate(f) => {
                assert_eq!(f.fate, FateKind::Delivered, "{f:?}");
                delivered.push((f.send, f.recv));
            }
            _ => {}
        }
    }
    let (out, short) = (&sent[0], &sent[1]);
    let (cut, whole) = (&received[0], &received[1]);
    assert_eq!(decode_base64(&cut.payload_b64).unwrap(), b"hell");
    assert_eq!((cut.len, cut.truncated_from), (4, Some(11)));
    assert_eq!((whole.len, whole.truncated_from), (2, None));
    // The analysis pairs each cut receive with its send.
    delivered.sort();
    assert_eq!(
        delivered,
        vec![(out.id, Some(cut.id)), (short.id, Some(whole.id))]
    );

    // A plain OS socket reading into a 4-byte buffer gets the same bytes.
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .send_datagram(
            &sender.socket,
            plain.local_addr().unwrap(),
            text("hello world"),
        )
        .await;
    let mut buf = [0u8; 4];
    let (n, _) = plain.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hell");
    server.stop().await;
}

#[tokio::test]
async fn a_read_size_outside_its_range_is_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for size in [0, 65_537, u32::MAX] {
        let error = client
            .refused(
                Command::Bind(BindSpec {
                    recv_size: Some(size),
                    ..bind_command("127.0.0.1:0")
                }),
                ErrorCode::BadRequest,
            )
            .await;
        assert!(error.message.contains("recv_size"), "{}", error.message);
    }
    // The session carries on.
    client.bind("127.0.0.1:0").await;
    server.stop().await;
}

/// A free port on `ip` that nobody is bound to (bound and let go at once).
fn nobody_on(ip: &str) -> std::net::SocketAddr {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// The next `unreachable` event, and the fate that concludes `send`.
async fn refusal(
    client: &mut socklab_tests::Client,
    send: socklab_protocol::EventId,
) -> (socklab_protocol::Unreachable, socklab_protocol::flow::Fate) {
    let (mut icmp, mut fate) = (None, None);
    while icmp.is_none() || fate.is_none() {
        match client.next().await {
            Event::Unreachable(u) => icmp = Some(u),
            Event::Fate(f) if f.send == send => fate = Some(f),
            _ => {}
        }
    }
    (icmp.unwrap(), fate.unwrap())
}

/// Sending where nobody listens: the kernel there answers with ICMP port unreachable,
/// which the lab socket reads from its error queue. The page is told at once, and the
/// request is refused, not lost to a timeout; over IPv4 and IPv6 alike.
#[tokio::test]
async fn a_send_to_a_port_nobody_listens_on_is_refused_at_once() {
    use socklab_protocol::UnreachableReason;
    use socklab_protocol::flow::LossCause;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for ip in ["127.0.0.1", "::1"] {
        let addr = if ip.contains(':') {
            format!("[{ip}]:0")
        } else {
            format!("{ip}:0")
        };
        let lab = client.bind(&addr).await;
        let nobody = nobody_on(ip);
        let out = client
            .send_datagram(&lab.socket, nobody, text("knock knock"))
            .await;
        let (icmp, fate) = refusal(&mut client, out.id).await;
        assert_eq!(
            (icmp.socket, icmp.to, icmp.reason),
            (
                lab.socket.clone(),
                nobody,
                UnreachableReason::PortUnreachable
            ),
            "{ip}"
        );
        assert_eq!(icmp.error, "Connection refused");
        assert_eq!(decode_base64(&icmp.payload_b64).unwrap(), b"knock knock");
        assert!(icmp.t_ns >= out.t_ns, "the error came after the send");
        assert_eq!(
            (fate.fate, fate.cause),
            (FateKind::Unanswered, Some(LossCause::Refused)),
            "{fate:?}"
        );
    }
    server.stop().await;
}

/// `connect`: a send may leave the address out, only the peer's datagrams are
/// received (the kernel discards the others), and a refusal is reported as well.
#[tokio::test]
async fn a_connected_socket_sends_without_an_address_and_hears_only_its_peer() {
    use socklab_protocol::UnreachableReason;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let lab = client.bind("127.0.0.1:0").await;
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();

    // Not connected yet: a send without an address is refused in words.
    let error = client
        .refused(
            Command::Send {
                socket: lab.socket.clone(),
                to: None,
                payload: text("where to?"),
            },
            ErrorCode::BadRequest,
        )
        .await;
    assert!(error.message.contains("not connected"), "{}", error.message);

    let req = client
        .send(Command::Connect {
            socket: lab.socket.clone(),
            to: peer.local_addr().unwrap().to_string(),
        })
        .await;
    let Event::Connected(connected) = client.reply(req).await else {
        panic!("connect should succeed");
    };
    assert_eq!(
        (connected.socket.clone(), connected.local, connected.peer),
        (
            lab.socket.clone(),
            lab.local.clone(),
            peer.local_addr().unwrap().into()
        )
    );

    let req = client
        .send(Command::Send {
            socket: lab.socket.clone(),
            to: None,
            payload: text("to my peer"),
        })
        .await;
    let Event::Datagram(out) = client.reply(req).await else {
        panic!("a send to the peer should succeed");
    };
    assert_eq!(out.peer, peer.local_addr().unwrap());
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"to my peer"[..], lab.local.addr()));

    // The stranger's datagram is sent first, on loopback delivered (or discarded)
    // before the peer's is sent: the first thing the socket receives is the peer's.
    stranger.send_to(b"let me in", lab.local.addr()).unwrap();
    peer.send_to(b"it's me", lab.local.addr()).unwrap();
    let first = client.received_on(&lab.socket).await;
    assert_eq!(decode_base64(&first.payload_b64).unwrap(), b"it's me");

    // Connected to a port nobody listens on: refused, too.
    let nobody = nobody_on("127.0.0.1");
    let req = client
        .send(Command::Connect {
            socket: lab.socket.clone(),
            to: nobody.to_string(),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::Connected(c) if c.peer == nobody));
    let req = client
        .send(Command::Send {
            socket: lab.socket.clone(),
            to: None,
            payload: text("anyone?"),
        })
        .await;
    let Event::Datagram(out) = client.reply(req).await else {
        panic!("the send itself succeeds");
    };
    let (icmp, _) = refusal(&mut client, out.id).await;
    assert_eq!(
        (icmp.to, icmp.reason),
        (nobody, UnreachableReason::PortUnreachable)
    );

    // An unknown socket is refused in words.
    client
        .refused(
            Command::Connect {
                socket: socklab_protocol::SocketId::new("s99"),
                to: nobody.to_string(),
            },
            ErrorCode::UnknownSocket,
        )
        .await;
    server.stop().await;
}

/// Multicast inside a network namespace of the test's own (its loopback made to carry
/// multicast): both members of a group get a datagram sent to it; once one leaves,
/// only the other does. Joining needs the socket's consent, a group, and the policy's.
#[tokio::test]
async fn multicast_reaches_the_members_of_a_group_and_not_one_that_left() {
    use socklab_tests::isolated::{Isolation, rerun};
    if rerun(
        Isolation::Network,
        "multicast_reaches_the_members_of_a_group_and_not_one_that_left",
    ) {
        return;
    }
    for args in [
        &["link", "set", "lo", "multicast", "on"][..],
        &["route", "add", "224.0.0.0/4", "dev", "lo"][..],
    ] {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {args:?}");
    }
    let server = TestServer::with_config(socklab_server::Config {
        allow_net: vec!["239.1.2.0/24".parse().unwrap()],
        ..socklab_server::Config::default()
    })
    .await;
    let mut client = server.client().await;
    let member = |addr: String| BindSpec {
        multicast: true,
        reuse_addr: true,
        ..bind_command(&addr)
    };
    let a = client.bind_with(member("239.1.2.3:0".into())).await;
    let port = a.local.addr().port();
    let b = client.bind_with(member(format!("239.1.2.3:{port}"))).await;
    let group: std::net::SocketAddr = format!("239.1.2.3:{port}").parse().unwrap();
    let membership = |socket: &socklab_protocol::SocketId, join: bool| {
        let (socket, group) = (socket.clone(), "239.1.2.3".to_string());
        let interface = Some("127.0.0.1".to_string());
        if join {
            Command::Join {
                socket,
                group,
                interface,
            }
        } else {
            Command::Leave {
                socket,
                group,
                interface,
            }
        }
    };
    for member in [&a.socket, &b.socket] {
        let req = client.send(membership(member, true)).await;
        match client.reply(req).await {
            Event::Membership(m) => assert!(m.joined && &m.socket == member, "{m:?}"),
            other => panic!("join should succeed, got {other:?}"),
        }
    }
    let sender = client
        .bind_with(BindSpec {
            multicast: true,
            ..bind_command("127.0.0.1:0")
        })
        .await;
    client
        .send_datagram(&sender.socket, group, text("hello group"))
        .await;
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 2 {
        if let Event::Datagram(d) = client.next().await
            && d.dir == socklab_protocol::Direction::In
        {
            assert_eq!(decode_base64(&d.payload_b64).unwrap(), b"hello group");
            got.insert(d.socket);
        }
    }
    assert_eq!(
        got,
        [a.socket.clone(), b.socket.clone()].into_iter().collect()
    );

    let req = client.send(membership(&b.socket, false)).await;
    assert!(matches!(client.reply(req).await, Event::Membership(m) if !m.joined));
    client
        .send_datagram(&sender.socket, group, text("only a"))
        .await;
    let first = client
        .next_where(|e| match e {
            Event::Datagram(d) if d.dir == socklab_protocol::Direction::In => Some(d),
            _ => None,
        })
        .await;
    assert_eq!(first.socket, a.socket);
    // Delivered to every member within the one send: had b still been one, its
    // copy would be logged by now.
    let quiet = tokio::time::timeout(
        Duration::from_millis(300),
        client.next_where(|e| match e {
            Event::Datagram(d) if d.socket == b.socket => Some(d),
            _ => None,
        }),
    )
    .await;
    assert!(quiet.is_err(), "b left the group: {quiet:?}");

    // Refusals, in words.
    let no_consent = client.bind("127.0.0.1:0").await;
    let cases = [
        (membership(&no_consent.socket, true), ErrorCode::BadRequest),
        (membership(&b.socket, false), ErrorCode::BadRequest),
        (
            Command::Join {
                socket: a.socket.clone(),
                group: "10.0.0.1".into(),
                interface: None,
            },
            ErrorCode::BadAddress,
        ),
        (
            Command::Join {
                socket: a.socket.clone(),
                group: "239.9.9.9".into(),
                interface: None,
            },
            ErrorCode::Forbidden,
        ),
    ];
    for (command, code) in cases {
        let error = client.refused(command, code).await;
        assert!(!error.message.is_empty());
    }
    server.stop().await;
}

/// Broadcast inside a network namespace of the test's own: a socket bound with
/// broadcast sends to its network's broadcast address, and a socket bound there
/// receives it; one without broadcast is refused by the kernel (EACCES), in words.
#[tokio::test]
async fn a_broadcast_reaches_its_network_and_needs_the_senders_consent() {
    use socklab_tests::isolated::{Isolation, rerun};
    if rerun(
        Isolation::Network,
        "a_broadcast_reaches_its_network_and_needs_the_senders_consent",
    ) {
        return;
    }
    let status = std::process::Command::new("ip")
        .args(["addr", "add", "10.99.0.1/24", "brd", "+", "dev", "lo"])
        .status()
        .unwrap();
    assert!(status.success(), "an address with a broadcast route");
    let server = TestServer::with_config(socklab_server::Config {
        allow_net: vec!["10.99.0.0/24".parse().unwrap()],
        ..socklab_server::Config::default()
    })
    .await;
    let mut client = server.client().await;
    let listener = client.bind("10.99.0.255:0").await;
    let to: std::net::SocketAddr = format!("10.99.0.255:{}", listener.local.addr().port())
        .parse()
        .unwrap();
    let caster = client
        .bind_with(BindSpec {
            broadcast: true,
            ..bind_command("10.99.0.1:0")
        })
        .await;
    client
        .send_datagram(&caster.socket, to, text("to everyone"))
        .await;
    let got = client.received_on(&listener.socket).await;
    assert_eq!(
        (decode_base64(&got.payload_b64).unwrap(), got.peer),
        (b"to everyone".to_vec(), caster.local)
    );
    let shy = client.bind("10.99.0.1:0").await;
    let error = client
        .refused(
            Command::Send {
                socket: shy.socket.clone(),
                to: Some(to.to_string()),
                payload: text("x"),
            },
            // The kernel's EACCES (the policy only knows 255.255.255.255 by its look).
            ErrorCode::PermissionDenied,
        )
        .await;
    assert!(error.message.contains("SO_BROADCAST"), "{}", error.message);
    server.stop().await;
}

/// Runs `ip` with `args`, failing the test if it fails.
fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ip {args:?}");
}

/// The far end of a virtual network: a namespace `far` joined to this one by a veth
/// pair (`v0` here, `v1` there), with the addresses given, up, and a route for the
/// multicast range `mcast` on each side.
fn far_network(v6: bool, here: &str, there: &str, mcast: &str) {
    ip(&["netns", "add", "far"]);
    ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ip(&["link", "set", "v1", "netns", "far"]);
    let family = if v6 { "-6" } else { "-4" };
    // No duplicate address detection for IPv6: the addresses are usable at once.
    let extra: &[&str] = if v6 { &["nodad"] } else { &["brd", "+"] };
    let mut add_here = vec![family, "addr", "add", here, "dev", "v0"];
    add_here.extend_from_slice(extra);
    ip(&add_here);
    ip(&["link", "set", "v0", "up"]);
    ip(&[family, "route", "add", mcast, "dev", "v0"]);
    let mut add_there = vec![
        "netns", "exec", "far", "ip", family, "addr", "add", there, "dev", "v1",
    ];
    add_there.extend_from_slice(extra);
    ip(&add_there);
    for args in [
        &["link", "set", "v1", "up"][..],
        &["link", "set", "lo", "up"][..],
        &[family, "route", "add", mcast, "dev", "v1"][..],
    ] {
        let mut all = vec!["netns", "exec", "far", "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }
}

/// `tests/fixtures/udp_group_receiver.py` in the far namespace: a program there that
/// joined a group and waits for datagrams.
struct FarMember {
    child: std::process::Child,
    lines: std::io::BufReader<std::process::ChildStdout>,
    /// The port it listens on.
    port: u16,
}

impl FarMember {
    fn start(group: &str, iface: &str, count: usize) -> Self {
        use std::io::BufRead as _;
        let script = socklab_tests::workspace_root().join("tests/fixtures/udp_group_receiver.py");
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", "far", "python3"])
            .arg(&script)
            .args([group, iface, &count.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line:?}"));
        FarMember { child, lines, port }
    }

    /// What it got, once it has its count (or gave up waiting).
    async fn got(mut self) -> serde_json::Value {
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead as _;
            let mut rest = String::new();
            self.lines.read_line(&mut rest).unwrap();
            let _ = self.child.wait();
            let parsed: serde_json::Value = serde_json::from_str(rest.trim()).unwrap();
            parsed["got"].clone()
        })
        .await
        .unwrap()
    }
}

/// Multicast and broadcast across a real virtual network: the test's namespace and a
/// second one, joined by a veth pair (10.77.0.1/24 here, 10.77.0.2/24 there), where a
/// Python program joins a group and listens. A lab socket's datagram to the group and
/// one to the network's broadcast address both cross the link and reach it; nothing
/// can leave the machine.
#[tokio::test]
async fn multicast_and_broadcast_cross_a_virtual_network_to_a_python_member() {
    use socklab_tests::isolated::{Isolation, rerun};
    if rerun(
        Isolation::Networks,
        "multicast_and_broadcast_cross_a_virtual_network_to_a_python_member",
    ) {
        return;
    }
    far_network(false, "10.77.0.1/24", "10.77.0.2/24", "224.0.0.0/4");
    let member = FarMember::start("239.1.2.3", "10.77.0.2", 2);
    let port = member.port;

    let server = TestServer::with_config(socklab_server::Config {
        allow_net: vec![
            "10.77.0.0/24".parse().unwrap(),
            "239.1.2.0/24".parse().unwrap(),
        ],
        ..socklab_server::Config::default()
    })
    .await;
    let mut client = server.client().await;
    let sender = client
        .bind_with(BindSpec {
            multicast: true,
            broadcast: true,
            ..bind_command("10.77.0.1:0")
        })
        .await;
    for (to, text_) in [
        ("239.1.2.3", "to the group"),
        ("10.77.0.255", "to everyone"),
    ] {
        let to: std::net::SocketAddr = format!("{to}:{port}").parse().unwrap();
        client.send_datagram(&sender.socket, to, text(text_)).await;
    }
    let got = member.got().await;
    let from = sender.local.to_string();
    assert_eq!(
        got,
        serde_json::json!([["to the group", from], ["to everyone", from]]),
        "both crossed the virtual link"
    );
    server.stop().await;
}

/// IPv6 multicast across the same kind of virtual network (fd77::/64 on a veth pair):
/// a Python member in the far namespace, and a lab member here that joined on the
/// interface by its name, both get a lab socket's datagram to ff05::1:3.
#[tokio::test]
async fn ipv6_multicast_crosses_a_virtual_network_and_loops_back_to_a_lab_member() {
    use socklab_tests::isolated::{Isolation, rerun};
    if rerun(
        Isolation::Networks,
        "ipv6_multicast_crosses_a_virtual_network_and_loops_back_to_a_lab_member",
    ) {
        return;
    }
    far_network(true, "fd77::1/64", "fd77::2/64", "ff05::/16");
    let member = FarMember::start("ff05::1:3", "v1", 1);
    let port = member.port;

    let server = TestServer::with_config(socklab_server::Config {
        allow_net: vec!["fd77::/64".parse().unwrap(), "ff05::/16".parse().unwrap()],
        ..socklab_server::Config::default()
    })
    .await;
    let mut client = server.client().await;
    let near = client
        .bind_with(BindSpec {
            multicast: true,
            reuse_addr: true,
            ..bind_command(&format!("[ff05::1:3]:{port}"))
        })
        .await;
    let req = client
        .send(Command::Join {
            socket: near.socket.clone(),
            group: "ff05::1:3".into(),
            interface: Some("v0".into()),
        })
        .await;
    assert!(matches!(client.reply(req).await, Event::Membership(m) if m.joined));
    let sender = client
        .bind_with(BindSpec {
            multicast: true,
            ..bind_command("[fd77::1]:0")
        })
        .await;
    let group: std::net::SocketAddr = format!("[ff05::1:3]:{port}").parse().unwrap();
    client
        .send_datagram(&sender.socket, group, text("hello six"))
        .await;
    let here = client.received_on(&near.socket).await;
    assert_eq!(decode_base64(&here.payload_b64).unwrap(), b"hello six");
    let got = member.got().await;
    assert_eq!(got[0][0], "hello six", "{got}");
    server.stop().await;
}
