//! Moving instances between nodes: emptying a dead or draining node, stopping what has
//! been replaced, and placing instances that waited for room. The drain endpoint and
//! the monitor share these. Callers hold the append lock (`log::lock`) and have
//! re-checked, under it, that the work is still to do.

use std::collections::BTreeMap;

use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_core::event::{InstancePlan, ProcessSpec, Replacement};
use zeitwork_core::node::NodeState;
use zeitwork_store::agents::{self, InstanceRef, Movable};
use zeitwork_store::model::Node;
use zeitwork_store::{StoreError, log};

use crate::placement::Cluster;

/// Marks the node `state` (draining or dead) and starts a replacement elsewhere for each
/// of its desired-running instances that has none yet. A dead node's instances are told
/// to stop at once; a draining node's keep serving until their replacements are healthy
/// (see [`Handover::Replaced`]). Returns how many replacements were started.
pub async fn evacuate(
    tx: &mut PgConnection,
    cpu_oversubscription: f64,
    node: &Node,
    state: NodeState,
    actor: &str,
) -> Result<usize, StoreError> {
    let node_id = node.id;
    if node.state != state {
        let data = EventData::NodeStateChanged { node_id, state };
        log::append(tx, None, actor, data).await?;
    }
    // Read after the state change, so the node itself takes nothing.
    let movables = agents::unreplaced_on(&mut *tx, node_id).await?;
    let started = replace(tx, cpu_oversubscription, movables, false, actor)
        .await?
        .len();
    if state == NodeState::Dead {
        let gone = agents::running_on(&mut *tx, node_id).await?;
        let reason = format!("node {} stopped sending heartbeats", node.name);
        stop(tx, gone, &reason, actor).await?;
    }
    Ok(started)
}

/// Starts a replacement for each instance (placed where there is room, else waiting),
/// one `instances_replaced` per deployment; each old instance stops once its
/// replacement is healthy ([`Handover::Replaced`]). A `restart`'s replacements run with
/// the env's current secrets, the others with their predecessors'. The replacements.
pub async fn replace(
    tx: &mut PgConnection,
    cpu_oversubscription: f64,
    olds: Vec<Movable>,
    restart: bool,
    actor: &str,
) -> Result<Vec<Replacement>, StoreError> {
    let mut cluster = Cluster::load(tx, cpu_oversubscription).await?;
    let mut all = Vec::new();
    for (deployment_id, (org, groups)) in by_deployment(olds) {
        let mut replacements = Vec::new();
        for (spec, region, olds) in groups {
            let plans = cluster.plan_in(deployment_id, &spec, region.as_deref(), len(&olds));
            replacements.extend(
                olds.into_iter()
                    .zip(plans)
                    .map(|(replaces, instance)| Replacement { replaces, instance }),
            );
        }
        all.extend(replacements.iter().cloned());
        let data = EventData::InstancesReplaced {
            deployment_id,
            replacements,
            restart,
        };
        log::append(tx, Some(org), actor, data).await?;
    }
    Ok(all)
}

/// Instances whose successors are ready, so they can stop.
#[derive(Debug, Clone, Copy)]
pub enum Handover {
    /// The end of a drain: a replacement reports healthy.
    Replaced,
    /// The end of a rollout: the env's active deployment is ready.
    Superseded,
}

impl Handover {
    pub async fn due(self, db: &mut PgConnection) -> Result<Vec<InstanceRef>, StoreError> {
        match self {
            Handover::Replaced => agents::replaced_by_healthy(db).await,
            Handover::Superseded => agents::superseded_by_ready(db).await,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Handover::Replaced => "replaced by a healthy instance",
            Handover::Superseded => "superseded by a healthy deployment",
        }
    }
}

/// Stops every instance `handover` finds due; how many.
pub async fn stop_handed_over(
    tx: &mut PgConnection,
    handover: Handover,
    actor: &str,
) -> Result<usize, StoreError> {
    let done = handover.due(&mut *tx).await?;
    let count = done.len();
    stop(tx, done, handover.reason(), actor).await?;
    Ok(count)
}

/// Waiting instances (no node) of one deployment that now have a node.
pub struct Placing {
    pub org: Uuid,
    pub deployment_id: Uuid,
    pub instances: Vec<InstancePlan>,
}

