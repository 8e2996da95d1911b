//! What the load balancer is told: where to listen, which edges to spread over, how.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use super::LbError;

/// How a backend is picked for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Each healthy backend in turn: even spread when connections cost about the same.
    #[default]
    RoundRobin,
    /// The healthy backend with the fewest open connections: even load when some
    /// connections (WebSockets, long downloads) stay much longer than others.
    LeastConnections,
    /// By client address (rendezvous hashing): one client keeps reaching one backend,
    /// and a backend going down only moves the clients it had.
    IpHash,
}

impl Algorithm {
    /// The names the command line and configuration use.
    pub const NAMES: [&'static str; 3] = ["round-robin", "least-connections", "ip-hash"];

    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => Self::NAMES[0],
            Algorithm::LeastConnections => Self::NAMES[1],
            Algorithm::IpHash => Self::NAMES[2],
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is none of [`Algorithm::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?}; use round-robin, least-connections or ip-hash")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Algorithm, UnknownAlgorithm> {
        match s {
            "round-robin" => Ok(Algorithm::RoundRobin),
            "least-connections" => Ok(Algorithm::LeastConnections),
            "ip-hash" => Ok(Algorithm::IpHash),
            _ => Err(UnknownAlgorithm(s.to_owned())),
        }
    }
}

/// Active health checks: a TCP connect to each backend every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval: Duration,
    /// A connect that takes longer counts as a failure.
    pub timeout: Duration,
    /// Consecutive successes that bring a down backend back.
    pub rise: u32,
    /// Consecutive failures (checks or refused client connections) that take a backend
    /// down.
    pub fall: u32,
}

impl Default for HealthConfig {
    /// A dead edge stops getting connections within about 3 s, and a flapping one needs
    /// 2 s of good checks before it gets them again.
    fn default() -> HealthConfig {
        HealthConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

/// How the load balancer behaves; [`LbConfig::new`] gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbConfig {
    /// Where [`super::Lb::run`] listens.
    pub listen: SocketAddr,
    /// The edges, in the order round-robin starts from.
    pub backends: Vec<SocketAddr>,
    pub algorithm: Algorithm,
    pub health: HealthConfig,
    /// Send a PROXY v2 header with the client's address first on every backend
    /// connection, so the edges see clients, not the balancer. The edges must expect it.
    pub proxy_protocol: bool,
    /// A backend that has not accepted by then is skipped for the next one.
    pub connect_timeout: Duration,
    /// How long shutdown waits for open connections before cutting them.
    pub drain_timeout: Duration,
}

impl LbConfig {
    /// Round-robin, checks every second (down after 3 failures, up after 2 successes),
    /// 3 s to connect and 30 s to drain, no PROXY header.
    pub fn new(listen: SocketAddr, backends: Vec<SocketAddr>) -> LbConfig {
        LbConfig {
            listen,
            backends,
            algorithm: Algorithm::default(),
            health: HealthConfig::default(),
            proxy_protocol: false,
            connect_timeout: Duration::from_secs(3),
            drain_timeout: Duration::from_secs(30),
        }
    }

    pub(super) fn validate(&self) -> Result<(), LbError> {
        if self.backends.is_empty() {
            return Err(LbError::NoBackends);
        }
        for (i, addr) in self.backends.iter().enumerate() {
            if self.backends[..i].contains(addr) {
                return Err(LbError::DuplicateBackend(*addr));
            }
        }
        let h = &self.health;
        if h.rise == 0 || h.fall == 0 {
            return Err(LbError::Health("rise and fall must be at least 1"));
        }
        if h.interval.is_zero() || h.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(LbError::Health(
                "the check interval and the timeouts must be above zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backends: &[&str]) -> LbConfig {
        let backends = backends.iter().map(|b| b.parse().unwrap()).collect();
        LbConfig::new("127.0.0.1:0".parse().unwrap(), backends)
    }

    #[test]
    fn algorithms_parse_from_their_names() {
        for name in Algorithm::NAMES {
            assert_eq!(name.parse::<Algorithm>().unwrap().to_string(), name);
        }
        let err = "random".parse::<Algorithm>().unwrap_err();
        assert!(err.to_string().contains("round-robin"), "{err}");
    }

    #[test]
    fn configs_without_usable_backends_or_checks_are_refused() {
        assert!(config(&["127.0.0.1:1"]).validate().is_ok());
        assert!(matches!(config(&[]).validate(), Err(LbError::NoBackends)));
        assert!(matches!(
            config(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"]).validate(),
            Err(LbError::DuplicateBackend(a)) if a.port() == 1
        ));
        let mut c = config(&["127.0.0.1:1"]);
        c.health.fall = 0;
        assert!(matches!(c.validate(), Err(LbError::Health(_))));
        let mut c = config(&["127.0.0.1:1"]);
        c.health.interval = Duration::ZERO;
        assert!(matches!(c.validate(), Err(LbError::Health(_))));
    }
}
