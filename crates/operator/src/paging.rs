//! Pages of lists (`zeitwork_api_types::list`): at most `limit` rows after the cursor
//! `after`, which is the sort key of the previous page's last row, so a row added or
//! removed between two pages neither repeats nor skips another. Keys are text that sorts
//! as the rows do (ids, names, zero-padded numbers): any cursor is one, so a made-up
//! cursor gives a page, never an error.

use zeitwork_api_types::{DEFAULT_LIMIT, MAX_CURSOR, MAX_LIMIT, PageQuery};

use crate::error::{ApiError, ApiResult};

/// Which way a list runs along its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    /// Newest first.
    Descending,
}

/// A checked page query: how many rows, after which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub after: Option<String>,
}

/// The key of a row numbered `n`, sorting as the numbers do.
pub fn number_key(n: i32) -> String {
    format!("{n:011}")
}

impl Page {
    pub fn of(q: &PageQuery) -> ApiResult<Page> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        if let Some(a) = &q.after
            && (a.is_empty() || a.chars().count() > MAX_CURSOR)
        {
            return Err(ApiError::invalid(
                "after",
                format!(
                    "after must be the `next` of an earlier page (1 to {MAX_CURSOR} characters)"
                ),
            ));
        }
        let after = q.after.clone();
        Ok(Page {
            limit: limit as usize,
            after,
        })
    }
}

impl Page {
    /// Rows to ask a paged query for: one more than the page, to know whether another
    /// page follows.
    pub fn fetch(&self) -> i64 {
        i64::try_from(self.limit).unwrap_or(i64::MAX - 1) + 1
    }

    /// The page of `rows` already in order and after the cursor (at most [`Page::fetch`]
    /// of them), and the next page's cursor, the last row's `key`.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        let next = more.then(|| rows.last().map(key)).flatten();
        (rows, next)
    }

    /// The page of `rows` (in any order) along `key`, and the next page's cursor.
    pub fn cut<T>(
        &self,
        mut rows: Vec<T>,
        order: Order,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        rows.sort_by(|a, b| match order {
            Order::Ascending => key(a).cmp(&key(b)),
            Order::Descending => key(b).cmp(&key(a)),
        });
        if let Some(after) = &self.after {
            rows.retain(|r| match order {
                Order::Ascending => key(r) > *after,
                Order::Descending => key(r) < *after,
            });
        }
        self.finish(rows, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(limit: Option<u32>, after: Option<&str>) -> PageQuery {
        PageQuery {
            limit,
            after: after.map(str::to_owned),
        }
    }

    #[test]
    fn pages_walk_the_list_once_whatever_changes_between_them() {
        let rows = vec!["d", "a", "c", "b", "e"];
        let page = Page::of(&q(Some(2), None)).unwrap();
        let (first, next) = page.cut(rows.clone(), Order::Ascending, |r| r.to_string());
        assert_eq!((first, next.as_deref()), (vec!["a", "b"], Some("b")));
        // `b` is deleted before the next page: nothing is skipped.
        let rows: Vec<_> = rows.into_iter().filter(|r| *r != "b").collect();
        let page = Page::of(&q(Some(2), next.as_deref())).unwrap();
        let (second, next) = page.cut(rows.clone(), Order::Ascending, |r| r.to_string());
        assert_eq!((second, next.as_deref()), (vec!["c", "d"], Some("d")));
        let page = Page::of(&q(Some(2), next.as_deref())).unwrap();
        let (last, next) = page.cut(rows, Order::Ascending, |r| r.to_string());
        assert_eq!((last, next), (vec!["e"], None));
    }

    #[test]
    fn newest_first_runs_down_the_key() {
        let page = Page::of(&q(Some(2), Some(&number_key(10)))).unwrap();
        let (rows, next) = page.cut(vec![9, 10, 11, 2, 1], Order::Descending, |r| number_key(*r));
        assert_eq!((rows, next), (vec![9, 2], Some(number_key(2))));
    }

    #[test]
    fn bad_limits_and_cursors_name_their_field() {
        for limit in [0, MAX_LIMIT + 1] {
            let err = Page::of(&q(Some(limit), None)).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("limit"));
        }
        for after in [String::new(), "x".repeat(MAX_CURSOR + 1)] {
            let err = Page::of(&q(None, Some(&after))).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("after"));
        }
        assert!(
            Page::of(&q(None, Some("made-up"))).is_ok(),
            "any cursor is one"
        );
    }
}
