//! Observed state travels to the operator through here. Only the latest report of each
//! instance matters, so while the operator is unreachable reports coalesce instead of
//! queueing, and supervisors never wait on the network.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;
use zeitwork_core::node::{InstanceReport, ObservedState};

use crate::control::ControlPlane;

/// Pause before sending again after the operator failed to take a report.
const RETRY: Duration = Duration::from_secs(1);

/// A handle supervisors report through; cheap to clone.
#[derive(Clone, Default)]
pub struct Reporter {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<BTreeMap<Uuid, InstanceReport>>,
    wake: Notify,
}

impl Reporter {
    /// Records the instance's newest state; `address` is where the app answers.
    pub fn send(
        &self,
        instance: Uuid,
        state: ObservedState,
        reason: Option<String>,
        address: Option<SocketAddr>,
        restarts: u32,
    ) {
        tracing::info!(%instance, state = state.as_str(), reason = reason.as_deref().unwrap_or(""), "instance");
        let report = InstanceReport {
            state,
            reason,
            address: address.map(|a| a.to_string()),
            restarts,
        };
        self.inner
            .pending
            .lock()
            .expect("reporter lock")
            .insert(instance, report);
        self.inner.wake.notify_one();
    }

    /// Sends reports until the process ends; a report replaced while its predecessor
    /// was in flight is sent again.
    pub async fn run(self, control: Arc<impl ControlPlane>) {
        loop {
            let batch: Vec<(Uuid, InstanceReport)> = self
                .inner
                .pending
                .lock()
                .expect("reporter lock")
                .iter()
                .map(|(id, r)| (*id, r.clone()))
                .collect();
            if batch.is_empty() {
                self.inner.wake.notified().await;
                continue;
            }
            let mut failed = false;
            for (id, report) in batch {
                match control.report(id, &report).await {
                    Err(e) if !e.is_permanent() => {
                        tracing::warn!(instance = %id, error = %e, "reporting instance state; will retry");
                        failed = true;
                        break;
                    }
                    Err(e) => {
                        // The operator no longer knows the instance, or never will accept it.
                        tracing::warn!(instance = %id, error = %e, "instance report refused; dropped");
                    }
                    Ok(()) => {}
                }
                let mut pending = self.inner.pending.lock().expect("reporter lock");
                if pending.get(&id) == Some(&report) {
                    pending.remove(&id);
                }
            }
            if failed {
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
