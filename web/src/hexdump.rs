//! Hex + ASCII dumps and one-line previews of payloads.

/// Bytes shown per dump line.
const BYTES_PER_LINE: usize = 16;

/// A classic hex dump: offset, sixteen bytes in hex (a gap after eight), and the bytes
/// as ASCII with `.` for anything unprintable.
pub fn hexdump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (line, chunk) in bytes.chunks(BYTES_PER_LINE).enumerate() {
        out.push_str(&format!("{:04x}  ", line * BYTES_PER_LINE));
        for i in 0..BYTES_PER_LINE {
            match chunk.get(i) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
            if i == 7 {
                out.push(' ');
            }
        }
        out.push(' ');
        out.push('|');
        out.extend(chunk.iter().map(|&b| printable(b)));
        out.push('|');
        out.push('\n');
    }
    out
}

/// The first bytes of a payload as one line: the text itself when it is printable,
/// otherwise hex.
pub fn preview(bytes: &[u8], max_chars: usize) -> String {
    let mostly_text = !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\n' || b == b'\r' || b == b'\t');
    let shown = &bytes[..bytes.len().min(max_chars)];
    let more = if bytes.len() > shown.len() { "…" } else { "" };
    if mostly_text {
        let text: String = shown
            .iter()
            .map(|&b| match b {
                b'\n' | b'\r' | b'\t' => '·',
                b => b as char,
            })
            .collect();
        format!("\"{text}\"{more}")
    } else {
        let hex: Vec<String> = shown
            .iter()
            .take(max_chars / 3)
            .map(|b| format!("{b:02x}"))
            .collect();
        let more = if bytes.len() > max_chars / 3 {
            "…"
        } else {
            ""
        };
        format!("{}{more}", hex.join(" "))
    }
}

fn printable(b: u8) -> char {
    if b.is_ascii_graphic() || b == b' ' {
        b as char
    } else {
        '.'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_like_hexdump_c() {
        let bytes: Vec<u8> = b"hello, world!\n\x00\x01\xffABC".to_vec();
        assert_eq!(
            hexdump(&bytes),
            "0000  68 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 00 01  |hello, world!...|\n\
             0010  ff 41 42 43                                       |.ABC|\n"
        );
        assert_eq!(hexdump(&[]), "");
    }

    #[test]
    fn previews_text_and_binary() {
        assert_eq!(preview(b"hello", 10), "\"hello\"");
        assert_eq!(preview(b"hello world", 5), "\"hello\"…");
        assert_eq!(preview(b"a\nb", 10), "\"a·b\"");
        assert_eq!(preview(&[0xde, 0xad, 0xbe, 0xef], 30), "de ad be ef");
        assert_eq!(preview(&[0u8; 20], 9), "00 00 00…");
        assert_eq!(preview(&[], 10), "");
    }
}
