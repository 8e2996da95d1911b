//! What a node agent and the operator say to each other over the API. Both sides use
//! these types, so the wire format has one definition.
//!
//! The agent never talks to Postgres: it enrolls with a join token, then uses its node
//! credential for everything under `/api/v1/nodes/{name}/…`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/v1/nodes/join-tokens` (platform admin): a one-time secret a new node
/// presents once to enroll.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

crate::redacted_debug!(JoinToken { expires_at } hides { token });

/// `POST /api/v1/nodes/enroll` with `Authorization: Bearer <join token>`.
/// Enrolling a name again (a reinstalled node) keeps its id and issues a new credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::name::NAME_PATTERN))]
    pub name: String,
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::name::NAME_PATTERN))]
    pub region: String,
    #[serde(default)]
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::name::NAME_PATTERN))]
    pub zone: Option<String>,
    /// Thousandths of a CPU, 1 to [`MAX_MILLICPUS`].
    #[schemars(range(min = 1, max = 4_096_000))]
    pub millicpus: u32,
    /// 1 to [`MAX_MEMORY_MB`].
    #[schemars(range(min = 1, max = 16_777_216))]
    pub memory_mb: u64,
    /// Where edges reach this node's instances (the node's own IPs).
    #[serde(default)]
    #[schemars(length(max = 16), extend("items" = {
        "type": "string", "anyOf": [{ "format": "ipv4" }, { "format": "ipv6" }]
    }))]
    pub addresses: Vec<String>,
    /// Its WireGuard public key and port, made by the agent as it enrolls; without it the
    /// node is not on the overlay (an agent of an earlier build, or none wanted).
    #[serde(default)]
    pub overlay: Option<crate::overlay::OverlayKey>,
}

/// The most CPU a node brings: 4096 cores.
pub const MAX_MILLICPUS: u32 = 4_096_000;
/// The most memory a node brings: 16 TiB.
pub const MAX_MEMORY_MB: u64 = 16 * 1024 * 1024;

/// The answer to an [`Enrollment`]: the credential is shown once, only its hash is kept.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Enrolled {
    pub node_id: Uuid,
    pub name: String,
    pub credential: String,
    /// The node's instance /64 ([`crate::ipam`]): its instances' addresses come from it.
    pub instance_prefix: String,
}

crate::redacted_debug!(Enrolled { node_id, name, instance_prefix } hides { credential });

/// `POST /api/v1/nodes/{name}/heartbeat`. Heartbeats are liveness, not history: they
/// update the node row without writing to the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Instances the agent has running right now.
    pub running: u32,
    /// Each running instance's CPU use since the previous heartbeat (at most
    /// [`Heartbeat::MAX_CPU_REPORTS`]), for the autoscaler.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu: Vec<InstanceCpu>,
    /// How recently each overlay peer answered (at most [`crate::overlay::MAX_PEERS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlay: Vec<crate::overlay::PeerSeen>,
}

impl Heartbeat {
    /// The most CPU reports one heartbeat may carry.
    pub const MAX_CPU_REPORTS: usize = 10_000;
    /// The highest CPU use one report may claim: 1024 cores, in thousandths.
    pub const MAX_MILLICPUS: u32 = 1_024_000;
}

/// An instance's mean CPU use (its VMM's cgroup) over a heartbeat interval, and whether
/// it says it is busy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceCpu {
    pub instance_id: Uuid,
    /// Thousandths of a core.
    pub millicpus: u32,
    /// The app said it works in the background (`/run/zeitwork/busy` exists): a process
    /// scaled to zero is not idle meanwhile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub busy: bool,
}

/// Whether the scheduler may use a node. Only `ready` nodes get new instances;
/// instances on `draining` and `dead` nodes are on their way elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Ready,
    /// Asked to empty: replacements start elsewhere, the old instances stop once their
    /// replacements are healthy.
    Draining,
    /// Stopped sending heartbeats: its instances were replaced at once.
    Dead,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Draining => "draining",
            NodeState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<NodeState> {
        [NodeState::Ready, NodeState::Draining, NodeState::Dead]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// The operator's view of the node, returned for a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeartbeatAck {
    pub state: NodeState,
}

