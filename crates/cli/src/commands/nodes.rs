//! `nodes`: the hosts instances run on (enrolled by `zeitwork server agent` with a join
//! token), and draining one before maintenance.

use zeitwork_api_types::{NewJoinToken, Node, NodeChanged, NodeList};
use zeitwork_core::node::JoinToken;

use super::{list, show};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{self, Cell, Column, col};

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

const NODES: &[Column<Node>] = &[
    col("NAME", |n| n.name.cell()),
    col("REGION", |n| n.region.cell()),
    col("ZONE", |n| n.zone.cell()),
    col("STATE", |n| n.state.cell()),
    col("CPUS USED", |n| {
        format!(
            "{}/{}",
            output::cpus(n.allocated_millicpus),
            output::cpus(n.millicpus)
        )
    }),
    col("MEMORY MB USED", |n| {
        format!("{}/{}", n.allocated_memory_mb, n.memory_mb)
    }),
    col("RUNNING", |n| n.running.cell()),
    col("HEARTBEAT", |n| n.last_heartbeat.cell()),
    col("OVERLAY", overlay),
];

/// `fd7a:…::1 2/2 peers`: its overlay address and how many of its peers answered lately.
fn overlay(n: &Node) -> String {
    match &n.overlay_address {
        None => "-".into(),
        Some(address) => {
            let reachable = n.overlay_peers.iter().filter(|p| p.reachable).count();
            format!("{address} {reachable}/{} peers", n.overlay_peers.len())
        }
    }
}

/// Each overlay peer: `name (handshake 12s ago)`, `name (unreachable, never)`.
fn peers(n: &Node) -> String {
    let list: Vec<String> = n
        .overlay_peers
        .iter()
        .map(|p| {
            let who = p.node.clone().unwrap_or_else(|| p.public_key.clone());
            let when = p
                .handshake_age_seconds
                .map_or("never".to_owned(), |s| format!("{s}s ago"));
            let state = if p.reachable { "" } else { "unreachable, " };
            format!("{who} ({state}handshake {when})")
        })
        .collect();
    list.join(", ").cell()
}

pub async fn nodes(ctx: &Ctx, action: NodesAction) -> Result<()> {
    match action {
        NodesAction::List => {
            list::<NodeList>(ctx, ctx.path(Scope::Platform, &["nodes"])?, NODES).await
        }
        NodesAction::Show { name } => {
            let columns = [
                NODES,
                &[
                    col("ADDRESSES", |n: &Node| n.addresses.cell()),
                    col("WIREGUARD KEY", |n: &Node| n.wireguard_key.cell()),
                    col("PEERS", peers),
                    col("CREATED", |n: &Node| n.created_at.cell()),
                    col("ID", |n: &Node| n.id.cell()),
                ],
            ]
            .concat();
            show(ctx, ctx.path(Scope::Platform, &["nodes", &name])?, &columns)
                .await
                .map(drop)
        }
        NodesAction::JoinToken { ttl, replace } => {
            let body = NewJoinToken {
                ttl_seconds: ttl,
                replaces: replace,
            };
            let path = ctx.path(Scope::Platform, &["nodes", "join-tokens"])?;
            let answer: JoinToken = ctx.client()?.post(&path, &body).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            // The token alone on stdout, so `$(zeitwork nodes join-token)` captures it.
            output::emit(&format!("{}\n", answer.token))?;
            eprintln!(
                "this token enrolls one node until {} UTC; it is shown only once",
                output::short_time(&answer.expires_at)
            );
            Ok(())
        }
        NodesAction::Drain { name } => {
            let path = ctx.path(Scope::Platform, &["nodes", &name, "drain"])?;
            let answer: NodeChanged = ctx.client()?.post_empty(&path).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            let n = answer.replacements;
            output::emit(&format!(
                "Draining {name}: {n} replacement instance(s) started elsewhere; \
                 the old ones stop once their replacements are healthy\n"
            ))
        }
        NodesAction::Undrain { name } => {
            let path = ctx.path(Scope::Platform, &["nodes", &name, "undrain"])?;
            let answer: NodeChanged = ctx.client()?.post_empty(&path).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            let state = answer.node.state.cell();
            output::emit(&format!("{name} is {state}\n"))
        }
    }
}
