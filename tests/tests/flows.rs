//! Flow analysis and the traffic generator, with real sockets through real links.
//!
//! (Over 600 lines: one test per definition of the analysis on real traffic; they share
//! the helpers at the top.)

use std::collections::HashSet;

use socklab_protocol::flow::{
    Amount, FateKind, FlowMethod, FlowSummary, GeneratorPace, GeneratorPayload, GeneratorSpec,
    LossCause,
};
use socklab_protocol::link::{Impairments, LinkFate, LinkSettings, Loss};
use socklab_protocol::{Command, ErrorCode, Event, LinkPacket, SocketId};
use socklab_tests::IpEndpoint as _;
use socklab_tests::python::PythonEcho;
use socklab_tests::{Client, TestServer, generate, text};

/// Reads events until a `flow_stats` satisfies `done`, collecting link decisions and
/// fates on the way; returns that flow's figures (the first flow matching `method`).
async fn until_flow(
    client: &mut Client,
    method: FlowMethod,
    decisions: &mut Vec<LinkPacket>,
    fates: &mut Vec<socklab_protocol::flow::Fate>,
    done: impl Fn(&FlowSummary) -> bool,
) -> Vec<FlowSummary> {
    let deadline = std::time::Instant::now() + socklab_tests::WAIT;
    let mut last = Vec::new();
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the flow never got there; last figures: {last:#?}"
        );
        match client.next().await {
            Event::LinkPacket(p) => decisions.push(p),
            Event::Fate(f) => fates.push(f),
            Event::FlowStats(s) => {
                if s.flows.iter().any(|f| f.method == method && done(f)) {
                    return s.flows;
                }
                last = s.flows;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn flow_figures_agree_with_what_the_link_decided() {
    const N: u64 = 500;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 20.0 },
            reorder_pct: 10.0,
            reorder_gap: 2,
            duplicate_pct: 5.0,
            ..Impairments::default()
        },
        seed: 3,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let req = client
        .send(generate(&a.socket, link.listen, N, 5_000.0))
        .await;
    match client.reply(req).await {
        Event::GeneratorStarted(g) => assert_eq!((g.count, g.seq_flow), (N, Some(1))),
        other => panic!("expected generator_started, got {other:?}"),
    }
    let (mut decisions, mut fates) = (Vec::new(), Vec::new());
    let flows = until_flow(
        &mut client,
        FlowMethod::Matched,
        &mut decisions,
        &mut fates,
        |f| f.sent == N && f.in_flight == 0,
    )
    .await;
    let matched = flows
        .iter()
        .find(|f| f.method == FlowMethod::Matched)
        .unwrap();
    assert_eq!(
        (matched.src.clone(), matched.dst.clone()),
        (a.local.clone(), b.local.clone()),
        "the flow is seen through the link"
    );
    assert_eq!(matched.via.as_ref(), Some(&link.link));

    assert_eq!(decisions.len() as u64, N, "one decision per datagram");
    let dropped = decisions
        .iter()
        .filter(|p| p.fate == LinkFate::Dropped)
        .count() as u64;
    let duplicated = decisions.iter().filter(|p| p.duplicated).count() as u64;
    // A held-back datagram arrives after a later one when some later datagram was
    // forwarded without being held, and no early copy of it arrived first.
    let overtaken = decisions
        .iter()
        .filter(|p| {
            p.held_for.is_some()
                && !p.duplicated
                && decisions
                    .iter()
                    .any(|q| q.seq > p.seq && q.fate == LinkFate::Forwarded && q.held_for.is_none())
        })
        .count() as u64;
    assert!(dropped > 0 && duplicated > 0 && overtaken > 0);
    assert_eq!(matched.lost, dropped);
    assert_eq!(matched.duplicated, duplicated);
    assert_eq!(matched.reordered, overtaken);
    assert_eq!(matched.received, N - dropped + duplicated);
    let latency = matched.latency_ns.expect("latencies");
    assert!(latency.min <= latency.p50 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);

    // Each drop has a fate naming the link's reason.
    let lost: Vec<_> = fates.iter().filter(|f| f.fate == FateKind::Lost).collect();
    assert_eq!(lost.len() as u64, dropped);
    assert!(
        lost.iter()
            .all(|f| f.cause == Some(LossCause::Link) && f.reason.is_some())
    );
    // ...and names the link's decision event, which says the same.
    for f in &lost {
        let decision = decisions
            .iter()
            .find(|p| Some(p.id) == f.decision)
            .expect("the decision event");
        assert_eq!(
            (decision.fate, decision.reason),
            (LinkFate::Dropped, f.reason)
        );
    }
    let delivered = fates
        .iter()
        .filter(|f| f.fate == FateKind::Delivered)
        .count() as u64;
    assert_eq!(delivered, N - dropped);

    // The receiver's own view from the sequence header agrees on order and copies.
    // (Everything has arrived by now: the same figures carry the receiver's view.)
    let sequenced = flows
        .iter()
        .find(|f| f.method == FlowMethod::Sequenced)
        .unwrap();
    assert_eq!(sequenced.received, N - dropped + duplicated);
    assert_eq!(
        (
            sequenced.src.clone(),
            sequenced.dst.clone(),
            sequenced.seq_flow
        ),
        (a.local, b.local, Some(1))
    );
    assert_eq!(sequenced.reordered, overtaken);
    assert_eq!(sequenced.duplicated, duplicated);
    let highest_received = decisions
        .iter()
        .filter(|p| p.fate == LinkFate::Forwarded)
        .map(|p| p.seq)
        .max()
        .unwrap();
    assert_eq!(
        sequenced.sent,
        highest_received + 1,
        "expected = highest sequence number + 1"
    );
    let dropped_below = decisions
        .iter()
        .filter(|p| p.fate == LinkFate::Dropped && p.seq < highest_received)
        .count();
    assert_eq!(sequenced.lost, dropped_below as u64);
    server.stop().await;
}

#[tokio::test]
async fn an_echo_peer_gives_round_trip_times() {
    let echo = PythonEcho::start("127.0.0.1");
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    client
        .send(generate(&a.socket, echo.addr, 20, 1_000.0))
        .await;
    let flows = until_flow(
        &mut client,
        FlowMethod::Echo,
        &mut Vec::new(),
        &mut Vec::new(),
        |f| f.received == 20,
    )
    .await;
    let echoed = flows.iter().find(|f| f.method == FlowMethod::Echo).unwrap();
    assert_eq!(
        (
            echoed.src.clone(),
            echoed.dst.clone(),
            echoed.sent,
            echoed.lost
        ),
        (a.local.clone(), echo.addr.into(), 20, 0)
    );
    assert!(echoed.latency_ns.unwrap().p50 > 0);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_datagram_is_lost_by_timeout_then_late() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let req = client.send(Command::SetLossTimeout { ms: 50 }).await;
    assert!(matches!(client.reply(req).await, Event::AnalysisConfig(c) if c.loss_timeout_ms == 50));
    let slow = LinkSettings {
        c2t: Impairments {
            delay_ms: 400.0,
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), slow).await;
    let out = client
        .send_datagram(&a.socket, link.listen, text("slow"))
        .await;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|f: &socklab_protocol::flow::Fate| f.fate == FateKind::Delivered)
    {
        if let Event::Fate(f) = client.next().await {
            seen.push(f);
        }
    }
    assert_eq!(seen[0].fate, FateKind::Lost);
    assert_eq!(
        (seen[0].send, seen[0].cause),
        (out.id, Some(LossCause::Timeout))
    );
    assert!(seen[1].late && seen[1].latency_ns.unwrap() >= 400_000_000);
    server.stop().await;
}

