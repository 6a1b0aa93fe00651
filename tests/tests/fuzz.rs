//! A bounded fuzz run of the session's command handling: hundreds of generated commands,
//! well-formed and not, through one real session. After each one a probe command must
//! still be answered, ids must keep increasing, and a new session must still work at the
//! end. It runs in a network namespace of its own: the generator also produces
//! addresses outside loopback, and even if the policy let one through, nothing could
//! leave the machine.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use socklab_protocol::{ErrorCode, Event};
use socklab_tests::IpEndpoint as _;
use socklab_tests::isolated::{Isolation, rerun};
use socklab_tests::{Client, TestServer};
use tokio_tungstenite::tungstenite::Message;

/// How many generated messages one run sends.
const CASES: usize = 400;

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("127.0.0.1:0".to_string()),
        Just("[::1]:0".to_string()),
        (1024u16..65535).prop_map(|p| format!("127.0.0.1:{p}")),
        Just("localhost:9".to_string()),
        Just("10.0.0.1:9".to_string()),
        Just("0.0.0.0:0".to_string()),
        Just("[::1]:99999".to_string()),
        Just("255.255.255.255:9".to_string()),
        ".{0,10}",
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,20}".prop_map(|t| json!({ "text": t })),
        "[0-9a-fA-F :zx-]{0,20}".prop_map(|h| json!({ "hex": h })),
        "[A-Za-z0-9+/=]{0,20}".prop_map(|b| json!({ "base64": b })),
        Just(json!({ "text": "a", "hex": "00" })),
        Just(json!("not an object")),
        (60_000usize..70_000).prop_map(|n| json!({ "text": "x".repeat(n) })),
    ]
}

fn socket() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1u8..6).prop_map(|n| json!(format!("s{n}"))),
        Just(json!(7)),
        ".{0,4}".prop_map(Value::from)
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0.0f64..120.0).prop_map(Value::from),
        Just(json!(-5)),
        Just(json!(1e300)),
        Just(json!("ten"))
    ]
}

/// One generated message: a command (often valid, often not) or raw garbage.
fn message() -> impl Strategy<Value = Message> {
    let command = prop_oneof![
        address().prop_map(|a| json!({ "type": "bind", "proto": "udp", "addr": a })),
        socket().prop_map(|s| json!({ "type": "close", "socket": s })),
        (socket(), address(), payload()).prop_map(|(s, a, p)| json!({ "type": "send", "socket": s, "to": a, "payload": p })),
        (address(), address(), number(), number()).prop_map(|(l, t, loss, delay)| json!({
            "type": "link_create", "listen": l, "target": t,
            "settings": { "c2t": { "loss": { "model": "random", "pct": loss }, "delay_ms": delay } }
        })),
        (1u8..4, number()).prop_map(|(n, pct)| json!({
            "type": "link_update", "link": format!("l{n}"), "settings": { "t2c": { "duplicate_pct": pct } }
        })),
        (1u8..4).prop_map(|n| json!({ "type": "link_delete", "link": format!("l{n}") })),
        (socket(), address(), 0u64..30, number()).prop_map(|(s, a, n, rate)| json!({
            "type": "generate", "socket": s, "to": a, "amount": { "count": n }, "rate": rate, "size": 32
        })),
        (1u8..4).prop_map(|n| json!({ "type": "generate_stop", "generator": format!("g{n}") })),
        (0u64..5000).prop_map(|ms| json!({ "type": "set_loss_timeout", "ms": ms })),
        Just(json!({ "type": "teleport" })),
        Just(json!({ "req": "seven", "type": "bind" })),
    ];
    prop_oneof![
        8 => (command, any::<i32>()).prop_map(|(mut c, req)| {
            c["req"] = json!(req.unsigned_abs() as i64 + 1);
            Message::text(c.to_string())
        }),
        1 => ".{0,40}".prop_map(Message::text),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Message::binary),
    ]
}

#[tokio::test]
async fn generated_commands_never_break_the_session() {
    if rerun(
        Isolation::Network,
        "generated_commands_never_break_the_session",
    ) {
        return;
    }
    // Fixed seed: the same run every time, so a failure can be reproduced.
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = message();
    let messages: Vec<Message> = (0..CASES)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("a generated message")
                .current()
        })
        .collect();

    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut last_id = 0;
    for (i, message) in messages.into_iter().enumerate() {
        client.send_message(message).await;
        // A probe with a req no generated message uses: its answer proves the session
        // still listens; everything before it must have increasing ids.
        let probe = -(i as i64) - 1;
        client
            .send_text(&json!({ "req": probe, "type": "close", "socket": "probe" }).to_string())
            .await;
        let (answer, before) = client.until(|e| e.req() == Some(probe)).await;
        for event in before.iter().chain([&answer]) {
            if let Some(id) = event.id() {
                assert!(id.0 > last_id, "ids increase: {} after {last_id}", id.0);
                last_id = id.0;
            }
        }
        match answer {
            Event::Error(e) => assert_eq!(e.code, ErrorCode::UnknownSocket),
            other => panic!("the probe gets its error, not {other:?}"),
        }
    }
    // Other sessions were never affected, and new ones work.
    let mut fresh = Client::connect(server.addr).await;
    let a = fresh.bind("127.0.0.1:0").await;
    fresh
        .send_datagram(
            &a.socket,
            a.local.addr(),
            socklab_tests::text("after the fuzz"),
        )
        .await;
    server.stop().await;
}
