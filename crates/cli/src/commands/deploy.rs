//! Rolling out: `deploy`, `rollback`, `scale`, and reading the result with `status`
//! and `releases`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Value, json};
use zeitwork_core::image::ImageRefError;
use zeitwork_core::{ImageRef, Manifest};

use super::{field, items, show};
use crate::client::SLOW_TIMEOUT;
use crate::context::{Ctx, MANIFEST, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col, col_as};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Image to deploy: NAME:TAG (pinned here to the digest its registry serves now, with
    /// the credentials of `docker login`, `podman login` or `zeitwork registry login`) or
    /// NAME[:TAG]@sha256:<64 hex digits>. Without it, the directory's Dockerfile (or the
    /// manifest's `[build]`) is built on a node and rolled out.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Manifest to send [default: ./zeitwork.toml when it exists]
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Release number to roll back to [default: the release before the active one]
    #[arg(long, value_name = "N")]
    pub release: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// Only this process's instances [default: every process's]
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// New instance counts, e.g. web=3 worker=1
    #[arg(required = true, value_name = "PROCESS=COUNT")]
    pub counts: Vec<ScaleTarget>,
}

/// `PROCESS=COUNT`, parsed by clap so bad syntax is a usage error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleTarget {
    pub process: String,
    pub instances: u32,
}

impl FromStr for ScaleTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<ScaleTarget, String> {
        let (process, count) = s
            .split_once('=')
            .ok_or_else(|| "expected PROCESS=COUNT, like web=3".to_owned())?;
        if process.is_empty() {
            return Err("the process name before '=' is empty".into());
        }
        let instances = count
            .parse()
            .map_err(|_| format!("COUNT must be a whole number of instances, got {count:?}"))?;
        Ok(ScaleTarget {
            process: process.to_owned(),
            instances,
        })
    }
}

#[derive(Debug, Default, clap::Subcommand)]
pub enum ReleasesAction {
    /// List releases, newest first
    #[default]
    List,
    /// Show one release with its manifest
    Show { number: u64 },
}

const RELEASES: &[Column] = &[
    col("RELEASE", "number"),
    col("IMAGE", "image"),
    col_as("CREATED", "created_at", Cell::Time),
];

const INSTANCES: &[Column] = &[
    col_as("ID", "id", Cell::ShortId),
    col("PROCESS", "process"),
    col_as("NODE", "node_id", Cell::ShortId),
    col("DESIRED", "desired_state"),
    col("OBSERVED", "observed_state"),
    col("ADDRESS", "address"),
    col("RESTARTS", "restarts"),
    col("REASON", "reason"),
];

/// Validates the manifest locally first (the same strict parser as the API), so a typo
/// fails in a second with the file and field named, not after an upload.
pub async fn deploy(ctx: &Ctx, args: DeployArgs) -> Result<()> {
    let path = args
        .manifest
        .or_else(|| Some(PathBuf::from(MANIFEST)).filter(|p| p.exists()));
    let manifest = path.as_deref().map(read_manifest).transpose()?;
    let app = manifest.as_ref().map(|(m, _)| m.app.to_string());
    let Some(image) = args.image else {
        let app = ctx.app_or(app.as_deref())?;
        let root = path
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let done = super::build::build_and_deploy(ctx, &app, root, manifest.as_ref()).await?;
        return built(ctx, &app, &done).await;
    };
    let image = match ImageRef::parse(&image) {
        Ok(_) => image,
        Err(ImageRefError::NotPinned(_)) => pin(&image).await?,
        Err(e) => return Err(CliError::Usage(e.to_string())),
    };
    let url = ctx.path_for_app(Scope::Env, app.as_deref(), &["deployments"])?;
    let mut body = json!({ "image": image });
    if let Some((_, text)) = manifest {
        body["manifest"] = Value::String(text);
    }
    let client = ctx.client()?.with_timeout(SLOW_TIMEOUT);
    let spinner = output::spinner(format!("Deploying {image} to {}", ctx.global.env));
    let answer = client.post(&url, &body).await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    rolled_out(ctx, &ctx.app_or(app.as_deref())?, &answer?, "Deployed")
}

