//! Who is calling, the operator itself, dashboard sessions, the registry, and exec grants.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeitwork_core::Role;

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Always `ok` when the operator answers.
    pub status: String,
}

/// What kind of credential is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    /// A platform token: every org, and the platform's inventory.
    Platform,
    /// A token of one org.
    Org,
    /// A node agent's credential.
    Node,
}

/// `GET /api/v1/whoami`: the calling credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Whoami {
    pub token_id: Uuid,
    pub caller: CallerKind,
    /// The org of an org token; `null` otherwise.
    pub org: Option<String>,
    pub role: Role,
    /// The node of a node credential; `null` otherwise.
    pub node_id: Option<Uuid>,
}

/// `POST /api/v1/session`: sign in to the dashboard with an API token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// An API token (`zw_…`); it is not kept, only the session it opens.
    #[schemars(length(min = 1, max = 200))]
    pub token: String,
}

/// A dashboard session. Its id travels only in an `HttpOnly` cookie; `csrf` must come
/// back in `X-CSRF-Token` on every request that changes something.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
    pub whoami: Whoami,
}

/// Where the platform registry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryInfo {
    /// `host:port`: the registry part of image references (`<address>/<org>/<app>:tag`).
    pub address: String,
}

/// The registry token service's answer, as Docker's token spec has it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryToken {
    pub token: String,
    /// The same token, for OAuth-minded clients.
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

/// `POST …/envs/{env}/exec`: what to run where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The program (not empty) and its arguments: at most 256 of them, no NUL bytes,
    /// 16 KiB in all (a bound on the sum, which the operator checks).
    #[schemars(length(min = 1, max = 256), extend(
        "prefixItems" = [{ "type": "string", "minLength": 1, "maxLength": 16383, "pattern": "^[^\\u0000]*$" }],
        "items" = { "type": "string", "maxLength": 16383, "pattern": "^[^\\u0000]*$" }
    ))]
    pub command: Vec<String>,
    /// This instance; absent: one of `process`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
    /// Absent: the process the env's hostnames serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub process: Option<String>,
    /// Run on a terminal.
    #[serde(default)]
    pub tty: bool,
    /// `TERM` for a terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[A-Za-z0-9._+-]{1,64}$"))]
    pub term: Option<String>,
}

/// An exec grant: its token is shown here once and is good for one use within 60 s.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExecGrant {
    pub grant_id: Uuid,
    pub token: String,
    pub instance_id: Uuid,
    pub process: String,
    pub expires_at: DateTime<Utc>,
}

crate::redacted_debug!(ExecGrant { grant_id, instance_id, process, expires_at } hides { token });

crate::redacted_debug!(RegistryToken { expires_in, issued_at } hides { token, access_token });

crate::redacted_debug!(NewSession {  } hides { token });

crate::redacted_debug!(Session { expires_at, whoami } hides { csrf });