#[tokio::test]
async fn the_generator_refuses_what_it_cannot_do_and_stops_on_request() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let to = a.local;
    let refusals = [
        (
            generate(&a.socket, to.addr(), 10, 1e6),
            ErrorCode::LimitExceeded,
        ),
        (
            generate(&a.socket, to.addr(), 2_000_000, 1_000.0),
            ErrorCode::LimitExceeded,
        ),
        (
            generate(&a.socket, to.addr(), 10, 0.0),
            ErrorCode::BadRequest,
        ),
        (
            generate(&a.socket, to.addr(), 0, 10.0),
            ErrorCode::BadRequest,
        ),
        (
            generate(&SocketId::new("s9"), to.addr(), 10, 10.0),
            ErrorCode::UnknownSocket,
        ),
        (
            Command::Generate(GeneratorSpec {
                socket: a.socket.clone(),
                to: to.to_string(),
                amount: Amount::Count(1),
                pace: GeneratorPace::Rate(10.0),
                payload: GeneratorPayload::Size(10),
                sequence: true,
            }),
            ErrorCode::BadRequest,
        ),
        (
            Command::GenerateStop {
                generator: socklab_protocol::GeneratorId::new("g7"),
            },
            ErrorCode::UnknownGenerator,
        ),
        (Command::SetLossTimeout { ms: 0 }, ErrorCode::BadRequest),
        (
            Command::SetMatchField {
                field: Some(socklab_protocol::flow::MatchField { offset: 0, len: 0 }),
            },
            ErrorCode::BadRequest,
        ),
        (
            Command::SetMatchField {
                field: Some(socklab_protocol::flow::MatchField {
                    offset: u32::MAX,
                    len: 64,
                }),
            },
            ErrorCode::BadRequest,
        ),
    ];
    for (command, code) in refusals {
        let error = client.refused(command, code).await;
        assert!(!error.message.is_empty());
    }
    // A long generator stops on request and says how many it sent.
    let long = Command::Generate(GeneratorSpec {
        socket: a.socket.clone(),
        to: to.to_string(),
        amount: Amount::DurationMs(60_000),
        pace: GeneratorPace::IntervalMs(10.0), // 100 datagrams/s
        payload: GeneratorPayload::Size(32),
        sequence: true,
    });
    let req = client.send(long).await;
    let Event::GeneratorStarted(started) = client.reply(req).await else {
        panic!("started")
    };
    assert_eq!((started.count, started.rate), (6_000, 100.0));
    client.received_on(&a.socket).await;
    let req = client
        .send(Command::GenerateStop {
            generator: started.generator.clone(),
        })
        .await;
    match client.reply(req).await {
        Event::GeneratorDone(done) => assert!(
            done.stopped && done.sent > 0 && done.sent < 6_000,
            "{done:?}"
        ),
        other => panic!("expected generator_done, got {other:?}"),
    }
    // A generator with a fixed pattern and no header sends exactly that.
    let req = client
        .send(Command::Generate(GeneratorSpec {
            socket: a.socket.clone(),
            to: to.to_string(),
            amount: Amount::Count(3),
            pace: GeneratorPace::Rate(1_000.0),
            payload: GeneratorPayload::Pattern(socklab_protocol::Payload::Text("tick".into())),
            sequence: false,
        }))
        .await;
    assert!(matches!(client.reply(req).await, Event::GeneratorStarted(g) if g.seq_flow.is_none()));
    let mut payloads = HashSet::new();
    for _ in 0..3 {
        let d = client.received_on(&a.socket).await;
        payloads.insert(d.payload_b64);
    }
    assert_eq!(
        payloads.into_iter().collect::<Vec<_>>(),
        vec!["dGljaw==".to_string()]
    );
    server.stop().await;
}

