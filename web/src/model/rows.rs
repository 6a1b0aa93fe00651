//! Which rows of the packet list show: a kind of row, a socket or link, what became of
//! a datagram, its flow, and bytes to search for; and the list of the rows that pass,
//! for a list drawn a screenful at a time however many rows it holds.

use socklab_protocol::Direction;
use socklab_protocol::link::LinkFate;

use super::packets::{Packet, PacketStore, What};
use crate::timeline::{Arrow, Mark, Timeline};

/// What became of a datagram, as the list filters by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FateKind {
    /// Whatever it was (every row).
    #[default]
    Any,
    /// Received in order (an echo request: answered; a reply).
    Delivered,
    /// Lost, or a request left unanswered.
    Lost,
    /// Received after a later one of its flow, or after it had been counted lost.
    Reordered,
    /// An extra copy.
    Duplicated,
    /// Neither received nor lost yet (or no longer followed).
    InFlight,
}

impl FateKind {
    /// Every kind, with its words, for the page's choice.
    pub const ALL: [(FateKind, &'static str); 6] = [
        (FateKind::Any, "any fate"),
        (FateKind::Delivered, "delivered in order"),
        (FateKind::Lost, "lost or unanswered"),
        (FateKind::Reordered, "reordered or late"),
        (FateKind::Duplicated, "extra copies"),
        (FateKind::InFlight, "in flight"),
    ];

    /// What an arrow's mark says became of its datagram; None for what is not a
    /// datagram a lab socket sent or received (TCP bytes, a datagram from outside).
    pub fn of(mark: &Mark) -> Option<FateKind> {
        Some(match mark {
            Mark::Delivered | Mark::Request(_) | Mark::Reply => FateKind::Delivered,
            Mark::Lost(_) | Mark::Unanswered(_) => FateKind::Lost,
            Mark::Reordered(_) | Mark::Late => FateKind::Reordered,
            Mark::Duplicate => FateKind::Duplicated,
            Mark::Pending | Mark::Untracked => FateKind::InFlight,
            Mark::Incoming | Mark::Bytes | Mark::Tcp(_) => return None,
        })
    }
}

/// What became of a datagram, in a few words for its row ("delivered, 0.031 ms",
/// "lost: random loss", "reordered by 2, 20.3 ms"); None where there is nothing to say.
pub fn fate_words(arrow: &Arrow) -> Option<String> {
    let ms = |a: &Arrow| format!("{:.3} ms", a.t1.saturating_sub(a.t0) as f64 / 1e6);
    Some(match arrow.mark {
        Mark::Pending => "in flight".to_string(),
        Mark::Untracked => "not followed to the end".to_string(),
        Mark::Delivered => format!("delivered, {}", ms(arrow)),
        Mark::Reordered(n) => format!("reordered by {n}, {}", ms(arrow)),
        Mark::Late => format!("late (after its timeout), {}", ms(arrow)),
        Mark::Duplicate => format!("extra copy, {}", ms(arrow)),
        Mark::Lost(why) => format!("lost: {}", why.short()),
        // The arrow ends halfway through the round trip (at the program).
        Mark::Request(_) => format!(
            "answered, round trip {:.3} ms",
            arrow.t1.saturating_sub(arrow.t0) as f64 * 2.0 / 1e6
        ),
        Mark::Reply => "a reply".to_string(),
        Mark::Unanswered(why) => format!("unanswered: {}", why.short()),
        Mark::Incoming | Mark::Bytes | Mark::Tcp(_) => return None,
    })
}

/// A kind of row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowKind {
    /// Every row.
    #[default]
    All,
    /// Datagrams sent (and TCP writes).
    Out,
    /// Datagrams received (and TCP reads).
    In,
    /// A link's decisions.
    Link,
    /// What a link dropped.
    Dropped,
    /// The kernel's drops and ICMP errors.
    Kernel,
}

