//! The packet list: a bounded store of rows, each a datagram a lab socket sent or
//! received, a link's decision, or a kernel drop report.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use socklab_protocol::Endpoint;

use socklab_protocol::link::{DropReason, LinkDir, LinkFate, LinkId};
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{Direction, LinkPacket, SocketId};

use super::PACKETS_KEPT;

/// A row's bytes, decoded from the event's base64 the first time they are read: most
/// rows of a fast session leave the list before anyone looks at them, and decoding
/// every one cost the page more than drawing it.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    base64: String,
    bytes: std::cell::OnceCell<Vec<u8>>,
}

impl Payload {
    /// The bytes an event carries as base64 (undecodable text reads as no bytes).
    pub fn base64(text: String) -> Payload {
        Payload {
            base64: text,
            bytes: std::cell::OnceCell::new(),
        }
    }

    /// The bytes themselves.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes
            .get_or_init(|| decode_base64(&self.base64).unwrap_or_default())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Payload {
        Payload {
            base64: String::new(),
            bytes: std::cell::OnceCell::from(bytes),
        }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload {}

/// One row of the packet list: a datagram a lab socket sent or received, or a link's
/// decision on a datagram crossing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The event's id.
    pub id: u64,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// The bytes (as they arrived, for a link decision).
    pub payload: Payload,
    /// What happened.
    pub what: What,
}

/// What happened to a TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpWhat {
    /// The socket's connect completed (the three-way handshake).
    Connected,
    /// A listener accepted it.
    Accepted(SocketId),
    /// Its stream ended: how, the bytes read in all, the OS's words.
    Ended(socklab_protocol::StreamEndReason, u64, Option<String>),
    /// It shut down a half of the connection.
    ShutDown(socklab_protocol::ShutdownHow),
}

impl TcpWhat {
    /// In a few words, for the packet list.
    pub fn note(&self) -> String {
        use socklab_protocol::{ShutdownHow, StreamEndReason};
        match self {
            TcpWhat::Connected => "connected (handshake done)".into(),
            TcpWhat::Accepted(listener) => format!("accepted by {listener}"),
            TcpWhat::Ended(StreamEndReason::Eof, read, _) => {
                format!("end of stream: a read returned 0 (FIN); {read} bytes read in all")
            }
            TcpWhat::Ended(StreamEndReason::Reset, read, _) => {
                format!("reset by the peer (RST); {read} bytes read")
            }
            TcpWhat::Ended(StreamEndReason::Refused, _, _) => {
                "connection refused: nothing listens there (RST to the SYN)".into()
            }
            TcpWhat::Ended(StreamEndReason::Error, _, error) => format!(
                "connection ended: {}",
                error.as_deref().unwrap_or("an error")
            ),
            TcpWhat::ShutDown(ShutdownHow::Write) => "shut down writing: FIN sent".into(),
            TcpWhat::ShutDown(ShutdownHow::Read) => "shut down reading".into(),
            TcpWhat::ShutDown(ShutdownHow::Both) => "shut down both halves: FIN sent".into(),
        }
    }
}

/// What a packet row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A lab socket sent or received it.
    Socket {
        /// The socket.
        socket: SocketId,
        /// Sent or received.
        dir: Direction,
        /// The socket's address.
        local: Endpoint,
        /// The other end.
        peer: Endpoint,
        /// A receive the socket's read size cut: how long the datagram was.
        truncated_from: Option<usize>,
    },
    /// A link decided its fate.
    Link(LinkDecision),
    /// Bytes a TCP socket wrote or read.
    Stream {
        /// The socket.
        socket: SocketId,
        /// Written (`out`) or read (`in`).
        dir: Direction,
        /// The socket's address.
        local: SocketAddr,
        /// The other end.
        peer: SocketAddr,
        /// Where in that direction's stream the bytes start.
        offset: u64,
    },
    /// A TCP link decided something about a connection it carries.
    TcpLink {
        /// The link.
        link: socklab_protocol::LinkId,
        /// What, in words.
        what: String,
    },
    /// Something happened to a TCP connection (not bytes).
    Tcp {
        /// The socket.
        socket: SocketId,
        /// The other end, when known.
        peer: Option<Endpoint>,
        /// What.
        what: TcpWhat,
    },
    /// An ICMP error came back about a datagram a lab socket sent (the payload is the
    /// part of the datagram it quotes).
    Unreachable {
        /// The socket that sent it.
        socket: SocketId,
        /// Its address.
        local: Endpoint,
        /// Where the datagram went.
        to: SocketAddr,
        /// What the error said.
        reason: socklab_protocol::UnreachableReason,
        /// The ICMP type and code.
        icmp: (u8, u8),
        /// The OS's words for it.
        error: String,
    },
    /// Not a datagram: the kernel dropped datagrams addressed to a lab socket (its
    /// receive buffer was full), counted when the socket next received one.
    KernelDrops {
        /// The socket.
        socket: SocketId,
        /// Its address, when the socket is known.
        local: Option<Endpoint>,
        /// How many since the previous report.
        dropped: u64,
        /// How many since the socket was bound.
        total: u64,
    },
}

