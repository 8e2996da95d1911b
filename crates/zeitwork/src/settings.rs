//! Settings shared by the server roles, from flags or the environment.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use zeitwork_core::PortRange;
use zeitwork_core::Quotas;
use zeitwork_operator::{Config, SecretBox};

#[derive(Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Address the API listens on.
    #[arg(long, env = "ZEITWORK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Per-deployment URLs are <app>-<slug>-<org>.<base-domain>.
    #[arg(
        long,
        env = "ZEITWORK_BASE_DOMAIN",
        default_value = "zeitwork.localhost"
    )]
    pub base_domain: String,
    /// How far CPU may be oversubscribed when placing instances (memory never is).
    #[arg(long, env = "ZEITWORK_CPU_OVERSUBSCRIPTION", default_value_t = 4.0)]
    pub cpu_oversubscription: f64,
    /// Seconds without a heartbeat after which a node is dead and its instances move.
    #[arg(long, env = "ZEITWORK_NODE_DEAD_AFTER", default_value = "30", value_parser = seconds)]
    pub node_dead_after: Duration,
    /// Seconds between the node monitor's rounds (dead nodes, drains, waiting instances).
    #[arg(long, env = "ZEITWORK_MONITOR_INTERVAL", default_value = "1", value_parser = seconds)]
    pub monitor_interval: Duration,
    /// DNS resolver asked for custom domains' ownership TXT records [default: this
    /// machine's, from /etc/resolv.conf].
    #[arg(long, env = "ZEITWORK_DNS_SERVER", value_name = "IP:PORT")]
    pub dns_server: Option<SocketAddr>,
    /// Ports `tcp` routes are given, one each; every edge listens on those in use.
    #[arg(
        long,
        env = "ZEITWORK_TCP_PORTS",
        default_value = "20000-29999",
        value_name = "FIRST-LAST"
    )]
    pub tcp_ports: PortRange,
    /// Seconds one event or log stream is served before the operator ends it (clients
    /// reconnect with Last-Event-ID and lose nothing; a gone follower is let go).
    #[arg(long, env = "ZEITWORK_FOLLOW_FOR", default_value = "3600", value_parser = seconds)]
    pub follow_for: Duration,
    /// Every org's quota unless one is set for the org (`zeitwork quotas set`): instances meant to run, over all its apps and envs.
    #[arg(long, env = "ZEITWORK_QUOTA_INSTANCES", default_value_t = Quotas::default().instances,
        value_parser = clap::value_parser!(u64).range(..=Quotas::MAX.instances))]
    pub quota_instances: u64,
    /// Every org's quota unless one is set for the org (`zeitwork quotas set`): MiB of memory of those instances.
    #[arg(long, env = "ZEITWORK_QUOTA_MEMORY_MB", default_value_t = Quotas::default().memory_mb,
        value_parser = clap::value_parser!(u64).range(..=Quotas::MAX.memory_mb))]
    pub quota_memory_mb: u64,
    /// Every org's quota unless one is set for the org (`zeitwork quotas set`): routes of every mode.
    #[arg(long, env = "ZEITWORK_QUOTA_ROUTES", default_value_t = Quotas::default().routes,
        value_parser = clap::value_parser!(u64).range(..=Quotas::MAX.routes))]
    pub quota_routes: u64,
    /// Every org's quota unless one is set for the org (`zeitwork quotas set`): `tcp` routes (each takes a port on every edge).
    #[arg(long, env = "ZEITWORK_QUOTA_TCP_ROUTES", default_value_t = Quotas::default().tcp_routes,
        value_parser = clap::value_parser!(u64).range(..=Quotas::MAX.tcp_routes))]
    pub quota_tcp_routes: u64,
    /// Every org's quota unless one is set for the org (`zeitwork quotas set`): custom domains, verified or not.
    #[arg(long, env = "ZEITWORK_QUOTA_DOMAINS", default_value_t = Quotas::default().domains,
        value_parser = clap::value_parser!(u64).range(..=Quotas::MAX.domains))]
    pub quota_domains: u64,
    /// Every org's quota unless one is set for the org (`zeitwork quotas set`): MiB of images in the platform registry (as its garbage collection measures them).
    #[arg(long, env = "ZEITWORK_QUOTA_REGISTRY_MB", default_value_t = Quotas::default().registry_mb,
        value_parser = clap::value_parser!(u64).range(..=Quotas::MAX.registry_mb))]
    pub quota_registry_mb: u64,
    /// Registry garbage collection keeps the images of each env's last N deployments and
    /// builds (and whatever runs or builds now).
    #[arg(long, env = "ZEITWORK_REGISTRY_KEEP", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub registry_keep: u32,
    /// Seconds an image must have gone unreferenced before garbage collection deletes it.
    #[arg(long, env = "ZEITWORK_REGISTRY_GC_GRACE", default_value = "3600", value_parser = week)]
    pub registry_gc_grace: Duration,
    /// How long the deployment a rollout replaces keeps running, unrouted, so a rollback
    /// to it boots nothing ("30m", "90s", a number of seconds; at most 24 hours; 0 turns
    /// standbys off). An app's `[deploy] standby` overrides it.
    #[arg(long, env = "ZEITWORK_STANDBY_WINDOW", default_value = "30m",
        value_parser = zeitwork_core::manifest::Seconds::parse)]
    pub standby_window: zeitwork_core::manifest::Seconds,
    /// Seconds between registry garbage collection rounds.
    #[arg(long, env = "ZEITWORK_REGISTRY_GC_EVERY", default_value = "3600", value_parser = week)]
    pub registry_gc_every: Duration,
}

