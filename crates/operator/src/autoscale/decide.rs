//! What the autoscaler wants, from the load of one process: a pure function of the
//! bounds, the current count, the measured load and what it recommended before.
//!
//! Each metric recommends `ceil(load / target)` instances per region (within 10 % of the
//! current count it keeps the count, so noise does not flap it); the highest wins,
//! within `[min, max]`. Up is taken at once; down only once every recommendation over the
//! whole `scale_down_window` asked for fewer, and then to the highest of them. A metric
//! the manifest names but nobody reported holds the count and restarts the window:
//! missing data never scales anything down.
//!
//! A process with `min = 0` never goes to zero by the load's asks (they keep at least
//! one instance): it stops when no request reached it (and no instance said it is busy)
//! for its whole `idle_timeout`, and wakes when an edge holds a request for it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use zeitwork_core::manifest::Autoscale;
use zeitwork_store::load::ProcessLoad;

/// Within this fraction of the current count, a metric keeps the count.
const TOLERANCE: f64 = 0.1;

/// Instances per region one round of measurements asks for, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recommendation {
    pub instances: u32,
    pub reason: String,
}

/// What the autoscaler does with a process this round.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Scale to this many per region, for this reason.
    Scale(u32, String),
}

/// Recent recommendations of one process, for the scale-down window.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// Since when recommendations arrived without a gap.
    since: Option<Instant>,
    recent: VecDeque<(Instant, u32)>,
    /// The last time the process was seen in use (or without reports, which counts as
    /// in use): the idle timeout runs from here.
    active: Option<Instant>,
    /// Why the last decision was refused (logged once, not every round).
    refused: Option<String>,
}

impl History {
    /// Records a refusal; whether it differs from the last one (worth saying).
    pub(crate) fn refused(&mut self, why: &str) -> bool {
        let new = self.refused.as_deref() != Some(why);
        self.refused = Some(why.to_owned());
        new
    }

    fn clear(&mut self) {
        self.since = None;
        self.recent.clear();
    }

    fn push(&mut self, now: Instant, instances: u32, window: Duration) {
        self.since.get_or_insert(now);
        self.recent.push_back((now, instances));
        while let Some((at, _)) = self.recent.front()
            && now.duration_since(*at) > window
            && self.recent.len() > 1
        {
            self.recent.pop_front();
        }
    }

    /// The highest recommendation within the window, once recommendations have covered
    /// all of it.
    fn highest(&self, now: Instant, window: Duration) -> Option<u32> {
        let since = self.since?;
        if now.duration_since(since) < window {
            return None;
        }
        self.recent
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= window)
            .map(|(_, n)| *n)
            .max()
    }
}

