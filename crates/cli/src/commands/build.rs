//! `zeitwork deploy` without `--image`, in a directory with a Dockerfile: the context
//! (what `.dockerignore` leaves, within the limit of the manifest's `[build]`) is pushed to
//! the platform registry as the app's source, built on a node in a builder microVM, and
//! rolled out; the build's progress and, when it fails, its last lines are shown.

use std::path::Path;

use chrono::SecondsFormat;
use serde::Deserialize;
use zeitwork_api_types::{Build, BuildList, LogLine, LogTail, NewBuild, RegistryInfo};
use zeitwork_core::Manifest;
use zeitwork_core::build::BuildState;
use zeitwork_core::manifest::Build as BuildSettings;

use super::{list, show};
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col};

#[derive(Debug, Default, clap::Subcommand)]
pub enum BuildsAction {
    /// List the env's builds, newest first
    #[default]
    List,
    /// Show one build: where it is, its image, or why it failed with its last lines
    Show { id: String },
    /// Cancel a build that has not ended; its node stops it
    Cancel { id: String },
    /// A build's output; with -f, followed until the build ends
    Logs {
        id: String,
        /// Keep printing its output until the build ends (Ctrl-C detaches)
        #[arg(short, long)]
        follow: bool,
        /// How many of its latest lines to show first
        #[arg(long, value_name = "N", default_value_t = 1000,
              value_parser = clap::value_parser!(u32).range(0..=10_000))]
        tail: u32,
    },
}

const BUILDS: &[Column<Build>] = &[
    col("ID", |b| output::short_id(&b.id)),
    col("STATE", |b| b.state.cell()),
    col("IMAGE", |b| b.image.cell()),
    col("CREATED", |b| b.created_at.cell()),
];

/// How a build ended: the `end` event of its followed output, or the build itself.
#[derive(Debug, Deserialize)]
struct Ended {
    state: BuildState,
    reason: Option<String>,
    image: Option<String>,
}

impl From<&Build> for Ended {
    fn from(build: &Build) -> Ended {
        Ended {
            state: build.state,
            reason: build.reason.clone(),
            image: build.image.clone(),
        }
    }
}

