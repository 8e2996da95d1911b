//! `quotas`: what the org may hold at most, what it holds, and (platform token) setting
//! the org's own quotas, each one a number or `default` (the platform's).

use serde_json::Value;
use zeitwork_core::QuotaOverrides;

use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output;

#[derive(Debug, Default, clap::Subcommand)]
pub enum QuotasAction {
    /// Show the org's quotas in force, its own, the platform's and its usage
    #[default]
    Show,
    /// Set the org's own quotas (platform token); `default` returns one to the platform's
    Set(SetArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Instances meant to run, over all apps and envs
    #[arg(long, value_name = "N|default")]
    instances: Option<Quota>,
    /// MiB of memory of those instances
    #[arg(long, value_name = "N|default")]
    memory_mb: Option<Quota>,
    /// Routes of every mode
    #[arg(long, value_name = "N|default")]
    routes: Option<Quota>,
    /// `tcp` routes (each takes a port on every edge)
    #[arg(long, value_name = "N|default")]
    tcp_routes: Option<Quota>,
    /// Custom domains, verified or not
    #[arg(long, value_name = "N|default")]
    domains: Option<Quota>,
    /// MiB of images in the platform registry (as its garbage collection measures them)
    #[arg(long, value_name = "N|default")]
    registry_mb: Option<Quota>,
}

/// One quota on the command line: a number, or `default` for the platform's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota(Option<u64>);

impl std::str::FromStr for Quota {
    type Err = String;

    fn from_str(s: &str) -> Result<Quota, String> {
        if s == "default" {
            return Ok(Quota(None));
        }
        s.parse::<u64>()
            .map(|n| Quota(Some(n)))
            .map_err(|_| format!("{s:?} is neither a whole number nor `default`"))
    }
}

/// The quotas in the order they are shown, by their API names.
const QUOTAS: [&str; 6] = [
    "instances",
    "memory_mb",
    "routes",
    "tcp_routes",
    "domains",
    "registry_mb",
];

pub async fn quotas(ctx: &Ctx, action: QuotasAction) -> Result<()> {
    let path = ctx.path(Scope::Org, &["quotas"])?;
    let client = ctx.client()?;
    let answer = match action {
        QuotasAction::Show => client.get(&path).await?,
        QuotasAction::Set(args) => {
            let current = client.get(&path).await?;
            let own: QuotaOverrides = serde_json::from_value(current["own"].clone())
                .map_err(|e| CliError::Usage(format!("the operator's answer: {e}")))?;
            let merged = args.over(own);
            let body = serde_json::to_value(merged).expect("quotas serialize");
            client.put(&path, &body).await?
        }
    };
    if ctx.json() {
        return output::emit_json(&answer);
    }
    output::emit(&render(&answer))
}

impl SetArgs {
    /// `own` with the quotas given on the command line in place.
    fn over(&self, own: QuotaOverrides) -> QuotaOverrides {
        let pick = |given: Option<Quota>, was: Option<u64>| given.map_or(was, |q| q.0);
        QuotaOverrides {
            instances: pick(self.instances, own.instances),
            memory_mb: pick(self.memory_mb, own.memory_mb),
            routes: pick(self.routes, own.routes),
            tcp_routes: pick(self.tcp_routes, own.tcp_routes),
            domains: pick(self.domains, own.domains),
            registry_mb: pick(self.registry_mb, own.registry_mb),
        }
    }
}

/// The table: each quota in force (and where it comes from) next to the usage.
fn render(answer: &Value) -> String {
    let cell = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = QUOTAS
        .iter()
        .map(|q| {
            let own = &answer["own"][q];
            vec![
                (*q).to_owned(),
                cell(&answer["usage"][q]),
                cell(&answer["quotas"][q]),
                if own.is_null() { "platform" } else { "org" }.to_owned(),
            ]
        })
        .collect();
    format!(
        "org {}\n{}",
        answer["org"].as_str().unwrap_or("?"),
        output::table(&["QUOTA", "USED", "LIMIT", "SET BY"], &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_quotas_replace_the_orgs_own_and_default_clears_one() {
        let args = SetArgs {
            instances: Some("500".parse().unwrap()),
            memory_mb: None,
            routes: Some("default".parse().unwrap()),
            tcp_routes: None,
            domains: None,
            registry_mb: None,
        };
        let own = QuotaOverrides {
            routes: Some(3),
            domains: Some(9),
            ..QuotaOverrides::default()
        };
        let merged = args.over(own);
        assert_eq!(merged.instances, Some(500));
        assert_eq!(merged.routes, None, "back to the platform's");
        assert_eq!(merged.domains, Some(9), "kept");
        assert!("-1".parse::<Quota>().is_err());
        assert!("lots".parse::<Quota>().unwrap_err().contains("default"));
    }

    #[test]
    fn the_table_says_where_each_limit_comes_from() {
        let answer = serde_json::json!({
            "org": "acme",
            "quotas": {"instances": 500, "memory_mb": 65536, "routes": 100, "tcp_routes": 10, "domains": 50},
            "own": {"instances": 500, "memory_mb": null, "routes": null, "tcp_routes": null, "domains": null},
            "usage": {"instances": 3, "memory_mb": 384, "routes": 0, "tcp_routes": 0, "domains": 1},
        });
        let text = render(&answer);
        assert!(text.starts_with("org acme\n"), "{text}");
        let line = |q: &str| {
            text.lines()
                .find(|l| l.starts_with(q))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(line("instances"), ["instances", "3", "500", "org"]);
        assert_eq!(line("domains"), ["domains", "1", "50", "platform"]);
    }
}
