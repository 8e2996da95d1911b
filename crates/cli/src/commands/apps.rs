//! Orgs, apps and envs: named containers that are listed, created and deleted alike.

use serde_json::{Value, json};

use super::{create, field, list, remove, show};
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col, col_as};

const NAMED: &[Column] = &[
    col("NAME", "name"),
    col_as("CREATED", "created_at", Cell::Time),
    col("ID", "id"),
];

#[derive(Debug, Default, clap::Subcommand)]
pub enum OrgsAction {
    /// List the orgs the token can see
    #[default]
    List,
    /// Create an org (platform token)
    Create { name: String },
    /// Delete an org and everything in it (platform token)
    Delete { name: String },
}

#[derive(Debug, Default, clap::Subcommand)]
pub enum AppsAction {
    /// List the org's apps
    #[default]
    List,
    /// Create an app (it starts with the env `prod`)
    Create { name: String },
    /// Delete an app and everything in it
    Delete { name: String },
    /// Show an app [default: --app, or the app of ./zeitwork.toml]
    Show { name: Option<String> },
    /// Connect the app to a git repository: pushes build and deploy (the production
    /// branch to prod, others to preview envs); prints the webhook's URL and secret
    Connect(ConnectArgs),
    /// Show the app's connected repository
    Repository,
    /// Disconnect the app from its repository (its webhook stops working)
    Disconnect,
}

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The repository's URL (https://, git://, ssh:// or git@host:path)
    #[arg(long)]
    repo: String,
    /// The production branch
    #[arg(long, default_value = "main")]
    branch: String,
    /// A file holding the token a private repository is fetched with (stored sealed)
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, clap::Subcommand)]
pub enum EnvsAction {
    /// List the app's envs
    #[default]
    List,
    /// Create an env
    Create { name: String },
    /// Delete an env and its deployments
    Delete { name: String },
}

/// The list/create/delete actions shared by all three, after their own parsing.
enum Named {
    List,
    Create(String),
    Delete(String),
}

/// Runs a [`Named`] action on the collection `key` under `scope` (`kind` names one item).
async fn named(ctx: &Ctx, scope: Scope, key: &str, kind: &str, action: Named) -> Result<()> {
    match action {
        Named::List => list(ctx, ctx.path(scope, &[key])?, key, NAMED).await,
        Named::Create(name) => {
            let done = format!("Created {kind} {name}");
            create(
                ctx,
                ctx.path(scope, &[key])?,
                json!({ "name": name }),
                &done,
            )
            .await
            .map(drop)
        }
        Named::Delete(name) => {
            remove(
                ctx,
                ctx.path(scope, &[key, &name])?,
                &format!("Deleted {kind} {name}"),
            )
            .await
        }
    }
}

pub async fn orgs(ctx: &Ctx, action: OrgsAction) -> Result<()> {
    let action = match action {
        OrgsAction::List => Named::List,
        OrgsAction::Create { name } => Named::Create(name),
        OrgsAction::Delete { name } => Named::Delete(name),
    };
    named(ctx, Scope::Platform, "orgs", "org", action).await
}

pub async fn apps(ctx: &Ctx, action: AppsAction) -> Result<()> {
    let action = match action {
        AppsAction::Connect(args) => return connect(ctx, args).await,
        AppsAction::Repository => {
            let path = ctx.path(Scope::App, &["repository"])?;
            let answer = ctx.client()?.get(&path).await?;
            return print_repository(ctx, &answer, None);
        }
        AppsAction::Disconnect => {
            let path = ctx.path(Scope::App, &["repository"])?;
            return remove(ctx, path, &format!("Disconnected app {}", ctx.app()?)).await;
        }
        AppsAction::List => Named::List,
        AppsAction::Create { name } => Named::Create(name),
        AppsAction::Delete { name } => Named::Delete(name),
        AppsAction::Show { name } => {
            let name = match name {
                Some(name) => name,
                None => ctx.app()?,
            };
            let columns = [NAMED, &[col("ORG ID", "org_id")]].concat();
            return show(ctx, ctx.path(Scope::Org, &["apps", &name])?, &columns)
                .await
                .map(drop);
        }
    };
    named(ctx, Scope::Org, "apps", "app", action).await
}

pub async fn envs(ctx: &Ctx, action: EnvsAction) -> Result<()> {
    let action = match action {
        EnvsAction::List => Named::List,
        EnvsAction::Create { name } => Named::Create(name),
        EnvsAction::Delete { name } => Named::Delete(name),
    };
    named(ctx, Scope::App, "envs", "env", action).await
}

async fn connect(ctx: &Ctx, args: ConnectArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(CliError::io(&format!("reading {}", file.display())))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let body = json!({ "url": args.repo, "branch": args.branch, "token": token });
    let path = ctx.path(Scope::App, &["repository"])?;
    let answer = ctx.client()?.put(&path, &body).await?;
    let secret = answer["secret"].as_str().unwrap_or_default().to_owned();
    print_repository(ctx, &answer, Some(&secret))
}

/// The connection, the webhook URL to give GitHub (content type `application/json`)
/// and, just after connecting, its secret.
fn print_repository(ctx: &Ctx, answer: &Value, secret: Option<&str>) -> Result<()> {
    let hook = field(&answer["repository"], "hook_id");
    let url = ctx
        .client()?
        .url(&["webhooks".into(), "github".into()], &[("hook", hook)]);
    if ctx.json() {
        let mut answer = answer.clone();
        answer["webhook_url"] = json!(url.to_string());
        return output::emit_json(&answer);
    }
    let r = &answer["repository"];
    let mut text = format!(
        "Repository:  {}\nProduction:  {} (pushes deploy to prod; other branches to previews)\nWebhook URL: {url}\nContent type: application/json\n",
        field(r, "url"),
        field(r, "branch"),
    );
    if let Some(secret) = secret {
        text.push_str(&format!(
            "Secret:      {secret}\n(shown once: give it to the webhook now; `apps connect` again makes a new one)\n"
        ));
    }
    output::emit(text.trim_end())
}
