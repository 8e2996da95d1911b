//! `nodes`: the hosts instances run on (registered by `zeitwork server agent`).

use super::{list, show};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{Cell, Column, col, col_as};

#[derive(Debug, Default, clap::Subcommand)]
pub enum NodesAction {
    /// List nodes
    #[default]
    List,
    /// Show one node
    Show { name: String },
}

const NODES: &[Column] = &[
    col("NAME", "name"),
    col("REGION", "region"),
    col("ZONE", "zone"),
    col("STATE", "state"),
    col_as("CPUS", "millicpus", Cell::Cpus),
    col("MEMORY MB", "memory_mb"),
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
    }
}