#[tokio::test]
async fn datagrams_the_kernel_dropped_are_lost_because_of_the_kernel() {
    const COUNT: u64 = 5_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind_with_buffer("127.0.0.1:0", Some(1)).await;
    // Long enough for the kernel's last count (read from its socket table 100 ms after
    // the socket's last datagram) to come in before any datagram times out.
    let req = client.send(Command::SetLossTimeout { ms: 1_000 }).await;
    client.reply(req).await;
    // At the generator's highest rate, into a buffer of a couple of datagrams: the
    // sending socket's task sends a whole run of datagrams before the receiving one
    // gets a turn, so the kernel drops most of them.
    client
        .send(generate(&a.socket, b.local.addr(), COUNT, 100_000.0))
        .await;
    // Until the flow is settled and a fate has come for each of its losses (a tick's
    // fates may follow its figures).
    let (mut fates, mut reported, mut settled) = (Vec::new(), 0, None);
    let flow: FlowSummary = loop {
        match client.next().await {
            Event::KernelDrops(k) => reported = k.total,
            Event::Fate(f) if f.fate == FateKind::Lost => fates.push(f),
            Event::FlowStats(s) => {
                settled = s.flows.into_iter().find(|f| {
                    f.method == FlowMethod::Matched && f.sent == COUNT && f.in_flight == 0
                });
            }
            _ => {}
        }
        if let Some(flow) = &settled
            && fates.len() as u64 >= flow.lost
        {
            break flow.clone();
        }
    };
    let lost = &fates;
    let by_kernel = lost
        .iter()
        .filter(|f| f.cause == Some(LossCause::Kernel))
        .count() as u64;
    let by_timeout = lost
        .iter()
        .filter(|f| f.cause == Some(LossCause::Timeout))
        .count() as u64;
    assert_eq!(lost.len() as u64, flow.lost, "one fate per lost datagram");
    assert!(flow.lost > 0, "the burst overflowed the buffer: {flow:?}");
    // Every loss here happened in the kernel, which reported each one, the tail of the
    // burst included; none is left to the timeout.
    assert_eq!(
        reported, flow.lost,
        "the kernel reported every loss: {flow:?}"
    );
    assert_eq!((by_kernel, by_timeout), (flow.lost, 0), "{flow:?}");
    server.stop().await;
}

