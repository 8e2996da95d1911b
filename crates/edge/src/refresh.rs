//! Keeps the routing table current: rebuilt on every `zw.v1.routes` notification
//! (debounced, so a burst of events costs one rebuild) and on a randomized timer, the
//! safety net for lost notifications. A failed rebuild keeps the last table: the edge
//! serves what it knows while Postgres is away, and says so once rather than every time.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::{FutureExt, Stream, StreamExt};
use rand::Rng;
use zeitwork_bus::{NatsBus, Notification, PREFIX};
use zeitwork_store::Store;

use crate::proxy::Shared;
use crate::table::{RoutingTable, load};

/// How long a notification waits for the rest of its burst (one deploy writes several
/// events) before the rebuild starts.
const DEBOUNCE: Duration = Duration::from_millis(5);

pub(crate) type Notes = Pin<Box<dyn Stream<Item = Notification> + Send>>;

/// Notifications about routes; without a bus (or when subscribing fails) none, and the
/// timer alone keeps the table current.
pub(crate) async fn subscribe(bus: Option<&NatsBus>) -> Notes {
    let Some(bus) = bus else {
        return Box::pin(futures::stream::pending());
    };
    match bus.subscribe(&format!("{PREFIX}.routes")).await {
        Ok(notes) => Box::pin(notes),
        Err(e) => {
            tracing::warn!(error = %e, "the routing table follows Postgres by polling only");
            Box::pin(futures::stream::pending())
        }
    }
}

pub(crate) struct Refresher {
    pub store: Store,
    pub base_domain: String,
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// Told of every new table, to forget what it kept about instances and routes gone.
    pub shared: Arc<Shared>,
    pub resync_every: Duration,
    /// Whether the last rebuild failed (so the next failure is not logged again).
    pub failing: bool,
}

impl Refresher {
    pub(crate) async fn run(mut self, mut notes: Notes) {
        loop {
            let resync = tokio::time::sleep(jittered(self.resync_every));
            tokio::select! {
                note = notes.next() => {
                    let Some(note) = note else {
                        tracing::warn!("the NATS subscription ended; the routing table follows Postgres by polling only");
                        notes = Box::pin(futures::stream::pending());
                        continue;
                    };
                    tokio::time::sleep(DEBOUNCE).await;
                    let mut newest = note.seq;
                    while let Some(Some(note)) = notes.next().now_or_never() {
                        newest = newest.max(note.seq);
                    }
                    if newest <= self.table.load().seq() {
                        continue; // a resync already read past it
                    }
                }
                () = resync => {}
            }
            self.refresh().await;
        }
    }

    async fn refresh(&mut self) {
        match load(&self.store, &self.base_domain).await {
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
                self.shared.retain(&table);
                self.table.store(Arc::new(table));
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

/// ±25 %, so edges started together do not all ask Postgres at the same moment.
fn jittered(every: Duration) -> Duration {
    every.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resync_periods_vary_within_a_quarter() {
        let every = Duration::from_secs(4);
        let periods: Vec<Duration> = (0..100).map(|_| jittered(every)).collect();
        assert!(
            periods
                .iter()
                .all(|p| *p >= every.mul_f64(0.75) && *p < every.mul_f64(1.25))
        );
        assert!(periods.iter().any(|p| *p != periods[0]));
    }
}
