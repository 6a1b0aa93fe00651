//! The edge where the server's own records become wire events: one exhaustive
//! conversion from a log entry to the protocol [`Event`] a viewer receives, and the
//! direct writer that frames use for datagrams (the same text, a test checks).
//!
//! Nothing before this point is `Serialize`: the log holds server records, and a new
//! kind of record does not compile until it has its case here.

use socklab_protocol::fast;
use socklab_protocol::payload::encode_base64;
use socklab_protocol::{
    Accepted, AnalysisConfig, Bound, Closed, Connected, Datagram, ErrorEvent, Event, EventId,
    GeneratorDone, GeneratorStarted, KernelDrops, LinkClient, LinkCreated, LinkDeleted, LinkPacket,
    LinkSent, LinkStats, LinkUpdated, Membership, Paused, RecordingStarted, RecordingStopped,
    RunMarked, ShutDown, SocketId, Stream, StreamEnd, TcpLinkChunk, TcpLinkConn, TcpLinkCreated,
    TcpLinkEnd, Unreachable,
};

use crate::error::CommandError;
use crate::log::{Entry, Record, Tagged};

/// Appends a logged event's JSON for `viewer`: datagrams (most of any session) through
/// the protocol's direct writer, everything else through its event.
pub fn write_event(out: &mut String, entry: &Entry, viewer: u64) {
    match &entry.record {
        Record::Datagram(d) => {
            with_datagram_ref(entry.id, entry.t_ns, d, viewer, |r| r.write_json(out))
        }
        _ => out.push_str(&to_event(entry, viewer).to_json()),
    }
}

/// Hands `write` a datagram record's parts as the direct writer takes them, with the
/// `req` `viewer` may see.
fn with_datagram_ref(
    id: EventId,
    t_ns: u64,
    d: &crate::log::DatagramRecord,
    viewer: u64,
    write: impl FnOnce(fast::DatagramRef<'_>),
) {
    write(fast::DatagramRef {
        id,
        socket: &d.socket.id,
        dir: d.dir,
        local: &d.socket.local,
        peer: &d.peer.endpoint(),
        payload: &d.payload,
        t_ns,
        req: Tagged::for_viewer(d.req, viewer),
        truncated_from: d.truncated_from.map(|n| n as usize),
    })
}

/// Turns a log entry into the protocol event a viewer receives. (Frames carry datagrams
/// through [`write_event`]'s direct writer; the datagram case here is what that writer
/// must equal, which a test checks.)
pub fn to_event(entry: &Entry, viewer: u64) -> Event {
    event_of(entry, viewer, true)
}

/// Writes the JSON a recording stores for `entry`: the event as a viewer without
/// commands gets it, but with `payload_b64` empty when the event carries bytes, and
/// those bytes returned to be stored beside it (as they are, not as base64).
pub fn write_stored<'a>(out: &mut String, entry: &'a Entry) -> Option<&'a [u8]> {
    let payload: &[u8] = match &entry.record {
        Record::Datagram(d) => {
            with_datagram_ref(entry.id, entry.t_ns, d, 0, |r| {
                r.write_json_without_payload(out)
            });
            return Some(&d.payload);
        }
        Record::LinkPacket(_, payload) => payload,
        Record::Unreachable(u) => &u.payload,
        Record::Stream(s) => &s.payload,
        _ => {
            out.push_str(&to_event(entry, 0).to_json());
            return None;
        }
    };
    out.push_str(&event_of(entry, 0, false).to_json());
    Some(payload)
}