impl RowKind {
    /// Every kind, with its words, for the page's choice.
    pub const ALL: [(RowKind, &'static str); 6] = [
        (RowKind::All, "every row"),
        (RowKind::Out, "sent"),
        (RowKind::In, "received"),
        (RowKind::Link, "link decisions"),
        (RowKind::Dropped, "dropped by a link"),
        (RowKind::Kernel, "kernel drops and ICMP errors"),
    ];

    fn shows(self, what: &What) -> bool {
        match self {
            RowKind::All => true,
            RowKind::Out => matches!(
                what,
                What::Socket {
                    dir: Direction::Out,
                    ..
                } | What::Stream {
                    dir: Direction::Out,
                    ..
                }
            ),
            RowKind::In => matches!(
                what,
                What::Socket {
                    dir: Direction::In,
                    ..
                } | What::Stream {
                    dir: Direction::In,
                    ..
                }
            ),
            RowKind::Link => matches!(what, What::Link(_) | What::TcpLink { .. }),
            RowKind::Dropped => matches!(what, What::Link(d) if d.fate == LinkFate::Dropped),
            RowKind::Kernel => matches!(what, What::KernelDrops { .. } | What::Unreachable { .. }),
        }
    }
}

/// Which rows show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowFilter {
    /// The kind of row.
    pub kind: RowKind,
    /// Only this socket's or link's rows (its id: `s1`, `l1`).
    pub place: Option<String>,
    /// Only rows whose bytes hold these.
    pub bytes: Vec<u8>,
    /// Only datagrams that became this (sent and received datagrams' rows).
    pub fate: FateKind,
    /// Only datagrams of this flow (an index into [`Timeline::flows`]).
    pub flow: Option<u16>,
}

impl RowFilter {
    /// Whether nothing is filtered out.
    pub fn is_empty(&self) -> bool {
        *self == RowFilter::default()
    }

    /// Whether it asks what became of datagrams (their arrows on `timeline`).
    pub fn needs_arrows(&self) -> bool {
        self.fate != FateKind::Any || self.flow.is_some()
    }

    /// Whether `p` shows; what became of a datagram is read from its arrow on
    /// `timeline`.
    pub fn shows(&self, p: &Packet, timeline: &Timeline) -> bool {
        self.kind.shows(&p.what)
            && self
                .place
                .as_deref()
                .is_none_or(|place| place_of(&p.what) == Some(place))
            && (!self.needs_arrows() || self.shows_arrow(p, timeline))
            && (self.bytes.is_empty() || contains(&p.payload, &self.bytes))
    }

    /// Whether a datagram's row passes the fate and flow filters.
    fn shows_arrow(&self, p: &Packet, timeline: &Timeline) -> bool {
        if !matches!(p.what, What::Socket { .. }) {
            return false;
        }
        let Some(arrow) = timeline.arrow_of(p.id) else {
            return false;
        };
        (self.fate == FateKind::Any || FateKind::of(&arrow.mark) == Some(self.fate))
            && self.flow.is_none_or(|flow| arrow.flow == flow)
    }
}

/// The socket or link a row belongs to.
fn place_of(what: &What) -> Option<&str> {
    Some(match what {
        What::Socket { socket, .. }
        | What::Stream { socket, .. }
        | What::Tcp { socket, .. }
        | What::Unreachable { socket, .. }
        | What::KernelDrops { socket, .. } => socket.as_str(),
        What::Link(d) => d.link.as_str(),
        What::TcpLink { link, .. } => link.as_str(),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes a search names: `hex 53 4c 51` or `0x534c51` as hex, anything else as
/// its text (UTF-8). Empty: no search.
pub fn search_bytes(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim();
    let hex = trimmed
        .strip_prefix("hex ")
        .or_else(|| trimmed.strip_prefix("hex:"))
        .or_else(|| trimmed.strip_prefix("0x"));
    let Some(hex) = hex else {
        return Ok(text.as_bytes().to_vec());
    };
    let digits: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("“{bad}” is not a hex digit (0-9, a-f)"));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "“{hex}” has an odd number of hex digits: give whole bytes, such as 0a or 53 4c"
        ));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| format!("“{}” is not a hex byte", &digits[i..i + 2]))
        })
        .collect()
}

impl PacketStore {
    /// The positions of the rows `filter` shows, oldest first (what became of each
    /// datagram read from `timeline`).
    pub fn matching(&self, filter: &RowFilter, timeline: &Timeline) -> Vec<u32> {
        (0..self.len() as u32)
            .filter(|&i| {
                self.nth(i as usize)
                    .is_some_and(|p| filter.shows(p, timeline))
            })
            .collect()
    }

    /// The row at position `i` (from the oldest the list holds), with its row number.
    pub fn numbered(&self, i: usize) -> Option<(u64, &Packet)> {
        self.nth(i).map(|p| (self.evicted + i as u64 + 1, p))
    }

    /// The position of the packet with event id `id`.
    pub fn position_of(&self, id: u64) -> Option<usize> {
        self.row_of(id).map(|row| (row - self.evicted - 1) as usize)
    }
}
