//! Releases, deployments, instances, and the calls that change them: deploy, roll
//! back, restart, scale.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeitwork_core::event::{ProcessSpec, Replacement};
use zeitwork_core::manifest::Autoscale;
use zeitwork_core::node::ObservedState;
use zeitwork_core::{DeploymentState, DesiredState};

use crate::list::page;

/// An immutable pair of an image (pinned to its digest) and a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Release {
    pub id: Uuid,
    pub app_id: Uuid,
    /// `v<number>` to people; numbered from 1 per app.
    pub number: i32,
    pub image: String,
    pub digest: String,
    pub manifest_hash: String,
    /// The manifest (`zeitwork.toml`) as the operator read it.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub manifest: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Who made it: `token:<id>`, `webhook:<id>` (a git push) or `system`.
    pub created_by: String,
}

/// Where a release runs: an env's active or standby deployment of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ReleaseDeployed {
    #[serde(skip)]
    pub release_id: Uuid,
    pub env: String,
    pub deployment_id: Uuid,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub state: DeploymentState,
    pub standby_until: Option<DateTime<Utc>>,
}

/// A release in the app's list, with the envs that run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseListing {
    #[serde(flatten)]
    pub release: Release,
    pub deployed: Vec<ReleaseDeployed>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Deployment {
    pub id: Uuid,
    pub env_id: Uuid,
    pub release_id: Uuid,
    pub release_number: i32,
    /// Its own hostname's nanoid: `<app>-<slug>-<org>.<base domain>`.
    pub slug: String,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub state: DeploymentState,
    pub rollback_of: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// When it last became active: its creation, or a rollback to it.
    pub activated_at: DateTime<Utc>,
    /// While on standby: when its window ends.
    pub standby_until: Option<DateTime<Utc>>,
}

/// One process of a deployment, at its current count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ProcessType {
    pub deployment_id: Uuid,
    pub name: String,
    /// Per region.
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Instance {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub process: String,
    pub node_id: Option<Uuid>,
    /// The name of the node it is placed on.
    pub node: Option<String>,
    pub region: Option<String>,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub desired_state: DesiredState,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub observed_state: ObservedState,
    pub reason: Option<String>,
    /// `ip:port` where the app answers, as its node last reported.
    pub address: Option<String>,
    pub restarts: i32,
    /// The instance whose place this one takes (its node died or is draining).
    pub replaces: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The last change of a process's count: by whom and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct LastScaled {
    pub process: String,
    pub instances: i32,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: Option<String>,
}

/// How a process of the active deployment is scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessScaling {
    pub process: String,
    /// Its autoscale bounds; `null`: scaled by hand.
    pub autoscale: Option<Autoscale>,
    pub last: Option<LastScaled>,
}

/// `GET …/envs/{env}/status`: what the env serves and runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnvStatus {
    pub app: String,
    pub env: String,
    /// The active deployment's own URL.
    pub url: Option<String>,
    pub deployment: Option<Deployment>,
    pub standby: Option<Deployment>,
    pub release: Option<Release>,
    pub processes: Vec<ProcessType>,
    /// Instances not yet both meant and seen stopped, of every deployment of the env.
    pub instances: Vec<Instance>,
    pub scaling: Vec<ProcessScaling>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    /// An image reference; pinned to its digest when the release is made.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// The text of `zeitwork.toml`; absent: one `web` process with defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The release to go back to; absent: the one before the active one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub release: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Only this process's instances; absent: every process's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub process: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub process: String,
    /// Per region, 0 to 1000 (`zeitwork_core::manifest::autoscale::MAX_INSTANCES`).
    #[schemars(range(max = 1000))]
    pub instances: u32,
}

/// What `scale` changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Scaled {
    pub deployment: Deployment,
    pub process: Option<ProcessType>,
    /// The deployment's instances after the change.
    pub instances: Vec<Instance>,
}

/// What a deploy or a rollback started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rollout {
    pub deployment: Deployment,
    pub release: Release,
    /// The new deployment's own URL.
    pub url: String,
    pub instances: Vec<Instance>,
    /// What the manifest leaves unreachable, for the user to fix.
    pub warnings: Vec<String>,
    /// A rollback to the standby deployment: routing switched, nothing booted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub instant: bool,
}

/// What a restart started: a replacement for each running instance of the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Restarted {
    pub deployment: Deployment,
    pub replacements: Vec<Replacement>,
}

page!(
    /// `GET /api/v1/orgs/{org}/apps/{app}/releases`, newest first.
    ReleaseList, releases, ReleaseListing
);
page!(
    /// `GET …/envs/{env}/deployments`, newest first.
    DeploymentList, deployments, Deployment
);
page!(
    /// `GET …/envs/{env}/instances`, newest first.
    InstanceList, instances, Instance
);
