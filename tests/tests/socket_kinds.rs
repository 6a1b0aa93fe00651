//! The socket kinds and receive options beyond a plain UDP socket reading whole
//! datagrams: real sockets through the real server, driven by a real WebSocket client.

use std::net::UdpSocket;
use std::time::Duration;

use socklab_protocol::flow::FateKind;
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{BindSpec, Command, ErrorCode, Event};
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

    let out = client
        .send_datagram(&sender.socket, reader.local, text("hello world"))
        .await;
    let cut = client.received_on(&reader.socket).await;
    assert_eq!(decode_base64(&cut.payload_b64).unwrap(), b"hell");
    assert_eq!((cut.len, cut.truncated_from), (4, Some(11)));
    let short = client
        .send_datagram(&sender.socket, reader.local, text("hi"))
        .await;
    let whole = client.received_on(&reader.socket).await;
    assert_eq!((whole.len, whole.truncated_from), (2, None));

    // The analysis pairs each cut receive with its send.
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        if let Event::Fate(f) = client.next().await {
            assert_eq!(f.fate, FateKind::Delivered, "{f:?}");
            delivered.push((f.send, f.recv));
        }
    }
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
