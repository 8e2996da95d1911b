//! The event log as readers see it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One event. Secret material in its payload (ciphertexts, token hashes) reads
/// `"withheld"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PublicEvent {
    /// Position in the log: commit order, without gaps.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `null` for platform events (nodes, regions, platform tokens).
    pub org_id: Option<Uuid>,
    /// Who caused it: `token:<id>`, `node:<id>`, `webhook:<id>` or `system`.
    pub actor: String,
    pub data: EventPayload,
}

/// An event's payload: its `type` (`app_created`, `instance_reported`, …) and that
/// type's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventPayload {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventPage {
    pub events: Vec<PublicEvent>,
    /// The `after` of the next page: the last event's seq (or the `after` asked, when
    /// there was none).
    pub next: i64,
    /// The newest committed seq when the page was read (a reader that wants only what
    /// comes next starts from it).
    pub head: i64,
}

/// The query of `GET /api/v1/events` and `/events/stream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Events after this seq.
    #[schemars(range(min = 0))]
    pub after: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
}
