//! Server-sent events: splitting an upstream byte stream into whole events
//! (whatever the read boundaries), and writing events for clients.
//!
//! Framing happens here, once; plugins only ever see whole events. Follows
//! the WHATWG rules: lines end in LF, CRLF or CR; a blank line ends an event;
//! `data` lines join with LF; lines starting with ':' are comments.

use bytes::{BufMut, Bytes, BytesMut};

use crate::plugins::SseEvent;

/// An event grew past the size cap: the upstream is broken or hostile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an upstream SSE event exceeded {0} bytes")]
pub struct EventTooLarge(pub usize);

/// Incremental SSE parser.
#[derive(Debug)]
pub struct SseFramer {
    /// Bytes of the line being read.
    line: Vec<u8>,
    /// The previous byte was CR, so an LF right after it is part of that line end.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// Bytes held for the current event.
    held: usize,
    max_event_bytes: usize,
}

impl SseFramer {
    /// A parser that refuses events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseFramer {
            line: Vec::new(),
            after_cr: false,
            event: None,
            data: String::new(),
            has_data: false,
            held: 0,
            max_event_bytes,
        }
    }

    /// Feeds bytes; appends every event they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    self.line.extend_from_slice(&rest[..pos]);
                    self.after_cr = rest[pos] == b'\r';
                    rest = &rest[pos + 1..];
                    self.end_line(out);
                }
                None => {
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
            }
            if self.held + self.line.len() > self.max_event_bytes {
                return Err(EventTooLarge(self.max_event_bytes));
            }
        }
        Ok(())
    }

    /// The stream ended: a final event without its blank line still counts
    /// (servers that close right after the last `data:` line exist).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            self.end_line(out);
        }
        self.dispatch(out);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        self.held += line.len();
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // id, retry and unknown fields carry nothing the gateway uses
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.data.clear();
        self.has_data = false;
        self.held = 0;
    }
}

/// Writes events in SSE wire form.
pub fn encode_events(events: &[SseEvent]) -> Bytes {
    let size: usize = events
        .iter()
        .map(|e| e.data.len() + e.event.as_ref().map_or(0, |n| n.len() + 8) + 8)
        .sum();
    let mut buf = BytesMut::with_capacity(size);
    for event in events {
        if let Some(name) = &event.event {
            buf.put_slice(b"event: ");
            buf.put_slice(name.as_bytes());
            buf.put_u8(b'\n');
        }
        for line in event.data.split('\n') {
            buf.put_slice(b"data: ");
            buf.put_slice(line.as_bytes());
            buf.put_u8(b'\n');
        }
        buf.put_u8(b'\n');
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
        }
    }

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut framer = SseFramer::new(1 << 20);
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            framer.push(chunk, &mut out).unwrap();
        }
        framer.finish(&mut out);
        out
    }

    const STREAM: &[u8] = b": keep-alive\n\nevent: message_start\ndata: {\"a\":1}\n\ndata: line one\ndata:line two\n\ndata: [DONE]\n\n";

    #[test]
    fn events_are_the_same_whatever_the_read_boundaries() {
        let expected = vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(None, "line one\nline two"),
            ev(None, "[DONE]"),
        ];
        for piece in 1..=STREAM.len() {
            assert_eq!(
                parse_in_pieces(STREAM, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let crlf = b"event: x\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n";
        let cr = b"event: x\rdata: 1\r\rdata: 2\r\r";
        let expected = vec![ev(Some("x"), "1"), ev(None, "2")];
        for piece in 1..=crlf.len() {
            assert_eq!(parse_in_pieces(crlf, piece), expected, "crlf piece {piece}");
            assert_eq!(
                parse_in_pieces(cr, piece.min(cr.len())),
                expected,
                "cr piece {piece}"
            );
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_kept() {
        assert_eq!(parse_in_pieces(b"data: tail", 3), vec![ev(None, "tail")]);
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut framer = SseFramer::new(16);
        let mut out = Vec::new();
        assert_eq!(
            framer.push(b"data: 0123456789abcdef", &mut out),
            Err(EventTooLarge(16))
        );
        let mut framer = SseFramer::new(16);
        framer.push(b"data: 0123\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1, "small events pass");
    }

    #[test]
    fn encoding_round_trips() {
        let events = vec![ev(Some("delta"), "a\nb"), ev(None, "{}")];
        let wire = encode_events(&events);
        assert_eq!(&wire[..], b"event: delta\ndata: a\ndata: b\n\ndata: {}\n\n");
        assert_eq!(parse_in_pieces(&wire, 5), events);
    }
}
