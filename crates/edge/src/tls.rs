//! TLS termination. The edge holds no certificates itself: a [`CertSource`] (in
//! production `zeitwork-certs`, which keeps every edge's certificates in Postgres and
//! issues them with ACME) picks one per ClientHello, answers HTTP-01 challenges and says
//! which hosts have a certificate, so plain HTTP to them can be sent to HTTPS.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;
use tokio::net::TcpListener;

/// ALPN protocol of ACME TLS-ALPN-01 validation (RFC 8737): the handshake is the whole
/// answer, so such a connection is closed once it completes.
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// A client that has not finished its handshake by then is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where certificates come from; the seam between the edge and the certificate store.
pub trait CertSource: Send + Sync + 'static {
    /// Picks the certificate for a ClientHello: by SNI, or the TLS-ALPN-01 challenge
    /// certificate when the client offers only `acme-tls/1`.
    fn resolver(&self) -> Arc<dyn ResolvesServerCert>;
    /// The key authorization for an HTTP-01 token an ACME order waits on.
    fn http01(&self, token: &str) -> Option<String>;
    /// Whether a certificate covers `host` (lowercase, no port): plain HTTP to such a
    /// host is redirected to HTTPS.
    fn covers(&self, host: &str) -> bool;
}

/// The HTTPS side of an edge.
pub struct Https {
    pub listener: TcpListener,
    pub certs: Arc<dyn CertSource>,
    /// The port clients reach HTTPS on (for redirects: 443 behind a load balancer,
    /// the listener's own port otherwise).
    pub public_port: u16,
}

/// What an edge serves on: plain HTTP always, HTTPS when certificates are configured,
/// the ports of `tcp` routes when it is given an address to open them on.
pub struct Listeners {
    pub http: TcpListener,
    pub https: Option<Https>,
    /// Where the ports of `tcp` routes are opened (each route's allocated port).
    pub tcp: Option<IpAddr>,
}

impl From<TcpListener> for Listeners {
    fn from(http: TcpListener) -> Listeners {
        Listeners {
            http,
            https: None,
            tcp: None,
        }
    }
}

/// rustls with the ring provider (never aws-lc-rs: mixing them panics), TLS 1.2 and 1.3,
/// HTTP/2 preferred, session tickets for cheap resumption.
pub(crate) fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("a ticketer from ring");
    Arc::new(config)
}
