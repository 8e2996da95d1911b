//! The node half of `zeitwork up`: this machine enrolls itself as node `local`, runs an
//! agent, and deploys the example app on first start. Instances stop with `up`.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use crate::agent::AgentArgs;
use crate::example::{self, Api};
use crate::vm::NodeArgs;

pub struct Local {
    pub api: String,
    pub admin_token: String,
    pub node_dir: PathBuf,
    pub nats_url: String,
    pub agent: bool,
    pub example: bool,
    /// How and where the edge serves apps, for the example's URL.
    pub edge_scheme: &'static str,
    pub edge_port: u16,
    /// The example's env hostname.
    pub example_host: String,
    /// The platform registry's address, whose images the agent pulls with its credential.
    pub registry: Option<String>,
}

pub async fn run(
    local: Local,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if !local.agent {
        shutdown.await;
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "not running as root, so this machine hosts no microVMs and deployed instances stay pending; \
             run `sudo zeitwork up` (or scripts/up.sh) to host them, or pass --no-agent to silence this"
        );
        shutdown.await;
        return Ok(());
    }
    let api = Api::new(&local.api, &local.admin_token);
    let mut args = AgentArgs {
        node: NodeArgs {
            node_dir: local.node_dir.clone(),
            init_bin: std::env::var_os("ZEITWORK_INIT_BIN").map(PathBuf::from),
            node_prefix: "fd7a:7a77:0:1::/64".into(),
            egress_allow: Vec::new(),
            edge_networks: Vec::new(),
        },
        api: local.api.clone(),
        registry: local.registry.clone(),
        join_token: None,
        name: Some("local".into()),
        region: "local".into(),
        zone: None,
        cpus: None,
        memory_mb: None,
        addresses: vec!["127.0.0.1".into()],
        nats_url: Some(local.nats_url.clone()),
        resync_seconds: 3600,
        heartbeat_seconds: 5,
        // `up` serves every metric on the operator's /metrics already.
        metrics_addr: None,
        // One machine, one node: there is no one to peer with.
        overlay_port: None,
        overlay_interface: zeitwork_net::OVERLAY_LINK.into(),
    };
    // Used only when the saved credential is missing or refused (a new database). `up`
    // is this platform's admin and consents to its own node being enrolled again.
    let (status, token) = api
        .call(
            Method::POST,
            "nodes/join-tokens",
            Some(json!({ "replaces": "local" })),
        )
        .await?;
    args.join_token = Some(
        token["token"]
            .as_str()
            .with_context(|| format!("creating a join token: {status} {token}"))?
            .to_owned(),
    );
    let agent = tokio::spawn(async move { crate::agent::run(&args, true, shutdown).await });
    if local.example {
        match example_url(&api, local.registry.as_deref()).await {
            Ok(deployed) => println!(
                "  Example app: {scheme}://{}:{port}/ (this deployment: {scheme}://{}:{port}/; instance: {})",
                local.example_host,
                deployed
                    .url
                    .split_once("://")
                    .map_or(&*deployed.url, |(_, host)| host),
                deployed.instance,
                scheme = local.edge_scheme,
                port = local.edge_port,
            ),
            Err(e) => eprintln!("the example app was not deployed: {e:#}"),
        }
    }
    agent.await.context("the agent task")?
}

/// Deploys the example through the platform registry (`demo/hello`), pushed with the
/// admin token as any user pushes with theirs.
async fn example_url(api: &Api, registry: Option<&str>) -> anyhow::Result<example::Deployed> {
    let registry = registry.context("zeitwork up runs no platform registry")?;
    example::deploy(api, registry).await
}
