//! One backend's health and counters, and the snapshot [`super::Lb::stats`] returns.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{HealthConfig, Inner};

pub(super) struct Backend {
    pub(super) addr: SocketAddr,
    up: AtomicBool,
    streak: Mutex<Streak>,
    pub(super) active: AtomicU64,
    connections: AtomicU64,
    connect_failures: AtomicU64,
    check_failures: AtomicU64,
}

/// Consecutive results of one kind; the other kind resets it.
#[derive(Default)]
struct Streak {
    successes: u32,
    failures: u32,
}

/// Where a result about a backend came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Check,
    Client,
}

impl Backend {
    pub(super) fn new(addr: SocketAddr) -> Backend {
        Backend {
            addr,
            up: AtomicBool::new(true),
            streak: Mutex::new(Streak::default()),
            active: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            check_failures: AtomicU64::new(0),
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(super) fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a check or connect result, and moves the backend up after `rise`
    /// consecutive successful checks or down after `fall` consecutive failures of
    /// either kind. A client connection that succeeds says nothing a check would not,
    /// so only checks bring a backend back.
    pub(super) fn record(&self, ok: bool, source: Source, health: &HealthConfig) {
        match (ok, source) {
            (true, Source::Client) => return,
            (false, Source::Check) => self.check_failures.fetch_add(1, Ordering::Relaxed),
            (false, Source::Client) => self.connect_failures.fetch_add(1, Ordering::Relaxed),
            (true, Source::Check) => 0,
        };
        let mut streak = self
            .streak
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if ok {
            streak.failures = 0;
            streak.successes = streak.successes.saturating_add(1);
            if streak.successes >= health.rise && !self.up.swap(true, Ordering::Relaxed) {
                tracing::info!(backend = %self.addr, "backend is up again");
            }
        } else {
            streak.successes = 0;
            streak.failures = streak.failures.saturating_add(1);
            if streak.failures >= health.fall && self.up.swap(false, Ordering::Relaxed) {
                tracing::warn!(backend = %self.addr, ?source, "backend is down; skipping it");
            }
        }
    }
}

/// Decrements a gauge when the connection it counts ends, however it ends.
pub(super) struct Gauge<'a>(&'a AtomicU64);

impl Gauge<'_> {
    pub(super) fn up(gauge: &AtomicU64) -> Gauge<'_> {
        gauge.fetch_add(1, Ordering::Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The load balancer's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbStats {
    /// Client connections accepted.
    pub accepted: u64,
    /// Client connections open now.
    pub active: u64,
    /// Client connections closed because no backend accepted them.
    pub failed: u64,
    /// In configuration order.
    pub backends: Vec<BackendStats>,
}

/// One backend's counters and health at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    pub addr: SocketAddr,
    /// Whether new connections go to it.
    pub healthy: bool,
    /// Client connections relayed to it.
    pub connections: u64,
    /// Of those, open now.
    pub active: u64,
    /// Client connections it refused or did not accept in time (each retried elsewhere).
    pub connect_failures: u64,
    /// Failed health checks.
    pub check_failures: u64,
}

pub(super) fn stats(inner: &Inner) -> LbStats {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    LbStats {
        accepted: get(&inner.accepted),
        active: get(&inner.active),
        failed: get(&inner.failed),
        backends: inner
            .backends
            .iter()
            .map(|b| BackendStats {
                addr: b.addr,
                healthy: b.is_up(),
                connections: get(&b.connections),
                active: get(&b.active),
                connect_failures: get(&b.connect_failures),
                check_failures: get(&b.check_failures),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_failures_take_a_backend_down_and_rise_checks_bring_it_back() {
        let health = HealthConfig {
            rise: 2,
            fall: 3,
            ..HealthConfig::default()
        };
        let b = Backend::new("127.0.0.1:1".parse().unwrap());
        b.record(false, Source::Check, &health);
        b.record(false, Source::Client, &health);
        b.record(true, Source::Check, &health); // resets the streak
        b.record(false, Source::Check, &health);
        b.record(false, Source::Check, &health);
        assert!(b.is_up());
        b.record(false, Source::Client, &health);
        assert!(!b.is_up());
        b.record(true, Source::Client, &health);
        b.record(true, Source::Check, &health);
        assert!(!b.is_up(), "one good check is not enough, nor a client");
        b.record(true, Source::Check, &health);
        assert!(b.is_up());
        assert_eq!(
            (
                b.check_failures.into_inner(),
                b.connect_failures.into_inner()
            ),
            (3, 2)
        );
    }

    #[test]
    fn gauges_count_down_when_dropped() {
        let gauge = AtomicU64::new(0);
        let (a, b) = (Gauge::up(&gauge), Gauge::up(&gauge));
        assert_eq!(gauge.load(Ordering::Relaxed), 2);
        drop((a, b));
        assert_eq!(gauge.load(Ordering::Relaxed), 0);
    }
}
