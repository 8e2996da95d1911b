//! Request framing, followed in front of hyper's parser. Hyper quietly repairs a request
//! that carries both Content-Length and Transfer-Encoding (it drops the length); the edge
//! refuses it (400), since that is the shape of request smuggling, and refuses oversized
//! or unparsable heads too, with its own page. A refused head never reaches hyper: in its
//! place hyper reads a stand-in request, which the service answers with the refusal
//! because the [`Verdict`] names its position on the connection. Everything after it is
//! discarded, and the answer closes the connection.
//!
//! Heads are held back until complete; bodies pass through as they arrive, followed
//! byte by byte exactly as hyper follows them ([`chunk`]) to know where the next head
//! starts. Where hyper would fail on a body, the guard steps aside ([`State::Opaque`])
//! and lets hyper's error close the connection.

mod chunk;
mod head;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::page::Problem;
pub(super) use chunk::Chunk;
use head::framing;
pub(super) use head::{content_length, head_end};

/// How the guard frames this head's body: a fixed length (0 without a body), `None`
/// for chunked or opaque bodies, or its refusal (for the express lane's fuzz target).
#[cfg(any(test, fuzzing))]
pub(super) fn fixed_length(request: &httparse::Request<'_, '_>) -> Result<Option<u64>, Refusal> {
    Ok(match framing(request)? {
        State::Head => Some(0),
        State::Fixed(n) => Some(n),
        State::Chunked(_) | State::Opaque | State::Refused => None,
    })
}

/// Longest request head (request line and headers) accepted.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Hyper's own limit, mirrored so the edge answers first.
pub(super) const MAX_HEADERS: usize = 100;
/// What hyper reads instead of a refused head.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nhost: refused.invalid\r\n\r\n";

/// Why a request was refused before hyper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Content-Length and Transfer-Encoding together.
    Conflicting,
    /// Unparsable head or framing hyper would reject.
    Malformed,
    /// Head over [`MAX_HEAD`] or [`MAX_HEADERS`].
    TooLarge,
}

impl Refusal {
    pub(crate) fn problem(self) -> Problem {
        match self {
            Refusal::Conflicting => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request has both Content-Length and Transfer-Encoding; send one of them",
            ),
            Refusal::Malformed => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request is not well-formed HTTP/1.1",
            ),
            Refusal::TooLarge => Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                format!("request headers are limited to {MAX_HEADERS} fields and {MAX_HEAD} bytes"),
            ),
        }
    }
}

/// Which request of a connection, counted from 0, was refused and why.
#[derive(Debug, Default)]
pub(crate) struct Verdict(OnceLock<(u64, Refusal)>);

impl Verdict {
    pub(crate) fn refused(&self, request: u64) -> Option<Refusal> {
        self.0.get().filter(|(i, _)| *i == request).map(|(_, r)| *r)
    }
}

enum State {
    /// Reading a head (held back in `head` until complete).
    Head,
    /// Passing this many more body bytes.
    Fixed(u64),
    Chunked(Chunk),
    /// Passing everything: hyper is about to fail on what follows.
    Opaque,
    /// Discarding everything after a refusal.
    Refused,
}

