//! `zeitwork server agent`: enrolls this machine as a node (once; the credential is
//! kept in the node directory) and runs the node agent until SIGTERM. Instances keep
//! running when the agent stops; the next agent adopts them.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeitwork_agent::{ControlPlane, HttpControl, LoopConfig, NodeAgent};
use zeitwork_core::node::{Enrollment, Heartbeat};
use zeitwork_core::overlay::OverlayKey;
use zeitwork_net::Overlay;

use crate::settings::write_private;
use crate::vm::NodeArgs;

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// The operator API.
    #[arg(long, env = "ZEITWORK_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// One-time token from `zeitwork nodes join-token`; needed only for the first start.
    #[arg(long, env = "ZEITWORK_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// This node's name [default: the host name].
    #[arg(long, env = "ZEITWORK_NODE_NAME")]
    pub name: Option<String>,
    #[arg(long, env = "ZEITWORK_REGION", default_value = "local")]
    pub region: String,
    #[arg(long, env = "ZEITWORK_ZONE")]
    pub zone: Option<String>,
    /// CPUs offered to instances [default: all of this machine's].
    #[arg(long, env = "ZEITWORK_NODE_CPUS")]
    pub cpus: Option<f64>,
    /// Memory offered to instances [default: this machine's, less 512 MiB for itself].
    #[arg(long, env = "ZEITWORK_NODE_MEMORY_MB")]
    pub memory_mb: Option<u64>,
    /// Addresses edges and the other nodes reach this node on; repeat for each (the
    /// variable takes a comma-separated list).
    #[arg(
        long = "address",
        env = "ZEITWORK_NODE_ADDRESSES",
        value_delimiter = ',',
        default_value = "127.0.0.1"
    )]
    pub addresses: Vec<String>,
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// The platform registry (`host:port`): its images are pulled with this node's
    /// credential; other registries' anonymously.
    #[arg(long, env = "ZEITWORK_REGISTRY_ADDRESS")]
    pub registry: Option<String>,
    /// Mean time between full resyncs with the desired state, in seconds.
    #[arg(long, env = "ZEITWORK_RESYNC_SECONDS", default_value_t = 3600)]
    pub resync_seconds: u64,
    #[arg(long, env = "ZEITWORK_HEARTBEAT_SECONDS", default_value_t = 5)]
    pub heartbeat_seconds: u64,
    /// Serve Prometheus metrics (e.g. `zeitwork_agent_drift_repairs_total`) at
    /// `http://ADDR/metrics`.
    #[arg(long, env = "ZEITWORK_AGENT_METRICS")]
    pub metrics_addr: Option<String>,
    /// Join the WireGuard overlay between nodes, listening on this UDP port at every
    /// `--address` (the key pair is made at enrollment and kept in the node directory).
    #[arg(long, env = "ZEITWORK_OVERLAY_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub overlay_port: Option<u16>,
    /// The overlay's network interface: 1 to 15 letters, digits, `-` or `_`, not starting
    /// with `zw` (the instances' links).
    #[arg(
        long,
        env = "ZEITWORK_OVERLAY_INTERFACE",
        default_value = zeitwork_net::OVERLAY_LINK,
        value_parser = parse_interface
    )]
    pub overlay_interface: String,
}

