//! Running a recording again: what its sockets sent, sent again from sockets bound
//! afresh, through links made again with the same settings and seeds, with the
//! recording's timing. The session re-creates the sockets and links (`Session::run_again`);
//! this module plans the steps and takes them, paced like the generator.
//!
//! UDP and Unix sockets send their datagrams again. TCP sockets that connected connect
//! again (to the listener or TCP link that now stands for the old one) and write the
//! same bytes at the same times; a connection a lab listener accepted is the one
//! accepted in the same place now (`s3.2` is the second the listener that stands for
//! `s3` accepts), and writes what the old one wrote. A `shutdown` is made again; a
//! connected TCP socket's `close` becomes a shutdown of both halves (the socket stays
//! the session's, so the person can look at it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use socklab_protocol::command::ShutdownHow;
use socklab_protocol::{Direction, Endpoint, Event, Proto, SocketId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::tcp::{Op, TcpHandle};
use crate::udp::{ReplyTo, SendRequest};

/// The most steps (datagrams, writes, connects) one re-run takes.
pub const MAX_SENDS: usize = 200_000;
/// How long a step on a connection a listener accepts waits for the connection.
const ACCEPT_WAIT: Duration = Duration::from_secs(2);

/// One thing to do again.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a datagram to `to` (the old address).
    Datagram {
        /// Where it went then.
        to: Endpoint,
        /// Its bytes.
        payload: Vec<u8>,
    },
    /// Connect a TCP socket to `to` (the old address).
    Connect {
        /// Where it connected then.
        to: std::net::SocketAddr,
    },
    /// Write bytes into a TCP connection.
    Write {
        /// The bytes one write call took then.
        payload: Vec<u8>,
    },
    /// End a half (or both) of a TCP connection.
    Shutdown {
        /// Which.
        how: ShutdownHow,
    },
}

/// One step of a re-run.
#[derive(Debug, Clone, PartialEq)]
pub struct Resend {
    /// When, after the first, at the recording's pace.
    pub after: Duration,
    /// The socket of the recording that took it.
    pub socket: SocketId,
    /// What it did.
    pub action: Action,
}

/// The steps of a recording, in order, timed from the first and divided by `speed`.
pub fn sends(events: &[Event], speed: f64) -> Vec<Resend> {
    let mut first = None;
    let mut out = Vec::new();
    // TCP sockets that connected or were accepted: their close ends the connection.
    let mut connected: std::collections::HashSet<SocketId> = std::collections::HashSet::new();
    let mut tcp: std::collections::HashSet<SocketId> = std::collections::HashSet::new();
    for event in events {
        let step = match event {
            Event::Bound(b) if b.proto == Proto::Tcp => {
                tcp.insert(b.socket.clone());
                None
            }
            Event::Datagram(d) if d.dir == Direction::Out => Some((
                d.t_ns,
                &d.socket,
                Action::Datagram {
                    to: d.peer.clone(),
                    payload: socklab_protocol::payload::decode_base64(&d.payload_b64)
                        .unwrap_or_default(),
                },
            )),
            Event::Connected(c) if tcp.contains(&c.socket) => {
                connected.insert(c.socket.clone());
                c.peer
                    .socket_addr()
                    .map(|to| (c.t_ns, &c.socket, Action::Connect { to }))
            }
            Event::Accepted(a) => {
                connected.insert(a.socket.clone());
                None
            }
            Event::Stream(s) if s.dir == Direction::Out => Some((
                s.t_ns,
                &s.socket,
                Action::Write {
                    payload: socklab_protocol::payload::decode_base64(&s.payload_b64)
                        .unwrap_or_default(),
                },
            )),
            Event::ShutDown(s) => Some((s.t_ns, &s.socket, Action::Shutdown { how: s.how })),
            Event::Closed(c) if connected.remove(&c.socket) => Some((
                c.t_ns,
                &c.socket,
                Action::Shutdown {
                    how: ShutdownHow::Both,
                },
            )),
            _ => None,
        };
        if let Some((t_ns, socket, action)) = step {
            let start = *first.get_or_insert(t_ns);
            let after = t_ns.saturating_sub(start) as f64 / speed;
            out.push(Resend {
                after: Duration::from_nanos(after as u64),
                socket: socket.clone(),
                action,
            });
        }
    }
    out
}

/// The new connection that stands for an old accepted one: `s3.2` with `s3` now `s9`
/// is `s9.2`. None: not the id of an accepted connection, or of an unknown listener.
fn accepted_now(old: &SocketId, listeners: &HashMap<SocketId, SocketId>) -> Option<SocketId> {
    let (listener, n) = old.as_str().split_once('.')?;
    let now = listeners.get(&SocketId::new(listener))?;
    Some(SocketId::new(format!("{now}.{n}")))
}

/// The connections the re-created listeners accept that the re-run has steps for:
/// which it wants (by their new ids), and the queues of those accepted so far. Bounded
/// by the plan: a program connecting over and over is passed on, not noted.
#[derive(Debug, Default)]
pub struct Connections {
    /// The new ids of the connections the plan takes steps on.
    pub wanted: std::collections::HashSet<SocketId>,
    /// Their queues, as they are accepted.
    got: HashMap<SocketId, mpsc::Sender<Op>>,
}

/// The connections of a re-run, shared with what forwards them.
pub type Accepted = Arc<Mutex<Connections>>;

/// The new ids of the accepted connections `plan` takes steps on.
pub fn wanted(
    plan: &[Resend],
    listeners: &HashMap<SocketId, SocketId>,
) -> std::collections::HashSet<SocketId> {
    plan.iter()
        .filter_map(|step| accepted_now(&step.socket, listeners))
        .collect()
}

