//! The platform hostname labels envs and deployments hold (`platform_labels`). The
//! operator refuses a taken label before it appends; a replayed log that holds a clash
//! from before labels were claimed keeps the first holder, as the edge does.

use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_core::platform_host;

use crate::StoreError;

/// Claims the label of an env (`deployment` `None`) or of one of its deployments.
pub(super) async fn claim(
    db: &mut PgConnection,
    env_id: &Uuid,
    deployment: Option<(&Uuid, &str)>,
) -> Result<(), StoreError> {
    let names: Option<(String, String, String, Uuid)> = sqlx::query_as(
        "SELECT a.name, e.name, o.name, e.org_id FROM envs e
         JOIN apps a ON a.id = e.app_id JOIN orgs o ON o.id = e.org_id WHERE e.id = $1",
    )
    .bind(env_id)
    .fetch_optional(&mut *db)
    .await?;
    let Some((app, env, org, org_id)) = names else {
        return Ok(());
    };
    let label = match deployment {
        None => platform_host::env_label(&app, &env, &org),
        Some((_, slug)) => platform_host::deployment_label(&app, slug, &org),
    };
    sqlx::query(
        "INSERT INTO platform_labels (label, org_id, env_id, deployment_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(label)
    .bind(org_id)
    .bind(env_id)
    .bind(deployment.map(|(id, _)| *id))
    .execute(db)
    .await?;
    Ok(())
}
