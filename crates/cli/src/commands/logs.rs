//! `logs`: what the app's instances printed, the latest lines or followed live over
//! Server-Sent Events. Following reconnects after the last line printed, so a restarted
//! operator costs no line; Ctrl-C ends it.

use uuid::Uuid;
use zeitwork_api_types::{Instance, InstanceList, LogLine, LogTail};

use crate::client::Page;
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell};

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
        let instances: InstanceList = client.list(&ctx.path(Scope::Env, &["instances"])?).await?;
        let id = instance_id(wanted, &instances.into_parts().0, &env)?;
        query.push(("instance", id.to_string()));
    }
    if !args.follow {
        let answer: LogTail = client.get_query(&path, &query).await?;
        if answer.lines.is_empty() && !ctx.json() {
            eprintln!("no log lines");
        }
        let mut text = String::new();
        for line in &answer.lines {
            text += &(render(ctx, line)? + "\n");
        }
        return output::emit(&text);
    }
    query.push(("follow", "1".to_owned()));
    let url = client.url(&path, &query);
    let stream = client.follow(url, "log", |event| {
        if event.event == "log" {
            let line: LogLine = event.decode()?;
            output::emit(&(render(ctx, &line)? + "\n"))?;
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
fn instance_id(wanted: &str, instances: &[Instance], env: &str) -> Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(wanted) {
        return Ok(id);
    }
    let suffix = wanted.to_ascii_lowercase();
    let matches: Vec<Uuid> = instances
        .iter()
        .map(|i| i.id)
        .filter(|id| !suffix.is_empty() && id.simple().to_string().ends_with(&suffix))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
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
fn render(ctx: &Ctx, line: &LogLine) -> Result<String> {
    if ctx.json() {
        return output::json_line(line);
    }
    Ok(text(line))
}

fn text(line: &LogLine) -> String {
    format!(
        "{} {} {} | {}",
        line.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        line.instance_id.as_ref().map(output::short_id).cell(),
        line.process,
        line.line
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_show_time_short_instance_and_process() {
        let line: LogLine = serde_json::from_value(json!({
            "id": 7, "instance_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d",
            "process": "web", "at": "2025-03-04T05:06:07.123456Z", "line": "GET / 200"
        }))
        .unwrap();
        assert_eq!(
            text(&line),
            "2025-03-04T05:06:07.123Z 6a7b8c9d web | GET / 200"
        );
    }

    #[test]
    fn instances_are_named_by_full_or_short_id() {
        let a = "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d";
        let b = "0195f0a2-7c1e-7d3a-9b2c-00000000bc9d";
        let instance = |id: &str| -> Instance {
            serde_json::from_value(json!({
                "id": id, "deployment_id": a, "process": "web", "node_id": null,
                "region": null, "desired_state": "running", "observed_state": "healthy",
                "reason": null, "address": null, "restarts": 0, "replaces": null,
                "created_at": "2025-03-04T05:06:07Z", "updated_at": "2025-03-04T05:06:07Z"
            }))
            .unwrap()
        };
        let list = [instance(a), instance(b)];
        let a: Uuid = a.parse().unwrap();
        assert_eq!(instance_id(&a.to_string(), &list, "prod").unwrap(), a);
        assert_eq!(instance_id("6A7B8C9D", &list, "prod").unwrap(), a);
        let e = instance_id("c9d", &list, "prod").unwrap_err();
        assert!(e.to_string().contains("matches 2 instances"), "{e}");
        let e = instance_id("ffff", &list, "prod").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{e}");
    }
}
