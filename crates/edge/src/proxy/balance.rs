//! Which instance a request goes to, and which to avoid. The routing table says which
//! instances are healthy (the node agents' active checks); this adds what the edge sees
//! itself: requests in flight per instance (least-connections) and failures. An instance
//! that refuses a connection is ejected at once, one that answers 5xx three times in a
//! row too; it is tried again after a back-off that doubles with every ejection (1 s to
//! 30 s). Ejected instances go last, so they are still tried when nothing else is left.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use zeitwork_core::route_policy::Balance;

use crate::table::{RoutingTable, Target};

/// 5xx answers in a row that eject an instance.
const FAILURES_TO_EJECT: u32 = 3;
const FIRST_EJECTION: Duration = Duration::from_secs(1);
const LONGEST_EJECTION: Duration = Duration::from_secs(30);

/// What the edge has seen of every instance it sends to, kept across table swaps.
pub(crate) struct Backends {
    states: RwLock<HashMap<SocketAddr, Arc<BackendState>>>,
    epoch: Instant,
}

#[derive(Default)]
pub(crate) struct BackendState {
    in_flight: AtomicU32,
    /// Requests sent, ever (the load reports take differences).
    requests: AtomicU64,
    /// Failures in a row.
    failures: AtomicU32,
    /// Ejections in a row (the back-off grows with them).
    ejections: AtomicU32,
    /// Milliseconds since the epoch until which the instance is avoided.
    ejected_until: AtomicU64,
}

/// One place a request may go.
pub(crate) struct Candidate {
    pub addr: SocketAddr,
    pub state: Arc<BackendState>,
}