#[tokio::test]
async fn every_datagram_of_a_burst_gets_its_fate_and_so_does_a_lone_one_after_it() {
    // Under load the analysis reads the log every few milliseconds instead of at each
    // logged batch; once the log is quiet it waits for it again. In both states each
    // datagram between two lab sockets gets its fate.
    const COUNT: u64 = 2_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    client
        .send(generate(&a.socket, b.local.addr(), COUNT, 100_000.0))
        .await;
    let mut delivered = HashSet::new();
    while (delivered.len() as u64) < COUNT {
        if let Event::Fate(f) = client.next().await {
            assert_eq!(f.fate, FateKind::Delivered, "{f:?}");
            delivered.insert(f.send);
        }
    }
    // Quiet for longer than the analysis's busy pace, then one more datagram.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let lone = client
        .send_datagram(&a.socket, b.local.addr(), text("lone"))
        .await;
    let fate = loop {
        if let Event::Fate(f) = client.next().await
            && f.send == lone.id
        {
            break f;
        }
    };
    assert_eq!(fate.fate, FateKind::Delivered);
    assert!(!delivered.contains(&lone.id));
    server.stop().await;
}

/// An outside program (a plain socket of this test, not a lab socket) sends through a
/// link to a lab socket, which answers through the link; the program echoes the answer.
/// The analysis follows the link's reported client, so the lab socket's answer belongs
/// to the flow towards the program, across the link, and the echo is its reply.
#[tokio::test]
async fn an_outside_program_that_becomes_a_links_client_ends_its_flows() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let s1 = client.bind("127.0.0.1:0").await;
    let link = client
        .link("127.0.0.1:0", s1.local.addr(), LinkSettings::default())
        .await;
    let program = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let program_addr = program.local_addr().unwrap();
    program.send_to(b"ping", link.listen).await.unwrap();
    // The ping reaches s1 from the link's upstream address; s1 answers there.
    let ping = client.received_on(&s1.socket).await;
    assert_eq!(ping.peer, link.upstream);
    let answer = client
        .send_datagram(&s1.socket, link.upstream, text("pong"))
        .await;
    let mut buf = [0u8; 64];
    let (len, from) = tokio::time::timeout(socklab_tests::WAIT, program.recv_from(&mut buf))
        .await
        .expect("the answer crosses the link")
        .unwrap();
    assert_eq!((&buf[..len], from), (&b"pong"[..], link.listen));
    // The program echoes it, as an echo server would.
    program.send_to(b"pong", link.listen).await.unwrap();
    let fate = client
        .next_where(|e| match e {
            Event::Fate(fate) if fate.send == answer.id => Some(fate),
            _ => None,
        })
        .await;
    assert_eq!(
        (fate.fate, fate.src, fate.dst),
        (FateKind::Reply, s1.local.clone(), program_addr.into()),
        "s1's answer went to the program, and the program's echo is its reply"
    );
    let flows = until_flow(
        &mut client,
        FlowMethod::Echo,
        &mut Vec::new(),
        &mut Vec::new(),
        |f| f.received > 0,
    )
    .await;
    let echo: Vec<_> = flows
        .iter()
        .filter(|f| f.method == FlowMethod::Echo)
        .map(|f| {
            (
                f.src.clone(),
                f.dst.clone(),
                f.via.clone(),
                f.sent,
                f.received,
            )
        })
        .collect();
    assert_eq!(
        echo,
        [(
            s1.local.clone(),
            program_addr.into(),
            Some(link.link.clone()),
            1,
            1
        )],
        "one flow, from s1 to the program through the link (not to the link's address)"
    );
    server.stop().await;
}