/// `GET /api/v1/nodes/{name}/desired`: everything that should run on the node, as of
/// log position `seq`. The agent pulls it whole; it is small (one node's instances).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeDesired {
    pub node_id: Uuid,
    pub seq: i64,
    pub instances: Vec<DesiredInstance>,
    /// Builds placed on the node that have not ended.
    #[serde(default)]
    pub builds: Vec<crate::build::DesiredBuild>,
    /// Execs into the node's instances whose client waits at the operator (grant redeemed
    /// within the last minute): the agent dials back for each once.
    #[serde(default)]
    pub execs: Vec<DesiredExec>,
    /// The other nodes on the overlay, to peer with (empty while this node has no key).
    #[serde(default)]
    pub peers: Vec<crate::overlay::OverlayPeer>,
}

/// An exec to attach: the agent dials `GET /api/v1/nodes/{name}/execs/{grant_id}` and
/// runs `open` in the instance through its exec channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DesiredExec {
    pub grant_id: Uuid,
    pub instance_id: Uuid,
    pub open: crate::exec::Open,
}

/// One instance the node must run, with everything needed to boot it.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DesiredInstance {
    pub instance_id: Uuid,
    pub org: String,
    pub app: String,
    pub env: String,
    pub deployment_id: Uuid,
    pub process: String,
    /// Digest-pinned: `name@sha256:…`.
    pub image: String,
    /// Overrides the image's entrypoint and command.
    pub command: Option<Vec<String>>,
    /// The manifest's `env`, without secrets.
    pub env_vars: BTreeMap<String, String>,
    /// Decrypted secret values; delivered to the guest as a file, never logged.
    pub secrets: BTreeMap<String, String>,
    pub port: Option<u16>,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// Relative CPU weight (cgroup `cpu.weight`, 1–10000).
    pub cpu_weight: u32,
    /// The manifest's check; `None` with an address means [`HealthCheck::DEFAULT_TCP`].
    pub health: Option<HealthCheck>,
    /// Its process serves the deployment's URLs ([`crate::Manifest::served_process`]):
    /// without `port` it takes the image's first exposed TCP port, and with none it is
    /// unhealthy (the edge could not reach it), never healthy.
    #[serde(default)]
    pub served: bool,
}

crate::redacted_debug!(DesiredInstance {
    instance_id, org, app, env, deployment_id, process, image, command, env_vars, port,
    vcpus, memory_mb, cpu_weight, health, served
} hides { secrets });

/// How the agent decides an instance is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive successes before an instance counts as healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures before a healthy instance counts as unhealthy.
    pub unhealthy_threshold: u32,
}

