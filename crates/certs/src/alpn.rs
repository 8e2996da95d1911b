//! TLS-ALPN-01 (RFC 8737): the CA connects with ALPN `acme-tls/1` and SNI the name being
//! validated, and expects a self-signed certificate for that name carrying the SHA-256 of
//! the key authorization in a critical acmeIdentifier extension. Every edge makes its own
//! from the key authorization it read, so no key material travels for challenges.

use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::CertsError;

/// The ALPN protocol of TLS-ALPN-01 validation connections.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The challenge certificate for `hostname`.
pub(crate) fn challenge_cert(
    hostname: &str,
    key_authorization: &str,
) -> Result<Arc<CertifiedKey>, CertsError> {
    let digest = Sha256::digest(key_authorization.as_bytes());
    let mut params = CertificateParams::new(vec![hostname.to_owned()]).map_err(generate)?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(&digest)];
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    let signing = default_provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .map_err(generate)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

fn generate(e: impl std::fmt::Display) -> CertsError {
    CertsError::Generate(e.to_string())
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    #[test]
    fn the_certificate_names_the_host_and_carries_the_digest_critically() {
        let key = challenge_cert("tls.example.com", "token.thumbprint").unwrap();
        let (_, cert) = X509Certificate::from_der(&key.cert[0]).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // An OCTET STRING (tag 4, length 32) of the digest.
        let digest = Sha256::digest(b"token.thumbprint");
        assert_eq!(&ext.value[..2], &[4, 32]);
        assert_eq!(&ext.value[2..], digest.as_slice());
        let info = crate::pem::leaf_info(&key.cert[0]).unwrap();
        assert_eq!(info.hostnames, ["tls.example.com"]);
    }
}
