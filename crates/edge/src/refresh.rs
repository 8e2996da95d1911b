//! Keeps the routing table current: rebuilt on every `zw.v1.routes` notification
//! (debounced, so a burst of events costs one rebuild) and on a randomized timer, the
//! safety net for lost notifications. A failed rebuild keeps the last table: the edge
//! serves what it knows while Postgres is away, and says so once rather than every time.

use std::sync::Arc;

use arc_swap::ArcSwap;
use zeitwork_bus::{Follow, Wake};
use zeitwork_store::Store;

use crate::proxy::Shared;
use crate::table::{RoutingTable, load};

pub(crate) struct Refresher {
    pub store: Store,
    pub base_domain: String,
    /// The edge's region (see [`crate::Config::region`]).
    pub region: Option<String>,
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// Where new tables are published.
    pub shared: Arc<Shared>,
    /// Whether the last rebuild failed (so the next failure is not logged again).
    pub failing: bool,
}

impl Refresher {
    pub(crate) async fn run(mut self, mut follow: Follow) {
        loop {
            if let Wake::Note(newest) = follow.next().await
                && newest <= self.table.load().seq()
            {
                continue; // a resync already read past it
            }
            self.refresh().await;
        }
    }

    async fn refresh(&mut self) {
        match load(&self.store, &self.base_domain, self.region.as_deref()).await {
            Ok(table) => {
                if self.failing {
                    tracing::info!(seq = table.seq(), "routing table read from Postgres again");
                }
                self.failing = false;
                tracing::debug!(
                    seq = table.seq(),
                    hosts = table.len(),
                    "routing table refreshed"
                );
                self.shared.publish(table);
            }
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::warn!(
                    error = %e, seq = self.table.load().seq(),
                    "cannot refresh the routing table; serving the last one until Postgres answers"
                );
            }
            Err(e) => tracing::debug!(error = %e, "routing table refresh failed again"),
        }
    }
}
