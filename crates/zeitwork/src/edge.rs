//! The edge as this binary runs it, alike in `zeitwork server edge` and `zeitwork up`:
//! the proxy (zeitwork-edge) on HTTP and HTTPS, certificates from Postgres
//! (zeitwork-certs) picked by SNI, and the ACME issuer unless it is off. The two
//! libraries do not know each other; they meet here.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rustls::server::ResolvesServerCert;
use zeitwork_bus::NatsBus;
use zeitwork_certs::{AcmeConfig, Certificates, ChallengeKind, Issuer};
use zeitwork_crypto::SecretBox;
use zeitwork_edge::{BoundOn, CertSource, Cidr, Edge, HttpsOn, ListenOn};
use zeitwork_store::Store;

pub mod server;

pub use server::EdgeArgs;

/// The certificate store as the edge's [`CertSource`].
pub struct StoredCerts(pub Certificates);

impl CertSource for StoredCerts {
    fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        self.0.resolver()
    }

    fn http01(&self, token: &str) -> Option<String> {
        self.0.http01(token)
    }

    fn covers(&self, host: &str) -> bool {
        self.0.covers(host)
    }
}

/// How certificates are ordered.
#[derive(Args, Debug, Clone)]
pub struct AcmeArgs {
    /// The ACME directory certificates are ordered from (`server edge`: Let's Encrypt
    /// unless --no-acme; `up`: no ordering unless given).
    #[arg(long, env = "ZEITWORK_ACME_DIRECTORY", value_name = "URL")]
    pub acme_directory: Option<String>,
    /// Extra PEM roots to trust for the ACME directory's HTTPS (a private CA).
    #[arg(long, env = "ZEITWORK_ACME_CA_BUNDLE", value_name = "PEM")]
    pub acme_ca_bundle: Option<PathBuf>,
    /// Where the CA sends expiry and policy mail.
    #[arg(long, env = "ZEITWORK_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// http-01 (port 80 of the edges must be reachable from the CA) or tls-alpn-01 (443).
    #[arg(long, env = "ZEITWORK_ACME_CHALLENGE", default_value = "http-01")]
    pub acme_challenge: ChallengeKind,
}

impl AcmeArgs {
    /// The issuer's settings for `directory_url`.
    pub fn config(&self, directory_url: String, base_domain: &str) -> AcmeConfig {
        AcmeConfig {
            directory_url,
            ca_bundle: self.acme_ca_bundle.clone(),
            contact_email: self.acme_email.clone(),
            challenge: self.acme_challenge,
            ..AcmeConfig::new(base_domain)
        }
    }
}

/// What an edge starts with.
pub struct Setup {
    pub store: Store,
    pub bus: Option<NatsBus>,
    /// The certificates key (never the secrets key: see `settings::Key`).
    pub certificate_key: SecretBox,
    pub base_domain: String,
    pub http_listen: String,
    pub https_listen: String,
    /// The HTTPS port in HTTP→HTTPS redirects [default: the HTTPS listener's].
    pub https_public_port: Option<u16>,
    /// Orders and renews certificates when set.
    pub acme: Option<AcmeConfig>,
    /// Worker threads (one runtime each); 0 = one per CPU.
    pub workers: usize,
    /// L4 load balancers in front that send PROXY v2 headers.
    pub trusted_proxies: Vec<Cidr>,
    /// Where the ports of `tcp` routes are opened [default: the HTTP listener's IP].
    pub tcp_listen: Option<IpAddr>,
    /// The region whose instances it prefers (see `zeitwork_edge::Config::region`).
    pub region: Option<String>,
}

/// An edge with its routing table and certificates read and its ports bound, not yet
/// serving.
pub struct Started {
    edge: Edge,
    certs: Certificates,
    bound: BoundOn,
    workers: usize,
    issuer: Option<Issuer>,
}

/// Reads the routing table and the certificates and binds both ports.
pub async fn start(setup: Setup) -> anyhow::Result<Started> {
    let Setup {
        store,
        bus,
        certificate_key,
        base_domain,
        ..
    } = setup;
    let issuer = match setup.acme {
        Some(config) => Some(
            Issuer::new(store.clone(), bus.clone(), certificate_key.clone(), config)
                .context("setting up ACME")?,
        ),
        None => None,
    };
    let certs = Certificates::start(
        store.clone(),
        bus.clone(),
        certificate_key,
        base_domain.clone(),
    )
    .await
    .context("reading certificates")?;
    let config = zeitwork_edge::Config {
        trusted_proxies: setup.trusted_proxies,
        region: setup.region,
        ..zeitwork_edge::Config::new(base_domain)
    };
    let edge = Edge::start_with(store, bus, config)
        .await
        .context("starting the edge")?;
    let (http, https) = (
        resolve(&setup.http_listen).await?,
        resolve(&setup.https_listen).await?,
    );
    let on = ListenOn {
        http,
        tcp: Some(setup.tcp_listen.unwrap_or(http.ip())),
        https: Some(HttpsOn {
            addr: https,
            certs: Arc::new(StoredCerts(certs.clone())),
            // Port 0 is resolved below, once bound.
            public_port: setup.https_public_port.unwrap_or(https.port()),
        }),
    };
    let mut bound = on
        .bind()
        .with_context(|| format!("listening on {http} (HTTP) and {https} (HTTPS)"))?;
    if setup.https_public_port.is_none() && https.port() == 0 {
        let port = bound.https_addr().map_or(0, |a| a.port());
        bound.set_public_port(port);
    }
    let workers = match setup.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    Ok(Started {
        edge,
        certs,
        bound,
        workers,
        issuer,
    })
}

async fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .with_context(|| format!("{address} is not an address to listen on (HOST:PORT)"))
}

impl Started {
    pub fn http_addr(&self) -> SocketAddr {
        self.bound.http_addr()
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.bound.https_addr().expect("HTTPS is always served")
    }

    /// Whether a certificate covers `host` (so it is served over HTTPS).
    pub fn covers(&self, host: &str) -> bool {
        self.certs.covers(host)
    }

    /// Serves until `shutdown`, then drains; the issuer stops with it.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            http = %self.http_addr(),
            https = %self.https_addr(),
            certificates = self.certs.len(),
            acme = self.issuer.is_some(),
            workers = self.workers,
            "edge listening"
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let issuer = self.issuer.map(|issuer| {
            let mut stopped = stopped;
            // Also ends when the edge fails and drops `stop`.
            tokio::spawn(issuer.serve(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        let served = self
            .edge
            .run(self.bound, self.workers, async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await;
        if let Some(issuer) = issuer {
            let _ = issuer.await;
        }
        served.context("serving the edge")
    }
}
