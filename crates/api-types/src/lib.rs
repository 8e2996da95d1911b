//! The HTTP API's wire types: every request body and every JSON answer of the operator
//! (`docs/architecture.md`, "API"). The operator answers with them, the CLI decodes them,
//! and `/api/v1/openapi.json` describes them from their JSON Schemas, from which the
//! dashboard's client is generated: one contract, three readers.
//!
//! Requests refuse unknown fields; the constraints the operator enforces (name
//! patterns, lengths, ranges) are stated on the fields, so the document says them too.
//! With the `sqlx` feature, the store decodes its projection rows into the same types.

pub(crate) use zeitwork_core::redacted_debug;

pub mod apps;
pub mod builds;
pub mod deploys;
pub mod error;
pub mod events;
pub mod list;
pub mod logs;
pub mod meta;
pub mod nodes;
pub mod orgs;
pub mod routing;
pub mod secrets;

pub use apps::*;
pub use builds::*;
pub use deploys::*;
pub use error::*;
pub use events::*;
pub use list::*;
pub use logs::*;
pub use meta::*;
pub use nodes::*;
pub use orgs::*;
pub use routing::*;
pub use secrets::*;

pub use zeitwork_core::name::NAME_PATTERN;
/// What a fully qualified hostname matches (lowercase labels, at least two).
pub const HOSTNAME_PATTERN: &str =
    "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.?$";
