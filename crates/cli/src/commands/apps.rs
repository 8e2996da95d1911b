//! Orgs, apps and envs: named containers that are listed, created and deleted alike.

use serde_json::json;

use super::{create, list, remove, show};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{Cell, Column, col, col_as};

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
