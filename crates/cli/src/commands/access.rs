//! Who may use an org: API `tokens` and `users`, each with a role.

use serde_json::json;

use super::{create, field, list, remove};
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col, col_as};

/// The roles a token or user may have, weakest first.
const ROLES: [&str; 3] = ["reader", "deployer", "admin"];

#[derive(Debug, Default, clap::Subcommand)]
pub enum TokensAction {
    /// List the org's tokens (never their secrets)
    #[default]
    List,
    /// Create a token; its secret is printed once
    Create {
        name: String,
        #[arg(long, value_parser = ROLES)]
        role: String,
    },
    /// Revoke a token by id
    Revoke { id: String },
}

#[derive(Debug, Default, clap::Subcommand)]
pub enum UsersAction {
    /// List the org's users
    #[default]
    List,
    /// Add a user
    Add {
        email: String,
        #[arg(long, value_parser = ROLES)]
        role: String,
    },
    /// Remove a user by id
    Remove { id: String },
}

const TOKENS: &[Column] = &[
    col("ID", "id"),
    col("NAME", "name"),
    col("ROLE", "role"),
    col_as("CREATED", "created_at", Cell::Time),
];

const USERS: &[Column] = &[
    col("ID", "id"),
    col("EMAIL", "email"),
    col("ROLE", "role"),
    col_as("CREATED", "created_at", Cell::Time),
];

pub async fn tokens(ctx: &Ctx, action: TokensAction) -> Result<()> {
    match action {
        TokensAction::List => list(ctx, ctx.path(Scope::Org, &["tokens"])?, "tokens", TOKENS).await,
        TokensAction::Create { name, role } => {
            let path = ctx.path(Scope::Org, &["tokens"])?;
            let body = json!({ "name": name, "role": role });
            let answer = create(ctx, path, body, &format!("Created {role} token {name}")).await?;
            if answer["secret"].is_null() {
                // A replay of a creation whose first answer was lost: the secret is gone.
                return Err(CliError::Api {
                    status: 409,
                    code: "secret_not_shown".into(),
                    message: field(&answer, "secret_note"),
                    field: Some("secret".into()),
                });
            }
            if !ctx.json() {
                output::emit(&format!("{}\n", field(&answer, "secret")))?;
            }
            eprintln!("warning: this secret is shown only once; store it now");
            Ok(())
        }
        TokensAction::Revoke { id } => {
            remove(
                ctx,
                ctx.path(Scope::Org, &["tokens", &id])?,
                &format!("Revoked token {id}"),
            )
            .await
        }
    }
}

pub async fn users(ctx: &Ctx, action: UsersAction) -> Result<()> {
    match action {
        UsersAction::List => list(ctx, ctx.path(Scope::Org, &["users"])?, "users", USERS).await,
        UsersAction::Add { email, role } => {
            let path = ctx.path(Scope::Org, &["users"])?;
            let body = json!({ "email": email, "role": role });
            create(ctx, path, body, &format!("Added {email} as {role}"))
                .await
                .map(drop)
        }
        UsersAction::Remove { id } => {
            remove(
                ctx,
                ctx.path(Scope::Org, &["users", &id])?,
                &format!("Removed user {id}"),
            )
            .await
        }
    }
}
