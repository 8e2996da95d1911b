//! Leader election by a session-level Postgres advisory lock: whoever holds the lock on
//! its own connection leads, and loses it exactly when that connection closes.

use std::time::Duration;

use sqlx::PgConnection;

use crate::{Store, StoreError};

/// Waits until this process holds the advisory lock `key`, trying every `poll`; returns
/// the connection that holds it. Keep it open for as long as it leads: dropping it
/// (or the connection failing) hands leadership to the next one that tries.
pub async fn elect(store: &Store, key: i64, poll: Duration) -> Result<PgConnection, StoreError> {
    let mut conn = store.pool().acquire().await?.detach();
    loop {
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if locked {
            return Ok(conn);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Whether the connection that won [`elect`] still answers (so still holds the lock).
pub async fn still_leads(conn: &mut PgConnection) -> bool {
    sqlx::query("SELECT 1").execute(conn).await.is_ok()
}
