//! Per-hostname retry delays: a hostname whose order failed (DNS not pointing at the
//! edges yet, a firewall, a CA limit) waits before it is tried again, doubling each time,
//! while every other hostname goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest wait between two attempts for one hostname.
const MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub(super) struct Backoff {
    first: Duration,
    /// Hostname → (failures in a row, not before).
    failing: HashMap<String, (u32, Instant)>,
}

impl Backoff {
    pub(super) fn new(first: Duration) -> Backoff {
        Backoff {
            first,
            failing: HashMap::new(),
        }
    }

    /// Whether `host` may be tried at `now`.
    pub(super) fn ready(&self, host: &str, now: Instant) -> bool {
        self.failing.get(host).is_none_or(|(_, at)| *at <= now)
    }

    /// Records a failure; returns how long `host` now waits.
    pub(super) fn failed(&mut self, host: &str, now: Instant) -> Duration {
        let failures = self.failing.get(host).map_or(0, |(n, _)| *n) + 1;
        let wait = self
            .first
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX);
        self.failing.insert(host.to_owned(), (failures, now + wait));
        wait
    }

    pub(super) fn succeeded(&mut self, host: &str) {
        self.failing.remove(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_day_and_end_with_success() {
        let mut b = Backoff::new(Duration::from_secs(300));
        let now = Instant::now();
        assert!(b.ready("a.example.com", now));
        assert_eq!(b.failed("a.example.com", now), Duration::from_secs(300));
        assert_eq!(b.failed("a.example.com", now), Duration::from_secs(600));
        assert!(!b.ready("a.example.com", now + Duration::from_secs(599)));
        assert!(b.ready("a.example.com", now + Duration::from_secs(600)));
        assert!(b.ready("b.example.com", now), "others go on");
        for _ in 0..20 {
            b.failed("a.example.com", now);
        }
        assert_eq!(b.failed("a.example.com", now), MAX);
        b.succeeded("a.example.com");
        assert!(b.ready("a.example.com", now));
    }
}
