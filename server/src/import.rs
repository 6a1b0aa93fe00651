//! A pcap or pcapng capture read into a recording: every UDP datagram in it becomes a
//! `datagram` event sent by its source (`dir: out`, the socket named after its source
//! address: a capture sees a datagram once, on the wire, not who read it). Anything
//! else (TCP, ICMP, ARP, fragments, link types socklab cannot read) is counted and
//! skipped, and the count says why.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcapng::Block;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use socklab_protocol::{Datagram, Direction, Endpoint, Event, EventId, SocketId};

/// One UDP datagram read from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// When, ns since the Unix epoch.
    pub at_ns: u64,
    /// Its source.
    pub src: SocketAddr,
    /// Its destination.
    pub dst: SocketAddr,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// What a capture held.
#[derive(Debug, Default)]
pub struct Imported {
    /// The UDP datagrams, in the file's order.
    pub datagrams: Vec<Captured>,
    /// Packets skipped, by why.
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Imported {
    /// The skipped packets in words: `3 TCP, 1 ARP`.
    pub fn note(&self) -> String {
        let total: u64 = self.skipped.values().sum();
        if total == 0 {
            return String::new();
        }
        let parts: Vec<String> = self
            .skipped
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        format!(
            "{total} packets that are not UDP datagrams were skipped: {}",
            parts.join(", ")
        )
    }

    /// The datagrams as a recording's events, times counted from the first, with the
    /// first's time (ns since the Unix epoch) as the recording's epoch.
    pub fn events(&self) -> (Vec<Event>, u64) {
        let epoch = self.datagrams.iter().map(|d| d.at_ns).min().unwrap_or(0);
        let events = self
            .datagrams
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Event::Datagram(Datagram {
                    id: EventId(i as u64 + 1),
                    socket: SocketId::new(d.src.to_string()),
                    dir: Direction::Out,
                    local: Endpoint::Ip(d.src),
                    peer: Endpoint::Ip(d.dst),
                    len: d.payload.len(),
                    payload_b64: socklab_protocol::payload::encode_base64(&d.payload),
                    t_ns: d.at_ns.saturating_sub(epoch),
                    req: None,
                    truncated_from: None,
                })
            })
            .collect();
        (events, epoch)
    }
}

/// Reads a pcap or pcapng file (told apart by their first bytes).
pub fn read(bytes: &[u8]) -> Result<Imported, String> {
    let mut imported = Imported::default();
    match bytes.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => read_pcapng(bytes, &mut imported)?,
        Some(
            [0xa1, 0xb2, 0xc3, 0xd4]
            | [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x4d, 0x3c, 0xb2, 0xa1],
        ) => read_pcap(bytes, &mut imported)?,
        _ => {
            return Err("this is neither a pcap nor a pcapng file (its first bytes say so)".into());
        }
    }
    Ok(imported)
}

fn read_pcap(bytes: &[u8], into: &mut Imported) -> Result<(), String> {
    let mut reader =
        pcap_file::pcap::PcapReader::new(bytes).map_err(|e| format!("not a pcap file: {e}"))?;
    let link = reader.header().datalink;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(|e| format!("the capture is cut short or damaged: {e}"))?;
        take(into, link, packet.timestamp.as_nanos() as u64, &packet.data);
    }
    Ok(())
}

fn read_pcapng(bytes: &[u8], into: &mut Imported) -> Result<(), String> {
    let mut reader = pcap_file::pcapng::PcapNgReader::new(bytes)
        .map_err(|e| format!("not a pcapng file: {e}"))?;
    while let Some(block) = reader.next_block() {
        let block = block.map_err(|e| format!("the capture is cut short or damaged: {e}"))?;
        let (interface, raw_ts, data) = match &block {
            Block::EnhancedPacket(p) => (
                p.interface_id,
                p.timestamp.as_nanos() as u64,
                p.data.to_vec(),
            ),
            Block::SimplePacket(p) => (0, 0, p.data.to_vec()),
            _ => continue,
        };
        let Some(iface) = reader.interfaces().get(interface as usize) else {
            *into
                .skipped
                .entry("on an undeclared interface")
                .or_default() += 1;
            continue;
        };
        // The library hands the timestamp over in the interface's units.
        let at_ns = to_ns(raw_ts, resolution(&iface.options));
        take(into, iface.linktype, at_ns, &data);
    }
    Ok(())
}