/// A link's decision, as shown in the list and the inspector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDecision {
    /// The link.
    pub link: LinkId,
    /// Which way.
    pub dir: LinkDir,
    /// Its number in that direction.
    pub seq: u64,
    /// Sender.
    pub from: SocketAddr,
    /// Destination, if known.
    pub to: Option<SocketAddr>,
    /// Forwarded or dropped.
    pub fate: LinkFate,
    /// Why it was dropped.
    pub reason: Option<DropReason>,
    /// Planned time in the link, ns.
    pub delay_ns: Option<u64>,
    /// Of that, queued at the bottleneck, ns.
    pub queue_ns: Option<u64>,
    /// Sent twice.
    pub duplicated: bool,
    /// Corrupted byte offset.
    pub corrupted_at: Option<usize>,
    /// Truncated length.
    pub truncated_to: Option<usize>,
    /// Held back for this many overtakers.
    pub held_for: Option<u32>,
    /// What the OS said when the link could not send it on.
    pub error: Option<String>,
    /// When it really left: nanoseconds after it arrived, and how much later than
    /// planned (from the link's `link_sent`).
    pub left: Option<Left>,
}

/// When a datagram really left a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// Nanoseconds after it arrived.
    pub after_ns: u64,
    /// Nanoseconds later than planned.
    pub late_ns: u64,
}

impl LinkDecision {
    pub(super) fn from_event(p: LinkPacket) -> (Self, Payload) {
        let payload = Payload::base64(p.payload_b64);
        (
            LinkDecision {
                link: p.link,
                dir: p.dir,
                seq: p.seq,
                from: p.from,
                to: p.to,
                fate: p.fate,
                reason: p.reason,
                delay_ns: p.delay_ns,
                queue_ns: p.queue_ns,
                duplicated: p.duplicated,
                corrupted_at: p.corrupted_at,
                truncated_to: p.truncated_to,
                held_for: p.held_for,
                error: p.error,
                left: None,
            },
            payload,
        )
    }

    /// The decision in a few words, the plan and (once known) the outcome: "dropped:
    /// random loss", "planned +20.1 ms, duplicated; left after 20.12 ms".
    pub fn summary(&self) -> String {
        if self.fate == LinkFate::Dropped {
            let reason = self.reason.map(DropReason::describe).unwrap_or("dropped");
            return match &self.error {
                Some(error) => format!("dropped: {reason}: {error}"),
                None => format!("dropped: {reason}"),
            };
        }
        let mut parts = vec![format!(
            "planned +{:.1} ms",
            self.delay_ns.unwrap_or(0) as f64 / 1e6
        )];
        if let Some(q) = self.queue_ns {
            parts.push(format!("{:.1} ms queued", q as f64 / 1e6));
        }
        if let Some(n) = self.held_for {
            parts.push(format!("held back for {n}"));
        }
        if self.duplicated {
            parts.push("duplicated".into());
        }
        if let Some(at) = self.corrupted_at {
            parts.push(format!("byte {at} corrupted"));
        }
        if let Some(len) = self.truncated_to {
            parts.push(format!("truncated to {len}"));
        }
        let plan = parts.join(", ");
        match self.left {
            None => format!("{plan}; not left yet"),
            Some(left) if left.late_ns >= LATE_WORTH_SAYING_NS => format!(
                "{plan}; left after {:.3} ms ({:.3} ms late)",
                left.after_ns as f64 / 1e6,
                left.late_ns as f64 / 1e6
            ),
            Some(left) => format!("{plan}; left after {:.3} ms", left.after_ns as f64 / 1e6),
        }
    }
}

/// Lateness below this is not worth a word (the timer's own resolution).
const LATE_WORTH_SAYING_NS: u64 = 100_000;

impl Packet {
    /// A datagram's row.
    pub fn of_datagram(d: socklab_protocol::Datagram) -> Packet {
        Packet {
            id: d.id.0,
            t_ns: d.t_ns,
            payload: Payload::base64(d.payload_b64),
            what: What::Socket {
                socket: d.socket,
                dir: d.dir,
                local: d.local,
                peer: d.peer,
                truncated_from: d.truncated_from,
            },
        }
    }

