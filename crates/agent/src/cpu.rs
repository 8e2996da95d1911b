//! CPU use per instance for the autoscaler: each VM's cgroup (named by its instance id)
//! is read at every heartbeat, and the use since the previous one is reported as a mean
//! in thousandths of a core, with whether the app said it is busy (`logs::BUSY_FILE` in
//! the instance's directory).

use std::collections::HashMap;
use std::time::Instant;

use uuid::Uuid;
use zeitwork_core::node::InstanceCpu;
use zeitwork_vmm::Cgroup;

/// What each VM's cgroup said at the previous heartbeat.
#[derive(Default)]
pub(crate) struct CpuMeter {
    last: HashMap<Uuid, (u64, Instant)>,
}

impl CpuMeter {
    /// Every instance's mean use since it was last measured (nothing for one seen for the
    /// first time).
    pub(crate) fn measure(&mut self, busy: impl Fn(Uuid) -> bool) -> Vec<InstanceCpu> {
        let now = Instant::now();
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        for (name, cgroup) in Cgroup::ours() {
            let (Ok(id), Some(usec)) = (name.parse::<Uuid>(), cgroup.cpu_usage_usec()) else {
                continue;
            };
            if let Some((before, at)) = self.last.get(&id) {
                let wall = now.duration_since(*at).as_micros() as f64;
                if wall > 0.0 && usec >= *before {
                    out.push(InstanceCpu {
                        instance_id: id,
                        millicpus: millicpus(usec - before, wall),
                        busy: busy(id),
                    });
                }
            }
            seen.insert(id, (usec, now));
        }
        self.last = seen;
        out
    }
}

/// Thousandths of a core for `used` microseconds of CPU over `wall` microseconds.
fn millicpus(used: u64, wall: f64) -> u32 {
    (used as f64 / wall * 1000.0).round().clamp(
        0.0,
        f64::from(zeitwork_core::node::Heartbeat::MAX_MILLICPUS),
    ) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_is_a_mean_in_thousandths_of_a_core() {
        assert_eq!(millicpus(2_500_000, 5_000_000.0), 500);
        assert_eq!(millicpus(10_000_000, 5_000_000.0), 2000);
        assert_eq!(millicpus(0, 5_000_000.0), 0);
    }
}
