//! Pages of lists. Every list the API answers is bounded: `?limit=` (1 to
//! [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) rows after `?after=` (the `next` of the
//! previous page, opaque), and `next` is `null` on the last page.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Rows per page unless `?limit=` says otherwise.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most rows one page holds.
pub const MAX_LIMIT: u32 = 500;

/// The query of a list call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Rows to answer, 1 to 500 (default 100).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[schemars(length(min = 1, max = 200))]
    pub after: Option<String>,
}

/// Declares a page of `$item`s answered as `{ "<field>": [...], "next": ... }`.
macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $field:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub $field: Vec<$item>,
            /// Where the next page starts (`?after=`); `null` on the last page.
            pub next: Option<String>,
        }
    };
}
pub(crate) use page;
