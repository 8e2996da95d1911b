//! The agent's only way to the control plane: the operator's node API, authenticated
//! with the node credential. Behind a trait so the reconciler does not care how the
//! desired state arrives and tests can drive it directly.

use std::future::Future;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use zeitwork_core::node::{
    Enrolled, Enrollment, Heartbeat, HeartbeatAck, InstanceReport, LogBatch, NodeDesired,
};

/// Why a call to the operator failed; the agent keeps running on its last known state.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the operator at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the operator refused {what} ({status}): {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error("invalid operator URL {0:?}: expected http(s)://HOST[:PORT]")]
    BadUrl(String),
}

impl ControlError {
    /// Refused in a way a retry cannot change (4xx other than 401 and 429).
    pub fn is_permanent(&self) -> bool {
        matches!(self, ControlError::Refused { status, .. }
            if (400..500).contains(status) && *status != 401 && *status != 429)
    }

    /// A 401 means the credential is gone (node deleted or credential revoked).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ControlError::Refused { status: 401, .. })
    }
}

/// What the agent asks of the control plane.
pub trait ControlPlane: Send + Sync + 'static {
    fn heartbeat(
        &self,
        beat: &Heartbeat,
    ) -> impl Future<Output = Result<HeartbeatAck, ControlError>> + Send;
    fn desired(&self) -> impl Future<Output = Result<NodeDesired, ControlError>> + Send;
    fn report(
        &self,
        instance: Uuid,
        report: &InstanceReport,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
    fn ship_logs(&self, batch: &LogBatch) -> impl Future<Output = Result<(), ControlError>> + Send;
    fn report_build(
        &self,
        build: Uuid,
        report: &zeitwork_core::build::BuildReport,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
    /// Dials back for an exec whose client waits at the operator: the connection, upgraded
    /// to carry exec frames (see `zeitwork_core::exec`).
    fn attach_exec(
        &self,
        grant: Uuid,
    ) -> impl Future<Output = Result<reqwest::Upgraded, ControlError>> + Send;
}

/// The operator's HTTP API.
#[derive(Debug, Clone)]
pub struct HttpControl {
    http: reqwest::Client,
    /// For exec connections, which outlive any request timeout.
    exec_http: reqwest::Client,
    base: Url,
    node: String,
    credential: String,
}

const TIMEOUT: Duration = Duration::from_secs(15);

impl HttpControl {
    pub fn new(api: &str, node: &str, credential: &str) -> Result<HttpControl, ControlError> {
        Ok(HttpControl {
            http: client()?,
            exec_http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .http1_only()
                .build()
                .map_err(|e| ControlError::Unreachable {
                    url: api.to_owned(),
                    reason: e.to_string(),
                })?,
            base: base(api)?,
            node: node.to_owned(),
            credential: credential.to_owned(),
        })
    }

    /// Trades a one-time join token for this node's credential.
    pub async fn enroll(
        api: &str,
        join_token: &str,
        enrollment: &Enrollment,
    ) -> Result<Enrolled, ControlError> {
        let url = endpoint(&base(api)?, &["nodes", "enroll"]);
        call(
            &client()?,
            Method::POST,
            url,
            join_token,
            Some(enrollment),
            "enrollment",
        )
        .await
    }

    fn node_url(&self, rest: &[&str]) -> Url {
        let mut segments = vec!["nodes", self.node.as_str()];
        segments.extend_from_slice(rest);
        endpoint(&self.base, &segments)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        rest: &[&str],
        body: Option<&impl Serialize>,
        what: &str,
    ) -> Result<T, ControlError> {
        let url = self.node_url(rest);
        call(&self.http, method, url, &self.credential, body, what).await
    }
}

impl ControlPlane for HttpControl {
    async fn heartbeat(&self, beat: &Heartbeat) -> Result<HeartbeatAck, ControlError> {
        self.send(Method::POST, &["heartbeat"], Some(beat), "the heartbeat")
            .await
    }

    async fn desired(&self) -> Result<NodeDesired, ControlError> {
        self.send(Method::GET, &["desired"], None::<&()>, "the desired state")
            .await
    }

    async fn report(&self, instance: Uuid, report: &InstanceReport) -> Result<(), ControlError> {
        let id = instance.to_string();
        self.send::<serde_json::Value>(
            Method::POST,
            &["instances", &id, "state"],
            Some(report),
            "an instance report",
        )
        .await
        .map(drop)
    }

    async fn ship_logs(&self, batch: &LogBatch) -> Result<(), ControlError> {
        self.send::<serde_json::Value>(Method::POST, &["logs"], Some(batch), "log lines")
            .await
            .map(drop)
    }

    async fn attach_exec(&self, grant: Uuid) -> Result<reqwest::Upgraded, ControlError> {
        self.upgrade(grant).await
    }

    async fn report_build(
        &self,
        build: Uuid,
        report: &zeitwork_core::build::BuildReport,
    ) -> Result<(), ControlError> {
        let id = build.to_string();
        self.send::<serde_json::Value>(
            Method::POST,
            &["builds", &id, "state"],
            Some(report),
            "a build report",
        )
        .await
        .map(drop)
    }
}

impl HttpControl {
    async fn upgrade(&self, grant: Uuid) -> Result<reqwest::Upgraded, ControlError> {
        let url = self.node_url(&["execs", &grant.to_string()]);
        let unreachable = |e: reqwest::Error| ControlError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        };
        // No overall timeout: the connection lives as long as the exec.
        let response = self
            .exec_http
            .get(url.clone())
            .bearer_auth(&self.credential)
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(
                reqwest::header::UPGRADE,
                zeitwork_core::exec::UPGRADE_PROTOCOL,
            )
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let body = response.text().await.unwrap_or_default();
            return Err(ControlError::Refused {
                what: format!("attaching exec {grant}"),
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
            });
        }
        response.upgrade().await.map_err(unreachable)
    }
}

fn client() -> Result<reqwest::Client, ControlError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        .user_agent(concat!("zeitwork-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ControlError::Unreachable {
            url: String::new(),
            reason: e.to_string(),
        })
}

fn base(api: &str) -> Result<Url, ControlError> {
    Url::parse(api)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
        .ok_or_else(|| ControlError::BadUrl(api.to_owned()))
}

/// `BASE/api/v1/<segments>`, each segment escaped.
fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("checked in base(): can be a base")
        .pop_if_empty()
        .extend(["api", "v1"])
        .extend(segments);
    url
}

async fn call<T: DeserializeOwned>(
    http: &reqwest::Client,
    method: Method,
    url: Url,
    token: &str,
    body: Option<&impl Serialize>,
    what: &str,
) -> Result<T, ControlError> {
    let unreachable = |e: reqwest::Error| ControlError::Unreachable {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let mut request = http.request(method, url.clone()).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(ControlError::Refused {
            what: what.to_owned(),
            status: status.as_u16(),
            body: body.chars().take(500).collect(),
        });
    }
    let bytes = response.bytes().await.map_err(unreachable)?;
    let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
        &b"null"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(bytes).map_err(|e| ControlError::Refused {
        what: what.to_owned(),
        status: status.as_u16(),
        body: format!("unreadable answer: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_escape_the_name() {
        let c = HttpControl::new("http://127.0.0.1:8080/", "a/b", "t").unwrap();
        assert_eq!(
            c.node_url(&["desired"]).as_str(),
            "http://127.0.0.1:8080/api/v1/nodes/a%2Fb/desired"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            HttpControl::new("ftp://x", "n", "t"),
            Err(ControlError::BadUrl(_))
        ));
    }
}
