//! Which rows of the packet list show: a kind of row, a socket or link, and bytes to
//! search for; and the list of the rows that pass, for a list drawn a screenful at a
//! time however many rows it holds.

use socklab_protocol::Direction;
use socklab_protocol::link::LinkFate;

use super::packets::{Packet, PacketStore, What};

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
}

impl RowFilter {
    /// Whether nothing is filtered out.
    pub fn is_empty(&self) -> bool {
        *self == RowFilter::default()
    }

    /// Whether `p` shows.
    pub fn shows(&self, p: &Packet) -> bool {
        self.kind.shows(&p.what)
            && self
                .place
                .as_deref()
                .is_none_or(|place| place_of(&p.what) == Some(place))
            && (self.bytes.is_empty() || contains(&p.payload, &self.bytes))
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
    /// The positions of the rows `filter` shows, oldest first.
    pub fn matching(&self, filter: &RowFilter) -> Vec<u32> {
        (0..self.len() as u32)
            .filter(|&i| self.nth(i as usize).is_some_and(|p| filter.shows(p)))
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
