//! Datagram payloads as a person types them: text, hex or base64.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The bytes of a datagram to send, in the notation the sender chose. On the wire it is an
/// object with exactly one key: `{"text": "..."}`, `{"hex": "..."}` or `{"base64": "..."}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// UTF-8 text, sent as its bytes.
    Text(String),
    /// Hex digits, two per byte. Whitespace, `:` and `-` between bytes are ignored, and so
    /// is a leading `0x`, so `de ad be ef`, `de:ad:be:ef` and `0xdeadbeef` are all accepted.
    Hex(String),
    /// Standard base64 (RFC 4648 with padding; whitespace ignored).
    Base64(String),
}

/// Why a payload could not be decoded. The messages are meant for the person who typed it.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Hex needs two digits per byte.
    #[error("hex payload has an odd number of digits ({digits}); every byte needs two")]
    OddHexDigits {
        /// How many hex digits were given.
        digits: usize,
    },
    /// A character that is neither a hex digit nor an allowed separator.
    #[error("hex payload has {found:?} at position {position}, which is not a hex digit")]
    BadHexDigit {
        /// The offending character.
        found: char,
        /// Its position in the typed text, counting characters from 0.
        position: usize,
    },
    /// The base64 decoder refused the text.
    #[error("base64 payload is not valid: {reason}")]
    BadBase64 {
        /// The decoder's explanation.
        reason: String,
    },
}

impl Payload {
    /// Decodes the payload into the bytes that go on the wire.
    pub fn decode(&self) -> Result<Vec<u8>, PayloadError> {
        match self {
            Payload::Text(text) => Ok(text.as_bytes().to_vec()),
            Payload::Hex(hex) => decode_hex(hex),
            Payload::Base64(b64) => {
                let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| PayloadError::BadBase64 {
                        reason: base64_reason(&e),
                    })
            }
        }
    }
}

/// Decodes hex digits, tolerating the separators people paste from other tools.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, PayloadError> {
    let trimmed = text.trim_start();
    let skipped = text.len() - trimmed.len();
    let (body, offset) = match trimmed.strip_prefix("0x").or(trimmed.strip_prefix("0X")) {
        Some(rest) => (rest, text[..skipped].chars().count() + 2),
        None => (trimmed, text[..skipped].chars().count()),
    };
    let mut nibbles = Vec::with_capacity(body.len());
    for (i, c) in body.chars().enumerate() {
        if c.is_whitespace() || c == ':' || c == '-' {
            continue;
        }
        match c.to_digit(16) {
            Some(d) => nibbles.push(d as u8),
            None => {
                return Err(PayloadError::BadHexDigit {
                    found: c,
                    position: offset + i,
                });
            }
        }
    }
    if nibbles.len() % 2 != 0 {
        return Err(PayloadError::OddHexDigits {
            digits: nibbles.len(),
        });
    }
    Ok(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// What went wrong with typed base64, in a person's words (the decoder's own, such as
/// "Invalid symbol 33, offset 0", name a byte value).
fn base64_reason(e: &base64::DecodeError) -> String {
    use base64::DecodeError as E;
    match *e {
        E::InvalidByte(offset, byte) => format!(
            "{:?} (character {}) is not a base64 character: use A-Z, a-z, 0-9, + and /, with = only at the end",
            char::from(byte),
            offset + 1
        ),
        E::InvalidLength(len) => format!(
            "it has {len} characters; base64 comes in groups of 4 (pad the end with =)"
        ),
        E::InvalidLastSymbol(_, byte) => format!(
            "it ends with {:?}, which leaves bits over: it is probably cut short",
            char::from(byte)
        ),
        E::InvalidPadding => "the = padding is wrong: base64 comes in groups of 4 characters, padded with = at the end (for example aGVsbG8=)".into(),
    }
}

/// Encodes bytes as standard base64, as `payload_b64` carries them.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 as found in `payload_b64`.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, PayloadError> {
    Payload::Base64(text.to_owned()).decode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_notation() {
        let cases: &[(Payload, &[u8])] = &[
            (Payload::Text("hello".into()), b"hello"),
            (Payload::Text("".into()), b""),
            (Payload::Text("é".into()), &[0xc3, 0xa9]),
            (Payload::Hex("68656c6c6f".into()), b"hello"),
            (
                Payload::Hex("DE AD be:ef-00".into()),
                &[0xde, 0xad, 0xbe, 0xef, 0x00],
            ),
            (Payload::Hex("0x0102".into()), &[1, 2]),
            (Payload::Hex("  0X ff".into()), &[0xff]),
            (Payload::Hex("".into()), b""),
            (Payload::Base64("aGVsbG8=".into()), b"hello"),
            (Payload::Base64("aGVs\nbG8=".into()), b"hello"),
            (Payload::Base64("".into()), b""),
        ];
        for (payload, bytes) in cases {
            assert_eq!(payload.decode().as_deref(), Ok(*bytes), "{payload:?}");
        }
    }

    #[test]
    fn refuses_bad_payloads_with_a_reason() {
        let cases: &[(Payload, &str)] = &[
            (
                Payload::Hex("abc".into()),
                "hex payload has an odd number of digits (3); every byte needs two",
            ),
            (
                Payload::Hex("0a zz".into()),
                "hex payload has 'z' at position 3, which is not a hex digit",
            ),
            (
                Payload::Hex("0xg1".into()),
                "hex payload has 'g' at position 2, which is not a hex digit",
            ),
            (
                Payload::Base64("aGVsbG8".into()),
                "base64 payload is not valid: the = padding is wrong: base64 comes in groups of 4 characters, padded with = at the end (for example aGVsbG8=)",
            ),
            (
                Payload::Base64("a*==".into()),
                "base64 payload is not valid: '*' (character 2) is not a base64 character: use A-Z, a-z, 0-9, + and /, with = only at the end",
            ),
        ];
        for (payload, message) in cases {
            let err = payload.decode().expect_err("must be refused");
            assert_eq!(err.to_string(), *message, "{payload:?}");
        }
    }

    #[test]
    fn base64_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_base64(&encode_base64(&bytes)), Ok(bytes));
    }
}
