//! A chunk: a run of a recording's events in one row of the store, as bytes. SQLite
//! pays for every row it writes (a b-tree insert, a statement run); a recording of a
//! hundred thousand datagrams a second stored a row each spent more on the store than
//! the server spent carrying them. A chunk holds up to [`MAX_EVENTS`] events, so a
//! batch of the recorder's is a few rows.
//!
//! Each event, one after another (integers little-endian):
//! `id: u64, t_ns: u64, kind length: u8, kind, JSON length: u32, JSON,
//! bytes length: u32 (u32::MAX: none), bytes`. The JSON is the event as a viewer got
//! it; when the event carries bytes they follow it as they are and its JSON has
//! `"payload_b64":""` (see [`super::StoredEvent`]).

use super::StoredEvent;

/// The most events one chunk holds.
pub const MAX_EVENTS: usize = 1024;
/// A chunk is closed once its bytes pass this (a chunk of large datagrams).
pub const MAX_BYTES: usize = 1 << 20;

/// What says "no bytes" where a length of bytes goes.
const NONE: u32 = u32::MAX;

/// Appends `event` to chunk `out`.
pub fn push(out: &mut Vec<u8>, event: &StoredEvent) {
    out.extend_from_slice(&event.id.to_le_bytes());
    out.extend_from_slice(&event.t_ns.to_le_bytes());
    // Kinds are the wire's `type` names, a few letters; a longer one is cut (never
    // happens: they come from the protocol's own names).
    let kind = &event.kind.as_bytes()[..event.kind.len().min(u8::MAX as usize)];
    out.push(kind.len() as u8);
    out.extend_from_slice(kind);
    push_bytes(out, Some(event.json.as_bytes()));
    push_bytes(out, event.payload.as_deref());
}

fn push_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        // Events are far smaller than 4 GiB: the log refuses payloads over 64 KiB.
        Some(bytes) => {
            out.extend_from_slice(&(bytes.len().min(NONE as usize - 1) as u32).to_le_bytes());
            out.extend_from_slice(&bytes[..bytes.len().min(NONE as usize - 1)]);
        }
        None => out.extend_from_slice(&NONE.to_le_bytes()),
    }
}

/// One event of a chunk, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The event's id in the session.
    pub id: u64,
    /// Nanoseconds since the session began.
    pub t_ns: u64,
    /// Its wire `type`.
    pub kind: &'a str,
    /// Its JSON (without its bytes when `payload` holds them).
    pub json: &'a str,
    /// Its bytes, when kept apart.
    pub payload: Option<&'a [u8]>,
}

/// The events of a chunk, in order; an error where its bytes do not read as events
/// (a damaged store), after which it ends.
pub struct Items<'a> {
    rest: &'a [u8],
}

/// Reads chunk `data`.
pub fn items(data: &[u8]) -> Items<'_> {
    Items { rest: data }
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Item<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

impl<'a> Items<'a> {
    fn read(&mut self) -> Result<Item<'a>, String> {
        let id = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        let t_ns = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        let kind_len = self.take(1)?[0] as usize;
        let kind = text(self.take(kind_len)?)?;
        let json = text(self.bytes()?.ok_or("an event without JSON")?)?;
        let payload = self.bytes()?;
        Ok(Item {
            id,
            t_ns,
            kind,
            json,
            payload,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("a stored chunk ends inside an event".into());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        if len == NONE {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "a stored event's text is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_back_as_they_went_in() {
        let events = [
            StoredEvent::whole(1, 10, "bound".into(), r#"{"type":"bound"}"#.into()),
            StoredEvent {
                id: 2,
                t_ns: 20,
                kind: "datagram".into(),
                json: r#"{"type":"datagram","payload_b64":""}"#.into(),
                payload: Some(vec![0, 255, 7]),
            },
            StoredEvent {
                id: 3,
                t_ns: 30,
                kind: "datagram".into(),
                json: r#"{"type":"datagram","payload_b64":""}"#.into(),
                payload: Some(Vec::new()),
            },
        ];
        let mut data = Vec::new();
        for e in &events {
            push(&mut data, e);
        }
        let read: Vec<Item<'_>> = items(&data).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), 3);
        for (item, e) in read.iter().zip(&events) {
            assert_eq!(
                (item.id, item.t_ns, item.kind),
                (e.id, e.t_ns, e.kind.as_str())
            );
            assert_eq!(item.json, e.json);
            assert_eq!(item.payload, e.payload.as_deref());
        }
    }

    #[test]
    fn a_damaged_chunk_is_an_error_not_a_panic() {
        let mut data = Vec::new();
        push(
            &mut data,
            &StoredEvent::whole(1, 10, "fate".into(), "{}".into()),
        );
        for cut in 0..data.len() {
            let read: Vec<_> = items(&data[..cut]).collect();
            assert!(cut == 0 || read.last().unwrap().is_err(), "cut at {cut}");
        }
        data[16] = 200; // the kind's length, past the end
        assert!(items(&data).any(|i| i.is_err()));
    }
}
