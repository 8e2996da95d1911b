//! Orgs, apps and envs: named containers that are listed, created and deleted alike.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use zeitwork_api_types::{
    App, AppList, AppSummary, ConnectRepository, Env, EnvList, NewName, Org, OrgList,
    RepositoryInfo,
};

use super::{create, list, remove, show};
use crate::client::Page;
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col};

/// What orgs, apps and envs show alike: a name, when it was created, an id.
trait Named {
    fn name(&self) -> &str;
    fn created_at(&self) -> &DateTime<Utc>;
    fn id(&self) -> &Uuid;
}

/// Implements [`Named`] for types with those three fields.
macro_rules! named {
    ($($ty:ty),*) => {$(
        impl Named for $ty {
            fn name(&self) -> &str {
                &self.name
            }

            fn created_at(&self) -> &DateTime<Utc> {
                &self.created_at
            }

            fn id(&self) -> &Uuid {
                &self.id
            }
        }
    )*};
}

named!(Org, App, AppSummary, Env);

/// The columns of a [`Named`] thing: NAME, CREATED, ID.
fn named_columns<T: Named>() -> Vec<Column<T>> {
    vec![
        col("NAME", |t: &T| t.name().cell()),
        col("CREATED", |t: &T| t.created_at().cell()),
        col("ID", |t: &T| t.id().cell()),
    ]
}

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
enum NamedAction {
    List,
    Create(String),
    Delete(String),
}

/// Runs a [`NamedAction`] on the collection `key` under `scope` (`kind` names one item),
/// listed as `P`s and created as a `C`.
async fn named<P, C>(
    ctx: &Ctx,
    scope: Scope,
    key: &str,
    kind: &str,
    action: NamedAction,
) -> Result<()>
where
    P: Page<Row: Named>,
    C: DeserializeOwned + Serialize,
{
    match action {
        NamedAction::List => list::<P>(ctx, ctx.path(scope, &[key])?, &named_columns()).await,
        NamedAction::Create(name) => {
            let done = format!("Created {kind} {name}");
            let body = NewName { name };
            create::<_, C>(ctx, ctx.path(scope, &[key])?, &body, &done)
                .await
                .map(drop)
        }
        NamedAction::Delete(name) => {
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
        OrgsAction::List => NamedAction::List,
        OrgsAction::Create { name } => NamedAction::Create(name),
        OrgsAction::Delete { name } => NamedAction::Delete(name),
    };
    named::<OrgList, Org>(ctx, Scope::Platform, "orgs", "org", action).await
}

pub async fn apps(ctx: &Ctx, action: AppsAction) -> Result<()> {
    let action = match action {
        AppsAction::Connect(args) => return connect(ctx, args).await,
        AppsAction::Repository => {
            let path = ctx.path(Scope::App, &["repository"])?;
            let answer: RepositoryInfo = ctx.client()?.get(&path).await?;
            return print_repository(ctx, &answer);
        }
        AppsAction::Disconnect => {
            let path = ctx.path(Scope::App, &["repository"])?;
            return remove(ctx, path, &format!("Disconnected app {}", ctx.app()?)).await;
        }
        AppsAction::List => NamedAction::List,
        AppsAction::Create { name } => NamedAction::Create(name),
        AppsAction::Delete { name } => NamedAction::Delete(name),
        AppsAction::Show { name } => {
            let name = match name {
                Some(name) => name,
                None => ctx.app()?,
            };
            let mut columns = named_columns::<App>();
            columns.push(col("ORG ID", |a| a.org_id.cell()));
            return show(ctx, ctx.path(Scope::Org, &["apps", &name])?, &columns)
                .await
                .map(drop);
        }
    };
    named::<AppList, App>(ctx, Scope::Org, "apps", "app", action).await
}

pub async fn envs(ctx: &Ctx, action: EnvsAction) -> Result<()> {
    let action = match action {
        EnvsAction::List => NamedAction::List,
        EnvsAction::Create { name } => NamedAction::Create(name),
        EnvsAction::Delete { name } => NamedAction::Delete(name),
    };
    named::<EnvList, Env>(ctx, Scope::App, "envs", "env", action).await
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
    let body = ConnectRepository {
        url: args.repo,
        branch: Some(args.branch),
        token,
    };
    let path = ctx.path(Scope::App, &["repository"])?;
    let answer: RepositoryInfo = ctx.client()?.put(&path, &body).await?;
    print_repository(ctx, &answer)
}

/// `--json`'s answer about a repository: the API's, with the webhook's whole URL.
#[derive(Serialize)]
struct WithWebhookUrl<'a> {
    #[serde(flatten)]
    info: &'a RepositoryInfo,
    webhook_url: String,
}

/// The connection, the webhook URL to give GitHub (content type `application/json`)
/// and, just after connecting, its secret.
fn print_repository(ctx: &Ctx, info: &RepositoryInfo) -> Result<()> {
    let hook = info.repository.hook_id.to_string();
    let url = ctx
        .client()?
        .url(&["webhooks".into(), "github".into()], &[("hook", hook)]);
    if ctx.json() {
        return output::emit_json(&WithWebhookUrl {
            info,
            webhook_url: url.to_string(),
        });
    }
    let r = &info.repository;
    let mut text = format!(
        "Repository:  {}\nProduction:  {} (pushes deploy to prod; other branches to previews)\nWebhook URL: {url}\nContent type: application/json\n",
        r.url, r.branch,
    );
    if let Some(secret) = &info.secret {
        text.push_str(&format!(
            "Secret:      {secret}\n(shown once: give it to the webhook now; `apps connect` again makes a new one)\n"
        ));
    }
    output::emit(text.trim_end())
}
