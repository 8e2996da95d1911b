//! Instance and build log lines as readers see them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stored line. Followed (`follow=1`), each is a Server-Sent Event whose `id` is
/// the line's `id`: a reader resumes after it with `Last-Event-ID` or `?after=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct LogLine {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<Uuid>,
    pub process: String,
    pub at: DateTime<Utc>,
    pub line: String,
}

/// The last lines asked for, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogTail {
    pub lines: Vec<LogLine>,
}

/// The query of a log read (a build's log takes `tail`, `follow` and `after` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this env's instances.
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub env: Option<String>,
    /// Only this instance's lines.
    pub instance: Option<Uuid>,
    /// The last lines to answer (0 to 10000, default 100).
    #[schemars(range(min = 0, max = 10000))]
    pub tail: Option<i64>,
    /// `1`: answer Server-Sent Events, the tail then every new line.
    pub follow: Option<Follow>,
    /// Followed: resume after this line id (as `Last-Event-ID` does), without the tail.
    #[schemars(range(min = 0))]
    pub after: Option<i64>,
}

/// Whether to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Follow {
    #[serde(rename = "0")]
    No,
    #[serde(rename = "1")]
    Yes,
}
