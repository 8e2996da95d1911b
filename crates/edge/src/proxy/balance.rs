//! Which instance a request goes to, and which to avoid. The routing table says which
//! instances are healthy (the node agents' active checks); this adds what the edge sees
//! itself: requests in flight per instance (least-connections) and failures. An instance
//! that refuses a connection is ejected at once, one that answers 5xx three times in a
//! row too; it is tried again after a back-off that doubles with every ejection (1 s to
//! 30 s). Ejected instances go last, so they are still tried when nothing else is left.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
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

    /// Forgets instances no hostname leads to any more.
    pub(crate) fn retain(&self, table: &RoutingTable) {
        let live = table.backend_set();
        let mut states = self.states.write().expect("not poisoned");
        states.retain(|addr, state| {
            live.contains(addr) || state.in_flight.load(Ordering::Relaxed) > 0
        });
    }
}

fn score(key: u64, addr: SocketAddr) -> u64 {
    // SipHash with fixed keys: every edge computes the same ranking.
    let mut hasher = DefaultHasher::new();
    (key, addr).hash(&mut hasher);
    hasher.finish()
}

/// A client key for consistent hashing from any hashable value.
pub(crate) fn key_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
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
