//! Everything the certificate store writes: certificate and account events (sealed before
//! they reach the log), and the open-challenge bookkeeping with its notification.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zeitwork_bus::{Bus, NatsBus, Notification};
use zeitwork_core::{CertificateSource, EventData};
use zeitwork_crypto::SecretBox;
use zeitwork_store::{Store, log};

use crate::CertsError;
use crate::pem::LeafInfo;

/// Who the log says wrote certificate events.
const ACTOR: &str = "system";

/// Associated data binding a sealed private key to its certificate.
pub(crate) fn key_aad(certificate_id: Uuid) -> String {
    format!("certificate/{certificate_id}")
}

/// Associated data binding sealed ACME account credentials to their account and directory.
pub(crate) fn account_aad(account_id: Uuid, directory_url: &str) -> String {
    format!("acme-account/{account_id}/{directory_url}")
}

/// A certificate about to be stored; its key is sealed here, never logged.
pub(crate) struct NewCertificate<'a> {
    pub chain_pem: &'a str,
    pub key_pem: &'a [u8],
    pub info: LeafInfo,
    pub source: CertificateSource,
    pub replaces: Vec<Uuid>,
}

/// Appends `certificate_stored`; returns the new certificate's id.
pub(crate) async fn store_certificate(
    store: &Store,
    secrets: &SecretBox,
    cert: NewCertificate<'_>,
) -> Result<Uuid, CertsError> {
    let certificate_id = Uuid::now_v7();
    let sealed_key = secrets.seal(&key_aad(certificate_id), cert.key_pem);
    let data = EventData::CertificateStored {
        certificate_id,
        hostnames: cert.info.hostnames,
        not_after: cert.info.not_after,
        chain_pem: cert.chain_pem.to_owned(),
        sealed_key,
        source: cert.source,
        replaces: cert.replaces,
    };
    append(store, data).await?;
    Ok(certificate_id)
}

pub(crate) async fn remove_certificate(
    store: &Store,
    certificate_id: Uuid,
    reason: &str,
) -> Result<(), CertsError> {
    let reason = reason.to_owned();
    append(
        store,
        EventData::CertificateRemoved {
            certificate_id,
            reason,
        },
    )
    .await
}

/// Appends `acme_account_stored` for `directory_url`; returns the account's id.
pub(crate) async fn store_account(
    store: &Store,
    secrets: &SecretBox,
    directory_url: &str,
    credentials_json: &[u8],
) -> Result<Uuid, CertsError> {
    let account_id = Uuid::now_v7();
    let sealed_credentials =
        secrets.seal(&account_aad(account_id, directory_url), credentials_json);
    let data = EventData::AcmeAccountStored {
        account_id,
        directory_url: directory_url.to_owned(),
        sealed_credentials,
    };
    append(store, data).await?;
    Ok(account_id)
}

async fn append(store: &Store, data: EventData) -> Result<(), CertsError> {
    let mut tx = store.begin().await?;
    log::append(&mut tx, None, ACTOR, data).await?;
    tx.commit().await?;
    Ok(())
}

/// One challenge every edge must answer until `expires_at`.
pub(crate) struct OpenChallenge<'a> {
    pub token: &'a str,
    pub hostname: &'a str,
    /// `http-01` or `tls-alpn-01`.
    pub kind: &'static str,
    pub key_authorization: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub(crate) async fn open_challenge(store: &Store, c: &OpenChallenge<'_>) -> Result<(), CertsError> {
    sqlx::query(
        "INSERT INTO acme_challenges (token, hostname, kind, key_authorization, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (token) DO UPDATE SET hostname = excluded.hostname, kind = excluded.kind,
            key_authorization = excluded.key_authorization, expires_at = excluded.expires_at",
    )
    .bind(c.token)
    .bind(c.hostname)
    .bind(c.kind)
    .bind(c.key_authorization)
    .bind(c.expires_at)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Deletes the given challenges, and any an issuer died holding.
pub(crate) async fn close_challenges(store: &Store, tokens: &[String]) -> Result<(), CertsError> {
    sqlx::query("DELETE FROM acme_challenges WHERE token = ANY($1) OR expires_at <= now()")
        .bind(tokens)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Tells every edge to re-read challenges now (without a bus they poll).
pub(crate) async fn announce(store: &Store, bus: Option<&NatsBus>, hostname: &str) {
    let Some(bus) = bus else { return };
    let seq = match store.pool().acquire().await {
        Ok(mut conn) => log::head(&mut conn).await.unwrap_or(0),
        Err(_) => 0,
    };
    let note = Notification {
        kind: "acme_challenge".into(),
        id: hostname.to_owned(),
        seq,
    };
    let sent = async {
        bus.publish(&crate::subject(), &note).await?;
        bus.flush().await
    };
    if let Err(e) = sent.await {
        tracing::warn!(error = %e, hostname, "cannot announce an ACME challenge; edges will see it on their next resync");
    }
}