impl HealthCheck {
    /// An instance with a port but no check in its manifest is healthy once the port
    /// accepts connections, checked every second.
    pub const DEFAULT_TCP: HealthCheck = HealthCheck {
        probe: Probe::Tcp,
        interval_ms: 1000,
        timeout_ms: 1000,
        healthy_threshold: 1,
        unhealthy_threshold: 3,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Probe {
    /// `GET path` must answer 2xx or 3xx.
    Http { path: String },
    /// The port must accept a connection.
    Tcp,
}

/// An instance's life as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObservedState {
    Pending,
    Pulling,
    Booting,
    Healthy,
    Unhealthy,
    Stopping,
    Stopped,
    Failed,
}

impl ObservedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ObservedState::Pending => "pending",
            ObservedState::Pulling => "pulling",
            ObservedState::Booting => "booting",
            ObservedState::Healthy => "healthy",
            ObservedState::Unhealthy => "unhealthy",
            ObservedState::Stopping => "stopping",
            ObservedState::Stopped => "stopped",
            ObservedState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ObservedState> {
        [
            ObservedState::Pending,
            ObservedState::Pulling,
            ObservedState::Booting,
            ObservedState::Healthy,
            ObservedState::Unhealthy,
            ObservedState::Stopping,
            ObservedState::Stopped,
            ObservedState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// `POST /api/v1/nodes/{name}/instances/{id}/state`: one transition. The operator
/// records it (an `instance_observed` event) only when something changed, so the
/// agent may repeat a report safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceReport {
    pub state: ObservedState,
    /// Why, for anything but `healthy`: exit status, OOM, boot error, failed check.
    #[serde(default)]
    pub reason: Option<String>,
    /// `ip:port` where the app answers, once booted.
    #[serde(default)]
    pub address: Option<String>,
    /// Restarts since the instance was placed on this node.
    #[serde(default)]
    pub restarts: u32,
}

/// One line an instance or a build printed, with the time the agent read it. Exactly one
/// of `instance_id` and `build_id` is set ([`LogLine::source`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ShippedLogLine")]
pub struct LogLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub line: String,
}

/// Whose output a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogSource {
    Instance(Uuid),
    Build(Uuid),
}

impl LogLine {
    /// A line of `source`.
    pub fn new(source: LogSource, at: DateTime<Utc>, line: String) -> LogLine {
        let (instance_id, build_id) = match source {
            LogSource::Instance(id) => (Some(id), None),
            LogSource::Build(id) => (None, Some(id)),
        };
        LogLine {
            instance_id,
            build_id,
            at,
            line,
        }
    }

    /// Whose line it is; `None` when it names neither or both.
    pub fn source(&self) -> Option<LogSource> {
        match (self.instance_id, self.build_id) {
            (Some(id), None) => Some(LogSource::Instance(id)),
            (None, Some(id)) => Some(LogSource::Build(id)),
            _ => None,
        }
    }
}

/// `POST /api/v1/nodes/{name}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    pub lines: Vec<LogLine>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_states_round_trip_through_their_names() {
        for s in [
            ObservedState::Pending,
            ObservedState::Healthy,
            ObservedState::Failed,
        ] {
            assert_eq!(ObservedState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(ObservedState::parse("running"), None);
    }

    #[test]
    fn node_states_round_trip_through_their_names() {
        for s in [NodeState::Ready, NodeState::Draining, NodeState::Dead] {
            assert_eq!(NodeState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(NodeState::parse("gone"), None);
    }

    #[test]
    fn reports_refuse_unknown_fields() {
        let err = serde_json::from_str::<InstanceReport>(r#"{"state":"healthy","colour":1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn secrets_and_credentials_never_print_in_debug() {
        let desired = DesiredInstance {
            instance_id: Uuid::nil(),
            org: "acme".into(),
            app: "web".into(),
            env: "prod".into(),
            deployment_id: Uuid::nil(),
            process: "web".into(),
            image: "r/acme/web@sha256:00".into(),
            command: None,
            env_vars: BTreeMap::from([("MODE".into(), "plain".into())]),
            secrets: BTreeMap::from([("DB_PASSWORD".into(), "hunter2-secret".into())]),
            port: Some(8080),
            vcpus: 1,
            memory_mb: 256,
            cpu_weight: 100,
            health: None,
            served: true,
        };
        let printed = format!("{desired:?}");
        assert!(
            printed.contains("plain") && printed.contains("<redacted>"),
            "{printed}"
        );
        assert!(!printed.contains("hunter2-secret"), "{printed}");
        let join = JoinToken {
            token: "zwj_topsecret".into(),
            expires_at: Utc::now(),
        };
        assert!(!format!("{join:?}").contains("topsecret"));
        let enrolled = Enrolled {
            node_id: Uuid::nil(),
            name: "n1".into(),
            credential: "zwn_topsecret".into(),
            instance_prefix: "fd00::/64".into(),
        };
        assert!(!format!("{enrolled:?}").contains("topsecret"));
    }
}
