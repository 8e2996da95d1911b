//! Human output (aligned tables, `key: value` blocks) and JSON output. Commands describe
//! what to show with [`Column`]s over the API's typed answers, each cell rendered by
//! [`Cell`], so every resource renders the same way.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use zeitwork_core::build::BuildState;
use zeitwork_core::manifest::RouteMode;
use zeitwork_core::node::{NodeState, ObservedState};
use zeitwork_core::{DeploymentState, DesiredState, Role};

use crate::error::{CliError, Result};

/// How a value reads in a table cell or a `key: value` line: text as it is, numbers
/// printed, booleans as `yes`/`no`, nothing as `-`, lists joined with commas, timestamps
/// to the second (UTC), states by their API names.
pub trait Cell {
    /// The text shown.
    fn cell(&self) -> String;
}

impl Cell for str {
    fn cell(&self) -> String {
        self.to_owned()
    }
}

impl Cell for String {
    fn cell(&self) -> String {
        self.clone()
    }
}

impl Cell for bool {
    fn cell(&self) -> String {
        if *self { "yes" } else { "no" }.to_owned()
    }
}

impl Cell for Uuid {
    fn cell(&self) -> String {
        self.to_string()
    }
}

impl Cell for DateTime<Utc> {
    fn cell(&self) -> String {
        short_time(self)
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        self.as_ref().map_or_else(|| "-".to_owned(), T::cell)
    }
}

impl<T: Cell> Cell for [T] {
    fn cell(&self) -> String {
        self.iter().map(T::cell).collect::<Vec<_>>().join(",")
    }
}

/// Numbers as they are printed.
macro_rules! number_cells {
    ($($ty:ty),*) => {$(
        impl Cell for $ty {
            fn cell(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

number_cells!(i32, i64, u32, u64);

/// States by the names the API gives them.
macro_rules! state_cells {
    ($($ty:ty),*) => {$(
        impl Cell for $ty {
            fn cell(&self) -> String {
                self.as_str().to_owned()
            }
        }
    )*};
}

state_cells!(
    Role,
    DeploymentState,
    DesiredState,
    ObservedState,
    NodeState,
    BuildState,
    RouteMode
);

/// One column of a table of `T`s: its header and how a row reads in it.
pub struct Column<T> {
    /// The header, and (lowercased) the key of a `key: value` line.
    pub header: &'static str,
    /// The cell of a row.
    pub cell: fn(&T) -> String,
}

impl<T> Clone for Column<T> {
    fn clone(&self) -> Column<T> {
        *self
    }
}

impl<T> Copy for Column<T> {}

/// A column headed `header` whose cells `cell` reads from a row.
pub const fn col<T>(header: &'static str, cell: fn(&T) -> String) -> Column<T> {
    Column { header, cell }
}

/// `2025-01-02 03:04:05` (UTC, to the second).
pub fn short_time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The last 8 hex digits of a UUID (its random part for v7; v7 UUIDs share their
/// leading, time, digits).
pub fn short_id(id: &Uuid) -> String {
    let hex = id.simple().to_string();
    hex[24..].to_owned()
}

/// Millicpus as CPUs: `1500` → `1.5`, `2000` → `2`, `250` → `0.25`.
pub fn cpus(millicpus: impl Into<i64>) -> String {
    let m: i64 = millicpus.into();
    let (sign, m) = if m < 0 { ("-", -m) } else { ("", m) };
    let (whole, thousandths) = (m / 1000, m % 1000);
    if thousandths == 0 {
        format!("{sign}{whole}")
    } else {
        let fraction = format!("{thousandths:03}");
        format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }
}

/// Renders rows under headers, columns separated by two spaces, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table of API objects, one row each.
pub fn items_table<T>(columns: &[Column<T>], items: &[T]) -> String {
    let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
    let rows: Vec<Vec<String>> = items.iter().map(|item| cells(columns, item)).collect();
    table(&headers, &rows)
}

/// One row: `item` read by each of `columns`.
pub fn cells<T>(columns: &[Column<T>], item: &T) -> Vec<String> {
    columns.iter().map(|c| (c.cell)(item)).collect()
}

/// Aligned `key: value` lines.
pub fn pairs(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{:<w$}  {v}\n", format!("{k}:"), w = width + 1))
        .collect()
}

/// One API object as `key: value` lines, keys being the lowercased column headers.
pub fn object<T>(columns: &[Column<T>], item: &T) -> String {
    let labels: Vec<String> = columns.iter().map(|c| c.header.to_lowercase()).collect();
    let rows: Vec<(&str, String)> = labels
        .iter()
        .map(String::as_str)
        .zip(cells(columns, item))
        .collect();
    pairs(&rows)
}

/// Writes to stdout. A closed pipe becomes [`CliError::OutputClosed`] instead of a panic.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                CliError::OutputClosed
            } else {
                CliError::io("writing to standard output")(e)
            }
        })
}

/// Pretty JSON on stdout, for `--json`.
pub fn emit_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    emit(&format!("{:#}\n", json(value)?))
}

/// Compact JSON on one line, for `--json` output of one object per line.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    Ok(json(value)?.to_string())
}

