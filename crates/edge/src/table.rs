//! The routing table: which backends answer for a hostname. One immutable snapshot is
//! built from Postgres ([`load`]) and swapped in whole, so a request reads one consistent
//! table without locks and never waits on the database.

mod build;
mod load;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use uuid::Uuid;
use zeitwork_core::RoutePolicy;

use crate::metrics::RouteMetrics;

pub(crate) use load::load;

/// Every hostname the edge serves at one point of the event log.
#[derive(Debug)]
pub struct RoutingTable {
    seq: i64,
    /// Served over HTTP, and over HTTPS with the edge's own certificate.
    hosts: HashMap<String, Arc<Target>>,
    /// `tls-passthrough` routes: the app terminates TLS itself. Kept apart so an HTTP
    /// lookup never finds one (and the edge never speaks HTTP to an app expecting TLS).
    passthrough: HashMap<String, Arc<Target>>,
    /// `tcp` routes, by the port every edge listens on for them.
    tcp: HashMap<u16, Arc<Target>>,
}

impl RoutingTable {
    /// The target of `host`: lowercase, without port or trailing dot (what
    /// the proxy's Host parsing yields).
    pub fn lookup(&self, host: &str) -> Option<&Arc<Target>> {
        self.hosts.get(host)
    }

    /// The `tls-passthrough` target of an SNI name (lowercase, no trailing dot).
    pub fn lookup_passthrough(&self, host: &str) -> Option<&Arc<Target>> {
        self.passthrough.get(host)
    }

    /// The target of a `tcp` route by its allocated port.
    pub fn lookup_tcp(&self, port: u16) -> Option<&Arc<Target>> {
        self.tcp.get(&port)
    }

    /// The ports of every `tcp` route: where each edge listens besides HTTP(S).
    pub fn tcp_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.tcp.keys().copied()
    }

    /// The head of the event log the table was read at.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// How many hostnames and ports are routed.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.passthrough.len() + self.tcp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A table of `tcp` routes only, without backends.
    #[cfg(test)]
    pub(crate) fn with_tcp_ports(ports: &[u16]) -> RoutingTable {
        let target = || Arc::new(Target::for_test(vec![], Arc::default()));
        RoutingTable {
            seq: 0,
            hosts: HashMap::new(),
            passthrough: HashMap::new(),
            tcp: ports.iter().map(|p| (*p, target())).collect(),
        }
    }

    fn targets(&self) -> impl Iterator<Item = &Arc<Target>> {
        let named = self.hosts.values().chain(self.passthrough.values());
        named.chain(self.tcp.values())
    }

    /// Every route some hostname comes from.
    pub(crate) fn route_set(&self) -> HashSet<Uuid> {
        self.targets().filter_map(|t| t.route).collect()
    }

    /// Every instance address some hostname leads to.
    pub(crate) fn backend_set(&self) -> HashSet<SocketAddr> {
        let targets = self.targets();
        targets.flat_map(|t| t.backends.iter().copied()).collect()
    }
}

/// Where a hostname goes: one process of one env on one port, and the healthy
/// instances serving it right now. No backends means "known, but nothing healthy" (503).
#[derive(Debug)]
pub struct Target {
    /// The hostname that claimed it first (custom domains share their env's target):
    /// what its metrics are labelled with.
    name: String,
    metrics: OnceLock<RouteMetrics>,
    env_id: Uuid,
    process: String,
    port: Option<u16>,
    backends: Vec<SocketAddr>,
    /// Round-robin position, shared by every hostname that names this target.
    next: AtomicUsize,
    /// The route's policy (one shared default for platform names and domains).
    policy: Arc<RoutePolicy>,
    /// The route it comes from: limits are kept per route, across table swaps.
    route: Option<Uuid>,
    /// A passthrough or tcp route whose app wants a PROXY v2 header with the client's
    /// address.
    proxy_protocol: bool,
    /// The deployment to wake when the process is scaled to zero: a request without a
    /// backend waits for one rather than failing.
    wakes: Option<Uuid>,
    /// Its backends are another region's: the edge's own region has none healthy.
    cross_region: bool,
}

impl Target {
    fn new(
        name: &str,
        env_id: Uuid,
        process: &str,
        port: Option<u16>,
        backends: Vec<SocketAddr>,
        policy: Arc<RoutePolicy>,
    ) -> Target {
        Target {
            name: name.to_ascii_lowercase(),
            metrics: OnceLock::new(),
            env_id,
            process: process.to_owned(),
            port,
            backends,
            next: AtomicUsize::new(0),
            policy,
            route: None,
            proxy_protocol: false,
            wakes: None,
            cross_region: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_test(backends: Vec<SocketAddr>, policy: Arc<RoutePolicy>) -> Target {
        Target::new(
            "test.example",
            Uuid::nil(),
            "web",
            Some(80),
            backends,
            policy,
        )
    }

    /// Counters and latencies of requests to this target, registered on first use.
    pub(crate) fn metrics(&self) -> &RouteMetrics {
        self.metrics
            .get_or_init(|| RouteMetrics::new(&self.name, self.cross_region))
    }

    pub fn policy(&self) -> &RoutePolicy {
        &self.policy
    }

    pub(crate) fn route(&self) -> Option<Uuid> {
        self.route
    }

    /// Whether a passthrough connection starts with a PROXY v2 header to the app.
    pub fn proxy_protocol(&self) -> bool {
        self.proxy_protocol
    }

    /// The sleeping deployment a request to this target wakes (its process scales to
    /// zero); `None` when a request without a backend fails at once.
    pub fn wakes(&self) -> Option<Uuid> {
        self.wakes
    }

    pub fn env_id(&self) -> Uuid {
        self.env_id
    }

    pub fn process(&self) -> &str {
        &self.process
    }

    /// Whether its instances are another region's (none of the edge's own is healthy).
    pub fn cross_region(&self) -> bool {
        self.cross_region
    }

    /// The port the process listens on; `None` when it serves no port at all.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `ip:port` of every instance that is meant to run and was last seen healthy.
    pub fn backends(&self) -> &[SocketAddr] {
        &self.backends
    }

    /// Every backend once, starting at the next in round-robin order: the first is
    /// where the request goes, the rest are where a retry may go.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let n = self.backends.len();
        let start = if n == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |i| self.backends[(start + i) % n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn rotations_start_at_successive_backends_and_cover_all() {
        let t = Target::for_test(vec![addr(1), addr(2), addr(3)], Arc::default());
        let firsts: Vec<u16> = (0..6)
            .map(|_| t.rotation().next().unwrap().port())
            .collect();
        assert_eq!(firsts, [1, 2, 3, 1, 2, 3]);
        let all: Vec<u16> = t.rotation().map(|a| a.port()).collect();
        assert_eq!(all, [1, 2, 3]);
    }

    #[test]
    fn a_target_without_backends_rotates_over_nothing() {
        let t = Target::for_test(vec![], Arc::default());
        assert_eq!(t.rotation().count(), 0);
    }
}
