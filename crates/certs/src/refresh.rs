//! Keeps the snapshot current: re-read on every `zw.v1.certificates` notification
//! (debounced) and on a randomized timer, the safety net for lost notifications and the
//! only source without NATS. A failed read keeps the last snapshot: the edge keeps
//! serving the certificates it has while Postgres is away, and says so once.

use std::sync::Arc;

use arc_swap::ArcSwap;
use zeitwork_bus::{Follow, PREFIX};
use zeitwork_crypto::SecretBox;
use zeitwork_store::Store;

use crate::snapshot::{Snapshot, load};

/// The subject certificate and challenge changes are announced on.
pub fn subject() -> String {
    format!("{PREFIX}.certificates")
}

pub(crate) struct Refresher {
    pub store: Store,
    pub secrets: SecretBox,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub failing: bool,
}

impl Refresher {
    pub(crate) async fn run(mut self, mut follow: Follow) {
        loop {
            // Challenge notes carry no new seq, so every note means a read.
            follow.next().await;
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
