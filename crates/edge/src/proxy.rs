//! The L7 proxy: HTTP/1.1 from clients, routed by Host to a healthy instance of the
//! target, answered by the edge itself when it cannot be.

mod forward;
mod guard;
mod host;
mod page;

use std::convert::Infallible;
use std::future::Future;
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
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::EdgeError;
use crate::table::RoutingTable;
use forward::{Forwarded, Upstream};
use guard::{Guarded, Verdict};
use page::Problem;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// A client that has not sent a whole head by then is dropped (slowloris).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of file descriptors, …) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

type Body = Either<Incoming, Full<Bytes>>;

pub(crate) struct Proxy {
    table: Arc<ArcSwap<RoutingTable>>,
    upstream: Upstream,
}

/// One client connection.
struct Conn {
    peer: SocketAddr,
    verdict: Arc<Verdict>,
    /// Requests seen so far, to find the one the guard refused.
    requests: AtomicU64,
}

pub(crate) async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) -> Result<(), EdgeError> {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let verdict = Arc::new(Verdict::default());
        let conn = Arc::new(Conn {
            peer,
            verdict: verdict.clone(),
            requests: AtomicU64::new(0),
        });
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let (proxy, conn) = (proxy.clone(), conn.clone());
            async move { Ok::<_, Infallible>(proxy.handle(req, &conn).await) }
        });
        let io = TokioIo::new(Guarded::new(stream, verdict));
        let connection = graceful.watch(http.serve_connection(io, service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        connections.shutdown().await;
        return Err(EdgeError::Drain(drain_timeout));
    }
    Ok(())
}

impl Proxy {
    pub(crate) fn new(table: Arc<ArcSwap<RoutingTable>>) -> Proxy {
        Proxy {
            table,
            upstream: Upstream::new(),
        }
    }

    async fn handle(&self, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let index = conn.requests.fetch_add(1, Ordering::Relaxed);
        let id = request_id(req.headers());
        let json = page::prefers_json(req.headers());
        let answer = |problem: Problem| page::render(&problem, &id, json).map(Either::Right);
        if let Some(refusal) = conn.verdict.refused(index) {
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
        let forwarded = Forwarded {
            client: conn.peer.ip(),
            host: &host.raw,
            request_id: &id,
        };
        match self.upstream.send(&target, req, forwarded).await {
            Ok(response) => {
                let mut response = response.map(Either::Left);
                response.headers_mut().insert(REQUEST_ID, id);
                response
            }
            Err(e) => {
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
