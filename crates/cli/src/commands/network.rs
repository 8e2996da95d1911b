//! How traffic reaches an env: `routes` (host/listener → process:port) and `domains`
//! (custom hostnames, proven by a DNS TXT record before the edge serves them).

use serde_json::json;

use super::{create, field, list, remove};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{self, Cell, Column, col, col_as};

#[derive(Debug, Default, clap::Subcommand)]
pub enum RoutesAction {
    /// List the env's routes
    #[default]
    List,
    /// Add a route to a process port
    Add {
        /// Process type that receives the traffic
        #[arg(long, value_name = "P")]
        process: String,
        /// Port of the process inside its instance
        #[arg(long, value_name = "N")]
        port: u16,
        /// Hostname served (absent for tcp routes, which get a port)
        #[arg(long, value_name = "H")]
        host: Option<String>,
        /// How the edge handles the connection [API default: http]
        #[arg(long, value_parser = ["http", "tls-passthrough", "tcp"])]
        mode: Option<String>,
        /// Prefix connections to the instance with a PROXY v2 header (client address)
        #[arg(long)]
        proxy_protocol: bool,
    },
    /// Remove a route by id
    Remove { id: String },
}

#[derive(Debug, Default, clap::Subcommand)]
pub enum DomainsAction {
    /// List the env's custom domains
    #[default]
    List,
    /// Add a custom domain and print the DNS TXT record that proves ownership
    Add { hostname: String },
    /// Remove a custom domain
    Remove { hostname: String },
}

const ROUTES: &[Column] = &[
    col("ID", "id"),
    col("HOST", "host"),
    col("PROCESS", "process"),
    col("PORT", "port"),
    col("MODE", "mode"),
    col("PROXY", "proxy_protocol"),
];

const DOMAINS: &[Column] = &[
    col("HOSTNAME", "hostname"),
    col_as("VERIFIED", "verified_at", Cell::Time),
    col("TXT VALUE", "verification_token"),
    col_as("CREATED", "created_at", Cell::Time),
];

pub async fn routes(ctx: &Ctx, action: RoutesAction) -> Result<()> {
    match action {
        RoutesAction::List => list(ctx, ctx.path(Scope::Env, &["routes"])?, "routes", ROUTES).await,
        RoutesAction::Add {
            process,
            port,
            host,
            mode,
            proxy_protocol,
        } => {
            let mut body = json!({ "process": process, "port": port });
            if let Some(host) = &host {
                body["host"] = json!(host);
            }
            if let Some(mode) = &mode {
                body["mode"] = json!(mode);
            }
            if proxy_protocol {
                body["proxy_protocol"] = json!(true);
            }
            let path = ctx.path(Scope::Env, &["routes"])?;
            let target = format!("{} → {process}:{port}", host.as_deref().unwrap_or("(tcp)"));
            let answer = create(ctx, path, body, &format!("Added route {target}")).await?;
            if !ctx.json() {
                output::emit(&format!("id: {}\n", field(&answer, "id")))?;
            }
            Ok(())
        }
        RoutesAction::Remove { id } => {
            remove(
                ctx,
                ctx.path(Scope::Env, &["routes", &id])?,
                &format!("Removed route {id}"),
            )
            .await
        }
    }
}

pub async fn domains(ctx: &Ctx, action: DomainsAction) -> Result<()> {
    match action {
        DomainsAction::List => {
            list(ctx, ctx.path(Scope::Env, &["domains"])?, "domains", DOMAINS).await
        }
        DomainsAction::Add { hostname } => {
            let path = ctx.path(Scope::Env, &["domains"])?;
            let body = json!({ "hostname": hostname });
            let answer = create(ctx, path, body, &format!("Added domain {hostname}")).await?;
            if !ctx.json() {
                // The API's spelling: it normalizes case and a trailing dot.
                let host = answer
                    .get("hostname")
                    .and_then(|h| h.as_str())
                    .unwrap_or(&hostname);
                let token = field(&answer, "verification_token");
                output::emit(&format!(
                    "To prove you own it, create this DNS record:\n  _zeitwork.{host} TXT {token}\n"
                ))?;
            }
            Ok(())
        }
        DomainsAction::Remove { hostname } => {
            let path = ctx.path(Scope::Env, &["domains", &hostname])?;
            remove(ctx, path, &format!("Removed domain {hostname}")).await
        }
    }
}
