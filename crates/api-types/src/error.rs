//! The body of every 4xx and 5xx answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `{ "error": { "code", "message", "field"? } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid`, `not_found`, `conflict`, `forbidden`, …
    pub code: String,
    /// One readable sentence, meant for the user as it is.
    pub message: String,
    /// The request field (or path parameter) at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