/// Instances per region for `wanted` instances' worth of load in all, keeping `current`
/// when within the tolerance.
fn count_for(wanted: f64, current: u32) -> u32 {
    if current > 0 && (wanted / f64::from(current) - 1.0).abs() <= TOLERANCE {
        return current;
    }
    wanted.ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// What this round's measurements ask for; `None` when a metric the manifest names has
/// no fresh report (hold).
pub(crate) fn recommend(
    a: &Autoscale,
    current: u32,
    load: &ProcessLoad,
    allotted_millicpus: u32,
) -> Option<Recommendation> {
    let mut asks: Vec<(u32, String)> = Vec::new();
    if let Some(target) = a.target_concurrency {
        let in_flight = load.in_flight?;
        let wanted = in_flight / f64::from(target) / f64::from(load.regions.max(1));
        asks.push((
            count_for(wanted, current),
            format!(
                "{in_flight:.1} requests in flight over {} instance(s), target {target} each",
                load.instances
            ),
        ));
    }
    if let Some(target) = a.target_cpu {
        // All the work measured, over what one instance does at the target.
        let used = load.cpu_millicpus?;
        let allotted = f64::from(allotted_millicpus.max(1));
        let wanted = used / (allotted * f64::from(target) / 100.0) / f64::from(load.regions.max(1));
        let percent = used / allotted * 100.0;
        asks.push((
            count_for(wanted, current),
            format!("CPU at {percent:.0}% of one instance's cpus, target {target}% each"),
        ));
    }
    let (instances, reason) = asks.into_iter().max_by_key(|(n, _)| *n)?;
    Some(Recommendation {
        // Zero only by idleness ([`idle`]), never by a low ask.
        instances: a.clamp(instances).max(1),
        reason,
    })
}

/// For a process that scales to zero: stop it when idle (no request, none in flight, no
/// instance saying it is busy) for the whole timeout.
pub(crate) fn idle(
    a: &Autoscale,
    current: u32,
    load: &ProcessLoad,
    history: &mut History,
    now: Instant,
) -> Option<Decision> {
    if !a.scales_to_zero() || current == 0 {
        history.active = None;
        return None;
    }
    let used = load.in_flight.is_none_or(|f| f > 0.0) || load.requests > 0 || load.busy;
    let since = *history.active.get_or_insert(now);
    if used {
        history.active = Some(now);
        return None;
    }
    let timeout = a.idle_timeout().as_duration();
    (now.duration_since(since) >= timeout).then(|| {
        Decision::Scale(
            0,
            format!("no requests for {}s: scaled to zero", timeout.as_secs()),
        )
    })
}

/// Whether to change `current` now, given this round's recommendation.
pub(crate) fn decide(
    a: &Autoscale,
    current: u32,
    recommendation: Option<Recommendation>,
    history: &mut History,
    now: Instant,
) -> Option<Decision> {
    let window = a.scale_down_window.as_duration();
    if current < a.min || current > a.max {
        let to = a.clamp(current);
        return Some(Decision::Scale(
            to,
            format!("the bounds are {}–{} instances", a.min, a.max),
        ));
    }
    let Some(r) = recommendation else {
        history.clear();
        return None;
    };
    history.push(now, r.instances, window);
    if r.instances > current {
        return Some(Decision::Scale(r.instances, r.reason));
    }
    let highest = history.highest(now, window)?;
    (highest < current).then(|| {
        Decision::Scale(
            highest,
            format!(
                "for {}s the load asked for at most {highest}: {}",
                window.as_secs(),
                r.reason
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeitwork_core::manifest::Seconds;

    fn bounds(min: u32, max: u32, window_secs: u64) -> Autoscale {
        Autoscale {
            min,
            max,
            target_concurrency: Some(10),
            target_cpu: None,
            scale_down_window: Seconds::from_secs(window_secs).unwrap(),
            idle_timeout: None,
        }
    }

    fn load(instances: u32, in_flight: Option<f64>) -> ProcessLoad {
        ProcessLoad {
            instances,
            regions: 1,
            in_flight,
            requests: 0,
            cpu_millicpus: None,
            busy: false,
        }
    }

    #[test]
    fn a_process_that_scales_to_zero_stops_only_when_idle_for_the_timeout() {
        let a = Autoscale {
            idle_timeout: Some(Seconds::from_secs(60).unwrap()),
            ..bounds(0, 3, 0)
        };
        // Low asks never reach zero.
        assert_eq!(
            recommend(&a, 1, &load(1, Some(0.0)), 500)
                .unwrap()
                .instances,
            1
        );
        let mut h = History::default();
        let t0 = Instant::now();
        let quiet = load(1, Some(0.0));
        assert_eq!(idle(&a, 1, &quiet, &mut h, t0), None);
        // A short request the samples missed still counts.
        let one = ProcessLoad {
            requests: 1,
            ..quiet.clone()
        };
        assert_eq!(
            idle(&a, 1, &one, &mut h, t0 + Duration::from_secs(30)),
            None
        );
        assert_eq!(
            idle(&a, 1, &quiet, &mut h, t0 + Duration::from_secs(80)),
            None
        );
        // Busy, or no reports: not idle.
        let busy = ProcessLoad {
            busy: true,
            ..quiet.clone()
        };
        assert_eq!(
            idle(&a, 1, &busy, &mut h, t0 + Duration::from_secs(85)),
            None
        );
        assert_eq!(
            idle(&a, 1, &load(1, None), &mut h, t0 + Duration::from_secs(140)),
            None
        );
        let d = idle(&a, 1, &quiet, &mut h, t0 + Duration::from_secs(201));
        assert!(
            matches!(d, Some(Decision::Scale(0, ref why)) if why.contains("no requests for 60s")),
            "{d:?}"
        );
        // Processes that keep an instance are never idle-stopped.
        let mut h = History::default();
        assert_eq!(idle(&bounds(1, 3, 0), 1, &quiet, &mut h, t0), None);
        assert_eq!(
            idle(
                &bounds(1, 3, 0),
                1,
                &quiet,
                &mut h,
                t0 + Duration::from_secs(999)
            ),
            None
        );
    }

    #[test]
    fn a_burst_scales_up_at_once_within_max() {
        let a = bounds(1, 5, 300);
        let r = recommend(&a, 1, &load(1, Some(27.0)), 500).unwrap();
        assert_eq!(r.instances, 3);
        assert!(r.reason.contains("27.0 requests in flight"), "{}", r.reason);
        let mut h = History::default();
        let d = decide(&a, 1, Some(r), &mut h, Instant::now());
        assert!(matches!(d, Some(Decision::Scale(3, _))), "{d:?}");
        let r = recommend(&a, 1, &load(1, Some(500.0)), 500).unwrap();
        assert_eq!(r.instances, 5);
    }

    #[test]
    fn noise_within_the_tolerance_keeps_the_count() {
        let a = bounds(1, 10, 0);
        assert_eq!(
            recommend(&a, 3, &load(3, Some(32.0)), 500)
                .unwrap()
                .instances,
            3
        );
        assert_eq!(
            recommend(&a, 3, &load(3, Some(28.0)), 500)
                .unwrap()
                .instances,
            3
        );
        assert_eq!(
            recommend(&a, 3, &load(3, Some(34.0)), 500)
                .unwrap()
                .instances,
            4
        );
    }

    #[test]
    fn scaling_down_waits_for_a_whole_window_of_low_load() {
        let a = bounds(1, 5, 60);
        let mut h = History::default();
        let t0 = Instant::now();
        let low = || recommend(&a, 3, &load(3, Some(0.0)), 500);
        assert_eq!(decide(&a, 3, low(), &mut h, t0), None);
        assert_eq!(
            decide(&a, 3, low(), &mut h, t0 + Duration::from_secs(30)),
            None
        );
        // A spike inside the window holds the count up until it leaves the window.
        let spike = recommend(&a, 3, &load(3, Some(25.0)), 500);
        assert_eq!(spike.as_ref().unwrap().instances, 3);
        assert_eq!(
            decide(&a, 3, spike, &mut h, t0 + Duration::from_secs(40)),
            None
        );
        assert_eq!(
            decide(&a, 3, low(), &mut h, t0 + Duration::from_secs(90)),
            None
        );
        let d = decide(&a, 3, low(), &mut h, t0 + Duration::from_secs(101));
        assert!(
            matches!(d, Some(Decision::Scale(1, ref why)) if why.contains("at most 1")),
            "{d:?}"
        );
    }

    #[test]
    fn missing_metrics_hold_the_count_and_restart_the_window() {
        let a = bounds(1, 5, 60);
        let mut h = History::default();
        let t0 = Instant::now();
        assert_eq!(recommend(&a, 3, &load(3, None), 500), None);
        let low = || recommend(&a, 3, &load(3, Some(0.0)), 500);
        assert_eq!(decide(&a, 3, low(), &mut h, t0), None);
        assert_eq!(
            decide(&a, 3, None, &mut h, t0 + Duration::from_secs(50)),
            None
        );
        // The gap restarted the window: 61 s after t0 is not yet a whole window of data.
        assert_eq!(
            decide(&a, 3, low(), &mut h, t0 + Duration::from_secs(61)),
            None
        );
        let d = decide(&a, 3, low(), &mut h, t0 + Duration::from_secs(122));
        assert!(matches!(d, Some(Decision::Scale(1, _))), "{d:?}");
        // A target the manifest names without a report holds, even if another has data.
        let both = Autoscale {
            target_cpu: Some(50),
            ..a.clone()
        };
        assert_eq!(recommend(&both, 3, &load(3, Some(0.0)), 500), None);
    }

    #[test]
    fn cpu_scales_by_the_ratio_to_its_target() {
        let a = Autoscale {
            target_concurrency: None,
            target_cpu: Some(50),
            ..bounds(1, 8, 60)
        };
        let busy = ProcessLoad {
            cpu_millicpus: Some(900.0),
            ..load(2, None)
        };
        // Two instances at 450 of their 500 millicpus (900 in all); at 50 % one does
        // 250: 3.6 → 4.
        let r = recommend(&a, 2, &busy, 500).unwrap();
        assert_eq!(r.instances, 4);
        assert!(r.reason.contains("180%"), "{}", r.reason);
    }

    #[test]
    fn counts_outside_the_bounds_are_brought_in() {
        let a = bounds(2, 4, 60);
        let mut h = History::default();
        let d = decide(&a, 6, None, &mut h, Instant::now());
        assert!(matches!(d, Some(Decision::Scale(4, _))), "{d:?}");
    }
}
