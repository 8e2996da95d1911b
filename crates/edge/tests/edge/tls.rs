//! HTTPS: certificates chosen by SNI, HTTP/2 and HTTP/1.1 by ALPN, plain HTTP sent to
//! HTTPS for hosts with a certificate, and ACME HTTP-01 answered from the certificate
//! source. The source here holds certificates made by a test CA (the production one,
//! zeitwork-certs, is tested against Pebble in its own crate).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeitwork_edge::{CertSource, Config, Edge, EdgeError, Https, Listeners};

use crate::support::{BASE, Backend, World, exchange};

/// Certificates for a fixed set of names, signed by one test CA.
#[derive(Debug)]
pub struct TestCerts {
    ca: CertificateDer<'static>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
    challenges: HashMap<String, String>,
}

impl TestCerts {
    pub fn new(names: &[&str]) -> Arc<TestCerts> {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let provider = rustls::crypto::ring::default_provider();
        let by_name = names
            .iter()
            .map(|name| {
                let key = KeyPair::generate().unwrap();
                let cert = CertificateParams::new(vec![name.to_string()])
                    .unwrap()
                    .signed_by(&key, &issuer)
                    .unwrap();
                let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
                let signing = provider.key_provider.load_private_key(der).unwrap();
                let certified =
                    CertifiedKey::new(vec![cert.der().clone(), ca.der().clone()], signing);
                (name.to_string(), Arc::new(certified))
            })
            .collect();
        let challenges = HashMap::from([("tok-1".to_owned(), "tok-1.thumbprint".to_owned())]);
        Arc::new(TestCerts {
            ca: ca.der().clone(),
            by_name,
            challenges,
        })
    }

    /// The leaf certificate served for `name`.
    pub fn leaf(&self, name: &str) -> CertificateDer<'static> {
        self.by_name[name].cert[0].clone()
    }

    /// A client that trusts this CA only.
    pub fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

impl ResolvesServerCert for TestCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.by_name.get(hello.server_name()?).cloned()
    }
}

impl CertSource for TestCerts {
    fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        Arc::new(TestCerts {
            ca: self.ca.clone(),
            by_name: self.by_name.clone(),
            challenges: HashMap::new(),
        })
    }

    fn http01(&self, token: &str) -> Option<String> {
        self.challenges.get(token).cloned()
    }

    fn covers(&self, host: &str) -> bool {
        self.by_name.contains_key(host)
    }
}

/// An edge serving HTTP and HTTPS on 127.0.0.1 with certificates from `certs`.
pub struct Secure {
    pub http: std::net::SocketAddr,
    pub https: std::net::SocketAddr,
    pub certs: Arc<TestCerts>,
    _edge: Edge,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<Result<(), EdgeError>>,
}

impl Secure {
    pub async fn start(world: &World, certs: Arc<TestCerts>) -> Secure {
        let config = Config {
            resync_every: Duration::from_secs(3600),
            ..Config::new(BASE)
        };
        Secure::with(world, certs, config).await
    }

    pub async fn with(world: &World, certs: Arc<TestCerts>, config: Config) -> Secure {
        let edge = Edge::start_with(world.store.clone(), None, config)
            .await
            .unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, https_addr) = (http.local_addr().unwrap(), https.local_addr().unwrap());
        let listeners = Listeners {
            http,
            https: Some(Https {
                listener: https,
                certs: certs.clone(),
                public_port: https_addr.port(),
            }),
            tcp: None,
        };
        let (stop, stopped) = oneshot::channel();
        let served = tokio::spawn(edge.serve(listeners, async {
            let _ = stopped.await;
        }));
        Secure {
            http: http_addr,
            https: https_addr,
            certs,
            _edge: edge,
            stop: Some(stop),
            served,
        }
    }

    /// Begins a graceful shutdown; the handle resolves when it is done.
    pub fn stop(&mut self) -> &mut JoinHandle<Result<(), EdgeError>> {
        let _ = self.stop.take().expect("stopped once").send(());
        &mut self.served
    }

    pub async fn connect(
        &self,
        name: &str,
        alpn: &[&[u8]],
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.https).await?;
        let name = ServerName::try_from(name.to_owned()).unwrap();
        self.certs.client(alpn).connect(name, tcp).await
    }
}

