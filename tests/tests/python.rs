//! Interop with the classic Python UDP echo server.

use socklab_protocol::payload::decode_base64;
use socklab_tests::python::PythonEcho;
use socklab_tests::{TestServer, text};

#[tokio::test]
async fn python_echo_server_answers_a_lab_socket() {
    for host in ["127.0.0.1", "::1"] {
        let echo = PythonEcho::start(host);
        let server = TestServer::start().await;
        let mut client = server.client().await;
        let bind = if host.contains(':') {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let lab = client.bind(bind).await;
        for message in ["hello", "second", "third"] {
            client
                .send_datagram(&lab.socket, echo.addr, text(message))
                .await;
            let echoed = client.received_on(&lab.socket).await;
            assert_eq!(
                echoed.peer, echo.addr,
                "the echo comes from the Python server"
            );
            assert_eq!(
                decode_base64(&echoed.payload_b64).unwrap(),
                message.as_bytes()
            );
        }
        server.stop().await;
    }
}