/// How long a deploy waits for its instances to be healthy.
const ROLLOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// After a build succeeded: its image rolls out; shows each instance of the new
/// deployment as it boots and turns healthy, until all of them are, then where it serves.
async fn built(ctx: &Ctx, app: &str, build: &Value) -> Result<()> {
    let path = ctx.path_for_app(Scope::Env, Some(app), &["status"])?;
    let status = watch_rollout(ctx, &path).await?;
    if ctx.json() {
        return output::emit_json(&json!({ "build": build, "status": status }));
    }
    let text = output::pairs(&[
        ("build", field(build, "id")),
        ("image", field(build, "image")),
        ("url", field(&status, "url")),
    ]);
    output::emit(&format!(
        "Built and deployed {app} in env {}\n{text}",
        ctx.global.env
    ))
}

/// `reference` pinned to the digest its registry serves now (a release names an image by
/// digest, so a tag moved later changes nothing that runs), said on stderr.
async fn pin(reference: &str) -> Result<String> {
    let image_error = |e: zeitwork_image::ImageError| CliError::Usage(e.to_string());
    let auth = zeitwork_image::AuthFiles::from_env()
        .for_reference(reference)
        .map_err(image_error)?;
    let spinner = output::spinner(format!("Resolving {reference}"));
    let pinned = zeitwork_image::pin(reference, &auth).await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let pinned = pinned.map_err(image_error)?;
    let digest = pinned.rsplit_once('@').map_or("", |(_, d)| d);
    eprintln!("{reference} is {digest}");
    Ok(pinned)
}

/// Reads and strictly validates a manifest; returns it with its text (sent verbatim).
fn read_manifest(path: &Path) -> Result<(Manifest, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(CliError::io(format!("reading {}", path.display())))?;
    let manifest = Manifest::from_toml(&text).map_err(|source| CliError::Manifest {
        path: path.to_owned(),
        source,
    })?;
    Ok((manifest, text))
}

pub async fn rollback(ctx: &Ctx, args: RollbackArgs) -> Result<()> {
    let body = match args.release {
        Some(n) => json!({ "release": n }),
        None => json!({}),
    };
    let path = ctx.path(Scope::Env, &["rollback"])?;
    let answer = ctx
        .client()?
        .with_timeout(SLOW_TIMEOUT)
        .post(&path, &body)
        .await?;
    rolled_out(ctx, &ctx.app()?, &answer, "Rolled back")
}

pub async fn restart(ctx: &Ctx, args: RestartArgs) -> Result<()> {
    let body = match args.process {
        Some(p) => json!({ "process": p }),
        None => json!({}),
    };
    let path = ctx.path(Scope::Env, &["restart"])?;
    let answer = ctx.client()?.post(&path, &body).await?;
    if ctx.json() {
        return output::emit_json(&answer);
    }
    let n = answer["replacements"].as_array().map_or(0, Vec::len);
    output::emit(&format!(
        "Restarting {n} instance(s) of {} in env {}: each old one stops once its replacement is healthy (`zeitwork status`)\n",
        ctx.app()?,
        ctx.global.env
    ))
}

/// Prints a deploy/rollback answer `{"deployment","release","url","instances","warnings"}`;
/// warnings go to stderr, one line each, in both output modes.
fn rolled_out(ctx: &Ctx, app: &str, answer: &Value, verb: &str) -> Result<()> {
    for warning in answer
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        eprintln!("warning: {warning}");
    }
    if ctx.json() {
        return output::emit_json(answer);
    }
    let deployment = answer.get("deployment").unwrap_or(&Value::Null);
    let instances = match answer.get("instances") {
        Some(Value::Array(list)) => list.len().to_string(),
        Some(other) => output::text(other),
        None => "-".into(),
    };
    let how = match answer.get("instant") {
        Some(Value::Bool(true)) => " instantly: its instances were on standby, none booted",
        _ => "",
    };
    let head = format!("{verb} {app} in env {}{how}\n", ctx.global.env);
    let image = match answer.get("release") {
        Some(release @ Value::Object(_)) => field(release, "image"),
        _ => "-".into(),
    };
    let body = output::pairs(&[
        ("release", release_number(answer.get("release"))),
        ("image", image),
        ("deployment", field(deployment, "slug")),
        ("url", field(answer, "url")),
        ("instances", instances),
    ]);
    output::emit(&format!("{head}{body}"))
}

