//! Running a recording again: what its sockets sent, sent again from sockets bound
//! afresh, through links made again with the same settings and seeds, with the
//! recording's timing. The session re-creates the sockets and links (`Session::run_again`);
//! this module plans the sends and sends them, paced like the generator.

use std::collections::HashMap;
use std::time::Duration;

use socklab_protocol::{Direction, Endpoint, Event, SocketId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::udp::{ReplyTo, SendRequest};

/// The most datagrams one re-run sends.
pub const MAX_SENDS: usize = 200_000;

/// One datagram to send again.
#[derive(Debug, Clone)]
pub struct Resend {
    /// When, after the first, at the recording's pace.
    pub after: Duration,
    /// The socket of the recording that sent it.
    pub socket: SocketId,
    /// Where it went then.
    pub to: Endpoint,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// The sends of a recording, in order, timed from the first and divided by `speed`.
pub fn sends(events: &[Event], speed: f64) -> Vec<Resend> {
    let mut first = None;
    let mut out = Vec::new();
    for event in events {
        if let Event::Datagram(d) = event
            && d.dir == Direction::Out
        {
            let start = *first.get_or_insert(d.t_ns);
            let after = d.t_ns.saturating_sub(start) as f64 / speed;
            out.push(Resend {
                after: Duration::from_nanos(after as u64),
                socket: d.socket.clone(),
                to: d.peer.clone(),
                payload: socklab_protocol::payload::decode_base64(&d.payload_b64)
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// Sends `plan` (each through the queue of the socket that now stands for its old one,
/// to the address that now stands for its old destination) at its times; stops with
/// `cancel`.
pub fn start(
    plan: Vec<Resend>,
    queues: HashMap<SocketId, mpsc::Sender<SendRequest>>,
    peers: HashMap<Endpoint, Endpoint>,
    reply: ReplyTo,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for resend in plan {
            let Some(queue) = queues.get(&resend.socket) else {
                continue;
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                () = crate::timer::sleep_until(Some(start + resend.after)) => {}
            }
            let to = peers.get(&resend.to).cloned().unwrap_or(resend.to);
            let request = SendRequest {
                to,
                payload: resend.payload,
                req: None,
                reply: reply.clone(),
            };
            // The socket is gone (closed meanwhile): the rest of its sends go nowhere.
            if queue.send(request).await.is_err() {
                continue;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_keep_their_spacing_divided_by_the_speed() {
        let out = |id: u64, t_ns: u64| {
            Event::Datagram(socklab_protocol::Datagram {
                id: socklab_protocol::EventId(id),
                socket: SocketId::new("s1"),
                dir: Direction::Out,
                local: "127.0.0.1:1".parse().unwrap(),
                peer: "127.0.0.1:2".parse().unwrap(),
                len: 1,
                payload_b64: "eA==".into(),
                t_ns,
                req: None,
                truncated_from: None,
            })
        };
        let plan = sends(&[out(1, 5_000_000), out(2, 25_000_000)], 10.0);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].after, Duration::ZERO);
        assert_eq!(plan[1].after, Duration::from_millis(2));
        assert_eq!(plan[1].payload, b"x");
    }
}
