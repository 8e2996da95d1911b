//! HTTP access to the operator API: bearer auth, path escaping, idempotent POSTs with
//! one retry, and mapping of every failure onto [`CliError`] (hence onto exit codes).

use std::error::Error as _;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, Response, Url};
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::sse::{SseEvent, SseParser};

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for an ordinary request, answer included.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for requests that start rollouts (the API may resolve images first).
pub const SLOW_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause before the single retry after a connection error.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Pause before reopening a broken event stream.
const RECONNECT_PAUSE: Duration = Duration::from_secs(2);

/// A client for one API base URL and token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
    timeout: Duration,
}

impl Client {
    /// Fails with a usage error when `api` is not an http(s) URL.
    pub fn new(api: &str, token: &str) -> Result<Client> {
        let bad = |why: String| CliError::Usage(format!("invalid API URL {api:?}: {why}"));
        let base = Url::parse(api).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("expected http://HOST[:PORT] or https://…".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("zeitwork-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Protocol(format!("building the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token: token.to_owned(),
            timeout: TIMEOUT,
        })
    }

    /// The same client with another request timeout (deploys take longer).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// `BASE/api/v1/<segments>?<query>`, each segment percent-escaped (a `/` in a name
    /// cannot reach another path).
    pub fn url(&self, segments: &[String], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("checked in new: base URL can be a base")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub async fn get(&self, segments: &[String]) -> Result<Value> {
        self.send(Method::GET, self.url(segments, &[]), None).await
    }

    pub async fn get_query(&self, segments: &[String], query: &[(&str, String)]) -> Result<Value> {
        self.send(Method::GET, self.url(segments, query), None)
            .await
    }

    /// POST with a fresh `Idempotency-Key`, reused if the request has to be retried.
    pub async fn post(&self, segments: &[String], body: &Value) -> Result<Value> {
        self.send(Method::POST, self.url(segments, &[]), Some(body))
            .await
    }

    pub async fn put(&self, segments: &[String], body: &Value) -> Result<Value> {
        self.send(Method::PUT, self.url(segments, &[]), Some(body))
            .await
    }

    pub async fn delete(&self, segments: &[String]) -> Result<()> {
        self.delete_with(segments, &[]).await
    }

    /// `DELETE` with query parameters.
    pub async fn delete_with(&self, segments: &[String], query: &[(&str, String)]) -> Result<()> {
        self.send(Method::DELETE, self.url(segments, query), None)
            .await
            .map(drop)
    }

    /// Opens a Server-Sent Events stream (no overall timeout: it is meant to stay open).
    pub async fn stream(&self, url: Url, last_id: Option<&str>) -> Result<Response> {
        let mut request = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            Err(CliError::from_answer(status, &body))
        }
    }

    /// Opens a connection upgraded to exec frames at `segments`, authenticated with
    /// `token` (an exec grant's, not the login token).
    pub async fn upgrade(&self, segments: &[String], token: &str) -> Result<reqwest::Upgraded> {
        let response = self
            .http
            .get(self.url(segments, &[]))
            .bearer_auth(token)
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(
                reqwest::header::UPGRADE,
                zeitwork_core::exec::UPGRADE_PROTOCOL,
            )
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            return Err(CliError::from_answer(status, &body));
        }
        response.upgrade().await.map_err(|e| self.transport(e))
    }

    /// Follows a Server-Sent Events stream, handing each event to `each` until it answers
    /// false. An interrupted stream is reopened after a pause with `Last-Event-ID`, so the
    /// server resumes after the last event seen and nothing is lost or repeated. Only the
    /// first connection fails at once (a wrong URL or token is not retried forever).
    pub async fn follow(
        &self,
        url: Url,
        what: &str,
        mut each: impl FnMut(SseEvent) -> Result<bool>,
    ) -> Result<()> {
        let mut parser = SseParser::new();
        let mut connected_once = false;
        loop {
            let mut body = match self.stream(url.clone(), parser.last_id()).await {
                Ok(response) => response.bytes_stream(),
                Err(e @ (CliError::Unreachable { .. } | CliError::Timeout { .. }))
                    if connected_once =>
                {
                    eprintln!("warning: {e}; retrying");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            connected_once = true;
            while let Some(Ok(chunk)) = body.next().await {
                for event in parser.push(&chunk) {
                    if !each(event)? {
                        return Ok(());
                    }
                }
            }
            eprintln!("warning: the {what} stream was interrupted; reconnecting");
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    /// Sends one request, retrying once when the connection failed. A retry is safe: either
    /// the request never left (connect error), or it is a POST carrying the same
    /// `Idempotency-Key`, which the API answers without acting twice.
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Value> {
        let key = (method == Method::POST).then(|| uuid::Uuid::now_v7().to_string());
        let mut retried = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token)
                .timeout(self.timeout);
            if let Some(key) = &key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => return self.answer(response).await,
                Err(e) if !retried && (e.is_connect() || (key.is_some() && is_dropped(&e))) => {
                    retried = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(self.transport(e)),
            }
        }
    }

    async fn answer(&self, response: Response) -> Result<Value> {
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(CliError::from_answer(status.as_u16(), &body));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| {
            CliError::Protocol(format!("HTTP {status} with a body that is not JSON: {e}"))
        })
    }

    fn transport(&self, e: reqwest::Error) -> CliError {
        let url = self.base.as_str().trim_end_matches('/').to_owned();
        if e.is_timeout() {
            return CliError::Timeout {
                url,
                seconds: self.timeout.as_secs(),
            };
        }
        CliError::Unreachable {
            url,
            reason: root_cause(&e),
        }
    }
}

