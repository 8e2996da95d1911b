//! Dashboard sessions: an API token exchanged for a cookie (the operator's
//! `session` module). A session is only as good as its token: every read joins the
//! token, so revoking the token ends its sessions at once.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// A live session and what its token may do.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Session {
    pub token_id: Uuid,
    pub org_id: Option<Uuid>,
    pub role: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Opens a session for `token` until `expires_at`; the cookie's secret is kept hashed.
pub async fn open<'c>(
    db: impl PgExecutor<'c>,
    hash: &str,
    token: Uuid,
    csrf: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO sessions (hash, token_id, csrf, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(token)
        .bind(csrf)
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(())
}

/// The unexpired session whose secret hashes to `hash`, if its token still exists.
pub async fn find<'c>(db: impl PgExecutor<'c>, hash: &str) -> Result<Option<Session>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.token_id, t.org_id, t.role, s.csrf, s.expires_at
         FROM sessions s JOIN tokens t ON t.id = s.token_id
         WHERE s.hash = $1 AND s.expires_at > now()",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?)
}

/// Ends a session (sign-out); ending one that is gone is no error.
pub async fn close<'c>(db: impl PgExecutor<'c>, hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE hash = $1")
        .bind(hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Forgets expired sessions; answers how many.
pub async fn prune<'c>(db: impl PgExecutor<'c>) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE expires_at <= now()")
            .execute(db)
            .await?
            .rows_affected(),
    )
}
