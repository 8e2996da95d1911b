use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zeitwork_core::PortRange;
use zeitwork_store::Store;

use crate::crypto::SecretBox;
use zeitwork_core::Quotas;

/// Operator settings that shape answers (not how to reach things).
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-deployment URLs are `<app>-<slug>-<org>.<base_domain>`.
    pub base_domain: String,
    /// How far CPU may be oversubscribed when placing instances (memory never is).
    pub cpu_oversubscription: f64,
    /// A node whose agent sent no heartbeat for this long is dead: its instances are
    /// replaced elsewhere.
    pub node_dead_after: Duration,
    /// How often the monitor looks for dead nodes, finished replacements and instances
    /// waiting for room.
    pub monitor_interval: Duration,
    /// The DNS resolver that custom-domain ownership checks ask for TXT records; `None`
    /// means this machine's (/etc/resolv.conf). Set it where that resolver is not the
    /// public DNS the users publish to (split horizon), or in tests.
    pub dns_server: Option<SocketAddr>,
    /// Where `tcp` routes get their ports (each edge listens on every allocated one).
    pub tcp_ports: PortRange,
    /// What each org may hold at most.
    pub quotas: Quotas,
    /// How long one event or log stream (`follow`) is served before the operator ends
    /// it; clients reconnect with `Last-Event-ID` and lose nothing, and a follower that
    /// went away without closing holds nothing longer than this.
    pub follow_for: Duration,
    /// The registry the platform runs, when it runs one (its token service is ours).
    pub registry: Option<Arc<crate::registry::PlatformRegistry>>,
    /// What the registry's garbage collection keeps, and how often it runs.
    pub registry_gc: crate::registry_gc::GcPolicy,
    /// How long the deployment a rollout replaces stays on standby unless the app's
    /// manifest says (`[deploy] standby`); zero: not at all.
    pub standby_window: zeitwork_core::manifest::Seconds,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            base_domain: "zeitwork.localhost".into(),
            cpu_oversubscription: 4.0,
            node_dead_after: Duration::from_secs(30),
            monitor_interval: Duration::from_secs(1),
            dns_server: None,
            tcp_ports: PortRange::new(20000, 29999).expect("a valid range"),
            quotas: Quotas::default(),
            follow_for: Duration::from_secs(3600),
            registry: None,
            registry_gc: crate::registry_gc::GcPolicy::default(),
            standby_window: zeitwork_core::deployment::DEFAULT_STANDBY,
        }
    }
}

/// Shared by every handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub secrets: SecretBox,
    pub config: Arc<Config>,
    /// The highest committed event seq, pushed by Postgres NOTIFY, so event streams
    /// wake on commit instead of polling.
    pub head: watch::Receiver<i64>,
    /// The highest committed log line id, pushed the same way, so log followers wake
    /// when a node's batch commits.
    pub logs: watch::Receiver<i64>,
    /// Exec clients waiting for their node to dial back.
    pub execs: crate::exec::Rendezvous,
}