fn event_of(entry: &Entry, viewer: u64, with_payload: bool) -> Event {
    let b64 = |bytes: &[u8]| {
        if with_payload {
            encode_base64(bytes)
        } else {
            String::new()
        }
    };
    let id = entry.id;
    let t_ns = entry.t_ns;
    match &entry.record {
        Record::Bound(b) => Event::Bound(Bound {
            id,
            socket: b.socket.clone(),
            proto: b.proto,
            local: b.local.clone(),
            recv_buffer_bytes: b.recv_buffer_bytes,
            recv_size: b.recv_size,
            listening: b.listening,
            multicast: b.multicast,
            t_ns,
            req: Tagged::for_viewer(b.req, viewer),
        }),
        Record::Connected { socket, peer, req } => Event::Connected(Connected {
            id,
            socket: SocketId::new(&*socket.id),
            local: socket.local.clone(),
            peer: (**peer).clone(),
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::Unreachable(u) => Event::Unreachable(Unreachable {
            id,
            socket: SocketId::new(&*u.socket.id),
            local: u.socket.local.clone(),
            to: u.to,
            reason: u.reason,
            icmp_type: u.icmp.0,
            icmp_code: u.icmp.1,
            reporter: u.reporter,
            error: nix::errno::Errno::from_raw(u.errno).desc().to_string(),
            len: u.payload.len(),
            payload_b64: b64(&u.payload),
            t_ns,
        }),
        Record::Accepted(a) => Event::Accepted(Accepted {
            id,
            socket: SocketId::new(&*a.socket.id),
            listener: a.listener.clone(),
            local: a.socket.local,
            peer: a.peer,
            t_ns,
        }),
        Record::Stream(s) => Event::Stream(Stream {
            id,
            socket: SocketId::new(&*s.socket.id),
            dir: s.dir,
            local: s.socket.local,
            peer: s.peer,
            offset: s.offset,
            len: s.payload.len(),
            payload_b64: b64(&s.payload),
            t_ns,
            req: Tagged::for_viewer(s.req, viewer),
        }),
        Record::StreamEnd(e) => Event::StreamEnd(StreamEnd {
            id,
            socket: e.socket.clone(),
            reason: e.reason,
            error: e.error.clone(),
            read: e.read,
            t_ns,
            req: Tagged::for_viewer(e.req, viewer),
        }),
        Record::TcpLinkCreated(c) => Event::TcpLinkCreated(TcpLinkCreated {
            id,
            link: c.link.clone(),
            listen: c.listen,
            target: c.target,
            settings: c.settings,
            t_ns,
            req: Tagged::for_viewer(c.req, viewer),
        }),
        Record::TcpLinkConn(c) => Event::TcpLinkConn(TcpLinkConn {
            id,
            link: c.link.clone(),
            conn: c.conn,
            client: c.client,
            upstream: c.upstream,
            error: c.error.clone(),
            t_ns,
        }),
        Record::TcpLinkChunk(c) => Event::TcpLinkChunk(TcpLinkChunk {
            id,
            link: c.link.clone(),
            conn: c.conn,
            dir: c.dir,
            offset: c.offset,
            len: c.len,
            delay_ns: c.delay_ns,
            pieces: c.pieces,
            t_ns,
        }),
        Record::TcpLinkEnd(e) => Event::TcpLinkEnd(TcpLinkEnd {
            id,
            link: e.link.clone(),
            conn: e.conn,
            dir: e.dir,
            how: e.how,
            reason: e.reason.clone(),
            t_ns,
        }),
        Record::Membership(m) => Event::Membership(Membership {
            id,
            socket: m.socket.clone(),
            group: m.group,
            interface: m.interface.clone(),
            joined: m.joined,
            t_ns,
            req: Tagged::for_viewer(m.req, viewer),
        }),
        Record::Paused {
            socket,
            paused,
            req,
        } => Event::Paused(Paused {
            id,
            socket: socket.clone(),
            paused: *paused,
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::ShutDown { socket, how, req } => Event::ShutDown(ShutDown {
            id,
            socket: socket.clone(),
            how: *how,
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::KernelDrops {
            socket,
            dropped,
            total,
        } => Event::KernelDrops(KernelDrops {
            id,
            socket: SocketId::new(&*socket.id),
            dropped: *dropped,
            total: *total,
            t_ns,
        }),
        Record::Closed { socket, req } => Event::Closed(Closed {
            id,
            socket: socket.clone(),
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::Datagram(d) => Event::Datagram(Datagram {
            id,
            socket: SocketId::new(&*d.socket.id),
            dir: d.dir,
            local: d.socket.local.clone(),
            peer: d.peer.endpoint(),
            len: d.payload.len(),
            payload_b64: b64(&d.payload),
            t_ns,
            req: Tagged::for_viewer(d.req, viewer),
            truncated_from: d.truncated_from.map(|n| n as usize),
        }),
        Record::LinkCreated(c) => Event::LinkCreated(LinkCreated {
            id,
            link: c.link.clone(),
            listen: c.listen,
            upstream: c.upstream,
            target: c.target,
            settings: c.settings,
            t_ns,
            req: Tagged::for_viewer(c.req, viewer),
        }),
        Record::LinkUpdated {
            link,
            settings,
            req,
        } => Event::LinkUpdated(LinkUpdated {
            id,
            link: link.clone(),
            settings: **settings,
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::LinkClient(change) => Event::LinkClient(LinkClient {
            id,
            link: change.link.clone(),
            client: change.client,
            previous: change.previous,
            t_ns,
        }),
        Record::LinkDeleted { link, req } => Event::LinkDeleted(LinkDeleted {
            id,
            link: link.clone(),
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::LinkPacket(p, payload) => Event::LinkPacket(LinkPacket {
            id,
            link: p.link.clone(),
            dir: p.dir,
            seq: p.seq,
            from: p.from,
            to: p.to,
            len: payload.len(),
            payload_b64: b64(payload),
            fate: p.fate,
            reason: p.reason,
            delay_ns: p.delay_ns,
            queue_ns: p.queue_ns,
            duplicated: p.duplicated,
            corrupted_at: p.corrupted_at,
            corrupt_mask: p.corrupt_mask,
            truncated_to: p.truncated_to,
            held_for: p.held_for,
            error: p.error.as_deref().map(str::to_owned),
            t_ns,
        }),
        Record::LinkSent(sent) => Event::LinkSent(LinkSent {
            id,
            link: sent.link.clone(),
            dir: sent.dir,
            sent: sent.sent.clone(),
            t_ns,
        }),
        Record::GeneratorStarted(g) => Event::GeneratorStarted(GeneratorStarted {
            id,
            generator: g.generator.clone(),
            socket: g.socket.clone(),
            to: g.to.clone(),
            count: g.count,
            rate: g.rate,
            seq_flow: g.seq_flow,
            t_ns,
            req: Tagged::for_viewer(g.req, viewer),
        }),
        Record::GeneratorDone(g) => Event::GeneratorDone(GeneratorDone {
            id,
            generator: g.generator.clone(),
            sent: g.sent,
            stopped: g.stopped,
            error: g.error.clone(),
            t_ns,
            req: Tagged::for_viewer(g.req, viewer),
        }),
        Record::AnalysisConfig {
            loss_timeout_ms,
            match_field,
            req,
        } => Event::AnalysisConfig(AnalysisConfig {
            id,
            loss_timeout_ms: *loss_timeout_ms,
            match_field: *match_field,
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::RunMarked { run, name, req } => Event::RunMarked(RunMarked {
            id,
            run: *run,
            name: name.to_string(),
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::RecordingStarted(r) => Event::RecordingStarted(RecordingStarted {
            id,
            recording: r.recording,
            name: r.name.clone(),
            from: r.from,
            t_ns,
            req: Tagged::for_viewer(r.req, viewer),
        }),
        Record::RecordingStopped {
            recording,
            counts: (events, datagrams),
            reason,
            req,
        } => Event::RecordingStopped(RecordingStopped {
            id,
            recording: *recording,
            events: *events,
            datagrams: *datagrams,
            reason: reason.as_deref().map(str::to_owned),
            t_ns,
            req: Tagged::for_viewer(*req, viewer),
        }),
        Record::FlowStats(f) => Event::FlowStats(socklab_protocol::flow::FlowStats {
            id,
            flows: f.flows.clone(),
            retired_flows: f.retired_flows,
            untracked: f.untracked,
            runs: f.runs.clone(),
            t_ns,
        }),
        Record::Fate(f) => Event::Fate(socklab_protocol::flow::Fate {
            id,
            fate: f.kind,
            send: f.send,
            recv: f.recv.map(|r| EventId(r.get())),
            src: f.flow.src.clone(),
            dst: f.flow.dst.clone(),
            latency_ns: f.latency_ns,
            reordered_by: (f.reordered_by > 0).then_some(u64::from(f.reordered_by)),
            late: f.late,
            by_order: f.by_order,
            by_field: f.by_field,
            cause: f.cause,
            reason: f.reason,
            decision: f.decision.map(|d| EventId(d.get())),
            t_ns,
        }),
        Record::LinkStats { link, counters } => Event::LinkStats(LinkStats {
            id,
            link: link.clone(),
            c2t: counters.0,
            t2c: counters.1,
            t_ns,
        }),
    }
}

/// A refusal as the `error` event the viewer that sent the command receives.
pub fn error_event(req: Option<i64>, e: CommandError) -> Event {
    Event::Error(ErrorEvent {
        req,
        code: e.code,
        message: e.message,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use socklab_protocol::Direction;

    use super::*;
    use crate::log::{DatagramRecord, Entry, SocketName};

    #[test]
    fn frames_carry_the_same_text_as_the_events() {
        let entry = |record| Entry {
            id: EventId(7),
            t_ns: 1_234_567,
            record,
        };
        let sent = entry(Record::Datagram(DatagramRecord {
            socket: Arc::new(SocketName {
                id: "s1".into(),
                local: "127.0.0.1:5000".parse().unwrap(),
            }),
            dir: Direction::Out,
            peer: "[::1]:9".parse::<std::net::SocketAddr>().unwrap().into(),
            payload: b"hello\x00\xff".to_vec().into_boxed_slice(),
            req: Some(Tagged {
                viewer: std::num::NonZeroU64::new(2).unwrap(),
                req: 41,
            }),
            truncated_from: None,
        }));
        let cut = entry(Record::Datagram(DatagramRecord {
            socket: Arc::new(SocketName {
                id: "s2".into(),
                local: "127.0.0.1:5001".parse().unwrap(),
            }),
            dir: Direction::In,
            peer: "127.0.0.1:5000"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
            payload: b"he".to_vec().into_boxed_slice(),
            req: None,
            truncated_from: Some(7),
        }));
        let closed = entry(Record::Closed {
            socket: SocketId::new("s1"),
            req: None,
        });
        // The viewer that sent the command sees its `req`; another does not.
        for viewer in [1, 2] {
            for e in [&sent, &cut, &closed] {
                let mut text = String::new();
                write_event(&mut text, e, viewer);
                assert_eq!(text, to_event(e, viewer).to_json());
            }
        }
        // What a recording stores: the same text but the bytes, kept apart.
        let unreachable = entry(Record::Unreachable(Box::new(
            crate::log::UnreachableRecord {
                socket: Arc::new(SocketName {
                    id: "s1".into(),
                    local: "127.0.0.1:5000".parse().unwrap(),
                }),
                to: "127.0.0.1:9".parse().unwrap(),
                reason: socklab_protocol::UnreachableReason::PortUnreachable,
                icmp: (3, 3),
                reporter: None,
                errno: 111,
                payload: b"quoted".to_vec().into_boxed_slice(),
            },
        )));
        for e in [&sent, &cut, &closed, &unreachable] {
            let mut text = String::new();
            let apart = write_stored(&mut text, e);
            let whole = to_event(e, 0).to_json();
            match apart {
                Some(bytes) => {
                    let b64 = encode_base64(bytes);
                    assert_eq!(
                        text.replacen(
                            r#""payload_b64":"""#,
                            &format!(r#""payload_b64":"{b64}""#),
                            1
                        ),
                        whole
                    );
                }
                None => assert_eq!(text, whole),
            }
        }
    }

    #[test]
    fn a_fate_record_goes_out_as_the_wire_fate() {
        use crate::log::{FateRecord, FlowEnds};
        use socklab_protocol::flow::{FateKind, LossCause};
        use socklab_protocol::link::DropReason;
        let flow = Arc::new(FlowEnds {
            src: "127.0.0.1:1000".parse().unwrap(),
            dst: "127.0.0.1:2000".parse().unwrap(),
        });
        let record = |f: FateRecord| Entry {
            id: EventId(9),
            t_ns: 77,
            record: Record::Fate(f),
        };
        let delivered = record(FateRecord {
            flow: flow.clone(),
            kind: FateKind::Delivered,
            send: EventId(3),
            recv: std::num::NonZeroU64::new(5),
            decision: std::num::NonZeroU64::new(4),
            latency_ns: Some(1_500),
            reordered_by: 2,
            late: true,
            by_order: false,
            by_field: false,
            cause: None,
            reason: None,
        });
        let lost = record(FateRecord {
            flow,
            kind: FateKind::Lost,
            send: EventId(6),
            recv: None,
            decision: None,
            latency_ns: None,
            reordered_by: 0,
            late: false,
            by_order: false,
            by_field: false,
            cause: Some(LossCause::Link),
            reason: Some(DropReason::RandomLoss),
        });
        assert_eq!(
            to_event(&delivered, 1).to_json(),
            r#"{"type":"fate","id":9,"fate":"delivered","send":3,"recv":5,"src":"127.0.0.1:1000","dst":"127.0.0.1:2000","latency_ns":1500,"reordered_by":2,"late":true,"decision":4,"t_ns":77}"#
        );
        assert_eq!(
            to_event(&lost, 1).to_json(),
            r#"{"type":"fate","id":9,"fate":"lost","send":6,"src":"127.0.0.1:1000","dst":"127.0.0.1:2000","cause":"link","reason":"random_loss","t_ns":77}"#
        );
    }
}
