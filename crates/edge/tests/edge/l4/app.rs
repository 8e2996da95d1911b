//! An app that terminates TLS itself, standing in for the instances behind a
//! `tls-passthrough` route (or a plain TCP one behind a `tcp` route), and a client's
//! side of talking to it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::client::TlsStream;
use zeitwork_edge::CertSource;
use zeitwork_l4::{ProxyHeader, proxy_v2};

use super::PASSED;
use crate::tls::TestCerts;

/// An app that echoes what it receives: over TLS it terminates itself (with a
/// certificate for [`PASSED`] from `certs`), or over plain TCP (a `tcp` route's app);
/// with `proxy_protocol` it first reads a PROXY v2 header.
pub struct TlsApp {
    pub addr: SocketAddr,
    /// `None`: plain TCP.
    pub certs: Option<Arc<TestCerts>>,
    pub headers: Arc<Mutex<Vec<ProxyHeader>>>,
    pub accepted: Arc<AtomicUsize>,
    /// Connections not yet closed.
    pub open: Arc<AtomicUsize>,
}

impl TlsApp {
    pub async fn start(addr: &str, proxy_protocol: bool, certs: Arc<TestCerts>) -> TlsApp {
        TlsApp::spawn(addr, proxy_protocol, Some(certs)).await
    }

    /// The same app without TLS.
    pub async fn plain(addr: &str, proxy_protocol: bool) -> TlsApp {
        TlsApp::spawn(addr, proxy_protocol, None).await
    }

    async fn spawn(addr: &str, proxy_protocol: bool, certs: Option<Arc<TestCerts>>) -> TlsApp {
        let acceptor = certs.as_ref().map(|certs| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(certs.resolver());
            TlsAcceptor::from(Arc::new(config))
        });
        let listener = TcpListener::bind(addr).await.unwrap();
        let app = TlsApp {
            addr: listener.local_addr().unwrap(),
            certs,
            headers: Arc::default(),
            accepted: Arc::default(),
            open: Arc::default(),
        };
        let (headers, accepted, open) =
            (app.headers.clone(), app.accepted.clone(), app.open.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                open.fetch_add(1, Ordering::SeqCst);
                let (acceptor, headers, open) = (acceptor.clone(), headers.clone(), open.clone());
                tokio::spawn(async move {
                    if proxy_protocol {
                        let read = proxy_v2::read_header(&mut stream, Duration::from_secs(5));
                        let header = read.await.unwrap();
                        headers.lock().unwrap().push(header);
                    }
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                copy_back(tls).await;
                            }
                        }
                        None => copy_back(stream).await,
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        app
    }

    /// A TLS connection to the app through the edge, on `tcp` (connected to the edge),
    /// checked to be the app's own: its CA vouches for it, and the certificate is its.
    pub async fn handshake(&self, tcp: TcpStream) -> TlsStream<TcpStream> {
        let name = ServerName::try_from(PASSED).unwrap();
        let certs = self.certs.as_ref().expect("a TLS app");
        let tls = certs.client(&[b"h2"]).connect(name, tcp).await;
        let tls = tls.expect("the app's own certificate, verified against the app's CA");
        let served = &tls.get_ref().1.peer_certificates().unwrap()[0];
        assert_eq!(*served, certs.leaf(PASSED), "the app's certificate");
        tls
    }
}

/// Echoes until the client finishes, then finishes too.
async fn copy_back(stream: impl AsyncRead + AsyncWrite) {
    let (mut from, mut to) = tokio::io::split(stream);
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

/// Writes `ping` and expects it back.
pub async fn echo(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
}

/// GET / over `tls` (HTTP/1.1, then closed): the raw answer.
pub async fn get(mut tls: TlsStream<TcpStream>, host: &str) -> String {
    let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The edge may close without close_notify once it has answered.
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}
