//! TLS certificates for the edges (docs/architecture.md).
//!
//! Certificates live in Postgres, their private keys sealed with the platform key
//! ([`SecretBox`], associated data `certificate/<id>`), so every edge serves the same
//! ones and any edge can take over. Each edge holds them in memory as one snapshot
//! ([`Certificates`]): read in full at start, re-read on every `zw.v1.certificates`
//! notification and on a jittered timer, and kept as it is while Postgres is away, so a
//! handshake never waits on the database.
//!
//! Where they come from:
//! - the operator: [`import`] (typically the base domain's wildcard, which then covers
//!   every platform hostname one label under it);
//! - ACME ([`Issuer`]): for verified custom domains, and for the platform's own
//!   hostnames no wildcard covers; renewed `renew_before` expiry. One issuer acts at a
//!   time cluster-wide (a Postgres advisory lock per round), so every edge may run one.
//!
//! ACME challenges are answered by every edge: HTTP-01 through [`Certificates::http01`],
//! TLS-ALPN-01 through the resolver. They are a bookkeeping table, not events (see
//! `migrations/0004_certificates.sql` in zeitwork-store for why).

#![forbid(unsafe_code)]

mod alpn;
mod error;
mod import;
mod issuer;
mod names;
mod pem;
mod record;
mod refresh;
mod resolve;
mod roots;
mod snapshot;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::Utc;
use rustls::server::ResolvesServerCert;
use tokio::task::JoinHandle;
use zeitwork_bus::{Follow, NatsBus};
use zeitwork_crypto::SecretBox;
use zeitwork_store::Store;

pub use alpn::ACME_TLS_ALPN;
pub use error::CertsError;
pub use import::{Imported, import};
pub use issuer::{AcmeConfig, ChallengeKind, Issued, Issuer, LETS_ENCRYPT, Round};
pub use refresh::subject;
pub use roots::roots;

use refresh::Refresher;
use resolve::Resolver;
use snapshot::Snapshot;

/// How the certificate snapshot is kept; [`Config::new`] gives the production values.
#[derive(Debug, Clone)]
pub struct Config {
    /// The platform's base domain (platform hostnames are one label under it).
    pub base_domain: String,
    /// How often certificates and challenges are re-read without a notification (±25 %):
    /// the longest a lost notification leaves the edge behind.
    pub resync_every: Duration,
}

impl Config {
    pub fn new(base_domain: impl Into<String>) -> Config {
        Config {
            base_domain: base_domain.into(),
            resync_every: Duration::from_secs(5),
        }
    }
}

/// The certificates an edge serves. Cheap to clone; the snapshot is kept current until
/// the last clone is dropped.
#[derive(Clone)]
pub struct Certificates {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: Arc<ArcSwap<Snapshot>>,
    resolver: Arc<Resolver>,
    refresher: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Certificates {
    /// [`Certificates::start_with`] with the production [`Config`].
    pub async fn start(
        store: Store,
        bus: Option<NatsBus>,
        secret_box: SecretBox,
        base_domain: String,
    ) -> Result<Certificates, CertsError> {
        Certificates::start_with(store, bus, secret_box, Config::new(base_domain)).await
    }

    /// Reads every certificate, then keeps them current in the background. Fails only
    /// when the first read fails (an edge must not start without its certificates).
    pub async fn start_with(
        store: Store,
        bus: Option<NatsBus>,
        secret_box: SecretBox,
        config: Config,
    ) -> Result<Certificates, CertsError> {
        // Subscribed before the first read, so nothing committed after it goes unheard.
        let every = config.resync_every;
        let follow = Follow::subscribe(bus.as_ref(), &subject(), every, "certificates").await;
        let first = snapshot::load(&store, &secret_box, &Snapshot::default()).await?;
        let base = pem::normalize(&config.base_domain);
        let wildcard = first
            .for_host(&format!("zeitwork-probe.{base}"), Utc::now())
            .is_some();
        tracing::info!(
            seq = first.seq,
            certificates = first.len(),
            base_wildcard = wildcard,
            "certificates read"
        );
        let snapshot = Arc::new(ArcSwap::from_pointee(first));
        let refresher = Refresher {
            store,
            secrets: secret_box,
            snapshot: snapshot.clone(),
            failing: false,
        };
        Ok(Certificates {
            inner: Arc::new(Inner {
                resolver: Arc::new(Resolver {
                    snapshot: snapshot.clone(),
                }),
                snapshot,
                refresher: tokio::spawn(refresher.run(follow)),
            }),
        })
    }

    /// The rustls certificate resolver: build one `ServerConfig` with it and reuse it for
    /// every connection. By SNI: the exact hostname, else a wildcard one label up; no SNI,
    /// no certificate (the handshake fails). A ClientHello offering exactly `acme-tls/1`
    /// gets the TLS-ALPN-01 challenge certificate for its SNI, or nothing; for that the
    /// `ServerConfig` must list [`ACME_TLS_ALPN`] among its ALPN protocols, and the edge
    /// should close such a connection once the handshake is done.
    pub fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        self.inner.resolver.clone()
    }

    /// The key authorization to answer `GET /.well-known/acme-challenge/<token>` with
    /// (as `text/plain`), when an order waits on that token.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.inner.snapshot.load().http01(token).map(str::to_owned)
    }

    /// Whether an unexpired certificate covers `host` (lowercase, no port), so plain HTTP
    /// to it may be redirected to HTTPS.
    pub fn covers(&self, host: &str) -> bool {
        let host = resolve::normalized(host);
        let now = Utc::now();
        self.inner
            .snapshot
            .load()
            .for_host(&host, now)
            .is_some_and(|held| held.not_after > now)
    }

    /// How many certificates are held.
    pub fn len(&self) -> usize {
        self.inner.snapshot.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The head of the event log the current snapshot was read at.
    pub fn seq(&self) -> i64 {
        self.inner.snapshot.load().seq
    }
}
