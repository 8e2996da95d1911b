//! Keeps the snapshot current: re-read on every `zw.v1.certificates` notification
//! (debounced) and on a randomized timer, the safety net for lost notifications and the
//! only source without NATS. A failed read keeps the last snapshot: the edge keeps
//! serving the certificates it has while Postgres is away, and says so once.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::{FutureExt, Stream, StreamExt};
use rand::Rng;
use zeitwork_bus::{NatsBus, Notification, PREFIX};
use zeitwork_crypto::SecretBox;
use zeitwork_store::Store;

use crate::snapshot::{Snapshot, load};

/// How long a notification waits for the rest of its burst before the read starts.
const DEBOUNCE: Duration = Duration::from_millis(5);

/// The subject certificate and challenge changes are announced on.
pub fn subject() -> String {
    format!("{PREFIX}.certificates")
}

pub(crate) type Notes = Pin<Box<dyn Stream<Item = Notification> + Send>>;

pub(crate) async fn subscribe(bus: Option<&NatsBus>) -> Notes {
    let Some(bus) = bus else {
        return Box::pin(futures::stream::pending());
    };
    match bus.subscribe(&subject()).await {
        Ok(notes) => Box::pin(notes),
        Err(e) => {
            tracing::warn!(error = %e, "certificates follow Postgres by polling only");
            Box::pin(futures::stream::pending())
        }
    }
}

pub(crate) struct Refresher {
    pub store: Store,
    pub secrets: SecretBox,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub resync_every: Duration,
    pub failing: bool,
}

impl Refresher {
    pub(crate) async fn run(mut self, mut notes: Notes) {
        loop {
            let resync = tokio::time::sleep(jittered(self.resync_every));
            tokio::select! {
                note = notes.next() => {
                    if note.is_none() {
                        tracing::warn!("the NATS subscription ended; certificates follow Postgres by polling only");
                        notes = Box::pin(futures::stream::pending());
                        continue;
                    }
                    // Challenge notes carry no new seq, so every note means a read.
                    tokio::time::sleep(DEBOUNCE).await;
                    while let Some(Some(_)) = notes.next().now_or_never() {}
                }
                () = resync => {}
            }
            self.refresh().await;
        }
    }

    async fn refresh(&mut self) {
        let previous = self.snapshot.load_full();
        match load(&self.store, &self.secrets, &previous).await {
            Ok(snapshot) => {
                if self.failing {
                    tracing::info!(seq = snapshot.seq, "certificates read from Postgres again");
                }
                self.failing = false;
                tracing::debug!(
                    seq = snapshot.seq,
                    certificates = snapshot.len(),
                    "certificates refreshed"
                );
                self.snapshot.store(Arc::new(snapshot));
            }
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::warn!(
                    error = %e, certificates = previous.len(),
                    "cannot refresh certificates; serving the last ones until Postgres answers"
                );
            }
            Err(e) => tracing::debug!(error = %e, "certificate refresh failed again"),
        }
    }
}

/// ±25 %, so edges started together do not all ask Postgres at the same moment.
pub(crate) fn jittered(every: Duration) -> Duration {
    every.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_vary_within_a_quarter() {
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
