//! `quotas`: what the org may hold at most, what it holds, and (platform token) setting
//! the org's own quotas, each one a number or `default` (the platform's).

use zeitwork_api_types::OrgQuotas;
use zeitwork_core::QuotaOverrides;

use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{self, Cell};

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

pub async fn quotas(ctx: &Ctx, action: QuotasAction) -> Result<()> {
    let path = ctx.path(Scope::Org, &["quotas"])?;
    let client = ctx.client()?;
    let answer: OrgQuotas = match action {
        QuotasAction::Show => client.get(&path).await?,
        QuotasAction::Set(args) => {
            let current: OrgQuotas = client.get(&path).await?;
            client.put(&path, &args.over(current.own)).await?
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

/// The table: each quota in force (and where it comes from) next to the usage, in the
/// order and by the names of the API.
fn render(answer: &OrgQuotas) -> String {
    let (used, limit, own) = (&answer.usage, &answer.quotas, &answer.own);
    let quotas = [
        ("instances", used.instances, limit.instances, own.instances),
        ("memory_mb", used.memory_mb, limit.memory_mb, own.memory_mb),
        ("routes", used.routes, limit.routes, own.routes),
        (
            "tcp_routes",
            used.tcp_routes,
            limit.tcp_routes,
            own.tcp_routes,
        ),
        ("domains", used.domains, limit.domains, own.domains),
        (
            "registry_mb",
            used.registry_mb,
            limit.registry_mb,
            own.registry_mb,
        ),
    ];
    let rows: Vec<Vec<String>> = quotas
        .into_iter()
        .map(|(name, used, limit, own)| {
            let by = if own.is_some() { "org" } else { "platform" };
            vec![name.to_owned(), used.cell(), limit.cell(), by.to_owned()]
        })
        .collect();
    format!(
        "org {}\n{}",
        answer.org,
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
        let answer: OrgQuotas = serde_json::from_value(serde_json::json!({
            "org": "acme",
            "quotas": {"instances": 500, "memory_mb": 65536, "routes": 100, "tcp_routes": 10,
                       "domains": 50, "registry_mb": 20480},
            "own": {"instances": 500, "memory_mb": null, "routes": null, "tcp_routes": null,
                    "domains": null},
            "platform": {"instances": 100, "memory_mb": 65536, "routes": 100, "tcp_routes": 10,
                         "domains": 50, "registry_mb": 20480},
            "usage": {"instances": 3, "memory_mb": 384, "routes": 0, "tcp_routes": 0,
                      "domains": 1, "registry_mb": 0},
        }))
        .unwrap();
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
