//! Builds from source, and an app's connected git repository.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeitwork_core::build::BuildState;
use zeitwork_core::repository::GitSource;

use crate::deploys::Rollout;
use crate::list::page;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Build {
    pub id: Uuid,
    pub env_id: Uuid,
    pub node_id: Uuid,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub state: BuildState,
    /// The source image in the platform registry (or, built from git, the tree's identity).
    pub source: String,
    /// The commit built, for a build of a push.
    #[cfg_attr(feature = "sqlx", sqlx(json(nullable)))]
    pub git: Option<GitSource>,
    /// The image built (`name@sha256:…`), once it succeeded.
    pub image: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// Its last lines, when it failed.
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub log: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBuild {
    /// `<registry>/<org>/<app>/source@sha256:…`: an image whose one layer is the context.
    #[schemars(length(min = 1, max = 1024))]
    pub source: String,
    /// `zeitwork.toml` text; its `[build]` says how to build, the rest how to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub manifest: Option<String>,
}

/// The operator's answer to a node's build report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuildReported {
    /// `false`: the report repeated what was known.
    pub changed: bool,
    pub build: Option<Build>,
    /// The rollout a succeeded build started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// An app's connected repository, as anyone in its org may see it (its webhook secret
/// and access token stay sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Repository {
    pub app_id: Uuid,
    pub hook_id: Uuid,
    pub url: String,
    /// The production branch: its pushes deploy to the primary env.
    pub branch: String,
    pub connected_at: DateTime<Utc>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRepository {
    /// A clone URL: `https://`, `http://`, `git://` or `ssh://…`, or scp-like
    /// `user@host:path`; printable ASCII.
    #[schemars(
        length(min = 1, max = 500),
        regex(pattern = "^((https?|git|ssh)://[!-~]+|[!-.0-9;-~]*@[!-.0-9;-~]*:[!-~]+)$")
    )]
    pub url: String,
    /// A git branch name (`git check-ref-format` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub branch: Option<String>,
    /// An access token for a private repository (sealed at rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub token: Option<String>,
}

/// `GET …/repository`, and `PUT` with the webhook secret (shown once).
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryInfo {
    pub repository: Repository,
    /// Where GitHub delivers pushes: `/api/v1/webhooks/github?hook=<id>`.
    pub webhook_path: String,
    /// The webhook's signing secret; only in the answer that connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The answer to a webhook delivery: 200 when acted on, 202 when ignored (`message`
/// says why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryOutcome {
    pub delivery: String,
    pub accepted: bool,
    pub message: String,
    pub build_id: Option<Uuid>,
    pub duplicate: bool,
}

page!(
    /// `GET …/envs/{env}/builds`, newest first.
    BuildList, builds, Build
);

crate::redacted_debug!(RepositoryInfo { repository, webhook_path } hides { secret });

crate::redacted_debug!(ConnectRepository { url, branch } hides { token });
