//! What the edge counts, per route (the hostname that claimed the target): requests by
//! status class, latency, upstream failures, and requests that crossed to another region. Handles are registered once per target,
//! so recording a request is a few atomic operations, not a registry lookup.

use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Histogram};

#[derive(Debug)]
pub(crate) struct RouteMetrics {
    /// 1xx … 5xx.
    requests: [Counter; 5],
    duration: Histogram,
    timeouts: Counter,
    unreachable: Counter,
    /// Requests sent to another region's instances, its own having none healthy.
    cross_region: Option<Counter>,
}

/// Why no instance answered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UpstreamError {
    Timeout,
    Unreachable,
}

impl RouteMetrics {
    /// A route's handles; `cross_region`: its instances are another region's.
    pub(crate) fn new(route: &str, cross_region: bool) -> RouteMetrics {
        let route = route.to_owned();
        let requests = ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
            metrics::counter!("zeitwork_edge_requests_total", "route" => route.clone(), "status" => class)
        });
        let error = |kind: &'static str| metrics::counter!("zeitwork_edge_upstream_errors_total", "route" => route.clone(), "kind" => kind);
        RouteMetrics {
            requests,
            duration: metrics::histogram!("zeitwork_edge_request_duration_seconds", "route" => route.clone()),
            timeouts: error("timeout"),
            unreachable: error("unreachable"),
            cross_region: cross_region.then(|| {
                metrics::counter!("zeitwork_edge_cross_region_requests_total", "route" => route.clone())
            }),
        }
    }

    /// The answers the edge gave for hosts it does not route.
    pub(crate) fn unrouted() -> &'static RouteMetrics {
        static UNROUTED: std::sync::OnceLock<RouteMetrics> = std::sync::OnceLock::new();
        UNROUTED.get_or_init(|| RouteMetrics::new("-", false))
    }

    pub(crate) fn request(&self, status: StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.requests[class].increment(1);
        self.duration.record(took);
        if let Some(crossed) = &self.cross_region {
            crossed.increment(1);
        }
    }

    pub(crate) fn upstream_error(&self, error: UpstreamError) {
        match error {
            UpstreamError::Timeout => self.timeouts.increment(1),
            UpstreamError::Unreachable => self.unreachable.increment(1),
        }
    }
}
