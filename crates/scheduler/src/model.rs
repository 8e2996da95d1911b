//! What the scheduler reads and what it returns.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Reason;

/// A host that can run instances, as the operator last saw it.
///
/// Ids must be unique; if one repeats, its first occurrence is used and the others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: Uuid,
    pub region: String,
    /// Failure domain inside the region (rack, data-centre hall). Nodes without one share a
    /// single anonymous zone, so a cluster without zones spreads over nodes only.
    pub zone: Option<String>,
    /// Physical CPUs, in thousandths of a CPU, so that capacities stay integers.
    pub millicpus: u32,
    /// Memory the node may give to instances (after what the host keeps for itself), in MiB.
    pub memory_mb: u64,
    /// False while the node is draining or considered dead: it gets no new instances.
    pub schedulable: bool,
}

/// An instance that already runs (or is already assigned) on a node.
///
/// It uses up capacity and counts towards its deployment's spread. Allocations on nodes that are
/// unknown or not schedulable are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub node: Uuid,
    pub deployment: Uuid,
    pub millicpus: u32,
    pub memory_mb: u64,
}

/// New instances wanted for one process type of one deployment.
///
/// Every instance has the same size. The spread counts all instances of the deployment, whatever
/// their process type, because [`Allocation`]s do not carry one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand {
    pub deployment: Uuid,
    /// Process type (`web`, `worker`): carried through to the [`Assignment`]s and messages.
    pub process: String,
    /// CPU share of one instance, in thousandths of a CPU.
    pub millicpus: u32,
    /// Memory of one instance, in MiB.
    pub memory_mb: u64,
    /// How many new instances go to each region.
    pub regions: Vec<RegionDemand>,
}

/// How many new instances of a [`Demand`] a region should receive.
///
/// `count` is final: the caller has already raised it to the region's minimum (e.g.
/// `max(min_per_region, wanted)`) and subtracted the instances that already run there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionDemand {
    pub region: String,
    pub count: u32,
}

/// Knobs an operator sets for the whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// How far CPU may be oversubscribed: `4.0` lets the instances on a node reserve up to four
    /// times its physical CPUs; `1.0` reserves real CPUs only. A negative or NaN ratio admits
    /// no CPU at all, an infinite one admits any amount.
    pub cpu_oversubscription: f64,
}

/// The result of [`place`](crate::place).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// One entry per new instance, in the order they were decided.
    pub assignments: Vec<Assignment>,
    /// One entry per demand and region that fell short, in demand order.
    pub unplaced: Vec<Unplaced>,
}

/// One new instance and the node it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub deployment: Uuid,
    pub process: String,
    pub node: Uuid,
    pub region: String,
}

/// Instances of a demand that found no room in a region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    pub deployment: Uuid,
    pub process: String,
    pub region: String,
    /// How many of the region's `count` were not placed.
    pub missing: u32,
    /// Why, in terms the user can act on; its `Display` is the message to show.
    pub reason: Reason,
}

impl fmt::Display for Unplaced {
    /// `region eu-1: 2 web instance(s) of deployment … not placed: no node has 512 MiB free …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "region {}: {} {} instance(s) of deployment {} not placed: {}",
            self.region, self.missing, self.process, self.deployment, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unplaced_message_names_region_count_process_and_reason() {
        let unplaced = Unplaced {
            deployment: Uuid::from_u128(7),
            process: "web".to_owned(),
            region: "eu-1".to_owned(),
            missing: 2,
            reason: Reason::UnknownRegion,
        };
        assert_eq!(
            unplaced.to_string(),
            "region eu-1: 2 web instance(s) of deployment 00000000-0000-0000-0000-000000000007 \
             not placed: no node is enrolled in this region"
        );
    }

    #[test]
    fn placement_round_trips_through_serde() {
        // Callers log placements and read them back when explaining a decision.
        let placement = Placement {
            assignments: vec![Assignment {
                deployment: Uuid::from_u128(1),
                process: "web".to_owned(),
                node: Uuid::from_u128(2),
                region: "eu-1".to_owned(),
            }],
            unplaced: vec![Unplaced {
                deployment: Uuid::from_u128(1),
                process: "web".to_owned(),
                region: "us-1".to_owned(),
                missing: 1,
                reason: Reason::Full {
                    needed_mb: 512,
                    needed_millicpus: 500,
                    largest_free_mb: 256,
                    largest_free_millicpus: 4000,
                },
            }],
        };
        let json = serde_json::to_string(&placement).unwrap();
        assert!(json.contains(r#""kind":"full""#), "{json}");
        assert_eq!(serde_json::from_str::<Placement>(&json).unwrap(), placement);
    }
}
