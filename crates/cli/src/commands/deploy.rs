//! Rolling out: `deploy`, `rollback`, `scale`, and reading the result with `status`
//! and `releases`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;
use zeitwork_api_types::{
    Build, Deployment, EnvStatus, Instance, NewDeployment, ProcessScaling, Release,
    ReleaseDeployed, ReleaseList, Restart, Restarted, Rollback, Rollout, Scale, Scaled,
};
use zeitwork_core::image::ImageRefError;
use zeitwork_core::node::ObservedState;
use zeitwork_core::{DeploymentState, DesiredState, ImageRef, Manifest};

use super::show;
use crate::client::{Page, SLOW_TIMEOUT};
use crate::context::{Ctx, MANIFEST, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col};

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

const RELEASES: &[Column<Release>] = &[
    col("RELEASE", |r| r.number.cell()),
    col("IMAGE", |r| r.image.cell()),
    col("CREATED", |r| r.created_at.cell()),
];

const INSTANCES: &[Column<Instance>] = &[
    col("ID", |i| output::short_id(&i.id)),
    col("PROCESS", |i| i.process.cell()),
    col("NODE", |i| {
        i.node
            .clone()
            .or_else(|| i.node_id.as_ref().map(output::short_id))
            .cell()
    }),
    col("DESIRED", |i| i.desired_state.cell()),
    col("OBSERVED", |i| i.observed_state.cell()),
    col("ADDRESS", |i| i.address.cell()),
    col("RESTARTS", |i| i.restarts.cell()),
    col("REASON", |i| i.reason.cell()),
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
    let client = ctx.client()?.with_timeout(SLOW_TIMEOUT);
    let spinner = output::spinner(format!("Deploying {image} to {}", ctx.global.env));
    let body = NewDeployment {
        image,
        manifest: manifest.map(|(_, text)| text),
    };
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
async fn built(ctx: &Ctx, app: &str, build: &Build) -> Result<()> {
    /// `--json`'s answer: the build and the env's status once its rollout is healthy.
    #[derive(Serialize)]
    struct Built<'a> {
        build: &'a Build,
        status: &'a EnvStatus,
    }
    let path = ctx.path_for_app(Scope::Env, Some(app), &["status"])?;
    let status = watch_rollout(ctx, &path).await?;
    if ctx.json() {
        return output::emit_json(&Built {
            build,
            status: &status,
        });
    }
    let text = output::pairs(&[
        ("build", build.id.cell()),
        ("image", build.image.cell()),
        ("url", status.url.cell()),
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
    let release = args
        .release
        .map(|n| i32::try_from(n).map_err(|_| CliError::Usage(format!("there is no release {n}"))))
        .transpose()?;
    let path = ctx.path(Scope::Env, &["rollback"])?;
    let answer = ctx
        .client()?
        .with_timeout(SLOW_TIMEOUT)
        .post(&path, &Rollback { release })
        .await?;
    rolled_out(ctx, &ctx.app()?, &answer, "Rolled back")
}

pub async fn restart(ctx: &Ctx, args: RestartArgs) -> Result<()> {
    let body = Restart {
        process: args.process,
    };
    let path = ctx.path(Scope::Env, &["restart"])?;
    let answer: Restarted = ctx.client()?.post(&path, &body).await?;
    if ctx.json() {
        return output::emit_json(&answer);
    }
    let n = answer.replacements.len();
    output::emit(&format!(
        "Restarting {n} instance(s) of {} in env {}: each old one stops once its replacement is healthy (`zeitwork status`)\n",
        ctx.app()?,
        ctx.global.env
    ))
}

/// Prints what a deploy or a rollback started; warnings go to stderr, one line each, in
/// both output modes.
fn rolled_out(ctx: &Ctx, app: &str, rollout: &Rollout, verb: &str) -> Result<()> {
    for warning in &rollout.warnings {
        eprintln!("warning: {warning}");
    }
    if ctx.json() {
        return output::emit_json(rollout);
    }
    let how = match rollout.instant {
        true => " instantly: its instances were on standby, none booted",
        false => "",
    };
    let head = format!("{verb} {app} in env {}{how}\n", ctx.global.env);
    let body = output::pairs(&[
        ("release", rollout.release.number.cell()),
        ("image", rollout.release.image.cell()),
        ("deployment", rollout.deployment.slug.cell()),
        ("url", rollout.url.cell()),
        ("instances", rollout.instances.len().to_string()),
    ]);
    output::emit(&format!("{head}{body}"))
}

/// Polls the env's status until every instance of its active deployment is healthy,
/// printing each instance's changes to stderr (stdout stays for the result, `--json`'s
/// one object included); the last status.
async fn watch_rollout(ctx: &Ctx, path: &[String]) -> Result<EnvStatus> {
    let client = ctx.client()?;
    let deadline = tokio::time::Instant::now() + ROLLOUT_WAIT;
    let mut seen = std::collections::BTreeMap::new();
    loop {
        let status: EnvStatus = client.get(path).await?;
        let active = status.deployment.as_ref().map(|d| d.id);
        let new: Vec<&Instance> = status
            .instances
            .iter()
            .filter(|i| Some(i.deployment_id) == active && i.desired_state == DesiredState::Running)
            .collect();
        for i in &new {
            if seen.get(&i.id) != Some(&i.observed_state) {
                eprintln!(
                    "instance {} ({}): {}",
                    output::short_id(&i.id),
                    i.process,
                    i.observed_state.cell()
                );
                seen.insert(i.id, i.observed_state);
            }
        }
        let wanted: u64 = status
            .processes
            .iter()
            .filter_map(|p| u64::try_from(p.instances).ok())
            .sum();
        let healthy = new
            .iter()
            .filter(|i| i.observed_state == ObservedState::Healthy);
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

pub async fn status(ctx: &Ctx) -> Result<()> {
    let status: EnvStatus = ctx
        .client()?
        .get(&ctx.path(Scope::Env, &["status"])?)
        .await?;
    if ctx.json() {
        return output::emit_json(&status);
    }
    let processes: Vec<String> = status
        .processes
        .iter()
        .map(|p| format!("{}={}", p.name, p.instances))
        .collect();
    let mut text = output::pairs(&[
        ("app", status.app.cell()),
        ("env", status.env.cell()),
        ("url", status.url.cell()),
        ("release", status.release.as_ref().map(|r| r.number).cell()),
        ("standby", standby(status.standby.as_ref())),
        (
            "processes",
            if processes.is_empty() {
                "-".into()
            } else {
                processes.join(" ")
            },
        ),
    ]);
    for line in scaling(&status.scaling) {
        text.push_str(&line);
        text.push('\n');
    }
    text.push('\n');
    if status.instances.is_empty() {
        text.push_str("no instances\n");
    } else {
        text.push_str(&output::items_table(INSTANCES, &status.instances));
    }
    output::emit(&text)
}

/// One line per process that autoscales or was scaled: its bounds and target, and the
/// last change of its count with who made it and why.
fn scaling(processes: &[ProcessScaling]) -> Vec<String> {
    processes
        .iter()
        .filter_map(|p| {
            let bounds = p.autoscale.as_ref().map(|a| {
                let mut targets = Vec::new();
                if let Some(t) = a.target_concurrency {
                    targets.push(format!("{t} requests in flight"));
                }
                if let Some(t) = a.target_cpu {
                    targets.push(format!("{t}% CPU"));
                }
                // Without a timeout of its own, the default.
                let default = zeitwork_core::manifest::autoscale::DEFAULT_IDLE_TIMEOUT;
                let idle = match a.min {
                    0 => format!(", to zero after {} idle", a.idle_timeout.unwrap_or(default)),
                    _ => String::new(),
                };
                format!(
                    "autoscales {}–{} per region at {} per instance, down after {}{idle}",
                    a.min,
                    a.max,
                    targets.join(" and "),
                    a.scale_down_window
                )
            });
            let change = p.last.as_ref().map(|last| {
                let why = last
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!(
                    "scaled to {} at {} by {}{why}",
                    last.instances,
                    output::short_time(&last.at),
                    last.actor
                )
            });
            let name = &p.process;
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
fn standby(deployment: Option<&Deployment>) -> String {
    match deployment.and_then(|d| Some((d, d.standby_until?))) {
        Some((d, until)) => format!(
            "release {} (deployment {}) until {}; `rollback` returns to it instantly",
            d.release_number,
            d.slug,
            output::short_time(&until)
        ),
        None => "-".into(),
    }
}

pub async fn releases(ctx: &Ctx, action: ReleasesAction) -> Result<()> {
    match action {
        ReleasesAction::List => {
            let page: ReleaseList = ctx
                .client()?
                .list(&ctx.path(Scope::App, &["releases"])?)
                .await?;
            if ctx.json() {
                return output::emit_json(&page);
            }
            let (releases, _) = page.into_parts();
            if releases.is_empty() {
                return output::emit("no releases\n");
            }
            let headers: Vec<&str> = RELEASES
                .iter()
                .map(|c| c.header)
                .chain(["DEPLOYED"])
                .collect();
            let rows: Vec<Vec<String>> = releases
                .iter()
                .map(|r| {
                    let mut row = output::cells(RELEASES, &r.release);
                    row.push(deployed_in(&r.deployed));
                    row
                })
                .collect();
            output::emit(&output::table(&headers, &rows))
        }
        ReleasesAction::Show { number } => {
            let path = ctx.path(Scope::App, &["releases", &number.to_string()])?;
            let columns = [
                RELEASES,
                &[
                    col("DIGEST", |r: &Release| r.digest.cell()),
                    col("MANIFEST HASH", |r: &Release| r.manifest_hash.cell()),
                ],
            ]
            .concat();
            let release = show(ctx, path, &columns).await?;
            if ctx.json() {
                return Ok(());
            }
            // The manifest as the operator read it: any JSON document.
            let manifest = match &release.manifest {
                Value::String(text) => text.clone(),
                Value::Null => return Ok(()),
                other => format!("{other:#}"),
            };
            output::emit(&format!("\nmanifest:\n{}\n", manifest.trim_end()))
        }
    }
}

/// Where a listed release runs: `prod`, or `prod (standby until 2026-12-07 13:20:00)`
/// for the deployment a rollback switches back to without booting; `-` for none.
fn deployed_in(deployed: &[ReleaseDeployed]) -> String {
    let envs: Vec<String> = deployed
        .iter()
        .map(|d| match d.standby_until {
            Some(until) if d.state == DeploymentState::Standby => {
                format!("{} (standby until {})", d.env, output::short_time(&until))
            }
            _ => d.env.clone(),
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
        let n = target.instances;
        let body = Scale {
            process: target.process,
            instances: n,
        };
        let answer: Scaled = client.post(&path, &body).await?;
        if ctx.json() {
            output::emit(&(output::json_line(&answer)? + "\n"))?;
        } else {
            let noun = if n == 1 { "instance" } else { "instances" };
            output::emit(&format!("Scaled {} to {n} {noun}\n", body.process))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scaling_lines_show_bounds_targets_and_the_last_change() {
        let processes: Vec<ProcessScaling> = serde_json::from_value(json!([
            {"process": "web", "autoscale": {"min": 0, "max": 3, "target_concurrency": 2,
             "scale_down_window": "10s"},
             "last": {"process": "web", "instances": 0, "at": "2026-12-07T15:00:00Z",
                      "actor": "autoscaler", "reason": "no requests for 300s: scaled to zero"}},
            {"process": "worker", "autoscale": null,
             "last": {"process": "worker", "instances": 4, "at": "2026-12-07T15:00:00Z",
                      "actor": "ann", "reason": null}},
            {"process": "cron", "autoscale": null, "last": null}
        ]))
        .unwrap();
        let lines = scaling(&processes);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            lines[0],
            "web: autoscales 0–3 per region at 2 requests in flight per instance, \
             down after 10s, to zero after 300s idle; scaled to 0 at 2026-12-07 15:00:00 \
             by autoscaler: no requests for 300s: scaled to zero",
        );
        assert_eq!(
            lines[1],
            "worker: scaled to 4 at 2026-12-07 15:00:00 by ann"
        );
    }

    #[test]
    fn a_release_lists_the_envs_it_runs_in_and_until_when_it_stands_by() {
        let deployed: Vec<ReleaseDeployed> = serde_json::from_value(json!([
            {"env": "prod", "deployment_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d",
             "state": "standby", "standby_until": "2026-12-07T13:20:00.5Z"},
            {"env": "staging", "deployment_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9e",
             "state": "active", "standby_until": null},
        ]))
        .unwrap();
        assert_eq!(
            deployed_in(&deployed),
            "prod (standby until 2026-12-07 13:20:00), staging"
        );
        assert_eq!(deployed_in(&[]), "-");
    }

    #[test]
    fn a_standby_deployment_says_until_when() {
        let deployment: Deployment = serde_json::from_value(json!({
            "id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d",
            "env_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9e",
            "release_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9f",
            "release_number": 3, "slug": "abc1234", "state": "standby", "rollback_of": null,
            "created_at": "2026-12-07T12:00:00Z", "activated_at": "2026-12-07T12:00:00Z",
            "standby_until": "2026-12-07T13:20:00Z"
        }))
        .unwrap();
        assert_eq!(
            standby(Some(&deployment)),
            "release 3 (deployment abc1234) until 2026-12-07 13:20:00; \
             `rollback` returns to it instantly"
        );
        assert_eq!(standby(None), "-");
    }
}
