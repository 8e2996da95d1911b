//! Reports what this edge sees of each instance's load to Postgres for the autoscaler
//! (docs/architecture.md, "Autoscaling"): requests in flight per instance, sampled every
//! [`SAMPLE`] and reported as their mean every [`REPORT`], with the requests sent since
//! the last report. A failed report is dropped (the next one replaces it); the autoscaler
//! holds counts while reports are missing.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use zeitwork_store::Store;
use zeitwork_store::load::EdgeLoad;

use crate::proxy::Shared;

/// How often requests in flight are counted.
const SAMPLE: Duration = Duration::from_millis(100);
/// How often their means are reported.
const REPORT: Duration = Duration::from_secs(1);

pub(crate) struct Reporter {
    pub store: Store,
    /// This edge in the reports: unique per process.
    pub name: String,
    pub shared: Arc<Shared>,
}

impl Reporter {
    pub(crate) async fn run(self) {
        let mut sample = tokio::time::interval(SAMPLE);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let per_report = (REPORT.as_millis() / SAMPLE.as_millis()) as u32;
        let mut sums: HashMap<SocketAddr, u64> = HashMap::new();
        // Requests sent ever, per instance, at the previous report.
        let mut reported: HashMap<SocketAddr, u64> = HashMap::new();
        let mut samples = 0u32;
        let mut failing = false;
        loop {
            sample.tick().await;
            let now = self.shared.load();
            for (addr, in_flight, _) in &now {
                *sums.entry(*addr).or_default() += u64::from(*in_flight);
            }
            samples += 1;
            if samples < per_report {
                continue;
            }
            let mut load: BTreeMap<String, EdgeLoad> = BTreeMap::new();
            for (addr, _, requests) in now {
                let before = reported.insert(addr, requests).unwrap_or(0);
                let sum = sums.remove(&addr).unwrap_or(0);
                let entry = EdgeLoad {
                    in_flight: sum as f64 / f64::from(samples),
                    requests: requests.saturating_sub(before),
                };
                load.insert(addr.to_string(), entry);
            }
            sums.clear();
            reported.retain(|addr, _| load.contains_key(&addr.to_string()));
            samples = 0;
            match zeitwork_store::load::report_edge(self.store.pool(), &self.name, &load).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("load reports reach Postgres again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot report load; the autoscaler holds counts");
                }
                Err(_) => {}
            }
        }
    }
}