fn parse_interface(s: &str) -> Result<String, String> {
    let fits = (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !fits {
        return Err("1 to 15 letters, digits, '-' or '_'".into());
    }
    if s.starts_with(zeitwork_net::LINK_PREFIX) {
        return Err(format!(
            "names starting with {:?} are the instances' links",
            zeitwork_net::LINK_PREFIX
        ));
    }
    Ok(s.to_owned())
}

/// What enrollment gave us, kept in `<node dir>/agent/credential.json` (mode 0600).
#[derive(Serialize, Deserialize)]
struct Credential {
    api: String,
    node_id: Uuid,
    name: String,
    credential: String,
    /// The node's instance /64 from the control plane; absent in files of older builds,
    /// whose node then enrolls again (with a join token) to get one.
    #[serde(default)]
    instance_prefix: Option<String>,
}

/// What an enrolled agent runs with.
pub struct NodeSession {
    pub control: HttpControl,
    pub node_id: Uuid,
    /// The node's name and credential, which also log it in to the platform registry.
    pub name: String,
    pub credential: String,
    /// Its instances' IPv6 /64, from the control plane.
    pub instance_prefix: String,
}

impl AgentArgs {
    fn credential_file(&self) -> std::path::PathBuf {
        self.node.node_dir.join("agent").join("credential.json")
    }

    /// The node's overlay, once it knows its instance prefix (and so its overlay address).
    fn overlay(&self, instance_prefix: &str) -> anyhow::Result<Option<Overlay>> {
        let Some(port) = self.overlay_port else {
            return Ok(None);
        };
        let address = zeitwork_core::ipam::overlay_address(instance_prefix)
            .with_context(|| format!("{instance_prefix} is not a platform prefix"))?;
        let key = self.node.node_dir.join("agent").join("wireguard.key");
        Ok(Some(
            Overlay::new(key, port, address).named(&self.overlay_interface),
        ))
    }

    fn saved(&self) -> Option<Credential> {
        std::fs::read(self.credential_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|c: &Credential| c.api == self.api)
    }

    /// Enrolls unless a credential for this API (with its instance prefix) is saved and
    /// still accepted.
    pub async fn control(&self) -> anyhow::Result<NodeSession> {
        let file = self.credential_file();
        let dir = file.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some(cred) = self.saved() {
            let Some(instance_prefix) = cred.instance_prefix.clone() else {
                anyhow::ensure!(
                    self.join_token.is_some(),
                    "this node was enrolled by an earlier build and has no instance prefix: enroll it again with `--join-token` (from `zeitwork nodes join-token --replace {}`)",
                    cred.name
                );
                return self.enrolled(self.enroll(&file).await?);
            };
            let control = HttpControl::new(&self.api, &cred.name, &cred.credential)?;
            match control
                .heartbeat(&Heartbeat {
                    running: 0,
                    cpu: Vec::new(),
                    overlay: Vec::new(),
                })
                .await
            {
                Err(e) if e.is_unauthorized() && self.join_token.is_some() => {
                    tracing::warn!("the saved node credential was refused; enrolling again");
                }
                Err(e) if e.is_unauthorized() => anyhow::bail!(
                    "the operator refused this node's credential (was the node removed?); pass --join-token to enroll again"
                ),
                // Unreachable is fine: the agent keeps its instances and retries.
                _ => {
                    return Ok(NodeSession {
                        control,
                        node_id: cred.node_id,
                        name: cred.name,
                        credential: cred.credential,
                        instance_prefix,
                    });
                }
            }
        }
        self.enrolled(self.enroll(&file).await?)
    }

    fn enrolled(&self, cred: Credential) -> anyhow::Result<NodeSession> {
        Ok(NodeSession {
            control: HttpControl::new(&self.api, &cred.name, &cred.credential)?,
            node_id: cred.node_id,
            name: cred.name,
            credential: cred.credential,
            instance_prefix: cred
                .instance_prefix
                .context("the operator gave no instance prefix")?,
        })
    }

    async fn enroll(&self, file: &Path) -> anyhow::Result<Credential> {
        let token = self.join_token.as_deref().context(
            "this node is not enrolled yet: pass --join-token (from `zeitwork nodes join-token`)",
        )?;
        let (cpus, memory_mb) = capacity();
        let name = match &self.name {
            Some(n) => n.clone(),
            None => hostname(),
        };
        // The key pair is made here, on the node; only the public half is sent.
        let overlay = match self.overlay_port {
            Some(port) => {
                let key = Overlay::new(
                    self.node.node_dir.join("agent").join("wireguard.key"),
                    port,
                    std::net::Ipv6Addr::UNSPECIFIED,
                )
                .public_key()
                .await
                .context("making this node's WireGuard key")?;
                Some(OverlayKey {
                    public_key: key,
                    port,
                })
            }
            None => None,
        };
        let enrollment = Enrollment {
            name: name.clone(),
            region: self.region.clone(),
            zone: self.zone.clone(),
            millicpus: (self.cpus.unwrap_or(cpus) * 1000.0).round() as u32,
            memory_mb: self.memory_mb.unwrap_or(memory_mb),
            addresses: self.addresses.clone(),
            overlay,
        };
        let enrolled = HttpControl::enroll(&self.api, token, &enrollment)
            .await
            .context("enrolling this node")?;
        let cred = Credential {
            api: self.api.clone(),
            node_id: enrolled.node_id,
            name: enrolled.name,
            credential: enrolled.credential,
            instance_prefix: Some(enrolled.instance_prefix),
        };
        write_private(file, &serde_json::to_string(&cred)?)?;
        tracing::info!(node = %cred.name, id = %cred.node_id, "enrolled");
        Ok(cred)
    }

    pub fn loop_config(&self, stop_instances_on_exit: bool) -> LoopConfig {
        LoopConfig {
            heartbeat: Duration::from_secs(self.heartbeat_seconds.max(1)),
            resync: Duration::from_secs(self.resync_seconds.max(1)),
            stop_instances_on_exit,
            ..LoopConfig::default()
        }
    }
}

/// Runs an agent until `shutdown`.
pub async fn run(
    args: &AgentArgs,
    stop_instances_on_exit: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(addr) = &args.metrics_addr {
        crate::metrics::serve(addr).await?;
    }
    let NodeSession {
        control,
        node_id,
        name,
        credential,
        instance_prefix,
    } = args.control().await?;
    // On the overlay first: the other nodes reach this one while its runtime gets ready.
    let overlay = match args.overlay(&instance_prefix)? {
        Some(overlay) => {
            overlay
                .up()
                .await
                .context("bringing up the WireGuard overlay")?;
            let key = overlay.public_key().await?;
            match zeitwork_agent::join_overlay(&control, &overlay, &key).await {
                Ok(peers) => tracing::info!(peers, "on the WireGuard overlay"),
                Err(e) => {
                    tracing::warn!(error = %e, "peering the overlay waits for the first pull")
                }
            }
            Some((overlay, key))
        }
        None => None,
    };
    // The control plane's prefix, not the flag: unique across nodes.
    let node = NodeArgs {
        node_prefix: instance_prefix,
        ..args.node.clone()
    };
    let registry = args
        .registry
        .clone()
        .map(|address| zeitwork_agent::RegistryLogin {
            address,
            auth: zeitwork_image::Auth::Basic {
                username: name,
                password: credential,
            },
        });
    let runtime = node.runtime_with(registry).await?;
    let bus = match &args.nats_url {
        Some(url) => Some(zeitwork_bus::NatsBus::connect(url).await?),
        None => None,
    };
    let mut agent = NodeAgent::start(runtime, control).await?;
    if let Some((overlay, key)) = overlay {
        agent = agent.with_overlay(overlay, key);
    }
    tracing::info!(%node_id, "agent running");
    agent
        .run(
            bus,
            node_id,
            args.loop_config(stop_instances_on_exit),
            shutdown,
        )
        .await;
    Ok(())
}

/// This machine's CPUs and memory less what the host itself needs.
fn capacity() -> (f64, u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(1024 * 1024);
    (cpus, (total_kb / 1024).saturating_sub(512).max(128))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().split('.').next().unwrap_or("").to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}
