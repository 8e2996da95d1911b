//! What the TLS tests talk to the edge with: a test CA (rcgen) and a small HTTP client
//! (hyper over rustls, ring only) that reports the certificate, the ALPN protocol and the
//! HTTP version it got, so a test can assert them. Shared by tls.rs and acme.rs, which
//! each use part of it.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A certificate authority only the test trusts.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate the test CA issued.
pub struct Issued {
    /// Leaf first, then the CA.
    pub chain_pem: String,
    pub key_pem: String,
    pub leaf: CertificateDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (wildcards allowed) with a fresh key.
    pub fn issue(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Issued {
            chain_pem: format!("{}{}", cert.pem(), self.issuer.pem()),
            key_pem: key.serialize_pem(),
            leaf: cert.der().clone(),
        }
    }
}

/// One answer, and how it came.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: String,
    /// The leaf the server showed (HTTPS only).
    pub leaf: Option<CertificateDer<'static>>,
    /// The protocol ALPN settled on (HTTPS only).
    pub alpn: Option<Vec<u8>>,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// `GET path` over TLS to `addr` with SNI and Host `host`, trusting only `root_pem` and
/// offering `alpn`; HTTP/2 when ALPN picks it. Errors are strings: a test polls on them.
pub async fn https_get(
    addr: &str,
    host: &str,
    path: &str,
    root_pem: &str,
    alpn: &[&[u8]],
) -> Result<Answer, String> {
    let mut roots = RootCertStore::empty();
    let root = CertificateDer::from_pem_slice(root_pem.as_bytes()).map_err(|e| e.to_string())?;
    roots.add(root).map_err(|e| e.to_string())?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let session = tls.get_ref().1;
    let leaf = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let h2 = alpn.as_deref() == Some(b"h2");
    let mut answer = get(tls, host, path, h2).await?;
    answer.leaf = leaf;
    answer.alpn = alpn;
    Ok(answer)
}

/// `GET path` over plain HTTP/1.1 to `addr` with Host `host`.
pub async fn http_get(addr: &str, host: &str, path: &str) -> Answer {
    let tcp = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    get(tcp, host, path, false)
        .await
        .unwrap_or_else(|e| panic!("GET http://{host}{path} via {addr}: {e}"))
}

async fn get<I>(io: I, host: &str, path: &str, h2: bool) -> Result<Answer, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let request = Request::get(format!("https://{host}{path}"))
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(request).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        // HTTP/1.1 names the host in a header and the path alone in the request line.
        let (mut parts, body) = request.into_parts();
        parts.headers.insert("host", host.parse().unwrap());
        parts.uri = path.parse().unwrap();
        sender.send_request(Request::from_parts(parts, body)).await
    }
    .map_err(|e| e.to_string())?;
    let (status, version, headers) = (
        response.status().as_u16(),
        response.version(),
        response.headers().clone(),
    );
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer {
        status,
        version,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        leaf: None,
        alpn: None,
    })
}

/// The sum of every sample of `metric` (whatever its labels) in Prometheus text.
pub fn total(metrics: &str, metric: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
