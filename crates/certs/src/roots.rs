//! The roots a Zeitwork TLS client trusts: the web's (webpki-roots) plus, optionally, a
//! PEM bundle of private CAs (Pebble in tests, a company PKI). Shared by the ACME client
//! and the DNS server's health checks.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The web's roots and every certificate of `ca_bundle`; `Err` says why the bundle is
/// unusable (unreadable, not PEM, no certificate, a certificate that is no root).
pub fn roots(ca_bundle: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|e| e.to_string())?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not PEM: {e}"))?;
        if certs.is_empty() {
            return Err("it holds no CERTIFICATE block".into());
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("unusable root: {e}"))?;
        }
    }
    Ok(roots)
}
