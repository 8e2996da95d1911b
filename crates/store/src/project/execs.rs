//! Exec grants: who may run what in which instance, and whether the grant was used.

use sqlx::PgConnection;
use zeitwork_core::{Event, EventData};

use crate::StoreError;

pub async fn apply(db: &mut PgConnection, event: &Event) -> Result<(), StoreError> {
    match &event.data {
        EventData::ExecGranted {
            grant_id,
            instance_id,
            node_id,
            command,
            tty,
            term,
            hash,
            expires_at,
        } => {
            sqlx::query(
                "INSERT INTO exec_grants (id, org_id, instance_id, node_id, command, tty, term, hash, granted_by, granted_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(grant_id)
            .bind(event.org_id)
            .bind(instance_id)
            .bind(node_id)
            .bind(sqlx::types::Json(command))
            .bind(tty)
            .bind(term)
            .bind(hash)
            .bind(&event.actor)
            .bind(event.at)
            .bind(expires_at)
            .execute(db)
            .await?;
        }
        EventData::ExecStarted { grant_id, .. } => {
            sqlx::query("UPDATE exec_grants SET started_at = $2 WHERE id = $1")
                .bind(grant_id)
                .bind(event.at)
                .execute(db)
                .await?;
        }
        _ => {}
    }
    Ok(())
}
