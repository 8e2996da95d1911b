//! Projections of the certificate events: the certificates every edge serves and the ACME
//! account they share. (Open ACME challenges are bookkeeping, not events: see
//! migrations/0004_certificates.sql.)

use sqlx::PgConnection;
use zeitwork_core::{Event, EventData};

use crate::StoreError;

/// Applies one certificate event; [`super::apply`] sends only those here.
pub(super) async fn apply(db: &mut PgConnection, event: &Event) -> Result<(), StoreError> {
    let at = event.at;
    match &event.data {
        EventData::CertificateStored {
            certificate_id,
            hostnames,
            not_after,
            chain_pem,
            sealed_key,
            source,
            replaces,
        } => {
            sqlx::query("DELETE FROM certificates WHERE id = ANY($1)")
                .bind(replaces)
                .execute(&mut *db)
                .await?;
            sqlx::query(
                "INSERT INTO certificates (id, hostnames, not_after, chain_pem, sealed_key, source, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(certificate_id)
            .bind(hostnames)
            .bind(not_after)
            .bind(chain_pem)
            .bind(sealed_key)
            .bind(source.as_str())
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::CertificateRemoved { certificate_id, .. } => {
            sqlx::query("DELETE FROM certificates WHERE id = $1")
                .bind(certificate_id)
                .execute(db)
                .await?;
        }
        EventData::AcmeAccountStored {
            account_id,
            directory_url,
            sealed_credentials,
        } => {
            sqlx::query(
                "INSERT INTO acme_accounts (id, directory_url, sealed_credentials, created_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (directory_url) DO UPDATE SET id = excluded.id,
                    sealed_credentials = excluded.sealed_credentials, created_at = excluded.created_at",
            )
            .bind(account_id)
            .bind(directory_url)
            .bind(sealed_credentials)
            .bind(at)
            .execute(db)
            .await?;
        }
        other => unreachable!("{} is not a certificate event", other.kind()),
    }
    Ok(())
}
