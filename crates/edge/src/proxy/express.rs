//! The express lane for HTTP/1.1. Requests of the common shape (origin-form target,
//! no body or a Content-Length one, no upgrade or `Expect`, a routed host with a healthy
//! instance and no CORS policy) are proxied here: the head is parsed once with httparse
//! and rewritten straight into the instance's buffer, connections to instances are
//! pooled per worker, and the answer's head is rewritten the same way while its body
//! passes as it came (by length, chunk by chunk, or until close). Everything else, and
//! every error in a client's framing, goes to the hyper path behind the framing guard,
//! which then serves the connection from that request on, given the bytes read so far.
//! The header rules are the hyper path's (`wire.rs`); the two paths are tested alike by
//! the same integration tests. Why it exists: BENCHMARKS.md (CPU per request).

mod body;
mod bridge;
#[cfg(any(test, fuzzing))]
pub(crate) mod head_check;
mod pool;
mod send;
mod wire;

pub(crate) use bridge::RawBody;
use pool::Pool;

use std::net::SocketAddr;
use std::time::Instant;

use http::{HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use zeitwork_core::route_policy::Balance;

use super::balance::Candidate;
use super::guard::{MAX_HEAD, MAX_HEADERS, content_length, head_end};
use super::page::{Problem, accepts_json};
use super::serve::HEAD_TIMEOUT;
use super::{DEFAULT_MAX_BODY_MB, Proxy, Redirect, host, policy, request_id_from};
use crate::metrics::UpstreamError;
use crate::table::Target;
use body::{Relayed, pass_body, write};
use send::{Answer, Body, Failed, Outgoing, send};
use wire::{Connection, Framing, Stated};

/// Longest answer head taken from an instance.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_HEADERS: usize = 128;
/// Bytes read from an instance (or of a request body) at a time.
const CHUNK: usize = 16 * 1024;
/// Room made for reading a client's head.
const HEAD_READ: usize = 4096;
/// Buffers kept for reuse per worker; idle connections hold none.
const SPARE_BUFFERS: usize = 1024;
/// Buffers grown past this by a large head or answer are not kept.
const SPARE_MAX_BYTES: usize = 256 * 1024;

/// One worker's express lane: connections to instances, and buffers lent to the
/// requests in flight.
#[derive(Default)]
pub(crate) struct Lane {
    pool: std::sync::Arc<Pool>,
    spare: std::sync::Mutex<Vec<Buffers>>,
}

impl Lane {
    /// [`bridge::send_bodiless`] over this lane's pool.
    pub(crate) async fn send_bodiless(
        &self,
        backends: &super::balance::Backends,
        plan: Vec<Candidate>,
        method: &http::Method,
        path: &http::uri::PathAndQuery,
        headers: &http::HeaderMap,
    ) -> Result<http::Response<RawBody>, super::forward::Unreachable> {
        bridge::send_bodiless(&self.pool, backends, plan, method, path, headers).await
    }

    fn buffers(&self) -> Buffers {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        spare.pop().unwrap_or_default()
    }

    fn give_back(&self, bufs: Buffers) {
        let size = bufs.up.capacity() + bufs.down.capacity() + bufs.out.capacity();
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_BUFFERS && size <= SPARE_MAX_BYTES {
            spare.push(bufs);
        }
    }
}

/// Who the connection is from, as the lane needs it.
pub(super) struct Client<'a> {
    pub addr: SocketAddr,
    pub secure: bool,
    /// Plain HTTP next to HTTPS: challenges and redirects are the hyper path's.
    pub redirect: Option<&'a Redirect>,
    /// Turns true when the edge drains: idle connections close, busy ones after the
    /// answer.
    pub draining: watch::Receiver<bool>,
}

/// Buffers reused from request to request of a connection.
#[derive(Default)]
struct Buffers {
    /// The request head for the instance.
    up: Vec<u8>,
    /// What the instance sent: the answer's head and the first of its body.
    down: Vec<u8>,
    /// What the client gets.
    out: Vec<u8>,
}

/// Serves `stream` until it ends (`None`), or until a request needs the hyper path:
/// then the stream is handed back with the bytes read from it and not yet served.
pub(super) async fn serve<S>(
    mut stream: S,
    mut client: Client<'_>,
    proxy: &Proxy,
) -> Option<(Vec<u8>, S)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    loop {
        let end = match read_head(&mut stream, &mut buf, &mut client.draining).await {
            Head::Complete(end) => end,
            Head::Closed => return None,
            Head::Other => return Some((buf, stream)),
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&buf[..end]), Ok(httparse::Status::Complete(n)) if n == end) {
            return Some((buf, stream));
        }
        let mut bufs = proxy.lane.buffers();
        let Some(exchange) = Exchange::prepare(&req, &client, proxy, &mut bufs.up) else {
            proxy.lane.give_back(bufs);
            return Some((buf, stream));
        };
        let keep = exchange
            .run(&mut stream, &mut buf, end, proxy, &client, &mut bufs)
            .await;
        proxy.lane.give_back(bufs);
        if !keep {
            return None;
        }
    }
}

