//! Create calls that carry an `Idempotency-Key` are answered once; a retry with the
//! same key and the same request gets the first answer back instead of a duplicate.
//! Records are kept for [`KEPT_FOR`], then pruned; answers that carried a secret are
//! recorded without it (the secret is shown once).

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};

use crate::StoreError;

/// A stored first answer.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Recorded {
    pub request_hash: String,
    pub status: i32,
    pub body: serde_json::Value,
}

/// How long a key is remembered: a retry after that is a new request.
pub const KEPT_FOR: Duration = Duration::from_secs(24 * 3600);

/// The first answer recorded under this key, unless it is older than [`KEPT_FOR`].
pub async fn lookup<'c>(
    db: impl PgExecutor<'c>,
    scope: &str,
    key: &str,
) -> Result<Option<Recorded>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT request_hash, status, body FROM idempotency_keys
         WHERE scope = $1 AND key = $2 AND created_at > now() - make_interval(secs => $3)",
    )
    .bind(scope)
    .bind(key)
    .bind(KEPT_FOR.as_secs_f64())
    .fetch_optional(db)
    .await?)
}

/// Records the answer in the same transaction as the change it reports. A concurrent
/// request with the same key fails here on the primary key and rolls back. An expired
/// record under the same key is replaced.
pub async fn record(
    db: &mut PgConnection,
    scope: &str,
    key: &str,
    answer: &Recorded,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, body) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, key) DO UPDATE
           SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
               body = EXCLUDED.body, created_at = now()
           WHERE idempotency_keys.created_at <= now() - make_interval(secs => $6)",
    )
    .bind(scope)
    .bind(key)
    .bind(&answer.request_hash)
    .bind(answer.status)
    .bind(&answer.body)
    .bind(KEPT_FOR.as_secs_f64())
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

/// Deletes records older than [`KEPT_FOR`]; returns how many went.
pub async fn prune<'c>(db: impl PgExecutor<'c>) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $1)",
    )
    .bind(KEPT_FOR.as_secs_f64())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
