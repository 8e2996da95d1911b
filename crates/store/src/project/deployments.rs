//! Deployments' states: a rollout makes the new deployment active and puts the one it
//! replaces on standby (or supersedes it); a rollback to the standby swaps the two; a
//! standby's end supersedes it. An env holds at most one active and one standby
//! deployment (unique indexes), so each change first clears the place it takes.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_core::manifest::Seconds;

use crate::StoreError;

type R = Result<(), StoreError>;

/// The env's active deployment leaves its place for `replacement`: on standby until
/// `at + standby`, or superseded when there is no window. The env's earlier standby, if
/// any, is superseded first (its instances stop once the env is ready; see
/// `agents::superseded_by_ready`).
pub(super) async fn demote_active(
    db: &mut PgConnection,
    env_id: &Uuid,
    at: DateTime<Utc>,
    standby: Option<Seconds>,
) -> R {
    supersede_standby(db, env_id, None).await?;
    let millis = standby.map_or(0, Seconds::as_millis);
    sqlx::query(
        "UPDATE deployments SET
            state = CASE WHEN $3 > 0 THEN 'standby' ELSE 'superseded' END,
            standby_until = CASE WHEN $3 > 0 THEN $2 + $3 * interval '1 millisecond' END
         WHERE env_id = $1 AND state = 'active'",
    )
    .bind(env_id)
    .bind(at)
    .bind(i64::try_from(millis).unwrap_or(i64::MAX))
    .execute(db)
    .await?;
    Ok(())
}

/// Supersedes the env's standby deployment (only if it is `only`, when given).
pub(super) async fn supersede_standby(
    db: &mut PgConnection,
    env_id: &Uuid,
    only: Option<&Uuid>,
) -> R {
    sqlx::query(
        "UPDATE deployments SET state = 'superseded', standby_until = NULL
         WHERE env_id = $1 AND state = 'standby' AND ($2::uuid IS NULL OR id = $2)",
    )
    .bind(env_id)
    .bind(only)
    .execute(db)
    .await?;
    Ok(())
}

/// A rollback to the standby `deployment_id`: it is active again from `at` (a rollback
/// of `rollback_of`, as a rolled-out rollback would be), and the
/// deployment it replaces (`rollback_of`) goes on standby, its instances still waiting
/// for room no longer needed.
pub(super) async fn reactivate(
    db: &mut PgConnection,
    env_id: &Uuid,
    deployment_id: &Uuid,
    rollback_of: &Uuid,
    at: DateTime<Utc>,
    standby: Option<Seconds>,
) -> R {
    // Out of the standby place first, so the active one can take it.
    sqlx::query(
        "UPDATE deployments SET state = 'superseded', standby_until = NULL
         WHERE id = $1 AND env_id = $2",
    )
    .bind(deployment_id)
    .bind(env_id)
    .execute(&mut *db)
    .await?;
    demote_active(db, env_id, at, standby).await?;
    sqlx::query(
        "UPDATE deployments
         SET state = 'active', standby_until = NULL, activated_at = $3, rollback_of = $4
         WHERE id = $1 AND env_id = $2",
    )
    .bind(deployment_id)
    .bind(env_id)
    .bind(at)
    .bind(rollback_of)
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "UPDATE instances SET desired_state = 'stopped', updated_at = $2
         WHERE deployment_id = $1 AND node_id IS NULL AND desired_state <> 'stopped'",
    )
    .bind(rollback_of)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}
