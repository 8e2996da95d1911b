//! Who may use an org: API `tokens` and `users`, each with a role.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use zeitwork_api_types::{CreatedToken, NewToken, NewUser, Token, TokenList, User, UserList};
use zeitwork_core::Role;

use super::{create, list, remove};
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col};

/// The roles a token or user may have, weakest first, as `--role` takes them.
fn role() -> impl TypedValueParser<Value = Role> {
    let roles = [Role::Reader, Role::Deployer, Role::Admin];
    PossibleValuesParser::new(roles.map(Role::as_str))
        .try_map(|r| Role::parse(&r).ok_or_else(|| format!("{r:?} is not a role")))
}

#[derive(Debug, Default, clap::Subcommand)]
pub enum TokensAction {
    /// List the org's tokens (never their secrets)
    #[default]
    List,
    /// Create a token; its secret is printed once
    Create {
        name: String,
        #[arg(long, value_parser = role())]
        role: Role,
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
        #[arg(long, value_parser = role())]
        role: Role,
    },
    /// Remove a user by id
    Remove { id: String },
}

const TOKENS: &[Column<Token>] = &[
    col("ID", |t| t.id.cell()),
    col("NAME", |t| t.name.cell()),
    col("ROLE", |t| t.role.cell()),
    col("CREATED", |t| t.created_at.cell()),
];

const USERS: &[Column<User>] = &[
    col("ID", |u| u.id.cell()),
    col("EMAIL", |u| u.email.cell()),
    col("ROLE", |u| u.role.cell()),
    col("CREATED", |u| u.created_at.cell()),
];

pub async fn tokens(ctx: &Ctx, action: TokensAction) -> Result<()> {
    match action {
        TokensAction::List => {
            list::<TokenList>(ctx, ctx.path(Scope::Org, &["tokens"])?, TOKENS).await
        }
        TokensAction::Create { name, role } => {
            let path = ctx.path(Scope::Org, &["tokens"])?;
            let done = format!("Created {} token {name}", role.as_str());
            let body = NewToken { name, role };
            let answer: CreatedToken = create(ctx, path, &body, &done).await?;
            let Some(secret) = answer.secret else {
                // A replay of a creation whose first answer was lost: the secret is gone.
                return Err(CliError::Api {
                    status: 409,
                    code: "secret_not_shown".into(),
                    message: answer.secret_note.cell(),
                    field: Some("secret".into()),
                });
            };
            if !ctx.json() {
                output::emit(&format!("{secret}\n"))?;
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
        UsersAction::List => list::<UserList>(ctx, ctx.path(Scope::Org, &["users"])?, USERS).await,
        UsersAction::Add { email, role } => {
            let path = ctx.path(Scope::Org, &["users"])?;
            let done = format!("Added {email} as {}", role.as_str());
            let body = NewUser { email, role };
            create::<_, User>(ctx, path, &body, &done).await.map(drop)
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
