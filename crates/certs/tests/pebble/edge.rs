//! A stand-in for the edge: the real edge's wiring of zeitwork-certs comes separately
//! (zeitwork-edge). Here, just enough to face the CA and a client: plain HTTP answering
//! ACME HTTP-01 from `Certificates::http01`, and TLS through `Certificates::resolver`,
//! closing `acme-tls/1` connections after the handshake (RFC 8737) and answering one
//! line to anything else. Hosts starting with `broken.` get 404 for every token, as if
//! their DNS pointed somewhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use zeitwork_certs::{ACME_TLS_ALPN, Certificates};

#[derive(Default)]
pub struct Hits {
    /// HTTP-01 requests answered with a key authorization.
    pub http01: AtomicUsize,
    /// Handshakes that negotiated `acme-tls/1`.
    pub tls_alpn: AtomicUsize,
}

impl Hits {
    pub fn http01(&self) -> usize {
        self.http01.load(Ordering::SeqCst)
    }
    pub fn tls_alpn(&self) -> usize {
        self.tls_alpn.load(Ordering::SeqCst)
    }
}

pub async fn start(certs: Certificates, http: TcpListener, tls: TcpListener) -> Arc<Hits> {
    let hits = Arc::new(Hits::default());
    tokio::spawn(serve_http(certs.clone(), http, hits.clone()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(certs.resolver());
    config.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    tokio::spawn(serve_tls(
        TlsAcceptor::from(Arc::new(config)),
        tls,
        hits.clone(),
    ));
    hits
}

async fn serve_http(certs: Certificates, listener: TcpListener, hits: Arc<Hits>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let (certs, hits) = (certs.clone(), hits.clone());
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let broken = head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("host: broken."));
            let answer = path
                .strip_prefix("/.well-known/acme-challenge/")
                .and_then(|token| certs.http01(token))
                .filter(|_| !broken);
            let response = match answer {
                Some(key_authorization) => {
                    hits.http01.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{key_authorization}",
                        key_authorization.len()
                    )
                }
                None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .into(),
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

async fn serve_tls(acceptor: TlsAcceptor, listener: TcpListener, hits: Arc<Hits>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, hits) = (acceptor.clone(), hits.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                hits.tls_alpn.fetch_add(1, Ordering::SeqCst);
                let _ = tls.shutdown().await;
                return;
            }
            let _ = tls.write_all(b"hello over TLS\n").await;
            let _ = tls.shutdown().await;
        });
    }
}