/// The request went out but the connection died before an answer (reset, closed).
fn is_dropped(e: &reqwest::Error) -> bool {
    e.is_request() && !e.is_timeout() && !e.is_builder()
}

/// The most specific description in an error chain: an OS error by its kind
/// ("connection refused"), else the innermost message (e.g. a DNS failure).
fn root_cause(e: &reqwest::Error) -> String {
    let mut innermost = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return if io.raw_os_error().is_some() {
                io.kind().to_string()
            } else {
                io.to_string()
            };
        }
        innermost = s.to_string();
        source = s.source();
    }
    innermost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn urls_escape_segments_and_keep_a_base_path() {
        let c = Client::new("http://h:1", "t").unwrap();
        assert_eq!(
            c.url(&segs(&["orgs", "a/b", "apps", "x y"]), &[]).as_str(),
            "http://h:1/api/v1/orgs/a%2Fb/apps/x%20y"
        );
        let c = Client::new("https://h/zw/", "t").unwrap();
        assert_eq!(
            c.url(&segs(&["events"]), &[("after", "5".into())]).as_str(),
            "https://h/zw/api/v1/events?after=5"
        );
    }

    #[test]
    fn bad_api_urls_are_usage_errors() {
        for bad in ["localhost:8080", "ftp://h", "not a url"] {
            let e = Client::new(bad, "t").unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{bad}: {e}");
        }
    }

    /// A STAND-IN stream that ends after one event, as a restarting server would.
    #[tokio::test]
    async fn a_broken_stream_resumes_after_the_last_event_seen() {
        use std::sync::{Arc, Mutex};

        use axum::http::HeaderMap;

        let asked: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let log = asked.clone();
        let router = axum::Router::new().route(
            "/api/v1/s",
            axum::routing::get(move |headers: HeaderMap| async move {
                let last = headers
                    .get("last-event-id")
                    .map(|v| v.to_str().unwrap().to_owned());
                log.lock().unwrap().push(last.clone());
                let next = last.map_or(1, |id| id.parse::<u32>().unwrap() + 1);
                format!("id: {next}\nevent: log\ndata: line {next}\n\n")
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let c = Client::new(&format!("http://{addr}"), "t").unwrap();
        let mut seen = Vec::new();
        c.follow(c.url(&segs(&["s"]), &[]), "test", |event| {
            seen.push(event.data);
            Ok(seen.len() < 3)
        })
        .await
        .unwrap();
        assert_eq!(seen, ["line 1", "line 2", "line 3"]);
        assert_eq!(
            *asked.lock().unwrap(),
            [None, Some("1".to_owned()), Some("2".to_owned())]
        );
    }

    #[tokio::test]
    async fn refused_connections_say_so() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = Client::new(&format!("http://127.0.0.1:{port}"), "t").unwrap();
        let e = c
            .post(&segs(&["orgs"]), &serde_json::json!({"name": "a"}))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot reach the Zeitwork API at http://127.0.0.1:{port}: connection refused \
                 (is `zeitwork up` running?)"
            )
        );
        assert_eq!(e.exit_code(), crate::error::EXIT_FAILURE);
    }
}
