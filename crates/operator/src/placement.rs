//! Turns "N instances of process P" into instance plans with nodes, using the pure
//! scheduler on the current nodes and allocations. Callers hold the append lock
//! (`log::lock`) so two deploys never place against the same free memory.

use std::collections::BTreeSet;

use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_core::Manifest;
use zeitwork_core::event::{InstancePlan, ProcessSpec};
use zeitwork_core::node::NodeState;
use zeitwork_scheduler::{Allocation, Demand, Node, Policy, RegionDemand, place};
use zeitwork_store::{StoreError, read};

/// One process type to place `count` new instances of, per region.
pub struct Want<'a> {
    pub spec: &'a ProcessSpec,
    pub count: u32,
    /// Regions to run in; empty means every region that has nodes.
    pub regions: &'a [String],
}

/// Plans new instances for `deployment`. Every instance meant to run holds its room,
/// a superseded deployment's too: it serves until the new one is healthy.
pub async fn plan(
    db: &mut PgConnection,
    cpu_oversubscription: f64,
    deployment: Uuid,
    wants: &[Want<'_>],
) -> Result<Vec<InstancePlan>, StoreError> {
    let mut cluster = Cluster::load(db, cpu_oversubscription).await?;
    Ok(wants
        .iter()
        .flat_map(|want| cluster.plan(deployment, want))
        .collect())
}

/// The nodes and what they hold, as of one read. Each [`Cluster::plan`] reserves what
/// it placed, so several plans in a row never promise the same room twice.
pub struct Cluster {
    nodes: Vec<Node>,
    existing: Vec<Allocation>,
    policy: Policy,
}

impl Cluster {
    /// Reads the nodes and the instances and builds on them. Instances on draining or
    /// dead nodes hold nothing: the scheduler skips nodes that are not schedulable.
    pub async fn load(
        db: &mut PgConnection,
        cpu_oversubscription: f64,
    ) -> Result<Cluster, StoreError> {
        let nodes = read::nodes(&mut *db)
            .await?
            .into_iter()
            .map(|n| Node {
                id: n.id,
                region: n.region,
                zone: n.zone,
                millicpus: u32::try_from(n.millicpus).unwrap_or(0),
                memory_mb: u64::try_from(n.memory_mb).unwrap_or(0),
                schedulable: n.state == NodeState::Ready,
            })
            .collect();
        let mut existing: Vec<Allocation> = read::placed_instances(&mut *db)
            .await?
            .into_iter()
            .map(|a| Allocation {
                node: a.node_id,
                deployment: a.deployment_id,
                millicpus: u32::try_from(a.millicpus).unwrap_or(0),
                memory_mb: u64::try_from(a.memory_mb).unwrap_or(0),
            })
            .collect();
        // A build holds its builder VM's room on its node until it ends.
        for (build, node, manifest) in read::open_builds(&mut *db).await? {
            let limits = Manifest::from_json(&manifest)
                .ok()
                .and_then(|m| m.build)
                .unwrap_or_default();
            existing.push(Allocation {
                node,
                deployment: build,
                millicpus: limits.cpus.saturating_mul(1000),
                memory_mb: limits.memory_mb,
            });
        }
        Ok(Cluster {
            nodes,
            existing,
            policy: Policy {
                cpu_oversubscription,
            },
        })
    }

    /// Regions that have at least one node, in name order.
    pub fn regions(&self) -> Vec<String> {
        let regions: BTreeSet<&str> = self.nodes.iter().map(|n| n.region.as_str()).collect();
        regions.into_iter().map(str::to_owned).collect()
    }

    /// Plans `want.count` new instances in each of its regions: placed ones first,
    /// then those that found no room, with the reason.
    pub fn plan(&mut self, deployment: Uuid, want: &Want<'_>) -> Vec<InstancePlan> {
        if want.count == 0 {
            return Vec::new();
        }
        let regions = if want.regions.is_empty() {
            self.regions()
        } else {
            want.regions.to_vec()
        };
        let process = want.spec.name.as_str();
        if regions.is_empty() {
            return (0..want.count)
                .map(|_| unplaced(process, None, "no nodes are registered yet"))
                .collect();
        }
        let demand = Demand {
            deployment,
            process: process.to_owned(),
            millicpus: want.spec.millicpus,
            memory_mb: want.spec.memory_mb,
            regions: regions
                .into_iter()
                .map(|region| RegionDemand {
                    region,
                    count: want.count,
                })
                .collect(),
        };
        let placement = place(&self.nodes, &self.existing, &[demand], &self.policy);
        let mut plans = Vec::new();
        for a in placement.assignments {
            self.existing.push(Allocation {
                node: a.node,
                deployment,
                millicpus: want.spec.millicpus,
                memory_mb: want.spec.memory_mb,
            });
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
            plans.extend((0..u.missing).map(|_| unplaced(process, Some(&u.region), &reason)));
        }
        plans
    }

    /// Plans `count` instances of one process in `region` or, without one, in
    /// whichever regions have room, tried in name order: for instances that move or
    /// waited, which need one place each rather than `count` in every region.
    pub fn plan_in(
        &mut self,
        deployment: Uuid,
        spec: &ProcessSpec,
        region: Option<&str>,
        count: u32,
    ) -> Vec<InstancePlan> {
        let candidates = match region {
            Some(r) => vec![r.to_owned()],
            None => self.regions(),
        };
        if candidates.is_empty() {
            let want = Want {
                spec,
                count,
                regions: &[],
            };
            return self.plan(deployment, &want);
        }
        let mut placed = Vec::new();
        let mut short = Vec::new();
        for region in candidates {
            let missing = count - placed.len() as u32;
            if missing == 0 {
                break;
            }
            let want = Want {
                spec,
                count: missing,
                regions: std::slice::from_ref(&region),
            };
            let (ok, not): (Vec<_>, Vec<_>) = self
                .plan(deployment, &want)
                .into_iter()
                .partition(|p| p.node_id.is_some());
            placed.extend(ok);
            short = not;
        }
        short.truncate(count as usize - placed.len());
        placed.extend(short);
        placed
    }

    /// Plans one instance of `spec` on `node` alone (a build near its app's layer
    /// cache); None when that node is not schedulable or has no room.
    pub fn plan_on(
        &mut self,
        deployment: Uuid,
        spec: &ProcessSpec,
        node: Uuid,
    ) -> Option<InstancePlan> {
        let mut alone = Cluster {
            nodes: self
                .nodes
                .iter()
                .filter(|n| n.id == node)
                .cloned()
                .collect(),
            existing: self.existing.clone(),
            policy: self.policy,
        };
        let plan = alone.plan_in(deployment, spec, None, 1).pop()?;
        let placed = plan.node_id?;
        self.existing.push(Allocation {
            node: placed,
            deployment,
            millicpus: spec.millicpus,
            memory_mb: spec.memory_mb,
        });
        Some(plan)
    }
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
    Ok(Cluster::load(db, 0.0).await?.regions())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u128, region: &str, memory_mb: u64) -> Node {
        Node {
            id: Uuid::from_u128(id),
            region: region.into(),
            zone: None,
            millicpus: 4000,
            memory_mb,
            schedulable: true,
        }
    }

    fn spec(memory_mb: u64) -> ProcessSpec {
        ProcessSpec {
            name: "web".into(),
            instances: 1,
            millicpus: 500,
            memory_mb,
            port: None,
        }
    }

    fn cluster(nodes: Vec<Node>) -> Cluster {
        Cluster {
            nodes,
            existing: Vec::new(),
            policy: Policy {
                cpu_oversubscription: 1.0,
            },
        }
    }

    #[test]
    fn instances_without_a_region_take_the_first_region_with_room() {
        let mut c = cluster(vec![node(1, "a", 256), node(2, "b", 512)]);
        let d = Uuid::from_u128(9);
        let plans = c.plan_in(d, &spec(256), None, 3);
        let nodes: Vec<_> = plans.iter().map(|p| p.node_id).collect();
        assert_eq!(
            nodes,
            [
                Some(Uuid::from_u128(1)),
                Some(Uuid::from_u128(2)),
                Some(Uuid::from_u128(2))
            ],
            "one place each, not three per region"
        );
        // Everything is reserved now: the next plan finds no room, and says why.
        let more = c.plan_in(d, &spec(256), Some("a"), 1);
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].node_id, None);
        assert!(
            more[0]
                .reason
                .as_deref()
                .unwrap()
                .starts_with("unscheduled: ")
        );
    }

    #[test]
    fn without_nodes_every_instance_waits() {
        let plans = cluster(Vec::new()).plan_in(Uuid::nil(), &spec(64), None, 2);
        assert_eq!(plans.len(), 2);
        assert!(
            plans
                .iter()
                .all(|p| p.node_id.is_none() && p.region.is_none())
        );
    }
}
