//! Two runs of the same traffic side by side: each recording's sends paired in order
//! (the i-th datagram a lab socket sent in one with the i-th in the other, when their
//! bytes are the same), and the datagrams whose fate differs between the two; with each
//! run's flow figures as its last `flow_stats` gave them.

use std::collections::HashMap;

use serde::Serialize;
use socklab_protocol::flow::{Fate, FateKind, FlowSummary};
use socklab_protocol::payload::decode_base64;
use socklab_protocol::{Direction, Event};

/// The most changed datagrams a comparison lists (all are counted).
pub const MAX_LISTED: usize = 1000;

/// One run's side of a comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    /// Datagrams its lab sockets sent.
    pub sent: u64,
    /// How many of them ended each way (`delivered`, `lost`, `reply`, …).
    pub fates: HashMap<String, u64>,
    /// Its flows' figures, as its last `flow_stats` gave them.
    pub flows: Vec<FlowSummary>,
}

/// A datagram whose fate differs between the two runs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Changed {
    /// Its place among the sends (0 for the first).
    pub index: usize,
    /// Its bytes, as text where they are text (at most 64 characters).
    pub payload: String,
    /// Its `out` event in each run.
    pub send: (u64, u64),
    /// Its fate in each run, in words (`none yet` when the run has none).
    pub fate: (String, String),
}

/// Two runs compared.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// The first run.
    pub a: Side,
    /// The second run.
    pub b: Side,
    /// Sends paired (same place, same bytes).
    pub paired: u64,
    /// Sends left unpaired: the runs' traffic differs from there on.
    pub unpaired: u64,
    /// How many paired datagrams changed fate.
    pub changed_count: u64,
    /// The first [`MAX_LISTED`] of them.
    pub changed: Vec<Changed>,
}

/// A run's sends in order: each `out` event's id and bytes.
type Sends = Vec<(u64, Vec<u8>)>;

/// A run's sends in order, its fates by send, and its side.
fn read(events: &[Event]) -> (Sends, HashMap<u64, Fate>, Side) {
    let mut sends = Vec::new();
    let mut fates = HashMap::new();
    let mut flows = Vec::new();
    for event in events {
        match event {
            Event::Datagram(d) if d.dir == Direction::Out => {
                sends.push((d.id.0, decode_base64(&d.payload_b64).unwrap_or_default()));
            }
            Event::Fate(f) if f.fate != FateKind::Duplicate => {
                fates.insert(f.send.0, f.clone());
            }
            Event::FlowStats(s) => flows.clone_from(&s.flows),
            _ => {}
        }
    }
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (id, _) in &sends {
        let kind = fates
            .get(id)
            .map_or_else(|| "none yet".to_string(), kind_word);
        *counts.entry(kind).or_default() += 1;
    }
    let side = Side {
        sent: sends.len() as u64,
        fates: counts,
        flows,
    };
    (sends, fates, side)
}

fn kind_word(f: &Fate) -> String {
    crate::tables::wire_name(&f.fate)
}

/// A fate in a few words: `delivered 0.041 ms`, `lost (link: random_loss)`.
fn words(f: Option<&Fate>) -> String {
    let Some(f) = f else {
        return "none yet".into();
    };
    let mut text = kind_word(f);
    if let Some(ns) = f.latency_ns {
        text.push_str(&format!(" {:.3} ms", ns as f64 / 1e6));
    }
    match (f.cause, f.reason) {
        (Some(c), Some(r)) => text.push_str(&format!(
            " ({}: {})",
            crate::tables::wire_name(&c),
            crate::tables::wire_name(&r)
        )),
        (Some(c), None) => text.push_str(&format!(" ({})", crate::tables::wire_name(&c))),
        _ => {}
    }
    text
}

/// Whether two fates differ in what a person would call the datagram's fate: its kind,
/// or why it was lost.
fn differ(a: Option<&Fate>, b: Option<&Fate>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.fate != b.fate || a.cause != b.cause || a.reason != b.reason,
        (None, None) => false,
        _ => true,
    }
}

