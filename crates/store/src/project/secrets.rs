//! Secret versions: each `secret_set` adds one, and it is current until the next set or
//! unset of the name (`unset_seq`). Instances are told the versions current at their
//! `secrets_seq` (`agents::sealed_secrets`).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// The current version of `name` stops being current at `seq`.
pub(super) async fn replace(
    db: &mut PgConnection,
    seq: i64,
    env_id: &Uuid,
    name: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE secret_versions SET unset_seq = $1
         WHERE env_id = $2 AND name = $3 AND unset_seq IS NULL",
    )
    .bind(seq)
    .bind(env_id)
    .bind(name)
    .execute(db)
    .await?;
    Ok(())
}

/// A new version of `name`, current from `seq`.
pub(super) async fn add(
    db: &mut PgConnection,
    org: Option<Uuid>,
    seq: i64,
    env_id: &Uuid,
    name: &str,
    version: i32,
    ciphertext: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO secret_versions (org_id, env_id, name, version, ciphertext, set_seq)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(org)
    .bind(env_id)
    .bind(name)
    .bind(version)
    .bind(ciphertext)
    .bind(seq)
    .execute(db)
    .await?;
    Ok(())
}