pub async fn builds(ctx: &Ctx, action: BuildsAction) -> Result<()> {
    match action {
        BuildsAction::List => {
            list::<BuildList>(ctx, ctx.path(Scope::Env, &["builds"])?, BUILDS).await
        }
        BuildsAction::Show { id } => {
            let columns = [
                BUILDS,
                &[
                    col("SOURCE", |b: &Build| b.source.cell()),
                    col("REASON", |b: &Build| b.reason.cell()),
                    col("NODE", |b: &Build| b.node_id.cell()),
                    col("UPDATED", |b: &Build| b.updated_at.cell()),
                ],
            ]
            .concat();
            let answer = show(ctx, ctx.path(Scope::Env, &["builds", &id])?, &columns).await?;
            if !ctx.json() {
                for line in &answer.log {
                    println!("  {line}");
                }
            }
            Ok(())
        }
        BuildsAction::Logs { id, follow, tail } => {
            let path = ctx.path(Scope::Env, &["builds", &id, "logs"])?;
            if !follow {
                let answer: LogTail = ctx
                    .client()?
                    .get_query(&path, &[("tail", tail.to_string())])
                    .await?;
                let mut text = String::new();
                for line in &answer.lines {
                    text += &(render(ctx, line)? + "\n");
                }
                return output::emit(&text);
            }
            let (end, _) = tokio::select! {
                end = follow_output(ctx, &path, tail, true) => end?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            ended(ctx, &id, &end)
        }
        BuildsAction::Cancel { id } => {
            let path = ctx.path(Scope::Env, &["builds", &id, "cancel"])?;
            let answer: Build = ctx.client()?.post_empty(&path).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            output::emit(&format!("Cancelled build {id}\n"))
        }
    }
}

/// Follows a build's output until it ends, each line printed to stderr (or, with
/// `lines_as_json` and `--json`, as a JSON object to stdout); how it ended and how many
/// lines were shown.
async fn follow_output(
    ctx: &Ctx,
    path: &[String],
    tail: u32,
    lines_as_json: bool,
) -> Result<(Ended, usize)> {
    let client = ctx.client()?;
    let url = client.url(path, &[("tail", tail.to_string()), ("follow", "1".into())]);
    let mut end = None;
    let mut shown = 0;
    client
        .follow(url, "build output", |event| match event.event.as_str() {
            "log" => {
                let line: LogLine = event.decode()?;
                shown += 1;
                match lines_as_json && ctx.json() {
                    true => output::emit(&(output::json_line(&line)? + "\n"))?,
                    false => eprintln!("  | {}", line.line),
                }
                Ok(true)
            }
            "end" => {
                end = Some(event.decode()?);
                Ok(false)
            }
            _ => Ok(true),
        })
        .await?;
    let end =
        end.ok_or_else(|| CliError::Protocol("the build's output ended without its end".into()))?;
    Ok((end, shown))
}

/// How a followed build ended: an error (exit code ≠ 0) unless it succeeded.
fn ended(ctx: &Ctx, id: &str, end: &Ended) -> Result<()> {
    if end.state != BuildState::Succeeded {
        return Err(CliError::Usage(format!(
            "build {id} {}: {}",
            end.state.cell(),
            end.reason.cell()
        )));
    }
    if !ctx.json() {
        eprintln!("build {id} succeeded: {}", end.image.cell());
    }
    Ok(())
}

/// One line of a build's output: `TIMESTAMP | line`, or its JSON with `--json`.
fn render(ctx: &Ctx, line: &LogLine) -> Result<String> {
    match ctx.json() {
        true => output::json_line(line),
        false => Ok(text(line)),
    }
}

/// `TIMESTAMP | line`, the timestamp as the API writes it.
fn text(line: &LogLine) -> String {
    let at = line.at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    format!("{at} | {}", line.line)
}

/// Builds the directory `root` (with `manifest` and its text, if any) for `app` and
/// returns the build's final answer and the rollout it made.
pub async fn build_and_deploy(
    ctx: &Ctx,
    app: &str,
    root: &Path,
    manifest: Option<&(Manifest, String)>,
) -> Result<Build> {
    let build = manifest
        .and_then(|(m, _)| m.build.clone())
        .unwrap_or_default();
    let context = root.join(&build.context);
    if !context.join(&build.dockerfile).is_file() {
        return Err(CliError::Usage(format!(
            "no --image given and no {} in {}: deploy an image, or build from a directory with a Dockerfile",
            build.dockerfile,
            context.display()
        )));
    }
    let client = ctx.client()?;
    let registry: RegistryInfo = client
        .get(&ctx.path(Scope::Platform, &["registry"])?)
        .await?;
    let org = ctx.org()?.to_owned();
    let spinner = output::spinner(format!("Uploading {}", context.display()));
    let source = push_source(ctx, &registry.address, &org, app, &context, &build).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let (source, staged) = source?;
    eprintln!(
        "uploaded the source ({} files, {} KiB) as {source}",
        staged.files,
        staged.bytes.div_ceil(1024)
    );
    let body = NewBuild {
        source,
        manifest: manifest.map(|(_, text)| text.clone()),
    };
    let builds = ctx.path_for_app(Scope::Env, Some(app), &["builds"])?;
    let queued: Build = client.post(&builds, &body).await?;
    let id = queued.id.to_string();
    let mut path = builds.clone();
    path.push(id.clone());
    if queued.state != BuildState::Succeeded {
        eprintln!(
            "build {id} queued on node {}; its output follows (Ctrl-C detaches, `zeitwork builds cancel {id}` cancels)",
            queued.node_id
        );
        let mut logs = path.clone();
        logs.push("logs".into());
        // With --json, stdout holds the final object only; the output goes to stderr.
        let (end, shown) = follow_output(ctx, &logs, 0, false).await?;
        if end.state != BuildState::Succeeded && shown == 0 {
            // Nothing streamed (it failed before its VM printed): the kept last lines.
            let done: Build = client.get(&path).await?;
            for line in &done.log {
                eprintln!("  | {line}");
            }
        }
    }
    let done: Build = client.get(&path).await?;
    ended(ctx, &id, &Ended::from(&done))?;
    Ok(done)
}

/// Stages the context as Docker would send it and pushes it as
/// `<registry>/<org>/<app>/source:<short digest>`; its pinned reference.
async fn push_source(
    ctx: &Ctx,
    registry: &str,
    org: &str,
    app: &str,
    context: &Path,
    build: &BuildSettings,
) -> Result<(String, zeitwork_image::Staged)> {
    let token = ctx.settings.token.as_deref().ok_or(CliError::NotLoggedIn)?;
    let staging = tempfile::tempdir().map_err(CliError::io("staging the context"))?;
    let (from, to, dockerfile) = (
        context.to_owned(),
        staging.path().join("context"),
        build.dockerfile.clone(),
    );
    let limit = BuildSettings::context_limit(build.disk_mb);
    let staged = tokio::task::spawn_blocking(move || {
        zeitwork_image::stage_context(&from, &to, &dockerfile, limit)
    })
    .await
    .map_err(|e| CliError::Usage(e.to_string()))?
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let name = format!("{registry}/{org}/{app}/source");
    let options = zeitwork_image::PushOptions {
        auth: zeitwork_image::Auth::Basic {
            username: "zeitwork".into(),
            password: token.to_owned(),
        },
        ..Default::default()
    };
    let digest = zeitwork_image::push_directory(
        &staging.path().join("context"),
        &format!("{name}:latest"),
        &zeitwork_image::ImageConfig::default(),
        &options,
    )
    .await
    .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok((format!("{name}@{digest}"), staged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_their_time_as_the_api_wrote_it() {
        for at in [
            "2025-03-04T05:06:07Z",
            "2025-03-04T05:06:07.120Z",
            "2025-03-04T05:06:07.123456Z",
        ] {
            let line: LogLine = serde_json::from_value(serde_json::json!({
                "id": 1, "process": "build", "at": at, "line": "STEP 1/2"
            }))
            .unwrap();
            assert_eq!(text(&line), format!("{at} | STEP 1/2"));
        }
    }
}
