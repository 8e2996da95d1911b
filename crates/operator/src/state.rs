use std::sync::Arc;

use tokio::sync::watch;
use zeitwork_store::Store;

use crate::crypto::SecretBox;

/// Operator settings that shape answers (not how to reach things).
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-deployment URLs are `<app>-<slug>-<org>.<base_domain>`.
    pub base_domain: String,
    /// How far CPU may be oversubscribed when placing instances (memory never is).
    pub cpu_oversubscription: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            base_domain: "zeitwork.localhost".into(),
            cpu_oversubscription: 4.0,
        }
    }
}

/// Shared by every handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub secrets: SecretBox,
    pub config: Arc<Config>,
    /// The highest committed event seq, pushed by Postgres NOTIFY, so event streams
    /// wake on commit instead of polling.
    pub head: watch::Receiver<i64>,
}
