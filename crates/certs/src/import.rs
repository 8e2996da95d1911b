//! Operator-supplied certificates (`zeitwork certs import`): typically the base domain's
//! wildcard, which spares an ACME order per platform hostname. Checked before it is
//! stored, so a wrong key or an expired certificate is refused with a reason instead of
//! failing every handshake later.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zeitwork_core::CertificateSource;
use zeitwork_crypto::SecretBox;
use zeitwork_store::Store;

use crate::record::{self, NewCertificate};
use crate::{CertsError, pem};

/// What an import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub certificate_id: Uuid,
    pub hostnames: Vec<String>,
    pub not_after: DateTime<Utc>,
    /// Earlier operator certificates for exactly the same hostnames, now dropped.
    pub replaced: Vec<Uuid>,
}

/// Validates `chain_pem` (leaf first) and `key_pem` (the leaf's private key) and stores
/// them for every edge, replacing an earlier import for the same hostnames.
pub async fn import(
    store: &Store,
    secret_box: &SecretBox,
    chain_pem: &str,
    key_pem: &str,
) -> Result<Imported, CertsError> {
    let chain = pem::chain(chain_pem)?;
    let info = pem::leaf_info(&chain[0])?;
    pem::certified_key(chain, pem::key(key_pem.as_bytes())?)?;
    if info.hostnames.is_empty() {
        return Err(CertsError::NoHostnames);
    }
    if info.not_after <= Utc::now() {
        return Err(CertsError::Expired(info.not_after));
    }
    let mut wanted = info.hostnames.clone();
    wanted.sort();
    let same: Vec<(Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT id, hostnames FROM certificates WHERE source = 'operator' AND hostnames && $1",
    )
    .bind(&info.hostnames)
    .fetch_all(store.pool())
    .await?;
    let replaced: Vec<Uuid> = same
        .into_iter()
        .filter_map(|(id, mut names)| {
            names.sort();
            (names == wanted).then_some(id)
        })
        .collect();
    let (hostnames, not_after) = (info.hostnames.clone(), info.not_after);
    let certificate_id = record::store_certificate(
        store,
        secret_box,
        NewCertificate {
            chain_pem,
            key_pem: key_pem.as_bytes(),
            info,
            source: CertificateSource::Operator,
            replaces: replaced.clone(),
        },
    )
    .await?;
    tracing::info!(certificate = %certificate_id, ?hostnames, %not_after, "operator certificate imported");
    Ok(Imported {
        certificate_id,
        hostnames,
        not_after,
        replaced,
    })
}
