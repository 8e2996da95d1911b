//! `zeitwork.toml`: what a developer hands us beside the image. Parsing is strict:
//! an unknown or misspelt field is an error naming its path, because a silently
//! ignored `helth` block would ship an app without health checks.

pub mod autoscale;
mod build;
mod check;
mod deploy;
mod duration;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::name::{Hostname, Name};
pub use autoscale::Autoscale;
pub use build::Build;
pub use check::check_env_name;
pub use deploy::Deploy;
pub use duration::Seconds;

/// The only manifest schema version this build understands.
pub const VERSION: u32 = 1;
/// The manifest's file name, in a project's root directory.
pub const FILE: &str = "zeitwork.toml";

/// A manifest problem, located by its dotted path (`processes.web.health.interval`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ManifestError {
    pub path: String,
    pub message: String,
}

impl ManifestError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The process that serves a deployment's URLs when none has a port.
pub const SERVED_BY_DEFAULT: &str = "web";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub app: Name,
    pub processes: BTreeMap<Name, Process>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// How the image is built from source, for deploys from a directory or a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// How rollouts treat the deployment they replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Overrides the image's entrypoint and command; absent means the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The port the process listens on inside its microVM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Instances per region.
    #[serde(default = "default_instances")]
    pub instances: u32,
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// Regions to run in; empty means every region that has nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Lets the platform pick `instances` between bounds from the load; `instances` is
    /// then only the count of the first deployment (kept within the bounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// HTTP path probed with GET; a 2xx or 3xx answer is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Probe by opening a TCP connection to the process port instead of HTTP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tcp: bool,
    #[serde(default = "default_interval")]
    pub interval: Seconds,
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    #[serde(default = "default_healthy")]
    pub healthy_threshold: u32,
    #[serde(default = "default_unhealthy")]
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RouteMode {
    Http,
    TlsPassthrough,
    Tcp,
}

impl RouteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMode::Http => "http",
            RouteMode::TlsPassthrough => "tls-passthrough",
            RouteMode::Tcp => "tcp",
        }
    }

    pub fn parse(s: &str) -> Option<RouteMode> {
        [RouteMode::Http, RouteMode::TlsPassthrough, RouteMode::Tcp]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Hostname served; absent for `tcp` routes, which get an allocated port instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Hostname>,
    pub process: Name,
    #[serde(default = "default_mode")]
    pub mode: RouteMode,
    /// Backend port inside the instance; defaults to the process port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub proxy_protocol: bool,
    /// How the edge treats this route's traffic (`[routes.policy]`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub policy: crate::RoutePolicy,
}

fn is_default(policy: &crate::RoutePolicy) -> bool {
    *policy == crate::RoutePolicy::default()
}

fn default_instances() -> u32 {
    1
}
fn default_cpus() -> f64 {
    1.0
}
fn default_memory() -> u64 {
    256
}
fn default_interval() -> Seconds {
    Seconds::from_secs(10).expect("within bounds")
}
fn default_timeout() -> Seconds {
    Seconds::from_secs(2).expect("within bounds")
}
fn default_healthy() -> u32 {
    1
}
fn default_unhealthy() -> u32 {
    3
}
fn default_mode() -> RouteMode {
    RouteMode::Http
}

impl Manifest {
    /// Parses and validates TOML text; the first problem is returned with its path.
    pub fn from_toml(text: &str) -> Result<Manifest, ManifestError> {
        let de = toml::Deserializer::new(text);
        let manifest: Manifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let mut message = inner.message().to_owned();
            if let Some(line) = inner.span().map(|s| text[..s.start].lines().count().max(1)) {
                message = format!("{message} (line {line})");
            }
            ManifestError::at(if path == "." { String::new() } else { path }, message)
        })?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Parses the JSON form (as the API receives it) with the same strictness.
    pub fn from_json(value: &serde_json::Value) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = serde_path_to_error::deserialize(value)
            .map_err(|e| ManifestError::at(e.path().to_string(), e.into_inner().to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Content hash of the normalized manifest: two manifests that mean the same hash the same.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("manifest serializes");
        format!("sha256:{}", hex::encode(Sha256::digest(canonical)))
    }

    /// The process a deployment's hostnames serve: one with a port, `web` first, then by
    /// name; else `web` without a port, which then listens on its image's first exposed
    /// TCP port. `None`: no process serves HTTP. The one rule for it: the operator marks
    /// the served process's instances with it, and the edge's query (`crates/edge/src/
    /// table/load.rs`, `DEPLOYMENTS`) states the same order in SQL.
    pub fn served_process(&self) -> Option<&str> {
        self.processes
            .iter()
            .filter(|(name, p)| p.port.is_some() || name.as_str() == SERVED_BY_DEFAULT)
            .min_by_key(|(name, p)| (p.port.is_none(), name.as_str() != SERVED_BY_DEFAULT, *name))
            .map(|(name, _)| name.as_str())
    }

    /// What a deployer should know before this manifest's deployment serves: its URLs
    /// answer 503 when no process can be reached. Empty when every URL has a port.
    pub fn reachability_warnings(&self) -> Vec<String> {
        match self.served_process() {
            None => vec![format!(
                "no process serves this deployment's URLs (none is named {SERVED_BY_DEFAULT} or has a port): they will answer 503"
            )],
            Some(name)
                if self
                    .processes
                    .iter()
                    .any(|(n, p)| n.as_str() == name && p.port.is_none()) =>
            {
                vec![format!(
                    "processes.{name} has no port: it gets the image's first exposed TCP port (EXPOSE); if the image exposes none, nothing is reachable and its instances report why (set processes.{name}.port)"
                )]
            }
            Some(_) => Vec::new(),
        }
    }

    /// A minimal manifest for deploying an image without a `zeitwork.toml`.
    pub fn default_for(app: Name, port: Option<u16>) -> Manifest {
        let mut processes = BTreeMap::new();
        processes.insert(
            Name::parse(SERVED_BY_DEFAULT).expect("valid"),
            Process {
                command: None,
                port,
                instances: default_instances(),
                cpus: default_cpus(),
                memory_mb: default_memory(),
                regions: Vec::new(),
                health: None,
                autoscale: None,
            },
        );
        Manifest {
            version: VERSION,
            app,
            processes,
            env: BTreeMap::new(),
            routes: Vec::new(),
            build: None,
            deploy: None,
        }
    }
}
