//! A Server-Sent Events parser fed with raw body chunks, as the WHATWG spec reads a stream:
//! lines end in LF, CRLF or CR; `:` starts a comment; `data:` lines accumulate; a blank
//! line dispatches. Chunks may split lines (and UTF-8 characters) anywhere, so bytes are
//! buffered until a line is complete. Small enough that no SSE crate is needed.

use serde::de::DeserializeOwned;

use crate::client::decode;
use crate::error::Result;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id seen on the stream (ids persist across events, per the spec).
    pub id: Option<String>,
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// Its data decoded as a `T`; anything else is a
    /// [`CliError::Protocol`](crate::error::CliError::Protocol) saying so.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode(&format!("the `{}` event", self.event), self.data.as_bytes())
    }
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in CR, so a leading LF belongs to that line ending.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// The id to resume from after a reconnect (`Last-Event-ID`).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds bytes; returns the events completed by them, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields: nothing for us to do.
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            id: self.last_id.clone(),
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> (Vec<SseEvent>, SseParser) {
        let mut p = SseParser::new();
        let events = chunks.iter().flat_map(|c| p.push(c)).collect();
        (events, p)
    }

    fn ev(id: Option<&str>, event: &str, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn multi_line_data_and_comments() {
        let (events, _) =
            all(&[b": keep-alive\n\nid: 7\nevent: app_created\ndata: {\"a\":\ndata:1}\n\n"]);
        assert_eq!(events, vec![ev(Some("7"), "app_created", "{\"a\":\n1}")]);
    }

    #[test]
    fn ids_persist_and_events_default_to_message() {
        let (events, p) = all(&[b"id: 1\ndata: x\n\ndata: y\n\nid: 3\n\n"]);
        assert_eq!(
            events,
            vec![ev(Some("1"), "message", "x"), ev(Some("1"), "message", "y")]
        );
        assert_eq!(
            p.last_id(),
            Some("3"),
            "an id without data still moves the cursor"
        );
    }

    #[test]
    fn chunks_split_anywhere_and_all_line_endings() {
        let text = "id: 5\r\nevent: k\rdata: h\u{e9}llo\n\r\n";
        let bytes = text.as_bytes();
        for split in 0..bytes.len() {
            let (events, _) = all(&[&bytes[..split], &bytes[split..]]);
            assert_eq!(
                events,
                vec![ev(Some("5"), "k", "h\u{e9}llo")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn field_without_colon_and_unspaced_value() {
        let (events, _) = all(&[b"data\ndata:x\nretry: 10\n\n"]);
        assert_eq!(events, vec![ev(None, "message", "\nx")]);
        let (events, _) = all(&[b"event: only\n\n"]);
        assert!(events.is_empty(), "no data, no event");
    }
}
