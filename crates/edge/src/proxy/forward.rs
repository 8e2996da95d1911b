//! Sending a request on to an instance over pooled connections, and trying another
//! instance when that is safe: a request that never left (the connection could not be
//! made) goes to the next instance, so a dead instance is not shown to clients while
//! another healthy one exists; an idempotent request that failed after it left is tried
//! once more elsewhere. Either only when the body is empty, since a body that was
//! streamed cannot be sent again.

use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderName, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Limited};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::FromApp;
use super::REQUEST_ID;
use super::balance::{Backends, Candidate};
use super::express::Lane;
use super::hop::{CLIENT_CLAIMS, removable};

/// Instances sit on the nodes' private networks: a connection that takes longer than
/// this is not coming.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle upstream connections are kept this long for the next request.
const POOL_IDLE: Duration = Duration::from_secs(60);

type UpstreamBody = Either<Limited<Incoming>, Empty<Bytes>>;
/// How `http_body_util::Limited` says a body was over its limit.
const BODY_LIMIT_ERROR: &str = "length limit exceeded";

/// What the edge adds about the client; a client's own claims are replaced: the only
/// thing in front of the edge it believes is a trusted load balancer's PROXY header,
/// which has already made `client` the real client.
pub(crate) struct Forwarded<'a> {
    /// The client's address, as `X-Forwarded-For` says it.
    pub client: &'a HeaderValue,
    pub host: &'a HeaderValue,
    pub request_id: &'a HeaderValue,
    /// The client came over TLS.
    pub secure: bool,
    /// The protocol the client asks to switch to, passed on to the app.
    pub upgrade: Option<&'a HeaderValue>,
}

/// No instance answered.
#[derive(Debug)]
pub(crate) struct Unreachable {
    /// The last failure, with its causes.
    pub error: String,
    /// The request body was over the route's limit.
    pub body_too_large: bool,
}

pub(crate) struct Upstream {
    client: Client<HttpConnector, UpstreamBody>,
}

impl Upstream {
    pub(crate) fn new() -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Upstream { client }
    }

    /// Sends `req` to the first instance of `plan`, and on to the next where that is
    /// safe; what happens is told to `backends`. A body over `max_body` bytes is cut.
    /// Requests without a body (nor an upgrade) go over the express lane's pool.
    pub(crate) async fn send(
        &self,
        lane: &Lane,
        plan: Vec<Candidate>,
        backends: &Backends,
        req: Request<Incoming>,
        forwarded: Forwarded<'_>,
        max_body: usize,
    ) -> Result<Response<FromApp>, Unreachable> {
        let (parts, body) = req.into_parts();
        let replayable = body.is_end_stream();
        let idempotent = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let headers = upstream_headers(parts.headers, &forwarded, body.size_hint().exact());
        if replayable && forwarded.upgrade.is_none() {
            let sent = lane.send_bodiless(backends, plan, &parts.method, &path, &headers);
            return Ok(sent.await?.map(Either::Right));
        }
        let mut body = Some(Limited::new(body, max_body));
        let (mut retried, mut last) = (false, String::new());
        for candidate in plan {
            let backend = candidate.addr;
            let body = body
                .take()
                .map_or(Either::Right(Empty::new()), Either::Left);
            let req = request(&parts.method, backend, &path, headers.clone(), body);
            let in_flight = backends.begin(&candidate);
            let sent = self.client.request(req).await;
            drop(in_flight);
            let error = match sent {
                Ok(mut response) => {
                    match response.status() {
                        StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT => backends.failed(&candidate, false),
                        _ => backends.succeeded(&candidate),
                    }
                    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                    let protocol = response.headers().get(UPGRADE).cloned();
                    // The chunks framed it: a length beside them goes (RFC 9112, 6.3).
                    if response.headers().contains_key(TRANSFER_ENCODING) {
                        response.headers_mut().remove(CONTENT_LENGTH);
                    }
                    strip_hop_by_hop(response.headers_mut());
                    if let (true, Some(protocol)) = (switched, protocol) {
                        mark_upgrade(response.headers_mut(), protocol);
                    }
                    return Ok(response.map(Either::Left));
                }
                Err(e) => e,
            };
            let connect = error.is_connect();
            last = chain(&error);
            if last.contains(BODY_LIMIT_ERROR) {
                return Err(Unreachable {
                    error: last,
                    body_too_large: true,
                });
            }
            backends.failed(&candidate, connect);
            tracing::warn!(%backend, connect, error = %last, "upstream request failed");
            let again = replayable && (connect || (idempotent && !retried));
            if !again {
                break;
            }
            retried |= !connect;
        }
        Err(Unreachable::after(last))
    }
}

