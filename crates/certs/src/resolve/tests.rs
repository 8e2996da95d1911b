//! Resolver selection through real rustls handshakes in memory, so what is tested is what
//! a ClientHello actually carries (SNI, ALPN), not a hand-made stand-in.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, ServerConnection,
};

use super::*;
use crate::alpn;
use crate::snapshot::AlpnCert;
use crate::testing::held;

/// Accepts any certificate: these tests look at which one was chosen, not its trust.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn server(snapshot: Snapshot) -> Arc<ServerConfig> {
    let resolver = Resolver {
        snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Arc::new(config)
}

/// The end-entity certificate the server presents to a client saying `name` (a DNS name
/// sends SNI, an IP address does not) and offering `alpn`.
fn presented(server_config: &Arc<ServerConfig>, name: &str, alpn: &[&[u8]]) -> Option<Vec<u8>> {
    let mut client_config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    client_config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut client = ClientConnection::new(Arc::new(client_config), name).unwrap();
    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    let seen = Mutex::new(None);
    for _ in 0..10 {
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        server.read_tls(&mut wire.as_slice()).unwrap();
        server.process_new_packets().ok()?;
        let mut wire = Vec::new();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets().ok()?;
        if !client.is_handshaking() {
            *seen.lock().unwrap() = client.peer_certificates().map(|c| c[0].to_vec());
            break;
        }
    }
    seen.into_inner().unwrap()
}

fn der(key: &CertifiedKey) -> Vec<u8> {
    key.cert[0].to_vec()
}

#[test]
fn the_exact_name_wins_and_a_wildcard_covers_one_label() {
    let later = Utc::now() + Duration::days(60);
    let wild = held(&["*.zeitwork.test"], later);
    let own = held(&["api.zeitwork.test"], later);
    let snapshot = Snapshot::new(
        1,
        vec![wild.clone(), own.clone()],
        HashSet::new(),
        HashMap::new(),
        HashMap::new(),
    );
    let config = server(snapshot);
    let http = [b"http/1.1".as_slice()];
    assert_eq!(
        presented(&config, "api.zeitwork.test", &http),
        Some(der(&own.key))
    );
    assert_eq!(
        presented(&config, "web-acme.zeitwork.test", &http),
        Some(der(&wild.key))
    );
    assert_eq!(
        presented(&config, "WEB-Acme.Zeitwork.Test", &[]),
        Some(der(&wild.key))
    );
    assert_eq!(
        presented(&config, "a.b.zeitwork.test", &http),
        None,
        "two labels deep"
    );
    assert_eq!(presented(&config, "zeitwork.test", &http), None);
    assert_eq!(
        presented(&config, "127.0.0.1", &http),
        None,
        "no SNI, no certificate"
    );
}

#[test]
fn acme_tls_alpn_gets_the_challenge_certificate_and_only_that() {
    let own = held(&["tls.example.com"], Utc::now() + Duration::days(60));
    let challenge = alpn::challenge_cert("tls.example.com", "tok.thumb").unwrap();
    let mut alpn = HashMap::new();
    let key_authorization = "tok.thumb".to_owned();
    alpn.insert(
        "tls.example.com".to_owned(),
        AlpnCert {
            key_authorization,
            key: challenge.clone(),
        },
    );
    let snapshot = Snapshot::new(1, vec![own.clone()], HashSet::new(), HashMap::new(), alpn);
    let config = server(snapshot);
    let acme = [ACME_TLS_ALPN];
    assert_eq!(
        presented(&config, "tls.example.com", &acme),
        Some(der(&challenge))
    );
    // A browser offering acme-tls/1 among others is an ordinary client.
    let mixed = [b"http/1.1".as_slice(), ACME_TLS_ALPN];
    assert_eq!(
        presented(&config, "tls.example.com", &mixed),
        Some(der(&own.key))
    );
    assert_eq!(
        presented(&config, "tls.example.com", &[]),
        Some(der(&own.key))
    );
    // No challenge for the name: nothing, never the real certificate.
    assert_eq!(presented(&config, "other.example.com", &acme), None);
}

#[test]
fn sni_is_compared_lowercase_without_a_trailing_dot() {
    assert_eq!(normalized("a.example.com"), "a.example.com");
    assert!(matches!(normalized("a.example.com"), Cow::Borrowed(_)));
    assert_eq!(normalized("A.Example.com."), "a.example.com");
}
