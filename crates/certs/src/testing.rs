//! Certificates for unit tests, made with rcgen.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rcgen::{CertificateParams, KeyPair};
use uuid::Uuid;

use crate::pem;
use crate::snapshot::Held;

pub(crate) struct Made {
    pub chain_pem: String,
    pub key_pem: String,
}

/// A self-signed certificate for `names`.
pub(crate) fn leaf(names: &[&str]) -> Made {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let params = CertificateParams::new(names).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Made {
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A held certificate for `names`, expiring at `not_after`.
pub(crate) fn held(names: &[&str], not_after: DateTime<Utc>) -> Arc<Held> {
    let made = leaf(names);
    let chain = pem::chain(&made.chain_pem).unwrap();
    let key = pem::certified_key(chain, pem::key(made.key_pem.as_bytes()).unwrap()).unwrap();
    Arc::new(Held {
        id: Uuid::now_v7(),
        hostnames: names.iter().map(|n| (*n).to_owned()).collect(),
        not_after,
        key,
    })
}