/// A datagram sent to a loopback port nobody is bound to is discarded by the kernel,
/// which answers with ICMP port unreachable: the lab socket reads it from its error
/// queue and the request is refused at once. Through a link the error goes to the
/// link, not the sender, so the request times out, and its fate still says nobody was
/// listening (the kernel's socket tables say so). One to a port a program is bound to
/// (that does not answer) is only unanswered.
#[tokio::test]
async fn a_send_to_a_port_nobody_is_bound_to_says_so() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let s1 = client.bind("127.0.0.1:0").await;
    let req = client.send(Command::SetLossTimeout { ms: 100 }).await;
    client.reply(req).await;
    let nobody = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let link = client
        .link("127.0.0.1:0", nobody, LinkSettings::default())
        .await;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut causes = Vec::new();
    for to in [nobody, link.listen, silent.local_addr().unwrap()] {
        let sent = client.send_datagram(&s1.socket, to, text("anyone?")).await;
        let fate = client
            .next_where(|e| match e {
                Event::Fate(f) if f.send == sent.id => Some(f),
                _ => None,
            })
            .await;
        causes.push((fate.fate, fate.cause));
    }
    assert_eq!(
        causes,
        [
            (FateKind::Unanswered, Some(LossCause::Refused)),
            (FateKind::Unanswered, Some(LossCause::NoListener)),
            (FateKind::Unanswered, Some(LossCause::Timeout)),
        ]
    );
    server.stop().await;
}

/// Times that cannot be impossible: a send's time is taken before the syscall and a
/// receive's is the kernel's own stamp, so however busy the machine (a thread burns a
/// CPU meanwhile) and however fast the generator, every datagram arrives after it was
/// sent, and every delivered fate has a latency above zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrival_comes_after_its_send_even_on_a_busy_machine() {
    const N: u64 = 20_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let burner = socklab_tests::CpuBurner::start();
    client
        .send(generate(&a.socket, b.local.addr(), N, 100_000.0))
        .await;
    let mut times = std::collections::HashMap::new();
    let mut delivered = Vec::new();
    let deadline = std::time::Instant::now() + socklab_tests::WAIT;
    while (delivered.len() as u64) < N && std::time::Instant::now() < deadline {
        match client.next().await {
            Event::Datagram(d) => {
                times.insert(d.id, d.t_ns);
            }
            Event::Fate(f) if f.fate == FateKind::Delivered => delivered.push(f),
            Event::Fate(f) if f.fate == FateKind::Lost => {
                // The kernel may drop some at this rate; they are not what is checked.
                delivered.push(f);
            }
            _ => {}
        }
    }
    drop(burner);
    let delivered: Vec<_> = delivered
        .into_iter()
        .filter(|f| f.fate == FateKind::Delivered)
        .collect();
    assert!(delivered.len() > 1_000, "{} delivered", delivered.len());
    let impossible: Vec<_> = delivered
        .iter()
        .filter(|f| {
            let sent = times[&f.send];
            let received = times[&f.recv.unwrap()];
            received <= sent || f.latency_ns.unwrap_or(0) == 0
        })
        .take(5)
        .collect();
    assert!(
        impossible.is_empty(),
        "arrived no later than sent: {impossible:?}"
    );
    server.stop().await;
}

