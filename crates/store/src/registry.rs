//! What registry garbage collection reads and remembers: the images the platform still
//! refers to, and when each image in the registry was first seen (bookkeeping, not a
//! projection: rebuilding the projections leaves it alone).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::StoreError;

/// Key of the advisory lock one collection round holds ("zwregc" in ASCII), so one
/// operator collects at a time.
const GC_LOCK: i64 = 0x7a77_7265_6763;

/// Takes the collector's lock for the caller's transaction; false when another operator
/// holds it.
pub async fn try_lock_gc(tx: &mut PgConnection) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(GC_LOCK)
        .fetch_one(tx)
        .await?)
}

/// Every image reference (`name[:tag]@digest`) the platform still needs: the releases of
/// each env's last `keep` deployments and of every deployment with an instance not yet
/// stopped, and the sources and images of each env's last `keep` builds and of every
/// build that has not ended.
pub async fn references<'c>(db: impl PgExecutor<'c>, keep: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT r.image FROM releases r WHERE r.id IN (
             SELECT release_id FROM (
                 SELECT release_id, row_number() OVER (PARTITION BY env_id ORDER BY created_at DESC) AS n
                 FROM deployments) d WHERE d.n <= $1
             UNION
             SELECT d.release_id FROM deployments d JOIN instances i ON i.deployment_id = d.id
             WHERE i.desired_state <> 'stopped' OR i.observed_state <> 'stopped')
         UNION
         SELECT x.reference FROM (
             SELECT b.source, b.image, b.state,
                    row_number() OVER (PARTITION BY b.env_id ORDER BY b.created_at DESC) AS n
             FROM builds b) b,
             LATERAL (VALUES (b.source), (b.image)) AS x (reference)
         WHERE x.reference IS NOT NULL
           AND (b.n <= $1 OR b.state NOT IN ('succeeded', 'failed', 'cancelled'))",
    )
    .bind(keep)
    .fetch_all(db)
    .await?)
}

/// When the collector first saw `digest` in `repository` (now, the first time).
pub async fn first_seen(
    db: &mut PgConnection,
    repository: &str,
    digest: &str,
) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO registry_seen (repository, digest, first_seen) VALUES ($1, $2, now())
         ON CONFLICT (repository, digest) DO UPDATE SET first_seen = registry_seen.first_seen
         RETURNING first_seen",
    )
    .bind(repository)
    .bind(digest)
    .fetch_one(db)
    .await?)
}

/// Forgets an image that was deleted.
pub async fn forget(
    db: &mut PgConnection,
    repository: &str,
    digest: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM registry_seen WHERE repository = $1 AND digest = $2")
        .bind(repository)
        .bind(digest)
        .execute(db)
        .await?;
    Ok(())
}

/// Opens a blob sweep: from now on [`sweeping`] is true until [`end_sweep`].
pub async fn begin_sweep<'c>(db: impl PgExecutor<'c>) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("INSERT INTO registry_sweeps DEFAULT VALUES RETURNING id")
            .fetch_one(db)
            .await?,
    )
}

/// Closes sweep `id`.
pub async fn end_sweep<'c>(db: impl PgExecutor<'c>, id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE registry_sweeps SET finished_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Whether a blob sweep is open (one opened over an hour ago is taken as crashed).
pub async fn sweeping<'c>(db: impl PgExecutor<'c>) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM registry_sweeps
                        WHERE finished_at IS NULL AND started_at > now() - interval '1 hour')",
    )
    .fetch_one(db)
    .await?)
}

/// Records what the org's images take in the registry, as just measured.
pub async fn set_usage(
    db: &mut PgConnection,
    org: uuid::Uuid,
    bytes: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO registry_usage (org_id, bytes, measured_at) VALUES ($1, $2, now())
         ON CONFLICT (org_id) DO UPDATE SET bytes = $2, measured_at = now()",
    )
    .bind(org)
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets the usage of orgs other than `orgs` (deleted ones).
pub async fn forget_usage_except(
    db: &mut PgConnection,
    orgs: &[uuid::Uuid],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM registry_usage WHERE NOT (org_id = ANY($1))")
        .bind(orgs)
        .execute(db)
        .await?;
    Ok(())
}
