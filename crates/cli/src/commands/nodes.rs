//! `nodes`: the hosts instances run on (enrolled by `zeitwork server agent` with a join
//! token), and draining one before maintenance.

use serde_json::json;

use super::{field, list, show};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{self, Cell, Column, col, col_as};

#[derive(Debug, Default, clap::Subcommand)]
pub enum NodesAction {
    /// List nodes
    #[default]
    List,
    /// Show one node
    Show { name: String },
    /// Create a one-time token a new node enrolls with (platform token)
    JoinToken {
        /// Seconds the token stays valid [default: 3600]
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// Allow this token to enroll the existing node NAME again, replacing its credential
        #[arg(long, value_name = "NAME")]
        replace: Option<String>,
    },
    /// Move a node's instances elsewhere; the old ones stop once their replacements are healthy
    Drain { name: String },
    /// Let a draining node take new instances again
    Undrain { name: String },
}

const NODES: &[Column] = &[
    col("NAME", "name"),
    col("REGION", "region"),
    col("ZONE", "zone"),
    col("STATE", "state"),
    col_as("CPUS", "millicpus", Cell::Cpus),
    col("MEMORY MB", "memory_mb"),
    col("RUNNING", "running"),
    col_as("HEARTBEAT", "last_heartbeat", Cell::Time),
];

pub async fn nodes(ctx: &Ctx, action: NodesAction) -> Result<()> {
    match action {
        NodesAction::List => {
            list(ctx, ctx.path(Scope::Platform, &["nodes"])?, "nodes", NODES).await
        }
        NodesAction::Show { name } => {
            let columns = [
                NODES,
                &[
                    col("ADDRESSES", "addresses"),
                    col_as("CREATED", "created_at", Cell::Time),
                    col("ID", "id"),
                ],
            ]
            .concat();
            show(ctx, ctx.path(Scope::Platform, &["nodes", &name])?, &columns)
                .await
                .map(drop)
        }
        NodesAction::JoinToken { ttl, replace } => {
            let mut body = json!({});
            if let Some(seconds) = ttl {
                body["ttl_seconds"] = json!(seconds);
            }
            if let Some(name) = replace {
                body["replaces"] = json!(name);
            }
            let path = ctx.path(Scope::Platform, &["nodes", "join-tokens"])?;
            let answer = ctx.client()?.post(&path, &body).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            // The token alone on stdout, so `$(zeitwork nodes join-token)` captures it.
            output::emit(&format!("{}\n", field(&answer, "token")))?;
            eprintln!(
                "this token enrolls one node until {} UTC; it is shown only once",
                output::short_time(&field(&answer, "expires_at"))
            );
            Ok(())
        }
        NodesAction::Drain { name } => {
            let path = ctx.path(Scope::Platform, &["nodes", &name, "drain"])?;
            let answer = ctx.client()?.post(&path, &json!({})).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            let n = field(&answer, "replacements");
            output::emit(&format!(
                "Draining {name}: {n} replacement instance(s) started elsewhere; \
                 the old ones stop once their replacements are healthy\n"
            ))
        }
        NodesAction::Undrain { name } => {
            let path = ctx.path(Scope::Platform, &["nodes", &name, "undrain"])?;
            let answer = ctx.client()?.post(&path, &json!({})).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            let state = field(&answer["node"], "state");
            output::emit(&format!("{name} is {state}\n"))
        }
    }
}
