//! `logs`: what the app's instances printed, the latest lines or followed live over
//! Server-Sent Events. Following reconnects after the last line printed, so a restarted
//! operator costs no line; Ctrl-C ends it.

use serde_json::Value;
use uuid::Uuid;

use super::{field, items};
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep printing new lines as the instances print them, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Only this instance: its id, or the short id `zeitwork status` shows
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// How many of the latest lines to show first
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub tail: u32,
}

pub async fn logs(ctx: &Ctx, args: LogsArgs) -> Result<()> {
    let client = ctx.client()?;
    let path = ctx.path(Scope::App, &["logs"])?;
    let env = ctx.global.env.clone();
    let mut query = vec![("env", env.clone()), ("tail", args.tail.to_string())];
    if let Some(wanted) = &args.instance {
        let instances = client.get(&ctx.path(Scope::Env, &["instances"])?).await?;
        let id = instance_id(wanted, items(&instances, "instances")?, &env)?;
        query.push(("instance", id));
    }
    if !args.follow {
        let answer = client.get_query(&path, &query).await?;
        let lines = items(&answer, "lines")?;
        if lines.is_empty() && !ctx.json() {
            eprintln!("no log lines");
        }
        let text: String = lines.iter().map(|l| render(ctx, l) + "\n").collect();
        return output::emit(&text);
    }
    query.push(("follow", "1".to_owned()));
    let url = client.url(&path, &query);
    let stream = client.follow(url, "log", |event| {
        if event.event == "log" {
            let line: Value = serde_json::from_str(&event.data)
                .map_err(|e| CliError::Protocol(format!("a log event that is not JSON: {e}")))?;
            output::emit(&(render(ctx, &line) + "\n"))?;
        }
        Ok(true)
    });
    tokio::select! {
        result = stream => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// The full id of the instance the user named: a UUID as is, else the one instance of
/// the env whose id ends in those hex digits (`zeitwork status` shows the last 8).
fn instance_id(wanted: &str, instances: &[Value], env: &str) -> Result<String> {
    if let Ok(id) = Uuid::parse_str(wanted) {
        return Ok(id.to_string());
    }
    let suffix = wanted.to_ascii_lowercase();
    let matches: Vec<String> = instances
        .iter()
        .filter_map(|i| i.get("id").and_then(Value::as_str))
        .filter(|id| !suffix.is_empty() && id.replace('-', "").ends_with(&suffix))
        .map(str::to_owned)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::Usage(format!(
            "no instance of env {env} has the id {wanted} (see `zeitwork status`)"
        ))),
        _ => Err(CliError::Usage(format!(
            "{wanted} matches {} instances of env {env}; give more of the id",
            matches.len()
        ))),
    }
}

/// `TIMESTAMP  INSTANCE PROCESS | line`, or the line's JSON object with `--json`.
fn render(ctx: &Ctx, line: &Value) -> String {
    if ctx.json() {
        return line.to_string();
    }
    text(line)
}

fn text(line: &Value) -> String {
    let at = line
        .get("at")
        .and_then(Value::as_str)
        .map(|at| {
            chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string()
                })
                .unwrap_or_else(|_| at.to_owned())
        })
        .unwrap_or_else(|| "-".into());
    format!(
        "{at} {} {} | {}",
        output::short_id(&field(line, "instance_id")),
        field(line, "process"),
        line.get("line").and_then(Value::as_str).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_show_time_short_instance_and_process() {
        let line = json!({
            "id": 7, "instance_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d",
            "process": "web", "at": "2025-03-04T05:06:07.123456Z", "line": "GET / 200"
        });
        assert_eq!(
            text(&line),
            "2025-03-04T05:06:07.123Z 6a7b8c9d web | GET / 200"
        );
    }

    #[test]
    fn instances_are_named_by_full_or_short_id() {
        let a = "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d";
        let b = "0195f0a2-7c1e-7d3a-9b2c-00000000bc9d";
        let list = [json!({"id": a}), json!({"id": b})];
        assert_eq!(instance_id(a, &list, "prod").unwrap(), a);
        assert_eq!(instance_id("6A7B8C9D", &list, "prod").unwrap(), a);
        let e = instance_id("c9d", &list, "prod").unwrap_err();
        assert!(e.to_string().contains("matches 2 instances"), "{e}");
        let e = instance_id("ffff", &list, "prod").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{e}");
    }
}
