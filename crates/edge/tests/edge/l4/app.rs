//! An app that terminates TLS itself, standing in for the instances behind a
//! `tls-passthrough` route, and a client's side of talking to it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::client::TlsStream;
use zeitwork_edge::CertSource;
use zeitwork_l4::{ProxyHeader, proxy_v2};

use super::PASSED;
use crate::tls::TestCerts;

/// An app that terminates TLS itself (with a certificate for [`PASSED`] from `certs`)
/// and echoes what it receives; with `proxy_protocol` it first reads a PROXY v2 header.
pub struct TlsApp {
    pub addr: SocketAddr,
    pub certs: Arc<TestCerts>,
    pub headers: Arc<Mutex<Vec<ProxyHeader>>>,
    pub accepted: Arc<AtomicUsize>,
    /// Connections not yet closed.
    pub open: Arc<AtomicUsize>,
}

impl TlsApp {
    pub async fn start(addr: &str, proxy_protocol: bool, certs: Arc<TestCerts>) -> TlsApp {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(certs.resolver());
        let acceptor = TlsAcceptor::from(Arc::new(config));
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
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let (mut from, mut to) = tokio::io::split(tls);
                        let _ = tokio::io::copy(&mut from, &mut to).await;
                        let _ = to.shutdown().await;
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
        let tls = self.certs.client(&[b"h2"]).connect(name, tcp).await;
        let tls = tls.expect("the app's own certificate, verified against the app's CA");
        let served = &tls.get_ref().1.peer_certificates().unwrap()[0];
        assert_eq!(*served, self.certs.leaf(PASSED), "the app's certificate");
        tls
    }
}

/// Writes `ping` and expects it back.
pub async fn echo(tls: &mut TlsStream<TcpStream>) {
    tls.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    tls.read_exact(&mut back).await.unwrap();
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
