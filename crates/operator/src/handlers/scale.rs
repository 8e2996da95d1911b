//! Scaling a process of the active deployment: placing the extra instances, or stopping
//! the newest ones in each region.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use zeitwork_core::event::ProcessSpec;
use zeitwork_core::{EventData, Manifest};
use zeitwork_store::{log, read};

use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::placement::{self, Want};
use crate::quota;
use crate::scope::{Deployer, InEnv};
use crate::state::AppState;

/// Upper bound on instances per process per region, as in the manifest.
const MAX_INSTANCES: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    process: String,
    instances: u32,
}

pub async fn scale(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Body(b): Body<Scale>,
) -> ApiResult<Json<Value>> {
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
    let process = read::process_types(&mut *tx, deployment.id)
        .await?
        .into_iter()
        .find(|pt| pt.name == b.process)
        .ok_or_else(|| ApiError::not_found("process").with_field("process"))?;
    let release = read::release_by_id(&mut *tx, deployment.release_id)
        .await?
        .expect("deployments reference releases");
    let mut regions = manifest_regions(&release.manifest, &b.process);
    if regions.is_empty() {
        regions = placement::node_regions(&mut tx).await?;
    }
    let running: Vec<_> = read::instances(&mut *tx, scope.env.id)
        .await?
        .into_iter()
        .filter(|i| {
            i.deployment_id == deployment.id
                && i.process == b.process
                && i.desired_state == "running"
        })
        .collect();
    let spec = ProcessSpec {
        instances: b.instances,
        ..process.spec()
    };
    // Unplaced instances hold nothing, so they are replaced by a fresh placement;
    // placed ones are kept up to the count in each region, newest stopped first.
    let mut stopped: Vec<Uuid> = Vec::new();
    let mut deficits: Vec<(u32, Vec<String>)> = Vec::new();
    for i in &running {
        let wanted_region = i.region.as_ref().is_some_and(|r| regions.contains(r));
        if i.node_id.is_none() || !wanted_region {
            stopped.push(i.id);
        }
    }
    for region in &regions {
        let here: Vec<Uuid> = running
            .iter()
            .filter(|i| i.node_id.is_some() && i.region.as_ref() == Some(region))
            .map(|i| i.id)
            .collect();
        let have = u32::try_from(here.len()).unwrap_or(u32::MAX);
        if have > b.instances {
            stopped.extend(here.iter().rev().take((have - b.instances) as usize));
        } else if have < b.instances {
            deficits.push((b.instances - have, vec![region.clone()]));
        }
    }
    if regions.is_empty() {
        deficits.push((b.instances, Vec::new()));
    }
    let wants: Vec<Want> = deficits
        .iter()
        .map(|(count, regions)| Want {
            spec: &spec,
            count: *count,
            regions,
        })
        .collect();
    let started = placement::plan(
        &mut tx,
        s.config.cpu_oversubscription,
        deployment.id,
        &wants,
    )
    .await?;
    let usage =
        read::org_usage(&mut *tx, scope.org.id, Some(scope.env.id), Some(&b.process)).await?;
    let after = (running.len() - stopped.len() + started.len()) as u64;
    quota::of(&mut *tx, s.config.quotas, &scope.org)
        .await?
        .allow_instances(
            usage.instances + after,
            usage.memory_mb + after * u64::try_from(process.memory_mb).unwrap_or(0),
        )?;
    let data = EventData::ProcessScaled {
        deployment_id: deployment.id,
        process: b.process.clone(),
        instances: b.instances,
        started,
        stopped,
    };
    log::append(&mut tx, Some(scope.org.id), &auth.actor(), data).await?;
    let process = read::process_types(&mut *tx, deployment.id)
        .await?
        .into_iter()
        .find(|pt| pt.name == b.process);
    let instances = read::instances(&mut *tx, scope.env.id).await?;
    tx.commit().await?;
    let instances: Vec<_> = instances
        .into_iter()
        .filter(|i| i.deployment_id == deployment.id)
        .collect();
    Ok(Json(
        json!({ "deployment": deployment, "process": process, "instances": instances }),
    ))
}

fn manifest_regions(manifest: &Value, process: &str) -> Vec<String> {
    Manifest::from_json(manifest)
        .ok()
        .and_then(|m| m.processes.into_iter().find(|(n, _)| n.as_str() == process))
        .map(|(_, p)| p.regions.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}
