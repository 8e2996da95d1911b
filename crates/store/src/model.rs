//! Rows of the projection tables. Those the API answers are its wire types
//! (`zeitwork_api_types`), decoded straight from the rows; secret values and token
//! hashes have no field in them, so they cannot leak through a read.

use chrono::{DateTime, Utc};
use uuid::Uuid;
pub use zeitwork_api_types::{
    App, Build, CertificateInfo, Deployment, Domain, Env, Instance, LastScaled, LogLine, Node, Org,
    OrgUsage, ProcessType, Region, Release, ReleaseDeployed, Repository, Route, Secret, Token,
    User,
};

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

/// An app's connected repository. The secret and token stay sealed; only the operator
/// opens them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RepositoryRecord {
    pub app_id: Uuid,
    pub hook_id: Uuid,
    pub url: String,
    /// The production branch: its pushes deploy to the primary env.
    pub branch: String,
    pub sealed_secret: String,
    pub sealed_token: Option<String>,
    pub connected_at: DateTime<Utc>,
}

impl RepositoryRecord {
    /// What anyone in the org may see of it.
    pub fn public(&self) -> Repository {
        Repository {
            app_id: self.app_id,
            hook_id: self.hook_id,
            url: self.url.clone(),
            branch: self.branch.clone(),
            connected_at: self.connected_at,
        }
    }
}