/// Passes what the re-created listeners accept on to the session (`to`), noting the
/// queue of each connection the re-run wants while it runs. Runs until the listeners
/// are gone.
pub fn forward_accepted(
    mut from: mpsc::Receiver<TcpHandle>,
    to: mpsc::Sender<TcpHandle>,
    accepted: Weak<Mutex<Connections>>,
) {
    tokio::spawn(async move {
        while let Some(handle) = from.recv().await {
            if let (Some(accepted), Some(ops)) = (accepted.upgrade(), handle.ops()) {
                let mut accepted = accepted.lock().unwrap_or_else(|e| e.into_inner());
                if accepted.wanted.contains(&handle.id) {
                    accepted.got.insert(handle.id.clone(), ops);
                }
            }
            if to.send(handle).await.is_err() {
                return;
            }
        }
    });
}

/// What the old sockets and addresses now are.
#[derive(Debug, Default)]
pub struct Targets {
    /// UDP and Unix sockets' send queues, by the old socket's id.
    pub datagrams: HashMap<SocketId, mpsc::Sender<SendRequest>>,
    /// TCP sockets' queues, by the old socket's id.
    pub streams: HashMap<SocketId, mpsc::Sender<Op>>,
    /// TCP listeners' new ids, by the old ones.
    pub listeners: HashMap<SocketId, SocketId>,
    /// Old addresses (sockets, links) and what stands for them now.
    pub peers: HashMap<Endpoint, Endpoint>,
}

impl Targets {
    /// Where a link made again listens (its old address, a port the OS picks) and
    /// where it sends (what now stands for its old target, or the target itself).
    pub fn link_ends(
        &self,
        listen: std::net::SocketAddr,
        target: std::net::SocketAddr,
    ) -> (String, String) {
        let target = self
            .peers
            .get(&Endpoint::Ip(target))
            .and_then(Endpoint::socket_addr)
            .unwrap_or(target);
        let listen = std::net::SocketAddr::new(listen.ip(), 0);
        (listen.to_string(), target.to_string())
    }
}

/// Takes `plan`'s steps (each on the socket that now stands for its old one, towards
/// the address that now stands for its old one) at their times; stops with `cancel`.
pub fn start(
    plan: Vec<Resend>,
    targets: Targets,
    accepted: Accepted,
    reply: ReplyTo,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for step in plan {
            tokio::select! {
                _ = cancel.cancelled() => return,
                () = crate::timer::sleep_until(Some(start + step.after)) => {}
            }
            match step.action {
                Action::Datagram { to, payload } => {
                    let Some(queue) = targets.datagrams.get(&step.socket) else {
                        continue;
                    };
                    let to = targets.peers.get(&to).cloned().unwrap_or(to);
                    let request = SendRequest {
                        to,
                        payload,
                        req: None,
                        reply: reply.clone(),
                    };
                    // The socket is gone (closed meanwhile): its sends go nowhere.
                    let _ = queue.send(request).await;
                }
                action => {
                    let queue = match targets.streams.get(&step.socket) {
                        Some(queue) => Some(queue.clone()),
                        None => match accepted_now(&step.socket, &targets.listeners) {
                            Some(id) => tokio::select! {
                                _ = cancel.cancelled() => return,
                                queue = wait_accepted(&accepted, &id) => queue,
                            },
                            None => None,
                        },
                    };
                    let Some(queue) = queue else { continue };
                    let reply = reply.clone();
                    let op = match action {
                        Action::Connect { to } => {
                            let old = Endpoint::Ip(to);
                            let to = targets
                                .peers
                                .get(&old)
                                .and_then(Endpoint::socket_addr)
                                .unwrap_or(to);
                            Op::Connect {
                                to,
                                req: None,
                                reply,
                            }
                        }
                        Action::Write { payload } => Op::Write {
                            payload,
                            req: None,
                            reply,
                        },
                        Action::Shutdown { how } => Op::Shutdown {
                            how,
                            req: None,
                            reply,
                        },
                        Action::Datagram { .. } => continue,
                    };
                    let _ = queue.send(op).await;
                }
            }
        }
    });
}

/// The queue of the connection `id` once a re-created listener has accepted it; None
/// when it has not within [`ACCEPT_WAIT`].
async fn wait_accepted(accepted: &Accepted, id: &SocketId) -> Option<mpsc::Sender<Op>> {
    let deadline = tokio::time::Instant::now() + ACCEPT_WAIT;
    loop {
        if let Some(queue) = accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .got
            .get(id)
        {
            return Some(queue.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
        assert_eq!(
            plan[1].action,
            Action::Datagram {
                to: "127.0.0.1:2".parse().unwrap(),
                payload: b"x".to_vec()
            }
        );
    }

    #[test]
    fn an_accepted_connection_is_the_one_accepted_in_the_same_place_now() {
        let listeners = HashMap::from([(SocketId::new("s3"), SocketId::new("s9"))]);
        assert_eq!(
            accepted_now(&SocketId::new("s3.2"), &listeners),
            Some(SocketId::new("s9.2"))
        );
        assert_eq!(accepted_now(&SocketId::new("s4.1"), &listeners), None);
        assert_eq!(accepted_now(&SocketId::new("s3"), &listeners), None);
        // Only the connections the plan takes steps on are wanted (noted as accepted).
        let step = |socket: &str| Resend {
            after: Duration::ZERO,
            socket: SocketId::new(socket),
            action: Action::Write {
                payload: b"x".to_vec(),
            },
        };
        let plan = [step("s3.1"), step("s3.1"), step("s3.2"), step("s1")];
        let mut wanted: Vec<String> = wanted(&plan, &listeners)
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        wanted.sort();
        assert_eq!(wanted, ["s9.1", "s9.2"]);
    }
}
