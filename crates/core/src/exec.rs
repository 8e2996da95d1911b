//! The exec wire format: frames that carry a command's input, output, terminal size and
//! exit code between the CLI, the operator (which only splices), the node's agent and the
//! exec service in `zeitwork-init` (see `docs/architecture.md`, "Exec").
//!
//! A frame is `kind: u8, session: u32 BE, length: u32 BE, payload`. Between the CLI and
//! the agent one exec is one connection and `session` is 0; between the agent and the
//! guest one connection carries every exec of the instance, each under its own session.
//! Output and input are flow-controlled per session: a side sends at most [`WINDOW`]
//! bytes of `Stdout`/`Stderr` (or `Stdin`) the other has not acknowledged with `Credit`,
//! so a slow reader of one exec never stalls another, and a large output streams at the
//! pace of whoever reads it.

use serde::{Deserialize, Serialize};

/// The protocol an exec's HTTP connection upgrades to (`Upgrade: zeitwork-exec`), at the
/// operator from the client and from the node's agent.
pub const UPGRADE_PROTOCOL: &str = "zeitwork-exec";

/// The virtio-serial port name the guest's exec service looks for.
pub const PORT_NAME: &str = "zeitwork.exec";

/// Bytes a side may send on a session before the other acknowledges them.
pub const WINDOW: u32 = 1 << 20;

/// The largest payload of a frame.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Size of a frame's header.
pub const HEADER: usize = 9;

/// Longest command line (all arguments together) an exec may run.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// The most words (program and arguments) a command has.
pub const MAX_ARGS: usize = 256;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Agent → guest, session 0: drop every session; the payload (8 bytes) comes back in
    /// `HelloAck`, which marks where the new connection's frames start.
    Hello,
    /// Guest → agent: answers `Hello` with its payload.
    HelloAck,
    /// Agent → guest: start [`Open`] (JSON) as this session.
    Open,
    /// Input bytes.
    Stdin,
    /// Input ended.
    StdinEof,
    /// The terminal's new size: rows, cols (u16 BE each).
    Resize,
    /// Kill the session's processes.
    Close,
    /// Output bytes.
    Stdout,
    /// Error output bytes (never with a terminal: it is one stream then).
    Stderr,
    /// The command ended: its exit code (i32 BE; 128 + n when killed by signal n).
    Exit,
    /// The command could not run, or the exec failed on the way: a UTF-8 message.
    Error,
    /// That many more bytes may be sent (u32 BE).
    Credit,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Hello => 1,
            Kind::HelloAck => 2,
            Kind::Open => 3,
            Kind::Stdin => 4,
            Kind::StdinEof => 5,
            Kind::Resize => 6,
            Kind::Close => 7,
            Kind::Stdout => 8,
            Kind::Stderr => 9,
            Kind::Exit => 10,
            Kind::Error => 11,
            Kind::Credit => 12,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Kind::Hello,
            2 => Kind::HelloAck,
            3 => Kind::Open,
            4 => Kind::Stdin,
            5 => Kind::StdinEof,
            6 => Kind::Resize,
            7 => Kind::Close,
            8 => Kind::Stdout,
            9 => Kind::Stderr,
            10 => Kind::Exit,
            11 => Kind::Error,
            12 => Kind::Credit,
            _ => return None,
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub session: u32,
    pub payload: Vec<u8>,
}

/// A frame that cannot be decoded; the connection it came on is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unknown exec frame kind {0}")]
    UnknownKind(u8),
    #[error("exec frame of {0} bytes exceeds the limit of {MAX_PAYLOAD}")]
    TooLong(usize),
    #[error("malformed {kind:?} frame: {reason}")]
    Malformed { kind: Kind, reason: String },
}

impl Frame {
    pub fn new(kind: Kind, session: u32, payload: Vec<u8>) -> Frame {
        Frame {
            kind,
            session,
            payload,
        }
    }

