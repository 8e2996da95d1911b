//! The TCP load balancer behind `zeitwork server lb`: one address for clients in front
//! of several edges, so an edge can fail or be replaced without DNS changes.
//!
//! It does not look inside the streams it relays. Backends are checked by TCP connect
//! and skipped while down; a backend that refuses a connection is skipped for that
//! connection too, so clients only see a failure when no backend at all answers.

mod backend;
mod config;
mod health;
mod pick;
mod relay;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use backend::{BackendStats, LbStats};
pub use config::{Algorithm, HealthConfig, LbConfig, UnknownAlgorithm};

use backend::Backend;

/// Pause after a failed accept (out of file descriptors, …) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why the load balancer could not start or stop as asked.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("the load balancer has no backend: give at least one edge address (HOST:PORT)")]
    NoBackends,
    #[error("backend {0} is listed twice; list each edge once")]
    DuplicateBackend(SocketAddr),
    #[error("invalid health check settings: {0}")]
    Health(&'static str),
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "connections were still open {0:?} after shutdown began and were cut; raise the drain \
         timeout if clients legitimately stay longer"
    )]
    Drain(Duration),
}

/// A load balancer; clones share backends, health and counters.
#[derive(Clone)]
pub struct Lb {
    inner: Arc<Inner>,
}

struct Inner {
    config: LbConfig,
    backends: Vec<Backend>,
    /// Round-robin position (also breaks least-connections ties).
    next: AtomicUsize,
    accepted: AtomicU64,
    active: AtomicU64,
    failed: AtomicU64,
}

impl Lb {
    /// Checks `config`; nothing runs until [`Lb::serve`]. Every backend starts healthy,
    /// and the first checks run as soon as serving starts.
    pub fn new(config: LbConfig) -> Result<Lb, LbError> {
        config.validate()?;
        let backends = config.backends.iter().copied().map(Backend::new).collect();
        Ok(Lb {
            inner: Arc::new(Inner {
                config,
                backends,
                next: AtomicUsize::new(0),
                accepted: AtomicU64::new(0),
                active: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        })
    }

    /// Listens on the configured address and serves until `shutdown` completes.
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), LbError> {
        let addr = self.inner.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| LbError::Bind { addr, source })?;
        tracing::info!(address = %addr, backends = self.inner.backends.len(), "load balancer listening");
        self.serve(listener, shutdown).await
    }

    /// Relays every connection accepted on `listener` to a healthy backend, checking
    /// backends meanwhile. When `shutdown` completes it stops accepting and waits for
    /// open connections, at most the drain timeout, then cuts the rest.
    pub fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), LbError>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            let checks = tokio::spawn(health::run(inner.clone()));
            let result = accept_loop(&inner, listener, shutdown).await;
            checks.abort();
            result
        }
    }

    /// Counters since [`Lb::new`], and each backend's health, for metrics and tests.
    pub fn stats(&self) -> LbStats {
        backend::stats(&self.inner)
    }
}

async fn accept_loop(
    inner: &Arc<Inner>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LbError> {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        connections.spawn(relay::relay(inner.clone(), stream, peer));
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(
        open,
        "load balancer stopped accepting; draining connections"
    );
    let drain_timeout = inner.config.drain_timeout;
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
        return Err(LbError::Drain(drain_timeout));
    }
    Ok(())
}