/// Polls the env's status until every instance of its active deployment is healthy,
/// printing each instance's changes to stderr (stdout stays for the result, `--json`'s
/// one object included); the last status.
async fn watch_rollout(ctx: &Ctx, path: &[String]) -> Result<Value> {
    let client = ctx.client()?;
    let deadline = tokio::time::Instant::now() + ROLLOUT_WAIT;
    let mut seen = std::collections::BTreeMap::new();
    loop {
        let status = client.get(path).await?;
        let deployment = field(&status["deployment"], "id");
        let new: Vec<&Value> = status["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| {
                field(i, "deployment_id") == deployment && field(i, "desired_state") == "running"
            })
            .collect();
        for i in &new {
            let (id, state) = (field(i, "id"), field(i, "observed_state"));
            if seen.get(&id) != Some(&state) {
                eprintln!(
                    "instance {} ({}): {state}",
                    output::short_id(&id),
                    field(i, "process")
                );
                seen.insert(id, state);
            }
        }
        let wanted: u64 = status["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["instances"].as_u64())
            .sum();
        let healthy = new
            .iter()
            .filter(|i| field(i, "observed_state") == "healthy");
        if healthy.count() as u64 >= wanted && new.len() as u64 >= wanted {
            return Ok(status);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::Usage(format!(
                "the new deployment's instances are not all healthy after {}s; `zeitwork status` shows where they are",
                ROLLOUT_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// A release given as a Release object or as its bare number.
fn release_number(release: Option<&Value>) -> String {
    match release {
        Some(object @ Value::Object(_)) => field(object, "number"),
        Some(other) => output::text(other),
        None => "-".into(),
    }
}

pub async fn status(ctx: &Ctx) -> Result<()> {
    let answer = ctx
        .client()?
        .get(&ctx.path(Scope::Env, &["status"])?)
        .await?;
    if ctx.json() {
        return output::emit_json(&answer);
    }
    let processes: Vec<String> = answer
        .get("processes")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| format!("{}={}", field(p, "name"), field(p, "instances")))
                .collect()
        })
        .unwrap_or_default();
    let mut text = output::pairs(&[
        ("app", field(&answer, "app")),
        ("env", field(&answer, "env")),
        ("url", field(&answer, "url")),
        ("release", release_number(answer.get("release"))),
        ("standby", standby(&answer["standby"])),
        (
            "processes",
            if processes.is_empty() {
                "-".into()
            } else {
                processes.join(" ")
            },
        ),
    ]);
    for line in scaling(&answer) {
        text.push_str(&line);
        text.push('\n');
    }
    let instances = items(&answer, "instances")?;
    text.push('\n');
    if instances.is_empty() {
        text.push_str("no instances\n");
    } else {
        text.push_str(&output::items_table(INSTANCES, instances));
    }
    output::emit(&text)
}

/// One line per process that autoscales or was scaled: its bounds and target, and the
/// last change of its count with who made it and why.
fn scaling(status: &Value) -> Vec<String> {
    let Some(processes) = status.get("scaling").and_then(Value::as_array) else {
        return Vec::new();
    };
    processes
        .iter()
        .filter_map(|p| {
            let name = field(p, "process");
            let a = &p["autoscale"];
            let bounds = a.is_object().then(|| {
                let mut targets = Vec::new();
                if let Some(t) = a["target_concurrency"].as_u64() {
                    targets.push(format!("{t} requests in flight"));
                }
                if let Some(t) = a["target_cpu"].as_u64() {
                    targets.push(format!("{t}% CPU"));
                }
                // Without a timeout of its own, the default.
                let default = zeitwork_core::manifest::autoscale::DEFAULT_IDLE_TIMEOUT;
                let idle = match (a["min"].as_u64(), a["idle_timeout"].as_str()) {
                    (Some(0), Some(t)) => format!(", to zero after {t} idle"),
                    (Some(0), None) => format!(", to zero after {default} idle"),
                    _ => String::new(),
                };
                format!(
                    "autoscales {}–{} per region at {} per instance, down after {}{idle}",
                    field(a, "min"),
                    field(a, "max"),
                    targets.join(" and "),
                    field(a, "scale_down_window")
                )
            });
            let last = &p["last"];
            let change = last.is_object().then(|| {
                let why = last["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!(
                    "scaled to {} at {} by {}{why}",
                    field(last, "instances"),
                    output::short_time(last["at"].as_str().unwrap_or("-")),
                    field(last, "actor")
                )
            });
            match (bounds, change) {
                (None, None) => None,
                (Some(b), None) => Some(format!("{name}: {b}")),
                (None, Some(c)) => Some(format!("{name}: {c}")),
                (Some(b), Some(c)) => Some(format!("{name}: {b}; {c}")),
            }
        })
        .collect()
}

/// The env's standby deployment as `release 3 (deployment abc1234) until …`; `-` for none.
fn standby(deployment: &Value) -> String {
    match deployment["standby_until"].as_str() {
        Some(until) => format!(
            "release {} (deployment {}) until {}; `rollback` returns to it instantly",
            field(deployment, "release_number"),
            field(deployment, "slug"),
            output::short_time(until)
        ),
        None => "-".into(),
    }
}

pub async fn releases(ctx: &Ctx, action: ReleasesAction) -> Result<()> {
    match action {
        ReleasesAction::List => {
            let answer = ctx
                .client()?
                .get(&ctx.path(Scope::App, &["releases"])?)
                .await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            let releases: Vec<Value> = items(&answer, "releases")?
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r["deployed_in"] = Value::from(deployed_in(&r));
                    r
                })
                .collect();
            if releases.is_empty() {
                return output::emit("no releases\n");
            }
            let columns = [RELEASES, &[col("DEPLOYED", "deployed_in")]].concat();
            output::emit(&output::items_table(&columns, &releases))
        }
        ReleasesAction::Show { number } => {
            let path = ctx.path(Scope::App, &["releases", &number.to_string()])?;
            let columns = [
                RELEASES,
                &[
                    col("DIGEST", "digest"),
                    col("MANIFEST HASH", "manifest_hash"),
                ],
            ]
            .concat();
            let release = show(ctx, path, &columns).await?;
            if ctx.json() {
                return Ok(());
            }
            let manifest = match release.get("manifest") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None => return Ok(()),
                Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            output::emit(&format!("\nmanifest:\n{}\n", manifest.trim_end()))
        }
    }
}

