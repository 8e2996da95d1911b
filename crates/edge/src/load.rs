//! Reports what this edge sees of each instance's load to Postgres for the autoscaler
//! (docs/architecture.md, "Autoscaling"): requests in flight per instance, sampled every
//! [`SAMPLE`] and reported as their mean every [`REPORT`]. A failed report is dropped
//! (the next one replaces it); the autoscaler holds counts while reports are missing.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use zeitwork_store::Store;

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
        let mut samples = 0u32;
        let mut failing = false;
        loop {
            sample.tick().await;
            for (addr, in_flight) in self.shared.in_flight() {
                *sums.entry(addr).or_default() += u64::from(in_flight);
            }
            samples += 1;
            if samples < per_report {
                continue;
            }
            let means: BTreeMap<String, f64> = sums
                .drain()
                .map(|(addr, sum)| (addr.to_string(), sum as f64 / f64::from(samples)))
                .collect();
            samples = 0;
            match zeitwork_store::load::report_in_flight(self.store.pool(), &self.name, &means)
                .await
            {
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
