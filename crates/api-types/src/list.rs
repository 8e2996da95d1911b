//! Pages of lists. Every list the API answers is bounded: `?limit=` (1 to
//! [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) rows after `?after=` (the `next` of the
//! previous page, opaque), and `next` is `null` on the last page.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Rows per page unless `?limit=` says otherwise.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most rows one page holds.
pub const MAX_LIMIT: u32 = 500;
/// The longest cursor.
pub const MAX_CURSOR: usize = 200;

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

/// A page of a list answer, `{ "<rows>": [...], "next": "<cursor>" | null }`.
pub trait Page: serde::de::DeserializeOwned + Serialize {
    /// One row.
    type Row;
    /// The answer's name for its rows (`apps`), as in `no apps`.
    const ROWS: &'static str;
    /// The rows, and where the next page starts (`None` on the last page).
    fn into_parts(self) -> (Vec<Self::Row>, Option<String>);
    /// The last page, holding `rows`.
    fn last(rows: Vec<Self::Row>) -> Self;
}

/// Declares a page of `$item`s answered as `{ "<field>": [...], "next": ... }`.
macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $field:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub struct $name {
            pub $field: Vec<$item>,
            /// Where the next page starts (`?after=`); `null` on the last page.
            pub next: Option<String>,
        }

        impl $crate::list::Page for $name {
            type Row = $item;
            const ROWS: &'static str = stringify!($field);

            fn into_parts(self) -> (Vec<$item>, Option<String>) {
                (self.$field, self.next)
            }

            fn last(rows: Vec<$item>) -> $name {
                $name { $field: rows, next: None }
            }
        }
    };
}
pub(crate) use page;
