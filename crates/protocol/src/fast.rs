//! The JSON of the events a server sends most, written straight into a frame without
//! building the event first: `datagram` (one per datagram a socket sends or receives)
//! and the `batch` around events. Each writes exactly the text serde writes for the
//! same event (tests compare them on generated events), so a client cannot tell which
//! path made a frame; only the server's cost differs (no base64 string and no escaping
//! scan per datagram).

use std::fmt::Write as _;
use std::net::SocketAddr;

use base64::Engine as _;

use crate::endpoint::Endpoint;
use crate::event::Direction;
use crate::ids::EventId;

/// What a `batch` frame starts with; its events follow, separated by commas.
pub const BATCH_OPEN: &str = r#"{"type":"batch","events":["#;
/// What a `batch` frame ends with.
pub const BATCH_CLOSE: &str = "]}";

/// A `datagram` event's parts, borrowed from wherever the server keeps them.
#[derive(Debug, Clone, Copy)]
pub struct DatagramRef<'a> {
    /// The event's id.
    pub id: EventId,
    /// The socket's id.
    pub socket: &'a str,
    /// Sent or received.
    pub dir: Direction,
    /// The socket's address.
    pub local: &'a Endpoint,
    /// The other end.
    pub peer: &'a Endpoint,
    /// The bytes (written as base64).
    pub payload: &'a [u8],
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The `req` of the `send` that caused an `out`, for this viewer.
    pub req: Option<i64>,
    /// How long a truncated `in` was.
    pub truncated_from: Option<usize>,
}

impl DatagramRef<'_> {
    /// Appends the event's JSON to `out`: the same text as
    /// `Event::Datagram(..).to_json()`.
    pub fn write_json(&self, out: &mut String) {
        self.write(out, true);
    }

    /// Appends the event's JSON with `payload_b64` empty (`"payload_b64":""`): what a
    /// recording stores, the bytes kept beside it (no base64 to make or to store).
    pub fn write_json_without_payload(&self, out: &mut String) {
        self.write(out, false);
    }

    fn write(&self, out: &mut String, with_payload: bool) {
        out.push_str(r#"{"type":"datagram","id":"#);
        push_u64(out, self.id.0);
        out.push_str(r#","socket":"#);
        push_str(out, self.socket);
        out.push_str(match self.dir {
            Direction::In => r#","dir":"in","local":"#,
            Direction::Out => r#","dir":"out","local":"#,
        });
        push_endpoint(out, self.local);
        out.push_str(r#","peer":"#);
        push_endpoint(out, self.peer);
        out.push_str(r#","len":"#);
        push_u64(out, self.payload.len() as u64);
        out.push_str(r#","payload_b64":""#);
        // Base64 never needs escaping either.
        if with_payload {
            base64::engine::general_purpose::STANDARD.encode_string(self.payload, out);
        }
        out.push_str(r#"","t_ns":"#);
        push_u64(out, self.t_ns);
        if let Some(req) = self.req {
            out.push_str(r#","req":"#);
            out.push_str(itoa::Buffer::new().format(req));
        }
        if let Some(len) = self.truncated_from {
            out.push_str(r#","truncated_from":"#);
            push_u64(out, len as u64);
        }
        out.push('}');
    }
}

fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// An endpoint as a JSON string: an IP address's text never needs escaping; a Unix
/// name (a path) may.
fn push_endpoint(out: &mut String, endpoint: &Endpoint) {
    match endpoint {
        Endpoint::Ip(addr) => {
            out.push('"');
            push_addr(out, *addr);
            out.push('"');
        }
        Endpoint::Unix(_) => push_str(out, &endpoint.to_string()),
    }
}

/// An address as its `Display` writes it: IPv4 digit by digit (the formatting
/// machinery cost more than the rest of the event), IPv6 through `Display`.
fn push_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.ip().octets();
            let mut digits = itoa::Buffer::new();
            for (i, octet) in [a0, a1, a2, a3].into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
            out.push(':');
            out.push_str(digits.format(a.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
}

/// A JSON string: written as is when nothing in it needs escaping (socket ids are the
/// server's own `s1`, `s2`…), through serde otherwise.
fn push_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::{Datagram, Event, SocketId};
    use crate::payload::encode_base64;

    fn addr() -> impl Strategy<Value = Endpoint> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| Endpoint::Ip(SocketAddr::from((ip, port)))),
            (any::<[u16; 8]>(), any::<u16>())
                .prop_map(|(ip, port)| Endpoint::Ip(SocketAddr::from((ip, port)))),
            prop_oneof!["/tmp/[a-z]{1,8}", "@[a-z]{0,8}", any::<String>()]
                .prop_map(|name| Endpoint::unix(&name)),
        ]
    }

    proptest! {
        #[test]
        fn datagram_json_is_the_same_text_serde_writes(
            id in any::<u64>(),
            socket in prop_oneof!["s[0-9]{1,4}", any::<String>()],
            out in any::<bool>(),
            local in addr(),
            peer in addr(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            t_ns in any::<u64>(),
            req in proptest::option::of(any::<i64>()),
            truncated_from in proptest::option::of(any::<u32>()),
        ) {
            let truncated_from = truncated_from.map(|n| n as usize);
            let dir = if out { Direction::Out } else { Direction::In };
            let fast = DatagramRef {
                id: EventId(id), socket: &socket, dir, local: &local, peer: &peer,
                payload: &payload, t_ns, req, truncated_from,
            };
            let mut text = String::new();
            fast.write_json(&mut text);
            let event = Event::Datagram(Datagram {
                id: EventId(id),
                socket: SocketId::new(socket.clone()),
                dir,
                local,
                peer,
                len: payload.len(),
                payload_b64: encode_base64(&payload),
                t_ns,
                req,
                truncated_from,
            });
            prop_assert_eq!(&text, &event.to_json());
            prop_assert_eq!(Event::from_json(&text).unwrap(), event);
        }
    }

    #[test]
    fn a_batch_is_its_events_between_open_and_close() {
        let events = vec![
            Event::Gap(crate::event::Gap {
                from: EventId(1),
                to: EventId(2),
                count: 2,
            }),
            Event::Gap(crate::event::Gap {
                from: EventId(4),
                to: EventId(4),
                count: 1,
            }),
        ];
        let parts: Vec<String> = events.iter().map(Event::to_json).collect();
        assert_eq!(
            format!("{BATCH_OPEN}{}{BATCH_CLOSE}", parts.join(",")),
            Event::Batch { events }.to_json()
        );
    }
}
