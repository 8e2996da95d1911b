//! The world a Pebble test runs in: Postgres, NATS with the listener, a certificate store
//! behind the stand-in edge, and Pebble validating against that edge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use uuid::Uuid;
use zeitwork_bus::NatsBus;
use zeitwork_certs::{AcmeConfig, Certificates, ChallengeKind, Config, Issuer};
use zeitwork_core::EventData;
use zeitwork_crypto::SecretBox;
use zeitwork_services::{Nats, Postgres};
use zeitwork_store::{Store, log};

use super::edge::{self, Hits};
use super::server::Pebble;

/// Platform hostnames end in `.localhost` here, which no CA can validate: only the
/// custom domains are ordered.
const BASE: &str = "zeitwork.localhost";

pub struct World {
    pub store: Store,
    pub bus: NatsBus,
    pub secrets: SecretBox,
    pub org: Uuid,
    pub env: Uuid,
    pub certs: Certificates,
    pub hits: Arc<Hits>,
    pub tls_port: u16,
    pub pebble: Pebble,
    /// Pebble's root, the only one the test's TLS client trusts.
    pub root: String,
    _pg: Postgres,
    _nats: Nats,
}

impl World {
    pub async fn start() -> World {
        let pg = Postgres::throwaway().await.expect("throwaway postgres");
        let store = Store::connect(&pg.url()).await.unwrap();
        let nats = Nats::throwaway().await.expect("throwaway nats");
        let bus = NatsBus::connect(&nats.url()).await.unwrap();
        let listener = zeitwork_listener::run(store.clone(), bus.clone(), std::future::pending());
        tokio::spawn(listener);
        let secrets = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let (org, app, env) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for data in [
            EventData::OrgCreated {
                org_id: org,
                name: "acme".into(),
            },
            EventData::AppCreated {
                app_id: app,
                org_id: org,
                name: "web".into(),
            },
            EventData::EnvCreated {
                env_id: env,
                app_id: app,
                name: "prod".into(),
                preview_of: None,
            },
        ] {
            emit(&store, org, data).await;
        }
        // A long resync: what the edge learns in time, it learns from notifications.
        let config = Config {
            resync_every: Duration::from_secs(30),
            ..Config::new(BASE)
        };
        let certs =
            Certificates::start_with(store.clone(), Some(bus.clone()), secrets.clone(), config)
                .await
                .unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_port = http.local_addr().unwrap().port();
        let tls_port = tls.local_addr().unwrap().port();
        let hits = edge::start(certs.clone(), http, tls).await;
        let pebble = Pebble::start(http_port, tls_port).await;
        let root = pebble.root_pem().await;
        World {
            store,
            bus,
            secrets,
            org,
            env,
            certs,
            hits,
            tls_port,
            pebble,
            root,
            _pg: pg,
            _nats: nats,
        }
    }

    /// An issuer for Pebble preferring `challenge`.
    pub fn issuer(&self, challenge: ChallengeKind, renew_before: Option<Duration>) -> Issuer {
        Issuer::new(
            self.store.clone(),
            Some(self.bus.clone()),
            self.secrets.clone(),
            self.acme(challenge, renew_before),
        )
        .unwrap()
    }

    pub fn acme(&self, challenge: ChallengeKind, renew_before: Option<Duration>) -> AcmeConfig {
        let defaults = AcmeConfig::new(BASE);
        AcmeConfig {
            directory_url: self.pebble.directory_url.clone(),
            ca_bundle: Some(self.pebble.ca_bundle.clone()),
            contact_email: Some("ops@example.test".into()),
            challenge,
            renew_before: renew_before.unwrap_or(defaults.renew_before),
            propagation: Duration::from_millis(200),
            order_timeout: Duration::from_secs(60),
            ..defaults
        }
    }

    pub async fn add_domain(&self, hostname: &str) {
        let data = EventData::DomainAdded {
            domain_id: Uuid::now_v7(),
            env_id: self.env,
            hostname: hostname.to_owned(),
            verification_token: "t".into(),
        };
        emit(&self.store, self.org, data).await;
    }

    /// Until ownership checks land, verification is a projection update (as in the
    /// edge's tests).
    pub async fn set_verified(&self, hostname: &str, verified: bool) {
        sqlx::query(
            "UPDATE domains SET verified_at = CASE WHEN $2 THEN now() END WHERE hostname = $1",
        )
        .bind(hostname)
        .bind(verified)
        .execute(self.store.pool())
        .await
        .unwrap();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.store.pool())
            .await
            .unwrap();
        n
    }

    /// The id and leaf of the stored certificate for `hostname`.
    pub async fn stored_leaf(&self, hostname: &str) -> (Uuid, CertificateDer<'static>) {
        let (id, chain): (Uuid, String) =
            sqlx::query_as("SELECT id, chain_pem FROM certificates WHERE $1 = ANY(hostnames)")
                .bind(hostname)
                .fetch_one(self.store.pool())
                .await
                .unwrap();
        (
            id,
            CertificateDer::from_pem_slice(chain.as_bytes()).unwrap(),
        )
    }

    /// The leaf a client trusting only Pebble's root is shown for `name`, and the line
    /// the stand-in edge then sends.
    pub async fn fetch(&self, name: &str) -> (CertificateDer<'static>, String) {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.root.as_bytes()).unwrap())
            .unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(("127.0.0.1", self.tls_port))
            .await
            .unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("a handshake the client trusts");
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned();
        let mut line = String::new();
        tls.read_to_string(&mut line).await.unwrap();
        (leaf, line)
    }
}

async fn emit(store: &Store, org: Uuid, data: EventData) {
    let mut tx = store.begin().await.unwrap();
    log::append(&mut tx, Some(org), "test", data).await.unwrap();
    tx.commit().await.unwrap();
}

pub async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