/// Counts a request in flight on one instance until dropped.
pub(crate) struct InFlight(Arc<BackendState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Backends {
    pub(crate) fn new() -> Backends {
        Backends {
            states: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn state(&self, addr: SocketAddr) -> Arc<BackendState> {
        if let Some(state) = self.states.read().expect("not poisoned").get(&addr) {
            return state.clone();
        }
        let mut states = self.states.write().expect("not poisoned");
        states.entry(addr).or_default().clone()
    }

    /// Every backend of `target` once, best first: the first is where the request goes,
    /// the rest are where a retry may go. `key` identifies the client for
    /// consistent hashing.
    pub(crate) fn plan(&self, target: &Target, key: Option<u64>) -> Vec<Candidate> {
        let mut plan: Vec<Candidate> = target
            .rotation()
            .map(|addr| Candidate {
                addr,
                state: self.state(addr),
            })
            .collect();
        match target.policy().balance {
            Balance::RoundRobin => {}
            // Stable: among equals the round-robin order decides.
            Balance::LeastConnections => {
                plan.sort_by_key(|c| c.state.in_flight.load(Ordering::Relaxed));
            }
            // Rendezvous hashing: each client ranks the instances the same way on every
            // edge, and losing one instance moves only its own clients.
            Balance::ConsistentHash => {
                let key = key.unwrap_or_default();
                plan.sort_by_key(|c| std::cmp::Reverse(score(key, c.addr)));
            }
        }
        let now = self.now_ms();
        plan.sort_by_key(|c| c.state.ejected_until.load(Ordering::Relaxed) > now);
        plan
    }

    pub(crate) fn begin(&self, candidate: &Candidate) -> InFlight {
        candidate.state.in_flight.fetch_add(1, Ordering::Relaxed);
        candidate.state.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(candidate.state.clone())
    }

    pub(crate) fn succeeded(&self, candidate: &Candidate) {
        candidate.state.failures.store(0, Ordering::Relaxed);
        candidate.state.ejections.store(0, Ordering::Relaxed);
    }

    /// A connection could not be made (`refused`) or the answer was a 5xx.
    pub(crate) fn failed(&self, candidate: &Candidate, refused: bool) {
        let state = &candidate.state;
        let failures = state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if !refused && failures < FAILURES_TO_EJECT {
            return;
        }
        state.failures.store(0, Ordering::Relaxed);
        let ejections = state.ejections.fetch_add(1, Ordering::Relaxed);
        let backoff = FIRST_EJECTION
            .saturating_mul(1 << ejections.min(5))
            .min(LONGEST_EJECTION);
        let until = self.now_ms() + backoff.as_millis() as u64;
        state.ejected_until.store(until, Ordering::Relaxed);
        tracing::warn!(backend = %candidate.addr, ?backoff, refused, "instance ejected");
    }

    /// Requests in flight right now, and sent ever, to every instance the edge has sent to.
    pub(crate) fn load(&self) -> Vec<(SocketAddr, u32, u64)> {
        self.states
            .read()
            .expect("not poisoned")
            .iter()
            .map(|(addr, state)| {
                let in_flight = state.in_flight.load(Ordering::Relaxed);
                (*addr, in_flight, state.requests.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// Forgets instances no hostname leads to any more.
    pub(crate) fn retain(&self, table: &RoutingTable) {
        let live = table.backend_set();
        let mut states = self.states.write().expect("not poisoned");
        states.retain(|addr, state| {
            live.contains(addr) || state.in_flight.load(Ordering::Relaxed) > 0
        });
    }
}

/// An instance's rank for a client in rendezvous hashing. Specified bytes through a
/// specified hash (never `std`'s `DefaultHasher`, whose algorithm may change between
/// Rust releases), so edges built by different compilers rank alike: the key (8 bytes,
/// big-endian), the instance's IP (4 or 16 bytes) and port (2 bytes, big-endian).
fn score(key: u64, addr: SocketAddr) -> u64 {
    let mut hash = Fnv1a::new();
    hash.write(&key.to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(ip) => hash.write(&ip.octets()),
        std::net::IpAddr::V6(ip) => hash.write(&ip.octets()),
    }
    hash.write(&addr.port().to_be_bytes());
    hash.finish()
}

/// A client key for consistent hashing from its bytes (a header's or cookie's value,
/// an address's octets), with the same hash as [`score`].
pub(crate) fn key_of(bytes: &[u8]) -> u64 {
    let mut hash = Fnv1a::new();
    hash.write(bytes);
    hash.finish()
}

/// 64-bit FNV-1a, its result mixed by MurmurHash3's `fmix64` finalizer (FNV alone
/// spreads short inputs that differ in their last byte poorly across the high bits).
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv1a {
        Fnv1a(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeitwork_core::RoutePolicy;

    fn target(balance: Balance, ports: &[u16]) -> Target {
        let policy = RoutePolicy {
            balance,
            ..RoutePolicy::default()
        };
        let backends = ports
            .iter()
            .map(|p| SocketAddr::from(([10, 0, 0, 1], *p)))
            .collect();
        Target::for_test(backends, Arc::new(policy))
    }

    fn first(plan: &[Candidate]) -> u16 {
        plan[0].addr.port()
    }

    #[test]
    fn least_connections_prefers_the_idlest_instance() {
        let backends = Backends::new();
        let t = target(Balance::LeastConnections, &[1, 2, 3]);
        let busy: Vec<InFlight> = backends.plan(&t, None)[..2]
            .iter()
            .map(|c| backends.begin(c))
            .collect();
        let idle = backends.plan(&t, None);
        assert_eq!(first(&idle), 3);
        drop(busy);
        assert_eq!(backends.plan(&t, None).len(), 3);
    }

    #[test]
    fn consistent_hashing_keeps_a_client_and_moves_only_a_lost_instances_clients() {
        let backends = Backends::new();
        let all = target(Balance::ConsistentHash, &[1, 2, 3, 4]);
        let fewer = target(Balance::ConsistentHash, &[1, 2, 4]);
        let mut spread = HashMap::new();
        for client in 0..200u64 {
            let before = first(&backends.plan(&all, Some(client)));
            assert_eq!(first(&backends.plan(&all, Some(client))), before);
            *spread.entry(before).or_insert(0) += 1;
            let after = first(&backends.plan(&fewer, Some(client)));
            if before != 3 {
                assert_eq!(after, before, "client {client} moved without cause");
            }
        }
        assert!(spread.values().all(|n| *n > 20), "{spread:?}");
    }

    #[test]
    fn hashes_are_pinned_so_every_edge_build_ranks_alike() {
        // FNV-1a's published test vectors (before the finalizer) ...
        let raw = |bytes: &[u8]| {
            let mut h = Fnv1a::new();
            h.write(bytes);
            h.0
        };
        assert_eq!(raw(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(raw(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(raw(b"foobar"), 0x8594_4171_f739_67e8);
        // ... and the values this edge computes, fixed for good.
        assert_eq!(key_of(b"session-42"), 0x3e6c_fda4_2145_251e);
        let addr = SocketAddr::from(([10, 0, 0, 1], 8080));
        assert_eq!(score(7, addr), 0xee09_f117_ddd8_2ce5);
        let v6: SocketAddr = "[fd00::1]:8080".parse().unwrap();
        assert_eq!(score(7, v6), 0x618c_9b29_5be0_1fbf);
    }

    #[test]
    fn a_refusing_instance_goes_last_until_its_back_off_ends() {
        let backends = Backends::new();
        let t = target(Balance::RoundRobin, &[1, 2]);
        let plan = backends.plan(&t, None);
        let bad = plan.iter().find(|c| c.addr.port() == 1).unwrap();
        backends.failed(bad, true);
        for _ in 0..4 {
            let plan = backends.plan(&t, None);
            assert_eq!(first(&plan), 2);
            assert_eq!(plan.len(), 2, "still a last resort");
        }
        // 5xx answers eject only after three in a row.
        let good = &backends.plan(&t, None)[0];
        backends.failed(good, false);
        backends.failed(good, false);
        assert_eq!(first(&backends.plan(&t, None)), 2);
        backends.failed(good, false);
        let plan = backends.plan(&t, None);
        assert!(
            plan.iter()
                .all(|c| c.state.ejected_until.load(Ordering::Relaxed) > 0)
        );
    }
}
