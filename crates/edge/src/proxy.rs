//! The L7 proxy: HTTP/1.1 and HTTP/2 from clients, routed by Host to a healthy instance
//! of the target, answered by the edge itself when it cannot be.

mod accept;
mod balance;
mod cors;
mod express;
mod forward;
mod guard;
mod hop;
mod host;
mod https;
mod idle;
mod page;
mod policy;
mod ports;
mod relay;
mod rewind;
mod serve;
mod upgrade;
mod wake;

/// The express lane's head property, for `crate::fuzzing`.
#[cfg(fuzzing)]
pub(crate) fn express_head_check(data: &[u8]) {
    express::head_check::check(data);
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{CONNECTION, HeaderName, ORIGIN, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use tokio::sync::watch;
use zeitwork_core::RoutePolicy;

use crate::Cidr;
use crate::metrics::{RouteMetrics, UpstreamError};
use crate::table::{RoutingTable, Target};
use balance::Backends;
use forward::{Forwarded, Upstream};
use guard::Verdict;
pub(crate) use https::Redirect;
use page::Problem;
use policy::Limits;
pub(crate) use serve::serve;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Request bodies are cut beyond this unless the route says otherwise.
const DEFAULT_MAX_BODY_MB: u64 = 100;

/// An app's answer body: from hyper's client, or read by the express lane's bridge.
type FromApp = Either<Incoming, express::RawBody>;
type Body = Either<FromApp, Full<Bytes>>;

/// What every worker of an edge shares: the table, and what the edge has seen of
/// instances (failures, requests in flight) and of clients (rate limits).
pub(crate) struct Shared {
    table: Arc<ArcSwap<RoutingTable>>,
    upstream_timeout: Duration,
    backends: Backends,
    limits: Limits,
    /// Peers whose PROXY v2 header says who the client is.
    trusted_proxies: Vec<Cidr>,
    /// The seq of every table swapped in: workers open and close `tcp` route ports.
    swapped: watch::Sender<i64>,
    /// Requests waiting for a process scaled to zero.
    wakes: wake::Wakes,
}

impl Shared {
    pub(crate) fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        upstream_timeout: Duration,
        trusted_proxies: Vec<Cidr>,
        store: zeitwork_store::Store,
    ) -> Shared {
        let swapped = watch::Sender::new(table.load().seq());
        Shared {
            table,
            upstream_timeout,
            backends: Backends::new(),
            limits: Limits::new(),
            trusted_proxies,
            swapped,
            wakes: wake::Wakes::new(store),
        }
    }

    /// Whether a connection from `peer` starts with a PROXY v2 header to believe.
    fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(peer))
    }

    /// How long a request to `target` may wait for its answer (and for its process to
    /// wake): the route's `timeout`, else the edge's.
    pub(crate) fn timeout(&self, target: &Target) -> Duration {
        target
            .policy()
            .timeout
            .map_or(self.upstream_timeout, |t| t.as_duration())
    }

    /// Requests in flight right now, and sent ever, per instance (for [`crate::load`]).
    pub(crate) fn load(&self) -> Vec<(std::net::SocketAddr, u32, u64)> {
        self.backends.load()
    }

    /// Swaps `table` in, forgets what the edge kept about instances and routes it no
    /// longer has, and tells the workers.
    pub(crate) fn publish(&self, table: RoutingTable) {
        self.backends.retain(&table);
        self.limits.retain(&table);
        let seq = table.seq();
        self.table.store(Arc::new(table));
        self.swapped.send_replace(seq);
    }
}

/// One worker's proxy: the shared state, and upstream connections of its own (they
/// belong to the worker's runtime).
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    upstream: Upstream,
    /// The express lane's connections to instances and buffers.
    lane: express::Lane,
}

/// One client connection.
struct Conn {
    /// The client: the TCP peer, or the source a trusted load balancer's PROXY header
    /// names. What X-Forwarded-For, rate limits and consistent hashing go by.
    client: SocketAddr,
    /// Arrived over TLS.
    secure: bool,
    /// The framing guard's findings (HTTP/1.1 only; HTTP/2 framing is hyper's).
    verdict: Option<Arc<Verdict>>,
    /// On plain HTTP when HTTPS is served too: ACME challenges and redirects.
    redirect: Option<Arc<Redirect>>,
    /// Requests seen so far, to find the one the guard refused.
    requests: AtomicU64,
    /// `client`'s IP as a header value, made once for all its requests.
    client_header: HeaderValue,
}

impl Proxy {
    pub(crate) fn new(shared: Arc<Shared>) -> Proxy {
        Proxy {
            shared,
            upstream: Upstream::new(),
            lane: express::Lane::default(),
        }
    }

    async fn handle(&self, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let started = Instant::now();
        let origin = req.headers().get(ORIGIN).cloned();
        let (mut response, target) = self.respond(req, conn).await;
        static DEFAULT: std::sync::LazyLock<RoutePolicy> =
            std::sync::LazyLock::new(RoutePolicy::default);
        let policy = target.as_ref().map_or(&*DEFAULT, |t| t.policy());
        policy::security_headers(response.headers_mut(), policy, conn.secure);
        if let Some(cors) = &policy.cors {
            cors::decorate(origin.as_ref(), cors, response.headers_mut());
        }
        // Only routed hosts become labels: a client cannot grow the metrics with made-up names.
        let metrics = match &target {
            Some(target) => target.metrics(),
            None => RouteMetrics::unrouted(),
        };
        metrics.request(response.status(), started.elapsed());
        response
    }

