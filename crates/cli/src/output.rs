//! Human output (aligned tables, `key: value` blocks) and JSON output. Commands describe
//! what to show with [`Column`]s over the API's JSON, so every resource renders the same way.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::error::{CliError, Result};

/// How one JSON field becomes a table cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Strings as they are, numbers and booleans printed, null as `-`.
    Text,
    /// An RFC 3339 timestamp shortened to `YYYY-MM-DD HH:MM:SS` (UTC).
    Time,
    /// A UUID cut to its last 8 hex digits: v7 UUIDs share their leading (time) digits.
    ShortId,
    /// Millicpus shown as CPUs (`1500` → `1.5`).
    Cpus,
}

/// One column: its header, the JSON key it reads and how it renders.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    /// A field, or a dotted path into nested objects (`txt_record.value`).
    pub key: &'static str,
    pub cell: Cell,
}

/// A plain column.
pub const fn col(header: &'static str, key: &'static str) -> Column {
    Column {
        header,
        key,
        cell: Cell::Text,
    }
}

/// A column with a special rendering.
pub const fn col_as(header: &'static str, key: &'static str, cell: Cell) -> Column {
    Column { header, key, cell }
}

impl Column {
    fn render(&self, item: &Value) -> String {
        let value = self
            .key
            .split('.')
            .try_fold(item, |v, k| v.get(k))
            .unwrap_or(&Value::Null);
        match (self.cell, value) {
            (_, Value::Null) => "-".to_owned(),
            (Cell::Time, Value::String(s)) => short_time(s),
            (Cell::ShortId, Value::String(s)) => short_id(s),
            (Cell::Cpus, Value::Number(n)) => match n.as_f64() {
                Some(m) => format!("{}", m / 1000.0),
                None => n.to_string(),
            },
            _ => text(value),
        }
    }
}

/// A scalar as text; arrays joined with commas; objects as compact JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
    }
}

/// `2025-01-02T03:04:05.123456Z` → `2025-01-02 03:04:05`; anything unparsable as is.
pub fn short_time(s: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| s.to_owned())
}

/// The last 8 hex digits of a UUID (its random part for v7); other strings unchanged.
pub fn short_id(s: &str) -> String {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        hex[24..].to_owned()
    } else {
        s.to_owned()
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
pub fn items_table(columns: &[Column], items: &[Value]) -> String {
    let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|c| c.render(item)).collect())
        .collect();
    table(&headers, &rows)
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
pub fn object(columns: &[Column], item: &Value) -> String {
    let labels: Vec<String> = columns.iter().map(|c| c.header.to_lowercase()).collect();
    let rows: Vec<(&str, String)> = labels
        .iter()
        .zip(columns)
        .map(|(l, c)| (l.as_str(), c.render(item)))
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
pub fn emit_json(value: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    emit(&text)
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
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let t = table(
            &["NAME", "ID"],
            &[vec!["a".into(), "1".into()], vec!["long".into(), "".into()]],
        );
        assert_eq!(t, "NAME  ID\na     1\nlong\n");
    }

    #[test]
    fn items_render_by_column_kind() {
        let columns = [
            col("NAME", "name"),
            col_as("ID", "id", Cell::ShortId),
            col_as("CPUS", "millicpus", Cell::Cpus),
            col_as("CREATED", "created_at", Cell::Time),
            col("TAGS", "tags"),
        ];
        let items = [
            json!({"name": "web", "id": "01890a5d-ac96-774b-bcce-b302099a8057", "millicpus": 1500,
                   "created_at": "2025-01-02T03:04:05.123456Z", "tags": ["a", "b"]}),
            json!({"name": "worker-long", "id": null, "millicpus": 2000, "created_at": "soon"}),
        ];
        assert_eq!(
            items_table(&columns, &items),
            "NAME         ID        CPUS  CREATED              TAGS\n\
             web          099a8057  1.5   2025-01-02 03:04:05  a,b\n\
             worker-long  -         2     soon                 -\n"
        );
        assert_eq!(
            object(&columns[..2], &items[0]),
            "name:  web\nid:    099a8057\n"
        );
    }

    #[test]
    fn dotted_keys_read_nested_fields() {
        let columns = [col("HOST", "hostname"), col("TXT", "txt_record.value")];
        let items = [
            json!({"hostname": "a.test", "txt_record": {"value": "zeitwork-verification=t"}}),
            json!({"hostname": "b.test", "txt_record": null}),
            json!({"hostname": "c.test"}),
        ];
        assert_eq!(
            items_table(&columns, &items),
            "HOST    TXT\n\
             a.test  zeitwork-verification=t\n\
             b.test  -\n\
             c.test  -\n"
        );
    }

    #[test]
    fn text_of_scalars() {
        assert_eq!(text(&json!(true)), "yes");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(text(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(short_id("not-a-uuid"), "not-a-uuid");
    }
}
