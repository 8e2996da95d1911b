//! `events`: the append-only log, read page by page or followed live over Server-Sent
//! Events. Following reconnects from the last seen sequence number, so a restarted
//! operator costs no events; Ctrl-C ends it.

use serde_json::{Value, json};

use super::{field, items};
use crate::client::Client;
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Keep printing new events as they are committed, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Start after this sequence number
    #[arg(long, value_name = "SEQ")]
    pub after: Option<i64>,
    /// Stop after N events
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

/// Events asked for per page.
const PAGE: u64 = 500;
/// Event fields never printed in the one-line summary (the operator withholds digests
/// and sealed material anyway).
const HIDDEN: &[&str] = &[
    "type",
    "hash",
    "credential_hash",
    "ciphertext",
    "sealed_key",
    "sealed_credentials",
];

pub async fn events(ctx: &Ctx, args: EventsArgs) -> Result<()> {
    let client = ctx.client()?;
    let path = ctx.path(Scope::Platform, &["events"])?;
    if !args.follow {
        return pages(ctx, &client, &path, args).await;
    }
    tokio::select! {
        result = follow(ctx, &client, args) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Reads pages until an empty one (or `--limit`). People see each page as it arrives;
/// `--json` gets one `{"events": [...], "next": SEQ}` with everything.
async fn pages(ctx: &Ctx, client: &Client, path: &[String], args: EventsArgs) -> Result<()> {
    let mut after = args.after.unwrap_or(0);
    let mut all = Vec::new();
    let mut printed = 0u64;
    loop {
        let want = args.limit.map_or(PAGE, |l| l - printed).min(PAGE);
        if want == 0 {
            break;
        }
        let query = [("after", after.to_string()), ("limit", want.to_string())];
        let page = client.get_query(path, &query).await?;
        let events = items(&page, "events")?;
        let events = &events[..events.len().min(want as usize)];
        if events.is_empty() {
            break;
        }
        printed += events.len() as u64;
        if ctx.json() {
            all.extend_from_slice(events);
        } else {
            output::emit(&events.iter().map(|e| line(e) + "\n").collect::<String>())?;
        }
        let last = events
            .last()
            .and_then(|e| e.get("seq"))
            .and_then(Value::as_i64);
        let next = last
            .or_else(|| page.get("next").and_then(Value::as_i64))
            .unwrap_or(after);
        if next <= after {
            break;
        }
        after = next;
    }
    if ctx.json() {
        output::emit_json(&json!({ "events": all, "next": after }))
    } else if printed == 0 {
        output::emit("no events\n")
    } else {
        Ok(())
    }
}

/// Streams `GET /api/v1/events/stream`; a reconnect resumes after the last event seen.
async fn follow(ctx: &Ctx, client: &Client, args: EventsArgs) -> Result<()> {
    let query: Vec<(&str, String)> = args
        .after
        .map(|c| ("after", c.to_string()))
        .into_iter()
        .collect();
    let url = client.url(&["events".to_owned(), "stream".to_owned()], &query);
    let mut printed = 0u64;
    client
        .follow(url, "event", |event| {
            let value: Value =
                serde_json::from_str(&event.data).unwrap_or(Value::String(event.data));
            let text = if ctx.json() {
                value.to_string()
            } else {
                line(&value)
            };
            output::emit(&(text + "\n"))?;
            printed += 1;
            Ok(args.limit.is_none_or(|l| printed < l))
        })
        .await
}

/// `SEQ  TIME  KIND  summary`, the summary being the payload's `key=value` pairs.
pub(crate) fn line(event: &Value) -> String {
    let data = event.get("data").unwrap_or(&Value::Null);
    let kind = data.get("type").and_then(Value::as_str).unwrap_or("?");
    let summary: Vec<String> = data
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| !HIDDEN.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| match v {
            Value::Array(list) => format!("{k}=[{}]", list.len()),
            other => format!("{k}={}", output::text(other)),
        })
        .collect();
    let at = event
        .get("at")
        .and_then(Value::as_str)
        .map(output::short_time);
    let text = format!(
        "{}  {}  {kind:<20}  {}",
        field(event, "seq"),
        at.unwrap_or_else(|| "-".into()),
        summary.join(" ")
    );
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_summarize_without_secrets() {
        let event = json!({
            "seq": 42, "at": "2025-03-04T05:06:07.5Z", "org_id": null, "actor": "t1",
            "data": {"type": "secret_set", "name": "DB_URL", "version": 2, "ciphertext": "c2VjcmV0"}
        });
        assert_eq!(
            line(&event),
            "42  2025-03-04 05:06:07  secret_set            name=DB_URL version=2"
        );
        let plans = json!({"seq": 7, "at": "x", "data": {"type": "deployed", "instances": [1, 2]}});
        assert_eq!(line(&plans), "7  x  deployed              instances=[2]");
    }
}