/// Where a listed release runs: `prod`, or `prod (standby until 2026-12-07 13:20:00)`
/// for the deployment a rollback switches back to without booting; `-` for none.
fn deployed_in(release: &Value) -> String {
    let envs: Vec<String> = release["deployed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let env = field(d, "env");
            match d["standby_until"].as_str() {
                Some(until) if d["state"] == "standby" => {
                    format!("{env} (standby until {})", output::short_time(until))
                }
                _ => env,
            }
        })
        .collect();
    if envs.is_empty() {
        "-".into()
    } else {
        envs.join(", ")
    }
}

/// One `POST …/scale` per process: the API scales one process type per request.
pub async fn scale(ctx: &Ctx, args: ScaleArgs) -> Result<()> {
    let client = ctx.client()?;
    let path = ctx.path(Scope::Env, &["scale"])?;
    for target in args.counts {
        let body = json!({ "process": target.process, "instances": target.instances });
        let answer = client.post(&path, &body).await?;
        if ctx.json() {
            output::emit(&format!("{answer}\n"))?;
        } else {
            let n = target.instances;
            let noun = if n == 1 { "instance" } else { "instances" };
            output::emit(&format!("Scaled {} to {n} {noun}\n", target.process))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn scaling_lines_show_bounds_targets_and_the_last_change() {
        let status = serde_json::json!({"scaling": [
            {"process": "web", "autoscale": {"min": 0, "max": 3, "target_concurrency": 2,
             "scale_down_window": "10s"},
             "last": {"instances": 0, "at": "2026-12-07T15:00:00Z", "actor": "autoscaler",
                      "reason": "no requests for 300s: scaled to zero"}},
            {"process": "worker", "autoscale": null,
             "last": {"instances": 4, "at": "2026-12-07T15:00:00Z", "actor": "ann", "reason": null}},
            {"process": "cron", "autoscale": null, "last": null}
        ]});
        let lines = super::scaling(&status);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "web: autoscales 0–3 per region at 2 requests in flight per instance, \
                 down after 10s, to zero after 300s idle; scaled to 0 at "
            ) && lines[0].ends_with("by autoscaler: no requests for 300s: scaled to zero"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("worker: scaled to 4 at ") && lines[1].ends_with("by ann"),
            "{}",
            lines[1]
        );
    }
    use super::*;

    #[test]
    fn a_release_lists_the_envs_it_runs_in_and_until_when_it_stands_by() {
        let release = json!({"number": 3, "deployed": [
            {"env": "prod", "state": "standby", "standby_until": "2026-12-07T13:20:00.5Z"},
            {"env": "staging", "state": "active", "standby_until": null},
        ]});
        assert_eq!(
            deployed_in(&release),
            "prod (standby until 2026-12-07 13:20:00), staging"
        );
        assert_eq!(deployed_in(&json!({"number": 1, "deployed": []})), "-");
    }
}