    /// A frame carrying a big-endian u32 (`Credit`).
    pub fn credit(session: u32, bytes: u32) -> Frame {
        Frame::new(Kind::Credit, session, bytes.to_be_bytes().to_vec())
    }

    /// The exit frame for an exit code.
    pub fn exit(session: u32, code: i32) -> Frame {
        Frame::new(Kind::Exit, session, code.to_be_bytes().to_vec())
    }

    /// A terminal size frame.
    pub fn resize(session: u32, rows: u16, cols: u16) -> Frame {
        let mut p = rows.to_be_bytes().to_vec();
        p.extend(cols.to_be_bytes());
        Frame::new(Kind::Resize, session, p)
    }

    /// An error message frame.
    pub fn error(session: u32, message: &str) -> Frame {
        Frame::new(Kind::Error, session, message.as_bytes().to_vec())
    }

    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        out.push(self.kind.code());
        out.extend(self.session.to_be_bytes());
        out.extend((self.payload.len() as u32).to_be_bytes());
        out.extend(&self.payload);
        out
    }

    fn fixed<const N: usize>(&self) -> Result<[u8; N], WireError> {
        self.payload
            .as_slice()
            .try_into()
            .map_err(|_| WireError::Malformed {
                kind: self.kind,
                reason: format!("{} bytes, expected {N}", self.payload.len()),
            })
    }

    /// The u32 of a `Credit` frame.
    pub fn as_credit(&self) -> Result<u32, WireError> {
        self.fixed::<4>().map(u32::from_be_bytes)
    }

    /// The code of an `Exit` frame.
    pub fn as_exit(&self) -> Result<i32, WireError> {
        self.fixed::<4>().map(i32::from_be_bytes)
    }

    /// Rows and columns of a `Resize` frame.
    pub fn as_resize(&self) -> Result<(u16, u16), WireError> {
        let b = self.fixed::<4>()?;
        Ok((
            u16::from_be_bytes([b[0], b[1]]),
            u16::from_be_bytes([b[2], b[3]]),
        ))
    }

    /// The command of an `Open` frame, checked.
    pub fn as_open(&self) -> Result<Open, WireError> {
        let malformed = |reason: String| WireError::Malformed {
            kind: self.kind,
            reason,
        };
        let open: Open =
            serde_json::from_slice(&self.payload).map_err(|e| malformed(e.to_string()))?;
        open.check().map_err(malformed)?;
        Ok(open)
    }
}

/// What an exec runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Open {
    /// The program (looked up in the app's `PATH`) and its arguments.
    pub argv: Vec<String>,
    /// A terminal (PTY) for it, with the client's `TERM`; none: pipes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<Tty>,
}

/// The terminal of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tty {
    /// `TERM` inside the instance (`xterm-256color`, …); none: `xterm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
}

impl Open {
    /// The rules every side checks: a program, no NUL, bounded size, a sane `TERM`.
    pub fn check(&self) -> Result<(), String> {
        check_command(&self.argv)?;
        if let Some(term) = self.tty.as_ref().and_then(|t| t.term.as_deref()) {
            check_term(term)?;
        }
        Ok(())
    }
}

/// A command: at least a program, no NUL byte, at most [`MAX_COMMAND_BYTES`] in all.
pub fn check_command(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => return Err("the command is empty: name a program to run".into()),
        Some(p) if p.is_empty() => return Err("the program name is empty".into()),
        Some(_) => {}
    }
    if argv.len() > MAX_ARGS {
        return Err(format!(
            "the command has {} words, at most {MAX_ARGS}",
            argv.len()
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err("the command contains a NUL byte".into());
    }
    let total: usize = argv.iter().map(|a| a.len() + 1).sum();
    if total > MAX_COMMAND_BYTES {
        return Err(format!(
            "the command is {total} bytes long, at most {MAX_COMMAND_BYTES}"
        ));
    }
    Ok(())
}

/// A `TERM` value: 1–64 of `[A-Za-z0-9._+-]`.
pub fn check_term(term: &str) -> Result<(), String> {
    let ok = !term.is_empty()
        && term.len() <= 64
        && term
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("TERM {term:?} is not 1–64 letters, digits or ._+-"))
    }
}

