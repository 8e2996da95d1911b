//! `events`: the append-only log, read page by page or followed live over Server-Sent
//! Events. Following reconnects from the last seen sequence number, so a restarted
//! operator costs no events; Ctrl-C ends it.

use serde::Serialize;
use serde_json::Value;
use zeitwork_api_types::{EventPage, PublicEvent};

use crate::client::Client;
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{self, Cell};

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
/// Payload fields never printed in the one-line summary (the operator withholds digests
/// and sealed material anyway).
const HIDDEN: &[&str] = &[
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
        let page: EventPage = client.get_query(path, &query).await?;
        let mut events = page.events;
        events.truncate(usize::try_from(want).unwrap_or(usize::MAX));
        if events.is_empty() {
            break;
        }
        printed += events.len() as u64;
        let next = events.last().map_or(page.next, |e| e.seq);
        if ctx.json() {
            all.append(&mut events);
        } else {
            output::emit(&events.iter().map(|e| line(e) + "\n").collect::<String>())?;
        }
        if next <= after {
            break;
        }
        after = next;
    }
    if ctx.json() {
        /// `--json`'s answer: every event read, and the seq to read on from.
        #[derive(Serialize)]
        struct Read {
            events: Vec<PublicEvent>,
            next: i64,
        }
        output::emit_json(&Read {
            events: all,
            next: after,
        })
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
            let event: PublicEvent = event.decode()?;
            let text = if ctx.json() {
                output::json_line(&event)?
            } else {
                line(&event)
            };
            output::emit(&(text + "\n"))?;
            printed += 1;
            Ok(args.limit.is_none_or(|l| printed < l))
        })
        .await
}

/// `SEQ  TIME  KIND  summary`, the summary being the payload's `key=value` pairs.
fn line(event: &PublicEvent) -> String {
    let summary: Vec<String> = event
        .data
        .fields
        .iter()
        .filter(|(k, v)| !HIDDEN.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| match v {
            Value::Array(list) => format!("{k}=[{}]", list.len()),
            other => format!("{k}={}", text(other)),
        })
        .collect();
    let text = format!(
        "{}  {}  {:<20}  {}",
        event.seq,
        output::short_time(&event.at),
        event.data.kind,
        summary.join(" ")
    );
    text.trim_end().to_owned()
}

/// A payload's value as text: scalars printed, arrays joined with commas, objects as
/// compact JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.cell(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(value: Value) -> PublicEvent {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn event_lines_summarize_without_secrets() {
        let secret = event(json!({
            "seq": 42, "at": "2025-03-04T05:06:07.5Z", "org_id": null, "actor": "t1",
            "data": {"type": "secret_set", "name": "DB_URL", "version": 2, "ciphertext": "c2VjcmV0"}
        }));
        assert_eq!(
            line(&secret),
            "42  2025-03-04 05:06:07  secret_set            name=DB_URL version=2"
        );
        let plans = event(json!({
            "seq": 7, "at": "2025-03-04T05:06:07Z", "org_id": null, "actor": "system",
            "data": {"type": "deployed", "instances": [1, 2], "ok": true, "spec": {"a": 1}}
        }));
        assert_eq!(
            line(&plans),
            r#"7  2025-03-04 05:06:07  deployed              instances=[2] ok=yes spec={"a":1}"#
        );
    }
}
