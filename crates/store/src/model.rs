//! Rows of the projection tables as the API returns them. Secret values and token
//! hashes have no field here, so they cannot leak through a read.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use zeitwork_core::DeploymentState;
use zeitwork_core::event::ProcessSpec;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Token {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct App {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Env {
    pub id: Uuid,
    pub app_id: Uuid,
    pub name: String,
    /// The branch a preview env previews (see `zeitwork_core::repository`).
    pub preview_of: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Route {
    pub id: Uuid,
    pub env_id: Uuid,
    pub host: Option<String>,
    pub process: String,
    pub mode: String,
    pub port: i32,
    pub proxy_protocol: bool,
    pub policy: sqlx::types::Json<zeitwork_core::RoutePolicy>,
    /// Where a `tcp` route is reached on every edge; `None` for hostname routes.
    pub listen_port: Option<i32>,
    /// From the deployed release's manifest rather than the API.
    pub declared: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Domain {
    pub id: Uuid,
    pub env_id: Uuid,
    pub hostname: String,
    /// Proves ownership as TXT `zeitwork-verification=<token>` at
    /// `_zeitwork-challenge.<hostname>` (see `zeitwork_core::ownership`).
    pub verification_token: String,
    /// When the operator found that record; edges serve only verified domains.
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A secret as anyone may see it: its name and version, never its value.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Secret {
    pub name: String,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Release {
    pub id: Uuid,
    pub app_id: Uuid,
    pub number: i32,
    pub image: String,
    pub digest: String,
    pub manifest_hash: String,
    pub manifest: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Deployment {
    pub id: Uuid,
    pub env_id: Uuid,
    pub release_id: Uuid,
    pub release_number: i32,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub state: DeploymentState,
    pub rollback_of: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// When it last became active: its creation, or a rollback to it.
    pub activated_at: DateTime<Utc>,
    /// While on standby: when its window ends.
    pub standby_until: Option<DateTime<Utc>>,
}

/// Where a release runs: an env's active or standby deployment of it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ReleaseDeployed {
    #[serde(skip)]
    pub release_id: Uuid,
    pub env: String,
    pub deployment_id: Uuid,
    #[sqlx(try_from = "String")]
    pub state: DeploymentState,
    pub standby_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ProcessType {
    pub deployment_id: Uuid,
    pub name: String,
    pub instances: i32,
    pub millicpus: i32,
    pub memory_mb: i64,
    pub port: Option<i32>,
}

impl ProcessType {
    /// The row as the event payloads and the scheduler describe a process.
    pub fn spec(&self) -> ProcessSpec {
        ProcessSpec {
            name: self.name.clone(),
            instances: u32::try_from(self.instances).unwrap_or(0),
            millicpus: u32::try_from(self.millicpus).unwrap_or(0),
            memory_mb: u64::try_from(self.memory_mb).unwrap_or(0),
            port: self.port.and_then(|p| u16::try_from(p).ok()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Instance {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub process: String,
    pub node_id: Option<Uuid>,
    pub region: Option<String>,
    pub desired_state: String,
    pub observed_state: String,
    pub reason: Option<String>,
    /// `ip:port` where the app answers, as its node last reported.
    pub address: Option<String>,
    pub restarts: i32,
    /// The instance whose place this one takes (its node died or is draining).
    pub replaces: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Node {
    pub id: Uuid,
    pub name: String,
    pub region: String,
    pub zone: Option<String>,
    pub millicpus: i32,
    pub memory_mb: i64,
    pub addresses: serde_json::Value,
    /// Its instances' IPv6 /64 (`zeitwork_core::ipam`); `None` until a node enrolled by an
    /// earlier build enrolls again.
    pub instance_prefix: Option<String>,
    pub state: String,
    /// Liveness, from the heartbeat bookkeeping; `None` until an agent reports.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Instances the agent said it runs, in its last heartbeat.
    pub running: Option<i32>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Region {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What a presented bearer token may do.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Principal {
    pub token_id: Uuid,
    pub org_id: Option<Uuid>,
    pub role: String,
}

/// Resources already placed, as the scheduler needs them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlacedInstance {
    pub node_id: Uuid,
    pub deployment_id: Uuid,
    pub millicpus: i32,
    pub memory_mb: i64,
}

/// A build from source (see `zeitwork_core::build`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Build {
    pub id: Uuid,
    pub env_id: Uuid,
    pub node_id: Uuid,
    /// `queued`, `fetching`, `building`, `pushing`, `succeeded`, `failed`, `cancelled`.
    pub state: String,
    /// The source image in the platform registry (or, built from git, the tree's identity).
    pub source: String,
    /// The commit built, for a build of a push (`zeitwork_core::repository::GitSource`).
    pub git: Option<serde_json::Value>,
    /// The image built (`name@sha256:…`), once it succeeded.
    pub image: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// Its last lines, when it failed.
    pub log: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An app's connected repository. The secret and token stay sealed; only the operator
/// opens them.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Repository {
    pub app_id: Uuid,
    pub hook_id: Uuid,
    pub url: String,
    /// The production branch: its pushes deploy to the primary env.
    pub branch: String,
    #[serde(skip)]
    pub sealed_secret: String,
    #[serde(skip)]
    pub sealed_token: Option<String>,
    pub connected_at: DateTime<Utc>,
}