/// Collects bytes as they arrive and yields whole frames.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let kind = Kind::from_code(self.buf[0]).ok_or(WireError::UnknownKind(self.buf[0]))?;
        let session = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(self.buf[5..9].try_into().expect("4 bytes")) as usize;
        if len > MAX_PAYLOAD {
            return Err(WireError::TooLong(len));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some(Frame::new(kind, session, payload)))
    }

    /// Drops everything before the first occurrence of `marker` (and the marker):
    /// whether it was found. What a fresh connection to a guest port uses to skip what a
    /// previous connection left in flight.
    pub fn skip_past(&mut self, marker: &[u8]) -> bool {
        match self.buf.windows(marker.len()).position(|w| w == marker) {
            Some(at) => {
                self.buf.drain(..at + marker.len());
                true
            }
            None => {
                // Keep a tail that could be the start of the marker.
                let keep = marker.len().saturating_sub(1).min(self.buf.len());
                self.buf.drain(..self.buf.len() - keep);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_and_in_pieces() {
        let frames = [
            Frame::new(Kind::Open, 3, br#"{"argv":["sh"]}"#.to_vec()),
            Frame::new(Kind::Stdout, 3, vec![7; 1000]),
            Frame::credit(3, WINDOW),
            Frame::exit(3, -1),
            Frame::resize(0, 50, 200),
            Frame::new(Kind::StdinEof, 9, vec![]),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        for chunk in [1, 2, 5, 9, 64, bytes.len()] {
            let mut r = Reader::new();
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                r.push(piece);
                while let Some(f) = r.next_frame().unwrap() {
                    out.push(f);
                }
            }
            assert_eq!(out, frames, "chunks of {chunk}");
        }
        assert_eq!(frames[2].as_credit(), Ok(WINDOW));
        assert_eq!(frames[3].as_exit(), Ok(-1));
        assert_eq!(frames[4].as_resize(), Ok((50, 200)));
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut r = Reader::new();
        r.push(&[99, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.next_frame(), Err(WireError::UnknownKind(99)));
        let mut r = Reader::new();
        let mut long = vec![Kind::Stdout.code(), 0, 0, 0, 1];
        long.extend(((MAX_PAYLOAD + 1) as u32).to_be_bytes());
        r.push(&long);
        assert!(matches!(r.next_frame(), Err(WireError::TooLong(_))));
        assert!(Frame::new(Kind::Credit, 1, vec![1]).as_credit().is_err());
        let open = |json: &str| Frame::new(Kind::Open, 1, json.as_bytes().to_vec()).as_open();
        assert!(open(r#"{"argv":[]}"#).is_err());
        assert!(open(r#"{"argv":["sh"],"extra":1}"#).is_err());
        assert!(open(r#"{"argv":["sh"],"tty":{"term":"bad term"}}"#).is_err());
        assert!(open(r#"{"argv":["a\u0000b"]}"#).is_err());
        assert!(open(r#"{"argv":["sh"],"tty":{"term":"xterm-256color"}}"#).is_ok());
    }

    #[test]
    fn a_marker_skips_leftovers() {
        let mut r = Reader::new();
        let marker = Frame::new(Kind::HelloAck, 0, vec![1; 8]).encode();
        r.push(&[8, 0, 0]);
        assert!(!r.skip_past(&marker));
        r.push(&marker[..4]);
        assert!(!r.skip_past(&marker));
        r.push(&marker[4..]);
        r.push(&Frame::exit(1, 0).encode());
        assert!(r.skip_past(&marker));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::exit(1, 0)));
    }
}
