//! A recording as a pcapng file that reads as a capture of the loopback interface
//! would: one Ethernet/IP/UDP packet per datagram on the wire, at the kernel's times
//! (nanoseconds), each with the lab's account as its comment, and what each link
//! dropped on an interface of its own (`l1 drops`) so Wireshark can filter it.
//!
//! On the wire a datagram is one packet: a lab socket's `out` (its `in`, when another
//! lab socket receives it, is the same packet), or an `in` from a program outside the
//! lab. A datagram through a link is two: the send to the link, and the link's send on
//! when it left (a duplicate, three). Unix datagrams and TCP streams are not IP/UDP
//! packets the file could show truthfully; they are counted and left out.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use socklab_protocol::flow::{Fate, FateKind};
use socklab_protocol::link::{LinkDir, LinkFate, LinkId};
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{Direction, Event};

/// What an export made.
#[derive(Debug)]
pub struct Capture {
    /// The file.
    pub bytes: Vec<u8>,
    /// Packets in it.
    pub packets: u64,
    /// Unix datagrams and TCP writes and reads left out.
    pub left_out: u64,
}

/// One packet before it is written.
struct Packet {
    t_ns: u64,
    interface: u32,
    frame: Vec<u8>,
    comment: String,
}

/// Writes `events` (a recording, in id order) as pcapng; `epoch_ns` is the session's
/// start on the real-time clock (ns since the Unix epoch), to which events' `t_ns` add.
pub fn export(events: &[Event], epoch_ns: u64) -> Result<Capture, String> {
    let account = Account::of(events);
    let mut packets = Vec::new();
    let mut left_out = 0;
    // Each link's drops interface, numbered from 1 in order of first drop.
    let mut drop_ifaces: Vec<LinkId> = Vec::new();
    for event in events {
        match event {
            Event::Datagram(d) => {
                let (Some(local), Some(peer)) = (d.local.socket_addr(), d.peer.socket_addr())
                else {
                    left_out += 1;
                    continue;
                };
                let payload = decode_base64(&d.payload_b64).unwrap_or_default();
                let (src, dst) = match d.dir {
                    Direction::Out => (local, peer),
                    // A lab socket's (or a link's) send is already its packet.
                    Direction::In if account.sent_by_lab(peer) => continue,
                    Direction::In => (peer, local),
                };
                packets.push(Packet {
                    t_ns: d.t_ns,
                    interface: 0,
                    frame: frame(src, dst, &payload)?,
                    comment: account.comment(d.id.0, d.dir, &d.socket),
                });
            }
            Event::Stream(_) => left_out += 1,
            Event::LinkPacket(p) => {
                let Some((listen, upstream, _)) = account.links.get(&p.link).copied() else {
                    continue;
                };
                let bytes = decode_base64(&p.payload_b64).unwrap_or_default();
                let to_link = match p.dir {
                    LinkDir::C2t => listen,
                    LinkDir::T2c => upstream,
                };
                // What reached the link from a program outside the lab (a lab socket's
                // send is its own packet).
                if !account.sent_by_lab(p.from) {
                    packets.push(Packet {
                        t_ns: p.t_ns,
                        interface: 0,
                        frame: frame(p.from, to_link, &bytes)?,
                        comment: format!("to link {} (event #{})", p.link, p.id.0),
                    });
                }
                let Some(to) = p.to else { continue };
                if p.fate == LinkFate::Dropped {
                    let index = match drop_ifaces.iter().position(|l| *l == p.link) {
                        Some(i) => i,
                        None => {
                            drop_ifaces.push(p.link.clone());
                            drop_ifaces.len() - 1
                        }
                    };
                    let reason = p
                        .reason
                        .map(|r| words(&r))
                        .unwrap_or_else(|| "dropped".into());
                    packets.push(Packet {
                        t_ns: p.t_ns,
                        interface: index as u32 + 1,
                        frame: frame(p.from, to, &bytes)?,
                        comment: format!(
                            "dropped by link {}: {reason} (event #{})",
                            p.link, p.id.0
                        ),
                    });
                    continue;
                }
                // What the link sent on: the bytes as it changed them, from its own
                // socket, when each copy left.
                let mut sent = bytes.clone();
                if let Some(len) = p.truncated_to {
                    sent.truncate(len);
                }
                if let (Some(at), Some(mask)) = (p.corrupted_at, p.corrupt_mask)
                    && let Some(byte) = sent.get_mut(at)
                {
                    *byte ^= mask;
                }
                let from_link = match p.dir {
                    LinkDir::C2t => upstream,
                    LinkDir::T2c => listen,
                };
                for &(t_ns, copy) in account.departures(&p.link, p.dir, p.seq) {
                    let delay = t_ns.saturating_sub(p.t_ns) as f64 / 1e6;
                    packets.push(Packet {
                        t_ns,
                        interface: 0,
                        frame: frame(from_link, to, &sent)?,
                        comment: format!(
                            "sent on by link {} after {delay:.3} ms{}",
                            p.link,
                            if copy { " (a duplicate copy)" } else { "" }
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    packets.sort_by_key(|p| p.t_ns);

    let mut writer = PcapNgWriter::new(Vec::new()).map_err(|e| e.to_string())?;
    let mut interface = |name: String, description: &str| {
        writer.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(name)),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(description.to_owned())),
                // Nanoseconds, as the kernel's timestamps.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })
    };
    interface("lo".into(), "socklab: the datagrams on loopback").map_err(|e| e.to_string())?;
    for link in &drop_ifaces {
        interface(format!("{link} drops"), "socklab: what the link dropped")
            .map_err(|e| e.to_string())?;
    }
    let count = packets.len() as u64;
    for p in packets {
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: p.interface,
                timestamp: Duration::from_nanos(epoch_ns.saturating_add(p.t_ns)),
                original_len: p.frame.len() as u32,
                data: Cow::Owned(p.frame),
                options: vec![EnhancedPacketOption::Comment(Cow::Owned(p.comment))],
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(Capture {
        bytes: writer.into_inner(),
        packets: count,
        left_out,
    })
}

/// What the export needs to know before it writes: which addresses are lab sockets',
/// the links, when each forwarded datagram left, and each datagram's fate.
#[derive(Default)]
struct Account {
    lab: HashSet<SocketAddr>,
    links: HashMap<LinkId, (SocketAddr, SocketAddr, SocketAddr)>,
    departures: HashMap<(LinkId, LinkDir, u64), Vec<(u64, bool)>>,
    /// Each send's fate (by its `out` event), and each reply's (by its `in`).
    fates: HashMap<u64, String>,
}

impl Account {
    fn of(events: &[Event]) -> Account {
        let mut account = Account::default();
        for event in events {
            match event {
                Event::Bound(b) => {
                    if let Some(a) = b.local.socket_addr() {
                        account.lab.insert(a);
                    }
                }
                Event::LinkCreated(l) => {
                    account.lab.insert(l.listen);
                    account.lab.insert(l.upstream);
                    account
                        .links
                        .insert(l.link.clone(), (l.listen, l.upstream, l.target));
                }
                Event::LinkSent(s) => {
                    for d in &s.sent {
                        account
                            .departures
                            .entry((s.link.clone(), s.dir, d.seq))
                            .or_default()
                            .push((d.t_ns, d.copy));
                    }
                }
                Event::Fate(f) => {
                    account.fates.insert(f.send.0, fate_words(f));
                    if f.fate == FateKind::Reply
                        && let Some(recv) = f.recv
                    {
                        account
                            .fates
                            .insert(recv.0, format!("the reply to event #{}", f.send.0));
                    }
                }
                _ => {}
            }
        }
        account
    }

    /// Whether `addr` is a lab socket's or a link's: its sends are packets already.
    fn sent_by_lab(&self, addr: SocketAddr) -> bool {
        self.lab.contains(&addr)
    }

    fn departures(&self, link: &LinkId, dir: LinkDir, seq: u64) -> &[(u64, bool)] {
        self.departures
            .get(&(link.clone(), dir, seq))
            .map_or(&[], Vec::as_slice)
    }

    fn comment(&self, id: u64, dir: Direction, socket: &socklab_protocol::SocketId) -> String {
        let what = match dir {
            Direction::Out => format!("sent by {socket}"),
            Direction::In => format!("received by {socket}"),
        };
        match self.fates.get(&id) {
            Some(fate) => format!("{what}: {fate} (event #{id})"),
            None => format!("{what} (event #{id})"),
        }
    }
}

/// A fate in words: `delivered, 20.3 ms, reordered by 2`, `lost: link (random loss)`.
fn fate_words(f: &Fate) -> String {
    let ms = |ns: u64| format!("{:.3} ms", ns as f64 / 1e6);
    let mut text = words(&f.fate);
    match f.fate {
        FateKind::Delivered | FateKind::Duplicate => {
            if let Some(ns) = f.latency_ns {
                text.push_str(&format!(", {}", ms(ns)));
            }
            if let Some(n) = f.reordered_by {
                text.push_str(&format!(", reordered by {n}"));
            }
            if f.late {
                text.push_str(", late (it had been counted lost)");
            }
        }
        FateKind::Reply => {
            text = format!(
                "answered (round trip {})",
                f.latency_ns.map_or("?".into(), ms)
            );
        }
        FateKind::Lost | FateKind::Unanswered => {
            if let Some(cause) = f.cause {
                text.push_str(&format!(": {}", words(&cause)));
            }
            if let Some(reason) = f.reason {
                text.push_str(&format!(" ({})", words(&reason)));
            }
        }
        FateKind::Untracked => {}
    }
    text
}

/// An enum's wire name in words (`random_loss` → `random loss`).
fn words(value: &impl serde::Serialize) -> String {
    crate::tables::wire_name(value).replace('_', " ")
}

/// An Ethernet frame (addresses zero, as a loopback capture's) carrying IP/UDP from
/// `src` to `dst`.
fn frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Result<Vec<u8>, String> {
    let eth = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6]);
    let builder = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => eth
            .ipv4(s.ip().octets(), d.ip().octets(), 64)
            .udp(s.port(), d.port()),
        (SocketAddr::V6(s), SocketAddr::V6(d)) => eth
            .ipv6(s.ip().octets(), d.ip().octets(), 64)
            .udp(s.port(), d.port()),
        _ => return Err(format!("{src} and {dst} are of different families")),
    };
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut out, payload)
        .map_err(|e| format!("cannot build the packet {src} → {dst}: {e}"))?;
    Ok(out)
}