enum Head {
    /// A head ends at this offset of the buffer.
    Complete(usize),
    /// The client left, was too slow, or the edge is draining an idle connection.
    Closed,
    /// Too long for a head: the hyper path refuses it.
    Other,
}

async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    draining: &mut watch::Receiver<bool>,
) -> Head {
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    loop {
        if let Some(end) = head_end(&[], buf) {
            return match end > MAX_HEAD {
                true => Head::Other,
                false => Head::Complete(end),
            };
        }
        if buf.len() > MAX_HEAD {
            return Head::Other;
        }
        if buf.is_empty() && *draining.borrow() {
            return Head::Closed;
        }
        buf.reserve(HEAD_READ);
        let idle = buf.is_empty();
        let read = tokio::select! {
            biased;
            read = stream.read_buf(buf) => read,
            _ = draining.wait_for(|d| *d), if idle => return Head::Closed,
            () = tokio::time::sleep_until(deadline) => return Head::Closed,
        };
        if !matches!(read, Ok(n) if n > 0) {
            return Head::Closed;
        }
    }
}

/// One request the lane takes, with what it needs once the head is gone.
struct Exchange {
    target: std::sync::Arc<Target>,
    /// The host as routed (for the edge's own pages).
    host: String,
    /// Content-Length of the request body.
    body: u64,
    idempotent: bool,
    /// A HEAD request: the answer has no body whatever it says.
    head: bool,
    /// The client said `Connection: close`.
    close: bool,
    request_id: HeaderValue,
    json: bool,
    key: Option<u64>,
    started: Instant,
}

/// What the lane takes of a request head, judged on the head alone: HTTP/1.1 with an
/// origin-form path, one Host, a body framed by one Content-Length (or none), nothing
/// it does not frame itself (`Transfer-Encoding`, `Upgrade`, `Expect`), and a
/// `Connection` header it can read. Anything else goes to the hyper path.
struct Admitted<'h> {
    method: &'h str,
    path: &'h str,
    raw_host: &'h [u8],
    /// The body's length as the client stated it.
    length: Option<u64>,
    id: Option<&'h [u8]>,
    accept: [&'h str; 4],
    accepts: usize,
    connection: Connection<'h>,
}

impl<'h> Admitted<'h> {
    fn of(req: &httparse::Request<'h, '_>) -> Option<Admitted<'h>> {
        let (method, path) = (req.method?, req.path?);
        if req.version != Some(1) || method == "CONNECT" || !path.starts_with('/') {
            return None;
        }
        let (mut host, mut length, mut id, mut accept) = (None, None, None, [""; 4]);
        let mut accepts = 0;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("host") {
                if host.replace(h.value).is_some() {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                let n = content_length(h.value)?;
                if length.replace(n).is_some_and(|b| b != n) {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("x-request-id") {
                id = Some(h.value);
            } else if name.eq_ignore_ascii_case("accept") {
                *accept.get_mut(accepts)? = std::str::from_utf8(h.value).ok()?;
                accepts += 1;
            } else if ["transfer-encoding", "upgrade", "expect"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                return None;
            }
        }
        Some(Admitted {
            method,
            path,
            raw_host: host?,
            length,
            id,
            accept,
            accepts,
            connection: Connection::of(req.headers)?,
        })
    }
}

impl Exchange {
    /// The exchange for `req` with its head for the instance in `up`, or `None` when
    /// the hyper path is to take it.
    fn prepare(
        req: &httparse::Request<'_, '_>,
        client: &Client<'_>,
        proxy: &Proxy,
        up: &mut Vec<u8>,
    ) -> Option<Exchange> {
        let Admitted {
            method,
            path,
            raw_host,
            length,
            id,
            accept,
            accepts,
            connection,
        } = Admitted::of(req)?;
        let name = host::name(raw_host).ok()?;
        if client.redirect.is_some_and(|r| r.intercepts(path, &name)) {
            return None;
        }
        let target = proxy.shared.table.load().lookup(&name)?.clone();
        let policy = target.policy();
        let hashed_on_request = policy.balance == Balance::ConsistentHash
            && policy
                .hash_on
                .as_deref()
                .is_some_and(|on| on != "client-ip");
        let body = length.unwrap_or(0);
        let max_body = policy.max_body_mb.unwrap_or(DEFAULT_MAX_BODY_MB) * 1024 * 1024;
        if policy.cors.is_some()
            || hashed_on_request
            || target.backends().is_empty()
            || body > max_body
        {
            return None;
        }
        // Last: a request let through counts against the limits.
        proxy.shared.limits.check(&target, client.addr.ip()).ok()?;
        let request_id = request_id_from(id);
        let stated = Stated {
            client: client.addr.ip(),
            secure: client.secure,
            host: raw_host,
            request_id: request_id.as_bytes(),
            length,
        };
        wire::request_head(up, req, &connection, &stated);
        let key = policy::client_key(policy, &http::HeaderMap::new(), client.addr.ip());
        Some(Exchange {
            host: name,
            body,
            idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS"),
            head: method == "HEAD",
            close: connection.close,
            request_id,
            json: accepts_json(&accept[..accepts]),
            key,
            target,
            started: Instant::now(),
        })
    }

