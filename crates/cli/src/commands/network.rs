//! How traffic reaches an env: `routes` (host/listener → process:port) and `domains`
//! (custom hostnames, proven by a DNS TXT record before the edge serves them).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use zeitwork_api_types::{DomainList, DomainView, NewDomain, NewRoute, Route, RouteList};
use zeitwork_core::manifest::RouteMode;

use super::{create, list, remove};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{self, Cell, Column, col};

/// The modes `--mode` takes, by their API names.
fn mode() -> impl TypedValueParser<Value = RouteMode> {
    let modes = [RouteMode::Http, RouteMode::TlsPassthrough, RouteMode::Tcp];
    PossibleValuesParser::new(modes.map(RouteMode::as_str))
        .try_map(|m| RouteMode::parse(&m).ok_or_else(|| format!("{m:?} is not a route mode")))
}

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
        #[arg(long, value_parser = mode())]
        mode: Option<RouteMode>,
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
    /// Check the domain's DNS TXT record; once found, the edge serves the domain
    Verify { hostname: String },
    /// Remove a custom domain
    Remove { hostname: String },
}

const ROUTES: &[Column<Route>] = &[
    col("ID", |r| r.id.cell()),
    col("HOST", |r| r.host.cell()),
    col("PROCESS", |r| r.process.cell()),
    col("PORT", |r| r.port.cell()),
    col("MODE", |r| r.mode.cell()),
    col("EDGE PORT", |r| r.listen_port.cell()),
    col("DECLARED", |r| r.declared.cell()),
    col("PROXY", |r| r.proxy_protocol.cell()),
];

const DOMAINS: &[Column<DomainView>] = &[
    col("HOSTNAME", |d| d.domain.hostname.cell()),
    col("VERIFIED", |d| d.domain.verified_at.cell()),
    col("TXT NAME", |d| d.txt_record.name.cell()),
    col("TXT VALUE", |d| d.txt_record.value.cell()),
    col("CREATED", |d| d.domain.created_at.cell()),
];

pub async fn routes(ctx: &Ctx, action: RoutesAction) -> Result<()> {
    match action {
        RoutesAction::List => {
            list::<RouteList>(ctx, ctx.path(Scope::Env, &["routes"])?, ROUTES).await
        }
        RoutesAction::Add {
            process,
            port,
            host,
            mode,
            proxy_protocol,
        } => {
            let path = ctx.path(Scope::Env, &["routes"])?;
            let target = format!("{} → {process}:{port}", host.as_deref().unwrap_or("(tcp)"));
            let body = NewRoute {
                host,
                process,
                mode: mode.unwrap_or(RouteMode::Http),
                port,
                proxy_protocol,
                policy: Default::default(),
            };
            let answer: Route = create(ctx, path, &body, &format!("Added route {target}")).await?;
            if !ctx.json() {
                output::emit(&format!("id: {}\n", answer.id))?;
                if let Some(port) = answer.listen_port {
                    output::emit(&format!("clients connect to port {port} of every edge\n"))?;
                }
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
            list::<DomainList>(ctx, ctx.path(Scope::Env, &["domains"])?, DOMAINS).await
        }
        DomainsAction::Add { hostname } => {
            let path = ctx.path(Scope::Env, &["domains"])?;
            let done = format!("Added domain {hostname}");
            let answer: DomainView = create(ctx, path, &NewDomain { hostname }, &done).await?;
            if !ctx.json() {
                // The API's spelling: it normalizes case and a trailing dot.
                let host = &answer.domain.hostname;
                let record = &answer.txt_record;
                output::emit(&format!(
                    "To prove you own it, publish this DNS record, then run \
                     `zeitwork domains verify {host}`:\n  {} TXT \"{}\"\n",
                    record.name, record.value,
                ))?;
            }
            Ok(())
        }
        DomainsAction::Verify { hostname } => {
            let path = ctx.path(Scope::Env, &["domains", &hostname, "verify"])?;
            let answer: DomainView = ctx.client()?.post_empty(&path).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            output::emit(&format!(
                "{} is verified (since {} UTC): the edge serves it\n",
                answer.domain.hostname,
                answer.domain.verified_at.cell(),
            ))
        }
        DomainsAction::Remove { hostname } => {
            let path = ctx.path(Scope::Env, &["domains", &hostname])?;
            remove(ctx, path, &format!("Removed domain {hostname}")).await
        }
    }
}

#[cfg(test)]
mod tests {
    //! A STAND-IN server answering `verify` as the operator does, to check what the CLI
    //! makes of it (the exit code and the server's message); the real check, DNS
    //! included, is tested in zeitwork-operator's API tests.

    use axum::Json;
    use axum::extract::Path;
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use super::*;
    use crate::commands::Command;
    use crate::{Global, error};

    const REFUSAL: &str = "no TXT record at _zeitwork-challenge.shop.example.test was found; \
                           publish it and retry (DNS changes can take minutes)";

    async fn stand_in_server() -> String {
        async fn verify(Path(params): Path<Vec<(String, String)>>) -> (StatusCode, Json<Value>) {
            let host = &params.last().unwrap().1;
            match host.as_str() {
                "ok.example.test" => (
                    StatusCode::OK,
                    Json(json!({
                        "id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d",
                        "env_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9e",
                        "hostname": host,
                        "verification_token": "t",
                        "verified_at": "2025-01-02T03:04:05.1Z",
                        "created_at": "2025-01-02T03:04:05.1Z",
                        "state": "verified",
                        "txt_record": {
                            "name": format!("_zeitwork-challenge.{host}"),
                            "type": "TXT",
                            "value": "zeitwork-verification=t"
                        },
                        "cname_target": "web-acme.zeitwork.localhost",
                        "certificate": null
                    })),
                ),
                "shop.example.test" => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({"error": {"code": "not_verified", "message": REFUSAL}})),
                ),
                _ => (
                    StatusCode::NOT_FOUND,
                    Json(json!({"error": {"code": "not_found", "message": "domain not found"}})),
                ),
            }
        }
        let router = axum::Router::new().route(
            "/api/v1/orgs/{org}/apps/{app}/envs/{env}/domains/{host}/verify",
            axum::routing::post(verify),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn verify_fails_with_the_servers_message() {
        let dir = tempfile::tempdir().unwrap();
        let global = Global {
            api: Some(stand_in_server().await),
            token: Some("zw_t".into()),
            org: Some("acme".into()),
            app: Some("web".into()),
            env: "prod".into(),
            config: Some(dir.path().join("config.toml")),
            ..Global::default()
        };
        let verify = |hostname: &str| Command::Domains {
            action: Some(DomainsAction::Verify {
                hostname: hostname.into(),
            }),
        };
        crate::execute(global.clone(), verify("ok.example.test"))
            .await
            .unwrap();
        let e = crate::execute(global.clone(), verify("shop.example.test"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            (REFUSAL, error::EXIT_FAILURE)
        );
        let e = crate::execute(global, verify("nope.example.test"))
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), error::EXIT_NOT_FOUND, "{e}");
    }
}
