//! Reading exec grants (projection `exec_grants`, see [`crate::project`]).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// How long after its redemption an exec is listed for its node to attach.
pub const ATTACH_WITHIN_SECS: i64 = 60;

/// One grant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Grant {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub instance_id: Uuid,
    pub node_id: Uuid,
    pub command: sqlx::types::Json<Vec<String>>,
    pub tty: bool,
    pub term: Option<String>,
    pub hash: String,
    pub expires_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, org_id, instance_id, node_id, command, tty, term, hash, expires_at, started_at";

/// The grant `id` (redeemed under the log lock, so two clients cannot both use it).
pub async fn grant(db: &mut PgConnection, id: Uuid) -> Result<Option<Grant>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM exec_grants WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The execs on `node` redeemed within [`ATTACH_WITHIN_SECS`], oldest first.
pub async fn started_on(db: &mut PgConnection, node: Uuid) -> Result<Vec<Grant>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM exec_grants
          WHERE node_id = $1 AND started_at > now() - make_interval(secs => $2)
          ORDER BY started_at"
    )))
    .bind(node)
    .bind(ATTACH_WITHIN_SECS as f64)
    .fetch_all(db)
    .await?)
}