/// A client connection with its request framing followed.
pub(crate) struct Guarded<S> {
    inner: S,
    state: State,
    head: Vec<u8>,
    /// Bytes for hyper, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// Heads released to hyper so far (the stand-in included).
    heads: u64,
    verdict: Arc<Verdict>,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, verdict: Arc<Verdict>) -> Guarded<S> {
        Guarded {
            inner,
            state: State::Head,
            head: Vec::new(),
            out: Vec::new(),
            sent: 0,
            heads: 0,
            verdict,
        }
    }

    /// Follows `input` and queues what hyper should read of it.
    fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            match &mut self.state {
                State::Refused => return,
                State::Opaque => {
                    self.out.extend_from_slice(input);
                    return;
                }
                State::Fixed(left) => {
                    let n = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                    self.out.extend_from_slice(&input[..n]);
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head;
                    }
                    input = &input[n..];
                }
                State::Chunked(chunk) => {
                    let (n, next) = match chunk.advance(input) {
                        Ok((n, done)) => (n, done.then_some(State::Head)),
                        Err(()) => (input.len(), Some(State::Opaque)),
                    };
                    self.out.extend_from_slice(&input[..n]);
                    if let Some(next) = next {
                        self.state = next;
                    }
                    input = &input[n..];
                }
                State::Head => {
                    // Empty lines before a request line are skipped, by hyper as by us.
                    let blank = input.iter().take_while(|b| matches!(b, b'\r' | b'\n'));
                    let blank = if self.head.is_empty() {
                        blank.count()
                    } else {
                        0
                    };
                    if blank > 0 {
                        self.out.extend_from_slice(&input[..blank]);
                        input = &input[blank..];
                        continue;
                    }
                    let Some(end) = head_end(&self.head, input) else {
                        self.head.extend_from_slice(input);
                        if self.head.len() > MAX_HEAD {
                            self.refuse(Refusal::TooLarge);
                        }
                        return;
                    };
                    self.head.extend_from_slice(&input[..end]);
                    input = &input[end..];
                    let head = std::mem::take(&mut self.head);
                    self.judge(head);
                }
            }
        }
    }

    /// Releases a complete head to hyper and follows its body, or refuses it.
    fn judge(&mut self, head: Vec<u8>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let next = match request.parse(&head) {
            _ if head.len() > MAX_HEAD => Err(Refusal::TooLarge),
            Ok(httparse::Status::Complete(_)) => framing(&request),
            Err(httparse::Error::TooManyHeaders) => Err(Refusal::TooLarge),
            Ok(httparse::Status::Partial) | Err(_) => Err(Refusal::Malformed),
        };
        match next {
            Ok(next) => {
                self.out.extend_from_slice(&head);
                self.heads += 1;
                self.state = next;
            }
            Err(refusal) => self.refuse(refusal),
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.head = Vec::new();
        let _ = self.verdict.0.set((self.heads, refusal));
        self.out.extend_from_slice(STAND_IN);
        self.heads += 1;
        self.state = State::Refused;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.sent < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.sent);
                buf.put_slice(&this.out[this.sent..this.sent + n]);
                this.sent += n;
                if this.sent == this.out.len() {
                    this.out.clear();
                    this.sent = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [0u8; 8192];
            let mut read = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // the client closed its side
            }
            this.feed(read.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes; returns what hyper would read.
    fn follow(wire: &[u8], step: usize) -> (Vec<u8>, Guarded<()>) {
        let mut g = Guarded::new((), Arc::default());
        for piece in wire.chunks(step) {
            g.feed(piece);
        }
        (std::mem::take(&mut g.out), g)
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";

    #[test]
    fn well_framed_requests_pass_unchanged_however_they_arrive() {
        // A fixed-length body that looks like a smuggling head: it must pass as body.
        let body = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n";
        let fixed = format!(
            "POST /f HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let wire = [
            &b"\r\n"[..],
            GET,
            fixed.as_bytes(),
            body,
            b"POST /c HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"5;ext=1\r\nhello\r\n3 \r\nGET\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"GET /last HTTP/1.1\nHost: a.test\n\n",
        ]
        .concat();
        for step in [1, 7, wire.len()] {
            let (out, g) = follow(&wire, step);
            assert_eq!(out, wire, "step {step}");
            assert_eq!(g.heads, 4, "step {step}");
            assert!(
                g.verdict.0.get().is_none(),
                "step {step}: a body was judged as a head"
            );
            assert!(matches!(g.state, State::Head));
        }
    }

    #[test]
    fn a_head_is_held_back_until_complete() {
        let (out, g) = follow(&GET[..GET.len() - 1], 1);
        assert!(out.is_empty());
        assert_eq!(g.head.len(), GET.len() - 1);
    }

    #[test]
    fn length_with_transfer_encoding_is_refused_in_either_order() {
        let smuggle = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n";
        let reversed = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\nHost: a.test\r\n\r\n";
        for bad in [&smuggle[..], &reversed[..]] {
            let (out, g) = follow(&[GET, bad].concat(), 5);
            assert_eq!(out, [GET, STAND_IN].concat());
            assert_eq!(g.verdict.refused(1), Some(Refusal::Conflicting));
            assert_eq!(g.verdict.refused(0), None);
            assert_eq!(g.heads, 2);
        }
    }

    #[test]
    fn framing_hyper_would_reject_is_refused() {
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            let (out, g) = follow(bad, 3);
            assert_eq!(out, STAND_IN, "{}", String::from_utf8_lossy(bad));
            assert_eq!(g.verdict.refused(0), Some(Refusal::Malformed));
        }
    }

    #[test]
    fn oversized_heads_are_refused_before_they_end() {
        let mut wire = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        wire.resize(MAX_HEAD + 10, b'a');
        let (out, g) = follow(&wire, 4096);
        assert_eq!(out, STAND_IN);
        assert_eq!(g.verdict.refused(0), Some(Refusal::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let (_, g) = follow(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), 100);
        assert_eq!(g.verdict.refused(0), Some(Refusal::TooLarge));
    }

    #[test]
    fn bytes_after_an_upgrade_request_pass_as_they_are() {
        let upgrade = b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        // A WebSocket frame is not HTTP; judged as a head it would be refused.
        let wire = [
            &upgrade[..],
            b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\r\n\r\n",
        ]
        .concat();
        let (out, g) = follow(&wire, 3);
        assert_eq!(out, wire);
        assert!(g.verdict.0.get().is_none());
        assert!(matches!(g.state, State::Opaque));
    }

    #[test]
    fn broken_chunked_bodies_are_left_to_hyper() {
        let wire = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (out, g) = follow(wire, 9);
        assert_eq!(out, wire);
        assert!(matches!(g.state, State::Opaque));
    }
}
