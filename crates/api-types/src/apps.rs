//! Apps and their envs.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::list::page;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct App {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Env {
    pub id: Uuid,
    pub app_id: Uuid,
    pub name: String,
    /// The branch a preview env previews.
    pub preview_of: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// How an app's primary env is doing, from its active deployment's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppHealth {
    /// Nothing was ever deployed.
    NotDeployed,
    /// Deployed with no instance meant to run (scaled to zero).
    Idle,
    /// Every instance meant to run is healthy.
    Healthy,
    /// Some are healthy, some are not (yet).
    Degraded,
    /// None is healthy yet and none has failed: booting.
    Deploying,
    /// None is healthy and at least one failed.
    Failed,
}

impl AppHealth {
    /// The state of `healthy` of `running` instances meant to run, `failed` of them failed.
    pub fn of(deployed: bool, running: u32, healthy: u32, failed: u32) -> AppHealth {
        match (deployed, running, healthy) {
            (false, _, _) => AppHealth::NotDeployed,
            (true, 0, _) => AppHealth::Idle,
            (true, r, h) if h >= r => AppHealth::Healthy,
            (true, _, h) if h > 0 => AppHealth::Degraded,
            _ if failed > 0 => AppHealth::Failed,
            _ => AppHealth::Deploying,
        }
    }
}

/// An app in the org's list: what its primary env serves and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppSummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub state: AppHealth,
    /// The primary env's active release number.
    pub release: Option<i32>,
    /// Where the primary env is served.
    pub url: Option<String>,
    /// Instances of the active deployment meant to run.
    pub instances: u32,
    /// Of those, the healthy ones.
    pub healthy: u32,
}

page!(
    /// `GET /api/v1/orgs/{org}/apps`, by name.
    AppList, apps, AppSummary
);
page!(
    /// `GET /api/v1/orgs/{org}/apps/{app}/envs`, by name.
    EnvList, envs, Env
);

#[cfg(test)]
mod tests {
    use super::AppHealth::*;
    use super::*;

    #[test]
    fn health_follows_the_instances() {
        assert_eq!(AppHealth::of(false, 0, 0, 0), NotDeployed);
        assert_eq!(AppHealth::of(true, 0, 0, 0), Idle);
        assert_eq!(AppHealth::of(true, 2, 2, 0), Healthy);
        assert_eq!(AppHealth::of(true, 2, 1, 1), Degraded);
        assert_eq!(AppHealth::of(true, 2, 0, 0), Deploying);
        assert_eq!(AppHealth::of(true, 2, 0, 1), Failed);
    }
}