impl OperatorArgs {
    pub fn config(&self) -> Config {
        Config {
            base_domain: self.base_domain.clone(),
            cpu_oversubscription: self.cpu_oversubscription,
            node_dead_after: self.node_dead_after,
            monitor_interval: self.monitor_interval,
            dns_server: self.dns_server,
            tcp_ports: self.tcp_ports,
            quotas: Quotas {
                instances: self.quota_instances,
                memory_mb: self.quota_memory_mb,
                routes: self.quota_routes,
                tcp_routes: self.quota_tcp_routes,
                domains: self.quota_domains,
                registry_mb: self.quota_registry_mb,
            },
            follow_for: self.follow_for,
            registry: None,
            registry_gc: zeitwork_operator::registry_gc::GcPolicy {
                keep_per_env: self.registry_keep,
                grace: self.registry_gc_grace,
                every: self.registry_gc_every,
            },
            standby_window: self.standby_window,
        }
    }
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("expected a positive number of seconds, got {s:?}"))
}

/// [`seconds`], at most a week.
pub fn week(s: &str) -> Result<Duration, String> {
    seconds(s).and_then(|d| match d <= Duration::from_secs(7 * 24 * 3600) {
        true => Ok(d),
        false => Err(format!("at most a week (604800 seconds), got {s:?}")),
    })
}

/// The platform's two sealing keys. Each role holds only what it needs: the operator
/// the secrets key (it hands tenants' secrets to their nodes), the edges and
/// `zeitwork certs` the certificates key; an internet-facing edge never holds a key
/// that opens tenants' secrets (docs/security.md, "Keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Seals env secrets.
    Secrets,
    /// Seals certificate private keys and the ACME account key.
    Certificates,
}

impl Key {
    /// The environment variable that holds it (64 hex characters).
    pub fn var(self) -> &'static str {
        match self {
            Key::Secrets => "ZEITWORK_SECRET_KEY",
            Key::Certificates => "ZEITWORK_CERT_KEY",
        }
    }

    /// Its file in the data directory of `zeitwork up`.
    pub fn file(self) -> &'static str {
        match self {
            Key::Secrets => "secret.key",
            Key::Certificates => "cert.key",
        }
    }

    /// What it is for, in a few words.
    pub fn seals(self) -> &'static str {
        match self {
            Key::Secrets => "it seals secrets at rest",
            Key::Certificates => "it seals certificate keys at rest",
        }
    }

    /// The key from its environment variable, else from `dir`'s key file, created
    /// with mode 0600 on first use.
    pub fn load(self, dir: Option<&Path>) -> anyhow::Result<SecretBox> {
        if let Ok(hex) = std::env::var(self.var()) {
            return SecretBox::from_hex(&hex).context(self.var());
        }
        let Some(dir) = dir else {
            anyhow::bail!(
                "set {} to 64 hex characters (e.g. `openssl rand -hex 32`); {}",
                self.var(),
                self.seals()
            );
        };
        let path = dir.join(self.file());
        if !path.exists() {
            write_private(&path, &SecretBox::generate_hex())?;
        }
        let hex = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        SecretBox::from_hex(&hex).with_context(|| format!("key in {}", path.display()))
    }

    /// The key from its environment variable only, for roles that open what another
    /// role sealed and so must never make up a key of their own; `needed_for` says why
    /// in the error when it is missing.
    pub fn required(self, needed_for: &str) -> anyhow::Result<SecretBox> {
        if std::env::var_os(self.var()).is_none() {
            anyhow::bail!(
                "set {} to the platform's key (64 hex characters; `zeitwork up` keeps it in \
                 <data dir>/{}): {needed_for}",
                self.var(),
                self.file()
            );
        }
        self.load(None)
    }
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_positive_seconds() {
        assert_eq!(seconds("30"), Ok(Duration::from_secs(30)));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "soon", "inf"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
