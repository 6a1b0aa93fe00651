//! The sequence header: 24 bytes the traffic generator can put in front of a payload so
//! a receiver can tell loss, order and timing from the datagrams alone.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "SLQ1"
//! 4       4     flow id, big-endian u32 (one sender's stream)
//! 8       8     sequence number, big-endian u64, from 0
//! 16      8     send time, big-endian u64, nanoseconds on the sender's clock
//! ```

/// The header's first four bytes.
pub const MAGIC: [u8; 4] = *b"SLQ1";
/// The header's length.
pub const LEN: usize = 24;

/// A decoded sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqHeader {
    /// The sender's stream.
    pub flow: u32,
    /// The datagram's number in the stream, from 0.
    pub seq: u64,
    /// When it was sent, nanoseconds on the sender's clock.
    pub sent_ns: u64,
}

impl SeqHeader {
    /// Writes the header into the first [`LEN`] bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.flow.to_be_bytes());
        out[8..16].copy_from_slice(&self.seq.to_be_bytes());
        out[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads a header from the start of a payload, if it has one.
    pub fn read(payload: &[u8]) -> Option<SeqHeader> {
        if payload.len() < LEN || payload[..4] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(payload[i..i + 8].try_into().expect("8 bytes"));
        Some(SeqHeader {
            flow: u32::from_be_bytes(payload[4..8].try_into().expect("4 bytes")),
            seq: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_payloads() {
        let h = SeqHeader {
            flow: 7,
            seq: 0x0102_0304_0506_0708,
            sent_ns: 99,
        };
        let mut buf = [0u8; 30];
        h.write(&mut buf);
        assert_eq!(&buf[..8], b"SLQ1\0\0\0\x07");
        assert_eq!(SeqHeader::read(&buf), Some(h));
        assert_eq!(SeqHeader::read(&buf[..23]), None);
        assert_eq!(SeqHeader::read(b"hello, this is not a header!"), None);
    }
}