    /// The answer, and the target it was routed to (if it was).
    async fn respond(
        &self,
        req: Request<Incoming>,
        conn: &Conn,
    ) -> (Response<Body>, Option<Arc<Target>>) {
        let index = conn.requests.fetch_add(1, Ordering::Relaxed);
        let id = request_id(req.headers());
        let json = page::prefers_json(req.headers());
        let answer = |problem: Problem| page::render(&problem, &id, json).map(Either::Right);
        if let Some(refusal) = conn.verdict.as_ref().and_then(|v| v.refused(index)) {
            tracing::info!(client = %conn.client, ?refusal, "refused a request before routing it");
            let mut response = answer(refusal.problem());
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return (response, None);
        }
        if req.method() == Method::CONNECT {
            let problem = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the edge is not a forward proxy",
            );
            return (answer(problem), None);
        }
        let host = match host::of(&req) {
            Ok(host) => host,
            Err(e) => {
                let problem = Problem::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string());
                return (answer(problem), None);
            }
        };
        if let Some(own) = conn
            .redirect
            .as_ref()
            .and_then(|r| r.answer(&req, &host.name))
        {
            return (own.map(Either::Right), None);
        }
        let Some(target) = self.shared.table.load().lookup(&host.name).cloned() else {
            let problem = Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no app is served at {}", host.name),
            );
            return (answer(problem), None);
        };
        // A process scaled to zero: the request waits for an instance to wake.
        let target = match self.awake(&host.name, target, &answer).await {
            Ok(target) => target,
            Err((response, target)) => return (response, Some(target)),
        };
        let response = self.forward(req, conn, &host, &target, &id, &answer).await;
        (response, Some(target))
    }

    /// The target to send to: `target` itself, unless its process is scaled to zero and
    /// has no instance yet, then the same host's target once one is healthy; or the 503
    /// (with Retry-After) when none is within the route's timeout.
    async fn awake(
        &self,
        host: &str,
        target: Arc<Target>,
        answer: &impl Fn(Problem) -> Response<Body>,
    ) -> Result<Arc<Target>, (Response<Body>, Arc<Target>)> {
        if target.wakes().is_none() || !target.backends().is_empty() {
            return Ok(target);
        }
        let within = self.shared.timeout(&target);
        let shared = &self.shared;
        match shared
            .wakes
            .wait(&shared.table, &shared.swapped, host, &target, within)
            .await
        {
            Some(woken) => Ok(woken),
            None => {
                let mut response = answer(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "waking",
                    format!(
                        "{host} is starting after being idle and was not ready within {} s; try again shortly",
                        within.as_secs()
                    ),
                ));
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
                Err((response, target))
            }
        }
    }

    /// A request for a routed host: the route's policy, then the app.
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &Conn,
        host: &host::Host,
        target: &Target,
        id: &HeaderValue,
        answer: &impl Fn(Problem) -> Response<Body>,
    ) -> Response<Body> {
        let policy = target.policy();
        if let Some(preflight) = policy.cors.as_ref().and_then(|c| cors::preflight(&req, c)) {
            return preflight.map(Either::Right);
        }
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
        if let Err(wait) = self.shared.limits.check(target, conn.client.ip()) {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = answer(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests to {}; retry in {seconds} s", host.name),
            ));
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            return response;
        }
        let max_body = policy.max_body_mb.unwrap_or(DEFAULT_MAX_BODY_MB) as usize * 1024 * 1024;
        let too_large = || {
            answer(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request bodies to {} are limited to {max_body} bytes",
                    host.name
                ),
            ))
        };
        if req.body().size_hint().lower() > max_body as u64 {
            return too_large();
        }
        let key = policy::client_key(policy, req.headers(), conn.client.ip());
        let plan = self.shared.backends.plan(target, key);
        let upgrade = upgrade::requested(&req);
        let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let forwarded = Forwarded {
            client: &conn.client_header,
            host: &host.raw,
            request_id: id,
            secure: conn.secure,
            upgrade: upgrade.as_ref(),
        };
        let timeout = self.shared.timeout(target);
        let sent = self.upstream.send(
            &self.lane,
            plan,
            &self.shared.backends,
            req,
            forwarded,
            max_body,
        );
        match tokio::time::timeout(timeout, sent).await {
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
                response.headers_mut().insert(REQUEST_ID, id.clone());
                response
            }
            Err(_) => {
                tracing::warn!(host = %host.name, "no answer from the app in time");
                target.metrics().upstream_error(UpstreamError::Timeout);
                answer(Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    format!(
                        "the app at {} did not answer within {} s",
                        host.name,
                        timeout.as_secs_f64()
                    ),
                ))
            }
            Ok(Err(e)) if e.body_too_large => too_large(),
            Ok(Err(e)) => {
                tracing::warn!(host = %host.name, error = %e.error, "no instance answered");
                target.metrics().upstream_error(UpstreamError::Unreachable);
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
    request_id_from(headers.get(REQUEST_ID).map(HeaderValue::as_bytes))
}

/// [`request_id`] from the header's value.
fn request_id_from(value: Option<&[u8]>) -> HeaderValue {
    value
        .filter(|v| (1..=128).contains(&v.len()) && v.iter().all(|b| b.is_ascii_graphic()))
        .and_then(|v| HeaderValue::from_bytes(v).ok())
        .unwrap_or_else(new_request_id)
}

/// A UUIDv7 from the thread's user-space generator: `Uuid::now_v7` asks the kernel for
/// randomness on every call, a system call per request.
fn new_request_id() -> HeaderValue {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a header value")
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