    /// Sends the request on and the answer back; whether the connection goes on.
    async fn run<S>(
        self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        end: usize,
        proxy: &Proxy,
        client: &Client<'_>,
        bufs: &mut Buffers,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let timeout = proxy.shared.timeout(&self.target);
        let early = (buf.len() - end).min(self.body as usize);
        let mut request = Outgoing {
            head: &bufs.up,
            body: Body {
                early: &buf[end..end + early],
                left: self.body - early as u64,
                streamed: false,
            },
            idempotent: self.idempotent,
        };
        let plan = proxy.shared.backends.plan(&self.target, self.key);
        let (pool, backends) = (&proxy.lane.pool, &proxy.shared.backends);
        let sent = send(pool, backends, plan, &mut request, stream, &mut bufs.down);
        let (answer, failure) = match tokio::time::timeout(timeout, sent).await {
            Ok(Ok(answer)) => (Some(answer), None),
            Ok(Err(Failed::ClientGone)) => return false,
            Ok(Err(Failed::Unreachable(error))) => {
                tracing::warn!(host = %self.host, %error, "no instance answered");
                self.target
                    .metrics()
                    .upstream_error(UpstreamError::Unreachable);
                let problem = Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    format!("the app at {} did not answer", self.host),
                );
                (None, Some(problem))
            }
            Err(_) => {
                tracing::warn!(host = %self.host, "no answer from the app in time");
                self.target.metrics().upstream_error(UpstreamError::Timeout);
                let problem = Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    format!(
                        "the app at {} did not answer within {} s",
                        self.host,
                        timeout.as_secs_f64()
                    ),
                );
                (None, Some(problem))
            }
        };
        // The rest of an unsent body is still on the wire: the connection cannot go on.
        let unread = request.body.left > 0;
        buf.drain(..end + early);
        let keep = match (answer, failure) {
            (Some(answer), _) => self.relay(answer, stream, proxy, client, bufs).await,
            (None, Some(problem)) => {
                let close = unread;
                self.answer(&problem, stream, client, bufs, close).await && !close
            }
            (None, None) => false,
        };
        keep && !self.close && !*client.draining.borrow()
    }

    /// The edge's own page for `problem`, counted in the route's metrics; whether it
    /// was written.
    async fn answer<S: AsyncWrite + Unpin>(
        &self,
        problem: &Problem,
        stream: &mut S,
        client: &Client<'_>,
        bufs: &mut Buffers,
        close: bool,
    ) -> bool {
        self.target
            .metrics()
            .request(problem.status, self.started.elapsed());
        bufs.out.clear();
        let policy = self.target.policy();
        let (id, json) = (&self.request_id, self.json);
        wire::problem(
            &mut bufs.out,
            problem,
            id,
            json,
            policy,
            client.secure,
            close,
        );
        write(stream, &bufs.out).await
    }

    /// Passes the answer in `bufs.down` (and the rest of its body) to the client.
    async fn relay<S>(
        &self,
        answer: Answer,
        stream: &mut S,
        proxy: &Proxy,
        client: &Client<'_>,
        bufs: &mut Buffers,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Answer {
            mut upstream,
            candidate,
            head_len,
        } = answer;
        let backends = &proxy.shared.backends;
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let parsed = res.parse(&bufs.down[..head_len]);
        let framing = match parsed {
            Ok(httparse::Status::Complete(_)) => wire::framing(&res, self.head),
            _ => None,
        };
        let (Some(framing), Some(code)) = (framing, res.code) else {
            backends.failed(&candidate, false);
            tracing::warn!(backend = %candidate.addr, "an instance answered with a malformed head");
            let problem = Problem::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!("the app at {} answered with malformed HTTP", self.host),
            );
            return self.answer(&problem, stream, client, bufs, false).await;
        };
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        match status {
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => backends.failed(&candidate, false),
            _ => backends.succeeded(&candidate),
        }
        let upstream_close =
            res.version != Some(1) || Connection::of(res.headers).is_none_or(|c| c.close);
        let close = self.close || framing == Framing::UntilClose || *client.draining.borrow();
        bufs.out.clear();
        let policy = self.target.policy();
        wire::response_head(
            &mut bufs.out,
            &res,
            framing,
            policy,
            client.secure,
            self.request_id.as_bytes(),
            close,
        );
        self.target
            .metrics()
            .request(status, self.started.elapsed());
        let Relayed { whole, clean } =
            pass_body(framing, &mut upstream.stream, stream, head_len, bufs).await;
        if whole && clean && !upstream_close {
            proxy.lane.pool.checkin(candidate.addr, upstream.stream);
        }
        whole && !close
    }
}
