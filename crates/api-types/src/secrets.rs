//! Secrets: names and versions to read, values to write (never read back).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::list::page;

/// The largest secret value, in bytes.
pub const MAX_SECRET_VALUE: usize = 64 * 1024;

/// A secret as anyone may see it: its name and version, never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Secret {
    pub name: String,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    #[schemars(length(max = 65536))]
    pub value: String,
    /// Restart the env's instances so they see it (default); `false` to batch changes.
    #[serde(default = "yes")]
    pub restart: bool,
}

fn yes() -> bool {
    true
}

/// The query of `DELETE …/secrets/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsetQuery {
    /// Restart the env's instances (default); `false` to batch changes.
    #[serde(default = "yes")]
    pub restart: bool,
}

/// A secret just set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretSet {
    #[serde(flatten)]
    pub secret: Secret,
    /// Instances started to replace those that had the old value.
    pub restarted: u32,
}

page!(
    /// `GET …/envs/{env}/secrets`, by name.
    SecretList, secrets, Secret
);

crate::redacted_debug!(SetSecret { restart } hides { value });