/// Compares run `a` with run `b`.
pub fn compare(a: &[Event], b: &[Event]) -> Comparison {
    let (sends_a, fates_a, side_a) = read(a);
    let (sends_b, fates_b, side_b) = read(b);
    let paired = sends_a
        .iter()
        .zip(&sends_b)
        .take_while(|((_, x), (_, y))| x == y)
        .count();
    let mut changed = Vec::new();
    let mut changed_count = 0;
    for (index, ((id_a, bytes), (id_b, _))) in sends_a.iter().zip(&sends_b).take(paired).enumerate()
    {
        let (fa, fb) = (fates_a.get(id_a), fates_b.get(id_b));
        if differ(fa, fb) {
            changed_count += 1;
            if changed.len() < MAX_LISTED {
                changed.push(Changed {
                    index,
                    payload: preview(bytes),
                    send: (*id_a, *id_b),
                    fate: (words(fa), words(fb)),
                });
            }
        }
    }
    Comparison {
        paired: paired as u64,
        unpaired: (sends_a.len() + sends_b.len() - 2 * paired) as u64,
        a: side_a,
        b: side_b,
        changed_count,
        changed,
    }
}

/// Bytes as text where they are printable, `\xNN` elsewhere, at most 64 characters.
fn preview(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if out.chars().count() >= 64 {
            out.push('…');
            break;
        }
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use socklab_protocol::flow::LossCause;
    use socklab_protocol::link::DropReason;
    use socklab_protocol::{Datagram, Endpoint, EventId, SocketId};

    use super::*;

    fn send(id: u64, bytes: &str) -> Event {
        Event::Datagram(Datagram {
            id: EventId(id),
            socket: SocketId::new("s1"),
            dir: Direction::Out,
            local: "127.0.0.1:1".parse().unwrap(),
            peer: "127.0.0.1:2".parse().unwrap(),
            len: bytes.len(),
            payload_b64: socklab_protocol::payload::encode_base64(bytes.as_bytes()),
            t_ns: id,
            req: None,
            truncated_from: None,
        })
    }

    fn fate(send: u64, lost: bool) -> Event {
        let end: Endpoint = "127.0.0.1:2".parse().unwrap();
        Event::Fate(Fate {
            id: EventId(send + 100),
            fate: if lost {
                FateKind::Lost
            } else {
                FateKind::Delivered
            },
            send: EventId(send),
            recv: None,
            src: "127.0.0.1:1".parse().unwrap(),
            dst: end,
            latency_ns: (!lost).then_some(1_000),
            reordered_by: None,
            late: false,
            by_order: false,
            by_field: false,
            cause: lost.then_some(LossCause::Link),
            reason: lost.then_some(DropReason::RandomLoss),
            decision: None,
            t_ns: send + 100,
        })
    }

    #[test]
    fn the_datagrams_whose_fate_changed_are_listed() {
        let a = [
            send(1, "x1"),
            send(2, "x2"),
            send(3, "x3"),
            fate(1, false),
            fate(2, true),
            fate(3, false),
        ];
        let b = [
            send(5, "x1"),
            send(6, "x2"),
            send(7, "x3"),
            send(8, "extra"),
            fate(5, false),
            fate(6, false),
            fate(7, false),
        ];
        let c = compare(&a, &b);
        assert_eq!((c.paired, c.unpaired, c.changed_count), (3, 1, 1));
        assert_eq!(c.changed[0].index, 1);
        assert_eq!(c.changed[0].send, (2, 6));
        assert_eq!(c.changed[0].fate.0, "lost (link: random_loss)");
        assert_eq!(c.changed[0].fate.1, "delivered 0.001 ms");
        assert_eq!(c.a.fates.get("lost"), Some(&1));
        assert_eq!(
            c.b.fates.get("none yet"),
            Some(&1),
            "the extra send has no fate"
        );
        assert_eq!(preview(b"a\x00"), "a\\x00");
    }
}