/// Finds a node for waiting instances where one has room; those that still find
/// none keep waiting. Only reads, so it can tell cheaply whether there is work.
pub async fn plan_waiting(
    db: &mut PgConnection,
    cpu_oversubscription: f64,
) -> Result<Vec<Placing>, StoreError> {
    let waiting = agents::waiting(&mut *db).await?;
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let mut cluster = Cluster::load(db, cpu_oversubscription).await?;
    let mut out = Vec::new();
    for (deployment_id, (org, groups)) in by_deployment(waiting) {
        let mut instances = Vec::new();
        for (spec, region, ids) in groups {
            let plans = cluster.plan_in(deployment_id, &spec, region.as_deref(), len(&ids));
            let found = plans.into_iter().filter(|p| p.node_id.is_some());
            instances.extend(
                ids.into_iter()
                    .zip(found)
                    .map(|(instance_id, plan)| InstancePlan {
                        instance_id,
                        ..plan
                    }),
            );
        }
        if !instances.is_empty() {
            out.push(Placing {
                org,
                deployment_id,
                instances,
            });
        }
    }
    Ok(out)
}

/// Places waiting instances as [`plan_waiting`] finds; returns how many.
pub async fn place_waiting(
    tx: &mut PgConnection,
    cpu_oversubscription: f64,
    actor: &str,
) -> Result<usize, StoreError> {
    let mut placed = 0;
    for p in plan_waiting(tx, cpu_oversubscription).await? {
        placed += p.instances.len();
        let data = EventData::InstancesPlaced {
            deployment_id: p.deployment_id,
            instances: p.instances,
        };
        log::append(tx, Some(p.org), actor, data).await?;
    }
    Ok(placed)
}

/// One `instances_stopped` event per deployment.
async fn stop(
    tx: &mut PgConnection,
    instances: Vec<InstanceRef>,
    reason: &str,
    actor: &str,
) -> Result<(), StoreError> {
    let mut by_deployment: BTreeMap<Uuid, (Uuid, Vec<Uuid>)> = BTreeMap::new();
    for i in instances {
        let entry = by_deployment
            .entry(i.deployment_id)
            .or_insert((i.org_id, Vec::new()));
        entry.1.push(i.id);
    }
    for (deployment_id, (org, instance_ids)) in by_deployment {
        let data = EventData::InstancesStopped {
            deployment_id,
            instance_ids,
            reason: reason.to_owned(),
        };
        log::append(tx, Some(org), actor, data).await?;
    }
    Ok(())
}

/// Instances of one process in one region (or none yet), which place alike.
type Group = (ProcessSpec, Option<String>, Vec<Uuid>);

/// Movable instances grouped by deployment (with its org), then by process and region.
fn by_deployment(movables: Vec<Movable>) -> BTreeMap<Uuid, (Uuid, Vec<Group>)> {
    let mut out: BTreeMap<Uuid, (Uuid, Vec<Group>)> = BTreeMap::new();
    for m in movables {
        let (_, groups) = out
            .entry(m.process.deployment_id)
            .or_insert((m.org_id, Vec::new()));
        let spec = m.process.spec();
        match groups
            .iter_mut()
            .find(|(s, region, _)| s.name == spec.name && *region == m.region)
        {
            Some((_, _, ids)) => ids.push(m.id),
            None => groups.push((spec, m.region, vec![m.id])),
        }
    }
    out
}

fn len(ids: &[Uuid]) -> u32 {
    u32::try_from(ids.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use zeitwork_store::model::ProcessType;

    use super::*;

    fn movable(deployment: u128, process: &str, region: Option<&str>, id: u128) -> Movable {
        Movable {
            id: Uuid::from_u128(id),
            org_id: Uuid::from_u128(9),
            region: region.map(str::to_owned),
            process: ProcessType {
                deployment_id: Uuid::from_u128(deployment),
                name: process.into(),
                instances: 2,
                millicpus: 500,
                memory_mb: 256,
                port: Some(8080),
            },
        }
    }

    #[test]
    fn movables_group_by_deployment_then_process_and_region() {
        let groups = by_deployment(vec![
            movable(1, "web", Some("eu"), 10),
            movable(2, "web", Some("eu"), 11),
            movable(1, "web", Some("eu"), 12),
            movable(1, "web", Some("us"), 13),
            movable(1, "worker", Some("eu"), 14),
        ]);
        let (org, first) = &groups[&Uuid::from_u128(1)];
        assert_eq!(*org, Uuid::from_u128(9));
        let summary: Vec<_> = first
            .iter()
            .map(|(spec, region, ids)| (spec.name.as_str(), region.as_deref(), ids.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("web", Some("eu"), 2),
                ("web", Some("us"), 1),
                ("worker", Some("eu"), 1)
            ]
        );
        assert_eq!(first[0].0.memory_mb, 256, "the process size comes along");
        assert_eq!(groups[&Uuid::from_u128(2)].1[0].2, [Uuid::from_u128(11)]);
    }
}
