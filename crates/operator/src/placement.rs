//! Turns "N instances of process P" into instance plans with nodes, using the pure
//! scheduler on the current nodes and allocations. Callers hold the append lock
//! (`log::lock`) so two deploys never place against the same free memory.

use std::collections::BTreeSet;

use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_core::event::{InstancePlan, ProcessSpec};
use zeitwork_scheduler::{Allocation, Demand, Node, Policy, RegionDemand, place};
use zeitwork_store::{StoreError, read};

/// One process type to place `count` new instances of, per region.
pub struct Want<'a> {
    pub spec: &'a ProcessSpec,
    pub count: u32,
    /// Regions to run in; empty means every region that has nodes.
    pub regions: &'a [String],
}

/// Plans new instances for `deployment`. Instances of `replacing` (the deployment
/// being superseded) do not count against capacity: they are told to stop.
pub async fn plan(
    db: &mut PgConnection,
    cpu_oversubscription: f64,
    deployment: Uuid,
    replacing: Option<Uuid>,
    wants: &[Want<'_>],
) -> Result<Vec<InstancePlan>, StoreError> {
    let nodes: Vec<Node> = read::nodes(&mut *db)
        .await?
        .into_iter()
        .map(|n| Node {
            id: n.id,
            region: n.region,
            zone: n.zone,
            millicpus: u32::try_from(n.millicpus).unwrap_or(0),
            memory_mb: u64::try_from(n.memory_mb).unwrap_or(0),
            schedulable: n.state == "ready",
        })
        .collect();
    let existing: Vec<Allocation> = read::placed_instances(&mut *db)
        .await?
        .into_iter()
        .filter(|a| Some(a.deployment_id) != replacing)
        .map(|a| Allocation {
            node: a.node_id,
            deployment: a.deployment_id,
            millicpus: u32::try_from(a.millicpus).unwrap_or(0),
            memory_mb: u64::try_from(a.memory_mb).unwrap_or(0),
        })
        .collect();
    let all_regions: BTreeSet<&str> = nodes.iter().map(|n| n.region.as_str()).collect();
    let mut plans = Vec::new();
    let mut demands = Vec::new();
    for want in wants.iter().filter(|w| w.count > 0) {
        let regions: Vec<String> = if want.regions.is_empty() {
            all_regions.iter().map(|r| r.to_string()).collect()
        } else {
            want.regions.to_vec()
        };
        if regions.is_empty() {
            plans.extend(
                (0..want.count)
                    .map(|_| unplaced(&want.spec.name, None, "no nodes are registered yet")),
            );
            continue;
        }
        demands.push(Demand {
            deployment,
            process: want.spec.name.clone(),
            millicpus: want.spec.millicpus,
            memory_mb: want.spec.memory_mb,
            regions: regions
                .into_iter()
                .map(|region| RegionDemand {
                    region,
                    count: want.count,
                })
                .collect(),
        });
    }
    let placement = place(
        &nodes,
        &existing,
        &demands,
        &Policy {
            cpu_oversubscription,
        },
    );
    for a in placement.assignments {
        plans.push(InstancePlan {
            instance_id: Uuid::now_v7(),
            process: a.process,
            node_id: Some(a.node),
            region: Some(a.region),
            reason: None,
        });
    }
    for u in placement.unplaced {
        let reason = u.reason.to_string();
        plans.extend((0..u.missing).map(|_| unplaced(&u.process, Some(&u.region), &reason)));
    }
    Ok(plans)
}

fn unplaced(process: &str, region: Option<&str>, reason: &str) -> InstancePlan {
    InstancePlan {
        instance_id: Uuid::now_v7(),
        process: process.to_owned(),
        node_id: None,
        region: region.map(str::to_owned),
        reason: Some(format!("unscheduled: {reason}")),
    }
}

/// Regions that have at least one node, in name order.
pub async fn node_regions(db: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let regions: BTreeSet<String> = read::nodes(db)
        .await?
        .into_iter()
        .map(|n| n.region)
        .collect();
    Ok(regions.into_iter().collect())
}