/// The classic learner's exercise: a server that upper-cases what it gets. Its replies
/// never equal the requests, yet each is a reply: paired by order, said so, and none of
/// the requests is called lost.
#[tokio::test]
async fn an_upper_casing_server_answers_every_request() {
    const N: usize = 50;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let s1 = client.bind("127.0.0.1:0").await;
    let upper = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    upper
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let upper_addr = upper.local_addr().unwrap();
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..N {
            let Ok((len, from)) = upper.recv_from(&mut buf) else {
                return;
            };
            let reply = buf[..len].to_ascii_uppercase();
            upper.send_to(&reply, from).unwrap();
        }
    });
    for i in 0..N {
        client
            .send(Command::Send {
                socket: s1.socket.clone(),
                to: Some(upper_addr.to_string()),
                payload: text(&format!("hello {i}")),
            })
            .await;
    }
    let mut replies = Vec::new();
    while replies.len() < N {
        if let Event::Fate(f) = client.next().await {
            assert_eq!(f.fate, FateKind::Reply, "no request is lost: {f:?}");
            replies.push(f);
        }
    }
    answering.join().unwrap();
    assert!(
        replies.iter().all(|f| f.by_order),
        "paired by order, and said so"
    );
    let flows = until_flow(
        &mut client,
        FlowMethod::Echo,
        &mut Vec::new(),
        &mut Vec::new(),
        |f| f.received as usize == N,
    )
    .await;
    let echo = flows.iter().find(|f| f.method == FlowMethod::Echo).unwrap();
    assert_eq!(
        (echo.sent, echo.received, echo.lost),
        (N as u64, N as u64, 0)
    );
    server.stop().await;
}

/// Through a link with a fixed delay, at a high rate on a busy machine: the link plans
/// each departure from the kernel's arrival time, so no datagram arrives sooner than
/// the delay after its send, and every send comes before the link saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_link_no_latency_is_below_its_delay() {
    const N: u64 = 10_000;
    const DELAY_NS: u64 = 3_000_000;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            delay_ms: DELAY_NS as f64 / 1e6,
            ..Impairments::default()
        },
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    let burner = socklab_tests::CpuBurner::start();
    client
        .send(generate(&a.socket, link.listen, N, 20_000.0))
        .await;
    let mut out_times = std::collections::HashMap::new();
    let mut link_times = Vec::new();
    let mut latencies = Vec::new();
    let mut concluded = 0;
    let deadline = std::time::Instant::now() + socklab_tests::WAIT;
    while concluded < N && std::time::Instant::now() < deadline {
        match client.next().await {
            Event::Datagram(d) if d.dir == socklab_protocol::Direction::Out => {
                out_times.insert(d.payload_b64.clone(), d.t_ns);
            }
            Event::LinkPacket(p) => link_times.push((p.payload_b64.clone(), p.t_ns)),
            Event::Fate(f) => {
                concluded += 1;
                if f.fate == FateKind::Delivered {
                    latencies.push(f.latency_ns.unwrap());
                }
            }
            _ => {}
        }
    }
    drop(burner);
    assert!(latencies.len() > 1_000, "{} delivered", latencies.len());
    let below: Vec<_> = latencies
        .iter()
        .filter(|&&l| l < DELAY_NS)
        .take(5)
        .collect();
    assert!(
        below.is_empty(),
        "sooner than the link's delay: {below:?} ns"
    );
    // Each payload carries its sequence number, so its bytes name it.
    let early: Vec<_> = link_times
        .iter()
        .filter(|(payload, at)| out_times.get(payload).is_some_and(|sent| at < sent))
        .take(5)
        .collect();
    assert!(
        early.is_empty(),
        "the link saw it before it was sent: {early:?}"
    );
    server.stop().await;
}

