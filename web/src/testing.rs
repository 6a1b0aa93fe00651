//! Events the unit tests of several modules build alike.

use std::net::SocketAddr;

use socklab_protocol::{Direction, Event, EventId, SocketId, Stream};

/// A TCP stream event between `dialer` and `listener`: `out` from the dialer, `in` at
/// the listener's accepted end, `text` at `offset` of its direction, at `id` µs.
pub fn stream(
    (dialer, listener): (SocketAddr, SocketAddr),
    id: u64,
    socket: &str,
    dir: Direction,
    offset: u64,
    text: &str,
) -> Event {
    let (local, peer) = match dir {
        Direction::Out => (dialer, listener),
        Direction::In => (listener, dialer),
    };
    Event::Stream(Stream {
        id: EventId(id),
        socket: SocketId::new(socket),
        dir,
        local,
        peer,
        offset,
        len: text.len(),
        payload_b64: socklab_protocol::payload::encode_base64(text.as_bytes()),
        t_ns: id * 1000,
        req: None,
    })
}
