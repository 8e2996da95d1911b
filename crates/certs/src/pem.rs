//! Reading certificates and keys: chains and keys in PEM (what operators and CAs hand
//! over), the names and expiry of a leaf, and a rustls [`CertifiedKey`] whose key is
//! checked to belong to its certificate.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::CertsError;

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafInfo {
    /// Lowercase DNS names of its subjectAltName, in certificate order.
    pub hostnames: Vec<String>,
    pub not_after: DateTime<Utc>,
}

/// Every certificate of a PEM chain, leaf first.
pub(crate) fn chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertsError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("the certificate chain is not valid PEM", e))?;
    if chain.is_empty() {
        return Err(CertsError::Pem {
            what: "the certificate chain",
            reason: "it holds no CERTIFICATE block".into(),
        });
    }
    Ok(chain)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, CertsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| pem_error("the private key is not valid PEM", e))
}

/// The hostnames and expiry of `leaf`.
pub(crate) fn leaf_info(leaf: &CertificateDer<'_>) -> Result<LeafInfo, CertsError> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| CertsError::Pem {
        what: "the certificate",
        reason: format!("not an X.509 certificate: {e}"),
    })?;
    let not_after =
        DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0).ok_or_else(|| {
            CertsError::Pem {
                what: "the certificate",
                reason: "its expiry is out of range".into(),
            }
        })?;
    let mut hostnames = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                let dns = normalize(dns);
                if !hostnames.contains(&dns) {
                    hostnames.push(dns);
                }
            }
        }
    }
    Ok(LeafInfo {
        hostnames,
        not_after,
    })
}

/// A chain and its key, ready for rustls; fails unless the key is the leaf's.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, CertsError> {
    let provider = default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertsError::Pem {
            what: "the private key",
            reason: format!("unusable: {e}"),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| CertsError::KeyMismatch)?;
    Ok(Arc::new(certified))
}

/// Hostnames compare lowercase and without a trailing dot.
pub(crate) fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn pem_error(what: &'static str, e: impl std::fmt::Display) -> CertsError {
    CertsError::Pem {
        what,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn names_and_expiry_come_from_the_leaf() {
        let made = testing::leaf(&["WWW.Example.com.", "example.com"]);
        let info = leaf_info(&chain(&made.chain_pem).unwrap()[0]).unwrap();
        assert_eq!(info.hostnames, ["www.example.com", "example.com"]);
        assert!(info.not_after > Utc::now());
    }

    #[test]
    fn a_key_that_is_not_the_leafs_is_refused() {
        let a = testing::leaf(&["a.example.com"]);
        let b = testing::leaf(&["b.example.com"]);
        let chain_a = chain(&a.chain_pem).unwrap();
        assert!(certified_key(chain_a.clone(), key(a.key_pem.as_bytes()).unwrap()).is_ok());
        assert!(matches!(
            certified_key(chain_a, key(b.key_pem.as_bytes()).unwrap()),
            Err(CertsError::KeyMismatch)
        ));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(chain("hello"), Err(CertsError::Pem { .. })));
        assert!(matches!(key(b"hello"), Err(CertsError::Pem { .. })));
    }
}