/// A learner's protocol numbers its messages and its server answers out of order with
/// acks: with the number's place named, every ack is paired with its own request.
#[tokio::test]
async fn a_named_sequence_field_pairs_acks_with_their_own_requests() {
    use socklab_protocol::flow::MatchField;
    use socklab_protocol::payload::decode_base64;
    const N: usize = 20;
    let acker = PythonEcho::start_acking("127.0.0.1");
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let s1 = client.bind("127.0.0.1:0").await;
    let req = client
        .send(Command::SetMatchField {
            field: Some(MatchField { offset: 4, len: 4 }),
        })
        .await;
    match client.reply(req).await {
        Event::AnalysisConfig(c) => {
            assert_eq!(c.match_field, Some(MatchField { offset: 4, len: 4 }))
        }
        other => panic!("set_match_field should succeed, got {other:?}"),
    }
    for i in 0..N {
        client
            .send(Command::Send {
                socket: s1.socket.clone(),
                to: Some(acker.addr.to_string()),
                payload: text(&format!("REQ:{i:04} please")),
            })
            .await;
    }
    let mut payloads = std::collections::HashMap::new();
    let mut replies = Vec::new();
    while replies.len() < N {
        match client.next().await {
            Event::Datagram(d) => {
                payloads.insert(d.id, decode_base64(&d.payload_b64).unwrap());
            }
            Event::Fate(f) => {
                assert_eq!(f.fate, FateKind::Reply, "no request is lost: {f:?}");
                replies.push(f);
            }
            _ => {}
        }
    }
    for f in &replies {
        assert!(
            f.by_field && !f.by_order,
            "paired by the field, and said so: {f:?}"
        );
        let request = &payloads[&f.send];
        let ack = &payloads[&f.recv.expect("the reply's receive")];
        assert_eq!(
            request[4..8],
            ack[4..8],
            "{} answered by {}",
            String::from_utf8_lossy(request),
            String::from_utf8_lossy(ack)
        );
    }
    server.stop().await;
}

/// Runs: `mark_run` begins one (named, or `run N`), a generator's start begins one of
/// its own; a name too long is refused in words and the session carries on.
#[tokio::test]
async fn runs_are_marked_by_command_and_by_each_generator() {
    let server = TestServer::start().await;
    let mut client = Client::connect(server.addr).await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let runs = |e: &Event| match e {
        Event::RunMarked(r) => Some(r.clone()),
        _ => None,
    };
    let req = client.send(Command::MarkRun { name: None }).await;
    let first = client.until(|e| matches!(e, Event::RunMarked(_))).await.0;
    let first = runs(&first).unwrap();
    assert_eq!(
        (first.run, first.name.as_str(), first.req),
        (1, "run 1", Some(req))
    );
    client
        .send(Command::MarkRun {
            name: Some("  60 Hz game  ".into()),
        })
        .await;
    let second = runs(&client.until(|e| matches!(e, Event::RunMarked(_))).await.0).unwrap();
    assert_eq!((second.run, second.name.as_str()), (2, "60 Hz game"));
    assert!(second.t_ns >= first.t_ns);

    let req = client
        .send(Command::MarkRun {
            name: Some("x".repeat(101)),
        })
        .await;
    let refusal = socklab_tests::expect_error(client.reply(req).await, ErrorCode::BadRequest);
    assert!(
        refusal.message.contains("100 characters"),
        "{}",
        refusal.message
    );

    client
        .send(generate(&a.socket, b.local.addr(), 5, 1000.0))
        .await;
    let (marked, _) = client.until(|e| matches!(e, Event::RunMarked(_))).await;
    let third = runs(&marked).unwrap();
    assert_eq!(third.run, 3);
    assert_eq!(
        third.name,
        format!("g1: 5 to {} at 1000/s", b.local),
        "named for its generator"
    );
    assert_eq!(third.req, None);
    let (started, _) = client
        .until(|e| matches!(e, Event::GeneratorStarted(_)))
        .await;
    assert!(
        started.id().unwrap() > third.id,
        "the run begins before its first datagram"
    );
    server.stop().await;
}