    /// A link decision's row.
    pub fn of_link_packet(p: socklab_protocol::LinkPacket) -> Packet {
        let (id, t_ns) = (p.id.0, p.t_ns);
        let (decision, payload) = LinkDecision::from_event(p);
        Packet {
            id,
            t_ns,
            payload,
            what: What::Link(decision),
        }
    }
}

/// The bounded packet list.
#[derive(Debug, Default)]
pub struct PacketStore {
    packets: VecDeque<Packet>,
    /// Datagrams a link forwarded that have not left yet: (link, direction, seq) to
    /// their decision's event id. At most [`PACKETS_KEPT`] (a link deleted while it
    /// held some leaves them here until then).
    in_link: HashMap<(LinkId, LinkDir, u64), u64>,
    /// Packets that left the list to keep it bounded.
    pub evicted: u64,
}

impl PacketStore {
    /// A link sent on the datagram it numbered `seq` in `dir` at `t_ns`: its decision
    /// row learns when it really left (the first copy to leave, for a duplicate).
    pub(super) fn departed(
        &mut self,
        link: &LinkId,
        dir: LinkDir,
        d: &socklab_protocol::Departure,
    ) {
        let Some(id) = self.in_link.remove(&(link.clone(), dir, d.seq)) else {
            return;
        };
        let Ok(index) = self.packets.binary_search_by_key(&id, |p| p.id) else {
            return;
        };
        let packet = &mut self.packets[index];
        if let What::Link(decision) = &mut packet.what {
            decision.left = Some(Left {
                after_ns: d.t_ns.saturating_sub(packet.t_ns),
                late_ns: d.late_ns,
            });
        }
    }

    pub(super) fn push(&mut self, packet: Packet) {
        if let What::Link(d) = &packet.what
            && d.fate == LinkFate::Forwarded
        {
            if self.in_link.len() >= PACKETS_KEPT {
                self.in_link.clear();
            }
            self.in_link
                .insert((d.link.clone(), d.dir, d.seq), packet.id);
        }
        if self.packets.len() == PACKETS_KEPT {
            self.packets.pop_front();
            self.evicted += 1;
        }
        self.packets.push_back(packet);
    }

    /// How many packets the list holds.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The newest `n` packets, oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Packet> {
        self.packets.range(self.packets.len().saturating_sub(n)..)
    }

    /// The newest `n` packets, oldest first, each with its row number: rows are
    /// numbered 1, 2, 3… in the order the list got them (event ids skip, because other
    /// events share their numbers; a person would read that as missing packets).
    pub fn newest_numbered(&self, n: usize) -> impl Iterator<Item = (u64, &Packet)> {
        let skip = self.packets.len().saturating_sub(n);
        let first = self.evicted + skip as u64 + 1;
        (first..).zip(self.packets.range(skip..))
    }

    /// The packet at position `i`, from the oldest the list holds.
    pub fn nth(&self, i: usize) -> Option<&Packet> {
        self.packets.get(i)
    }

    /// The row number of the packet with event id `id`.
    pub fn row_of(&self, id: u64) -> Option<u64> {
        let index = self.packets.binary_search_by_key(&id, |p| p.id).ok()?;
        Some(self.evicted + index as u64 + 1)
    }

    /// Where the bytes of a TCP read came from: each write of the other end of its
    /// connection (still in the list) whose bytes it holds, as (the write's event id,
    /// the stream offsets from and to). Empty for anything else, or when the writer is
    /// not a lab socket.
    pub fn writes_into(&self, read: &Packet) -> Vec<(u64, u64, u64)> {
        let What::Stream {
            dir: Direction::In,
            local,
            peer,
            offset,
            ..
        } = read.what
        else {
            return Vec::new();
        };
        let end = offset.saturating_add(read.payload.len() as u64);
        self.packets
            .iter()
            .filter_map(|p| match p.what {
                What::Stream {
                    dir: Direction::Out,
                    local: l,
                    peer: r,
                    offset: o,
                    ..
                } if l == peer && r == local => {
                    let (from, to) = (
                        o.max(offset),
                        o.saturating_add(p.payload.len() as u64).min(end),
                    );
                    (from < to).then_some((p.id, from, to))
                }
                _ => None,
            })
            .collect()
    }

    /// The packet with event id `id`.
    pub fn get(&self, id: u64) -> Option<&Packet> {
        // Ids increase but are not consecutive (binds and closes take ids too).
        let index = self.packets.binary_search_by_key(&id, |p| p.id).ok()?;
        self.packets.get(index)
    }

    pub(super) fn clear(&mut self) {
        self.packets.clear();
        self.in_link.clear();
        self.evicted = 0;
    }
}