#[tokio::test]
async fn https_is_served_by_sni_over_http2_and_http1() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let backend = Backend::start("one").await;
    let ids = world.deploy(&app, "prod", "abc", 1).await;
    world.healthy(&app, ids[0], backend.addr).await;
    let host = format!("shop-acme.{BASE}");
    let edge = Secure::start(&world, TestCerts::new(&[&host])).await;

    // HTTP/2, chosen by ALPN.
    let tls = edge.connect(&host, &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = Request::get(format!("https://{host}/h2"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("backend=one"), "{body}");
        assert!(body.contains("x-forwarded-proto: https"), "{body}");
        assert!(
            body.contains(&format!("x-forwarded-host: {host}")),
            "{body}"
        );
        // HTTP/2 names the host in :authority; the app still gets it as Host.
        assert!(body.contains(&format!("\nhost: {host}\n")), "{body}");
    }

    // HTTP/1.1 when the client offers only that.
    let tls = edge.connect(&host, &[b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/h1")
        .header("host", &host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(backend.hits.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_name_without_a_certificate_fails_the_handshake_and_others_go_on() {
    let world = World::new().await;
    let host = format!("shop-acme.{BASE}");
    let edge = Secure::start(&world, TestCerts::new(&[&host])).await;
    let other = format!("other-acme.{BASE}");
    assert!(edge.connect(&other, &[b"h2"]).await.is_err());
    // No SNI at all (a bare IP address as the server name sends none).
    assert!(edge.connect("127.0.0.1", &[b"h2"]).await.is_err());
    // Plain HTTP instead of a ClientHello: the edge closes the connection.
    let mut stream = TcpStream::connect(edge.https).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    let _ = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the edge closes a connection that is not TLS");
    assert!(!rest.starts_with(b"HTTP"), "{rest:?}");
    assert!(edge.connect(&host, &[b"h2"]).await.is_ok());
}

#[tokio::test]
async fn plain_http_goes_to_https_where_a_certificate_exists() {
    let world = World::new().await;
    let app = world.app(&["prod", "staging"]).await;
    let backend = Backend::start("one").await;
    let ids = world.deploy(&app, "staging", "abc", 1).await;
    world.healthy(&app, ids[0], backend.addr).await;
    let covered = format!("shop-acme.{BASE}");
    let edge = Secure::start(&world, TestCerts::new(&[&covered])).await;

    let raw = format!(
        "POST /a/b?c=d HTTP/1.1\r\nHost: {covered}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let reply = exchange(edge.http, raw.as_bytes()).await.remove(0);
    assert_eq!(reply.status, 308);
    let location = format!("https://{covered}:{}/a/b?c=d", edge.https.port());
    assert_eq!(reply.header("location"), Some(location.as_str()));

    // A host without a certificate is served over plain HTTP as before.
    let plain = format!("shop-staging-acme.{BASE}");
    let raw = format!("GET / HTTP/1.1\r\nHost: {plain}\r\nConnection: close\r\n\r\n");
    let reply = exchange(edge.http, raw.as_bytes()).await.remove(0);
    assert_eq!((reply.status, reply.backend()), (200, Some("one")));
    assert_eq!(reply.seen("x-forwarded-proto"), Some("http"));

    // ACME HTTP-01 is answered on any host, never redirected.
    for (token, status, body) in [
        ("tok-1", 200, "tok-1.thumbprint"),
        ("nope", 404, "no such ACME challenge\n"),
    ] {
        let raw = format!(
            "GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {covered}\r\nConnection: close\r\n\r\n"
        );
        let reply = exchange(edge.http, raw.as_bytes()).await.remove(0);
        assert_eq!((reply.status, reply.body.as_str()), (status, body));
    }
}
