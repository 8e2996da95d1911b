//! Setting a process's instance count in the env's active deployment: placing the extra
//! instances, or stopping the newest ones in each region. `zeitwork scale` and the
//! autoscaler ([`crate::autoscale`]) both come here, under the append lock.

use serde_json::Value;
use uuid::Uuid;
use zeitwork_core::event::ProcessSpec;
use zeitwork_core::manifest::Autoscale;
use zeitwork_core::{DesiredState, EventData, Manifest};
use zeitwork_store::model::{Deployment, Org, ProcessType};
use zeitwork_store::{Tx, log, read};

use crate::error::{ApiError, ApiResult};
use crate::placement::{self, Want};
use crate::quota;
use crate::state::Config;

/// Upper bound on instances per process per region, as in the manifest.
pub(crate) const MAX_INSTANCES: u32 = zeitwork_core::manifest::autoscale::MAX_INSTANCES;

/// One change of a process's count.
pub(crate) struct Change<'a> {
    pub org: &'a Org,
    pub env_id: Uuid,
    pub deployment: &'a Deployment,
    pub process: &'a ProcessType,
    /// Instances per region from now on.
    pub instances: u32,
    /// Who decides (the token's actor, or the autoscaler).
    pub actor: &'a str,
    /// Why, when the autoscaler decides.
    pub reason: Option<String>,
}

/// The deployment's process named `name`, when it has one.
pub(crate) async fn process_of(
    tx: &mut Tx,
    deployment: Uuid,
    name: &str,
) -> ApiResult<Option<ProcessType>> {
    Ok(read::process_types(&mut **tx, deployment)
        .await?
        .into_iter()
        .find(|pt| pt.name == name))
}

/// The process's `[autoscale]` in the deployment's release, when it has one.
pub(crate) fn autoscale_of(manifest: &Value, process: &str) -> Option<Autoscale> {
    Manifest::from_json(manifest)
        .ok()?
        .processes
        .into_iter()
        .find(|(n, _)| n.as_str() == process)?
        .1
        .autoscale
}

/// Records the change (one `process_scaled` event) and places what it starts. The
/// caller holds the append lock.
pub(crate) async fn apply(tx: &mut Tx, config: &Config, change: Change<'_>) -> ApiResult<()> {
    let Change {
        org,
        env_id,
        deployment,
        process,
        instances,
        actor,
        reason,
    } = change;
    if instances > MAX_INSTANCES {
        return Err(ApiError::invalid(
            "instances",
            format!("at most {MAX_INSTANCES} instances per region"),
        ));
    }
    let release = read::release_by_id(&mut **tx, deployment.release_id)
        .await?
        .expect("deployments reference releases");
    let mut regions = manifest_regions(&release.manifest, &process.name);
    if regions.is_empty() {
        regions = placement::node_regions(tx).await?;
    }
    let running: Vec<_> = read::instances(&mut **tx, env_id)
        .await?
        .into_iter()
        .filter(|i| {
            i.deployment_id == deployment.id
                && i.process == process.name
                && i.desired_state == DesiredState::Running
        })
        .collect();
    let spec = ProcessSpec {
        instances,
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
        if have > instances {
            stopped.extend(here.iter().rev().take((have - instances) as usize));
        } else if have < instances {
            deficits.push((instances - have, vec![region.clone()]));
        }
    }
    if regions.is_empty() {
        deficits.push((instances, Vec::new()));
    }
    let wants: Vec<Want> = deficits
        .iter()
        .map(|(count, regions)| Want {
            spec: &spec,
            count: *count,
            regions,
        })
        .collect();
    let started = placement::plan(tx, config.cpu_oversubscription, deployment.id, &wants).await?;
    let usage = read::org_usage(&mut **tx, org.id, Some(env_id), Some(&process.name)).await?;
    let after = (running.len() - stopped.len() + started.len()) as u64;
    quota::of(&mut **tx, config.quotas, org)
        .await?
        .allow_instances(
            usage.instances + after,
            usage.memory_mb + after * u64::try_from(process.memory_mb).unwrap_or(0),
        )?;
    let data = EventData::ProcessScaled {
        deployment_id: deployment.id,
        process: process.name.clone(),
        instances,
        started,
        stopped,
        reason,
    };
    log::append(tx, Some(org.id), actor, data).await?;
    Ok(())
}

fn manifest_regions(manifest: &Value, process: &str) -> Vec<String> {
    Manifest::from_json(manifest)
        .ok()
        .and_then(|m| m.processes.into_iter().find(|(n, _)| n.as_str() == process))
        .map(|(_, p)| p.regions.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}