/// Each run's figures come from the server, counted from every datagram whatever a
/// viewer was sent: a viewer thinned to 1,000 events a second still gets the figures
/// of two fast runs, a lossy one through a link and a clean one, that add up to the
/// session's, each datagram in the run that sent it.
#[tokio::test]
async fn each_runs_figures_count_every_datagram_it_sent_whatever_the_viewer_was_sent() {
    const LOSSY: u64 = 3_000;
    const CLEAN: u64 = 2_000;
    let server = TestServer::start().await;
    let mut client = Client::connect(server.addr).await;
    let req = client
        .send(Command::KeepUp {
            behind: Some(1_000),
            rate: Some(1_000),
        })
        .await;
    client.reply(req).await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    let settings = LinkSettings {
        c2t: Impairments {
            loss: Loss::Random { pct: 20.0 },
            ..Impairments::default()
        },
        seed: 11,
        ..LinkSettings::default()
    };
    let link = client.link("127.0.0.1:0", b.local.addr(), settings).await;
    client
        .send(generate(&a.socket, link.listen, LOSSY, 10_000.0))
        .await;
    client.until(|e| matches!(e, Event::GeneratorDone(_))).await;
    client
        .send(generate(&a.socket, b.local.addr(), CLEAN, 10_000.0))
        .await;
    let mut runs = std::collections::BTreeMap::new();
    let mut thinned = false;
    let deadline = std::time::Instant::now() + 3 * socklab_tests::WAIT;
    let (session, runs) = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the runs' figures never settled: {runs:?}"
        );
        match client.next().await {
            Event::Thinned(_) => thinned = true,
            Event::FlowStats(stats) => {
                for run in stats.runs {
                    assert!(!run.partial, "{run:?}");
                    runs.insert(run.run, run.flows);
                }
                let settled = |run: u32, sent: u64| {
                    runs.get(&run).is_some_and(|flows: &Vec<FlowSummary>| {
                        flows.len() == 1 && flows[0].sent == sent && flows[0].in_flight == 0
                    })
                };
                if settled(1, LOSSY) && settled(2, CLEAN) {
                    let session = stats
                        .flows
                        .into_iter()
                        .find(|f| f.method == FlowMethod::Matched)
                        .expect("the matched flow");
                    break (session, runs);
                }
            }
            _ => {}
        }
    };
    assert!(thinned, "the viewer was spared single datagrams");
    let (lossy, clean) = (&runs[&1][0], &runs[&2][0]);
    assert_eq!(
        (lossy.src.clone(), lossy.dst.clone()),
        (a.local.clone(), b.local.clone())
    );
    assert_eq!(lossy.via.as_ref(), Some(&link.link));
    assert_eq!(clean.via, None);
    assert_eq!(lossy.received + lossy.lost, LOSSY, "{lossy:?}");
    assert!(
        (LOSSY / 10..LOSSY * 3 / 10).contains(&lossy.lost),
        "about a fifth lost: {lossy:?}"
    );
    assert_eq!((clean.received, clean.lost), (CLEAN, 0), "{clean:?}");
    assert!(lossy.latency_ns.is_some() && clean.latency_ns.is_some());
    // Together they are the session's figures of the flow.
    assert_eq!(lossy.sent + clean.sent, session.sent);
    assert_eq!(lossy.lost + clean.lost, session.lost);
    assert_eq!(lossy.received + clean.received, session.received);
    server.stop().await;
}

/// A run whose datagrams are concluded by the loss timeout (the analysis' tick) ends
/// with whole figures: every one lost, none left in flight.
#[tokio::test]
async fn a_runs_figures_take_the_losses_the_timeout_concludes() {
    const N: u64 = 5;
    let server = TestServer::start().await;
    let mut client = Client::connect(server.addr).await;
    client.send(Command::SetLossTimeout { ms: 200 }).await;
    let a = client.bind("127.0.0.1:0").await;
    let b = client.bind("127.0.0.1:0").await;
    // b reads nothing: what is sent to it waits in its buffer until the timeout.
    client
        .send(Command::Pause {
            socket: b.socket.clone(),
            paused: true,
        })
        .await;
    client.send(Command::MarkRun { name: None }).await;
    for i in 0..N {
        client
            .send_datagram(&a.socket, b.local.addr(), text(&format!("t{i}")))
            .await;
    }
    let deadline = std::time::Instant::now() + 3 * socklab_tests::WAIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run's figures never took the timeouts"
        );
        if let Event::FlowStats(stats) = client.next().await
            && let Some(run) = stats.runs.iter().find(|r| r.run == 1)
            && run.flows.first().is_some_and(|f| f.lost == N)
        {
            let f = &run.flows[0];
            assert_eq!((f.sent, f.received, f.in_flight), (N, 0, 0), "{f:?}");
            break;
        }
    }
    server.stop().await;
}
