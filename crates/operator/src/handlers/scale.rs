//! `POST …/envs/{env}/scale`: a process's instance count, set by hand. The work is in
//! [`crate::scaling`]; a process that autoscales is refused (its bounds are in its
//! manifest).

use axum::Json;
use axum::extract::State;
use zeitwork_api_types::{Scale, Scaled};
use zeitwork_store::{log, read};

use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::scaling::{self, Change, MAX_INSTANCES};
use crate::scope::{Deployer, InEnv};
use crate::state::AppState;

pub async fn scale(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Body(b): Body<Scale>,
) -> ApiResult<Json<Scaled>> {
    if b.instances > MAX_INSTANCES {
        return Err(ApiError::invalid(
            "instances",
            format!("at most {MAX_INSTANCES} instances per region"),
        ));
    }
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let deployment = read::active_deployment(&mut *tx, scope.env.id)
        .await?
        .ok_or_else(|| ApiError::conflict("process", "nothing is deployed to this env yet"))?;
    let process = scaling::process_of(&mut tx, deployment.id, &b.process)
        .await?
        .ok_or_else(|| ApiError::not_found("process").with_field("process"))?;
    let release = read::release_by_id(&mut *tx, deployment.release_id)
        .await?
        .expect("deployments reference releases");
    if let Some(a) = scaling::autoscale_of(&release.manifest, &b.process) {
        return Err(ApiError::conflict(
            "process",
            format!(
                "process {} autoscales between {} and {} instances per region; change \
                 [processes.{}.autoscale] in zeitwork.toml and deploy, or remove it to scale by hand",
                b.process, a.min, a.max, b.process
            ),
        ));
    }
    let actor = auth.actor();
    let change = Change {
        org: &scope.org,
        env_id: scope.env.id,
        deployment: &deployment,
        process: &process,
        instances: b.instances,
        actor: &actor,
        reason: None,
    };
    scaling::apply(&mut tx, &s.config, change).await?;
    let process = scaling::process_of(&mut tx, deployment.id, &b.process).await?;
    let instances = read::instances(&mut *tx, scope.env.id).await?;
    tx.commit().await?;
    let instances: Vec<_> = instances
        .into_iter()
        .filter(|i| i.deployment_id == deployment.id)
        .collect();
    Ok(Json(Scaled {
        deployment,
        process,
        instances,
    }))
}