/// `value` as a JSON value. Printing through it, as before answers were typed, keeps
/// the text the same: the same keys in the same order.
fn json<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| CliError::Protocol(format!("printing it as JSON: {e}")))
}

/// A spinner on stderr while a slow request runs, only when a person is watching.
pub fn spinner(message: String) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let t = table(
            &["NAME", "ID"],
            &[vec!["a".into(), "1".into()], vec!["long".into(), "".into()]],
        );
        assert_eq!(t, "NAME  ID\na     1\nlong\n");
    }

    struct Row {
        name: &'static str,
        id: Option<Uuid>,
        millicpus: i32,
        created_at: DateTime<Utc>,
        tags: Vec<String>,
    }

    #[test]
    fn items_render_by_column_kind() {
        let columns: [Column<Row>; 5] = [
            col("NAME", |r| r.name.cell()),
            col("ID", |r| r.id.as_ref().map(short_id).cell()),
            col("CPUS", |r| cpus(r.millicpus)),
            col("CREATED", |r| r.created_at.cell()),
            col("TAGS", |r| r.tags.cell()),
        ];
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let items = [
            Row {
                name: "web",
                id: Some("01890a5d-ac96-774b-bcce-b302099a8057".parse().unwrap()),
                millicpus: 1500,
                created_at: at("2025-01-02T03:04:05.123456Z"),
                tags: vec!["a".into(), "b".into()],
            },
            Row {
                name: "worker-long",
                id: None,
                millicpus: 2000,
                created_at: at("2025-01-02T03:04:05Z"),
                tags: vec![],
            },
        ];
        assert_eq!(
            items_table(&columns, &items),
            "NAME         ID        CPUS  CREATED              TAGS\n\
             web          099a8057  1.5   2025-01-02 03:04:05  a,b\n\
             worker-long  -         2     2025-01-02 03:04:05\n"
        );
        assert_eq!(
            object(&columns[..2], &items[0]),
            "name:  web\nid:    099a8057\n"
        );
    }

    #[test]
    fn cells_of_values() {
        assert_eq!(true.cell(), "yes");
        assert_eq!(None::<i32>.cell(), "-");
        assert_eq!(NodeState::Draining.cell(), "draining");
        assert_eq!(RouteMode::TlsPassthrough.cell(), "tls-passthrough");
    }

    #[test]
    fn json_prints_as_the_raw_answer_did() {
        #[derive(Serialize)]
        struct Answer {
            next: Option<String>,
            apps: Vec<u32>,
        }
        let typed = json_line(&Answer {
            next: None,
            apps: vec![1],
        })
        .unwrap();
        let raw: Value = serde_json::from_str(r#"{"next":null,"apps":[1]}"#).unwrap();
        assert_eq!(typed, raw.to_string());
    }
}
