//! The hyper path's requests without a body (HTTP/2 ones, and HTTP/1.1 ones the lane
//! handed over) sent over the lane's raw pool instead of hyper's client: the head is
//! written from the header map in one buffer, the answer's head parsed with httparse,
//! and its body read by [`RawBody`] straight from the instance's connection, which goes
//! back to the pool once the body ended cleanly.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::HeaderName;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::super::balance::{Backends, Candidate};
use super::super::forward::Unreachable;
use super::super::guard::Chunk;
use super::pool::Pool;
use super::send::{self, Failed, Outgoing};
use super::wire::{self, Connection, Framing};
use super::{CHUNK, MAX_RESPONSE_HEADERS};

/// Headers of one hop only, and the app's Content-Length: the edge frames the answer
/// anew for its client.
const HOP_BY_HOP: [&str; 9] = [
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// Sends a request without a body (its headers already the instance's: hop-by-hop ones
/// gone, the edge's added) to the first instance of `plan` that answers.
pub(super) async fn send_bodiless(
    pool: &Arc<Pool>,
    backends: &Backends,
    plan: Vec<Candidate>,
    method: &Method,
    path: &PathAndQuery,
    headers: &HeaderMap,
) -> Result<Response<RawBody>, Unreachable> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(path.as_str().as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let mut request = Outgoing {
        head: &head,
        body: send::Body {
            early: &[],
            left: 0,
            streamed: false,
        },
        idempotent: matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
    };
    let mut down = Vec::new();
    let mut nothing = tokio::io::empty();
    let sent = send::send(pool, backends, plan, &mut request, &mut nothing, &mut down);
    let answer = match sent.await {
        Ok(answer) => answer,
        Err(Failed::Unreachable(error)) => return Err(Unreachable::after(error)),
        // Without a body nothing is read from the client.
        Err(Failed::ClientGone) => return Err(Unreachable::after("the client left".into())),
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let parsed = res.parse(&down[..answer.head_len]);
    let framing = match parsed {
        Ok(httparse::Status::Complete(_)) => wire::framing(&res, *method == Method::HEAD),
        _ => None,
    };
    let status = res.code.and_then(|c| StatusCode::from_u16(c).ok());
    let (Some(framing), Some(status)) = (framing, status) else {
        backends.failed(&answer.candidate, false);
        return Err(Unreachable::after(format!(
            "{}: an answer with a malformed head",
            answer.candidate.addr
        )));
    };
    match status {
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            backends.failed(&answer.candidate, false)
        }
        _ => backends.succeeded(&answer.candidate),
    }
    let connection = Connection::of(res.headers).unwrap_or_default();
    let keep = res.version == Some(1) && !connection.close;
    let mut response = Response::new(RawBody::empty());
    *response.status_mut() = status;
    let out = response.headers_mut();
    for h in res.headers.iter() {
        let hop = HOP_BY_HOP.iter().any(|n| h.name.eq_ignore_ascii_case(n));
        if hop || connection.names(h.name) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            out.append(name, value);
        }
    }
    if let Some(length) = wire::answer_length(&res, framing) {
        out.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    let rest = BytesMut::from(&down[answer.head_len..]);
    let body = response.body_mut();
    *body = RawBody {
        state: match framing {
            Framing::Empty => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::default()),
            Framing::UntilClose => State::UntilClose,
        },
        buf: rest,
        upstream: Some(answer.upstream.stream),
        home: keep.then(|| (pool.clone(), answer.candidate.addr)),
    };
    // No body at all: the connection is free now (hyper will not ask for an end).
    if matches!(body.state, State::Length(0)) {
        body.finish();
    }
    Ok(response)
}

/// An answer's body, read from the instance's connection.
pub(crate) struct RawBody {
    state: State,
    /// Read but not yet given out.
    buf: BytesMut,
    upstream: Option<TcpStream>,
    /// Where the connection goes back to once the body ended cleanly; `None` when the
    /// instance closes it.
    home: Option<(Arc<Pool>, SocketAddr)>,
}

enum State {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

impl RawBody {
    fn empty() -> RawBody {
        RawBody {
            state: State::Done,
            buf: BytesMut::new(),
            upstream: None,
            home: None,
        }
    }

    /// The body ended: the connection goes home if nothing came after it.
    fn finish(&mut self) {
        self.state = State::Done;
        if let (Some(stream), Some((pool, addr))) = (self.upstream.take(), self.home.take())
            && self.buf.is_empty()
        {
            pool.checkin(addr, stream);
        }
    }

    /// Reads more from the instance; `Ok(false)` at its end.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(stream) = self.upstream.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let mut chunk = [0u8; CHUNK];
        let mut read = ReadBuf::new(&mut chunk);
        ready!(Pin::new(stream).poll_read(cx, &mut read))?;
        self.buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(!read.filled().is_empty()))
    }
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => this.finish(),
                State::Length(left) if !this.buf.is_empty() => {
                    let n =
                        usize::try_from(*left).map_or(this.buf.len(), |l| l.min(this.buf.len()));
                    *left -= n as u64;
                    let data = this.buf.split_to(n).freeze();
                    // The last bytes: hyper may not poll again once the length is met.
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::UntilClose if !this.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))));
                }
                State::Chunked(chunk) if !this.buf.is_empty() => {
                    if let Chunk::Data(left) = chunk {
                        let n = usize::try_from(*left)
                            .map_or(this.buf.len(), |l| l.min(this.buf.len()));
                        *left -= n as u64;
                        if *left == 0 {
                            *chunk = Chunk::DataCr;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(this.buf.split_to(n).freeze()))));
                    }
                    // Framing bytes, one at a time, up to the next data or the end.
                    match chunk.advance(&this.buf[..1]) {
                        Ok((_, true)) => {
                            let _ = this.buf.split_to(1);
                            this.finish();
                        }
                        Ok(_) => {
                            let _ = this.buf.split_to(1);
                        }
                        Err(()) => {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "malformed chunked body from the app",
                            ))));
                        }
                    }
                }
                State::Length(_) | State::Chunked(_) => {
                    if !ready!(this.fill(cx))? {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
                    }
                }
                State::UntilClose => {
                    if !ready!(this.fill(cx))? {
                        this.home = None;
                        this.finish();
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
