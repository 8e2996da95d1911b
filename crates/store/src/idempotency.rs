//! Create calls that carry an `Idempotency-Key` are answered once; a retry with the
//! same key and the same request gets the first answer back instead of a duplicate.

use sqlx::{PgConnection, PgExecutor};

use crate::StoreError;

/// A stored first answer.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Recorded {
    pub request_hash: String,
    pub status: i32,
    pub body: serde_json::Value,
}

pub async fn lookup<'c>(
    db: impl PgExecutor<'c>,
    scope: &str,
    key: &str,
) -> Result<Option<Recorded>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(db)
    .await?)
}

/// Records the answer in the same transaction as the change it reports. A concurrent
/// request with the same key fails here on the primary key and rolls back.
pub async fn record(
    db: &mut PgConnection,
    scope: &str,
    key: &str,
    answer: &Recorded,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, body) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(&answer.request_hash)
    .bind(answer.status)
    .bind(&answer.body)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            field: "Idempotency-Key",
            message: "another request with this Idempotency-Key is in progress; retry it".into(),
        });
    }
    Ok(())
}
