//! HTTP access to the operator API: bearer auth, path escaping, idempotent POSTs with
//! one retry, and mapping of every failure onto [`CliError`] (hence onto exit codes).

use std::error::Error as _;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeitwork_api_types::MAX_LIMIT;

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

    /// GETs `segments` and decodes the answer as a `T`.
    pub async fn get<T: DeserializeOwned>(&self, segments: &[String]) -> Result<T> {
        self.get_query(segments, &[]).await
    }

    /// GETs `segments` with query parameters and decodes the answer as a `T`.
    pub async fn get_query<T: DeserializeOwned>(
        &self,
        segments: &[String],
        query: &[(&str, String)],
    ) -> Result<T> {
        self.call(Method::GET, self.url(segments, query), None::<&()>)
            .await
    }

    /// Every row of a list: page after page, each asked for after the previous one's
    /// `next`, until a page has none. The answer is one page holding them all, as
    /// `--json` prints it.
    pub async fn list<P: Page>(&self, segments: &[String]) -> Result<P> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", MAX_LIMIT.to_string())];
            query.extend(after.iter().map(|a| ("after", a.clone())));
            let (mut page, next) = self.get_query::<P>(segments, &query).await?.into_parts();
            rows.append(&mut page);
            match next {
                None => return Ok(P::last(rows)),
                Some(next) if after.as_deref() == Some(next.as_str()) => {
                    return Err(CliError::Protocol(format!(
                        "a page of {} names itself as the next one ({next:?})",
                        P::ROWS
                    )));
                }
                Some(next) => after = Some(next),
            }
        }
    }

    /// POSTs `body` with a fresh `Idempotency-Key`, reused if the request has to be
    /// retried, and decodes the answer as a `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[String],
        body: &B,
    ) -> Result<T> {
        self.call(Method::POST, self.url(segments, &[]), Some(body))
            .await
    }

    /// POSTs an action that takes no body (`{}`: cancel, verify, drain), like [`Client::post`].
    pub async fn post_empty<T: DeserializeOwned>(&self, segments: &[String]) -> Result<T> {
        self.post(segments, &NoBody {}).await
    }

    /// PUTs `body` and decodes the answer as a `T`.
    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[String],
        body: &B,
    ) -> Result<T> {
        self.call(Method::PUT, self.url(segments, &[]), Some(body))
            .await
    }

    /// DELETEs `segments` (the API answers 204, without a body).
    pub async fn delete(&self, segments: &[String]) -> Result<()> {
        self.delete_with(segments, &[]).await
    }

    /// `DELETE` with query parameters.
    pub async fn delete_with(&self, segments: &[String], query: &[(&str, String)]) -> Result<()> {
        self.send(Method::DELETE, self.url(segments, query), None::<&()>)
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

    /// Sends one request and decodes its answer as a `T`.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T> {
        let what = format!("the answer to {method} {}", url.path());
        let answer = self.send(method, url, body).await?;
        decode(&what, &answer)
    }

    /// Sends one request, retrying once when the connection failed; the body of its
    /// successful answer. A retry is safe: either the request never left (connect error),
    /// or it is a POST carrying the same `Idempotency-Key`, which the API answers without
    /// acting twice.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<Vec<u8>> {
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

    /// The body of a successful answer; any other status is the error it describes.
    async fn answer(&self, response: Response) -> Result<Vec<u8>> {
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(CliError::from_answer(status.as_u16(), &body));
        }
        Ok(Vec::from(body))
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

/// `{}`: the body of a POST that needs none.
#[derive(Serialize)]
struct NoBody {}

/// Decodes `json` (`what` names it, e.g. `the answer to GET /api/v1/whoami`) as a `T`;
/// anything else is a [`CliError::Protocol`] saying what was expected.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, json: &[u8]) -> Result<T> {
    serde_json::from_slice(json).map_err(|e| {
        let full = std::any::type_name::<T>();
        let name = full.rsplit("::").next().unwrap_or(full);
        CliError::Protocol(format!("{what} is not a valid {name}: {e}"))
    })
}

pub use zeitwork_api_types::Page;

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
    use std::sync::{Arc, Mutex};

    use super::*;
    use zeitwork_api_types as api;

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
        let body = api::NewName { name: "a".into() };
        let e = c
            .post::<_, api::Org>(&segs(&["orgs"]), &body)
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

    /// A STAND-IN server answering `GET /api/v1/orgs` in pages of one org, each page
    /// after `?after=` the previous org's name; org `loop` names itself as the next page.
    async fn paging_server(orgs: &'static [&'static str]) -> (Client, Arc<Mutex<Vec<String>>>) {
        use axum::extract::RawQuery;

        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = asked.clone();
        let router = axum::Router::new().route(
            "/api/v1/orgs",
            axum::routing::get(move |RawQuery(query): RawQuery| async move {
                let query = query.unwrap_or_default();
                log.lock().unwrap().push(query.clone());
                let after = query.split('&').find_map(|p| p.strip_prefix("after="));
                let at = after.map_or(0, |a| {
                    orgs.iter()
                        .position(|o| *o == a)
                        .map_or(orgs.len(), |i| i + 1)
                });
                let page = &orgs[at.min(orgs.len())..];
                let rows: Vec<_> = page
                    .iter()
                    .take(1)
                    .map(|name| {
                        serde_json::json!({
                            "id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d",
                            "name": name,
                            "created_at": "2025-01-02T03:04:05Z",
                        })
                    })
                    .collect();
                let next = match page {
                    [one, _, ..] => Some(*one),
                    ["loop"] => after,
                    _ => None,
                };
                axum::Json(serde_json::json!({ "orgs": rows, "next": next }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (Client::new(&format!("http://{addr}"), "t").unwrap(), asked)
    }

    #[tokio::test]
    async fn lists_follow_next_until_the_last_page() {
        let (c, asked) = paging_server(&["a", "b", "c"]).await;
        let all: api::OrgList = c.list(&segs(&["orgs"])).await.unwrap();
        let names: Vec<&str> = all.orgs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!((names, all.next), (vec!["a", "b", "c"], None));
        assert_eq!(
            *asked.lock().unwrap(),
            ["limit=500", "limit=500&after=a", "limit=500&after=b"]
        );

        let (c, _) = paging_server(&["a", "loop"]).await;
        let e = c.list::<api::OrgList>(&segs(&["orgs"])).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected answer from the API: a page of orgs names itself as the next one (\"a\")"
        );
    }

    #[tokio::test]
    async fn answers_of_the_wrong_shape_say_what_was_expected() {
        let (c, _) = paging_server(&["a"]).await;
        let e = c.get::<api::Whoami>(&segs(&["orgs"])).await.unwrap_err();
        assert!(
            e.to_string().starts_with(
                "unexpected answer from the API: the answer to GET /api/v1/orgs is not a valid \
                 Whoami: "
            ) && e.to_string().lines().count() == 1,
            "{e}"
        );
        assert_eq!(e.exit_code(), crate::error::EXIT_FAILURE);
    }
}
