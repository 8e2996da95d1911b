//! Requests to a process scaled to zero (docs/architecture.md, "Autoscaling"): the edge
//! asks the autoscaler for an instance (one ask per process per [`ASK_EVERY`], however
//! many requests wait: a storm of requests boots one instance) and holds each request
//! until the routing table has a healthy instance for its host, or its timeout passes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uuid::Uuid;
use zeitwork_store::Store;

use crate::table::{RoutingTable, Target};

/// How often a process's wake is asked for while requests wait (the autoscaler acts on
/// the first; the others cover a lost one).
const ASK_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Wakes {
    store: Store,
    asked: Mutex<HashMap<(Uuid, String), Instant>>,
}

impl Wakes {
    pub(crate) fn new(store: Store) -> Wakes {
        Wakes {
            store,
            asked: Mutex::new(HashMap::new()),
        }
    }

    /// Asks for an instance of the target's sleeping deployment, unless asked recently.
    fn ask(&self, deployment: Uuid, process: &str) {
        {
            let mut asked = self.asked.lock().expect("not poisoned");
            let now = Instant::now();
            asked.retain(|_, at| now.duration_since(*at) < ASK_EVERY);
            if asked.contains_key(&(deployment, process.to_owned())) {
                return;
            }
            asked.insert((deployment, process.to_owned()), now);
        }
        tracing::info!(%deployment, %process, "a request wakes a process scaled to zero");
        let (store, process) = (self.store.clone(), process.to_owned());
        tokio::spawn(async move {
            if let Err(e) =
                zeitwork_store::load::request_wake(store.pool(), deployment, &process).await
            {
                tracing::warn!(error = %e, %deployment, "cannot ask for a wake; asking again");
            }
        });
    }

    /// Holds until `host` has a healthy instance in the table (its target then), or
    /// `within` passes (`None`).
    pub(crate) async fn wait(
        &self,
        table: &arc_swap::ArcSwap<RoutingTable>,
        swapped: &watch::Sender<i64>,
        host: &str,
        target: &Target,
        within: Duration,
    ) -> Option<Arc<Target>> {
        let deployment = target.wakes()?;
        let mut swaps = swapped.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(now) = table.load().lookup(host)
                && !now.backends().is_empty()
            {
                return Some(now.clone());
            }
            self.ask(deployment, target.process());
            tokio::select! {
                _ = swaps.changed() => {}
                () = tokio::time::sleep(ASK_EVERY) => {}
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}