/// An interface's timestamp resolution (`if_tsresol`): a power of ten (high bit
/// clear) or of two of a second; microseconds when absent.
fn resolution(options: &[InterfaceDescriptionOption<'_>]) -> u8 {
    options
        .iter()
        .find_map(|o| match o {
            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        })
        .unwrap_or(6)
}

/// `units` of resolution `resol` in nanoseconds.
fn to_ns(units: u64, resol: u8) -> u64 {
    let exp = u32::from(resol & 0x7f);
    if resol & 0x80 == 0 {
        match exp.cmp(&9) {
            std::cmp::Ordering::Equal => units,
            std::cmp::Ordering::Less => units.saturating_mul(10u64.pow(9 - exp)),
            std::cmp::Ordering::Greater => units / 10u64.saturating_pow(exp - 9),
        }
    } else {
        // A power of two: units / 2^exp seconds.
        ((u128::from(units) * 1_000_000_000) >> exp.min(127)) as u64
    }
}

/// Reads one packet of link type `link` and keeps it if it is a whole UDP datagram.
fn take(into: &mut Imported, link: DataLink, at_ns: u64, data: &[u8]) {
    let sliced = match link {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        // BSD loopback: a 4-byte address family, then IP.
        DataLink::NULL | DataLink::LOOP if data.len() > 4 => SlicedPacket::from_ip(&data[4..]),
        _ => {
            *into
                .skipped
                .entry("of a link type socklab does not read")
                .or_default() += 1;
            return;
        }
    };
    let Ok(packet) = sliced else {
        *into.skipped.entry("damaged").or_default() += 1;
        return;
    };
    let (src_ip, dst_ip, fragmented) = match &packet.net {
        Some(NetSlice::Ipv4(ip)) => (
            std::net::IpAddr::V4(ip.header().source_addr()),
            std::net::IpAddr::V4(ip.header().destination_addr()),
            ip.is_payload_fragmented(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            std::net::IpAddr::V6(ip.header().source_addr()),
            std::net::IpAddr::V6(ip.header().destination_addr()),
            ip.is_payload_fragmented(),
        ),
        Some(NetSlice::Arp(_)) => {
            *into.skipped.entry("ARP").or_default() += 1;
            return;
        }
        None => {
            *into.skipped.entry("not IP").or_default() += 1;
            return;
        }
    };
    if fragmented {
        *into.skipped.entry("IP fragments").or_default() += 1;
        return;
    }
    match &packet.transport {
        Some(TransportSlice::Udp(udp)) => into.datagrams.push(Captured {
            at_ns,
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            payload: udp.payload().to_vec(),
        }),
        Some(TransportSlice::Tcp(_)) => *into.skipped.entry("TCP").or_default() += 1,
        Some(TransportSlice::Icmpv4(_) | TransportSlice::Icmpv6(_)) => {
            *into.skipped.entry("ICMP").or_default() += 1;
        }
        _ => *into.skipped.entry("other IP").or_default() += 1,
    }
}

/// What a recording file starts with: its first line is a JSON object whose first key
/// says what it is.
pub const RECORDING_MAGIC: &str = r#"{"socklab_recording":"#;
/// The recording file format's version.
pub const RECORDING_VERSION: u32 = 1;

/// A recording file's first line.
pub fn recording_header(info: &crate::store::RecordingInfo, epoch_ns: Option<u64>) -> String {
    // Key order matters: the file starts with the magic.
    let mut header = format!("{RECORDING_MAGIC}{RECORDING_VERSION}");
    for (key, value) in [
        ("name", serde_json::json!(info.name)),
        ("session", serde_json::json!(info.session)),
        ("created_ms", serde_json::json!(info.created_ms)),
        ("epoch_ns", serde_json::json!(epoch_ns)),
        ("note", serde_json::json!(info.note)),
        ("events", serde_json::json!(info.events)),
    ] {
        header.push_str(&format!(",{}:{value}", serde_json::json!(key)));
    }
    header.push('}');
    header
}

/// A recording file read back.
#[derive(Debug)]
pub struct RecordingFile {
    /// Its name.
    pub name: String,
    /// The session it recorded.
    pub session: String,
    /// When that session began (ns since the Unix epoch), if known.
    pub epoch_ns: Option<u64>,
    /// Its note.
    pub note: Option<String>,
    /// Its events, ready to store.
    pub events: Vec<crate::store::StoredEvent>,
}

/// Reads a recording file: its first line, then an event a line, each checked to be
/// an event this server understands.
pub fn read_recording(bytes: &[u8]) -> Result<RecordingFile, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "a recording file is UTF-8 text".to_string())?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: serde_json::Value = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or("its first line is not the recording's description")?;
    let version = header["socklab_recording"].as_u64().unwrap_or(0);
    if version != u64::from(RECORDING_VERSION) {
        return Err(format!(
            "it is a recording file of version {version}; this socklab reads version {RECORDING_VERSION}"
        ));
    }
    let mut events = Vec::new();
    for (n, line) in lines.enumerate() {
        let event = Event::from_json(line)
            .map_err(|e| format!("line {} is not an event socklab knows: {e}", n + 2))?;
        let id = match &event {
            Event::Gap(gap) => Some(gap.from.0),
            other => other.id().map(|i| i.0),
        }
        .ok_or_else(|| format!("line {}: an event without an id", n + 2))?;
        events.push(crate::store::StoredEvent::whole(
            id,
            event.t_ns().unwrap_or(0),
            crate::recorder::kind_of(line).to_owned(),
            line.to_owned(),
        ));
    }
    Ok(RecordingFile {
        name: header["name"]
            .as_str()
            .unwrap_or("imported recording")
            .to_owned(),
        session: header["session"].as_str().unwrap_or("import").to_owned(),
        epoch_ns: header["epoch_ns"].as_u64(),
        note: header["note"].as_str().map(str::to_owned),
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_read_in_their_interfaces_units() {
        assert_eq!(to_ns(1_500_000, 6), 1_500_000_000);
        assert_eq!(to_ns(7, 9), 7);
        assert_eq!(to_ns(1, 0), 1_000_000_000);
        assert_eq!(to_ns(1 << 20, 0x80 | 20), 1_000_000_000);
        assert_eq!(resolution(&[]), 6);
    }

    #[test]
    fn an_exported_recording_imports_with_its_datagrams() {
        let src: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let dst: SocketAddr = "[::1]:5000".parse().unwrap();
        let dst4: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let event = |id: u64, local: SocketAddr, peer: SocketAddr, bytes: &[u8]| {
            Event::Datagram(Datagram {
                id: EventId(id),
                socket: SocketId::new("s1"),
                dir: Direction::Out,
                local: Endpoint::Ip(local),
                peer: Endpoint::Ip(peer),
                len: bytes.len(),
                payload_b64: socklab_protocol::payload::encode_base64(bytes),
                t_ns: id * 1_000,
                req: None,
                truncated_from: None,
            })
        };
        let six: SocketAddr = "[::1]:4000".parse().unwrap();
        let capture = crate::pcapng::export(
            &[event(1, src, dst4, b"one"), event(2, six, dst, b"two")],
            1_700_000_000_000_000_000,
        )
        .unwrap();
        let imported = read(&capture.bytes).unwrap();
        assert_eq!(imported.datagrams.len(), 2);
        assert_eq!(
            (
                imported.datagrams[0].src,
                imported.datagrams[0].dst,
                imported.datagrams[0].payload.as_slice()
            ),
            (src, dst4, &b"one"[..])
        );
        assert_eq!(
            imported.datagrams[1].at_ns, 1_700_000_000_000_002_000,
            "nanoseconds kept"
        );
        let (events, epoch) = imported.events();
        assert_eq!(epoch, 1_700_000_000_000_001_000);
        assert!(matches!(&events[1], Event::Datagram(d) if d.t_ns == 1_000 && d.local == six));
        assert!(imported.note().is_empty());
        assert!(read(b"not a capture").is_err());
    }
}