impl Unreachable {
    /// No instance answered; `error` is the last failure.
    pub(crate) fn after(error: String) -> Unreachable {
        Unreachable {
            error,
            body_too_large: false,
        }
    }
}

fn request(
    method: &Method,
    backend: SocketAddr,
    path: &PathAndQuery,
    headers: HeaderMap,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(backend.to_string())
        .path_and_query(path.clone())
        .build()
        .expect("a socket address and a parsed path make a URI");
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    req
}

/// The client's headers minus hop-by-hop ones and the client's own claims, plus the
/// edge's `X-Forwarded-*` and request id. The Host header stays: apps see the name they
/// were called by (over HTTP/2, which names it in `:authority`, it is made from that).
/// A Content-Length the client sent is stated once, as the body's `length`, as the
/// express lane states it.
fn upstream_headers(
    mut headers: HeaderMap,
    forwarded: &Forwarded<'_>,
    length: Option<u64>,
) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    if !headers.contains_key(HOST) {
        headers.insert(HOST, forwarded.host.clone());
    }
    if headers.contains_key(CONTENT_LENGTH) {
        match length {
            Some(length) => headers.insert(CONTENT_LENGTH, HeaderValue::from(length)),
            None => headers.remove(CONTENT_LENGTH),
        };
    }
    for claim in CLIENT_CLAIMS {
        headers.remove(claim);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-for"),
        forwarded.client.clone(),
    );
    let proto = if forwarded.secure { "https" } else { "http" };
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    headers.insert(
        HeaderName::from_static("x-forwarded-host"),
        forwarded.host.clone(),
    );
    headers.insert(REQUEST_ID, forwarded.request_id.clone());
    if let Some(protocol) = forwarded.upgrade {
        mark_upgrade(&mut headers, protocol.clone());
    }
    headers
}

/// The two hop-by-hop headers an upgrade needs on each hop.
fn mark_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// The hop-by-hop headers `http` has names for (`keep-alive` and `proxy-connection` are
/// matched by text).
const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Headers that describe one connection, not the message (RFC 9110, 7.6.1), including
/// those the Connection header names, unless they frame or route it ([`removable`]).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names instead of eleven removals.
    let hop = |name: &HeaderName| {
        HOP_BY_HOP.contains(name) || name == "keep-alive" || name == "proxy-connection"
    };
    if !headers.keys().any(hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().as_bytes())
        .filter(|name| removable(name))
        .filter_map(|name| HeaderName::from_bytes(name).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(HeaderName::from_static("keep-alive"));
    headers.remove(HeaderName::from_static("proxy-connection"));
}

/// An error and its causes, `outer: inner: root` (hyper's own message is only "client error").
fn chain(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_the_edge_states_the_client() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
            ("accept", "*/*"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let host = HeaderValue::from_static("Shop.Test:8080");
        let id = HeaderValue::from_static("req-1");
        let forwarded = Forwarded {
            client: &HeaderValue::from_static("192.0.2.7"),
            host: &host,
            request_id: &id,
            secure: false,
            upgrade: None,
        };
        let out = upstream_headers(headers, &forwarded, None);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "forwarded",
            "x-real-ip",
            "true-client-ip",
        ] {
            assert!(!names.contains(&gone), "{gone} was forwarded: {names:?}");
        }
        assert_eq!(out["x-forwarded-for"], "192.0.2.7");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "Shop.Test:8080");
        assert_eq!(out["x-request-id"], "req-1");
        assert_eq!(out["accept"], "*/*");
    }

    #[test]
    fn connection_cannot_name_away_framing_and_lengths_are_stated_once() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "content-length, host, x-secret"),
            ("host", "a.test"),
            ("content-length", "05"),
            ("content-length", "5"),
            ("x-secret", "1"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let (host, id) = (
            HeaderValue::from_static("b.test"),
            HeaderValue::from_static("r"),
        );
        let forwarded = Forwarded {
            client: &HeaderValue::from_static("192.0.2.7"),
            host: &host,
            request_id: &id,
            secure: false,
            upgrade: None,
        };
        let out = upstream_headers(headers, &forwarded, Some(5));
        assert_eq!(out["host"], "a.test", "the client's Host stays");
        let lengths: Vec<_> = out.get_all(CONTENT_LENGTH).iter().collect();
        assert_eq!(lengths, ["5"]);
        assert!(!out.contains_key("x-secret"));
    }
}
