//! The edge: what every end user of every app talks to (docs/architecture.md).
//!
//! Requests are routed by Host through a [`RoutingTable`] that lives in memory as one
//! immutable snapshot. It is read from Postgres in full before the first request is
//! served, rebuilt on every `zw.v1.routes` notification and on a timer, and swapped in
//! atomically, so the data path never waits on Postgres and keeps serving the last
//! snapshot while Postgres or NATS is down.

mod cidr;
mod error;
mod load;
mod metrics;
mod proxy;
mod refresh;
mod table;
mod tls;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use zeitwork_bus::{Follow, NatsBus};
use zeitwork_store::Store;

pub use cidr::{Cidr, CidrError};

/// For the fuzz targets in `crates/edge/fuzz` (built with `--cfg fuzzing`): not an API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Panics when the express lane would send the request head in `data` on in a form
    /// that frames its body differently, or carries hop-by-hop headers.
    pub fn express_head(data: &[u8]) {
        crate::proxy::express_head_check(data);
    }
}
pub use error::EdgeError;
pub use table::{RoutingTable, Target};
pub use tls::{CertSource, Https, Listeners};
pub use workers::{BoundOn, HttpsOn, ListenOn};

use proxy::{Proxy, Shared};
use refresh::Refresher;

/// How the edge behaves; [`Config::new`] gives the production values.
#[derive(Debug, Clone)]
pub struct Config {
    /// Platform hostnames are `<app>-<slug>-<org>.<base_domain>` (one deployment) and
    /// `<app>[-<env>]-<org>.<base_domain>` (an env); the operator prints the same names.
    pub base_domain: String,
    /// How often the table is rebuilt without a notification (±25 %): the longest a
    /// lost notification can leave the edge behind.
    pub resync_every: Duration,
    /// How long shutdown waits for requests in flight before cutting them.
    pub drain_timeout: Duration,
    /// How long an app may take to begin its answer before the client gets a 504.
    pub upstream_timeout: Duration,
    /// The L4 load balancers in front (`zeitwork server lb` with PROXY protocol on).
    /// A connection from one of these must start with a PROXY v2 header, whose source
    /// is then the client (X-Forwarded-For, rate limits, consistent hashing); a `LOCAL`
    /// header (a health check) stands for the peer itself. From anyone else a PROXY
    /// header is never parsed: clients cannot claim another address. Empty by default.
    pub trusted_proxies: Vec<Cidr>,
    /// The region this edge serves: a process's healthy instances in it are preferred,
    /// and another region's are used only when it has none (counted per route as
    /// `zeitwork_edge_cross_region_requests_total`). `None`: every region alike.
    pub region: Option<String>,
}

impl Config {
    pub fn new(base_domain: impl Into<String>) -> Config {
        Config {
            base_domain: base_domain.into(),
            resync_every: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            region: None,
        }
    }
}

/// A running edge: its routing table is kept current until the last handle (this, or a
/// [`Edge::serve`] future) is dropped.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

struct Inner {
    table: Arc<ArcSwap<RoutingTable>>,
    shared: Arc<Shared>,
    drain_timeout: Duration,
    refresher: JoinHandle<()>,
    reporter: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.refresher.abort();
        self.reporter.abort();
    }
}

impl Edge {
    /// [`Edge::start_with`] with the production [`Config`].
    pub async fn start(
        store: Store,
        bus: Option<NatsBus>,
        base_domain: String,
    ) -> Result<Edge, EdgeError> {
        Edge::start_with(store, bus, Config::new(base_domain)).await
    }

    /// Reads the whole routing table, then keeps it current in the background. Without a
    /// bus the table follows Postgres by polling only.
    pub async fn start_with(
        store: Store,
        bus: Option<NatsBus>,
        config: Config,
    ) -> Result<Edge, EdgeError> {
        // Subscribed before the first read, so nothing committed after it goes unheard.
        let subject = format!("{}.routes", zeitwork_bus::PREFIX);
        let every = config.resync_every;
        let follow = Follow::subscribe(bus.as_ref(), &subject, every, "the routing table").await;
        let first = table::load(&store, &config.base_domain, config.region.as_deref())
            .await
            .map_err(EdgeError::Load)?;
        tracing::info!(seq = first.seq(), hosts = first.len(), "routing table read");
        let table = Arc::new(ArcSwap::from_pointee(first));
        let shared = Arc::new(Shared::new(
            table.clone(),
            config.upstream_timeout,
            config.trusted_proxies,
            store.clone(),
        ));
        let reporter = load::Reporter {
            store: store.clone(),
            name: format!("edge-{}", uuid::Uuid::now_v7()),
            shared: shared.clone(),
        };
        let refresher = Refresher {
            store,
            base_domain: config.base_domain,
            region: config.region,
            table: table.clone(),
            shared: shared.clone(),
            failing: false,
        };
        Ok(Edge {
            inner: Arc::new(Inner {
                shared,
                table,
                drain_timeout: config.drain_timeout,
                refresher: tokio::spawn(refresher.run(follow)),
                reporter: tokio::spawn(reporter.run()),
            }),
        })
    }

    /// The current snapshot (for tests and metrics).
    pub fn table(&self) -> Arc<RoutingTable> {
        self.inner.table.load_full()
    }

    /// Serves HTTP (and HTTPS, when given) until `shutdown` completes, then stops
    /// accepting and waits for requests in flight (at most the drain timeout).
    pub fn serve(
        &self,
        listeners: impl Into<Listeners>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), EdgeError>> + Send + 'static {
        let inner = self.inner.clone();
        let listeners = listeners.into();
        async move {
            let proxy = Arc::new(Proxy::new(inner.shared.clone()));
            proxy::serve(proxy, listeners, shutdown, inner.drain_timeout).await
        }
    }
}
