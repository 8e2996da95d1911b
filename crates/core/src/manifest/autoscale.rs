//! `[processes.<name>.autoscale]`: bounds and targets from which the platform's
//! autoscaler picks a process's instance count (docs/architecture.md, "Autoscaling").

use serde::{Deserialize, Serialize};

use super::{ManifestError, Seconds};

/// The most instances per region a process may have (as `instances`).
pub const MAX_INSTANCES: u32 = 1000;
/// The highest `target_concurrency` (requests in flight per instance).
pub const MAX_TARGET_CONCURRENCY: u32 = 10_000;
/// How long the load must stay low before a process is scaled down, unless set.
pub const DEFAULT_SCALE_DOWN_WINDOW: Seconds = FIVE_MINUTES;
/// How long a process with `min = 0` may go without a request before it stops, unless set.
pub const DEFAULT_IDLE_TIMEOUT: Seconds = FIVE_MINUTES;
const FIVE_MINUTES: Seconds = match Seconds::from_secs(300) {
    Some(s) => s,
    None => panic!("five minutes is within bounds"),
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    /// The fewest instances per region; 0 stops them all after `idle_timeout` without a
    /// request, and the next request wakes one.
    #[serde(default = "one")]
    pub min: u32,
    /// The most instances per region.
    pub max: u32,
    /// Requests in flight per instance, as the edges measure them, the autoscaler aims at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_concurrency: Option<u32>,
    /// CPU use per instance, in percent of the process's `cpus`, as the agents measure it
    /// from the VMM's cgroup, the autoscaler aims at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu: Option<u32>,
    /// How long the load must have asked for fewer instances before any stop (at most
    /// one hour); scaling up never waits.
    #[serde(default = "default_window")]
    pub scale_down_window: Seconds,
    /// With `min = 0`: how long without a request (and without an instance saying it is
    /// busy) before the last instance stops (5 minutes unless set; 10 s to 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Seconds>,
}

fn one() -> u32 {
    1
}

fn default_window() -> Seconds {
    DEFAULT_SCALE_DOWN_WINDOW
}

impl Autoscale {
    pub(super) fn check(&self, path: &str) -> Result<(), ManifestError> {
        let at = |field: &str, message: String| {
            Err(ManifestError::at(format!("{path}.{field}"), message))
        };
        if let Some(idle) = self.idle_timeout {
            if self.min > 0 {
                return at(
                    "idle_timeout",
                    "applies only with min = 0 (scaling to zero)".into(),
                );
            }
            if idle.as_millis() < 10_000 {
                return at("idle_timeout", "must be at least 10s".into());
            }
        }
        if self.max == 0 {
            return at("max", "must be at least 1".into());
        }
        if self.max > MAX_INSTANCES {
            return at(
                "max",
                format!("at most {MAX_INSTANCES} instances per region"),
            );
        }
        if self.max < self.min {
            return at("max", format!("must be at least min ({})", self.min));
        }
        if self.target_concurrency.is_none() && self.target_cpu.is_none() {
            return at(
                "target_concurrency",
                "set target_concurrency, target_cpu or both: the autoscaler needs a target".into(),
            );
        }
        if let Some(t) = self.target_concurrency
            && !(1..=MAX_TARGET_CONCURRENCY).contains(&t)
        {
            return at(
                "target_concurrency",
                format!("must be between 1 and {MAX_TARGET_CONCURRENCY}"),
            );
        }
        if let Some(t) = self.target_cpu
            && !(1..=100).contains(&t)
        {
            return at("target_cpu", "must be between 1 and 100 (percent)".into());
        }
        if self.scale_down_window > Seconds::HOUR {
            return at("scale_down_window", "must be at most 1h".into());
        }
        Ok(())
    }

    /// How long without a request before a process with `min = 0` stops.
    pub fn idle_timeout(&self) -> Seconds {
        self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT)
    }

    /// Whether the process stops when idle and wakes on a request.
    pub fn scales_to_zero(&self) -> bool {
        self.min == 0
    }

    /// `count` kept within the bounds.
    pub fn clamp(&self, count: u32) -> u32 {
        count.clamp(self.min, self.max)
    }
}
