//! The L7 proxy: HTTP/1.1 and HTTP/2 from clients, routed by Host to a healthy instance
//! of the target, answered by the edge itself when it cannot be.

mod forward;
mod guard;
mod host;
mod https;
mod page;
mod serve;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{CONNECTION, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::table::RoutingTable;
use forward::{Forwarded, Upstream};
use guard::Verdict;
pub(crate) use https::Redirect;
use page::Problem;
pub(crate) use serve::serve;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

type Body = Either<Incoming, Full<Bytes>>;

pub(crate) struct Proxy {
    table: Arc<ArcSwap<RoutingTable>>,
    upstream: Upstream,
    upstream_timeout: Duration,
}

/// One client connection.
struct Conn {
    peer: SocketAddr,
    /// Arrived over TLS.
    secure: bool,
    /// The framing guard's findings (HTTP/1.1 only; HTTP/2 framing is hyper's).
    verdict: Option<Arc<Verdict>>,
    /// On plain HTTP when HTTPS is served too: ACME challenges and redirects.
    redirect: Option<Arc<Redirect>>,
    /// Requests seen so far, to find the one the guard refused.
    requests: AtomicU64,
}

impl Proxy {
    pub(crate) fn new(table: Arc<ArcSwap<RoutingTable>>, upstream_timeout: Duration) -> Proxy {
        Proxy {
            table,
            upstream: Upstream::new(),
            upstream_timeout,
        }
    }

    async fn handle(&self, mut req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let index = conn.requests.fetch_add(1, Ordering::Relaxed);
        let id = request_id(req.headers());
        let json = page::prefers_json(req.headers());
        let answer = |problem: Problem| page::render(&problem, &id, json).map(Either::Right);
        if let Some(refusal) = conn.verdict.as_ref().and_then(|v| v.refused(index)) {
            tracing::info!(peer = %conn.peer, ?refusal, "refused a request before routing it");
            let mut response = answer(refusal.problem());
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        if req.method() == Method::CONNECT {
            return answer(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the edge is not a forward proxy",
            ));
        }
        let host = match host::of(&req) {
            Ok(host) => host,
            Err(e) => {
                return answer(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    e.to_string(),
                ));
            }
        };
        if let Some(answer) = conn
            .redirect
            .as_ref()
            .and_then(|r| r.answer(&req, &host.name))
        {
            return answer.map(Either::Right);
        }
        let Some(target) = self.table.load().lookup(&host.name).cloned() else {
            return answer(Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no app is served at {}", host.name),
            ));
        };
        if target.backends().is_empty() {
            return answer(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "{} has no healthy instance right now; try again shortly",
                    host.name
                ),
            ));
        }
        let upgrade = upgrade::requested(&req);
        let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let forwarded = Forwarded {
            client: conn.peer.ip(),
            host: &host.raw,
            request_id: &id,
            secure: conn.secure,
            upgrade: upgrade.as_ref(),
        };
        let sent = self.upstream.send(&target, req, forwarded);
        match tokio::time::timeout(self.upstream_timeout, sent).await {
            Ok(Ok(mut response)) => {
                if let Some(client_side) = client_side {
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        upgrade::tunnel(client_side, hyper::upgrade::on(&mut response));
                    } else {
                        // The guard let the bytes after this head pass unjudged.
                        response
                            .headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                }
                let mut response = response.map(Either::Left);
                response.headers_mut().insert(REQUEST_ID, id);
                response
            }
            Err(_) => {
                tracing::warn!(host = %host.name, "no answer from the app in time");
                answer(Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    format!(
                        "the app at {} did not answer within {} s",
                        host.name,
                        self.upstream_timeout.as_secs_f64()
                    ),
                ))
            }
            Ok(Err(e)) => {
                tracing::warn!(host = %host.name, attempts = e.attempts, error = %e.error, "no instance answered");
                answer(Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    format!("the app at {} did not answer", host.name),
                ))
            }
        }
    }
}

/// The client's request id when it is a sane token, else a new one; either way it goes
/// to the app and back to the client, so both sides can name the request.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            (1..=128).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .expect("a UUID is a header value")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        let made = request_id(&headers);
        assert_ne!(made, "has space");
        assert!(uuid::Uuid::parse_str(made.to_str().unwrap()).is_ok());
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
